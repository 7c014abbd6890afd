//! What the worker's spawned tasks report back ([`Internal`]), and how a link came to be ready.

use std::sync::Arc;

use maestral_protocol::DeviceId;
use tokio::sync::mpsc;

use super::error::{JoinFailure, StartError, SyncError};
use crate::joincode::JoinCode;
use crate::rtc::{Link, LinkEvent};

/// Hands what a join task came to (`Internal::Ready` or its failure) to the worker; a link
/// nobody will take any more (the worker has stopped) is closed here.
pub(crate) async fn hand_over(tx: &mpsc::UnboundedSender<Internal>, msg: Internal) {
    if let Err(mpsc::error::SendError(Internal::Ready { link, .. })) = tx.send(msg) {
        link.close().await;
    }
}

/// How a link came to be ready.
pub(crate) enum ReadyKind {
    /// The Follower's first join: the Master's id was learned from its first message.
    FirstJoin(JoinCode),
    /// A rejoin, or this device's Solo call-back to its partner.
    Known,
    /// A rejoin at the address the Master answered a locate query from: the stored code gets it.
    Moved(JoinCode),
    /// A link this device answered (a Follower accepted by this Master, or the Solo partner
    /// calling back), opened with the certificate `fingerprint`.
    Answered { fingerprint: String, from: std::net::IpAddr },
    /// A Solo pairing: the partner's id and name were learned from its first message, its
    /// certificate fingerprint from its code.
    Solo { fingerprint: String, name: String },
}

/// Results of tasks the worker spawned.
pub(crate) enum Internal {
    Ready {
        peer: DeviceId,
        link: Link,
        events: mpsc::UnboundedReceiver<LinkEvent>,
        first: Option<String>,
        kind: ReadyKind,
        /// The Follower join attempt this comes from (0: not a Follower join).
        attempt: u64,
    },
    /// A join attempt failed; `peer` is the Master for a rejoin (or the Solo partner for a
    /// call-back), `None` for a first join.
    JoinFailed {
        peer: Option<DeviceId>,
        error: JoinFailure,
        attempt: u64,
    },
    SoloOffer {
        link: Link,
        events: mpsc::UnboundedReceiver<LinkEvent>,
        code: String,
    },
    PairCode(String),
    Error(SyncError),
    StartFailed(StartError),
    /// A state file write finished: the file's name, and the error if it failed.
    Saved {
        name: String,
        error: Option<String>,
    },
    /// Solo: the call-back listener is bound.
    SoloListening(crate::signaling::SignalingServer),
    /// Master: this device's address is now `ip`; `server` listens there (when the old
    /// listener was bound to the old address).
    AddressChanged {
        ip: std::net::IpAddr,
        server: Option<crate::signaling::SignalingServer>,
    },
    /// Follower: the Master of the stored session answered the locate query of rejoin attempt
    /// `attempt` from another address; `code` is the stored code with that address.
    Located {
        code: JoinCode,
        attempt: u64,
    },
    /// Follower: fetch task `task` has `got` bytes so far.
    StreamProgress {
        song: maestral_protocol::SongId,
        task: u64,
        got: u64,
    },
    /// Follower: fetch task `task` ended, whole or not.
    StreamDone {
        song: maestral_protocol::SongId,
        task: u64,
        outcome: Result<Arc<[u8]>, (super::stream::Partial, super::stream::Stop)>,
    },
}
