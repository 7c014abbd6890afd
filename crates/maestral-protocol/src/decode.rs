//! Validating decoder: bytes from a peer in, an [`Envelope`] or a precise [`DecodeError`] out.

use std::borrow::Cow;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::ids::{DeviceId, SessionId};
use crate::{Envelope, MAX_MESSAGE_BYTES, Message, PROTOCOL_VERSION};

/// Why bytes from a peer were rejected. The receiver changes no state on any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {len} bytes is over the 64 KiB limit; dropped unread")]
    TooLarge { len: usize },
    #[error("message is not JSON ({reason}); dropped")]
    NotJson { reason: String },
    #[error("message is JSON but not an object; dropped")]
    NotAnObject,
    #[error("message has no `{field}` field; dropped")]
    MissingField { field: &'static str },
    #[error("message field `{field}` has the wrong type or value ({reason}); dropped")]
    WrongType { field: &'static str, reason: String },
    #[error(
        "message speaks protocol version {version}, this device speaks 1; update Maestral on one of the devices"
    )]
    UnsupportedVersion {
        version: String,
        /// The message's `type`, when it could be read: a Master answers a `JOIN_REQUEST` of the
        /// wrong version with `JOIN_REJECT version_mismatch`.
        message_type: Option<String>,
        session_id: Option<String>,
    },
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    v: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    session_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    sender_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present", rename = "type")]
    message_type: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    payload: Option<&'a RawValue>,
}

/// Every envelope field present and well typed: one pass, strings borrowed where unescaped.
#[derive(Deserialize)]
struct FastEnvelope<'a> {
    v: u64,
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(borrow)]
    sender_id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    message_type: Cow<'a, str>,
    ts: u64,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// Decodes one message from a peer.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len() });
    }
    // serde's derived structs also accept a JSON array (fields by position): only an object is an
    // envelope.
    let first = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => DecodeError::NotAnObject,
            Err(e) => DecodeError::NotJson { reason: e.to_string() },
        });
    }
    // The common case in one typed pass; anything it refuses goes through the precise path
    // below, which names the error (both accept exactly the same envelopes).
    if let Ok(fast) = serde_json::from_slice::<FastEnvelope<'_>>(bytes)
        && fast.v == PROTOCOL_VERSION
    {
        let message = decode_message(fast.message_type.into_owned(), fast.payload)?;
        return Ok(Envelope {
            session_id: SessionId(fast.session_id.into_owned()),
            sender_id: DeviceId(fast.sender_id.into_owned()),
            ts: fast.ts,
            message,
        });
    }
    let raw: RawEnvelope<'_> = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        // On an object whose fields are all raw values, the only data error is a repeated field.
        serde_json::error::Category::Data => DecodeError::WrongType {
            field: duplicate_field_name(&e.to_string()),
            reason: e.to_string(),
        },
        _ => DecodeError::NotJson { reason: e.to_string() },
    })?;

    let v_raw = raw.v.ok_or(DecodeError::MissingField { field: "v" })?;
    let v: u64 = field("v", v_raw)?;
    if v != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            version: v.to_string(),
            message_type: raw.message_type.and_then(|r| serde_json::from_str(r.get()).ok()),
            session_id: raw.session_id.and_then(|r| serde_json::from_str(r.get()).ok()),
        });
    }
    let session_id: String = required("session_id", raw.session_id)?;
    let sender_id: String = required("sender_id", raw.sender_id)?;
    let message_type: String = required("type", raw.message_type)?;
    let ts: u64 = required("ts", raw.ts)?;
    let payload = raw.payload.ok_or(DecodeError::MissingField { field: "payload" })?;
    let message = decode_message(message_type, payload)?;
    Ok(Envelope { session_id: SessionId(session_id), sender_id: DeviceId(sender_id), ts, message })
}

/// A field that is present, `null` included (serde reads a `null` `Option` as `None`, which
/// would make `"v": null` a missing field and `"song_epoch": null` pick the Solo form).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

fn duplicate_field_name(msg: &str) -> &'static str {
    const NAMES: &[&str] = &["v", "session_id", "sender_id", "type", "ts", "payload"];
    msg.strip_prefix("duplicate field `")
        .and_then(|rest| rest.split('`').next())
        .and_then(|name| NAMES.iter().find(|n| **n == name).copied())
        .unwrap_or("envelope")
}

/// serde's derived structs also accept a JSON array (fields by position): every payload, and every
/// object inside one, must be a JSON object.
fn object(name: &'static str, raw: Option<&RawValue>) -> Result<(), DecodeError> {
    match raw {
        Some(r) if !r.get().starts_with('{') => Err(DecodeError::WrongType {
            field: name,
            reason: format!("expected an object, found `{}`", r.get()),
        }),
        _ => Ok(()),
    }
}

