//! Maestral's sync thread: the sans-IO engine of `maestral-sync` driven by real WebRTC
//! DataChannels on a tokio runtime in a background thread, the Choir signaling listener, join
//! codes, Solo pairing codes and their QR images. The app talks to it only through channels.

pub mod addr;
pub mod joincode;
pub mod pairing;
pub mod qr;
pub mod rtc;
mod sig;
pub mod signaling;
pub mod state;
pub mod sync;

pub use addr::lan_ip;
#[cfg(feature = "test-support")]
pub use sync::Fault;
pub use sync::locate::LocateConfig;
pub use sync::{
    PageImages, PageRenderer, StartError, Stored, SyncCommand, SyncConfig, SyncError, SyncEvent,
    SyncHandle, stored,
};
