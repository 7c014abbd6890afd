//! The Master's side of a Choir session: its certificate and join listener, deciding each
//! `POST /v1/join`, the join code, and keeping the session in its file so a restart resumes it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use maestral_protocol::DeviceId;
use maestral_protocol::SessionToken;
use maestral_sync::{Event, LocalAction};
use tokio::sync::mpsc;

use super::error::{StartError, SyncError};
use super::handle::SyncEvent;
use super::link::wait_open;
use super::locate;
use super::store::{self, SavedMasterIdentity, SavedSession};
use super::worker::{Ctx, Internal, ReadyKind};
use crate::joincode::{JoinCode, fingerprints_match};
use crate::rtc::{DtlsCert, Link, RtcConfig, sha256_fingerprint};
use crate::signaling::{
    ChannelHandler, JoinOutcome, JoinRequestBody, PendingJoin, RejectReason, SignalingServer,
    channel_handler,
};
use crate::state::files;

/// What a Master's listener serves: join requests (decided by the sync thread) and, where the
/// app renders them, page images for browser Followers.
#[derive(Clone)]
pub(crate) struct Serving {
    joins: ChannelHandler,
    pages: Option<std::sync::Arc<dyn crate::signaling::page::PageSource>>,
    exempt_loopback: bool,
}

impl Serving {
    fn new(joins: ChannelHandler, ctx: &Ctx, beacon: &locate::Beacon) -> Self {
        let pages = ctx.cfg.pages.clone().map(|images| {
            let beacon = std::sync::Arc::downgrade(beacon);
            std::sync::Arc::new(super::pages::MasterPages { beacon, images })
                as std::sync::Arc<dyn crate::signaling::page::PageSource>
        });
        Serving { joins, pages, exempt_loopback: ctx.cfg.exempt_loopback }
    }

    async fn bind(&self, addr: SocketAddr) -> std::io::Result<SignalingServer> {
        let config = crate::signaling::SignalingConfig {
            exempt_loopback: self.exempt_loopback,
            ..Default::default()
        };
        SignalingServer::bind_serving(addr, self.joins.clone(), config, self.pages.clone()).await
    }
}

#[derive(Default)]
pub(crate) struct MasterIo {
    cert: Option<DtlsCert>,
    server: Option<SignalingServer>,
    join_rx: Option<mpsc::Receiver<PendingJoin>>,
    /// The running session's id and token.
    session: Option<(String, SessionToken)>,
    /// The id of the session that ended last (its joins get `session_ended`).
    ended_session: Option<String>,
    /// Test fault: refuse joins as if unreachable.
    pub(crate) offline: bool,
    /// What was last written to the state directory.
    saved: Option<SavedSession>,
    /// The current song's bytes, served to Followers that lack it.
    pub(crate) served: super::stream::ServedSlot,
    /// The DTLS certificate fingerprint each device id first joined this session with: a join
    /// under that id from any other certificate is refused (`403 device_in_use`) for the whole
    /// session, whether that device's link is up or not, and across a restart (kept with the
    /// session). The DTLS handshake proves the key, so a token holder can neither kick a singer
    /// nor take a dropped singer's place. At most [`MAX_BOUND`].
    bound: BTreeMap<DeviceId, String>,
    /// Joins being answered now (each holds a PeerConnection until its channel opens).
    answering: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The same, per address the requests came from (toward [`MAX_MEMBERS_PER_ADDRESS`]).
    answering_from: std::sync::Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    /// What the locate responder answers for (the session and where it listens now).
    beacon: locate::Beacon,
    /// The address each member's link was answered for (its join request's).
    addr_of: HashMap<DeviceId, IpAddr>,
    /// Devices cut off for flooding, and addresses they joined from, with when: their joins are
    /// refused (`503`) for [`FLOOD_COOL_DOWN`], so a flooder cannot rejoin at once and again.
    cut_off: HashMap<DeviceId, Instant>,
    cooled: HashMap<IpAddr, Instant>,
}

/// What a device id's binding says of a link from one certificate.
enum Binding {
    /// The id joined this session with this certificate.
    Same,
    /// The id joined this session with another certificate.
    Other,
    /// The id has not joined this session; there is room for its binding.
    New,
    /// The id has not joined, and [`MAX_BOUND`] others have.
    Full,
}

