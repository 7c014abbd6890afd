//! What every role shares: configuration, timing, the RNG, per-peer link states and the output queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use maestral_protocol::{DeviceId, Envelope, Hello, Message, Mode, SessionId, SessionToken};
use rand_core::CryptoRng;

use crate::types::{Event, LinkState, Output, TransportRequest};

/// Timing of retries and link supervision, in milliseconds. See [`Timing::LAN`] for the reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// First retry delay after a link is lost.
    pub backoff_initial_ms: u64,
    /// Cap of the exponential backoff.
    pub backoff_max_ms: u64,
    /// A (re)connection attempt that has not produced an accepted link by then counts as failed.
    pub attempt_timeout_ms: u64,
    /// A link DEGRADED this long is treated as lost (the transport is told to drop it).
    pub degraded_timeout_ms: u64,
    /// Solo: after this long without the partner, stop retrying and stay local (docs/behaviour.md
    /// §10.2).
    pub solo_give_up_ms: u64,
    /// Master: a Follower away this long is forgotten (it can still rejoin with the token).
    pub member_forget_ms: u64,
    /// Follower: at most one `SHOWING` per this interval (a change inside it goes out at its end).
    pub showing_interval_ms: u64,
    /// Master: a follow-mode member not on the Master's page this long after the Master's last
    /// page or song change is lagging.
    pub lag_ms: u64,
    /// Master: at most one `Event::Roster` per this interval (the latest roster at its end).
    pub roster_interval_ms: u64,
    /// Follower: a rejoin refused over HTTP (a `403`, which any device answering for the
    /// Master's address can forge) is retried after at least this long.
    pub refused_rejoin_backoff_ms: u64,
    /// Follower: rejoins refused over HTTP for this long end the membership. A `JOIN_REJECT` or
    /// `SESSION_END` over the Master's pinned link ends it at once.
    pub refused_rejoin_give_up_ms: u64,
    /// Master: a link that has not joined (an accepted `JOIN_REQUEST`) this long after it came
    /// up is closed.
    pub join_deadline_ms: u64,
}

impl Timing {
    /// Values for a local network.
    ///
    /// - Backoff 100 ms doubling to a cap of 800 ms, with "equal jitter" (each delay is drawn
    ///   from `[d/2, d]`): on a LAN a tuned WebRTC connection opens in ~75 ms, so a retry costs
    ///   little, and the cap keeps the wait after the link returns under the 1 s rejoin goal
    ///   while 100 Followers still spread their retries over ~400 ms instead of hitting a
    ///   returning Master in the same instant.
    /// - An attempt gets 3 s: 40× the tuned open time, enough for a busy Master answering 100
    ///   joins, short enough that a lost attempt is retried promptly.
    /// - DEGRADED for 2.5 s means lost: the tuned ICE `failed` fires at ~2 s, this is the
    ///   engine's own safety net if the transport never says `down`.
    /// - Solo gives up after 10 minutes (then stays local until the partner comes back or the
    ///   user re-pairs); a Master forgets a vanished Follower after 10 minutes.
    /// - A Follower reports what it shows at most every 100 ms (a page flipped through quickly
    ///   costs the Master ten messages a second per Follower, not one per flip); a member is
    ///   lagging 1 s after the Master's turn (a page turn is done in well under that); the Master's
    ///   roster goes to the app at most 4 times a second (docs/headless.md's `roster` event).
    /// - A rejoin refused over HTTP is tried again every 5 s, and given up after 5 minutes of
    ///   refusals: an HTTP answer is not authenticated, so one forged `403` must not end a
    ///   singer's membership, while a session that really ended still lets it go.
    /// - A Master closes a link that has not joined 10 s after it opened: an honest Follower
    ///   sends `JOIN_REQUEST` the moment its channel opens (milliseconds), and a link that never
    ///   joins would otherwise hold one of the Master's member places for ever.
    pub const LAN: Timing = Timing {
        backoff_initial_ms: 100,
        backoff_max_ms: 800,
        attempt_timeout_ms: 3_000,
        degraded_timeout_ms: 2_500,
        solo_give_up_ms: 600_000,
        member_forget_ms: 600_000,
        showing_interval_ms: 100,
        lag_ms: 1_000,
        roster_interval_ms: 250,
        refused_rejoin_backoff_ms: 5_000,
        refused_rejoin_give_up_ms: 5 * 60 * 1000,
        join_deadline_ms: 10_000,
    };
}

