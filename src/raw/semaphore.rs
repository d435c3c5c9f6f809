//! `RawSemaphore`: a counting semaphore on one shared futex word.
//!
//! `value` holds the permits and is the futex word sleepers wait on; `sleepers`
//! counts the threads that may be asleep, so that a release with nobody asleep is one
//! CAS and no syscall.
//!
//! Orderings: a release is a Release RMW on `value`, a successful acquire an Acquire
//! RMW (`SYNC(sem)`): what the releaser wrote is visible to the acquirer that takes
//! its permit. Sleeping is a Dekker handshake (`SYNC(sem-sleep)`, all `SeqCst`): a
//! sleeper increments `sleepers` and then lets the kernel re-check `value`; a releaser
//! increments `value` and then reads `sleepers` — one of the two sees the other.
//!
//! Crash semantics (as POSIX and Python): a permit is not owned by anyone, so a
//! process that dies holding one does **not** give it back. A sleeper that dies
//! leaves `sleepers` one too high, which only costs later releases a `futex_wake`.

use super::wait::{spin_until, Sleepers};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{futex_wait, Deadline, WaitResult};
use crate::sys::clock::expired;

/// A counting semaphore (no owner, no upper bound of its own: callers pass one to
/// [`release`](RawSemaphore::release)).
#[repr(C)]
#[derive(Debug)]
pub struct RawSemaphore {
    /// Permits available, `0..=max` (the futex word).
    value: AtomicU32,
    /// Threads that may be asleep on `value` (a hint: too high only costs a syscall).
    sleepers: Sleepers,
    /// How many polls recent waits needed (a hint for adaptive spinning).
    spin: AtomicU32,
}

// SAFETY: repr(C), atomics only; all-zero = no permits, nobody asleep; no pointers.
unsafe impl super::SharedState for RawSemaphore {}

impl Default for RawSemaphore {
    fn default() -> Self {
        RawSemaphore::new(0)
    }
}

impl RawSemaphore {
    /// A semaphore holding `initial` permits.
    #[cfg(not(loom))]
    pub const fn new(initial: u32) -> RawSemaphore {
        RawSemaphore {
            value: AtomicU32::new(initial),
            sleepers: Sleepers::new(),
            spin: AtomicU32::new(0),
        }
    }
    /// A semaphore holding `initial` permits.
    #[cfg(loom)]
    pub fn new(initial: u32) -> RawSemaphore {
        RawSemaphore {
            value: AtomicU32::new(initial),
            sleepers: Sleepers::new(),
            spin: AtomicU32::new(0),
        }
    }

    /// Sets the permits (for initialising a zeroed image before anyone shares it).
    pub fn init(&self, initial: u32) {
        self.value.store(initial, Ordering::Relaxed);
        self.sleepers.reset();
    }

    /// Takes a permit if one is available; never waits.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        while v != 0 {
            // SYNC(sem): Acquire pairs with the Release in `release`.
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => v = x,
            }
        }
        false
    }

    /// Takes a permit, waiting until `deadline` for one; false if it passed.
    #[inline]
    pub fn acquire(&self, deadline: Deadline) -> bool {
        self.try_acquire() || self.acquire_slow(deadline)
    }

    #[cold]
    fn acquire_slow(&self, deadline: Deadline) -> bool {
        loop {
            spin_until(&self.spin, || self.value.load(Ordering::Relaxed) != 0);
            if self.try_acquire() {
                return true;
            }
            // SYNC(sem-sleep): announce ourselves, then let the kernel re-check `value`.
            self.sleepers.announce();
            let r = if self.value.load(Ordering::SeqCst) == 0 {
                futex_wait(&self.value, 0, deadline)
            } else {
                WaitResult::Woken
            };
            self.sleepers.leave();
            if self.try_acquire() {
                return true;
            }
            if r == WaitResult::TimedOut || expired(deadline) {
                // A final look: a permit released as we timed out is still ours to take.
                return self.try_acquire();
            }
        }
    }

    /// Adds a permit, unless the value is already `max`: then nothing changes and
    /// `false` is returned. Wakes one sleeper, if any.
    #[inline]
    pub fn release(&self, max: u32) -> bool {
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            if v >= max {
                return false;
            }
            // SYNC(sem): Release pairs with the Acquire in `try_acquire`.
            // SYNC(sem-sleep): SeqCst, ordered before the load of `sleepers`.
            match self
                .value
                .compare_exchange_weak(v, v + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        // SYNC(sem-sleep)
        self.sleepers.wake(&self.value, 1);
        true
    }

    /// The permits available now (a snapshot).
    #[inline]
    pub fn value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }

    /// Threads that may be asleep waiting for a permit (a snapshot, a hint).
    #[inline]
    pub fn sleepers(&self) -> u32 {
        self.sleepers.get()
    }
}
