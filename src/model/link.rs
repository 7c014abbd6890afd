//! How this device syncs (from the command line), and the sync thread's news as the app sees
//! it: messages drained by the sync bridge and the state they leave.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use bevy::prelude::*;
use maestral_protocol::{DeviceId, SongId};
use maestral_sync::{LinkState, Pager, Phase, Role, Roster, View};

/// How this device takes part (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMode {
    /// Solo, alone until paired.
    Solo,
    /// Solo: make a pairing offer code; the answer code comes later (a line on standard input).
    SoloOffer,
    /// Solo: answer this offer code.
    SoloAnswer(String),
    /// Start a Choir session; `None`: the LAN address, any port.
    ChoirMaster { listen: Option<SocketAddr> },
    /// Join the Choir session of this join code.
    Join(String),
    /// Rejoin the Choir session kept in the state directory (a restarted Follower); `host`:
    /// the Master's listener, as kept.
    Rejoin { host: Option<SocketAddr> },
}

impl SyncMode {
    pub fn role(&self) -> Role {
        match self {
            SyncMode::Solo | SyncMode::SoloOffer | SyncMode::SoloAnswer(_) => Role::Solo,
            SyncMode::ChoirMaster { .. } => Role::Master,
            SyncMode::Join(_) | SyncMode::Rejoin { .. } => Role::Follower,
        }
    }
}

/// The performer asked for another role (from the panel, or a headless command): the old
/// one ends properly first (a Follower leaves, a Master's session ends), then the new one
/// starts. The page on screen stays where it is.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct SwitchRole(pub SyncMode);

/// Who this device is and how it syncs.
#[derive(Resource, Debug, Clone)]
pub struct SyncSettings {
    pub mode: SyncMode,
    pub device_id: String,
    pub device_name: String,
    pub state_dir: Option<PathBuf>,
    /// Where a Master answers, and a Follower sends, locate queries (`--locate`).
    pub locate: maestral_net::LocateConfig,
    /// What a Master renders page images for browser Followers with (`None`: it serves none).
    pub pages: Option<maestral_net::PageRenderer>,
}

/// The sync thread says: show this view (a peer's turn or song change, a snapshot, a follow
/// mode toggle, or a correction of a local turn; never the echo of one). `navigations`: how
/// many of this device's navigations the engine had applied when it chose the view.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct RemoteShow {
    pub view: View,
    pub navigations: u64,
}

/// The role's phase changed (docs/behaviour.md §10.2–§10.4).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseChanged(pub Phase);

/// The link to one peer changed (docs/behaviour.md §10.1).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct LinkChanged {
    pub peer: DeviceId,
    pub state: LinkState,
}

/// A streamed score's state (Choir Followers).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct StreamChanged {
    /// `None`: every streamed score.
    pub song: Option<SongId>,
    pub state: StreamState,
}

/// Streamed songs to drop: one (`STREAM_CLEAR` of a song) or all (`None`).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct ClearStreamed(pub Option<SongId>);

/// A score that arrived whole from the Master (its SHA-256 checked), to open from memory.
#[derive(Message, Debug, Clone)]
pub struct Arrived {
    pub song: SongId,
    pub bytes: std::sync::Arc<[u8]>,
}

/// Scores being received now: bytes so far and in all, per song (for "Receiving … 40 %").
#[derive(Resource, Debug, Default)]
pub struct StreamProgress(
    pub std::collections::BTreeMap<SongId, (u64, u64)>,
    /// The titles the Master gave (`STREAM_PREPARE`'s `title`).
    pub std::collections::BTreeMap<SongId, String>,
);

impl StreamProgress {
    /// The share received of `song`, in whole percent, if it is being received.
    pub fn percent(&self, song: &SongId) -> Option<u8> {
        self.0.get(song).map(|(got, size)| {
            if *size == 0 { 100 } else { (got.saturating_mul(100) / size).min(100) as u8 }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    Receiving,
    Ready,
    Cleared,
}

impl StreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Receiving => "receiving",
            StreamState::Ready => "ready",
            StreamState::Cleared => "cleared",
        }
    }
}

/// The role's phase and every link's state, as the link indicator shows them.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStatus {
    pub phase: Option<Phase>,
    pub links: BTreeMap<DeviceId, LinkState>,
    /// The names peers gave in their `HELLO` (e.g. "Anna's tablet").
    pub names: BTreeMap<DeviceId, String>,
}

/// What the subtle link indicator shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkIndicator {
    /// No session and no partner: nothing to show.
    #[default]
    Alone,
    Connecting,
    Connected,
    /// Up but unhealthy, or some links down while others are up.
    Degraded,
    Reconnecting,
    Ended,
}

impl LinkStatus {
    /// A peer's name, or its id where it gave none.
    pub fn name(&self, peer: &DeviceId) -> String {
        self.names.get(peer).cloned().unwrap_or_else(|| peer.to_string())
    }

    /// A link to some peer is up, opening or coming back (a Solo pairing in use).
    pub fn any_live(&self) -> bool {
        self.links.values().any(|s| {
            matches!(
                s,
                LinkState::Connecting
                    | LinkState::Connected
                    | LinkState::Degraded
                    | LinkState::Reconnecting
            )
        })
    }

    pub fn indicator(&self) -> LinkIndicator {
        use LinkState as L;
        let states: Vec<LinkState> =
            self.links.values().copied().filter(|s| *s != L::Idle).collect();
        let any = |s: LinkState| states.contains(&s);
        match self.phase {
            Some(Phase::MasterSessionEnded) => return LinkIndicator::Ended,
            Some(Phase::FollowerJoining) => return LinkIndicator::Connecting,
            Some(Phase::FollowerRejoining | Phase::SoloPairedReconnecting) => {
                return LinkIndicator::Reconnecting;
            }
            Some(Phase::SoloPairedDegraded | Phase::MasterReconnectingLinks) => {
                return LinkIndicator::Degraded;
            }
            _ => {}
        }
        if states.is_empty() {
            return match self.phase {
                Some(Phase::MasterSessionActive) => LinkIndicator::Connected,
                _ => LinkIndicator::Alone,
            };
        }
        if any(L::Degraded) || (any(L::Connected) && (any(L::Reconnecting) || any(L::Connecting))) {
            LinkIndicator::Degraded
        } else if any(L::Connected) {
            LinkIndicator::Connected
        } else if any(L::Reconnecting) {
            LinkIndicator::Reconnecting
        } else if any(L::Connecting) {
            LinkIndicator::Connecting
        } else {
            LinkIndicator::Ended
        }
    }
}

/// Codes to show the other devices: the Choir join code, the Solo pairing code.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionCodes {
    pub join_code: Option<String>,
    pub pair_code: Option<String>,
    /// The sync thread could not start, or its mode's argument was unusable.
    pub failed: Option<String>,
}

/// How this device's page follows the position, as the engine says (a paired Solo device
/// turns the spread and shows its half; otherwise one page at a time). The app predicts its
/// turns with it (see `navigation::pager`).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnginePager(pub Pager);

/// A Follower: the newest Master position it has seen (shown as a marker while it is free).
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterPosition(pub Option<View>);

/// A Master: its joined Followers, as the engine last reported them (at most 4 times a
/// second).
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterState(pub Roster);

/// The roster changed (a Master); the headless output prints it.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterChanged;
