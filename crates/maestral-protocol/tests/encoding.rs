//! `Envelope::encode` produces exactly the JSON text of `docs/protocol.md`: envelope fields in the
//! order `v, session_id, sender_id, type, ts, payload` (docs/protocol.md §2), payload fields in the
//! order of the payload table, no whitespace. Every expected text below is written by hand from the
//! table, not produced by the code under test. Each test also checks that the text decodes back to
//! the value.

use maestral_protocol::{
    ChoirSetPage, ChoirSetSong, ChoirSnapshot, DeviceId, Envelope, FollowMode, Hello, JoinAccept,
    JoinReject, JoinRequest, Layout, Message, Mode, PageChangeStamp, PageRevision, PairInfo,
    Parity, RejectReason, SessionId, SetFollowMode, SoloSetPage, SoloSetSong, SoloState, SongEpoch,
    SongId, StreamClear, StreamPrepare, decode,
};

const TS: u64 = 1_735_689_600_000;

fn env(session: &str, sender: &str, message: Message) -> Envelope {
    Envelope::new(SessionId::from(session), DeviceId::from(sender), TS, message)
}

/// `encode()` equals `expected` byte for byte, and `expected` decodes back to `e`.
#[track_caller]
fn assert_wire(e: &Envelope, expected: &str) {
    assert_eq!(e.encode(), expected);
    assert_eq!(decode(expected.as_bytes()).as_ref(), Ok(e));
}

fn choir_snapshot(song_id: Option<&str>) -> ChoirSnapshot {
    ChoirSnapshot {
        session_id: SessionId::from("S1"),
        song_id: song_id.map(SongId::from),
        song_epoch: SongEpoch(3),
        page_index: 7,
        page_revision: PageRevision(12),
    }
}

#[test]
fn hello_encodes_exactly_as_documented() {
    let e = env(
        "S1",
        "dev-a",
        Message::Hello(Hello {
            mode: Mode::ChoirMaster,
            device_name: "Piano".into(),
            app_version: "0.1.0".into(),
            capabilities: vec!["stream".into(), "x".into()],
        }),
    );
    assert_wire(
        &e,
        r#"{"v":1,"session_id":"S1","sender_id":"dev-a","type":"HELLO","ts":1735689600000,"payload":{"mode":"choir_master","device_name":"Piano","app_version":"0.1.0","capabilities":["stream","x"]}}"#,
    );
}

#[test]
fn hello_encodes_every_mode_and_empty_capabilities() {
    for (mode, text) in [
        (Mode::Solo, "solo"),
        (Mode::ChoirMaster, "choir_master"),
        (Mode::ChoirFollower, "choir_follower"),
    ] {
        let e = env(
            "",
            "d",
            Message::Hello(Hello {
                mode,
                device_name: String::new(),
                app_version: "1".into(),
                capabilities: vec![],
            }),
        );
        let expected = format!(
            r#"{{"v":1,"session_id":"","sender_id":"d","type":"HELLO","ts":1735689600000,"payload":{{"mode":"{text}","device_name":"","app_version":"1","capabilities":[]}}}}"#
        );
        assert_wire(&e, &expected);
    }
}

#[test]
fn join_request_encodes_exactly_as_documented() {
    let e = env(
        "S1",
        "F1",
        Message::JoinRequest(JoinRequest {
            session_token: "tok_-9".into(),
            follow_mode: FollowMode::Free,
            song_epoch: SongEpoch(0),
        }),
    );
    assert_wire(
        &e,
        r#"{"v":1,"session_id":"S1","sender_id":"F1","type":"JOIN_REQUEST","ts":1735689600000,"payload":{"session_token":"tok_-9","follow_mode":"free","song_epoch":0}}"#,
    );
    let e = env(
        "S1",
        "F1",
        Message::JoinRequest(JoinRequest {
            session_token: "t".into(),
            follow_mode: FollowMode::Follow,
            song_epoch: SongEpoch(u64::MAX),
        }),
    );
    assert_wire(
        &e,
        r#"{"v":1,"session_id":"S1","sender_id":"F1","type":"JOIN_REQUEST","ts":1735689600000,"payload":{"session_token":"t","follow_mode":"follow","song_epoch":18446744073709551615}}"#,
    );
}

#[test]
fn join_accept_encodes_exactly_as_documented() {
    let e = env(
        "S1",
        "M",
        Message::JoinAccept(JoinAccept { snapshot: choir_snapshot(Some("abc123")) }),
    );
    assert_wire(
        &e,
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"JOIN_ACCEPT","ts":1735689600000,"payload":{"snapshot":{"session_id":"S1","song_id":"abc123","song_epoch":3,"page_index":7,"page_revision":12}}}"#,
    );
    let e = env("S1", "M", Message::JoinAccept(JoinAccept { snapshot: choir_snapshot(None) }));
    assert_wire(
        &e,
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"JOIN_ACCEPT","ts":1735689600000,"payload":{"snapshot":{"session_id":"S1","song_id":null,"song_epoch":3,"page_index":7,"page_revision":12}}}"#,
    );
}

