//! The fuzz targets and their corpora.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use maestral_net::joincode::JoinCode;
use maestral_net::pairing;
use maestral_net::rtc::{self, sdp::Sdp};
use maestral_net::signaling::{JoinRequestBody, looks_like_offer};
use maestral_protocol::{DeviceId, SessionId, decode};
use maestral_sync::{Engine, EngineConfig, LinkSignal, LocalAction, Output, Role};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::Target;

/// Every target, in report order.
pub fn all_targets() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(Decoder),
        Box::new(Engines::new()),
        Box::new(JoinCodes),
        Box::new(PairingCodes::new()),
        Box::new(JoinBody),
        Box::new(SdpChecks),
        Box::new(PageQuery),
        Box::new(Refusals::new()),
    ]
}

const T0: u64 = 1_735_689_600_000;
const SONG: &str = "4f6a3c8e8f0f8c41f0d7a4b1b8e7a2d9c3f2b1a0e9d8c7b6a5f4e3d2c1b0a9f8";

/// Envelopes of every message type, as peers of each role send them.
fn messages() -> Vec<Vec<u8>> {
    let env = |session: &str, sender: &str, kind: &str, payload: &str| {
        format!(
            r#"{{"v":1,"session_id":"{session}","sender_id":"{sender}","type":"{kind}","ts":{T0},"payload":{payload}}}"#
        )
        .into_bytes()
    };
    let song = format!(r#"{{"song_id":"{SONG}","song_epoch":2}}"#);
    vec![
        env(
            "S",
            "F",
            "HELLO",
            r#"{"mode":"choir_follower","device_name":"alto 2","app_version":"0.1.0","capabilities":["stream"]}"#,
        ),
        env(
            "S",
            "F",
            "JOIN_REQUEST",
            r#"{"session_token":"tok","follow_mode":"follow","song_epoch":0}"#,
        ),
        env("S", "F", "SET_FOLLOW_MODE", r#"{"mode":"free"}"#),
        env("S", "F", "SHOWING", &format!(r#"{{"song_id":"{SONG}","page_index":3}}"#)),
        env("S", "F", "LEAVE_SESSION", "{}"),
        env(
            "S",
            "M",
            "JOIN_ACCEPT",
            &format!(
                r#"{{"snapshot":{{"session_id":"S","song_id":"{SONG}","song_epoch":2,"page_index":4,"page_revision":7}}}}"#
            ),
        ),
        env("S", "M", "JOIN_REJECT", r#"{"reason":"invalid_token"}"#),
        env("S", "M", "SESSION_END", "{}"),
        env(
            "S",
            "M",
            "STATE_SNAPSHOT",
            &format!(
                r#"{{"session_id":"S","song_id":"{SONG}","song_epoch":3,"page_index":1,"page_revision":1}}"#
            ),
        ),
        env("S", "M", "SET_SONG", &song),
        env("S", "M", "SET_PAGE", r#"{"song_epoch":2,"page_revision":9,"page_index":5}"#),
        env(
            "S",
            "M",
            "STREAM_PREPARE",
            &format!(
                r#"{{"song_id":"{SONG}","song_epoch":2,"size_bytes":20000000,"sha256":"{SONG}","channel":"maestral-stream","title":"Lanterns"}}"#
            ),
        ),
        env("S", "M", "STREAM_CLEAR", r#"{"song_id":null}"#),
        env("", "B", "SET_SONG", &format!(r#"{{"song_id":"{SONG}"}}"#)),
        env("", "B", "SET_PAGE", &format!(r#"{{"song_id":"{SONG}","page_index":6}}"#)),
        env("", "B", "SET_LAYOUT_PARITY", r#"{"leader_device_id":"B","parity":"even"}"#),
        env(
            "",
            "B",
            "STATE_SNAPSHOT",
            &format!(
                r#"{{"song_id":"{SONG}","page_index":2,"layout":{{"leader_device_id":"A","parity":"odd"}},"last_page_change":{{"sender_id":"B","ts":{T0}}},"last_layout_change":{{"sender_id":"A","ts":5}}}}"#
            ),
        ),
        env("", "B", "PAIR_INFO", r#"{"key":"a2V5","listen":"127.0.0.1:47000","name":"piano"}"#),
        env("S", "F", "FUTURE_THING", r#"{"x":[1,2,{"y":null}]}"#),
    ]
}

// ---- the decoder ---------------------------------------------------------------------------

struct Decoder;

impl Target for Decoder {
    fn name(&self) -> &'static str {
        "decoder"
    }

    fn corpus(&self) -> Vec<Vec<u8>> {
        messages()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        let Ok(env) = decode(input) else { return false };
        // What we decode, we encode back to the same message.
        let again = decode(env.encode().as_bytes());
        assert_eq!(again.as_ref(), Ok(&env), "a decoded message does not encode back to itself");
        true
    }
}

// ---- the engines -----------------------------------------------------------------------------

/// A Master with a Follower "F" joined, a Follower joined to "M", a Solo device paired with
/// "B": each gets the input from that peer. A refused input must change nothing.
struct Engines {
    master: Engine,
    follower: Engine,
    solo: Engine,
    now: u64,
    /// Inputs since the engines were made: they start again now and then, so an input that
    /// ended a session does not leave every later one talking to an idle engine.
    fed: u32,
}

fn engine(name: &str, role: Role) -> Engine {
    let rng = ChaCha8Rng::seed_from_u64(name.len() as u64);
    Engine::new(EngineConfig::new(name), role, Box::new(rng))
}

fn drain(e: &mut Engine) -> Vec<String> {
    let mut sent = Vec::new();
    while let Some(o) = e.poll_output() {
        if let Output::Transmit { data, .. } = o {
            sent.push(data.to_string());
        }
    }
    sent
}

impl Engines {
    fn new() -> Engines {
        let now = T0;
        let (m, f, b) = (DeviceId::new("M"), DeviceId::new("F"), DeviceId::new("B"));
        let mut master = engine("M", Role::Master);
        let start = LocalAction::StartSession {
            session_id: Some(SessionId::new("S")),
            token: Some("tok".into()),
        };
        let _ = master.handle_local(now, start);
        let mut follower = engine("F", Role::Follower);
        let join = LocalAction::Join {
            master: m.clone(),
            session_id: SessionId::new("S"),
            token: "tok".into(),
        };
        let _ = follower.handle_local(now, join);
        master.handle_link(now, &f, LinkSignal::Up);
        follower.handle_link(now, &m, LinkSignal::Up);
        // The join, both ways, until quiet.
        for _ in 0..10 {
            let to_m = drain(&mut follower);
            let to_f = drain(&mut master);
            if to_m.is_empty() && to_f.is_empty() {
                break;
            }
            for t in to_m {
                let _ = master.handle_message(now, &f, t.as_bytes());
            }
            for t in to_f {
                let _ = follower.handle_message(now, &m, t.as_bytes());
            }
        }
        let _ = master.handle_local(now, LocalAction::SetSong { song_id: Some(SONG.into()) });
        drain(&mut master);
        let mut solo = engine("A", Role::Solo);
        solo.handle_link(now, &b, LinkSignal::Up);
        drain(&mut solo);
        Engines { master, follower, solo, now, fed: 0 }
    }

    fn observe(e: &Engine) -> String {
        format!("{:?}|{:?}|{:?}", e.state(), e.phase(), e.view())
    }
}

impl Target for Engines {
    fn name(&self) -> &'static str {
        "engine"
    }

    fn corpus(&self) -> Vec<Vec<u8>> {
        messages()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        self.fed += 1;
        if self.fed > 2_000 {
            self.reset();
        }
        self.now += 7;
        let now = self.now;
        let mut accepted = false;
        for (e, from) in [(&mut self.master, "F"), (&mut self.follower, "M"), (&mut self.solo, "B")]
        {
            let before = Self::observe(e);
            let r = e.handle_message(now, &DeviceId::new(from), input);
            e.handle_timeout(now);
            for out in drain(e) {
                assert!(
                    decode(out.as_bytes()).is_ok(),
                    "the engine sent a message it cannot decode"
                );
            }
            match r {
                Ok(()) => accepted = true,
                Err(err) => assert_eq!(
                    Self::observe(e),
                    before,
                    "a refused message ({err}) changed the state"
                ),
            }
        }
        accepted
    }

    fn reset(&mut self) {
        *self = Engines::new();
    }
}

// ---- join codes ------------------------------------------------------------------------------

struct JoinCodes;

impl Target for JoinCodes {
    fn name(&self) -> &'static str {
        "join-code"
    }

    fn corpus(&self) -> Vec<Vec<u8>> {
        let fp = format!("sha-256 {}", ["5B"; 32].join(":"));
        let host = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)), 47110);
        let code = JoinCode::new(host, "0123456789abcdef", "t0k-en_x", &fp)
            .map(|c| c.to_string())
            .unwrap_or_default();
        let v6 = JoinCode::new("[fe80::1]:9".parse().unwrap_or(host), "s", "t", &fp)
            .map(|c| c.to_string())
            .unwrap_or_default();
        vec![code.into_bytes(), v6.into_bytes()]
    }

    fn run(&mut self, input: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(input) else { return false };
        let Ok(code) = text.parse::<JoinCode>() else { return false };
        let printed = code.to_string();
        assert_eq!(printed.parse::<JoinCode>().as_ref(), Ok(&code), "a join code prints back");
        true
    }
}

// ---- Solo pairing codes ----------------------------------------------------------------------

struct PairingCodes {
    corpus: Vec<Vec<u8>>,
}

impl PairingCodes {
    fn new() -> PairingCodes {
        // Real codes: an offer and an answer made by the WebRTC stack.
        let corpus = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|rt| {
                rt.block_on(async {
                    let cfg = rtc::RtcConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
                    let (a, offer, _) = rtc::Link::offer(&cfg, None).await.ok()?;
                    let (b, answer, _) = rtc::Link::answer(&cfg, None, &offer).await.ok()?;
                    let codes = vec![
                        pairing::encode_offer(&offer).ok()?.into_bytes(),
                        pairing::encode_answer(&answer).ok()?.into_bytes(),
                        offer.into_bytes(),
                    ];
                    a.close().await;
                    b.close().await;
                    Some(codes)
                })
            })
            .unwrap_or_default();
        PairingCodes { corpus }
    }
}

impl Target for PairingCodes {
    fn name(&self) -> &'static str {
        "pairing-code"
    }

    fn corpus(&self) -> Vec<Vec<u8>> {
        self.corpus.clone()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(input) else { return false };
        let _ = pairing::code_kind(text);
        let mut accepted = false;
        for (decode, encode) in [
            (pairing::decode_offer as fn(&str) -> _, pairing::encode_offer as fn(&str) -> _),
            (pairing::decode_answer, pairing::encode_answer),
        ] {
            if let Ok(sdp) = decode(text) {
                accepted = true;
                // The SDP a code gives makes that code again.
                let code = encode(&sdp).expect("a decoded code's SDP encodes");
                assert_eq!(decode(&code).as_ref(), Ok(&sdp), "a pairing code round-trips");
            }
        }
        accepted
    }
}

// ---- the join request's HTTP body --------------------------------------------------------------

struct JoinBody;

impl Target for JoinBody {
    fn name(&self) -> &'static str {
        "join-body"
    }

    fn corpus(&self) -> Vec<Vec<u8>> {
        let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:actpass\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n";
        let body = serde_json::json!({
            "session_id": "0123456789abcdef", "token": "tok", "device_id": "alto-2", "offer": offer
        });
        vec![body.to_string().into_bytes()]
    }

    fn run(&mut self, input: &[u8]) -> bool {
        // What the listener does with a body before the sync thread sees it.
        let Ok(body) = serde_json::from_slice::<JoinRequestBody>(input) else { return false };
        DeviceId::is_valid(&body.device_id) && looks_like_offer(&body.offer)
    }
}

// ---- SDP ------------------------------------------------------------------------------------

struct SdpChecks;

impl Target for SdpChecks {
    fn name(&self) -> &'static str {
        "sdp"
    }

    fn corpus(&self) -> Vec<Vec<u8>> {
        PairingCodes::new().corpus.into_iter().skip(2).collect()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(input) else { return false };
        let sdp = Sdp::new(text);
        let _ = (sdp.looks_like_offer(), sdp.all_setup_actpass(), sdp.any_setup_actpass());
        let _ = rtc::sdp_fingerprints(text);
        let _ = rtc::sha256_fingerprint(text);
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let kept = rtc::keep_host_candidates(text, lo);
        let candidates = kept.lines().filter(|l| l.starts_with("a=candidate:")).count();
        assert!(candidates <= rtc::sdp::MAX_REMOTE_CANDIDATES, "{candidates} candidates kept");
        // What the listener keeps of an offer from 127.0.0.1: candidates at that address only.
        let from = rtc::only_candidates_from(text, lo);
        for line in from.lines().filter_map(|l| l.strip_prefix("a=candidate:")) {
            for fields in
                [line.split(' ').collect::<Vec<_>>(), line.split_ascii_whitespace().collect()]
            {
                let address = fields.get(4).and_then(|a| a.parse::<IpAddr>().ok());
                assert_eq!(address, Some(lo), "a candidate elsewhere kept: {line}");
            }
        }
        // The WebRTC stack's own parse, as `Link::answer` runs it before binding a socket.
        rtc::check_offer(text, lo).is_ok()
    }
}

// ---- the page image request's query -----------------------------------------------------------

struct PageQuery;

impl Target for PageQuery {
    fn name(&self) -> &'static str {
        "page-query"
    }

    fn corpus(&self) -> Vec<Vec<u8>> {
        [
            format!("song={SONG}&page=2&width=1080"),
            "width=100000&page=0&song=abc".to_owned(),
            "song=a%20b&page=4294967295&width=1&extra=x".to_owned(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        use maestral_net::signaling::page::{MAX_WIDTH, MIN_WIDTH, parse_query};
        let Ok(text) = std::str::from_utf8(input) else { return false };
        let Some((song, _page, width)) = parse_query(text) else { return false };
        // What reaches the renderer is bounded whatever was asked.
        assert!(!song.is_empty() && song.len() <= 256, "a song id of {} bytes", song.len());
        assert!((MIN_WIDTH..=MAX_WIDTH).contains(&width) && width % 16 == 0, "width {width}");
        true
    }
}

// ---- signed refusals ------------------------------------------------------------------------

/// A `403` body as a Follower reads it (`{"reason", "cert", "sig"}`), checked against the code's
/// pinned fingerprint and the request the Follower sent. The corpus holds the Master's signed
/// `invalid_token` and `session_ended`. Property: whatever was changed, a refusal is believed only
/// with the pinned certificate and for a reason the Master signed (never `device_in_use`).
struct Refusals {
    master: rtc::DtlsCert,
    request: JoinRequestBody,
}

impl Refusals {
    fn new() -> Self {
        let master = rtc::DtlsCert::generate().expect("a certificate");
        let singer = rtc::DtlsCert::generate().expect("a certificate");
        let request = JoinRequestBody {
            session_id: "0123456789abcdef".into(),
            token: maestral_protocol::SessionToken::new("tok"),
            device_id: "alto-2".into(),
            offer: format!("v=0\r\na=fingerprint:{}\r\n", singer.fingerprint()),
        };
        Refusals { master, request }
    }
}

impl Target for Refusals {
    fn name(&self) -> &'static str {
        "refusal"
    }

    fn corpus(&self) -> Vec<Vec<u8>> {
        use maestral_net::signaling::{RejectReason, proof::prove};
        [RejectReason::InvalidToken, RejectReason::SessionEnded]
            .into_iter()
            .filter_map(|r| {
                let p = prove(&self.master, r, &self.request)?;
                let body =
                    serde_json::json!({ "reason": r.as_str(), "cert": p.cert, "sig": p.sig });
                Some(body.to_string().into_bytes())
            })
            .collect()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        use maestral_net::signaling::RejectReason;
        use maestral_net::signaling::proof::{RefusalProof, verify};
        #[derive(serde::Deserialize)]
        struct Body {
            reason: String,
            #[serde(flatten)]
            proof: Option<RefusalProof>,
        }
        let Ok(body) = serde_json::from_slice::<Body>(input) else { return false };
        let reason = match body.reason.as_str() {
            "invalid_token" => RejectReason::InvalidToken,
            "session_ended" => RejectReason::SessionEnded,
            "device_in_use" => RejectReason::DeviceInUse,
            _ => return false,
        };
        let Some(proof) = body.proof else { return false };
        let believed = verify(self.master.fingerprint(), reason, &self.request, &proof);
        if believed {
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD.decode(&proof.cert);
            assert_eq!(
                der.ok().as_deref(),
                Some(self.master.der()),
                "believed another certificate"
            );
            assert_ne!(reason, RejectReason::DeviceInUse, "believed a reason never signed");
        }
        // Accepted: read far enough to be checked.
        true
    }
}
