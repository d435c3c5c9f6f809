//! `RawEvent`: a flag that waiters sleep on until it is set.
//!
//! The word is `(generation << 1) | SET`. `set` bumps the generation as it raises the
//! flag, `clear` only lowers the flag, so the word a waiter saw with the flag down
//! changes *only* through a `set`: a waiter that finds the word changed returns true
//! even if a `clear` followed at once (a set-then-clear pulse is never missed). The
//! generation has 31 bits; a waiter could only miss a pulse if exactly 2^31 sets
//! happened while it was descheduled.
//!
//! Orderings: `set` is a Release RMW, waiters read the word with Acquire
//! (`SYNC(event)`): what the setter wrote before `set` is visible to every waiter it
//! releases. Sleeping is the Dekker handshake of `SYNC(event-sleep)` (SeqCst): a
//! sleeper increments `sleepers` before the kernel re-checks the word; a setter
//! changes the word before it reads `sleepers`.
//!
//! A setter that dies never leaves waiters hung: they keep waiting for the next
//! `set`, and their deadlines hold.

use super::wait::{spin_until, Sleepers};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Deadline, WaitResult};
use crate::sys::clock::expired;

/// The flag bit of the word.
const SET: u32 = 1;
/// One generation.
const GENERATION_ONE: u32 = 2;

#[inline]
fn is_set(word: u32) -> bool {
    word & SET != 0
}

/// An event flag, as Python's `Event`.
#[repr(C)]
#[derive(Debug)]
pub struct RawEvent {
    /// | bits  | meaning                                        |
    /// |-------|------------------------------------------------|
    /// | 0     | `SET`: the flag                                |
    /// | 1..32 | generation: how many times the flag was raised |
    word: AtomicU32,
    /// Threads that may be asleep on `word` (a hint: too high only costs a syscall).
    sleepers: Sleepers,
    /// How many polls recent waits needed (a hint for adaptive spinning).
    spin: AtomicU32,
}

// SAFETY: repr(C), atomics only; all-zero = clear, nobody asleep; no pointers.
unsafe impl super::SharedState for RawEvent {}

impl Default for RawEvent {
    fn default() -> Self {
        RawEvent::new()
    }
}

impl RawEvent {
    /// A clear event (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawEvent {
        RawEvent {
            word: AtomicU32::new(0),
            sleepers: Sleepers::new(),
            spin: AtomicU32::new(0),
        }
    }
    /// A clear event (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawEvent {
        RawEvent {
            word: AtomicU32::new(0),
            sleepers: Sleepers::new(),
            spin: AtomicU32::new(0),
        }
    }

    /// Raises the flag and wakes every waiter. Does nothing if it is already set.
    pub fn set(&self) {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if is_set(w) {
                return;
            }
            let next = w.wrapping_add(GENERATION_ONE) | SET;
            // SYNC(event): Release pairs with the waiters' Acquire loads.
            // SYNC(event-sleep): SeqCst, ordered before the load of `sleepers`.
            match self
                .word
                .compare_exchange_weak(w, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(x) => w = x,
            }
        }
        // SYNC(event-sleep)
        self.sleepers.wake_all(&self.word);
    }

    /// Lowers the flag (waiters that already saw it raised are not affected).
    #[inline]
    pub fn clear(&self) {
        self.word.fetch_and(!SET, Ordering::Relaxed);
    }

    /// True while the flag is raised (a snapshot).
    #[inline]
    pub fn is_set(&self) -> bool {
        // SYNC(event)
        is_set(self.word.load(Ordering::Acquire))
    }

    /// Waits until the flag is raised, or was raised since the call began, or
    /// `deadline` passes. True unless the deadline passed.
    #[inline]
    pub fn wait(&self, deadline: Deadline) -> bool {
        // SYNC(event)
        let seen = self.word.load(Ordering::Acquire);
        is_set(seen) || self.wait_slow(seen, deadline)
    }

    #[cold]
    fn wait_slow(&self, seen: u32, deadline: Deadline) -> bool {
        spin_until(&self.spin, || self.word.load(Ordering::Relaxed) != seen);
        loop {
            // SYNC(event): the word moves away from `seen` only through a `set`.
            if self.word.load(Ordering::Acquire) != seen {
                return true;
            }
            // SYNC(event-sleep): announce ourselves, then the kernel re-checks the word.
            let r = self.sleepers.sleep(&self.word, seen, deadline);
            if self.word.load(Ordering::Acquire) != seen {
                return true;
            }
            if r == WaitResult::TimedOut || expired(deadline) {
                return false;
            }
        }
    }

    /// Threads that may be asleep on the event (a snapshot, a hint).
    #[inline]
    pub fn sleepers(&self) -> u32 {
        self.sleepers.get()
    }
}
