//! Solo pairing and reconnection: the offer and answer codes, the handshake that tells the two
//! devices each other's id, `PAIR_INFO` (where and how to call back), the call-back listener,
//! calling the partner back when the engine wants it, and the pairing kept across restarts.
//!
//! # The call-back (`docs/protocol.md` §9)
//!
//! Each device has one certificate for its pairing, kept with it; at pairing each pins the
//! other's fingerprint (read from the offer or answer code). Each makes a key and sends it with
//! its listener's address in `PAIR_INFO`, over the pairing's DTLS channel. A call-back is a
//! `POST /v1/join` to the partner's listener with `session_id` `"solo"`, the caller's
//! `device_id`, its offer, and as `token` `M1C.<counter>.<mac>`:
//!
//! - `counter`: larger than any the caller sent before (kept across restarts);
//! - `mac`: hex HMAC-SHA-256, under the callee's key, of
//!   `maestral-solo-callback-v1|<caller id>|<callee id>|<offer's sha-256 fingerprint>|<counter>`.
//!
//! The callee refuses (`403`) a caller that is not its partner, an offer whose fingerprint is
//! not the pinned one, a counter not above the last it accepted (a replay), or a wrong mac
//! (checked in constant time); it refuses (`503`, try later) while its link to the partner is
//! up, so a call-back never replaces a working link. It answers with its pinned certificate,
//! and the caller checks the answer's fingerprint. The key never travels outside DTLS, and a
//! replayed body could not complete the DTLS handshake anyway (the offer's fingerprint is the
//! partner's, whose private key the replayer lacks).
//!
//! Both devices call back (docs/behaviour.md §12.2). When both calls cross, the higher id's call
//! wins: the lower id refuses the incoming call (`503`) while its own is in flight, the higher id
//! takes the incoming call and drops its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use maestral_protocol::{
    DeviceId, Envelope, Hello, Message, Mode, PairInfo, SessionId, SessionToken,
};
use maestral_sync::{LocalAction, StateView};
use tokio::sync::mpsc;

use super::callback::{callback_proof, new_key, verify};
use super::error::{StartError, SyncError};
use super::handle::SyncEvent;
use super::link::{Callee, dial, first_text, wait_open};
use super::master::answer_join;
use super::store::{self, SavedPairing, SavedPartner};
use super::worker::{Ctx, Internal, ReadyKind};
use crate::joincode::fingerprints_match;
use crate::pairing;
use crate::rtc::{DtlsCert, Link, LinkEvent, sha256_fingerprint};
use crate::signaling::{
    JoinOutcome, JoinRequestBody, PendingJoin, SignalingServer, channel_handler,
};
use crate::state::files;

/// `session_id` of a Solo call-back on the listener.
const SOLO_SESSION: &str = "solo";

#[derive(Default)]
pub(crate) struct SoloIo {
    /// This device's pairing certificate (made with the first offer or answer, kept with the
    /// pairing).
    cert: Option<DtlsCert>,
    /// An offer waiting for its answer code.
    pending_offer: Option<(Link, mpsc::UnboundedReceiver<LinkEvent>)>,
    /// The paired device, and how to reach each other again without a new scan.
    peer: Option<SavedPartner>,
    /// The call-back listener, once bound.
    server: Option<SignalingServer>,
    /// Where the listener was bound before a restart (the partner calls there).
    listen_at: Option<SocketAddr>,
    /// Whether a listener is bound or being bound.
    listening: bool,
    join_rx: Option<mpsc::Receiver<PendingJoin>>,
    /// This device's call-back whose result is still wanted (0: none in flight).
    calling: Arc<AtomicU64>,
    next_call: u64,
    /// Answering the partner's call-back until then: no call of our own meanwhile.
    answering_until: Option<tokio::time::Instant>,
    /// What `solo-pairing.json` holds (as this thread last wrote or read it).
    saved: Option<SavedPairing>,
    /// The shared song's bytes, served to the partner if it lacks them (beyond V1).
    pub(crate) served: super::stream::ServedSlot,
    /// Scores being fetched from the partner, in memory only.
    pub(crate) fetches: super::stream::Fetches,
}

impl SoloIo {
    pub(crate) fn join_requests(&mut self) -> Option<&mut mpsc::Receiver<PendingJoin>> {
        self.join_rx.as_mut()
    }

