//! The payloads of every message, field for field as `docs/protocol.md` §4 lists them.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, PageRevision, SessionId, SessionToken, SongEpoch, SongId};

/// The mode a device declares in `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Solo,
    ChoirMaster,
    ChoirFollower,
}

/// Follower control mode (docs/behaviour.md §3, §11.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowMode {
    #[default]
    Follow,
    Free,
}

impl FollowMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowMode::Follow => "follow",
            FollowMode::Free => "free",
        }
    }
}

/// Solo leader parity: which page of the spread `{2k, 2k+1}` the leader shows
/// (`odd`: page 2k, the odd page counted from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    Odd,
    Even,
}

impl Parity {
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::Odd => "odd",
            Parity::Even => "even",
        }
    }
}

/// Why a Master refused a join (docs/behaviour.md §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    InvalidToken,
    SessionEnded,
    VersionMismatch,
    /// A reason a later version added: still a refusal (the Follower goes local rather than
    /// retrying forever).
    #[serde(other)]
    Other,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidToken => "invalid_token",
            RejectReason::SessionEnded => "session_ended",
            RejectReason::VersionMismatch => "version_mismatch",
            RejectReason::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub mode: Mode,
    pub device_name: String,
    pub app_version: String,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub session_token: SessionToken,
    pub follow_mode: FollowMode,
    /// The Follower's last known epoch, 0 if none.
    pub song_epoch: SongEpoch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinAccept {
    pub snapshot: ChoirSnapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReject {
    pub reason: RejectReason,
}

/// The Master state of docs/behaviour.md §9.2 without `session_token`, which never leaves the
/// Master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoirSnapshot {
    pub session_id: SessionId,
    #[serde(deserialize_with = "nullable")]
    pub song_id: Option<SongId>,
    pub song_epoch: SongEpoch,
    pub page_index: u32,
    pub page_revision: PageRevision,
}

/// Solo layout: who leads and with which parity (docs/behaviour.md §9.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub leader_device_id: DeviceId,
    pub parity: Parity,
}

/// Metadata of the latest Solo change of one register (the page and song, or the layout):
/// ordered by `ts`, then by the lexicographically higher `sender_id` (docs/behaviour.md §11.1,
/// "the latest change wins"). The default, `{"sender_id": "", "ts": 0}`, is older than any real
/// change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PageChangeStamp {
    pub sender_id: DeviceId,
    pub ts: u64,
}

impl Ord for PageChangeStamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ts.cmp(&other.ts).then_with(|| self.sender_id.cmp(&other.sender_id))
    }
}

impl PartialOrd for PageChangeStamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The Solo shared state of docs/behaviour.md §9.1, whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoloState {
    #[serde(deserialize_with = "nullable")]
    pub song_id: Option<SongId>,
    pub page_index: u32,
    pub layout: Layout,
    /// The latest song or page change: it alone judges `song_id` and `page_index`.
    pub last_page_change: PageChangeStamp,
    /// The latest layout change: it alone judges `layout` (docs/behaviour.md §11.1: the
    /// layout is a register of its own). Absent from a peer that predates it: the default stamp.
    #[serde(default)]
    pub last_layout_change: PageChangeStamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoirSetSong {
    #[serde(deserialize_with = "nullable")]
    pub song_id: Option<SongId>,
    pub song_epoch: SongEpoch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoloSetSong {
    #[serde(deserialize_with = "nullable")]
    pub song_id: Option<SongId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoirSetPage {
    pub song_epoch: SongEpoch,
    pub page_revision: PageRevision,
    pub page_index: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoloSetPage {
    #[serde(deserialize_with = "nullable")]
    pub song_id: Option<SongId>,
    pub page_index: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetFollowMode {
    pub mode: FollowMode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPrepare {
    pub song_id: SongId,
    pub song_epoch: SongEpoch,
    pub size_bytes: u64,
    pub sha256: String,
    pub channel: String,
    /// The score's title, for "Receiving «title»" (an optional field added to V1: absent from
    /// a peer that predates it, and then not written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `true`: not the current song but the one the Master will show next (its set list's next
    /// piece), offered ahead so that a Follower lacking it holds it before the song change. An
    /// optional field added to V1: written only when `true`; a peer that predates it fetches
    /// the song as any other offered score.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub next: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamClear {
    /// `None`: clear everything streamed.
    #[serde(deserialize_with = "nullable")]
    pub song_id: Option<SongId>,
}

/// `SHOWING` (an extension, Follower → Master; a V1 Master ignores the type): the song and page the
/// Follower shows now, whatever its follow mode, so the Master can show who is on its page.
/// `song_epoch` is the newest Master epoch the Follower has seen (its song context).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Showing {
    #[serde(deserialize_with = "nullable")]
    pub song_id: Option<SongId>,
    pub song_epoch: SongEpoch,
    pub page_index: u32,
}

/// `PAIR_INFO` (an extension, docs/protocol.md §4 and §9): where a paired Solo device
/// listens for its partner's call-back, and the key that call-back must prove. A V1 peer ignores
/// the type.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairInfo {
    /// `IP:PORT` of the call-back listener.
    pub host: String,
    /// The key the call-back proves (a secret).
    pub proof_key: String,
}

// The key is a credential: `{:?}` must not put it in a log.
impl std::fmt::Debug for PairInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairInfo")
            .field("host", &self.host)
            .field("proof_key", &"<redacted>")
            .finish()
    }
}

/// A `str|null` field that must be present: `null` is `None`, a missing field is an error (serde
/// would otherwise read a missing `Option` as `None`).
fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}