/// How often a Master checks that the address it listens on is still its own.
const ADDRESS_CHECK: Duration = Duration::from_secs(1);

/// Joins answered at once; more get `503` (retried by honest Followers on their backoff). A
/// join is answered in milliseconds on a LAN, so 32 in flight is already a storm.
pub const MAX_PENDING_ANSWERS: usize = 32;
/// Members with a link at once; a join past it gets `503`. No choir is this large: the cap
/// only bounds what token holders can make this device hold.
pub const MAX_MEMBERS: usize = 500;
/// Members with a link from one address at once; a join past it gets `503`. A phone or a
/// laptop is one device: 16 leaves room for a few devices behind one address, not for one host
/// holding the choir's places. Loopback is exempt ([`super::SyncConfig::exempt_loopback`]).
pub const MAX_MEMBERS_PER_ADDRESS: usize = 16;
/// How long a device cut off for flooding, and the address it joined from, are refused.
pub const FLOOD_COOL_DOWN: Duration = Duration::from_secs(60);

/// Device ids bound to a certificate in one session. Past it, a join under a new id gets `503`
/// (ids already bound still join): the bindings must outlive a device's absence, so they are
/// never evicted for a newcomer (that would let a token holder flush a singer's binding).
pub const MAX_BOUND: usize = 4 * MAX_MEMBERS;

impl MasterIo {
    pub(crate) fn join_requests(&mut self) -> Option<&mut mpsc::Receiver<PendingJoin>> {
        self.join_rx.as_mut()
    }

    /// Starts a session and its listener, or resumes the one kept from before a restart: same
    /// certificate, id, token and address, so the join codes singers hold still work.
    pub(crate) async fn start(&mut self, ctx: &mut Ctx, listen: SocketAddr) {
        let resumed = self.load(ctx);
        if let Some(saved) = &resumed
            && self.cert.is_none()
        {
            match DtlsCert::from_pem(&saved.cert_pem) {
                Ok(c) => self.cert = Some(c),
                Err(e) => ctx.error(SyncError::SavedCertificate(e)),
            }
        }
        let resumed = resumed.filter(|_| self.cert.is_some());
        if self.cert.is_none() {
            match self.identity(ctx) {
                Ok(c) => self.cert = Some(c),
                Err(e) => {
                    ctx.emit(SyncEvent::StartFailed(StartError::Certificate(e)));
                    return;
                }
            }
        }
        if self.server.is_none() {
            let (joins, rx) = channel_handler(256);
            let handler = Serving::new(joins, ctx, &self.beacon);
            let handler_for_moves = handler.clone();
            let mut bound = None;
            if let Some(saved) = &resumed {
                match handler.bind(still_here(saved.listen)).await {
                    Ok(s) => bound = Some(s),
                    Err(e) => ctx.error(SyncError::SavedAddress {
                        addr: saved.listen,
                        reason: e.to_string(),
                    }),
                }
            }
            let resumed_here = bound.is_some();
            if bound.is_none() {
                match handler.bind(still_here(listen)).await {
                    Ok(s) => bound = Some(s),
                    Err(e) => {
                        let reason = e.to_string();
                        ctx.emit(SyncEvent::StartFailed(StartError::Listen {
                            addr: listen,
                            reason,
                        }));
                        return;
                    }
                }
            }
            let at = bound.as_ref().map_or(listen.ip(), |s| s.local_addr().ip());
            if let Some(at) = ctx.cfg.locate.answers_on(at) {
                let beacon = std::sync::Arc::downgrade(&self.beacon);
                tokio::spawn(locate::serve(beacon, at));
            }
            if let Some(server) = &bound {
                let listen = server.local_addr();
                let old = ctx.cfg.rtc.bind_ip;
                if !listen.ip().is_unspecified()
                    && !old.is_unspecified()
                    && !crate::addr::is_local(old)
                {
                    // Moved while not running: links are made where it listens now.
                    tracing::warn!("this device's address is now {}", listen.ip());
                    ctx.cfg.rtc.bind_ip = listen.ip();
                }
                // Reached at the listener's address, or (listening on every address) at the one
                // links are made on.
                let specific = !listen.ip().is_unspecified();
                let ip = if specific { listen.ip() } else { ctx.cfg.rtc.bind_ip };
                let rebind = specific.then_some(listen.port());
                let tx = ctx.internal.clone();
                tokio::spawn(watch_address(ip, rebind, handler_for_moves, tx));
            }
            self.server = bound;
            self.join_rx = Some(rx);
            if let Some(saved) = resumed.filter(|_| resumed_here) {
                ctx.now();
                ctx.engine.resume_master(&saved.state);
                self.bound = saved.bound.clone();
                self.saved = Some(saved);
                return;
            }
        }
        ctx.local(LocalAction::StartSession { session_id: None, token: None });
    }

