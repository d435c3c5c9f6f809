//! [`Condition`]: a named condition variable that owns its robust lock.

use crate::lock::{
    acquire_raw, lock_result, try_result, Held, LockResult, OwnerDied, TryLockResult,
};
use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::RawCondition;
use crate::segment::{self, Object, ObjectKind, Options};
use crate::sync::{current_identity, Identity};
use crate::sys::clock::{deadline_after, Deadline};
use crate::Result;
use core::fmt;
use std::time::Duration;

/// A condition variable shared by name between processes, as Python's
/// `multiprocessing.Condition`, with its own lock.
///
/// [`acquire`](Condition::acquire) the lock, check the shared state, and
/// [`wait`](Condition::wait) while it is not what you need; another process changes
/// the state under the lock and [`notify`](Condition::notify)s. `notify(n)` ends at
/// most `n` waits; waits may also end spuriously, so re-check the state in a loop —
/// or let [`wait_while`](Condition::wait_while) do it.
///
/// The lock is robust like [`Lock`](crate::Lock): when its holder dies, the next
/// acquirer (or a waiter relocking) gets `Err(OwnerDied(..))` within the probe
/// interval. A notifier that dies never leaves waiters hung: they keep waiting for
/// the next notify, and their timeouts hold. With nobody waiting, `notify` makes no
/// syscall.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Condition;
/// use std::time::Duration;
/// let cond = Condition::create(&format!("doc-cond-{}", std::process::id()))?;
/// let mut g = cond.acquire().unwrap_or_else(|died| died.into_inner());
/// cond.notify_all(); // nobody waits: a no-op
/// // Nobody will notify: the wait times out, with the lock held again.
/// let notified = cond.wait_timeout(&mut g, Duration::from_millis(5)).unwrap_or_else(|d| d.into_inner());
/// assert!(!notified && cond.is_locked());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Condition {
    obj: Object<RawCondition>,
    probe: Duration,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("name", &self.name())
            .field("locked", &self.is_locked())
            .field("waiting", &self.n_waiting())
            .finish()
    }
}

/// The held lock of a [`Condition`]; releases it on drop. Pass it to the
/// condition's `wait*` methods.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    raw: &'a RawCondition,
    me: Identity,
    _held: Held<'a>,
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}

/// `Ok(v)`, or `Err(OwnerDied(v))` if relocking recovered the lock from a dead holder.
fn relocked<T>(value: T, recovered: bool) -> LockResult<T> {
    if recovered {
        Err(OwnerDied::new(value))
    } else {
        Ok(value)
    }
}

