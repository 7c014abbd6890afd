//! The sync thread: one OS thread with a tokio runtime that owns the engine, the peer
//! connections and the signaling listener, bridged to the app by crossbeam channels.
//!
//! The engine is sans-IO; this is its I/O. Each input (a command from the app, a link event, a
//! join request, a timer) is fed to the engine, then its outputs are carried out: messages go
//! to each peer's send queue, events go to the app (and wake it), transport requests open or
//! close links. Nothing here blocks the app: the app only ever does a non-blocking channel send
//! or receive.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use maestral_protocol::{DeviceId, Envelope, Hello, Message, Mode, SessionId, decode};
use maestral_sync::{
    Engine, EngineConfig, Event, LinkSignal, LocalAction, Output, Phase, Role, Timing,
    TransportRequest,
};
use rand::SeedableRng;
use tokio::sync::{Notify, mpsc};

use crate::joincode::{JoinCode, fingerprints_match};
use crate::pairing;
use crate::rtc::{DtlsCert, Link, LinkEvent, RtcConfig, sha256_fingerprint};
use crate::signaling::{
    JoinError, JoinOutcome, JoinRequestBody, PendingJoin, RejectReason as HttpReject,
    SignalingServer, channel_handler, post_join,
};

/// How the sync thread runs.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub device_id: DeviceId,
    pub device_name: String,
    /// WebRTC: the address host candidates are gathered on (the LAN address, or 127.0.0.1).
    pub rtc: RtcConfig,
    /// The engine's retry and supervision timing.
    pub timing: Timing,
    /// One join attempt (HTTP exchange and channel opening) gets this long.
    pub join_timeout: Duration,
    /// A peer sending more messages than this in one second is disconnected (a flood).
    pub flood_limit: u32,
    /// Where a Master keeps its session (certificate, id, token, address, position) so that
    /// after a restart it resumes it and stored join codes still work. `None`: nothing kept.
    pub state_dir: Option<std::path::PathBuf>,
}

impl SyncConfig {
    pub fn new(device_id: impl Into<DeviceId>, bind_ip: IpAddr) -> Self {
        let device_id = device_id.into();
        SyncConfig {
            device_name: device_id.to_string(),
            device_id,
            rtc: RtcConfig::new(bind_ip),
            timing: Timing::LAN,
            join_timeout: Duration::from_secs(5),
            flood_limit: 500,
            state_dir: None,
        }
    }
}

/// What the app asks of the sync thread.
#[derive(Debug, Clone)]
pub enum SyncCommand {
    /// A local action: follow/free, parity, leave, end the session (and, from tests and tools,
    /// page turns and song changes).
    Local(LocalAction),
    /// The performer navigated (`action.is_navigation()`) and the app already shows `shown`,
    /// worked out with `maestral_sync::Pager`: the engine reports only a differing view.
    Navigate { action: LocalAction, shown: maestral_sync::View },
    /// Master: start a Choir session and its join listener on `listen` (port 0: any).
    StartChoir { listen: SocketAddr },
    /// Follower: join the session of this join code.
    Join(JoinCode),
    /// Solo: make an offer code to show (answered by `SoloAnswer` on the other device).
    SoloOffer,
    /// Solo: answer the other device's offer code (shows an answer code).
    SoloAnswer(String),
    /// Solo: take the other device's answer code, completing the pairing.
    SoloAccept(String),
    /// Fault injection for tests and the fault campaign.
    Fault(Fault),
    /// Close every link and stop the thread.
    Shutdown,
}

/// Faults a test can inject into a running sync thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection to this peer abruptly, as a network failure would.
    DropLink(DeviceId),
    /// Master: `true` drops every link and refuses joins (as if unreachable); `false` returns.
    Offline(bool),
}

/// What the sync thread tells the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// An event of the engine: show a page, phase and link changes, session changes, streams.
    Engine(Event),
    /// Master: the join code to show (as QR and as text).
    JoinCode(String),
    /// Solo: the pairing code to show to the other device (offer or answer).
    PairCode(String),
    /// Something went wrong; one readable line for the user. The sync thread carries on.
    Error(String),
    /// Starting what was asked failed for good (a Master could not listen or make its
    /// certificate, a Solo offer could not be prepared): no code will come.
    StartFailed(String),
}

