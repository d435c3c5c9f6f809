//! `Pipe::split`: an end's `PipeSender` and `PipeReceiver` are used from different
//! threads at once (a receive blocked in one thread never holds up a send in
//! another), across fork; closing one half ends its direction only, closing both
//! ends the end.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Error, Pipe, PipeReceiver, PipeSender};
use std::sync::mpsc;
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

#[test]
fn a_receive_blocked_in_one_thread_does_not_hold_up_a_send_in_another_across_fork() {
    let (a, b) = Pipe::new(4096).unwrap();
    // The child splits its inherited, still unused end B: its receiving thread
    // waits for "ping", which the parent sends only after the child's main thread
    // has sent "hello" on the same end.
    let child = fork(move || {
        let (mut tx, mut rx) = b.split();
        let waiting = std::thread::spawn(move || rx.recv_bytes());
        tx.send_bytes(b"hello").unwrap();
        assert_eq!(waiting.join().unwrap().unwrap(), b"ping");
        tx.send_bytes(b"pong").unwrap();
        0
    });
    // And the parent's receiving thread is waiting for "pong" while its main thread
    // sends "ping" on end A.
    let (mut tx, mut rx) = a.split();
    let (got_hello, hello) = mpsc::channel();
    let waiting = std::thread::spawn(move || {
        got_hello.send(rx.recv_bytes().unwrap()).unwrap();
        rx.recv_bytes()
    });
    assert_eq!(hello.recv_timeout(WATCHDOG).unwrap(), b"hello");
    tx.send_bytes(b"ping").unwrap();
    let pong = watchdog(WATCHDOG, move || waiting.join().unwrap());
    assert_eq!(pong.unwrap(), b"pong");
    child.join_ok(WATCHDOG);
}

#[test]
fn halves_moved_to_other_threads_carry_every_message_in_order() {
    const N: u32 = 2000;
    let (a, b) = Pipe::new(256).unwrap();
    let (mut tx, mut rx) = a.split();
    let (mut b_tx, mut b_rx) = b.split();
    // End B echoes every message back; end A sends from one thread and receives on
    // another. The 256-byte rings fill up, so each side waits on the other.
    let echo = std::thread::spawn(move || {
        for _ in 0..N {
            let m: u32 = b_rx.recv().unwrap();
            b_tx.send(&m).unwrap();
        }
    });
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            tx.send(&i).unwrap();
        }
        tx
    });
    let received = watchdog(WATCHDOG, move || {
        (0..N)
            .map(|_| rx.recv::<u32>().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(received, (0..N).collect::<Vec<_>>());
    watchdog(WATCHDOG, move || {
        echo.join().unwrap();
        drop(sender.join().unwrap());
    });
}

#[test]
fn closing_the_sender_ends_the_peers_receives_after_draining_and_keeps_the_other_direction() {
    let (a, mut b) = Pipe::new(4096).unwrap();
    let (mut tx, mut rx) = a.split();
    tx.send_bytes(b"last").unwrap();
    tx.close();
    assert!(tx.is_closed());
    assert!(matches!(tx.send_bytes(b"no"), Err(Error::Closed)));
    assert_eq!(b.recv_bytes().unwrap(), b"last");
    assert!(matches!(b.recv_bytes(), Err(Error::Closed)));
    // The receiving direction is still open both ways.
    b.send_bytes(b"still here").unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), b"still here");
}

#[test]
fn closing_the_receiver_fails_the_peers_sends_and_keeps_the_other_direction() {
    let (a, mut b) = Pipe::new(4096).unwrap();
    let (mut tx, mut rx) = a.split();
    // Claim the end first, so that the close has an end to act on.
    tx.send_bytes(b"first").unwrap();
    rx.close();
    assert!(matches!(rx.recv_bytes(), Err(Error::Closed)));
    assert!(matches!(rx.poll(Some(Duration::ZERO)), Err(Error::Closed)));
    assert!(matches!(b.send_bytes(b"unheard"), Err(Error::Closed)));
    assert!(matches!(b.try_send_bytes(b"unheard"), Err(Error::Closed)));
    tx.send_bytes(b"second").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"first");
    assert_eq!(b.recv_bytes().unwrap(), b"second");
}

#[test]
fn a_half_closed_before_the_end_is_claimed_ends_its_direction_at_the_claim() {
    let (a, mut b) = Pipe::new(4096).unwrap();
    let (mut tx, mut rx) = a.split();
    // Nothing claimed end A yet: the close is remembered, and the first use of the
    // receiving half (which claims the end) ends the sending direction.
    tx.close();
    assert!(matches!(rx.try_recv_bytes(), Err(Error::Empty)));
    assert!(matches!(b.recv_bytes(), Err(Error::Closed)));
    b.send_bytes(b"to a").unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), b"to a");
}

#[test]
fn the_end_closes_when_both_halves_are_dropped() {
    let (a, mut b) = Pipe::new(4096).unwrap();
    let (mut tx, rx) = a.split();
    tx.send_bytes(b"bye").unwrap();
    drop(rx);
    // The sending direction lives on while its half does.
    tx.send_bytes(b"again").unwrap();
    drop(tx);
    assert_eq!(b.recv_bytes().unwrap(), b"bye");
    assert_eq!(b.recv_bytes().unwrap(), b"again");
    assert!(matches!(b.recv_bytes(), Err(Error::Closed)));
    assert!(matches!(b.send_bytes(b"x"), Err(Error::Closed)));
}

#[test]
fn the_halves_of_a_named_end_keep_it_claimed_until_both_are_dropped() {
    let name = unique("pipe-split-named");
    let a = Pipe::create(&name, 4096).unwrap();
    let b = Pipe::open(&name).unwrap();
    let (tx, mut rx) = b.split();
    drop(tx);
    // End B is still held by this process: a forked child cannot take it.
    let child = fork({
        let name = name.clone();
        move || match Pipe::open(&name) {
            Err(Error::Busy { .. }) => 0,
            other => {
                eprintln!("expected Busy, got {other:?}");
                1
            }
        }
    });
    child.join_ok(WATCHDOG);
    let mut a = a;
    a.send_bytes(b"to b").unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), b"to b");
    drop(rx);
    // Both halves gone: end B was closed for good.
    assert!(matches!(a.recv_bytes(), Err(Error::Closed)));
    assert!(matches!(Pipe::open(&name), Err(Error::Closed)));
}

#[test]
fn split_keeps_the_ends_settings_and_direction() {
    let (r, w) = Pipe::one_way(4096).unwrap();
    let (mut w_tx, mut w_rx) = w.split();
    assert!(w_tx.can_send() && !w_rx.can_recv());
    assert!(matches!(
        w_rx.recv_bytes(),
        Err(Error::InvalidArgument { .. })
    ));
    w_tx.send_bytes(&[1u8; 100]).unwrap();
    w_tx.send_bytes(&[2u8; 10]).unwrap();
    let (mut r_tx, mut r_rx) = r.with_max_message_len(50).split();
    assert!(matches!(
        r_tx.send_bytes(b"no"),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        r_rx.recv_bytes(),
        Err(Error::TooLarge { len: 100, max: 50 })
    ));
    assert_eq!(r_rx.recv_bytes().unwrap(), [2u8; 10]);
}

#[test]
fn halves_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PipeSender>();
    check::<PipeReceiver>();
}
