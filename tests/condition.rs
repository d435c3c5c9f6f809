//! `Condition`: waits and notifies across processes, with a robust lock.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Condition, Segment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

fn slot(seg: &Segment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len());
    // SAFETY: in bounds, 8-aligned (segments are 128-aligned), only used atomically.
    unsafe { &*(seg.as_ptr().add(i * 8) as *const AtomicU64) }
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < WATCHDOG, "watchdog: still waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A bounded list in shared memory: [0] head, [1] tail, [2..2+CAP] items; touched
/// only under the condition's lock (plain loads and stores: the lock orders them).
const CAP: u64 = 4;
fn len(seg: &Segment) -> u64 {
    slot(seg, 1).load(Ordering::Relaxed) - slot(seg, 0).load(Ordering::Relaxed)
}
fn push(seg: &Segment, v: u64) {
    let t = slot(seg, 1).load(Ordering::Relaxed);
    slot(seg, 2 + (t % CAP) as usize).store(v, Ordering::Relaxed);
    slot(seg, 1).store(t + 1, Ordering::Relaxed);
}
fn pop(seg: &Segment) -> u64 {
    let h = slot(seg, 0).load(Ordering::Relaxed);
    let v = slot(seg, 2 + (h % CAP) as usize).load(Ordering::Relaxed);
    slot(seg, 0).store(h + 1, Ordering::Relaxed);
    v
}

