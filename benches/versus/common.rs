//! Shared bench machinery: forked peers, the physical floor, Python, and row printing
//! (every printed row is also recorded, see `record.rs`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The floor measured at start-up plus the environment.
pub struct Ctx {
    /// Raw atomic spin ping-pong round trip between two processes.
    pub floor_rtt: Duration,
    /// Raw Lamport SPSC ring of u64 between two processes, messages per second.
    pub floor_spsc_rate: f64,
    /// Single-threaded memcpy bandwidth, bytes per second (64 MiB copies).
    pub memcpy_bw: f64,
    /// `python3`, if it runs.
    pub python: Option<String>,
}

impl Ctx {
    pub fn new() -> Ctx {
        let python = std::process::Command::new("python3")
            .arg("-c")
            .arg("import multiprocessing")
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| "python3".to_owned());
        // The floor is the best of three: on a shared VM a single run can land both
        // processes on one core and report a "floor" slower than real traffic.
        Ctx {
            floor_rtt: best_time(|| floor_ping_pong(200_000, FLOOR_BUDGET)),
            floor_spsc_rate: best_rate(|| floor_spsc(20_000_000, FLOOR_BUDGET)),
            memcpy_bw: memcpy_bandwidth(),
            python,
        }
    }

    pub fn print_floor(&self) {
        section(&format!(
            "physical floor (measured in this run, best of {BEST_OF})"
        ));
        println!("   (every row set against the floor is the best of {BEST_OF} runs too)");
        value(
            "raw spin ping-pong, 2 processes",
            format!("{:>10} per round trip", fmt_dur(self.floor_rtt)),
        );
        value(
            "raw SPSC u64 ring, 2 processes",
            format!("{:>10} msgs/s", fmt_rate(self.floor_spsc_rate)),
        );
        value(
            "memcpy, 64 MiB",
            format!("{:>10}B/s", fmt_rate(self.memcpy_bw)),
        );
        match &self.python {
            Some(_) => println!("  python3: found (multiprocessing rows will run)"),
            None => println!("  python3: not found — Python rows are skipped"),
        }
    }

    /// Runs `benches/versus/py/<script>` with `args`; parses `key value` lines.
    /// `None` (with a printed reason) when python3 is missing or the script fails.
    pub fn python(&self, script: &str, args: &[&str]) -> Option<Vec<(String, f64)>> {
        let py = self.python.as_ref()?;
        let path = format!("{}/benches/versus/py/{script}", env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new(py)
            .arg(&path)
            .args(args)
            .output()
            .ok()?;
        if !out.status.success() {
            println!(
                "  (python script {script} failed: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    let k = it.next()?.to_owned();
                    let v = it.next()?.parse().ok()?;
                    Some((k, v))
                })
                .collect(),
        )
    }
}

/// Looks a key up in parsed python output.
pub fn py_get(rows: &Option<Vec<(String, f64)>>, key: &str) -> Option<f64> {
    rows.as_ref()?
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
}

/// Which direction is better for a ratio.
#[derive(Clone, Copy)]
pub enum Goal {
    /// ours/theirs must be at most this (times: lower is better).
    AtMost(f64),
    /// ours/theirs must be at least this (rates: higher is better).
    AtLeast(f64),
    /// Informational.
    None,
}

/// Prints a section heading.
pub fn section(title: &str) {
    crate::record::begin_section(title);
    println!();
    println!("== {title}");
}

/// Prints a measurement (and records it, see [`crate::record`]).
pub fn value(label: &str, text: String) {
    let before = crate::record::value(label, &text);
    println!("  {label:<58} {text}{before}");
}

/// Prints `ours / theirs` as a ratio with its goal.
pub fn ratio(label: &str, ours: f64, theirs: f64, goal: Goal) {
    let r = ours / theirs;
    let verdict = match goal {
        Goal::AtMost(g) => format!(" (goal <= {g}x: {})", if r <= g { "met" } else { "MISSED" }),
        Goal::AtLeast(g) => format!(" (goal >= {g}x: {})", if r >= g { "met" } else { "MISSED" }),
        Goal::None => String::new(),
    };
    let text = format!("{}{verdict}", fmt_ratio(r));
    let before = crate::record::ratio(label, r, goal, &text);
    println!("  {label:<58} {text}{before}");
}

/// A ratio printed with sensible precision: 0.031x, 1.52x, 312x.
pub fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("{r:.4}x")
    }
}

pub fn fmt_dur(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 1e9 {
        format!("{:.2} G", r / 1e9)
    } else if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.1} ")
    }
}

/// An anonymous shared mapping of `len` bytes, inherited by forked children.
pub struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a MAP_SHARED mapping; all access goes through atomics or raw pointers.
unsafe impl Send for SharedMap {}
// SAFETY: as above.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    pub fn new(len: usize) -> SharedMap {
        // SAFETY: anonymous shared mapping, no fd.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "mmap failed");
        SharedMap {
            ptr: ptr.cast(),
            len,
        }
    }
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
    /// The u64 atomic at byte offset `off` (8-aligned, in bounds).
    pub fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.len);
        // SAFETY: in bounds, aligned, and only ever accessed atomically.
        unsafe { &*(self.ptr.add(off) as *const AtomicU64) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A forked peer process; joined (or killed) on drop.
pub struct Peer {
    pid: libc::pid_t,
}

/// Forks a peer that runs `f` and exits.
pub fn fork_peer(f: impl FnOnce()) -> Peer {
    // SAFETY: the child only runs `f` and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
        // SAFETY: end the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    Peer { pid }
}

impl Peer {
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }
    pub fn join(self) -> bool {
        let mut st = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(self.pid, &mut st, 0) };
        let ok = libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0;
        std::mem::forget(self);
        ok
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let mut st = 0;
        // SAFETY: our child; kill then reap.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, &mut st, 0);
        }
    }
}

