//! Connection set-up of [`Link`](super::Link): the peer connection with its settings, waiting
//! for complete SDP, and waking webrtc's driver while the offerer connects.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::peer_connection::transport::RTCDtlsRole;
use tokio::sync::{mpsc, watch};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCSessionDescription,
    SettingEngineBuilder,
};

use super::{Handler, Link, LinkEvent, LinkInner, Role, Shared, Sink, State, copy, side};
use crate::rtc::sdp::Sdp;
use crate::rtc::{DtlsCert, RtcConfig, RtcError, webrtc_error};

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

/// A peer connection with the tuned settings, owned by a new link.
pub(super) async fn build(
    cfg: &RtcConfig,
    cert: Option<&DtlsCert>,
    role: Role,
) -> Result<(Link, mpsc::UnboundedReceiver<LinkEvent>, watch::Receiver<bool>), RtcError> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| RtcError::WebRtc("a link must be created on a tokio runtime".to_owned()))?;
    let (events_tx, events) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            events: Some(Sink::Own(events_tx)),
            opened: false,
            degraded: false,
            closing: false,
            pc: None,
            dc: None,
            copy: None,
            side: None,
            pump: None,
            streams: None,
        }),
        runtime,
    });
    let (gathered_tx, gathered) = watch::channel(false);
    let handler = Arc::new(Handler { shared: Arc::clone(&shared), gathered: gathered_tx });

    let timing = &cfg.timing;
    let network = if cfg.bind_ip.is_ipv4() { NetworkType::Udp4 } else { NetworkType::Udp6 };
    let mut settings = SettingEngineBuilder::new();
    if role == Role::Answerer {
        // Make the offerer the DTLS client, hence the SCTP client: then every step that
        // stalls in webrtc's driver happens on the side that can wake it (see
        // `poke_while_connecting`).
        settings = settings.with_answering_dtls_role(RTCDtlsRole::Server);
    }
    let settings = settings
        .with_ice_timeouts(
            Some(timing.ice_disconnected_timeout),
            Some(timing.ice_failed_timeout),
            Some(timing.ice_keepalive_interval),
        )
        .with_ice_connection_attempts(
            Some(timing.ice_check_interval),
            Some(timing.ice_max_binding_requests),
        )
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_network_types(vec![network])
        .build();
    let mut configuration = RTCConfigurationBuilder::new();
    if let Some(cert) = cert {
        configuration = configuration.with_certificates(vec![cert.cert.clone()]);
    }
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration.build())
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(vec![SocketAddr::new(cfg.bind_ip, 0)])
        .build()
        .await
        .map_err(webrtc_error)?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    copy::attach(&shared, &*pc).await?;
    side::attach(&shared, &*pc, cfg.bind_ip).await?;
    shared.lock().pc = Some(pc);
    let link = Link { inner: Arc::new(LinkInner { shared }) };
    Ok((link, events, gathered))
}
