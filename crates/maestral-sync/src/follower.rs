//! Choir Follower (docs/behaviour.md §9.3, §10.4, §11.2–§11.4, §12.3–§12.4, §13): follows the
//! Master's position or browses freely, rejoins by itself with the stored token, never goes back to
//! an older song epoch.

use maestral_protocol::{
    ChoirSetPage, ChoirSetSong, ChoirSnapshot, DeviceId, Envelope, FollowMode, JoinRequest,
    Message, Mode, PageRevision, SessionId, SessionToken, SetFollowMode, SongEpoch, SongId,
};
use serde::Serialize;

use crate::core::{Core, PlantedBreak, Retry, RetryDue};

mod resume;
use crate::showing::ShowingReport;
use crate::types::{
    ActionError, Event, LinkSignal, LinkState, LocalAction, Phase, TransportRequest, View,
};
pub use resume::FollowerResume;

/// docs/behaviour.md §9.3 plus `page_revision` (the last Master revision applied), as the
/// conformance driver prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowerState {
    pub session_id: Option<SessionId>,
    pub follow_mode: FollowMode,
    pub song_id: Option<SongId>,
    pub song_epoch: SongEpoch,
    pub page_index: u32,
    pub last_token: Option<SessionToken>,
    pub page_revision: PageRevision,
}

#[derive(Debug, Clone)]
struct Membership {
    /// `None` while a first join by the join code has not reached the Master yet.
    master: Option<DeviceId>,
    id: SessionId,
    token: SessionToken,
    /// `JOIN_ACCEPT` received on the current link.
    joined: bool,
    /// Accepted at least once in this session: a later attempt is a rejoin.
    ever_joined: bool,
    /// Attempts and backoff while not joined.
    retry: Option<Retry>,
    /// The follow mode the last `JOIN_REQUEST` carried.
    requested_mode: FollowMode,
    /// Since when rejoins have been refused over HTTP (none since the last accept: `None`).
    refused_since: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Follower {
    session: Option<Membership>,
    follow_mode: FollowMode,
    /// The newest Master position seen (song epoch, revision, song, page).
    song_epoch: SongEpoch,
    page_revision: PageRevision,
    master_song: Option<SongId>,
    master_page: u32,
    /// Whether a Master position has been seen in this session.
    have_master: bool,
    /// A `SET_PAGE` of a newer epoch than ours, held until that epoch's song arrives (messages
    /// may be reordered); never applied to an older epoch.
    pending: Option<ChoirSetPage>,
    /// The session the epochs above belong to (kept after leaving, so rejoining the same
    /// session keeps its context).
    session_id_seen: Option<SessionId>,
    /// What this device shows.
    shown_song: Option<SongId>,
    shown_page: u32,
    /// What the Master was told this device shows (`SHOWING`).
    report: ShowingReport,
}

impl Follower {
    pub fn new() -> Self {
        Follower {
            session: None,
            follow_mode: FollowMode::Follow,
            song_epoch: SongEpoch(0),
            page_revision: PageRevision(0),
            master_song: None,
            master_page: 0,
            have_master: false,
            pending: None,
            session_id_seen: None,
            shown_song: None,
            shown_page: 0,
            report: ShowingReport::default(),
        }
    }

    pub fn state(&self) -> FollowerState {
        FollowerState {
            session_id: self.session.as_ref().map(|s| s.id.clone()),
            follow_mode: self.follow_mode,
            song_id: self.shown_song.clone(),
            song_epoch: self.song_epoch,
            page_index: self.shown_page,
            last_token: self.session.as_ref().map(|s| s.token.clone()),
            page_revision: self.page_revision,
        }
    }

    pub fn follow_mode(&self) -> FollowMode {
        self.follow_mode
    }

    pub fn master(&self) -> Option<&DeviceId> {
        self.session.as_ref().and_then(|s| s.master.as_ref())
    }

    /// The newest Master position seen: `(song, page, epoch, revision)`.
    pub fn master_position(&self) -> (Option<&SongId>, u32, SongEpoch, PageRevision) {
        (self.master_song.as_ref(), self.master_page, self.song_epoch, self.page_revision)
    }

