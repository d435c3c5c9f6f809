//! Rows for the pipe section: `Pipe` round trips and bandwidth, and the `SpscQueue`
//! stream, against the physical floor, Python's `mp.Pipe`, `pipe(2)` and a Unix
//! socketpair.
use crate::common::{
    best_rate, best_time, fmt_dur, fmt_rate, fork_peer, py_get, ratio, section, value, Ctx, Goal,
};
use multiproc::{Pipe, SpscQueue};
use std::time::{Duration, Instant};

pub fn run(ctx: &mut Ctx) {
    section("pipe: SpscQueue stream, Pipe round trips and bandwidth");
    spsc_stream(ctx);
    let pipe2 = os_rtt(OsKind::Pipe, 20_000);
    let socketpair = os_rtt(OsKind::SocketPair, 20_000);
    value(
        "pipe(2) 8 B round trip (blocking read/write)",
        fmt_dur(pipe2),
    );
    value(
        "socketpair 8 B round trip (blocking read/write)",
        fmt_dur(socketpair),
    );
    ping_pong_spinning(ctx, pipe2, socketpair);
    ping_pong_blocking(pipe2, socketpair);
    bandwidth(ctx, 1 << 20, 256);
    bandwidth(ctx, 64 << 20, 6);
    peer_death();
}

/// A peer SIGKILLed while this process's `recv` waits: time until the `recv` fails
/// with `Closed`, against glibc's robust mutex. An end whose peer died is closed for
/// good, so every trial gets a new pipe; the parent drops its copy of the child's end
/// (a copy held here could still take the end over, so it would keep the pipe open).
fn peer_death() {
    use crate::sync::{glibc_recovery, recovery_latency, recovery_rows};
    use std::cell::RefCell;
    const TRIALS: u32 = 20;
    let fresh = || {
        let (a, b) = Pipe::new(4096).expect("pipe");
        (a, Some(b))
    };
    let pair = RefCell::new(fresh());
    let ours = recovery_latency(
        TRIALS,
        // The doomed child takes end b by sending on it.
        || {
            let mut p = pair.borrow_mut();
            p.1.as_mut()
                .expect("end b")
                .send_bytes(b"hi")
                .expect("send");
        },
        || {
            let mut p = pair.borrow_mut();
            p.1 = None;
            assert_eq!(p.0.recv_bytes().expect("recv"), b"hi");
            let closed = matches!(p.0.recv_bytes(), Err(multiproc::Error::Closed));
            *p = fresh();
            closed
        },
    );
    let glibc = glibc_recovery(TRIALS);
    recovery_rows("Pipe peer (blocked recv)", ours, glibc);
}

/// `SpscQueue<u64>`, one item per put/get, producer in a forked process: the same
/// shape as the floor's raw ring (4096 slots, 20 M items).
fn spsc_stream(ctx: &Ctx) {
    let rate = best_rate(spsc_rate);
    value(
        "SpscQueue<u64> put/get, 2 processes",
        format!("{} msgs/s", fmt_rate(rate)),
    );
    ratio(
        "  vs raw SPSC ring floor",
        rate,
        ctx.floor_spsc_rate,
        Goal::AtLeast(0.7),
    );
}

/// One run of [`spsc_stream`]: msgs/s.
fn spsc_rate() -> f64 {
    const N: u64 = 20_000_000;
    let (mut tx, mut rx) = SpscQueue::<u64>::anonymous(4096).expect("spsc queue");
    let start = Instant::now();
    let peer = fork_peer(move || {
        for i in 0..N {
            tx.put(i).expect("put");
        }
    });
    let mut sum = 0u64;
    for _ in 0..N {
        sum = sum.wrapping_add(rx.get().expect("get"));
    }
    let d = start.elapsed();
    assert!(peer.join(), "producer failed");
    assert_eq!(sum, N * (N - 1) / 2);
    N as f64 / d.as_secs_f64()
}

/// Round trips of an 8-byte message; the peer echoes. `spin` receives with
/// `try_recv_bytes_into` in a loop (never sleeps); otherwise `recv_bytes_into` (spins
/// briefly, then sleeps on a futex).
fn pipe_rtt(rounds: u64, spin: bool) -> Duration {
    let (mut a, mut b) = Pipe::new(4096).expect("pipe");
    let warm = rounds / 10;
    let peer = fork_peer(move || {
        let mut buf = Vec::with_capacity(64);
        for _ in 0..warm + rounds {
            if spin {
                while b.try_recv_bytes_into(&mut buf).is_err() {
                    std::hint::spin_loop();
                }
            } else {
                b.recv_bytes_into(&mut buf).expect("recv");
            }
            b.send_bytes(&buf).expect("send");
        }
    });
    let msg = 0x0123_4567_89ab_cdefu64.to_le_bytes();
    let mut buf = Vec::with_capacity(64);
    let mut t = Instant::now();
    for i in 0..warm + rounds {
        if i == warm {
            t = Instant::now();
        }
        a.send_bytes(&msg).expect("send");
        if spin {
            while a.try_recv_bytes_into(&mut buf).is_err() {
                std::hint::spin_loop();
            }
        } else {
            a.recv_bytes_into(&mut buf).expect("recv");
        }
    }
    let d = t.elapsed();
    assert!(peer.join(), "echo peer failed");
    assert_eq!(buf, msg);
    d / rounds as u32
}

