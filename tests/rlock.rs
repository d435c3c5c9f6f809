//! `RLock`: re-entrant for its owning thread, exclusive across threads and
//! processes, robust against a dead holder.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Error, Lock, RLock, Segment, TryLockError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

fn slot(seg: &Segment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len());
    // SAFETY: in bounds, 8-aligned (segments are 128-aligned), only used atomically.
    unsafe { &*(seg.as_ptr().add(i * 8) as *const AtomicU64) }
}

#[test]
fn owner_thread_reacquires_without_blocking() {
    let lock = RLock::create(&unique("rlock-reenter")).unwrap();
    let a = lock.acquire().unwrap();
    let b = lock.acquire().unwrap();
    let c = lock.try_acquire().unwrap();
    let d = lock.acquire_timeout(Duration::ZERO).unwrap();
    assert_eq!(lock.depth(), 4);
    // Guards may drop in any order; the lock stays held until the last one goes.
    drop(b);
    drop(d);
    drop(a);
    assert!(lock.is_locked() && lock.is_owned());
    drop(c);
    assert!(!lock.is_locked());
    assert_eq!(lock.depth(), 0);
}

#[test]
fn other_thread_waits_until_every_hold_is_given_up() {
    let lock = RLock::create(&unique("rlock-threads")).unwrap();
    let outer = lock.acquire().unwrap();
    let inner = lock.acquire().unwrap();
    let l2 = lock.clone();
    let (checked_tx, checked_rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        assert!(matches!(l2.try_acquire(), Err(TryLockError::WouldBlock)));
        assert!(!l2.is_owned());
        checked_tx.send(()).unwrap();
        let _g = l2.acquire().unwrap();
        assert_eq!(l2.depth(), 1);
    });
    // Both holds stay until the other thread found the lock held (a thread started
    // late on a loaded machine would otherwise find it free).
    checked_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(10));
    drop(inner);
    std::thread::sleep(Duration::from_millis(10));
    assert!(
        !t.is_finished(),
        "the other thread got in while one hold remained"
    );
    drop(outer);
    watchdog(WATCHDOG, move || t.join().unwrap());
}

#[test]
fn release_by_a_thread_that_does_not_hold_it_is_not_owner() {
    let lock = RLock::create(&unique("rlock-notowner")).unwrap();
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
    let g = lock.acquire().unwrap();
    let l2 = lock.clone();
    std::thread::spawn(move || assert!(matches!(l2.release(), Err(Error::NotOwner))))
        .join()
        .unwrap();
    assert!(lock.is_locked(), "a non-owner release must not unlock");
    drop(g);
}

#[test]
fn python_style_leaked_holds_are_given_up_by_release() {
    let lock = RLock::create(&unique("rlock-python")).unwrap();
    lock.acquire().unwrap().leak();
    lock.acquire().unwrap().leak();
    assert_eq!(lock.depth(), 2);
    lock.release().unwrap();
    assert!(lock.is_locked());
    lock.release().unwrap();
    assert!(!lock.is_locked());
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
}

#[test]
fn nested_holds_exclude_other_processes_exactly() {
    let name = unique("rlock-count");
    let _lock = RLock::create(&name).unwrap();
    let seg = Segment::create(&format!("{name}.n"), 8).unwrap();
    const N: u64 = 10_000;
    let kids: Vec<_> = (0..3)
        .map(|_| {
            let (name, seg) = (name.clone(), seg.clone());
            fork(move || {
                let lock = RLock::open(&name).unwrap();
                let n = slot(&seg, 0);
                for _ in 0..N {
                    let _outer = lock.acquire().unwrap();
                    let v = n.load(Ordering::Relaxed);
                    let _inner = lock.acquire().unwrap();
                    n.store(v + 1, Ordering::Relaxed);
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    assert_eq!(slot(&seg, 0).load(Ordering::Relaxed), 3 * N);
}

#[test]
fn dead_holder_at_any_depth_is_recovered_once() {
    let name = unique("rlock-dead");
    let lock = RLock::create(&name).unwrap();
    let mut child = fork(move || {
        let lock = RLock::open(&name).unwrap();
        for _ in 0..3 {
            lock.acquire().unwrap().leak();
        }
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    while !lock.is_locked() {
        assert!(child.wait_timeout(Duration::from_millis(1)).is_none());
    }
    child.kill();
    watchdog(WATCHDOG, move || {
        let g = match lock.acquire() {
            Err(died) => died.into_inner(),
            Ok(_) => panic!("expected OwnerDied"),
        };
        assert_eq!(lock.depth(), 1, "the dead thread's depth is not inherited");
        drop(g);
        assert!(!lock.is_locked());
        assert!(lock.acquire().is_ok());
    });
}

#[test]
fn acquire_timeout_waits_at_least_the_timeout() {
    let lock = RLock::create(&unique("rlock-timeout")).unwrap();
    let _g = lock.acquire().unwrap();
    let l2 = lock.clone();
    watchdog(WATCHDOG, move || {
        let t = Instant::now();
        assert!(matches!(
            l2.acquire_timeout(Duration::from_millis(30)),
            Err(TryLockError::WouldBlock)
        ));
        assert!(t.elapsed() >= Duration::from_millis(30));
    });
}

#[test]
fn open_checks_kind_and_existence() {
    let name = unique("rlock-kind");
    let _lock = Lock::create(&name).unwrap();
    assert!(matches!(RLock::open(&name), Err(Error::WrongKind { .. })));
    assert!(matches!(
        RLock::open(&unique("rlock-missing")),
        Err(Error::NotFound { .. })
    ));
    let name = unique("rlock-ooc");
    let a = RLock::open_or_create(&name).unwrap();
    let b = RLock::open_or_create(&name).unwrap();
    let _g = a.acquire().unwrap();
    assert!(b.is_locked());
    assert!(format!("{b:?}").contains(&name));
}

/// A holder SIGKILLed 4.5 s into a wait with a 10 s probe interval (whose timed probes
/// fall at about 0.6, 1.9, 4.4 and 9.4 s) is recovered long before the 9.4 s probe:
/// the death watcher woke the waiter.
#[test]
fn holder_killed_during_a_long_wait_is_recovered_before_the_next_timed_probe() {
    let name = unique("rlock-watch");
    let lock = RLock::create(&name)
        .unwrap()
        .with_probe_interval(SLOW_PROBE);
    let l2 = lock.clone();
    assert_a_killed_holder_is_recovered_by_the_death_watcher(
        move || std::mem::forget(RLock::open(&name).unwrap().acquire().unwrap()),
        move || l2.is_locked(),
        // Err(OwnerDied) is the only error `acquire` has.
        move || lock.acquire().is_err(),
    );
}
