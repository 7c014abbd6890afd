//! The faults a run goes through, as its seed chooses them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use crate::solo::SoloFault;

/// A fault, with what the seed chose for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Loss {
        percent: u32,
        inbound: bool,
        host: usize,
    },
    LinkDown {
        secs: u64,
        host: usize,
    },
    KillFollower {
        host: usize,
    },
    KillMaster,
    /// The Master's host gets another address (a DHCP renewal).
    MasterMoves,
    /// The Master is killed, its host gets another address, and it restarts (from its saved
    /// session, whose address is gone).
    MasterMovesWhileDown,
    StopFollower {
        secs: u64,
        host: usize,
    },
    SongChange,
    /// Every UDP packet to (`inbound`) or from the host held for a seeded delay in
    /// `[min_ms, max_ms]`; a wide range reorders them (relay.rs).
    Delay {
        min_ms: u64,
        max_ms: u64,
        inbound: bool,
        host: usize,
        /// The relay's own seed (drawn from the run's).
        seed: u64,
    },
    /// A fault of the Solo pair; `pick` chooses the spreads it turns to.
    Solo {
        what: SoloFault,
        pick: u64,
    },
    /// `n` more Followers, each on a host of its own, started in the same second.
    JoinStorm {
        n: usize,
    },
}

impl Fault {
    pub fn label(&self) -> String {
        match self {
            Fault::Loss { percent, inbound, .. } => {
                format!(
                    "loss {percent}% {}",
                    if *inbound { "to followers" } else { "from followers" }
                )
            }
            Fault::LinkDown { secs, .. } => format!("link down {secs} s"),
            Fault::KillFollower { .. } => "follower SIGKILL + restart".into(),
            Fault::KillMaster => "master SIGKILL + restart".into(),
            Fault::MasterMoves => "master address changes".into(),
            Fault::MasterMovesWhileDown => "master moves while down".into(),
            Fault::StopFollower { secs, .. } => format!("follower SIGSTOP {secs} s"),
            Fault::SongChange => "song change".into(),
            Fault::Delay { min_ms, max_ms, inbound, .. } => format!(
                "delay {min_ms}-{max_ms} ms {}",
                if *inbound { "to followers" } else { "from followers" }
            ),
            Fault::Solo { what, .. } => what.label(),
            Fault::JoinStorm { n } => format!("{n} followers join at once"),
        }
    }
}

