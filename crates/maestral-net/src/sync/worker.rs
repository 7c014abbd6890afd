//! The worker: one task on the sync runtime that owns the engine and feeds it every input (a
//! command, a link event, a join request, a timer), then carries out its outputs, handing what
//! only one role does to that role's module through [`RoleIo`].

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use maestral_protocol::DeviceId;
use maestral_sync::{Engine, EngineConfig, Event, LinkSignal, LocalAction, Output, Role};
use rand::SeedableRng;
use tokio::sync::{Notify, mpsc};

use super::clock::Clock;
use super::error::SyncError;
use super::follower::FollowerIo;
use super::handle::{SyncCommand, SyncConfig, SyncEvent};
use super::link::{LinkEvents, Links, Traffic};
use super::master::MasterIo;
use super::solo::SoloIo;
use super::store::StateWriter;
use crate::rtc::LinkEvent;
use crate::signaling::PendingJoin;

/// Link events handled in one pass of the loop at most, before the outputs go out.
const LINK_EVENT_BATCH: usize = 64;

/// What every role shares: the engine, its clocks, the links and the way back to the app.
pub(crate) struct Ctx {
    pub(crate) engine: Engine,
    pub(crate) cfg: SyncConfig,
    pub(crate) clock: Clock,
    pub(crate) links: Links,
    /// Where spawned tasks report back.
    pub(crate) internal: mpsc::UnboundedSender<Internal>,
    /// The role's files in the state directory (`None`: nothing is kept).
    state: Option<StateWriter>,
    /// The thread is stopping: what the role keeps stays as it is (a Follower that quits still
    /// rejoins after a restart; only Leave, an end or a refusal forget its session).
    pub(crate) closing: bool,
    events: Sender<SyncEvent>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Ctx {
    /// Counts one message of `len` bytes from `peer` against the flood limits; past them the
    /// link is cut off and the engine and the app are told. Whether it was.
    fn flooded(&mut self, peer: &DeviceId, len: usize) -> bool {
        let (limit, bytes) = (self.cfg.flood_limit, self.cfg.flood_bytes);
        let Traffic::Flood = self.links.count(peer, limit, bytes, len) else { return false };
        self.link(peer, LinkSignal::Down);
        let limit = format!("{limit} messages or {bytes} bytes");
        self.error(SyncError::Flood { peer: peer.clone(), limit });
        true
    }

    /// The engine's `now` (monotonic), with the engine's wall offset set for its stamps. Every
    /// engine input takes its time from here.
    pub(crate) fn now(&mut self) -> u64 {
        let now = self.clock.now();
        self.engine.set_wall_offset(self.clock.wall_offset(now));
        now
    }

    pub(crate) fn emit(&self, e: SyncEvent) {
        if self.events.send(e).is_ok() {
            (self.wake)();
        }
    }

    /// Hands a write of the role's state files to the writer thread (nothing without a state
    /// directory, nothing while the thread stops).
    pub(crate) fn store(&mut self, job: impl FnOnce(&mut StateWriter)) {
        if !self.closing
            && let Some(writer) = self.state.as_mut()
        {
            job(writer);
        }
    }

    pub(crate) fn error(&self, e: impl Into<SyncError>) {
        self.emit(SyncEvent::Error(e.into()));
    }

    /// A local action; a refusal goes to the app.
    pub(crate) fn local(&mut self, action: LocalAction) {
        let now = self.now();
        if let Err(e) = self.engine.handle_local(now, action) {
            self.error(e);
        }
    }

    /// The performer navigated and the app shows `shown`: the engine reports only a differing
    /// view.
    pub(crate) fn navigate(&mut self, action: LocalAction, shown: maestral_sync::View) {
        let now = self.now();
        if let Err(e) = self.engine.handle_navigation(now, action, shown) {
            self.error(e);
        }
    }

    pub(crate) fn link(&mut self, peer: &DeviceId, signal: LinkSignal) {
        let now = self.now();
        self.engine.handle_link(now, peer, signal);
    }

    /// A text message from `peer`, decoded and given to the engine.
    pub(crate) fn message(&mut self, peer: &DeviceId, text: &str) {
        let now = self.now();
        if let Err(e) = self.engine.handle_message(now, peer, text.as_bytes()) {
            // A rejected message changes nothing; there is no one to tell but the log.
            tracing::debug!(%peer, "message dropped: {e}");
        }
    }
}

pub(crate) use super::internal::{Internal, ReadyKind};

/// What only one role does, with that role's state (mirrors the engine's roles).
// One per worker, never moved after start: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum RoleIo {
    Master(MasterIo),
    Follower(FollowerIo),
    Solo(SoloIo),
}

