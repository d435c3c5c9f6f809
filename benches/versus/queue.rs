//! Rows for the queue section: `Queue<u64>` and `ByteQueue` between processes, against
//! the physical floor (raw SPSC ring, raw spin ping-pong, memcpy) and peers (Python
//! `mp.Queue`, iceoryx2 publish-subscribe, crossbeam `ArrayQueue`, `pipe(2)`).
use crate::common::*;
use multiproc::{ByteQueue, Queue};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Messages for the one-way rate rows.
const N: u64 = 4_000_000;
/// Round trips for the ping-pong rows.
const ROUNDS: u64 = 100_000;

pub fn run(ctx: &mut Ctx) {
    section("queue: Queue<u64> / ByteQueue (MPMC, crash-consistent), between processes");
    let iox = Iceoryx::build();

    // ---- one-way rate, 1 producer process -> 1 consumer process ----
    let ours = best_rate(|| queue_rate(N, false));
    value(
        "Queue<u64> 1 -> 1 process, put/get",
        format!("{}msgs/s", fmt_rate(ours)),
    );
    let batched = best_rate(|| queue_rate(N, true));
    value(
        "Queue<u64> 1 -> 1 process, put_many/get_many (64)",
        format!("{}msgs/s", fmt_rate(batched)),
    );
    ratio(
        "Queue<u64> put/get vs raw SPSC ring floor",
        ours,
        ctx.floor_spsc_rate,
        Goal::AtLeast(0.25),
    );
    ratio(
        "Queue<u64> put_many/get_many vs raw SPSC ring floor",
        batched,
        ctx.floor_spsc_rate,
        Goal::None,
    );
    let py = ctx.python("queue_mp.py", &["100000", "10000"]);
    match py_get(&py, "rate") {
        Some(r) => ratio(
            "Queue<u64> vs Python mp.Queue",
            ours,
            r,
            Goal::AtLeast(100.0),
        ),
        None => value(
            "Queue<u64> vs Python mp.Queue",
            "skipped (no python3)".into(),
        ),
    }
    match iox.run("throughput", N / 2, "rate") {
        Ok(r) => {
            value(
                "iceoryx2 publish-subscribe 1 -> 1",
                format!("{}msgs/s", fmt_rate(r)),
            );
            ratio(
                "Queue<u64> vs iceoryx2 publish-subscribe",
                ours,
                r,
                Goal::AtLeast(5.0),
            );
        }
        Err(why) => value(
            "Queue<u64> vs iceoryx2 publish-subscribe",
            format!("skipped: {why}"),
        ),
    }
    let cb = crossbeam_rate(N);
    ratio(
        "Queue<u64> (2 processes) vs crossbeam ArrayQueue (2 threads)",
        ours,
        cb,
        Goal::AtLeast(1.0),
    );

    // What bounds the single put/get against the floor: the ring alone, in
    // `Queue<u64>`'s 32-byte slots, one producer process and one consumer, with no
    // owner record, tombstone or sleep handshake, run with 0, 1 and 2 locked
    // operations per message on each side. With plain stores it keeps up with the
    // floor's ring or passes it (no shared index to bounce); each locked operation
    // must own its cache line before it completes, so the line misses stop
    // overlapping, and a claim-based MPMC ring pays at least one per side.
    for (bound, locked) in [
        (Locked::None, "plain stores, no locked operation"),
        (Locked::Slot, "one CAS per message on each side (the slot)"),
        (
            Locked::SlotAndIndex,
            "two CASes on each side (slot + index)",
        ),
    ] {
        let rate = best_rate(|| slot_ring_rate(N, bound));
        value(
            &format!("  the ring alone, {locked}"),
            format!("{}msgs/s", fmt_rate(rate)),
        );
        ratio(
            "    vs raw SPSC ring floor",
            rate,
            ctx.floor_spsc_rate,
            Goal::None,
        );
    }

    // The fast path alone, without a second core: what one put + get costs in one
    // thread (locked operations, stores, calls), against crossbeam's one push + pop.
    // Insensitive to the machine's load, unlike the two-party rows.
    let one = best_time(|| queue_one_thread(N));
    value("Queue<u64> put + get, one thread (CPU time)", fmt_dur(one));
    let cb_one = best_time(|| crossbeam_one_thread(N));
    value(
        "crossbeam ArrayQueue push + pop, one thread (CPU time)",
        fmt_dur(cb_one),
    );
    ratio(
        "  Queue<u64> put + get vs crossbeam push + pop (time)",
        one.as_secs_f64(),
        cb_one.as_secs_f64(),
        Goal::None,
    );

    // ---- ping-pong over two queues ----
    let spin = best_time(|| queue_rtt(ROUNDS, Duration::from_secs(2), true));
    value("Queue<u64> ping-pong, spinning get", fmt_dur(spin));
    ratio(
        "  vs raw spin ping-pong floor",
        spin.as_secs_f64(),
        ctx.floor_rtt.as_secs_f64(),
        Goal::AtMost(1.5),
    );
    match iox.run("pingpong", ROUNDS / 2, "rtt_ns") {
        Ok(ns) => {
            value(
                "iceoryx2 ping-pong, spinning",
                fmt_dur(Duration::from_nanos(ns as u64)),
            );
            ratio(
                "  vs iceoryx2 ping-pong",
                spin.as_secs_f64() * 1e9,
                ns,
                Goal::AtMost(0.3),
            );
        }
        Err(why) => value("  vs iceoryx2 ping-pong", format!("skipped: {why}")),
    }
    let blocking = best_time(|| queue_rtt(ROUNDS / 2, Duration::from_secs(2), false));
    value(
        "Queue<u64> ping-pong, blocking get (may sleep)",
        fmt_dur(blocking),
    );
    let pipe = pipe_rtt(ROUNDS / 2);
    value("pipe(2) ping-pong, 8 B", fmt_dur(pipe));
    ratio(
        "  blocking get vs pipe(2) round trip",
        blocking.as_secs_f64(),
        pipe.as_secs_f64(),
        Goal::AtMost(1.0),
    );
    if let Some(ns) = py_get(&py, "rtt_ns") {
        ratio(
            "  blocking get vs Python mp.Queue round trip",
            blocking.as_secs_f64() * 1e9,
            ns,
            Goal::None,
        );
    }

    // ---- scaling: producers x consumers ----
    println!("  scaling, msgs/s (all processes; 2 cores on this machine):");
    println!(
        "  {:<20} {:>12} {:>12} {:>12}",
        "", "1 consumer", "2 consumers", "4 consumers"
    );
    for p in [1, 2, 4] {
        let row: Vec<String> = [1, 2, 4]
            .iter()
            .map(|&c| fmt_rate(scaling_rate(p, c, 500_000)))
            .collect();
        println!(
            "  {:<20} {:>12} {:>12} {:>12}",
            format!("{p} producer{}", if p > 1 { "s" } else { "" }),
            row[0],
            row[1],
            row[2]
        );
    }

    // ---- ByteQueue message sizes ----
    for size in [8usize, 256, 4096, 65536] {
        let bw = byte_rate(size);
        ratio(
            &format!(
                "ByteQueue {:>5} B messages: {}B/s vs memcpy",
                size,
                fmt_rate(bw)
            ),
            bw,
            ctx.memcpy_bw,
            Goal::None,
        );
    }

    claim_recovery(false);
    claim_recovery(true);
}