/// The app's end of the sync thread.
#[derive(Debug)]
pub struct SyncHandle {
    commands: Sender<SyncCommand>,
    events: Receiver<SyncEvent>,
    notify: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyncHandle {
    /// Starts the sync thread for `role`. `wake` is called after each event is queued, so a UI
    /// sleeping in low-power mode wakes at once.
    pub fn start(
        role: Role,
        config: SyncConfig,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<SyncHandle> {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("maestral-sync-rt")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new().name("maestral-sync".into()).spawn(move || {
            runtime.block_on(async move {
                let worker = Worker::new(role, config, cmd_rx, n, ev_tx, Arc::new(wake));
                worker.run().await;
            });
            // Tasks still closing links get a moment, then everything stops.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
        Ok(SyncHandle { commands: cmd_tx, events: ev_rx, notify, thread: Some(thread) })
    }

    /// Sends a command; never blocks.
    pub fn send(&self, command: SyncCommand) {
        if self.commands.send(command).is_ok() {
            self.notify.notify_one();
        }
    }

    /// The events, to drain with `try_iter()` (or wait on with `recv_timeout` in tests).
    pub fn events(&self) -> &Receiver<SyncEvent> {
        &self.events
    }

    /// Closes every link cleanly and waits for the thread to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.send(SyncCommand::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What a link's writer task does, in order.
enum Outgoing {
    Text(Arc<str>),
    /// Close after everything queued before it was sent (a last `SESSION_END` or
    /// `LEAVE_SESSION` must not be cut off by the close that follows it).
    Close,
}

/// One open link: its connection, its send queue, and flood accounting.
struct PeerLink {
    link: Link,
    generation: u64,
    send: mpsc::UnboundedSender<Outgoing>,
    writer: tokio::task::JoinHandle<()>,
    window_start: Instant,
    in_window: u32,
}

/// How a link came to be ready.
enum ReadyKind {
    /// The Follower's first join: the Master's id was learned from its first message.
    FirstJoin(JoinCode),
    /// A rejoin, or a Follower accepted by this Master.
    Known,
    /// A Solo pairing: the partner's id was learned from its first message.
    Solo,
}

/// Results of tasks the worker spawned.
enum Internal {
    Ready {
        peer: DeviceId,
        link: Link,
        events: mpsc::UnboundedReceiver<LinkEvent>,
        first: Option<String>,
        kind: ReadyKind,
        /// The Follower join attempt this comes from (0: not a Follower join).
        attempt: u64,
    },
    /// A join attempt failed; `peer` is the Master for a rejoin, `None` for a first join.
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
    Error(String),
    StartFailed(String),
    /// A session file write finished: `None` on success, else the error.
    Saved(Option<String>),
    /// Solo: the reconnection listener is bound (it is in `pending_server`).
    SoloListening,
}

#[derive(Debug)]
enum JoinFailure {
    Refused(HttpReject),
    /// The answer's certificate is not the one the join code names.
    Forged(String),
    Other(String),
}

impl JoinFailure {
    /// Failures a retry cannot fix (a forged answer is refused, not retried).
    fn is_fatal(&self) -> bool {
        matches!(self, JoinFailure::Forged(_))
    }
}

impl std::fmt::Display for JoinFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinFailure::Refused(r) => write!(f, "{r}"),
            JoinFailure::Forged(s) | JoinFailure::Other(s) => f.write_str(s),
        }
    }
}

struct Worker {
    engine: Engine,
    role: Role,
    cfg: SyncConfig,
    commands: Receiver<SyncCommand>,
    notify: Arc<Notify>,
    events: Sender<SyncEvent>,
    wake: Arc<dyn Fn() + Send + Sync>,
    links: HashMap<DeviceId, PeerLink>,
    next_generation: u64,
    link_tx: mpsc::UnboundedSender<(DeviceId, u64, LinkEvent)>,
    link_rx: mpsc::UnboundedReceiver<(DeviceId, u64, LinkEvent)>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    // Master
    cert: Option<DtlsCert>,
    server: Option<SignalingServer>,
    join_rx: Option<mpsc::Receiver<PendingJoin>>,
    session: Option<(String, maestral_protocol::SessionToken)>,
    ended_session: Option<String>,
    offline: bool,
    // Follower: the Master's id and the code to rejoin with.
    master: Option<(DeviceId, JoinCode)>,
    /// Follower: the join attempt whose result is still wanted. A result of any other attempt
    /// (finished after `leave`, an end, a refusal or a newer attempt) is closed and dropped.
    join_attempt: Arc<std::sync::atomic::AtomicU64>,
    /// Master: the last session write failed (reported once until one succeeds).
    save_failed: bool,
    /// Master: the session file writer (a thread: fsync must not stall the engine).
    save_tx: Option<(SessionWrites, std::thread::JoinHandle<()>)>,
    // Solo: an offer waiting for its answer code.
    pending_offer: Option<(Link, mpsc::UnboundedReceiver<LinkEvent>)>,
    // Solo: the paired device, and how to reach each other again without a new scan.
    solo_peer: Option<SoloPeer>,
    pending_server: Option<std::sync::mpsc::Receiver<SignalingServer>>,
    /// Master: what was last written to the state directory.
    saved: Option<SavedSession>,
}

/// A Master's session as kept in its state directory (`master-session.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SavedSession {
    listen: SocketAddr,
    cert_pem: String,
    state: maestral_sync::MasterState,
}

/// What two paired Solo devices know of each other to reconnect by themselves: each runs a
/// small listener and gives the other its address and a secret over the channel (`PAIR_INFO`).
#[derive(Debug, Clone)]
struct SoloPeer {
    id: DeviceId,
    /// The secret this device accepts from the partner.
    my_secret: String,
    /// The partner's listener and the secret it accepts, once its `PAIR_INFO` arrived.
    theirs: Option<(SocketAddr, String)>,
}

/// The message type paired Solo devices exchange after pairing. A V1 engine ignores it.
const PAIR_INFO: &str = "PAIR_INFO";
/// `session_id` of a Solo reconnection request on the listener.
const SOLO_SESSION: &str = "solo";

impl Worker {
    fn new(
        role: Role,
        cfg: SyncConfig,
        commands: Receiver<SyncCommand>,
        notify: Arc<Notify>,
        events: Sender<SyncEvent>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Worker {
        let mut ec = EngineConfig::new(cfg.device_id.clone());
        ec.device_name = cfg.device_name.clone();
        ec.timing = cfg.timing;
        ec.capabilities = vec!["webrtc".into()];
        let engine = Engine::new(ec, role, Box::new(rand::rngs::StdRng::from_os_rng()));
        let (link_tx, link_rx) = mpsc::unbounded_channel();
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        Worker {
            engine,
            role,
            cfg,
            commands,
            notify,
            events,
            wake,
            links: HashMap::new(),
            next_generation: 0,
            link_tx,
            link_rx,
            internal_tx,
            internal_rx,
            cert: None,
            server: None,
            join_rx: None,
            session: None,
            ended_session: None,
            offline: false,
            master: None,
            join_attempt: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            save_failed: false,
            save_tx: None,
            pending_offer: None,
            solo_peer: None,
            pending_server: None,
            saved: None,
        }
    }

    async fn run(mut self) {
        loop {
            self.flush();
            let sleep = match self.engine.poll_timeout() {
                Some(t) => Duration::from_millis(t.saturating_sub(now_ms())),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.notify.notified() => {
                    while let Ok(cmd) = self.commands.try_recv() {
                        if matches!(cmd, SyncCommand::Shutdown) {
                            self.shutdown().await;
                            return;
                        }
                        self.command(cmd).await;
                        self.flush();
                    }
                }
                Some((peer, generation, ev)) = self.link_rx.recv() => {
                    self.link_event(peer, generation, ev);
                }
                Some(join) = recv_join(&mut self.join_rx) => self.master_join(join),
                Some(i) = self.internal_rx.recv() => self.internal(i),
                _ = tokio::time::sleep(sleep) => self.engine.handle_timeout(now_ms()),
            }
        }
    }

    fn emit(&self, e: SyncEvent) {
        if self.events.send(e).is_ok() {
            (self.wake)();
        }
    }

    /// Carries out everything the engine asked for.
    fn flush(&mut self) {
        self.flush_outputs();
        if self.role == Role::Master {
            self.save_session();
        }
    }

    fn flush_outputs(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Transmit { to, data } => {
                    if let Some(pl) = self.links.get(&to) {
                        let _ = pl.send.send(Outgoing::Text(data));
                    }
                }
                Output::Event(e) => self.engine_event(e),
                Output::Request(TransportRequest::Connect { peer }) => self.connect(peer),
                // First joins by code are still run by `first_join` here.
                Output::Request(TransportRequest::JoinByCode | TransportRequest::CancelJoin) => {}
                Output::Request(TransportRequest::Disconnect { peer }) => {
                    if let Some(pl) = self.links.remove(&peer) {
                        let _ = pl.send.send(Outgoing::Close);
                    }
                    // An attempt the engine gave up on (timed out) must not land later.
                    if self.master.as_ref().is_some_and(|(m, _)| *m == peer) {
                        self.join_attempt.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
    }

    fn engine_event(&mut self, e: Event) {
        match &e {
            Event::SessionStarted { session_id, token } if self.role == Role::Master => {
                self.session = Some((session_id.to_string(), token.clone()));
                self.ended_session = None;
                if let (Some(server), Some(cert)) = (&self.server, &self.cert) {
                    let mut host = server.local_addr();
                    if host.ip().is_unspecified() {
                        host.set_ip(self.cfg.rtc.bind_ip);
                    }
                    match JoinCode::new(
                        host,
                        session_id.to_string(),
                        token.expose().to_owned(),
                        cert.fingerprint(),
                    ) {
                        Ok(code) => self.emit(SyncEvent::JoinCode(code.to_string())),
                        Err(err) => self.emit(SyncEvent::Error(err.to_string())),
                    }
                }
            }
            Event::SessionEnded if self.role == Role::Master => {
                self.ended_session = self.session.take().map(|(id, _)| id);
            }
            Event::SessionEnded | Event::JoinRejected { .. } if self.role == Role::Follower => {
                self.master = None;
                self.join_attempt.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        self.emit(SyncEvent::Engine(e));
    }

    async fn command(&mut self, cmd: SyncCommand) {
        let now = now_ms();
        match cmd {
            SyncCommand::Local(LocalAction::Leave) if self.role == Role::Follower => {
                self.master = None;
                self.join_attempt.fetch_add(1, Ordering::SeqCst);
                self.local(now, LocalAction::Leave);
            }
            SyncCommand::Local(a) => self.local(now, a),
            SyncCommand::Navigate { action, shown } => {
                if let Err(e) = self.engine.handle_navigation(now, action, shown) {
                    self.emit(SyncEvent::Error(e.to_string()));
                }
                self.flush();
            }
            SyncCommand::StartChoir { listen } => self.start_choir(now, listen).await,
            SyncCommand::Join(code) => self.first_join(code),
            SyncCommand::SoloOffer => self.solo_offer(),
            SyncCommand::SoloAnswer(code) => self.solo_answer(code),
            SyncCommand::SoloAccept(code) => self.solo_accept(code),
            SyncCommand::Fault(Fault::DropLink(peer)) => {
                // Closed by "the network": the Closed event tells the engine, as a failure would.
                if let Some(pl) = self.links.get(&peer) {
                    let link = pl.link.clone();
                    tokio::spawn(async move { link.close().await });
                }
            }
            SyncCommand::Fault(Fault::Offline(off)) => {
                self.offline = off;
                if off {
                    for pl in self.links.values() {
                        let link = pl.link.clone();
                        tokio::spawn(async move { link.close().await });
                    }
                }
            }
            SyncCommand::Shutdown => {}
        }
    }

    fn local(&mut self, now: u64, action: LocalAction) {
        if let Err(e) = self.engine.handle_local(now, action) {
            self.emit(SyncEvent::Error(e.to_string()));
        }
    }

    // ---- links -------------------------------------------------------------------------------

    /// Binds an open link to `peer` (replacing an older one) and starts its reader and writer
    /// tasks.
    fn register(
        &mut self,
        peer: &DeviceId,
        link: Link,
        mut events: mpsc::UnboundedReceiver<LinkEvent>,
    ) {
        if let Some(old) = self.links.remove(peer) {
            let _ = old.send.send(Outgoing::Close);
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let (send_tx, mut send_rx) = mpsc::unbounded_channel::<Outgoing>();
        let l = link.clone();
        // One writer per link keeps its messages in order without ever blocking the worker.
        let writer = tokio::spawn(async move {
            while let Some(out) = send_rx.recv().await {
                match out {
                    Outgoing::Text(text) => {
                        if l.send_text(&text).await.is_err() {
                            break;
                        }
                    }
                    Outgoing::Close => break,
                }
            }
            l.close().await;
        });
        let tx = self.link_tx.clone();
        let p = peer.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if tx.send((p.clone(), generation, ev)).is_err() {
                    break;
                }
            }
        });
        self.links.insert(
            peer.clone(),
            PeerLink {
                link,
                generation,
                send: send_tx,
                writer,
                window_start: Instant::now(),
                in_window: 0,
            },
        );
    }

    fn link_event(&mut self, peer: DeviceId, generation: u64, ev: LinkEvent) {
        let Some(pl) = self.links.get_mut(&peer).filter(|pl| pl.generation == generation) else {
            return;
        };
        let now = now_ms();
        match ev {
            LinkEvent::Text(_) | LinkEvent::Binary(_) => {
                if pl.window_start.elapsed() >= Duration::from_secs(1) {
                    pl.window_start = Instant::now();
                    pl.in_window = 0;
                }
                pl.in_window += 1;
                if pl.in_window > self.cfg.flood_limit {
                    // A flooding peer is cut off; everyone else is untouched.
                    if let Some(pl) = self.links.remove(&peer) {
                        tokio::spawn(async move { pl.link.close().await });
                    }
                    self.engine.handle_link(now, &peer, LinkSignal::Down);
                    self.emit(SyncEvent::Error(format!(
                        "{peer} sent more than {} messages in a second and was disconnected",
                        self.cfg.flood_limit
                    )));
                    return;
                }
                if let LinkEvent::Text(text) = ev {
                    if self.role == Role::Solo && text.contains(PAIR_INFO) {
                        self.pair_info(&peer, &text);
                    }
                    // A rejected message changes nothing; there is no one to tell but a log.
                    let _ = self.engine.handle_message(now, &peer, text.as_bytes());
                }
                // A binary message on `maestral-sync` is bad input: dropped.
            }
            LinkEvent::Open | LinkEvent::Recovered => {
                self.engine.handle_link(now, &peer, LinkSignal::Up)
            }
            LinkEvent::Degraded => self.engine.handle_link(now, &peer, LinkSignal::Degraded),
            LinkEvent::Closed => {
                self.links.remove(&peer);
                self.engine.handle_link(now, &peer, LinkSignal::Down);
            }
        }
    }

    fn internal(&mut self, i: Internal) {
        let now = now_ms();
        match i {
            Internal::Ready { peer, link, events, first, kind, attempt } => {
                if attempt != 0 && attempt != self.join_attempt.load(Ordering::SeqCst) {
                    // Finished after `leave`, an end, a refusal or a newer attempt: not wanted.
                    tokio::spawn(async move { link.close().await });
                    return;
                }
                match kind {
                    ReadyKind::FirstJoin(code) => {
                        if self.role != Role::Follower {
                            return;
                        }
                        self.register(&peer, link, events);
                        self.engine.handle_link(now, &peer, LinkSignal::Up);
                        let join = LocalAction::Join {
                            master: peer.clone(),
                            session_id: SessionId::new(code.session_id.clone()),
                            token: code.token.clone().into(),
                        };
                        self.master = Some((peer.clone(), code));
                        self.local(now, join);
                    }
                    ReadyKind::Known => {
                        self.register(&peer, link, events);
                        self.engine.handle_link(now, &peer, LinkSignal::Up);
                        if self.role == Role::Solo {
                            self.send_pair_info(&peer);
                        }
                    }
                    ReadyKind::Solo => {
                        self.register(&peer, link, events);
                        self.engine.handle_link(now, &peer, LinkSignal::Up);
                        self.solo_paired(&peer);
                    }
                }
                if let Some(text) = first {
                    let _ = self.engine.handle_message(now, &peer, text.as_bytes());
                }
            }
            Internal::JoinFailed { attempt, .. }
                if attempt != 0 && attempt != self.join_attempt.load(Ordering::SeqCst) => {}
            Internal::JoinFailed { peer: Some(master), error, .. } => match error {
                JoinFailure::Refused(r @ (HttpReject::InvalidToken | HttpReject::SessionEnded)) => {
                    let reason = match r {
                        HttpReject::SessionEnded => maestral_protocol::RejectReason::SessionEnded,
                        _ => maestral_protocol::RejectReason::InvalidToken,
                    };
                    self.engine.handle_join_refused(now, reason);
                }
                // Unreachable, busy, timed out: the engine backs off and tries again.
                _ => self.engine.handle_link(now, &master, LinkSignal::Down),
            },
            Internal::JoinFailed { peer: None, error, .. } => {
                // A first join only ends here when refused for good (other failures are
                // retried by the join task): one message, the refusal itself.
                self.join_attempt.fetch_add(1, Ordering::SeqCst);
                let reason = match &error {
                    JoinFailure::Refused(HttpReject::SessionEnded) => {
                        Some(maestral_protocol::RejectReason::SessionEnded)
                    }
                    JoinFailure::Refused(HttpReject::InvalidToken) => {
                        Some(maestral_protocol::RejectReason::InvalidToken)
                    }
                    _ => None,
                };
                match reason {
                    Some(reason) => self.emit(SyncEvent::Engine(Event::JoinRejected { reason })),
                    None => self.emit(SyncEvent::Error(error.to_string())),
                }
                self.emit(SyncEvent::Engine(Event::Phase(Phase::FollowerIdleLocal)));
            }
            Internal::SoloOffer { link, events, code } => {
                if let Some((old, _)) = self.pending_offer.replace((link, events)) {
                    tokio::spawn(async move { old.close().await });
                }
                self.emit(SyncEvent::PairCode(code));
            }
            Internal::PairCode(code) => self.emit(SyncEvent::PairCode(code)),
            Internal::SoloListening => {
                if let Some(server) = self.pending_server.take().and_then(|rx| rx.try_recv().ok()) {
                    self.server = Some(server);
                }
                if let Some(peer) = self.solo_peer.as_ref().map(|sp| sp.id.clone()) {
                    self.send_pair_info(&peer);
                }
            }
            Internal::Error(e) => self.emit(SyncEvent::Error(e)),
            Internal::StartFailed(e) => self.emit(SyncEvent::StartFailed(e)),
            Internal::Saved(None) => self.save_failed = false,
            Internal::Saved(Some(e)) => {
                // One message per failure streak, not one per page turn.
                if !self.save_failed {
                    self.save_failed = true;
                    self.emit(SyncEvent::Error(e));
                }
            }
        }
    }

    // ---- Choir: Master -----------------------------------------------------------------------

    async fn start_choir(&mut self, now: u64, listen: SocketAddr) {
        if self.role != Role::Master {
            self.emit(SyncEvent::Error("only a Master starts a Choir session".into()));
            return;
        }
        // A session kept from before a restart is resumed: same certificate, id, token and
        // address, so the join codes singers hold still work.
        let resumed = self.load_session();
        if let Some(saved) = &resumed
            && self.cert.is_none()
        {
            match DtlsCert::from_pem(&saved.cert_pem) {
                Ok(c) => self.cert = Some(c),
                Err(e) => self.emit(SyncEvent::Error(format!(
                    "the saved session's certificate is unreadable ({e}); starting a new session"
                ))),
            }
        }
        let resumed = resumed.filter(|_| self.cert.is_some());
        if self.cert.is_none() {
            match DtlsCert::generate() {
                Ok(c) => self.cert = Some(c),
                Err(e) => {
                    self.emit(SyncEvent::StartFailed(format!(
                        "could not create a certificate: {e}"
                    )));
                    return;
                }
            }
        }
        if self.server.is_none() {
            let (handler, rx) = channel_handler(256);
            let mut bound = None;
            if let Some(saved) = &resumed {
                match SignalingServer::bind(saved.listen, handler.clone()).await {
                    Ok(s) => bound = Some(s),
                    Err(e) => self.emit(SyncEvent::Error(format!(
                        "could not listen on the saved address {} ({e}); singers need the new code",
                        saved.listen
                    ))),
                }
            }
            let resumed_here = bound.is_some();
            if bound.is_none() {
                match SignalingServer::bind(listen, handler).await {
                    Ok(s) => bound = Some(s),
                    Err(e) => {
                        self.emit(SyncEvent::StartFailed(format!(
                            "could not listen for singers on {listen}: {e} — pick another address or port"
                        )));
                        return;
                    }
                }
            }
            self.server = bound;
            self.join_rx = Some(rx);
            if let Some(saved) = resumed.filter(|_| resumed_here) {
                self.engine.resume_master(&saved.state);
                self.saved = Some(saved);
                return;
            }
        }
        self.local(now, LocalAction::StartSession { session_id: None, token: None });
    }

    fn state_file(&self) -> Option<std::path::PathBuf> {
        self.cfg.state_dir.as_ref().map(|d| d.join("master-session.json"))
    }

    /// The saved session, if there is a readable one. A broken file is set aside (never lost)
    /// with one message.
    fn load_session(&mut self) -> Option<SavedSession> {
        let path = self.state_file()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.emit(SyncEvent::Error(format!("could not read {}: {e}", path.display())));
                return None;
            }
        };
        match serde_json::from_str::<SavedSession>(&text) {
            Ok(s) if s.state.session_id.is_some() && s.state.session_token.is_some() => Some(s),
            Ok(_) => None,
            Err(e) => {
                let aside = path.with_extension("json.broken");
                let _ = std::fs::rename(&path, &aside);
                self.emit(SyncEvent::Error(format!(
                    "the saved session in {} is unreadable ({e}); it was kept as {} and a new session starts",
                    path.display(),
                    aside.display()
                )));
                None
            }
        }
    }

    /// Keeps the Master's session on disk whenever it changes (written aside, then renamed, so
    /// a crash mid-write leaves the previous file whole). An ended session is removed.
    fn save_session(&mut self) {
        let Some(path) = self.state_file() else { return };
        let maestral_sync::StateView::Master(state) = self.engine.state() else { return };
        if state.session_id.is_none() {
            if self.saved.take().is_some() {
                // Removed by the writer too, so a write still queued cannot bring it back.
                self.session_writer().0.send((path, None)).ok();
            }
            return;
        }
        let (Some(server), Some(cert)) = (&self.server, &self.cert) else { return };
        let session =
            SavedSession { listen: server.local_addr(), cert_pem: cert.to_pem().to_owned(), state };
        if self.saved.as_ref() == Some(&session) {
            return;
        }
        // The file holds the certificate's private key and the token: written by a thread
        // (fsync must not stall the engine), owner-only, aside then renamed.
        let bytes = serde_json::to_vec_pretty(&session).unwrap_or_default();
        self.saved = Some(session);
        self.session_writer().0.send((path, Some(bytes))).ok();
    }

    fn session_writer(&mut self) -> &(SessionWrites, std::thread::JoinHandle<()>) {
        let done = self.internal_tx.clone();
        self.save_tx.get_or_insert_with(|| spawn_session_writer(done))
    }

    /// A `POST /v1/join`: the token is checked here (in constant time) and again by the engine
    /// on `JOIN_REQUEST`; the answer is made on a task so joins never stall the engine.
    fn master_join(&mut self, p: PendingJoin) {
        if self.role == Role::Solo {
            self.solo_join(p);
            return;
        }
        let r = &p.request;
        let refusal = if self.offline {
            Some(JoinOutcome::Unavailable)
        } else {
            match &self.session {
                Some((id, token))
                    if r.session_id == *id
                        && maestral_protocol::SessionToken::new(r.token.clone()) == *token =>
                {
                    None
                }
                _ if self.ended_session.as_deref() == Some(r.session_id.as_str()) => {
                    Some(JoinOutcome::SessionEnded)
                }
                _ => Some(JoinOutcome::InvalidToken),
            }
        };
        if let Some(o) = refusal {
            let _ = p.reply.send(o);
            return;
        }
        let (Some(cert), cfg, tx) = (self.cert.clone(), self.cfg.rtc, self.internal_tx.clone())
        else {
            let _ = p.reply.send(JoinOutcome::Unavailable);
            return;
        };
        let timeout = self.cfg.join_timeout;
        let peer = DeviceId::new(p.request.device_id.clone());
        tokio::spawn(answer_join(p, cfg, Some(cert), peer, timeout, tx));
    }

    // ---- Choir: Follower ---------------------------------------------------------------------

    fn first_join(&mut self, code: JoinCode) {
        if self.role != Role::Follower {
            self.emit(SyncEvent::Error("only a Follower joins a Choir session".into()));
            return;
        }
        if self.master.take().is_some() {
            // Leave the old session properly (LEAVE_SESSION, then the link closes).
            let _ = self.engine.handle_local(now_ms(), LocalAction::Leave);
            self.flush();
        }
        self.emit(SyncEvent::Engine(Event::Phase(Phase::FollowerJoining)));
        let attempt = self.join_attempt.fetch_add(1, Ordering::SeqCst) + 1;
        let current = self.join_attempt.clone();
        let (cfg, me, timeout, tx, timing) = (
            self.cfg.rtc,
            self.cfg.device_id.clone(),
            self.cfg.join_timeout,
            self.internal_tx.clone(),
            self.cfg.timing,
        );
        tokio::spawn(async move {
            // Until the Master answers or refuses for good: a Wi-Fi glitch or a busy Master
            // must not make a singer scan again. Backoff as the engine's.
            let mut delay = timing.backoff_initial_ms.max(1);
            let mut told = false;
            loop {
                if current.load(Ordering::SeqCst) != attempt {
                    return;
                }
                let failure = match join_link(&cfg, &me, &code, timeout).await {
                    Ok((link, mut events)) => match first_text(&mut events, timeout).await {
                        Some((sender, text)) => {
                            let _ = tx.send(Internal::Ready {
                                peer: sender,
                                link,
                                events,
                                first: Some(text),
                                kind: ReadyKind::FirstJoin(code),
                                attempt,
                            });
                            return;
                        }
                        None => {
                            link.close().await;
                            JoinFailure::Other(
                                "the conductor's device connected but never introduced itself"
                                    .into(),
                            )
                        }
                    },
                    Err(e) => e,
                };
                if matches!(
                    failure,
                    JoinFailure::Refused(
                        HttpReject::InvalidToken
                            | HttpReject::SessionEnded
                            | HttpReject::BadRequest
                            | HttpReject::TooLarge
                    )
                ) || failure.is_fatal()
                {
                    let _ = tx.send(Internal::JoinFailed { peer: None, error: failure, attempt });
                    return;
                }
                if !told {
                    // Once: the app shows it; the retries stay quiet.
                    told = true;
                    let _ = tx.send(Internal::Error(format!("{failure} — trying again")));
                }
                tokio::time::sleep(Duration::from_millis(delay)).await;
                delay = (delay * 2).min(timing.backoff_max_ms.max(1));
            }
        });
    }

    /// The engine wants a link: a Follower's rejoin with the stored code.
    fn connect(&mut self, peer: DeviceId) {
        if self.role == Role::Solo {
            self.solo_reconnect(peer);
            return;
        }
        let Some((master, code)) = self.master.clone().filter(|(m, _)| *m == peer) else {
            return;
        };
        let attempt = self.join_attempt.fetch_add(1, Ordering::SeqCst) + 1;
        let (cfg, me, timeout, tx) = (
            self.cfg.rtc,
            self.cfg.device_id.clone(),
            self.cfg.join_timeout,
            self.internal_tx.clone(),
        );
        tokio::spawn(async move {
            let msg = match join_link(&cfg, &me, &code, timeout).await {
                Ok((link, events)) => Internal::Ready {
                    peer: master,
                    link,
                    events,
                    first: None,
                    kind: ReadyKind::Known,
                    attempt,
                },
                Err(error) => Internal::JoinFailed { peer: Some(master), error, attempt },
            };
            let _ = tx.send(msg);
        });
    }

    // ---- Solo --------------------------------------------------------------------------------

    fn solo_offer(&mut self) {
        if self.role != Role::Solo {
            self.emit(SyncEvent::Error("pairing codes are for Solo mode".into()));
            return;
        }
        let (cfg, tx) = (self.cfg.rtc, self.internal_tx.clone());
        tokio::spawn(async move {
            let msg = match Link::offer(&cfg, None).await {
                Ok((link, sdp, events)) => match pairing::encode_offer(&sdp) {
                    Ok(code) => Internal::SoloOffer { link, events, code },
                    Err(e) => {
                        link.close().await;
                        Internal::StartFailed(e.to_string())
                    }
                },
                Err(e) => Internal::StartFailed(format!("could not prepare a pairing offer: {e}")),
            };
            let _ = tx.send(msg);
        });
    }

    fn solo_answer(&mut self, code: String) {
        if self.role != Role::Solo {
            self.emit(SyncEvent::Error("pairing codes are for Solo mode".into()));
            return;
        }
        let (cfg, tx, hello, timeout) =
            (self.cfg.rtc, self.internal_tx.clone(), self.intro(), self.cfg.join_timeout * 12);
        tokio::spawn(async move {
            let offer = match pairing::decode_offer(&code) {
                Ok(o) => o,
                Err(e) => {
                    let _ = tx.send(Internal::Error(e.to_string()));
                    return;
                }
            };
            let (link, answer, events) = match Link::answer(&cfg, None, &offer).await {
                Ok(x) => x,
                Err(e) => {
                    let _ =
                        tx.send(Internal::Error(format!("this pairing code did not work: {e}")));
                    return;
                }
            };
            match pairing::encode_answer(&answer) {
                Ok(c) => {
                    let _ = tx.send(Internal::PairCode(c));
                }
                Err(e) => {
                    link.close().await;
                    let _ = tx.send(Internal::Error(e.to_string()));
                    return;
                }
            }
            // The other device may take a while to scan the answer.
            solo_handshake(link, events, hello, timeout, tx).await;
        });
    }

    fn solo_accept(&mut self, code: String) {
        let Some((link, events)) = self.pending_offer.take() else {
            self.emit(SyncEvent::Error("make an offer code first, then scan the answer".into()));
            return;
        };
        let (tx, hello, timeout) = (self.internal_tx.clone(), self.intro(), self.cfg.join_timeout);
        tokio::spawn(async move {
            let answer = match pairing::decode_answer(&code) {
                Ok(a) => a,
                Err(e) => {
                    link.close().await;
                    let _ = tx.send(Internal::Error(e.to_string()));
                    return;
                }
            };
            if let Err(e) = link.accept_answer(&answer).await {
                link.close().await;
                let _ = tx.send(Internal::Error(format!("this answer code did not work: {e}")));
                return;
            }
            solo_handshake(link, events, hello, timeout, tx).await;
        });
    }

    /// A new pairing: start the listener the partner will call back on, and tell it how.
    fn solo_paired(&mut self, peer: &DeviceId) {
        let secret = new_secret();
        self.solo_peer = Some(SoloPeer { id: peer.clone(), my_secret: secret, theirs: None });
        if self.server.is_none() {
            let (handler, rx) = channel_handler(16);
            let addr = SocketAddr::new(self.cfg.rtc.bind_ip, 0);
            let tx = self.internal_tx.clone();
            let (server_tx, server_rx) = std::sync::mpsc::channel();
            // Binding is async; the result comes back as an internal message.
            tokio::spawn(async move {
                match SignalingServer::bind(addr, handler).await {
                    Ok(s) => {
                        let _ = server_tx.send(s);
                        let _ = tx.send(Internal::SoloListening);
                    }
                    Err(e) => {
                        let _ = tx.send(Internal::Error(format!(
                            "could not listen for the paired device ({e}); it will need a new pairing after a drop-out"
                        )));
                    }
                }
            });
            self.pending_server = Some(server_rx);
            self.join_rx = Some(rx);
        } else {
            self.send_pair_info(peer);
        }
    }

    /// Sends our listener's address and the secret we accept to the partner.
    fn send_pair_info(&mut self, peer: &DeviceId) {
        let (Some(server), Some(sp)) = (&self.server, &self.solo_peer) else { return };
        if sp.id != *peer {
            return;
        }
        let text = serde_json::json!({
            "v": 1,
            "session_id": "",
            "sender_id": self.cfg.device_id.as_str(),
            "type": PAIR_INFO,
            "ts": now_ms(),
            "payload": { "host": server.local_addr().to_string(), "secret": sp.my_secret },
        })
        .to_string();
        if let Some(pl) = self.links.get(peer) {
            let _ = pl.send.send(Outgoing::Text(text.into()));
        }
    }

    /// The partner's `PAIR_INFO`: where and how to reach it again.
    fn pair_info(&mut self, peer: &DeviceId, text: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else { return };
        if v["type"] != PAIR_INFO || v["sender_id"].as_str() != Some(peer.as_str()) {
            return;
        }
        let host = v["payload"]["host"].as_str().and_then(|h| h.parse::<SocketAddr>().ok());
        let secret = v["payload"]["secret"].as_str().filter(|s| !s.is_empty());
        if let (Some(host), Some(secret), Some(sp)) = (host, secret, self.solo_peer.as_mut())
            && sp.id == *peer
        {
            sp.theirs = Some((host, secret.to_owned()));
        }
    }

    /// The engine wants the partner back: the lower device id calls, the other waits for the
    /// call (both calling at once would open two links).
    fn solo_reconnect(&mut self, peer: DeviceId) {
        let Some(sp) = self.solo_peer.clone().filter(|sp| sp.id == peer) else { return };
        if self.cfg.device_id > peer {
            return;
        }
        let Some((host, secret)) = sp.theirs else { return };
        let (cfg, me, timeout, tx) = (
            self.cfg.rtc,
            self.cfg.device_id.clone(),
            self.cfg.join_timeout,
            self.internal_tx.clone(),
        );
        tokio::spawn(async move {
            let msg = match solo_call(&cfg, &me, host, &secret, timeout).await {
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
            let _ = tx.send(msg);
        });
    }

    /// The partner calls back on our listener with our secret.
    fn solo_join(&mut self, p: PendingJoin) {
        let r = &p.request;
        let Some(sp) = self.solo_peer.clone().filter(|sp| {
            r.session_id == SOLO_SESSION
                && r.device_id == sp.id.as_str()
                && maestral_protocol::SessionToken::new(r.token.clone())
                    == maestral_protocol::SessionToken::new(sp.my_secret.clone())
        }) else {
            let _ = p.reply.send(JoinOutcome::InvalidToken);
            return;
        };
        let (cfg, tx, timeout) = (self.cfg.rtc, self.internal_tx.clone(), self.cfg.join_timeout);
        tokio::spawn(answer_join(p, cfg, None, sp.id, timeout, tx));
    }

    /// The first message on a new Solo link: a HELLO, so the other device learns our id
    /// before its engine hears of the link (the engine sends its own HELLO right after).
    fn intro(&self) -> String {
        Envelope::new(
            SessionId::default(),
            self.cfg.device_id.clone(),
            now_ms(),
            Message::Hello(Hello {
                mode: Mode::Solo,
                device_name: self.cfg.device_name.clone(),
                app_version: env!("CARGO_PKG_VERSION").into(),
                capabilities: vec!["webrtc".into()],
            }),
        )
        .encode()
    }

    async fn shutdown(&mut self) {
        if self.role == Role::Follower
            && let Some((master, _)) = &self.master
            && self.links.contains_key(master)
        {
            let _ = self.engine.handle_local(now_ms(), LocalAction::Leave);
            self.flush();
        }
        // Every link closed in parallel, each after its last queued message (webrtc keeps an
        // unclosed connection's task alive, so every one is closed).
        let writers: Vec<_> = self
            .links
            .drain()
            .map(|(_, pl)| {
                let _ = pl.send.send(Outgoing::Close);
                pl.writer
            })
            .collect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            for w in writers {
                let _ = w.await;
            }
        })
        .await;
        if let Some((link, _)) = self.pending_offer.take() {
            link.close().await;
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        // The last session write lands before the thread ends (a restart reads it).
        if let Some((tx, writer)) = self.save_tx.take() {
            drop(tx);
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

async fn recv_join(rx: &mut Option<mpsc::Receiver<PendingJoin>>) -> Option<PendingJoin> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Answers a join (a Follower's, or the paired Solo device calling back): the SDP answer goes
/// back over HTTP, and once the channel is open the link is handed to the worker for `peer`.
async fn answer_join(
    p: PendingJoin,
    cfg: RtcConfig,
    cert: Option<DtlsCert>,
    peer: DeviceId,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let PendingJoin { request, reply } = p;
    let Ok((link, answer, mut events)) = Link::answer(&cfg, cert.as_ref(), &request.offer).await
    else {
        let _ = reply.send(JoinOutcome::BadRequest);
        return;
    };
    if reply.send(JoinOutcome::Answer(answer)).is_err() || !wait_open(&mut events, timeout).await {
        link.close().await;
        return;
    }
    let ready = ReadyKind::Known;
    let _ = tx.send(Internal::Ready { peer, link, events, first: None, kind: ready, attempt: 0 });
}

/// Waits for the channel to open. Messages cannot come before `Open` (the link's contract).
async fn wait_open(events: &mut mpsc::UnboundedReceiver<LinkEvent>, timeout: Duration) -> bool {
    let r = tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Some(LinkEvent::Open) => return true,
                Some(LinkEvent::Closed) | None => return false,
                Some(_) => {}
            }
        }
    })
    .await;
    r.unwrap_or(false)
}

/// The peer's first text message and the device id it claims (its HELLO).
async fn first_text(
    events: &mut mpsc::UnboundedReceiver<LinkEvent>,
    timeout: Duration,
) -> Option<(DeviceId, String)> {
    let r = tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Some(LinkEvent::Text(t)) => {
                    return decode(t.as_bytes()).ok().map(|e| (e.sender_id, t));
                }
                Some(LinkEvent::Closed) | None => return None,
                Some(_) => {}
            }
        }
    })
    .await;
    r.ok().flatten()
}

