//! Solo mode (docs/behaviour.md §5.1, §10.2, §11.1, §12.2): two devices, one open book, latest
//! change wins.
//!
//! The shared state holds two last-writer-wins registers, each with its own stamp (`ts`, then
//! `sender_id`): the song and page (`last_page_change`) and the layout (`last_layout_change`).
//! A layout change never undoes a later page turn, nor a page turn a later layout change. A
//! snapshot exchanged on every new link settles both, whichever order the messages cross in.
//!
//! A paired device whose partner is gone (the link down, past the degraded threshold) is one
//! half of the book alone (docs/behaviour.md §5.1): it shows every page and turns one page at a
//! time. While alone its register holds the page it shows; on the next link it keeps showing
//! that page until the partner's snapshot is merged, and then both show the halves of the
//! spread of the latest change. If that change is this device's own, made alone on the page it
//! shows, and no later layout change stands against it, it takes the half that keeps the page
//! (a layout change stamped as that page change), so the performer who turned last sees no jump.

use std::cmp::Ordering;

use maestral_protocol::{
    DeviceId, Envelope, Layout, Message, Mode, PageChangeStamp, Parity, STREAM_CHANNEL_LABEL,
    SessionId, SoloSetPage, SoloSetSong, SoloState, SongEpoch, SongId, StreamPrepare,
};

use crate::core::{Core, PlantedBreak, Retry, RetryDue};
use crate::pager::Pager;
use crate::types::{
    ActionError, LinkSignal, LinkState, LocalAction, Phase, TransportRequest, View,
};

#[derive(Debug, Clone)]
pub(crate) struct Solo {
    pub state: SoloState,
    /// The paired device, once a link to it has opened.
    partner: Option<DeviceId>,
    /// Set while the link to the partner is lost and retries run.
    retry: Option<Retry>,
    /// Retries ran out (docs/behaviour.md §10.2): local until the partner returns.
    gave_up: bool,
    /// Set from the moment a link to the partner opens until the partner's snapshot on it has
    /// been merged: this device still shows the page it showed alone (`state.page_index`).
    resync: bool,
    /// This device's page change made alone (its stamp) and the page it showed: kept by
    /// [`Solo::keep_the_page_turned_last`] while that change is the latest, against layout
    /// changes made before it that arrive after the merge.
    kept: Option<(PageChangeStamp, u32)>,
    /// A song this device's app can stream to the partner (id, size, title): offered
    /// (`STREAM_PREPARE`, an extension beyond V1) while it is the shared song.
    stream: Option<(SongId, u64, Option<String>)>,
}

/// Solo messages carry `session_id` `""`: no session id is agreed in Solo.
fn no_session() -> SessionId {
    SessionId::default()
}

impl Solo {
    pub fn new(me: &DeviceId) -> Self {
        Solo {
            state: SoloState {
                song_id: None,
                page_index: 0,
                layout: Layout { leader_device_id: me.clone(), parity: Parity::Odd },
                // ts 0: any real change wins over the initial state; two fresh devices settle on
                // the higher device id's (identical) defaults.
                last_page_change: PageChangeStamp { sender_id: me.clone(), ts: 0 },
                last_layout_change: PageChangeStamp { sender_id: me.clone(), ts: 0 },
            },
            partner: None,
            retry: None,
            gave_up: false,
            resync: false,
            kept: None,
            stream: None,
        }
    }

    pub fn partner(&self) -> Option<&DeviceId> {
        self.partner.as_ref()
    }

