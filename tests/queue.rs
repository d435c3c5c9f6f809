//! `Queue<T>`: semantics, edges, and exact accounting across processes.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Error, Queue, Segment};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

#[test]
fn put_then_get_round_trips_in_order() {
    let q: Queue<u64> = Queue::create(&unique("q-basic"), 8).unwrap();
    for i in 0..8 {
        q.put(i).unwrap();
    }
    assert_eq!(q.len(), 8);
    assert!(q.is_full());
    for i in 0..8 {
        assert_eq!(q.get().unwrap(), i);
    }
    assert!(q.is_empty());
}

/// Mirrors CPython's `_TestQueue.test_put` (`Queue(maxsize=6)` is full after six
/// puts; the seventh raises `Full`): the capacity is what was asked, not the ring size.
#[test]
fn capacity_is_exactly_what_was_asked() {
    let q: Queue<u32> = Queue::create(&unique("q-cap"), 6).unwrap();
    assert_eq!(q.capacity(), 6);
    for i in 0..6 {
        q.try_put(i).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.len(), 6);
    assert!(matches!(q.try_put(6), Err(Error::Full)));
    assert!(matches!(
        q.put_timeout(6, Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    assert_eq!(q.try_put_many(&[7, 8]).unwrap(), 0);
    // Room for exactly one more after one get, around the ring many times.
    for round in 0..100u32 {
        assert_eq!(q.get().unwrap(), round);
        q.try_put(6 + round).unwrap();
        assert!(matches!(q.try_put(99), Err(Error::Full)));
    }
    let q: Queue<u32> = Queue::create(&unique("q-cap1"), 1000).unwrap();
    assert_eq!(q.capacity(), 1000);
    assert_eq!(q.try_put_many(&[0; 1024]).unwrap(), 1000);
    let q: Queue<u32> = Queue::create(&unique("q-cap2"), 1).unwrap();
    assert_eq!(q.capacity(), 1);
    // Another process opening it sees the same capacity.
    let name = unique("q-cap3");
    let q: Queue<u32> = Queue::create(&name, 6).unwrap();
    assert_eq!(Queue::<u32>::open(&name).unwrap().capacity(), 6);
    drop(q);
}

/// The limit holds under racing producers in several processes (CPython's
/// `test_put` with concurrent putters): each producer reads the head before it
/// claims its own position, so no interleaving lets a seventh value in.
#[test]
fn concurrent_producer_processes_never_exceed_the_capacity() {
    const PRODUCERS: usize = 4;
    const ATTEMPTS: u64 = 3000;
    let name = unique("q-cap-race");
    let q: Queue<u64> = Queue::create(&name, 6).unwrap();
    let ok: multiproc::Value<u64> = multiproc::Value::create(&unique("q-cap-ok"), 0).unwrap();
    let children: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (q, ok) = (q.clone(), ok.clone());
            fork(move || {
                let mut n = 0;
                for i in 0..ATTEMPTS {
                    if q.try_put(p as u64 * ATTEMPTS + i).is_ok() {
                        n += 1;
                    }
                }
                ok.fetch_add(n);
                0
            })
        })
        .collect();
    // Consume concurrently: every value taken leaves room for exactly one more.
    let mut got = 0u64;
    let deadline = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        if q.try_get().is_ok() {
            got += 1;
        }
    }
    for c in children {
        c.join_ok(WATCHDOG);
    }
    let mut left = 0u64;
    while q.try_get().is_ok() {
        left += 1;
    }
    assert!(left <= 6, "{left} values were in a queue of capacity 6");
    assert_eq!(ok.get(), got + left, "every value put was got exactly once");
    // Refill from racing processes until full: exactly six fit.
    ok.set(0);
    let children: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let (q, ok) = (q.clone(), ok.clone());
            fork(move || {
                let mut n = 0;
                for i in 0..100 {
                    if q.try_put(i).is_ok() {
                        n += 1;
                    }
                }
                ok.fetch_add(n);
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok(WATCHDOG);
    }
    assert_eq!(ok.get(), 6);
    assert_eq!(q.len(), 6);
    assert!(matches!(q.try_put(0), Err(Error::Full)));
}

#[test]
fn zero_or_absurd_capacity_is_invalid() {
    assert!(matches!(
        Queue::<u64>::create(&unique("q-zero"), 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Queue::<u64>::create(&unique("q-huge"), usize::MAX),
        Err(Error::InvalidArgument { .. })
    ));
    // 4 TiB of slots is within the segment limit: it is refused for want of room.
    assert!(matches!(
        Queue::<[u8; 4096]>::create(&unique("q-huge2"), 1 << 30),
        Err(Error::NoSpace { .. })
    ));
}

#[test]
fn full_queue_refuses_try_put_and_times_out() {
    let q: Queue<u16> = Queue::create(&unique("q-full"), 2).unwrap();
    q.try_put(1).unwrap();
    q.try_put(2).unwrap();
    assert!(matches!(q.try_put(3), Err(Error::Full)));
    let t = Instant::now();
    assert!(matches!(
        q.put_timeout(3, Duration::from_millis(30)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(q.get().unwrap(), 1);
    q.try_put(3).unwrap();
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get().unwrap(), 3);
}

#[test]
fn empty_queue_refuses_try_get_and_times_out() {
    let q: Queue<u64> = Queue::create(&unique("q-empty"), 4).unwrap();
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(30)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
}

#[test]
fn close_fails_puts_drains_gets_then_reports_closed() {
    let q: Queue<u64> = Queue::create(&unique("q-close"), 4).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.put(3), Err(Error::Closed)));
    assert!(matches!(q.try_put(3), Err(Error::Closed)));
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    assert!(matches!(q.get(), Err(Error::Closed)));
    assert!(matches!(q.try_get(), Err(Error::Closed)));
    assert!(matches!(
        q.get_timeout(Duration::from_secs(5)),
        Err(Error::Closed)
    ));
}

#[test]
fn close_wakes_sleeping_getters_and_putters() {
    let q: Queue<u64> = Queue::create(&unique("q-closewake"), 1).unwrap();
    let full: Queue<u64> = Queue::create(&unique("q-closewake-full"), 1).unwrap();
    full.put(0).unwrap();
    let (q2, f2) = (q.clone(), full.clone());
    let getter = std::thread::spawn(move || q2.get());
    let putter = std::thread::spawn(move || f2.put(1));
    std::thread::sleep(Duration::from_millis(50));
    q.close();
    full.close();
    watchdog(WATCHDOG, move || {
        assert!(matches!(getter.join().unwrap(), Err(Error::Closed)));
        assert!(matches!(putter.join().unwrap(), Err(Error::Closed)));
    });
}

#[test]
fn wraps_around_many_times() {
    let q: Queue<u64> = Queue::create(&unique("q-wrap"), 4).unwrap();
    let mut next_out = 0;
    for i in 0..100_000u64 {
        q.put(i).unwrap();
        if i % 3 == 2 {
            while let Ok(v) = q.try_get() {
                assert_eq!(v, next_out);
                next_out += 1;
            }
        }
    }
    while let Ok(v) = q.try_get() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, 100_000);
}

#[test]
fn odd_sized_values_are_not_torn() {
    #[derive(Clone, Copy, PartialEq, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Odd {
        a: [u8; 13],
    }
    let q: Queue<Odd> = Queue::create(&unique("q-odd"), 16).unwrap();
    for i in 0..50u8 {
        q.put(Odd { a: [i; 13] }).unwrap();
        assert_eq!(q.get().unwrap(), Odd { a: [i; 13] });
    }
}

