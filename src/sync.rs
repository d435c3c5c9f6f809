//! The one import point for atomics, futex waits and thread identity, so that loom can
//! replace all three (`--cfg loom`).
//!
//! Under loom, identities are per-loom-thread counters, nobody dies unless a model
//! says so (`loom_declare_dead`), and futex wait/wake is a *real* model (see
//! "The loom futex model" below), so that a lost wake-up is a deadlock loom reports.
//!
//! # The loom futex model
//!
//! One loom `Mutex` + `Condvar` per model execution stands for the kernel's futex
//! hash buckets:
//!
//! * `futex_wait(word, expected, deadline)` takes the mutex, re-checks
//!   `word == expected` under it (a `SeqCst` load, as the kernel's check sits between
//!   full barriers) and returns at once if it differs; otherwise it parks on the
//!   condvar until a wake. A waiter that nobody wakes stays parked, and when every
//!   thread is parked loom fails the model with a deadlock.
//! * `futex_wake(word, n)` takes the same mutex and notifies *every* parked waiter
//!   (on any word; each re-checks its own predicate). Waking more than `n` is an
//!   over-approximation: it cannot find a bug that needs exactly one waiter woken,
//!   only wake-ups lost altogether.
//! * Timed waits (`deadline` is `Some`): loom has no time. A deadline that has already
//!   passed when the wait begins (a model's `Some(Instant::now())`) returns `TimedOut`
//!   after a yield; so does every timed wait once a model has declared a thread dead
//!   (`loom_declare_dead` also wakes every parked waiter), so that waiters run their
//!   liveness probes exactly where a model asks for dead-owner handling. Otherwise a
//!   timed wait parks like an untimed one: a probe deadline never ends a sleep, so
//!   probes cannot mask a lost wake-up.
//!
//! Orderings in this crate follow one convention: every Release store that publishes
//! data is paired with an Acquire load, and both ends carry the same
//! `// SYNC(label)` comment.

pub use crate::sys::clock::{Deadline, Instant};
pub use crate::sys::futex::WaitResult;
pub use crate::sys::ident::{Identity, Task};

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
        loom_futex::wait(word, expected, deadline)
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
        loom_futex::wake_all();
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

/// An asymmetric barrier across processes (see `crate::sys::membarrier`): a fast
/// side that pays only a compiler fence ([`asym::light`]) and a rare side whose
/// [`asym::heavy`] runs a full barrier on every CPU running a thread of a
/// registered process. Under loom both are SeqCst fences (the standard model of an
/// asymmetric fence pair), and every thread counts as registered.
pub mod asym {
    #[cfg(not(loom))]
    use core::sync::atomic::{AtomicU8, Ordering};

    /// Whether this process image registered for heavy barriers: 0 no, 1 yes. A
    /// static of the image, so a thread that `exec`s (keeping its TID) starts
    /// unregistered again.
    #[cfg(not(loom))]
    static REGISTERED: AtomicU8 = AtomicU8::new(0);
    /// What the kernel offers: 0 not asked yet, 1 the expedited global barrier, 2 not.
    #[cfg(not(loom))]
    static OFFERED: AtomicU8 = AtomicU8::new(0);

    /// Registers this process for heavy barriers, if the kernel offers them; false
    /// if not (the caller must then not rely on [`light`]). Cheap to repeat: a
    /// forked child registers again (registration is per process).
    pub fn register() -> bool {
        #[cfg(not(loom))]
        {
            let offered = match OFFERED.load(Ordering::Relaxed) {
                0 => {
                    let yes = crate::sys::membarrier::available();
                    OFFERED.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
                    yes
                }
                v => v == 1,
            };
            let ok = offered && crate::sys::membarrier::register();
            if ok {
                REGISTERED.store(1, Ordering::Relaxed);
            }
            ok
        }
        #[cfg(loom)]
        {
            true
        }
    }

    /// True if this process image registered (see [`register`]).
    #[inline]
    pub fn registered() -> bool {
        #[cfg(not(loom))]
        {
            REGISTERED.load(Ordering::Relaxed) != 0
        }
        #[cfg(loom)]
        {
            true
        }
    }