/// A consumer SIGKILLed while it holds a claimed slot: time until a waiting `get`
/// (another process) has the message delivered again, against glibc's robust mutex.
/// The claimant stalls inside its copy, so the raw ring is used (the handles give no
/// hook inside a copy), over a shared mapping. With `leases` the doomed consumer is
/// the ring's only one and holds the consumers' lease (it makes no claim): the
/// waiting `get` must revoke the lease, find its holder dead, and take the message
/// it left queued.
fn claim_recovery(leases: bool) {
    use crate::sync::{glibc_recovery, recovery_latency_with, recovery_rows};
    use multiproc::raw::queue::{region_words, RawQueue, Ring, TakeWith, WaitPolicy};
    use multiproc::sys::ident::current;
    use std::sync::atomic::AtomicU64;
    const TRIALS: u32 = 20;
    let hdr = std::mem::size_of::<RawQueue>().next_multiple_of(128);
    let n = region_words(4, 1).expect("geometry");
    let map = SharedMap::new(hdr + n * 8 + 128);
    // SAFETY: the mapping is page-aligned, zero-filled (an empty ring), long enough
    // for the header and `n` words, only used atomically, and outlives `ring`.
    let ring = unsafe {
        Ring::new(
            &*(map.ptr() as *const RawQueue),
            std::slice::from_raw_parts(map.ptr().add(hdr) as *const AtomicU64, n),
            4,
            1,
        )
    }
    .expect("ring")
    .with_leases(leases);
    let put = || {
        ring.put(current(), None, &mut WaitPolicy::default(), |p| {
            p[0].store(42, Ordering::Relaxed)
        })
        .expect("put");
    };
    put();
    let ours = recovery_latency_with(
        TRIALS,
        |holding| {
            // The doomed child claims the message and stalls inside the copy.
            let mut take = TakeWith(|_: &[AtomicU64]| {
                holding.store(1, Ordering::SeqCst);
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
            let _ = ring.get(current(), None, &mut WaitPolicy::default(), &mut take);
        },
        || {
            let mut take = TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed));
            let got = ring.get(current(), None, &mut WaitPolicy::default(), &mut take);
            put();
            got == Ok(42)
        },
    );
    let glibc = glibc_recovery(TRIALS);
    let label = if leases {
        "Queue lease holder (sole consumer dies mid-get)"
    } else {
        "Queue claim (consumer dies mid-get)"
    };
    recovery_rows(label, ours, glibc);
}

