//! loom models of the synchronization primitives: RawLock (with recovery from a
//! dead holder), RawRLock, RawSemaphore, RawCondition, RawBarrier, RawEvent.
//!
//! Under loom a futex wait parks until a wake (the futex model in
//! `multiproc::sync`), so these models check the state machines, the memory
//! orderings (`loom::cell::UnsafeCell` flags any access not ordered by our
//! Acquire/Release pairs) and that no wait is left without its wake-up (a loom
//! deadlock); `loom_wait.rs` has the models aimed at the wake-ups themselves.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release
//! --no-default-features --test loom_sync`
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use multiproc::raw::barrier::BarrierError;
use multiproc::raw::{
    Acquire, RawBarrier, RawCondition, RawEvent, RawLock, RawRLock, RawSemaphore,
};
use multiproc::sync::{current_identity, loom_declare_dead, Instant};
use std::time::Duration;

const PROBE: Duration = Duration::from_millis(10);

/// Runs a model with a preemption bound that keeps it small.
fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(bound);
    b.check(f);
}

/// Data protected by a primitive; loom checks every access is ordered.
struct Shared<T>(UnsafeCell<T>);
// SAFETY: accessed only under the primitive being modelled (that is what loom checks).
unsafe impl<T> Sync for Shared<T> {}

impl Shared<u32> {
    fn new() -> Self {
        Shared(UnsafeCell::new(0))
    }
    fn bump(&self) {
        // SAFETY: called only by the thread the modelled primitive admits.
        self.0.with_mut(|p| unsafe { *p += 1 })
    }
    fn get(&self) -> u32 {
        // SAFETY: as above.
        self.0.with(|p| unsafe { *p })
    }
}

