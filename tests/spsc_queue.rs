//! `SpscQueue<T>`: exact FIFO between two processes, roles (one live holder each,
//! taken over from a dead one), close, timeouts and batches; the typed ends
//! `SpscProducer` / `SpscConsumer`.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use bytemuck::{Pod, Zeroable};
use common::*;
use multiproc::{Error, Event, Lock, Role, Segment, SpscConsumer, SpscProducer, SpscQueue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

/// A record that shows tearing: `check` must always be `!seq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
struct Rec {
    seq: u64,
    check: u64,
    pad: [u64; 2],
}

impl Rec {
    fn new(seq: u64) -> Rec {
        Rec {
            seq,
            check: !seq,
            pad: [seq; 2],
        }
    }
    fn assert_whole(&self) {
        assert_eq!(self.check, !self.seq, "torn record {self:?}");
        assert_eq!(self.pad, [self.seq; 2], "torn record {self:?}");
    }
}

#[test]
fn fifo_across_two_processes_with_wraparound() {
    let name = unique("spsc-fifo");
    let mut rx = SpscQueue::<u64>::create(&name, 8, Role::Consumer).unwrap();
    const N: u64 = 50_000;
    let child = {
        let name = name.clone();
        fork(move || {
            let mut tx = SpscQueue::<u64>::open(&name, Role::Producer).unwrap();
            for i in 0..N {
                tx.put(i * 3 + 1).unwrap();
            }
            // Batches wrap around too.
            let batch: Vec<u64> = (N..2 * N).map(|i| i * 3 + 1).collect();
            for chunk in batch.chunks(13) {
                tx.put_many(chunk).unwrap();
            }
            0
        })
    };
    let rx = watchdog(WATCHDOG, move || {
        for i in 0..N {
            assert_eq!(rx.get().unwrap(), i * 3 + 1);
        }
        let mut out = [0u64; 5];
        let mut next = N;
        while next < 2 * N {
            let n = rx.get_many(&mut out).unwrap();
            assert!(n >= 1);
            for v in &out[..n] {
                assert_eq!(*v, next * 3 + 1);
                next += 1;
            }
        }
        rx
    });
    child.join_ok(WATCHDOG);
    assert!(rx.is_empty());
}

#[test]
fn try_forms_report_full_empty_and_timeouts() {
    let name = unique("spsc-try");
    let mut tx = SpscQueue::<u32>::create(&name, 4, Role::Producer).unwrap();
    let mut rx = SpscQueue::<u32>::open(&name, Role::Consumer).unwrap();
    assert!(matches!(rx.try_get(), Err(Error::Empty)));
    assert!(matches!(
        rx.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    for i in 0..4 {
        tx.try_put(i).unwrap();
    }
    assert!(tx.is_full());
    assert_eq!(tx.len(), 4);
    assert!(matches!(tx.try_put(9), Err(Error::Full)));
    assert!(matches!(
        tx.put_timeout(9, Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert!(matches!(tx.try_put_many(&[9, 9]), Err(Error::Full)));
    assert_eq!(rx.try_get().unwrap(), 0);
    assert_eq!(tx.try_put_many(&[4, 5, 6]).unwrap(), 1);
    let mut out = [0u32; 8];
    assert_eq!(rx.try_get_many(&mut out).unwrap(), 4);
    assert_eq!(&out[..4], &[1, 2, 3, 4]);
    assert!(matches!(rx.try_get_many(&mut out), Err(Error::Empty)));
    assert!(matches!(
        rx.get_many_timeout(&mut out, Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
}

#[test]
fn blocked_get_is_woken_by_a_put_from_another_process() {
    let name = unique("spsc-wake");
    let mut rx = SpscQueue::<u64>::create(&name, 2, Role::Consumer).unwrap();
    let child = {
        let name = name.clone();
        fork(move || {
            let mut tx = SpscQueue::<u64>::open(&name, Role::Producer).unwrap();
            for i in 0..200 {
                // Long enough pauses that the consumer falls asleep.
                std::thread::sleep(Duration::from_micros(if i % 20 == 0 { 3000 } else { 50 }));
                tx.put(i).unwrap();
            }
            0
        })
    };
    watchdog(WATCHDOG, move || {
        for i in 0..200 {
            assert_eq!(rx.get().unwrap(), i);
        }
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn close_fails_puts_and_gets_drain_then_closed() {
    let name = unique("spsc-close");
    let mut tx = SpscQueue::<u64>::create(&name, 8, Role::Producer).unwrap();
    let mut rx = SpscQueue::<u64>::open(&name, Role::Consumer).unwrap();
    tx.put_many(&[1, 2, 3]).unwrap();
    rx.close();
    assert!(tx.is_closed());
    assert!(matches!(tx.put(4), Err(Error::Closed)));
    assert!(matches!(tx.try_put(4), Err(Error::Closed)));
    assert_eq!(rx.get().unwrap(), 1);
    assert_eq!(rx.try_get().unwrap(), 2);
    assert_eq!(rx.get_timeout(Duration::from_secs(1)).unwrap(), 3);
    assert!(matches!(rx.get(), Err(Error::Closed)));
    assert!(matches!(rx.try_get(), Err(Error::Closed)));
}

#[test]
fn close_wakes_a_sleeping_consumer() {
    let name = unique("spsc-close-wake");
    let tx = SpscQueue::<u64>::create(&name, 8, Role::Producer).unwrap();
    let mut rx = SpscQueue::<u64>::open(&name, Role::Consumer).unwrap();
    let t = std::thread::spawn(move || rx.get());
    std::thread::sleep(Duration::from_millis(30));
    tx.close();
    let r = watchdog(WATCHDOG, move || t.join().unwrap());
    assert!(matches!(r, Err(Error::Closed)));
}

#[test]
fn second_live_claimant_is_refused() {
    let name = unique("spsc-claim");
    let tx = SpscQueue::<u64>::create(&name, 8, Role::Producer).unwrap();
    let me = std::process::id();
    let err = SpscQueue::<u64>::open(&name, Role::Producer).unwrap_err();
    match &err {
        Error::Busy { name: n, holder } => assert_eq!((n.as_str(), *holder), (name.as_str(), me)),
        e => panic!("expected Busy, got {e:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&name) && text.contains(&format!("held by live process {me}")),
        "{text}"
    );
    // From another process too.
    let child = {
        let name = name.clone();
        fork(
            move || match SpscQueue::<u64>::open(&name, Role::Producer) {
                Err(Error::Busy { holder, .. }) if holder == me => 0,
                _ => 1,
            },
        )
    };
    child.join_ok(WATCHDOG);
    // The consumer role is free; once the producer lets go, its role is free too.
    let _rx = SpscQueue::<u64>::open(&name, Role::Consumer).unwrap();
    tx.persist();
    drop(tx);
    let _tx2 = SpscQueue::<u64>::open(&name, Role::Producer).unwrap();
    multiproc::unlink(&name).unwrap();
}

#[test]
fn handle_inherited_through_fork_does_not_carry_its_role() {
    let name = unique("spsc-inherit");
    let mut tx = SpscQueue::<u64>::create(&name, 8, Role::Producer).unwrap();
    tx.put(1).unwrap();
    // The closure borrows `tx`: the parent keeps holding the role while the child runs.
    let me = std::process::id();
    let child = fork(|| match tx.put(2) {
        Err(Error::Busy { holder, .. }) if holder == me => 0,
        _ => 1,
    });
    child.join_ok(WATCHDOG);
    // Once the parent lets go (here: its copy drops inside `fork`), the child may take
    // the role with its inherited copy.
    let mut rx = SpscQueue::<u64>::open(&name, Role::Consumer).unwrap();
    let child = fork(move || loop {
        match tx.put(3) {
            Ok(()) => return 0,
            Err(Error::Busy { .. }) => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => return 1,
        }
    });
    child.join_ok(WATCHDOG);
    assert_eq!(rx.get().unwrap(), 1);
    assert_eq!(rx.get().unwrap(), 3);
}

/// The state letter of process `pid` in /proc (its main thread's), `None` once gone.
fn leader_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

#[test]
fn a_role_stays_with_a_process_whose_main_thread_exited() {
    let name = unique("spsc-leader-gone");
    let mut rx = SpscQueue::<u64>::create(&name, 64, Role::Consumer).unwrap();
    let go = Event::create(&format!("{name}.go")).unwrap();
    let child = {
        let (name, go) = (name.clone(), go.clone());
        fork(move || {
            let mut tx = SpscQueue::<u64>::open(&name, Role::Producer).unwrap();
            tx.put(0).unwrap();
            std::thread::spawn(move || {
                let code = if go.wait_timeout(WATCHDOG) && tx.put(1).is_ok() {
                    0
                } else {
                    1
                };
                // SAFETY: ends the process without unwinding into the test harness.
                unsafe { libc::_exit(code) }
            });
            // SAFETY: SYS_exit ends only the calling (main) thread; the worker keeps
            // the process, and its role, alive.
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("SYS_exit returned");
        })
    };
    assert_eq!(rx.get_timeout(WATCHDOG).unwrap(), 0);
    let pid = child.pid;
    assert!(wait_until(WATCHDOG, || leader_state(pid) == Some('Z')));
    match SpscQueue::<u64>::open(&name, Role::Producer) {
        Err(Error::Busy { holder, .. }) => assert_eq!(holder, pid as u32),
        other => panic!("the producer role was taken from a live process: {other:?}"),
    }
    go.set();
    assert_eq!(rx.get_timeout(WATCHDOG).unwrap(), 1);
    child.join_ok(WATCHDOG);
}

#[test]
fn wrong_role_method_is_refused() {
    let name = unique("spsc-role");
    let mut tx = SpscQueue::<u64>::create(&name, 8, Role::Producer).unwrap();
    let mut rx = SpscQueue::<u64>::open(&name, Role::Consumer).unwrap();
    assert!(matches!(tx.get(), Err(Error::InvalidArgument { .. })));
    assert!(matches!(rx.put(1), Err(Error::InvalidArgument { .. })));
    assert_eq!(tx.role(), Role::Producer);
    assert_eq!(rx.role(), Role::Consumer);
}

#[test]
fn dead_producer_role_is_taken_over_without_torn_records() {
    let name = unique("spsc-dead-prod");
    let mut rx = SpscQueue::<Rec>::create(&name, 16, Role::Consumer).unwrap();
    let mut child = {
        let name = name.clone();
        fork(move || {
            let mut tx = SpscQueue::<Rec>::open(&name, Role::Producer).unwrap();
            let mut i = 0;
            loop {
                tx.put(Rec::new(i)).unwrap();
                i += 1;
            }
        })
    };
    // Let it run into a full queue a few times, then kill it mid-stream.
    let mut next = 0;
    for _ in 0..2000 {
        let r = rx.get_timeout(WATCHDOG).unwrap();
        r.assert_whole();
        assert_eq!(r.seq, next);
        next += 1;
    }
    assert!(child.wait_timeout(Duration::from_millis(1)).is_none());
    child.kill();
    // A new producer takes the dead one's role over.
    let child2 = {
        let name = name.clone();
        fork(move || {
            let mut tx = SpscQueue::<Rec>::open(&name, Role::Producer).unwrap();
            for i in 0..100 {
                tx.put(Rec::new(1_000_000 + i)).unwrap();
            }
            0
        })
    };
    watchdog(WATCHDOG, move || {
        // First what the dead producer published, exactly, then the new one's.
        let mut second = 1_000_000;
        while second < 1_000_100 {
            let r = rx.get().unwrap();
            r.assert_whole();
            if r.seq < 1_000_000 {
                assert_eq!(r.seq, next);
                next += 1;
            } else {
                assert_eq!(r.seq, second);
                second += 1;
            }
        }
    });
    child2.join_ok(WATCHDOG);
}

#[test]
fn dead_consumer_role_is_taken_over_and_loses_at_most_the_record_it_took() {
    let name = unique("spsc-dead-cons");
    const N: u64 = 1000;
    let mut tx = SpscQueue::<Rec>::create(&name, 1024, Role::Producer).unwrap();
    for i in 0..N {
        tx.put(Rec::new(i)).unwrap();
    }
    // The child records the last sequence number it received.
    let seen = Segment::create(&format!("{name}.seen"), 8).unwrap();
    let seen_in_child = seen.clone();
    let mut child = {
        let name = name.clone();
        fork(move || {
            let mut rx = SpscQueue::<Rec>::open(&name, Role::Consumer).unwrap();
            // SAFETY: 8 aligned bytes, accessed only atomically.
            let last = unsafe { &*(seen_in_child.as_ptr() as *const AtomicU64) };
            loop {
                let r = rx.get().unwrap();
                r.assert_whole();
                last.store(r.seq + 1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    // SAFETY: as above.
    let last = unsafe { &*(seen.as_ptr() as *const AtomicU64) };
    while last.load(Ordering::SeqCst) < 100 {
        assert!(child.wait_timeout(Duration::from_millis(1)).is_none());
    }
    child.kill();
    let got = last.load(Ordering::SeqCst);
    watchdog(WATCHDOG, move || {
        let mut rx = SpscQueue::<Rec>::open(&name, Role::Consumer).unwrap();
        let first = rx.get().unwrap();
        first.assert_whole();
        // Either the record after the last one it reported, or one more if it died
        // between taking a record and reporting it.
        assert!(
            first.seq == got || first.seq == got + 1,
            "first {} after {got}",
            first.seq
        );
        for i in first.seq + 1..N {
            let r = rx.get().unwrap();
            r.assert_whole();
            assert_eq!(r.seq, i);
        }
        assert!(rx.is_empty());
        drop(tx);
    });
}

#[test]
fn unrelated_process_attaches_by_name() {
    const TEST: &str = "unrelated_process_attaches_by_name";
    if let Some(role) = role() {
        if let Some(name) = role.strip_prefix("spsc-producer:") {
            let mut tx = SpscQueue::<u64>::open(name, Role::Producer).unwrap();
            for i in 0..10_000u64 {
                tx.put(i ^ 0x5555).unwrap();
            }
            println!("producer done");
        }
        return;
    }
    let name = unique("spsc-unrelated");
    let mut rx = SpscQueue::<u64>::create(&name, 64, Role::Consumer).unwrap();
    let child = spawn_self(TEST, &format!("spsc-producer:{name}"));
    let rx = watchdog(WATCHDOG, move || {
        for i in 0..10_000u64 {
            assert_eq!(rx.get().unwrap(), i ^ 0x5555);
        }
        rx
    });
    let (code, out) = wait_self(child, WATCHDOG);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("producer done"), "{out}");
    drop(rx);
}

#[test]
fn anonymous_queue_is_shared_with_a_forked_child() {
    let (mut tx, mut rx) = SpscQueue::<u64>::anonymous(4).unwrap();
    let child = fork(move || {
        for i in 0..1000 {
            tx.put(i).unwrap();
        }
        0
    });
    watchdog(WATCHDOG, move || {
        for i in 0..1000 {
            assert_eq!(rx.get().unwrap(), i);
        }
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn capacity_is_rounded_up_and_validated() {
    let q = SpscQueue::<u64>::create(&unique("spsc-cap"), 5, Role::Producer).unwrap();
    assert_eq!(q.capacity(), 8);
    assert!(matches!(
        SpscQueue::<u64>::create(&unique("spsc-cap0"), 0, Role::Producer),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        SpscQueue::<u64>::create(&unique("spsc-huge"), usize::MAX / 2, Role::Producer),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        SpscQueue::<()>::anonymous(4),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn open_checks_type_and_kind() {
    let name = unique("spsc-type");
    let _q = SpscQueue::<u64>::create(&name, 8, Role::Producer).unwrap();
    assert!(matches!(
        SpscQueue::<u32>::open(&name, Role::Consumer),
        Err(Error::WrongType { .. })
    ));
    let lock = unique("spsc-lock");
    let _l = Lock::create(&lock).unwrap();
    assert!(matches!(
        SpscQueue::<u64>::open(&lock, Role::Consumer),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        SpscQueue::<u64>::open(&unique("spsc-missing"), Role::Consumer),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SpscQueue<u64>>();
    check::<SpscQueue<Rec>>();
}

#[test]
fn typed_ends_carry_whole_records_in_order_across_two_processes() {
    const N: u64 = 20_000;
    let name = unique("spsc-typed");
    let mut rx = SpscConsumer::<Rec>::create(&name, 8).unwrap();
    let child = {
        let name = name.clone();
        fork(move || {
            let mut tx = SpscProducer::<Rec>::open(&name).unwrap();
            for i in 0..N {
                tx.put(Rec::new(i)).unwrap();
            }
            0
        })
    };
    let rx = watchdog(WATCHDOG, move || {
        for i in 0..N {
            let r = rx.get().unwrap();
            r.assert_whole();
            assert_eq!(r.seq, i);
        }
        rx
    });
    child.join_ok(WATCHDOG);
    assert!(rx.is_empty());
}

#[test]
fn a_typed_end_claims_its_role_as_a_queue_handle_does() {
    let name = unique("spsc-typed-role");
    let tx = SpscProducer::<u32>::create(&name, 8).unwrap();
    let child = {
        let name = name.clone();
        fork(move || {
            // This process is alive and holds the producer role: refused.
            match SpscProducer::<u32>::open(&name) {
                Err(Error::Busy { .. }) => {}
                other => {
                    eprintln!("expected Busy, got {other:?}");
                    return 1;
                }
            }
            // The consumer role is free.
            let mut rx = SpscConsumer::<u32>::open(&name).unwrap();
            i32::from(!matches!(
                rx.get_timeout(Duration::from_millis(1)),
                Err(Error::Timeout)
            ))
        })
    };
    child.join_ok(WATCHDOG);
    // A typed end and a queue handle of the same role exclude each other.
    assert!(matches!(
        SpscQueue::<u32>::open(&name, Role::Producer),
        Err(Error::Busy { .. })
    ));
    drop(tx);
}

#[test]
fn anonymous_typed_ends_are_shared_with_a_forked_child() {
    let (mut tx, mut rx) = SpscQueue::<u64>::anonymous_ends(4).unwrap();
    let child = fork(move || {
        for i in 0..1000 {
            tx.put(i).unwrap();
        }
        tx.close();
        0
    });
    let got = watchdog(WATCHDOG, move || {
        let mut got = Vec::new();
        loop {
            match rx.get() {
                Ok(v) => got.push(v),
                Err(Error::Closed) => return got,
                Err(e) => panic!("get failed: {e}"),
            }
        }
    });
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    child.join_ok(WATCHDOG);
}

#[test]
fn typed_ends_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SpscProducer<u64>>();
    check::<SpscConsumer<u64>>();
}
