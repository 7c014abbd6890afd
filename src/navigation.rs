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
            (
                apply_song_changes,
                apply_pieces,
                apply_turns,
                apply_remote_views,
                end_stale_half_turn,
            )
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

    /// The piece of the set list in use that way, shown (from its last page going back);
    /// or why not.
    fn piece(
        &mut self,
        sets: &SetLists,
        reached: &mut Reached,
        step: PieceRequested,
    ) -> Result<(), PieceRefused> {
        if self.bridge.as_ref().is_some_and(|b| b.role() == Role::Follower) {
            return Err(PieceRefused::Follower);
        }
        // The piece reached earlier this frame, if any: the mark follows only after navigation.
        let Some((at, song)) = sets.neighbour(reached.0.or(sets.current), step) else {
            return Err(match sets.in_use() {
                None => PieceRefused::NoList,
                Some(_) => PieceRefused::NoneThere(step),
            });
        };
        if self.library.get(&song).is_none() {
            return Err(PieceRefused::NotHere(at));
        }
        self.song(Some(song), step == PieceRequested::Prev);
        reached.0 = Some(at);
        Ok(())
    }
}

/// Why a piece of the set list is not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceRefused {
    /// A Follower follows its Master's program.
    Follower,
    NoList,
    /// No piece that way (the end or the start of the list, or no such place).
    NoneThere(PieceRequested),
    /// The piece at this place: this device does not hold its score (a Master would move its
    /// choir to a score it cannot send).
    NotHere(usize),
}

impl PieceRefused {
    fn words(self) -> String {
        match self {
            PieceRefused::Follower => {
                "a singer follows the conductor's program: the Master moves on to the next piece"
                    .into()
            }
            PieceRefused::NoList => {
                "no set list is in use: choose one in the panel (or `setlist use NAME`)".into()
            }
            PieceRefused::NoneThere(PieceRequested::Next) => {
                "this is the set list's last piece".into()
            }
            PieceRefused::NoneThere(PieceRequested::Prev) => {
                "this is the set list's first piece".into()
            }
            PieceRefused::NoneThere(PieceRequested::At(_)) => {
                "the set list has no piece there".into()
            }
            PieceRefused::NotHere(at) => format!(
                "piece {} of the set list is not on this device: open its score first",
                at + 1
            ),
        }
    }
}

fn apply_turns(
    mut turns: MessageReader<PageTurnRequested>,
    mut nav: Navigate,
    sets: Res<SetLists>,
    mut reached: ResMut<Reached>,
    mut half: ResMut<HalfTurn>,
    mut errors: MessageWriter<AppError>,
) {
    for PageTurnRequested(turn) in turns.read() {
        let count = nav.library.page_count(nav.position.song.as_ref());
        let pager = nav.pager();
        // Half-page turns: the first "next" shows the next page's top half over this page's
        // bottom half, the position not moved; the second completes the turn; "previous"
        // takes the half back. Only on one page at a time (not a Solo pair's halves).
        let halfway = half.next(&nav.position);
        // Any turn ends a half under way (completing it, taking it back or going elsewhere).
        half.0 = None;
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
            if count.is_some()
                && reached.0.or(sets.current).is_some()
                && let Err(why @ PieceRefused::NotHere(_)) = nav.piece(&sets, &mut reached, step)
            {
                // Only a piece that cannot be shown is worth a word; the end of the
                // program is just the end.
                errors.write(AppError(why.words()));
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

/// A half-page turn holds only while nothing else moved: the position it began at, the
/// half-turn layout, one page at a time (a Solo pair back together turns by spreads). Anything
/// else ends it, so it never comes back when the position does.
fn end_stale_half_turn(
    mut half: ResMut<HalfTurn>,
    position: Res<Position>,
    layout: Res<LayoutMode>,
    engine: Res<EnginePager>,
) {
    let Some((at, _)) = &half.0 else { return };
    if *at != *position || *layout != LayoutMode::HalfTurns || pager(*layout, *engine).step() != 1 {
        half.0 = None;
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
        if let Err(why) = nav.piece(&sets, &mut reached, *step) {
            errors.write(AppError(why.words()));
        }
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
