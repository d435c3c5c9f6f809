//! `ByteQueue`: variable-length messages, `get_into`, typed messages, across processes.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{ByteQueue, Error};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

#[test]
fn messages_of_every_length_up_to_the_max_round_trip() {
    let q = ByteQueue::create(&unique("bq-lens"), 4, 100).unwrap();
    assert_eq!(q.max_message_len(), 100);
    for len in 0..=100usize {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        q.put(&msg).unwrap();
        assert_eq!(q.get().unwrap(), msg);
    }
}

#[test]
fn too_long_message_is_refused() {
    let q = ByteQueue::create(&unique("bq-long"), 4, 16).unwrap();
    assert!(matches!(
        q.put(&[0; 17]),
        Err(Error::TooLarge { len: 17, max: 16 })
    ));
    assert!(matches!(q.try_put(&[0; 17]), Err(Error::TooLarge { .. })));
    assert!(q.is_empty());
}

#[test]
fn get_into_does_not_allocate_and_leaves_too_long_messages_queued() {
    let q = ByteQueue::create(&unique("bq-into"), 4, 64).unwrap();
    q.put(b"hello world").unwrap();
    let mut small = [0u8; 4];
    assert!(matches!(
        q.try_get_into(&mut small),
        Err(Error::TooLarge { len: 11, max: 4 })
    ));
    assert_eq!(q.len(), 1, "a message that does not fit stays queued");
    let mut buf = [0u8; 64];
    let n = q.get_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello world");
    let mut v = Vec::with_capacity(64);
    q.put(b"abc").unwrap();
    assert_eq!(q.get_into_vec(&mut v).unwrap(), 3);
    assert_eq!(v, b"abc");
}

#[test]
fn empty_full_timeout_and_close_edges() {
    let q = ByteQueue::create(&unique("bq-edges"), 2, 8).unwrap();
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    q.put(b"a").unwrap();
    q.put(b"b").unwrap();
    assert!(q.is_full());
    assert!(matches!(q.try_put(b"c"), Err(Error::Full)));
    assert!(matches!(
        q.put_timeout(b"c", Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    q.close();
    assert!(matches!(q.put(b"c"), Err(Error::Closed)));
    assert_eq!(q.get().unwrap(), b"a");
    assert_eq!(q.get().unwrap(), b"b");
    assert!(matches!(q.get(), Err(Error::Closed)));
}

#[test]
fn invalid_sizes_are_refused() {
    assert!(matches!(
        ByteQueue::create(&unique("bq-z"), 0, 8),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        ByteQueue::create(&unique("bq-z2"), 8, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        ByteQueue::create(&unique("bq-z3"), 1 << 30, 1 << 30),
        Err(Error::InvalidArgument { .. })
    ));
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Job {
    id: u32,
    name: String,
    weights: Vec<f64>,
}

#[test]
fn typed_messages_round_trip() {
    let q = ByteQueue::create(&unique("bq-typed"), 8, 256).unwrap();
    let job = Job {
        id: 7,
        name: "resize".into(),
        weights: vec![0.5, 1.5],
    };
    q.send(&job).unwrap();
    q.send(&"a string").unwrap();
    assert_eq!(q.recv::<Job>().unwrap(), job);
    assert_eq!(q.try_recv::<String>().unwrap(), "a string");
    assert!(matches!(q.try_recv::<Job>(), Err(Error::Empty)));
    assert!(matches!(
        q.recv_timeout::<Job>(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    let big = Job {
        id: 1,
        name: "x".repeat(300),
        weights: vec![],
    };
    assert!(matches!(q.send(&big), Err(Error::TooLarge { .. })));
}

#[test]
fn decoding_garbage_is_an_error_not_a_panic() {
    let q = ByteQueue::create(&unique("bq-garbage"), 64, 64).unwrap();
    let garbage: [&[u8]; 6] = [
        b"",
        &[0xff; 10],
        &[0x05, b'a'],
        &[
            0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        ],
        &[0x07, 0x03, b'a', b'b', b'c', 0x00, 0x00, 0x99],
        &[0x07, 0x03, 0xff, 0xfe, 0xfd, 0x00],
    ];
    for g in garbage {
        q.put(g).unwrap();
        match q.recv::<Job>() {
            Err(Error::Corrupt { detail, .. }) => assert!(detail.contains("Job"), "{detail}"),
            other => panic!("garbage {g:?} decoded as {other:?}"),
        }
    }
    // Trailing bytes after a valid value are refused too.
    q.put(&[0x01, 0x02]).unwrap();
    assert!(matches!(q.recv::<u8>(), Err(Error::Corrupt { .. })));
}

#[test]
fn messages_cross_processes_and_an_unrelated_process() {
    if let Some(role) = role() {
        if let Some(name) = role.strip_prefix("bq-peer:") {
            let req = ByteQueue::open(&format!("{name}.req")).unwrap();
            let rep = ByteQueue::open(&format!("{name}.rep")).unwrap();
            let mut buf = vec![0u8; req.max_message_len()];
            for _ in 0..50 {
                let n = req.get_into(&mut buf).unwrap();
                let mut back = buf[..n].to_vec();
                back.reverse();
                rep.put(&back).unwrap();
            }
        }
        return;
    }
    let name = unique("bq-peer");
    let req = ByteQueue::create(&format!("{name}.req"), 1, 4096).unwrap();
    let rep = ByteQueue::create(&format!("{name}.rep"), 1, 4096).unwrap();
    // A forked child answers a typed request...
    let n2 = name.clone();
    let child = fork(move || {
        let req = ByteQueue::open(&format!("{n2}.req")).unwrap();
        let rep = ByteQueue::open(&format!("{n2}.rep")).unwrap();
        let v: Vec<u32> = req.recv().unwrap();
        rep.send(&v.iter().sum::<u32>()).unwrap();
        0
    });
    req.send(&vec![1u32, 2, 3]).unwrap();
    let sum: u32 = rep.recv_timeout(WATCHDOG).unwrap();
    assert_eq!(sum, 6);
    child.join_ok(WATCHDOG);
    // ...and an unrelated process echoes bytes reversed.
    let child = spawn_self(
        "messages_cross_processes_and_an_unrelated_process",
        &format!("bq-peer:{name}"),
    );
    for i in 0..50usize {
        let msg: Vec<u8> = (0..(i * 80)).map(|k| (k * 31 + i) as u8).collect();
        req.put_timeout(&msg, WATCHDOG).unwrap();
        let back = rep.get_timeout(WATCHDOG).unwrap();
        let mut want = msg.clone();
        want.reverse();
        assert_eq!(back, want);
    }
    let (code, _) = wait_self(child, WATCHDOG);
    assert_eq!(code, 0);
}

/// Mirrors CPython's `_TestQueue.test_put` (`maxsize=6` holds six): as `Queue`, the
/// capacity is exact, not the ring's power of two.
#[test]
fn capacity_is_exactly_what_was_asked() {
    let q = ByteQueue::create(&unique("bq-cap"), 6, 8).unwrap();
    assert_eq!(q.capacity(), 6);
    for i in 0..6u8 {
        q.try_put(&[i]).unwrap();
    }
    assert!(q.is_full());
    assert!(matches!(q.try_put(b"x"), Err(Error::Full)));
    assert_eq!(q.get().unwrap(), [0]);
    q.try_put(b"y").unwrap();
    assert!(matches!(q.try_put(b"z"), Err(Error::Full)));
}
