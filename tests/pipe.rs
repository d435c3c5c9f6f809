//! `Pipe`: whole messages of any length between two processes, typed messages, EOF
//! and peer death, one process per end.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Error, Lock, Pipe, PipeEnd};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

/// `len` bytes that differ for every length and position.
fn pattern(len: usize) -> Vec<u8> {
    let block: Vec<u8> = (0..251u32).map(|i| (i * 7 + len as u32) as u8).collect();
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let n = (len - v.len()).min(block.len());
        v.extend_from_slice(&block[..n]);
    }
    v
}

/// A forked child that sends back every message it receives until the pipe closes.
fn echo_child(mut end: Pipe) -> Child {
    fork(move || {
        let mut buf = Vec::new();
        loop {
            match end.recv_bytes_into(&mut buf) {
                Ok(_) => end.send_bytes(&buf).unwrap(),
                Err(Error::Closed) => return 0,
                Err(e) => panic!("echo: {e}"),
            }
        }
    })
}

#[test]
fn round_trips_of_edge_sizes_arrive_whole() {
    let (mut a, b) = Pipe::new(4096).unwrap();
    let ring = a.capacity();
    assert_eq!(ring, 4096);
    let child = echo_child(b);
    let a = watchdog(WATCHDOG, move || {
        let sizes = [
            0,
            1,
            7,
            ring - 17,
            ring - 16, // the largest message written whole (16 bytes of frame overhead)
            ring - 15, // the smallest one streamed
            ring - 1,
            ring,
            ring + 1,
            3 * ring + 5,
        ];
        let mut back = Vec::new();
        for &n in &sizes {
            let msg = pattern(n);
            a.send_bytes(&msg).unwrap();
            assert_eq!(a.recv_bytes_into(&mut back).unwrap(), n);
            assert!(back == msg, "message of {n} bytes came back different");
        }
        a
    });
    drop(a); // closes: the child sees Closed and exits
    child.join_ok(WATCHDOG);
}

