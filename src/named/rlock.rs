//! [`RLock`]: a named, robust, re-entrant lock.

use super::common::{
    lock_result, named_handle, try_result, try_unless_broken, unless_broken, LockResult,
    TryLockResult,
};
use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::RawRLock;
use crate::segment::{Object, ObjectKind};
use crate::sync::{current_identity, Identity};
use crate::sys::clock::deadline_after;
use crate::{Error, Result};
use core::fmt;
use core::marker::PhantomData;
use std::time::Duration;

/// A re-entrant lock shared by name between processes: the thread that holds it may
/// acquire it again, and it is released when every hold is given up.
///
/// Holds belong to a *thread* (as Python's `RLock` and `ReentrantMutex`): another
/// thread of the same process waits like any other process. Robust like
/// [`Lock`](crate::Lock): when the holding thread dies, the next acquirer gets
/// `Err(OwnerDied(guard))` within the probe interval (10 ms by default), whatever
/// depth the dead thread held it at, and holds it once.
///
/// Each [`acquire`](RLock::acquire) returns a guard that gives up one hold when
/// dropped, in any order. For Python-style code, [`RLockGuard::leak`] keeps the hold
/// past the guard and [`release`](RLock::release) gives it up later; releasing from
/// a thread that holds nothing is `Err(NotOwner)`.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::RLock;
/// let lock = RLock::create(&format!("doc-rlock-{}", std::process::id()))?;
/// let outer = lock.acquire().unwrap_or_else(|died| died.into_inner());
/// let inner = lock.acquire().unwrap_or_else(|died| died.into_inner()); // same thread: no deadlock
/// assert_eq!(lock.depth(), 2);
/// drop(outer);
/// drop(inner);
/// assert!(!lock.is_locked());
///
/// // Python style: acquire, and release later without a guard.
/// lock.acquire().unwrap_or_else(|died| died.into_inner()).leak();
/// lock.release()?;
/// assert!(matches!(lock.release(), Err(multiproc::Error::NotOwner)));
/// # Ok(()) }
/// ```
#[doc(alias = "ReentrantMutex")]
#[derive(Clone)]
pub struct RLock {
    obj: Object<RawRLock>,
    probe: Duration,
}

named_handle! {
    impl[] RLock: "re-entrant lock", obj;
    debug[] "RLock" { "locked" => |l| l.is_locked() };
    /// Creates a new, unlocked re-entrant lock named `name`.
    plain(ObjectKind::RLock) => from_obj;
    /// How often a waiter checks that the holder is alive: the bound on how long a
    /// dead holder can delay the next acquirer (default 10 ms, at least 100 µs).
    with_probe_interval => probe;
    /// True once another process truncated the lock's segment: as for
    /// [`Lock::is_broken`](crate::Lock::is_broken) (acquires return `Err(OwnerDied)`,
    /// `release` returns `Err(Corrupt)`).
    is_broken;
}

/// One hold on an [`RLock`]; gives it up on drop.
#[must_use = "the hold is given up as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    raw: &'a RawRLock,
    me: Identity,
    /// Holds belong to a thread: not Send.
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// Keeps the hold after the guard is gone: give it up later with
    /// [`RLock::release`] (Python style).
    pub fn leak(self) {
        std::mem::forget(self)
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

impl Drop for RLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // A guard dropped in a forked child names the parent's thread: leave it be.
        if current_identity().tid != self.me.tid {
            return;
        }
        // SAFETY: the guard is being dropped; an RLock protects no data of its own
        // and the guard's holder is done with whatever it guarded.
        let _ = unsafe { self.raw.unlock(self.me) };
    }
}

impl RLock {
    fn from_obj(obj: Object<RawRLock>) -> RLock {
        RLock {
            obj,
            probe: DEFAULT_PROBE,
        }
    }

    /// Blocks until the calling thread holds the lock (at once if it holds it
    /// already). `Err(OwnerDied(guard))`: taken over from a holder that died.
    #[inline]
    pub fn acquire(&self) -> LockResult<RLockGuard<'_>> {
        let me = current_identity();
        let a = self.obj.raw().lock(me, None, self.probe);
        unless_broken(self.obj.broken(), lock_result(a, || self.guard(me)))
    }

    /// Takes the lock only if that needs no waiting.
    #[inline]
    pub fn try_acquire(&self) -> TryLockResult<RLockGuard<'_>> {
        let me = current_identity();
        let a = self.obj.raw().try_lock(me);
        try_unless_broken(self.obj.broken(), try_result(a, || self.guard(me)))
    }

    /// Waits at most `timeout` for the lock; `Err(WouldBlock)` after that.
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<RLockGuard<'_>> {
        let me = current_identity();
        let a = self.obj.raw().lock(me, deadline_after(timeout), self.probe);
        try_unless_broken(self.obj.broken(), try_result(a, || self.guard(me)))
    }

    /// Gives up one hold of the calling thread, Python style (see
    /// [`RLockGuard::leak`]). `Err(NotOwner)` if the calling thread does not hold
    /// the lock.
    ///
    /// Releasing a hold that a live guard still represents makes that guard's drop
    /// give up another hold (or do nothing once the lock is free): pair `release`
    /// with `leak`.
    #[inline]
    pub fn release(&self) -> Result<()> {
        // SAFETY: an RLock protects no data of its own; the caller gives up its hold.
        let r = match unsafe { self.obj.raw().unlock(current_identity()) } {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::NotOwner),
        };
        self.obj.intact(r)
    }

    /// True while any thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.obj.raw().is_locked()
    }

    /// True if the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.depth() > 0
    }

    /// How many holds the calling thread has on the lock (0: none).
    pub fn depth(&self) -> u32 {
        self.obj.raw().holds(current_identity())
    }

    /// The raw lock inside the segment.
    pub fn raw(&self) -> &RawRLock {
        self.obj.raw()
    }

    #[inline]
    fn guard(&self, me: Identity) -> RLockGuard<'_> {
        RLockGuard {
            raw: self.obj.raw(),
            me,
            _not_send: PhantomData,
        }
    }
}