    /// This Master's certificate: the one kept in the state directory, else a new one, kept
    /// from now on. One across sessions and restarts, so its refusals of a code from an earlier
    /// session verify against that code's fingerprint (`signaling::proof`): the singer is told
    /// the code no longer works instead of trying for ever.
    fn identity(&self, ctx: &mut Ctx) -> Result<DtlsCert, crate::rtc::RtcError> {
        let dir = ctx.cfg.state_dir.clone();
        let kept = dir.as_deref().and_then(|dir| {
            store::load::<SavedMasterIdentity>(dir, files::MASTER_IDENTITY).unwrap_or_else(|e| {
                ctx.error(e);
                None
            })
        });
        match kept.map(|k| DtlsCert::from_pem(&k.cert_pem)) {
            Some(Ok(cert)) => return Ok(cert),
            // Expired or damaged: a new one (codes of earlier sessions no longer verify).
            Some(Err(e)) => tracing::warn!("the kept certificate is not usable ({e}); a new one"),
            None => {}
        }
        let cert = DtlsCert::generate()?;
        let identity = SavedMasterIdentity { cert_pem: cert.to_pem().to_owned() };
        ctx.store(|w| w.save(files::MASTER_IDENTITY, &identity));
        Ok(cert)
    }

    fn load(&self, ctx: &Ctx) -> Option<SavedSession> {
        store::load_session(ctx.cfg.state_dir.as_ref()?).unwrap_or_else(|e| {
            ctx.error(e);
            None
        })
    }

    pub(crate) fn engine_event(&mut self, ctx: &Ctx, e: &Event) {
        match e {
            Event::SessionStarted { session_id, token } => {
                self.session = Some((session_id.to_string(), token.clone()));
                self.ended_session = None;
                self.announce(ctx);
            }
            Event::SessionEnded => {
                self.ended_session = self.session.take().map(|(id, _)| id);
                self.bound.clear();
                self.addr_of.clear();
                // Nothing of the session is served after its end: a stream running stops at
                // its next chunk (`not_current`), and its link is closed with the others.
                self.served.clear();
                if let Ok(mut b) = self.beacon.lock() {
                    *b = None;
                }
            }
            _ => {}
        }
    }

    /// The join code of the running session, as it is now (to the app), and what the locate
    /// responder answers.
    fn announce(&mut self, ctx: &Ctx) {
        let (Some(server), Some(cert), Some((id, token))) =
            (&self.server, &self.cert, &self.session)
        else {
            return;
        };
        let mut host = server.local_addr();
        if host.ip().is_unspecified() {
            host.set_ip(ctx.cfg.rtc.bind_ip);
        }
        if let Ok(mut b) = self.beacon.lock() {
            *b = Some((id.clone(), token.expose().to_owned(), host));
        }
        match JoinCode::new(host, id.clone(), token.clone(), cert.fingerprint()) {
            Ok(code) => ctx.emit(SyncEvent::JoinCode(code.to_string())),
            Err(err) => ctx.error(err),
        }
    }

    /// This device's address changed (`watch_address`): joins are heard on the new one (its
    /// listener `server`, when it listened on one address), links are made there, the app gets
    /// the new join code, and the locate responder tells singers holding the old one.
    pub(crate) fn moved(
        &mut self,
        ctx: &mut Ctx,
        ip: std::net::IpAddr,
        server: Option<SignalingServer>,
    ) {
        tracing::warn!("this device's address is now {ip}: the join code changes with it");
        ctx.cfg.rtc.bind_ip = ip;
        if let Some(old) = server.and_then(|s| self.server.replace(s)) {
            tokio::spawn(old.shutdown());
        }
        self.announce(ctx);
    }

