//! `JoinableQueue<T>`: task accounting, join, and consumers that die.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Error, JoinableQueue};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

#[test]
fn join_returns_once_every_task_is_done() {
    let q: JoinableQueue<u32> = JoinableQueue::create(&unique("jq-basic"), 8).unwrap();
    assert!(
        q.join_timeout(Duration::ZERO),
        "nothing put: nothing to wait for"
    );
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.unfinished_tasks(), 2);
    assert!(!q.join_timeout(Duration::from_millis(10)));
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(
        q.unfinished_tasks(),
        2,
        "got but not done is still unfinished"
    );
    q.task_done().unwrap();
    assert_eq!(q.unfinished_tasks(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    q.task_done().unwrap();
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(q.join_timeout(Duration::ZERO));
    q.join();
}

#[test]
fn task_done_more_often_than_gets_is_an_error() {
    let q: JoinableQueue<u8> = JoinableQueue::create(&unique("jq-extra"), 4).unwrap();
    assert!(matches!(q.task_done(), Err(Error::InvalidArgument { .. })));
    q.put(1).unwrap();
    assert!(
        matches!(q.task_done(), Err(Error::InvalidArgument { .. })),
        "a value put but not got cannot be done"
    );
    q.get().unwrap();
    q.task_done().unwrap();
    assert!(matches!(q.task_done(), Err(Error::InvalidArgument { .. })));
}

#[test]
fn a_get_that_finds_nothing_holds_no_task() {
    let q: JoinableQueue<u8> = JoinableQueue::create(&unique("jq-empty"), 4).unwrap();
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(q.join_timeout(Duration::ZERO));
}

#[test]
fn a_blocked_consumer_does_not_delay_join() {
    let q: JoinableQueue<u8> = JoinableQueue::create(&unique("jq-blocked"), 4).unwrap();
    let q2 = q.clone();
    let t = std::thread::spawn(move || q2.get());
    std::thread::sleep(Duration::from_millis(20));
    assert!(q.join_timeout(Duration::from_millis(100)));
    q.close();
    watchdog(WATCHDOG, move || {
        assert!(matches!(t.join().unwrap(), Err(Error::Closed)))
    });
}

#[test]
fn task_done_may_come_from_another_thread() {
    let q: JoinableQueue<u8> = JoinableQueue::create(&unique("jq-other"), 4).unwrap();
    q.put(1).unwrap();
    q.get().unwrap();
    let q2 = q.clone();
    std::thread::spawn(move || q2.task_done().unwrap())
        .join()
        .unwrap();
    assert!(q.join_timeout(Duration::ZERO));
}

#[test]
fn join_waits_for_worker_processes() {
    let name = unique("jq-workers");
    let q: JoinableQueue<u64> = JoinableQueue::create(&name, 16).unwrap();
    let done = multiproc::Segment::create(&format!("{name}.sum"), 8).unwrap();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            let (name, done) = (name.clone(), done.clone());
            fork(move || {
                let q: JoinableQueue<u64> = JoinableQueue::open(&name).unwrap();
                // SAFETY: 8 aligned bytes of our segment, accessed atomically.
                let sum = unsafe { &*(done.as_ptr() as *const std::sync::atomic::AtomicU64) };
                while let Ok(v) = q.get() {
                    std::thread::sleep(Duration::from_micros(200));
                    sum.fetch_add(v, std::sync::atomic::Ordering::SeqCst);
                    q.task_done().unwrap();
                }
                0
            })
        })
        .collect();
    for i in 1..=100 {
        q.put(i).unwrap();
    }
    let q2 = q.clone();
    watchdog(WATCHDOG, move || q2.join());
    // SAFETY: as above.
    let sum = unsafe { &*(done.as_ptr() as *const std::sync::atomic::AtomicU64) };
    assert_eq!(
        sum.load(std::sync::atomic::Ordering::SeqCst),
        5050,
        "join returned before every task was done"
    );
    q.close();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
}