/// Locked operations per message and side in [`slot_ring_rate`].
#[derive(Clone, Copy, PartialEq)]
enum Locked {
    None,
    Slot,
    SlotAndIndex,
}

/// The ring under the single put/get, stripped: `Queue<u64>`'s 32-byte slots (state,
/// data, two spare words) between two processes. The producer waits for `FREE(lap)`,
/// stores the message and moves the state to `READY(lap)`; the consumer waits for
/// `READY(lap)`, reads, moves it to `FREE(lap + 1)`. Each move is a plain Release
/// store or a CAS, and with [`Locked::SlotAndIndex`] each side also CASes its index
/// forward. No claim names its owner, so nothing survives a crash: a measure of what
/// the locked operations cost, not a queue. Like the floor's ring it spins without
/// ever sleeping, so a run stops after [`FLOOR_BUDGET`] (at a lap's end) if two
/// busy processes share one core.
fn slot_ring_rate(n: u64, locked: Locked) -> f64 {
    const CAP: u64 = 4096;
    const WORDS: usize = 4;
    const READY: u64 = 1;
    let map = SharedMap::new(256 + CAP as usize * WORDS * 8);
    let (head, tail, stop) = (map.atomic(0), map.atomic(128), map.atomic(192));
    // Word `w` of position `p`'s slot: 0 is the state, 1 the message.
    let word = |p: u64, w: usize| map.atomic(256 + ((p % CAP) as usize * WORDS + w) * 8);
    let (state, data) = (|p| word(p, 0), |p| word(p, 1));
    let step = |p: u64, index: &std::sync::atomic::AtomicU64, from: u64, to: u64| {
        if locked == Locked::None {
            state(p).store(to, Ordering::Release);
        } else {
            let moved = state(p).compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed);
            assert!(moved.is_ok());
        }
        if locked == Locked::SlotAndIndex {
            let _ = index.compare_exchange(p, p + 1, Ordering::AcqRel, Ordering::Relaxed);
        }
    };
    let start = Instant::now();
    let peer = fork_peer(|| {
        for p in 0..n {
            let free = (p / CAP) << 1;
            while state(p).load(Ordering::Acquire) != free {
                if stop.load(Ordering::Relaxed) != 0 {
                    return; // stopped while the ring was full
                }
                std::hint::spin_loop();
            }
            data(p).store(p, Ordering::Relaxed);
            step(p, tail, free, free | READY);
        }
    });
    let (mut sum, mut got) = (0u64, 0u64);
    while got < n {
        let p = got;
        let ready = (p / CAP) << 1 | READY;
        while state(p).load(Ordering::Acquire) != ready {
            std::hint::spin_loop();
        }
        sum = sum.wrapping_add(data(p).load(Ordering::Relaxed));
        step(p, head, ready, (p / CAP + 1) << 1);
        got += 1;
        if got % CAP == 0 && start.elapsed() >= FLOOR_BUDGET {
            break;
        }
    }
    let d = start.elapsed();
    stop.store(1, Ordering::Relaxed);
    assert!(peer.join());
    assert_eq!(sum, got * (got - 1) / 2);
    got as f64 / d.as_secs_f64()
}

