//! The simulated network: links and their incarnations, delivery (delays, duplicates,
//! reordering, loss), cuts, graceful closes and partitions.

use std::sync::Arc;

use maestral_protocol::decode;
use rand::Rng;

use super::{Sim, What, short};
use crate::LinkSignal;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LinkModel {
    pub(super) up: bool,
    /// Incarnation: bumped on every (re)connect and every cut, so messages and notifications of
    /// an older incarnation are discarded.
    pub(super) generation: u64,
    /// FIFO per direction: the latest delivery time scheduled (lower index → higher, and back).
    pub(super) last_at: [u64; 2],
}

pub(super) struct Faults {
    /// Per-message probabilities, in parts per 10,000.
    pub(super) dup: u32,
    pub(super) reorder: u32,
    pub(super) loss: u32,
    /// Extra delay spikes up to this many ms.
    pub(super) spike_ms: u64,
}

pub(super) fn key(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Sim {
    pub(super) fn isolated(&self, n: usize) -> bool {
        self.chaos && self.isolated_until[n] > self.now
    }

    /// A message arrives: the receiver's engine takes it, and the delivery checkers judge it.
    pub(super) fn deliver(&mut self, from: usize, to: usize, data: &str) {
        self.stats.delivered += 1;
        let msg_type = decode(data.as_bytes()).ok().map(|e| e.message);
        let before = self.before_delivery(to, msg_type.as_ref());
        let fid = self.nodes[from].id.clone();
        self.trace(|s| format!("{} -> {}: {}", s.name(from), s.name(to), short(data)));
        self.stats.inputs += 1;
        let _ = self.nodes[to].engine.handle_message(self.now, &fid, data.as_bytes());
        self.check_delivery(from, to, data, msg_type.as_ref(), before);
        self.after_input(to);
    }

    pub(super) fn connect(&mut self, from: usize, to: usize) {
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
    pub(super) fn cut(&mut self, a: usize, b: usize) {
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

    /// `node` alone sees its link to `peer` falter and come back before the degraded timeout
    /// (the transport's `up` again); the link itself never broke.
    pub(super) fn falter(&mut self, node: usize, peer: usize) {
        let Some(l) = self.links.get(&key(node, peer)).filter(|l| l.up) else { return };
        let g = l.generation;
        self.trace(|s| format!("{} sees its link to {} falter", s.name(node), s.name(peer)));
        let degraded = self.now + self.rng.random_range(10..100);
        let back = degraded + self.rng.random_range(50..2_000);
        self.schedule(
            degraded,
            What::Link { node, peer, signal: LinkSignal::Degraded, generation: g },
        );
        self.schedule(back, What::Link { node, peer, signal: LinkSignal::Up, generation: g });
    }

    /// The requester closed the link gracefully: what is in flight still arrives, then the other
    /// side sees it close.
    pub(super) fn close(&mut self, a: usize, b: usize) {
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

    /// The copies of a register update sent beside it: unreliable datagrams, so each may be
    /// lost (none of them arrives one time in four), duplicated, early (before the original)
    /// or late (up to 5 s: after later updates, a song change or a new link). Losing one never
    /// breaks the link.
    pub(super) fn transmit_copies(&mut self, from: usize, to: usize, data: &Arc<str>) {
        if !self.links.get(&key(from, to)).is_some_and(|l| l.up) {
            return;
        }
        for _ in 0..self.rng.random_range(0..=3) {
            let delay = if self.rng.random_ratio(1, 6) {
                self.rng.random_range(100..5_000)
            } else {
                self.rng.random_range(0..6)
            };
            let at = self.now + delay;
            self.schedule(at, What::Copy { from, to, data: data.clone() });
        }
    }

    /// A copy arrives: the receiver's engine takes it as the transport hands it over
    /// (`Engine::handle_copy`), and the delivery checkers judge it as they judge an original,
    /// and more: it never moves a Follower back.
    pub(super) fn deliver_copy(&mut self, from: usize, to: usize, data: &str) {
        let Ok(env) = decode(data.as_bytes()) else { return };
        let message = env.message.clone();
        let before = self.before_delivery(to, Some(&message));
        let position = self.follower_position(to);
        let fid = self.nodes[from].id.clone();
        self.trace(|s| format!("{} -> {} (copy): {}", s.name(from), s.name(to), short(data)));
        self.stats.inputs += 1;
        let _ = self.nodes[to].engine.handle_copy(self.now, &fid, env);
        self.check_copy(to, &message, position);
        self.check_delivery(from, to, data, Some(&message), before);
        self.after_input(to);
    }

    pub(super) fn transmit(&mut self, from: usize, to: usize, data: Arc<str>) {
        let k = key(from, to);
        let Some(l) = self.links.get(&k).copied() else { return };
        if !l.up {
            return;
        }
        self.check_transmit(from, to, &data);
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

    /// A partition: `node` loses every link and cannot connect until `ms` have passed.
    pub(super) fn isolate(&mut self, node: usize, ms: u64) {
        self.isolated_until[node] = self.now + ms;
        self.trace(|s| format!("isolate {} for {ms} ms", s.name(node)));
        let peers = self.linked_peers(node);
        for p in peers {
            self.cut(node, p);
        }
    }

    /// The nodes `node` has an open link to.
    pub(super) fn linked_peers(&self, node: usize) -> Vec<usize> {
        self.links
            .iter()
            .filter(|((a, b), l)| l.up && (*a == node || *b == node))
            .map(|((a, b), _)| if *a == node { *b } else { *a })
            .collect()
    }

    pub(super) fn some_linked_peer(&mut self, node: usize) -> Option<usize> {
        let peers = self.linked_peers(node);
        if peers.is_empty() { None } else { Some(peers[self.rng.random_range(0..peers.len())]) }
    }
}