impl Default for Timing {
    fn default() -> Self {
        Timing::LAN
    }
}

/// Who this device is and how it paces retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub device_id: DeviceId,
    pub device_name: String,
    pub app_version: String,
    pub capabilities: Vec<String>,
    pub timing: Timing,
    /// A rule broken on purpose, to show that the simulation's checkers catch it.
    #[cfg(feature = "test-support")]
    pub planted: Option<PlantedBreak>,
}

/// Rules the simulation's checkers must catch when broken (`test-support` only: a production
/// engine has no way to turn one on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBreak {
    /// A Follower applies a `SET_PAGE` whose revision equals the last one (`>=`, not `>`).
    RevisionAtLeast,
    /// A free Follower is moved by the Master's `SET_PAGE`.
    FreeFollowsSetPage,
    /// Solo: at equal `ts` the lower `sender_id` wins.
    SoloTieBreakReversed,
    /// Solo: a layout change also stamps the page register (the old single register).
    LayoutStampsPage,
    /// A Follower applies a copied `SET_PAGE` of the current epoch whatever its revision (a
    /// late copy moves it back).
    StaleCopyApplied,
    /// Solo: a paired device whose partner is gone keeps turning by spreads, showing its half.
    AloneKeepsItsHalf,
    /// Solo: back together, the device that turned last alone takes its half of the spread
    /// (jumping off the page it turned to).
    ReturnJumps,
}

