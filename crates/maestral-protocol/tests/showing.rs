//! `SHOWING` (an extension, Follower → Master): encoded exactly as documented, decoded back, and
//! rejected without a panic where a field is missing or mistyped; unknown fields are ignored.

use maestral_protocol::{
    DecodeError, DeviceId, Envelope, Message, SessionId, Showing, SongEpoch, SongId, decode,
};

fn wire(payload: &str) -> String {
    format!(
        r#"{{"v":1,"session_id":"S","sender_id":"F","type":"SHOWING","ts":5,"payload":{payload}}}"#
    )
}

fn showing(song: Option<&str>, epoch: u64, page: u32) -> Message {
    Message::Showing(Showing {
        song_id: song.map(SongId::new),
        song_epoch: SongEpoch(epoch),
        page_index: page,
    })
}

#[test]
fn showing_encodes_exactly_as_documented() {
    let e = Envelope::new(SessionId::new("S"), DeviceId::new("F"), 5, showing(Some("s"), 3, 7));
    assert_eq!(e.encode(), wire(r#"{"song_id":"s","song_epoch":3,"page_index":7}"#));
    let e = Envelope::new(SessionId::new("S"), DeviceId::new("F"), 5, showing(None, 0, 0));
    assert_eq!(e.encode(), wire(r#"{"song_id":null,"song_epoch":0,"page_index":0}"#));
    assert_eq!(showing(None, 0, 0).type_name(), "SHOWING");
}

#[test]
fn showing_round_trips() {
    for m in [showing(Some("s"), 3, 7), showing(None, u64::MAX, u32::MAX), showing(Some(""), 0, 0)]
    {
        let e = Envelope::new(SessionId::new("S"), DeviceId::new("F"), 9, m);
        assert_eq!(decode(e.encode().as_bytes()), Ok(e));
    }
}

#[test]
fn showing_ignores_unknown_fields() {
    let text = wire(r#"{"x":[1],"song_id":"s","song_epoch":2,"page_index":4,"y":{"z":null}}"#);
    assert_eq!(decode(text.as_bytes()).map(|e| e.message), Ok(showing(Some("s"), 2, 4)));
}

#[test]
fn showing_missing_fields_are_missing_field() {
    for (payload, field) in [
        (r#"{"song_epoch":2,"page_index":4}"#, "song_id"),
        (r#"{"song_id":"s","page_index":4}"#, "song_epoch"),
        (r#"{"song_id":"s","song_epoch":2}"#, "page_index"),
    ] {
        assert_eq!(
            decode(wire(payload).as_bytes()),
            Err(DecodeError::MissingField { field }),
            "{payload}"
        );
    }
}

#[test]
fn showing_with_wrong_field_types_is_wrong_type() {
    for payload in [
        r#"{"song_id":7,"song_epoch":2,"page_index":4}"#,
        r#"{"song_id":"s","song_epoch":"2","page_index":4}"#,
        r#"{"song_id":"s","song_epoch":-1,"page_index":4}"#,
        r#"{"song_id":"s","song_epoch":2,"page_index":4294967296}"#,
        r#"{"song_id":"s","song_epoch":2,"page_index":null}"#,
        r#"{"song_id":"s","song_epoch":2.5,"page_index":4}"#,
        r#"["s",2,4]"#,
        r#""SHOWING""#,
    ] {
        assert!(
            matches!(decode(wire(payload).as_bytes()), Err(DecodeError::WrongType { .. })),
            "{payload}: {:?}",
            decode(wire(payload).as_bytes())
        );
    }
}
