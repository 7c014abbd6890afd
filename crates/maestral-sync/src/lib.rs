//! Maestral's sync engine: the behaviour of `docs/behaviour.md` as pure, deterministic code.
//!
//! Like quinn-proto and str0m, this crate has no networking code and never reads a clock or the
//! operating system's randomness: time is the `now` argument of every input (Unix milliseconds),
//! randomness comes from the RNG passed to [`Engine::new`], and everything the engine wants done
//! comes out of [`Engine::poll_output`]. The same inputs give the same outputs, which is what
//! lets the simulation in `sim` (with the `test-support` feature) replay any run from its seed.
//! (clippy's `disallowed-methods` keeps clocks and thread RNGs out of this crate.)
//!
//! The shape: mutate with `handle_link` / `handle_message` / `handle_local` / `handle_timeout`,
//! then drain `poll_output` until `None` and sleep until `poll_timeout`.

mod core;
mod follower;
mod master;
mod pager;
mod roster;
mod showing;
#[cfg(feature = "test-support")]
pub mod sim;
mod solo;
mod types;

use maestral_protocol::{DecodeError, DeviceId, Envelope, SoloState, decode};
use rand_core::CryptoRng;

#[cfg(feature = "test-support")]
pub use crate::core::PlantedBreak;
pub use crate::core::{EngineConfig, Timing};
pub use crate::follower::{FollowerResume, FollowerState};
pub use crate::master::MasterState;
pub use crate::pager::{Pager, Turn};
pub use crate::roster::{Roster, RosterMember, RosterSummary};
pub use crate::types::*;

use crate::core::Core;
use crate::follower::Follower;
use crate::master::Master;
use crate::solo::Solo;

/// Why a message from a peer was not applied. State is unchanged in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("message from {from} claims to be from {claimed}; ignored")]
    SenderMismatch { from: DeviceId, claimed: DeviceId },
    /// A Solo change stamped further ahead of this device's clock than `solo::MAX_AHEAD_MS`:
    /// applied, it would win over every later change of the partner (latest change wins).
    #[error(
        "a change from {from} is stamped {ahead_ms} ms ahead of this device's clock (more than \
         10 minutes): ignored; set both devices' clocks"
    )]
    FarFuture { from: DeviceId, ahead_ms: u64 },
    /// A message on the copy channel that is no register update (`Message::register`).
    #[error(
        "a {message_type} from {from} came on the copy channel, which carries only page, song and layout changes; ignored"
    )]
    NotACopy { from: DeviceId, message_type: String },
}

/// The role's state object (docs/behaviour.md §9), as the conformance driver prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateView {
    Solo(SoloState),
    Master(MasterState),
    Follower(FollowerState),
}

#[derive(Debug, Clone)]
enum RoleState {
    Solo(Solo),
    Master(Master),
    Follower(Follower),
}

/// One device's sync engine, in one of the three roles.
#[derive(Debug)]
pub struct Engine {
    core: Core,
    role: RoleState,
    shown_phase: Option<Phase>,
    shown_view: Option<View>,
    shown_pager: Option<Pager>,
    /// Navigations handled so far (`handle_navigation` and navigating `handle_local`s).
    navigations: u64,
    /// Follower: the Master position last reported as `Event::MasterView`.
    shown_master: Option<View>,
    /// The `now` of the latest input.
    now: u64,
}

impl Engine {
    /// A new engine. `rng` supplies session ids, tokens and backoff jitter: pass the operating
    /// system's CSPRNG (or a generator seeded from it) in production, a seeded one in tests.
    pub fn new(config: EngineConfig, role: Role, rng: Box<dyn CryptoRng + Send>) -> Self {
        let core = Core::new(config, rng);
        let role = match role {
            Role::Solo => RoleState::Solo(Solo::new(core.me())),
            Role::Master => RoleState::Master(Master::new()),
            Role::Follower => RoleState::Follower(Follower::new()),
        };
        let mut e = Engine {
            core,
            role,
            shown_phase: None,
            shown_view: None,
            shown_pager: None,
            navigations: 0,
            shown_master: None,
            now: 0,
        };
        e.settle(0);
        e
    }