    /// A restarted device takes back its pairing and the shared state it kept (with their
    /// stamps, so latest-change-wins still holds across the restart), and calls its partner
    /// back at once, then on the usual backoff, as after a drop-out. Until the partner answers
    /// it is alone, on `shown` (the page it showed before the restart); without it, on its half
    /// of the kept spread.
    pub fn resume(
        &mut self,
        core: &mut Core,
        now: u64,
        partner: &DeviceId,
        state: &SoloState,
        shown: Option<u32>,
    ) {
        if partner == core.me() {
            return;
        }
        self.state = state.clone();
        self.state.page_index = shown.unwrap_or_else(|| {
            Pager::solo(&state.layout, core.me(), partner).page(state.page_index & !1)
        });
        self.partner = Some(partner.clone());
        self.gave_up = false;
        self.resync = false;
        self.retry = Some(Retry::running(now, core));
        core.set_link(now, partner, LinkState::Reconnecting);
        core.request(TransportRequest::Connect { peer: partner.clone() });
    }

    /// The performer unpairs: the partner is forgotten and its link closed; this device plays
    /// alone, one page at a time, on the page it shows.
    fn unpair(&mut self, core: &mut Core, now: u64) {
        if self.partner.is_none() {
            return;
        }
        self.go_alone(core);
        let Some(partner) = self.partner.take() else { return };
        self.retry = None;
        self.gave_up = false;
        self.resync = false;
        core.set_link(now, &partner, LinkState::Ended);
        core.request(TransportRequest::Disconnect { peer: partner.clone() });
        core.forget_link(&partner);
    }

    /// Paired: retries run while the partner is gone (the shared position is a spread).
    fn paired(&self) -> bool {
        self.partner.is_some() && !self.gave_up
    }

    /// The pager of this device's half of each spread while the book is whole: paired, the link
    /// to the partner up (connected or degraded) and the state merged on it.
    fn together(&self, core: &Core) -> Option<Pager> {
        let partner = self.partner.as_ref().filter(|_| self.paired())?;
        let whole = core.link(partner).is_up() && !self.resync;
        (whole || core.planted(PlantedBreak::AloneKeepsItsHalf))
            .then(|| Pager::solo(&self.state.layout, core.me(), partner))
    }

    /// The book loses its other half (or the two halves are about to be merged again): the
    /// register takes the page this device shows, so nothing moves on screen. Not a change (no
    /// stamp): the spread is found again from it (`page & !1`) when the two are together.
    fn go_alone(&mut self, core: &Core) {
        self.state.page_index = self.view(core).page_index;
    }

    pub fn phase(&self, core: &Core) -> Phase {
        match &self.partner {
            Some(p) if !self.gave_up => match core.link(p) {
                LinkState::Connected => Phase::SoloPairedConnected,
                LinkState::Degraded => Phase::SoloPairedDegraded,
                _ => Phase::SoloPairedReconnecting,
            },
            _ => Phase::SoloLocalOnly,
        }
    }

    /// How this device's page follows the shared position: its half of each spread while the
    /// book is whole (docs/behaviour.md §5.1), one page at a time alone, partner gone or not.
    pub fn pager(&self, core: &Core) -> Pager {
        self.together(core).unwrap_or(Pager::SINGLE)
    }

    /// This device's page.
    pub fn view(&self, core: &Core) -> View {
        let page_index = self.pager(core).page(self.state.page_index);
        View { song_id: self.state.song_id.clone(), page_index }
    }

    /// `STREAM_PREPARE` for the shared song, if this device's app can stream it.
    fn prepare(&self) -> Option<Message> {
        let (song, size, title) =
            self.stream.as_ref().filter(|(s, ..)| self.state.song_id.as_ref() == Some(s))?;
        Some(Message::StreamPrepare(StreamPrepare {
            song_id: song.clone(),
            song_epoch: SongEpoch(0),
            size_bytes: *size,
            sha256: song.as_str().to_owned(),
            channel: STREAM_CHANNEL_LABEL.to_owned(),
            title: title.clone(),
            next: false,
        }))
    }

    fn link_up_to_partner(&self, core: &Core) -> Option<DeviceId> {
        self.partner.clone().filter(|p| core.link(p).is_up())
    }

    pub fn next_timeout(&self) -> Option<u64> {
        self.retry.as_ref().and_then(Retry::deadline)
    }

