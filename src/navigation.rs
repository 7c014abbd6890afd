//! Where the performer is: the shown song and page ([`Position`]), and page turns.
//!
//! A turn from any source (key, pedal, tap, swipe, a headless command) changes [`Position`]
//! in the frame it arrives, by the engine's own rule ([`Pager`]), never waiting for the network,
//! and goes to the sync thread as a navigation together with what is now shown. The engine
//! applies the same rule and reports only views this device did not make itself (a peer's turn,
//! a correction), each stamped with the navigations it follows: a view chosen before this
//! device's latest turn is stale and dropped, so a burst of turns never jumps back.

use bevy::prelude::*;
use maestral_sync::{LocalAction, Pager};

use crate::model::{
    EnginePager, FollowedRemote, LastTurn, LayoutMode, NavigationSystems, PageTurnRequested,
    Position, RemoteShow, SongChangeRequested, SongLibrary,
};
use crate::sync::SyncBridge;

pub fn plugin(app: &mut App) {
    app.add_systems(
        Update,
        (apply_song_changes, apply_turns, apply_remote_views)
            .chain()
            .in_set(NavigationSystems::Apply),
    );
}

/// The pager this device turns with: the engine's (a paired Solo device shows its half of each
/// spread), or both pages of a spread when a two-page layout shows them here.
pub fn pager(layout: LayoutMode, engine: EnginePager) -> Pager {
    if engine.0.step() == 1 && layout.shows_spread() { Pager::SPREAD } else { engine.0 }
}

fn apply_turns(
    mut turns: MessageReader<PageTurnRequested>,
    mut position: ResMut<Position>,
    mut last_turn: ResMut<LastTurn>,
    layout: Res<LayoutMode>,
    engine: Res<EnginePager>,
    library: Res<SongLibrary>,
    bridge: Option<Res<SyncBridge>>,
    time: Res<Time<Real>>,
    frame: Res<bevy::diagnostic::FrameCount>,
) {
    for PageTurnRequested(turn) in turns.read() {
        let count = library.page_count(position.song.as_ref());
        let Some(page) = pager(*layout, *engine).turn(position.page, *turn, count) else {
            continue;
        };
        position.page = page;
        last_turn.at = Some((time.elapsed(), frame.0));
        if let Some(bridge) = &bridge {
            bridge.navigate(LocalAction::SetPage { page }, position.view());
        }
    }
}

fn apply_song_changes(
    mut changes: MessageReader<SongChangeRequested>,
    mut position: ResMut<Position>,
    mut last_turn: ResMut<LastTurn>,
    layout: Res<LayoutMode>,
    engine: Res<EnginePager>,
    bridge: Option<Res<SyncBridge>>,
    time: Res<Time<Real>>,
    frame: Res<bevy::diagnostic::FrameCount>,
) {
    for SongChangeRequested(song) in changes.read() {
        last_turn.at = Some((time.elapsed(), frame.0));
        // Every song change counts, even to the song already shown (a Master's epoch moves on).
        // A paired Solo device starts on its half of the first spread.
        let page = pager(*layout, *engine).page(0);
        *position = Position { song: song.clone(), page };
        if let Some(bridge) = &bridge {
            bridge.navigate(LocalAction::SetSong { song_id: song.clone() }, position.view());
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
