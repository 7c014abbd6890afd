//! The engine's vocabulary: roles, phases, link states, inputs, outputs.

use std::sync::Arc;

use maestral_protocol::{
    DeviceId, FollowMode, Hello, Parity, RejectReason, SessionId, SessionToken, SongId,
    StreamPrepare,
};

/// Which of the three roles of docs/behaviour.md §3 this engine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Solo,
    Master,
    Follower,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Solo => "solo",
            Role::Master => "master",
            Role::Follower => "follower",
        }
    }
}

/// The role's state of docs/behaviour.md §10.2–§10.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    SoloLocalOnly,
    SoloPairedConnected,
    SoloPairedDegraded,
    SoloPairedReconnecting,
    MasterIdle,
    MasterSessionActive,
    MasterReconnectingLinks,
    MasterSessionEnded,
    FollowerIdleLocal,
    FollowerJoining,
    FollowerConnectedFollow,
    FollowerConnectedFree,
    FollowerDisconnectedLocal,
    FollowerRejoining,
}

impl Phase {
    /// The name in docs/behaviour.md §10, e.g. `SOLO_PAIRED_CONNECTED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::SoloLocalOnly => "SOLO_LOCAL_ONLY",
            Phase::SoloPairedConnected => "SOLO_PAIRED_CONNECTED",
            Phase::SoloPairedDegraded => "SOLO_PAIRED_DEGRADED",
            Phase::SoloPairedReconnecting => "SOLO_PAIRED_RECONNECTING",
            Phase::MasterIdle => "MASTER_IDLE",
            Phase::MasterSessionActive => "MASTER_SESSION_ACTIVE",
            Phase::MasterReconnectingLinks => "MASTER_RECONNECTING_LINKS",
            Phase::MasterSessionEnded => "MASTER_SESSION_ENDED",
            Phase::FollowerIdleLocal => "FOLLOWER_IDLE_LOCAL",
            Phase::FollowerJoining => "FOLLOWER_JOINING",
            Phase::FollowerConnectedFollow => "FOLLOWER_CONNECTED_FOLLOW",
            Phase::FollowerConnectedFree => "FOLLOWER_CONNECTED_FREE",
            Phase::FollowerDisconnectedLocal => "FOLLOWER_DISCONNECTED_LOCAL",
            Phase::FollowerRejoining => "FOLLOWER_REJOINING",
        }
    }
}

/// The generic link state of docs/behaviour.md §10.1, one per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    Idle,
    Connecting,
    Connected,
    Degraded,
    Reconnecting,
    Ended,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Idle => "IDLE",
            LinkState::Connecting => "CONNECTING",
            LinkState::Connected => "CONNECTED",
            LinkState::Degraded => "DEGRADED",
            LinkState::Reconnecting => "RECONNECTING",
            LinkState::Ended => "ENDED",
        }
    }

    /// Messages can flow: the DataChannel is open (maybe unhealthy).
    pub fn is_up(self) -> bool {
        matches!(self, LinkState::Connected | LinkState::Degraded)
    }
}

/// What the transport reports about the DataChannel to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkSignal {
    /// The channel opened (a new link) or recovered.
    Up,
    /// The channel is open but unhealthy (e.g. ICE `disconnected`).
    Degraded,
    /// The channel closed or the connection attempt failed.
    Down,
}

/// Something the local user did (docs/conformance.md, "Input lines").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAction {
    SetSong {
        song_id: Option<SongId>,
    },
    /// For Solo, the page the user turned to; the engine derives the spread.
    SetPage {
        page: u32,
    },
    NextPage,
    PrevPage,
    SetParity {
        parity: Parity,
    },
    StartSession {
        session_id: Option<SessionId>,
        token: Option<SessionToken>,
    },
    EndSession,
    Join {
        master: DeviceId,
        session_id: SessionId,
        token: SessionToken,
    },
    /// Join by a join code, which names the session but not the Master's device id: the engine
    /// asks the transport for the first link (`TransportRequest::JoinByCode`) and takes the
    /// Master's id from the link that opens (`handle_link` … `Up`).
    JoinByCode {
        session_id: SessionId,
        token: SessionToken,
    },
    Leave,
    /// Solo: forget the paired device and play alone (an extension of V1's actions).
    Unpair,
    SetFollowMode {
        mode: FollowMode,
    },
    /// Master: the app holds the current song's bytes (`size_bytes` long) and can stream them
    /// to Followers that lack it (an extension of V1's actions). Ignored for any other song.
    OfferStream {
        song_id: SongId,
        size_bytes: u64,
        /// Shown by the Followers while it arrives.
        title: Option<String>,
    },
    /// Master: the app holds the bytes of the song it will show next (the next piece of its
    /// set list) and can stream them ahead to Followers that lack it; `None`: there is no such
    /// song any more (an extension of V1's actions). Ignored for the current song.
    OfferNext {
        next: Option<Offered>,
    },
}