#[test]
fn a_64_mib_message_round_trips_whole() {
    let (mut a, b) = Pipe::new(1 << 20).unwrap();
    let child = echo_child(b);
    watchdog(WATCHDOG, move || {
        let msg = pattern(64 << 20);
        a.send_bytes(&msg).unwrap();
        let back = a.recv_bytes().unwrap();
        assert_eq!(back.len(), msg.len());
        assert!(back == msg, "64 MiB message came back different");
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn interleaved_duplex_traffic() {
    let (mut a, mut b) = Pipe::new(1024).unwrap();
    const N: usize = 3000;
    // Both ends send before they receive; sizes up to half the ring, so that two
    // messages in flight in each direction always fit.
    let size = |i: usize, side: usize| (i * 37 + side * 101) % (1024 / 2 - 8);
    let child = fork(move || {
        for i in 0..N {
            b.send_bytes(&pattern(size(i, 1))).unwrap();
            let m = b.recv_bytes().unwrap();
            assert!(m == pattern(size(i, 0)), "B got a wrong message {i}");
        }
        0
    });
    watchdog(WATCHDOG, move || {
        for i in 0..N {
            a.send_bytes(&pattern(size(i, 0))).unwrap();
            let m = a.recv_bytes().unwrap();
            assert!(m == pattern(size(i, 1)), "A got a wrong message {i}");
        }
    });
    child.join_ok(WATCHDOG);
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Job {
    Square(u64),
    Text {
        id: u32,
        body: String,
        tags: Vec<String>,
    },
    Stop,
}

#[test]
fn unrelated_process_attaches_by_name() {
    const TEST: &str = "unrelated_process_attaches_by_name";
    if let Some(role) = role() {
        if let Some(name) = role.strip_prefix("pipe-worker:") {
            let mut end = Pipe::open(name).unwrap();
            assert_eq!(end.end(), PipeEnd::B);
            loop {
                match end.recv::<Job>().unwrap() {
                    Job::Square(x) => end.send(&(x * x)).unwrap(),
                    Job::Text { body, tags, .. } => end.send(&(body.len() + tags.len())).unwrap(),
                    Job::Stop => break,
                }
            }
            assert!(matches!(end.recv_bytes(), Err(Error::Closed)));
            println!("worker done");
        }
        return;
    }
    let name = unique("pipe-unrelated");
    let mut a = Pipe::create(&name, 256).unwrap();
    let child = spawn_self(TEST, &format!("pipe-worker:{name}"));
    let a = watchdog(WATCHDOG, move || {
        for x in 0..200u64 {
            a.send(&Job::Square(x)).unwrap();
            assert_eq!(a.recv::<u64>().unwrap(), x * x);
        }
        let body = "x".repeat(5000); // longer than the ring: streamed
        a.send(&Job::Text {
            id: 1,
            body,
            tags: vec!["a".into(), "b".into()],
        })
        .unwrap();
        assert_eq!(a.recv::<usize>().unwrap(), 5002);
        a.send(&Job::Stop).unwrap();
        a
    });
    drop(a);
    let (code, out) = wait_self(child, WATCHDOG);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("worker done"), "{out}");
}

#[test]
fn peer_close_mid_stream_delivers_everything_then_closed() {
    let (mut a, mut b) = Pipe::new(4096).unwrap();
    let child = fork(move || {
        for i in 0..10 {
            b.send_bytes(&pattern(i * 1000)).unwrap();
        }
        b.close();
        assert!(matches!(b.send_bytes(b"x"), Err(Error::Closed)));
        0
    });
    watchdog(WATCHDOG, move || {
        for i in 0..10 {
            let m = a.recv_bytes().unwrap();
            assert!(m == pattern(i * 1000), "message {i}");
        }
        assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
        assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
        assert!(a.poll(Some(Duration::ZERO)).unwrap(), "EOF polls ready");
        assert!(matches!(a.send_bytes(b"to nobody"), Err(Error::Closed)));
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn sigkilled_peer_mid_message_gives_closed_and_no_partial_message() {
    let (mut a, mut b) = Pipe::new(4096).unwrap();
    let cap = a.capacity();
    let mut child = fork(move || {
        b.send_bytes(b"before").unwrap();
        // Four rings long: blocks mid-message until someone reads.
        b.send_bytes(&pattern(4 * cap)).unwrap();
        0
    });
    let a = watchdog(WATCHDOG, move || {
        assert_eq!(a.recv_bytes().unwrap(), b"before");
        // The long message has started...
        assert!(a.poll(Some(WATCHDOG)).unwrap());
        a
    });
    // ...and fills the ring; the child blocks in the middle of it.
    std::thread::sleep(Duration::from_millis(50));
    assert!(child.wait_timeout(Duration::ZERO).is_none());
    child.kill();
    let waited = watchdog(WATCHDOG, move || {
        let mut a = a;
        let t = Instant::now();
        let mut buf = Vec::new();
        assert!(matches!(a.recv_bytes_into(&mut buf), Err(Error::Closed)));
        assert!(buf.is_empty(), "a partial message was handed out");
        assert!(matches!(
            a.send_bytes(&pattern(3 * cap)),
            Err(Error::Closed)
        ));
        t.elapsed()
    });
    assert!(
        waited < Duration::from_secs(5),
        "death noticed after {waited:?}"
    );
}

#[test]
fn sigkilled_idle_peer_is_noticed_by_recv_and_send() {
    let (mut a, mut b) = Pipe::new(256).unwrap();
    let child = fork(move || {
        b.send_bytes(b"hi").unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    let mut a = watchdog(WATCHDOG, move || {
        assert_eq!(a.recv_bytes().unwrap(), b"hi");
        a
    });
    child.kill();
    a = watchdog(WATCHDOG, move || {
        assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
        a
    });
    // What recv found, send knows: no message goes into a ring nobody reads.
    assert!(matches!(a.send_bytes(b"0123456789"), Err(Error::Closed)));
}

#[test]
fn a_held_end_cannot_be_opened_twice_and_a_closed_end_not_reopened() {
    let name = unique("pipe-held");
    let a = Pipe::create(&name, 256).unwrap();
    let b = Pipe::open(&name).unwrap();
    let err = Pipe::open(&name).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert!(err.to_string().contains("held by live process"), "{err}");
    let n2 = name.clone();
    let child = fork(move || match Pipe::open(&n2) {
        Err(Error::Busy { .. }) => 0,
        _ => 1,
    });
    child.join_ok(WATCHDOG);
    drop(b); // closed for good: a pipe is one connection
    assert!(matches!(Pipe::open(&name), Err(Error::Closed)));
    drop(a);
    // An end whose process exited without closing passes on: see tests/pipe_peer.rs.
}

#[test]
fn typed_messages_round_trip_and_garbage_is_an_error() {
    let (mut a, mut b) = Pipe::new(1024).unwrap();
    let jobs = vec![
        Job::Square(7),
        Job::Text {
            id: 9,
            body: "héllo".into(),
            tags: vec!["x".into(); 300], // streamed
        },
        Job::Stop,
    ];
    for j in &jobs {
        a.send(j).unwrap();
    }
    let t = std::thread::spawn(move || {
        let got: Vec<Job> = (0..3).map(|_| b.recv().unwrap()).collect();
        (got, b)
    });
    let (got, mut b) = t.join().unwrap();
    assert_eq!(got, jobs);
    // Garbage: not a valid Job (variant index 200), truncated, empty.
    for garbage in [&[200u8, 1, 2][..], &[1u8][..], &[][..], &[1u8, 5, b'a'][..]] {
        a.send_bytes(garbage).unwrap();
        match b.recv::<Job>() {
            Err(Error::Corrupt { detail, .. }) => {
                assert!(detail.contains("not a valid"), "{detail}")
            }
            other => panic!("garbage {garbage:?} decoded as {other:?}"),
        }
    }
    // The pipe still works afterwards.
    a.send(&("ok", 1.5f64)).unwrap();
    assert_eq!(b.recv::<(String, f64)>().unwrap(), ("ok".to_owned(), 1.5));
}

#[test]
fn timeouts_and_try_forms() {
    let (mut a, mut b) = Pipe::new(256).unwrap();
    let cap = a.capacity();
    assert!(matches!(b.try_recv_bytes(), Err(Error::Empty)));
    let t = Instant::now();
    assert!(matches!(
        b.recv_bytes_timeout(Duration::from_millis(30)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert!(!b.poll(Some(Duration::from_millis(5))).unwrap());
    // Fill the ring with whole messages.
    while a.try_send_bytes(&[1; 50]).is_ok() {}
    assert!(matches!(a.try_send_bytes(&[1; 50]), Err(Error::Full)));
    assert!(matches!(
        a.send_bytes_timeout(&[1; 50], Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        a.try_send_bytes(&vec![1; cap]),
        Err(Error::TooLarge { .. })
    ));
    assert!(b.poll(None).unwrap());
    let mut n = 0;
    while let Ok(m) = b.try_recv_bytes() {
        assert_eq!(m, [1; 50]);
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn abandoned_streamed_send_is_never_delivered() {
    let (mut a, mut b) = Pipe::new(256).unwrap();
    let cap = a.capacity();
    a.send_bytes(b"first").unwrap();
    // Longer than the ring and nobody reads: gives up mid-message.
    let long = pattern(5 * cap);
    assert!(matches!(
        a.send_bytes_timeout(&long, Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert_eq!(b.recv_bytes().unwrap(), b"first");
    // The receiver takes what was streamed and times out mid-message...
    assert!(matches!(
        b.recv_bytes_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    // ...then the next message arrives, and the abandoned one never does.
    a.send_bytes(b"second").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"second");
    // A receiver that timed out mid-message resumes it on the next call.
    let sent = long.clone();
    let t = std::thread::spawn(move || {
        a.send_bytes(&sent).unwrap();
        a
    });
    let mut got = None;
    while got.is_none() {
        match b.recv_bytes_timeout(Duration::from_micros(200)) {
            Ok(m) => got = Some(m),
            Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(got.unwrap() == long);
    drop(t.join().unwrap());
}

#[test]
fn recv_bytes_into_reuses_a_large_enough_buffer() {
    let (mut a, mut b) = Pipe::new(4096).unwrap();
    let mut buf = Vec::with_capacity(10_000);
    let ptr = buf.as_ptr();
    for n in [100, 3000, 10, 0, 4000] {
        a.send_bytes(&pattern(n)).unwrap();
        assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), n);
        assert!(buf == pattern(n));
        assert_eq!(buf.as_ptr(), ptr, "reallocated for {n} bytes");
        assert_eq!(buf.capacity(), 10_000);
    }
    // Streamed messages too.
    let t = std::thread::spawn(move || {
        a.send_bytes(&pattern(9000)).unwrap();
        a
    });
    assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 9000);
    assert!(buf == pattern(9000));
    assert_eq!(buf.as_ptr(), ptr);
    drop(t.join().unwrap());
}

#[test]
fn messages_over_the_receivers_limit_are_refused_and_skipped() {
    let (mut a, b) = Pipe::new(256).unwrap();
    let mut b = b.with_max_message_len(100);
    a.send_bytes(&[1; 101]).unwrap();
    a.send_bytes(&[2; 100]).unwrap();
    assert!(matches!(
        b.recv_bytes(),
        Err(Error::TooLarge { len: 101, max: 100 })
    ));
    assert_eq!(b.recv_bytes().unwrap(), [2; 100]);
    let t = std::thread::spawn(move || {
        a.send_bytes(&[3; 1000]).unwrap(); // streamed, refused, skipped
        a.send_bytes(&[4; 10]).unwrap();
    });
    assert!(matches!(
        b.recv_bytes(),
        Err(Error::TooLarge { len: 1000, .. })
    ));
    assert_eq!(b.recv_bytes().unwrap(), [4; 10]);
    t.join().unwrap();
}

#[test]
fn one_way_pipes_refuse_the_wrong_direction() {
    let (mut r, mut w) = Pipe::one_way(1024).unwrap();
    assert!(!r.can_send() && r.can_recv() && w.can_send() && !w.can_recv());
    assert!(matches!(
        r.send_bytes(b"x"),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(w.recv_bytes(), Err(Error::InvalidArgument { .. })));
    w.send_bytes(b"ok").unwrap();
    assert_eq!(r.recv_bytes().unwrap(), b"ok");
    drop(w);
    assert!(matches!(r.recv_bytes(), Err(Error::Closed)));

    let name = unique("pipe-oneway");
    let mut w = Pipe::create_one_way(&name, 1024).unwrap();
    let mut r = Pipe::open(&name).unwrap();
    assert!(!r.is_duplex() && r.can_recv() && !r.can_send());
    w.send_bytes(b"named").unwrap();
    assert_eq!(r.recv_bytes().unwrap(), b"named");
}

#[test]
fn poll_waits_for_data() {
    let (mut a, mut b) = Pipe::new(1024).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        a.send_bytes(b"late").unwrap();
        a
    });
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    assert!(watchdog(WATCHDOG, move || {
        let r = b.poll(None).unwrap();
        assert_eq!(b.recv_bytes().unwrap(), b"late");
        r
    }));
    drop(t.join().unwrap());
}

#[test]
fn closed_handle_refuses_everything() {
    let (mut a, _b) = Pipe::new(1024).unwrap();
    a.close();
    assert!(a.is_closed());
    assert!(matches!(a.send_bytes(b"x"), Err(Error::Closed)));
    assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
}

#[test]
fn unused_copy_inherited_through_fork_can_be_dropped_without_closing() {
    // Python's idiom: the parent closes its copy of the child's end.
    let (mut a, mut b) = Pipe::new(1024).unwrap();
    let child = fork(move || {
        std::thread::sleep(Duration::from_millis(20));
        b.send_bytes(b"from child").unwrap();
        0
    });
    // The parent's copy of `b` was dropped (closed) inside `fork`, unused: that must
    // not close the child's end.
    watchdog(WATCHDOG, move || {
        assert_eq!(a.recv_bytes().unwrap(), b"from child");
        // The child exits (dropping b closes it): EOF.
        assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn capacity_is_validated_and_kind_checked() {
    assert!(matches!(Pipe::new(0), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        Pipe::new(usize::MAX),
        Err(Error::InvalidArgument { .. })
    ));
    let (a, _) = Pipe::new(1).unwrap();
    assert_eq!(a.capacity(), 64);
    let name = unique("pipe-kind");
    let _l = Lock::create(&name).unwrap();
    assert!(matches!(Pipe::open(&name), Err(Error::WrongKind { .. })));
    assert!(matches!(
        Pipe::open(&unique("pipe-missing")),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Pipe>();
}
