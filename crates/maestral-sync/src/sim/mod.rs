//! Deterministic simulation: one seed drives a whole run of real engines over a simulated
//! network, and checkers named after the rules of docs/behaviour.md judge it (TigerBeetle's VOPR,
//! turmoil).
//!
//! A run is a Choir session (a Master and 1–50 Followers) or one to three Solo pairs. During the
//! *chaos* phase the network delays, duplicates, reorders and loses messages (a lost message
//! breaks the link, as it does on a reliable DataChannel), links are cut and nodes partitioned,
//! Followers leave, rejoin and toggle follow/free, the Master changes song and turns pages in
//! bursts and may end the session, peers receive garbage and forged messages. Every register
//! update (a page turn, a song change, a layout) also travels as copies, as the transport sends
//! them (docs/protocol.md §3.2): lost, duplicated, early, or seconds late, after later turns, a
//! song change or a new link; a copy must never move anyone back. Then the network
//! *heals* and the run goes on quietly until everything should have converged.
//!
//! Replay a failing seed with `MAESTRAL_SEED=<seed> cargo test -p maestral-sync --test sim` or
//! `cargo xtask sim --seed <seed>`.

mod adversary;
mod checkers;
mod network;
mod scenario;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::sync::Arc;

use maestral_protocol::{DeviceId, SessionId, SessionToken, SongEpoch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use self::checkers::SoloLatest;
use self::network::{Faults, LinkModel, key};
use self::scenario::Act;
use crate::{
    Engine, EngineConfig, Event, LinkSignal, LocalAction, Output, Phase, PlantedBreak, Role,
    TransportRequest,
};

/// A virtual Unix time to start from (2025-01-01), plus a per-seed offset.
const EPOCH_MS: u64 = 1_735_689_600_000;
/// Quiet time after the network heals: enough for the slowest rejoin (backoff cap, a lost
/// attempt's timeout, DEGRADED escalation) many times over.
const HEAL_MS: u64 = 30_000;
const TRACE_LINES: usize = 60;

/// What one seed did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub nodes: usize,
    pub delivered: u64,
    pub inputs: u64,
    pub virtual_ms: u64,
}

/// A seed whose run broke a rule.
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "simulation seed {} broke {} rule(s):", self.seed, self.violations.len())?;
        for v in self.violations.iter().take(10) {
            writeln!(f, "  - {v}")?;
        }
        writeln!(f, "last events:")?;
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        writeln!(f, "replay: MAESTRAL_SEED={} cargo test -p maestral-sync --test sim", self.seed)?;
        write!(f, "    or: cargo xtask sim --seed {}", self.seed)
    }
}

/// Runs one seed to the end and checks every rule.
pub fn run_seed(seed: u64) -> Result<SimStats, SimFailure> {
    run_seed_traced(seed, TRACE_LINES)
}

/// As [`run_seed`], keeping the last `trace_lines` events of a failing run.
pub fn run_seed_traced(seed: u64, trace_lines: usize) -> Result<SimStats, SimFailure> {
    run_seed_with(seed, trace_lines, None)
}

/// As [`run_seed_traced`], with every engine breaking one rule on purpose: the checkers must
/// then fail the run.
pub fn run_seed_with(
    seed: u64,
    trace_lines: usize,
    planted: Option<PlantedBreak>,
) -> Result<SimStats, SimFailure> {
    let mut sim = Sim::new(seed, false, planted);
    sim.run();
    if sim.violations.is_empty() {
        return Ok(sim.stats);
    }
    // Runs are deterministic: replay the seed with the trace on to show how it got there.
    let mut traced = Sim::new(seed, true, planted);
    traced.trace_lines = trace_lines.max(1);
    traced.run();
    Err(SimFailure { seed, violations: sim.violations, trace: traced.trace.into_iter().collect() })
}

// ---- the world --------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Master,
    Follower,
    Solo { pair: usize },
}

struct Node {
    id: DeviceId,
    kind: Kind,
    engine: Engine,
    /// Harness bookkeeping for the checkers.
    last_epoch: Option<(SessionId, SongEpoch)>,
    /// A Follower that joined with the valid code and has not left: it must be in the session
    /// at the end (while the session lives).
    expected_member: Option<SessionId>,
    /// A follow-mode Follower turned locally since the Master last set its page: it stays there
    /// until the Master's next turn (follow mode is only left explicitly).
    drifted: bool,
    last_phase: Option<Phase>,
}

