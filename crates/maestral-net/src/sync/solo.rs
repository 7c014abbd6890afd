//! Solo pairing and reconnection: the offer and answer codes, the handshake that tells the two
//! devices each other's id, `PAIR_INFO` (where and how to call back), the call-back listener,
//! and calling the partner back when the engine wants it.

use std::net::SocketAddr;
use std::time::Duration;

use maestral_protocol::{
    DeviceId, Envelope, Hello, Message, Mode, PairInfo, SessionId, SessionToken,
};
use tokio::sync::mpsc;

use super::error::{JoinFailure, StartError, SyncError};
use super::handle::SyncEvent;
use super::link::{first_text, wait_open};
use super::master::answer_join;
use super::worker::{Ctx, Internal, ReadyKind};
use crate::pairing;
use crate::rtc::{Link, LinkEvent, RtcConfig};
use crate::signaling::{
    JoinOutcome, JoinRequestBody, PendingJoin, SignalingServer, channel_handler, post_join,
};

/// `session_id` of a Solo call-back on the listener.
const SOLO_SESSION: &str = "solo";

#[derive(Default)]
pub(crate) struct SoloIo {
    /// An offer waiting for its answer code.
    pending_offer: Option<(Link, mpsc::UnboundedReceiver<LinkEvent>)>,
    /// The paired device, and how to reach each other again without a new scan.
    peer: Option<SoloPeer>,
    /// The call-back listener, once bound.
    server: Option<SignalingServer>,
    /// Whether a listener is bound or being bound.
    listening: bool,
    join_rx: Option<mpsc::Receiver<PendingJoin>>,
}

/// What two paired Solo devices know of each other to reconnect by themselves: each runs a
/// small listener and gives the other its address and a key over the channel (`PAIR_INFO`).
#[derive(Debug, Clone)]
struct SoloPeer {
    id: DeviceId,
    /// The key this device accepts from the partner.
    my_key: String,
    /// The partner's listener and the key it accepts, once its `PAIR_INFO` arrived.
    theirs: Option<(SocketAddr, String)>,
}

impl SoloIo {
    pub(crate) fn join_requests(&mut self) -> Option<&mut mpsc::Receiver<PendingJoin>> {
        self.join_rx.as_mut()
    }

    /// Makes an offer code to show.
    pub(crate) fn offer(&mut self, ctx: &Ctx) {
        self.listen(ctx);
        let (cfg, tx) = (ctx.cfg.rtc, ctx.internal.clone());
        tokio::spawn(async move {
            let msg = match Link::offer(&cfg, None).await {
                Ok((link, sdp, events)) => match pairing::encode_offer(&sdp) {
                    Ok(code) => Internal::SoloOffer { link, events, code },
                    Err(e) => {
                        link.close().await;
                        Internal::StartFailed(e.into())
                    }
                },
                Err(e) => Internal::StartFailed(StartError::PairingOffer(e)),
            };
            report(&tx, msg).await;
        });
    }

    /// The offer is ready: it waits for the answer code (replacing an older offer).
    pub(crate) fn offer_ready(
        &mut self,
        ctx: &Ctx,
        link: Link,
        events: mpsc::UnboundedReceiver<LinkEvent>,
        code: String,
    ) {
        if let Some((old, _)) = self.pending_offer.replace((link, events)) {
            tokio::spawn(async move { old.close().await });
        }
        ctx.emit(SyncEvent::PairCode(code));
    }

    /// Answers the other device's offer code: shows an answer code, then waits for the link.
    pub(crate) fn answer(&mut self, ctx: &Ctx, code: String) {
        self.listen(ctx);
        let (cfg, tx, hello, timeout) =
            (ctx.cfg.rtc, ctx.internal.clone(), intro(ctx), ctx.cfg.join_timeout * 12);
        tokio::spawn(async move {
            let offer = match pairing::decode_offer(&code) {
                Ok(o) => o,
                Err(e) => return report(&tx, Internal::Error(e.into())).await,
            };
            let (link, answer, events) = match Link::answer(&cfg, None, &offer).await {
                Ok(x) => x,
                Err(e) => return report(&tx, Internal::Error(SyncError::PairingOffer(e))).await,
            };
            match pairing::encode_answer(&answer) {
                Ok(c) => report(&tx, Internal::PairCode(c)).await,
                Err(e) => {
                    link.close().await;
                    return report(&tx, Internal::Error(e.into())).await;
                }
            }
            // The other device may take a while to scan the answer.
            handshake(link, events, hello, timeout, tx).await;
        });
    }