/// The faults of a run, chosen by `seed`: in quick mode one of each kind with short outages;
/// otherwise every kind once (2 s, 10 s and 60 s cuts, a 20 s sleep, 5 % and 30 % loss and
/// 40–60 ms and 10–200 ms delays both ways, kills of either role, the Master's address changing
/// (running, and while it is down),
/// a song change, the Solo pair apart, killed or losing 30 %) and the rest of `n` drawn from
/// them, in a seeded order, then the join storm.
pub fn plan(seed: u64, n: usize, quick: bool, followers: usize, storm: usize) -> Vec<Fault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut host = || rng.random_range(1..=followers.saturating_sub(1).max(1));
    if quick {
        return vec![
            Fault::Loss { percent: 30, inbound: true, host: host() },
            Fault::LinkDown { secs: 2, host: host() },
            Fault::KillFollower { host: host() },
            Fault::StopFollower { secs: 4, host: host() },
            Fault::SongChange,
            Fault::Delay { min_ms: 10, max_ms: 200, inbound: true, host: host(), seed },
            Fault::KillMaster,
            Fault::MasterMoves,
            Fault::Solo { what: SoloFault::Apart { secs: 2, side: 1 }, pick: seed },
            Fault::Solo { what: SoloFault::Kill { side: 0 }, pick: seed >> 16 },
        ]
        .into_iter()
        .chain((storm > 0).then_some(Fault::JoinStorm { n: storm }))
        .collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let storm = (storm > 0).then_some(Fault::JoinStorm { n: storm });
    let mut h = || rng.random_range(1..=followers.saturating_sub(1).max(1));
    // Every kind once (hosts and spreads drawn), in an order the seed shuffles with the rest.
    let mut every = vec![
        Fault::Loss { percent: 5, inbound: true, host: h() },
        Fault::Loss { percent: 5, inbound: false, host: h() },
        Fault::Loss { percent: 30, inbound: true, host: h() },
        Fault::Loss { percent: 30, inbound: false, host: h() },
        Fault::LinkDown { secs: 2, host: h() },
        Fault::LinkDown { secs: 10, host: h() },
        Fault::LinkDown { secs: 60, host: h() },
        Fault::KillFollower { host: h() },
        Fault::KillMaster,
        Fault::MasterMoves,
        Fault::MasterMovesWhileDown,
        Fault::StopFollower { secs: 20, host: h() },
        Fault::SongChange,
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xdea1);
    for (min_ms, max_ms) in [(40, 60), (10, 200)] {
        for inbound in [true, false] {
            let host = rng.random_range(1..=followers.saturating_sub(1).max(1));
            every.push(Fault::Delay { min_ms, max_ms, inbound, host, seed: rng.random() });
        }
    }
    for what in [
        SoloFault::Apart { secs: 2, side: 0 },
        SoloFault::Apart { secs: 10, side: 1 },
        SoloFault::Kill { side: 1 },
        SoloFault::Loss { percent: 30, side: 0 },
    ] {
        every.push(Fault::Solo { what, pick: rng.random() });
    }
    let drawn: Vec<Fault> = (every.len()..n.max(every.len()))
        .map(|_| {
            let h = rng.random_range(1..=followers.saturating_sub(1).max(1));
            match rng.random_range(0..13) {
                0 | 1 => Fault::Loss {
                    percent: if rng.random_bool(0.5) { 5 } else { 30 },
                    inbound: rng.random_bool(0.5),
                    host: h,
                },
                2 | 3 => Fault::LinkDown { secs: [2, 10, 60][rng.random_range(0..3)], host: h },
                4 => Fault::KillFollower { host: h },
                5 => Fault::KillMaster,
                6 => Fault::StopFollower { secs: 20, host: h },
                7 => {
                    let (min_ms, max_ms) = if rng.random_bool(0.5) { (40, 60) } else { (10, 200) };
                    let inbound = rng.random_bool(0.5);
                    Fault::Delay { min_ms, max_ms, inbound, host: h, seed: rng.random() }
                }
                8 | 9 => Fault::SongChange,
                10 => {
                    let secs = [2, 10][rng.random_range(0..2)];
                    let what = SoloFault::Apart { secs, side: rng.random_range(0..2) };
                    Fault::Solo { what, pick: rng.random() }
                }
                11 => {
                    let side = rng.random_range(0..2);
                    let what = if rng.random_bool(0.5) {
                        SoloFault::Kill { side }
                    } else {
                        SoloFault::Loss { percent: 30, side }
                    };
                    Fault::Solo { what, pick: rng.random() }
                }
                _ if rng.random_bool(0.5) => Fault::MasterMoves,
                _ => Fault::MasterMovesWhileDown,
            }
        })
        .collect();
    let mut all: Vec<Fault> = every.into_iter().chain(drawn).collect();
    // Fisher–Yates, seeded: the kinds meet each other in every order across seeds.
    for i in (1..all.len()).rev() {
        all.swap(i, rng.random_range(0..=i));
    }
    all.into_iter().chain(storm).collect()
}

/// `n` faults of one kind (those whose [`Fault::label`] is `label`), drawn as a full run draws
/// them (hosts, spreads, delay seeds), for measuring one fault over many samples; `None` if no
/// fault has that label. The join storm is one of them where `storm` is above 0.
pub fn only(
    seed: u64,
    n: usize,
    followers: usize,
    label: &str,
    storm: usize,
) -> Option<Vec<Fault>> {
    let mut picked = Vec::new();
    let mut round = 0u64;
    while picked.len() < n {
        let before = picked.len();
        let full = plan(seed.wrapping_add(round), 200, false, followers, storm);
        picked.extend(full.into_iter().filter(|f| f.label() == label).take(n - before));
        if picked.is_empty() {
            return None;
        }
        round += 1;
    }
    Some(picked)
}
