//! `RawRLock`: a robust *re-entrant* lock — a [`RawLock`] plus a hold count that only
//! the owning thread touches.
//!
//! Re-entry is recognised by the lock word naming the caller's TID *and* the owner
//! record naming the caller's [`Identity`] (so a thread that inherited a dead
//! owner's TID is not mistaken for it). The count is read and written only by the
//! holder, under the lock: `Relaxed` is enough, the lock's own `SYNC(lock)`
//! Acquire/Release orders it for the next holder.

use super::lock::{Acquire, RawLock};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Deadline, Identity};
use core::time::Duration;

/// Releasing a lock the caller does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotOwner;

/// A robust, process-shared, re-entrant lock.
#[repr(C)]
#[derive(Debug)]
pub struct RawRLock {
    lock: RawLock,
    /// How many times the holder acquired it (1..; 0 when free). Written only by the
    /// holding thread; any value read while held is clamped to at least 1.
    count: AtomicU32,
    _pad: u32,
}

// SAFETY: repr(C), a RawLock (SharedState) and integers only; all-zero = unlocked with
// count 0; no pointers; align 8.
unsafe impl super::SharedState for RawRLock {}

impl Default for RawRLock {
    fn default() -> Self {
        RawRLock::new()
    }
}

impl RawRLock {
    /// An unlocked lock (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawRLock {
        RawRLock {
            lock: RawLock::new(),
            count: AtomicU32::new(0),
            _pad: 0,
        }
    }
    /// An unlocked lock (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawRLock {
        RawRLock {
            lock: RawLock::new(),
            count: AtomicU32::new(0),
            _pad: 0,
        }
    }

    /// Acquires the lock (again, if `me` holds it already), waiting until `deadline`;
    /// a holder that died is detected within `probe` ([`Acquire::Recovered`]).
    #[inline]
    pub fn lock(&self, me: Identity, deadline: Deadline, probe: Duration) -> Acquire {
        if self.lock.is_held_by(me) {
            self.reenter();
            return Acquire::Acquired;
        }
        let a = self.lock.lock(me, deadline, probe);
        if a.is_held() {
            self.count.store(1, Ordering::Relaxed);
        }
        a
    }

    /// As [`lock`](Self::lock) without waiting (a held lock costs a `/proc` read to
    /// check that its holder lives).
    pub fn try_lock(&self, me: Identity) -> Acquire {
        if self.lock.is_held_by(me) {
            self.reenter();
            return Acquire::Acquired;
        }
        let a = self.lock.try_lock(me);
        if a.is_held() {
            self.count.store(1, Ordering::Relaxed);
        }
        a
    }

    /// One more hold by the current holder (saturating: 2^32 − 1 nested holds are
    /// the most that are counted).
    #[inline]
    fn reenter(&self) {
        let c = self.count.load(Ordering::Relaxed).max(1);
        self.count.store(c.saturating_add(1), Ordering::Relaxed);
    }

    /// Gives up one hold; the last one releases the lock. `Ok(true)` when the lock
    /// was released, `Ok(false)` when `me` still holds it, `Err(NotOwner)` when `me`
    /// does not hold it at all.
    ///
    /// # Safety
    /// As [`RawLock::unlock`] for the last hold: the caller must be done with
    /// everything the lock protects.
    #[inline]
    pub unsafe fn unlock(&self, me: Identity) -> Result<bool, NotOwner> {
        if !self.lock.is_held_by(me) {
            return Err(NotOwner);
        }
        let c = self.count.load(Ordering::Relaxed);
        if c > 1 {
            self.count.store(c - 1, Ordering::Relaxed);
            return Ok(false);
        }
        self.count.store(0, Ordering::Relaxed);
        // SAFETY: `me` holds the lock (checked above) and gives up its last hold; the
        // caller vouches it is done with the protected data.
        unsafe { self.lock.unlock(me) };
        Ok(true)
    }

    /// How many holds `me` has on the lock (0 if it does not hold it).
    #[inline]
    pub fn holds(&self, me: Identity) -> u32 {
        if self.lock.is_held_by(me) {
            self.count.load(Ordering::Relaxed).max(1)
        } else {
            0
        }
    }

    /// True while some thread holds the lock (a snapshot).
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// The current holder's TID, if held (a snapshot).
    #[inline]
    pub fn holder(&self) -> Option<u32> {
        self.lock.holder()
    }

    /// True if a waiter may be asleep on the lock (see [`RawLock::may_have_sleepers`]).
    #[inline]
    pub fn may_have_sleepers(&self) -> bool {
        self.lock.may_have_sleepers()
    }
}
