//! Maestral's sync wire protocol V1: the envelope and the messages of `docs/protocol.md` (§2,
//! §4; their meaning in `docs/behaviour.md` §7–§8), and a decoder that validates everything a peer
//! sends.
//!
//! Encoding produces exactly the documented JSON (field names and order as in the tables).
//! Decoding never panics: oversized input, text that is not JSON, missing or mistyped fields and a
//! `v` other than 1 are distinct [`DecodeError`]s; an unknown `type` decodes to
//! [`Message::Unknown`]; unknown fields are ignored.

mod base32;
mod decode;
mod ids;
mod payload;

pub use base32::{base32, unbase32};
pub use decode::{DecodeError, decode};
pub use ids::{DeviceId, PageRevision, SessionId, SessionToken, SongEpoch, SongId, shown_name};
pub use payload::*;

use serde::Serialize;

/// The protocol version this crate speaks (`v` in every envelope).
pub const PROTOCOL_VERSION: u64 = 1;

/// A message over this many bytes is rejected unread (docs/protocol.md §2: "a message over 64
/// KiB").
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The label of the one ordered, reliable DataChannel that carries protocol messages.
pub const SYNC_CHANNEL_LABEL: &str = "maestral-sync";

/// The label of the channels a streamed score travels on (`STREAM_PREPARE`'s `channel`): one
/// per stream, opened by the Follower that lacks the song (docs/protocol.md §5).
pub const STREAM_CHANNEL_LABEL: &str = "maestral-stream";

/// The label of the channel that carries copies of register updates: unordered, never
/// retransmitted, opened out of band on SCTP stream [`COPY_CHANNEL_ID`] by both sides. A copy
/// lost or late changes nothing (the reliable message still comes); one that arrives first
/// saves the wait for a retransmission under loss or after a drop-out. See [`Register`].
pub const COPY_CHANNEL_LABEL: &str = "maestral-copy";

/// The SCTP stream id of the copy channel (negotiated out of band, so no open handshake can be
/// lost).
pub const COPY_CHANNEL_ID: u16 = 1001;

/// The label of the channel on which each side of a link says where its copies come from as
/// UDP datagrams, outside SCTP (`{"ip", "port", "key"}`, once, when the link opens): reliable,
/// opened out of band on SCTP stream [`SIDE_CHANNEL_ID`] by both sides. A peer without it gets
/// copies on the copy channel.
pub const SIDE_CHANNEL_LABEL: &str = "maestral-side";

/// The SCTP stream id of the side channel.
pub const SIDE_CHANNEL_ID: u16 = 1002;

/// One protocol message with its envelope (docs/protocol.md §2). `v` is implied: always
/// [`PROTOCOL_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `""` in Solo before a session id is agreed.
    pub session_id: SessionId,
    /// The sender's Device ID.
    pub sender_id: DeviceId,
    /// The sender's wall clock, Unix milliseconds.
    pub ts: u64,
    pub message: Message,
}

/// Every message of docs/protocol.md §4. The Choir and Solo forms of `SET_SONG`, `SET_PAGE` and
/// `STATE_SNAPSHOT` share a `type` on the wire and are told apart by their payload's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    JoinRequest(JoinRequest),
    JoinAccept(JoinAccept),
    JoinReject(JoinReject),
    LeaveSession,
    SessionEnd,
    ChoirSnapshot(ChoirSnapshot),
    SoloSnapshot(SoloState),
    ChoirSetSong(ChoirSetSong),
    SoloSetSong(SoloSetSong),
    ChoirSetPage(ChoirSetPage),
    SoloSetPage(SoloSetPage),
    SetLayoutParity(Layout),
    SetFollowMode(SetFollowMode),
    StreamPrepare(StreamPrepare),
    StreamClear(StreamClear),
    /// `PAIR_INFO`, an extension between paired Solo devices (the engine ignores it).
    PairInfo(PairInfo),
    /// `SHOWING`, an extension from a Follower to its Master: what the Follower shows now.
    Showing(Showing),
    /// A `type` this version does not know: receivers ignore it (docs/protocol.md §2;
    /// docs/behaviour.md §14).
    Unknown {
        message_type: String,
    },
}

