//! The sync thread's two runtimes: a page turn never waits for a CPU that is busy with bulk work.
//!
//! - **control**: one current-thread runtime for the whole process, on a thread of its own
//!   (`maestral-control`). It polls the workers (the engines) and reads the side paths'
//!   datagrams (`rtc/link/side.rs`), and nothing else, so it is asleep in `epoll` when a copy
//!   of a page turn arrives and the kernel runs it at once. One thread for every sync thread of
//!   the process: the app has one (two during a role switch); a benchmark hosting 100
//!   Followers wakes one thread for a turn's 100 datagrams, not 100.
//! - **bulk**: a two-thread runtime per sync thread for everything else: the WebRTC stacks
//!   (DTLS, SCTP, ICE), each link's writer, score streams, listeners, joins. Stopping the sync
//!   thread stops it, and with it every task the role left.
//!
//! Every thread runs at ordinary priority. The control thread only asks for a short time slice
//! ([`short_slice`], an ordinary `SCHED_OTHER` thread's setting that needs no privilege), so
//! that it runs at once when it wakes instead of waiting for a busy thread's slice to end.
//!
//! It parses what any peer sends, so it never runs at real-time priority: a bug that made it
//! spin would then run ahead of the render and UI threads. It did, as `SCHED_FIFO` 10, to meet
//! a benchmark hosting 101 engines in one process on 2 cores; measured in the product's shape
//! instead (`cargo xtask bench stream`: the Master alone in its process, 32 Followers in another,
//! a turn every 100 ms while 20 MB scores stream to them, over 100 turns), a turn's p99 was
//! 17–20 ms at ordinary priority and 5–6 ms real-time, both within the 20 ms goal
//! (docs/architecture.md, "Threads", has the table). Lowering the bulk threads' priority instead (nice 10, and
//! 3) was tried earlier: WebRTC starved whenever normal threads kept the CPU busy (100
//! Followers joining at once on 2 cores: 43 of them not in after 3 minutes).
//!
//! Before the split, a Follower receiving a score (both threads at full load decrypting it)
//! let a page turn's datagram and then the engine's task wait in the runtime's queue behind the
//! stream's tasks (`cargo xtask bench stream`).
//!
//! The worker is polled on the control thread inside its bulk runtime's context ([`Within`]):
//! what it spawns, binds or times goes to the bulk runtime, except the side path, which asks
//! for the control runtime by name ([`crate::rtc::link::set_side_runtime`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::runtime::{Builder, Handle, Runtime};

/// The process's control runtime, started on first use.
fn control() -> std::io::Result<Handle> {
    static CONTROL: Mutex<Option<Handle>> = Mutex::new(None);
    let mut control = CONTROL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = control.as_ref() {
        return Ok(handle.clone());
    }
    let runtime = Builder::new_current_thread().enable_all().build()?;
    let handle = runtime.handle().clone();
    let side = handle.clone();
    std::thread::Builder::new().name("maestral-control".into()).spawn(move || {
        crate::rtc::link::set_side_runtime(Some(side));
        short_slice();
        // For the life of the process: the workers and side paths come and go on it.
        runtime.block_on(std::future::pending::<()>());
    })?;
    *control = Some(handle.clone());
    Ok(handle)
}

/// Asks the kernel for a short time slice for the calling thread (EEVDF, Linux 6.12 and later):
/// a thread that wakes with a shorter slice than the running one preempts it at once, where it
/// would otherwise wait for that thread's slice (3 ms and more) to end. The control thread
/// wakes for a few microseconds per datagram. Where the kernel does not have it, nothing
/// changes (`false`). Public for test and benchmark harnesses whose own threads read what they
/// measure.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn short_slice() -> bool {
    /// `struct sched_attr` of `sched_setattr(2)` (its size says which fields the kernel reads).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    const SLICE_NS: u64 = 100_000;
    // The thread's nice value stays as it is (setting it back to 0 could need privilege).
    // SAFETY: getpriority(2) takes two integers and touches no memory of ours.
    let nice = unsafe { nix::libc::getpriority(nix::libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: 0, // SCHED_OTHER
        flags: 0,
        nice,
        priority: 0,
        runtime: SLICE_NS,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid `struct sched_attr` of the size it states, alive for the call;
    // pid 0 is the calling thread; the kernel only reads it.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_sched_setattr, 0, &attr, 0) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        tracing::debug!("this thread keeps the default time slice: {e}");
    }
    r == 0
}

