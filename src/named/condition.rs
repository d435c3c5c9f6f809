//! [`Condition`]: a named condition variable that owns its robust, re-entrant lock.

use super::common::{
    held_here, lock_result, named_handle, try_result, try_unless_broken, unless_broken, HeldHere,
    LockResult, OwnerDied, TryLockResult,
};
use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::Acquire;
use crate::raw::RawCondition;
use crate::segment::{Object, ObjectKind};
use crate::sync::{current_identity, Identity};
use crate::sys::clock::{deadline_after, Deadline};
use crate::{Error, Result};
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use std::time::Duration;

/// A condition variable over a *re-entrant* lock (as Python's `Condition()`, whose
/// default lock is an `RLock`), shared by name between processes.
///
/// The thread that holds the lock may [`acquire`](Condition::acquire) it again
/// (Python's `with cond:` nested in `with cond:`); every guard gives up one hold.
/// [`wait`](Condition::wait) releases the lock fully — all holds — and restores the
/// same depth when it wakes (Python's `_release_save` / `_acquire_restore`).
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
/// the next notify, and their timeouts hold.
///
/// `notify` needs no lock and never blocks (unlike Python, it may be called without
/// holding the lock): nothing another process writes into the segment can make it
/// wait. With nobody waiting it makes no syscall.
///
/// If another process truncates the condition's file, this process survives:
/// acquires and waits return `Err(OwnerDied)` at once (see
/// [`is_broken`](Condition::is_broken)).
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

named_handle! {
    impl[] Condition: "condition", obj;
    debug[] "Condition" { "locked" => |c| c.is_locked(), "waiting" => |c| c.n_waiting() };
    /// Creates a new condition (and its unlocked lock) named `name`.
    plain(ObjectKind::Condition) => from_obj;
    /// How often a thread waiting for the lock checks that its holder is alive
    /// (default 10 ms, at least 100 µs).
    with_probe_interval => probe;
    /// True once another process truncated the condition's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)). Its lock then excludes only
    /// this process's threads; acquires and waits return `Err(OwnerDied(..))`, and
    /// waits return at once (no notify can reach them any more), so `wait_while`
    /// returns even while its predicate holds.
    is_broken;
}

/// One hold on a [`Condition`]'s lock; gives it up on drop. Pass it to the
/// condition's `wait*` methods.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    raw: &'a RawCondition,
    me: Identity,
    /// This thread's record of the hold: what tells a re-entry from a forged word.
    _here: HeldHere,
    /// Holds belong to a thread (the lock records its TID): not Send.
    _not_send: PhantomData<*const ()>,
}

impl ConditionGuard<'_> {
    /// Keeps the hold after the guard is gone: give it up later with
    /// [`Condition::release`] (Python style).
    pub fn leak(self) {
        std::mem::forget(self)
    }
}

