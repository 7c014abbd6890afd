//! The checkers: the rules every run must keep, named after docs/behaviour.md, judged at each step,
//! at each message, and once the network has healed.

use std::collections::BTreeSet;

use maestral_protocol::{DeviceId, FollowMode, Message, PageChangeStamp, SongId, decode};

use super::{Kind, Sim, short};
use crate::{Phase, StateView, View};

/// Per Solo pair: the latest change of each register, with what it made.
#[derive(Default)]
pub(super) struct SoloLatest {
    page: Option<SoloPageChange>,
    /// The latest layout: a performer's change, or the one an engine took to keep the page of
    /// the latest change made alone.
    layout: Option<(PageChangeStamp, maestral_protocol::Layout)>,
    /// The stamp of the latest layout change a performer made.
    performer_layout: Option<PageChangeStamp>,
}

/// A performer's page change: its stamp, the song and page it made, and, for one made alone
/// (the device turning one page at a time), the device and the page it showed.
struct SoloPageChange {
    stamp: PageChangeStamp,
    song: Option<SongId>,
    page: u32,
    alone: Option<(usize, u32)>,
}

/// A Follower's session, the Master's position it knows, and its state and view.
pub(super) struct FollowerPosition {
    session: Option<maestral_protocol::SessionId>,
    at: (maestral_protocol::SongEpoch, maestral_protocol::PageRevision),
    state: (StateView, View),
}

/// The receiver of a message, as it was before the message: what the delivery checkers compare.
pub(super) struct BeforeDelivery {
    before_free: bool,
    view_before: View,
    phase_before: Phase,
    stale_before: Option<(StateView, View)>,
}

impl Sim {
    pub(super) fn violation(&mut self, rule: &str, detail: String) {
        if self.violations.len() < 50 {
            self.violations.push(format!("{rule}: {detail} (at t={})", self.now));
        }
    }