    /// Takes the other device's answer code, completing the pairing.
    pub(crate) fn accept(&mut self, ctx: &Ctx, code: String) {
        let Some((link, events)) = self.pending_offer.take() else {
            ctx.error(SyncError::NoOffer);
            return;
        };
        let (tx, hello, timeout) = (ctx.internal.clone(), intro(ctx), ctx.cfg.join_timeout);
        tokio::spawn(async move {
            let answer = match pairing::decode_answer(&code) {
                Ok(a) => a,
                Err(e) => {
                    link.close().await;
                    return report(&tx, Internal::Error(e.into())).await;
                }
            };
            if let Err(e) = link.accept_answer(&answer).await {
                link.close().await;
                return report(&tx, Internal::Error(SyncError::PairingAnswer(e))).await;
            }
            handshake(link, events, hello, timeout, tx).await;
        });
    }

    /// A new pairing: start the listener the partner will call back on, and tell it how.
    pub(crate) fn paired(&mut self, ctx: &mut Ctx, peer: &DeviceId) {
        self.peer = Some(SoloPeer { id: peer.clone(), my_key: new_key(), theirs: None });
        self.listen(ctx);
        self.send_pair_info(ctx, peer);
    }

    /// Binds the listener the partner calls back on (once). Started with the pairing itself
    /// (offer or answer), so it is bound before the pairing's link opens and `PAIR_INFO` goes
    /// out at once: a drop-out right after pairing must still find the way back.
    pub(crate) fn listen(&mut self, ctx: &Ctx) {
        if self.listening {
            return;
        }
        self.listening = true;
        let (handler, rx) = channel_handler(16);
        self.join_rx = Some(rx);
        let addr = SocketAddr::new(ctx.cfg.rtc.bind_ip, 0);
        let tx = ctx.internal.clone();
        // Binding is async; the listener comes back as an internal message.
        tokio::spawn(async move {
            let msg = match SignalingServer::bind(addr, handler).await {
                Ok(s) => Internal::SoloListening(s),
                Err(e) => Internal::Error(SyncError::CallbackListener(e.to_string())),
            };
            report(&tx, msg).await;
        });
    }

    /// The call-back listener is bound: the partner can be told where it is.
    pub(crate) fn listening(&mut self, ctx: &mut Ctx, server: SignalingServer) {
        self.server = Some(server);
        if let Some(peer) = self.peer.as_ref().map(|sp| sp.id.clone()) {
            self.send_pair_info(ctx, &peer);
        }
    }

    /// Sends our listener's address and the key we accept to the partner (`PAIR_INFO`).
    pub(crate) fn send_pair_info(&mut self, ctx: &mut Ctx, peer: &DeviceId) {
        let (Some(server), Some(sp)) = (&self.server, &self.peer) else { return };
        if sp.id != *peer {
            return;
        }
        let info = PairInfo { host: server.local_addr().to_string(), proof_key: sp.my_key.clone() };
        let me = ctx.cfg.device_id.clone();
        let text =
            Envelope::new(SessionId::default(), me, ctx.clock.wall(), Message::PairInfo(info));
        ctx.links.send(peer, text.encode().into());
    }

    /// The partner's `PAIR_INFO`: where and how to reach it again.
    pub(crate) fn pair_info(&mut self, peer: &DeviceId, info: &PairInfo) {
        let Ok(host) = info.host.parse::<SocketAddr>() else {
            tracing::debug!(%peer, "PAIR_INFO with an unusable host dropped");
            return;
        };
        if let Some(sp) = self.peer.as_mut()
            && sp.id == *peer
            && !info.proof_key.is_empty()
        {
            sp.theirs = Some((host, info.proof_key.clone()));
        }
    }

    /// The engine wants the partner back: the lower device id calls, the other waits for the
    /// call (both calling at once would open two links).
    pub(crate) fn reconnect(&mut self, ctx: &Ctx, peer: DeviceId) {
        let Some(sp) = self.peer.clone().filter(|sp| sp.id == peer) else { return };
        if ctx.cfg.device_id > peer {
            return;
        }
        let Some((host, key)) = sp.theirs else { return };
        let (cfg, me, timeout, tx) =
            (ctx.cfg.rtc, ctx.cfg.device_id.clone(), ctx.cfg.join_timeout, ctx.internal.clone());
        tokio::spawn(async move {
            let msg = match call(&cfg, &me, host, &key, timeout).await {
                Ok((link, events)) => Internal::Ready {
                    peer,
                    link,
                    events,
                    first: None,
                    kind: ReadyKind::Known,
                    attempt: 0,
                },
                Err(error) => Internal::JoinFailed { peer: Some(peer), error, attempt: 0 },
            };
            report(&tx, msg).await;
        });
    }

