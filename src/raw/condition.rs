//! `RawCondition`: a condition variable with its own robust, re-entrant lock.
//!
//! A sequence-counter condvar (as std's futex condvar) made exact with wake-up
//! tokens. The counts live in one word, `counts` = `gen | waiting | tokens`, changed
//! only by CAS, so `notify` needs no lock and can never block:
//!
//! * `wait` (holding the lock) registers — `waiting += 1` and notes `gen`, in one
//!   CAS — releases the lock fully (every hold: the depth is saved), and sleeps on
//!   `seq`; it ends by taking a token — `tokens -= 1`, only if `gen` moved since it
//!   registered, so a waiter never takes a wake-up granted before it arrived — or on
//!   its deadline by unregistering (`waiting -= 1`); then it relocks and restores the
//!   depth (Python's `_release_save` / `_acquire_restore`);
//! * `notify(n)` grants `k = min(n, waiting)` tokens and bumps `gen` in one CAS, then
//!   bumps `seq` and wakes `k` sleepers. So `notify(n)` ends at most `n` waits, and
//!   with nobody waiting it is one load and no syscall.
//!
//! Each step is one CAS where the lock-based design had a critical section, so the
//! same invariant holds (without crashes): `waiting + tokens` = threads inside
//! `wait`. A waiter that dies inside `wait` leaves the counts one too high; a later
//! `notify` may then grant a token nobody takes, which a later waiter may take as a
//! spurious wake-up — allowed, and absorbed by `wait_while`. A notifier never holds
//! anything, so there is no notifier to recover; a lock holder that dies is
//! recovered like any dead holder.
//!
//! Why notify takes no lock: with the counts under the condition's lock, a
//! `notify` from a thread not holding it had to take it, and a forged lock word
//! naming some live thread would block that `notify` forever. Now nothing another
//! process writes can make `notify` wait: a forged `counts` word only causes
//! spurious wake-ups, and the CAS loop is bounded.
//!
//! Re-entrancy: `depth` counts the holder's holds (as `RawRLock`), read and written
//! only by the holder under the lock (`Relaxed`, ordered by the lock's `SYNC(lock)`).
//!
//! Orderings: `SYNC(cond-sleep)` is the Dekker handshake between a waiter (reads
//! `seq`, checks `counts`, increments `sleepers`, futex-waits on `seq`) and a
//! notifier (CAS on `counts`, bumps `seq`, reads `sleepers`), all SeqCst: either the
//! waiter sees the grant or the notifier sees the sleeper (and the kernel sees `seq`
//! moved). The data the condition protects is ordered by the lock (`SYNC(lock)`).

use super::lock::{Acquire, RawLock};
use super::wait::{spin_until, Probes, Sleepers};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{Deadline, Identity, WaitResult};
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

/// Releasing a condition's lock that the caller does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotHeld;

// ---- the counts word --------------------------------------------------------------

/// `waiting` and `tokens` are 16-bit fields: at most this many of each.
const COUNT_MAX: u32 = 0xFFFF;
const WAITING_SHIFT: u32 = 32;
const TOKENS_SHIFT: u32 = 48;
/// Most CAS attempts one count update makes: each failure means another update
/// succeeded, so only a writer rewriting the word continuously exhausts it.
const CAS_BUDGET: u32 = 1 << 20;

#[inline]
fn gen_of(c: u64) -> u32 {
    c as u32
}
#[inline]
fn waiting_of(c: u64) -> u32 {
    ((c >> WAITING_SHIFT) as u32) & COUNT_MAX
}
#[inline]
fn tokens_of(c: u64) -> u32 {
    ((c >> TOKENS_SHIFT) as u32) & COUNT_MAX
}
#[inline]
fn make_counts(gen: u32, waiting: u32, tokens: u32) -> u64 {
    u64::from(gen)
        | (u64::from(waiting.min(COUNT_MAX)) << WAITING_SHIFT)
        | (u64::from(tokens.min(COUNT_MAX)) << TOKENS_SHIFT)
}