    /// The fast side: orders this thread's earlier stores before its later loads
    /// against any [`heavy`] barrier (a compiler fence; the heavy side does the rest).
    #[inline]
    pub fn light() {
        #[cfg(not(loom))]
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        #[cfg(loom)]
        super::atomic::fence(super::atomic::Ordering::SeqCst);
    }

    /// The rare side: when this returns, every registered thread that ran a
    /// [`light`] either did so before this point in a total order (its earlier
    /// stores are visible to the caller's later loads) or after it (its later loads
    /// see the caller's earlier stores). Costs a system call (~0.4 µs measured, plus
    /// an interrupt on each CPU running a registered process).
    pub fn heavy() {
        #[cfg(not(loom))]
        {
            if !crate::sys::membarrier::global() {
                // Unreachable once a holder registered (the kernel offered the
                // command); a fence keeps at least the caller's side ordered.
                core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            }
        }
        #[cfg(loom)]
        super::atomic::fence(super::atomic::Ordering::SeqCst);
    }
}

/// A request that the sleeper on a word be woken as soon as a task it waits for
/// exits: the death watcher's `Watch` (`crate::sys::watch`) with `std`; never
/// fires without it, or under loom (where deaths are declared by the model).
#[cfg(all(feature = "std", not(loom)))]
pub use crate::sys::watch::Watch;

/// A request that never fires (no death watcher without `std`, or under loom).
#[cfg(not(all(feature = "std", not(loom))))]
#[derive(Debug)]
pub struct Watch<'a>(core::marker::PhantomData<&'a AtomicU32>);

#[cfg(not(all(feature = "std", not(loom))))]
impl Watch<'_> {
    /// Never: nothing watches.
    #[inline]
    pub fn fired(&self) -> Option<u32> {
        None
    }
    /// Never: nothing watches.
    #[inline]
    pub fn covers(&self, _tasks: &[Task]) -> bool {
        false
    }
}

/// Asks for a shared futex wake on `word` as soon as any of `tasks` exits (see
/// `crate::sys::watch`); `None` when nothing watches (no `std`, loom, or the watch
/// could not start): the caller's timed probes remain.
#[inline]
pub fn watch_exit<'a>(word: &'a AtomicU32, tasks: &[Task]) -> Option<Watch<'a>> {
    #[cfg(all(feature = "std", not(loom)))]
    {
        crate::sys::watch::watch(word, tasks)
    }
    #[cfg(not(all(feature = "std", not(loom))))]
    {
        let _ = (word, tasks);
        None
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
        super::loom_futex::died();
    }
}

/// The futex model (see "The loom futex model" in the module docs).
#[cfg(loom)]
mod loom_futex {
    use super::atomic::{AtomicU32, Ordering};
    use super::{Deadline, Instant, WaitResult};
    use loom::sync::{Condvar, Mutex};

    /// The "hash bucket": its mutex guards the count of threads declared dead in
    /// this execution; the condvar is where waiters park.
    struct Buckets {
        deaths: Mutex<u32>,
        parked: Condvar,
    }

    loom::lazy_static! {
        static ref BUCKETS: Buckets = Buckets {
            deaths: Mutex::new(0),
            parked: Condvar::new(),
        };
    }

    pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> WaitResult {
        let b = &*BUCKETS;
        let Ok(deaths) = b.deaths.lock() else {
            return WaitResult::Woken;
        };
        if word.load(Ordering::SeqCst) != expected {
            return WaitResult::Woken;
        }
        if let Some(d) = deadline {
            if *deaths > 0 || Instant::now() >= d {
                drop(deaths);
                loom::thread::yield_now();
                return WaitResult::TimedOut;
            }
        }
        let _ = b.parked.wait(deaths);
        WaitResult::Woken
    }

    pub fn wake_all() {
        let b = &*BUCKETS;
        let _held = b.deaths.lock();
        b.parked.notify_all();
    }

    pub fn died() {
        let b = &*BUCKETS;
        if let Ok(mut deaths) = b.deaths.lock() {
            *deaths += 1;
        }
        b.parked.notify_all();
    }
}

/// Under loom: declares the calling thread dead, so that peers recover what it held
/// (models a SIGKILL at this point).
#[cfg(loom)]
pub fn loom_declare_dead() {
    loom_ident::die()
}