    /// At start: the pairing kept in the state directory, if any, is taken back; the engine
    /// calls the partner back at once, and the listener is bound where it was.
    pub(crate) fn resume(&mut self, ctx: &mut Ctx) {
        let Some(dir) = ctx.cfg.state_dir.clone() else { return };
        let kept = match store::load::<SavedPairing>(&dir, files::SOLO_PAIRING) {
            Ok(Some(kept)) => kept,
            Ok(None) => return,
            Err(e) => return ctx.error(e),
        };
        let cert = match DtlsCert::from_pem(&kept.cert_pem) {
            Ok(cert) => cert,
            Err(e) => {
                let reason = e.to_string();
                let error = crate::state::broken(&dir.join(files::SOLO_PAIRING), reason);
                ctx.error(SyncError::StateFile { name: files::SOLO_PAIRING, error });
                return;
            }
        };
        self.cert = Some(cert);
        self.listen_at = kept.listen;
        self.peer = Some(kept.partner.clone());
        let partner = kept.partner.id.clone();
        let (state, shown) = (kept.state.clone(), kept.shown);
        self.saved = Some(kept);
        self.listen(ctx);
        let state = state.or_else(|| match ctx.engine.state() {
            StateView::Solo(s) => Some(s),
            _ => None,
        });
        if let Some(state) = state {
            let now = ctx.now();
            ctx.engine.resume_solo(now, &partner, &state, shown);
        }
    }

    /// After every input: keeps the pairing and the shared state as they now are.
    pub(crate) fn save(&mut self, ctx: &mut Ctx) {
        if let StateView::Solo(state) = ctx.engine.state() {
            self.served.keep_only(state.song_id.as_ref());
        }
        let (Some(peer), Some(cert)) = (&self.peer, &self.cert) else { return };
        let StateView::Solo(state) = ctx.engine.state() else { return };
        let listen = self.server.as_ref().map(SignalingServer::local_addr).or(self.listen_at);
        let now = SavedPairing {
            cert_pem: cert.to_pem().to_owned(),
            listen,
            partner: peer.clone(),
            state: Some(state),
            shown: Some(ctx.engine.view().page_index),
        };
        if self.saved.as_ref() == Some(&now) {
            return;
        }
        // The file holds the certificate's private key and both keys: owner-only.
        ctx.store(|w| w.save(files::SOLO_PAIRING, &now));
        self.saved = Some(now);
    }

    /// The performer unpairs: the pairing is forgotten here and on disk, and the engine plays
    /// alone.
    pub(crate) fn unpair(&mut self, ctx: &mut Ctx) {
        self.fetches.clear(None);
        self.peer = None;
        self.cert = None;
        self.calling.store(0, Ordering::SeqCst);
        self.saved = None;
        ctx.store(|w| w.remove(files::SOLO_PAIRING));
        ctx.local(LocalAction::Unpair);
    }

    /// The partner: where a stream is fetched from.
    pub(crate) fn partner(&self) -> Option<DeviceId> {
        self.peer.as_ref().map(|p| p.id.clone())
    }

    /// Before a new pairing: a partner kept (or resumed) is unpaired.
    pub(crate) fn forget_kept(&mut self, ctx: &mut Ctx) {
        if self.peer.is_some() {
            self.unpair(ctx);
        }
    }

    /// The certificate of this device's pairing (made once).
    fn cert(&mut self) -> Result<DtlsCert, crate::rtc::RtcError> {
        if let Some(cert) = &self.cert {
            return Ok(cert.clone());
        }
        let cert = DtlsCert::generate()?;
        self.cert = Some(cert.clone());
        Ok(cert)
    }

