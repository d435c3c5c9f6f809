//! `Pipe` peers: a send to a peer that closed or died fails with `Closed`; an end
//! whose process exited passes to the next process that uses it, while two live
//! processes on one end get `Busy`; a process lives while any of its threads does.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Error, Pipe};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

/// Longer than a probe interval plus a coarse clock tick: by then every send has
/// checked that its peer is alive.
const PAST_PROBE: Duration = Duration::from_millis(60);

/// A forked child that claims `b` with one message, then waits to be killed.
fn peer_that_says_hi(mut b: Pipe) -> Child {
    fork(move || {
        b.send_bytes(b"hi").unwrap();
        std::thread::sleep(WATCHDOG);
        0
    })
}

#[test]
fn send_to_a_sigkilled_peer_fails_with_closed() {
    let (mut a, b) = Pipe::new(64 * 1024).unwrap();
    let child = peer_that_says_hi(b);
    let mut a = watchdog(WATCHDOG, move || {
        assert_eq!(a.recv_bytes().unwrap(), b"hi");
        a
    });
    child.kill();
    std::thread::sleep(PAST_PROBE);
    // The ring has room for thousands of these: only the peer check can refuse it.
    assert!(matches!(a.send_bytes(b"to the dead"), Err(Error::Closed)));
    assert!(matches!(a.try_send_bytes(b"again"), Err(Error::Closed)));
    assert!(matches!(
        a.send_bytes_timeout(b"again", Duration::from_secs(1)),
        Err(Error::Closed)
    ));
}

#[test]
fn send_after_recv_saw_a_sigkilled_peer_fails_at_once() {
    let (mut a, b) = Pipe::new(64 * 1024).unwrap();
    let child = peer_that_says_hi(b);
    let mut a = watchdog(WATCHDOG, move || {
        assert_eq!(a.recv_bytes().unwrap(), b"hi");
        a
    });
    child.kill();
    let mut a = watchdog(WATCHDOG, move || {
        assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
        a
    });
    // No waiting: what the receiving side learnt, the sending side knows.
    assert!(matches!(a.send_bytes(b"to the dead"), Err(Error::Closed)));
}

#[test]
fn send_to_a_peer_that_closed_fails_with_closed_before_and_after_recv_saw_it() {
    for recv_first in [false, true] {
        let (mut a, mut b) = Pipe::new(64 * 1024).unwrap();
        let child = fork(move || {
            b.send_bytes(b"bye").unwrap();
            b.close();
            // Stay alive: the close alone must refuse the peer's sends.
            std::thread::sleep(WATCHDOG);
            0
        });
        let a = watchdog(WATCHDOG, move || {
            assert_eq!(a.recv_bytes().unwrap(), b"bye");
            if recv_first {
                assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
            } else {
                // The close is a store in shared memory: wait until it shows.
                assert!(a.poll(Some(WATCHDOG)).unwrap());
            }
            assert!(matches!(a.send_bytes(b"x"), Err(Error::Closed)));
            assert!(matches!(a.try_send_bytes(b"x"), Err(Error::Closed)));
            a
        });
        drop(a);
        child.kill();
    }
}

#[test]
fn send_on_a_one_way_pipe_whose_reader_closed_fails_with_closed() {
    let (r, mut w) = Pipe::one_way(64 * 1024).unwrap();
    let child = fork(move || {
        let mut r = r;
        assert_eq!(r.recv_bytes().unwrap(), b"one");
        r.close();
        std::thread::sleep(WATCHDOG);
        0
    });
    w.send_bytes(b"one").unwrap();
    let closed = wait_until(WATCHDOG, || match w.send_bytes(b"more") {
        Ok(()) => false,
        Err(Error::Closed) => true,
        Err(e) => panic!("{e}"),
    });
    assert!(closed, "sends to a closed reader kept succeeding");
    drop(w);
    child.kill();
}