/// One producer process puts `n` u64s; this process gets them.
fn queue_rate(n: u64, batch: bool) -> f64 {
    let q: Queue<u64> = Queue::anonymous(4096).unwrap();
    let start = Instant::now();
    let peer = fork_peer(|| {
        if batch {
            let mut buf = [0u64; 64];
            let mut i = 0;
            while i < n {
                let k = (n - i).min(64) as usize;
                for (j, b) in buf[..k].iter_mut().enumerate() {
                    *b = i + j as u64;
                }
                q.put_many(&buf[..k]).unwrap();
                i += k as u64;
            }
        } else {
            for i in 0..n {
                q.put(i).unwrap();
            }
        }
    });
    let mut sum = 0u64;
    if batch {
        let mut buf = [0u64; 64];
        let mut got = 0;
        while got < n {
            let k = q.get_many(&mut buf).unwrap();
            sum = buf[..k].iter().fold(sum, |s, v| s.wrapping_add(*v));
            got += k as u64;
        }
    } else {
        for _ in 0..n {
            sum = sum.wrapping_add(q.get().unwrap());
        }
    }
    let d = start.elapsed();
    assert!(peer.join());
    assert_eq!(sum, n * (n - 1) / 2);
    n as f64 / d.as_secs_f64()
}

/// crossbeam `ArrayQueue` between two threads of this process, spinning.
fn crossbeam_rate(n: u64) -> f64 {
    let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(4096));
    let q2 = q.clone();
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        for i in 0..n {
            let mut v = i;
            while let Err(back) = q2.push(v) {
                v = back;
                std::hint::spin_loop();
            }
        }
    });
    let mut sum = 0u64;
    let mut got = 0;
    while got < n {
        match q.pop() {
            Some(v) => {
                sum = sum.wrapping_add(v);
                got += 1;
            }
            None => std::hint::spin_loop(),
        }
    }
    let d = start.elapsed();
    t.join().unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    n as f64 / d.as_secs_f64()
}

/// CPU time of this thread: the one-thread rows count what the thread spent, not
/// the time other processes of a loaded machine took from it.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One put then one get, `n` times, in this thread: CPU time per pair.
fn queue_one_thread(n: u64) -> Duration {
    let q: Queue<u64> = Queue::anonymous(4096).unwrap();
    let t = thread_cpu();
    let mut sum = 0u64;
    for i in 0..n {
        q.put(i).unwrap();
        sum = sum.wrapping_add(q.get().unwrap());
    }
    let d = thread_cpu() - t;
    assert_eq!(sum, n * (n - 1) / 2);
    d / n as u32
}

/// crossbeam `ArrayQueue`: one push then one pop, `n` times, in this thread (CPU
/// time per pair).
fn crossbeam_one_thread(n: u64) -> Duration {
    let q = crossbeam_queue::ArrayQueue::<u64>::new(4096);
    let t = thread_cpu();
    let mut sum = 0u64;
    for i in 0..n {
        q.push(std::hint::black_box(i)).unwrap();
        sum = sum.wrapping_add(q.pop().unwrap());
    }
    let d = thread_cpu() - t;
    assert_eq!(sum, n * (n - 1) / 2);
    d / n as u32
}

