//! `open_or_create`, one rule for every kind: an existing object is returned only when
//! it was created with the parameters asked for (after the rounding `create` applies);
//! otherwise `Err(Mismatch)` naming both, and the existing object is left alone. State
//! (a Value's contents, a semaphore's count) is not a parameter. Messages name kinds
//! with the right article.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{
    Array, Barrier, BoundedSemaphore, ByteQueue, Condition, Error, Event, JoinableQueue, Lock,
    Pipe, Queue, RLock, Role, Segment, Semaphore, SpscQueue, Value,
};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

/// Asserts `r` is `Err(Mismatch)` for `kind` with exactly these parameter texts, and
/// that its message names the object and both sides.
#[track_caller]
fn assert_mismatch<T: std::fmt::Debug>(
    r: multiproc::Result<T>,
    name: &str,
    kind: &str,
    existing: &str,
    requested: &str,
) {
    match r {
        Err(e @ Error::Mismatch { .. }) => {
            let msg = e.to_string();
            let Error::Mismatch {
                name: n,
                kind: k,
                existing: x,
                requested: q,
            } = e
            else {
                unreachable!()
            };
            assert_eq!(
                (n.as_str(), k.as_str(), x.as_str(), q.as_str()),
                (name, kind, existing, requested)
            );
            let want = format!("{kind} '{name}' already exists with {existing}, not {requested}");
            assert!(msg.contains(&want), "{msg}");
            assert!(!msg.contains("element type"), "{msg}");
        }
        r => panic!("expected Mismatch, got {r:?}"),
    }
}

/// Asserts `r` is `Err(WrongKind)` whose message reads exactly `'name' is <phrase>`.
#[track_caller]
fn assert_wrong_kind<T: std::fmt::Debug>(r: multiproc::Result<T>, name: &str, phrase: &str) {
    match r {
        Err(e @ Error::WrongKind { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("'{name}' is {phrase}:")), "{msg}");
        }
        r => panic!("expected WrongKind, got {r:?}"),
    }
}

#[test]
fn queue_of_another_capacity_is_a_mismatch_and_stays_as_it_was() {
    let name = unique("ooc-q");
    let q: Queue<u64> = Queue::create(&name, 8).unwrap();
    q.put(7).unwrap();
    assert_mismatch(
        Queue::<u64>::open_or_create(&name, 1024),
        &name,
        "Queue",
        "capacity 8",
        "capacity 1024",
    );
    // Capacities are exact (issue 12): 5 is another queue than 8, even though both
    // rings have 8 slots; 8 is the same queue.
    assert_mismatch(
        Queue::<u64>::open_or_create(&name, 5),
        &name,
        "Queue",
        "capacity 8",
        "capacity 5",
    );
    let same = Queue::<u64>::open_or_create(&name, 8).unwrap();
    assert_eq!(same.capacity(), 8);
    assert_eq!(same.get().unwrap(), 7);
}