pub(crate) struct Worker {
    ctx: Ctx,
    role: RoleIo,
    commands: Receiver<SyncCommand>,
    notify: Arc<Notify>,
    link_events: LinkEvents,
    internal: mpsc::UnboundedReceiver<Internal>,
}

impl Worker {
    pub(crate) fn new(
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
        let (links, link_events) = Links::new();
        let (internal_tx, internal) = mpsc::unbounded_channel();
        let role = match role {
            Role::Master => RoleIo::Master(MasterIo::default()),
            Role::Follower => RoleIo::Follower(FollowerIo::default()),
            Role::Solo => RoleIo::Solo(SoloIo::default()),
        };
        let state = cfg.state_dir.clone().map(|dir| StateWriter::new(dir, internal_tx.clone()));
        let ctx = Ctx {
            engine,
            cfg,
            clock: Clock::new(),
            links,
            internal: internal_tx,
            state,
            closing: false,
            events,
            wake,
        };
        Worker { ctx, role, commands, notify, link_events, internal }
    }

    pub(crate) async fn run(mut self) {
        self.start_role();
        loop {
            self.flush();
            let engine_at = self.ctx.engine.poll_timeout().map(|t| self.ctx.clock.instant(t));
            let copy_at = self.ctx.links.next_copy();
            let wake_at = match engine_at.into_iter().chain(copy_at).min() {
                Some(t) => tokio::time::Instant::from_std(t),
                None => tokio::time::Instant::now() + Duration::from_secs(3600),
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
                Some((generation, ev)) = self.link_events.recv() => {
                    self.link_event(generation, ev);
                    // A burst (a Master hearing from every Follower) is handled in one pass:
                    // one flush and one timer for all of it, not one per message.
                    for _ in 1..LINK_EVENT_BATCH {
                        let Ok((generation, ev)) = self.link_events.try_recv() else { break };
                        self.link_event(generation, ev);
                    }
                }
                Some(join) = recv_join(&mut self.role) => self.join_request(join),
                Some(i) = self.internal.recv() => self.internal(i),
                _ = tokio::time::sleep_until(wake_at) => {
                    let at = std::time::Instant::now();
                    if engine_at.is_some_and(|t| t <= at) {
                        let now = self.ctx.now();
                        self.ctx.engine.handle_timeout(now);
                    }
                    self.ctx.links.send_copies(at);
                }
            }
        }
    }

    /// Carries out everything the engine asked for.
    fn flush(&mut self) {
        let ctx = &mut self.ctx;
        loop {
            let outputs: Vec<Output> = std::iter::from_fn(|| ctx.engine.poll_output()).collect();
            if outputs.is_empty() {
                break;
            }
            // Every register update's first copy (a datagram) goes before any original is
            // queued: a turn reaches a Master's last Follower without waiting for the DTLS and
            // SCTP work of the others' originals. Only the last update of a register to a peer
            // is copied (it supersedes the earlier ones, whose originals still go).
            for i in super::link::last_updates(&outputs) {
                if let Output::Transmit { to, data, register: Some(r) } = &outputs[i] {
                    ctx.links.copy_now(to, data, *r);
                }
            }
            for o in outputs {
                output(&mut self.role, ctx, o);
            }
        }
        match &mut self.role {
            RoleIo::Master(m) => m.save_session(ctx),
            RoleIo::Follower(f) => f.save(ctx),
            RoleIo::Solo(s) => s.save(ctx),
        }
    }