    /// A `POST /v1/join`: the token is checked here (in constant time) and again by the engine
    /// on `JOIN_REQUEST`; the answer is made on a task so joins never stall the engine.
    pub(crate) fn join(&mut self, ctx: &Ctx, p: PendingJoin) {
        let r = &p.request;
        let refusal = if self.offline {
            Some(JoinOutcome::Unavailable)
        } else {
            match &self.session {
                Some((id, token)) if r.session_id == *id && r.token == *token => None,
                _ if self.ended_session.as_deref() == Some(r.session_id.as_str()) => {
                    Some(JoinOutcome::SessionEnded(None))
                }
                _ => Some(JoinOutcome::InvalidToken(None)),
            }
        };
        let peer = DeviceId::new(p.request.device_id.clone());
        // Busy, a flooder cooling down, an address holding its share of places, or an id bound
        // to another certificate: refused before any connection is made (a forged fingerprint
        // in the offer is caught later, by DTLS, before the link is taken: `admit`).
        let answering = self.answering.load(std::sync::atomic::Ordering::SeqCst);
        let refusal = refusal.or_else(|| {
            let full = ctx.links.len() >= MAX_MEMBERS && !ctx.links.contains(&peer);
            (full || answering >= MAX_PENDING_ANSWERS).then(|| {
                tracing::warn!(
                    "a join refused for now: {answering} joins being answered, {} links",
                    ctx.links.len()
                );
                JoinOutcome::Unavailable
            })
        });
        let limited = |ip: &IpAddr| !(ctx.cfg.exempt_loopback && ip.to_canonical().is_loopback());
        let refusal = refusal.or_else(|| {
            let cooling = |at: Option<&Instant>| at.is_some_and(|t| t.elapsed() < FLOOD_COOL_DOWN);
            let cut = cooling(self.cut_off.get(&peer))
                || (limited(&p.from) && cooling(self.cooled.get(&p.from)));
            cut.then(|| {
                tracing::warn!("a join refused for now: {peer:?} or its address flooded lately");
                JoinOutcome::Unavailable
            })
        });
        let refusal = refusal.or_else(|| {
            // Its links, and its joins being answered (their links not open yet).
            let here = |d: &DeviceId| *d != peer && self.addr_of.get(d) == Some(&p.from);
            let answering_here =
                self.answering_from.lock().map_or(0, |a| a.get(&p.from).copied().unwrap_or(0));
            let crowded = limited(&p.from)
                && ctx.links.peers().filter(|d| here(d)).count() + answering_here
                    >= MAX_MEMBERS_PER_ADDRESS;
            crowded.then(|| {
                tracing::warn!(
                    "a join refused: {} links from {} already",
                    MAX_MEMBERS_PER_ADDRESS,
                    p.from
                );
                JoinOutcome::Unavailable
            })
        });
        let refusal = refusal.or_else(|| {
            let offered = sha256_fingerprint(&r.offer).unwrap_or_default();
            match self.binding(&peer, &offered) {
                Binding::Same | Binding::New => None,
                Binding::Other => {
                    tracing::warn!("a join named {peer:?}, a member's id, from another device");
                    Some(JoinOutcome::DeviceInUse(None))
                }
                Binding::Full => {
                    tracing::warn!("a join under a new id refused: {MAX_BOUND} ids joined");
                    Some(JoinOutcome::Unavailable)
                }
            }
        });
        let Some(cert) = self.cert.clone().filter(|_| refusal.is_none()) else {
            // The listener gone means the client gets `503` anyway.
            let refusal = refusal.unwrap_or(JoinOutcome::Unavailable);
            let _ = p.reply.send(self.proved(refusal, &p.request));
            return;
        };
        let (cfg, timeout, tx) = (ctx.cfg.rtc, ctx.cfg.join_timeout, ctx.internal.clone());
        let answering = self.answering.clone();
        answering.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let from = p.from;
        let answering_from = self.answering_from.clone();
        if let Ok(mut a) = answering_from.lock() {
            *a.entry(from).or_default() += 1;
        }
        tokio::spawn(async move {
            answer_join(p, cfg, Some(cert), peer, timeout, tx).await;
            answering.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut a) = answering_from.lock()
                && let Some(n) = a.get_mut(&from)
            {
                *n -= 1;
                if *n == 0 {
                    a.remove(&from);
                }
            }
        });
    }

    /// `refusal` with this session's proof when it is one of the refusals a Follower takes for
    /// good (`signaling::proof`): signed with the certificate its join code pins.
    fn proved(&self, refusal: JoinOutcome, request: &JoinRequestBody) -> JoinOutcome {
        use crate::signaling::proof::prove;
        let Some(cert) = &self.cert else { return refusal };
        match refusal {
            JoinOutcome::InvalidToken(None) => {
                JoinOutcome::InvalidToken(prove(cert, RejectReason::InvalidToken, request))
            }
            JoinOutcome::SessionEnded(None) => {
                JoinOutcome::SessionEnded(prove(cert, RejectReason::SessionEnded, request))
            }
            JoinOutcome::DeviceInUse(None) => {
                JoinOutcome::DeviceInUse(prove(cert, RejectReason::DeviceInUse, request))
            }
            other => other,
        }
    }

    /// What `peer`'s binding says of a link from the certificate `fingerprint`.
    fn binding(&self, peer: &DeviceId, fingerprint: &str) -> Binding {
        match self.bound.get(peer) {
            Some(fp) if fingerprints_match(fp, fingerprint) => Binding::Same,
            Some(_) => Binding::Other,
            None if self.bound.len() >= MAX_BOUND => Binding::Full,
            None => Binding::New,
        }
    }

    /// A joining Follower's link is open (its certificate proven by DTLS): taken for `peer` if
    /// `peer` first joined with this certificate, or joins for the first time (it is bound to
    /// it from now on). `false`: refused.
    pub(crate) fn admit(&mut self, peer: &DeviceId, fingerprint: &str, from: IpAddr) -> bool {
        match self.binding(peer, fingerprint) {
            Binding::Same => {
                self.addr_of.insert(peer.clone(), from);
                true
            }
            Binding::New => {
                self.bound.insert(peer.clone(), fingerprint.to_owned());
                self.addr_of.insert(peer.clone(), from);
                true
            }
            Binding::Other | Binding::Full => {
                tracing::warn!("refused a link naming {peer:?} from another device");
                false
            }
        }
    }

    /// `peer` was cut off for flooding: it, and the address it joined from, are refused for
    /// [`FLOOD_COOL_DOWN`].
    pub(crate) fn flooded(&mut self, peer: &DeviceId) {
        let now = Instant::now();
        self.cut_off.retain(|_, t| t.elapsed() < FLOOD_COOL_DOWN);
        self.cooled.retain(|_, t| t.elapsed() < FLOOD_COOL_DOWN);
        self.cut_off.insert(peer.clone(), now);
        if let Some(ip) = self.addr_of.get(peer) {
            self.cooled.insert(*ip, now);
        }
    }

    /// Keeps the session on disk whenever it changes (written aside, then renamed, so a crash
    /// mid-write leaves the previous file whole). An ended session is removed.
    pub(crate) fn save_session(&mut self, ctx: &mut Ctx) {
        let maestral_sync::StateView::Master(state) = ctx.engine.state() else { return };
        // Another song: the old one's bytes are not served (a request for it is refused).
        self.served.keep_only(state.song_id.as_ref());
        if state.session_id.is_none() {
            if self.saved.take().is_some() {
                ctx.store(|w| w.remove(files::MASTER_SESSION));
            }
            return;
        }
        let (Some(server), Some(cert)) = (&self.server, &self.cert) else { return };
        let listen = server.local_addr();
        // Checked without copies: this runs after every input. The bindings only grow within a
        // session, so their count says whether they changed.
        let unchanged = self.saved.as_ref().is_some_and(|s| {
            s.listen == listen
                && s.state == state
                && s.bound.len() == self.bound.len()
                && s.cert_pem == cert.to_pem()
        });
        if unchanged {
            return;
        }
        let session = SavedSession {
            listen,
            cert_pem: cert.to_pem().to_owned(),
            state,
            bound: self.bound.clone(),
        };
        // The file holds the certificate's private key and the token: owner-only.
        ctx.store(|w| w.save(files::MASTER_SESSION, &session));
        self.saved = Some(session);
    }

    pub(crate) async fn shutdown(&mut self) {
        // The locate responder answers for nothing from now on (it ends within a second).
        if let Ok(mut b) = self.beacon.lock() {
            *b = None;
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// `addr`, or where its address went when it is no longer this machine's (a DHCP renewal while
/// the Master was not running, a Master started with a stale `--listen`): the machine's LAN
/// address, on the same port, so a resumed session's singers find it again by locate.
fn still_here(addr: SocketAddr) -> SocketAddr {
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_loopback() || crate::addr::is_local(ip) {
        return addr;
    }
    let now = crate::addr::lan_ip(None);
    if now.is_loopback() || now.is_unspecified() {
        return addr;
    }
    tracing::warn!("{ip} is no longer this device's address: listening on {now} instead");
    SocketAddr::new(now, addr.port())
}

/// Watches the address this Master is reached at (`ip`): once it is no longer this machine's
/// (a DHCP renewal, another network), another address of the same interface takes its place
/// (else the machine's LAN address), with a listener bound there on the same port (`rebind`,
/// when the old one listened on one address), reported as [`Internal::AddressChanged`]. Ends
/// with the worker.
async fn watch_address(
    mut ip: std::net::IpAddr,
    rebind: Option<u16>,
    handler: Serving,
    tx: mpsc::UnboundedSender<Internal>,
) {
    use crate::addr;
    if ip.is_loopback() || ip.is_unspecified() {
        return;
    }
    let mut interface = addr::interface_of(ip);
    let mut tick = tokio::time::interval(ADDRESS_CHECK);
    loop {
        tick.tick().await;
        if tx.is_closed() {
            return;
        }
        if addr::is_local(ip) {
            continue;
        }
        let now = interface
            .as_deref()
            .and_then(|i| addr::address_on(i, ip))
            .unwrap_or_else(|| addr::lan_ip(None));
        if now == ip || now.is_loopback() || !addr::is_local(now) {
            continue;
        }
        let mut server = None;
        if let Some(port) = rebind {
            let bound = match handler.bind(SocketAddr::new(now, port)).await {
                Ok(s) => Ok(s),
                // The port taken there: any other.
                Err(_) => handler.bind(SocketAddr::new(now, 0)).await,
            };
            match bound {
                Ok(s) => server = Some(s),
                Err(e) => {
                    tracing::warn!("cannot listen on the new address {now}: {e}");
                    continue;
                }
            }
        }
        if tx.send(Internal::AddressChanged { ip: now, server }).is_err() {
            return;
        }
        ip = now;
        interface = addr::interface_of(now).or(interface);
    }
}

/// Answers a join (a Follower's, or the paired Solo device calling back): the SDP answer goes
/// back over HTTP, and once the channel is open the link is handed to the worker for `peer`.
pub(crate) async fn answer_join(
    p: PendingJoin,
    cfg: RtcConfig,
    cert: Option<DtlsCert>,
    peer: DeviceId,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let PendingJoin { request, from, reply } = p;
    let Ok((link, answer, mut events)) = Link::answer(&cfg, cert.as_ref(), &request.offer).await
    else {
        // A client gone already needs no answer.
        let _ = reply.send(JoinOutcome::BadRequest);
        return;
    };
    if reply.send(JoinOutcome::Answer(answer)).is_err() || !wait_open(&mut events, timeout).await {
        link.close().await;
        return;
    }
    // The offer's fingerprint is the one the DTLS handshake just proved.
    let fingerprint = sha256_fingerprint(&request.offer).unwrap_or_default();
    let ready = ReadyKind::Answered { fingerprint, from };
    let msg = Internal::Ready { peer, link, events, first: None, kind: ready, attempt: 0 };
    super::internal::hand_over(&tx, msg).await;
}