    /// Makes an offer code to show.
    pub(crate) fn offer(&mut self, ctx: &Ctx) {
        self.listen(ctx);
        let cert = match self.cert() {
            Ok(c) => c,
            Err(e) => return ctx.emit(SyncEvent::StartFailed(StartError::Certificate(e))),
        };
        let (cfg, tx) = (ctx.cfg.rtc, ctx.internal.clone());
        tokio::spawn(async move {
            let msg = match Link::offer(&cfg, Some(&cert)).await {
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
        let cert = match self.cert() {
            Ok(c) => c,
            Err(e) => return ctx.error(SyncError::PairingOffer(e)),
        };
        let (cfg, tx, hello, timeout) =
            (ctx.cfg.rtc, ctx.internal.clone(), intro(ctx), ctx.cfg.join_timeout * 12);
        tokio::spawn(async move {
            let offer = match pairing::decode_offer(&code) {
                Ok(o) => o,
                Err(e) => return report(&tx, Internal::Error(e.into())).await,
            };
            let Some(fingerprint) = sha256_fingerprint(&offer) else {
                let e = SyncError::Pairing("this pairing code names no certificate");
                return report(&tx, Internal::Error(e)).await;
            };
            let (link, answer, events) = match Link::answer(&cfg, Some(&cert), &offer).await {
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
            handshake(link, events, hello, fingerprint, timeout, tx).await;
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
            let Some(fingerprint) = sha256_fingerprint(&answer) else {
                link.close().await;
                let e = SyncError::Pairing("this answer code names no certificate");
                return report(&tx, Internal::Error(e)).await;
            };
            if let Err(e) = link.accept_answer(&answer).await {
                link.close().await;
                return report(&tx, Internal::Error(SyncError::PairingAnswer(e))).await;
            }
            handshake(link, events, hello, fingerprint, timeout, tx).await;
        });
    }

    /// A new pairing (its link is up): pin the partner, make the key it must prove, and tell
    /// it where and how to call back.
    pub(crate) fn paired(
        &mut self,
        ctx: &mut Ctx,
        peer: &DeviceId,
        fingerprint: String,
        name: String,
    ) {
        self.peer = Some(SavedPartner {
            id: peer.clone(),
            name,
            fingerprint,
            my_key: new_key(),
            host: None,
            their_key: None,
            sent: 0,
            seen: 0,
        });
        self.calling.store(0, Ordering::SeqCst);
        self.listen(ctx);
        self.send_pair_info(ctx, peer);
    }

    /// Binds the listener the partner calls back on (once): where it was before a restart if
    /// it can, else any port. Started with the pairing itself (offer or answer), so it is bound
    /// before the pairing's link opens and `PAIR_INFO` goes out at once: a drop-out right after
    /// pairing must still find the way back.
    pub(crate) fn listen(&mut self, ctx: &Ctx) {
        if self.listening {
            return;
        }
        self.listening = true;
        let (handler, rx) = channel_handler(16);
        self.join_rx = Some(rx);
        let any = SocketAddr::new(ctx.cfg.rtc.bind_ip, 0);
        let before = self.listen_at.filter(|a| a.ip() == ctx.cfg.rtc.bind_ip);
        let tx = ctx.internal.clone();
        // Binding is async; the listener comes back as an internal message.
        tokio::spawn(async move {
            let mut bound = None;
            if let Some(addr) = before {
                match SignalingServer::bind(addr, handler.clone()).await {
                    Ok(s) => bound = Some(Ok(s)),
                    Err(e) => tracing::info!("the earlier call-back address {addr} is taken ({e})"),
                }
            }
            let bound = match bound {
                Some(b) => b,
                None => SignalingServer::bind(any, handler).await,
            };
            let msg = match bound {
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

    /// Sends our listener's address and the key we accept to the partner (`PAIR_INFO`), on a
    /// link that is up.
    pub(crate) fn send_pair_info(&mut self, ctx: &mut Ctx, peer: &DeviceId) {
        let (Some(server), Some(sp)) = (&self.server, &self.peer) else { return };
        if sp.id != *peer || !ctx.links.contains(peer) {
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
            sp.host = Some(host);
            sp.their_key = Some(info.proof_key.clone());
        }
    }

    /// The partner's HELLO on a link: its name, kept for the panel.
    pub(crate) fn hello(&mut self, peer: &DeviceId, hello: &Hello) {
        if let Some(sp) = self.peer.as_mut().filter(|sp| sp.id == *peer) {
            sp.name = maestral_protocol::shown_name(&hello.device_name)
                .unwrap_or_else(|| peer.to_string());
        }
    }

    /// Whether the result of call-back `attempt` is still wanted.
    pub(crate) fn wants(&self, attempt: u64) -> bool {
        attempt == self.calling.load(Ordering::SeqCst)
    }

    /// A call-back finished (opened or failed): none is in flight any more.
    pub(crate) fn call_done(&mut self, attempt: u64) {
        let _ = self.calling.compare_exchange(attempt, 0, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The engine wants the partner back: call its listener, proving our pairing.
    pub(crate) fn reconnect(&mut self, ctx: &mut Ctx, peer: DeviceId) {
        if self.answering_until.is_some_and(|t| tokio::time::Instant::now() < t) {
            // Its call to us is being answered; that link will do.
            return;
        }
        let Some(cert) = self.cert.clone() else { return };
        let Some(sp) = self.peer.as_mut().filter(|sp| sp.id == peer) else { return };
        let (Some(host), Some(key)) = (sp.host, sp.their_key.clone()) else { return };
        // Each call's counter is above every earlier one, across restarts (kept before it is
        // sent, by the save after this input).
        let counter = ctx.clock.wall().max(sp.sent.saturating_add(1));
        sp.sent = counter;
        let fingerprint = sp.fingerprint.clone();
        self.next_call += 1;
        let attempt = self.next_call;
        self.calling.store(attempt, Ordering::SeqCst);
        let me = ctx.cfg.device_id.clone();
        let token = callback_proof(&key, &me, &peer, cert.fingerprint(), counter);
        let (cfg, timeout, tx) = (ctx.cfg.rtc, ctx.cfg.join_timeout, ctx.internal.clone());
        tokio::spawn(async move {
            let callee = Callee { host, fingerprint: &fingerprint, who: "the paired device" };
            let body = |offer| JoinRequestBody {
                session_id: SOLO_SESSION.into(),
                token: SessionToken::new(token),
                device_id: me.to_string(),
                offer,
            };
            let msg = match dial(&cfg, Some(&cert), callee, body, timeout).await {
                Ok((link, events)) => {
                    let kind = ReadyKind::Known;
                    Internal::Ready { peer, link, events, first: None, kind, attempt }
                }
                Err(error) => Internal::JoinFailed { peer: Some(peer), error, attempt },
            };
            report(&tx, msg).await;
        });
    }

    /// The partner calls back on our listener: checked (see the module doc), then answered.
    pub(crate) fn callback(&mut self, ctx: &mut Ctx, p: PendingJoin) {
        let outcome = self.check_callback(ctx, &p);
        let Some(cert) = self.cert.clone().filter(|_| outcome.is_none()) else {
            tracing::info!("a call-back from {:?} was refused", p.request.device_id);
            // A caller gone already needs no answer.
            let _ = p.reply.send(outcome.unwrap_or(JoinOutcome::Unavailable));
            return;
        };
        let Some(sp) = self.peer.as_ref() else { return };
        let (cfg, tx, timeout) = (ctx.cfg.rtc, ctx.internal.clone(), ctx.cfg.join_timeout);
        self.answering_until = Some(tokio::time::Instant::now() + timeout);
        tokio::spawn(answer_join(p, cfg, Some(cert), sp.id.clone(), timeout, tx));
    }

    /// `None`: the call-back is the partner's and may be answered; else the refusal.
    fn check_callback(&mut self, ctx: &Ctx, p: &PendingJoin) -> Option<JoinOutcome> {
        let r = &p.request;
        let me = &ctx.cfg.device_id;
        // Not paired (yet, or any more): nobody may call back.
        let Some(sp) = self.peer.as_mut() else { return Some(JoinOutcome::InvalidToken(None)) };
        if r.session_id != SOLO_SESSION || r.device_id != sp.id.as_str() {
            return Some(JoinOutcome::InvalidToken(None));
        }
        let pinned =
            sha256_fingerprint(&r.offer).filter(|fp| fingerprints_match(fp, &sp.fingerprint));
        let Some(offer_fp) = pinned else { return Some(JoinOutcome::InvalidToken(None)) };
        let Some(counter) = verify(r.token.expose(), &sp.my_key, &sp.id, me, &offer_fp) else {
            return Some(JoinOutcome::InvalidToken(None));
        };
        if counter <= sp.seen {
            // A replay (or an older call overtaken by a newer one).
            return Some(JoinOutcome::InvalidToken(None));
        }
        // Never replace a link that works.
        if ctx.engine.link(&sp.id).is_up() {
            return Some(JoinOutcome::Unavailable);
        }
        // Both calling at once: the higher id's call wins.
        if self.calling.load(Ordering::SeqCst) != 0 {
            if *me < sp.id {
                return Some(JoinOutcome::Unavailable);
            }
            self.calling.store(0, Ordering::SeqCst);
        }
        sp.seen = counter;
        None
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

/// Opens a Solo link, introduces this device, and learns the partner's id and name; the
/// partner's certificate `fingerprint` (from its code) is pinned with the pairing.
async fn handshake(
    link: Link,
    mut events: mpsc::UnboundedReceiver<LinkEvent>,
    hello: String,
    fingerprint: String,
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
                let name = match maestral_protocol::decode(text.as_bytes()) {
                    Ok(Envelope { message: Message::Hello(h), .. }) => {
                        maestral_protocol::shown_name(&h.device_name)
                            .unwrap_or_else(|| peer.to_string())
                    }
                    _ => peer.to_string(),
                };
                let kind = ReadyKind::Solo { fingerprint, name };
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