/// Forks a consumer process that gets `tasks` values from the queue `name` and never
/// marks them done; once it holds them (the queue is empty and `join` does not
/// return), SIGKILLs it.
fn kill_a_consumer_holding(q: &JoinableQueue<u64>, name: &str, tasks: usize) {
    let name = name.to_owned();
    let mut child = fork(move || {
        let q: JoinableQueue<u64> = JoinableQueue::open(&name).unwrap();
        for _ in 0..tasks {
            q.get().unwrap();
        }
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    while !q.is_empty() {
        assert!(child.wait_timeout(Duration::from_millis(1)).is_none());
    }
    assert!(
        !q.join_timeout(Duration::from_millis(30)),
        "the child holds {tasks} task(s)"
    );
    child.kill();
}

#[test]
fn tasks_held_by_a_dead_consumer_are_abandoned_and_join_returns() {
    let name = unique("jq-dead");
    let q: JoinableQueue<u64> = JoinableQueue::create(&name, 8).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    kill_a_consumer_holding(&q, &name, 2);
    let t = Instant::now();
    let q2 = q.clone();
    assert!(watchdog(WATCHDOG, move || q2.join_timeout(Duration::from_secs(20))));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(q.abandoned_tasks(), 2);
    // The queue keeps working.
    q.put(3).unwrap();
    assert_eq!(q.get().unwrap(), 3);
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::ZERO));
}

#[test]
fn finished_consumers_do_not_use_up_the_tracked_entries() {
    // 200 live threads that each got a task and finished it (more than the 128
    // tracked entries), then a consumer process that dies holding a task: its task is
    // still recovered, because finished threads gave their entries back.
    const THREADS: usize = 200;
    let name = unique("jq-many");
    let q: JoinableQueue<u64> = JoinableQueue::create(&name, 256).unwrap();
    let done = std::sync::Arc::new(std::sync::Barrier::new(THREADS + 1));
    let release = std::sync::Arc::new(std::sync::Barrier::new(THREADS + 1));
    for i in 0..THREADS as u64 {
        q.put(i).unwrap();
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            // Opened handles: if the test fails while these threads still wait, the
            // creating handle below still unlinks the name as the test unwinds.
            let q: JoinableQueue<u64> = JoinableQueue::open(&name).unwrap();
            let (done, release) = (done.clone(), release.clone());
            std::thread::spawn(move || {
                q.get_timeout(WATCHDOG).unwrap();
                q.task_done().unwrap();
                done.wait();
                // Stay alive while the dead consumer's task is recovered.
                release.wait();
            })
        })
        .collect();
    watchdog(WATCHDOG, {
        let done = done.clone();
        move || done.wait()
    });
    assert!(q.join_timeout(Duration::ZERO));
    q.put(7).unwrap();
    kill_a_consumer_holding(&q, &name, 1);
    let q2 = q.clone();
    assert!(watchdog(WATCHDOG, move || q2.join_timeout(Duration::from_secs(20))));
    assert_eq!(q.abandoned_tasks(), 1);
    release.wait();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn open_checks_kind() {
    let name = unique("jq-kind");
    let _q: JoinableQueue<u64> = JoinableQueue::create(&name, 4).unwrap();
    assert!(matches!(
        multiproc::Queue::<u64>::open(&name),
        Err(Error::WrongKind { .. })
    ));
    assert!(JoinableQueue::<u64>::open(&name).is_ok());
    assert!(matches!(
        JoinableQueue::<u32>::open(&name),
        Err(Error::WrongType { .. })
    ));
}

/// Mirrors CPython's `_TestQueue.test_put` for `JoinableQueue(maxsize=6)`: six
/// values fit, the seventh is `Full`, and each counts as one unfinished task.
#[test]
fn capacity_is_exactly_what_was_asked() {
    let q: JoinableQueue<u8> = JoinableQueue::create(&unique("jq-cap"), 6).unwrap();
    assert_eq!(q.capacity(), 6);
    for i in 0..6 {
        q.try_put(i).unwrap();
    }
    assert!(q.is_full());
    assert!(matches!(q.try_put(6), Err(Error::Full)));
    assert_eq!(q.unfinished_tasks(), 6);
    for _ in 0..6 {
        q.get().unwrap();
        q.task_done().unwrap();
    }
    assert!(q.join_timeout(Duration::ZERO));
}

