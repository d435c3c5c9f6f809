//! [`Lock`]: a named, robust, process-shared mutex, and the guard/error types every
//! lock-like object shares ([`OwnerDied`], [`TryLockError`], ...).

use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::{Acquire, RawLock};
use crate::segment::{self, Object, ObjectKind, Options};
use crate::sync::Identity;
use crate::sys::clock::{deadline_after, Deadline};
use crate::Result;
use core::fmt;
use core::marker::PhantomData;
use std::time::Duration;

/// The previous holder died while holding the lock.
///
/// Like [`std::sync::PoisonError`]: the lock *is* held by the caller
/// ([`into_inner`](OwnerDied::into_inner) hands over the guard), but what it protects
/// may be half-updated. The lock is clean again once that guard drops.
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    /// Wraps a guard taken over from a dead holder.
    pub fn new(guard: G) -> Self {
        OwnerDied { guard }
    }
    /// The guard: the caller holds the lock.
    pub fn into_inner(self) -> G {
        self.guard
    }
    /// The guard, by reference.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }
    /// The guard, mutably.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the previous holder died holding the lock; the data it guards may be inconsistent",
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// Why a `try_acquire` or `acquire_timeout` did not simply succeed.
pub enum TryLockError<G> {
    /// Held by a live holder (until the deadline, for timed acquires).
    WouldBlock,
    /// Acquired, from a holder that died: see [`OwnerDied`].
    OwnerDied(OwnerDied<G>),
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::OwnerDied(e) => e.fmt(f),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("the lock is held by another thread"),
            TryLockError::OwnerDied(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<G> std::error::Error for TryLockError<G> {}

impl<G> From<OwnerDied<G>> for TryLockError<G> {
    fn from(e: OwnerDied<G>) -> Self {
        TryLockError::OwnerDied(e)
    }
}

/// `Ok(guard)`, or `Err(OwnerDied(guard))` when the previous holder died.
pub type LockResult<G> = core::result::Result<G, OwnerDied<G>>;
/// The result of `try_acquire` / `acquire_timeout`.
pub type TryLockResult<G> = core::result::Result<G, TryLockError<G>>;

/// Turns a raw outcome into the public result, building the guard only when held.
pub(crate) fn try_result<G>(a: Acquire, guard: impl FnOnce() -> G) -> TryLockResult<G> {
    match a {
        Acquire::Acquired => Ok(guard()),
        Acquire::Recovered => Err(TryLockError::OwnerDied(OwnerDied::new(guard()))),
        Acquire::WouldBlock => Err(TryLockError::WouldBlock),
    }
}

/// As [`try_result`] for an untimed acquire, which cannot block out.
pub(crate) fn lock_result<G>(a: Acquire, guard: impl FnOnce() -> G) -> LockResult<G> {
    match a {
        Acquire::Recovered => Err(OwnerDied::new(guard())),
        _ => Ok(guard()),
    }
}

/// A held [`RawLock`] that releases on drop: the core of every lock guard.
pub(crate) struct Held<'a> {
    raw: &'a RawLock,
    me: Identity,
    /// Guards belong to a thread (the lock records its TID): not Send.
    _not_send: PhantomData<*const ()>,
}

impl<'a> Held<'a> {
    /// # Safety
    /// `me` holds `raw` (it was just acquired by the calling thread).
    #[inline]
    pub(crate) unsafe fn new(raw: &'a RawLock, me: Identity) -> Self {
        Held {
            raw,
            me,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        // A guard dropped in a forked child names the parent's thread: the child must
        // not release the parent's lock (its own thread has another identity).
        if crate::sync::current_identity().tid != self.me.tid {
            return;
        }
        // SAFETY: a Held exists only while `me` holds the lock, and the guard that owns
        // it is being dropped, so nothing protected is touched afterwards.
        unsafe { self.raw.unlock(self.me) }
    }
}

/// Acquires `raw` for the calling thread as the given kind of acquire.
#[inline]
pub(crate) fn acquire_raw(
    raw: &RawLock,
    deadline: Deadline,
    probe: Duration,
) -> (Acquire, Identity) {
    let me = crate::sync::current_identity();
    (raw.lock(me, deadline, probe), me)
}

/// A robust mutex shared by name between processes.
///
/// When a holder dies (SIGKILL, crash, its thread exits), the next acquirer gets the
/// lock with `Err(OwnerDied(guard))` within the probe interval (10 ms by default, see
/// [`with_probe_interval`](Lock::with_probe_interval)). Owners are identified by
/// thread id *and* thread start time, so PID reuse never fools it. Uncontended
/// acquire + release is two CAS instructions and no syscall.
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

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name())
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// Held [`Lock`]; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    _held: Held<'a>,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl Lock {
    /// Creates a new, unlocked lock named `name`.
    ///
    /// A name left behind by a crashed creator (an orphan: creator gone, not
    /// persisted, held by no live process) is reclaimed and created afresh, so a
    /// restarted service just creates; see [`gc`](crate::gc).
    pub fn create(name: &str) -> Result<Lock> {
        Lock::create_with(name, &Options::default())
    }
    /// [`create`](Lock::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, opts: &Options) -> Result<Lock> {
        Ok(Lock::from_obj(Object::create_plain(
            name,
            opts,
            ObjectKind::Lock,
        )?))
    }
    /// Opens the lock `name`.
    pub fn open(name: &str) -> Result<Lock> {
        Lock::open_with(name, &Options::default())
    }
    /// [`open`](Lock::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Lock> {
        let obj = Object::open_plain(name, opts, ObjectKind::Lock)?;
        Ok(Lock::from_obj(obj))
    }
    /// Opens `name`, creating it if it does not exist. A Lock has no
    /// creation parameters, so any existing Lock of that name is returned, in
    /// whatever state it is; `Err(WrongKind)` if the name holds another kind of object.
    pub fn open_or_create(name: &str) -> Result<Lock> {
        Lock::open_or_create_with(name, &Options::default())
    }

    /// [`open_or_create`](Lock::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, opts: &Options) -> Result<Lock> {
        segment::open_or_create(
            || Lock::create_with(name, opts),
            || Lock::open_with(name, opts),
        )
    }
    fn from_obj(obj: Object<RawLock>) -> Lock {
        Lock {
            obj,
            probe: DEFAULT_PROBE,
        }
    }

    /// How often a waiter checks that the holder is alive: the bound on how long a
    /// dead holder can delay the next acquirer (default 10 ms).
    pub fn with_probe_interval(mut self, probe: Duration) -> Lock {
        self.probe = probe.max(Duration::from_micros(100));
        self
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        self.obj.name()
    }
    /// Keeps the name after this (creating) handle drops.
    pub fn persist(&self) {
        self.obj.persist()
    }

    /// Blocks until the lock is held. `Err(OwnerDied(guard))` means it was taken over
    /// from a holder that died: the caller holds it either way.
    #[inline]
    pub fn acquire(&self) -> LockResult<LockGuard<'_>> {
        let (a, me) = acquire_raw(self.obj.raw(), None, self.probe);
        lock_result(a, || self.guard(me))
    }

    /// Takes the lock only if that needs no waiting.
    #[inline]
    pub fn try_acquire(&self) -> TryLockResult<LockGuard<'_>> {
        let me = crate::sync::current_identity();
        let a = self.obj.raw().try_lock(me);
        try_result(a, || self.guard(me))
    }

    /// Waits at most `timeout` for the lock; `Err(WouldBlock)` after that.
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        let (a, me) = acquire_raw(self.obj.raw(), deadline_after(timeout), self.probe);
        try_result(a, || self.guard(me))
    }

    /// True while any thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.obj.raw().is_locked()
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
