//! The errors the sync thread reports to the app: each `Display` is one line that tells the user
//! what happened and what to do next.

use std::net::SocketAddr;
use std::path::PathBuf;

use maestral_protocol::DeviceId;
use maestral_sync::ActionError;

use crate::joincode::JoinCodeError;
use crate::pairing::PairingCodeError;
use crate::rtc::RtcError;
use crate::signaling::RejectReason;

/// Something went wrong; the sync thread carries on ([`SyncEvent::Error`](super::SyncEvent)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The engine refused a local action; nothing changed.
    #[error("{0}")]
    Action(#[from] ActionError),
    /// A command for another role.
    #[error("{0}")]
    WrongRole(&'static str),
    /// A peer sent more messages, or more bytes, in one second than allowed and was
    /// disconnected.
    #[error("{peer} sent more than {limit} in a second and was disconnected")]
    Flood { peer: DeviceId, limit: String },
    /// Master: the join code could not be written.
    #[error("{0}")]
    JoinCode(#[from] JoinCodeError),
    /// Follower: a join failed for good.
    #[error("{0}")]
    Join(JoinFailure),
    /// Follower: a first join failed and is retried (said once).
    #[error("{0} — trying again")]
    JoinRetrying(JoinFailure),
    /// A role's state file could not be read, or was unreadable and set aside.
    #[error("{error}; {}", consequence(name))]
    StateFile { name: &'static str, error: crate::state::StateFileError },
    /// A role's state file could not be written.
    #[error("could not keep {} ({reason}); {}", path.display(), consequence_of_save(path))]
    SaveState { path: PathBuf, reason: String },
    /// Master: the saved certificate could not be loaded.
    #[error("the saved session's certificate is unreadable ({0}); starting a new session")]
    SavedCertificate(RtcError),
    /// Master: the saved address is taken; a new one was bound.
    #[error("could not listen on the saved address {addr} ({reason}); singers need the new code")]
    SavedAddress { addr: SocketAddr, reason: String },
    /// Solo: a pairing code could not be read or written.
    #[error("{0}")]
    PairingCode(#[from] PairingCodeError),
    /// Solo: the other device's offer could not be answered.
    #[error("this pairing code did not work: {0}")]
    PairingOffer(RtcError),
    /// Solo: the other device's answer could not be applied.
    #[error("this answer code did not work: {0}")]
    PairingAnswer(RtcError),
    /// Solo: an answer code came before this device made an offer.
    #[error("make an offer code first, then scan the answer")]
    NoOffer,
    /// Solo: the pairing's link did not open, or closed at once.
    #[error("{0}")]
    Pairing(&'static str),
    /// Follower: `--state-dir` alone asked to rejoin, but no session is stored.
    #[error("no session is stored in {}; join with the code the conductor shows", dir.display())]
    NothingToRejoin { dir: PathBuf },
    /// Master: a Follower's stream channel was dropped (it asked for a song that is not the
    /// current one, sent nonsense or data nobody asked for). The session goes on.
    #[error("a score stream to {peer} was stopped: {why}")]
    StreamRefused { peer: DeviceId, why: &'static str },
    /// A score over the streaming limit is not streamed.
    #[error(
        "this score is too large to stream ({} MB, the limit is {} MB); singers need their own copy",
        size / 1_000_000,
        max / 1_000_000
    )]
    StreamTooLarge { size: u64, max: u64 },
    /// Follower: a stream stopped before the score was whole (tried again where that helps).
    #[error("receiving the score stopped: {why}")]
    StreamStopped { song: maestral_protocol::SongId, why: String },
    /// Solo: the stored pairing's certificate could not be loaded.
    #[error("the stored pairing's certificate is unreadable ({0}); pair the two devices again")]
    PairingCertificate(RtcError),
    /// Solo: the call-back listener could not be bound.
    #[error(
        "could not listen for the paired device ({0}); it will need a new pairing after a drop-out"
    )]
    CallbackListener(String),
}

/// What a state file that cannot be used means for the performer.
fn consequence(name: &str) -> &'static str {
    match name {
        crate::state::files::MASTER_SESSION => "a new session starts",
        crate::state::files::FOLLOWER_SESSION => "join the session again with its code",
        crate::state::files::SOLO_PAIRING => "pair the two devices again",
        crate::state::files::MASTER_IDENTITY => {
            "a new certificate is made (codes of earlier sessions are no longer refused for good)"
        }
        _ => "it is not used",
    }
}

/// What a state file that cannot be written means after a restart.
fn consequence_of_save(path: &std::path::Path) -> &'static str {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(crate::state::files::MASTER_SESSION) => "after a restart singers will need a new code",
        Some(crate::state::files::FOLLOWER_SESSION) => {
            "after a restart this device will need the join code again"
        }
        Some(crate::state::files::SOLO_PAIRING) => {
            "after a restart the two devices will need a new pairing"
        }
        _ => "it will not be remembered",
    }
}

