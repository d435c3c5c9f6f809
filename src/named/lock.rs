//! [`Lock`]: a named, robust, process-shared mutex. The guard/error types every
//! lock-like object shares ([`OwnerDied`], [`TryLockError`], ...) live in
//! [`common`](super::common).

use super::common::{
    acquire_raw, lock_result, named_handle, try_acquire_raw, try_result, try_unless_broken,
    unless_broken, Held, LockResult, TryLockResult,
};
use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::RawLock;
use crate::segment::{Object, ObjectKind};
use crate::sync::Identity;
use crate::sys::clock::deadline_after;
use crate::Result;
use core::fmt;
use std::time::Duration;

/// A robust mutex shared by name between processes.
///
/// When a holder dies (SIGKILL, crash, its thread exits), the next acquirer gets the
/// lock with `Err(OwnerDied(guard))` — as soon as the holder's thread exits, woken by
/// the death watcher ([`sys::watch`](crate::sys::watch)), and within the probe
/// interval at most (10 ms by default, see
/// [`with_probe_interval`](Lock::with_probe_interval)). Owners are identified by
/// thread id *and* thread start time, so a dead holder whose TID was reused by a
/// thread started in another clock tick (10 ms) is still found dead; a TID reused
/// within the same tick passes for the holder until that thread exits (see
/// [`sys::ident`](crate::sys::ident)). A lock word naming a kernel thread, or the
/// acquiring thread itself without a live guard of it, cannot be real (another
/// process forged it): it is taken over as from a dead holder. Uncontended
/// acquire + release is two CAS instructions and no syscall.
///
/// **Released elsewhere (Python's `mp.Lock`, a semaphore underneath, may be released
/// by any process).** A guard releases in the thread that acquired. For hand-off
/// patterns, [`LockGuard::forget`] keeps the lock held past the guard, and
/// [`release_unowned`](Lock::release_unowned) releases it from any thread or process
/// (`Err(NotOwner)` if it is not held). The lock still records the *acquiring*
/// thread: if that thread dies before the release, the next acquirer recovers the
/// lock (`OwnerDied`), as for any dead holder.
///
/// If another process truncates the lock's file, this process survives: the lock
/// then excludes only this process's threads, every acquire returns
/// `Err(OwnerDied(guard))`, and [`is_broken`](Lock::is_broken) says why.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Lock;
/// let lock = Lock::create(&format!("doc-lock-{}", std::process::id()))?;
/// {
///     let _g = lock.acquire().unwrap_or_else(|died| died.into_inner());
///     assert!(lock.is_locked());
/// }
/// assert!(!lock.is_locked());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lock {
    obj: Object<RawLock>,
    probe: Duration,
}

named_handle! {
    impl[] Lock: "lock", obj;
    debug[] "Lock" { "locked" => |l| l.is_locked() };
    /// Creates a new, unlocked lock named `name`.
    plain(ObjectKind::Lock) => from_obj;
    /// How often a waiter checks that the holder is alive: the bound on how long a
    /// dead holder can delay the next acquirer (default 10 ms).
    with_probe_interval => probe;
    /// True once another process truncated the lock's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)): the lock then excludes
    /// only this process's threads, and every acquire returns `Err(OwnerDied(..))`.
    is_broken;
}

/// Held [`Lock`]; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    _held: Held<'a>,
}

impl LockGuard<'_> {
    /// Keeps the lock held after the guard is gone, for
    /// [`Lock::release_unowned`] to release later — from this thread, another one,
    /// or another process (Python's `lock.acquire()` … `lock.release()`).
    ///
    /// The hold is no longer this thread's own (it keeps no record of it), so this
    /// thread acquiring the lock again before it is released takes it over as from
    /// an impossible holder (`OwnerDied`) rather than waiting: to wait for a release
    /// by another thread (Python's signal-by-lock idiom), use a
    /// [`Semaphore`](crate::Semaphore) of 0.
    pub fn forget(self) {
        self._held.forget()
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl Lock {
    fn from_obj(obj: Object<RawLock>) -> Lock {
        Lock {
            obj,
            probe: DEFAULT_PROBE,
        }
    }

    /// Blocks until the lock is held. `Err(OwnerDied(guard))` means it was taken over
    /// from a holder that died (or from an impossible one, see [`Lock`]): the caller
    /// holds it either way.
    ///
    /// # Panics
    /// If the calling thread holds the lock already (a live guard): waiting would
    /// deadlock (use an [`RLock`](crate::RLock) for re-entry). Only this process's own
    /// guards count, so no other process can cause the panic.
    #[inline]
    pub fn acquire(&self) -> LockResult<LockGuard<'_>> {
        let (a, me) = acquire_raw(self.obj.raw(), None, self.probe);
        unless_broken(self.obj.broken(), lock_result(a, || self.guard(me)))
    }

    /// Takes the lock only if that needs no waiting.
    #[inline]
    pub fn try_acquire(&self) -> TryLockResult<LockGuard<'_>> {
        let (a, me) = try_acquire_raw(self.obj.raw());
        try_unless_broken(self.obj.broken(), try_result(a, || self.guard(me)))
    }

    /// Waits at most `timeout` for the lock; `Err(WouldBlock)` after that, or at once
    /// if the calling thread holds it already (a live guard).
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        let (a, me) = acquire_raw(self.obj.raw(), deadline_after(timeout), self.probe);
        try_unless_broken(self.obj.broken(), try_result(a, || self.guard(me)))
    }

    /// True while any thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.obj.raw().is_locked()
    }

    /// Takes the lock if it is free now, without a guard: the hold is released with
    /// [`release_unowned`](Lock::release_unowned), as a [`forget`](LockGuard::forget)-ten
    /// guard's (Python's `acquire` / `release` in separate calls). `Some(false)`:
    /// taken; `Some(true)`: taken, but the segment is broken (see
    /// [`is_broken`](Lock::is_broken): as `Err(OwnerDied)` from `try_acquire`);
    /// `None`: not free — use [`try_acquire`](Lock::try_acquire) or a waiting acquire,
    /// which also recover a lock from a dead holder. One CAS, no syscall.
    #[inline]
    pub fn try_acquire_unowned(&self) -> Option<bool> {
        let me = crate::sync::current_identity();
        self.obj.raw().try_lock_fast(me).then(|| self.obj.broken())
    }

    /// Releases the lock whoever holds it, as Python's `Lock.release()` may: for a
    /// lock whose guard was [`forget`](LockGuard::forget)-ten, from any thread or
    /// process. `Err(NotOwner)` if the lock is not held (Python's "release unlocked
    /// lock"). A guard still alive for that hold does nothing when dropped later.
    pub fn release_unowned(&self) -> Result<()> {
        let raw = self.obj.raw();
        let Some(tid) = raw.holder() else {
            return Err(crate::Error::NotOwner);
        };
        // SAFETY: the caller releases a hold it took over (a forgotten guard's), so
        // nothing relies on the lock staying held. `unlock` releases only while the
        // word still names `tid`; the start time is not consulted.
        unsafe { raw.unlock(Identity { tid, start: 0 }) };
        Ok(())
    }

    /// The raw lock inside the segment.
    pub fn raw(&self) -> &RawLock {
        self.obj.raw()
    }

    #[inline]
    fn guard(&self, me: Identity) -> LockGuard<'_> {
        LockGuard {
            // SAFETY: called only right after `me` acquired the lock.
            _held: unsafe { Held::new(self.obj.raw(), me) },
        }
    }
}
