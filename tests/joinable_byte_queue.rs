//! `JoinableByteQueue`: byte messages with task accounting; join sleeps, and consumers
//! that die are handled as by `JoinableQueue`.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::segment::{describe, ObjectKind};
use multiproc::{ByteQueue, Error, JoinableByteQueue, JoinableQueue};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

#[test]
fn join_returns_once_every_message_is_marked_done() {
    let name = unique("jbq-join");
    let q = JoinableByteQueue::create(&name, 8, 64).unwrap();
    q.put(b"a").unwrap();
    q.put(b"bcd").unwrap();
    assert_eq!(q.unfinished_tasks(), 2);
    assert!(!q.join_timeout(Duration::from_millis(5)));
    assert_eq!(q.get().unwrap(), b"a");
    q.task_done().unwrap();
    let mut buf = Vec::new();
    assert_eq!(q.try_get_into_vec(&mut buf).unwrap(), 3);
    assert_eq!(buf, b"bcd");
    assert!(
        !q.join_timeout(Duration::from_millis(5)),
        "one task still held"
    );
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::ZERO));
    assert!(matches!(q.task_done(), Err(Error::InvalidArgument { .. })));
}

#[test]
fn messages_longer_than_the_maximum_are_refused() {
    let name = unique("jbq-long");
    let q = JoinableByteQueue::create(&name, 4, 8).unwrap();
    assert!(matches!(
        q.put(&[0u8; 9]),
        Err(Error::TooLarge { len: 9, max: 8 })
    ));
    assert_eq!(q.unfinished_tasks(), 0);
}

#[test]
fn open_checks_kind_both_ways() {
    let name = unique("jbq-kind");
    let q = JoinableByteQueue::create(&name, 4, 32).unwrap();
    assert_eq!(describe(&name).unwrap().kind, ObjectKind::JoinableByteQueue);
    assert_eq!(
        JoinableByteQueue::open(&name).unwrap().max_message_len(),
        32
    );
    assert!(matches!(
        ByteQueue::open(&name),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        JoinableQueue::<u64>::open(&name),
        Err(Error::WrongKind { .. })
    ));
    drop(q);
    let name = unique("jbq-kind2");
    let _b = ByteQueue::create(&name, 4, 32).unwrap();
    assert!(matches!(
        JoinableByteQueue::open(&name),
        Err(Error::WrongKind { .. })
    ));
}

#[test]
fn join_waits_for_a_consumer_process_and_wakes_when_it_finishes() {
    let name = unique("jbq-proc");
    let q = JoinableByteQueue::create(&name, 64, 64).unwrap();
    for i in 0..20u8 {
        q.put(&[i; 10]).unwrap();
    }
    let n = name.clone();
    let child = fork(move || {
        let q = JoinableByteQueue::open(&n).unwrap();
        for i in 0..20u8 {
            if q.get().unwrap() != [i; 10] {
                return 2;
            }
            std::thread::sleep(Duration::from_millis(1));
            q.task_done().unwrap();
        }
        0
    });
    let q2 = q.clone();
    assert!(watchdog(WATCHDOG, move || q2.join_timeout(Duration::from_secs(30))));
    assert_eq!(q.unfinished_tasks(), 0);
    child.join_ok(WATCHDOG);
}

#[test]
fn tasks_held_by_a_killed_consumer_are_abandoned_and_join_returns() {
    let name = unique("jbq-dead");
    let q = JoinableByteQueue::create(&name, 8, 16).unwrap();
    q.put(b"one").unwrap();
    q.put(b"two").unwrap();
    let n = name.clone();
    let mut child = fork(move || {
        let q = JoinableByteQueue::open(&n).unwrap();
        q.get().unwrap();
        q.get().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    while !q.is_empty() {
        assert!(child.wait_timeout(Duration::from_millis(1)).is_none());
    }
    assert!(
        !q.join_timeout(Duration::from_millis(30)),
        "the child holds 2 tasks"
    );
    child.kill();
    let t = Instant::now();
    let q2 = q.clone();
    assert!(watchdog(WATCHDOG, move || q2.join_timeout(Duration::from_secs(20))));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(q.abandoned_tasks(), 2);
    q.put(b"three").unwrap();
    assert_eq!(q.get().unwrap(), b"three");
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::ZERO));
}
