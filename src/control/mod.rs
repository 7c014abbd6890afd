//! Line commands in, JSON events out (`docs/headless.md`): headless mode's whole interface, and
//! with `--control` a scripting interface to the window (for its tests and benchmarks).
//!
//! Standard input is read on its own thread into a crossbeam channel, waking the app (`read`);
//! each line is parsed (`parse`) and carried out by a system in `PreUpdate`, one command a
//! frame (`run`); the frame's news becomes event lines in `Last` (`write`). Standard output
//! carries nothing but the event lines; logs go to standard error. [`window`]: the extras of
//! `--control`.

use bevy::prelude::*;

use crate::model::ControlSystems;

mod parse;
mod read;
mod run;
pub mod window;
mod write;

pub use parse::{ControlCommand, ControlEvent, SetListCommand, WindowCommand, parse_command};
pub use read::{ControlInput, ControlLine, read_lines};
pub use run::{PendingLines, WindowControl};
#[cfg(feature = "test-support")]
pub use write::OutputBuffer;
pub use write::{ControlOutput, ControlState};

/// Takes commands from a [`ControlInput`] (inserted by the app or a test) and writes events to
/// the [`ControlOutput`] (standard output unless one is inserted first).
pub fn plugin(app: &mut App) {
    app.init_resource::<ControlState>()
        .init_resource::<ControlOutput>()
        .init_resource::<PendingLines>()
        .add_message::<WindowCommand>()
        // Carried out by the set lists' and navigation's plugins.
        .add_message::<crate::setlist::SetListEdit>()
        .add_message::<crate::setlist::PieceRequested>()
        .add_message::<ControlEvent>()
        .add_systems(
            PreUpdate,
            run::run_commands
                .run_if(resource_exists::<ControlInput>)
                .in_set(ControlSystems::Commands),
        )
        .add_systems(Last, write::write_events.in_set(ControlSystems::Write));
}