#[test]
fn lock_excludes_and_orders() {
    model(3, || {
        let lock = Arc::new(RawLock::new());
        let data = Arc::new(Shared::new());
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (lock, data) = (lock.clone(), data.clone());
                thread::spawn(move || {
                    let me = current_identity();
                    assert_eq!(lock.lock(me, None, PROBE), Acquire::Acquired);
                    data.bump();
                    // SAFETY: we hold it and are done with `data`.
                    unsafe { lock.unlock(me) };
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(data.get(), 2);
        assert!(!lock.is_locked());
    });
}

#[test]
fn lock_held_by_a_dead_thread_is_recovered_once() {
    model(2, || {
        let lock = Arc::new(RawLock::new());
        let l2 = lock.clone();
        let dying = thread::spawn(move || {
            let me = current_identity();
            assert!(l2.lock(me, None, PROBE).is_held());
            loom_declare_dead(); // "SIGKILL" while holding it
        });
        let l3 = lock.clone();
        let other = thread::spawn(move || {
            let me = current_identity();
            let a = l3.lock(me, None, PROBE);
            assert!(a.is_held());
            // SAFETY: we hold it and protect nothing.
            unsafe { l3.unlock(me) };
            a
        });
        dying.join().unwrap();
        let a = other.join().unwrap();
        let me = current_identity();
        let mine = lock.lock(me, None, PROBE);
        // Exactly one of the two later acquisitions took over the dead holder's lock.
        assert!(
            (a == Acquire::Recovered) ^ (mine == Acquire::Recovered),
            "{a:?} then {mine:?}"
        );
    });
}

#[test]
fn rlock_reenters_for_its_owner_and_excludes_others() {
    model(2, || {
        let lock = Arc::new(RawRLock::new());
        let data = Arc::new(Shared::new());
        let (l2, d2) = (lock.clone(), data.clone());
        let nested = thread::spawn(move || {
            let me = current_identity();
            assert_eq!(l2.lock(me, None, PROBE), Acquire::Acquired);
            assert_eq!(l2.lock(me, None, PROBE), Acquire::Acquired);
            d2.bump();
            // SAFETY: we hold it twice; the data is untouched after the last release.
            unsafe {
                assert_eq!(l2.unlock(me), Ok(false));
                assert_eq!(l2.unlock(me), Ok(true));
            }
        });
        let (l3, d3) = (lock.clone(), data.clone());
        let other = thread::spawn(move || {
            let me = current_identity();
            // SAFETY: a non-owner's unlock must fail and change nothing.
            assert!(unsafe { l3.unlock(me) }.is_err());
            assert_eq!(l3.lock(me, None, PROBE), Acquire::Acquired);
            d3.bump();
            // SAFETY: we hold it once.
            assert_eq!(unsafe { l3.unlock(me) }, Ok(true));
        });
        nested.join().unwrap();
        other.join().unwrap();
        assert_eq!(data.get(), 2);
        assert!(!lock.is_locked());
    });
}

#[test]
fn semaphore_of_one_excludes_and_orders() {
    model(3, || {
        let sem = Arc::new(RawSemaphore::new(1));
        let data = Arc::new(Shared::new());
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (sem, data) = (sem.clone(), data.clone());
                thread::spawn(move || {
                    assert!(sem.acquire(None));
                    data.bump();
                    assert!(sem.release(1));
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(data.get(), 2);
        assert_eq!(sem.value(), 1);
        assert!(
            !sem.release(1),
            "bounded: no release past the initial value"
        );
    });
}

#[test]
fn semaphore_release_hands_a_permit_to_a_waiter() {
    model(3, || {
        let sem = Arc::new(RawSemaphore::new(0));
        let data = Arc::new(Shared::new());
        let (s2, d2) = (sem.clone(), data.clone());
        let giver = thread::spawn(move || {
            d2.bump();
            assert!(s2.release(u32::MAX));
        });
        assert!(sem.acquire(None));
        assert_eq!(
            data.get(),
            1,
            "the releaser's write is visible to the acquirer"
        );
        // A timed acquire on an empty semaphore gives up at its (past) deadline.
        assert!(!sem.acquire(Some(Instant::now())));
        giver.join().unwrap();
    });
}

#[test]
fn event_set_releases_a_waiter_and_publishes() {
    model(3, || {
        let ev = Arc::new(RawEvent::new());
        let data = Arc::new(Shared::new());
        let (e2, d2) = (ev.clone(), data.clone());
        let setter = thread::spawn(move || {
            d2.bump();
            e2.set();
        });
        assert!(ev.wait(None));
        assert_eq!(data.get(), 1);
        setter.join().unwrap();
        ev.clear();
        assert!(!ev.is_set());
        assert!(!ev.wait(Some(Instant::now())), "a clear event times out");
    });
}

#[test]
fn event_pulse_ends_a_wait_that_began_before_it() {
    model(3, || {
        let ev = Arc::new(RawEvent::new());
        let e2 = ev.clone();
        let waiter = thread::spawn(move || e2.wait(Some(Instant::now())));
        ev.set();
        ev.clear();
        // Whether the waiter saw the pulse depends on the interleaving; either way it
        // returns, and the flag is down.
        let _ = waiter.join().unwrap();
        assert!(!ev.is_set());
    });
}

#[test]
fn condition_notify_ends_a_wait_and_the_state_is_seen() {
    model(2, || {
        let cond = Arc::new(RawCondition::new());
        let ready = Arc::new(Shared::new());
        let (c2, r2) = (cond.clone(), ready.clone());
        let waiter = thread::spawn(move || {
            let me = current_identity();
            assert!(c2.lock().lock(me, None, PROBE).is_held());
            while r2.get() == 0 {
                // SAFETY: we hold the lock and touch `ready` only under it.
                let w = unsafe { c2.wait(me, None, PROBE) };
                assert!(!w.recovered);
            }
            // SAFETY: we hold it.
            unsafe { c2.lock().unlock(me) };
        });
        let me = current_identity();
        assert!(cond.lock().lock(me, None, PROBE).is_held());
        ready.bump();
        let granted = cond.notify(1);
        assert!(granted <= 1);
        // SAFETY: we hold it.
        unsafe { cond.lock().unlock(me) };
        waiter.join().unwrap();
        assert_eq!(cond.waiting(), 0);
    });
}

#[test]
fn condition_notify_after_unlocking_is_not_lost() {
    // notify takes no lock: the notifier changes the state under the lock, unlocks,
    // then notifies. Whether the waiter registered before or after, it never sleeps
    // through the notify (it re-checks the state, or the grant reaches it).
    model(2, || {
        let cond = Arc::new(RawCondition::new());
        let ready = Arc::new(Shared::new());
        let (c2, r2) = (cond.clone(), ready.clone());
        let waiter = thread::spawn(move || {
            let me = current_identity();
            assert!(c2.acquire(me, None, PROBE).is_held());
            while r2.get() == 0 {
                // SAFETY: we hold the lock and touch `ready` only under it.
                unsafe { c2.wait(me, None, PROBE) };
            }
            // SAFETY: we hold it, once.
            assert_eq!(unsafe { c2.release(me) }, Ok(true));
        });
        let me = current_identity();
        assert!(cond.acquire(me, None, PROBE).is_held());
        ready.bump();
        // SAFETY: we hold it, once.
        assert_eq!(unsafe { cond.release(me) }, Ok(true));
        assert!(cond.notify(1) <= 1);
        waiter.join().unwrap();
        assert_eq!(cond.waiting(), 0);
    });
}

#[test]
fn condition_timed_wait_unregisters() {
    model(3, || {
        let cond = RawCondition::new();
        let me = current_identity();
        assert!(cond.lock().lock(me, None, PROBE).is_held());
        // SAFETY: we hold the lock.
        let w = unsafe { cond.wait(me, Some(Instant::now()), PROBE) };
        assert!(!w.notified);
        assert_eq!(cond.waiting(), 0);
        // Nobody waits.
        assert_eq!(cond.notify(1), 0);
        // SAFETY: we hold it.
        unsafe { cond.lock().unlock(me) };
    });
}

#[test]
fn barrier_of_two_releases_both_with_distinct_indices() {
    model(2, || {
        let b = Arc::new(RawBarrier::new());
        let data = Arc::new([Shared::new(), Shared::new()]);
        let (b2, d2) = (b.clone(), data.clone());
        let other = thread::spawn(move || {
            d2[1].bump();
            let i = b2.wait(current_identity(), 2, None, PROBE).unwrap();
            assert_eq!(d2[0].get(), 1, "the other party's write is visible");
            i
        });
        data[0].bump();
        let mine = b.wait(current_identity(), 2, None, PROBE).unwrap();
        assert_eq!(data[1].get(), 1);
        let theirs = other.join().unwrap();
        assert_eq!(mine + theirs, 1);
        assert_eq!(b.n_waiting(), 0);
    });
}

#[test]
fn barrier_action_runs_in_the_last_party_before_the_other_is_released() {
    // Both parties have an action; whichever arrives last runs it (exactly once),
    // and the other party sees its write once released.
    model(2, || {
        let b = Arc::new(RawBarrier::new());
        let ran = Arc::new(Shared::new());
        let (b2, r2) = (b.clone(), ran.clone());
        let other = thread::spawn(move || {
            let mut act = || {
                r2.bump();
                true
            };
            let i = b2
                .wait_with(current_identity(), 2, None, PROBE, Some(&mut act))
                .unwrap();
            assert_eq!(r2.get(), 1, "released only after the action");
            i
        });
        let r3 = ran.clone();
        let mut act = || {
            r3.bump();
            true
        };
        let mine = b
            .wait_with(current_identity(), 2, None, PROBE, Some(&mut act))
            .unwrap();
        assert_eq!(ran.get(), 1);
        let theirs = other.join().unwrap();
        assert_eq!(mine + theirs, 1);
        assert!(!b.is_broken());
    });
}

#[test]
fn barrier_party_that_dies_waiting_breaks_it() {
    model(2, || {
        let b = Arc::new(RawBarrier::new());
        let b2 = b.clone();
        let dying = thread::spawn(move || {
            let arrival = b2.arrive(current_identity(), 3).unwrap();
            loom_declare_dead(); // killed while waiting: never finishes
            core::mem::forget(arrival);
        });
        let r = b.wait(current_identity(), 3, None, PROBE);
        assert_eq!(r, Err(BarrierError::Broken));
        dying.join().unwrap();
        assert!(b.is_broken());
        b.reset();
        assert!(!b.is_broken());
    });
}

#[test]
fn barrier_timeout_breaks_it_for_later_arrivals() {
    model(3, || {
        let b = Arc::new(RawBarrier::new());
        let b2 = b.clone();
        let late =
            thread::spawn(move || b2.wait(current_identity(), 3, Some(Instant::now()), PROBE));
        let r = b.wait(current_identity(), 3, Some(Instant::now()), PROBE);
        assert_eq!(r, Err(BarrierError::Broken));
        assert_eq!(late.join().unwrap(), Err(BarrierError::Broken));
    });
}
