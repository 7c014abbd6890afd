//! Where the performer is: the shown song and page ([`Position`]), and page turns.
//!
//! A turn from any source (key, pedal, tap, swipe, a headless command) changes [`Position`]
//! in the frame it arrives (never waiting for the network) and tells the sync thread. The sync
//! thread's own `Show` events come back later; those that merely confirm a local turn are
//! recognised, so a burst of turns never jumps back to an intermediate page.

use std::collections::VecDeque;

use bevy::prelude::*;
use maestral_protocol::Parity;
use maestral_sync::{LocalAction, Phase, View};

use crate::model::{
    FollowedRemote, LastTurn, LayoutMode, LinkStatus, NavigationSystems, PageTurnRequested,
    Position, RemoteShow, SongChangeRequested, SongLibrary, ThisParity, Turn,
};
use crate::sync::SyncBridge;

pub fn plugin(app: &mut App) {
    app.init_resource::<PendingViews>().add_systems(
        Update,
        (apply_song_changes, apply_turns, apply_remote_views)
            .chain()
            .in_set(NavigationSystems::Apply),
    );
}

/// Views this device set locally that the sync thread has not echoed yet, oldest first.
#[derive(Resource, Debug, Default)]
pub struct PendingViews(VecDeque<View>);

/// More local views than this unconfirmed means the engine is not echoing: start afresh.
const MAX_PENDING: usize = 32;

impl PendingViews {
    fn push(&mut self, view: View) {
        if self.0.len() >= MAX_PENDING {
            self.0.pop_front();
        }
        self.0.push_back(view);
    }

    /// True if `view` is the echo of a local change (dropping it and anything older).
    fn confirm(&mut self, view: &View) -> bool {
        match self.0.iter().position(|v| v == view) {
            Some(i) => {
                self.0.drain(..=i);
                true
            }
            None => {
                self.0.clear();
                false
            }
        }
    }
}

/// How far one turn moves: a spread (two pages) when two pages are on show at once here or
/// across a Solo pair, else one page.
pub fn turn_step(layout: LayoutMode, phase: Option<Phase>) -> u32 {
    let paired = matches!(
        phase,
        Some(
            Phase::SoloPairedConnected | Phase::SoloPairedDegraded | Phase::SoloPairedReconnecting
        )
    );
    if paired || layout.shows_spread() { 2 } else { 1 }
}

/// The page a turn leads to from `page`, or `None` if it goes nowhere (already there, or past
/// the end). With a step of 2 the page keeps its place in the spread (a Solo device shows its
/// half; a two-page layout keeps the spread's first page).
pub fn turned_page(page: u32, turn: Turn, step: u32, count: Option<u32>) -> Option<u32> {
    let half = if step == 2 { page % 2 } else { 0 };
    let spread = page - half;
    // The first page of the last spread (or the last page), when the count is known.
    let last_start = count.map(|c| c.saturating_sub(1) / step * step);
    let target_start = match turn {
        Turn::Next => {
            let next = spread.checked_add(step)?;
            if last_start.is_some_and(|last| next > last) {
                return None;
            }
            next
        }
        Turn::Prev => spread.checked_sub(step)?,
        Turn::First => 0,
        Turn::Last => last_start?,
        Turn::To(p) => {
            let p = count.map_or(p, |c| p.min(c.saturating_sub(1)));
            p / step * step
        }
    };
    let target = target_start + half;
    (target != page).then_some(target)
}

fn apply_turns(
    mut turns: MessageReader<PageTurnRequested>,
    mut position: ResMut<Position>,
    mut pending: ResMut<PendingViews>,
    mut last_turn: ResMut<LastTurn>,
    layout: Res<LayoutMode>,
    link: Res<LinkStatus>,
    library: Res<SongLibrary>,
    bridge: Option<Res<SyncBridge>>,
    time: Res<Time<Real>>,
    frame: Res<bevy::diagnostic::FrameCount>,
) {
    for PageTurnRequested(turn) in turns.read() {
        let count = library.page_count(position.song.as_ref());
        let step = turn_step(*layout, link.phase);
        let Some(page) = turned_page(position.page, *turn, step, count) else {
            continue;
        };
        position.page = page;
        last_turn.at = Some((time.elapsed(), frame.0));
        pending.push(position.view());
        if let Some(bridge) = &bridge {
            bridge.local(LocalAction::SetPage { page });
        }
    }
}

fn apply_song_changes(
    mut changes: MessageReader<SongChangeRequested>,
    mut position: ResMut<Position>,
    mut pending: ResMut<PendingViews>,
    mut last_turn: ResMut<LastTurn>,
    link: Res<LinkStatus>,
    parity: Res<ThisParity>,
    bridge: Option<Res<SyncBridge>>,
    time: Res<Time<Real>>,
    frame: Res<bevy::diagnostic::FrameCount>,
) {
    for SongChangeRequested(song) in changes.read() {
        last_turn.at = Some((time.elapsed(), frame.0));
        // Every song change counts, even to the song already shown (a Master's epoch moves on).
        // A paired Solo device starts on its half of the first spread.
        let paired = turn_step(LayoutMode::Single, link.phase) == 2;
        let page = u32::from(paired && parity.0 == Some(Parity::Even));
        *position = Position { song: song.clone(), page };
        pending.push(position.view());
        if let Some(bridge) = &bridge {
            bridge.local(LocalAction::SetSong { song_id: song.clone() });
        }
    }
}

fn apply_remote_views(
    mut shows: MessageReader<RemoteShow>,
    mut position: ResMut<Position>,
    mut pending: ResMut<PendingViews>,
    mut followed: MessageWriter<FollowedRemote>,
    library: Res<SongLibrary>,
) {
    for RemoteShow(view) in shows.read() {
        if pending.confirm(view) {
            continue;
        }
        // A peer's page past this score's end shows its last page (a song this device does not
        // have keeps the page as given: its length is unknown here).
        let count = library.page_count(view.song_id.as_ref());
        let page = count.map_or(view.page_index, |c| view.page_index.min(c.saturating_sub(1)));
        let next = Position { song: view.song_id.clone(), page };
        if *position != next {
            *position = next.clone();
            followed.write(FollowedRemote(next));
        }
    }
}