/// Runs of a measurement kept for a row set against the floor: the floor and our
/// rows get the same treatment, so scheduling noise (both processes landing on one
/// core for a run) does not favour either side.
pub const BEST_OF: usize = 3;

/// The highest of [`BEST_OF`] runs of a rate.
pub fn best_rate(mut f: impl FnMut() -> f64) -> f64 {
    (0..BEST_OF).map(|_| f()).fold(0.0, f64::max)
}

/// The shortest of [`BEST_OF`] runs of a time.
pub fn best_time(mut f: impl FnMut() -> Duration) -> Duration {
    (0..BEST_OF).map(|_| f()).min().unwrap_or_default()
}

/// How long one run of a floor measurement may take. On a quiet machine every run
/// finishes its count well within it (20 M ring messages in about 1.4 s, 200 k round
/// trips in about 0.3 s), so the floor is measured exactly as before; on an
/// oversubscribed one two spinning processes can share a core and crawl (one run took
/// 20 s) and the messages done by then give the figure. A 0.5 s budget measured a
/// lower ring rate than a full run in 3 of 4 interleaved pairs, so the budget stays
/// above a quiet run's length rather than cutting it.
pub const FLOOR_BUDGET: Duration = Duration::from_secs(2);

/// The ball's value that tells the floor's peer to stop.
const STOP: u64 = u64::MAX;

/// Raw spin ping-pong: the ball goes 2i -> 2i+1 (peer) -> 2i+2 (us), for `rounds`
/// round trips or about `budget`, whichever ends first.
pub fn floor_ping_pong(rounds: u64, budget: Duration) -> Duration {
    let map = SharedMap::new(4096);
    let ball = map.atomic(0);
    let peer = fork_peer(|| {
        let mut i = 0;
        loop {
            match ball.load(Ordering::Acquire) {
                STOP => break,
                v if v == 2 * i + 1 => {
                    ball.store(2 * i + 2, Ordering::Release);
                    i += 1;
                }
                _ => std::hint::spin_loop(),
            }
        }
    });
    let t = Instant::now();
    let mut done = rounds;
    for i in 0..rounds {
        ball.store(2 * i + 1, Ordering::Release);
        while ball.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
        if i % 64 == 63 && t.elapsed() >= budget {
            done = i + 1;
            break;
        }
    }
    let d = t.elapsed();
    ball.store(STOP, Ordering::Release);
    peer.join();
    d / done as u32
}

/// Raw Lamport SPSC ring of u64 with cached indices, producer in a forked peer: the
/// rate of `n` messages or of those received in about `budget`, whichever ends first.
pub fn floor_spsc(n: u64, budget: Duration) -> f64 {
    const CAP: u64 = 4096;
    // head at 0, tail at 128, stop at 192, slots from 256
    let map = SharedMap::new(256 + CAP as usize * 8);
    let head = map.atomic(0);
    let tail = map.atomic(128);
    let stop = map.atomic(192);
    let slots = map.ptr() as usize + 256;
    let start = Instant::now();
    let peer = fork_peer(|| {
        let mut t = 0u64;
        let mut cached_head = 0u64;
        while t < n {
            if t - cached_head == CAP {
                loop {
                    cached_head = head.load(Ordering::Acquire);
                    if t - cached_head < CAP || stop.load(Ordering::Relaxed) != 0 {
                        break;
                    }
                    std::hint::spin_loop();
                }
                if t - cached_head == CAP {
                    return; // stopped while the ring was full
                }
            }
            let slot = (slots + ((t % CAP) * 8) as usize) as *const AtomicU64;
            // SAFETY: in bounds of the mapping.
            unsafe { &*slot }.store(t, Ordering::Relaxed);
            t += 1;
            tail.store(t, Ordering::Release);
        }
    });
    let mut h = 0u64;
    let mut cached_tail = 0u64;
    let mut sum = 0u64;
    while h < n {
        if h == cached_tail {
            loop {
                cached_tail = tail.load(Ordering::Acquire);
                if cached_tail > h {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let slot = (slots + ((h % CAP) * 8) as usize) as *const AtomicU64;
        // SAFETY: in bounds of the mapping.
        sum = sum.wrapping_add(unsafe { &*slot }.load(Ordering::Relaxed));
        h += 1;
        head.store(h, Ordering::Release);
        if h % CAP == 0 && start.elapsed() >= budget {
            break;
        }
    }
    let d = start.elapsed();
    stop.store(1, Ordering::Relaxed);
    peer.join();
    assert_eq!(sum, h * (h - 1) / 2);
    h as f64 / d.as_secs_f64()
}

/// memcpy bandwidth over 64 MiB buffers (best of 5).
pub fn memcpy_bandwidth() -> f64 {
    let n = 64 << 20;
    let src = vec![7u8; n];
    let mut dst = vec![0u8; n];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    n as f64 / best
}

/// Median of a set of durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs `f` repeatedly for about `budget`, returning the mean time per call.
pub fn time_per_op(budget: Duration, mut f: impl FnMut()) -> Duration {
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let d = t.elapsed();
        if d >= budget {
            return d / n as u32;
        }
        n *= 2;
    }
}
