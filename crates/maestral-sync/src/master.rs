//! Choir Master (docs/behaviour.md §5.2, §9.2, §10.3, §11.2–§11.3, §13): owns the session, the
//! token and the authoritative position, and broadcasts it to joined Followers.

use std::collections::BTreeMap;

use maestral_protocol::{
    ChoirSetPage, ChoirSetSong, ChoirSnapshot, DecodeError, DeviceId, Envelope, FollowMode,
    JoinAccept, JoinReject, Message, Mode, PageRevision, RejectReason, STREAM_CHANNEL_LABEL,
    SessionId, SessionToken, SongEpoch, SongId, StreamPrepare,
};
use serde::{Deserialize, Serialize};

use crate::core::Core;
use crate::roster::{Roster, RosterBook, RosterMember};
use crate::showing::Shown;
use crate::types::{
    ActionError, Event, LinkSignal, LinkState, LocalAction, Offered, Phase, TransportRequest, View,
};

/// docs/behaviour.md §9.2, as the conformance driver prints it (`session_id`/`session_token` null
/// outside a session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterState {
    pub session_id: Option<SessionId>,
    pub session_token: Option<SessionToken>,
    pub song_id: Option<SongId>,
    pub song_epoch: SongEpoch,
    pub page_index: u32,
    pub page_revision: PageRevision,
}

#[derive(Debug, Clone)]
struct Session {
    id: SessionId,
    token: SessionToken,
}

#[derive(Debug, Clone)]
struct Member {
    follow_mode: FollowMode,
    /// When its link was lost (it is expected to rejoin).
    lost_at: Option<u64>,
    /// What its latest `SHOWING` says it shows.
    shows: Option<Shown>,
    /// The `ts` of that `SHOWING` on the current link: an older one (a duplicate or reordered
    /// copy) is ignored.
    shows_ts: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Master {
    session: Option<Session>,
    /// The last ended session: its joins are answered `session_ended`.
    ended: Option<SessionId>,
    song_id: Option<SongId>,
    song_epoch: SongEpoch,
    page_index: u32,
    page_revision: PageRevision,
    members: BTreeMap<DeviceId, Member>,
    /// How many members have lost their link (kept in step with `Member::lost_at`, so the phase
    /// is O(1) however many Followers there are).
    away: usize,
    roster: RosterBook,
    /// The current song as the app can stream it: offered (`STREAM_PREPARE`) to every member
    /// there when it is set, and to each Follower that joins or rejoins.
    stream: Option<Offered>,
    /// The song the app will show next (its set list's next piece), offered the same way with
    /// `"next": true` so that Followers lacking it fetch it ahead; it becomes `stream` when the
    /// Master moves to it.
    next: Option<Offered>,
    /// Links up from devices that are not members, and since when: closed once they have not
    /// joined within `Timing::join_deadline_ms`.
    unjoined: BTreeMap<DeviceId, u64>,
}

impl Master {
    pub fn new() -> Self {
        Master {
            session: None,
            ended: None,
            song_id: None,
            song_epoch: SongEpoch(0),
            page_index: 0,
            page_revision: PageRevision(0),
            members: BTreeMap::new(),
            away: 0,
            roster: RosterBook::default(),
            stream: None,
            next: None,
            unjoined: BTreeMap::new(),
        }
    }

    /// A (re)join: a member that rejoins keeps what it last reported showing until it reports
    /// again (right after the accept).
    fn add_member(&mut self, d: &DeviceId, follow_mode: FollowMode) {
        let shows = self.members.get(d).and_then(|m| m.shows.clone());
        self.remove_member(d);
        self.members.insert(d.clone(), Member { follow_mode, lost_at: None, shows, shows_ts: 0 });
        self.roster.mark();
    }

    fn remove_member(&mut self, d: &DeviceId) {
        if let Some(m) = self.members.remove(d) {
            self.roster.mark();
            if m.lost_at.is_some() {
                self.away = self.away.saturating_sub(1);
            }
        }
    }

    fn clear_members(&mut self) {
        if !self.members.is_empty() {
            self.roster.mark();
        }
        self.members.clear();
        self.away = 0;
    }

    fn set_lost(&mut self, d: &DeviceId, lost: Option<u64>) {
        if let Some(m) = self.members.get_mut(d) {
            match (m.lost_at.is_some(), lost.is_some()) {
                (false, true) => {
                    self.away += 1;
                    m.lost_at = lost;
                }
                (true, false) => {
                    self.away = self.away.saturating_sub(1);
                    m.lost_at = None;
                }
                _ => {}
            }
        }
    }

