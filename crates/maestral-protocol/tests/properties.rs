//! Properties of the codec: `decode` never panics, whatever the bytes, and every envelope of every
//! message variant survives `decode(encode(e)) == e`.

use maestral_protocol::{
    ChoirSetPage, ChoirSetSong, ChoirSnapshot, DecodeError, DeviceId, Envelope, FollowMode, Hello,
    JoinAccept, JoinReject, JoinRequest, Layout, Message, Mode, PageChangeStamp, PageRevision,
    Parity, RejectReason, SessionId, SetFollowMode, Showing, SoloSetPage, SoloSetSong, SoloState,
    SongEpoch, SongId, StreamClear, StreamPrepare, decode,
};
use proptest::prelude::*;

const KNOWN_TYPES: &[&str] = &[
    "HELLO",
    "SHOWING",
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
    "PAIR_INFO",
];

// ---- strategies ------------------------------------------------------------------------------

/// Strings that stress JSON escaping: any printable unicode, and short strings made of quotes,
/// backslashes, control characters, non-ASCII and astral characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\/\\x00-\\x1f\\x7f a-zA-Z0-9é中🎵\u{2028}\u{fffd}]{0,12}",
        Just(String::new()),
    ]
}

fn u64_edge() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1 << 53),
        Just((1 << 53) + 1),
        any::<u64>(),
    ]
}

fn u32_edge() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(1), Just(u32::MAX), Just(u32::MAX - 1), any::<u32>()]
}

fn song_id() -> impl Strategy<Value = Option<SongId>> {
    proptest::option::of(text().prop_map(SongId))
}

fn follow_mode() -> impl Strategy<Value = FollowMode> {
    prop_oneof![Just(FollowMode::Follow), Just(FollowMode::Free)]
}

fn parity() -> impl Strategy<Value = Parity> {
    prop_oneof![Just(Parity::Odd), Just(Parity::Even)]
}

fn choir_snapshot() -> impl Strategy<Value = ChoirSnapshot> {
    (text(), song_id(), u64_edge(), u32_edge(), u64_edge()).prop_map(
        |(session_id, song_id, epoch, page_index, revision)| ChoirSnapshot {
            session_id: SessionId(session_id),
            song_id,
            song_epoch: SongEpoch(epoch),
            page_index,
            page_revision: PageRevision(revision),
        },
    )
}

fn layout() -> impl Strategy<Value = Layout> {
    (text(), parity())
        .prop_map(|(leader, parity)| Layout { leader_device_id: DeviceId(leader), parity })
}

/// A `type` this version does not know.
fn unknown_type() -> impl Strategy<Value = String> {
    text().prop_filter("not a known type", |t| !KNOWN_TYPES.contains(&t.as_str()))
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            prop_oneof![Just(Mode::Solo), Just(Mode::ChoirMaster), Just(Mode::ChoirFollower)],
            text(),
            text(),
            proptest::collection::vec(text(), 0..4),
        )
            .prop_map(|(mode, device_name, app_version, capabilities)| {
                Message::Hello(Hello { mode, device_name, app_version, capabilities })
            }),
        (text(), follow_mode(), u64_edge()).prop_map(|(token, follow_mode, epoch)| {
            Message::JoinRequest(JoinRequest {
                session_token: token.into(),
                follow_mode,
                song_epoch: SongEpoch(epoch),
            })
        }),
        choir_snapshot().prop_map(|snapshot| Message::JoinAccept(JoinAccept { snapshot })),
        prop_oneof![
            Just(RejectReason::InvalidToken),
            Just(RejectReason::SessionEnded),
            Just(RejectReason::VersionMismatch),
        ]
        .prop_map(|reason| Message::JoinReject(JoinReject { reason })),
        Just(Message::LeaveSession),
        Just(Message::SessionEnd),
        choir_snapshot().prop_map(Message::ChoirSnapshot),
        (song_id(), u32_edge(), layout(), text(), u64_edge(), u64_edge()).prop_map(
            |(song_id, page_index, layout, sender, ts, layout_ts)| {
                Message::SoloSnapshot(SoloState {
                    song_id,
                    page_index,
                    last_layout_change: PageChangeStamp {
                        sender_id: layout.leader_device_id.clone(),
                        ts: layout_ts,
                    },
                    layout,
                    last_page_change: PageChangeStamp { sender_id: DeviceId(sender), ts },
                })
            }
        ),
        (song_id(), u64_edge()).prop_map(|(song_id, epoch)| {
            Message::ChoirSetSong(ChoirSetSong { song_id, song_epoch: SongEpoch(epoch) })
        }),
        song_id().prop_map(|song_id| Message::SoloSetSong(SoloSetSong { song_id })),
        (u64_edge(), u64_edge(), u32_edge()).prop_map(|(epoch, revision, page_index)| {
            Message::ChoirSetPage(ChoirSetPage {
                song_epoch: SongEpoch(epoch),
                page_revision: PageRevision(revision),
                page_index,
            })
        }),
        (song_id(), u32_edge()).prop_map(|(song_id, page_index)| {
            Message::SoloSetPage(SoloSetPage { song_id, page_index })
        }),
        layout().prop_map(Message::SetLayoutParity),
        follow_mode().prop_map(|mode| Message::SetFollowMode(SetFollowMode { mode })),
        (text(), u64_edge(), u64_edge(), text(), text(), any::<bool>()).prop_map(
            |(song, epoch, size_bytes, sha256, channel, next)| {
                Message::StreamPrepare(StreamPrepare {
                    song_id: SongId(song),
                    song_epoch: SongEpoch(epoch),
                    size_bytes,
                    sha256,
                    channel,
                    title: None,
                    next,
                })
            }
        ),
        song_id().prop_map(|song_id| Message::StreamClear(StreamClear { song_id })),
        (song_id(), u64_edge(), u32_edge()).prop_map(|(song_id, epoch, page_index)| {
            Message::Showing(Showing { song_id, song_epoch: SongEpoch(epoch), page_index })
        }),
        unknown_type().prop_map(|message_type| Message::Unknown { message_type }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (text(), text(), u64_edge(), message()).prop_map(|(session, sender, ts, message)| Envelope {
        session_id: SessionId(session),
        sender_id: DeviceId(sender),
        ts,
        message,
    })
}