/// Offer → `POST /v1/join` → check the answer's fingerprint against the join code → open.
async fn join_link(
    cfg: &RtcConfig,
    me: &DeviceId,
    code: &JoinCode,
    timeout: Duration,
) -> Result<(Link, mpsc::UnboundedReceiver<LinkEvent>), JoinFailure> {
    let (link, offer, mut events) = Link::offer(cfg, None)
        .await
        .map_err(|e| JoinFailure::Other(format!("could not prepare a connection: {e}")))?;
    let body = JoinRequestBody {
        session_id: code.session_id.clone(),
        token: code.token.clone(),
        device_id: me.to_string(),
        offer,
    };
    let answer = match post_join(code.host, &body, timeout).await {
        Ok(a) => a,
        Err(e) => {
            link.close().await;
            return Err(match e {
                JoinError::Rejected(r) => JoinFailure::Refused(r),
                other => JoinFailure::Other(other.to_string()),
            });
        }
    };
    // The answer must come from the Master whose certificate the QR code names: no one else on
    // the LAN can sit in the middle.
    let genuine =
        sha256_fingerprint(&answer).is_some_and(|fp| fingerprints_match(&fp, &code.fingerprint));
    if !genuine {
        link.close().await;
        return Err(JoinFailure::Forged(
            "the device that answered is not the conductor's device named by this join code \
             (certificate fingerprint mismatch) — refused; scan the QR code on the conductor's screen again"
                .into(),
        ));
    }
    if let Err(e) = link.accept_answer(&answer).await {
        link.close().await;
        return Err(JoinFailure::Other(format!("the conductor's answer did not work: {e}")));
    }
    if !wait_open(&mut events, timeout).await {
        link.close().await;
        return Err(JoinFailure::Other(
            "the connection to the conductor's device did not open — check the network".into(),
        ));
    }
    Ok((link, events))
}

