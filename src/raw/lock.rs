//! `RawLock`: a robust mutual-exclusion lock on one shared futex word.
//!
//! Robust means: when the holder dies (SIGKILL, OOM, its thread exits) the next
//! acquirer takes the lock over and is told so ([`Acquire::Recovered`]), within one
//! probe interval — with `std`, usually within a fraction of a millisecond (see
//! "Costs"). Owners are recorded as [`Identity`] (TID + thread start time), so a
//! TID reused by a thread started in another clock tick is not mistaken for the dead
//! owner (reuse within one tick is; see [`crate::sys::ident`]).
//!
//! ## Impossible holders
//! The word is untrusted: anyone who can write the segment can name any thread in it.
//! Two holders cannot be real, and are taken over like a dead one
//! ([`Acquire::Recovered`]) instead of being waited for: a kernel thread (it never
//! runs our code; [`owner_is_dead`] says so), and the acquiring thread itself (the
//! lock is not re-entrant, so a thread that is acquiring it does not hold it).
//! Callers that may hold the lock already must find out on their own before they
//! call (the named handles keep a per-thread record of the locks their guards hold);
//! [`RawRLock`](super::RawRLock) checks [`RawLock::is_held_by`] first.
//!
//! Orderings: acquiring is an Acquire CAS on `word`, releasing a Release CAS/swap on
//! `word` (`SYNC(lock)`): what the holder wrote is visible to the next holder. The
//! `owner` record is advisory (used only to judge liveness) and written Relaxed; a
//! holder clears it before releasing, so a record that names the word's TID always
//! belongs to the current holder (never to a previous holder whose TID was reused).
//!
//! Costs: uncontended acquire + release is two CAS and no syscall. A contended
//! acquire polls briefly (`Spin`, adaptive per lock), then sets `WAITERS` and
//! sleeps on the word; it wakes on a `Probes` schedule (after about 0.6 ms, then at
//! doubling intervals up to the probe interval) to check that the holder lives. From
//! its first probe on it also watches the holder (`Probes::watch`): with `std`, the
//! death watcher wakes it as soon as the holder's thread exits, so a holder that
//! dies during a long wait is recovered within a fraction of a millisecond (the
//! probe interval stays the bound when watching is not possible). A waiter that
//! sleeps through a change of holder keeps watching the old one until its next
//! timed probe.
//!
//! The blocking helpers every primitive shares (`Spin` / `spin_until`, `Probes`)
//! live in the crate-private `raw::wait` module.

use super::wait::{Probes, Spin};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{
    futex_wait, futex_wake, owner_is_dead, spin_hint, Deadline, Identity, Task, SPIN_LIMIT,
};
use crate::sys::clock::expired;
use crate::sys::ident::MAX_TID;
use core::time::Duration;

/// Owner TID bits of the lock word.
const TID_MASK: u32 = MAX_TID;
/// Someone may be sleeping on the word: the releaser must `futex_wake`.
const WAITERS: u32 = 1 << 31;
/// The unlocked state.
const UNLOCKED: u32 = 0;

/// Default interval at which a waiter checks that the holder is still alive.
pub const DEFAULT_PROBE: Duration = Duration::from_millis(10);

#[inline]
fn holder_tid(state: u32) -> u32 {
    state & TID_MASK
}
#[inline]
fn has_waiters(state: u32) -> bool {
    state & WAITERS != 0
}
/// The holder named in `state`, as the death watcher is asked to watch it (id 0 when
/// unlocked, which is never watched).
#[inline]
fn holder_task(state: u32) -> [Task; 1] {
    [Task::Thread(holder_tid(state))]
}

/// How an acquisition ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Acquire {
    /// The caller holds the lock.
    Acquired,
    /// The caller holds the lock, taken over from a holder that died holding it: the
    /// data it protects may be half-updated.
    Recovered,
    /// The lock is held by a live thread (try) or the deadline passed (timed).
    WouldBlock,
}

impl Acquire {
    /// True for `Acquired` and `Recovered`.
    #[inline]
    pub fn is_held(self) -> bool {
        !matches!(self, Acquire::WouldBlock)
    }
}