    /// What the role does as the thread starts: a Solo device takes back its pairing.
    fn start_role(&mut self) {
        if let RoleIo::Solo(s) = &mut self.role {
            s.resume(&mut self.ctx);
        }
    }

    async fn command(&mut self, cmd: SyncCommand) {
        let ctx = &mut self.ctx;
        match (cmd, &mut self.role) {
            (SyncCommand::Local(LocalAction::Leave), RoleIo::Follower(f)) => {
                f.leave();
                ctx.local(LocalAction::Leave);
            }
            (SyncCommand::Local(LocalAction::Unpair), RoleIo::Solo(s)) => s.unpair(ctx),
            (SyncCommand::Local(a), _) => ctx.local(a),
            (SyncCommand::Navigate { action, shown }, _) => ctx.navigate(action, shown),
            (SyncCommand::StartChoir { listen }, RoleIo::Master(m)) => m.start(ctx, listen).await,
            (SyncCommand::StartChoir { .. }, _) => {
                ctx.error(SyncError::WrongRole("only a Master starts a Choir session"));
            }
            (SyncCommand::Join(code), RoleIo::Follower(f)) => f.first_join(ctx, code),
            (SyncCommand::Rejoin, RoleIo::Follower(f)) => f.resume(ctx),
            (SyncCommand::Join(_) | SyncCommand::Rejoin, _) => {
                ctx.error(SyncError::WrongRole("only a Follower joins a Choir session"));
            }
            // A new pairing asked for: the kept one is forgotten first (its partner must not
            // call back into the new pair).
            (SyncCommand::SoloOffer, RoleIo::Solo(s)) => {
                s.forget_kept(ctx);
                s.offer(ctx);
            }
            (SyncCommand::SoloAnswer(code), RoleIo::Solo(s)) => {
                s.forget_kept(ctx);
                s.answer(ctx, code);
            }
            (SyncCommand::SoloAccept(code), RoleIo::Solo(s)) => s.accept(ctx, code),
            (
                SyncCommand::SoloOffer | SyncCommand::SoloAnswer(_) | SyncCommand::SoloAccept(_),
                _,
            ) => {
                ctx.error(SyncError::WrongRole("pairing codes are for Solo mode"));
            }
            (SyncCommand::Serve { song_id, bytes, title }, RoleIo::Master(m)) => {
                m.served.offer(ctx, song_id, bytes, title);
            }
            (SyncCommand::Serve { song_id, bytes, title }, RoleIo::Solo(s)) => {
                s.served.offer(ctx, song_id, bytes, title);
            }
            (SyncCommand::Fetch(prepare), RoleIo::Follower(f)) => f.fetch(ctx, prepare),
            (SyncCommand::Fetch(prepare), RoleIo::Solo(s)) => {
                let partner = s.partner();
                s.fetches.want(ctx, partner.as_ref(), prepare);
            }
            (SyncCommand::ServeNext { song_id, bytes, title }, RoleIo::Master(m)) => {
                m.served.offer_next(ctx, Some((song_id, bytes, title)));
            }
            (SyncCommand::WithdrawNext, RoleIo::Master(m)) => m.served.offer_next(ctx, None),
            (SyncCommand::ServeNext { .. } | SyncCommand::WithdrawNext, _) => {
                ctx.error(SyncError::WrongRole("only a Master offers its next piece ahead"));
            }
            (SyncCommand::Serve { .. }, RoleIo::Follower(_)) => {
                ctx.error(SyncError::WrongRole("a Follower streams nothing to others"));
            }
            (SyncCommand::Fetch(_), RoleIo::Master(_)) => {
                ctx.error(SyncError::WrongRole("a Master has the session's scores"));
            }
            #[cfg(feature = "test-support")]
            (SyncCommand::Fault(super::Fault::DropLink(peer)), _) => ctx.links.drop_link(&peer),
            #[cfg(feature = "test-support")]
            (SyncCommand::Fault(super::Fault::Offline(off)), role) => {
                if let RoleIo::Master(m) = role {
                    m.offline = off;
                }
                if off {
                    ctx.links.drop_all();
                }
            }
            (SyncCommand::Shutdown, _) => {}
        }
    }

