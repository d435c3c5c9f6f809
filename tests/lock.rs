//! `Lock`: mutual exclusion across processes and recovery from a dead holder.
mod common;
use common::*;
use multiproc::{Lock, Segment, TryLockError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
fn four_processes_count_exactly_under_the_lock() {
    let name = unique("lock-count");
    let _lock = Lock::create(&name).unwrap();
    let seg = Segment::create(&format!("{name}.n"), 8).unwrap();
    const N: u64 = 20_000;
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