/// Starting what was asked failed for good ([`SyncEvent::StartFailed`](super::SyncEvent)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The sync thread or its runtime could not be started.
    #[error(
        "the operating system refused a thread ({0}); close other programs and restart Maestral"
    )]
    Thread(String),
    /// Master: no DTLS certificate could be made.
    #[error("could not create a certificate: {0}")]
    Certificate(RtcError),
    /// Master: the join listener could not be bound.
    #[error("could not listen for singers on {addr}: {reason} — pick another address or port")]
    Listen { addr: SocketAddr, reason: String },
    /// Solo: the offer's connection could not be prepared.
    #[error("could not prepare a pairing offer: {0}")]
    PairingOffer(RtcError),
    /// Solo: the offer could not become a code.
    #[error("{0}")]
    PairingCode(#[from] PairingCodeError),
}

/// Why a join (a Follower's, or a Solo call-back) got no link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinFailure {
    /// The listener refused it: a `403` with the proof of the certificate the join code pins,
    /// or a refusal for the request's shape or the listener's load.
    #[error("{0}")]
    Refused(RejectReason),
    /// A `403` without the pinned certificate's proof: any device at that address can say it,
    /// so it is only a failed attempt (the join goes on, and asks where the Master is).
    #[error(
        "a device at the conductor's address refused this join ({}) but could not prove it is the conductor's device",
        .0.as_str()
    )]
    Unproven(RejectReason),
    /// The answer's certificate is not the one the join code names. Any device at that address
    /// can answer so: a failed attempt, as [`Self::Unproven`].
    #[error(
        "the device that answered is not the conductor's device named by this join code \
         (certificate fingerprint mismatch)"
    )]
    Forged,
    /// Anything else: unreachable, timed out, did not open (the text says which).
    #[error("{0}")]
    Other(String),
}

impl JoinFailure {
    /// The Master was not surely reached: worth asking where it is (a locate query) beside the
    /// next attempt. Only a proven refusal is surely the Master's; a busy answer (`503`, `429`)
    /// or a refusal of the request's shape can come from any device at that address.
    pub(crate) fn unreached(&self) -> bool {
        !matches!(
            self,
            JoinFailure::Refused(
                RejectReason::InvalidToken | RejectReason::SessionEnded | RejectReason::DeviceInUse
            )
        )
    }

    /// The protocol's reason, for the refusals the engine handles like a `JOIN_REJECT`.
    pub(crate) fn protocol_reason(&self) -> Option<maestral_protocol::RejectReason> {
        match self {
            JoinFailure::Refused(RejectReason::InvalidToken) => {
                Some(maestral_protocol::RejectReason::InvalidToken)
            }
            JoinFailure::Refused(RejectReason::SessionEnded) => {
                Some(maestral_protocol::RejectReason::SessionEnded)
            }
            // Not even the Master's proven `device_in_use` ends a join: a device id is bound to
            // the first certificate that joins under it, and a token holder who learned a
            // singer's id (it travels in every join request) before that singer's first join
            // could have taken it. The singer is told (the app shows it once) and the join goes
            // on, as after any other failed attempt.
            _ => None,
        }
    }
}
