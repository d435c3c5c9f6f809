//! `Barrier`: rounds across processes, arrival indices, and breaking instead of
//! hanging (abort, timeout, a dead party).
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Barrier, Error, Segment};
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

#[test]
fn tutorial_three_processes_meet_at_the_barrier_every_round() {
    const ROUNDS: u64 = 50;
    let name = unique("barrier-three");
    let _b = Barrier::create(&name, 3).unwrap();
    // [p] = rounds party p has finished; [3 + r] = sum of arrival indices in round r
    let seg = Segment::create(&format!("{name}.n"), (3 + ROUNDS as usize) * 8).unwrap();
    let kids: Vec<_> = (0..3)
        .map(|p| {
            let (name, seg) = (name.clone(), seg.clone());
            fork(move || {
                let b = Barrier::open(&name).unwrap();
                assert_eq!(b.parties(), 3);
                for r in 0..ROUNDS {
                    slot(&seg, p).store(r + 1, Ordering::Relaxed);
                    let i = b.wait().unwrap();
                    // Everyone wrote before the barrier; we read after it.
                    for q in 0..3 {
                        assert!(slot(&seg, q).load(Ordering::Relaxed) > r);
                    }
                    slot(&seg, 3 + r as usize).fetch_add(u64::from(i), Ordering::SeqCst);
                    // A second barrier keeps rounds apart.
                    b.wait().unwrap();
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    for r in 0..ROUNDS as usize {
        assert_eq!(
            slot(&seg, 3 + r).load(Ordering::SeqCst),
            1 + 2,
            "round {r}: indices 0, 1, 2"
        );
    }
}

#[test]
fn a_party_killed_while_waiting_breaks_the_barrier() {
    let name = unique("barrier-dead");
    let b = Barrier::create(&name, 3).unwrap();
    let victim = {
        let name = name.clone();
        fork(move || {
            let _ = Barrier::open(&name).unwrap().wait();
            0
        })
    };
    let survivor = fork(move || {
        let b = Barrier::open(&name).unwrap();
        i32::from(!matches!(b.wait(), Err(Error::Broken)))
    });
    wait_for("two waiters", || b.n_waiting() == 2);
    victim.kill();
    survivor.join_ok(WATCHDOG);
    assert!(b.is_broken());
    assert!(matches!(b.wait(), Err(Error::Broken)));
    // reset repairs it
    b.reset();
    assert!(!b.is_broken());
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.wait_timeout(WATCHDOG));
    let c = Barrier::open(b.name()).unwrap();
    let t2 = std::thread::spawn(move || c.wait_timeout(WATCHDOG));
    let mine = b.wait_timeout(WATCHDOG).unwrap();
    let others = t.join().unwrap().unwrap() + t2.join().unwrap().unwrap();
    assert_eq!(mine + others, 3);
}

#[test]
fn a_timeout_breaks_the_barrier_for_everyone() {
    let name = unique("barrier-timeout");
    let b = Barrier::create(&name, 3).unwrap();
    let other = fork(move || {
        let b = Barrier::open(&name).unwrap();
        i32::from(!matches!(b.wait(), Err(Error::Broken)))
    });
    wait_for("a waiter", || b.n_waiting() == 1);
    let t = Instant::now();
    assert!(matches!(
        b.wait_timeout(Duration::from_millis(30)),
        Err(Error::Broken)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    other.join_ok(WATCHDOG);
    assert!(b.is_broken());
    assert_eq!(b.n_waiting(), 0);
}

#[test]
fn abort_breaks_waiters_and_later_arrivals_until_reset() {
    let name = unique("barrier-abort");
    let b = Barrier::create(&name, 2).unwrap();
    let waiter = {
        let name = name.clone();
        fork(move || {
            let b = Barrier::open(&name).unwrap();
            i32::from(!matches!(b.wait(), Err(Error::Broken)))
        })
    };
    wait_for("a waiter", || b.n_waiting() == 1);
    b.abort();
    waiter.join_ok(WATCHDOG);
    assert!(matches!(b.wait_timeout(WATCHDOG), Err(Error::Broken)));
    b.reset();
    let partner = fork(move || {
        let b = Barrier::open(&name).unwrap();
        match b.wait_timeout(WATCHDOG) {
            Ok(i) if i < 2 => 0,
            _ => 1,
        }
    });
    assert!(b.wait_timeout(WATCHDOG).unwrap() < 2);
    partner.join_ok(WATCHDOG);
}

#[test]
fn reset_breaks_the_current_waiters() {
    let name = unique("barrier-reset");
    let b = Barrier::create(&name, 2).unwrap();
    let waiter = fork(move || {
        let b = Barrier::open(&name).unwrap();
        i32::from(!matches!(b.wait(), Err(Error::Broken)))
    });
    wait_for("a waiter", || b.n_waiting() == 1);
    b.reset();
    waiter.join_ok(WATCHDOG);
    assert!(!b.is_broken(), "after reset the barrier is usable");
    assert_eq!(b.n_waiting(), 0);
}

#[test]
fn party_counts_are_checked() {
    let n = unique("barrier-parties");
    assert!(matches!(
        Barrier::create(&n, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Barrier::create(&n, Barrier::MAX_PARTIES + 1),
        Err(Error::InvalidArgument { .. })
    ));
    let b = Barrier::create(&n, Barrier::MAX_PARTIES).unwrap();
    assert_eq!(Barrier::open(&n).unwrap().parties(), 64);
    assert_eq!(Barrier::open_or_create(&n, 64).unwrap().parties(), 64);
    let one = Barrier::create(&unique("barrier-one"), 1).unwrap();
    assert_eq!(one.wait().unwrap(), 0, "a barrier of one never waits");
    assert!(format!("{b:?}").contains("parties: 64"));
}