    // ---- inputs ------------------------------------------------------------------------------

    pub fn on_link(&mut self, core: &mut Core, now: u64, peer: &DeviceId, signal: LinkSignal) {
        let is_partner = self.partner.as_ref() == Some(peer);
        match signal {
            LinkSignal::Up => {
                // A second device while the partner is connected is not a new pair.
                if !is_partner && self.link_up_to_partner(core).is_some() {
                    core.set_link(now, peer, LinkState::Connected);
                    return;
                }
                // The partner's link back from `DEGRADED` (still up): still one book. Its state
                // goes over again all the same, for a partner that took the link for lost.
                let recovered = is_partner && core.link(peer).is_up();
                // Otherwise alone until the partner's state is merged: the page shown stays.
                if !recovered {
                    self.go_alone(core);
                    self.resync = true;
                }
                if !is_partner {
                    if let Some(old) = self.partner.take() {
                        core.forget_link(&old);
                    }
                    self.partner = Some(peer.clone());
                }
                self.gave_up = false;
                self.retry = None;
                core.set_link(now, peer, LinkState::Connected);
                // Every new link: HELLO, then the whole state; the peer keeps the newer one.
                let hello = core.hello(Mode::Solo);
                core.send(now, &no_session(), peer, hello);
                self.send_snapshot(core, now, peer);
                // The partner may lack the shared song: it can fetch it from here.
                if let Some(prepare) = self.prepare() {
                    core.send(now, &no_session(), peer, prepare);
                }
            }
            LinkSignal::Degraded => {
                if core.link(peer).is_up() {
                    core.set_link(now, peer, LinkState::Degraded);
                }
            }
            LinkSignal::Down => {
                if !is_partner || self.gave_up {
                    core.forget_link(peer);
                    return;
                }
                // The partner is gone: this device shows every page, from the one it shows.
                self.go_alone(core);
                self.resync = false;
                core.set_link(now, peer, LinkState::Reconnecting);
                match &mut self.retry {
                    // A running attempt failed: back off and try again.
                    Some(r) if r.is_running() => r.failed(now, core),
                    Some(_) => {}
                    None => self.retry = Some(Retry::after_loss(now, core)),
                }
            }
        }
    }

    pub fn on_timeout(&mut self, core: &mut Core, now: u64) {
        let (Some(partner), Some(retry)) = (self.partner.clone(), self.retry.as_mut()) else {
            return;
        };
        if now.saturating_sub(retry.since) >= core.timing().solo_give_up_ms {
            // docs/behaviour.md §10.2: reconnect failure timeout, remain local until manual action.
            self.retry = None;
            self.gave_up = true;
            core.request(TransportRequest::Disconnect { peer: partner.clone() });
            core.set_link(now, &partner, LinkState::Idle);
            return;
        }
        match retry.due(now) {
            RetryDue::Nothing => {}
            RetryDue::Start => {
                retry.start(now, core);
                core.request(TransportRequest::Connect { peer: partner });
            }
            RetryDue::TimedOut => {
                retry.failed(now, core);
                core.request(TransportRequest::Disconnect { peer: partner });
            }
        }
    }

