//! Deterministic simulation: one seed drives a whole run of real engines over a simulated
//! network, and checkers named after the spec's rules judge it (TigerBeetle's VOPR, turmoil).
//!
//! A run is a Choir session (a Master and 1–50 Followers) or one to three Solo pairs. During the
//! *chaos* phase the network delays, duplicates, reorders and loses messages (a lost message
//! breaks the link, as it does on a reliable DataChannel), links are cut and nodes partitioned,
//! Followers leave, rejoin and toggle follow/free, the Master changes song and turns pages in
//! bursts and may end the session, peers receive garbage and forged messages. Then the network
//! *heals* and the run goes on quietly until everything should have converged.
//!
//! Replay a failing seed with `MAESTRAL_SEED=<seed> cargo test -p maestral-sync --test sim` or
//! `cargo xtask sim --seed <seed>`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::sync::Arc;

use maestral_protocol::{
    ChoirSetPage, ChoirSetSong, ChoirSnapshot, DeviceId, Envelope, FollowMode, Message,
    PageChangeStamp, PageRevision, Parity, SessionId, SessionToken, SoloSetPage, SongEpoch, SongId,
    decode,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{
    Engine, EngineConfig, Event, LinkSignal, LocalAction, MasterState, Output, Phase, PlantedBreak,
    Role, StateView, TransportRequest,
};

/// A virtual Unix time to start from (2025-01-01), plus a per-seed offset.
const EPOCH_MS: u64 = 1_735_689_600_000;
/// Quiet time after the network heals: enough for the slowest rejoin (backoff cap, a lost
/// attempt's timeout, DEGRADED escalation) many times over.
const HEAL_MS: u64 = 30_000;
const TRACE_LINES: usize = 60;
const SONGS: [&str; 5] = ["song-a", "song-b", "song-c", "song-d", "song-e"];

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

#[derive(Debug, Clone, Copy, Default)]
struct LinkModel {
    up: bool,
    /// Incarnation: bumped on every (re)connect and every cut, so messages and notifications of
    /// an older incarnation are discarded.
    generation: u64,
    /// FIFO per direction: the latest delivery time scheduled (lower index → higher, and back).
    last_at: [u64; 2],
}

#[derive(Debug, Clone)]
enum Act {
    MasterSong,
    MasterBurst(u8),
    MasterNext,
    MasterJump,
    MasterPrev,
    MasterEnd,
    MasterRestart,
    /// The Master's process dies and starts again, with its saved position or without it.
    MasterCrash {
        keep_position: bool,
    },
    FollowerJoin,
    FollowerJoinWrongToken,
    FollowerLeave,
    FollowerToggle,
    FollowerTurn,
    SoloPair,
    SoloTurn,
    SoloSong,
    SoloParity,
    Garbage,
    Forged,
    Cut,
    Isolate(u64),
}

#[derive(Debug, Clone)]
enum What {
    Deliver { from: usize, to: usize, generation: u64, data: Arc<str> },
    Link { node: usize, peer: usize, signal: LinkSignal, generation: u64 },
    Connect { from: usize, to: usize },
    Act { node: usize, act: Act },
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

struct Faults {
    /// Per-message probabilities, in parts per 10,000.
    dup: u32,
    reorder: u32,
    loss: u32,
    /// Extra delay spikes up to this many ms.
    spike_ms: u64,
}

/// Per Solo pair: the latest change of each register, with what it made.
#[derive(Default)]
struct SoloLatest {
    page: Option<(PageChangeStamp, Option<SongId>, u32)>,
    layout: Option<(PageChangeStamp, maestral_protocol::Layout)>,
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

fn key(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
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

    fn build_choir(&mut self) {
        // Mostly small choirs (fast), sometimes up to 50 Followers.
        let n = if self.rng.random_ratio(1, 5) {
            self.rng.random_range(10..=50)
        } else {
            self.rng.random_range(1..=8)
        };
        let master = self.add_node("M".into(), Kind::Master);
        self.local(master, LocalAction::StartSession { session_id: None, token: None });
        if self.rng.random_ratio(4, 5) {
            let song = self.random_song();
            self.local(master, LocalAction::SetSong { song_id: song });
        }
        let followers: Vec<usize> =
            (0..n).map(|k| self.add_node(format!("F{k:02}"), Kind::Follower)).collect();
        for &f in &followers {
            let at = self.now + self.rng.random_range(0..2_000);
            self.schedule(at, What::Act { node: f, act: Act::FollowerJoin });
        }
        let span = self.chaos_end - self.now;
        // The Master's script.
        for _ in 0..self.rng.random_range(5..40) {
            let at = self.now + self.rng.random_range(0..span);
            let act = match self.rng.random_range(0..10) {
                0..=1 => Act::MasterSong,
                2..=5 => Act::MasterBurst(self.rng.random_range(1..=10)),
                6..=7 => Act::MasterJump,
                _ => Act::MasterPrev,
            };
            self.schedule(at, What::Act { node: master, act });
        }
        if self.rng.random_ratio(1, 8) {
            let at = self.now + self.rng.random_range(0..span);
            let keep_position = self.rng.random();
            self.schedule(at, What::Act { node: master, act: Act::MasterCrash { keep_position } });
        }
        if self.rng.random_ratio(1, 6) {
            let at = self.now + self.rng.random_range(span / 2..span);
            self.schedule(at, What::Act { node: master, act: Act::MasterEnd });
            if self.rng.random_ratio(1, 2) {
                let at2 = at + self.rng.random_range(1..(self.chaos_end - at).max(2));
                self.schedule(at2, What::Act { node: master, act: Act::MasterRestart });
            }
        }
        // The Followers' scripts.
        for &f in &followers {
            for _ in 0..self.rng.random_range(0..8) {
                let at = self.now + self.rng.random_range(0..span);
                let act = match self.rng.random_range(0..20) {
                    0..=5 => Act::FollowerToggle,
                    6..=11 => Act::FollowerTurn,
                    12 => Act::FollowerLeave,
                    13..=14 => Act::FollowerJoin,
                    15 => Act::FollowerJoinWrongToken,
                    16 => Act::Garbage,
                    17 => Act::Forged,
                    18 => Act::Cut,
                    _ => Act::Isolate(self.rng.random_range(200..8_000)),
                };
                self.schedule(at, What::Act { node: f, act });
            }
        }
        // The Master's own links fail too: garbage, forged messages, and a full isolation.
        for _ in 0..self.rng.random_range(0..4) {
            let at = self.now + self.rng.random_range(0..span);
            let act = match self.rng.random_range(0..3) {
                0 => Act::Garbage,
                1 => Act::Forged,
                _ => Act::Isolate(self.rng.random_range(500..10_000)),
            };
            self.schedule(at, What::Act { node: master, act });
        }
    }

    fn build_solo(&mut self) {
        let pairs = self.rng.random_range(1..=3);
        let span = self.chaos_end - self.now;
        for p in 0..pairs {
            // Names that sort either way round, so both tie-break directions are exercised.
            let (x, y) = (self.rng.random_range(0..100), self.rng.random_range(100..200));
            let a = self.add_node(format!("S{p}-{x}"), Kind::Solo { pair: p });
            let b = self.add_node(format!("S{p}-{y}"), Kind::Solo { pair: p });
            let first = if self.rng.random() { a } else { b };
            let at = self.now + self.rng.random_range(0..3_000);
            self.schedule(at, What::Act { node: first, act: Act::SoloPair });
            for &n in &[a, b] {
                for _ in 0..self.rng.random_range(2..25) {
                    let at = self.now + self.rng.random_range(0..span);
                    let act = match self.rng.random_range(0..20) {
                        0..=11 => Act::SoloTurn,
                        12..=13 => Act::SoloSong,
                        14 => Act::SoloParity,
                        15 => Act::Garbage,
                        16 => Act::Forged,
                        17..=18 => Act::Cut,
                        _ => Act::Isolate(self.rng.random_range(200..8_000)),
                    };
                    self.schedule(at, What::Act { node: n, act });
                }
            }
        }
    }

    fn random_song(&mut self) -> Option<SongId> {
        let i = self.rng.random_range(0..SONGS.len() + 1);
        SONGS.get(i).map(|s| SongId::new(*s))
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

    fn violation(&mut self, rule: &str, detail: String) {
        if self.violations.len() < 50 {
            self.violations.push(format!("{rule}: {detail} (at t={})", self.now));
        }
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

    fn isolated(&self, n: usize) -> bool {
        self.chaos && self.isolated_until[n] > self.now
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

    fn deliver(&mut self, from: usize, to: usize, data: &str) {
        self.stats.delivered += 1;
        let before_free = self.nodes[to].engine.follow_mode() == Some(FollowMode::Free);
        let view_before = self.nodes[to].engine.view();
        let phase_before = self.nodes[to].engine.phase();
        let msg_type = decode(data.as_bytes()).ok().map(|e| e.message);
        let fid = self.nodes[from].id.clone();
        // §11.2: a SET_PAGE of the current epoch that is not strictly newer changes nothing.
        let stale_before = match (&msg_type, self.nodes[to].engine.follower_master_position()) {
            (Some(Message::ChoirSetPage(p)), Some((_, _, epoch, revision)))
                if p.song_epoch == epoch && p.page_revision <= revision =>
            {
                Some((self.nodes[to].engine.state(), view_before.clone()))
            }
            _ => None,
        };
        self.trace(|s| format!("{} -> {}: {}", s.name(from), s.name(to), short(data)));
        self.stats.inputs += 1;
        let _ = self.nodes[to].engine.handle_message(self.now, &fid, data.as_bytes());
        if let Some(before) = stale_before
            && before != (self.nodes[to].engine.state(), self.nodes[to].engine.view())
        {
            let id = self.nodes[to].id.clone();
            self.violation(
                "§11.2 a stale or duplicate SET_PAGE changes nothing",
                format!("{id} changed on {}", short(data)),
            );
        }
        // Spec §11.4: free Followers are never moved by SET_PAGE.
        if self.nodes[to].kind == Kind::Follower
            && matches!(
                msg_type,
                Some(
                    Message::ChoirSetPage(_)
                        | Message::ChoirSetSong(_)
                        | Message::ChoirSnapshot(_)
                        | Message::JoinAccept(_)
                )
            )
            && let Some((_, page, _, _)) = self.nodes[to].engine.follower_master_position()
            && self.nodes[to].engine.view().page_index == page
        {
            self.nodes[to].drifted = false;
        }
        // §13: a connected Follower that receives SESSION_END goes local and forgets the session.
        if self.nodes[to].kind == Kind::Follower
            && matches!(msg_type, Some(Message::SessionEnd))
            && matches!(phase_before, Phase::FollowerConnectedFollow | Phase::FollowerConnectedFree)
            && self.nodes[to].engine.follower_master() == Some(&fid)
        {
            let id = self.nodes[to].id.clone();
            self.violation("§13 Followers go local on SESSION_END", format!("{id} did not"));
        }
        if before_free
            && matches!(msg_type, Some(Message::ChoirSetPage(_)))
            && self.nodes[to].engine.follow_mode() == Some(FollowMode::Free)
            && self.nodes[to].engine.view() != view_before
        {
            let id = self.nodes[to].id.clone();
            self.violation("§11.4 free Followers ignore SET_PAGE", format!("{id} moved"));
        }
        self.after_input(to);
    }

    fn connect(&mut self, from: usize, to: usize) {
        let k = key(from, to);
        if self.isolated(from) || self.isolated(to) {
            // The attempt fails after a while.
            let g = self.links.entry(k).or_default().generation;
            let at = self.now + self.rng.random_range(100..1_500);
            self.schedule(
                at,
                What::Link { node: from, peer: to, signal: LinkSignal::Down, generation: g },
            );
            return;
        }
        let l = self.links.entry(k).or_default();
        l.up = true;
        l.generation += 1;
        l.last_at = [self.now; 2];
        let g = l.generation;
        self.trace(|s| format!("connected {} <-> {}", s.name(from), s.name(to)));
        // The transport's contract: a side hears `Up` before any message of that link.
        self.schedule(
            self.now,
            What::Link { node: from, peer: to, signal: LinkSignal::Up, generation: g },
        );
        self.schedule(
            self.now,
            What::Link { node: to, peer: from, signal: LinkSignal::Up, generation: g },
        );
    }

    /// The link breaks: in-flight messages are lost, both sides find out after a while (some
    /// only see DEGRADED and must escalate by themselves).
    fn cut(&mut self, a: usize, b: usize) {
        let k = key(a, b);
        let Some(l) = self.links.get_mut(&k) else { return };
        if !l.up {
            return;
        }
        l.up = false;
        l.generation += 1;
        let g = l.generation;
        self.trace(|s| format!("cut {} <-> {}", s.name(a), s.name(b)));
        for (n, p) in [(a, b), (b, a)] {
            let degraded = self.now + self.rng.random_range(50..400);
            self.schedule(
                degraded,
                What::Link { node: n, peer: p, signal: LinkSignal::Degraded, generation: g },
            );
            if !self.rng.random_ratio(1, 5) {
                let down = degraded + self.rng.random_range(300..1_800);
                self.schedule(
                    down,
                    What::Link { node: n, peer: p, signal: LinkSignal::Down, generation: g },
                );
            }
        }
    }

    /// The requester closed the link gracefully: what is in flight still arrives, then the other
    /// side sees it close.
    fn close(&mut self, a: usize, b: usize) {
        let k = key(a, b);
        let Some(l) = self.links.get_mut(&k) else { return };
        if !l.up {
            return;
        }
        l.up = false;
        let g = l.generation;
        let at = l.last_at[0].max(l.last_at[1]).max(self.now) + 1;
        self.schedule(at, What::Link { node: b, peer: a, signal: LinkSignal::Down, generation: g });
    }

    fn transmit(&mut self, from: usize, to: usize, data: Arc<str>) {
        let k = key(from, to);
        let Some(l) = self.links.get(&k).copied() else { return };
        if !l.up {
            return;
        }
        if matches!(self.nodes[from].kind, Kind::Master) {
            for t in &self.tokens {
                if data.contains(t.expose()) {
                    let d = short(&data);
                    self.violation("§8/PROTOCOL tokens never leave the Master", d);
                    break;
                }
            }
            if let Ok(env) = decode(data.as_bytes())
                && matches!(env.message, Message::JoinAccept(_))
                && self.ended.contains(&env.session_id)
            {
                self.violation(
                    "§13 no Follower accepted after SESSION_END",
                    format!("JOIN_ACCEPT to {}", self.nodes[to].id),
                );
            }
        }
        let dir = usize::from(from > to);
        let mut delay = self.rng.random_range(1..6);
        if self.chaos {
            if self.faults.loss > 0 && self.rng.random_range(0..10_000) < self.faults.loss {
                // A reliable channel that loses a message has failed: the link breaks.
                self.cut(from, to);
                return;
            }
            if self.faults.spike_ms > 0 && self.rng.random_ratio(1, 20) {
                delay += self.rng.random_range(0..self.faults.spike_ms);
            }
        }
        let reorder = self.chaos && self.rng.random_range(0..10_000) < self.faults.reorder;
        let mut at = self.now + delay;
        if !reorder {
            at = at.max(l.last_at[dir]);
            if let Some(m) = self.links.get_mut(&k) {
                m.last_at[dir] = at;
            }
        }
        let generation = l.generation;
        self.schedule(at, What::Deliver { from, to, generation, data: data.clone() });
        if self.chaos && self.rng.random_range(0..10_000) < self.faults.dup {
            let again = at + self.rng.random_range(0..500);
            self.schedule(again, What::Deliver { from, to, generation, data });
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
        if let Kind::Solo { pair } = self.nodes[node].kind
            && let (StateView::Solo(b), StateView::Solo(s)) =
                (before, self.nodes[node].engine.state())
        {
            let l = self.solo_latest.entry(pair).or_default();
            let newer = |old: Option<&PageChangeStamp>, stamp: &PageChangeStamp| {
                old.is_none_or(|o| stamp > o)
            };
            // Recorded by what the performer did, not by which stamp the engine moved.
            if !is_layout
                && s.last_page_change != b.last_page_change
                && newer(l.page.as_ref().map(|x| &x.0), &s.last_page_change)
            {
                l.page = Some((s.last_page_change.clone(), s.song_id.clone(), s.page_index));
            }
            if is_layout
                && s.last_layout_change != b.last_layout_change
                && newer(l.layout.as_ref().map(|x| &x.0), &s.last_layout_change)
            {
                l.layout = Some((s.last_layout_change.clone(), s.layout.clone()));
            }
        }
        self.after_input(node);
    }

    /// Drains a node's outputs into the world, then runs the per-step checkers.
    fn after_input(&mut self, i: usize) {
        self.drain(i);
        self.check_step(i);
    }

    fn drain(&mut self, i: usize) {
        while let Some(o) = self.nodes[i].engine.poll_output() {
            match o {
                Output::Transmit { to, data } => {
                    if let Some(&j) = self.index.get(&to) {
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

    fn act(&mut self, node: usize, act: Act) {
        let kind = self.nodes[node].kind;
        match act {
            Act::MasterSong => {
                let song = self.random_song();
                self.local(node, LocalAction::SetSong { song_id: song });
            }
            Act::MasterBurst(n) => {
                // Rapid turns, a few ms to a few tens of ms apart.
                let mut at = self.now;
                for _ in 0..n {
                    self.schedule(at, What::Act { node, act: Act::MasterNext });
                    at += self.rng.random_range(1..60);
                }
            }
            Act::MasterNext => self.local(node, LocalAction::NextPage),
            Act::MasterJump => {
                let page = self.rng.random_range(0..40);
                self.local(node, LocalAction::SetPage { page });
            }
            Act::MasterPrev => self.local(node, LocalAction::PrevPage),
            Act::MasterEnd => self.local(node, LocalAction::EndSession),
            Act::MasterCrash { keep_position } => {
                let StateView::Master(saved) = self.nodes[node].engine.state() else { return };
                self.trace(|_| format!("master crashes (keeps position: {keep_position})"));
                let peers = self.linked_peers(node);
                for p in peers {
                    self.cut(node, p);
                }
                let rng = ChaCha8Rng::seed_from_u64(self.rng.random());
                let id = self.nodes[node].id.clone();
                let mut e = Engine::new(self.config(&id), Role::Master, Box::new(rng));
                if keep_position {
                    e.resume_master(&saved);
                } else {
                    // The position was lost (only the session survived): resume at an epoch
                    // past anything a Follower can hold, as `resume_master` advises.
                    e.resume_master(&MasterState {
                        song_id: None,
                        song_epoch: SongEpoch(self.now),
                        page_index: 0,
                        page_revision: PageRevision(0),
                        ..saved
                    });
                }
                self.nodes[node].engine = e;
                self.drain(node);
            }
            Act::MasterRestart => {
                self.local(node, LocalAction::StartSession { session_id: None, token: None })
            }
            Act::FollowerJoin => {
                let Some((sid, token)) = self.session.clone() else { return };
                if self.nodes[node].engine.follower_master().is_some() {
                    return;
                }
                self.nodes[node].expected_member = Some(sid.clone());
                let master = self.nodes[0].id.clone();
                // A scanned join code does not name the Master; a stored one may.
                let action = if self.rng.random_ratio(1, 2) {
                    LocalAction::JoinByCode { session_id: sid, token }
                } else {
                    LocalAction::Join { master, session_id: sid, token }
                };
                self.local(node, action);
            }
            Act::FollowerJoinWrongToken => {
                if self.nodes[node].engine.follower_master().is_some() {
                    return;
                }
                let sid = self.session.as_ref().map(|s| s.0.clone()).unwrap_or_default();
                let master = self.nodes[0].id.clone();
                let token = SessionToken::new(format!("forged-{}", self.rng.random::<u32>()));
                self.nodes[node].expected_member = None;
                self.local(node, LocalAction::Join { master, session_id: sid, token });
            }
            Act::FollowerLeave => {
                self.nodes[node].expected_member = None;
                self.local(node, LocalAction::Leave);
            }
            Act::FollowerToggle => {
                let mode = match self.nodes[node].engine.follow_mode() {
                    Some(FollowMode::Follow) => FollowMode::Free,
                    _ => FollowMode::Follow,
                };
                if mode == FollowMode::Follow {
                    self.nodes[node].drifted = false;
                }
                self.local(node, LocalAction::SetFollowMode { mode });
            }
            Act::FollowerTurn | Act::SoloTurn => {
                if self.nodes[node].engine.follow_mode() == Some(FollowMode::Follow) {
                    self.nodes[node].drifted = true;
                }
                let a = match self.rng.random_range(0..4) {
                    0 => LocalAction::PrevPage,
                    1 => LocalAction::SetPage { page: self.rng.random_range(0..30) },
                    _ => LocalAction::NextPage,
                };
                self.local(node, a);
            }
            Act::SoloPair => {
                if let Kind::Solo { pair } = kind
                    && let Some(other) = self.partner_of(node, pair)
                {
                    self.schedule(self.now + 10, What::Connect { from: node, to: other });
                }
            }
            Act::SoloSong => {
                let song = self.random_song();
                self.local(node, LocalAction::SetSong { song_id: song });
            }
            Act::SoloParity => {
                let parity = if self.rng.random() { Parity::Odd } else { Parity::Even };
                self.local(node, LocalAction::SetParity { parity });
            }
            Act::Garbage => self.inject_garbage(node),
            Act::Forged => self.inject_forged(node),
            Act::Cut => {
                if let Some(peer) = self.some_linked_peer(node) {
                    self.cut(node, peer);
                }
            }
            Act::Isolate(ms) => {
                self.isolated_until[node] = self.now + ms;
                self.trace(|s| format!("isolate {} for {ms} ms", s.name(node)));
                let peers = self.linked_peers(node);
                for p in peers {
                    self.cut(node, p);
                }
            }
        }
    }

    fn partner_of(&self, node: usize, pair: usize) -> Option<usize> {
        (0..self.nodes.len()).find(|&j| j != node && self.nodes[j].kind == (Kind::Solo { pair }))
    }

    /// The nodes `node` has an open link to.
    fn linked_peers(&self, node: usize) -> Vec<usize> {
        self.links
            .iter()
            .filter(|((a, b), l)| l.up && (*a == node || *b == node))
            .map(|((a, b), _)| if *a == node { *b } else { *a })
            .collect()
    }

    fn some_linked_peer(&mut self, node: usize) -> Option<usize> {
        let peers = self.linked_peers(node);
        if peers.is_empty() { None } else { Some(peers[self.rng.random_range(0..peers.len())]) }
    }

    /// Garbage from a linked peer: must be rejected with no state change (§14).
    fn inject_garbage(&mut self, node: usize) {
        let Some(peer) = self.some_linked_peer(node) else { return };
        let from = self.nodes[peer].id.clone();
        let bytes: Vec<u8> = match self.rng.random_range(0..6) {
            0 => (0..self.rng.random_range(0..200)).map(|_| self.rng.random()).collect(),
            1 => vec![b' '; 70_000],
            2 => format!(
                r#"{{"v":2,"session_id":"x","sender_id":"{from}","type":"SET_PAGE","ts":1,"payload":{{}}}}"#
            )
            .into_bytes(),
            3 => format!(
                r#"{{"v":1,"session_id":"x","sender_id":"{from}","type":"SET_PAGE","ts":"soon","payload":{{}}}}"#
            )
            .into_bytes(),
            4 => format!(
                r#"{{"v":1,"session_id":"x","sender_id":"{from}","type":"SET_PAGE","ts":1,"payload":{{"song_epoch":"many"}}}}"#
            )
            .into_bytes(),
            _ => br#"{"v":1,"session_id":"#.to_vec(),
        };
        self.expect_unchanged(node, &from, &bytes, "§14 garbage changes nothing");
    }

    /// Well-formed messages a receiver must ignore: state from a peer without authority, another
    /// session's messages, a forged `sender_id`, an unknown type.
    fn inject_forged(&mut self, node: usize) {
        let Some(peer) = self.some_linked_peer(node) else { return };
        let from = self.nodes[peer].id.clone();
        let sid = match self.nodes[node].engine.state() {
            StateView::Follower(f) => f.session_id.unwrap_or_default(),
            StateView::Master(m) => m.session_id.unwrap_or_default(),
            StateView::Solo(_) => SessionId::default(),
        };
        let ts = self.now + 10_000_000;
        let (sender, session, message) = match (self.nodes[node].kind, self.rng.random_range(0..4))
        {
            // A Follower cannot steer the Master (Authority).
            (Kind::Master, 0) => (
                from.clone(),
                sid,
                Message::ChoirSetSong(ChoirSetSong {
                    song_id: None,
                    song_epoch: SongEpoch(u64::MAX),
                }),
            ),
            (Kind::Master, 1) => (
                from.clone(),
                sid,
                Message::ChoirSetPage(ChoirSetPage {
                    song_epoch: SongEpoch(1),
                    page_revision: PageRevision(u64::MAX),
                    page_index: 999,
                }),
            ),
            (Kind::Master, 2) => (
                from.clone(),
                sid.clone(),
                Message::ChoirSnapshot(ChoirSnapshot {
                    session_id: sid,
                    song_id: None,
                    song_epoch: SongEpoch(99),
                    page_index: 7,
                    page_revision: PageRevision(9),
                }),
            ),
            (Kind::Master, _) => (from.clone(), sid, Message::SessionEnd),
            // Another session's state, or a forged sender, at a Follower.
            (Kind::Follower, 0) => (
                from.clone(),
                SessionId::new("another-session"),
                Message::ChoirSetSong(ChoirSetSong {
                    song_id: None,
                    song_epoch: SongEpoch(u64::MAX),
                }),
            ),
            (Kind::Follower, 1) => (DeviceId::new("M-impostor"), sid, Message::SessionEnd),
            (Kind::Follower, 2) => {
                (from.clone(), SessionId::new("another-session"), Message::SessionEnd)
            }
            (Kind::Solo { .. }, 0) => (
                DeviceId::new("zzz-impostor"),
                sid,
                Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 77 }),
            ),
            (Kind::Solo { .. }, 1) => (
                from.clone(),
                sid,
                Message::ChoirSetPage(ChoirSetPage {
                    song_epoch: SongEpoch(1),
                    page_revision: PageRevision(1),
                    page_index: 5,
                }),
            ),
            _ => (from.clone(), sid, Message::Unknown { message_type: "FUTURE_THING".into() }),
        };
        let data = Envelope::new(session, sender, ts, message).encode();
        self.expect_unchanged(
            node,
            &from,
            data.as_bytes(),
            "§14/Authority ignored messages change nothing",
        );
    }

    fn expect_unchanged(&mut self, node: usize, from: &DeviceId, bytes: &[u8], rule: &str) {
        let e = &self.nodes[node].engine;
        let before = (
            e.state(),
            e.phase(),
            e.view(),
            e.links().map(|(p, s)| (p.clone(), s)).collect::<Vec<_>>(),
        );
        self.trace(|s| {
            format!(
                "inject at {}: {}",
                s.name(node),
                short(&String::from_utf8_lossy(&bytes[..bytes.len().min(120)]))
            )
        });
        self.stats.inputs += 1;
        let _ = self.nodes[node].engine.handle_message(self.now, from, bytes);
        let e = &self.nodes[node].engine;
        let after = (
            e.state(),
            e.phase(),
            e.view(),
            e.links().map(|(p, s)| (p.clone(), s)).collect::<Vec<_>>(),
        );
        if before != after {
            let id = self.nodes[node].id.clone();
            self.violation(rule, format!("{id} changed: {before:?} -> {after:?}"));
        }
        // Anything it answered (a version_mismatch reject) goes out as usual.
        self.after_input(node);
    }

    // ---- checkers ----------------------------------------------------------------------------

    fn check_step(&mut self, i: usize) {
        if self.nodes[i].kind != Kind::Follower {
            return;
        }
        let StateView::Follower(f) = self.nodes[i].engine.state() else { return };
        let phase = self.nodes[i].engine.phase();
        let id = self.nodes[i].id.clone();
        // §11.3: no Follower ever goes back to an older song epoch (within one session).
        if let Some(sid) = &f.session_id {
            if let Some((last_sid, last)) = &self.nodes[i].last_epoch
                && last_sid == sid
                && f.song_epoch < *last
            {
                let d = format!("{id} went from epoch {} to {}", last.0, f.song_epoch.0);
                self.violation("§11.3 no Follower goes back to an older song epoch", d);
            }
            self.nodes[i].last_epoch = Some((sid.clone(), f.song_epoch));
        }
        self.nodes[i].last_phase = Some(phase);
    }

    fn check_converged(&mut self, after_final_turn: bool) {
        let master = self.nodes.iter().position(|n| n.kind == Kind::Master);
        if let Some(m) = master {
            let StateView::Master(ms) = self.nodes[m].engine.state() else { return };
            for i in 0..self.nodes.len() {
                if self.nodes[i].kind != Kind::Follower {
                    continue;
                }
                let e = &self.nodes[i].engine;
                let StateView::Follower(f) = e.state() else { continue };
                let (id, phase, view) = (self.nodes[i].id.clone(), e.phase(), e.view());
                if let Some(sid) = &f.session_id
                    && self.ended.contains(sid)
                {
                    self.violation(
                        "§13 Followers go local after SESSION_END",
                        format!("{id} still holds ended session {sid} ({})", phase.as_str()),
                    );
                    continue;
                }
                let expected = self.nodes[i].expected_member.clone();
                let live = ms.session_id.is_some() && expected == ms.session_id;
                if !live {
                    continue;
                }
                if !matches!(phase, Phase::FollowerConnectedFollow | Phase::FollowerConnectedFree) {
                    self.violation(
                        "§12.3 Followers rejoin by themselves after the network heals",
                        format!("{id} is {}", phase.as_str()),
                    );
                    continue;
                }
                if f.song_epoch != ms.song_epoch || view.song_id != ms.song_id {
                    self.violation(
                        "§11.3 every Follower takes the Master's song",
                        format!(
                            "{id} shows {:?} epoch {} / Master {:?} epoch {}",
                            view.song_id, f.song_epoch.0, ms.song_id, ms.song_epoch.0
                        ),
                    );
                    continue;
                }
                if f.follow_mode == FollowMode::Follow
                    && (after_final_turn || !self.nodes[i].drifted)
                    && view.page_index != ms.page_index
                {
                    self.violation(
                        "§11.2/§12.4 follow-mode Followers show the Master's page after heal",
                        format!(
                            "{id} shows page {} / Master page {}",
                            view.page_index, ms.page_index
                        ),
                    );
                }
            }
        }
        let pairs: BTreeSet<usize> = self
            .nodes
            .iter()
            .filter_map(|n| match n.kind {
                Kind::Solo { pair } => Some(pair),
                _ => None,
            })
            .collect();
        for p in pairs {
            let members: Vec<usize> = (0..self.nodes.len())
                .filter(|&j| self.nodes[j].kind == Kind::Solo { pair: p })
                .collect();
            let [a, b] = members[..] else { continue };
            let (ea, eb) = (&self.nodes[a].engine, &self.nodes[b].engine);
            let (StateView::Solo(sa), StateView::Solo(sb)) = (ea.state(), eb.state()) else {
                continue;
            };
            let (pa, pb) = (ea.phase(), eb.phase());
            let (va, vb) = (ea.view(), eb.view());
            if pa != Phase::SoloPairedConnected || pb != Phase::SoloPairedConnected {
                self.violation(
                    "§12.2 Solo pairs reconnect by themselves",
                    format!("pair {p}: {} / {}", pa.as_str(), pb.as_str()),
                );
                continue;
            }
            if sa != sb {
                self.violation(
                    "§11.1 Solo pairs agree after heal",
                    format!("pair {p}: {sa:?} vs {sb:?}"),
                );
                continue;
            }
            // Each register holds its latest change and what that change made: the song and
            // page of the latest page change, the layout of the latest layout change (a layout
            // change never undoes a later turn, nor a turn a later layout change).
            let latest = self.solo_latest.get(&p);
            if let Some((stamp, song, page)) = latest.and_then(|l| l.page.as_ref())
                && (sa.last_page_change != *stamp
                    || sa.song_id != *song
                    || sa.page_index != page & !1)
            {
                let want = format!("{stamp:?} made {song:?} page {page}");
                self.violation(
                    "§11.1 Solo: the latest page change wins",
                    format!("pair {p}: have {sa:?}, latest page change {want}"),
                );
                continue;
            }
            if let Some((stamp, layout)) = latest.and_then(|l| l.layout.as_ref())
                && (sa.last_layout_change != *stamp || sa.layout != *layout)
            {
                self.violation(
                    "PROTOCOL Solo: the latest layout change wins",
                    format!(
                        "pair {p}: have {sa:?}, latest layout change {stamp:?} made {layout:?}"
                    ),
                );
                continue;
            }
            let mut pages = [va.page_index, vb.page_index];
            pages.sort_unstable();
            if va.song_id != vb.song_id || pages[0] % 2 != 0 || pages[1] != pages[0] + 1 {
                self.violation(
                    "PROTOCOL parity: a pair shows both halves of one spread",
                    format!("pair {p}: {va:?} / {vb:?} layout {:?}", sa.layout),
                );
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
