//! The futex contract, *shared* across processes.
//!
//! `FUTEX_PRIVATE_FLAG` is keyed by address space: a private wake never reaches a
//! waiter in another process. Rust std, parking_lot and `atomic-wait` all use it, so
//! none of them may touch a word in a segment. These calls never set it.

use super::clock::Instant;
use core::sync::atomic::AtomicU32;

/// How a [`wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken, interrupted, or the word no longer held `expected`: re-check the predicate.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, until woken or until the absolute
/// `CLOCK_MONOTONIC` `deadline` (`None`: no limit).
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    let ts = deadline.map(Instant::to_timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32; `ts_ptr` is null or points at a timespec
    // that outlives the call. FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC
    // deadline, and FUTEX_BITSET_MATCH_ANY makes it match every FUTEX_WAKE.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            core::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if r < 0 && super::errno() == libc::ETIMEDOUT {
        WaitResult::TimedOut
    } else {
        // 0, EAGAIN (value changed) and EINTR are all "re-check the predicate".
        WaitResult::Woken
    }
}

/// Wakes up to `n` waiters sleeping on `word`, in any process. Returns how many woke.
#[inline]
pub fn wake(word: &AtomicU32, n: u32) -> u32 {
    let n = n.min(i32::MAX as u32) as i32;
    // SAFETY: FUTEX_WAKE only uses the address as a key; it never dereferences beyond it.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    r.max(0) as u32
}

/// Wakes every waiter sleeping on `word`.
#[inline]
pub fn wake_all(word: &AtomicU32) -> u32 {
    wake(word, i32::MAX as u32)
}
