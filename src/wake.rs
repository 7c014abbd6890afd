//! Waking the app from other threads (sync thread, render thread, library scan, standard input),
//! so a reactive app that sleeps while nothing changes still shows news within one frame.

use std::fmt;
use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};

/// Wakes the app's loop: winit's event-loop proxy in the window, a channel in headless mode,
/// nothing in tests (which call `app.update()` themselves). There is no default: the app is
/// built with one ([`crate::model::ModelPlugin`] takes it), so a remote turn never waits for
/// the next idle frame because a plugin forgot to wake the app.
#[derive(Resource, Clone)]
pub struct Waker(Arc<dyn Fn() + Send + Sync>);

impl Waker {
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Waker(Arc::new(wake))
    }

    /// A waker that does nothing, for tests that step the app by hand (`test-support` only:
    /// the app itself always has a real one).
    #[cfg(feature = "test-support")]
    pub fn none() -> Self {
        Waker::new(|| {})
    }

    /// A waker for a loop that sleeps on the returned receiver (headless mode): one pending
    /// wake-up is enough, so the channel holds at most one.
    pub fn channel() -> (Self, Receiver<()>) {
        let (tx, rx): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(1);
        let wake = move || {
            // Full means a wake-up is already pending: nothing more to do.
            let _ = tx.try_send(());
        };
        (Waker::new(wake), rx)
    }

    pub fn wake(&self) {
        (self.0)()
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waker")
    }
}

/// Forwards everything from `from` into a new channel on a small thread, waking the app after
/// each item: for threads that know nothing of the app (the render thread, the library scan).
/// The thread ends when `from` disconnects or the returned receiver is dropped.
pub fn relay<T: Send + 'static>(name: &str, from: Receiver<T>, waker: Waker) -> Receiver<T> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let fallback = from.clone();
    let spawned =
        std::thread::Builder::new().name(format!("maestral-{name}-relay")).spawn(move || {
            for item in from.iter() {
                if tx.send(item).is_err() {
                    break;
                }
                waker.wake();
            }
        });
    match spawned {
        Ok(_) => rx,
        Err(error) => {
            // No thread to spare: the app still polls `from` every frame, only without wake-ups.
            warn!("could not start the {name} relay thread ({error}); updates may lag");
            fallback
        }
    }
}