#[test]
fn a_reader_end_polled_by_an_exited_child_passes_to_the_parent() {
    // CPython's test_boundaries: polling in a child must not keep the end from the
    // process that reads later.
    let (mut r, mut w) = Pipe::one_way(4096).unwrap();
    // The closure borrows `r`: the parent keeps its handle of the reader end.
    let child = fork(|| match r.poll(Some(Duration::from_secs(5))) {
        Ok(true) => 0,
        _ => 1,
    });
    std::thread::sleep(Duration::from_millis(50));
    let first: &[&[u8]] = &[b"first", b"second"];
    for m in first {
        w.send_bytes(m).unwrap();
    }
    child.join_ok(WATCHDOG);
    // The poller is gone (without closing); the parent still holds a handle of the
    // reader end, so sends keep going.
    std::thread::sleep(PAST_PROBE);
    w.send_bytes(b"third").unwrap();
    w.close();
    watchdog(WATCHDOG, move || {
        assert_eq!(r.recv_bytes().unwrap(), b"first");
        assert_eq!(r.recv_bytes().unwrap(), b"second");
        assert_eq!(r.recv_bytes().unwrap(), b"third");
        assert!(matches!(r.recv_bytes(), Err(Error::Closed)));
    });
}

#[test]
fn a_named_end_whose_process_exited_passes_to_the_next_opener() {
    let name = unique("pipe-pass");
    let mut a = Pipe::create(&name, 4096).unwrap();
    let n2 = name.clone();
    let child = fork(move || {
        let mut b = Pipe::open(&n2).unwrap();
        assert_eq!(b.recv_bytes().unwrap(), b"to the first");
        std::mem::forget(b);
        // SAFETY: exit without running destructors, as a crash would.
        unsafe { libc::_exit(0) }
    });
    a.send_bytes(b"to the first").unwrap();
    child.join_ok(WATCHDOG);
    let mut b = Pipe::open(&name).unwrap();
    a.send_bytes(b"to the next").unwrap();
    b.send_bytes(b"back").unwrap();
    watchdog(WATCHDOG, move || {
        assert_eq!(b.recv_bytes().unwrap(), b"to the next");
        assert_eq!(a.recv_bytes().unwrap(), b"back");
    });
}

#[test]
fn an_end_the_peer_saw_die_is_closed_for_good() {
    let name = unique("pipe-seen-dead");
    let mut a = Pipe::create(&name, 4096).unwrap();
    let n2 = name.clone();
    let child = fork(move || {
        let b = Pipe::open(&n2).unwrap();
        std::mem::forget(b);
        // SAFETY: exit without running destructors, as a crash would.
        unsafe { libc::_exit(0) }
    });
    child.join_ok(WATCHDOG);
    // A reported the connection over; nobody can take B over behind its back.
    let mut a = watchdog(WATCHDOG, move || {
        assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
        a
    });
    assert!(matches!(Pipe::open(&name), Err(Error::Closed)));
    assert!(matches!(a.send_bytes(b"x"), Err(Error::Closed)));
}

