//! What this device shows, and the requests that change it.

use std::time::Duration;

use bevy::prelude::*;
use maestral_protocol::SongId;
pub use maestral_sync::Turn;
use maestral_sync::View;

/// The song and page this device shows now (the engine's view, docs/behaviour.md §9: `song_id`,
/// `page_index`). In a two-page layout, `page` is the spread's first page.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub song: Option<SongId>,
    pub page: u32,
}

impl Position {
    pub fn view(&self) -> View {
        View { song_id: self.song.clone(), page_index: self.page }
    }
}

/// A half-page turn under way (layout [`crate::model::LayoutMode::HalfTurns`]): the top half
/// of page `next` is shown above the bottom half of the page at `at`, the position itself not
/// moved yet (nobody else is told: the second press turns the page, as a whole). It holds only
/// while the position is still `at`: any other move ends it.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct HalfTurn(pub Option<(Position, u32)>);

impl HalfTurn {
    /// The next page, shown in its top half, while the position is still the one it started at.
    pub fn next(&self, position: &Position) -> Option<u32> {
        self.0.as_ref().filter(|(at, _)| at == position).map(|(_, next)| *next)
    }
}

/// A page turn asked for by the performer (or a script).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageTurnRequested(pub Turn);

/// A song change asked for locally: the song (`None`: none) is shown from its first page.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct SongChangeRequested(pub Option<SongId>);

/// The position moved because another device said so (the Master, the Solo partner), not
/// because of a local turn.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct FollowedRemote(pub Position);

/// When the last local turn or song change was applied (for the turn-to-frame latency the
/// window reports).
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct LastTurn {
    /// `Time<Real>` elapsed at the turn, and the frame it happened in.
    pub at: Option<(Duration, u32)>,
}
