//! Where the performer is: the shown song and page ([`Position`]), and page turns.
//!
//! A turn from any source (key, pedal, tap, swipe, a headless command) changes [`Position`]
//! in the frame it arrives, by the engine's own rule ([`Pager`]), never waiting for the network,
//! and goes to the sync thread as a navigation together with what is now shown. The engine
//! applies the same rule and reports only views this device did not make itself (a peer's turn,
//! a correction), each stamped with the navigations it follows: a view chosen before this
//! device's latest turn is stale and dropped, so a burst of turns never jumps back.
//!
//! With a set list in use, a turn past a piece's last page (or back from its first) goes on to
//! the piece beside it, and "next piece" / "previous piece" jump by a piece (`crate::setlist`).

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use maestral_protocol::SongId;
use maestral_sync::{LocalAction, Pager, Role};

use crate::model::{
    AppError, EnginePager, FollowedRemote, HalfTurn, LastTurn, LayoutMode, NavigationSystems,
    PageTurnRequested, Position, RemoteShow, SongChangeRequested, SongLibrary, Turn,
};
use crate::setlist::{PieceRequested, Reached, SetLists};
use crate::sync::SyncBridge;

pub fn plugin(app: &mut App) {
    // The set lists' own plugin edits and keeps them; navigation only reads them.
    app.init_resource::<Reached>()
        .init_resource::<SetLists>()
        .add_message::<PieceRequested>()
        .add_systems(
            Update,
            (apply_song_changes, apply_pieces, apply_turns, apply_remote_views)
                .chain()
                .in_set(NavigationSystems::Apply),
        );
}

/// The pager this device turns with: the engine's (a paired Solo device shows its half of each
/// spread), or both pages of a spread when a two-page layout shows them here.
pub fn pager(layout: LayoutMode, engine: EnginePager) -> Pager {
    if engine.0.step() == 1 && layout.shows_spread() { Pager::SPREAD } else { engine.0 }
}

/// What a local navigation changes: the position, when it happened, and the sync thread.
#[derive(SystemParam)]
struct Navigate<'w> {
    position: ResMut<'w, Position>,
    last_turn: ResMut<'w, LastTurn>,
    layout: Res<'w, LayoutMode>,
    engine: Res<'w, EnginePager>,
    library: Res<'w, SongLibrary>,
    bridge: Option<Res<'w, SyncBridge>>,
    time: Res<'w, Time<Real>>,
    frame: Res<'w, bevy::diagnostic::FrameCount>,
}

impl Navigate<'_> {
    fn pager(&self) -> Pager {
        pager(*self.layout, *self.engine)
    }

    fn turned(&mut self) {
        self.last_turn.at = Some((self.time.elapsed(), self.frame.0));
    }

    /// A song change: `song` from its first page (a paired Solo device: its half of the first
    /// spread), or from its last page with `at_end`.
    fn song(&mut self, song: Option<SongId>, at_end: bool) {
        self.turned();
        let pager = self.pager();
        let first = pager.page(0);
        *self.position = Position { song: song.clone(), page: first };
        if let Some(bridge) = &self.bridge {
            bridge.navigate(LocalAction::SetSong { song_id: song.clone() }, self.position.view());
        }
        let count = self.library.page_count(song.as_ref());
        if at_end && let Some(last) = pager.turn(first, Turn::Last, count) {
            self.position.page = last;
            if let Some(bridge) = &self.bridge {
                bridge.navigate(LocalAction::SetPage { page: last }, self.position.view());
            }
        }
    }

    /// A piece of the set list in use, if there is one that way and this role changes songs
    /// (a Follower follows its Master's program).
    fn piece(&mut self, sets: &SetLists, reached: &mut Reached, step: PieceRequested) -> bool {
        if self.bridge.as_ref().is_some_and(|b| b.role() == Role::Follower) {
            return false;
        }
        let Some((at, song)) = sets.neighbour(step) else { return false };
        self.song(Some(song), step == PieceRequested::Prev);
        reached.0 = Some(at);
        true
    }
}

fn apply_turns(
    mut turns: MessageReader<PageTurnRequested>,
    mut nav: Navigate,
    sets: Res<SetLists>,
    mut reached: ResMut<Reached>,
    mut half: ResMut<HalfTurn>,
) {
    for PageTurnRequested(turn) in turns.read() {
        let count = nav.library.page_count(nav.position.song.as_ref());
        let pager = nav.pager();
        // Half-page turns: the first "next" shows the next page's top half over this page's
        // bottom half, the position not moved; the second completes the turn; "previous"
        // takes the half back. Only on one page at a time (not a Solo pair's halves).
        let halfway = half.next(&nav.position);
        if halfway.is_some() || half.0.is_some() {
            half.0 = None;
        }
        let halves = *nav.layout == LayoutMode::HalfTurns && pager.step() == 1;
        match (turn, halfway) {
            (Turn::Prev, Some(_)) => {
                nav.turned();
                continue;
            }
            (Turn::Next, None) if halves => {
                if let Some(next) = pager.turn(nav.position.page, Turn::Next, count) {
                    half.0 = Some((nav.position.clone(), next));
                    nav.turned();
                    continue;
                }
            }
            _ => {}
        }
        let Some(page) = pager.turn(nav.position.page, *turn, count) else {
            // Past a piece's last page, or back from its first, in a set list: the piece
            // beside it (only where the count is known, so "past the end" is sure).
            let step = match turn {
                Turn::Next => PieceRequested::Next,
                Turn::Prev => PieceRequested::Prev,
                _ => continue,
            };
            if count.is_some() && sets.current.is_some() {
                nav.piece(&sets, &mut reached, step);
            }
            continue;
        };
        nav.position.page = page;
        nav.turned();
        if let Some(bridge) = &nav.bridge {
            bridge.navigate(LocalAction::SetPage { page }, nav.position.view());
        }
    }
}

fn apply_song_changes(mut changes: MessageReader<SongChangeRequested>, mut nav: Navigate) {
    for SongChangeRequested(song) in changes.read() {
        // Every song change counts, even to the song already shown (a Master's epoch moves on).
        nav.song(song.clone(), false);
    }
}

/// "Next piece" / "previous piece": the set list's neighbour, whatever the page.
fn apply_pieces(
    mut pieces: MessageReader<PieceRequested>,
    mut nav: Navigate,
    sets: Res<SetLists>,
    mut reached: ResMut<Reached>,
    mut errors: MessageWriter<AppError>,
) {
    for step in pieces.read() {
        if nav.piece(&sets, &mut reached, *step) {
            continue;
        }
        let why = if nav.bridge.as_ref().is_some_and(|b| b.role() == Role::Follower) {
            "a singer follows the conductor's program: the Master moves on to the next piece"
        } else if sets.in_use().is_none() {
            "no set list is in use: choose one in the panel (or `setlist use NAME`)"
        } else if *step == PieceRequested::Next {
            "this is the set list's last piece"
        } else {
            "this is the set list's first piece"
        };
        errors.write(AppError(why.into()));
    }
}

fn apply_remote_views(
    mut shows: MessageReader<RemoteShow>,
    mut position: ResMut<Position>,
    mut followed: MessageWriter<FollowedRemote>,
    library: Res<SongLibrary>,
    bridge: Option<Res<SyncBridge>>,
) {
    for RemoteShow { view, navigations } in shows.read() {
        // Chosen before this device's latest turn, which is on screen and came after it.
        if bridge.as_ref().is_some_and(|b| *navigations < b.navigations()) {
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