impl EngineConfig {
    pub fn new(device_id: impl Into<DeviceId>) -> Self {
        let device_id = device_id.into();
        EngineConfig {
            device_name: device_id.to_string(),
            device_id,
            app_version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: Vec::new(),
            timing: Timing::LAN,
            #[cfg(feature = "test-support")]
            planted: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Link {
    state: LinkState,
    degraded_at: Option<u64>,
}

pub(crate) struct Core {
    pub config: EngineConfig,
    rng: Box<dyn CryptoRng + Send>,
    out: VecDeque<Output>,
    links: BTreeMap<DeviceId, Link>,
    /// How far the wall clock is ahead of the `now` of the inputs (see `Engine::set_wall_offset`).
    wall_offset_ms: i64,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("config", &self.config)
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub fn new(config: EngineConfig, rng: Box<dyn CryptoRng + Send>) -> Self {
        Core { config, rng, out: VecDeque::new(), links: BTreeMap::new(), wall_offset_ms: 0 }
    }

    pub fn me(&self) -> &DeviceId {
        &self.config.device_id
    }

    pub fn timing(&self) -> Timing {
        self.config.timing
    }

    /// Whether this rule is broken on purpose (always false without `test-support`).
    #[inline]
    pub fn planted(&self, rule: PlantedBreak) -> bool {
        #[cfg(feature = "test-support")]
        return self.config.planted == Some(rule);
        #[cfg(not(feature = "test-support"))]
        {
            let _ = rule;
            false
        }
    }

    pub fn set_wall_offset(&mut self, offset_ms: i64) {
        self.wall_offset_ms = offset_ms;
    }

    /// The wall-clock time (Unix ms) at the input time `now`: what `ts` stamps carry.
    pub fn wall(&self, now: u64) -> u64 {
        now.saturating_add_signed(self.wall_offset_ms)
    }

    // ---- links -------------------------------------------------------------------------------

    pub fn link(&self, peer: &DeviceId) -> LinkState {
        self.links.get(peer).map_or(LinkState::Idle, |l| l.state)
    }

    pub fn links(&self) -> impl Iterator<Item = (&DeviceId, LinkState)> {
        self.links.iter().map(|(p, l)| (p, l.state))
    }

    pub fn set_link(&mut self, now: u64, peer: &DeviceId, state: LinkState) {
        let degraded_at = (state == LinkState::Degraded).then_some(now);
        match self.links.get_mut(peer) {
            Some(l) if l.state == state => {}
            Some(l) => {
                l.state = state;
                l.degraded_at = degraded_at;
                self.event(Event::Link { peer: peer.clone(), state });
            }
            None => {
                self.links.insert(peer.clone(), Link { state, degraded_at });
                self.event(Event::Link { peer: peer.clone(), state });
            }
        }
    }

    /// Forgets a peer the role no longer cares about (reported as IDLE).
    pub fn forget_link(&mut self, peer: &DeviceId) {
        if let Some(l) = self.links.remove(peer)
            && l.state != LinkState::Idle
        {
            self.event(Event::Link { peer: peer.clone(), state: LinkState::Idle });
        }
    }

    /// Links DEGRADED for longer than the timeout at `now`.
    pub fn expired_degraded(&self, now: u64) -> Vec<DeviceId> {
        let t = self.config.timing.degraded_timeout_ms;
        self.links
            .iter()
            .filter(|(_, l)| l.degraded_at.is_some_and(|at| now >= at.saturating_add(t)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    pub fn next_degraded_deadline(&self) -> Option<u64> {
        let t = self.config.timing.degraded_timeout_ms;
        self.links.values().filter_map(|l| l.degraded_at.map(|at| at.saturating_add(t))).min()
    }

    // ---- outputs -----------------------------------------------------------------------------

    pub fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    pub fn request(&mut self, r: TransportRequest) {
        self.out.push_back(Output::Request(r));
    }

    pub fn pop(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// One envelope, stamped with the wall clock at `now`.
    pub fn encode(&self, now: u64, session_id: &SessionId, message: Message) -> Arc<str> {
        self.encode_stamped(self.wall(now), session_id, message)
    }

    fn encode_stamped(&self, ts: u64, session_id: &SessionId, message: Message) -> Arc<str> {
        Envelope::new(session_id.clone(), self.config.device_id.clone(), ts, message)
            .encode()
            .into()
    }

    pub fn send(&mut self, now: u64, session_id: &SessionId, to: &DeviceId, message: Message) {
        let register = message.register();
        let data = self.encode(now, session_id, message);
        self.out.push_back(Output::Transmit { to: to.clone(), data, register });
    }

    /// A message whose `ts` is given (a Solo change carries its own stamp as `ts`).
    pub fn send_stamped(
        &mut self,
        ts: u64,
        session_id: &SessionId,
        to: &DeviceId,
        message: Message,
    ) {
        let register = message.register();
        let data = self.encode_stamped(ts, session_id, message);
        self.out.push_back(Output::Transmit { to: to.clone(), data, register });
    }

    /// One encoding, one `Transmit` per recipient.
    pub fn broadcast<'a>(
        &mut self,
        now: u64,
        session_id: &SessionId,
        to: impl IntoIterator<Item = &'a DeviceId>,
        message: Message,
    ) {
        let mut to = to.into_iter().peekable();
        if to.peek().is_none() {
            return;
        }
        let register = message.register();
        let data = self.encode(now, session_id, message);
        for peer in to {
            self.out.push_back(Output::Transmit { to: peer.clone(), data: data.clone(), register });
        }
    }

    /// A broadcast to those of `peers` whose link is up (one encoding, as `broadcast`).
    pub fn broadcast_up<'a>(
        &mut self,
        now: u64,
        session_id: &SessionId,
        peers: impl IntoIterator<Item = &'a DeviceId>,
        message: Message,
    ) {
        let mut data: Option<Arc<str>> = None;
        let register = message.register();
        for peer in peers {
            if !self.link(peer).is_up() {
                continue;
            }
            let d = data.get_or_insert_with(|| self.encode(now, session_id, message.clone()));
            self.out.push_back(Output::Transmit { to: peer.clone(), data: d.clone(), register });
        }
    }

    pub fn hello(&self, mode: Mode) -> Message {
        Message::Hello(Hello {
            mode,
            device_name: self.config.device_name.clone(),
            app_version: self.config.app_version.clone(),
            capabilities: self.config.capabilities.clone(),
        })
    }

    // ---- randomness --------------------------------------------------------------------------

    /// A backoff delay for the `attempt`-th retry (0-based): exponential, capped, equal jitter.
    pub fn backoff(&mut self, attempt: u32) -> u64 {
        let t = self.config.timing;
        let d = t
            .backoff_initial_ms
            .saturating_mul(1u64 << attempt.min(32))
            .min(t.backoff_max_ms)
            .max(1);
        let half = d / 2;
        (half + self.rng.next_u64() % (d - half + 1)).max(1)
    }

    /// A session token: 128 bits from the RNG, in base32 without padding (26 characters, all
    /// URL-safe, and upper case so that a join code's QR stays in its compact alphanumeric mode).
    pub fn new_token(&mut self) -> SessionToken {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        SessionToken::new(maestral_protocol::base32(&b))
    }

    /// A session id: 64 random bits in upper-case hex (not a secret; it names the session).
    pub fn new_session_id(&mut self) -> SessionId {
        SessionId(format!("{:016X}", self.rng.next_u64()))
    }
}

/// Retry bookkeeping after a link is lost: when the next attempt starts, and when a running
/// attempt is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Attempts that failed so far.
    pub failures: u32,
    /// When the next attempt starts (none while one runs).
    pub next_at: Option<u64>,
    /// While an attempt runs: when it counts as failed.
    pub running_until: Option<u64>,
    /// When the link was lost.
    pub since: u64,
}

pub(crate) enum RetryDue {
    Nothing,
    /// Start an attempt now.
    Start,
    /// The running attempt timed out.
    TimedOut,
}

impl Retry {
    /// Lost at `now`: the first attempt is one backoff away.
    pub fn after_loss(now: u64, core: &mut Core) -> Retry {
        Retry {
            failures: 0,
            next_at: Some(now.saturating_add(core.backoff(0))),
            running_until: None,
            since: now,
        }
    }

    /// An attempt starts at `now` (the first join, or a timer).
    pub fn running(now: u64, core: &Core) -> Retry {
        Retry {
            failures: 0,
            next_at: None,
            running_until: Some(now.saturating_add(core.timing().attempt_timeout_ms.max(1))),
            since: now,
        }
    }

    pub fn deadline(&self) -> Option<u64> {
        self.running_until.or(self.next_at)
    }

    pub fn due(&self, now: u64) -> RetryDue {
        if self.running_until.is_some_and(|t| now >= t) {
            RetryDue::TimedOut
        } else if self.next_at.is_some_and(|t| now >= t) {
            RetryDue::Start
        } else {
            RetryDue::Nothing
        }
    }

    pub fn start(&mut self, now: u64, core: &Core) {
        self.next_at = None;
        self.running_until = Some(now.saturating_add(core.timing().attempt_timeout_ms.max(1)));
    }

    pub fn is_running(&self) -> bool {
        self.running_until.is_some()
    }

    /// The running attempt failed (or timed out): schedule the next one.
    pub fn failed(&mut self, now: u64, core: &mut Core) {
        self.failures = self.failures.saturating_add(1);
        self.running_until = None;
        self.next_at = Some(now.saturating_add(core.backoff(self.failures)));
    }

    /// [`Self::failed`], with the next attempt at least `wait` away.
    pub fn failed_waiting(&mut self, now: u64, core: &mut Core, wait: u64) {
        self.failed(now, core);
        self.next_at = self.next_at.map(|t| t.max(now.saturating_add(wait)));
    }
}
