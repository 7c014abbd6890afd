//! Join codes: the URI round trip, every error, fingerprint comparison.

use std::net::SocketAddr;

use maestral_net::joincode::{
    JoinCode, JoinCodeError, fingerprints_match, normalize_fingerprint, parse_sha256_fingerprint,
};

const FP: &str = "sha-256 5B:0B:AB:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:7F";
const FP_URL: &str = "sha-256%205B:0B:AB:01:23:45:67:89:AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:10:20:30:40:7F";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn code(host: &str, token: &str) -> JoinCode {
    JoinCode::new(addr(host), "0123456789abcdef", token, FP).expect("valid join code")
}

#[test]
fn ipv4_round_trip_writes_the_protocols_form() {
    let c = code("192.168.1.20:4711", "AbC-dEf_123456789012");
    let text = c.link();
    assert_eq!(
        text,
        format!(
            "maestral://join?host=192.168.1.20:4711&session=0123456789abcdef&token=AbC-dEf_123456789012&fp={FP_URL}"
        )
    );
    assert_eq!(text.parse::<JoinCode>(), Ok(c));
}

#[test]
fn ipv6_round_trip_keeps_brackets() {
    let c = code("[fe80::1]:4711", "-_-_tokenWithDashes_and_underscores-");
    let text = c.link();
    assert!(text.contains("host=[fe80::1]:4711&"), "{text}");
    assert_eq!(text.parse::<JoinCode>(), Ok(c.clone()));
    let full = code("[2001:db8:85a3::8a2e:370:7334]:65535", "t");
    assert_eq!(full.link().parse::<JoinCode>(), Ok(full));
}

#[test]
fn whitespace_around_a_typed_code_is_ignored() {
    let c = code("10.0.0.2:5000", "tok");
    let typed = format!("  \n\t{c}\r\n ");
    assert_eq!(typed.parse::<JoinCode>(), Ok(c));
}

#[test]
fn lower_case_hex_and_plus_for_space_are_accepted_and_normalised() {
    let text = format!(
        "MAESTRAL://JOIN?host=10.0.0.2:5000&session=s&token=t&fp={}",
        FP_URL.replace("%20", "+").to_lowercase()
    );
    let c: JoinCode = text.parse().expect("lower-case fingerprint");
    assert_eq!(c.fingerprint, FP);
}

#[test]
fn unknown_parameters_and_order_do_not_matter() {
    let text = format!("maestral://join?fp={FP_URL}&future=1&token=t&session=s&host=10.0.0.2:5000");
    let c: JoinCode = text.parse().expect("reordered code");
    assert_eq!(c.host, addr("10.0.0.2:5000"));
    assert_eq!((c.session_id.as_str(), c.token.expose()), ("s", "t"));
}

#[test]
fn percent_encoded_values_round_trip() {
    // Not what Maestral generates, but whatever a session id holds must survive.
    let c = JoinCode::new(addr("10.0.0.2:5000"), "a b&c=d", "t+/=", FP).expect("code");
    let text = c.link();
    assert!(text.contains("session=a%20b%26c%3Dd&"), "{text}");
    assert_eq!(text.parse::<JoinCode>(), Ok(c));
}

fn err(text: &str) -> JoinCodeError {
    text.parse::<JoinCode>().expect_err("must be rejected")
}

