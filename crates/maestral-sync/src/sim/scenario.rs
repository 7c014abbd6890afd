//! The scenario: who takes part (a Choir Master and its Followers, or Solo pairs) and the
//! random script of what each of them does during chaos.

use maestral_protocol::{FollowMode, Parity, SessionToken, SongId};
use rand::Rng;

use super::{Kind, Sim, What};
use crate::LocalAction;

const SONGS: [&str; 5] = ["song-a", "song-b", "song-c", "song-d", "song-e"];

#[derive(Debug, Clone)]
pub(super) enum Act {
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
    /// One side of a link sees it falter (`DEGRADED`) and recover (`up` again) while the other
    /// sees nothing.
    Falter,
    Isolate(u64),
}

impl Sim {
    pub(super) fn build_choir(&mut self) {
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

    pub(super) fn build_solo(&mut self) {
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
                    let act = match self.rng.random_range(0..21) {
                        0..=11 => Act::SoloTurn,
                        12..=13 => Act::SoloSong,
                        14 => Act::SoloParity,
                        15 => Act::Garbage,
                        16 => Act::Forged,
                        17..=18 => Act::Cut,
                        19 => Act::Falter,
                        _ => Act::Isolate(self.rng.random_range(200..8_000)),
                    };
                    self.schedule(at, What::Act { node: n, act });
                }
            }
        }
    }

    pub(super) fn random_song(&mut self) -> Option<SongId> {
        let i = self.rng.random_range(0..SONGS.len() + 1);
        SONGS.get(i).map(|s| SongId::new(*s))
    }

    pub(super) fn act(&mut self, node: usize, act: Act) {
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
            Act::MasterCrash { keep_position } => self.crash_master(node, keep_position),
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
            Act::Falter => {
                if let Some(peer) = self.some_linked_peer(node) {
                    self.falter(node, peer);
                }
            }
            Act::Isolate(ms) => self.isolate(node, ms),
        }
    }

    pub(super) fn partner_of(&self, node: usize, pair: usize) -> Option<usize> {
        (0..self.nodes.len()).find(|&j| j != node && self.nodes[j].kind == (Kind::Solo { pair }))
    }
}
