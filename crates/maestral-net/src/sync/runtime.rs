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
//! The control thread asks the kernel to run it before every ordinary thread ([`latency_critical`]):
//! real-time scheduling (`SCHED_FIFO`, priority [`CONTROL_RT_PRIORITY`]) where the process may
//! have it (root, `CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` above 0, as audio groups get), else a
//! short time slice ([`short_slice`]), so that it runs at once when it wakes instead of waiting
//! for a busy thread's slice to end. Its work is a few microseconds per message, so it cannot
//! starve the rest; with a short slice alone it only preempted, and then shared the CPU with
//! every runnable bulk thread (in a process hosting 100 Followers, 200 of them). Lowering the
//! bulk threads' priority instead (nice 10, and 3) was tried: pages during a stream came
//! faster, but WebRTC starved whenever normal threads kept the CPU busy (100 Followers joining
//! at once on 2 cores: 43 of them not in after 3 minutes). `MAESTRAL_CONTROL_PRIORITY=normal`
//! keeps the control thread an ordinary one (short slice only), to compare.
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
        let priority = latency_critical();
        tracing::debug!("the control thread runs with {priority:?}");
        // For the life of the process: the workers and side paths come and go on it.
        runtime.block_on(std::future::pending::<()>());
    })?;
    *control = Some(handle.clone());
    Ok(handle)
}

/// The real-time priority of the control thread (1–99): low, below the audio servers (PipeWire
/// and JACK run at 20 and above), so a performer's sound is never preempted by a page turn.
pub const CONTROL_RT_PRIORITY: i32 = 10;

/// How a thread that asked for [`latency_critical`] is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// `SCHED_FIFO` (at [`CONTROL_RT_PRIORITY`], or below it): before every ordinary thread.
    Realtime,
    /// An ordinary thread with a short time slice (see [`short_slice`]).
    ShortSlice,
    /// Neither was granted.
    Ordinary,
}

/// Asks for the calling thread to run before ordinary threads whenever it is runnable: real-time
/// (`SCHED_FIFO` at [`CONTROL_RT_PRIORITY`], reset for any thread or process it starts) where the
/// process may have it and `MAESTRAL_CONTROL_PRIORITY` is not `normal`, else a short time slice.
/// For the control thread, which only wakes for short work.
pub fn latency_critical() -> Priority {
    ask_for(CONTROL_RT_PRIORITY)
}

/// For a harness's thread that stamps what it measures: [`latency_critical`], one real-time
/// priority below the control thread, so that it runs before ordinary threads but never delays
/// the control thread (`SCHED_FIFO` does not preempt a thread of the same priority).
pub fn measuring() -> Priority {
    ask_for(CONTROL_RT_PRIORITY - 1)
}

/// Real-time scheduling at `priority` where wanted and permitted, else a short time slice.
fn ask_for(priority: i32) -> Priority {
    let wanted = std::env::var("MAESTRAL_CONTROL_PRIORITY").map_or(true, |v| v != "normal");
    if wanted && realtime_at(priority) {
        Priority::Realtime
    } else if short_slice() {
        Priority::ShortSlice
    } else {
        Priority::Ordinary
    }
}

/// `SCHED_FIFO` at `priority` for the calling thread, with `SCHED_RESET_ON_FORK` (threads and
/// processes it starts are ordinary). `false` where it is not permitted.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn realtime_at(priority: i32) -> bool {
    use nix::libc;
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: `param` is a valid `struct sched_param`, alive for the call, only read; pid 0 is
    // the calling thread.
    let r = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        tracing::debug!("this thread stays an ordinary one (no real-time priority): {e}");
    }
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn realtime_at(_priority: i32) -> bool {
    false
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
    fn the_control_thread_runs_before_ordinary_threads_where_it_may_and_what_it_starts_does_not() {
        use nix::libc::{SCHED_FIFO, SCHED_OTHER};
        // Whether this process may have real-time scheduling at all (root in CI may).
        let probe = || super::realtime_at(super::CONTROL_RT_PRIORITY);
        let permitted = std::thread::spawn(probe).join().expect("probe thread");
        let rt = Runtimes::new().expect("runtimes");
        let (control, started) = rt
            .run(async {
                let started = std::thread::spawn(policy).join().expect("a thread it starts");
                (policy(), started)
            })
            .expect("the worker ends");
        if permitted && std::env::var("MAESTRAL_CONTROL_PRIORITY").as_deref() != Ok("normal") {
            assert_eq!(control, SCHED_FIFO, "the control thread is real-time");
        } else {
            assert_eq!(control, SCHED_OTHER, "without permission it stays ordinary");
        }
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
