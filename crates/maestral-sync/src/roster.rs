//! The Master's roster: what each joined Follower shows, whether it lags, and the pacing of
//! `Event::Roster` (docs/headless.md `roster`: on every change, at most 4 a second).

use std::collections::HashMap;

use maestral_protocol::{DeviceId, FollowMode};
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::types::{LinkState, View};

/// One joined Follower, as the Master sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    pub device_id: DeviceId,
    /// The `device_name` of its `HELLO`, else its device id.
    pub name: String,
    /// Its link (`RECONNECTING` while it is away and expected back).
    pub link: LinkState,
    /// The follow mode it published (`JOIN_REQUEST`, `SET_FOLLOW_MODE`).
    pub follow_mode: FollowMode,
    /// What its latest `SHOWING` says it shows (none before the first).
    pub shows: Option<View>,
    /// In follow mode, link up, not on the Master's song epoch and page `Timing::lag_ms` after
    /// the Master's last page or song change.
    pub lagging: bool,
}

/// Every joined Follower, sorted by device id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roster {
    pub members: Vec<RosterMember>,
}

/// Counts for a one-line display ("12 on p. 7, 2 free, 1 lagging, 1 away").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RosterSummary {
    pub members: usize,
    /// Link up and showing the Master's song and page (follow or free).
    pub on_page: usize,
    /// In free mode.
    pub free: usize,
    pub lagging: usize,
    /// Link not up (reconnecting).
    pub away: usize,
}

impl Roster {
    /// Counts against `master`, the Master's own view.
    pub fn summary(&self, master: &View) -> RosterSummary {
        let mut s = RosterSummary { members: self.members.len(), ..RosterSummary::default() };
        for m in &self.members {
            let up = m.link.is_up();
            s.on_page += usize::from(up && m.shows.as_ref() == Some(master));
            s.free += usize::from(m.follow_mode == FollowMode::Free);
            s.lagging += usize::from(m.lagging);
            s.away += usize::from(!up);
        }
        s
    }
}

/// The docs/headless.md shape: `{"device_id", "name", "link", "follow_mode", "shows": {"song_id",
/// "page_index"}|null, "lagging"}`.
impl Serialize for RosterMember {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Shows<'a> {
            song_id: Option<&'a str>,
            page_index: u32,
        }
        let shows = self.shows.as_ref().map(|v| Shows {
            song_id: v.song_id.as_ref().map(|s| s.as_str()),
            page_index: v.page_index,
        });
        let mut m = s.serialize_struct("RosterMember", 6)?;
        m.serialize_field("device_id", self.device_id.as_str())?;
        m.serialize_field("name", &self.name)?;
        m.serialize_field("link", self.link.as_str())?;
        m.serialize_field("follow_mode", self.follow_mode.as_str())?;
        m.serialize_field("shows", &shows)?;
        m.serialize_field("lagging", &self.lagging)?;
        m.end()
    }
}

/// `{"members": [RosterMember, …]}`.
impl Serialize for Roster {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Roster", 1)?;
        m.serialize_field("members", &self.members)?;
        m.end()
    }
}

/// The Master's bookkeeping for the roster: names heard, when the position last moved, and when
/// the next `Event::Roster` may go out. Inputs only set `dirty` (O(1)); the roster is built, once
/// per emission at most, by the Master (O(members)).
#[derive(Debug, Clone, Default)]
pub(crate) struct RosterBook {
    /// `device_name` from the `HELLO` of every peer whose link is known (members and peers that
    /// have not joined yet: `HELLO` usually comes before `JOIN_REQUEST`).
    names: HashMap<DeviceId, String>,
    /// When the Master's position last changed (page or song, or the session started).
    turned_at: u64,
    /// When `lag_ms` has passed since `turned_at` (the lag timer); none once it fired.
    lag_at: Option<u64>,
    /// `lag_ms` has passed since the last change: members off the page lag.
    lag_active: bool,
    /// Something a roster shows may have changed since the last emission.
    dirty: bool,
    /// When the last `Event::Roster` went out.
    sent_at: Option<u64>,
    /// A change held back by the interval goes out then.
    due: Option<u64>,
    /// The roster last emitted (a change that was undone emits nothing).
    last: Roster,
}

impl RosterBook {
    pub fn name_of(&self, d: &DeviceId) -> String {
        self.names.get(d).cloned().unwrap_or_else(|| d.to_string())
    }

    /// A `HELLO` from `d`; whether its name changed.
    pub fn set_name(&mut self, d: &DeviceId, name: String) -> bool {
        if self.names.get(d) == Some(&name) {
            return false;
        }
        self.names.insert(d.clone(), name);
        true
    }

    /// `d` is gone for good (its link is forgotten).
    pub fn forget(&mut self, d: &DeviceId) {
        self.names.remove(d);
    }

    pub fn mark(&mut self) {
        self.dirty = true;
    }

    /// The Master's position changed at `now`: nobody lags for `lag_ms`.
    pub fn turned(&mut self, now: u64, lag_ms: u64) {
        self.turned_at = now;
        self.lag_at = Some(now.saturating_add(lag_ms));
        if std::mem::take(&mut self.lag_active) {
            self.dirty = true;
        }
    }

    pub fn lag_active(&self) -> bool {
        self.lag_active
    }

    pub fn deadline(&self) -> Option<u64> {
        match (self.lag_at, self.due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the lag timer if due. Then, if a roster may go out at `now`: `true` (build it and
    /// pass it to [`RosterBook::emitted`]). Otherwise it is held until the interval ends.
    pub fn ready(&mut self, now: u64, interval_ms: u64) -> bool {
        if self.lag_at.is_some_and(|t| now >= t) {
            self.lag_at = None;
            self.lag_active = true;
            self.dirty = true;
        }
        if !self.dirty {
            return false;
        }
        if let Some(at) = self.sent_at.map(|t| t.saturating_add(interval_ms))
            && now < at
        {
            self.due = Some(at);
            return false;
        }
        self.dirty = false;
        self.due = None;
        true
    }

    /// The roster built after `ready`: the event to emit, if it differs from the last one.
    pub fn emitted(&mut self, now: u64, roster: Roster) -> Option<Roster> {
        if roster == self.last {
            return None;
        }
        self.sent_at = Some(now);
        self.last = roster.clone();
        Some(roster)
    }
}
