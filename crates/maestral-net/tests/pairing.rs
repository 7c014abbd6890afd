//! Solo pairing codes: round trips keep what matters, sizes, strict decoding.

use std::net::SocketAddr;

use maestral_net::pairing::{
    ANSWER_PREFIX, DtlsSetup, OFFER_PREFIX, PairingCodeError, PairingDescription, PairingKind,
    code_kind, decode_answer, decode_offer, encode_answer, encode_offer,
};
use proptest::prelude::*;

const FP_HEX: &str = "5B:0B:AB:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:7F";

/// The webrtc-rs shaped SDP of the brief, with `setup`, extra lines and candidates to vary.
fn sdp(setup: &str, extra: &[&str], candidates: &[&str]) -> String {
    let mut lines = vec![
        "v=0".to_owned(),
        "o=- 1234567890 1234567890 IN IP4 0.0.0.0".into(),
        "s=-".into(),
        "t=0 0".into(),
        format!("a=fingerprint:sha-256 {FP_HEX}"),
        "a=extmap-allow-mixed".into(),
        "a=group:BUNDLE 0".into(),
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel".into(),
        "c=IN IP4 0.0.0.0".into(),
        format!("a=setup:{setup}"),
        "a=mid:0".into(),
        "a=sendrecv".into(),
        "a=sctp-port:5000".into(),
        "a=ice-ufrag:abcdEFGHijklMNOP".into(),
        "a=ice-pwd:abcdefghijklmnopqrstuvwxABCDEFGH".into(),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    lines.extend(candidates.iter().map(|c| format!("a=candidate:{c}")));
    lines.push("a=end-of-candidates".into());
    lines.join("\r\n") + "\r\n"
}

const ONE_V4: &[&str] = &["1234567 1 udp 2130706431 192.168.1.20 51234 typ host"];

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn described(sdp: &str) -> PairingDescription {
    PairingDescription::from_sdp(sdp).expect("SDP has what a code needs")
}

#[test]
fn offer_round_trip_keeps_every_field() {
    let original = sdp("actpass", &[], ONE_V4);
    let code = encode_offer(&original).expect("encodes");
    assert!(code.starts_with(OFFER_PREFIX));
    let rebuilt = decode_offer(&code).expect("decodes");
    let d = described(&rebuilt);
    assert_eq!(d, described(&original));
    assert_eq!(d.ice_ufrag, "abcdEFGHijklMNOP");
    assert_eq!(d.ice_pwd, "abcdefghijklmnopqrstuvwxABCDEFGH");
    assert_eq!(d.fingerprint[..3], [0x5B, 0x0B, 0xAB]);
    assert_eq!(d.fingerprint[31], 0x7F);
    assert_eq!(d.setup, DtlsSetup::ActPass);
    assert_eq!(d.mid, "0");
    assert_eq!(d.sctp_port, 5000);
    assert_eq!(d.max_message_size, None);
    assert_eq!(d.candidates, vec![addr("192.168.1.20:51234")]);
    // The rebuilt SDP states the fingerprint exactly as SDP does.
    assert!(rebuilt.contains(&format!("a=fingerprint:sha-256 {FP_HEX}\r\n")));
}

#[test]
fn rebuilt_sdp_is_a_conventional_data_channel_session() {
    let rebuilt = decode_offer(&encode_offer(&sdp("actpass", &[], ONE_V4)).expect("encodes"))
        .expect("decodes");
    let lines: Vec<&str> = rebuilt.split("\r\n").collect();
    assert_eq!(lines[0], "v=0");
    assert!(lines[1].starts_with("o=- "));
    assert_eq!(&lines[2..4], ["s=-", "t=0 0"]);
    for expected in [
        "a=group:BUNDLE 0",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=setup:actpass",
        "a=mid:0",
        "a=sctp-port:5000",
        "a=ice-ufrag:abcdEFGHijklMNOP",
        "a=ice-pwd:abcdefghijklmnopqrstuvwxABCDEFGH",
        "a=candidate:1 1 udp 2130706431 192.168.1.20 51234 typ host",
        "a=end-of-candidates",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{rebuilt}");
    }
    assert!(rebuilt.ends_with("\r\n") && !rebuilt.contains("\r\n\r\n"));
    // Deterministic: the same code always rebuilds the same text.
    let again = decode_offer(&encode_offer(&sdp("actpass", &[], ONE_V4)).expect("encodes"));
    assert_eq!(again.as_deref(), Ok(rebuilt.as_str()));
}

#[test]
fn answer_round_trip_with_v4_and_v6_candidates_and_non_defaults() {
    let candidates = [
        "1 1 udp 2130706431 192.168.1.20 51234 typ host",
        "2 1 udp 2130706430 10.0.0.7 40000 typ host generation 0",
        "3 1 udp 2130706429 fe80::1c2b:3aff:fe4d:5e6f 51235 typ host",
        "4 1 udp 2130706428 2001:db8::42 1 typ host",
        // left out: component 2, TCP, a reflexive candidate, an mDNS name, a duplicate
        "5 2 udp 2130706427 192.168.1.20 51236 typ host",
        "6 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active",
        "7 1 udp 1694498815 203.0.113.9 51234 typ srflx raddr 0.0.0.0 rport 0",
        "8 1 udp 2130706431 3c9a7d2e-1f7b-4a6c-9e1d-2f4b5c6d7e8f.local 51237 typ host",
        "9 1 udp 2130706431 192.168.1.20 51234 typ host",
    ];
    let original = sdp("active", &["a=max-message-size:262144"], &candidates)
        .replace("a=sctp-port:5000", "a=sctp-port:5001")
        .replace("a=mid:0", "a=mid:data")
        .replace("a=ice-ufrag:abcdEFGHijklMNOP", "a=ice-ufrag:x+/9")
        .replace(
            "a=ice-pwd:abcdefghijklmnopqrstuvwxABCDEFGH",
            "a=ice-pwd:0123456789abcdefghijkl+/",
        );
    let code = encode_answer(&original).expect("encodes");
    assert!(code.starts_with(ANSWER_PREFIX));
    let d = described(&decode_answer(&code).expect("decodes"));
    assert_eq!(d, described(&original));
    assert_eq!(d.setup, DtlsSetup::Active);
    assert_eq!(d.mid, "data");
    assert_eq!(d.sctp_port, 5001);
    assert_eq!(d.max_message_size, Some(262144));
    assert_eq!((d.ice_ufrag.as_str(), d.ice_pwd.as_str()), ("x+/9", "0123456789abcdefghijkl+/"));
    assert_eq!(
        d.candidates,
        vec![
            addr("192.168.1.20:51234"),
            addr("10.0.0.7:40000"),
            addr("[fe80::1c2b:3aff:fe4d:5e6f]:51235"),
            addr("[2001:db8::42]:1"),
        ]
    );
}

#[test]
fn passive_setup_and_lf_line_endings() {
    let original = sdp("passive", &[], ONE_V4).replace("\r\n", "\n");
    let d =
        described(&decode_answer(&encode_answer(&original).expect("encodes")).expect("decodes"));
    assert_eq!(d.setup, DtlsSetup::Passive);
}

#[test]
fn many_candidates_round_trip_and_are_capped_at_fifteen_per_family() {
    let many: Vec<String> = (0..20)
        .map(|i| format!("{i} 1 udp 2130706431 10.0.{i}.1 {} typ host", 40000 + i))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let d = described(
        &decode_offer(&encode_offer(&sdp("actpass", &[], &refs)).expect("encodes"))
            .expect("decodes"),
    );
    assert_eq!(d.candidates.len(), 15);
    assert_eq!(d.candidates[14], addr("10.0.14.1:40014"));
}

#[test]
fn one_candidate_code_is_short() {
    let code = encode_offer(&sdp("actpass", &[], ONE_V4)).expect("encodes");
    println!("one IPv4 candidate: {} characters: {code}", code.len());
    assert_eq!(code.len(), 118, "{code}");
    // webrtc-rs writes max-message-size 65536; that costs nothing either.
    let usual =
        encode_offer(&sdp("actpass", &["a=max-message-size:65536"], ONE_V4)).expect("encodes");
    assert_eq!(usual.len(), 118, "{usual}");
    let d = described(&decode_offer(&usual).expect("decodes"));
    assert_eq!(d.max_message_size, Some(65536));
    let two = encode_offer(&sdp(
        "actpass",
        &[],
        &[ONE_V4[0], "2 1 udp 2130706430 fe80::1 51235 typ host"],
    ))
    .expect("encodes");
    println!("IPv4 + IPv6 candidates: {} characters", two.len());
    assert_eq!(two.len(), 118 + 27);
}

#[test]
fn codes_are_qr_alphanumeric_only() {
    let code = encode_offer(&sdp("actpass", &[], ONE_V4)).expect("encodes");
    assert!(
        code.bytes().all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%+-./:".contains(&b)),
        "{code}"
    );
}

#[test]
fn pasted_codes_may_be_wrapped_or_lower_case() {
    let original = sdp("actpass", &[], ONE_V4);
    let code = encode_offer(&original).expect("encodes");
    let wrapped: String = code
        .chars()
        .enumerate()
        .flat_map(|(i, c)| (i % 20 == 19).then_some('\n').into_iter().chain([c]))
        .collect();
    let messy = format!("  {}\r\n", wrapped.to_lowercase());
    assert_eq!(described(&decode_offer(&messy).expect("decodes")), described(&original));
}

#[test]
fn wrong_kind_is_named() {
    let offer = encode_offer(&sdp("actpass", &[], ONE_V4)).expect("encodes");
    let answer = encode_answer(&sdp("active", &[], ONE_V4)).expect("encodes");
    assert_eq!(code_kind(&offer), Some(PairingKind::Offer));
    assert_eq!(code_kind(&answer), Some(PairingKind::Answer));
    let e = decode_offer(&answer).expect_err("an answer is not an offer");
    assert_eq!(
        e,
        PairingCodeError::WrongKind { expected: PairingKind::Offer, found: PairingKind::Answer }
    );
    assert!(e.to_string().contains("answer code"), "{e}");
    let e = decode_answer(&offer).expect_err("an offer is not an answer");
    assert!(matches!(e, PairingCodeError::WrongKind { expected: PairingKind::Answer, .. }));
    assert!(e.to_string().contains("OTHER device"), "{e}");
}

#[test]
fn damaged_codes_give_typed_errors() {
    let code = encode_offer(&sdp("actpass", &[], ONE_V4)).expect("encodes");
    let payload = &code[4..];
    assert_eq!(decode_offer(""), Err(PairingCodeError::NotAPairingCode));
    assert_eq!(decode_offer("hello"), Err(PairingCodeError::NotAPairingCode));
    assert_eq!(decode_offer("X1O:ABC"), Err(PairingCodeError::NotAPairingCode));
    assert_eq!(decode_offer("M1X:ABC"), Err(PairingCodeError::NotAPairingCode));
    assert_eq!(
        decode_offer("maestral://join?host=10.0.0.1:1&session=s&token=t&fp=x"),
        Err(PairingCodeError::IsJoinCode)
    );
    assert_eq!(decode_offer("http://10.0.0.1:1/#1.S.T.F"), Err(PairingCodeError::IsJoinCode));
    assert_eq!(decode_offer("http://10.0.0.1:1/#top"), Err(PairingCodeError::NotAPairingCode));
    assert_eq!(
        decode_offer(&format!("M2O:{payload}")),
        Err(PairingCodeError::UnsupportedVersion(2))
    );
    assert_eq!(decode_offer(OFFER_PREFIX), Err(PairingCodeError::Truncated));
    assert_eq!(
        decode_offer(&format!("{OFFER_PREFIX}{}*", &payload[..payload.len() - 1])),
        Err(PairingCodeError::BadCharacter('*'))
    );
    assert_eq!(
        decode_offer(&format!("{OFFER_PREFIX}AB_C")),
        Err(PairingCodeError::BadCharacter('_'))
    );
    assert_eq!(decode_offer(&format!("{OFFER_PREFIX}Ü")), Err(PairingCodeError::BadCharacter('Ü')));
    // Cut at every length: never a panic, always an error.
    for cut in 0..payload.len() {
        let e = decode_offer(&format!("{OFFER_PREFIX}{}", &payload[..cut]))
            .expect_err("a cut code is not a code");
        assert!(
            matches!(e, PairingCodeError::Truncated | PairingCodeError::Corrupt(_)),
            "cut at {cut}: {e:?}"
        );
    }
    // Extra bytes at the end.
    assert!(matches!(decode_offer(&format!("{code}000")), Err(PairingCodeError::Corrupt(_))));
    // A three-character group above 65535 (":::" is 42 + 42·43 + 42·43²).
    assert!(matches!(
        decode_offer(&format!("{OFFER_PREFIX}:::")),
        Err(PairingCodeError::Corrupt(_))
    ));
}

#[test]
fn unsupported_inner_version_is_reported() {
    // Header 0x00: version 0 in the top bits; the rest does not matter.
    assert_eq!(decode_offer("M1O:000"), Err(PairingCodeError::UnsupportedVersion(0)));
    // 0xC0 = version 3. Low digit first: 0xC000 = 49152 = 36 + 25·43 + 26·43².
    let d = |v: usize| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%+-./:"[v] as char;
    let text = format!("M1O:{}{}{}", d(49152 % 43), d(49152 / 43 % 43), d(49152 / 1849));
    assert_eq!(decode_offer(&text), Err(PairingCodeError::UnsupportedVersion(3)));
}

#[test]
fn sdp_without_what_matters_is_refused_with_a_reason() {
    let full = sdp("actpass", &[], ONE_V4);
    let without = |needle: &str| {
        full.split("\r\n").filter(|l| !l.starts_with(needle)).collect::<Vec<_>>().join("\r\n")
    };
    assert!(matches!(encode_offer(&without("a=ice-ufrag")), Err(PairingCodeError::SdpMissing(_))));
    assert!(matches!(encode_offer(&without("a=ice-pwd")), Err(PairingCodeError::SdpMissing(_))));
    assert!(matches!(
        encode_offer(&without("a=fingerprint")),
        Err(PairingCodeError::SdpMissing(_))
    ));
    assert!(matches!(encode_offer(&without("a=setup")), Err(PairingCodeError::SdpMissing(_))));
    assert!(matches!(encode_offer(&without("m=")), Err(PairingCodeError::SdpMissing(_))));
    assert_eq!(encode_offer(&without("a=candidate")), Err(PairingCodeError::NoCandidates));
    assert!(matches!(
        encode_offer(&full.replace("ice-ufrag:abcdEFGH", "ice-ufrag:ab-dEFGH")),
        Err(PairingCodeError::SdpInvalid(_))
    ));
    assert!(matches!(
        encode_offer(&full.replace("a=setup:actpass", "a=setup:holdconn")),
        Err(PairingCodeError::SdpInvalid(_))
    ));
    assert!(matches!(
        encode_offer(&full.replace("a=sctp-port:5000", "a=sctp-port:x")),
        Err(PairingCodeError::SdpInvalid(_))
    ));
    // Only mDNS names: nothing to pack.
    let mdns = sdp("actpass", &[], &["1 1 udp 2130706431 abc.local 5000 typ host"]);
    assert_eq!(encode_offer(&mdns), Err(PairingCodeError::NoCandidates));
}

proptest! {
    #[test]
    fn arbitrary_text_after_the_prefix_never_panics(s in ".{0,200}") {
        let _ = decode_offer(&format!("{OFFER_PREFIX}{s}"));
        let _ = decode_answer(&format!("{ANSWER_PREFIX}{s}"));
        let _ = decode_offer(&s);
    }

    #[test]
    fn arbitrary_alphanumeric_payloads_never_panic(
        s in "[0-9A-Z$%+./:-]{0,200}"
    ) {
        let _ = decode_offer(&format!("{OFFER_PREFIX}{s}"));
    }

    #[test]
    fn random_descriptions_round_trip(
        ufrag in "[A-Za-z0-9+/]{1,40}",
        pwd in "[A-Za-z0-9+/]{22,64}",
        fingerprint in any::<[u8; 32]>(),
        setup in prop_oneof![Just(DtlsSetup::ActPass), Just(DtlsSetup::Active), Just(DtlsSetup::Passive)],
        mid in "[a-z0-9]{1,8}",
        sctp_port in any::<u16>(),
        max_message_size in any::<Option<u32>>(),
        v4 in proptest::collection::vec((any::<[u8; 4]>(), 1u16..), 0..4),
        v6 in proptest::collection::vec((any::<[u8; 16]>(), 1u16..), 0..3),
    ) {
        let mut candidates: Vec<SocketAddr> = v4.iter().map(|(ip, p)| SocketAddr::from((*ip, *p))).collect();
        candidates.extend(v6.iter().map(|(ip, p)| SocketAddr::from((*ip, *p))));
        candidates.dedup();
        prop_assume!(!candidates.is_empty());
        let d = PairingDescription {
            ice_ufrag: ufrag, ice_pwd: pwd, fingerprint, setup, mid, sctp_port, max_message_size, candidates,
        };
        let code = d.to_code(PairingKind::Answer).expect("encodes");
        prop_assert_eq!(&PairingDescription::from_code(&code, PairingKind::Answer).expect("decodes"), &d);
        // And through SDP text, as the other device sees it.
        prop_assert_eq!(&PairingDescription::from_sdp(&d.to_sdp()).expect("parses"), &d);
    }
}

#[test]
fn a_code_repeating_an_address_is_refused_as_no_device_writes_one() {
    // Found by `cargo xtask fuzz`: such a code decoded to an SDP that encoded to another code.
    let mut desc = described(&sdp("actpass", &[], ONE_V4));
    desc.candidates.push(desc.candidates[0]);
    let code = desc.to_code(PairingKind::Offer).expect("written as given");
    assert_eq!(decode_offer(&code), Err(PairingCodeError::Corrupt("repeated address")));
}
