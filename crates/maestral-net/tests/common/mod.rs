//! Shared by the sync-thread tests: a sync thread as a test peer (its events applied as they
//! come, bounded waits), and Choir roles made in one call.

#![allow(dead_code)]

pub mod rogue;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use maestral_net::joincode::JoinCode;
use maestral_net::{SyncCommand, SyncConfig, SyncEvent, SyncHandle};
use maestral_protocol::{DeviceId, RejectReason, SongId};
use maestral_sync::{Event, LinkState, LocalAction, Phase, Role, View};

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Peer {
    pub name: String,
    pub h: SyncHandle,
    pub phase: Option<Phase>,
    pub view: Option<View>,
    /// The engine's pager: a Solo device turns by spreads only while the book is whole.
    pub pager: maestral_sync::Pager,
    pub links: HashMap<DeviceId, LinkState>,
    pub join_code: Option<String>,
    pub pair_code: Option<String>,
    pub rejected: Option<RejectReason>,
    pub errors: Vec<String>,
    pub phases: Vec<Phase>,
    /// `STREAM_PREPARE`s heard, in order.
    pub prepares: Vec<maestral_protocol::StreamPrepare>,
    /// Stream progress reports: (song, bytes so far).
    pub progress: Vec<(SongId, u64)>,
    /// Scores received whole.
    pub streamed: HashMap<SongId, std::sync::Arc<[u8]>>,
    /// `STREAM_CLEAR`s heard (`None`: everything).
    pub cleared: Vec<Option<SongId>>,
    /// Streams given up.
    pub gave_up: Vec<SongId>,
}

/// Test timing: generous join steps, so a loaded 2-core machine never fails a join.
pub fn config(name: &str) -> SyncConfig {
    let mut cfg = SyncConfig::new(name, LOCAL);
    cfg.join_timeout = Duration::from_secs(20);
    // No locate queries broadcast onto the machine's LAN, no responder (tests/locate.rs sets
    // its own, on loopback).
    cfg.locate = maestral_net::LocateConfig::Off;
    cfg
}

impl Peer {
    pub fn start(name: &str, role: Role) -> Peer {
        Peer::with(role, config(name))
    }

    pub fn with(role: Role, cfg: SyncConfig) -> Peer {
        let name = cfg.device_id.to_string();
        let h = SyncHandle::start(role, cfg, || {}).expect("thread starts");
        Peer {
            name,
            h,
            phase: None,
            view: None,
            pager: maestral_sync::Pager::SINGLE,
            links: HashMap::new(),
            join_code: None,
            pair_code: None,
            rejected: None,
            errors: Vec::new(),
            phases: Vec::new(),
            prepares: Vec::new(),
            progress: Vec::new(),
            streamed: HashMap::new(),
            cleared: Vec::new(),
            gave_up: Vec::new(),
        }
    }

    pub fn apply(&mut self, e: SyncEvent) {
        match e {
            SyncEvent::Engine(Event::Phase(p)) => {
                self.phase = Some(p);
                self.phases.push(p);
            }
            SyncEvent::Engine(Event::Show { view: v, .. }) => self.view = Some(v),
            SyncEvent::Engine(Event::Pager(p)) => self.pager = p,
            SyncEvent::Engine(Event::Link { peer, state }) => {
                self.links.insert(peer, state);
            }
            SyncEvent::Engine(Event::JoinRejected { reason }) => self.rejected = Some(reason),
            SyncEvent::Engine(Event::StreamPrepare(p)) => self.prepares.push(p),
            SyncEvent::Engine(Event::StreamClear { song_id }) => self.cleared.push(song_id),
            SyncEvent::Stream { song_id, got, .. } => self.progress.push((song_id, got)),
            SyncEvent::Streamed { song_id, bytes } => {
                self.streamed.insert(song_id, bytes);
            }
            SyncEvent::StreamGaveUp { song_id } => self.gave_up.push(song_id),
            SyncEvent::Engine(_) => {}
            SyncEvent::JoinCode(c) => self.join_code = Some(c),
            SyncEvent::PairCode(c) => self.pair_code = Some(c),
            SyncEvent::Error(e) => self.errors.push(e.to_string()),
            SyncEvent::StartFailed(e) => self.errors.push(e.to_string()),
        }
    }