impl Condition {
    /// Creates a new condition (and its unlocked lock) named `name`.
    ///
    /// A name left behind by a crashed creator (an orphan: creator gone, not
    /// persisted, held by no live process) is reclaimed and created afresh, so a
    /// restarted service just creates; see [`gc`](crate::gc).
    pub fn create(name: &str) -> Result<Condition> {
        Condition::create_with(name, &Options::default())
    }
    /// [`create`](Condition::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, opts: &Options) -> Result<Condition> {
        let obj = Object::create_plain(name, opts, ObjectKind::Condition)?;
        Ok(Condition::from_obj(obj))
    }
    /// Opens the condition `name`.
    pub fn open(name: &str) -> Result<Condition> {
        Condition::open_with(name, &Options::default())
    }
    /// [`open`](Condition::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Condition> {
        let obj = Object::open_plain(name, opts, ObjectKind::Condition)?;
        Ok(Condition::from_obj(obj))
    }
    /// Opens `name`, creating it if it does not exist. A Condition has no
    /// creation parameters, so any existing Condition of that name is returned, in
    /// whatever state it is; `Err(WrongKind)` if the name holds another kind of object.
    pub fn open_or_create(name: &str) -> Result<Condition> {
        Condition::open_or_create_with(name, &Options::default())
    }

    /// [`open_or_create`](Condition::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, opts: &Options) -> Result<Condition> {
        segment::open_or_create(
            || Condition::create_with(name, opts),
            || Condition::open_with(name, opts),
        )
    }
    fn from_obj(obj: Object<RawCondition>) -> Condition {
        Condition {
            obj,
            probe: DEFAULT_PROBE,
        }
    }

    /// How often a thread waiting for the lock checks that its holder is alive
    /// (default 10 ms, at least 100 µs).
    pub fn with_probe_interval(mut self, probe: Duration) -> Condition {
        self.probe = probe.max(Duration::from_micros(100));
        self
    }

    /// The condition's name.
    pub fn name(&self) -> &str {
        self.obj.name()
    }
    /// Keeps the name after this (creating) handle drops.
    pub fn persist(&self) {
        self.obj.persist()
    }

    /// Blocks until the condition's lock is held. `Err(OwnerDied(guard))`: taken over
    /// from a holder that died.
    #[inline]
    pub fn acquire(&self) -> LockResult<ConditionGuard<'_>> {
        let (a, me) = acquire_raw(self.obj.raw().lock(), None, self.probe);
        lock_result(a, || self.guard(me))
    }
    /// Takes the lock only if that needs no waiting.
    pub fn try_acquire(&self) -> TryLockResult<ConditionGuard<'_>> {
        let me = current_identity();
        let a = self.obj.raw().lock().try_lock(me);
        try_result(a, || self.guard(me))
    }
    /// Waits at most `timeout` for the lock; `Err(WouldBlock)` after that.
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<ConditionGuard<'_>> {
        let (a, me) = acquire_raw(self.obj.raw().lock(), deadline_after(timeout), self.probe);
        try_result(a, || self.guard(me))
    }

    #[inline]
    fn guard(&self, me: Identity) -> ConditionGuard<'_> {
        let raw = self.obj.raw();
        ConditionGuard {
            raw,
            me,
            // SAFETY: called only right after `me` acquired the lock.
            _held: unsafe { Held::new(raw.lock(), me) },
        }
    }

    fn wait_until(&self, g: &mut ConditionGuard<'_>, deadline: Deadline) -> LockResult<bool> {
        if current_identity().tid != g.me.tid {
            // A guard inherited through fork: this thread does not hold the lock, so
            // it must neither release nor wait with it.
            return Ok(false);
        }
        // SAFETY: the guard proves `g.me` holds the guard's condition's lock, and the
        // `&mut` borrow keeps the caller off the protected state until we relock.
        let w = unsafe { g.raw.wait(g.me, deadline, self.probe) };
        relocked(w.notified, w.recovered)
    }

    /// Releases the lock, waits for a notify, and takes the lock again. Waits may
    /// end spuriously: re-check the state (or use [`wait_while`](Condition::wait_while)).
    ///
    /// `g` must be a guard of this condition (any handle to the same object);
    /// a guard of another condition waits on *that* condition. A guard inherited by
    /// a forked child does not hold the lock there: its waits return at once.
    /// `Err(OwnerDied(()))`: relocking took the lock over from a holder that died; the
    /// lock is held either way.
    pub fn wait(&self, g: &mut ConditionGuard<'_>) -> LockResult<()> {
        match self.wait_until(g, None) {
            Ok(_) => Ok(()),
            Err(_) => Err(OwnerDied::new(())),
        }
    }

    /// As [`wait`](Condition::wait) for at most `timeout`: `Ok(false)` if it timed out
    /// (the lock is held again either way).
    pub fn wait_timeout(&self, g: &mut ConditionGuard<'_>, timeout: Duration) -> LockResult<bool> {
        self.wait_until(g, deadline_after(timeout))
    }

    /// Waits while `pred` returns true (it runs under the lock, first before any
    /// wait), absorbing spurious wake-ups. `Err(OwnerDied(()))` if the lock was taken
    /// over from a dead holder along the way (the wait went on regardless).
    pub fn wait_while<'a, F>(&self, g: &mut ConditionGuard<'a>, mut pred: F) -> LockResult<()>
    where
        F: FnMut(&mut ConditionGuard<'a>) -> bool,
    {
        let mut recovered = false;
        while pred(g) {
            if self.wait_until(g, None).is_err() {
                recovered = true;
            }
        }
        relocked((), recovered)
    }

    /// As [`wait_while`](Condition::wait_while) for at most `timeout`: `Ok(false)` if
    /// `pred` was still true when the time ran out.
    pub fn wait_timeout_while<'a, F>(
        &self,
        g: &mut ConditionGuard<'a>,
        timeout: Duration,
        mut pred: F,
    ) -> LockResult<bool>
    where
        F: FnMut(&mut ConditionGuard<'a>) -> bool,
    {
        let deadline = deadline_after(timeout);
        let mut recovered = false;
        loop {
            if !pred(g) {
                return relocked(true, recovered);
            }
            match self.wait_until(g, deadline) {
                Ok(true) => {}
                Ok(false) => return relocked(!pred(g), recovered),
                Err(e) => {
                    recovered = true;
                    if !e.into_inner() {
                        return relocked(!pred(g), recovered);
                    }
                }
            }
        }
    }

    /// Wakes at most `n` waiters. Called without holding the lock, it takes the
    /// lock briefly (the wake-up counts live under it).
    #[inline]
    pub fn notify(&self, n: usize) {
        self.notify_n(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Wakes every waiter.
    #[inline]
    pub fn notify_all(&self) {
        self.notify_n(u32::MAX);
    }

    fn notify_n(&self, n: u32) {
        if n == 0 {
            return;
        }
        let raw = self.obj.raw();
        let me = current_identity();
        if raw.lock().is_held_by(me) {
            // SAFETY: the calling thread holds the lock.
            unsafe { raw.notify(n) };
            return;
        }
        let (_a, me) = acquire_raw(raw.lock(), None, self.probe);
        // SAFETY: just acquired by the calling thread.
        let _held = unsafe { Held::new(raw.lock(), me) };
        // SAFETY: the calling thread holds the lock.
        unsafe { raw.notify(n) };
    }

    /// Threads waiting and not yet notified (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.obj.raw().waiting()
    }

    /// True while any thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.obj.raw().lock().is_locked()
    }

    /// The raw condition inside the segment.
    pub fn raw(&self) -> &RawCondition {
        self.obj.raw()
    }
}