    fn link_event(&mut self, generation: u64, ev: LinkEvent) {
        let Some(peer) = self.ctx.links.peer(generation).cloned() else { return };
        self.peer_event(&peer, ev);
    }

    /// An event of the current link to `peer`.
    fn peer_event(&mut self, peer: &DeviceId, ev: LinkEvent) {
        let ctx = &mut self.ctx;
        match ev {
            // A binary message on `maestral-sync` is bad input: counted, then dropped.
            LinkEvent::Binary(len) => {
                flooded(ctx, &mut self.role, peer, len);
            }
            LinkEvent::Text(text) => {
                if flooded(ctx, &mut self.role, peer, text.len()) {
                    return;
                }
                // The original of a copy already applied (a Solo original may be answered).
                if !matches!(self.role, RoleIo::Solo(_)) && ctx.links.repeats_copy(peer, &text) {
                    return;
                }
                let now = ctx.now();
                match maestral_protocol::decode(text.as_bytes()) {
                    Ok(env) => {
                        if let RoleIo::Solo(s) = &mut self.role
                            && env.sender_id == *peer
                        {
                            match &env.message {
                                maestral_protocol::Message::PairInfo(info) => {
                                    s.pair_info(peer, info)
                                }
                                maestral_protocol::Message::Hello(h) => s.hello(peer, h),
                                _ => {}
                            }
                        }
                        if let Err(e) = ctx.engine.handle_envelope(now, peer, env) {
                            tracing::debug!(%peer, "message dropped: {e}");
                        }
                    }
                    // The engine answers some undecodable messages (a Master's JOIN_REJECT).
                    Err(_) => ctx.message(peer, &text),
                }
            }
            // A copy of a register update (a duplicate, stale or lost one changes nothing).
            LinkEvent::Copy(text) => {
                if flooded(ctx, &mut self.role, peer, text.len())
                    || ctx.links.repeats_copy(peer, &text)
                {
                    return;
                }
                let now = ctx.now();
                let copied = maestral_protocol::decode(text.as_bytes())
                    .map_err(Into::into)
                    .and_then(|env| ctx.engine.handle_copy(now, peer, env));
                match copied {
                    Ok(()) if super::link::takes_copies(&ctx.engine, peer) => {
                        ctx.links.took_copy(peer, &text)
                    }
                    Ok(()) => {}
                    Err(e) => tracing::debug!(%peer, "copy dropped: {e}"),
                }
            }
            LinkEvent::Open => ctx.link(peer, LinkSignal::Up),
            LinkEvent::Recovered => {
                ctx.links.recovered(peer);
                ctx.link(peer, LinkSignal::Up);
            }
            LinkEvent::Degraded => ctx.link(peer, LinkSignal::Degraded),
            LinkEvent::Closed => {
                ctx.links.forget(peer);
                ctx.link(peer, LinkSignal::Down);
            }
        }
    }

    fn join_request(&mut self, join: PendingJoin) {
        match &mut self.role {
            RoleIo::Master(m) => m.join(&self.ctx, join),
            RoleIo::Solo(s) => s.callback(&mut self.ctx, join),
            RoleIo::Follower(_) => {}
        }
    }