#[derive(Debug, Clone)]
enum What {
    Deliver {
        from: usize,
        to: usize,
        generation: u64,
        data: Arc<str>,
    },
    /// A copy of a register update: not bound to the link it was sent on.
    Copy {
        from: usize,
        to: usize,
        data: Arc<str>,
    },
    Link {
        node: usize,
        peer: usize,
        signal: LinkSignal,
        generation: u64,
    },
    Connect {
        from: usize,
        to: usize,
    },
    Act {
        node: usize,
        act: Act,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    what: What,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Sim {
    tracing: bool,
    trace_lines: usize,
    start: u64,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    index: BTreeMap<DeviceId, usize>,
    links: BTreeMap<(usize, usize), LinkModel>,
    isolated_until: Vec<u64>,
    chaos_end: u64,
    chaos: bool,
    faults: Faults,
    /// Every token the Master ever issued: none may appear in what it sends.
    tokens: Vec<SessionToken>,
    session: Option<(SessionId, SessionToken)>,
    ended: BTreeSet<SessionId>,
    /// Solo: per pair, the latest local change and the state it made.
    solo_latest: BTreeMap<usize, SoloLatest>,
    /// The rule every engine breaks on purpose, if any.
    planted: Option<PlantedBreak>,
    violations: Vec<String>,
    trace: VecDeque<String>,
    stats: SimStats,
}

impl Sim {
    fn new(seed: u64, tracing: bool, planted: Option<PlantedBreak>) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let now = EPOCH_MS + rng.random_range(0..86_400_000);
        let chaos_ms = rng.random_range(10_000..60_000);
        let faults = Faults {
            dup: rng.random_range(0..300),
            reorder: rng.random_range(0..300),
            loss: rng.random_range(0..60),
            spike_ms: rng.random_range(0..400),
        };
        let mut sim = Sim {
            tracing,
            trace_lines: TRACE_LINES,
            start: now,
            rng,
            now,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            index: BTreeMap::new(),
            links: BTreeMap::new(),
            isolated_until: Vec::new(),
            chaos_end: now + chaos_ms,
            chaos: true,
            faults,
            tokens: Vec::new(),
            session: None,
            ended: BTreeSet::new(),
            solo_latest: BTreeMap::new(),
            planted,
            violations: Vec::new(),
            trace: VecDeque::new(),
            stats: SimStats::default(),
        };
        if sim.rng.random_ratio(3, 4) {
            sim.build_choir();
        } else {
            sim.build_solo();
        }
        sim.stats.nodes = sim.nodes.len();
        sim
    }

    fn config(&self, id: &DeviceId) -> EngineConfig {
        EngineConfig { planted: self.planted, ..EngineConfig::new(id.clone()) }
    }

    fn add_node(&mut self, id: String, kind: Kind) -> usize {
        let role = match kind {
            Kind::Master => Role::Master,
            Kind::Follower => Role::Follower,
            Kind::Solo { .. } => Role::Solo,
        };
        let id = DeviceId::new(id);
        let rng = ChaCha8Rng::seed_from_u64(self.rng.random());
        let engine = Engine::new(self.config(&id), role, Box::new(rng));
        let i = self.nodes.len();
        self.index.insert(id.clone(), i);
        self.nodes.push(Node {
            id,
            kind,
            engine,
            last_epoch: None,
            expected_member: None,
            drifted: false,
            last_phase: None,
        });
        self.isolated_until.push(0);
        self.drain(i);
        i
    }

    fn schedule(&mut self, at: u64, what: What) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq: self.seq, what }));
    }

    fn trace(&mut self, line: impl FnOnce(&Self) -> String) {
        if !self.tracing {
            return;
        }
        if self.trace.len() >= self.trace_lines {
            self.trace.pop_front();
        }
        let line = line(&*self);
        let t = self.now - self.start;
        self.trace.push_back(format!("[{t:>6} ms] {line}"));
    }

    fn name(&self, i: usize) -> &str {
        self.nodes[i].id.as_str()
    }

    // ---- the loop ----------------------------------------------------------------------------

    fn run(&mut self) {
        let end = self.chaos_end + HEAL_MS;
        self.run_until(end);
        self.finish(end);
    }

    fn run_until(&mut self, end: u64) {
        let mut guard = 0u64;
        loop {
            guard += 1;
            if guard > 5_000_000 {
                self.violation(
                    "liveness",
                    "the run did not quiesce (timer or message storm)".into(),
                );
                break;
            }
            let next_event = self.queue.peek().map(|Reverse(s)| s.at);
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.engine.poll_timeout().map(|t| (t, i)))
                .min();
            let (at, timer_node) = match (next_event, next_timer) {
                (Some(e), Some((t, i))) if t < e => (t, Some(i)),
                (Some(e), _) => (e, None),
                (None, Some((t, i))) => (t, Some(i)),
                (None, None) if self.chaos => (self.chaos_end, None),
                (None, None) => break,
            };
            if at > end {
                break;
            }
            let at = at.max(self.now);
            if self.chaos && at >= self.chaos_end {
                self.now = self.chaos_end;
                self.heal();
                continue;
            }
            self.now = at;
            match timer_node {
                Some(i) => {
                    self.stats.inputs += 1;
                    self.nodes[i].engine.handle_timeout(at);
                    self.after_input(i);
                }
                None => {
                    let Some(Reverse(s)) = self.queue.pop() else { break };
                    self.process(s.what);
                }
            }
        }
        self.now = self.now.max(end);
    }

    fn finish(&mut self, end: u64) {
        self.check_converged(false);
        // The Master's next turn must reach every follow-mode Follower, drifted or not.
        if let Some(m) = self.nodes.iter().position(|n| n.kind == Kind::Master) {
            self.local(m, LocalAction::NextPage);
            self.run_until(end + 5_000);
            self.check_converged(true);
        }
        self.stats.virtual_ms = self.now - self.start;
    }

    /// The end of chaos: no more faults or scripted actions; partitions heal.
    fn heal(&mut self) {
        self.trace(|_| "---- network heals ----".into());
        self.chaos = false;
        for t in &mut self.isolated_until {
            *t = 0;
        }
        // Solo devices whose first pairing never got through: the user pairs them again.
        for i in 0..self.nodes.len() {
            if let Kind::Solo { pair } = self.nodes[i].kind
                && self.nodes[i].engine.solo_partner().is_none()
                && let Some(j) = self.partner_of(i, pair)
                && i < j
                && self.nodes[j].engine.solo_partner().is_none()
            {
                self.schedule(self.now + 10, What::Connect { from: i, to: j });
            }
        }
        let pending: Vec<Scheduled> =
            std::mem::take(&mut self.queue).into_iter().map(|Reverse(s)| s).collect();
        for s in pending {
            if !matches!(s.what, What::Act { .. }) {
                self.queue.push(Reverse(s));
            }
        }
    }

    fn process(&mut self, what: What) {
        match what {
            What::Deliver { from, to, generation, data } => {
                let k = key(from, to);
                if self.links.get(&k).is_none_or(|l| l.generation != generation) {
                    return;
                }
                self.deliver(from, to, &data);
            }
            What::Copy { from, to, data } => self.deliver_copy(from, to, &data),
            What::Link { node, peer, signal, generation } => {
                if self.links.get(&key(node, peer)).is_none_or(|l| l.generation != generation) {
                    return;
                }
                self.trace(|s| {
                    format!("link {} -> {:?} at {}", s.name(peer), signal, s.name(node))
                });
                let pid = self.nodes[peer].id.clone();
                self.stats.inputs += 1;
                self.nodes[node].engine.handle_link(self.now, &pid, signal);
                self.after_input(node);
            }
            What::Connect { from, to } => self.connect(from, to),
            What::Act { node, act } => self.act(node, act),
        }
    }

    // ---- engines -----------------------------------------------------------------------------

    fn local(&mut self, node: usize, action: LocalAction) {
        self.trace(|s| format!("{} does {:?}", s.name(node), action));
        self.stats.inputs += 1;
        let is_end = matches!(action, LocalAction::EndSession);
        if is_end && let Some((id, _)) = self.session.take() {
            self.ended.insert(id);
        }
        let before = self.nodes[node].engine.state();
        let is_layout = matches!(action, LocalAction::SetParity { .. });
        let _ = self.nodes[node].engine.handle_local(self.now, action);
        self.record_solo_change(node, before, is_layout);
        self.after_input(node);
    }

    /// Drains a node's outputs into the world, then runs the per-step checkers.
    fn after_input(&mut self, i: usize) {
        self.drain(i);
        self.check_step(i);
        self.check_solo_step(i);
    }

    fn drain(&mut self, i: usize) {
        while let Some(o) = self.nodes[i].engine.poll_output() {
            match o {
                Output::Transmit { to, data, register } => {
                    if let Some(&j) = self.index.get(&to) {
                        if register.is_some() {
                            self.transmit_copies(i, j, &data);
                        }
                        self.transmit(i, j, data);
                    }
                }
                Output::Request(TransportRequest::Connect { peer }) => {
                    if let Some(&j) = self.index.get(&peer) {
                        let at = self.now + self.rng.random_range(5..80);
                        self.schedule(at, What::Connect { from: i, to: j });
                    }
                }
                Output::Request(TransportRequest::Disconnect { peer }) => {
                    if let Some(&j) = self.index.get(&peer) {
                        self.close(i, j);
                    }
                }
                // A join code leads to the Master's listener; the link that opens names it.
                Output::Request(TransportRequest::JoinByCode) => {
                    if let Some(j) = self.nodes.iter().position(|n| n.kind == Kind::Master) {
                        let at = self.now + self.rng.random_range(5..80);
                        self.schedule(at, What::Connect { from: i, to: j });
                    }
                }
                Output::Request(TransportRequest::CancelJoin) => {}
                Output::Event(Event::SessionStarted { session_id, token }) => {
                    self.tokens.push(token.clone());
                    self.session = Some((session_id, token));
                }
                Output::Event(_) => {}
            }
        }
    }
}

fn short(s: &str) -> String {
    let mut t: String = s.chars().take(160).collect();
    if s.len() > 160 {
        t.push('…');
    }
    t
}