#[test]
fn tutorial_producer_consumer_over_a_bounded_list() {
    const ITEMS: u64 = 2000;
    const CONSUMERS: u64 = 2;
    let name = unique("cond-pc");
    let _cond = Condition::create(&name).unwrap();
    // list, then [8] consumed count, [9] consumed sum
    let seg = Segment::create(&format!("{name}.n"), 10 * 8).unwrap();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let (name, seg) = (name.clone(), seg.clone());
            fork(move || {
                let cond = Condition::open(&name).unwrap();
                loop {
                    let mut g = cond.acquire().unwrap();
                    cond.wait_while(&mut g, |_| len(&seg) == 0).unwrap();
                    let v = pop(&seg);
                    cond.notify_all(); // room for the producer
                    drop(g);
                    if v == 0 {
                        return 0; // sentinel
                    }
                    slot(&seg, 8).fetch_add(1, Ordering::SeqCst);
                    slot(&seg, 9).fetch_add(v, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let producer = {
        let (name, seg) = (name.clone(), seg.clone());
        fork(move || {
            let cond = Condition::open(&name).unwrap();
            for v in (1..=ITEMS).chain((0..CONSUMERS).map(|_| 0)) {
                let mut g = cond.acquire().unwrap();
                cond.wait_while(&mut g, |_| len(&seg) == CAP).unwrap();
                push(&seg, v);
                cond.notify_all();
            }
            0
        })
    };
    producer.join_ok(WATCHDOG);
    for c in consumers {
        c.join_ok(WATCHDOG);
    }
    assert_eq!(slot(&seg, 8).load(Ordering::SeqCst), ITEMS);
    assert_eq!(
        slot(&seg, 9).load(Ordering::SeqCst),
        ITEMS * (ITEMS + 1) / 2
    );
}

#[test]
fn notify_n_ends_at_most_n_waits() {
    let name = unique("cond-notify-n");
    let cond = Condition::create(&name).unwrap();
    let seg = Segment::create(&format!("{name}.n"), 8).unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            let (name, seg) = (name.clone(), seg.clone());
            fork(move || {
                let cond = Condition::open(&name).unwrap();
                let mut g = cond.acquire().unwrap();
                cond.wait(&mut g).unwrap();
                slot(&seg, 0).fetch_add(1, Ordering::SeqCst);
                0
            })
        })
        .collect();
    wait_for("three waiters", || cond.n_waiting() == 3);
    cond.notify(1);
    wait_for("one wake", || slot(&seg, 0).load(Ordering::SeqCst) == 1);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        slot(&seg, 0).load(Ordering::SeqCst),
        1,
        "notify(1) ended more than one wait"
    );
    assert_eq!(cond.n_waiting(), 2);
    cond.notify(5); // more than are waiting: ends the two that are
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    assert_eq!(cond.n_waiting(), 0);
}

#[test]
fn wait_timeout_waits_at_least_the_timeout_and_relocks() {
    let cond = Condition::create(&unique("cond-timeout")).unwrap();
    watchdog(WATCHDOG, move || {
        let mut g = cond.acquire().unwrap();
        let t = Instant::now();
        assert!(!cond
            .wait_timeout(&mut g, Duration::from_millis(30))
            .unwrap());
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(cond.is_locked());
        assert_eq!(cond.n_waiting(), 0);
        let done = cond
            .wait_timeout_while(&mut g, Duration::from_millis(10), |_| true)
            .unwrap();
        assert!(!done);
        drop(g);
        assert!(!cond.is_locked());
    });
}

#[test]
fn notify_without_holding_the_lock_wakes_a_waiter() {
    let name = unique("cond-unlocked-notify");
    let cond = Condition::create(&name).unwrap();
    let child = fork(move || {
        let cond = Condition::open(&name).unwrap();
        let mut g = cond.acquire().unwrap();
        i32::from(!cond.wait_timeout(&mut g, WATCHDOG).unwrap())
    });
    wait_for("a waiter", || cond.n_waiting() == 1);
    cond.notify(1);
    child.join_ok(WATCHDOG);
}

#[test]
fn notifier_that_dies_holding_the_lock_is_recovered_by_the_waiter() {
    let name = unique("cond-dead-notifier");
    let cond = Condition::create(&name).unwrap();
    let waiter = {
        let name = name.clone();
        fork(move || {
            let cond = Condition::open(&name).unwrap();
            let mut g = cond.acquire().unwrap();
            match cond.wait_timeout(&mut g, WATCHDOG) {
                // Notified, and relocking found the notifier dead.
                Err(died) if *died.get_ref() => 0,
                other => {
                    eprintln!("unexpected {other:?}");
                    1
                }
            }
        })
    };
    wait_for("a waiter", || cond.n_waiting() == 1);
    let notifier = fork(move || {
        let cond = Condition::open(&name).unwrap();
        let g = cond.acquire().unwrap();
        cond.notify(1);
        std::mem::forget(g);
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    wait_for("the notify", || cond.n_waiting() == 0);
    notifier.kill();
    waiter.join_ok(WATCHDOG);
    assert!(!cond.is_locked());
}

#[test]
fn waiter_is_not_hung_by_a_notifier_that_died_before_notifying() {
    let name = unique("cond-dead-early");
    let cond = Condition::create(&name).unwrap();
    let notifier = fork(move || {
        let _c = Condition::open(&name).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    notifier.kill();
    watchdog(WATCHDOG, move || {
        let mut g = cond.acquire().unwrap();
        assert!(!cond
            .wait_timeout(&mut g, Duration::from_millis(20))
            .unwrap());
    });
}

#[test]
fn dead_lock_holder_is_recovered_by_acquire() {
    let name = unique("cond-dead-holder");
    let cond = Condition::create(&name).unwrap();
    let holder = fork(move || {
        let cond = Condition::open(&name).unwrap();
        std::mem::forget(cond.acquire().unwrap());
        0
    });
    holder.join_ok(WATCHDOG);
    watchdog(WATCHDOG, move || {
        assert!(cond.acquire().is_err(), "expected OwnerDied");
        assert!(cond.acquire().is_ok());
        assert!(format!("{cond:?}").contains("Condition"));
    });
}

/// Mirrors CPython's `lock_tests.ConditionTests.test_acquire` ("by default we have an
/// RLock: the recursive acquire doesn't block"): `with cond:` nested in `with cond:`.
#[test]
fn the_holder_may_acquire_again_and_every_hold_must_be_given_up() {
    let name = unique("cond-reentrant");
    let cond = Condition::create(&name).unwrap();
    watchdog(WATCHDOG, move || {
        let outer = cond.acquire().unwrap();
        let inner = cond.try_acquire().unwrap();
        let third = cond.acquire_timeout(Duration::ZERO).unwrap();
        assert_eq!(cond.depth(), 3);
        drop(third);
        drop(inner);
        assert!(cond.is_locked());
        // Another process cannot take it while one hold is left.
        let other = fork({
            let name = name.clone();
            move || {
                let c = Condition::open(&name).unwrap();
                let took = c.try_acquire().is_ok();
                i32::from(took)
            }
        });
        assert_eq!(other.join(WATCHDOG), Exit::Code(0));
        drop(outer);
        assert!(!cond.is_locked());
        // Python style: acquire twice, release twice; a third release is an error.
        cond.acquire().unwrap().leak();
        cond.acquire().unwrap().leak();
        cond.release().unwrap();
        assert!(cond.is_owned());
        cond.release().unwrap();
        assert!(!cond.is_locked());
        assert!(matches!(cond.release(), Err(multiproc::Error::NotOwner)));
    });
}

/// Mirrors CPython's `_TestCondition.test_notify` with the waiter inside a nested
/// `with cond:` — `wait` releases every level (`_release_save`), so another process
/// can take the lock and notify, and the waiter wakes with its depth restored
/// (`_acquire_restore`).
#[test]
fn wait_releases_every_hold_and_restores_the_depth() {
    let name = unique("cond-depth");
    let cond = Condition::create(&name).unwrap();
    let waiter = fork({
        let name = name.clone();
        move || {
            let cond = Condition::open(&name).unwrap();
            let _outer = cond.acquire().unwrap();
            let mut g = cond.acquire().unwrap();
            if !cond.wait_timeout(&mut g, WATCHDOG).unwrap() || cond.depth() != 2 {
                return 1;
            }
            drop(g);
            // One hold left: still locked, by us.
            i32::from(!(cond.is_owned() && cond.depth() == 1))
        }
    });
    wait_for("a waiter", || cond.n_waiting() == 1);
    watchdog(WATCHDOG, move || {
        // The waiter held it twice; both holds were released for the wait.
        let g = cond.acquire().unwrap();
        assert_eq!(cond.depth(), 1);
        cond.notify(1);
        drop(g);
    });
    waiter.join_ok(WATCHDOG);
}

/// issue 9 item 11: `notify` takes no lock, so a lock that some process holds and
/// never gives up (or a lock word forged to name a live thread) cannot hang it. The
/// waiter it ends still needs the lock back, and gets it when that holder dies.
#[test]
fn notify_never_waits_for_the_lock() {
    let name = unique("cond-notify-free");
    let cond = Condition::create(&name).unwrap();
    let waiter = fork({
        let name = name.clone();
        move || {
            let cond = Condition::open(&name).unwrap();
            let mut g = cond.acquire().unwrap();
            match cond.wait_timeout(&mut g, WATCHDOG) {
                // Notified, and relocking found the squatter dead.
                Err(died) if *died.get_ref() => 0,
                other => {
                    eprintln!("unexpected {other:?}");
                    1
                }
            }
        }
    });
    wait_for("a waiter", || cond.n_waiting() == 1);
    let squatter = fork({
        let name = name.clone();
        move || {
            let cond = Condition::open(&name).unwrap();
            cond.acquire().unwrap().leak();
            std::thread::sleep(Duration::from_secs(60));
            0
        }
    });
    wait_for("the squatter", || cond.is_locked());
    let c2 = cond.clone();
    // Before notify became lock-free, this call blocked until the squatter died.
    assert_eq!(
        watchdog(Duration::from_secs(5), move || c2.notify_count(1)),
        1
    );
    assert_eq!(cond.n_waiting(), 0);
    squatter.kill();
    waiter.join_ok(WATCHDOG);
}

/// A holder SIGKILLed 4.5 s into a wait with a 10 s probe interval (whose timed probes
/// fall at about 0.6, 1.9, 4.4 and 9.4 s) is recovered long before the 9.4 s probe:
/// the death watcher woke the waiter.
#[test]
fn holder_killed_during_a_long_wait_is_recovered_before_the_next_timed_probe() {
    let name = unique("condition-watch");
    let lock = Condition::create(&name)
        .unwrap()
        .with_probe_interval(SLOW_PROBE);
    let l2 = lock.clone();
    assert_a_killed_holder_is_recovered_by_the_death_watcher(
        move || std::mem::forget(Condition::open(&name).unwrap().acquire().unwrap()),
        move || l2.is_locked(),
        // Err(OwnerDied) is the only error `acquire` has.
        move || lock.acquire().is_err(),
    );
}
