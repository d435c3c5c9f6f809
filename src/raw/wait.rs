//! Blocking in one place: the sleep/wake handshakes every primitive uses.
//!
//! A waiter that finds its predicate false must sleep on a futex word without
//! missing the wake-up of a peer that makes the predicate true meanwhile. Every
//! handshake in the crate is one of these (each pair of ends carries the same
//! `SYNC(label)`):
//!
//! | object | futex word | who may sleep (the hint a waker reads) | label | why no wake-up is lost |
//! |---|---|---|---|---|
//! | `RawLock` | `word` | `WAITERS` bit of the word itself | `lock` | the bit is set by CAS on the word the waiter sleeps on; the releaser swaps the word and sees the bit; the kernel re-checks the word |
//! | `RawSemaphore` | `value` | [`Sleepers`] `sleepers` | `sem-sleep` | Dekker: waiter `sleepers += 1` then re-reads `value`; releaser bumps `value` then reads `sleepers` (all SeqCst) |
//! | `RawEvent` | `word` | [`Sleepers`] `sleepers` | `event-sleep` | Dekker: waiter `sleepers += 1` then the kernel re-reads the word; `set` moves the word then reads `sleepers` |
//! | `RawCondition` | `seq` | [`Sleepers`] `sleepers` | `cond-sleep` | Dekker: waiter reads `seq`, checks its token, `sleepers += 1`, kernel re-reads `seq`; notifier grants, bumps `seq`, reads `sleepers` |
//! | `RawBarrier` | `word` | [`Sleepers`] `sleepers` | `barrier-sleep` | Dekker: waiter `sleepers += 1`, kernel re-reads the word; the completing party moves the word then reads `sleepers` |
//! | `RawQueue` | `Waiters::word` (not-empty / not-full) | `SLEEPING` bit of that word | `sleep` | the waiter sets the bit (SeqCst RMW + fence) then re-checks the ring; a waker changes the ring, fences, reads the word; any change of the word fails the kernel's re-check |
//! | `RawSpsc` | the side's sleep word | `ASLEEP` value of that word | `spsc-sleep` | the sleeper swaps in `ASLEEP`, fences, re-checks the cursor; the peer stores its cursor, fences, reads the flag |
//!
//! The Dekker handshakes rely on SeqCst accesses alone, which the C11 model orders;
//! loom models SeqCst accesses as AcqRel only (its README, "Unsupported features"),
//! so under `--cfg loom` [`Sleepers`] and the queue's waker add the `fence(SeqCst)`
//! ([`model_seqcst`]) that gives the model the order C11 already guarantees
//! (nothing changes in a normal build).
//!
//! Under loom a futex wait really parks (see `crate::sync`), so a model in which a
//! waiter sleeps with nobody left to wake it fails with a deadlock.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{futex_wait, futex_wake, futex_wake_all, Deadline, WaitResult};

/// Under loom only: the SeqCst fence that stands for the order C11 gives a SeqCst
/// store followed by a SeqCst load (loom treats both as AcqRel). A no-op otherwise;
/// call it between the two, on the side of a Dekker handshake that has no fence.
#[inline(always)]
pub(crate) fn model_seqcst() {
    #[cfg(loom)]
    crate::sync::atomic::fence(Ordering::SeqCst);
}

/// How many threads may be asleep on an object's futex word: the waiter's half of a
/// Dekker handshake is [`announce`](Self::announce) then a re-check (the kernel's,
/// in [`sleep`](Self::sleep)); the waker's half is changing the word SeqCst then
/// [`wake`](Self::wake) / [`wake_all`](Self::wake_all), which skip the syscall when
/// nobody announced.
///
/// The count is a hint and untrusted: too high costs a syscall, and a forged 0 can
/// only delay a sleeper until its next probe.
#[repr(transparent)]
#[derive(Debug)]
pub(crate) struct Sleepers(AtomicU32);

impl Sleepers {
    /// Nobody asleep (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Sleepers {
        Sleepers(AtomicU32::new(0))
    }
    /// Nobody asleep (the same as all-zero bytes).
    #[cfg(loom)]
    pub(crate) fn new() -> Sleepers {
        Sleepers(AtomicU32::new(0))
    }

    /// Sets the count to 0 (for initialising an image before anyone shares it).
    #[inline]
    pub(crate) fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// A snapshot of the count.
    #[inline]
    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// The waiter's announcement (`sleepers += 1`, SeqCst): after it, the caller
    /// re-checks its predicate (SeqCst) or lets the kernel do so, then calls
    /// [`leave`](Self::leave).
    #[inline]
    pub(crate) fn announce(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        model_seqcst();
    }

    /// Withdraws an announcement (saturating: a corrupted count must not wrap into
    /// "always wake").
    #[inline]
    pub(crate) fn leave(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
    }

    /// Announces, sleeps while `*word == expected` (until `deadline`), leaves.
    #[inline]
    pub(crate) fn sleep(&self, word: &AtomicU32, expected: u32, deadline: Deadline) -> WaitResult {
        self.announce();
        let r = futex_wait(word, expected, deadline);
        self.leave();
        r
    }

    /// True if someone announced: the waker's half, after its SeqCst change.
    #[inline]
    fn any(&self) -> bool {
        model_seqcst();
        self.0.load(Ordering::SeqCst) != 0
    }

    /// Wakes up to `n` sleepers on `word`, if anyone announced.
    #[inline]
    pub(crate) fn wake(&self, word: &AtomicU32, n: u32) {
        if self.any() {
            futex_wake(word, n);
        }
    }

    /// Wakes every sleeper on `word`, if anyone announced.
    #[inline]
    pub(crate) fn wake_all(&self, word: &AtomicU32) {
        if self.any() {
            futex_wake_all(word);
        }
    }
}

impl Default for Sleepers {
    fn default() -> Self {
        Sleepers::new()
    }
}