fn ping_pong_spinning(ctx: &Ctx, pipe2: Duration, socketpair: Duration) {
    let rtt = best_time(|| pipe_rtt(100_000, true));
    value("Pipe 8 B round trip, spinning recv", fmt_dur(rtt));
    let r = rtt.as_secs_f64();
    ratio(
        "  vs raw spin ping-pong floor",
        r,
        ctx.floor_rtt.as_secs_f64(),
        Goal::AtMost(1.5),
    );
    let py = ctx.python("pipe_pingpong.py", &["20000"]);
    match py_get(&py, "rtt_ns") {
        Some(ns) => ratio("  vs Python mp.Pipe", r, ns * 1e-9, Goal::AtMost(0.01)),
        None => value("  vs Python mp.Pipe", "skipped (no python3)".into()),
    }
    ratio("  vs pipe(2)", r, pipe2.as_secs_f64(), Goal::None);
    ratio("  vs socketpair", r, socketpair.as_secs_f64(), Goal::None);
}

fn ping_pong_blocking(pipe2: Duration, socketpair: Duration) {
    let rtt = best_time(|| pipe_rtt(20_000, false));
    value(
        "Pipe 8 B round trip, blocking recv (may sleep)",
        fmt_dur(rtt),
    );
    let r = rtt.as_secs_f64();
    ratio("  vs pipe(2)", r, pipe2.as_secs_f64(), Goal::AtMost(1.0));
    ratio("  vs socketpair", r, socketpair.as_secs_f64(), Goal::None);
}

/// One-way bytes/s of `count` messages of `len` bytes, received into a reused buffer.
fn bandwidth(ctx: &Ctx, len: usize, count: usize) {
    let (mut a, mut b) = Pipe::new(1 << 20).expect("pipe");
    let peer = fork_peer(move || {
        let msg = vec![0x5au8; len];
        for _ in 0..count + 1 {
            b.send_bytes(&msg).expect("send");
        }
    });
    let mut buf = Vec::with_capacity(len);
    // The first message warms the pages of the ring and of `buf`.
    a.recv_bytes_into(&mut buf).expect("recv");
    let t = Instant::now();
    for _ in 0..count {
        assert_eq!(a.recv_bytes_into(&mut buf).expect("recv"), len);
    }
    let d = t.elapsed();
    assert!(peer.join(), "sender failed");
    let bw = (len * count) as f64 / d.as_secs_f64();
    let label = if len >= 1 << 20 {
        format!("Pipe {} MiB messages, one way", len >> 20)
    } else {
        format!("Pipe {len} B messages, one way")
    };
    value(&label, format!("{}B/s", fmt_rate(bw)));
    ratio(
        "  vs memcpy bandwidth",
        bw,
        ctx.memcpy_bw,
        Goal::AtLeast(0.5),
    );
}

#[derive(Clone, Copy)]
enum OsKind {
    Pipe,
    SocketPair,
}

/// 8-byte round trips over two `pipe(2)`s or one Unix socketpair, blocking I/O.
fn os_rtt(kind: OsKind, rounds: u64) -> Duration {
    // fds: [parent reads, child writes, child reads, parent writes]
    let mut fds = [0i32; 4];
    // SAFETY: each call fills two fds of the array.
    unsafe {
        match kind {
            OsKind::Pipe => {
                assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
                assert_eq!(libc::pipe(fds.as_mut_ptr().add(2)), 0);
            }
            OsKind::SocketPair => {
                let mut sv = [0i32; 2];
                assert_eq!(
                    libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()),
                    0
                );
                fds = [sv[0], sv[1], sv[1], sv[0]];
            }
        }
    }
    let (p_read, c_write, c_read, p_write) = (fds[0], fds[1], fds[2], fds[3]);
    let warm = rounds / 10;
    let peer = fork_peer(move || {
        let mut b = [0u8; 8];
        for _ in 0..warm + rounds {
            // SAFETY: valid fds and an 8-byte buffer.
            unsafe {
                read_full(c_read, &mut b);
                libc::write(c_write, b.as_ptr().cast(), 8);
            }
        }
    });
    let mut b = [7u8; 8];
    let mut t = Instant::now();
    for i in 0..warm + rounds {
        if i == warm {
            t = Instant::now();
        }
        // SAFETY: as above.
        unsafe {
            libc::write(p_write, b.as_ptr().cast(), 8);
            read_full(p_read, &mut b);
        }
    }
    let d = t.elapsed();
    assert!(peer.join());
    let mut all: Vec<i32> = fds.to_vec();
    all.sort();
    all.dedup();
    for fd in all {
        // SAFETY: our fds.
        unsafe { libc::close(fd) };
    }
    d / rounds as u32
}

/// Reads exactly `b.len()` bytes.
///
/// # Safety
/// `fd` is a readable descriptor.
unsafe fn read_full(fd: i32, b: &mut [u8]) {
    let mut got = 0;
    while got < b.len() {
        // SAFETY: in bounds of `b`.
        let r = unsafe { libc::read(fd, b.as_mut_ptr().add(got).cast(), b.len() - got) };
        assert!(r > 0, "read failed");
        got += r as usize;
    }
}
