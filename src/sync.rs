//! The one import point for atomics, futex waits and thread identity, so that loom can
//! replace all three (`--cfg loom`).
//!
//! Under loom, a futex wait becomes a yield (waiters re-check their predicate, so a
//! wait that returns early is always allowed), a wake does nothing, identities are
//! per-loom-thread counters and nobody ever dies.
//!
//! Orderings in this crate follow one convention: every Release store that publishes
//! data is paired with an Acquire load, and both ends carry the same
//! `// SYNC(label)` comment.

pub use crate::sys::clock::{Deadline, Instant};
pub use crate::sys::futex::WaitResult;
pub use crate::sys::ident::Identity;

/// Atomics: `core`'s, or loom's under `--cfg loom`.
pub mod atomic {
    #[cfg(not(loom))]
    pub use core::sync::atomic::{
        fence, AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    #[cfg(loom)]
    pub use loom::sync::atomic::{
        fence, AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}

use atomic::AtomicU32;

/// Sleeps while `*word == expected` until woken or `deadline` (see [`crate::sys::futex::wait`]).
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> WaitResult {
    #[cfg(not(loom))]
    {
        crate::sys::futex::wait(word, expected, deadline)
    }
    #[cfg(loom)]
    {
        if word.load(atomic::Ordering::SeqCst) == expected {
            loom::thread::yield_now();
        }
        // A bounded wait "times out" so that callers run their liveness probes.
        if deadline.is_some() {
            WaitResult::TimedOut
        } else {
            WaitResult::Woken
        }
    }
}

/// Wakes up to `n` waiters on `word` in any process.
#[inline]
pub fn futex_wake(word: &AtomicU32, n: u32) -> u32 {
    #[cfg(not(loom))]
    {
        crate::sys::futex::wake(word, n)
    }
    #[cfg(loom)]
    {
        let _ = (word, n);
        0
    }
}

/// Wakes every waiter on `word`.
#[inline]
pub fn futex_wake_all(word: &AtomicU32) -> u32 {
    futex_wake(word, i32::MAX as u32)
}

/// One step of a bounded spin (a yield under loom, which cannot model busy loops).
#[inline]
pub fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// How many times blocking calls poll before they sleep (0 under loom).
#[cfg(not(loom))]
pub const SPIN_LIMIT: u32 = 200;
/// How many times blocking calls poll before they sleep (0 under loom).
#[cfg(loom)]
pub const SPIN_LIMIT: u32 = 0;

/// The calling thread's identity.
#[inline]
pub fn current_identity() -> Identity {
    #[cfg(not(loom))]
    {
        crate::sys::ident::current()
    }
    #[cfg(loom)]
    {
        loom_ident::current()
    }
}

/// True when `owner` has certainly exited (never, under loom).
#[inline]
pub fn owner_is_dead(owner: Identity) -> bool {
    #[cfg(not(loom))]
    {
        crate::sys::ident::is_dead(owner)
    }
    #[cfg(loom)]
    {
        loom_ident::is_dead(owner)
    }
}

#[cfg(loom)]
mod loom_ident {
    use super::Identity;
    use core::sync::atomic::{AtomicU32, Ordering};
    extern crate std;
    use std::sync::Mutex;
    use std::vec::Vec;

    static NEXT: AtomicU32 = AtomicU32::new(1);
    static DEAD: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    loom::thread_local! {
        static ME: u32 = NEXT.fetch_add(1, Ordering::Relaxed) % crate::sys::ident::MAX_TID + 1;
    }

    pub fn current() -> Identity {
        Identity {
            tid: ME.with(|t| *t),
            start: 1,
        }
    }

    pub fn is_dead(owner: Identity) -> bool {
        DEAD.lock().map(|d| d.contains(&owner.tid)).unwrap_or(false)
    }

    /// Declares the calling loom thread dead (models a crash).
    pub fn die() {
        let me = current().tid;
        if let Ok(mut d) = DEAD.lock() {
            d.push(me);
        }
    }
}

/// Under loom: declares the calling thread dead, so that peers recover what it held
/// (models a SIGKILL at this point).
#[cfg(loom)]
pub fn loom_declare_dead() {
    loom_ident::die()
}
