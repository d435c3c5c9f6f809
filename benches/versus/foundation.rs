//! Rows for the foundation section: named segments, `Value<u64>::fetch_add` across
//! processes, and seqlock reads of `Value<[u64; 8]>` under a concurrent writer.
use crate::common::{
    fmt_dur, fmt_rate, fork_peer, py_get, ratio, section, time_per_op, value, Ctx, Goal, SharedMap,
};
use multiproc::{Segment, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub fn run(ctx: &mut Ctx) {
    section("foundation: segments, Value<T>");
    segment_cycle(ctx);
    gc_over_many(10_000);
    fetch_add_two_processes(ctx);
    seqlock_reads(ctx);
}

/// `Segment::create` + `Segment::open` + drop both (the creator's drop unlinks), against
/// the bare system calls doing the same (the floor) and Python's equivalent. The
/// machine is shared and noisy, so the three are measured in three interleaved rounds
/// and the best round of each is kept.
fn segment_cycle(ctx: &mut Ctx) {
    let base = format!("bench-seg-{}", std::process::id());
    let mut i = 0u64;
    let mut ours = Duration::MAX;
    let mut untracked = Duration::MAX;
    let mut floor = Duration::MAX;
    let mut theirs = f64::MAX;
    let cycle = |i: &mut u64| {
        let name = format!("{base}-{i}");
        *i += 1;
        let s = Segment::create(&name, 4096).unwrap();
        let o = Segment::open(&name).unwrap();
        drop(o);
        drop(s);
    };
    for _ in 0..3 {
        let d = time_per_op(Duration::from_millis(150), || cycle(&mut i));
        ours = ours.min(d);
        // The same without attachment tracking (no OFD read lock, no name re-check):
        // what knowing who holds an object costs.
        multiproc::segment::set_attachment_tracking(false);
        let d = time_per_op(Duration::from_millis(150), || cycle(&mut i));
        multiproc::segment::set_attachment_tracking(true);
        untracked = untracked.min(d);
        let d = time_per_op(Duration::from_millis(150), || {
            let name = std::ffi::CString::new(format!("/{base}-raw-{i}")).unwrap();
            i += 1;
            raw_segment_cycle(&name, 256 + 4096);
        });
        floor = floor.min(d);
        let py = ctx.python("foundation_shm.py", &["1500"]);
        if let Some(t) = py_get(&py, "cycle_s") {
            theirs = theirs.min(t);
        }
    }
    value(
        "Segment create+open+unlink (4 KiB), best of 3",
        format!("{:>10}", fmt_dur(ours)),
    );
    value(
        "  bare syscalls: shm_open/ftruncate/mmap x2, unmap, unlink",
        format!("{:>10}", fmt_dur(floor)),
    );
    value(
        "  the same without attachment tracking (OFD lock + re-check)",
        format!("{:>10}", fmt_dur(untracked)),
    );
    ratio(
        "  with attachment tracking / without",
        ours.as_secs_f64(),
        untracked.as_secs_f64(),
        Goal::AtMost(1.2),
    );
    ratio(
        "  Segment cycle time / bare syscalls' (the floor)",
        ours.as_secs_f64(),
        floor.as_secs_f64(),
        Goal::None,
    );
    if theirs < f64::MAX {
        value(
            "  python SharedMemory(create=True)+attach+unlink, best of 3",
            format!("{:>10}", fmt_dur(Duration::from_secs_f64(theirs))),
        );
        ratio(
            "  Segment cycle time / python's",
            ours.as_secs_f64(),
            theirs,
            Goal::AtMost(0.5),
        );
        ratio(
            "  bare syscalls / python's (no library can do better)",
            floor.as_secs_f64(),
            theirs,
            Goal::None,
        );
    }
}

/// `gc()` over `n` orphans (left by children that create segments and `_exit` without
/// dropping them), and `list()` over the same, per object.
fn gc_over_many(n: usize) {
    let base = format!("bench-gc-{}", std::process::id());
    const PER_CHILD: usize = 500;
    for c in 0..n.div_ceil(PER_CHILD) {
        let base = base.clone();
        let peer = fork_peer(move || {
            let mut keep = Vec::with_capacity(PER_CHILD);
            for k in 0..PER_CHILD.min(n - c * PER_CHILD) {
                keep.push(Segment::create(&format!("{base}-{c}-{k}"), 1).unwrap());
            }
            // SAFETY: leaving without destructors, as a killed creator would.
            unsafe { libc::_exit(0) };
        });
        assert!(peer.join(), "a child creating orphans failed");
    }
    std::thread::sleep(multiproc::segment::GC_MIN_AGE + Duration::from_millis(100));
    let t = Instant::now();
    let listed = multiproc::list().unwrap();
    let list_time = t.elapsed();
    let ours = listed.iter().filter(|i| i.name.starts_with(&base)).count();
    let t = Instant::now();
    let removed = multiproc::gc().unwrap();
    let gc_time = t.elapsed();
    let mine = removed.iter().filter(|r| r.starts_with(&base)).count();
    if (ours, mine) != (n, n) {
        // Another process's gc ran meanwhile: the per-object figures still hold.
        println!("  (of {n} orphans made here, {ours} were listed and {mine} collected here)");
    }
    value(
        &format!("list() over {} objects, per object", listed.len()),
        format!("{:>10}", fmt_dur(list_time / listed.len() as u32)),
    );
    value(
        &format!("gc() removing {} orphans, per object", removed.len()),
        format!("{:>10}", fmt_dur(gc_time / removed.len().max(1) as u32)),
    );
}

/// The least a create+attach+unlink cycle costs the kernel: create and size the file,
/// map it and touch it, open it again, learn its size, map and read it, unmap and
/// close both, unlink. No validation, no header, no ownership check.
fn raw_segment_cycle(name: &std::ffi::CStr, len: usize) {
    // SAFETY: plain system calls on descriptors and mappings made and released here;
    // every result is checked before use.
    unsafe {
        let flags =
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd = libc::shm_open(name.as_ptr(), flags, 0o600);
        assert!(fd >= 0, "shm_open failed");
        assert_eq!(libc::ftruncate(fd, len as libc::off_t), 0);
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let p = libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0);
        assert!(p != libc::MAP_FAILED);
        p.cast::<u8>().write_volatile(1);
        let fd2 = libc::shm_open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        );
        assert!(fd2 >= 0, "shm_open failed");
        let mut st: libc::stat = std::mem::zeroed();
        assert_eq!(libc::fstat(fd2, &mut st), 0);
        let size = st.st_size as usize;
        let q = libc::mmap(std::ptr::null_mut(), size, prot, libc::MAP_SHARED, fd2, 0);
        assert!(q != libc::MAP_FAILED);
        assert_eq!(q.cast::<u8>().read_volatile(), 1);
        libc::munmap(q, size);
        libc::close(fd2);
        libc::munmap(p, len);
        libc::close(fd);
        libc::shm_unlink(name.as_ptr());
    }
}