#[test]
fn join_reject_encodes_exactly_as_documented() {
    for (reason, text) in [
        (RejectReason::InvalidToken, "invalid_token"),
        (RejectReason::SessionEnded, "session_ended"),
        (RejectReason::VersionMismatch, "version_mismatch"),
    ] {
        let e = env("S1", "M", Message::JoinReject(JoinReject { reason }));
        let expected = format!(
            r#"{{"v":1,"session_id":"S1","sender_id":"M","type":"JOIN_REJECT","ts":1735689600000,"payload":{{"reason":"{text}"}}}}"#
        );
        assert_wire(&e, &expected);
    }
}

#[test]
fn leave_session_encodes_exactly_as_documented() {
    assert_wire(
        &env("S1", "F1", Message::LeaveSession),
        r#"{"v":1,"session_id":"S1","sender_id":"F1","type":"LEAVE_SESSION","ts":1735689600000,"payload":{}}"#,
    );
}

#[test]
fn session_end_encodes_exactly_as_documented() {
    assert_wire(
        &env("S1", "M", Message::SessionEnd),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"SESSION_END","ts":1735689600000,"payload":{}}"#,
    );
}

#[test]
fn choir_state_snapshot_encodes_exactly_as_documented() {
    assert_wire(
        &env("S1", "M", Message::ChoirSnapshot(choir_snapshot(Some("song")))),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"STATE_SNAPSHOT","ts":1735689600000,"payload":{"session_id":"S1","song_id":"song","song_epoch":3,"page_index":7,"page_revision":12}}"#,
    );
    assert_wire(
        &env("S1", "M", Message::ChoirSnapshot(choir_snapshot(None))),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"STATE_SNAPSHOT","ts":1735689600000,"payload":{"session_id":"S1","song_id":null,"song_epoch":3,"page_index":7,"page_revision":12}}"#,
    );
}

#[test]
fn solo_state_snapshot_encodes_exactly_as_documented() {
    let state = SoloState {
        song_id: Some(SongId::from("s")),
        page_index: 4,
        layout: Layout { leader_device_id: DeviceId::from("A"), parity: Parity::Even },
        last_page_change: PageChangeStamp { sender_id: DeviceId::from("B"), ts: 42 },
        last_layout_change: PageChangeStamp { sender_id: DeviceId::from("A"), ts: 40 },
    };
    assert_wire(
        &env("", "A", Message::SoloSnapshot(state)),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"STATE_SNAPSHOT","ts":1735689600000,"payload":{"song_id":"s","page_index":4,"layout":{"leader_device_id":"A","parity":"even"},"last_page_change":{"sender_id":"B","ts":42},"last_layout_change":{"sender_id":"A","ts":40}}}"#,
    );
    let state = SoloState {
        song_id: None,
        page_index: 0,
        layout: Layout { leader_device_id: DeviceId::from("A"), parity: Parity::Odd },
        last_page_change: PageChangeStamp { sender_id: DeviceId::from(""), ts: 0 },
        last_layout_change: PageChangeStamp::default(),
    };
    assert_wire(
        &env("", "A", Message::SoloSnapshot(state)),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"STATE_SNAPSHOT","ts":1735689600000,"payload":{"song_id":null,"page_index":0,"layout":{"leader_device_id":"A","parity":"odd"},"last_page_change":{"sender_id":"","ts":0},"last_layout_change":{"sender_id":"","ts":0}}}"#,
    );
}

#[test]
fn choir_set_song_encodes_exactly_as_documented() {
    assert_wire(
        &env(
            "S1",
            "M",
            Message::ChoirSetSong(ChoirSetSong {
                song_id: Some(SongId::from("e3b0c442")),
                song_epoch: SongEpoch(4),
            }),
        ),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"SET_SONG","ts":1735689600000,"payload":{"song_id":"e3b0c442","song_epoch":4}}"#,
    );
    assert_wire(
        &env(
            "S1",
            "M",
            Message::ChoirSetSong(ChoirSetSong { song_id: None, song_epoch: SongEpoch(5) }),
        ),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"SET_SONG","ts":1735689600000,"payload":{"song_id":null,"song_epoch":5}}"#,
    );
}

