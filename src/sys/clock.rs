//! Monotonic time and absolute deadlines.
//!
//! Deadlines are per process (they are `CLOCK_MONOTONIC` instants): they are never
//! stored in a segment, whose readers may sit in another time namespace.

use core::time::Duration;

/// A point on the `CLOCK_MONOTONIC` clock, as `FUTEX_WAIT_BITSET` wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    /// The clock's epoch: as a deadline, one that has always passed (a wait with it
    /// makes one attempt and reads no clock unless that attempt fails).
    pub const EPOCH: Instant = Instant { nanos: 0 };

    /// The current monotonic time.
    #[inline]
    pub fn now() -> Instant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Instant {
            nanos: (ts.tv_sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.tv_nsec as u64),
        }
    }

    /// The monotonic time to within a clock tick (`CLOCK_MONOTONIC_COARSE`, a few
    /// milliseconds behind at most): a few nanoseconds to read where
    /// [`now`](Instant::now) costs about 20, for checks that run "about once per
    /// probe interval" on a fast path. Compare it only with other coarse instants.
    #[inline]
    pub fn coarse_now() -> Instant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists
        // on Linux since 2.6.32.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        Instant {
            nanos: (ts.tv_sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.tv_nsec as u64),
        }
    }

    /// `self + d`, saturating far in the future.
    #[inline]
    #[allow(clippy::should_implement_trait)] // also implemented as `Add`
    pub fn add(self, d: Duration) -> Instant {
        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant {
            nanos: self.nanos.saturating_add(d),
        }
    }

    /// Time from `self` until `later`, zero if `later` is earlier.
    #[inline]
    pub fn until(self, later: Instant) -> Duration {
        Duration::from_nanos(later.nanos.saturating_sub(self.nanos))
    }

    /// Time elapsed since `self`.
    #[inline]
    pub fn elapsed(self) -> Duration {
        self.until(Instant::now())
    }

    /// Nanoseconds since the clock's (arbitrary) epoch.
    #[inline]
    pub fn as_nanos(self) -> u64 {
        self.nanos
    }

    pub(crate) fn to_timespec(self) -> libc::timespec {
        libc::timespec {
            tv_sec: (self.nanos / 1_000_000_000).min(i64::MAX as u64) as libc::time_t,
            tv_nsec: (self.nanos % 1_000_000_000) as libc::c_long,
        }
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    #[inline]
    fn add(self, d: Duration) -> Instant {
        Instant::add(self, d)
    }
}

/// When a blocking call gives up: `None` waits forever.
pub type Deadline = Option<Instant>;

/// The deadline `timeout` from now (`None` = forever for an absurdly large timeout).
#[inline]
pub fn deadline_after(timeout: Duration) -> Deadline {
    let now = Instant::now();
    let d = now.add(timeout);
    if d.nanos == u64::MAX {
        None
    } else {
        Some(d)
    }
}

/// `std::time::Instant::now() + timeout`, or `None` (no deadline: wait forever) when
/// that does not fit: an absurdly large timeout such as `Duration::MAX` must wait,
/// not panic on overflow.
#[cfg(feature = "std")]
#[inline]
pub fn std_deadline_after(timeout: Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(timeout)
}

/// True once `deadline` has passed.
#[inline]
pub fn expired(deadline: Deadline) -> bool {
    match deadline {
        Some(d) => Instant::now() >= d,
        None => false,
    }
}

/// The earlier of `deadline` and `now + probe`: how long to sleep before re-checking
/// that a peer is still alive.
#[inline]
pub fn probe_deadline(deadline: Deadline, probe: Duration) -> Instant {
    let p = Instant::now().add(probe);
    match deadline {
        Some(d) if d < p => d,
        _ => p,
    }
}
