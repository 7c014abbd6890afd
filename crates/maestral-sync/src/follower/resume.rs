//! What a Follower keeps of its session across a restart of the app, and taking it back.

use maestral_protocol::{
    DeviceId, FollowMode, PageRevision, SessionId, SessionToken, SongEpoch, SongId,
};
use serde::{Deserialize, Serialize};

use super::{Follower, Membership};
use crate::core::{Core, Retry};
use crate::types::{LinkState, TransportRequest};

/// What a Follower keeps of its session across a restart of the app (in its state directory):
/// the Master, the session and its token, the follow mode, and the Master position and the page
/// shown, so a restarted Follower shows its page at once and rejoins by itself (docs/behaviour.md
/// §6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerResume {
    pub master: DeviceId,
    pub session_id: SessionId,
    pub token: SessionToken,
    pub follow_mode: FollowMode,
    pub song_epoch: SongEpoch,
    pub page_revision: PageRevision,
    pub master_song: Option<SongId>,
    pub master_page: u32,
    pub shown_song: Option<SongId>,
    pub shown_page: u32,
}

impl Follower {
    /// What to keep across a restart: a session accepted at least once, with its Master known
    /// (a first join not yet accepted is not kept: its code may be wrong).
    pub fn resume_record(&self) -> Option<FollowerResume> {
        let s = self.session.as_ref().filter(|s| s.ever_joined)?;
        Some(FollowerResume {
            master: s.master.clone()?,
            session_id: s.id.clone(),
            token: s.token.clone(),
            follow_mode: self.follow_mode,
            song_epoch: self.song_epoch,
            page_revision: self.page_revision,
            master_song: self.master_song.clone(),
            master_page: self.master_page,
            shown_song: self.shown_song.clone(),
            shown_page: self.shown_page,
        })
    }

    /// A restarted Follower takes back its kept session: it shows the page it showed, and
    /// rejoins its Master on the usual backoff (the first attempt at once), as after a drop-out.
    pub fn resume(&mut self, core: &mut Core, now: u64, saved: &FollowerResume) {
        if saved.token.is_empty() {
            return;
        }
        if let Some(old) = self.session.take() {
            self.leave(core, now, old);
        }
        self.follow_mode = saved.follow_mode;
        self.song_epoch = saved.song_epoch;
        self.page_revision = saved.page_revision;
        self.master_song = saved.master_song.clone();
        self.master_page = saved.master_page;
        self.have_master = true;
        self.pending = None;
        self.session_id_seen = Some(saved.session_id.clone());
        self.shown_song = saved.shown_song.clone();
        self.shown_page = saved.shown_page;
        let retry = Retry::running(now, core);
        self.session = Some(Membership {
            master: Some(saved.master.clone()),
            id: saved.session_id.clone(),
            token: saved.token.clone(),
            joined: false,
            ever_joined: true,
            retry: Some(retry),
            requested_mode: self.follow_mode,
            refused_since: None,
        });
        core.set_link(now, &saved.master, LinkState::Reconnecting);
        core.request(TransportRequest::Connect { peer: saved.master.clone() });
    }
}