    pub fn phase(&self, core: &Core) -> Phase {
        let Some(s) = &self.session else {
            return Phase::FollowerIdleLocal;
        };
        if s.joined && s.master.as_ref().is_some_and(|m| core.link(m).is_up()) {
            return match self.follow_mode {
                FollowMode::Follow => Phase::FollowerConnectedFollow,
                FollowMode::Free => Phase::FollowerConnectedFree,
            };
        }
        match (&s.retry, s.ever_joined) {
            // A first join stays "joining" through its retries: it never had a link to lose.
            (Some(_), false) => Phase::FollowerJoining,
            (Some(r), true) if r.is_running() => Phase::FollowerRejoining,
            _ => Phase::FollowerDisconnectedLocal,
        }
    }

    pub fn view(&self) -> View {
        View { song_id: self.shown_song.clone(), page_index: self.shown_page }
    }

    /// The newest Master position recorded, once one has been seen in this session.
    pub fn master_view(&self) -> Option<View> {
        self.have_master
            .then(|| View { song_id: self.master_song.clone(), page_index: self.master_page })
    }

    pub fn next_timeout(&self) -> Option<u64> {
        let retry = self.session.as_ref().and_then(|s| s.retry.as_ref()).and_then(Retry::deadline);
        match (retry, self.report.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// After every input: tell the Master what this device shows if that changed, within the
    /// rate limit (docs/protocol.md §4, `SHOWING`). Only while joined on a link that is up.
    pub fn report_showing(&mut self, core: &mut Core, now: u64) {
        let Some(s) = &self.session else { return self.report.pause() };
        let Some(master) = s.master.as_ref().filter(|m| s.joined && core.link(m).is_up()) else {
            return self.report.pause();
        };
        let shown = (self.song_epoch, self.view());
        if let Some(msg) = self.report.update(now, core.timing().showing_interval_ms, &shown) {
            let (id, master) = (s.id.clone(), master.clone());
            core.send(now, &id, &master, Message::Showing(msg));
        }
    }

    // ---- inputs ------------------------------------------------------------------------------

    pub fn on_link(&mut self, core: &mut Core, now: u64, peer: &DeviceId, signal: LinkSignal) {
        // The first link of a join by code is the Master's: it names the Master.
        if signal == LinkSignal::Up
            && let Some(s) = self.session.as_mut().filter(|s| s.master.is_none())
        {
            s.master = Some(peer.clone());
        }
        let Some(s) = self.session.as_mut().filter(|s| s.master.as_ref() == Some(peer)) else {
            // Not our Master: nothing to do with it beyond reporting the link.
            match signal {
                LinkSignal::Up => core.set_link(now, peer, LinkState::Connected),
                LinkSignal::Degraded => {}
                LinkSignal::Down => core.forget_link(peer),
            }
            return;
        };
        match signal {
            LinkSignal::Up => {
                core.set_link(now, peer, LinkState::Connected);
                s.joined = false;
                // The attempt now waits for JOIN_ACCEPT, within the attempt timeout.
                match &mut s.retry {
                    Some(r) if r.is_running() => {}
                    Some(r) => r.start(now, core),
                    None => s.retry = Some(Retry::running(now, core)),
                }
                s.requested_mode = self.follow_mode;
                let hello = core.hello(Mode::ChoirFollower);
                let req = Message::JoinRequest(JoinRequest {
                    session_token: s.token.clone(),
                    follow_mode: self.follow_mode,
                    song_epoch: self.song_epoch,
                });
                core.send(now, &s.id, peer, hello);
                core.send(now, &s.id, peer, req);
            }
            LinkSignal::Degraded => {
                if core.link(peer).is_up() {
                    core.set_link(now, peer, LinkState::Degraded);
                }
            }
            LinkSignal::Down => {
                s.joined = false;
                let state =
                    if s.ever_joined { LinkState::Reconnecting } else { LinkState::Connecting };
                core.set_link(now, peer, state);
                match &mut s.retry {
                    Some(r) if r.is_running() => r.failed(now, core),
                    Some(_) => {}
                    None => s.retry = Some(Retry::after_loss(now, core)),
                }
            }
        }
    }

    pub fn on_timeout(&mut self, core: &mut Core, now: u64) {
        let Some(s) = self.session.as_mut() else { return };
        let Some(r) = s.retry.as_mut() else { return };
        let state = if s.ever_joined { LinkState::Reconnecting } else { LinkState::Connecting };
        match (r.due(now), &s.master) {
            (RetryDue::Nothing, _) => {}
            (RetryDue::Start, Some(master)) => {
                r.start(now, core);
                core.set_link(now, master, state);
                core.request(TransportRequest::Connect { peer: master.clone() });
            }
            (RetryDue::Start, None) => {
                r.start(now, core);
                core.request(TransportRequest::JoinByCode);
            }
            (RetryDue::TimedOut, master) => {
                r.failed(now, core);
                s.joined = false;
                if let Some(master) = master {
                    core.set_link(now, master, state);
                    core.request(TransportRequest::Disconnect { peer: master.clone() });
                }
                // A first join that timed out is simply started again (`JoinByCode` abandons
                // it); one that answers late is still welcome.
            }
        }
    }

    /// A message from `from`; `copy`: it came as a copy (docs/protocol.md §3.2), taken by the
    /// same rules.
    pub fn on_message(
        &mut self,
        core: &mut Core,
        now: u64,
        from: &DeviceId,
        env: Envelope,
        copy: bool,
    ) {
        // Authority: only our Master, on an open link, for our session. State that arrives before
        // JOIN_ACCEPT on that link is applied too (the Master only sends it to members).
        let Some(s) = self.session.as_mut() else { return };
        if s.master.as_ref() != Some(from) || !core.link(from).is_up() || env.session_id != s.id {
            if let Message::Hello(hello) = env.message {
                core.event(Event::PeerHello { peer: from.clone(), hello });
            }
            return;
        }
        let joined = s.joined;
        match env.message {
            Message::JoinAccept(accept) => {
                if accept.snapshot.session_id != s.id {
                    return;
                }
                s.joined = true;
                s.ever_joined = true;
                s.retry = None;
                s.refused_since = None;
                // A (re)join: the Master hears what this device shows right after the accept.
                self.report.reset();
                // The mode changed while the join was in flight: tell the Master now.
                if s.requested_mode != self.follow_mode {
                    s.requested_mode = self.follow_mode;
                    let msg = Message::SetFollowMode(SetFollowMode { mode: self.follow_mode });
                    let id = s.id.clone();
                    core.send(now, &id, from, msg);
                }
                self.apply_snapshot(core, &accept.snapshot);
            }
            Message::JoinReject(reject) => {
                if joined {
                    return;
                }
                self.exit_to_local(core, now);
                core.event(Event::JoinRejected { reason: reject.reason });
            }
            Message::SessionEnd => {
                self.exit_to_local(core, now);
                core.event(Event::StreamClear { song_id: None });
                core.event(Event::SessionEnded);
            }
            Message::ChoirSnapshot(snap) if snap.session_id == env.session_id => {
                self.apply_snapshot(core, &snap);
            }
            Message::ChoirSetSong(ChoirSetSong { song_id, song_epoch })
                if song_epoch > self.song_epoch =>
            {
                self.new_song_context(core, song_id, song_epoch, 0, PageRevision(0));
            }
            Message::ChoirSetPage(p) => self.apply_set_page(core, p, copy),
            Message::StreamPrepare(p) => core.event(Event::StreamPrepare(p)),
            Message::StreamClear(c) => core.event(Event::StreamClear { song_id: c.song_id }),
            Message::Hello(hello) => core.event(Event::PeerHello { peer: from.clone(), hello }),
            _ => {}
        }
    }

    /// The Master's listener refused the (re)join before any link opened (`403`): as
    /// `JOIN_REJECT`, back to local mode (§12.3).
    pub fn on_join_refused(
        &mut self,
        core: &mut Core,
        now: u64,
        reason: maestral_protocol::RejectReason,
    ) {
        let Some(s) = self.session.as_mut().filter(|s| !s.joined) else { return };
        if !s.ever_joined {
            self.exit_to_local(core, now);
            core.event(Event::JoinRejected { reason });
            return;
        }
        // A rejoin refused over HTTP: the membership holds for a while (the browser Follower
        // cannot check the Master's signature; a native one passes only signed refusals);
        // retried on a longer backoff, and ended only by refusals repeated over minutes (or by
        // the pinned link's own word).
        let since = *s.refused_since.get_or_insert(now);
        if now.saturating_sub(since) >= core.timing().refused_rejoin_give_up_ms {
            self.exit_to_local(core, now);
            core.event(Event::JoinRejected { reason });
            return;
        }
        let wait = core.timing().refused_rejoin_backoff_ms;
        if let Some(r) = s.retry.as_mut() {
            r.failed_waiting(now, core, wait);
        }
    }

    /// A first join by the join code failed before any link opened: retried on the backoff,
    /// or, `for_good` (the code cannot work), back to local mode (§12.3).
    pub fn on_join_failed(&mut self, core: &mut Core, now: u64, for_good: bool) {
        let Some(s) = self.session.as_mut().filter(|s| s.master.is_none()) else { return };
        if for_good {
            self.exit_to_local(core, now);
        } else if let Some(r) = s.retry.as_mut().filter(|r| r.is_running()) {
            r.failed(now, core);
        }
    }

    /// §11.2: only the current epoch, only a strictly newer revision; a newer epoch's page waits
    /// for its song.
    fn apply_set_page(&mut self, core: &Core, p: ChoirSetPage, copy: bool) {
        if p.song_epoch == self.song_epoch {
            let newer = p.page_revision > self.page_revision
                || (core.planted(PlantedBreak::RevisionAtLeast)
                    && p.page_revision == self.page_revision)
                || (copy && core.planted(PlantedBreak::StaleCopyApplied));
            if newer {
                self.page_revision = p.page_revision;
                self.master_page = p.page_index;
                if self.follow_mode == FollowMode::Follow
                    || core.planted(PlantedBreak::FreeFollowsSetPage)
                {
                    self.shown_song = self.master_song.clone();
                    self.shown_page = p.page_index;
                }
            }
        } else if p.song_epoch > self.song_epoch
            && self
                .pending
                .as_ref()
                .is_none_or(|q| (p.song_epoch, p.page_revision) > (q.song_epoch, q.page_revision))
        {
            self.pending = Some(p);
        }
    }

    /// `JOIN_ACCEPT` / `STATE_SNAPSHOT` (docs/behaviour.md §11.2–§11.4).
    fn apply_snapshot(&mut self, core: &Core, snap: &ChoirSnapshot) {
        if snap.song_epoch > self.song_epoch {
            self.new_song_context(
                core,
                snap.song_id.clone(),
                snap.song_epoch,
                snap.page_index,
                snap.page_revision,
            );
        } else if snap.song_epoch == self.song_epoch && snap.page_revision >= self.page_revision {
            self.page_revision = snap.page_revision;
            self.master_song = snap.song_id.clone();
            self.master_page = snap.page_index;
            self.have_master = true;
            if self.follow_mode == FollowMode::Follow {
                // Even a revision seen before: this device may have turned locally meanwhile.
                self.shown_song = self.master_song.clone();
                self.shown_page = snap.page_index;
            }
        }
    }

    /// §11.3: a newer epoch replaces the page context; free Followers take song changes too.
    fn new_song_context(
        &mut self,
        core: &Core,
        song_id: Option<SongId>,
        epoch: SongEpoch,
        page: u32,
        revision: PageRevision,
    ) {
        self.song_epoch = epoch;
        self.page_revision = revision;
        self.master_song = song_id;
        self.master_page = page;
        self.have_master = true;
        self.shown_song = self.master_song.clone();
        self.shown_page = page;
        if let Some(p) = self.pending.take()
            && p.song_epoch >= epoch
        {
            self.apply_set_page(core, p, false);
        }
    }

    /// Rejected, ended or left: back to local mode, the session forgotten (§12.3, §13). The page
    /// shown stays.
    fn exit_to_local(&mut self, core: &mut Core, now: u64) {
        if let Some(s) = self.session.take() {
            Self::close(core, now, s.master);
        }
        self.pending = None;
    }

    pub fn on_local(
        &mut self,
        core: &mut Core,
        now: u64,
        action: LocalAction,
    ) -> Result<(), ActionError> {
        match action {
            // Local navigation never waits for, nor tells, the Master (§12.1, §12.4).
            LocalAction::SetPage { page } => self.shown_page = page,
            LocalAction::NextPage => self.shown_page = self.shown_page.saturating_add(1),
            LocalAction::PrevPage => self.shown_page = self.shown_page.saturating_sub(1),
            // Opening another score locally (e.g. alone, or browsing while free).
            LocalAction::SetSong { song_id } => {
                self.shown_song = song_id;
                self.shown_page = 0;
            }
            LocalAction::SetFollowMode { mode } => {
                if mode == self.follow_mode {
                    return Ok(());
                }
                self.follow_mode = mode;
                if mode == FollowMode::Follow && self.have_master {
                    self.shown_song = self.master_song.clone();
                    self.shown_page = self.master_page;
                }
                if let Some(s) = &self.session
                    && s.joined
                    && let Some(master) = s.master.clone().filter(|m| core.link(m).is_up())
                {
                    let msg = Message::SetFollowMode(SetFollowMode { mode });
                    core.send(now, &s.id.clone(), &master, msg);
                }
            }
            LocalAction::Join { master, session_id, token } => {
                self.join(core, now, Some(master), session_id, token)?;
            }
            LocalAction::JoinByCode { session_id, token } => {
                self.join(core, now, None, session_id, token)?;
            }
            LocalAction::Leave => {
                let Some(s) = self.session.take() else {
                    return Err(ActionError::NotInSession);
                };
                self.leave(core, now, s);
            }
            other => {
                return Err(ActionError::NotForRole { action: other.kind(), role: "follower" });
            }
        }
        Ok(())
    }

    /// A new session (`master` `None`: by the join code, the Master's id still unknown).
    fn join(
        &mut self,
        core: &mut Core,
        now: u64,
        master: Option<DeviceId>,
        session_id: SessionId,
        token: SessionToken,
    ) -> Result<(), ActionError> {
        if token.is_empty() {
            return Err(ActionError::EmptyToken);
        }
        if let Some(old) = self.session.take() {
            self.leave(core, now, old);
        }
        if self.session_id_seen.as_ref() != Some(&session_id) {
            // Another session: its epochs start from scratch.
            self.song_epoch = SongEpoch(0);
            self.page_revision = PageRevision(0);
            self.have_master = false;
            self.master_song = None;
            self.master_page = 0;
            self.pending = None;
        }
        self.session_id_seen = Some(session_id.clone());
        self.session = Some(Membership {
            master: master.clone(),
            id: session_id,
            token,
            joined: false,
            ever_joined: false,
            retry: Some(Retry::running(now, core)),
            requested_mode: self.follow_mode,
            refused_since: None,
        });
        match master {
            // The link is already open: join on it at once.
            Some(master) if core.link(&master).is_up() => {
                self.on_link(core, now, &master, LinkSignal::Up)
            }
            Some(master) => {
                core.set_link(now, &master, LinkState::Connecting);
                core.request(TransportRequest::Connect { peer: master });
            }
            None => core.request(TransportRequest::JoinByCode),
        }
        Ok(())
    }

    fn leave(&mut self, core: &mut Core, now: u64, s: Membership) {
        if s.joined
            && let Some(master) = s.master.as_ref().filter(|m| core.link(m).is_up())
        {
            core.send(now, &s.id, master, Message::LeaveSession);
        }
        Self::close(core, now, s.master);
        self.pending = None;
    }

    /// The session's link is over: ended, and the transport told to close it (or to abandon
    /// a first join that has not reached the Master).
    fn close(core: &mut Core, now: u64, master: Option<DeviceId>) {
        match master {
            Some(master) => {
                core.set_link(now, &master, LinkState::Ended);
                core.request(TransportRequest::Disconnect { peer: master });
            }
            None => core.request(TransportRequest::CancelJoin),
        }
    }
}
