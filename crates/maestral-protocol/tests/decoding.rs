//! `decode` rejects everything docs/protocol.md §2 says a receiver rejects, each with its own
//! `DecodeError`, accepts what it says must be accepted (unknown fields, unknown types, `null`
//! song ids) and tells the Choir and Solo forms of one `type` apart by their fields.

use maestral_protocol::{
    ChoirSetPage, ChoirSetSong, ChoirSnapshot, DecodeError, DeviceId, Envelope, FollowMode,
    JoinReject, JoinRequest, MAX_MESSAGE_BYTES, Message, PageChangeStamp, PageRevision,
    RejectReason, SessionId, SoloSetPage, SoloSetSong, SongEpoch, SongId, decode,
};

fn dec(text: &str) -> Result<Envelope, DecodeError> {
    decode(text.as_bytes())
}

/// A JSON object with these fields, in this order (values are JSON text).
fn object(fields: &[(&str, &str)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

/// The envelope fields of a valid message of type `ty` with this payload text.
fn envelope_fields<'a>(ty: &'a str, payload: &'a str) -> Vec<(&'a str, String)> {
    vec![
        ("v", "1".to_owned()),
        ("session_id", "\"S\"".to_owned()),
        ("sender_id", "\"M\"".to_owned()),
        ("type", format!("\"{ty}\"")),
        ("ts", "5".to_owned()),
        ("payload", payload.to_owned()),
    ]
}

fn envelope_with(fields: &[(&str, String)]) -> String {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    object(&pairs)
}

/// A valid envelope around `payload`.
fn wire(ty: &str, payload: &str) -> String {
    envelope_with(&envelope_fields(ty, payload))
}

/// The envelope of `wire` with one field's value replaced.
fn wire_with(field: &str, value: &str) -> String {
    let mut fields = envelope_fields("SET_FOLLOW_MODE", r#"{"mode":"free"}"#);
    for f in &mut fields {
        if f.0 == field {
            f.1 = value.to_owned();
        }
    }
    envelope_with(&fields)
}

fn message(text: &str) -> Message {
    match dec(text) {
        Ok(e) => e.message,
        Err(err) => panic!("{text}\nshould decode, got {err:?}"),
    }
}

#[track_caller]
fn assert_missing(text: &str, field: &str) {
    match dec(text) {
        Err(DecodeError::MissingField { field: f }) if f == field => {}
        other => panic!("{text}\nexpected MissingField {{ {field} }}, got {other:?}"),
    }
}

#[track_caller]
fn assert_wrong_type(text: &str, field: &str) {
    match dec(text) {
        Err(DecodeError::WrongType { field: f, .. }) if f == field => {}
        other => panic!("{text}\nexpected WrongType {{ {field} }}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_json(bytes: &[u8]) {
    match decode(bytes) {
        Err(DecodeError::NotJson { .. }) => {}
        other => panic!("{:?}\nexpected NotJson, got {other:?}", String::from_utf8_lossy(bytes)),
    }
}

// ---- size ------------------------------------------------------------------------------------

/// A valid message padded with trailing spaces to exactly `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let mut bytes = wire("SET_FOLLOW_MODE", r#"{"mode":"free"}"#).into_bytes();
    assert!(bytes.len() <= len);
    bytes.resize(len, b' ');
    bytes
}

#[test]
fn over_64_kib_is_too_large() {
    assert_eq!(MAX_MESSAGE_BYTES, 65_536);
    let bytes = padded(65_537);
    assert_eq!(decode(&bytes), Err(DecodeError::TooLarge { len: 65_537 }));
    // Rejected unread: even bytes that are not JSON at all.
    let junk = vec![0xffu8; 1_000_000];
    assert_eq!(decode(&junk), Err(DecodeError::TooLarge { len: 1_000_000 }));
}

#[test]
fn exactly_64_kib_is_not_too_large() {
    let bytes = padded(65_536);
    assert_eq!(bytes.len(), 65_536);
    let env = decode(&bytes).expect("64 KiB of valid JSON decodes");
    assert_eq!(
        env.message,
        Message::SetFollowMode(maestral_protocol::SetFollowMode { mode: FollowMode::Free })
    );
    // A large but legal string field.
    let name = "n".repeat(60_000);
    let text = wire(
        "HELLO",
        &format!(r#"{{"mode":"solo","device_name":"{name}","app_version":"1","capabilities":[]}}"#),
    );
    assert!(text.len() <= MAX_MESSAGE_BYTES);
    assert!(matches!(message(&text), Message::Hello(h) if h.device_name == name));
}

// ---- not JSON / not an object ----------------------------------------------------------------

#[test]
fn text_that_is_not_json_is_not_json() {
    assert_not_json(b"");
    assert_not_json(b"   \n\t ");
    assert_not_json(b"hello");
    assert_not_json(b"{");
    assert_not_json(b"{\"v\":1,");
    assert_not_json(b"{'v':1}");
    assert_not_json(b"[1,2");
    assert_not_json(b"{\"v\":1}{\"v\":1}");
    assert_not_json(b"{\"v\":1} x");
    let text = wire("SET_FOLLOW_MODE", r#"{"mode":"free"}"#);
    assert_not_json(&text.as_bytes()[..text.len() - 1]);
}

#[test]
fn invalid_utf8_is_not_json() {
    assert_not_json(&[0xff, 0xfe, 0xfd]);
    assert_not_json(&[0xc3]);
    // A valid envelope whose `sender_id` holds a byte that is not UTF-8.
    let mut bytes = wire("SET_FOLLOW_MODE", r#"{"mode":"free"}"#).into_bytes();
    let at = bytes.iter().position(|b| *b == b'M').expect("sender id");
    bytes[at] = 0xff;
    assert_not_json(&bytes);
    // A lone surrogate escape is valid JSON syntax but no string: rejected, whichever way.
    let text = wire("SET_FOLLOW_MODE", r#"{"mode":"free"}"#).replace("\"M\"", "\"\\ud800\"");
    assert!(matches!(
        dec(&text),
        Err(DecodeError::NotJson { .. } | DecodeError::WrongType { field: "sender_id", .. })
    ));
    // An overlong encoding is not UTF-8.
    let mut bytes = wire("SET_FOLLOW_MODE", r#"{"mode":"free"}"#).into_bytes();
    let at = bytes.iter().position(|b| *b == b'M').expect("sender id");
    bytes.splice(at..=at, [0xc0, 0xaf]);
    assert_not_json(&bytes);
}

#[test]
fn json_that_is_not_an_object_is_not_an_object() {
    for text in ["[1,2]", "[]", "\"x\"", "null", "42", "true", " [ ] ", r#"[{"v":1}]"#] {
        assert_eq!(dec(text), Err(DecodeError::NotAnObject), "{text}");
    }
    // An array holding a whole envelope, field by field, is still not an object.
    let text = r#"[1,"S","M","SET_PAGE",5,{"song_epoch":1,"page_revision":2,"page_index":3}]"#;
    assert_eq!(dec(text), Err(DecodeError::NotAnObject));
}

#[test]
fn whitespace_around_and_inside_is_fine() {
    let text = " \n\t{ \"v\" : 1 , \"session_id\" : \"S\" , \"sender_id\" : \"M\" , \"type\" : \"SET_FOLLOW_MODE\" , \"ts\" : 5 , \"payload\" : { \"mode\" : \"follow\" } }\r\n ";
    assert!(matches!(message(text), Message::SetFollowMode(_)));
}

// ---- the envelope ----------------------------------------------------------------------------

#[test]
fn each_missing_envelope_field_is_missing_field() {
    for name in ["v", "session_id", "sender_id", "type", "ts", "payload"] {
        let mut fields = envelope_fields("SET_FOLLOW_MODE", r#"{"mode":"free"}"#);
        fields.retain(|(k, _)| *k != name);
        assert_missing(&envelope_with(&fields), name);
    }
    assert_missing("{}", "v");
    // The first missing field is reported, in envelope order.
    assert_missing(r#"{"v":1,"ts":5}"#, "session_id");
}

#[test]
fn mistyped_envelope_fields_are_wrong_type() {
    for (field, value) in [
        ("ts", "\"1\""),
        ("ts", "-1"),
        ("ts", "1.5"),
        ("ts", "1e3"),
        ("ts", "18446744073709551616"),
        ("ts", "null"),
        ("v", "\"1\""),
        ("v", "-1"),
        ("v", "1.0"),
        ("v", "null"),
        ("v", "true"),
        ("sender_id", "5"),
        ("sender_id", "null"),
        ("sender_id", "[\"M\"]"),
        ("session_id", "{}"),
        ("session_id", "null"),
        ("type", "5"),
        ("type", "null"),
    ] {
        assert_wrong_type(&wire_with(field, value), field);
    }
}

#[test]
fn ts_takes_every_u64() {
    let env = dec(&wire_with("ts", "18446744073709551615")).expect("u64::MAX");
    assert_eq!(env.ts, u64::MAX);
    let env = dec(&wire_with("ts", "0")).expect("0");
    assert_eq!(env.ts, 0);
}

#[test]
fn repeated_envelope_field_is_rejected() {
    let text = r#"{"v":1,"v":1,"session_id":"S","sender_id":"M","type":"LEAVE_SESSION","ts":5,"payload":{}}"#;
    assert_wrong_type(text, "v");
}

#[test]
fn other_versions_are_unsupported_and_carry_the_type() {
    let text = envelope_with(&[
        ("v", "2".to_owned()),
        ("session_id", "\"S\"".to_owned()),
        ("sender_id", "\"F\"".to_owned()),
        ("type", "\"JOIN_REQUEST\"".to_owned()),
        ("ts", "5".to_owned()),
        ("payload", r#"{"session_token":"t","follow_mode":"follow","song_epoch":0}"#.to_owned()),
    ]);
    assert_eq!(
        dec(&text),
        Err(DecodeError::UnsupportedVersion {
            version: "2".into(),
            message_type: Some("JOIN_REQUEST".into()),
            session_id: Some("S".into()),
        })
    );
    // A future version may change everything else: the version is checked first.
    assert_eq!(
        dec(r#"{"v":2,"type":"JOIN_REQUEST","payload":7}"#),
        Err(DecodeError::UnsupportedVersion {
            version: "2".into(),
            message_type: Some("JOIN_REQUEST".into()),
            session_id: None,
        })
    );
    assert_eq!(
        dec(r#"{"v":0}"#),
        Err(DecodeError::UnsupportedVersion {
            version: "0".into(),
            message_type: None,
            session_id: None,
        })
    );
    assert!(matches!(
        dec(r#"{"v":18446744073709551615,"type":5}"#),
        Err(DecodeError::UnsupportedVersion { message_type: None, .. })
    ));
}

#[test]
fn unknown_envelope_fields_are_ignored() {
    let text = r#"{"x":{"deep":[1,{"y":null}]},"v":1,"session_id":"S","sender_id":"M","type":"SET_FOLLOW_MODE","ts":5,"payload":{"mode":"free"},"v2_extension":"z"}"#;
    let env = dec(text).expect("unknown envelope fields are ignored");
    assert_eq!(env.session_id, SessionId::from("S"));
    assert_eq!(env.sender_id, DeviceId::from("M"));
    assert_eq!(env.ts, 5);
}

#[test]
fn envelope_fields_in_any_order() {
    let text = r#"{"payload":{"mode":"free"},"ts":5,"type":"SET_FOLLOW_MODE","sender_id":"M","session_id":"S","v":1}"#;
    assert!(matches!(message(text), Message::SetFollowMode(_)));
}

#[test]
fn escaped_strings_decode() {
    let text = wire_with("sender_id", r#""\u00e9\"\\\n\ud83c\udfb5""#);
    let env = dec(&text).expect("escapes");
    assert_eq!(env.sender_id.as_str(), "é\"\\\n🎵");
}

// ---- payloads: missing fields ----------------------------------------------------------------

/// Every known type with a complete, valid payload (fields in table order).
const FULL: &[(&str, &[(&str, &str)])] = &[
    (
        "HELLO",
        &[
            ("mode", "\"solo\""),
            ("device_name", "\"d\""),
            ("app_version", "\"1\""),
            ("capabilities", "[]"),
        ],
    ),
    (
        "JOIN_REQUEST",
        &[("session_token", "\"t\""), ("follow_mode", "\"follow\""), ("song_epoch", "0")],
    ),
    ("JOIN_REJECT", &[("reason", "\"invalid_token\"")]),
    (
        "STREAM_PREPARE",
        &[
            ("song_id", "\"s\""),
            ("song_epoch", "1"),
            ("size_bytes", "10"),
            ("sha256", "\"ab\""),
            ("channel", "\"c\""),
        ],
    ),
    ("STREAM_CLEAR", &[("song_id", "null")]),
    ("PAIR_INFO", &[("host", "\"10.0.0.1:9\""), ("proof_key", "\"k\"")]),
    ("SET_FOLLOW_MODE", &[("mode", "\"free\"")]),
    ("SET_LAYOUT_PARITY", &[("leader_device_id", "\"A\""), ("parity", "\"odd\"")]),
];

#[test]
fn each_missing_payload_field_is_missing_field() {
    for (ty, fields) in FULL {
        assert!(dec(&wire(ty, &object(fields))).is_ok(), "{ty} full payload decodes");
        for (name, _) in *fields {
            let rest: Vec<(&str, &str)> =
                fields.iter().copied().filter(|(k, _)| k != name).collect();
            assert_missing(&wire(ty, &object(&rest)), name);
        }
    }
}

#[test]
fn set_page_choir_without_page_revision_is_missing_field() {
    assert_missing(&wire("SET_PAGE", r#"{"song_epoch":1,"page_index":2}"#), "page_revision");
    assert_missing(&wire("SET_PAGE", r#"{"page_revision":1,"page_index":2}"#), "song_epoch");
    assert_missing(&wire("SET_PAGE", r#"{"song_epoch":1,"page_revision":2}"#), "page_index");
}

#[test]
fn set_page_solo_missing_fields_are_missing_field() {
    assert_missing(&wire("SET_PAGE", r#"{"page_index":2}"#), "song_id");
    assert_missing(&wire("SET_PAGE", r#"{"song_id":null}"#), "page_index");
    assert_missing(&wire("SET_PAGE", "{}"), "song_id");
}

#[test]
fn join_request_without_session_token_is_missing_field() {
    assert_missing(
        &wire("JOIN_REQUEST", r#"{"follow_mode":"follow","song_epoch":0}"#),
        "session_token",
    );
}

#[test]
fn set_song_without_song_id_is_missing_field_but_null_is_valid() {
    // Choir form (song_epoch present).
    assert_missing(&wire("SET_SONG", r#"{"song_epoch":3}"#), "song_id");
    assert_eq!(
        message(&wire("SET_SONG", r#"{"song_id":null,"song_epoch":3}"#)),
        Message::ChoirSetSong(ChoirSetSong { song_id: None, song_epoch: SongEpoch(3) })
    );
    // Solo form.
    assert_missing(&wire("SET_SONG", "{}"), "song_id");
    assert_eq!(
        message(&wire("SET_SONG", r#"{"song_id":null}"#)),
        Message::SoloSetSong(SoloSetSong { song_id: None })
    );
    // STREAM_CLEAR and snapshots too: null is "none", absent is an error.
    assert_missing(&wire("STREAM_CLEAR", "{}"), "song_id");
    assert_missing(
        &wire(
            "STATE_SNAPSHOT",
            r#"{"session_id":"S","song_epoch":1,"page_index":0,"page_revision":0}"#,
        ),
        "song_id",
    );
}

#[test]
fn join_accept_snapshot_missing_fields_are_missing_field() {
    let full: &[(&str, &str)] = &[
        ("session_id", "\"S\""),
        ("song_id", "null"),
        ("song_epoch", "1"),
        ("page_index", "0"),
        ("page_revision", "0"),
    ];
    assert!(dec(&wire("JOIN_ACCEPT", &object(&[("snapshot", &object(full))]))).is_ok());
    for (name, _) in full {
        let rest: Vec<(&str, &str)> = full.iter().copied().filter(|(k, _)| k != name).collect();
        assert_missing(&wire("JOIN_ACCEPT", &object(&[("snapshot", &object(&rest))])), name);
        // The same object as a Choir STATE_SNAPSHOT.
        assert_missing(&wire("STATE_SNAPSHOT", &object(&rest)), name);
    }
    assert_missing(&wire("JOIN_ACCEPT", "{}"), "snapshot");
}

#[test]
fn solo_snapshot_missing_fields_are_missing_field() {
    let layout = r#"{"leader_device_id":"A","parity":"odd"}"#;
    let stamp = r#"{"sender_id":"A","ts":1}"#;
    let full: &[(&str, &str)] = &[
        ("song_id", "null"),
        ("page_index", "0"),
        ("layout", layout),
        ("last_page_change", stamp),
    ];
    assert!(matches!(message(&wire("STATE_SNAPSHOT", &object(full))), Message::SoloSnapshot(_)));
    for (name, _) in full {
        let rest: Vec<(&str, &str)> = full.iter().copied().filter(|(k, _)| k != name).collect();
        assert_missing(&wire("STATE_SNAPSHOT", &object(&rest)), name);
    }
    // Inside the nested objects.
    let p = object(&[
        ("song_id", "null"),
        ("page_index", "0"),
        ("layout", r#"{"leader_device_id":"A"}"#),
        ("last_page_change", stamp),
    ]);
    assert_missing(&wire("STATE_SNAPSHOT", &p), "parity");
    let p = object(&[
        ("song_id", "null"),
        ("page_index", "0"),
        ("layout", layout),
        ("last_page_change", r#"{"sender_id":"A"}"#),
    ]);
    assert_missing(&wire("STATE_SNAPSHOT", &p), "ts");
}

// ---- payloads: wrong types and values --------------------------------------------------------

#[test]
fn mistyped_payload_fields_are_wrong_type() {
    for (ty, payload) in [
        ("SET_PAGE", r#"{"song_epoch":1,"page_revision":2,"page_index":"3"}"#),
        ("SET_PAGE", r#"{"song_epoch":-1,"page_revision":2,"page_index":3}"#),
        ("SET_PAGE", r#"{"song_epoch":1,"page_revision":2.5,"page_index":3}"#),
        ("SET_PAGE", r#"{"song_id":5,"page_index":3}"#),
        ("SET_PAGE", r#"{"song_id":"s","page_index":null}"#),
        ("SET_SONG", r#"{"song_id":["s"],"song_epoch":1}"#),
        ("SET_SONG", r#"{"song_id":"s","song_epoch":"1"}"#),
        // A null `song_epoch` is a mistyped Choir field, not a Solo `SET_SONG`.
        ("SET_SONG", r#"{"song_id":"s","song_epoch":null}"#),
        ("SET_PAGE", r#"{"song_id":"s","song_epoch":null,"page_revision":1,"page_index":0}"#),
        ("HELLO", r#"{"mode":"solo","device_name":null,"app_version":"1","capabilities":[]}"#),
        ("HELLO", r#"{"mode":"solo","device_name":"d","app_version":"1","capabilities":"x"}"#),
        ("HELLO", r#"{"mode":"solo","device_name":"d","app_version":"1","capabilities":[1]}"#),
        ("HELLO", r#"{"mode":5,"device_name":"d","app_version":"1","capabilities":[]}"#),
        ("JOIN_REQUEST", r#"{"session_token":1,"follow_mode":"follow","song_epoch":0}"#),
        (
            "STREAM_PREPARE",
            r#"{"song_id":"s","song_epoch":1,"size_bytes":1.5,"sha256":"a","channel":"c"}"#,
        ),
        (
            "STREAM_PREPARE",
            r#"{"song_id":null,"song_epoch":1,"size_bytes":1,"sha256":"a","channel":"c"}"#,
        ),
        ("STREAM_CLEAR", r#"{"song_id":false}"#),
        (
            "JOIN_ACCEPT",
            r#"{"snapshot":{"session_id":"S","song_id":null,"song_epoch":1,"page_index":0,"page_revision":"0"}}"#,
        ),
    ] {
        assert_wrong_type(&wire(ty, payload), "payload");
    }
}

#[test]
fn payload_that_is_not_an_object_is_wrong_type() {
    for ty in [
        "HELLO",
        "JOIN_REQUEST",
        "JOIN_ACCEPT",
        "JOIN_REJECT",
        "LEAVE_SESSION",
        "SESSION_END",
        "STATE_SNAPSHOT",
        "SET_SONG",
        "SET_PAGE",
        "SET_LAYOUT_PARITY",
        "SET_FOLLOW_MODE",
        "STREAM_PREPARE",
        "STREAM_CLEAR",
    ] {
        for payload in ["5", "null", "\"x\"", "[]", "true"] {
            assert_wrong_type(&wire(ty, payload), "payload");
        }
    }
    // Fields by position in an array are not an object either.
    assert_wrong_type(&wire("SET_PAGE", "[1,2,3]"), "payload");
    assert_wrong_type(&wire("SET_FOLLOW_MODE", "[\"free\"]"), "payload");
}

#[test]
fn nested_objects_that_are_not_objects_are_wrong_type() {
    assert_wrong_type(&wire("JOIN_ACCEPT", r#"{"snapshot":["S",null,1,2,3]}"#), "snapshot");
    assert_wrong_type(&wire("JOIN_ACCEPT", r#"{"snapshot":null}"#), "snapshot");
    assert_wrong_type(
        &wire(
            "STATE_SNAPSHOT",
            r#"{"song_id":null,"page_index":0,"layout":["A","odd"],"last_page_change":{"sender_id":"A","ts":1}}"#,
        ),
        "layout",
    );
    assert_wrong_type(
        &wire(
            "STATE_SNAPSHOT",
            r#"{"song_id":null,"page_index":0,"layout":{"leader_device_id":"A","parity":"odd"},"last_page_change":["A",1]}"#,
        ),
        "last_page_change",
    );
    assert_wrong_type(
        &wire(
            "STATE_SNAPSHOT",
            r#"{"song_id":null,"page_index":0,"layout":{"leader_device_id":"A","parity":"odd"},"last_page_change":{"sender_id":"A","ts":1},"last_layout_change":["A",1]}"#,
        ),
        "last_layout_change",
    );
}

#[test]
fn solo_snapshot_layout_stamp_is_optional_but_never_null() {
    let base = r#""song_id":null,"page_index":0,"layout":{"leader_device_id":"A","parity":"odd"},"last_page_change":{"sender_id":"A","ts":1}"#;
    // A peer that predates the layout register: its layout is older than any change.
    match message(&wire("STATE_SNAPSHOT", &format!("{{{base}}}"))) {
        Message::SoloSnapshot(s) => assert_eq!(s.last_layout_change, PageChangeStamp::default()),
        other => panic!("expected SoloSnapshot, got {other:?}"),
    }
    let with = format!(r#"{{{base},"last_layout_change":{{"sender_id":"B","ts":7}}}}"#);
    match message(&wire("STATE_SNAPSHOT", &with)) {
        Message::SoloSnapshot(s) => {
            assert_eq!(s.last_layout_change, PageChangeStamp { sender_id: "B".into(), ts: 7 })
        }
        other => panic!("expected SoloSnapshot, got {other:?}"),
    }
    let null = format!(r#"{{{base},"last_layout_change":null}}"#);
    assert!(dec(&wire("STATE_SNAPSHOT", &null)).is_err(), "null is not absent");
}

#[test]
fn repeated_payload_field_is_rejected() {
    assert_wrong_type(&wire("SET_FOLLOW_MODE", r#"{"mode":"free","mode":"follow"}"#), "payload");
}

#[test]
fn bad_enum_values_are_errors() {
    for (ty, payload) in [
        ("HELLO", r#"{"mode":"boss","device_name":"d","app_version":"1","capabilities":[]}"#),
        ("HELLO", r#"{"mode":"Solo","device_name":"d","app_version":"1","capabilities":[]}"#),
        ("SET_FOLLOW_MODE", r#"{"mode":"boss"}"#),
        ("SET_FOLLOW_MODE", r#"{"mode":"FOLLOW"}"#),
        ("SET_FOLLOW_MODE", r#"{"mode":""}"#),
        ("JOIN_REQUEST", r#"{"session_token":"t","follow_mode":"boss","song_epoch":0}"#),
        ("SET_LAYOUT_PARITY", r#"{"leader_device_id":"A","parity":"left"}"#),
        ("SET_LAYOUT_PARITY", r#"{"leader_device_id":"A","parity":1}"#),
        ("JOIN_REJECT", r#"{"reason":null}"#),
        (
            "STATE_SNAPSHOT",
            r#"{"song_id":null,"page_index":0,"layout":{"leader_device_id":"A","parity":"left"},"last_page_change":{"sender_id":"A","ts":1}}"#,
        ),
    ] {
        assert_wrong_type(&wire(ty, payload), "payload");
    }
}

#[test]
fn a_reject_reason_from_a_later_version_is_a_refusal_all_the_same() {
    let m = message(&wire("JOIN_REJECT", r#"{"reason":"room_full"}"#));
    assert_eq!(m, Message::JoinReject(JoinReject { reason: RejectReason::Other }));
}

#[test]
fn page_index_over_u32_is_an_error() {
    let max = u32::MAX;
    let over = u64::from(u32::MAX) + 1;
    let ok = message(&wire(
        "SET_PAGE",
        &format!(r#"{{"song_epoch":1,"page_revision":1,"page_index":{max}}}"#),
    ));
    assert!(matches!(ok, Message::ChoirSetPage(p) if p.page_index == u32::MAX));
    for payload in [
        format!(r#"{{"song_epoch":1,"page_revision":1,"page_index":{over}}}"#),
        format!(r#"{{"song_id":null,"page_index":{over}}}"#),
        format!(
            r#"{{"session_id":"S","song_id":null,"song_epoch":1,"page_index":{over},"page_revision":0}}"#
        ),
        r#"{"song_id":null,"page_index":-1}"#.to_owned(),
        r#"{"song_id":null,"page_index":1.0}"#.to_owned(),
    ] {
        let ty = if payload.contains("page_revision") && payload.contains("session_id") {
            "STATE_SNAPSHOT"
        } else {
            "SET_PAGE"
        };
        assert_wrong_type(&wire(ty, &payload), "payload");
    }
}

#[test]
fn u64_counters_take_every_u64_and_no_more() {
    let m = message(&wire(
        "SET_PAGE",
        r#"{"song_epoch":18446744073709551615,"page_revision":18446744073709551615,"page_index":0}"#,
    ));
    assert_eq!(
        m,
        Message::ChoirSetPage(ChoirSetPage {
            song_epoch: SongEpoch(u64::MAX),
            page_revision: PageRevision(u64::MAX),
            page_index: 0,
        })
    );
    assert_wrong_type(
        &wire(
            "SET_PAGE",
            r#"{"song_epoch":18446744073709551616,"page_revision":1,"page_index":0}"#,
        ),
        "payload",
    );
}

// ---- unknown types and fields ----------------------------------------------------------------

#[test]
fn unknown_type_is_unknown() {
    for (ty, payload) in [
        ("FUTURE_THING", "{}"),
        ("FUTURE_THING", r#"{"a":[1,2],"b":{"c":null}}"#),
        ("set_page", r#"{"song_epoch":1,"page_revision":1,"page_index":0}"#),
        ("", "{}"),
        ("HELLO ", "{}"),
        ("ÜBER", "{}"),
    ] {
        assert_eq!(
            message(&wire(ty, payload)),
            Message::Unknown { message_type: ty.to_owned() },
            "{ty}"
        );
    }
}

#[test]
fn unknown_payload_fields_are_ignored() {
    assert_eq!(
        message(&wire(
            "JOIN_REQUEST",
            r#"{"x":1,"session_token":"t","follow_mode":"free","song_epoch":4,"y":{"z":[]}}"#
        )),
        Message::JoinRequest(JoinRequest {
            session_token: "t".into(),
            follow_mode: FollowMode::Free,
            song_epoch: SongEpoch(4),
        })
    );
    assert_eq!(message(&wire("LEAVE_SESSION", r#"{"why":"bored"}"#)), Message::LeaveSession);
    assert_eq!(message(&wire("SESSION_END", r#"{"x":null}"#)), Message::SessionEnd);
    // Inside nested objects too.
    let m = message(&wire(
        "JOIN_ACCEPT",
        r#"{"snapshot":{"session_id":"S","song_id":"s","song_epoch":1,"page_index":2,"page_revision":3,"extra":true},"more":1}"#,
    ));
    assert!(matches!(m, Message::JoinAccept(a) if a.snapshot.page_revision == PageRevision(3)));
}

// ---- Choir and Solo forms --------------------------------------------------------------------

#[test]
fn set_page_with_song_epoch_is_choir() {
    assert_eq!(
        message(&wire("SET_PAGE", r#"{"song_epoch":1,"page_revision":2,"page_index":3}"#)),
        Message::ChoirSetPage(ChoirSetPage {
            song_epoch: SongEpoch(1),
            page_revision: PageRevision(2),
            page_index: 3,
        })
    );
    // A `song_id` beside the Choir fields is an unknown field of the Choir form.
    assert!(matches!(
        message(&wire(
            "SET_PAGE",
            r#"{"song_id":"s","song_epoch":1,"page_revision":2,"page_index":3}"#
        )),
        Message::ChoirSetPage(_)
    ));
}

#[test]
fn set_page_with_song_id_only_is_solo() {
    assert_eq!(
        message(&wire("SET_PAGE", r#"{"song_id":"s","page_index":4}"#)),
        Message::SoloSetPage(SoloSetPage { song_id: Some(SongId::from("s")), page_index: 4 })
    );
    assert_eq!(
        message(&wire("SET_PAGE", r#"{"song_id":null,"page_index":0}"#)),
        Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 0 })
    );
}

#[test]
fn set_song_with_song_epoch_is_choir_without_is_solo() {
    assert_eq!(
        message(&wire("SET_SONG", r#"{"song_id":"s","song_epoch":2}"#)),
        Message::ChoirSetSong(ChoirSetSong {
            song_id: Some(SongId::from("s")),
            song_epoch: SongEpoch(2)
        })
    );
    assert_eq!(
        message(&wire("SET_SONG", r#"{"song_id":"s"}"#)),
        Message::SoloSetSong(SoloSetSong { song_id: Some(SongId::from("s")) })
    );
}

#[test]
fn state_snapshot_with_layout_is_solo_without_is_choir() {
    let solo = r#"{"song_id":"s","page_index":2,"layout":{"leader_device_id":"A","parity":"even"},"last_page_change":{"sender_id":"B","ts":9}}"#;
    match message(&wire("STATE_SNAPSHOT", solo)) {
        Message::SoloSnapshot(s) => {
            assert_eq!(s.page_index, 2);
            assert_eq!(s.layout.leader_device_id, DeviceId::from("A"));
            assert_eq!(s.last_page_change.ts, 9);
        }
        other => panic!("expected SoloSnapshot, got {other:?}"),
    }
    let choir =
        r#"{"session_id":"S","song_id":"s","song_epoch":1,"page_index":2,"page_revision":3}"#;
    assert_eq!(
        message(&wire("STATE_SNAPSHOT", choir)),
        Message::ChoirSnapshot(ChoirSnapshot {
            session_id: SessionId::from("S"),
            song_id: Some(SongId::from("s")),
            song_epoch: SongEpoch(1),
            page_index: 2,
            page_revision: PageRevision(3),
        })
    );
    // `layout` alone decides: the Solo form is then required whole.
    assert_missing(
        &wire(
            "STATE_SNAPSHOT",
            r#"{"session_id":"S","song_id":"s","song_epoch":1,"page_index":2,"page_revision":3,"layout":{"leader_device_id":"A","parity":"odd"}}"#,
        ),
        "last_page_change",
    );
}

#[test]
fn errors_display_a_reason() {
    for err in [
        decode(&padded(65_537)).expect_err("too large"),
        dec("nope").expect_err("not json"),
        dec("[]").expect_err("not an object"),
        dec("{}").expect_err("missing"),
        dec(&wire_with("ts", "\"1\"")).expect_err("wrong type"),
        dec(r#"{"v":2}"#).expect_err("version"),
    ] {
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn pair_info_decodes_to_its_typed_message_and_rejects_a_wrong_type() {
    assert_eq!(
        message(&wire("PAIR_INFO", r#"{"host":"10.0.0.1:9","proof_key":"k","later":1}"#)),
        Message::PairInfo(maestral_protocol::PairInfo {
            host: "10.0.0.1:9".into(),
            proof_key: "k".into()
        })
    );
    assert!(matches!(
        dec(&wire("PAIR_INFO", r#"{"host":9,"proof_key":"k"}"#)),
        Err(DecodeError::WrongType { .. })
    ));
}