impl Drop for ConditionGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // A guard dropped in a forked child names the parent's thread: leave it be.
        if current_identity().tid != self.me.tid {
            return;
        }
        // SAFETY: the guard is being dropped, so its holder is done with what the
        // lock protects (for this hold).
        let _ = unsafe { self.raw.release(self.me) };
    }
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
    fn from_obj(obj: Object<RawCondition>) -> Condition {
        Condition {
            obj,
            probe: DEFAULT_PROBE,
        }
    }

    /// Blocks until the calling thread holds the condition's lock (at once, one
    /// more hold, if it holds it already). `Err(OwnerDied(guard))`: taken over from a
    /// holder that died.
    #[inline]
    pub fn acquire(&self) -> LockResult<ConditionGuard<'_>> {
        let me = current_identity();
        let a = match self.reenter(me) {
            Some(a) => a,
            None => self.obj.raw().acquire_first(me, None, self.probe),
        };
        unless_broken(self.obj.broken(), lock_result(a, || self.guard(me)))
    }
    /// Takes the lock only if that needs no waiting (the holder always may).
    pub fn try_acquire(&self) -> TryLockResult<ConditionGuard<'_>> {
        let me = current_identity();
        let a = match self.reenter(me) {
            Some(a) => a,
            None => self.obj.raw().try_acquire_first(me),
        };
        try_unless_broken(self.obj.broken(), try_result(a, || self.guard(me)))
    }
    /// Waits at most `timeout` for the lock; `Err(WouldBlock)` after that.
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<ConditionGuard<'_>> {
        let me = current_identity();
        let a = match self.reenter(me) {
            Some(a) => a,
            None => self
                .obj
                .raw()
                .acquire_first(me, deadline_after(timeout), self.probe),
        };
        try_unless_broken(self.obj.broken(), try_result(a, || self.guard(me)))
    }

    /// One more hold if the calling thread holds the lock through a hold of its own
    /// (a live or leaked guard: this thread's record says so). A word naming this
    /// thread without such a record is forged: `None`, and the first-hold path takes
    /// it over as the raw lock does any impossible holder.
    #[inline]
    fn reenter(&self, me: Identity) -> Option<Acquire> {
        let raw = self.obj.raw();
        if raw.lock().holder() == Some(me.tid) && held_here(raw.lock(), me) && raw.reenter(me) {
            Some(Acquire::Acquired)
        } else {
            None
        }
    }

    /// Gives up one hold of the calling thread, Python style (see
    /// [`ConditionGuard::leak`]). `Err(NotOwner)` if the calling thread does not hold
    /// the lock (Python's `RuntimeError`). As for [`RLock::release`](crate::RLock::release),
    /// pair it with `leak`: a live guard's drop would give up another hold.
    pub fn release(&self) -> Result<()> {
        let raw = self.obj.raw();
        let me = current_identity();
        if !held_here(raw.lock(), me) {
            return Err(Error::NotOwner);
        }
        // SAFETY: the caller gives up its hold and, with it, access to the state.
        match unsafe { raw.release(me) } {
            Ok(_) => {
                HeldHere::forget_one(raw.lock(), me);
                Ok(())
            }
            Err(_) => Err(Error::NotOwner),
        }
    }

    /// How many holds the calling thread has on the lock (0: none).
    pub fn depth(&self) -> u32 {
        let (raw, me) = (self.obj.raw(), current_identity());
        if held_here(raw.lock(), me) {
            raw.depth(me)
        } else {
            0
        }
    }

    /// True if the calling thread holds the lock (Python's `RLock._is_owned`).
    pub fn is_owned(&self) -> bool {
        self.depth() > 0
    }

    #[inline]
    fn guard(&self, me: Identity) -> ConditionGuard<'_> {
        let raw = self.obj.raw();
        ConditionGuard {
            raw,
            me,
            _here: HeldHere::new(raw.lock(), me),
            _not_send: PhantomData,
        }
    }

    fn wait_until(&self, g: &mut ConditionGuard<'_>, deadline: Deadline) -> LockResult<bool> {
        if current_identity().tid != g.me.tid {
            // A guard inherited through fork: this thread does not hold the lock, so
            // it must neither release nor wait with it.
            return Ok(false);
        }
        if g.raw.depth(g.me) == 0 {
            // The hold this guard stood for was given up (`release`): nothing to
            // release and wait with.
            return Ok(false);
        }
        if self.obj.broken() {
            // Nobody can notify through a truncated segment: waiting would never end.
            return Err(OwnerDied::new(false));
        }
        // The sleep wakes at each probe to check for truncation (cheaply: the flag,
        // and the file's size every 16th probe), keeping its registration, so no
        // notify is missed; the wait ends once the segment is found broken.
        let probes = Cell::new(0u32);
        let stop = || {
            let n = probes.get().wrapping_add(1);
            probes.set(n);
            self.obj.broken() || (n % 16 == 0 && self.obj.is_broken())
        };
        // SAFETY: `g.me` holds the guard's condition's lock (checked), and the `&mut`
        // borrow keeps the caller off the protected state until we relock.
        let w = unsafe { g.raw.wait_unless(g.me, deadline, self.probe, Some(&stop)) };
        if self.obj.broken() {
            return Err(OwnerDied::new(w.notified));
        }
        relocked(w.notified, w.recovered)
    }

    /// Releases the lock (every hold of the calling thread), waits for a notify, and
    /// takes the lock again at the same depth. Waits may end spuriously: re-check the
    /// state (or use [`wait_while`](Condition::wait_while)).
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
                if self.obj.broken() {
                    return Err(OwnerDied::new(()));
                }
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

    /// Wakes at most `n` waiters. With or without the lock held: it takes no lock
    /// and never blocks (a lock word forged by another process cannot hang it).
    #[inline]
    pub fn notify(&self, n: usize) {
        self.notify_count(n);
    }

    /// Wakes every waiter.
    #[inline]
    pub fn notify_all(&self) {
        self.notify_count(usize::MAX);
    }

    /// As [`notify`](Condition::notify), returning how many waits it ended.
    pub fn notify_count(&self, n: usize) -> usize {
        self.obj.raw().notify(u32::try_from(n).unwrap_or(u32::MAX)) as usize
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