fn required<T: DeserializeOwned>(
    name: &'static str,
    raw: Option<&RawValue>,
) -> Result<T, DecodeError> {
    field(name, raw.ok_or(DecodeError::MissingField { field: name })?)
}

fn field<T: DeserializeOwned>(name: &'static str, raw: &RawValue) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get())
        .map_err(|e| DecodeError::WrongType { field: name, reason: e.to_string() })
}

/// A payload struct: missing fields surface as [`DecodeError::MissingField`] with the field's
/// name, everything else as [`DecodeError::WrongType`].
fn payload<T: DeserializeOwned>(raw: &RawValue) -> Result<T, DecodeError> {
    object("payload", Some(raw))?;
    serde_json::from_str(raw.get()).map_err(|e| payload_error(&e))
}

fn payload_error(e: &serde_json::Error) -> DecodeError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some(name) = rest.split('`').next()
    {
        return DecodeError::MissingField { field: static_field_name(name) };
    }
    DecodeError::WrongType { field: "payload", reason: msg }
}

/// Maps a payload field name to a `'static` one (every name the catalog uses).
fn static_field_name(name: &str) -> &'static str {
    const NAMES: &[&str] = &[
        "mode",
        "device_name",
        "app_version",
        "capabilities",
        "session_token",
        "follow_mode",
        "song_epoch",
        "snapshot",
        "reason",
        "session_id",
        "song_id",
        "page_index",
        "page_revision",
        "layout",
        "leader_device_id",
        "parity",
        "last_page_change",
        "last_layout_change",
        "sender_id",
        "ts",
        "size_bytes",
        "sha256",
        "channel",
        "host",
        "proof_key",
    ];
    NAMES.iter().find(|n| **n == name).copied().unwrap_or("payload")
}

/// The union of the Choir and Solo `SET_SONG` / `SET_PAGE` / `STATE_SNAPSHOT` fields: which form a
/// message has is decided by the fields present, then that form's fields are required.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    song_epoch: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    page_revision: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    layout: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    last_page_change: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    last_layout_change: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    snapshot: Option<&'a RawValue>,
}

fn shape(raw: &RawValue) -> Result<Shape<'_>, DecodeError> {
    object("payload", Some(raw))?;
    serde_json::from_str(raw.get())
        .map_err(|e| DecodeError::WrongType { field: "payload", reason: e.to_string() })
}

fn decode_message(message_type: String, raw: &RawValue) -> Result<Message, DecodeError> {
    Ok(match message_type.as_str() {
        "HELLO" => Message::Hello(payload(raw)?),
        "JOIN_REQUEST" => Message::JoinRequest(payload(raw)?),
        "JOIN_ACCEPT" => {
            object("snapshot", shape(raw)?.snapshot)?;
            Message::JoinAccept(payload(raw)?)
        }
        "JOIN_REJECT" => Message::JoinReject(payload(raw)?),
        "LEAVE_SESSION" => {
            payload::<Empty>(raw)?;
            Message::LeaveSession
        }
        "SESSION_END" => {
            payload::<Empty>(raw)?;
            Message::SessionEnd
        }
        "STATE_SNAPSHOT" => {
            let s = shape(raw)?;
            if s.layout.is_some() || s.last_page_change.is_some() {
                object("layout", s.layout)?;
                object("last_page_change", s.last_page_change)?;
                object("last_layout_change", s.last_layout_change)?;
                Message::SoloSnapshot(payload(raw)?)
            } else {
                Message::ChoirSnapshot(payload(raw)?)
            }
        }
        "SET_SONG" => {
            if shape(raw)?.song_epoch.is_some() {
                Message::ChoirSetSong(payload(raw)?)
            } else {
                Message::SoloSetSong(payload(raw)?)
            }
        }
        "SET_PAGE" => {
            let s = shape(raw)?;
            if s.song_epoch.is_some() || s.page_revision.is_some() {
                Message::ChoirSetPage(payload(raw)?)
            } else {
                Message::SoloSetPage(payload(raw)?)
            }
        }
        "SET_LAYOUT_PARITY" => Message::SetLayoutParity(payload(raw)?),
        "SET_FOLLOW_MODE" => Message::SetFollowMode(payload(raw)?),
        "STREAM_PREPARE" => Message::StreamPrepare(payload(raw)?),
        "STREAM_CLEAR" => Message::StreamClear(payload(raw)?),
        "PAIR_INFO" => Message::PairInfo(payload(raw)?),
        "SHOWING" => Message::Showing(payload(raw)?),
        _ => Message::Unknown { message_type },
    })
}

/// `{}` with any unknown fields: `LEAVE_SESSION`, `SESSION_END`.
#[derive(Deserialize)]
struct Empty {}