#[cfg(not(target_os = "linux"))]
pub fn short_slice() -> bool {
    false
}

/// The process's control runtime and one sync thread's bulk runtime.
pub(crate) struct Runtimes {
    control: Handle,
    pub(crate) bulk: Runtime,
}

impl Runtimes {
    pub(crate) fn new() -> std::io::Result<Runtimes> {
        let control = control()?;
        let side = control.clone();
        let bulk = Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("maestral-sync-rt")
            .on_thread_start(move || {
                // A link built on a bulk thread puts its side path on the control runtime.
                crate::rtc::link::set_side_runtime(Some(side.clone()));
            })
            .enable_all()
            .build()?;
        Ok(Runtimes { control, bulk })
    }

    /// Runs `worker` to its end on the control runtime, in the bulk runtime's context; waits
    /// on this thread. `None` if the worker panicked (the panic has been printed).
    pub(crate) fn run<F>(&self, worker: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.control.spawn(Within::new(self.bulk.handle().clone(), worker));
        self.bulk.block_on(task).ok()
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
    use super::{Runtimes, short_slice};

    #[test]
    fn a_thread_asking_for_a_short_slice_gets_it_where_the_kernel_has_them() {
        let (took, sched) = std::thread::spawn(|| {
            (short_slice(), std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default())
        })
        .join()
        .expect("thread");
        let slice = sched.lines().find(|l| l.starts_with("se.slice")).map(|l| l.replace(' ', ""));
        // Custom slices came with Linux 6.12; an older kernel takes the call and ignores it.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut version = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>());
        let (major, minor) = (version.next(), version.next());
        if let (Some(Ok(major)), Some(Ok(minor))) = (major, minor)
            && (major, minor) >= (6, 12)
        {
            assert!(took, "the kernel ({release}) refused the short slice");
            assert_eq!(slice.as_deref(), Some("se.slice:100000"), "{sched}");
        }
    }

    /// The calling thread's scheduling policy, without its flags.
    #[allow(unsafe_code)]
    fn policy() -> i32 {
        // SAFETY: sched_getscheduler(2) takes a pid (0: this thread) and touches no memory.
        unsafe { nix::libc::sched_getscheduler(0) & !nix::libc::SCHED_RESET_ON_FORK }
    }

    #[test]
    fn every_thread_of_the_runtimes_is_an_ordinary_one_even_where_real_time_is_permitted() {
        use nix::libc::SCHED_OTHER;
        let rt = Runtimes::new().expect("runtimes");
        let (control, started) = rt
            .run(async {
                let started = std::thread::spawn(policy).join().expect("a thread it starts");
                (policy(), started)
            })
            .expect("the worker ends");
        assert_eq!(control, SCHED_OTHER, "the control thread parses peers' input: ordinary");
        assert_eq!(started, SCHED_OTHER, "a thread the control thread starts is ordinary");
        let bulk = rt.bulk.block_on(async { tokio::spawn(async { policy() }).await });
        assert_eq!(bulk.expect("bulk task"), SCHED_OTHER, "the bulk threads are ordinary");
    }

    #[test]
    fn workers_run_on_the_control_thread_and_spawn_on_their_bulk_runtime() {
        let rt = Runtimes::new().expect("runtimes");
        let (polled_on, spawned_on) = rt
            .run(async {
                let spawned =
                    tokio::spawn(async { std::thread::current().name().map(str::to_owned) });
                (std::thread::current().name().map(str::to_owned), spawned.await.expect("task"))
            })
            .expect("the worker ends");
        assert_eq!(polled_on.as_deref(), Some("maestral-control"), "the worker's thread");
        assert_eq!(spawned_on.as_deref(), Some("maestral-sync-rt"), "a spawn goes to bulk");
        let again = Runtimes::new().expect("a second sync thread's runtimes");
        let thread = |r: &Runtimes| r.run(async { std::thread::current().id() });
        assert_eq!(thread(&again), thread(&rt), "one control thread per process");
        assert_eq!(again.run(async { panic!("a worker's bug") }), None, "a panic is caught");
        assert_eq!(again.run(async { 7 }), Some(7), "the control thread survives a panic");
    }
}