    /// Solo: records the latest change of each register and what it made, for
    /// [`Sim::check_converged`].
    pub(super) fn record_solo_change(&mut self, node: usize, before: StateView, is_layout: bool) {
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
                && newer(l.page.as_ref().map(|x| &x.stamp), &s.last_page_change)
            {
                let engine = &self.nodes[node].engine;
                let alone = (engine.pager().step() == 1).then(|| (node, engine.view().page_index));
                l.page = Some(SoloPageChange {
                    stamp: s.last_page_change.clone(),
                    song: s.song_id.clone(),
                    page: s.page_index,
                    alone,
                });
            }
            if is_layout
                && s.last_layout_change != b.last_layout_change
                && newer(l.layout.as_ref().map(|x| &x.0), &s.last_layout_change)
            {
                l.layout = Some((s.last_layout_change.clone(), s.layout.clone()));
                l.performer_layout = Some(s.last_layout_change.clone());
            }
        }
    }

    /// Solo, after every input: a layout the engine took by itself (its own stamp, newer than
    /// any recorded) is the pair's latest layout change; and a device whose partner is gone
    /// shows every page (docs/behaviour.md §5.1).
    pub(super) fn check_solo_step(&mut self, node: usize) {
        let Kind::Solo { pair } = self.nodes[node].kind else { return };
        let engine = &self.nodes[node].engine;
        let (StateView::Solo(s), phase, step) =
            (engine.state(), engine.phase(), engine.pager().step())
        else {
            return;
        };
        if matches!(phase, Phase::SoloPairedReconnecting | Phase::SoloLocalOnly) && step != 1 {
            let d = format!(
                "{} is {} with a pager of step {step}",
                self.nodes[node].id,
                phase.as_str()
            );
            self.violation("§5.1 a Solo device whose partner is gone shows every page", d);
        }
        let l = self.solo_latest.entry(pair).or_default();
        // (Stamped 0: a device's defaults, not a change.)
        if s.last_layout_change.sender_id == self.nodes[node].id
            && s.last_layout_change.ts > 0
            && l.layout.as_ref().is_none_or(|(stamp, _)| s.last_layout_change > *stamp)
        {
            l.layout = Some((s.last_layout_change.clone(), s.layout.clone()));
        }
    }

    /// What the delivery checkers need to know of the receiver before the message.
    pub(super) fn before_delivery(&self, to: usize, msg_type: Option<&Message>) -> BeforeDelivery {
        let before_free = self.nodes[to].engine.follow_mode() == Some(FollowMode::Free);
        let view_before = self.nodes[to].engine.view();
        let phase_before = self.nodes[to].engine.phase();
        // §11.2: a SET_PAGE of the current epoch that is not strictly newer changes nothing.
        let stale_before = match (msg_type, self.nodes[to].engine.follower_master_position()) {
            (Some(Message::ChoirSetPage(p)), Some((_, _, epoch, revision)))
                if p.song_epoch == epoch && p.page_revision <= revision =>
            {
                Some((self.nodes[to].engine.state(), view_before.clone()))
            }
            _ => None,
        };
        BeforeDelivery { before_free, view_before, phase_before, stale_before }
    }

    /// The rules a delivered message must keep, judged once the receiver has taken it.
    pub(super) fn check_delivery(
        &mut self,
        from: usize,
        to: usize,
        data: &str,
        msg_type: Option<&Message>,
        before: BeforeDelivery,
    ) {
        let BeforeDelivery { before_free, view_before, phase_before, stale_before } = before;
        let fid = self.nodes[from].id.clone();
        if let Some(before) = stale_before
            && before != (self.nodes[to].engine.state(), self.nodes[to].engine.view())
        {
            let id = self.nodes[to].id.clone();
            self.violation(
                "§11.2 a stale or duplicate SET_PAGE changes nothing",
                format!("{id} changed on {}", short(data)),
            );
        }
        // docs/behaviour.md §11.4: free Followers are never moved by SET_PAGE.
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
    }

    /// A Follower's session and where it knows the Master to be (epoch, revision), with its
    /// state and view: what [`Sim::check_copy`] compares.
    pub(super) fn follower_position(&self, i: usize) -> Option<FollowerPosition> {
        let e = &self.nodes[i].engine;
        let StateView::Follower(f) = e.state() else { return None };
        let (_, _, epoch, revision) = e.follower_master_position()?;
        Some(FollowerPosition {
            session: f.session_id.clone(),
            at: (epoch, revision),
            state: (e.state(), e.view()),
        })
    }

    /// PROTOCOL §3.2: a copy never moves a Follower back (within a session, the Master's
    /// position it knows never goes to an older epoch and revision), and a copy that is not
    /// newer than what it knows changes nothing at all.
    pub(super) fn check_copy(
        &mut self,
        i: usize,
        copy: &Message,
        before: Option<FollowerPosition>,
    ) {
        let (Some(before), Some(after)) = (before, self.follower_position(i)) else { return };
        let id = self.nodes[i].id.clone();
        if before.session == after.session && after.at < before.at {
            self.violation(
                "PROTOCOL §3.2 a copy never moves a Follower back",
                format!("{id} went from {:?} to {:?} on {copy:?}", before.at, after.at),
            );
        }
        let (epoch, revision) = before.at;
        let stale = match copy {
            Message::ChoirSetSong(s) => s.song_epoch <= epoch,
            Message::ChoirSetPage(p) => (p.song_epoch, p.page_revision) <= (epoch, revision),
            _ => false,
        };
        if stale && before.session == after.session && before.state != after.state {
            self.violation(
                "PROTOCOL §3.2 a stale or duplicate copy changes nothing",
                format!("{id} changed: {:?} -> {:?} on {copy:?}", before.state, after.state),
            );
        }
    }

    /// What the Master sends: never a token, never a `JOIN_ACCEPT` into an ended session.
    pub(super) fn check_transmit(&mut self, from: usize, to: usize, data: &str) {
        if matches!(self.nodes[from].kind, Kind::Master) {
            for t in &self.tokens {
                if data.contains(t.expose()) {
                    let d = short(data);
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
    }

    /// Hands the injected bytes to `node`'s engine: neither its state, phase, view nor links may
    /// change.
    pub(super) fn expect_unchanged(
        &mut self,
        node: usize,
        from: &DeviceId,
        bytes: &[u8],
        rule: &str,
    ) {
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

    /// After every input: the rules a Follower keeps at each step.
    pub(super) fn check_step(&mut self, i: usize) {
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

    /// Once the network has healed (and again after the Master's final turn): every node has
    /// converged.
    pub(super) fn check_converged(&mut self, after_final_turn: bool) {
        let master = self.nodes.iter().position(|n| n.kind == Kind::Master);
        if let Some(m) = master {
            let StateView::Master(ms) = self.nodes[m].engine.state() else { return };
            let roster = self.nodes[m].engine.roster().unwrap_or_default();
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
                let entry = roster
                    .members
                    .binary_search_by(|x| x.device_id.cmp(&id))
                    .ok()
                    .map(|k| &roster.members[k]);
                if entry.is_none_or(|x| !x.link.is_up() || x.shows.as_ref() != Some(&view)) {
                    self.violation(
                        "PROTOCOL SHOWING: the Master's roster shows what each connected Follower shows",
                        format!("{id} shows {view:?} / roster entry {entry:?}"),
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
            if let Some(SoloPageChange { stamp, song, page, .. }) =
                latest.and_then(|l| l.page.as_ref())
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
            // The performer who turned last, alone, still sees that page, unless a performer's
            // layout change made after it moved the halves.
            if let Some(l) = latest
                && let Some(SoloPageChange { stamp, alone: Some((x, shown)), .. }) = &l.page
                && l.performer_layout.as_ref().is_none_or(|pl| stamp > pl)
                && self.nodes[*x].engine.view().page_index != *shown
            {
                let d = format!(
                    "pair {p}: {} turned last, alone, to page {shown} ({stamp:?}) and now shows {} ({sa:?})",
                    self.nodes[*x].id,
                    self.nodes[*x].engine.view().page_index
                );
                self.violation("§5.1 the device that turned last alone keeps its page", d);
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
