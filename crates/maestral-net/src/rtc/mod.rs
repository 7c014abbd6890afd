//! One WebRTC peer connection on the LAN carrying the ordered, reliable `maestral-sync`
//! DataChannel, as a [`Link`] that reports what happens on it as [`LinkEvent`]s.
//!
//! Built on `webrtc` 0.21 (the async layer over the sans-IO `rtc` core). Deliberately narrow:
//!
//! - host ICE candidates on one chosen address ([`RtcConfig::bind_ip`]), no STUN/TURN, mDNS off;
//! - complete SDP: [`Link::offer`] and [`Link::answer`] return only once ICE gathering has
//!   finished, so the SDP carries every candidate and nothing trickles;
//! - one protocol channel, labelled [`CHANNEL_LABEL`], created by the offerer, and beside it
//!   the copy channel (`maestral-copy`, unordered, never retransmitted, negotiated out of band
//!   on stream 1001, made by both sides with the connection: [`Link::send_copy`],
//!   [`LinkEvent::Copy`]), and the side channel (`maestral-side`, stream 1002) on which each
//!   side announces the UDP socket its copies then come from as signed datagrams, outside
//!   SCTP's queue and retransmission timer ([`Link::side_path_ready`]);
//! - ICE timers tuned for a LAN ([`RtcTiming`]);
//! - an optional DTLS certificate ([`DtlsCert`]) reused across connections, so a Choir Master
//!   keeps one fingerprint for a whole session, across restarts too.
//!
//! Event order on a link's receiver: `Open` first (once the channel can send), then `Text` /
//! `Binary` in arrival order (`Copy` anywhere among them), with `Degraded` / `Recovered` in
//! between, and `Closed` last, exactly once, after which the receiver ends. A link that never
//! opens still ends with `Closed`.
//!
//! Modules: [`link`] the connection and its channel, [`cert`] the DTLS certificate, [`sdp`] the
//! one SDP reader of this crate.

pub mod cert;
pub mod link;
pub mod sdp;
pub mod stream;
mod wait;

use std::net::IpAddr;
use std::time::Duration;

pub use cert::DtlsCert;
pub use link::{Link, LinkEvent, check_offer};
pub use sdp::{keep_host_candidates, only_candidates_from, sdp_fingerprints, sha256_fingerprint};
pub use stream::{StreamChannel, StreamEvent};
pub use wait::{wait_closed, wait_open};

/// The label of the one protocol channel (`docs/protocol.md` §3.1).
pub const CHANNEL_LABEL: &str = "maestral-sync";

/// The largest message a link sends: 64 KiB, the SDP `max-message-size` both sides announce and
/// the protocol's own limit.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// ICE timers. The defaults are tuned for a LAN, where webrtc's own (made for the internet) take
/// 5 s to call a silent peer disconnected and 30 s to give it up. Connection set-up time depends
/// less on them than on waking webrtc's driver (see `poke_while_connecting`): ~35 ms from offer
/// to open channel on loopback, ~430 ms without the wake-ups.
///
/// webrtc counts the failed timeout from the moment the link went disconnected, so a peer that
/// vanishes shows as [`LinkEvent::Degraded`] after `ice_disconnected_timeout` and as
/// [`LinkEvent::Closed`] after `ice_disconnected_timeout + ice_failed_timeout`. A connection
/// attempt that never succeeds also fails after that sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcTiming {
    /// Pause between ICE connectivity checks while connecting (webrtc default 200 ms).
    pub ice_check_interval: Duration,
    /// Checks sent on one candidate pair before giving it up (webrtc default 7). The default here
    /// keeps the per-pair window at webrtc's ~1.4 s despite the shorter interval, so a peer slow
    /// to answer (Wi-Fi power saving) is not given up too early.
    pub ice_max_binding_requests: u16,
    /// Consent keepalive interval once connected (webrtc default 2 s).
    pub ice_keepalive_interval: Duration,
    /// Silence after which the link counts as disconnected (webrtc default 5 s).
    pub ice_disconnected_timeout: Duration,
    /// Further silence after which it counts as failed (webrtc default 25 s).
    pub ice_failed_timeout: Duration,
}

impl Default for RtcTiming {
    fn default() -> Self {
        Self {
            ice_check_interval: Duration::from_millis(20),
            ice_max_binding_requests: 70,
            ice_keepalive_interval: Duration::from_millis(250),
            ice_disconnected_timeout: Duration::from_secs(1),
            ice_failed_timeout: Duration::from_secs(2),
        }
    }
}

/// Where and how a [`Link`] connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcConfig {
    /// The one local address ICE binds and advertises as a host candidate (the LAN address, or
    /// `127.0.0.1` in tests). Only remote candidates of the same IP family are used. (webrtc
    /// expands an unspecified address, `0.0.0.0`, to every non-loopback interface.)
    pub bind_ip: IpAddr,
    /// ICE timers.
    pub timing: RtcTiming,
}

impl RtcConfig {
    /// A config binding `bind_ip` with the tuned default timers.
    pub fn new(bind_ip: IpAddr) -> Self {
        Self { bind_ip, timing: RtcTiming::default() }
    }
}

/// What went wrong setting up or using a [`Link`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcError {
    /// The SDP text could not be parsed, or the peer connection refused it.
    #[error("the session description is not usable: {0}")]
    InvalidSdp(String),
    /// [`Link::answer`] was given an answer (its `a=setup` is not `actpass`).
    #[error("expected an SDP offer but got an answer; pass the offer the other device created")]
    NotAnOffer,
    /// [`Link::accept_answer`] was given an offer (its `a=setup` is `actpass`).
    #[error("expected an SDP answer but got an offer; pass the answer the other device created")]
    NotAnAnswer,
    /// The offer has no `m=application` section, so no DataChannel could ever open.
    #[error("the offer carries no data channel (no m=application section)")]
    NoDataChannel,
    /// Gathering produced no candidate: the bind address is probably not one of this device's.
    #[error(
        "no ICE candidate could be gathered on {0}; check that it is one of this device's addresses"
    )]
    NoCandidates(IpAddr),
    /// ICE gathering did not finish in time.
    #[error("ICE gathering did not finish within {0:?}")]
    GatheringTimeout(Duration),
    /// The channel has not opened yet: wait for [`LinkEvent::Open`].
    #[error("the data channel is not open yet; wait for LinkEvent::Open before sending")]
    NotOpen,
    /// The message is longer than [`MAX_MESSAGE_SIZE`] bytes.
    #[error("a message of {0} bytes is over the {MAX_MESSAGE_SIZE}-byte limit")]
    TooLarge(usize),
    /// The link is closed or closing; a new link is needed.
    #[error("the link is closed")]
    Closed,
    /// Generating or loading a DTLS certificate failed.
    #[error("DTLS certificate: {0}")]
    Certificate(String),
    /// Any other error from the WebRTC stack, as text.
    #[error("WebRTC: {0}")]
    WebRtc(String),
}

pub(crate) fn webrtc_error(error: webrtc::error::Error) -> RtcError {
    match error {
        webrtc::error::Error::ErrDataChannelClosed | webrtc::error::Error::ErrConnectionClosed => {
            RtcError::Closed
        }
        other => RtcError::WebRtc(other.to_string()),
    }
}
