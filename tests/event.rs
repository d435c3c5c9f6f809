//! `Event`: set wakes every waiter, in any process; pulses are not missed.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Error, Event, Lock, Segment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

fn slot(seg: &Segment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len());
    // SAFETY: in bounds, 8-aligned (segments are 128-aligned), only used atomically.
    unsafe { &*(seg.as_ptr().add(i * 8) as *const AtomicU64) }
}

/// Polls `f` until it holds, failing the test after the watchdog limit.
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < WATCHDOG, "watchdog: still waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn tutorial_traffic_light_lets_cars_through_only_on_green() {
    // The light turns green (set), waits until every car has passed, turns red
    // (clear), and starts the next round. Cars wait for green, pass, and wait for
    // red before queueing again.
    const CARS: u64 = 3;
    const ROUNDS: u64 = 20;
    let name = unique("event-light");
    let light = Event::create(&name).unwrap();
    // [0] phase: 2r+1 = green of round r, 2r+2 = red after it; [1] passes
    let seg = Segment::create(&format!("{name}.n"), 16).unwrap();
    let cars: Vec<_> = (0..CARS)
        .map(|_| {
            let (name, seg) = (name.clone(), seg.clone());
            fork(move || {
                let light = Event::open(&name).unwrap();
                for r in 0..ROUNDS {
                    light.wait();
                    assert_eq!(
                        slot(&seg, 0).load(Ordering::SeqCst),
                        2 * r + 1,
                        "passed on red"
                    );
                    slot(&seg, 1).fetch_add(1, Ordering::SeqCst);
                    wait_for("red", || slot(&seg, 0).load(Ordering::SeqCst) != 2 * r + 1);
                }
                0
            })
        })
        .collect();
    for r in 0..ROUNDS {
        slot(&seg, 0).store(2 * r + 1, Ordering::SeqCst);
        light.set();
        wait_for("cars", || {
            slot(&seg, 1).load(Ordering::SeqCst) == CARS * (r + 1)
        });
        light.clear();
        slot(&seg, 0).store(2 * r + 2, Ordering::SeqCst);
    }
    for c in cars {
        c.join_ok(WATCHDOG);
    }
}

#[test]
fn set_wakes_every_waiter_in_every_process() {
    let name = unique("event-all");
    let ev = Event::create(&name).unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            let name = name.clone();
            fork(move || {
                Event::open(&name).unwrap().wait();
                0
            })
        })
        .collect();
    wait_for("three sleepers", || ev.raw().sleepers() == 3);
    ev.set();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
}

#[test]
fn set_then_clear_pulse_is_not_missed() {
    let name = unique("event-pulse");
    let ev = Event::create(&name).unwrap();
    let child = fork(move || {
        let ev = Event::open(&name).unwrap();
        // Returns true although the flag is down again by the time we run.
        if ev.wait_timeout(WATCHDOG) {
            0
        } else {
            1
        }
    });
    wait_for("a sleeper", || ev.raw().sleepers() == 1);
    ev.set();
    ev.clear();
    child.join_ok(WATCHDOG);
    assert!(!ev.is_set());
}

#[test]
fn wait_timeout_waits_at_least_the_timeout_and_reports_it() {
    let ev = Event::create(&unique("event-timeout")).unwrap();
    watchdog(WATCHDOG, move || {
        let t = Instant::now();
        assert!(!ev.wait_timeout(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        ev.set();
        assert!(ev.wait_timeout(Duration::ZERO));
    });
}

#[test]
fn a_setter_that_dies_does_not_hang_waiters() {
    let name = unique("event-dead");
    let ev = Event::create(&name).unwrap();
    let setter = fork(move || {
        let _ev = Event::open(&name).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    setter.kill();
    watchdog(WATCHDOG, move || {
        let t = Instant::now();
        assert!(!ev.wait_timeout(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn flag_is_shared_by_name() {
    let name = unique("event-flag");
    let a = Event::create(&name).unwrap();
    let b = Event::open_or_create(&name).unwrap();
    assert!(!b.is_set());
    a.set();
    a.set(); // idempotent
    assert!(b.is_set());
    b.clear();
    assert!(!a.is_set());
    assert!(format!("{a:?}").contains("set: false"));
    let lock = unique("event-kind");
    let _l = Lock::create(&lock).unwrap();
    assert!(matches!(Event::open(&lock), Err(Error::WrongKind { .. })));
}