#[test]
fn solo_set_song_encodes_exactly_as_documented() {
    assert_wire(
        &env("", "A", Message::SoloSetSong(SoloSetSong { song_id: Some(SongId::from("x")) })),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"SET_SONG","ts":1735689600000,"payload":{"song_id":"x"}}"#,
    );
    assert_wire(
        &env("", "A", Message::SoloSetSong(SoloSetSong { song_id: None })),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"SET_SONG","ts":1735689600000,"payload":{"song_id":null}}"#,
    );
}

#[test]
fn choir_set_page_encodes_exactly_as_documented() {
    assert_wire(
        &env(
            "S1",
            "M",
            Message::ChoirSetPage(ChoirSetPage {
                song_epoch: SongEpoch(2),
                page_revision: PageRevision(9),
                page_index: 3,
            }),
        ),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"SET_PAGE","ts":1735689600000,"payload":{"song_epoch":2,"page_revision":9,"page_index":3}}"#,
    );
    assert_wire(
        &env(
            "S1",
            "M",
            Message::ChoirSetPage(ChoirSetPage {
                song_epoch: SongEpoch(u64::MAX),
                page_revision: PageRevision(u64::MAX),
                page_index: u32::MAX,
            }),
        ),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"SET_PAGE","ts":1735689600000,"payload":{"song_epoch":18446744073709551615,"page_revision":18446744073709551615,"page_index":4294967295}}"#,
    );
}

#[test]
fn solo_set_page_encodes_exactly_as_documented() {
    assert_wire(
        &env(
            "",
            "A",
            Message::SoloSetPage(SoloSetPage { song_id: Some(SongId::from("x")), page_index: 6 }),
        ),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"SET_PAGE","ts":1735689600000,"payload":{"song_id":"x","page_index":6}}"#,
    );
    assert_wire(
        &env("", "A", Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 0 })),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"SET_PAGE","ts":1735689600000,"payload":{"song_id":null,"page_index":0}}"#,
    );
}

#[test]
fn set_layout_parity_encodes_exactly_as_documented() {
    assert_wire(
        &env(
            "",
            "A",
            Message::SetLayoutParity(Layout {
                leader_device_id: DeviceId::from("B"),
                parity: Parity::Odd,
            }),
        ),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"SET_LAYOUT_PARITY","ts":1735689600000,"payload":{"leader_device_id":"B","parity":"odd"}}"#,
    );
    assert_wire(
        &env(
            "",
            "A",
            Message::SetLayoutParity(Layout {
                leader_device_id: DeviceId::from("A"),
                parity: Parity::Even,
            }),
        ),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"SET_LAYOUT_PARITY","ts":1735689600000,"payload":{"leader_device_id":"A","parity":"even"}}"#,
    );
}

#[test]
fn set_follow_mode_encodes_exactly_as_documented() {
    assert_wire(
        &env("S1", "F1", Message::SetFollowMode(SetFollowMode { mode: FollowMode::Follow })),
        r#"{"v":1,"session_id":"S1","sender_id":"F1","type":"SET_FOLLOW_MODE","ts":1735689600000,"payload":{"mode":"follow"}}"#,
    );
    assert_wire(
        &env("S1", "F1", Message::SetFollowMode(SetFollowMode { mode: FollowMode::Free })),
        r#"{"v":1,"session_id":"S1","sender_id":"F1","type":"SET_FOLLOW_MODE","ts":1735689600000,"payload":{"mode":"free"}}"#,
    );
}