    /// A message from the partner; `answer`: a change older than ours is answered with our
    /// snapshot (not for copies, see `Engine::handle_copy`).
    pub fn on_message(
        &mut self,
        core: &mut Core,
        now: u64,
        from: &DeviceId,
        env: Envelope,
        answer: bool,
    ) {
        if self.partner.as_ref() != Some(from) || !core.link(from).is_up() {
            return;
        }
        let stamp = PageChangeStamp { sender_id: env.sender_id.clone(), ts: env.ts };
        let later = |a: &PageChangeStamp, b: &PageChangeStamp| order(core, a, b);
        let behind = match env.message {
            Message::SoloSnapshot(mut theirs) => {
                theirs.page_index &= !1;
                // The first snapshot on a new link: the two halves are merged again.
                let alone_on = self.resync.then_some(self.state.page_index);
                if alone_on.is_some() {
                    self.resync = false;
                    self.state.page_index &= !1;
                }
                let page = self.merge_page(core, &theirs);
                let layout = self.merge_layout(core, &theirs);
                if let Some(shown) = alone_on {
                    let s = &self.state;
                    let mine = s.last_page_change.sender_id == *core.me();
                    self.kept = (mine && s.page_index == shown & !1)
                        .then(|| (s.last_page_change.clone(), shown));
                }
                self.keep_the_page_turned_last(core);
                page == Merge::TheyAreBehind || layout == Merge::TheyAreBehind
            }
            Message::SoloSetSong(SoloSetSong { song_id }) => {
                if later(&stamp, &self.state.last_page_change).is_gt() {
                    self.state.song_id = song_id;
                    self.take_partners_page(core, 0);
                    self.state.last_page_change = stamp.clone();
                }
                later(&stamp, &self.state.last_page_change).is_lt()
            }
            Message::SoloSetPage(SoloSetPage { song_id, page_index }) => {
                if later(&stamp, &self.state.last_page_change).is_gt() {
                    self.state.song_id = song_id;
                    self.take_partners_page(core, page_index);
                    self.state.last_page_change = stamp.clone();
                }
                later(&stamp, &self.state.last_page_change).is_lt()
            }
            Message::SetLayoutParity(layout) => {
                let took = later(&stamp, &self.state.last_layout_change).is_gt();
                if took {
                    self.state.layout = layout;
                    self.state.last_layout_change = stamp.clone();
                }
                let behind = later(&stamp, &self.state.last_layout_change).is_lt();
                if took {
                    self.keep_the_page_turned_last(core);
                }
                behind
            }
            // The partner can stream the shared song (beyond V1): the app fetches it if it lacks it.
            Message::StreamPrepare(prepare) => {
                core.event(crate::types::Event::StreamPrepare(prepare));
                false
            }
            // The partner starts on this link (a new one to it) and waits for our state before
            // it shows its half again: if we did not take the link for new (ours came back from
            // `DEGRADED`, or never faltered), our state goes now.
            Message::Hello(hello) => {
                core.event(crate::types::Event::PeerHello { peer: from.clone(), hello });
                if !self.resync {
                    self.send_snapshot(core, now, from);
                }
                false
            }
            // Choir messages, unknown types: not Solo's business.
            _ => false,
        };
        // docs/behaviour.md §11.1: an incoming change applies only if its stamp is greater than
        // ours. One that is older means the sender has not seen our latest change of that register:
        // answer with our whole state, so both converge even when changes crossed on the wire.
        if behind && answer {
            self.send_snapshot(core, now, from);
        }
    }

    /// A page change of the partner: its spread. Before the partner's snapshot on a new link
    /// (a copy that overtook it) this device is still alone: it moves straight to the half it
    /// will show once merged.
    fn take_partners_page(&mut self, core: &Core, page_index: u32) {
        let spread = page_index & !1;
        self.state.page_index = match &self.partner {
            Some(partner) if self.resync => {
                Pager::solo(&self.state.layout, core.me(), partner).page(spread)
            }
            _ => spread,
        };
    }

