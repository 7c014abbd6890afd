//! The Follower's `SHOWING` reports: what it shows, told to its Master at most once per
//! `Timing::showing_interval_ms`, the last change never lost.

use maestral_protocol::{Showing, SongEpoch};

use crate::types::View;

/// What a Follower shows, as its Master judges it: the song context (epoch) and the view.
pub(crate) type Shown = (SongEpoch, View);

/// Rate limiting of `SHOWING`: a change goes out at once unless one went out less than an
/// interval ago; then it goes out when the interval ends (the latest change only), unless the
/// view is back to what was last reported by then.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShowingReport {
    /// What the Master was last told since the link was accepted (none: nothing yet).
    reported: Option<Shown>,
    /// When the last report went out.
    sent_at: Option<u64>,
    /// A change held back by the rate limit goes out then.
    due: Option<u64>,
}

impl ShowingReport {
    /// Accepted on a new link: the Master's record may be stale, report at once.
    pub fn reset(&mut self) {
        *self = ShowingReport::default();
    }

    /// Not joined, or the link is not up: nothing is held back for later (a rejoin reports
    /// afresh).
    pub fn pause(&mut self) {
        self.due = None;
    }

    /// When a held-back change is due.
    pub fn deadline(&self) -> Option<u64> {
        self.due
    }

    /// The report to send at `now` for what is shown now, if any.
    pub fn update(&mut self, now: u64, interval_ms: u64, current: &Shown) -> Option<Showing> {
        if self.reported.as_ref() == Some(current) {
            // Back to what the Master already has (or unchanged): nothing to send.
            self.due = None;
            return None;
        }
        if let Some(at) = self.sent_at.map(|t| t.saturating_add(interval_ms))
            && now < at
        {
            self.due = Some(at);
            return None;
        }
        self.reported = Some(current.clone());
        self.sent_at = Some(now);
        self.due = None;
        let (song_epoch, view) = current;
        Some(Showing {
            song_id: view.song_id.clone(),
            song_epoch: *song_epoch,
            page_index: view.page_index,
        })
    }
}