#[test]
fn two_live_processes_on_one_end_get_busy() {
    // Anonymous: the parent uses `b`, then a child tries the same end.
    let (mut a, mut b) = Pipe::new(4096).unwrap();
    a.send_bytes(b"mine").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"mine");
    let me = std::process::id();
    let child = fork(|| match b.try_recv_bytes() {
        Err(Error::Busy { holder, .. }) if holder == me => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
        Ok(_) => 2,
    });
    child.join_ok(WATCHDOG);

    // Named: a second opener of end B, here and in another process.
    let name = unique("pipe-busy");
    let _a = Pipe::create(&name, 256).unwrap();
    let _b = Pipe::open(&name).unwrap();
    let err = Pipe::open(&name).unwrap_err();
    match &err {
        Error::Busy { name: n, holder } => {
            assert_eq!((n.as_str(), *holder), (name.as_str(), me));
        }
        e => panic!("expected Busy, got {e:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&name) && text.contains(&me.to_string()),
        "{text}"
    );
    let n2 = name.clone();
    let child = fork(move || match Pipe::open(&n2) {
        Err(Error::Busy { holder, .. }) if holder == me => 0,
        _ => 1,
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn a_process_whose_main_thread_exited_is_alive_while_a_worker_sends() {
    const N: u32 = 40;
    let (a, b) = Pipe::new(4096).unwrap();
    let child = fork(move || {
        let mut b = b;
        // Claim the end on the main thread, as a program would before it starts workers.
        b.send_bytes(&0u32.to_le_bytes()).unwrap();
        std::thread::spawn(move || {
            for i in 1..N {
                // Slower than the receiver's probe interval: it checks in between.
                std::thread::sleep(Duration::from_millis(5));
                b.send_bytes(&i.to_le_bytes()).unwrap();
            }
            // SAFETY: ends the process without unwinding into the test harness.
            unsafe { libc::_exit(0) }
        });
        // SAFETY: SYS_exit ends only the calling (main) thread; the leader becomes a
        // zombie while the worker runs.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        unreachable!("SYS_exit returned");
    });
    let a = a.with_probe_interval(Duration::from_millis(1));
    watchdog(WATCHDOG, move || {
        let mut a = a;
        for i in 0..N {
            let m = a
                .recv_bytes()
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert_eq!(m, i.to_le_bytes(), "message {i}");
        }
        // Now the whole process is gone.
        assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn a_live_idle_peer_is_never_taken_for_dead() {
    // A live, idle peer is never taken for dead, however many probes pass.
    let (a, b) = Pipe::new(4096).unwrap();
    let child = peer_that_says_hi(b);
    let mut a = a.with_probe_interval(Duration::from_millis(1));
    watchdog(WATCHDOG, move || {
        assert_eq!(a.recv_bytes().unwrap(), b"hi");
        for _ in 0..20 {
            assert!(matches!(
                a.recv_bytes_timeout(Duration::from_millis(5)),
                Err(Error::Timeout)
            ));
            a.send_bytes(b"still there?").unwrap();
        }
    });
    drop(child);
}

#[test]
fn a_reader_taking_over_mid_message_skips_the_rest_of_it() {
    let (mut r, w) = Pipe::one_way(4096).unwrap();
    let big = vec![7u8; 4 << 20]; // a thousand rings: streamed in many pieces
    let sender = std::thread::spawn(move || {
        let mut w = w;
        w.send_bytes(&big).unwrap();
        w.send_bytes(b"after").unwrap();
        w
    });
    // The child starts assembling the big message, then exits without closing.
    let child = fork(|| {
        if !matches!(r.poll(Some(WATCHDOG)), Ok(true)) {
            return 1;
        }
        std::thread::sleep(Duration::from_millis(20));
        match r.try_recv_bytes() {
            Err(Error::Empty) => 0, // mid-message
            _ => 2,
        }
    });
    child.join_ok(WATCHDOG);
    // The parent's handle takes the end over where the child left off.
    watchdog(WATCHDOG, move || {
        assert_eq!(r.recv_bytes().unwrap(), b"after");
        drop(sender.join().unwrap());
        assert!(matches!(r.recv_bytes(), Err(Error::Closed)));
    });
}

#[test]
fn a_sender_taking_over_mid_message_abandons_it() {
    let (r, mut w) = Pipe::one_way(4096).unwrap();
    // The child streams a message far longer than the ring, nobody reads, it gives
    // up and exits without closing.
    let child =
        fork(
            || match w.send_bytes_timeout(&vec![7u8; 1 << 20], Duration::from_millis(50)) {
                Err(Error::Timeout) => 0,
                _ => 1,
            },
        );
    child.join_ok(WATCHDOG);
    let reader = std::thread::spawn(move || {
        let mut r = r;
        let m = r.recv_bytes();
        (r, m)
    });
    watchdog(WATCHDOG, move || {
        w.send_bytes(b"after").unwrap();
        let (_r, m) = reader.join().unwrap();
        assert_eq!(m.unwrap(), b"after");
    });
}

#[test]
fn an_unused_end_dropped_before_any_fork_ends_the_connection() {
    let (mut a, b) = Pipe::new(4096).unwrap();
    drop(b); // its only handle: nobody can ever use end B
    watchdog(WATCHDOG, move || {
        assert!(matches!(a.send_bytes(b"to nobody"), Err(Error::Closed)));
        assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
    });
    let (r, mut w) = Pipe::one_way(4096).unwrap();
    let mut r = r;
    r.close();
    assert!(matches!(w.send_bytes(b"to nobody"), Err(Error::Closed)));
}

#[test]
fn a_sender_taking_over_continues_after_a_frame_consumed_on_its_stamp_alone() {
    // The previous sender died after stamping a frame and before publishing `tail`;
    // the receiver took and released the frame on its stamp, so `head` is ahead of
    // `tail`. The next sender continues after it instead of finding the ring corrupt.
    use multiproc::raw::spsc::{Geometry, RawSpsc, RegionMemory};
    let geo = Geometry::new(64, 1).unwrap();
    let mut slots = vec![0u64; 8];
    let ring = RawSpsc::new();
    // SAFETY: `slots` holds 64 bytes, outlives every cursor, and is only accessed
    // through them.
    let mem = unsafe { RegionMemory::new(slots.as_mut_ptr().cast(), 64) };
    let mut dying = ring.producer(geo, mem).unwrap();
    let mut rx = ring.consumer(geo, mem).unwrap();
    // Stamped, never published: `dying` stops here.
    assert!(dying.stage_stamped(0x5a7, &[1, 2, 3], 0xfeed));
    assert_eq!(rx.stamp(0), Some(0xfeed));
    rx.accept(24).unwrap();
    rx.skip(24);
    rx.release(&ring);
    assert!(ring.producer(geo, mem).is_err(), "tail behind head");
    let next = ring.producer_resuming(geo, mem).unwrap();
    assert_eq!(next.position(), 24);
    drop(slots);
}

#[test]
fn try_recv_notices_a_sigkilled_peer_within_the_probe_interval() {
    let (mut a, b) = Pipe::new(4096).unwrap();
    let child = peer_that_says_hi(b);
    let mut a = watchdog(WATCHDOG, move || {
        assert!(a.poll(Some(WATCHDOG)).unwrap());
        assert_eq!(a.try_recv_bytes().unwrap(), b"hi");
        a
    });
    child.kill();
    std::thread::sleep(PAST_PROBE);
    // A receiver that never waits still learns that nothing will come.
    assert!(matches!(a.try_recv_bytes(), Err(Error::Closed)));
    assert!(matches!(a.send_bytes(b"x"), Err(Error::Closed)));
}

/// With a 10 s probe interval a wait's timed probes fall at about 0.6, 1.9, 4.4 and
/// 9.4 s into it: a peer that dies 4.5 s in would be found at 9.4 s by them.
const SLOW_PROBE: Duration = Duration::from_secs(10);
/// When the peer dies, counted from just before the wait starts.
const DIES_AFTER: Duration = Duration::from_millis(4500);
/// Well before the next timed probe: only the death watcher ends the wait this soon.
const WATCHED: Duration = Duration::from_secs(2);

#[test]
fn a_recv_blocked_for_long_sees_a_sigkilled_peer_before_the_next_timed_probe() {
    let (a, b) = Pipe::new(64 * 1024).unwrap();
    let child = peer_that_says_hi(b);
    let mut a = a.with_probe_interval(SLOW_PROBE);
    assert_eq!(a.recv_bytes().unwrap(), b"hi");
    let waiter = std::thread::spawn(move || matches!(a.recv_bytes(), Err(Error::Closed)));
    std::thread::sleep(DIES_AFTER);
    let killed = std::time::Instant::now();
    child.kill();
    assert!(watchdog(WATCHDOG, move || waiter.join().unwrap()), "Closed");
    let took = killed.elapsed();
    assert!(
        took < WATCHED,
        "recv ended {took:?} after the kill: not woken by the death watcher"
    );
}

#[test]
fn a_send_blocked_on_a_full_ring_sees_a_sigkilled_peer_before_the_next_timed_probe() {
    let (a, b) = Pipe::new(4096).unwrap();
    let child = peer_that_says_hi(b);
    let mut a = a.with_probe_interval(SLOW_PROBE);
    assert_eq!(a.recv_bytes().unwrap(), b"hi");
    // Larger than the ring: the send blocks once the ring is full (nobody reads).
    let waiter =
        std::thread::spawn(move || matches!(a.send_bytes(&[7u8; 64 * 1024]), Err(Error::Closed)));
    std::thread::sleep(DIES_AFTER);
    let killed = std::time::Instant::now();
    child.kill();
    assert!(watchdog(WATCHDOG, move || waiter.join().unwrap()), "Closed");
    let took = killed.elapsed();
    assert!(
        took < WATCHED,
        "send ended {took:?} after the kill: not woken by the death watcher"
    );
}