// ---- properties ------------------------------------------------------------------------------

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = decode(s.as_bytes());
    }

    /// Text built from JSON's own tokens, so that most cases get past the tokenizer.
    #[test]
    fn json_token_soup_never_panics(
        tokens in proptest::collection::vec(
            prop_oneof![
                Just("{"), Just("}"), Just("["), Just("]"), Just(":"), Just(","), Just("null"),
                Just("1"), Just("-1"), Just("1.5"), Just("18446744073709551616"), Just("\"x\""),
                Just("\"v\""), Just("\"type\""), Just("\"payload\""), Just("\"SET_PAGE\""),
                Just("\"song_epoch\""), Just("\"layout\""), Just("\"snapshot\""), Just(" "),
            ],
            0..40,
        )
    ) {
        let _ = decode(tokens.concat().as_bytes());
    }

    #[test]
    fn every_envelope_round_trips(e in envelope()) {
        let text = e.encode();
        prop_assert_eq!(decode(text.as_bytes()), Ok(e));
    }

    /// Every proper prefix of an encoding is incomplete JSON, whatever the message.
    #[test]
    fn truncated_encodings_are_not_json(e in envelope()) {
        let text = e.encode();
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            match decode(&bytes[..cut]) {
                Err(DecodeError::NotJson { .. }) => {}
                other => prop_assert!(false, "prefix of {} bytes of {}: {:?}", cut, text, other),
            }
        }
    }

    #[test]
    fn encodings_with_one_byte_changed_never_panic(
        e in envelope(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = e.encode().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        let _ = decode(&bytes);
    }

    #[test]
    fn encodings_with_a_byte_inserted_or_removed_never_panic(
        e in envelope(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let bytes = e.encode().into_bytes();
        let i = at.index(bytes.len());
        let mut removed = bytes.clone();
        removed.remove(i);
        let _ = decode(&removed);
        let mut inserted = bytes;
        inserted.insert(i, byte);
        let _ = decode(&inserted);
    }

    /// Any one field of the envelope removed is reported as that field.
    #[test]
    fn any_envelope_field_removed_is_missing(e in envelope(), which in 0usize..6) {
        let names = ["v", "session_id", "sender_id", "type", "ts", "payload"];
        let mut value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&e.encode()).map_err(|err| TestCaseError::fail(err.to_string()))?;
        value.remove(names[which]);
        let text = serde_json::Value::Object(value).to_string();
        prop_assert_eq!(decode(text.as_bytes()), Err(DecodeError::MissingField { field: names[which] }));
    }
}