#[test]
fn open_or_create_refuses_a_bad_capacity_even_when_the_queue_exists() {
    let name = unique("ooc-q0");
    let _q: Queue<u64> = Queue::create(&name, 8).unwrap();
    assert!(matches!(
        Queue::<u64>::open_or_create(&name, 0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn joinable_queue_of_another_capacity_is_a_mismatch() {
    let name = unique("ooc-jq");
    let q: JoinableQueue<u32> = JoinableQueue::create(&name, 16).unwrap();
    q.put(3).unwrap();
    assert_mismatch(
        JoinableQueue::<u32>::open_or_create(&name, 64),
        &name,
        "JoinableQueue",
        "capacity 16",
        "capacity 64",
    );
    let same = JoinableQueue::<u32>::open_or_create(&name, 16).unwrap();
    assert_eq!(same.get().unwrap(), 3);
    same.task_done().unwrap();
}

#[test]
fn byte_queue_of_another_capacity_or_message_length_is_a_mismatch() {
    let name = unique("ooc-bq");
    let q = ByteQueue::create(&name, 8, 64).unwrap();
    q.put(b"kept").unwrap();
    assert_mismatch(
        ByteQueue::open_or_create(&name, 8, 128),
        &name,
        "ByteQueue",
        "max message length 64",
        "max message length 128",
    );
    assert_mismatch(
        ByteQueue::open_or_create(&name, 32, 16),
        &name,
        "ByteQueue",
        "capacity 8 and max message length 64",
        "capacity 32 and max message length 16",
    );
    let same = ByteQueue::open_or_create(&name, 8, 64).unwrap();
    assert_eq!(same.get().unwrap(), b"kept");
}

#[test]
fn spsc_queue_of_another_capacity_is_a_mismatch_and_the_role_stays_free() {
    let name = unique("ooc-spsc");
    let mut tx: SpscQueue<u64> = SpscQueue::create(&name, 16, Role::Producer).unwrap();
    tx.put(11).unwrap();
    assert_mismatch(
        SpscQueue::<u64>::open_or_create(&name, 256, Role::Consumer),
        &name,
        "SpscQueue",
        "capacity 16",
        "capacity 256",
    );
    // The refused call did not keep the consumer role.
    let mut rx = SpscQueue::<u64>::open_or_create(&name, 16, Role::Consumer).unwrap();
    assert_eq!(rx.get().unwrap(), 11);
}

#[test]
fn pipe_of_another_capacity_or_direction_is_a_mismatch_and_end_b_stays_free() {
    let name = unique("ooc-pipe");
    let mut a = Pipe::create(&name, 4096).unwrap();
    a.send_bytes(b"hello").unwrap();
    assert_mismatch(
        Pipe::open_or_create(&name, 1 << 16),
        &name,
        "Pipe",
        "capacity 4096",
        "capacity 65536",
    );
    // The refused call did not claim end B.
    let mut b = Pipe::open_or_create(&name, 4096).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"hello");

    let one_way = unique("ooc-pipe1");
    let _w = Pipe::create_one_way(&one_way, 4096).unwrap();
    assert_mismatch(
        Pipe::open_or_create(&one_way, 4096),
        &one_way,
        "Pipe",
        "direction one-way",
        "direction duplex",
    );
}

#[test]
fn semaphore_with_another_initial_value_is_a_mismatch_but_its_count_is_not_compared() {
    let name = unique("ooc-sem");
    let s = Semaphore::create(&name, 1).unwrap();
    assert_mismatch(
        Semaphore::open_or_create(&name, 9),
        &name,
        "Semaphore",
        "initial value 1",
        "initial value 9",
    );
    assert!(s.try_acquire());
    let same = Semaphore::open_or_create(&name, 1).unwrap();
    assert_eq!(
        same.value(),
        0,
        "the count is state: taken permits stay taken"
    );
}

#[test]
fn bounded_semaphore_with_another_bound_is_a_mismatch() {
    let name = unique("ooc-bsem");
    let s = BoundedSemaphore::create(&name, 2).unwrap();
    assert_mismatch(
        BoundedSemaphore::open_or_create(&name, 3),
        &name,
        "BoundedSemaphore",
        "initial value 2",
        "initial value 3",
    );
    assert!(s.try_acquire());
    let same = BoundedSemaphore::open_or_create(&name, 2).unwrap();
    assert_eq!(same.value(), 1);
    same.release().unwrap();
    assert!(same.release().is_err(), "the bound is still 2");
}

#[test]
fn barrier_of_other_parties_is_a_mismatch() {
    let name = unique("ooc-bar");
    let _b = Barrier::create(&name, 2).unwrap();
    assert_mismatch(
        Barrier::open_or_create(&name, 7),
        &name,
        "Barrier",
        "parties 2",
        "parties 7",
    );
    assert_eq!(Barrier::open_or_create(&name, 2).unwrap().parties(), 2);
    assert!(matches!(
        Barrier::open_or_create(&name, 0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn array_of_another_length_is_a_mismatch_not_a_wrong_type() {
    let name = unique("ooc-arr");
    let a: Array<u32> = Array::create(&name, 4).unwrap();
    a.set(1, 5).unwrap();
    assert_mismatch(
        Array::<u32>::open_or_create(&name, 5),
        &name,
        "Array",
        "length 4",
        "length 5",
    );
    assert_eq!(
        Array::<u32>::open_or_create(&name, 4).unwrap().get(1),
        Some(5)
    );
    // Another element type is still WrongType, with the element-type advice.
    match Array::<u64>::open_or_create(&name, 4) {
        Err(e @ Error::WrongType { .. }) => {
            assert!(e.to_string().contains("element type"), "{e}")
        }
        r => panic!("expected WrongType, got {r:?}"),
    }
}

#[test]
fn segment_of_another_length_is_a_mismatch() {
    let name = unique("ooc-seg");
    let s = Segment::create(&name, 64).unwrap();
    // SAFETY: the segment holds 64 bytes; nobody else writes it in this test.
    unsafe { s.as_ptr().write(42) };
    assert_mismatch(
        Segment::open_or_create(&name, 128),
        &name,
        "Segment",
        "length 64",
        "length 128",
    );
    let same = Segment::open_or_create(&name, 64).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { same.as_ptr().read() }, 42);
}

#[test]
fn value_is_returned_as_it_is_and_another_kind_is_named_with_the_right_article() {
    let name = unique("ooc-val");
    let v: Value<u64> = Value::create(&name, 5).unwrap();
    v.set(6);
    // The initial value is state, not a parameter: the existing value is returned.
    assert_eq!(Value::<u64>::open_or_create(&name, 9).unwrap().get(), 6);
    let arr = unique("ooc-val-arr");
    let _a: Array<u64> = Array::create(&arr, 1).unwrap();
    assert_wrong_kind(
        Value::<u64>::open_or_create(&arr, 0),
        &arr,
        "an Array, not a Value",
    );
}

#[test]
fn lock_is_returned_as_it_is_and_another_kind_is_named_with_the_right_article() {
    let name = unique("ooc-lock");
    let l = Lock::create(&name).unwrap();
    let _g = l.acquire().unwrap();
    assert!(Lock::open_or_create(&name).unwrap().is_locked());
    let ev = unique("ooc-lock-ev");
    let _e = Event::create(&ev).unwrap();
    assert_wrong_kind(Lock::open_or_create(&ev), &ev, "an Event, not a Lock");
}

#[test]
fn rlock_is_returned_as_it_is_and_another_kind_is_named_with_the_right_article() {
    let name = unique("ooc-rlock");
    let r = RLock::create(&name).unwrap();
    let _g = r.acquire().unwrap();
    assert!(RLock::open_or_create(&name).unwrap().is_locked());
    let l = unique("ooc-rlock-l");
    let _l = Lock::create(&l).unwrap();
    assert_wrong_kind(RLock::open_or_create(&l), &l, "a Lock, not an RLock");
}

#[test]
fn event_is_returned_as_it_is_and_another_kind_is_named_with_the_right_article() {
    let name = unique("ooc-ev");
    let e = Event::create(&name).unwrap();
    e.set();
    assert!(Event::open_or_create(&name).unwrap().is_set());
    let l = unique("ooc-ev-l");
    let _l = Lock::create(&l).unwrap();
    assert_wrong_kind(Event::open_or_create(&l), &l, "a Lock, not an Event");
}

#[test]
fn condition_is_returned_as_it_is_and_another_kind_is_named_with_the_right_article() {
    let name = unique("ooc-cond");
    let c = Condition::create(&name).unwrap();
    let _g = c.acquire().unwrap();
    let same = Condition::open_or_create(&name).unwrap();
    assert!(same.is_locked(), "the same condition, its lock held");
    let ev = unique("ooc-cond-ev");
    let _e = Event::create(&ev).unwrap();
    assert_wrong_kind(
        Condition::open_or_create(&ev),
        &ev,
        "an Event, not a Condition",
    );
}

#[test]
fn another_process_asking_for_another_capacity_gets_a_mismatch() {
    let name = unique("ooc-proc");
    let q: Queue<u64> = Queue::create(&name, 8).unwrap();
    let child_name = name.clone();
    let child = fork(
        move || match Queue::<u64>::open_or_create(&child_name, 1024) {
            Err(Error::Mismatch {
                existing,
                requested,
                ..
            }) if existing == "capacity 8" && requested == "capacity 1024" => 0,
            _ => 1,
        },
    );
    child.join_ok(WATCHDOG);
    assert_eq!(q.capacity(), 8);
    assert!(q.is_empty());
}
