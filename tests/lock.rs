//! `Lock`: mutual exclusion across processes and recovery from a dead holder.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Lock, Segment, TryLockError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The `i`-th u64 of a shared segment.
fn slot(seg: &Segment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len());
    // SAFETY: in bounds, 8-aligned (segments are 128-aligned), only used atomically.
    unsafe { &*(seg.as_ptr().add(i * 8) as *const AtomicU64) }
}

/// A small xorshift generator: random enough for kill timings.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

const WATCHDOG: Duration = Duration::from_secs(60);

#[test]
fn uncontended_acquire_and_release() {
    let lock = Lock::create(&unique("lock-basic")).unwrap();
    assert!(!lock.is_locked());
    let g = lock.acquire().unwrap();
    assert!(lock.is_locked());
    drop(g);
    assert!(!lock.is_locked());
}

#[test]
fn try_acquire_would_block_while_another_thread_holds() {
    let lock = Lock::create(&unique("lock-try")).unwrap();
    let g = lock.acquire().unwrap();
    let l2 = lock.clone();
    std::thread::spawn(move || {
        assert!(matches!(l2.try_acquire(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            l2.acquire_timeout(Duration::from_millis(20)),
            Err(TryLockError::WouldBlock)
        ));
    })
    .join()
    .unwrap();
    drop(g);
}

#[test]
fn four_processes_times_100k_increments_are_exact() {
    let name = unique("lock-count");
    let _lock = Lock::create(&name).unwrap();
    let seg = Segment::create(&format!("{name}.n"), 8).unwrap();
    const N: u64 = 100_000;
    let kids: Vec<_> = (0..4)
        .map(|_| {
            let (name, seg) = (name.clone(), seg.clone());
            fork(move || {
                let lock = Lock::open(&name).unwrap();
                // SAFETY: 8 bytes, aligned; we touch it only under the lock.
                let n = unsafe { &*(seg.as_ptr() as *const AtomicU64) };
                for _ in 0..N {
                    let _g = lock.acquire().unwrap();
                    // Deliberately non-atomic read-modify-write: only the lock makes it exact.
                    let v = n.load(Ordering::Relaxed);
                    n.store(v + 1, Ordering::Relaxed);
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    // SAFETY: as above; all children are done.
    let n = unsafe { &*(seg.as_ptr() as *const AtomicU64) };
    assert_eq!(n.load(Ordering::Relaxed), 4 * N);
}

#[test]
fn dead_holder_is_recovered_by_next_acquirer() {
    let name = unique("lock-dead");
    let lock = Lock::create(&name).unwrap();
    let mut child = fork(move || {
        let lock = Lock::open(&name).unwrap();
        let g = lock.acquire().unwrap();
        std::mem::forget(g);
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
        drop(g);
        // Clean again once the recovering guard dropped.
        assert!(lock.acquire().is_ok());
    });
}

#[test]
fn dead_thread_holder_is_recovered() {
    let lock = Lock::create(&unique("lock-thread")).unwrap();
    let l2 = lock.clone();
    std::thread::spawn(move || std::mem::forget(l2.acquire().unwrap()))
        .join()
        .unwrap();
    assert!(matches!(
        lock.try_acquire(),
        Err(TryLockError::OwnerDied(_))
    ));
}

#[test]
fn open_wrong_kind_and_missing() {
    let name = unique("lock-kind");
    let _seg = Segment::create(&name, 16).unwrap();
    assert!(matches!(
        Lock::open(&name),
        Err(multiproc::Error::WrongKind { .. })
    ));
    assert!(matches!(
        Lock::open(&unique("lock-missing")),
        Err(multiproc::Error::NotFound { .. })
    ));
}

#[test]
fn tutorial_four_unrelated_processes_add_1000_each_to_4000() {
    // The tutorial program: processes started separately attach to the lock and the
    // counter by name; each adds 1000 under the lock.
    if let Some(name) = role() {
        let lock = Lock::open(&name).unwrap();
        let seg = Segment::open(&format!("{name}.n")).unwrap();
        for _ in 0..1000 {
            let _g = lock.acquire().unwrap();
            let n = slot(&seg, 0);
            n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        return;
    }
    let name = unique("lock-tutorial");
    let _lock = Lock::create(&name).unwrap();
    let seg = Segment::create(&format!("{name}.n"), 8).unwrap();
    let kids: Vec<_> = (0..4)
        .map(|_| {
            spawn_self(
                "tutorial_four_unrelated_processes_add_1000_each_to_4000",
                &name,
            )
        })
        .collect();
    for k in kids {
        let (code, out) = wait_self(k, WATCHDOG);
        assert_eq!(code, 0, "{out}");
    }
    assert_eq!(slot(&seg, 0).load(Ordering::Relaxed), 4000);
}

#[test]
fn holder_killed_at_random_points_200_times_is_always_recovered() {
    let name = unique("lock-kill9");
    let lock = Lock::create(&name).unwrap();
    let seg = Segment::create(&format!("{name}.n"), 16).unwrap();
    let mut next = rng(u64::from(std::process::id()) ^ Instant::now().elapsed().as_nanos() as u64);
    let (mut recovered, mut clean) = (0, 0);
    for round in 0..200u64 {
        let (child_lock, child_seg) = (lock.clone(), seg.clone());
        let child = fork(move || {
            let (n, started) = (slot(&child_seg, 0), slot(&child_seg, 1));
            loop {
                let g = child_lock.acquire().unwrap_or_else(|d| d.into_inner());
                // A critical section long enough that most kills land inside it.
                for _ in 0..50 {
                    n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
                drop(g);
                started.store(round + 1, Ordering::Release);
            }
        });
        while slot(&seg, 1).load(Ordering::Acquire) != round + 1 {
            std::hint::spin_loop();
        }
        let pause = next() % 300;
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(pause) {
            std::hint::spin_loop();
        }
        child.kill();
        // The deadline is the watchdog: WouldBlock means the dead holder was missed.
        match lock.acquire_timeout(WATCHDOG) {
            Ok(_) => clean += 1,
            Err(TryLockError::OwnerDied(_)) => recovered += 1,
            Err(TryLockError::WouldBlock) => panic!("round {round}: dead holder never recovered"),
        }
    }
    eprintln!("recovered {recovered}, clean {clean}");
    assert_eq!(recovered + clean, 200);
    assert!(recovered > 0, "no kill landed inside the critical section");
    assert!(lock.try_acquire().is_ok(), "the lock is clean afterwards");
}

#[test]
fn acquire_timeout_waits_at_least_the_timeout() {
    let lock = Lock::create(&unique("lock-timeout")).unwrap();
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
fn waiter_in_another_process_gets_the_lock_on_release() {
    let name = unique("lock-handoff");
    let lock = Lock::create(&name).unwrap();
    let seg = Segment::create(&format!("{name}.n"), 8).unwrap();
    let g = lock.acquire().unwrap();
    let s2 = seg.clone();
    let child = fork(move || {
        let lock = Lock::open(&name).unwrap();
        let _g = lock.acquire().unwrap();
        slot(&s2, 0).store(1, Ordering::Release);
        0
    });
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        slot(&seg, 0).load(Ordering::Acquire),
        0,
        "the child got in while we held it"
    );
    drop(g);
    child.join_ok(WATCHDOG);
    assert_eq!(slot(&seg, 0).load(Ordering::Acquire), 1);
}

#[test]
fn guard_inherited_by_a_forked_child_does_not_release_the_parent_hold() {
    let lock = Lock::create(&unique("lock-fork-guard")).unwrap();
    let g = std::cell::RefCell::new(Some(lock.acquire().unwrap()));
    let child = fork(|| {
        drop(g.borrow_mut().take()); // the child's thread is not the holder
        0
    });
    child.join_ok(WATCHDOG);
    assert!(lock.is_locked());
    drop(g);
    assert!(!lock.is_locked());
}

#[test]
fn dead_holder_is_recovered_by_try_acquire_and_then_clean() {
    let name = unique("lock-try-dead");
    let lock = Lock::create(&name).unwrap();
    let child = fork(move || {
        let lock = Lock::open(&name).unwrap();
        std::mem::forget(lock.acquire().unwrap());
        0
    });
    child.join_ok(WATCHDOG);
    assert!(lock.is_locked());
    assert!(matches!(
        lock.try_acquire(),
        Err(TryLockError::OwnerDied(_))
    ));
    assert!(lock.try_acquire().is_ok());
}

#[test]
fn debug_names_the_lock() {
    let name = unique("lock-debug");
    let lock = Lock::create(&name).unwrap();
    let text = format!("{lock:?}");
    assert!(
        text.contains(&name) && text.contains("locked: false"),
        "{text}"
    );
}

#[test]
fn every_sync_handle_is_send_sync_clone_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Lock>();
    check::<multiproc::RLock>();
    check::<multiproc::Semaphore>();
    check::<multiproc::BoundedSemaphore>();
    check::<multiproc::Event>();
    check::<multiproc::Condition>();
    check::<multiproc::Barrier>();
}

/// Mirrors CPython's `lock_tests.LockTests.test_different_thread` ("Lock can be
/// released from a different thread") and `_TestLock.test_lock` (releasing an
/// unlocked lock raises), across processes: the holder forgets its guard, another
/// process releases, and a process blocked in `acquire` gets the lock.
#[test]
fn a_forgotten_hold_is_released_by_another_process() {
    let name = unique("lock-unowned");
    let lock = Lock::create(&name).unwrap();
    assert!(matches!(
        lock.release_unowned(),
        Err(multiproc::Error::NotOwner)
    ));
    lock.acquire().unwrap().forget();
    assert!(lock.is_locked());
    // A process waiting for the lock: woken by the release from a third one.
    let waiter = fork({
        let name = name.clone();
        move || {
            let lock = Lock::open(&name).unwrap();
            let got = lock.acquire_timeout(WATCHDOG).is_ok();
            i32::from(!got)
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let releaser = fork({
        let name = name.clone();
        move || {
            let lock = Lock::open(&name).unwrap();
            i32::from(lock.release_unowned().is_err())
        }
    });
    releaser.join_ok(WATCHDOG);
    waiter.join_ok(WATCHDOG);
    assert!(!lock.is_locked());
    // And from another thread of the same process.
    lock.acquire().unwrap().forget();
    released_unowned_by_another_thread(&lock);
}

/// Releases the held `lock` with `release_unowned` from another thread, and checks
/// that it is free and that a second `release_unowned` is `Err(NotOwner)`.
fn released_unowned_by_another_thread(lock: &Lock) {
    let other = lock.clone();
    std::thread::spawn(move || other.release_unowned().unwrap())
        .join()
        .unwrap();
    assert!(!lock.is_locked());
    assert!(matches!(
        lock.release_unowned(),
        Err(multiproc::Error::NotOwner)
    ));
}

#[test]
fn try_acquire_unowned_takes_a_free_lock_that_release_unowned_releases() {
    let name = unique("lock-unowned");
    let lock = Lock::create(&name).unwrap();
    assert_eq!(lock.try_acquire_unowned(), Some(false));
    assert!(lock.is_locked());
    assert_eq!(lock.try_acquire_unowned(), None, "held: not free");
    released_unowned_by_another_thread(&lock);
}

/// A holder SIGKILLed 4.5 s into a wait with a 10 s probe interval is recovered long
/// before the next timed probe: the death watcher woke the waiter.
#[test]
fn holder_killed_during_a_long_wait_is_recovered_before_the_next_timed_probe() {
    let name = unique("lock-watch");
    let lock = Lock::create(&name).unwrap().with_probe_interval(SLOW_PROBE);
    let l2 = lock.clone();
    assert_a_killed_holder_is_recovered_by_the_death_watcher(
        move || std::mem::forget(Lock::open(&name).unwrap().acquire().unwrap()),
        move || l2.is_locked(),
        // Err(OwnerDied) is the only error `acquire` has.
        move || lock.acquire().is_err(),
    );
}

#[test]
fn holder_thread_exiting_during_a_long_wait_is_recovered_before_the_next_timed_probe() {
    // Thread death without process death: the holder is another thread of this process.
    let lock = Lock::create(&unique("lock-watch-thread"))
        .unwrap()
        .with_probe_interval(SLOW_PROBE);
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
    let l2 = lock.clone();
    let holder = std::thread::spawn(move || {
        std::mem::forget(l2.acquire().unwrap());
        held_tx.send(()).unwrap();
        let _ = exit_rx.recv();
    });
    held_rx.recv().unwrap();
    // Err(OwnerDied) is the only error `acquire` has.
    let waiter = std::thread::spawn(move || lock.acquire().is_err());
    std::thread::sleep(DIES_AFTER);
    let exited = Instant::now();
    drop(exit_tx);
    holder.join().unwrap();
    let died = watchdog(WATCHDOG, move || waiter.join().unwrap());
    assert!(died, "the waiter must be told the holder died");
    let took = exited.elapsed();
    assert!(
        took < WATCHED_RECOVERY,
        "recovered {took:?} after the holder exited: not woken by the death watcher"
    );
}

#[test]
fn a_live_holder_watched_by_a_waiter_is_never_taken_over() {
    // The waiter watches the holder (from its first probe on) for the whole timeout;
    // the holder lives, so the wait times out instead of recovering.
    let name = unique("lock-watch-live");
    let lock = Lock::create(&name)
        .unwrap()
        .with_probe_interval(Duration::from_millis(20));
    let mut child = fork(move || {
        let lock = Lock::open(&name).unwrap();
        let _g = lock.acquire().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    while !lock.is_locked() {
        assert!(child.wait_timeout(Duration::from_millis(1)).is_none());
    }
    watchdog(WATCHDOG, move || {
        assert!(matches!(
            lock.acquire_timeout(Duration::from_millis(500)),
            Err(TryLockError::WouldBlock)
        ));
    });
    child.kill();
}

#[test]
fn a_forked_child_waiter_is_woken_by_its_own_death_watcher() {
    // The parent's watcher thread is not copied into a child: the child starts its own.
    let name = unique("lock-watch-fork");
    let lock = Lock::create(&name).unwrap().with_probe_interval(SLOW_PROBE);
    // Start this process's watcher: a short watched wait on a lock held by a thread.
    let warm = Lock::create(&format!("{name}.warm"))
        .unwrap()
        .with_probe_interval(Duration::from_millis(20));
    let w2 = warm.clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _g = w2.acquire().unwrap();
        held_tx.send(()).unwrap();
        let _ = exit_rx.recv();
    });
    held_rx.recv().unwrap();
    assert!(matches!(
        warm.acquire_timeout(Duration::from_millis(50)),
        Err(TryLockError::WouldBlock)
    ));
    drop(exit_tx);
    holder.join().unwrap();

    let seg = Segment::create(&format!("{name}.n"), 16).unwrap();
    let (n2, s2) = (name.clone(), seg.clone());
    let mut holder = fork(move || {
        let lock = Lock::open(&n2).unwrap();
        std::mem::forget(lock.acquire().unwrap());
        slot(&s2, 0).store(1, Ordering::Release);
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    while slot(&seg, 0).load(Ordering::Acquire) == 0 {
        assert!(holder.wait_timeout(Duration::from_millis(1)).is_none());
    }
    let s3 = seg.clone();
    let waiter = fork(move || {
        let t = Instant::now();
        slot(&s3, 1).store(1, Ordering::Release);
        let code = match lock.acquire() {
            Err(died) => {
                drop(died.into_inner());
                0
            }
            Ok(_) => 1,
        };
        // Milliseconds of waiting, for the parent to compare with the kill time.
        slot(&s3, 1).store(2 + t.elapsed().as_millis() as u64, Ordering::Release);
        code
    });
    while slot(&seg, 1).load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    std::thread::sleep(DIES_AFTER);
    holder.kill();
    waiter.join_ok(WATCHDOG);
    let waited = Duration::from_millis(slot(&seg, 1).load(Ordering::Acquire) - 2);
    assert!(
        waited < DIES_AFTER + WATCHED_RECOVERY,
        "the child waited {waited:?}: not woken by a death watcher of its own"
    );
}

#[test]
fn a_waiter_without_free_descriptors_still_recovers_by_probing() {
    // No descriptor left for a pidfd (or the watcher's eventfd): the timed probes
    // remain, and a holder thread that exits during the wait is still recovered.
    let name = unique("lock-nofd");
    let lock = Lock::create(&name)
        .unwrap()
        .with_probe_interval(Duration::from_millis(20));
    let child = fork(move || {
        let lock = Lock::open(&name)
            .unwrap()
            .with_probe_interval(Duration::from_millis(20));
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let l2 = lock.clone();
        let holder = std::thread::spawn(move || {
            std::mem::forget(l2.acquire().unwrap());
            held_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        held_rx.recv().unwrap();
        // Use up every descriptor.
        let null = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: dups of a descriptor we own; the copies are never used and die with
        // the process.
        while unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&null)) } >= 0 {}
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EMFILE),
            "descriptors used up"
        );
        let recovered = lock.acquire().is_err();
        holder.join().unwrap();
        i32::from(!recovered)
    });
    child.join_ok(WATCHDOG);
    drop(lock);
}