#[test]
fn every_error() {
    let ok = format!("maestral://join?host=10.0.0.2:5000&session=s&token=t&fp={FP_URL}");
    assert_eq!(ok.parse::<JoinCode>().map(|_| ()), Ok(()));

    assert_eq!(err(""), JoinCodeError::NotAJoinCode);
    assert_eq!(err("https://example.com/join?host=1"), JoinCodeError::NotAJoinCode);
    assert_eq!(err("M1O:ABCDEF"), JoinCodeError::NotAJoinCode);
    assert_eq!(err("maestral://pair?host=x"), JoinCodeError::NotAJoinCode);

    let without = |name: &str| {
        let kept: Vec<&str> = ok
            .trim_start_matches("maestral://join?")
            .split('&')
            .filter(|p| !p.starts_with(&format!("{name}=")))
            .collect();
        format!("maestral://join?{}", kept.join("&"))
    };
    assert_eq!(err(&without("host")), JoinCodeError::MissingParameter("host"));
    assert_eq!(err(&without("session")), JoinCodeError::MissingParameter("session"));
    assert_eq!(err(&without("token")), JoinCodeError::MissingParameter("token"));
    assert_eq!(err(&without("fp")), JoinCodeError::MissingParameter("fp"));

    assert_eq!(err(&format!("{ok}&token=u")), JoinCodeError::DuplicateParameter("token"));
    assert_eq!(err(&format!("{ok}&host=10.0.0.3:1")), JoinCodeError::DuplicateParameter("host"));

    let with = |name: &str, value: &str| {
        let kept: Vec<String> = ok
            .trim_start_matches("maestral://join?")
            .split('&')
            .map(|p| {
                if p.starts_with(&format!("{name}=")) {
                    format!("{name}={value}")
                } else {
                    p.to_owned()
                }
            })
            .collect();
        format!("maestral://join?{}", kept.join("&"))
    };
    for bad in
        ["conductor.local:5000", "10.0.0.2", "fe80::1:4711", "10.0.0.2:99999", "10.0.0.2:0", ""]
    {
        assert!(matches!(err(&with("host", bad)), JoinCodeError::BadHost(_)), "host {bad:?}");
    }
    assert_eq!(err(&with("token", "")), JoinCodeError::EmptyToken);
    assert_eq!(err(&ok.replace("&token=t", "&token")), JoinCodeError::EmptyToken);
    assert_eq!(err(&with("session", "")), JoinCodeError::EmptySessionId);
    assert_eq!(err(&with("token", "%FF%FE")), JoinCodeError::BadEncoding("token"));

    for bad in [
        "",
        "sha-256",
        "sha-1%20AB:CD",
        // 31 pairs
        &FP_URL[..FP_URL.len() - 3],
        // 33 pairs
        &format!("{FP_URL}:00"),
        // not hex
        &FP_URL.replace("5B", "ZZ"),
        // no space
        &FP_URL.replace("%20", ""),
        // single digits
        &FP_URL.replace(":0B:", ":B:"),
    ] {
        assert_eq!(err(&with("fp", bad)), JoinCodeError::BadFingerprint, "fp {bad:?}");
    }
}

#[test]
fn messages_tell_the_singer_what_to_do() {
    assert_eq!(
        JoinCodeError::NotAJoinCode.to_string(),
        "this is not a Maestral join code — scan the QR code on the conductor's screen again"
    );
    for e in [
        JoinCodeError::MissingParameter("token"),
        JoinCodeError::DuplicateParameter("host"),
        JoinCodeError::BadHost("x".into()),
        JoinCodeError::BadFingerprint,
        JoinCodeError::EmptyToken,
        JoinCodeError::EmptySessionId,
        JoinCodeError::BadEncoding("fp"),
    ] {
        assert!(e.to_string().contains("scan the QR code"), "{e}");
    }
}

#[test]
fn debug_does_not_show_the_token() {
    let c = code("10.0.0.2:5000", "SECRET_TOKEN_VALUE");
    assert!(!format!("{c:?}").contains("SECRET_TOKEN_VALUE"));
}

#[test]
fn fingerprints_compare_case_insensitively() {
    let lower = FP.to_lowercase();
    assert!(fingerprints_match(FP, &lower));
    assert!(fingerprints_match(&FP.replace("sha-256", "SHA-256"), FP));
    assert!(fingerprints_match(&format!("  {FP} "), FP));
    assert!(!fingerprints_match(FP, &FP.replace("7F", "7E")));
    assert!(!fingerprints_match(FP, &FP.replace("sha-256", "sha-1")));
    assert!(!fingerprints_match(FP, ""));
    assert!(!fingerprints_match("", ""));

    assert_eq!(normalize_fingerprint(&lower).as_deref(), Some(FP));
    let bytes = parse_sha256_fingerprint(FP).expect("parses");
    assert_eq!((bytes[0], bytes[31]), (0x5B, 0x7F));
}