    /// Merged again after a time alone, during which this device showed `shown` (`kept`): if
    /// the latest page change is this device's own on that page, and no later layout change
    /// stands against it, the device takes the half that keeps the page: the performer who
    /// turned last sees no jump, and the partner shows the other half. Checked again whenever a
    /// layout change is taken while that change is the latest (one made before it may arrive
    /// after the merge).
    ///
    /// That layout is the one the page change implies, so it carries the page change's stamp:
    /// ordered as that change, it loses to any layout change made after it and wins over any
    /// made before, on both devices alike, whichever order the messages cross in.
    fn keep_the_page_turned_last(&mut self, core: &mut Core) {
        let Some(partner) = self.partner.clone() else { return };
        let Some((stamp, shown)) = self.kept.clone() else { return };
        let s = &self.state;
        let stands = order(core, &s.last_page_change, &s.last_layout_change).is_gt();
        if core.planted(PlantedBreak::ReturnJumps)
            || self.resync
            || s.last_page_change != stamp
            || !stands
            || Pager::solo(&s.layout, core.me(), &partner).page(s.page_index) == shown
        {
            return;
        }
        // The leader with `odd` shows the spread's first page, with `even` its second.
        let parity = if shown.is_multiple_of(2) { Parity::Odd } else { Parity::Even };
        let layout = Layout { leader_device_id: core.me().clone(), parity };
        self.state.layout = layout.clone();
        self.state.last_layout_change = self.state.last_page_change.clone();
        let ts = self.state.last_layout_change.ts;
        core.send_stamped(ts, &no_session(), &partner, Message::SetLayoutParity(layout));
    }

    /// The song and page of a snapshot, judged by `last_page_change` alone.
    fn merge_page(&mut self, core: &Core, theirs: &SoloState) -> Merge {
        let ours = &mut self.state;
        let order = order(core, &theirs.last_page_change, &ours.last_page_change).then_with(|| {
            // Same latest change, different content: concurrent changes crossed (or one was
            // lost with a link). Settle on the larger content, both sides alike.
            (&theirs.song_id, theirs.page_index).cmp(&(&ours.song_id, ours.page_index))
        });
        match order {
            Ordering::Greater => {
                ours.song_id = theirs.song_id.clone();
                ours.page_index = theirs.page_index;
                ours.last_page_change = theirs.last_page_change.clone();
                Merge::Took
            }
            Ordering::Equal => Merge::Same,
            Ordering::Less => Merge::TheyAreBehind,
        }
    }

    /// The layout of a snapshot, judged by `last_layout_change` alone.
    fn merge_layout(&mut self, core: &Core, theirs: &SoloState) -> Merge {
        let ours = &mut self.state;
        fn key(s: &SoloState) -> (&DeviceId, bool) {
            (&s.layout.leader_device_id, s.layout.parity == Parity::Even)
        }
        let order = order(core, &theirs.last_layout_change, &ours.last_layout_change)
            .then_with(|| key(theirs).cmp(&key(ours)));
        match order {
            Ordering::Greater => {
                ours.layout = theirs.layout.clone();
                ours.last_layout_change = theirs.last_layout_change.clone();
                Merge::Took
            }
            Ordering::Equal => Merge::Same,
            Ordering::Less => Merge::TheyAreBehind,
        }
    }

    /// The whole state; its position is always a spread (alone, the register holds a page).
    fn send_snapshot(&self, core: &mut Core, now: u64, to: &DeviceId) {
        let mut state = self.state.clone();
        state.page_index &= !1;
        core.send(now, &no_session(), to, Message::SoloSnapshot(state));
    }

    pub fn on_local(
        &mut self,
        core: &mut Core,
        now: u64,
        action: LocalAction,
    ) -> Result<(), ActionError> {
        // The shared position is a spread's first page when paired (the pager's rule).
        let pager = self.pager(core);
        let (page, step) = (self.state.page_index, pager.step());
        match action {
            LocalAction::SetSong { song_id } => self.change(core, now, Change::Song(song_id)),
            LocalAction::SetPage { page } => {
                self.change(core, now, Change::Page(pager.position(page)));
            }
            LocalAction::NextPage => {
                self.change(core, now, Change::Page(pager.position(page).saturating_add(step)));
            }
            LocalAction::PrevPage => {
                self.change(core, now, Change::Page(pager.position(page.saturating_sub(step))));
            }
            LocalAction::SetParity { parity } => {
                let layout = Layout { leader_device_id: core.me().clone(), parity };
                self.change(core, now, Change::Layout(layout));
            }
            LocalAction::Unpair => self.unpair(core, now),
            LocalAction::OfferStream { song_id, size_bytes, title } => {
                if self.state.song_id.as_ref() == Some(&song_id) {
                    self.stream = Some((song_id, size_bytes, title));
                    if let (Some(partner), Some(prepare)) =
                        (self.link_up_to_partner(core), self.prepare())
                    {
                        core.send(now, &no_session(), &partner, prepare);
                    }
                }
            }
            other => {
                return Err(ActionError::NotForRole { action: other.kind(), role: "solo" });
            }
        }
        Ok(())
    }