    /// A restarted Master takes back its saved session and position (docs/behaviour.md §6.3:
    /// a Master that restarts resumes the same session, and stored codes still work).
    pub fn resume(&mut self, saved: &MasterState) {
        self.song_id = saved.song_id.clone();
        self.song_epoch = saved.song_epoch;
        self.page_index = saved.page_index;
        self.page_revision = saved.page_revision;
        self.clear_members();
        self.session = match (&saved.session_id, &saved.session_token) {
            (Some(id), Some(token)) => {
                self.ended = None;
                Some(Session { id: id.clone(), token: token.clone() })
            }
            _ => None,
        };
    }

    pub fn state(&self) -> MasterState {
        MasterState {
            session_id: self.session.as_ref().map(|s| s.id.clone()),
            session_token: self.session.as_ref().map(|s| s.token.clone()),
            song_id: self.song_id.clone(),
            song_epoch: self.song_epoch,
            page_index: self.page_index,
            page_revision: self.page_revision,
        }
    }

    /// The joined Followers and their published follow mode.
    pub fn members(&self) -> impl Iterator<Item = (&DeviceId, FollowMode)> {
        self.members.iter().map(|(d, m)| (d, m.follow_mode))
    }

    pub fn phase(&self) -> Phase {
        if self.session.is_some() {
            if self.away > 0 { Phase::MasterReconnectingLinks } else { Phase::MasterSessionActive }
        } else if self.ended.is_some() {
            Phase::MasterSessionEnded
        } else {
            Phase::MasterIdle
        }
    }

    pub fn view(&self) -> View {
        View { song_id: self.song_id.clone(), page_index: self.page_index }
    }

    /// `STREAM_PREPARE` for the current song, if the app can stream it.
    fn prepare(&self) -> Option<Message> {
        let current = self.stream.as_ref().filter(|o| self.song_id.as_ref() == Some(&o.song_id))?;
        Some(self.prepare_of(current, false))
    }

    /// `STREAM_PREPARE` for the next song, if the app can stream it.
    fn prepare_next(&self) -> Option<Message> {
        let next = self.next.as_ref().filter(|o| self.song_id.as_ref() != Some(&o.song_id))?;
        Some(self.prepare_of(next, true))
    }

    fn prepare_of(&self, offered: &Offered, next: bool) -> Message {
        Message::StreamPrepare(StreamPrepare {
            song_id: offered.song_id.clone(),
            song_epoch: self.song_epoch,
            size_bytes: offered.size_bytes,
            // A song's id is the SHA-256 of its file.
            sha256: offered.song_id.as_str().to_owned(),
            channel: STREAM_CHANNEL_LABEL.to_owned(),
            title: offered.title.clone(),
            next,
        })
    }

    fn offer_stream(&self, core: &mut Core, now: u64) {
        if let Some(prepare) = self.prepare() {
            core.broadcast_up(now, &self.session_id(), self.members.keys(), prepare);
        }
    }

    fn offer_next(&self, core: &mut Core, now: u64) {
        if let Some(prepare) = self.prepare_next() {
            core.broadcast_up(now, &self.session_id(), self.members.keys(), prepare);
        }
    }

    fn session_id(&self) -> SessionId {
        self.session.as_ref().map(|s| s.id.clone()).unwrap_or_default()
    }

    fn snapshot(&self) -> ChoirSnapshot {
        ChoirSnapshot {
            session_id: self.session_id(),
            song_id: self.song_id.clone(),
            song_epoch: self.song_epoch,
            page_index: self.page_index,
            page_revision: self.page_revision,
        }
    }

    pub fn next_timeout(&self, core: &Core) -> Option<u64> {
        let forget = core.timing().member_forget_ms;
        let lost =
            self.members.values().filter_map(|m| m.lost_at.map(|t| t.saturating_add(forget))).min();
        let deadline = core.timing().join_deadline_ms;
        let unjoined = self.unjoined.values().map(|t| t.saturating_add(deadline)).min();
        [lost, self.roster.deadline(), unjoined].into_iter().flatten().min()
    }

    // ---- roster ------------------------------------------------------------------------------