#[test]
fn batches_put_and_get_many() {
    let q: Queue<u32> = Queue::create(&unique("q-batch"), 8).unwrap();
    let items: Vec<u32> = (0..20).collect();
    assert_eq!(q.try_put_many(&items).unwrap(), 8);
    let mut buf = [0u32; 5];
    assert_eq!(q.try_get_many(&mut buf).unwrap(), 5);
    assert_eq!(buf, [0, 1, 2, 3, 4]);
    assert_eq!(q.get_many(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], &[5, 6, 7]);
    assert_eq!(q.try_get_many(&mut buf).unwrap(), 0);
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u32; 7];
        while got.len() < 20 {
            let n = q2.get_many(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    q.put_many(&items).unwrap();
    let got = watchdog(WATCHDOG, move || t.join().unwrap());
    assert_eq!(got, items);
}

#[test]
fn timed_batches_honour_their_deadline() {
    let q: Queue<u32> = Queue::create(&unique("q-batch-timed"), 8).unwrap();
    let short = Duration::from_millis(30);
    watchdog(WATCHDOG, move || {
        let mut buf = [0u32; 4];
        // Nothing comes: the wait ends with Timeout, not before the deadline.
        let t = Instant::now();
        assert!(matches!(
            q.get_many_timeout(&mut buf, short),
            Err(Error::Timeout)
        ));
        assert!(t.elapsed() >= short);
        assert_eq!(q.get_many_timeout(&mut [], short).unwrap(), 0);
        // Room for 8 of 20: the first 8 go in, then the deadline passes.
        let items: Vec<u32> = (0..20).collect();
        let t = Instant::now();
        assert_eq!(q.put_many_timeout(&items, short).unwrap(), 8);
        assert!(t.elapsed() >= short);
        assert_eq!(q.len(), 8);
        assert_eq!(q.get_many_timeout(&mut buf, short).unwrap(), 4);
        assert_eq!(buf, [0, 1, 2, 3]);
        // With a consumer draining, a generous deadline lets all of them through.
        let q2 = q.clone();
        let consumer = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u32; 3];
            while got.len() < 4 + 20 {
                let n = q2.get_many_timeout(&mut buf, WATCHDOG).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        assert_eq!(q.put_many_timeout(&items, WATCHDOG).unwrap(), 20);
        let got = consumer.join().unwrap();
        let want: Vec<u32> = (4..8).chain(0..20).collect();
        assert_eq!(got, want);
        // Closed: puts fail, gets drain and then fail, whatever the timeout.
        q.put(99).unwrap();
        q.close();
        assert!(matches!(
            q.put_many_timeout(&[1], short),
            Err(Error::Closed)
        ));
        assert_eq!(q.get_many_timeout(&mut buf, short).unwrap(), 1);
        assert_eq!(buf[0], 99);
        assert!(matches!(
            q.get_many_timeout(&mut buf, short),
            Err(Error::Closed)
        ));
    });
}

#[test]
fn open_checks_kind_and_element_type() {
    let name = unique("q-type");
    let _q: Queue<u64> = Queue::create(&name, 4).unwrap();
    assert!(matches!(
        Queue::<u32>::open(&name),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        multiproc::ByteQueue::open(&name),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        Queue::<u64>::open(&unique("q-missing")),
        Err(Error::NotFound { .. })
    ));
    let q = Queue::<u64>::open_or_create(&name, 4).unwrap();
    assert_eq!(q.capacity(), 4);
    // Capacities are exact: 3 is another queue (same 4-slot ring or not).
    assert!(matches!(
        Queue::<u64>::open_or_create(&name, 3),
        Err(Error::Mismatch { .. })
    ));
}

#[test]
fn blocking_get_wakes_when_a_value_arrives() {
    let q: Queue<u64> = Queue::create(&unique("q-wake"), 4).unwrap();
    let q2 = q.clone();
    let t = std::thread::spawn(move || q2.get().unwrap());
    std::thread::sleep(Duration::from_millis(30));
    q.put(42).unwrap();
    assert_eq!(watchdog(WATCHDOG, move || t.join().unwrap()), 42);
}

/// Every value once, FIFO per producer, across N producer × M consumer processes.
#[test]
fn producers_and_consumers_in_processes_account_exactly() {
    const P: u64 = 3;
    const C: usize = 3;
    const N: u64 = 20_000;
    let name = unique("q-mpmc");
    let q: Queue<u64> = Queue::create(&name, 64).unwrap();
    // seen[p * N + i] counts deliveries of value i of producer p.
    let seen = Segment::create(&format!("{name}.seen"), (P * N) as usize).unwrap();
    let fifo_ok = Segment::create(&format!("{name}.fifo"), 8).unwrap();
    let mut kids = Vec::new();
    for p in 0..P {
        let name = name.clone();
        kids.push(fork(move || {
            let q: Queue<u64> = Queue::open(&name).unwrap();
            for i in 0..N {
                q.put(p << 32 | i).unwrap();
            }
            0
        }));
    }
    for _ in 0..C {
        let (name, seen, fifo_ok) = (name.clone(), seen.clone(), fifo_ok.clone());
        kids.push(fork(move || {
            let q: Queue<u64> = Queue::open(&name).unwrap();
            let mut last = [None::<u64>; P as usize];
            loop {
                let v = match q.get() {
                    Ok(v) => v,
                    Err(Error::Closed) => return 0,
                    Err(e) => panic!("{e}"),
                };
                let (p, i) = (v >> 32, v & 0xffff_ffff);
                assert!(p < P && i < N, "foreign value {v:#x}");
                if let Some(l) = last[p as usize] {
                    if i <= l {
                        // SAFETY: 8 bytes in bounds, aligned; atomic access only.
                        unsafe { &*(fifo_ok.as_ptr() as *const AtomicU64) }
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                last[p as usize] = Some(i);
                // SAFETY: index < P * N, the segment's length; atomic access only.
                unsafe { &*(seen.as_ptr().add((p * N + i) as usize) as *const AtomicU8) }
                    .fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let (producers, consumers): (Vec<_>, Vec<_>) = kids
        .into_iter()
        .enumerate()
        .partition(|(i, _)| *i < P as usize);
    for (_, k) in producers {
        k.join_ok(WATCHDOG);
    }
    q.close();
    for (_, k) in consumers {
        k.join_ok(WATCHDOG);
    }
    // SAFETY: all children are done; atomic reads of our own segments.
    let bad_fifo = unsafe { &*(fifo_ok.as_ptr() as *const AtomicU64) }.load(Ordering::Relaxed);
    assert_eq!(bad_fifo, 0, "values of one producer arrived out of order");
    for k in 0..(P * N) as usize {
        // SAFETY: k < segment length.
        let n = unsafe { &*(seen.as_ptr().add(k) as *const AtomicU8) }.load(Ordering::Relaxed);
        assert_eq!(
            n,
            1,
            "value {} of producer {} delivered {n} times",
            k as u64 % N,
            k as u64 / N
        );
    }
    assert!(q.is_empty());
}

/// An unrelated process (a re-exec of this binary) attaches by name.
#[test]
fn unrelated_process_attaches_by_name() {
    if let Some(role) = role() {
        if let Some(name) = role.strip_prefix("queue-peer:") {
            let q: Queue<u64> = Queue::open(name).unwrap();
            let mut sum = 0;
            for _ in 0..100 {
                sum += q.get().unwrap();
            }
            q.put(sum).unwrap();
        }
        return;
    }
    let name = unique("q-peer");
    let q: Queue<u64> = Queue::create(&name, 128).unwrap();
    let child = spawn_self(
        "unrelated_process_attaches_by_name",
        &format!("queue-peer:{name}"),
    );
    for i in 0..100 {
        q.put(i).unwrap();
    }
    let (code, _) = wait_self(child, WATCHDOG);
    assert_eq!(code, 0);
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 4950);
}

#[test]
fn anonymous_queue_is_shared_with_forked_children() {
    let q: Queue<u64> = Queue::anonymous(4).unwrap();
    let back: Queue<u64> = Queue::anonymous(4).unwrap();
    let (q2, b2) = (q.clone(), back.clone());
    let child = fork(move || {
        for _ in 0..1000 {
            let v = q2.get().unwrap();
            b2.put(v * 2).unwrap();
        }
        0
    });
    for i in 0..1000 {
        q.put(i).unwrap();
        assert_eq!(back.get_timeout(WATCHDOG).unwrap(), i * 2);
    }
    child.join_ok(WATCHDOG);
}

#[test]
fn handles_are_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Queue<u64>>();
    check::<multiproc::JoinableQueue<u64>>();
    check::<multiproc::ByteQueue>();
    let q: Queue<u64> = Queue::create(&unique("q-debug"), 2).unwrap();
    let text = format!("{q:?}");
    assert!(
        text.contains("q-debug") && text.contains("capacity: 2"),
        "{text}"
    );
}

/// Mirrors the timeout halves of CPython's `_TestQueue.test_put` / `test_get`
/// (`put(x, True, TIMEOUT)` on a full queue raises `Full`, `get(True, TIMEOUT)` on
/// an empty one raises `Empty`). The crate's choice, the same for every queue-like
/// type: a *timed* call that runs out answers `Err(Timeout)`, never earlier than
/// its timeout; the non-blocking `try_*` forms answer `Err(Full)` / `Err(Empty)` at
/// once. (Python bindings map `Timeout` back to `Full` / `Empty`.)
#[test]
fn every_queue_like_type_answers_a_timed_call_that_runs_out_with_timeout() {
    const T: Duration = Duration::from_millis(20);
    fn timed<R: std::fmt::Debug>(what: &str, f: impl FnOnce() -> multiproc::Result<R>) {
        let t = Instant::now();
        let r = f();
        assert!(matches!(r, Err(Error::Timeout)), "{what}: {r:?}");
        assert!(t.elapsed() >= T, "{what} gave up early");
    }
    let q: Queue<u8> = Queue::create(&unique("q-timed"), 1).unwrap();
    timed("Queue::get_timeout", || q.get_timeout(T));
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    q.put(1).unwrap();
    timed("Queue::put_timeout", || q.put_timeout(2, T));
    assert!(matches!(q.try_put(2), Err(Error::Full)));

    let jq: multiproc::JoinableQueue<u8> =
        multiproc::JoinableQueue::create(&unique("jq-timed"), 1).unwrap();
    timed("JoinableQueue::get_timeout", || jq.get_timeout(T));
    assert!(matches!(jq.try_get(), Err(Error::Empty)));
    jq.put(1).unwrap();
    timed("JoinableQueue::put_timeout", || jq.put_timeout(2, T));
    assert!(matches!(jq.try_put(2), Err(Error::Full)));

    let bq = multiproc::ByteQueue::create(&unique("bq-timed"), 1, 8).unwrap();
    timed("ByteQueue::get_timeout", || bq.get_timeout(T));
    assert!(matches!(bq.try_get(), Err(Error::Empty)));
    bq.put(b"x").unwrap();
    timed("ByteQueue::put_timeout", || bq.put_timeout(b"y", T));
    assert!(matches!(bq.try_put(b"y"), Err(Error::Full)));

    let (mut tx, mut rx) = multiproc::SpscQueue::<u8>::anonymous(1).unwrap();
    timed("SpscQueue::get_timeout", || rx.get_timeout(T));
    assert!(matches!(rx.try_get(), Err(Error::Empty)));
    tx.put(1).unwrap();
    timed("SpscQueue::put_timeout", || tx.put_timeout(2, T));
    assert!(matches!(tx.try_put(2), Err(Error::Full)));

    let (mut a, mut b) = multiproc::Pipe::new(4096).unwrap();
    timed("Pipe::recv_bytes_timeout", || b.recv_bytes_timeout(T));
    let mut sent = 0;
    let r = loop {
        match a.send_bytes_timeout(&[7; 64], T) {
            Ok(()) => sent += 1,
            e => break e,
        }
        assert!(sent < 1000, "a 4 KiB pipe took {sent} messages of 64 bytes");
    };
    assert!(
        matches!(r, Err(Error::Timeout)),
        "Pipe::send_bytes_timeout: {r:?}"
    );
    assert!(matches!(a.try_send_bytes(&[7; 64]), Err(Error::Full)));
}

#[test]
fn an_absurd_probe_interval_is_no_panic_when_a_put_waits() {
    let q: Queue<u64> = Queue::create(&unique("q-probe-max"), 2)
        .unwrap()
        .with_probe_interval(Duration::MAX);
    watchdog(WATCHDOG, move || {
        q.put(1).unwrap();
        q.put(2).unwrap();
        assert!(matches!(
            q.put_timeout(3, Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
    });
}

/// Both sides of a raw ring in shared memory sleep on nearly every call, across
/// processes: no spinning, and a probe interval and deadlines far beyond the
/// watchdog, so the only way out of a sleep is the peer's wake-up (a lost one fails
/// the watchdog). A 1-slot ring: the consumer sleeps on an empty slot, the producer
/// on a full one.
#[test]
fn processes_that_sleep_on_every_call_are_always_woken() {
    use multiproc::raw::queue::{region_words, Ring, TakeWith, WaitPolicy};
    use multiproc::raw::RawQueue;
    use multiproc::sys::{clock, ident};
    const ROUNDS: u64 = 3000;
    const WORDS: usize = match region_words(1, 1) {
        Some(w) => w,
        None => panic!(),
    };
    #[repr(C)]
    struct Region {
        queue: RawQueue,
        slots: [AtomicU64; WORDS],
    }
    let size = std::mem::size_of::<Region>();
    // SAFETY: an anonymous shared mapping of the region's size; the kernel zero-fills it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let addr = p as usize;
    let ring_of = move || {
        // SAFETY: page-aligned, large enough, all-zero is a valid Region (atomics
        // only), and the mapping outlives every use (unmapped after both sides end).
        let region: &'static Region = unsafe { &*(addr as *const Region) };
        Ring::new(&region.queue, &region.slots, 1, 1).unwrap()
    };
    let policy = || WaitPolicy::new(0, Duration::from_secs(600));
    let deadline = || clock::deadline_after(Duration::from_secs(300));
    let child = fork(move || {
        let ring = ring_of();
        for v in 0..ROUNDS {
            if ring
                .put(ident::current(), deadline(), &mut policy(), |p| {
                    p[0].store(v, Ordering::Relaxed)
                })
                .is_err()
            {
                return 1;
            }
        }
        0
    });
    let slept = watchdog(WATCHDOG, move || {
        let ring = ring_of();
        let mut slept = 0;
        for v in 0..ROUNDS {
            let mut pol = policy();
            let got = ring.get(
                ident::current(),
                deadline(),
                &mut pol,
                &mut TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed)),
            );
            assert_eq!(got, Ok(v));
            slept += u32::from(pol.slept);
            if v % 7 == 0 {
                // Let the producer find the ring full and sleep too.
                std::thread::yield_now();
            }
        }
        slept
    });
    child.join_ok(WATCHDOG);
    assert!(
        slept > 0,
        "the consumer never slept: the test checked nothing"
    );
    // SAFETY: both sides are done with the region.
    unsafe { libc::munmap(p, size) };
}
