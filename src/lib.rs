//! Maestral, the app: a Bevy ECS app with one plugin per concern, plus the command line.
//!
//! - [`model`]: what the plugins share (components, resources, messages) and the `*Systems`
//!   sets, ordered once; every plugin depends on it, none on another's registrations.
//! - [`score`]: the library, the render thread bridge, page textures (request, upload, release).
//! - [`layout`]: which page goes where (single, two-up, dual window, projector) and the
//!   flicker-free swap of page textures.
//! - [`navigation`]: page turns and the rules that move the shown [`model::Position`].
//! - [`input`]: keys, pedals, taps, swipes, number entry, fullscreen.
//! - [`sync`]: the bridge to the sync thread (`maestral-net`).
//! - [`ui`]: the egui panels.
//! - [`control`]: line commands in, JSON events out (headless mode, and tests of the window).
//! - [`persistence`]: the state directory and the device id.
//! - [`display`]: windows and cameras (windowed app only); [`no_display`]: what happens
//!   without a display to open them on.
//! - [`open`]: the file picker (the desktop's dialog, or one drawn with egui) and files dropped
//!   on the window: scores open, QR pictures give their join code.
//! - [`app`]: [`app::AppPlugin`], which assembles them.
//!
//! The `test-support` feature adds the hooks tests drive the app through (a sync bridge over
//! plain channels, control lines in and out of memory, a waker that does nothing); the app
//! itself is built without them.

// Bevy systems take what they use as arguments; a system touching many resources is fine.
#![allow(clippy::too_many_arguments, clippy::type_complexity)]

pub mod app;
pub mod cli;
pub mod commands;
pub mod control;
pub mod display;
pub mod input;
pub mod layout;
pub mod model;
pub mod navigation;
pub mod no_display;
pub mod open;
pub mod persistence;
pub mod score;
pub mod setlist;
pub mod settings;
pub mod stream;
pub mod sync;
pub mod ui;
pub mod wake;
pub mod web_pages;

pub use app::{AppOptions, AppPlugin};