    /// The roster as of the last input (O(members)).
    pub fn roster(&self, core: &Core) -> Roster {
        let here = (self.song_epoch, self.view());
        let lag = self.roster.lag_active();
        let members = self
            .members
            .iter()
            .map(|(d, m)| {
                let link = core.link(d);
                RosterMember {
                    device_id: d.clone(),
                    name: self.roster.name_of(d),
                    link,
                    follow_mode: m.follow_mode,
                    shows: m.shows.as_ref().map(|(_, v)| v.clone()),
                    // One that never reported (just joined, or a V1 peer that ignores
                    // SHOWING) is unknown, not lagging.
                    lagging: lag
                        && m.follow_mode == FollowMode::Follow
                        && link.is_up()
                        && m.shows.as_ref().is_some_and(|s| *s != here),
                }
            })
            .collect();
        Roster { members }
    }

    /// After every input: emit the roster if it changed and the interval allows (else its
    /// timer does, with the latest roster).
    pub fn flush_roster(&mut self, core: &mut Core, now: u64) {
        if !self.roster.ready(now, core.timing().roster_interval_ms) {
            return;
        }
        let roster = self.roster(core);
        if let Some(r) = self.roster.emitted(now, roster) {
            core.event(Event::Roster(r));
        }
    }

    fn turned(&mut self, core: &Core, now: u64) {
        self.roster.turned(now, core.timing().lag_ms);
    }

    // ---- inputs ------------------------------------------------------------------------------

    pub fn on_link(&mut self, core: &mut Core, now: u64, peer: &DeviceId, signal: LinkSignal) {
        if self.members.contains_key(peer) {
            self.roster.mark();
        }
        match signal {
            LinkSignal::Up => {
                // A device that is not a member, or a member back after losing its link, must
                // join (its `JOIN_REQUEST` comes the moment its channel opens); until it does,
                // this is only a link. A member's link that recovers, or that the same device
                // replaced while up, stays joined.
                let joined = self.members.get(peer).is_some_and(|m| m.lost_at.is_none());
                if !joined {
                    self.unjoined.entry(peer.clone()).or_insert(now);
                }
                core.set_link(now, peer, LinkState::Connected);
                self.set_lost(peer, None);
                let hello = core.hello(Mode::ChoirMaster);
                core.send(now, &self.session_id(), peer, hello);
            }
            LinkSignal::Degraded => {
                if core.link(peer).is_up() {
                    core.set_link(now, peer, LinkState::Degraded);
                }
            }
            LinkSignal::Down => {
                self.unjoined.remove(peer);
                if self.members.contains_key(peer) {
                    // A member that drops is expected back (docs/behaviour.md §12.3): keep its
                    // place.
                    self.set_lost(peer, Some(now));
                    core.set_link(now, peer, LinkState::Reconnecting);
                } else {
                    core.forget_link(peer);
                    self.roster.forget(peer);
                }
            }
        }
    }

    pub fn on_timeout(&mut self, core: &mut Core, now: u64) {
        let forget = core.timing().member_forget_ms;
        let gone: Vec<DeviceId> = self
            .members
            .iter()
            .filter(|(_, m)| m.lost_at.is_some_and(|t| now >= t.saturating_add(forget)))
            .map(|(d, _)| d.clone())
            .collect();
        for d in gone {
            self.remove_member(&d);
            core.forget_link(&d);
            self.roster.forget(&d);
        }
        let deadline = core.timing().join_deadline_ms;
        let silent: Vec<DeviceId> = self
            .unjoined
            .iter()
            .filter(|&(_, &since)| now >= since.saturating_add(deadline))
            .map(|(d, _)| d.clone())
            .collect();
        for d in silent {
            self.unjoined.remove(&d);
            self.close_unjoined(core, now, &d);
        }
    }

    /// Closes the link of `d`, which is up but not a member's (it never joined, or was
    /// refused): whatever it was, the Master forgets it.
    fn close_unjoined(&mut self, core: &mut Core, now: u64, d: &DeviceId) {
        if self.members.contains_key(d) {
            // A member whose new link never joined: its place stays, as after a drop-out.
            self.set_lost(d, Some(now));
            core.set_link(now, d, LinkState::Reconnecting);
        } else {
            core.forget_link(d);
            self.roster.forget(d);
        }
        core.request(TransportRequest::Disconnect { peer: d.clone() });
    }

