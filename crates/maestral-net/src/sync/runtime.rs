//! The sync thread's two runtimes: a page turn never waits for a CPU that is busy with bulk work.
//!
//! - **control**: a current-thread runtime on the sync thread itself. It polls the worker (the
//!   engine) and reads the side path's datagrams (`rtc/link_side.rs`), and nothing else, so it
//!   is asleep in `epoll` when a copy of a page turn arrives and the kernel runs it at once.
//! - **bulk**: a two-thread runtime for everything else: the WebRTC stacks (DTLS, SCTP, ICE),
//!   each link's writer, score streams, listeners, joins.
//!
//! Before the split, a Follower receiving a score (both threads at full load decrypting it)
//! let a page turn's datagram and then the engine's task wait in the runtime's queue behind the
//! stream's tasks (`cargo xtask bench stream`).
//!
//! The worker is polled on the control thread inside the bulk runtime's context ([`Within`]):
//! what it spawns, binds or times goes to the bulk runtime, except the side path, which asks
//! for the control runtime by name ([`crate::rtc::link::set_side_runtime`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::{Builder, Handle, Runtime};

/// The control runtime (polled by whoever calls `block_on`, the sync thread) and the bulk one.
pub(crate) struct Runtimes {
    pub(crate) control: Runtime,
    pub(crate) bulk: Runtime,
}

impl Runtimes {
    pub(crate) fn new() -> std::io::Result<Runtimes> {
        let control = Builder::new_current_thread().enable_all().build()?;
        let side = control.handle().clone();
        let bulk = Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("maestral-sync-rt")
            // A link built on a bulk thread puts its side path on the control runtime.
            .on_thread_start(move || crate::rtc::link::set_side_runtime(Some(side.clone())))
            .enable_all()
            .build()?;
        Ok(Runtimes { control, bulk })
    }

    /// Runs `worker` to its end on this thread (the control runtime), in the bulk runtime's
    /// context.
    pub(crate) fn run<F: Future>(&self, worker: F) -> F::Output {
        crate::rtc::link::set_side_runtime(Some(self.control.handle().clone()));
        let out = self.control.block_on(Within::new(self.bulk.handle().clone(), worker));
        crate::rtc::link::set_side_runtime(None);
        out
    }
}

/// A future polled in another runtime's context: `tokio::spawn`, sockets and timers inside it
/// belong to `handle`'s runtime, whichever runtime polls it.
pub(crate) struct Within<F> {
    handle: Handle,
    inner: Pin<Box<F>>,
}

impl<F: Future> Within<F> {
    pub(crate) fn new(handle: Handle, inner: F) -> Self {
        Within { handle, inner: Box::pin(inner) }
    }
}

impl<F: Future> Future for Within<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _context = this.handle.enter();
        this.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::Runtimes;

    #[test]
    fn the_worker_runs_on_the_calling_thread_and_spawns_on_the_bulk_runtime() {
        let rt = Runtimes::new().expect("runtimes");
        let here = std::thread::current().id();
        let (polled_on, spawned_on) = rt.run(async {
            let spawned = tokio::spawn(async { std::thread::current().name().map(str::to_owned) });
            (std::thread::current().id(), spawned.await.expect("task"))
        });
        assert_eq!(polled_on, here, "the worker is polled by the thread that runs it");
        assert_eq!(spawned_on.as_deref(), Some("maestral-sync-rt"), "a spawn goes to bulk");
    }
}
