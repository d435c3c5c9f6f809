//! A pipe's two ends in one process under arbitrary sends and receives (whole,
//! streamed-and-abandoned, typed, garbage), against a model of the messages that must
//! arrive: every message whose send returned Ok arrives once, whole and in order;
//! nothing else arrives; nothing crashes or hangs. Either end may be split into its
//! `PipeSender` and `PipeReceiver` first: the halves must behave as the end does.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use multiproc::{Error, Pipe, PipeReceiver, PipeSender};
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Send `len` bytes made from `seed`, without waiting.
    Send { len: u16, seed: u8, from_b: bool },
    /// Send with a zero timeout: longer-than-ring messages start streaming, then are
    /// abandoned.
    SendNow { len: u16, seed: u8, from_b: bool },
    Recv { at_b: bool },
    Poll { at_b: bool },
    /// Decode whatever comes next as a typed value.
    RecvTyped { at_b: bool },
    Close { b: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    log2_cap: u8,
    /// Split end A / end B into its halves.
    split: [bool; 2],
    ops: Vec<Op>,
}

/// A pipe end, whole or split into its halves.
enum End {
    Whole(Pipe),
    Split(PipeSender, PipeReceiver),
}

impl End {
    fn new(p: Pipe, split: bool) -> End {
        if split {
            let (tx, rx) = p.split();
            End::Split(tx, rx)
        } else {
            End::Whole(p)
        }
    }

    fn try_send_bytes(&mut self, msg: &[u8]) -> Result<(), Error> {
        match self {
            End::Whole(p) => p.try_send_bytes(msg),
            End::Split(tx, _) => tx.try_send_bytes(msg),
        }
    }

    fn send_bytes_timeout(&mut self, msg: &[u8], t: Duration) -> Result<(), Error> {
        match self {
            End::Whole(p) => p.send_bytes_timeout(msg, t),
            End::Split(tx, _) => tx.send_bytes_timeout(msg, t),
        }
    }

    fn try_recv_bytes_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, Error> {
        match self {
            End::Whole(p) => p.try_recv_bytes_into(buf),
            End::Split(_, rx) => rx.try_recv_bytes_into(buf),
        }
    }

    fn poll(&mut self, t: Option<Duration>) -> Result<bool, Error> {
        match self {
            End::Whole(p) => p.poll(t),
            End::Split(_, rx) => rx.poll(t),
        }
    }

    fn try_recv_typed(&mut self) -> Result<(u32, String, Vec<i16>), Error> {
        match self {
            End::Whole(p) => p.try_recv(),
            End::Split(_, rx) => rx.try_recv(),
        }
    }

    /// Closes the end (both halves: the second close closes the end).
    fn close(&mut self) {
        match self {
            End::Whole(p) => p.close(),
            End::Split(tx, rx) => {
                tx.close();
                rx.close();
            }
        }
    }
}

fn message(len: u16, seed: u8) -> Vec<u8> {
    (0..len as usize).map(|i| seed.wrapping_add(i as u8)).collect()
}

fuzz_target!(|input: Input| {
    let cap = 64usize << (input.log2_cap % 5);
    let (a, b) = Pipe::new(cap).unwrap();
    let mut ends = [End::new(a, input.split[0]), End::new(b, input.split[1])];
    // Messages in flight towards end 0 (A) and end 1 (B).
    let mut towards: [VecDeque<Vec<u8>>; 2] = [VecDeque::new(), VecDeque::new()];
    // Nothing forks here, so each handle is its end's only one: `close` ends the end
    // whether or not it was used (after a fork, closing an unused copy would only
    // close the handle).
    let mut closed = [false; 2];
    let mut eof = [false; 2];
    let mut buf = Vec::new();
    for op in input.ops.iter().take(64) {
        match *op {
            Op::Send { len, seed, from_b } | Op::SendNow { len, seed, from_b } => {
                let (s, r) = if from_b { (1, 0) } else { (0, 1) };
                let msg = message(len, seed);
                let res = match op {
                    Op::Send { .. } => ends[s].try_send_bytes(&msg),
                    _ => ends[s].send_bytes_timeout(&msg, Duration::ZERO),
                };
                match res {
                    Ok(()) => {
                        assert!(!closed[s] && !eof[r], "sent over a closed pipe");
                        towards[r].push_back(msg);
                    }
                    Err(Error::Closed) => assert!(closed[s] || eof[r]),
                    Err(Error::Full | Error::Timeout | Error::TooLarge { .. }) => {
                        assert!(!closed[s] && !eof[r])
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
            Op::Recv { at_b } => {
                let r = at_b as usize;
                match ends[r].try_recv_bytes_into(&mut buf) {
                    Ok(n) => {
                        assert_eq!(n, buf.len());
                        assert_eq!(Some(&buf), towards[r].front(), "wrong message");
                        towards[r].pop_front();
                    }
                    Err(Error::Empty) => {
                        assert!(towards[r].is_empty(), "message lost");
                        assert!(!eof[1 - r] && !closed[r]);
                    }
                    Err(Error::Closed) => {
                        assert!(closed[r] || (eof[1 - r] && towards[r].is_empty()))
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
            Op::Poll { at_b } => {
                let r = at_b as usize;
                match ends[r].poll(Some(Duration::ZERO)) {
                    Ok(ready) => assert!(ready || towards[r].is_empty()),
                    Err(Error::Closed) => assert!(closed[r]),
                    Err(e) => panic!("poll: {e}"),
                }
            }
            Op::RecvTyped { at_b } => {
                let r = at_b as usize;
                match ends[r].try_recv_typed() {
                    Ok(_) | Err(Error::Corrupt { .. }) => {
                        assert!(towards[r].pop_front().is_some());
                    }
                    Err(Error::Empty) => assert!(towards[r].is_empty()),
                    Err(Error::Closed) => {
                        assert!(closed[r] || (eof[1 - r] && towards[r].is_empty()))
                    }
                    Err(e) => panic!("recv typed: {e}"),
                }
            }
            Op::Close { b } => {
                let e = b as usize;
                ends[e].close();
                if !closed[e] {
                    eof[e] = true;
                }
                closed[e] = true;
            }
        }
    }
});