    /// A `JOIN_REQUEST` in the wrong protocol version is answered so the Follower can tell its
    /// user (docs/protocol.md §2).
    pub fn on_decode_error(
        &mut self,
        core: &mut Core,
        now: u64,
        from: &DeviceId,
        err: &DecodeError,
    ) {
        if let DecodeError::UnsupportedVersion { message_type: Some(t), session_id, .. } = err
            && t == "JOIN_REQUEST"
            && core.link(from).is_up()
        {
            let sid = SessionId(session_id.clone().unwrap_or_default());
            let reject = Message::JoinReject(JoinReject { reason: RejectReason::VersionMismatch });
            core.send(now, &sid, from, reject);
        }
    }

    pub fn on_message(&mut self, core: &mut Core, now: u64, from: &DeviceId, env: Envelope) {
        if !core.link(from).is_up() {
            return;
        }
        match env.message {
            Message::JoinRequest(req) => {
                let verdict = match &self.session {
                    Some(s) if env.session_id == s.id && req.session_token == s.token => Ok(()),
                    _ if self.ended.as_ref() == Some(&env.session_id) => {
                        Err(RejectReason::SessionEnded)
                    }
                    _ => Err(RejectReason::InvalidToken),
                };
                match verdict {
                    Ok(()) => {
                        // The Follower's `song_epoch` is what it last saw; it never moves the
                        // Master (a token holder could otherwise move the whole choir). A
                        // Master that lost its position resumes at an epoch from its clock
                        // instead (`Engine::resume_master`).
                        self.add_member(from, req.follow_mode);
                        self.unjoined.remove(from);
                        let accept = Message::JoinAccept(JoinAccept { snapshot: self.snapshot() });
                        core.send(now, &self.session_id(), from, accept);
                        // A (re)joining Follower that lacks the song fetches it (a rejoin
                        // resumes where its stream stopped).
                        if let Some(prepare) = self.prepare() {
                            core.send(now, &self.session_id(), from, prepare);
                        }
                        // And the next piece, fetched once the current one is there.
                        if let Some(prepare) = self.prepare_next() {
                            core.send(now, &self.session_id(), from, prepare);
                        }
                    }
                    Err(reason) => {
                        self.remove_member(from);
                        let reject = Message::JoinReject(JoinReject { reason });
                        core.send(now, &env.session_id, from, reject);
                    }
                }
            }
            Message::SetFollowMode(m) => {
                if !self.is_member_message(from, &env.session_id) {
                    return;
                }
                if let Some(member) = self.members.get_mut(from)
                    && member.follow_mode != m.mode
                {
                    member.follow_mode = m.mode;
                    self.roster.mark();
                }
                if m.mode == FollowMode::Follow {
                    // The Follower switched back to follow: bring it to the current page.
                    let snap = Message::ChoirSnapshot(self.snapshot());
                    core.send(now, &self.session_id(), from, snap);
                }
            }
            Message::LeaveSession => {
                if !self.is_member_message(from, &env.session_id) {
                    return;
                }
                self.remove_member(from);
                core.set_link(now, from, LinkState::Ended);
                core.request(TransportRequest::Disconnect { peer: from.clone() });
            }
            Message::Showing(showing) => {
                if !self.is_member_message(from, &env.session_id) {
                    return;
                }
                let view = View { song_id: showing.song_id, page_index: showing.page_index };
                let shown = Some((showing.song_epoch, view));
                if let Some(member) = self.members.get_mut(from)
                    && env.ts >= member.shows_ts
                {
                    member.shows_ts = env.ts;
                    if member.shows != shown {
                        member.shows = shown;
                        self.roster.mark();
                    }
                }
            }
            Message::Hello(hello) => {
                let name = maestral_protocol::shown_name(&hello.device_name)
                    .unwrap_or_else(|| from.to_string());
                if self.roster.set_name(from, name) && self.members.contains_key(from) {
                    self.roster.mark();
                }
                core.event(Event::PeerHello { peer: from.clone(), hello });
            }
            // Authority (docs/behaviour.md §11.5): a Master ignores SET_SONG, SET_PAGE,
            // STATE_SNAPSHOT and SESSION_END from Followers, and everything else it does not
            // expect.
            _ => {}
        }
    }

    fn is_member_message(&self, from: &DeviceId, session_id: &SessionId) -> bool {
        self.members.contains_key(from)
            && self.session.as_ref().is_some_and(|s| s.id == *session_id)
    }

