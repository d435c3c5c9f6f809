//! `RawCondition`: a condition variable with its own robust lock.
//!
//! A sequence-counter condvar (as std's futex condvar) made exact with wake-up
//! tokens, all kept under the condition's own lock:
//!
//! * `wait` registers (`waiting += 1`), notes `seq`, unlocks and sleeps on `seq`;
//!   on waking it relocks and takes a token if one is there *and* `seq` moved since
//!   it registered (so a waiter never takes a wake-up granted before it arrived);
//! * `notify(n)` grants `k = min(n, waiting)` tokens, bumps `seq` and wakes `k`
//!   sleepers. So `notify(n)` ends at most `n` waits, and with nobody waiting it is
//!   a load and no syscall.
//!
//! Invariant (without crashes): `waiting + tokens` = threads inside `wait`. A waiter
//! that dies inside `wait` leaves the counts one too high; a later `notify` may
//! then grant a token nobody takes, which a later waiter may take as a spurious
//! wake-up — allowed, and absorbed by `wait_while`. A notifier that dies holding the
//! lock is recovered like any dead holder; waiters never depend on a notifier's
//! liveness (they keep waiting, and their deadlines hold).
//!
//! Orderings: every field but `seq`/`sleepers` is read and written under the lock
//! (`Relaxed`; the lock's `SYNC(lock)` orders them). Sleeping is the Dekker handshake
//! `SYNC(cond-sleep)` (SeqCst): sleepers increment `sleepers` before the kernel
//! re-checks `seq`; notifiers bump `seq` before they read `sleepers`.

use super::lock::{spin_until, Acquire, RawLock};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{futex_wait, futex_wake, futex_wake_all, Deadline, Identity, WaitResult};
use crate::sys::clock::expired;
use core::time::Duration;

/// How a [`RawCondition::wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waited {
    /// True when a notify ended the wait, false when the deadline passed.
    pub notified: bool,
    /// True when relocking took the lock over from a holder that died.
    pub recovered: bool,
}

/// A condition variable and the lock it waits with.
#[repr(C)]
#[derive(Debug)]
pub struct RawCondition {
    lock: RawLock,
    /// Bumped by every notify that grants wake-ups: the futex word waiters sleep on.
    seq: AtomicU32,
    /// Waiters not yet granted a wake-up (under the lock).
    waiting: AtomicU32,
    /// Wake-ups granted and not yet taken (under the lock).
    tokens: AtomicU32,
    /// Threads that may be asleep on `seq` (a hint: too high only costs a syscall).
    sleepers: AtomicU32,
    /// How many polls recent waits needed (a hint for adaptive spinning).
    spin: AtomicU32,
}

// SAFETY: repr(C), a RawLock (SharedState) and atomics; all-zero = unlocked, nobody
// waiting; no pointers; align 8.
unsafe impl super::SharedState for RawCondition {}

impl Default for RawCondition {
    fn default() -> Self {
        RawCondition::new()
    }
}

impl RawCondition {
    /// An unlocked condition with no waiters (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawCondition {
        RawCondition {
            lock: RawLock::new(),
            seq: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            tokens: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            spin: AtomicU32::new(0),
        }
    }
    /// An unlocked condition with no waiters (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawCondition {
        RawCondition {
            lock: RawLock::new(),
            seq: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            tokens: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            spin: AtomicU32::new(0),
        }
    }

    /// The condition's lock.
    #[inline]
    pub fn lock(&self) -> &RawLock {
        &self.lock
    }

    /// Releases the lock, waits for a notify or `deadline`, and relocks (always, even
    /// after the deadline; relocking detects a dead holder within `probe`).
    ///
    /// # Safety
    /// `me` holds the lock, and is done with the data it protects until this returns
    /// (another thread takes the lock meanwhile).
    pub unsafe fn wait(&self, me: Identity, deadline: Deadline, probe: Duration) -> Waited {
        // Under the lock: register, note the sequence.
        self.waiting.store(
            self.waiting.load(Ordering::Relaxed).saturating_add(1),
            Ordering::Relaxed,
        );
        let start = self.seq.load(Ordering::Relaxed);
        let mut seen = start;
        let mut recovered = false;
        loop {
            // SAFETY: `me` holds the lock (the contract, or relocked below).
            unsafe { self.lock.unlock(me) };
            let r = self.sleep(seen, deadline);
            if self.lock.lock(me, None, probe) == Acquire::Recovered {
                recovered = true;
            }
            // Under the lock again.
            let seq = self.seq.load(Ordering::Relaxed);
            let tokens = self.tokens.load(Ordering::Relaxed);
            if seq != start && tokens > 0 {
                self.tokens.store(tokens - 1, Ordering::Relaxed);
                return Waited {
                    notified: true,
                    recovered,
                };
            }
            if r == WaitResult::TimedOut || expired(deadline) {
                let w = self.waiting.load(Ordering::Relaxed);
                self.waiting.store(w.saturating_sub(1), Ordering::Relaxed);
                return Waited {
                    notified: false,
                    recovered,
                };
            }
            // Woken without a wake-up for us: wait for the next notify.
            seen = seq;
        }
    }

    /// Spins briefly, then sleeps while `seq == seen` (until `deadline`).
    fn sleep(&self, seen: u32, deadline: Deadline) -> WaitResult {
        if self.seq.load(Ordering::Relaxed) != seen
            || spin_until(&self.spin, || self.seq.load(Ordering::Relaxed) != seen)
        {
            return WaitResult::Woken;
        }
        // SYNC(cond-sleep): announce ourselves, then the kernel re-checks `seq`.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let r = futex_wait(&self.seq, seen, deadline);
        let _ = self
            .sleepers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
        r
    }

    /// Ends up to `n` waits (`u32::MAX`: all of them); returns how many wake-ups it
    /// granted. No syscall unless someone sleeps.
    ///
    /// # Safety
    /// The calling thread holds the lock (the counts are guarded by it).
    pub unsafe fn notify(&self, n: u32) -> u32 {
        let waiting = self.waiting.load(Ordering::Relaxed);
        let k = waiting.min(n);
        if k == 0 {
            return 0;
        }
        self.waiting.store(waiting - k, Ordering::Relaxed);
        let tokens = self.tokens.load(Ordering::Relaxed);
        self.tokens
            .store(tokens.saturating_add(k), Ordering::Relaxed);
        // SYNC(cond-sleep): SeqCst, ordered before the load of `sleepers`.
        self.seq.fetch_add(1, Ordering::SeqCst);
        // SYNC(cond-sleep)
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            if k == waiting {
                futex_wake_all(&self.seq);
            } else {
                futex_wake(&self.seq, k);
            }
        }
        k
    }

    /// Waiters not yet notified (a snapshot; exact while holding the lock).
    #[inline]
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }
}
