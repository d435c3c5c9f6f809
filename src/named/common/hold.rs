//! Holds on a robust lock, shared by every lock-like handle: the public result
//! types ([`OwnerDied`], [`TryLockError`], [`LockResult`], [`TryLockResult`]), the
//! guard core [`Held`], and this thread's record of the locks it holds
//! ([`HeldHere`], [`held_here`]) that tells a real hold from a forged lock word.

use crate::raw::{Acquire, RawLock};
use crate::sync::Identity;
use crate::sys::clock::Deadline;
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

impl Held<'_> {
    /// Keeps the lock held past this value: drops only this thread's record of the
    /// hold (see [`LockGuard::forget`](crate::LockGuard::forget)).
    pub(crate) fn forget(self) {
        let mut h = core::mem::ManuallyDrop::new(self);
        // SAFETY: `h` is never used or dropped again; this drops only its record of
        // the hold (plain data whose drop edits a thread-local list), not the hold.
        unsafe { core::ptr::drop_in_place(&mut h._here) };
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