/// Two forked processes `fetch_add(1)` the same named `Value<u64>` at full speed.
fn fetch_add_two_processes(ctx: &mut Ctx) {
    const N: u64 = 2_000_000;
    let name = format!("bench-fa-{}", std::process::id());
    let v: Value<u64> = Value::create(&name, 0).unwrap();
    let map = SharedMap::new(4096);
    let (go, done) = (map.atomic(0), map.atomic(128));
    // Each peer's start and end (CLOCK_MONOTONIC ns), to report how much they overlapped.
    let spans: Vec<_> = (0..4).map(|i| map.atomic(256 + 8 * i)).collect();
    let peers: Vec<_> = (0..2)
        .map(|k| {
            let name = name.clone();
            let (start, end) = (spans[2 * k], spans[2 * k + 1]);
            fork_peer(move || {
                let v: Value<u64> = Value::open(&name).unwrap();
                while go.load(Ordering::Acquire) == 0 {
                    std::hint::spin_loop();
                }
                start.store(now_ns(), Ordering::Relaxed);
                for _ in 0..N {
                    v.fetch_add(1);
                }
                end.store(now_ns(), Ordering::Relaxed);
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    go.store(1, Ordering::Release);
    while done.load(Ordering::Acquire) < 2 {
        std::thread::sleep(Duration::from_micros(50));
    }
    let d = t.elapsed();
    for p in peers {
        p.join();
    }
    assert_eq!(v.get(), 2 * N);
    let ours = (2 * N) as f64 / d.as_secs_f64();
    let ns: Vec<u64> = spans.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    let overlap = ns[1].min(ns[3]).saturating_sub(ns[0].max(ns[2])) as f64;
    let longest = (ns[1] - ns[0]).max(ns[3] - ns[2]).max(1) as f64;
    value(
        "Value<u64>::fetch_add, 2 processes, one counter",
        format!(
            "{:>10}ops/s (the two ran concurrently {:.0}% of the time)",
            fmt_rate(ours),
            100.0 * overlap / longest
        ),
    );
    let py = ctx.python("foundation_value.py", &["200000"]);
    if let Some(theirs) = py_get(&py, "rate") {
        value(
            "  python mp.Value += 1 under get_lock(), 2 processes",
            format!("{:>10}ops/s", fmt_rate(theirs)),
        );
        ratio(
            "  fetch_add rate / python's",
            ours,
            theirs,
            Goal::AtLeast(50.0),
        );
    }
}

/// Reads of a 64-byte value while another process rewrites it as fast as it can.
fn seqlock_reads(ctx: &mut Ctx) {
    const BUDGET: Duration = Duration::from_millis(500);
    let v: Value<[u64; 8]> = Value::anonymous([0; 8]).unwrap();
    let map = SharedMap::new(4096);
    let stop = map.atomic(0);
    let writes = map.atomic(128);
    let vw = v.clone();
    let peer = fork_peer(move || {
        let mut k = 1u64;
        while stop.load(Ordering::Relaxed) == 0 {
            vw.set([k; 8]);
            k += 1;
        }
        writes.store(k - 1, Ordering::Release);
    });
    // Let the writer get going, then read for the budget.
    while v.get()[0] == 0 {
        std::hint::spin_loop();
    }
    let (mut reads, mut changes, mut last) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    while t.elapsed() < BUDGET {
        for _ in 0..256 {
            let x = std::hint::black_box(v.get());
            assert!(x.iter().all(|&w| w == x[0]), "torn read {x:?}");
            changes += u64::from(x[0] != last);
            last = x[0];
        }
        reads += 256;
    }
    let d = t.elapsed();
    stop.store(1, Ordering::Relaxed);
    peer.join();
    let ours = reads as f64 / d.as_secs_f64();
    let wrote = writes.load(Ordering::Acquire) as f64 / d.as_secs_f64();
    value(
        "Value<[u64; 8]> seqlock get, another process writing",
        format!(
            "{:>10}reads/s (writer: {}writes/s, {changes} changes seen)",
            fmt_rate(ours),
            fmt_rate(wrote)
        ),
    );
    let floor = raw_eight_word_reads(BUDGET);
    value(
        "  floor: 8 raw atomic loads, another process storing",
        format!("{:>10}reads/s (may be torn)", fmt_rate(floor)),
    );
    ratio("  seqlock read rate / floor", ours, floor, Goal::None);
    let py = ctx.python("foundation_array.py", &["0.5"]);
    if let Some(theirs) = py_get(&py, "rate") {
        value(
            "  python mp.Array('Q', 8)[:] under get_lock(), writer running",
            format!("{:>10}reads/s", fmt_rate(theirs)),
        );
        ratio("  seqlock read rate / python's", ours, theirs, Goal::None);
    }
}

fn now_ns() -> u64 {
    multiproc::sys::clock::Instant::now().as_nanos()
}

/// The same traffic with no consistency at all: 8 relaxed loads against 8 relaxed
/// stores of another process.
fn raw_eight_word_reads(budget: Duration) -> f64 {
    let map = SharedMap::new(4096);
    let stop = map.atomic(0);
    let words: Vec<_> = (0..8).map(|i| map.atomic(128 + 8 * i)).collect();
    let ww = words.clone();
    let peer = fork_peer(move || {
        let mut k = 1u64;
        while stop.load(Ordering::Relaxed) == 0 {
            for w in &ww {
                w.store(k, Ordering::Relaxed);
            }
            k += 1;
        }
    });
    let mut reads = 0u64;
    let mut sink = 0u64;
    let t = Instant::now();
    while t.elapsed() < budget {
        for _ in 0..256 {
            for w in &words {
                sink = sink.wrapping_add(w.load(Ordering::Relaxed));
            }
        }
        reads += 256;
    }
    let d = t.elapsed();
    std::hint::black_box(sink);
    stop.store(1, Ordering::Relaxed);
    peer.join();
    reads as f64 / d.as_secs_f64()
}