    pub fn on_local(
        &mut self,
        core: &mut Core,
        now: u64,
        action: LocalAction,
    ) -> Result<(), ActionError> {
        match action {
            LocalAction::SetSong { song_id } => {
                // Every song change is a new epoch, even to the song already shown (§11.3).
                self.song_epoch =
                    self.song_epoch.next().ok_or(ActionError::CounterSpent("song epoch"))?;
                self.song_id = song_id.clone();
                self.page_index = 0;
                self.page_revision = PageRevision(0);
                self.turned(core, now);
                if self.stream.as_ref().map(|o| &o.song_id) != song_id.as_ref() {
                    // The next piece, offered ahead, is the current one now: Followers that
                    // are still fetching it go on.
                    self.stream = None;
                    if self.next.as_ref().map(|o| &o.song_id) == song_id.as_ref() {
                        self.stream = self.next.take();
                    }
                }
                let msg =
                    Message::ChoirSetSong(ChoirSetSong { song_id, song_epoch: self.song_epoch });
                core.broadcast_up(now, &self.session_id(), self.members.keys(), msg);
                // The same song again (a new epoch): still streamable.
                self.offer_stream(core, now);
            }
            LocalAction::OfferStream { song_id, size_bytes, title } => {
                let offered = Some(Offered { song_id, size_bytes, title });
                // Offered already (the next piece, promoted by the song change): once is enough.
                if self.song_id == offered.as_ref().map(|o| o.song_id.clone())
                    && self.stream != offered
                {
                    self.stream = offered;
                    self.offer_stream(core, now);
                }
            }
            LocalAction::OfferNext { next } => {
                let next = next.filter(|o| self.song_id.as_ref() != Some(&o.song_id));
                if next != self.next {
                    self.next = next;
                    self.offer_next(core, now);
                }
            }
            LocalAction::SetPage { page } => self.set_page(core, now, page)?,
            LocalAction::NextPage => self.set_page(core, now, self.page_index.saturating_add(1))?,
            LocalAction::PrevPage => self.set_page(core, now, self.page_index.saturating_sub(1))?,
            LocalAction::StartSession { session_id, token } => {
                if self.session.is_some() {
                    return Err(ActionError::SessionActive);
                }
                if token.as_ref().is_some_and(SessionToken::is_empty) {
                    return Err(ActionError::EmptyToken);
                }
                let id = session_id.unwrap_or_else(|| core.new_session_id());
                let token = token.unwrap_or_else(|| core.new_token());
                self.ended = None;
                self.clear_members();
                self.turned(core, now);
                self.session = Some(Session { id: id.clone(), token: token.clone() });
                core.event(Event::SessionStarted { session_id: id, token });
            }
            LocalAction::EndSession => {
                let Some(session) = self.session.take() else {
                    return Err(ActionError::NoSession);
                };
                let to: Vec<DeviceId> =
                    self.members.keys().filter(|d| core.link(d).is_up()).cloned().collect();
                core.broadcast(now, &session.id, &to, Message::SessionEnd);
                if !self.members.is_empty() {
                    self.roster.mark();
                }
                self.away = 0;
                for d in std::mem::take(&mut self.members).into_keys() {
                    self.unjoined.remove(&d);
                    core.set_link(now, &d, LinkState::Ended);
                    core.request(TransportRequest::Disconnect { peer: d });
                }
                // Links that never joined go too: nothing of the session is served after its
                // end.
                for d in std::mem::take(&mut self.unjoined).into_keys() {
                    core.forget_link(&d);
                    self.roster.forget(&d);
                    core.request(TransportRequest::Disconnect { peer: d });
                }
                // The token dies with the session (§13): it is dropped here and only the id is
                // kept, to answer `session_ended`.
                self.ended = Some(session.id);
                core.event(Event::SessionEnded);
            }
            other => return Err(ActionError::NotForRole { action: other.kind(), role: "master" }),
        }
        Ok(())
    }

    fn set_page(&mut self, core: &mut Core, now: u64, page: u32) -> Result<(), ActionError> {
        if page == self.page_index {
            return Ok(());
        }
        self.page_revision =
            self.page_revision.next().ok_or(ActionError::CounterSpent("page revision"))?;
        self.page_index = page;
        self.turned(core, now);
        let msg = Message::ChoirSetPage(ChoirSetPage {
            song_epoch: self.song_epoch,
            page_revision: self.page_revision,
            page_index: page,
        });
        core.broadcast_up(now, &self.session_id(), self.members.keys(), msg);
        Ok(())
    }
}