    fn internal(&mut self, i: Internal) {
        match i {
            Internal::Ready { peer, link, events, first, kind, attempt } => {
                let wanted = match &mut self.role {
                    RoleIo::Follower(f) => attempt == 0 || f.wants(attempt),
                    RoleIo::Solo(s) if attempt != 0 => {
                        let wanted = s.wants(attempt);
                        s.call_done(attempt);
                        wanted
                    }
                    _ => true,
                };
                if !wanted {
                    // Finished after `leave`, an end, a refusal or a newer attempt: not wanted.
                    tokio::spawn(async move { link.close().await });
                    return;
                }
                if let RoleIo::Follower(f) = &mut self.role
                    && attempt != 0
                {
                    f.settled();
                }
                if let ReadyKind::FirstJoin(_) = kind
                    && !matches!(self.role, RoleIo::Follower(_))
                {
                    return;
                }
                if let (ReadyKind::Answered { fingerprint, from }, RoleIo::Master(m)) =
                    (&kind, &mut self.role)
                    && !m.admit(&peer, fingerprint, *from)
                {
                    tokio::spawn(async move { link.close().await });
                    return;
                }
                // The peer may ask for the score on a stream channel of this link (a Follower of
                // this Master, or this device's Solo partner).
                let slot = match &self.role {
                    RoleIo::Master(m) => Some(m.served.clone()),
                    RoleIo::Solo(s) => Some(s.served.clone()),
                    RoleIo::Follower(_) => None,
                };
                if let Some(slot) = slot {
                    super::stream::accept(&link, peer.clone(), slot, self.ctx.internal.clone());
                }
                let (_, queued) = self.ctx.links.register(&peer, link, events);
                self.ctx.link(&peer, LinkSignal::Up);
                match (kind, &mut self.role) {
                    (ReadyKind::FirstJoin(code), RoleIo::Follower(f)) => f.joined(&peer, code),
                    (ReadyKind::Moved(code), RoleIo::Follower(f)) => f.moved(code),
                    (ReadyKind::Known | ReadyKind::Answered { .. }, RoleIo::Solo(s)) => {
                        s.send_pair_info(&mut self.ctx, &peer);
                    }
                    (ReadyKind::Solo { fingerprint, name }, RoleIo::Solo(s)) => {
                        s.paired(&mut self.ctx, &peer, fingerprint, name);
                    }
                    _ => {}
                }
                if let Some(text) = first {
                    self.ctx.message(&peer, &text);
                }
                for ev in queued {
                    self.peer_event(&peer, ev);
                }
            }
            Internal::JoinFailed { peer, error, attempt } => match &mut self.role {
                RoleIo::Follower(f) => f.join_failed(&mut self.ctx, peer, error, attempt),
                // A Solo call-back that failed: the engine backs off and asks again (one that
                // was given up, for the partner's crossing call, is not reported).
                RoleIo::Solo(s) => {
                    if let Some(peer) = peer.filter(|_| s.wants(attempt)) {
                        s.call_done(attempt);
                        self.ctx.link(&peer, LinkSignal::Down);
                    }
                }
                RoleIo::Master(_) => {}
            },
            Internal::SoloOffer { link, events, code } => match &mut self.role {
                RoleIo::Solo(s) => s.offer_ready(&self.ctx, link, events, code),
                _ => drop(tokio::spawn(async move { link.close().await })),
            },
            Internal::PairCode(code) => self.ctx.emit(SyncEvent::PairCode(code)),
            Internal::SoloListening(server) => {
                if let RoleIo::Solo(s) = &mut self.role {
                    s.listening(&mut self.ctx, server);
                }
            }
            Internal::StreamProgress { song, task, got } => match &mut self.role {
                RoleIo::Follower(f) => f.fetches.progress(&mut self.ctx, song, task, got),
                RoleIo::Solo(s) => s.fetches.progress(&mut self.ctx, song, task, got),
                RoleIo::Master(_) => {}
            },
            Internal::StreamDone { song, task, outcome } => match &mut self.role {
                RoleIo::Follower(f) => f.stream_done(&mut self.ctx, song, task, outcome),
                RoleIo::Solo(s) => {
                    let partner = s.partner();
                    s.fetches.finished(&mut self.ctx, partner.as_ref(), song, task, outcome);
                }
                RoleIo::Master(_) => {}
            },
            Internal::AddressChanged { ip, server } => match &mut self.role {
                RoleIo::Master(m) => m.moved(&mut self.ctx, ip, server),
                _ => drop(server),
            },
            Internal::Located { code, attempt } => {
                if let RoleIo::Follower(f) = &mut self.role {
                    f.located(&mut self.ctx, code, attempt);
                }
            }
            Internal::Error(e) => self.ctx.error(e),
            Internal::StartFailed(e) => self.ctx.emit(SyncEvent::StartFailed(e)),
            Internal::Saved { name, error } => {
                let told = self.ctx.state.as_mut().and_then(|w| w.finished(&name, error));
                if let Some(e) = told {
                    self.ctx.error(e);
                }
            }
        }
    }