#[test]
fn stream_prepare_encodes_exactly_as_documented() {
    let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let e = env(
        "S1",
        "M",
        Message::StreamPrepare(StreamPrepare {
            song_id: SongId::from(sha),
            song_epoch: SongEpoch(2),
            size_bytes: 1_048_576,
            sha256: sha.into(),
            channel: "maestral-stream-2".into(),
            title: None,
            next: false,
        }),
    );
    let expected = format!(
        r#"{{"v":1,"session_id":"S1","sender_id":"M","type":"STREAM_PREPARE","ts":1735689600000,"payload":{{"song_id":"{sha}","song_epoch":2,"size_bytes":1048576,"sha256":"{sha}","channel":"maestral-stream-2"}}}}"#
    );
    assert_wire(&e, &expected);
    // The next piece, offered ahead: `"next": true` last; `false` is never written.
    let Message::StreamPrepare(mut next) = e.message.clone() else { unreachable!() };
    next.next = true;
    let e = env("S1", "M", Message::StreamPrepare(next));
    let expected =
        expected.replace(r#""maestral-stream-2"}"#, r#""maestral-stream-2","next":true}"#);
    assert_wire(&e, &expected);
    // `false` written by another writer reads as absent; anything but a boolean is refused.
    let written_false = expected.replace(r#""next":true"#, r#""next":false"#);
    let Ok(read) = decode(written_false.as_bytes()) else { panic!("{written_false}") };
    assert!(matches!(read.message, Message::StreamPrepare(StreamPrepare { next: false, .. })));
    for bad in ["null", "1", r#""yes""#] {
        let text = expected.replace(r#""next":true"#, &format!(r#""next":{bad}"#));
        assert!(decode(text.as_bytes()).is_err(), "{text}");
    }
}

#[test]
fn stream_clear_encodes_exactly_as_documented() {
    assert_wire(
        &env("S1", "M", Message::StreamClear(StreamClear { song_id: Some(SongId::from("x")) })),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"STREAM_CLEAR","ts":1735689600000,"payload":{"song_id":"x"}}"#,
    );
    assert_wire(
        &env("S1", "M", Message::StreamClear(StreamClear { song_id: None })),
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"STREAM_CLEAR","ts":1735689600000,"payload":{"song_id":null}}"#,
    );
}

#[test]
fn pair_info_encodes_exactly_as_documented() {
    let info = PairInfo { host: "192.168.1.20:40123".into(), proof_key: "k3y".into() };
    assert_wire(
        &env("", "A", Message::PairInfo(info)),
        r#"{"v":1,"session_id":"","sender_id":"A","type":"PAIR_INFO","ts":1735689600000,"payload":{"host":"192.168.1.20:40123","proof_key":"k3y"}}"#,
    );
}

#[test]
fn pair_info_debug_redacts_the_key() {
    let info = PairInfo { host: "10.0.0.1:1".into(), proof_key: "secret-key".into() };
    let shown = format!("{info:?}");
    assert!(shown.contains("10.0.0.1:1") && !shown.contains("secret-key"), "{shown}");
}

#[test]
fn unknown_type_encodes_with_empty_payload() {
    let e = env("S1", "M", Message::Unknown { message_type: "FUTURE_THING".into() });
    assert_wire(
        &e,
        r#"{"v":1,"session_id":"S1","sender_id":"M","type":"FUTURE_THING","ts":1735689600000,"payload":{}}"#,
    );
}

#[test]
fn envelope_edge_values_encode_exactly() {
    // ts 0 and u64::MAX; strings that need JSON escaping (quote, backslash, control, non-ASCII).
    let e = Envelope::new(
        SessionId::from("a\"b\\c"),
        DeviceId::from("é\u{1}\n"),
        u64::MAX,
        Message::SessionEnd,
    );
    assert_wire(
        &e,
        r#"{"v":1,"session_id":"a\"b\\c","sender_id":"é\u0001\n","type":"SESSION_END","ts":18446744073709551615,"payload":{}}"#,
    );
    let e = Envelope::new(SessionId::from(""), DeviceId::from(""), 0, Message::LeaveSession);
    assert_wire(
        &e,
        r#"{"v":1,"session_id":"","sender_id":"","type":"LEAVE_SESSION","ts":0,"payload":{}}"#,
    );
}

#[test]
fn envelope_type_matches_type_name() {
    let cases: Vec<(Message, &str)> = vec![
        (Message::LeaveSession, "LEAVE_SESSION"),
        (Message::SessionEnd, "SESSION_END"),
        (Message::ChoirSnapshot(choir_snapshot(None)), "STATE_SNAPSHOT"),
        (Message::SoloSetSong(SoloSetSong { song_id: None }), "SET_SONG"),
        (
            Message::ChoirSetSong(ChoirSetSong { song_id: None, song_epoch: SongEpoch(1) }),
            "SET_SONG",
        ),
        (Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 1 }), "SET_PAGE"),
        (
            Message::ChoirSetPage(ChoirSetPage {
                song_epoch: SongEpoch(1),
                page_revision: PageRevision(1),
                page_index: 1,
            }),
            "SET_PAGE",
        ),
    ];
    for (m, name) in cases {
        assert_eq!(m.type_name(), name);
        let text = env("S", "D", m).encode();
        assert!(text.contains(&format!(r#""type":"{name}""#)), "{text}");
    }
}

#[test]
fn a_session_token_travels_as_text_but_never_shows_in_debug_output() {
    let token = maestral_protocol::SessionToken::new("s3cr3t-token");
    let request = JoinRequest {
        session_token: token.clone(),
        follow_mode: FollowMode::Follow,
        song_epoch: SongEpoch(0),
    };
    let debug = format!("{request:?}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    assert_eq!(token.expose(), "s3cr3t-token");
    assert_eq!(serde_json::to_string(&token).expect("serialises"), r#""s3cr3t-token""#);
    assert_eq!(token, "s3cr3t-token".into());
    assert_ne!(token, "s3cr3t-tokeN".into());
    assert_ne!(token, "s3cr3t".into());
}
