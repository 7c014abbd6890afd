//! The sync thread's clocks: a monotonic one for the engine's timers, the wall clock only for
//! the `ts` stamps (an NTP step must not delay a rejoin by an hour).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic milliseconds for the engine's `now`: the wall time at start plus the time elapsed
/// on [`Instant`] since, so values look like Unix ms but never jump. The engine stamps messages
/// at `now + wall_offset()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    base_ms: u64,
    wall: fn() -> u64,
}

impl Clock {
    /// A clock starting now, at the current wall time.
    pub(crate) fn new() -> Clock {
        Clock::starting(Instant::now(), wall_ms)
    }

    /// A clock whose monotonic time at `start` is `wall()` then.
    pub(crate) fn starting(start: Instant, wall: fn() -> u64) -> Clock {
        Clock { start, base_ms: wall(), wall }
    }

    /// The engine's `now`: monotonic ms.
    pub(crate) fn now(&self) -> u64 {
        self.at(Instant::now())
    }

    /// The monotonic ms at `instant`.
    pub(crate) fn at(&self, instant: Instant) -> u64 {
        self.base_ms + instant.saturating_duration_since(self.start).as_millis() as u64
    }

    /// The instant of the monotonic ms `t` (never before the clock started).
    pub(crate) fn instant(&self, t: u64) -> Instant {
        self.start + Duration::from_millis(t.saturating_sub(self.base_ms))
    }

    /// How far the wall clock is ahead of [`now`](Self::now) at `now`: the engine's wall offset.
    pub(crate) fn wall_offset(&self, now: u64) -> i64 {
        (self.wall)() as i64 - now as i64
    }

    /// The wall clock, Unix ms.
    pub(crate) fn wall(&self) -> u64 {
        (self.wall)()
    }
}

/// The system's wall clock, Unix ms.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    static WALL: AtomicU64 = AtomicU64::new(1_800_000_000_000);

    fn fake_wall() -> u64 {
        WALL.load(Ordering::SeqCst)
    }

    #[test]
    fn a_wall_clock_step_moves_the_stamps_not_the_timers() {
        let start = Instant::now();
        let clock = Clock::starting(start, fake_wall);
        let before = clock.at(start + Duration::from_millis(250));
        assert_eq!(before, 1_800_000_000_250);
        // A timer due in 1 s fires 1 s of monotonic time later, whatever the wall clock does.
        let deadline = clock.instant(before + 1000);
        assert_eq!(deadline, start + Duration::from_millis(1250));
        // NTP steps the wall clock back an hour: the monotonic time and the deadline stay put,
        // only the offset that stamps `ts` follows the wall clock.
        WALL.fetch_sub(3_600_000, Ordering::SeqCst);
        assert_eq!(clock.at(start + Duration::from_millis(250)), before);
        assert_eq!(clock.instant(before + 1000), deadline);
        assert_eq!(clock.wall_offset(before), fake_wall() as i64 - before as i64);
        assert!(clock.wall_offset(before) < -3_000_000);
    }

    #[test]
    fn the_real_clock_never_goes_back() {
        let clock = Clock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a && a >= 1_600_000_000_000);
        assert!(clock.wall_offset(a).abs() < 60_000);
    }
}