    /// The partner calls back on our listener with our key.
    pub(crate) fn callback(&mut self, ctx: &Ctx, p: PendingJoin) {
        let r = &p.request;
        let Some(sp) = self.peer.clone().filter(|sp| {
            r.session_id == SOLO_SESSION
                && r.device_id == sp.id.as_str()
                && r.token == SessionToken::new(sp.my_key.as_str())
        }) else {
            // A caller gone already needs no answer.
            let _ = p.reply.send(JoinOutcome::InvalidToken);
            return;
        };
        let (cfg, tx, timeout) = (ctx.cfg.rtc, ctx.internal.clone(), ctx.cfg.join_timeout);
        tokio::spawn(answer_join(p, cfg, None, sp.id, timeout, tx));
    }

    pub(crate) async fn shutdown(&mut self) {
        if let Some((link, _)) = self.pending_offer.take() {
            link.close().await;
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Hands a task's result to the worker; a link nobody will take is closed here.
async fn report(tx: &mpsc::UnboundedSender<Internal>, msg: Internal) {
    match tx.send(msg) {
        Err(mpsc::error::SendError(
            Internal::Ready { link, .. } | Internal::SoloOffer { link, .. },
        )) => link.close().await,
        Err(_) => tracing::debug!("a Solo result came after the sync thread stopped"),
        Ok(()) => {}
    }
}

/// The first message on a new Solo link: a HELLO, so the other device learns our id before its
/// engine hears of the link (the engine sends its own HELLO right after).
fn intro(ctx: &Ctx) -> String {
    Envelope::new(
        SessionId::default(),
        ctx.cfg.device_id.clone(),
        ctx.clock.wall(),
        Message::Hello(Hello {
            mode: Mode::Solo,
            device_name: ctx.cfg.device_name.clone(),
            app_version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec!["webrtc".into()],
        }),
    )
    .encode()
}

/// A pairing key: 128 bits, URL-safe base64.
fn new_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Calls the paired device's listener with its key and opens a new link.
async fn call(
    cfg: &RtcConfig,
    me: &DeviceId,
    host: SocketAddr,
    key: &str,
    timeout: Duration,
) -> Result<(Link, mpsc::UnboundedReceiver<LinkEvent>), JoinFailure> {
    let (link, offer, mut events) = Link::offer(cfg, None)
        .await
        .map_err(|e| JoinFailure::Other(format!("could not prepare a connection: {e}")))?;
    let body = JoinRequestBody {
        session_id: SOLO_SESSION.into(),
        token: key.into(),
        device_id: me.to_string(),
        offer,
    };
    let answer = match post_join(host, &body, timeout).await {
        Ok(a) => a,
        Err(e) => {
            link.close().await;
            return Err(JoinFailure::Other(e.to_string()));
        }
    };
    if let Err(e) = link.accept_answer(&answer).await {
        link.close().await;
        return Err(JoinFailure::Other(format!("the paired device's answer did not work: {e}")));
    }
    if !wait_open(&mut events, timeout).await {
        link.close().await;
        return Err(JoinFailure::Other("the connection to the paired device did not open".into()));
    }
    Ok((link, events))
}

/// Opens a Solo link, introduces this device, and learns the partner's id.
async fn handshake(
    link: Link,
    mut events: mpsc::UnboundedReceiver<LinkEvent>,
    hello: String,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let failed = if !wait_open(&mut events, timeout).await {
        "the pairing did not connect — try again"
    } else if link.send_text(&hello).await.is_err() {
        "the pairing connection closed at once — try again"
    } else {
        match first_text(&mut events, timeout).await {
            Some((peer, text)) => {
                let kind = ReadyKind::Solo;
                let first = Some(text);
                let msg = Internal::Ready { peer, link, events, first, kind, attempt: 0 };
                return report(&tx, msg).await;
            }
            None => "the other device did not introduce itself",
        }
    };
    link.close().await;
    report(&tx, Internal::Error(SyncError::Pairing(failed))).await;
}