/// A robust, process-shared lock: one 32-bit futex word plus the owner's record.
#[repr(C)]
#[derive(Debug)]
pub struct RawLock {
    /// The lock word:
    ///
    /// | bits   | meaning                                               |
    /// |--------|-------------------------------------------------------|
    /// | 0..22  | TID of the holder; 0 = unlocked                       |
    /// | 22..31 | unused (ignored if set)                               |
    /// | 31     | `WAITERS`: a thread may sleep here; release must wake |
    word: AtomicU32,
    /// How many polls recent contended acquires needed (a hint, see [`Spin`]).
    spin: AtomicU32,
    /// [`Identity::info`] of the holder, stored right after the winning CAS; valid only
    /// while its TID equals the word's.
    owner: AtomicU64,
}

// SAFETY: repr(C), atomics only, all-zero = unlocked, no pointers, align 8.
unsafe impl super::SharedState for RawLock {}

impl Default for RawLock {
    fn default() -> Self {
        RawLock::new()
    }
}

impl RawLock {
    /// An unlocked lock (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawLock {
        RawLock {
            word: AtomicU32::new(UNLOCKED),
            spin: AtomicU32::new(0),
            owner: AtomicU64::new(0),
        }
    }
    /// An unlocked lock (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawLock {
        RawLock {
            word: AtomicU32::new(UNLOCKED),
            spin: AtomicU32::new(0),
            owner: AtomicU64::new(0),
        }
    }

    /// Acquires the lock, waiting until `deadline`; a holder that died is detected
    /// within `probe` and the lock taken over ([`Acquire::Recovered`]).
    #[inline]
    pub fn lock(&self, me: Identity, deadline: Deadline, probe: Duration) -> Acquire {
        if self.try_lock_fast(me) {
            return Acquire::Acquired;
        }
        self.lock_contended(me, deadline, probe)
    }

    /// Takes the lock if it is free: one CAS.
    #[inline]
    pub fn try_lock_fast(&self, me: Identity) -> bool {
        // SYNC(lock): Acquire pairs with the Release in unlock.
        if self
            .word
            .compare_exchange(UNLOCKED, me.tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.owner.store(me.info(), Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Takes the lock if it is free or its holder is dead; never sleeps. Checking the
    /// holder's liveness reads `/proc`, so a held lock costs a syscall here.
    pub fn try_lock(&self, me: Identity) -> Acquire {
        if self.try_lock_fast(me) {
            return Acquire::Acquired;
        }
        let state = self.word.load(Ordering::Relaxed);
        if holder_tid(state) == 0 {
            return if self.take(state, me) {
                Acquire::Acquired
            } else {
                Acquire::WouldBlock
            };
        }
        if holder_tid(state) == me.tid {
            // Names us, who do not hold it (see "Impossible holders").
            return if self.take(state, me) {
                Acquire::Recovered
            } else {
                Acquire::WouldBlock
            };
        }
        if self.holder_is_dead(state) && self.take(state, me) {
            return Acquire::Recovered;
        }
        Acquire::WouldBlock
    }

    /// CAS `state` → held by `me`, keeping WAITERS (others may sleep).
    #[inline]
    fn take(&self, state: u32, me: Identity) -> bool {
        self.take_state(state, me).is_ok()
    }

    /// As [`take`](Self::take); on failure, the state found instead.
    #[inline]
    fn take_state(&self, state: u32, me: Identity) -> Result<(), u32> {
        // SYNC(lock): Acquire pairs with the Release in unlock.
        self.word.compare_exchange(
            state,
            me.tid | (state & WAITERS),
            Ordering::Acquire,
            Ordering::Relaxed,
        )?;
        self.owner.store(me.info(), Ordering::Relaxed);
        Ok(())
    }

    /// Polls briefly (see [`Spin`]) while the lock is held and nobody sleeps on it;
    /// returns the last state seen.
    #[inline]
    fn spin(&self) -> u32 {
        let mut s = self.word.load(Ordering::Relaxed);
        if SPIN_LIMIT == 0 || holder_tid(s) == 0 || has_waiters(s) {
            return s;
        }
        let spin = Spin::start(&self.spin);
        for _ in 0..spin.budget() {
            spin_hint();
            s = self.word.load(Ordering::Relaxed);
            if holder_tid(s) == 0 {
                spin.succeeded(&self.spin);
                return s;
            }
            if has_waiters(s) {
                // Someone sleeps: the lock goes to a woken sleeper, not to spinners.
                return s;
            }
        }
        spin.failed(&self.spin);
        s
    }

    #[cold]
    fn lock_contended(&self, me: Identity, deadline: Deadline, probe: Duration) -> Acquire {
        let mut state = self.spin();
        let mut probes = Probes::new(probe);
        loop {
            if holder_tid(state) == 0 {
                // Free. Take it with WAITERS kept set: we cannot know whether others
                // still sleep, so our release must wake one (as std's futex mutex).
                let want = me.tid | WAITERS;
                // SYNC(lock): Acquire pairs with the Release in unlock.
                match self
                    .word
                    .compare_exchange(state, want, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => {
                        self.owner.store(me.info(), Ordering::Relaxed);
                        return Acquire::Acquired;
                    }
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if holder_tid(state) == me.tid {
                // Names us, who do not hold it: forged or garbage (see "Impossible
                // holders"); waiting for ourselves would never end.
                match self.take_state(state, me) {
                    Ok(()) => return Acquire::Recovered,
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if !has_waiters(state) {
                if let Err(s) = self.word.compare_exchange(
                    state,
                    state | WAITERS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = s;
                    continue;
                }
                state |= WAITERS;
            }
            let r = futex_wait(&self.word, state, Some(probes.next_wake(deadline)));
            // Probe on schedule even when woken (EINTR, or peers churning the word).
            if probes.due(r, deadline) {
                let now = self.word.load(Ordering::Relaxed);
                // Watch the holder first, then probe it (see `Probes::watch`): its
                // death from now on wakes us at once. A holder watched since an earlier
                // probe and not seen exiting is alive: no `/proc` read.
                let alive = probes.watch(&self.word, &holder_task(now));
                if !alive && holder_tid(now) != 0 && self.holder_is_dead(now) && self.take(now, me)
                {
                    return Acquire::Recovered;
                }
                if expired(deadline) {
                    return Acquire::WouldBlock;
                }
            }
            state = self.spin();
        }
    }

    /// True when the holder named in `state` has certainly exited and nothing changed
    /// while we looked.
    #[cold]
    fn holder_is_dead(&self, state: u32) -> bool {
        let tid = holder_tid(state);
        if tid == 0 {
            return false;
        }
        // SYNC(lock): an Acquire read of the word sees the record as of that holder's
        // acquisition (the previous holder cleared its own before releasing).
        if self.word.load(Ordering::Acquire) != state {
            return false;
        }
        let info = self.owner.load(Ordering::Relaxed);
        let recorded = Identity::from_info(info);
        // The record lags the CAS by a store: if it names someone else, the holder has
        // not written it yet, and only the TID's existence can be judged.
        let holder = if recorded.tid == tid {
            recorded
        } else {
            Identity { tid, start: 0 }
        };
        owner_is_dead(holder)
            && self.word.load(Ordering::Relaxed) == state
            && self.owner.load(Ordering::Relaxed) == info
    }

    /// Releases the lock. Does nothing if `me` is not the holder (e.g. a guard
    /// inherited by a forked child, whose thread has another TID).
    ///
    /// # Safety
    /// The caller must be done with everything the lock protects: after this returns
    /// another thread may take the lock and write it.
    #[inline]
    pub unsafe fn unlock(&self, me: Identity) {
        let s = self.word.load(Ordering::Relaxed);
        if holder_tid(s) != me.tid {
            return;
        }
        // Forget the owner record first, so that it never names a previous holder
        // while the next one is between its CAS and its own record (see
        // `holder_is_dead`).
        self.owner.store(0, Ordering::Relaxed);
        // SYNC(lock): Release pairs with the Acquire CAS of the next holder.
        if self
            .word
            .compare_exchange(me.tid, UNLOCKED, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow(me);
        }
    }

    #[cold]
    fn unlock_slow(&self, me: Identity) {
        let mut s = self.word.load(Ordering::Relaxed);
        while holder_tid(s) == me.tid {
            // SYNC(lock): Release pairs with the Acquire CAS of the next holder.
            match self
                .word
                .compare_exchange_weak(s, UNLOCKED, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if has_waiters(s) {
                        futex_wake(&self.word, 1);
                    }
                    return;
                }
                Err(x) => s = x,
            }
        }
    }

    /// True while some thread holds the lock (a snapshot).
    #[inline]
    pub fn is_locked(&self) -> bool {
        holder_tid(self.word.load(Ordering::Relaxed)) != 0
    }

    /// True if `me` holds the lock (its TID is in the word and its record is ours).
    #[inline]
    pub fn is_held_by(&self, me: Identity) -> bool {
        holder_tid(self.word.load(Ordering::Relaxed)) == me.tid
            && self.owner.load(Ordering::Relaxed) == me.info()
    }

    /// The current holder's TID, if held (a snapshot).
    #[inline]
    pub fn holder(&self) -> Option<u32> {
        match holder_tid(self.word.load(Ordering::Relaxed)) {
            0 => None,
            t => Some(t),
        }
    }

    /// True if a waiter may be asleep on the lock (`WAITERS` is set; a snapshot, and
    /// the flag stays set after the last sleeper left until the next release).
    #[inline]
    pub fn may_have_sleepers(&self) -> bool {
        has_waiters(self.word.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use super::*;

    fn try_from_another_thread(lock: &RawLock) -> Acquire {
        std::thread::scope(|s| {
            s.spawn(|| lock.try_lock(crate::sync::current_identity()))
                .join()
                .unwrap()
        })
    }

    #[test]
    fn a_live_holder_is_not_taken_over() {
        let lock = RawLock::new();
        let me = crate::sync::current_identity();
        assert!(lock.try_lock_fast(me));
        assert_eq!(try_from_another_thread(&lock), Acquire::WouldBlock);
        // SAFETY: we hold it and protect nothing.
        unsafe { lock.unlock(me) };
        assert!(!lock.is_locked());
    }

    #[test]
    fn a_reused_tid_is_not_mistaken_for_the_dead_holder() {
        // The holder died and its TID now belongs to a live thread (us) that started
        // at another time: the start time in the record tells them apart.
        let lock = RawLock::new();
        let me = crate::sync::current_identity();
        let ghost = Identity {
            tid: me.tid,
            start: me.start + 1,
        };
        lock.word.store(ghost.tid, Ordering::Relaxed);
        lock.owner.store(ghost.info(), Ordering::Relaxed);
        assert_eq!(try_from_another_thread(&lock), Acquire::Recovered);
    }

    #[test]
    fn a_word_naming_the_acquirer_itself_is_taken_over() {
        // RawLock is not re-entrant: a thread acquiring it does not hold it, whatever
        // the word says (with a matching record, or a lagging one).
        let lock = RawLock::new();
        let me = crate::sync::current_identity();
        for record in [me.info(), 0] {
            lock.word.store(me.tid | WAITERS, Ordering::Relaxed);
            lock.owner.store(record, Ordering::Relaxed);
            let a = lock.lock(me, Some(crate::sync::Instant::now()), DEFAULT_PROBE);
            assert_eq!(a, Acquire::Recovered);
            assert!(lock.is_held_by(me));
            assert!(
                has_waiters(lock.word.load(Ordering::Relaxed)),
                "sleepers kept"
            );
            // SAFETY: we hold it and protect nothing.
            unsafe { lock.unlock(me) };
            lock.word.store(me.tid, Ordering::Relaxed);
            lock.owner.store(record, Ordering::Relaxed);
            assert_eq!(lock.try_lock(me), Acquire::Recovered);
            // SAFETY: as above.
            unsafe { lock.unlock(me) };
            assert!(!lock.is_locked());
        }
    }

    #[test]
    fn unlock_by_a_non_holder_changes_nothing() {
        let lock = RawLock::new();
        let me = crate::sync::current_identity();
        assert!(lock.try_lock_fast(me));
        let other = Identity {
            tid: me.tid % MAX_TID + 1,
            start: 1,
        };
        // SAFETY: a non-holder's unlock is documented to do nothing.
        unsafe { lock.unlock(other) };
        assert!(lock.is_held_by(me));
    }
}