    /// A local change: applied at once, stamped in its register, and sent to the partner if
    /// the link is up (a lost link catches up through the snapshot of the next link).
    fn change(&mut self, core: &mut Core, now: u64, change: Change) {
        // A change made after seeing another is later than it, even if the other device's clock
        // runs ahead of ours: a register's stamp never goes below what this device has seen.
        let me = core.me().clone();
        let stamp = |last: &PageChangeStamp| PageChangeStamp {
            sender_id: me.clone(),
            ts: core.wall(now).max(last.ts.saturating_add(1)),
        };
        let (ts, message) = match change {
            Change::Page(p) if p == self.state.page_index => return,
            Change::Layout(ref l) if *l == self.state.layout => return,
            Change::Page(p) => {
                self.state.page_index = p;
                self.state.last_page_change = stamp(&self.state.last_page_change);
                let msg = SoloSetPage { song_id: self.state.song_id.clone(), page_index: p };
                (self.state.last_page_change.ts, Message::SoloSetPage(msg))
            }
            Change::Song(song_id) => {
                self.state.song_id = song_id.clone();
                self.state.page_index = 0;
                self.state.last_page_change = stamp(&self.state.last_page_change);
                (self.state.last_page_change.ts, Message::SoloSetSong(SoloSetSong { song_id }))
            }
            Change::Layout(layout) => {
                self.state.layout = layout.clone();
                self.state.last_layout_change = stamp(&self.state.last_layout_change);
                if core.planted(PlantedBreak::LayoutStampsPage) {
                    self.state.last_page_change = self.state.last_layout_change.clone();
                }
                (self.state.last_layout_change.ts, Message::SetLayoutParity(layout))
            }
        };
        if let Some(partner) = self.link_up_to_partner(core) {
            core.send_stamped(ts, &no_session(), &partner, message);
        }
    }
}

/// How far ahead of this device's clock a partner's stamp may be (10 minutes). A stamp further
/// ahead is refused: latest change wins, so one far-future stamp (a wrong clock, or a forged
/// `ts = u64::MAX`) would make every later change of the partner lose for ever.
pub const MAX_AHEAD_MS: u64 = 10 * 60 * 1000;

/// How far the newest stamp `env` carries (its `ts`, and a snapshot's two register stamps) is
/// ahead of `wall`; 0 when none is.
pub fn ahead_of(env: &Envelope, wall: u64) -> u64 {
    let mut newest = env.ts;
    if let Message::SoloSnapshot(s) = &env.message {
        newest = newest.max(s.last_page_change.ts).max(s.last_layout_change.ts);
    }
    newest.saturating_sub(wall)
}

/// The order of two changes (docs/behaviour.md §11.1) of one register: `ts`, then the higher
/// `sender_id`.
fn order(core: &Core, a: &PageChangeStamp, b: &PageChangeStamp) -> Ordering {
    if core.planted(PlantedBreak::SoloTieBreakReversed) {
        return a.ts.cmp(&b.ts).then_with(|| b.sender_id.cmp(&a.sender_id));
    }
    a.cmp(b)
}

/// What merging one register of a peer's snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    Took,
    Same,
    /// Ours is newer: the peer has not seen it.
    TheyAreBehind,
}

enum Change {
    Page(u32),
    Song(Option<SongId>),
    Layout(Layout),
}
