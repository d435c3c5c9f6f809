//! `Semaphore` and `BoundedSemaphore`: counting across processes.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{BoundedSemaphore, Error, Segment, Semaphore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

fn slot(seg: &Segment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len());
    // SAFETY: in bounds, 8-aligned (segments are 128-aligned), only used atomically.
    unsafe { &*(seg.as_ptr().add(i * 8) as *const AtomicU64) }
}

#[test]
fn tutorial_semaphore_of_three_never_admits_a_fourth() {
    let name = unique("sem-three");
    let _sem = Semaphore::create(&name, 3).unwrap();
    // [0] inside now, [1] most ever inside, [2] admissions
    let seg = Segment::create(&format!("{name}.n"), 24).unwrap();
    let kids: Vec<_> = (0..6)
        .map(|_| {
            let (name, seg) = (name.clone(), seg.clone());
            fork(move || {
                let sem = Semaphore::open(&name).unwrap();
                for _ in 0..200 {
                    sem.acquire().unwrap();
                    let inside = slot(&seg, 0).fetch_add(1, Ordering::SeqCst) + 1;
                    slot(&seg, 1).fetch_max(inside, Ordering::SeqCst);
                    slot(&seg, 2).fetch_add(1, Ordering::SeqCst);
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                    slot(&seg, 0).fetch_sub(1, Ordering::SeqCst);
                    sem.release().unwrap();
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    let most = slot(&seg, 1).load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&most),
        "{most} processes were inside at once"
    );
    assert_eq!(slot(&seg, 2).load(Ordering::SeqCst), 6 * 200);
    assert_eq!(Semaphore::open(&name).unwrap().value(), 3);
}

#[test]
fn counts_permits_and_try_acquire_never_blocks() {
    let sem = Semaphore::create(&unique("sem-basic"), 2).unwrap();
    assert_eq!(sem.value(), 2);
    assert!(sem.try_acquire());
    sem.acquire().unwrap();
    assert!(!sem.try_acquire());
    assert_eq!(sem.value(), 0);
    sem.release().unwrap();
    sem.release().unwrap();
    sem.release().unwrap(); // an unbounded semaphore may grow past its initial value
    assert_eq!(sem.value(), 3);
}

#[test]
fn bounded_semaphore_refuses_release_past_its_initial_value() {
    let name = unique("bsem");
    let sem = BoundedSemaphore::create(&name, 2).unwrap();
    assert!(matches!(sem.release(), Err(Error::InvalidArgument { .. })));
    assert_eq!(sem.value(), 2);
    sem.acquire().unwrap();
    sem.release().unwrap();
    // The bound travels with the object: another handle refuses too.
    let other = BoundedSemaphore::open(&name).unwrap();
    assert_eq!(other.max_value(), 2);
    assert!(matches!(
        other.release(),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn acquire_timeout_waits_at_least_the_timeout() {
    let sem = Semaphore::create(&unique("sem-timeout"), 0).unwrap();
    watchdog(WATCHDOG, move || {
        let t = Instant::now();
        assert!(!sem.acquire_timeout(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(!sem.acquire_timeout(Duration::ZERO));
    });
}

#[test]
fn release_in_one_process_wakes_a_waiter_in_another() {
    let name = unique("sem-wake");
    let sem = Semaphore::create(&name, 0).unwrap();
    let child = fork(move || {
        let sem = Semaphore::open(&name).unwrap();
        sem.acquire().unwrap(); // sleeps until the parent releases
        0
    });
    let t = Instant::now();
    while sem.raw().sleepers() == 0 && t.elapsed() < WATCHDOG {
        std::thread::sleep(Duration::from_millis(1));
    }
    sem.release().unwrap();
    child.join_ok(WATCHDOG);
    assert_eq!(sem.value(), 0);
}

#[test]
fn a_dead_holder_does_not_give_its_permit_back() {
    // Documented POSIX/Python semantics: permits have no owner.
    let name = unique("sem-dead");
    let sem = Semaphore::create(&name, 1).unwrap();
    let child = fork(move || {
        let sem = Semaphore::open(&name).unwrap();
        sem.acquire().unwrap();
        0 // exits holding the permit
    });
    child.join_ok(WATCHDOG);
    assert_eq!(sem.value(), 0);
    assert!(!sem.acquire_timeout(Duration::from_millis(5)));
}

#[test]
fn open_checks_kind_and_existence() {
    let name = unique("sem-kind");
    let _s = Semaphore::create(&name, 1).unwrap();
    assert!(matches!(
        BoundedSemaphore::open(&name),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        Semaphore::open(&unique("sem-missing")),
        Err(Error::NotFound { .. })
    ));
    let name = unique("sem-ooc");
    let a = Semaphore::open_or_create(&name, 5).unwrap();
    let b = Semaphore::open_or_create(&name, 5).unwrap();
    assert_eq!(b.value(), 5, "open_or_create opens the existing semaphore");
    assert!(a.try_acquire());
    assert_eq!(b.value(), 4);
    assert!(format!("{b:?}").contains("value: 4"));
}
