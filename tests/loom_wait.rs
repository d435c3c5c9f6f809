//! loom models of the wake-up handshakes: in each, a waiter really sleeps (the loom
//! futex model parks it, see `multiproc::sync`) and only the peer's wake lets it go,
//! so a lost wake-up ends the model in a deadlock that loom reports. One per
//! blocking object: Lock, Semaphore, Event, Condition, Barrier, and the MPMC queue
//! both ways (get on empty, put on full, put over a limit, two consumers flagging
//! one slot); the SPSC ring's is
//! `loom_spsc::sleeping_consumer_gets_every_unit_then_closed` (both of its sides
//! sleep there).
//!
//! Each model also counts the executions in which the waiter had announced its sleep
//! before the wake came, and fails if there were none: a model that never reaches
//! the sleep would check nothing.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release
//! --no-default-features --test loom_wait`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use multiproc::raw::queue::{region_words, QueueError, RawQueue, Ring, TakeWith, WaitPolicy};
use multiproc::raw::{Acquire, RawBarrier, RawCondition, RawEvent, RawLock, RawSemaphore};
use multiproc::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use multiproc::sync::current_identity;
use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
use std::time::Duration;

const PROBE: Duration = Duration::from_millis(10);

/// Runs `f` under loom with preemption bound `bound`; `f` returns true when, in that
/// execution, the waiter had announced its sleep before the wake. Fails unless some
/// execution did.
fn model(bound: usize, f: impl Fn() -> bool + Sync + Send + 'static) {
    let slept = std::sync::Arc::new(AtomicUsize::new(0));
    let s2 = slept.clone();
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(bound);
    b.check(move || {
        if f() {
            s2.fetch_add(1, StdOrdering::Relaxed);
        }
    });
    assert!(
        slept.load(StdOrdering::Relaxed) > 0,
        "no execution of the model reached the sleep"
    );
}

#[test]
fn a_lock_waiter_sleeps_until_the_holder_unlocks() {
    model(2, || {
        let lock = Arc::new(RawLock::new());
        let me = current_identity();
        assert_eq!(lock.lock(me, None, PROBE), Acquire::Acquired);
        let l2 = lock.clone();
        let waiter = thread::spawn(move || {
            let me = current_identity();
            assert!(l2.lock(me, None, PROBE).is_held());
            // SAFETY: we hold it and protect nothing.
            unsafe { l2.unlock(me) };
        });
        let announced = lock.may_have_sleepers();
        // SAFETY: we hold it and protect nothing.
        unsafe { lock.unlock(me) };
        waiter.join().unwrap();
        assert!(!lock.is_locked());
        announced
    });
}

#[test]
fn a_semaphore_acquire_sleeps_until_a_release() {
    model(2, || {
        let sem = Arc::new(RawSemaphore::new(0));
        let s2 = sem.clone();
        let waiter = thread::spawn(move || assert!(s2.acquire(None)));
        let announced = sem.sleepers() > 0;
        assert!(sem.release(u32::MAX));
        waiter.join().unwrap();
        assert!(!sem.try_acquire(), "the one permit was taken");
        announced
    });
}

#[test]
fn an_event_wait_sleeps_until_set() {
    model(2, || {
        let ev = Arc::new(RawEvent::new());
        let e2 = ev.clone();
        let waiter = thread::spawn(move || assert!(e2.wait(None)));
        let announced = ev.sleepers() > 0;
        ev.set();
        waiter.join().unwrap();
        announced
    });
}

#[test]
fn a_condition_wait_sleeps_until_notified() {
    model(2, || {
        let cond = Arc::new(RawCondition::new());
        let ready = Arc::new(AtomicU32::new(0));
        let (c2, r2) = (cond.clone(), ready.clone());
        let waiter = thread::spawn(move || {
            let me = current_identity();
            assert!(c2.acquire(me, None, PROBE).is_held());
            while r2.load(Ordering::Relaxed) == 0 {
                // SAFETY: we hold the lock; `ready` is written only under it.
                unsafe { c2.wait(me, None, PROBE) };
            }
            // SAFETY: we hold it, once.
            assert_eq!(unsafe { c2.release(me) }, Ok(true));
        });
        let me = current_identity();
        assert!(cond.acquire(me, None, PROBE).is_held());
        let announced = cond.waiting() > 0;
        ready.store(1, Ordering::Relaxed);
        // SAFETY: we hold it, once.
        assert_eq!(unsafe { cond.release(me) }, Ok(true));
        cond.notify(1);
        waiter.join().unwrap();
        announced
    });
}

#[test]
fn the_first_barrier_party_sleeps_until_the_last_arrives() {
    model(2, || {
        let b = Arc::new(RawBarrier::new());
        let b2 = b.clone();
        let first = thread::spawn(move || b2.wait(current_identity(), 2, None, PROBE).unwrap());
        // Lets the first party run ahead (loom's bounded search rarely schedules it
        // before our next step otherwise), so that it is asleep when we arrive.
        thread::yield_now();
        let announced = b.n_waiting() > 0;
        let mine = b.wait(current_identity(), 2, None, PROBE).unwrap();
        let theirs = first.join().unwrap();
        assert_eq!(mine + theirs, 1);
        announced
    });
}