/// A register a message updates: the receiver keeps only the newest value, judged by the
/// message's own revision or stamp, so a duplicate or a stale copy of it changes nothing. Only
/// such messages may travel (also) on the copy channel ([`COPY_CHANNEL_LABEL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    /// The song: Choir `SET_SONG` (by epoch), Solo `SET_SONG` (by stamp).
    Song,
    /// The page: Choir `SET_PAGE` (by epoch and revision), Solo `SET_PAGE` (by stamp).
    Page,
    /// Solo `SET_LAYOUT_PARITY` (by its own stamp).
    Layout,
}

impl Register {
    /// Every register, for tables indexed by [`Register::index`].
    pub const ALL: [Register; 3] = [Register::Song, Register::Page, Register::Layout];

    pub fn index(self) -> usize {
        self as usize
    }
}

impl Message {
    /// The register this message updates, if it is a register update (see [`Register`]).
    pub fn register(&self) -> Option<Register> {
        match self {
            Message::ChoirSetSong(_) | Message::SoloSetSong(_) => Some(Register::Song),
            Message::ChoirSetPage(_) | Message::SoloSetPage(_) => Some(Register::Page),
            Message::SetLayoutParity(_) => Some(Register::Layout),
            _ => None,
        }
    }

    /// The wire `type` of this message.
    pub fn type_name(&self) -> &str {
        match self {
            Message::Hello(_) => "HELLO",
            Message::JoinRequest(_) => "JOIN_REQUEST",
            Message::JoinAccept(_) => "JOIN_ACCEPT",
            Message::JoinReject(_) => "JOIN_REJECT",
            Message::LeaveSession => "LEAVE_SESSION",
            Message::SessionEnd => "SESSION_END",
            Message::ChoirSnapshot(_) | Message::SoloSnapshot(_) => "STATE_SNAPSHOT",
            Message::ChoirSetSong(_) | Message::SoloSetSong(_) => "SET_SONG",
            Message::ChoirSetPage(_) | Message::SoloSetPage(_) => "SET_PAGE",
            Message::SetLayoutParity(_) => "SET_LAYOUT_PARITY",
            Message::SetFollowMode(_) => "SET_FOLLOW_MODE",
            Message::StreamPrepare(_) => "STREAM_PREPARE",
            Message::StreamClear(_) => "STREAM_CLEAR",
            Message::PairInfo(_) => "PAIR_INFO",
            Message::Showing(_) => "SHOWING",
            Message::Unknown { message_type } => message_type,
        }
    }
}

#[derive(Serialize)]
struct Wire<'a, P: Serialize> {
    v: u64,
    session_id: &'a str,
    sender_id: &'a str,
    #[serde(rename = "type")]
    message_type: &'a str,
    ts: u64,
    payload: &'a P,
}

#[derive(Serialize)]
struct EmptyPayload {}

impl Envelope {
    pub fn new(session_id: SessionId, sender_id: DeviceId, ts: u64, message: Message) -> Self {
        Envelope { session_id, sender_id, ts, message }
    }

    /// The documented JSON text of this envelope.
    pub fn encode(&self) -> String {
        fn wire<P: Serialize>(env: &Envelope, payload: &P) -> String {
            let w = Wire {
                v: PROTOCOL_VERSION,
                session_id: env.session_id.as_str(),
                sender_id: env.sender_id.as_str(),
                message_type: env.message.type_name(),
                ts: env.ts,
                payload,
            };
            // Serialising plain structs of strings and integers into a String cannot fail.
            serde_json::to_string(&w).unwrap_or_default()
        }
        match &self.message {
            Message::Hello(p) => wire(self, p),
            Message::JoinRequest(p) => wire(self, p),
            Message::JoinAccept(p) => wire(self, p),
            Message::JoinReject(p) => wire(self, p),
            Message::LeaveSession | Message::SessionEnd | Message::Unknown { .. } => {
                wire(self, &EmptyPayload {})
            }
            Message::ChoirSnapshot(p) => wire(self, p),
            Message::SoloSnapshot(p) => wire(self, p),
            Message::ChoirSetSong(p) => wire(self, p),
            Message::SoloSetSong(p) => wire(self, p),
            Message::ChoirSetPage(p) => wire(self, p),
            Message::SoloSetPage(p) => wire(self, p),
            Message::SetLayoutParity(p) => wire(self, p),
            Message::SetFollowMode(p) => wire(self, p),
            Message::StreamPrepare(p) => wire(self, p),
            Message::StreamClear(p) => wire(self, p),
            Message::PairInfo(p) => wire(self, p),
            Message::Showing(p) => wire(self, p),
        }
    }
}
