//! What travels over `POST /v1/join`, as both ends see it: the request body, the listener's
//! decision, and the refusals a Follower reads back.

use std::fmt;

use maestral_protocol::SessionToken;
use serde::{Deserialize, Serialize};

use super::proof::RefusalProof;

/// The body of `POST /v1/join`: the Follower's offer with the session id and token from the join
/// code, and the Follower's Device ID the link will be bound to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequestBody {
    /// The session id from the join code.
    pub session_id: String,
    /// The session token from the join code (a secret, redacted in `Debug` output).
    pub token: SessionToken,
    /// The Follower's Device ID.
    pub device_id: String,
    /// The Follower's complete SDP offer (ICE gathering finished).
    pub offer: String,
}

// The token is a credential: `{:?}` of a request must not put it in a log.
impl fmt::Debug for JoinRequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinRequestBody")
            .field("session_id", &self.session_id)
            .field("token", &self.token)
            .field("device_id", &self.device_id)
            .field("offer", &format_args!("<{} bytes of SDP>", self.offer.len()))
            .finish()
    }
}

/// The handler's decision on one join request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Accepted: the Master's complete SDP answer (`200 {"answer": …}`).
    Answer(String),
    /// Wrong token or unknown session (`403 invalid_token`), with the Master's proof.
    InvalidToken(Option<RefusalProof>),
    /// The session has ended (`403 session_ended`), with the Master's proof.
    SessionEnded(Option<RefusalProof>),
    /// The device id joined this session from another certificate (`403 device_in_use`), with
    /// the Master's proof.
    DeviceInUse(Option<RefusalProof>),
    /// The offer could not be applied (`400 bad_request`).
    BadRequest,
    /// The sync thread cannot decide now (gone, or too slow):
    /// `503 {"reason": "unavailable"}`, which the Follower treats as a reason to retry later.
    /// Not one of the protocol's refusals; it does not count toward the rate limit.
    Unavailable,
}

/// Why the Master refused a join (the `reason` of its answer, or its status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `403 invalid_token`.
    InvalidToken,
    /// `403 session_ended`.
    SessionEnded,
    /// `403 device_in_use`: this device id is bound to another device's certificate for the
    /// session.
    DeviceInUse,
    /// `429 too_many_attempts`.
    TooManyAttempts,
    /// `400 bad_request`.
    BadRequest,
    /// `413 too_large`.
    TooLarge,
    /// `503 unavailable`: the Master is busy or its sync thread is stuck; worth retrying.
    Unavailable,
}

impl RejectReason {
    /// The protocol's string for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::SessionEnded => "session_ended",
            Self::DeviceInUse => "device_in_use",
            Self::TooManyAttempts => "too_many_attempts",
            Self::BadRequest => "bad_request",
            Self::TooLarge => "too_large",
            Self::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidToken => {
                "the conductor's device did not accept this join code — scan the QR code on its screen again"
            }
            Self::SessionEnded => {
                "the conductor has ended this session — scan the new QR code when a session starts"
            }
            Self::DeviceInUse => {
                "another device has joined this session under this device's name — leave, then scan the QR code again"
            }
            Self::TooManyAttempts => {
                "too many wrong join codes were tried from this device — wait a minute, then scan the QR code again"
            }
            Self::BadRequest => {
                "the conductor's device could not understand this device's request — update Maestral on both devices"
            }
            Self::TooLarge => {
                "this device's request was too large for the conductor's device — update Maestral on both devices"
            }
            Self::Unavailable => {
                "the conductor's device is busy and could not answer — Maestral will try again"
            }
        })
    }
}