/// Mirrors CPython's `_TestQueue.test_task_done` with the getter and the finisher in
/// different processes (Python counts unfinished tasks globally): a consumer process
/// gets values, passes them on, and exits normally before another process marks
/// them done. `join` waits for those `task_done`s, and none of them is refused.
#[test]
fn tasks_got_by_a_process_that_exited_normally_are_finished_by_another() {
    let name = unique("jq-handoff");
    let q: JoinableQueue<u64> = JoinableQueue::create(&name, 8).unwrap();
    let relay: multiproc::Queue<u64> = multiproc::Queue::create(&unique("jq-relay"), 8).unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    // The getter: takes the three tasks, relays them, returns (its handle drops).
    let getter = fork({
        let (name, relay) = (name.clone(), relay.clone());
        move || {
            let q: JoinableQueue<u64> = JoinableQueue::open(&name).unwrap();
            for _ in 0..3 {
                let v = q.get_timeout(WATCHDOG).unwrap();
                relay.put(v).unwrap();
            }
            0
        }
    });
    getter.join_ok(WATCHDOG);
    // The getter is gone, but it let go of its tasks: they are still unfinished.
    assert!(!q.join_timeout(Duration::from_millis(100)));
    assert_eq!(q.unfinished_tasks(), 3);
    assert_eq!(q.abandoned_tasks(), 0);
    // The finisher, another process that never got anything.
    let finisher = fork({
        let (name, relay) = (name.clone(), relay.clone());
        move || {
            let q: JoinableQueue<u64> = JoinableQueue::open(&name).unwrap();
            for _ in 0..3 {
                relay.get_timeout(WATCHDOG).unwrap();
                if q.task_done().is_err() {
                    return 1;
                }
            }
            i32::from(q.task_done().is_ok()) // a fourth is one too many
        }
    });
    let q2 = q.clone();
    assert!(watchdog(WATCHDOG, move || q2.join_timeout(WATCHDOG)));
    finisher.join_ok(WATCHDOG);
    assert_eq!(q.abandoned_tasks(), 0);
}

/// The other side of the rule: a consumer that is killed holding tasks never let go
/// of them, and a thread that panics holding one is treated the same way; their
/// tasks are abandoned and `join` returns (where Python's would hang).
#[test]
fn tasks_of_a_consumer_thread_that_panics_are_abandoned() {
    let name = unique("jq-panic");
    let q: JoinableQueue<u64> = JoinableQueue::create(&name, 8).unwrap();
    q.put(1).unwrap();
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        q2.get().unwrap();
        panic!("the consumer fails before task_done");
    });
    assert!(t.join().is_err());
    let q3 = q.clone();
    assert!(watchdog(WATCHDOG, move || q3.join_timeout(Duration::from_secs(20))));
    assert_eq!(q.abandoned_tasks(), 1);
}

/// `hand_over` by a live thread: its tasks survive its death (they were let go of)
/// and are finished by another thread.
#[test]
fn handed_over_tasks_outlive_their_getter_and_are_finished_by_anyone() {
    let name = unique("jq-hand-over");
    let q: JoinableQueue<u64> = JoinableQueue::create(&name, 8).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let mut child = fork({
        let name = name.clone();
        move || {
            let q: JoinableQueue<u64> = JoinableQueue::open(&name).unwrap();
            q.get().unwrap();
            q.get().unwrap();
            if q.hand_over() != 2 {
                return 1;
            }
            std::thread::sleep(Duration::from_secs(60));
            0
        }
    });
    wait_until_handed(&q, &mut child);
    child.kill();
    // Killed after letting go: its tasks are not abandoned.
    assert!(!q.join_timeout(Duration::from_millis(100)));
    assert_eq!(q.abandoned_tasks(), 0);
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert!(matches!(q.task_done(), Err(Error::InvalidArgument { .. })));
    assert!(q.join_timeout(Duration::ZERO));
}

/// Waits until the child holding the queue's tasks has handed them over.
fn wait_until_handed(q: &JoinableQueue<u64>, child: &mut Child) {
    let t = Instant::now();
    while q.handed_over_tasks() != 2 {
        assert!(child.wait_timeout(Duration::from_millis(1)).is_none());
        assert!(t.elapsed() < WATCHDOG, "watchdog: tasks never handed over");
    }
}

#[test]
fn an_absurd_probe_interval_is_no_panic_when_join_waits() {
    let q: JoinableQueue<u64> = JoinableQueue::create(&unique("jq-probe-max"), 4)
        .unwrap()
        .with_probe_interval(Duration::MAX);
    watchdog(WATCHDOG, move || {
        q.put(1).unwrap();
        assert!(!q.join_timeout(Duration::from_millis(20)));
        q.get().unwrap();
        q.task_done().unwrap();
        assert!(q.join_timeout(Duration::from_millis(20)));
    });
}
