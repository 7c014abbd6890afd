//! The sync thread: tokio runtimes on their own OS threads that owns the engine, the peer
//! connections and the listeners, bridged to the app by crossbeam channels.
//!
//! The engine is sans-IO; this is its I/O. Each input (a command from the app, a link event, a
//! join request, a timer) is fed to the engine, then its outputs are carried out: messages go
//! to each peer's send queue, events go to the app (and wake it), transport requests open or
//! close links. Nothing here blocks the app: the app only ever does a non-blocking channel send
//! or receive.
//!
//! - [`handle`]: the app's end (config, commands, events, start and stop);
//! - `worker`: the loop that feeds the engine and carries out its outputs (`internal`: what
//!   its tasks report back);
//! - `link`: the open links, their writers and events;
//! - `master`, `follower`, `solo`: what one role does (`RoleIo`);
//! - [`locate`]: finding a Master whose address changed (a UDP query and its proved answer);
//! - `store`: what each role keeps in the state directory, and its writer thread;
//! - `runtime`: the control runtime (the worker, the side path) and the bulk one (the rest);
//! - `clock`: monotonic time for timers, wall time for stamps;
//! - [`error`]: what goes wrong, in words for the user.

mod callback;
mod clock;
pub mod error;
mod follower;
pub mod handle;
mod internal;
mod link;
pub mod locate;
mod master;
pub mod pages;
mod runtime;
mod solo;
mod store;
pub mod stream;
mod worker;

pub use callback::callback_proof;
pub use error::{JoinFailure, StartError, SyncError};
#[cfg(feature = "test-support")]
pub use handle::Fault;
pub use handle::{SyncCommand, SyncConfig, SyncEvent, SyncHandle};
pub use master::{
    FLOOD_COOL_DOWN, MAX_BOUND, MAX_MEMBERS, MAX_MEMBERS_PER_ADDRESS, MAX_PENDING_ANSWERS,
};
pub use pages::{PageImages, PageRenderer};
pub use runtime::short_slice;
pub use store::{Stored, stored};