/// A ring of one-word messages: one slot, or `slots` slots holding at most `limit`.
struct OneSlot {
    q: RawQueue,
    words: Vec<AtomicU64>,
    slots: usize,
    limit: usize,
    /// Whether the ring's members take leases (see `raw::queue`, "Leases").
    leases: bool,
}

impl OneSlot {
    fn new() -> Arc<OneSlot> {
        Self::limited(1, 1)
    }
    /// One slot, whose sole producer and consumer take leases.
    fn leased(slots: usize) -> Arc<OneSlot> {
        Self::build(slots, slots, true)
    }
    fn limited(slots: usize, limit: usize) -> Arc<OneSlot> {
        Self::build(slots, limit, false)
    }
    fn build(slots: usize, limit: usize, leases: bool) -> Arc<OneSlot> {
        Arc::new(OneSlot {
            q: RawQueue::new(),
            words: (0..region_words(slots, 1).unwrap())
                .map(|_| AtomicU64::new(0))
                .collect(),
            slots,
            limit,
            leases,
        })
    }
    fn ring(&self) -> Ring<'_> {
        Ring::new(&self.q, &self.words, self.slots, 1)
            .unwrap()
            .with_limit(self.limit)
            .unwrap()
            .with_leases(self.leases)
    }
    /// A blocking put; true if it slept.
    fn put(&self, v: u64) -> bool {
        let mut policy = WaitPolicy::new(0, PROBE);
        self.ring()
            .put(current_identity(), None, &mut policy, |p| {
                p[0].store(v, Ordering::Relaxed)
            })
            .unwrap();
        policy.slept
    }
    /// A blocking get; the value, and whether it slept.
    fn get(&self) -> (u64, bool) {
        let mut policy = WaitPolicy::new(0, PROBE);
        let v = self
            .ring()
            .get(
                current_identity(),
                None,
                &mut policy,
                &mut TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed)),
            )
            .unwrap();
        (v, policy.slept)
    }
}

#[test]
fn a_queue_get_on_empty_sleeps_until_a_put() {
    model(2, || get_waits_for_a_put(&OneSlot::new()));
}

/// Gets from another thread while this one puts 7: the value, and whether the get
/// slept.
fn get_waits_for_a_put(f: &Arc<OneSlot>) -> bool {
    let f2 = f.clone();
    let consumer = thread::spawn(move || f2.get());
    f.put(7);
    let (v, slept) = consumer.join().unwrap();
    assert_eq!(v, 7);
    slept
}

#[test]
fn a_queue_put_on_full_sleeps_until_a_get() {
    model(2, || {
        let f = OneSlot::new();
        let slept = put_waits_for_a_get(&f);
        assert_eq!(
            f.ring().try_get(
                current_identity(),
                false,
                &mut TakeWith(|_: &[AtomicU64]| ())
            ),
            Err(QueueError::Empty)
        );
        slept
    });
}

#[test]
fn a_queue_put_over_its_limit_sleeps_until_a_get() {
    // Two slots, limit 1: the producer is blocked by the *older* slot's READY state
    // (not by the slot it will fill), flags that one and sleeps until it is got.
    model(2, || put_waits_for_a_get(&OneSlot::limited(2, 1)));
}

/// Puts 1, which fills `f`, then 2 from another thread while this one gets 1; both
/// values come out in order. Whether the second put slept.
fn put_waits_for_a_get(f: &Arc<OneSlot>) -> bool {
    f.put(1);
    let f2 = f.clone();
    let producer = thread::spawn(move || f2.put(2));
    assert_eq!(f.get().0, 1);
    let slept = producer.join().unwrap();
    assert_eq!(f.get().0, 2);
    slept
}

#[test]
fn two_consumers_sleeping_on_one_slot_are_both_woken() {
    // Both flag the same FREE slot; the put that fills it wakes the whole side, and
    // the consumer that does not get it flags the next slot and sleeps again.
    model(1, || {
        let f = OneSlot::limited(2, 2);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                thread::spawn(move || f.get())
            })
            .collect();
        f.put(1);
        f.put(2);
        let got: Vec<(u64, bool)> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        let mut values: Vec<u64> = got.iter().map(|g| g.0).collect();
        values.sort_unstable();
        assert_eq!(values, [1, 2]);
        got.iter().any(|g| g.1)
    });
}

// ---- with leases: the holder's plain stores cannot see a slot's WAITER flag, so a
// waiter against a holder announces itself in the ring's header and runs the
// asymmetric barrier (a SeqCst fence here, as the holder's light one) ----

#[test]
fn a_queue_get_on_empty_sleeps_until_a_lease_holders_put() {
    // The consumer may decide how to sleep before or after the producer takes its
    // lease: both orders are explored.
    model(2, || get_waits_for_a_put(&OneSlot::leased(1)));
}

#[test]
fn a_queue_put_on_full_sleeps_until_a_lease_holders_get() {
    model(2, || {
        let f = OneSlot::leased(1);
        put_waits_for_a_get(&f)
    });
}

#[test]
fn a_lease_holding_producer_and_consumer_stream_across_laps_and_sleep() {
    model(1, || {
        let f = OneSlot::leased(1);
        let f2 = f.clone();
        let producer = thread::spawn(move || (1..=3).fold(false, |s, v| f2.put(v) | s));
        let mut slept = false;
        for want in 1..=3 {
            let (v, s) = f.get();
            assert_eq!(v, want);
            slept |= s;
        }
        producer.join().unwrap() | slept
    });
}