/// Round trip of a u64 over two queues between two processes: up to `rounds`, for at
/// most `budget` (spinning on an oversubscribed machine can be very slow).
fn queue_rtt(rounds: u64, budget: Duration, spin: bool) -> Duration {
    const STOP: u64 = u64::MAX;
    let limit = if spin { Some(u32::MAX) } else { None };
    let ping: Queue<u64> = Queue::anonymous(16).unwrap().with_spin_limit(limit);
    let pong: Queue<u64> = Queue::anonymous(16).unwrap().with_spin_limit(limit);
    let peer = fork_peer(|| loop {
        let v = ping.get().unwrap();
        if v == STOP {
            break;
        }
        pong.put(v).unwrap();
    });
    for i in 0..rounds / 10 {
        ping.put(i).unwrap();
        pong.get().unwrap();
    }
    let t = Instant::now();
    let mut done = 0;
    while done < rounds && (done % 1024 != 0 || t.elapsed() < budget) {
        ping.put(done).unwrap();
        assert_eq!(pong.get().unwrap(), done);
        done += 1;
    }
    let d = t.elapsed();
    ping.put(STOP).unwrap();
    assert!(peer.join());
    d / done as u32
}

/// Round trip of 8 bytes over two pipes between two processes.
fn pipe_rtt(rounds: u64) -> Duration {
    let mut a = [0i32; 2];
    let mut b = [0i32; 2];
    // SAFETY: valid out-arrays of two fds each.
    unsafe {
        assert_eq!(libc::pipe(a.as_mut_ptr()), 0);
        assert_eq!(libc::pipe(b.as_mut_ptr()), 0);
    }
    let io = |fd: i32, write: bool, buf: &mut [u8; 8]| {
        // SAFETY: `buf` is valid for 8 bytes; pipes of at most 8-byte messages move
        // them whole.
        let r = unsafe {
            if write {
                libc::write(fd, buf.as_ptr().cast(), 8)
            } else {
                libc::read(fd, buf.as_mut_ptr().cast(), 8)
            }
        };
        assert_eq!(r, 8);
    };
    let warm = rounds / 10;
    let peer = fork_peer(|| {
        let mut buf = [0u8; 8];
        for _ in 0..rounds + warm {
            io(a[0], false, &mut buf);
            io(b[1], true, &mut buf);
        }
    });
    let mut buf = [0u8; 8];
    for _ in 0..warm {
        io(a[1], true, &mut buf);
        io(b[0], false, &mut buf);
    }
    let t = Instant::now();
    for _ in 0..rounds {
        io(a[1], true, &mut buf);
        io(b[0], false, &mut buf);
    }
    let d = t.elapsed();
    assert!(peer.join());
    for fd in a.into_iter().chain(b) {
        // SAFETY: our fds.
        unsafe { libc::close(fd) };
    }
    d / rounds as u32
}