    // ---- getters -----------------------------------------------------------------------------

    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Solo(_) => Role::Solo,
            RoleState::Master(_) => Role::Master,
            RoleState::Follower(_) => Role::Follower,
        }
    }

    pub fn device_id(&self) -> &DeviceId {
        self.core.me()
    }

    pub fn phase(&self) -> Phase {
        match &self.role {
            RoleState::Solo(s) => s.phase(&self.core),
            RoleState::Master(m) => m.phase(),
            RoleState::Follower(f) => f.phase(&self.core),
        }
    }

    /// The song and page this device shows now.
    pub fn view(&self) -> View {
        match &self.role {
            RoleState::Solo(s) => s.view(&self.core),
            RoleState::Master(m) => m.view(),
            RoleState::Follower(f) => f.view(),
        }
    }

    /// How this device's page follows the position: the rule the app predicts its turns with.
    pub fn pager(&self) -> Pager {
        match &self.role {
            RoleState::Solo(s) => s.pager(&self.core),
            RoleState::Master(_) | RoleState::Follower(_) => Pager::SINGLE,
        }
    }

    /// Every peer the engine knows, with its link state.
    pub fn links(&self) -> impl Iterator<Item = (&DeviceId, LinkState)> {
        self.core.links()
    }

    pub fn link(&self, peer: &DeviceId) -> LinkState {
        self.core.link(peer)
    }

    pub fn state(&self) -> StateView {
        match &self.role {
            RoleState::Solo(s) => StateView::Solo(s.state.clone()),
            RoleState::Master(m) => StateView::Master(m.state()),
            RoleState::Follower(f) => StateView::Follower(f.state()),
        }
    }

    /// Master: take back a saved session and position after a restart (from the app's state
    /// directory). Emits `SessionStarted` again so the transport can rebuild the join code.
    ///
    /// Where the session survived but the position did not, resume with `song_epoch` set to the
    /// current Unix time in ms: past any epoch a Follower can hold (epochs count song changes),
    /// so Followers take the Master's state instead of discarding it as stale (§11.3). A Master
    /// that simply starts at epoch 0 again would collide with epochs its Followers have seen.
    pub fn resume_master(&mut self, saved: &MasterState) {
        if let RoleState::Master(m) = &mut self.role {
            m.resume(saved);
            if let (Some(session_id), Some(token)) = (&saved.session_id, &saved.session_token) {
                let (session_id, token) = (session_id.clone(), token.clone());
                self.core.event(Event::SessionStarted { session_id, token });
            }
        }
        self.settle(self.now);
    }

    /// Follower: take back the session kept across a restart; it rejoins by itself.
    pub fn resume_follower(&mut self, now: u64, saved: &FollowerResume) {
        if let RoleState::Follower(f) = &mut self.role {
            f.resume(&mut self.core, now, saved);
        }
        self.settle(now);
    }

    /// Follower: what to keep across a restart (`None` outside a session accepted once).
    pub fn follower_resume(&self) -> Option<FollowerResume> {
        match &self.role {
            RoleState::Follower(f) => f.resume_record(),
            _ => None,
        }
    }

    /// Solo: take back the pairing and shared state kept across a restart; it calls the
    /// partner back by itself. `shown`: the page this device showed (alone until the partner
    /// answers, it shows that page; `None`, from an older file: its half of the kept spread).
    pub fn resume_solo(
        &mut self,
        now: u64,
        partner: &DeviceId,
        state: &SoloState,
        shown: Option<u32>,
    ) {
        if let RoleState::Solo(s) = &mut self.role {
            s.resume(&mut self.core, now, partner, state, shown);
        }
        self.settle(now);
    }

    /// Solo: the paired device, if any.
    pub fn solo_partner(&self) -> Option<&DeviceId> {
        match &self.role {
            RoleState::Solo(s) => s.partner(),
            _ => None,
        }
    }

    /// Master: the joined Followers and their follow modes.
    pub fn master_members(&self) -> Vec<(DeviceId, maestral_protocol::FollowMode)> {
        match &self.role {
            RoleState::Master(m) => m.members().map(|(d, f)| (d.clone(), f)).collect(),
            _ => Vec::new(),
        }
    }

    /// Follower: its Master, while in a session.
    pub fn follower_master(&self) -> Option<&DeviceId> {
        match &self.role {
            RoleState::Follower(f) => f.master(),
            _ => None,
        }
    }

    /// Follower: the newest Master position seen, `(song, page, epoch, revision)`.
    pub fn follower_master_position(
        &self,
    ) -> Option<(
        Option<&maestral_protocol::SongId>,
        u32,
        maestral_protocol::SongEpoch,
        maestral_protocol::PageRevision,
    )> {
        match &self.role {
            RoleState::Follower(f) => Some(f.master_position()),
            _ => None,
        }
    }

    /// Master: every joined Follower, what it shows and whether it lags (as of the latest
    /// input; `Event::Roster` reports changes).
    pub fn roster(&self) -> Option<Roster> {
        match &self.role {
            RoleState::Master(m) => Some(m.roster(&self.core)),
            _ => None,
        }
    }

    /// Follower: the follow mode.
    pub fn follow_mode(&self) -> Option<maestral_protocol::FollowMode> {
        match &self.role {
            RoleState::Follower(f) => Some(f.follow_mode()),
            _ => None,
        }
    }

    // ---- inputs ------------------------------------------------------------------------------

    /// The clocks. Every input's `now` drives the timers, so a transport passes a monotonic
    /// clock there (an NTP step must not delay a rejoin); message stamps (`ts`, Solo's
    /// latest-change-wins) are wall-clock time, `now + offset_ms`. The transport sets the offset
    /// (wall − monotonic) before its inputs; tests and the simulation leave it at 0.
    pub fn set_wall_offset(&mut self, offset_ms: i64) {
        self.core.set_wall_offset(offset_ms);
    }

    /// The transport reports the DataChannel to `peer` opened, is unhealthy, or closed.
    pub fn handle_link(&mut self, now: u64, peer: &DeviceId, signal: LinkSignal) {
        if peer == self.core.me() {
            return;
        }
        match &mut self.role {
            RoleState::Solo(s) => s.on_link(&mut self.core, now, peer, signal),
            RoleState::Master(m) => m.on_link(&mut self.core, now, peer, signal),
            RoleState::Follower(f) => f.on_link(&mut self.core, now, peer, signal),
        }
        self.settle(now);
    }

    /// Bytes from `peer` on the `maestral-sync` channel. A rejected message changes nothing.
    pub fn handle_message(
        &mut self,
        now: u64,
        from: &DeviceId,
        bytes: &[u8],
    ) -> Result<(), RecvError> {
        match decode(bytes) {
            Ok(env) => self.handle_envelope(now, from, env),
            Err(err) => {
                if let RoleState::Master(m) = &mut self.role {
                    m.on_decode_error(&mut self.core, now, from, &err);
                }
                self.settle(now);
                Err(err.into())
            }
        }
    }

    /// An already decoded message from `peer`. The link is bound to the peer's device id: an
    /// envelope whose `sender_id` differs is ignored.
    pub fn handle_envelope(
        &mut self,
        now: u64,
        from: &DeviceId,
        env: Envelope,
    ) -> Result<(), RecvError> {
        self.receive(now, from, env, false)
    }

    /// A decoded message from `peer`'s copy channel (`Output::Transmit`'s `register`): a
    /// register update only, applied by the same rules as on `maestral-sync` (a duplicate or a
    /// stale copy changes nothing), and never answered (a stale Solo copy gets no snapshot: the
    /// reliable message it copies has been or will be answered).
    pub fn handle_copy(
        &mut self,
        now: u64,
        from: &DeviceId,
        env: Envelope,
    ) -> Result<(), RecvError> {
        if env.message.register().is_none() {
            let message_type = env.message.type_name().to_owned();
            return Err(RecvError::NotACopy { from: from.clone(), message_type });
        }
        self.receive(now, from, env, true)
    }

    fn receive(
        &mut self,
        now: u64,
        from: &DeviceId,
        env: Envelope,
        copy: bool,
    ) -> Result<(), RecvError> {
        if env.sender_id != *from {
            return Err(RecvError::SenderMismatch { from: from.clone(), claimed: env.sender_id });
        }
        if let RoleState::Solo(_) = &self.role {
            let ahead_ms = solo::ahead_of(&env, self.core.wall(now));
            if ahead_ms > solo::MAX_AHEAD_MS {
                return Err(RecvError::FarFuture { from: from.clone(), ahead_ms });
            }
        }
        match &mut self.role {
            RoleState::Solo(s) => s.on_message(&mut self.core, now, from, env, !copy),
            RoleState::Master(m) => m.on_message(&mut self.core, now, from, env),
            RoleState::Follower(f) => f.on_message(&mut self.core, now, from, env, copy),
        }
        self.settle(now);
        Ok(())
    }

    /// Follower: the Master's signaling listener refused the join with this reason before any
    /// link opened (HTTP `403`). A first join goes back to local mode, like a `JOIN_REJECT`. A
    /// rejoin keeps its membership (an HTTP answer is not authenticated): it is retried after
    /// `Timing::refused_rejoin_backoff_ms`, and ended only by refusals repeated for
    /// `Timing::refused_rejoin_give_up_ms`.
    pub fn handle_join_refused(&mut self, now: u64, reason: maestral_protocol::RejectReason) {
        if let RoleState::Follower(f) = &mut self.role {
            f.on_join_refused(&mut self.core, now, reason);
        }
        self.settle(now);
    }

    /// Follower: a first join by the join code (`TransportRequest::JoinByCode`) failed before
    /// any link opened. Retried on the backoff, or, `for_good` (a transport that knows the code
    /// cannot work), back to local mode. `maestral-net` never says `for_good`: only the Master's
    /// signed refusal ([`Self::handle_join_refused`]) ends a join there, since any device at the
    /// code's address can answer anything else.
    pub fn handle_join_failed(&mut self, now: u64, for_good: bool) {
        if let RoleState::Follower(f) = &mut self.role {
            f.on_join_failed(&mut self.core, now, for_good);
        }
        self.settle(now);
    }

    /// The local user did something. Local navigation applies at once, whatever the links do.
    /// A change of view is reported as `Event::Show`.
    pub fn handle_local(&mut self, now: u64, action: LocalAction) -> Result<(), ActionError> {
        let r = self.apply_local(now, action);
        self.settle(now);
        r
    }

    /// The app navigated (`action.is_navigation()`) and already shows `shown`, worked out with
    /// [`Pager`] from what it showed. The engine applies the same action; its view is reported
    /// only where it differs from `shown` (a correction), so the app never filters echoes of its
    /// own turns.
    pub fn handle_navigation(
        &mut self,
        now: u64,
        action: LocalAction,
        shown: View,
    ) -> Result<(), ActionError> {
        let r = self.apply_local(now, action);
        self.shown_view = Some(shown);
        self.settle(now);
        r
    }

    fn apply_local(&mut self, now: u64, action: LocalAction) -> Result<(), ActionError> {
        if action.is_navigation() {
            self.navigations += 1;
        }
        match &mut self.role {
            RoleState::Solo(s) => s.on_local(&mut self.core, now, action),
            RoleState::Master(m) => m.on_local(&mut self.core, now, action),
            RoleState::Follower(f) => f.on_local(&mut self.core, now, action),
        }
    }

    /// Time passed: timers due by `now` fire.
    pub fn handle_timeout(&mut self, now: u64) {
        // A link DEGRADED for too long is treated as lost, and the transport told to drop it.
        for peer in self.core.expired_degraded(now) {
            self.core.request(TransportRequest::Disconnect { peer: peer.clone() });
            match &mut self.role {
                RoleState::Solo(s) => s.on_link(&mut self.core, now, &peer, LinkSignal::Down),
                RoleState::Master(m) => m.on_link(&mut self.core, now, &peer, LinkSignal::Down),
                RoleState::Follower(f) => f.on_link(&mut self.core, now, &peer, LinkSignal::Down),
            }
        }
        match &mut self.role {
            RoleState::Solo(s) => s.on_timeout(&mut self.core, now),
            RoleState::Master(m) => m.on_timeout(&mut self.core, now),
            RoleState::Follower(f) => f.on_timeout(&mut self.core, now),
        }
        self.settle(now);
    }

    // ---- outputs -----------------------------------------------------------------------------

    /// The next thing to do: a message to send, an event for the app, a request to the transport.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.core.pop()
    }

    /// When `handle_timeout` should be called next (Unix ms), if any timer runs.
    pub fn poll_timeout(&self) -> Option<u64> {
        let role = match &self.role {
            RoleState::Solo(s) => s.next_timeout(),
            RoleState::Master(m) => m.next_timeout(&self.core),
            RoleState::Follower(f) => f.next_timeout(),
        };
        match (role, self.core.next_degraded_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// After every input: report what the app must show if it changed, tell the Master what
    /// this Follower shows, emit the Master's roster.
    fn settle(&mut self, now: u64) {
        self.now = self.now.max(now);
        let phase = self.phase();
        if self.shown_phase != Some(phase) {
            self.shown_phase = Some(phase);
            self.core.event(Event::Phase(phase));
        }
        let pager = self.pager();
        if self.shown_pager != Some(pager) {
            self.shown_pager = Some(pager);
            self.core.event(Event::Pager(pager));
        }
        let view = self.view();
        if self.shown_view.as_ref() != Some(&view) {
            self.shown_view = Some(view.clone());
            self.core.event(Event::Show { view, navigations: self.navigations });
        }
        match &mut self.role {
            RoleState::Follower(f) => {
                f.report_showing(&mut self.core, now);
                let master = f.master_view();
                if master != self.shown_master {
                    if let Some(v) = &master {
                        self.core.event(Event::MasterView(v.clone()));
                    }
                    self.shown_master = master;
                }
            }
            RoleState::Master(m) => m.flush_roster(&mut self.core, now),
            RoleState::Solo(_) => {}
        }
    }
}
