//! Connection set-up helpers of [`Link`](super::Link): waiting for complete SDP, and waking
//! webrtc's driver while the offerer connects.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use super::Shared;
use crate::rtc::RtcError;
use crate::rtc::sdp::Sdp;

/// How long [`Link::offer`] / [`Link::answer`] wait for ICE gathering. Host candidates on one
/// bound socket gather in well under a millisecond; this only bounds a broken stack.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// While the offerer connects, how often and for how long it wakes webrtc's driver (see
/// [`poke_while_connecting`]).
const POKE_INTERVAL: Duration = Duration::from_millis(5);
const POKE_WINDOW: Duration = Duration::from_secs(1);

/// Wakes webrtc's driver every few milliseconds until the channel opens.
///
/// webrtc 0.21.1's driver sends what the SCTP layer queued while handling an event (the INIT
/// after the DTLS handshake, the channel's DCEP OPEN after the association comes up) only on
/// its next wake-up, and once ICE is connected it wakes every min(200 ms, keepalive interval).
/// Left alone, that puts ~400 ms into every connection set-up on a LAN; a cheap call that
/// wakes the driver (re-setting the channel's buffered-amount threshold to its default) removes
/// it. Bounded by [`POKE_WINDOW`]: past that the driver's own ticks carry on.
pub(super) async fn poke_while_connecting(shared: Arc<Shared>) {
    let started = tokio::time::Instant::now();
    while started.elapsed() < POKE_WINDOW {
        let dc = {
            let state = shared.lock();
            if state.opened || state.closing {
                return;
            }
            state.dc.clone()
        };
        let Some(dc) = dc else { return };
        let _ = dc.set_buffered_amount_low_threshold(0).await;
        drop(dc);
        tokio::time::sleep(POKE_INTERVAL).await;
    }
}

/// Waits for ICE gathering, then reads the local description with every candidate in it.
pub(super) async fn complete_local_sdp(
    pc: &dyn PeerConnection,
    mut gathered: watch::Receiver<bool>,
    bind_ip: IpAddr,
) -> Result<String, RtcError> {
    match tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Err(RtcError::Closed),
        Err(_) => return Err(RtcError::GatheringTimeout(GATHER_TIMEOUT)),
    }
    let sdp = pc.local_description().await.ok_or(RtcError::Closed)?.sdp;
    if !Sdp::new(&sdp).has_candidates() {
        return Err(RtcError::NoCandidates(bind_ip));
    }
    Ok(sdp)
}

/// Every check of a peer's offer made before a socket is bound (the first thing
/// [`Link::answer`](super::Link::answer) does): the offerer's DTLS role, a parse by the WebRTC
/// stack, a data channel; its candidates cut to a few usable ones (`keep_host_candidates`).
/// Public for the fuzzer.
pub fn check_offer(
    offer_sdp: &str,
    bind_ip: std::net::IpAddr,
) -> Result<RTCSessionDescription, RtcError> {
    let sdp = Sdp::new(offer_sdp);
    if !sdp.all_setup_actpass() {
        return Err(RtcError::NotAnOffer);
    }
    let kept = crate::rtc::sdp::keep_host_candidates(offer_sdp, bind_ip);
    let offer =
        RTCSessionDescription::offer(kept).map_err(|e| RtcError::InvalidSdp(e.to_string()))?;
    offer.unmarshal().map_err(|e| RtcError::InvalidSdp(e.to_string()))?;
    if !sdp.has_data_channel() {
        return Err(RtcError::NoDataChannel);
    }
    Ok(offer)
}