/// `p` producer processes put `n` values in all; `c` consumer processes get them.
fn scaling_rate(p: u64, c: u64, n: u64) -> f64 {
    let q: Queue<u64> = Queue::anonymous(4096).unwrap();
    let got = SharedMap::new(4096);
    let start = Instant::now();
    let producers: Vec<Peer> = (0..p)
        .map(|k| {
            let q = q.clone();
            fork_peer(move || {
                for i in (k..n).step_by(p as usize) {
                    q.put(i).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<Peer> = (0..c)
        .map(|_| {
            let (q, got) = (&q, &got);
            fork_peer(move || {
                let mut mine = 0;
                while q.get().is_ok() {
                    mine += 1;
                }
                got.atomic(0).fetch_add(mine, Ordering::SeqCst);
            })
        })
        .collect();
    for pr in producers {
        assert!(pr.join());
    }
    q.close();
    for co in consumers {
        assert!(co.join());
    }
    let d = start.elapsed();
    assert_eq!(got.atomic(0).load(Ordering::SeqCst), n);
    n as f64 / d.as_secs_f64()
}

/// One producer process puts `size`-byte messages; this process gets them with
/// `get_into` (no allocation). Bytes per second.
fn byte_rate(size: usize) -> f64 {
    let total = 512usize << 20;
    let n = (total / size).min(2_000_000) as u64;
    let cap = ((16usize << 20) / size).clamp(16, 4096);
    let q = ByteQueue::anonymous(cap, size).unwrap();
    let start = Instant::now();
    let peer = fork_peer(|| {
        let msg = vec![0x5au8; size];
        for _ in 0..n {
            q.put(&msg).unwrap();
        }
    });
    let mut buf = vec![0u8; size];
    for _ in 0..n {
        assert_eq!(q.get_into(&mut buf).unwrap(), size);
    }
    let d = start.elapsed();
    assert!(peer.join());
    assert!(buf.iter().all(|&b| b == 0x5a));
    (n as f64 * size as f64) / d.as_secs_f64()
}

/// The iceoryx2 peer: a separate cargo project (benches/peers), built on demand.
struct Iceoryx {
    bin: Result<std::path::PathBuf, String>,
}

impl Iceoryx {
    fn build() -> Iceoryx {
        let root = env!("CARGO_MANIFEST_DIR");
        let manifest = format!("{root}/benches/peers/Cargo.toml");
        let target = format!("{root}/target/peers");
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--quiet",
                "--manifest-path",
                &manifest,
            ])
            .args(["--target-dir", &target])
            .output();
        let bin = match out {
            Ok(o) if o.status.success() => Ok(format!("{target}/release/iox-peer").into()),
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let last = err.lines().rfind(|l| l.contains("error")).unwrap_or("");
                Err(format!("the iceoryx2 peer did not build ({})", last.trim()))
            }
            Err(e) => Err(format!("cannot run cargo to build the iceoryx2 peer: {e}")),
        };
        Iceoryx { bin }
    }

    /// Runs `iox-peer <mode> <n>` and returns the value of `key` it prints. Killed
    /// after a minute (both sides spin: on an oversubscribed machine that can crawl).
    fn run(&self, mode: &str, n: u64, key: &str) -> Result<f64, String> {
        let before = iox_files();
        let r = self.run_peer(mode, n, key);
        // iceoryx2 leaves its node-management files in /dev/shm; remove the ones this
        // run made.
        for f in iox_files().difference(&before) {
            let _ = std::fs::remove_file(format!("/dev/shm/{f}"));
        }
        r
    }

    fn run_peer(&self, mode: &str, n: u64, key: &str) -> Result<f64, String> {
        use std::os::unix::process::CommandExt;
        let bin = self.bin.as_ref().map_err(Clone::clone)?;
        // In a process group of its own: the peer starts a publisher or echo process
        // that spins until it has seen every message, so if the peer dies early
        // (killed on a timeout below, or an error) that one would spin on a core for
        // good. The group is killed while the peer is still an unreaped zombie, so
        // its ID cannot have been reused.
        let mut child = Command::new(bin)
            .args([mode, &n.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run the iceoryx2 peer: {e}"))?;
        let pid = child.id() as libc::pid_t;
        let start = Instant::now();
        let mut timed_out = false;
        loop {
            // Exited (or not ours any more): stop; never reaped here, so the group
            // id below cannot have been reused.
            if multiproc::sys::process::has_exited(pid as u32).unwrap_or(true) {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signals the peer's own process group (nothing left, normally).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        if timed_out {
            let _ = child.wait();
            return Err("the iceoryx2 peer took over 60 s (machine oversubscribed?)".into());
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .next()
            .ok_or_else(|| {
                format!(
                    "the iceoryx2 peer failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                )
            })
    }
}

/// Names in /dev/shm that iceoryx2 made (they start with `iox2_`).
fn iox_files() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("iox2_"))
                .collect()
        })
        .unwrap_or_default()
}
