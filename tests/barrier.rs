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

/// Mirrors CPython's `_TestBarrier.test_action` (the action runs exactly once per
/// round, and every party sees its effect when `wait` returns), across processes:
/// the action runs in the last party to arrive, before any party is released.
#[test]
fn the_action_runs_once_in_the_last_party_before_any_is_released() {
    const PARTIES: u64 = 3;
    const ROUNDS: u64 = 20;
    let name = unique("barrier-action");
    let _b = Barrier::create(&name, PARTIES as u32).unwrap();
    // [0] = actions run; [1] = pid of the process that ran the last one
    let seg = Segment::create(&format!("{name}.n"), 16).unwrap();
    let kids: Vec<_> = (0..PARTIES)
        .map(|_| {
            let (name, seg) = (name.clone(), seg.clone());
            fork(move || {
                let action_seg = seg.clone();
                let b = Barrier::open(&name).unwrap().with_action(move || {
                    slot(&action_seg, 0).fetch_add(1, Ordering::Relaxed);
                    slot(&action_seg, 1).store(u64::from(std::process::id()), Ordering::Relaxed);
                });
                for r in 1..=ROUNDS {
                    let i = match b.wait_timeout(WATCHDOG) {
                        Ok(i) => i,
                        Err(_) => return 1,
                    };
                    // Two waits (two actions) per round.
                    if slot(&seg, 0).load(Ordering::Relaxed) != 2 * r - 1 {
                        return 2; // released before the action ran, or it ran twice
                    }
                    let ran_here =
                        slot(&seg, 1).load(Ordering::Relaxed) == u64::from(std::process::id());
                    if ran_here != (i == PARTIES as u32 - 1) {
                        return 3; // not run by the last party
                    }
                    // Nobody starts the next round's action before all saw this one.
                    if b.wait_timeout(WATCHDOG).is_err() {
                        return 4;
                    }
                    if slot(&seg, 0).load(Ordering::Relaxed) != 2 * r {
                        return 5;
                    }
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    assert_eq!(slot(&seg, 0).load(Ordering::Relaxed), 2 * ROUNDS);
}

/// Python's `threading.Barrier` docs: "if the action raises an error, the barrier is
/// put into the broken state" — for every party, the one that ran it included,
/// until `reset`.
#[test]
fn a_panicking_action_breaks_the_barrier_for_every_party() {
    let name = unique("barrier-action-panics");
    let b = Barrier::create(&name, 3)
        .unwrap()
        .with_action(|| panic!("the action fails"));
    let kids: Vec<_> = (0..2)
        .map(|_| {
            let b = b.clone();
            fork(move || i32::from(!matches!(b.wait_timeout(WATCHDOG), Err(Error::Broken))))
        })
        .collect();
    wait_for("two waiters", || b.n_waiting() == 2);
    let b2 = b.clone();
    assert!(matches!(
        watchdog(WATCHDOG, move || b2.wait()),
        Err(Error::Broken)
    ));
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    assert!(b.is_broken());
    assert!(matches!(b.wait(), Err(Error::Broken)));
    b.reset();
    let single = Barrier::open(&name).unwrap();
    let t = std::thread::spawn(move || single.wait_timeout(WATCHDOG));
    let plain = Barrier::open(&name).unwrap();
    let t2 = std::thread::spawn(move || plain.wait_timeout(WATCHDOG));
    // The third party has no action: the round completes normally.
    let last = Barrier::open(&name).unwrap();
    wait_for("two waiters again", || last.n_waiting() == 2);
    assert_eq!(last.wait_timeout(WATCHDOG).unwrap(), 2);
    t.join().unwrap().unwrap();
    t2.join().unwrap().unwrap();
}

/// Mirrors CPython's `BarrierTests.test_default_timeout`: `Barrier(n, timeout=...)`
/// makes a plain `wait()` time out (breaking the barrier); `wait(timeout)` overrides.
#[test]
fn the_default_timeout_applies_to_wait_and_wait_timeout_overrides_it() {
    let name = unique("barrier-default-timeout");
    let b = Barrier::create(&name, 2)
        .unwrap()
        .with_timeout(Duration::from_millis(50));
    assert_eq!(b.timeout(), Some(Duration::from_millis(50)));
    let b2 = b.clone();
    let t = Instant::now();
    assert!(matches!(
        watchdog(WATCHDOG, move || b2.wait()),
        Err(Error::Broken)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(b.is_broken());
    b.reset();
    // A longer explicit timeout wins over the default: the partner comes after 150 ms.
    let partner = fork({
        let name = name.clone();
        move || {
            std::thread::sleep(Duration::from_millis(150));
            let b = Barrier::open(&name).unwrap();
            i32::from(b.wait_timeout(WATCHDOG).is_err())
        }
    });
    let b2 = b.clone();
    assert!(watchdog(WATCHDOG, move || b2.wait_timeout(WATCHDOG)).is_ok());
    partner.join_ok(WATCHDOG);
}

/// The last party's process killed while it runs the action: it holds the round, so
/// the other parties are not released — they find it dead and the barrier breaks
/// (within the probe interval) instead of hanging.
#[test]
fn a_party_killed_in_the_action_breaks_the_barrier() {
    let name = unique("barrier-action-killed");
    let b = Barrier::create(&name, 2).unwrap();
    let b2 = b.clone();
    let waiter = std::thread::spawn(move || b2.wait_timeout(WATCHDOG));
    wait_for("the first party", || b.n_waiting() == 1);
    let seg = Segment::create(&format!("{name}.n"), 8).unwrap();
    let actor = fork({
        let (name, seg) = (name.clone(), seg.clone());
        move || {
            let b = Barrier::open(&name).unwrap().with_action(move || {
                slot(&seg, 0).store(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(60));
            });
            let _ = b.wait();
            0
        }
    });
    wait_for("the action", || slot(&seg, 0).load(Ordering::SeqCst) == 1);
    actor.kill();
    let r = watchdog(WATCHDOG, move || waiter.join().unwrap());
    assert!(matches!(r, Err(Error::Broken)), "{r:?}");
    assert!(b.is_broken());
}

#[test]
fn an_interrupted_wait_gives_up_and_breaks_the_barrier_for_the_others() {
    let name = unique("bar-interrupt");
    let b = Barrier::create(&name, 3)
        .unwrap()
        .with_probe_interval(Duration::from_millis(2));
    let other = b.clone();
    let t = std::thread::spawn(move || other.wait());
    let start = Instant::now();
    let b2 = b.clone();
    let r = watchdog(Duration::from_secs(60), move || {
        b2.wait_interruptible(None, &|| start.elapsed() > Duration::from_millis(20))
    });
    assert!(matches!(r, Err(Error::Broken)), "{r:?}");
    assert!(matches!(t.join().unwrap(), Err(Error::Broken)));
    assert!(b.is_broken());
    b.reset();
    assert!(!b.is_broken());
}

#[test]
fn an_interruptible_wait_that_is_never_interrupted_is_a_wait() {
    let name = unique("bar-uninterrupted");
    let b = Barrier::create(&name, 2).unwrap();
    let other = b.clone();
    let t = std::thread::spawn(move || other.wait());
    let r = b.wait_interruptible(Some(Duration::from_secs(30)), &|| false);
    let mut idx = [r.unwrap(), t.join().unwrap().unwrap()];
    idx.sort();
    assert_eq!(idx, [0, 1]);
}

/// With a 10 s probe interval a waiter's timed probes fall at about 0.6, 1.9, 4.4 and
/// 9.4 s into its wait: a party that dies 4.5 s in would be found at 9.4 s by them.
const SLOW_PROBE: Duration = Duration::from_secs(10);
/// When the victim dies, counted from when both waiters are seen waiting.
const DIES_AFTER: Duration = Duration::from_millis(4500);

#[test]
fn a_party_killed_during_a_long_wait_breaks_the_barrier_before_the_next_timed_probe() {
    let name = unique("barrier-watch");
    let b = Barrier::create(&name, 3).unwrap();
    let victim = {
        let name = name.clone();
        fork(move || {
            let b = Barrier::open(&name)
                .unwrap()
                .with_probe_interval(SLOW_PROBE);
            let _ = b.wait();
            0
        })
    };
    let seg = Segment::create(&format!("{name}.t"), 8).unwrap();
    let s2 = seg.clone();
    let survivor = fork(move || {
        let b = Barrier::open(&name)
            .unwrap()
            .with_probe_interval(SLOW_PROBE);
        let broken = matches!(b.wait(), Err(Error::Broken));
        // When it learned, on the monotonic clock both processes share.
        slot(&s2, 0).store(now_ns(), Ordering::Release);
        i32::from(!broken)
    });
    wait_for("two waiters", || b.n_waiting() == 2);
    std::thread::sleep(DIES_AFTER);
    let killed = now_ns();
    victim.kill();
    survivor.join_ok(WATCHDOG);
    let took = Duration::from_nanos(slot(&seg, 0).load(Ordering::Acquire) - killed);
    assert!(
        took < Duration::from_secs(2),
        "broken {took:?} after the kill: not woken by the death watcher"
    );
}

/// CLOCK_MONOTONIC in ns (the same clock in every process).
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