    pub fn wait(&mut self, what: &str, done: impl Fn(&Peer) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok(e) = self.h.events().try_recv() {
                self.apply(e);
            }
            if done(self) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: no {what} within {WAIT:?}; phase {:?}, view {:?}, errors {:?}",
                self.name,
                self.phase,
                self.view,
                self.errors
            );
            if let Ok(e) = self.h.events().recv_timeout(left.min(Duration::from_millis(100))) {
                self.apply(e);
            }
        }
    }

    pub fn wait_phase(&mut self, p: Phase) {
        self.wait(p.as_str(), |s| s.phase == Some(p));
    }

    pub fn wait_view(&mut self, song: &str, page: u32) {
        let want = View { song_id: Some(SongId::new(song)), page_index: page };
        self.wait(&format!("{want:?}"), |s| s.view.as_ref() == Some(&want));
    }

    pub fn local(&self, a: LocalAction) {
        self.h.send(SyncCommand::Local(a));
    }

    pub fn page(&self) -> u32 {
        self.view.as_ref().map_or(0, |v| v.page_index)
    }
}

pub fn song(s: &str) -> LocalAction {
    LocalAction::SetSong { song_id: Some(SongId::new(s)) }
}

pub fn master() -> (Peer, JoinCode) {
    master_with(config("M"))
}

pub fn master_with(cfg: SyncConfig) -> (Peer, JoinCode) {
    let mut m = Peer::with(Role::Master, cfg);
    m.h.send(SyncCommand::StartChoir { listen: SocketAddr::new(LOCAL, 0) });
    m.wait("a join code", |s| s.join_code.is_some());
    m.wait_phase(Phase::MasterSessionActive);
    let code: JoinCode =
        m.join_code.clone().expect("join code").parse().expect("our join code parses");
    (m, code)
}

/// A fresh, empty path under the temp directory for one test (`name` and the process id).
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("maestral-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A Master keeping its session in `dir` (a restart from there resumes it), once it has its
/// join code.
pub fn master_in(dir: &std::path::Path) -> Peer {
    let mut cfg = config("M");
    cfg.state_dir = Some(dir.to_path_buf());
    let mut m = Peer::with(Role::Master, cfg);
    m.h.send(SyncCommand::StartChoir { listen: SocketAddr::new(LOCAL, 0) });
    m.wait("a join code", |s| s.join_code.is_some());
    m
}

pub fn follower(name: &str, code: &JoinCode) -> Peer {
    let mut f = Peer::start(name, Role::Follower);
    f.h.send(SyncCommand::Join(code.clone()));
    f.wait_phase(Phase::FollowerConnectedFollow);
    f
}

/// `len` bytes that stand for a score (the sync thread never opens them), different per
/// `seed`, and the song id they get (their SHA-256, as a real score's).
pub fn noise_score(len: usize, seed: u8) -> (SongId, std::sync::Arc<[u8]>) {
    use sha2::Digest;
    let bytes = maestral_bench::noise(len, u32::from(seed));
    let id: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    (SongId::new(id), bytes.into())
}

/// `a` and `b` (Solo) paired by offer and answer codes.
pub fn pair_up(mut a: Peer, mut b: Peer) -> (Peer, Peer) {
    a.h.send(SyncCommand::SoloOffer);
    a.wait("an offer code", |s| s.pair_code.is_some());
    b.h.send(SyncCommand::SoloAnswer(a.pair_code.take().expect("offer")));
    b.wait("an answer code", |s| s.pair_code.is_some());
    a.h.send(SyncCommand::SoloAccept(b.pair_code.take().expect("answer")));
    a.wait_phase(Phase::SoloPairedConnected);
    b.wait_phase(Phase::SoloPairedConnected);
    // One book once each has merged the other's state (until then each turns alone).
    a.wait("one book", |s| s.pager.step() == 2);
    b.wait("one book", |s| s.pager.step() == 2);
    (a, b)
}
