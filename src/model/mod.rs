//! The app's model: the components, resources and messages that more than one plugin uses, and
//! the `*Systems` sets, ordered once here. Every plugin depends on the model, none on another
//! plugin's registrations: a test adds [`ModelPlugin`] and the plugin under test.
//!
//! - `position`: what is shown ([`Position`]) and the requests that change it.
//! - `library`: the songs this device has and the page textures drawn for them.
//! - `link`: how this device syncs, and the sync thread's news as the app sees it.
//! - `screen`: layout and projector settings, page windows, what was presented.

use bevy::prelude::*;

use crate::wake::Waker;

mod library;
mod link;
mod position;
mod screen;

pub use library::{OpenScore, PageTexture, PageTextures, SongLibrary, TextureKey, WantedPages};
pub use link::{
    Arrived, ClearStreamed, EnginePager, LinkChanged, LinkIndicator, LinkStatus, MasterPosition,
    PhaseChanged, RemoteShow, RosterChanged, RosterState, SessionCodes, StreamChanged,
    StreamProgress, StreamState, SwitchRole, SyncMode, SyncSettings,
};
pub use position::{
    FollowedRemote, HalfTurn, LastTurn, PageTurnRequested, Position, SongChangeRequested, Turn,
};
pub use screen::{
    Gesture, LayoutMode, NumberEntry, PagePart, PageWindow, PagesPresented, PixelRect,
    PresentedPage, Projector, Rotation, UiSize, UiVisible,
};

/// The model. It holds the app's [`Waker`], so an app cannot be built without one: a page
/// turned on another device must wake a sleeping app, never wait for its next idle frame.
#[derive(Debug)]
pub struct ModelPlugin {
    pub waker: Waker,
}

impl Plugin for ModelPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.waker.clone())
            .init_resource::<Position>()
            .init_resource::<LastTurn>()
            .init_resource::<HalfTurn>()
            .init_resource::<SongLibrary>()
            .init_resource::<PageTextures>()
            .init_resource::<WantedPages>()
            .init_resource::<LinkStatus>()
            .init_resource::<SessionCodes>()
            .init_resource::<EnginePager>()
            .init_resource::<MasterPosition>()
            .init_resource::<RosterState>()
            .init_resource::<LayoutMode>()
            .init_resource::<Projector>()
            .init_resource::<UiVisible>()
            .init_resource::<NumberEntry>()
            .add_message::<AppError>()
            .add_message::<OpenScore>()
            .add_message::<JoinCodeRead>()
            .add_message::<PageTurnRequested>()
            .add_message::<SongChangeRequested>()
            .add_message::<FollowedRemote>()
            .add_message::<RemoteShow>()
            .add_message::<PhaseChanged>()
            .add_message::<LinkChanged>()
            .add_message::<StreamChanged>()
            .init_resource::<StreamProgress>()
            .add_message::<ClearStreamed>()
            .add_message::<Arrived>()
            .add_message::<SwitchRole>()
            .add_message::<RosterChanged>()
            .add_message::<Gesture>()
            .add_message::<PagesPresented>()
            // The frame, in order: news from the other threads, then commands, then scores…
            .configure_sets(
                PreUpdate,
                (SyncSystems::Drain, ControlSystems::Commands, ScoreSystems::Receive).chain(),
            )
            // …input becomes turns, turns move the position, the layout follows it…
            .configure_sets(
                Update,
                (
                    NavigationSystems::Input,
                    NavigationSystems::Apply,
                    LayoutSystems::Plan,
                    LayoutSystems::Present,
                )
                    .chain(),
            )
            // …pages are asked for what the layout wants, and the frame is reported.
            .configure_sets(PostUpdate, ScoreSystems::Request)
            .configure_sets(Last, (ControlSystems::Report, ControlSystems::Write).chain());
    }
}

/// Something went wrong that the user should hear about; the app carries on.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct AppError(pub String);

/// The text of a QR code read from a picture (picked or dropped on the window), e.g. a Master's
/// join code `maestral://join?…`; as read, not yet checked.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct JoinCodeRead(pub String);

/// The sync bridge's systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyncSystems {
    /// PreUpdate: the sync thread's events become messages and resources.
    Drain,
}

/// The control interface's systems (line commands in, JSON events out).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum ControlSystems {
    /// PreUpdate, after the sync thread's news and before scores come in: a command is
    /// carried out (a `song PATH` opens its score this frame).
    Commands,
    /// Last: the window extras turn the frame's news into event lines.
    Report,
    /// Last: event lines are written.
    Write,
}

/// The score plugin's systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScoreSystems {
    /// PreUpdate: library scans, opened scores and rendered pages come in.
    Receive,
    /// PostUpdate: pages are requested for what the layout wants, the rest released.
    Request,
}

/// Navigation's systems (in `Update`).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum NavigationSystems {
    /// Input systems write [`PageTurnRequested`] / [`SongChangeRequested`] here.
    Input,
    /// Turns and remote views are applied to [`Position`].
    Apply,
}

/// The layout's systems (in `Update`, after navigation).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum LayoutSystems {
    /// The plan and the wanted pages.
    Plan,
    /// Slots take their new textures, all together or not at all.
    Present,
}