/// A song the app can stream: its id (the SHA-256 of its file), size and title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub song_id: SongId,
    pub size_bytes: u64,
    /// Shown by the Followers while it arrives.
    pub title: Option<String>,
}

impl LocalAction {
    /// A change of song or page: what the app applies itself, by the rule of [`crate::Pager`],
    /// before the engine hears of it.
    pub fn is_navigation(&self) -> bool {
        matches!(
            self,
            LocalAction::SetSong { .. }
                | LocalAction::SetPage { .. }
                | LocalAction::NextPage
                | LocalAction::PrevPage
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            LocalAction::SetSong { .. } => "set_song",
            LocalAction::SetPage { .. } => "set_page",
            LocalAction::NextPage => "next_page",
            LocalAction::PrevPage => "prev_page",
            LocalAction::SetParity { .. } => "set_parity",
            LocalAction::StartSession { .. } => "start_session",
            LocalAction::EndSession => "end_session",
            LocalAction::Join { .. } => "join",
            LocalAction::JoinByCode { .. } => "join_by_code",
            LocalAction::Leave => "leave",
            LocalAction::Unpair => "unpair",
            LocalAction::SetFollowMode { .. } => "set_follow_mode",
            LocalAction::OfferStream { .. } => "offer_stream",
            LocalAction::OfferNext { .. } => "offer_next",
        }
    }
}

/// A local action the engine could not carry out; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("`{action}` is not an action for the {role} role")]
    NotForRole { action: &'static str, role: &'static str },
    #[error("a session is already active; end it before starting another")]
    SessionActive,
    #[error("there is no active session to end")]
    NoSession,
    #[error("this device is not in a Choir session")]
    NotInSession,
    #[error("a session token must not be empty")]
    EmptyToken,
    #[error("the session's {0} counter is spent; start a new session")]
    CounterSpent(&'static str),
}

/// What the app sees: the song and page this device shows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub song_id: Option<SongId>,
    pub page_index: u32,
}

/// Events for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Show this song and page now: a change the app did not make itself (a peer's, a follow
    /// mode toggle, a correction of a local prediction). The app's own navigation is never
    /// echoed (see `Engine::handle_navigation`). `navigations` counts the navigations the engine
    /// had handled when it chose this view: a view chosen before the app's latest navigation is
    /// stale, since that navigation (already on screen) came after it.
    Show { view: View, navigations: u64 },
    /// The role's phase changed.
    Phase(Phase),
    /// The link to one peer changed state.
    Link { peer: DeviceId, state: LinkState },
    /// How this device's page follows the position changed (Solo pairing, unpairing, a layout
    /// change): the app predicts its next turns with it.
    Pager(crate::Pager),
    /// Master: a session started; the transport builds the join code from these.
    SessionStarted { session_id: SessionId, token: SessionToken },
    /// The session ended (Master ended it, or a Follower received `SESSION_END`).
    SessionEnded,
    /// Follower: the Master refused the join; the Follower is back in local mode.
    JoinRejected { reason: RejectReason },
    /// Follower: a streamed score is available for the current song.
    StreamPrepare(StreamPrepare),
    /// Follower: clear streamed content (`None`: everything).
    StreamClear { song_id: Option<SongId> },
    /// A peer introduced itself.
    PeerHello { peer: DeviceId, hello: Hello },
    /// Follower: the newest Master position it records changed (in follow and in free mode), for
    /// a "Master: p. 7" marker while free.
    MasterView(View),
    /// Master: the roster changed (membership, a member's link, name, follow mode, what it
    /// shows, whether it lags); at most one per `Timing::roster_interval_ms`, the latest last.
    Roster(crate::Roster),
}

/// Requests to the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportRequest {
    /// Open (or re-open) the link to this peer: a Follower's (re)join, a Solo reconnect.
    Connect { peer: DeviceId },
    /// Close the link to this peer (left, ended, rejected, or an attempt that timed out).
    Disconnect { peer: DeviceId },
    /// Follower: start a first join by the join code (the Master's id is not known yet),
    /// abandoning any attempt still running. Report the outcome with `handle_link` (`Up`, with
    /// the Master's id), `Engine::handle_join_failed` or `Engine::handle_join_refused`.
    JoinByCode,
    /// Follower: abandon the first join by the join code (left before it was answered).
    CancelJoin,
}

/// Everything the engine asks of the world, drained with `Engine::poll_output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this text message on the `maestral-sync` channel to `to`. A broadcast shares one
    /// encoding between all recipients.
    Transmit {
        to: DeviceId,
        data: Arc<str>,
        /// The register the message updates, if it is a register update: the transport may
        /// also send copies of it on the copy channel (`maestral_protocol::COPY_CHANNEL_LABEL`),
        /// a few soon after and again after the link recovers, and the receiver gives them to
        /// [`Engine::handle_copy`](crate::Engine::handle_copy).
        register: Option<maestral_protocol::Register>,
    },
    Event(Event),
    Request(TransportRequest),
}
