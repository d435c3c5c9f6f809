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
use std::cell::RefCell;
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

/// A lock whose segment was truncated by another process (see
/// [`Segment::is_broken`](crate::Segment::is_broken)) no longer excludes other
/// processes: its word now lies on a zero page private to this process, so it only
/// excludes this process's threads. Every acquire then reports that as
/// `Err(OwnerDied(guard))`, like a poisoned lock: what it guards cannot be trusted.
#[inline]
pub(crate) fn unless_broken<G>(broken: bool, r: LockResult<G>) -> LockResult<G> {
    match r {
        Ok(g) if broken => Err(OwnerDied::new(g)),
        r => r,
    }
}

/// As [`unless_broken`] for `try_acquire` / `acquire_timeout`.
#[inline]
pub(crate) fn try_unless_broken<G>(broken: bool, r: TryLockResult<G>) -> TryLockResult<G> {
    match r {
        Ok(g) if broken => Err(TryLockError::OwnerDied(OwnerDied::new(g))),
        r => r,
    }
}

/// A held [`RawLock`] that releases on drop: the core of every lock guard.
pub(crate) struct Held<'a> {
    raw: &'a RawLock,
    me: Identity,
    _here: HeldHere,
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
            _here: HeldHere::new(raw, me),
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

std::thread_local! {
    /// The locks this thread holds through live guards (or around a closure run under
    /// a lock): the address of each lock in this process's mapping, and the TID it was
    /// taken under. A lock word in shared memory can name any thread, so only this
    /// record tells a real hold from a forged one. A forked child inherits its parent
    /// thread's record, under the parent's TID, so it never matches the child.
    static HELD_HERE: RefCell<Vec<(usize, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Records, until dropped, that the calling thread `me` holds `raw`.
pub(crate) struct HeldHere {
    addr: usize,
    tid: u32,
}

impl HeldHere {
    #[inline]
    pub(crate) fn new(raw: &RawLock, me: Identity) -> HeldHere {
        let addr = core::ptr::from_ref(raw) as usize;
        // During thread-local teardown there is no record to keep: `held_here` then
        // finds nothing, and a forged word is taken over rather than trusted.
        let _ = HELD_HERE.try_with(|h| h.borrow_mut().push((addr, me.tid)));
        HeldHere { addr, tid: me.tid }
    }

    /// Forgets one record that `me` holds `raw`: a hold given up without its guard
    /// (a Python-style `release` of a leaked guard's hold).
    #[inline]
    pub(crate) fn forget_one(raw: &RawLock, me: Identity) {
        drop(HeldHere {
            addr: core::ptr::from_ref(raw) as usize,
            tid: me.tid,
        });
    }
}

impl Drop for HeldHere {
    #[inline]
    fn drop(&mut self) {
        let key = (self.addr, self.tid);
        let _ = HELD_HERE.try_with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|&e| e == key) {
                h.swap_remove(i);
            }
        });
    }
}

/// True when the calling thread `me` holds `raw` through a live guard of this process
/// (or runs a closure under it), whichever mapping of the lock that guard used. A lock
/// word that names `me` without this is forged or garbage; see [`RawLock`]'s
/// "Impossible holders".
pub(crate) fn held_here(raw: &RawLock, me: Identity) -> bool {
    let addr = core::ptr::from_ref(raw) as usize;
    let mine: Vec<usize> = HELD_HERE
        .try_with(|h| {
            h.borrow()
                .iter()
                .filter(|e| e.1 == me.tid)
                .map(|e| e.0)
                .collect()
        })
        .unwrap_or_default();
    if mine.is_empty() {
        return false;
    }
    if mine.contains(&addr) {
        return true;
    }
    // The same lock may be mapped twice (two `open`s of one name): compare what file
    // bytes each address maps. Only reached when the word names us, which a real hold
    // or a forgery causes, so reading /proc here costs nothing on any fast path.
    // /proc unreadable: a guard of ours may hold it; refusing to take it over is what
    // the caller did before it could tell.
    crate::sys::maps::maps_same_bytes(addr, &mine).unwrap_or(true)
}

/// Acquires `raw` for the calling thread as the given kind of acquire.
///
/// A thread that already holds `raw` through a live guard would wait for itself: an
/// untimed acquire panics (a bug in the caller, as [`std::sync::Mutex::lock`] may),
/// a timed one gives up at once. A lock word that names the calling thread without
/// such a guard is taken over ([`Acquire::Recovered`], see [`RawLock`]).
#[inline]
pub(crate) fn acquire_raw(
    raw: &RawLock,
    deadline: Deadline,
    probe: Duration,
) -> (Acquire, Identity) {
    let me = crate::sync::current_identity();
    if raw.holder() == Some(me.tid) && held_here(raw, me) {
        // Unreachable from shared data: `held_here` is this thread's own record.
        assert!(
            deadline.is_some(),
            "this thread already holds this lock (a guard is alive): acquiring it \
             again would deadlock; drop the guard first, or use an RLock"
        );
        return (Acquire::WouldBlock, me);
    }
    (raw.lock(me, deadline, probe), me)
}

/// As [`RawLock::try_lock`] for the calling thread: `WouldBlock` if a live guard of
/// this thread holds it (as another thread's would), and a word naming this thread
/// without one is taken over.
#[inline]
pub(crate) fn try_acquire_raw(raw: &RawLock) -> (Acquire, Identity) {
    let me = crate::sync::current_identity();
    if raw.holder() == Some(me.tid) && held_here(raw, me) {
        return (Acquire::WouldBlock, me);
    }
    (raw.try_lock(me), me)
}

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
        let mut g = core::mem::ManuallyDrop::new(self);
        // SAFETY: `g` is never used or dropped again; this drops only its record of
        // the hold (plain data whose drop edits a thread-local list), not the hold.
        unsafe { core::ptr::drop_in_place(&mut g._held._here) };
    }
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

    /// True once another process truncated the lock's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)): the lock then excludes
    /// only this process's threads, and every acquire returns `Err(OwnerDied(..))`.
    pub fn is_broken(&self) -> bool {
        self.obj.is_broken()
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