/// The thread that writes a Master's session file: newest content wins, each write is
/// `tmp` + fsync + rename, mode 0600 where the platform has modes.
/// Jobs for the session writer: new content, or `None` to remove the file.
type SessionWrites = crossbeam_channel::Sender<(std::path::PathBuf, Option<Vec<u8>>)>;

fn spawn_session_writer(
    done: mpsc::UnboundedSender<Internal>,
) -> (SessionWrites, std::thread::JoinHandle<()>) {
    let (tx, rx) = crossbeam_channel::unbounded::<(std::path::PathBuf, Option<Vec<u8>>)>();
    let handle = std::thread::spawn(move || {
        while let Ok(mut job) = rx.recv() {
            while let Ok(newer) = rx.try_recv() {
                job = newer;
            }
            let (path, bytes) = job;
            let r = match bytes {
                Some(b) => write_private_atomically(&path, &b),
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            };
            let r = r.map_err(|e| {
                format!(
                    "could not save the session to {} ({e}); a restart will need a new code",
                    path.display()
                )
            });
            let _ = done.send(Internal::Saved(r.err()));
        }
    });
    (tx, handle)
}

fn write_private_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// A pairing secret: 128 bits, URL-safe base64.
fn new_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Calls the paired device's listener with its secret and opens a new link.
async fn solo_call(
    cfg: &RtcConfig,
    me: &DeviceId,
    host: SocketAddr,
    secret: &str,
    timeout: Duration,
) -> Result<(Link, mpsc::UnboundedReceiver<LinkEvent>), JoinFailure> {
    let (link, offer, mut events) = Link::offer(cfg, None)
        .await
        .map_err(|e| JoinFailure::Other(format!("could not prepare a connection: {e}")))?;
    let body = JoinRequestBody {
        session_id: SOLO_SESSION.into(),
        token: secret.into(),
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
async fn solo_handshake(
    link: Link,
    mut events: mpsc::UnboundedReceiver<LinkEvent>,
    hello: String,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Internal>,
) {
    if !wait_open(&mut events, timeout).await {
        link.close().await;
        let _ = tx.send(Internal::Error("the pairing did not connect — try again".into()));
        return;
    }
    if link.send_text(&hello).await.is_err() {
        link.close().await;
        let _ =
            tx.send(Internal::Error("the pairing connection closed at once — try again".into()));
        return;
    }
    match first_text(&mut events, timeout).await {
        Some((peer, text)) => {
            let _ = tx.send(Internal::Ready {
                peer,
                link,
                events,
                first: Some(text),
                kind: ReadyKind::Solo,
                attempt: 0,
            });
        }
        None => {
            link.close().await;
            let _ = tx.send(Internal::Error("the other device did not introduce itself".into()));
        }
    }
}