/// A condition variable and the re-entrant lock it waits with.
#[repr(C)]
#[derive(Debug)]
pub struct RawCondition {
    lock: RawLock,
    /// Bumped by every notify that grants wake-ups: the futex word waiters sleep on.
    seq: AtomicU32,
    /// The holder's holds (1.. while held; meaningless while free). Holder only.
    depth: AtomicU32,
    /// The wake-up accounting, changed only by CAS:
    ///
    /// | bits   | meaning                                                   |
    /// |--------|-----------------------------------------------------------|
    /// | 0..32  | `gen`: bumped by every notify that grants wake-ups        |
    /// | 32..48 | `waiting`: waiters not yet granted a wake-up              |
    /// | 48..64 | `tokens`: wake-ups granted and not yet taken              |
    counts: AtomicU64,
    /// Threads that may be asleep on `seq` (a hint: too high only costs a syscall).
    sleepers: Sleepers,
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
            depth: AtomicU32::new(0),
            counts: AtomicU64::new(0),
            sleepers: Sleepers::new(),
            spin: AtomicU32::new(0),
        }
    }
    /// An unlocked condition with no waiters (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawCondition {
        RawCondition {
            lock: RawLock::new(),
            seq: AtomicU32::new(0),
            depth: AtomicU32::new(0),
            counts: AtomicU64::new(0),
            sleepers: Sleepers::new(),
            spin: AtomicU32::new(0),
        }
    }

    /// The condition's lock word (one hold; see [`acquire`](Self::acquire) for the
    /// re-entrant way in).
    #[inline]
    pub fn lock(&self) -> &RawLock {
        &self.lock
    }

    /// Acquires the lock — again, if `me` holds it already (one more hold) — waiting
    /// until `deadline`; a holder that died is detected within `probe`. Trusts a
    /// word that names `me` as `me`'s own hold; callers that can tell a real hold
    /// from a forged one use [`reenter`](Self::reenter) and
    /// [`acquire_first`](Self::acquire_first) instead.
    #[inline]
    pub fn acquire(&self, me: Identity, deadline: Deadline, probe: Duration) -> Acquire {
        if self.reenter(me) {
            return Acquire::Acquired;
        }
        self.acquire_first(me, deadline, probe)
    }

    /// As [`acquire`](Self::acquire) without waiting.
    pub fn try_acquire(&self, me: Identity) -> Acquire {
        if self.reenter(me) {
            return Acquire::Acquired;
        }
        self.try_acquire_first(me)
    }

    /// One more hold, if `me` holds the lock (saturating); false if it does not.
    #[inline]
    pub fn reenter(&self, me: Identity) -> bool {
        if !self.lock.is_held_by(me) {
            return false;
        }
        let d = self.depth.load(Ordering::Relaxed).max(1);
        self.depth.store(d.saturating_add(1), Ordering::Relaxed);
        true
    }

    /// Takes the lock as a first hold (depth 1), waiting until `deadline`. A word
    /// naming `me` is not re-entered: the raw lock treats it as any holder.
    #[inline]
    pub fn acquire_first(&self, me: Identity, deadline: Deadline, probe: Duration) -> Acquire {
        let a = self.lock.lock(me, deadline, probe);
        if a.is_held() {
            self.depth.store(1, Ordering::Relaxed);
        }
        a
    }

    /// As [`acquire_first`](Self::acquire_first) without waiting.
    pub fn try_acquire_first(&self, me: Identity) -> Acquire {
        let a = self.lock.try_lock(me);
        if a.is_held() {
            self.depth.store(1, Ordering::Relaxed);
        }
        a
    }

    /// Gives up one hold of `me`; the last one releases the lock. `Ok(true)` when the
    /// lock was released, `Ok(false)` when `me` still holds it, `Err(NotHeld)` when
    /// `me` does not hold it.
    ///
    /// # Safety
    /// As [`RawLock::unlock`] for the last hold: the caller is done with everything
    /// the lock protects.
    #[inline]
    pub unsafe fn release(&self, me: Identity) -> Result<bool, NotHeld> {
        if !self.lock.is_held_by(me) {
            return Err(NotHeld);
        }
        let d = self.depth.load(Ordering::Relaxed);
        if d > 1 {
            self.depth.store(d - 1, Ordering::Relaxed);
            return Ok(false);
        }
        self.depth.store(0, Ordering::Relaxed);
        // SAFETY: `me` holds the lock (checked) and gives up its last hold; the
        // caller vouches it is done with the protected data.
        unsafe { self.lock.unlock(me) };
        Ok(true)
    }

    /// How many holds `me` has (0 if it does not hold the lock).
    #[inline]
    pub fn depth(&self, me: Identity) -> u32 {
        if self.lock.is_held_by(me) {
            self.depth.load(Ordering::Relaxed).max(1)
        } else {
            0
        }
    }

    /// Releases the lock fully (every hold), waits for a notify or `deadline`, and
    /// relocks with the same depth (always, even after the deadline; relocking
    /// detects a dead holder within `probe`).
    ///
    /// # Safety
    /// `me` holds the lock, and is done with the data it protects until this returns
    /// (another thread takes the lock meanwhile).
    pub unsafe fn wait(&self, me: Identity, deadline: Deadline, probe: Duration) -> Waited {
        // SAFETY: the caller's contract is ours.
        unsafe { self.wait_unless(me, deadline, probe, None) }
    }

    /// As [`wait`](Self::wait); with `stop`, the sleep also wakes at least every
    /// `probe`, and the wait ends as at its deadline (unregistered, not notified unless
    /// a token came meanwhile, relocked) once `stop` returns true: for a caller whose
    /// segment may be lost, where nobody could ever notify. The registration is kept
    /// across those wake-ups, so no notify is missed between them.
    ///
    /// # Safety
    /// As for [`wait`](Self::wait).
    pub unsafe fn wait_unless(
        &self,
        me: Identity,
        deadline: Deadline,
        probe: Duration,
        stop: Option<&dyn Fn() -> bool>,
    ) -> Waited {
        // Under the lock: register, noting the generation (one CAS).
        let Some(start) = self.register() else {
            // 65535 waiters already: end at once, as a spurious wake-up.
            return Waited {
                notified: true,
                recovered: false,
            };
        };
        let depth = self.depth.load(Ordering::Relaxed).max(1);
        // SAFETY: `me` holds the lock (the contract); all its holds are given up here
        // and restored below.
        unsafe { self.lock.unlock(me) };
        let mut probes = stop.map(|_| Probes::new(probe));
        let notified = loop {
            // SYNC(cond-sleep): read `seq` before checking for a grant.
            let seen = self.seq.load(Ordering::SeqCst);
            if self.take_token(start) {
                break true;
            }
            let Some(probes) = probes.as_mut() else {
                let r = self.sleep(seen, deadline);
                if r == WaitResult::TimedOut || expired(deadline) {
                    break self.unregister(start);
                }
                continue;
            };
            let r = self.sleep(seen, Some(probes.next_wake(deadline)));
            if expired(deadline) || (probes.due(r, deadline) && stop.is_some_and(|f| f())) {
                break self.unregister(start);
            }
        };
        let recovered = self.lock.lock(me, None, probe) == Acquire::Recovered;
        self.depth.store(depth, Ordering::Relaxed);
        Waited {
            notified,
            recovered,
        }
    }

    /// `waiting += 1`; returns the generation it registered at (`None` when the
    /// count is full, or the word changes too often to update).
    fn register(&self) -> Option<u32> {
        // SYNC(cond-sleep)
        let mut c = self.counts.load(Ordering::SeqCst);
        for _ in 0..CAS_BUDGET {
            let w = waiting_of(c);
            if w >= COUNT_MAX {
                return None;
            }
            let next = make_counts(gen_of(c), w + 1, tokens_of(c));
            match self
                .counts
                .compare_exchange(c, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(gen_of(c)),
                Err(x) => c = x,
            }
        }
        None
    }

    /// Takes a token if one was granted since generation `start`.
    fn take_token(&self, start: u32) -> bool {
        // SYNC(cond-sleep)
        let mut c = self.counts.load(Ordering::SeqCst);
        for _ in 0..CAS_BUDGET {
            let t = tokens_of(c);
            if gen_of(c) == start || t == 0 {
                return false;
            }
            let next = make_counts(gen_of(c), waiting_of(c), t - 1);
            match self
                .counts
                .compare_exchange(c, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(x) => c = x,
            }
        }
        false
    }

    /// The deadline passed: take a token if one came meanwhile (`true`), else give up
    /// the registration (`false`).
    fn unregister(&self, start: u32) -> bool {
        let mut c = self.counts.load(Ordering::SeqCst);
        for _ in 0..CAS_BUDGET {
            let (w, t) = (waiting_of(c), tokens_of(c));
            let (next, notified) = if gen_of(c) != start && t > 0 {
                (make_counts(gen_of(c), w, t - 1), true)
            } else {
                // `gen` unchanged: our registration is still in `waiting` (only a
                // grant moves it, and every grant bumps `gen`). Saturating: a forged
                // word may say 0.
                (make_counts(gen_of(c), w.saturating_sub(1), t), false)
            };
            match self
                .counts
                .compare_exchange(c, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return notified,
                Err(x) => c = x,
            }
        }
        false
    }

    /// Spins briefly, then sleeps while `seq == seen` (until `deadline`).
    fn sleep(&self, seen: u32, deadline: Deadline) -> WaitResult {
        if self.seq.load(Ordering::Relaxed) != seen
            || spin_until(&self.spin, || self.seq.load(Ordering::Relaxed) != seen)
        {
            return WaitResult::Woken;
        }
        // SYNC(cond-sleep): announce ourselves, then the kernel re-checks `seq`.
        self.sleepers.sleep(&self.seq, seen, deadline)
    }

    /// Ends up to `n` waits (`u32::MAX`: all of them); returns how many wake-ups it
    /// granted. Needs no lock and never blocks; no syscall unless someone sleeps.
    pub fn notify(&self, n: u32) -> u32 {
        // SYNC(cond-sleep)
        let mut c = self.counts.load(Ordering::SeqCst);
        let mut granted = None;
        for _ in 0..CAS_BUDGET {
            let w = waiting_of(c);
            let k = w.min(n);
            if k == 0 {
                return 0;
            }
            let next = make_counts(gen_of(c).wrapping_add(1), w - k, tokens_of(c) + k);
            match self
                .counts
                .compare_exchange(c, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    granted = Some((k, k == w));
                    break;
                }
                Err(x) => c = x,
            }
        }
        let Some((k, everyone)) = granted else {
            return 0;
        };
        // SYNC(cond-sleep): SeqCst, after the grant, before the load of `sleepers`.
        self.seq.fetch_add(1, Ordering::SeqCst);
        // SYNC(cond-sleep)
        if everyone {
            self.sleepers.wake_all(&self.seq);
        } else {
            self.sleepers.wake(&self.seq, k);
        }
        k
    }

    /// Waiters not yet notified (a snapshot).
    #[inline]
    pub fn waiting(&self) -> u32 {
        waiting_of(self.counts.load(Ordering::Relaxed))
    }
}