    async fn shutdown(&mut self) {
        // What the role keeps stays as it is: a Follower that quits still rejoins after a
        // restart.
        self.ctx.closing = true;
        if let RoleIo::Follower(f) = &mut self.role
            && f.leave_on_shutdown(&mut self.ctx)
        {
            self.flush();
        }
        self.ctx.links.close_all().await;
        match &mut self.role {
            RoleIo::Master(m) => m.shutdown().await,
            RoleIo::Solo(s) => s.shutdown().await,
            RoleIo::Follower(_) => {}
        }
        // The last writes land before the thread ends (a restart reads them).
        if let Some(writer) = self.ctx.state.as_mut() {
            writer.finish().await;
        }
    }
}

impl RoleIo {
    /// What a role does on an engine event, before the app hears of it.
    fn engine_event(&mut self, ctx: &mut Ctx, e: &Event) {
        match self {
            RoleIo::Master(m) => m.engine_event(ctx, e),
            RoleIo::Follower(f) => f.engine_event(ctx, e),
            RoleIo::Solo(_) => {}
        }
    }
}

/// [`Ctx::flooded`], and a Master remembers who flooded (its next joins wait).
fn flooded(ctx: &mut Ctx, role: &mut RoleIo, peer: &DeviceId, len: usize) -> bool {
    let cut = ctx.flooded(peer, len);
    if cut && let RoleIo::Master(m) = role {
        m.flooded(peer);
    }
    cut
}

async fn recv_join(role: &mut RoleIo) -> Option<PendingJoin> {
    let rx = match role {
        RoleIo::Master(m) => m.join_requests(),
        RoleIo::Solo(s) => s.join_requests(),
        RoleIo::Follower(_) => None,
    };
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Carries out one output of the engine.
fn output(role: &mut RoleIo, ctx: &mut Ctx, o: Output) {
    match o {
        // Its copies went out in `flush`, before any original.
        Output::Transmit { to, data, .. } => ctx.links.send(&to, data),
        Output::Event(e) => {
            role.engine_event(ctx, &e);
            ctx.emit(SyncEvent::Engine(e));
        }
        Output::Request(maestral_sync::TransportRequest::Connect { peer }) => match role {
            RoleIo::Master(_) => {}
            RoleIo::Follower(f) => f.rejoin(ctx, peer),
            RoleIo::Solo(s) => s.reconnect(ctx, peer),
        },
        Output::Request(maestral_sync::TransportRequest::JoinByCode) => {
            if let RoleIo::Follower(f) = role {
                f.join_by_code(ctx);
            }
        }
        Output::Request(maestral_sync::TransportRequest::CancelJoin) => {
            if let RoleIo::Follower(f) = role {
                f.cancel_join();
            }
        }
        Output::Request(maestral_sync::TransportRequest::Disconnect { peer }) => {
            ctx.links.close(&peer);
            if let RoleIo::Follower(f) = role {
                f.disconnected(&peer);
            }
        }
    }
}
