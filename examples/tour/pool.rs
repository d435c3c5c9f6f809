//! Tour section: pool — `Process` (exit codes, daemons, no zombies) and `Pool`
//! (map/imap, failures that never hang, terminate), with measured figures.

use crate::common::section;
use multiproc::sys::ident::{proc_state, ProcState};
use multiproc::{Error, Pool, Process, ProcessBuilder, Segment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn cube(n: u64) -> u64 {
    n * n * n
}

fn panics_on_3(x: u32) -> u32 {
    assert!(x != 3, "task {x} refuses");
    x
}

fn kill_myself(_: ()) -> u32 {
    // SAFETY: SIGKILL to our own process (a pool worker).
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    0
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn echo_len(v: Vec<u8>) -> Vec<u8> {
    v
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}k tasks/s", n as f64 / d.as_secs_f64() / 1e3)
}

pub fn run() -> multiproc::Result<()> {
    section("pool: Process and Pool");

    // Process: Python's exit codes.
    let codes: Vec<i32> = [
        Process::fork(|| {})?,
        Process::fork(|| 3)?,
        Process::fork(|| -> i32 {
            std::panic::set_hook(Box::new(|_| {})); // keep the tour's output short
            panic!("boom")
        })?,
    ]
    .iter()
    .map(|p| p.join())
    .collect::<multiproc::Result<_>>()?;
    let sleeper = || std::thread::sleep(Duration::from_secs(60));
    let (t, k) = (Process::fork(sleeper)?, Process::fork(sleeper)?);
    t.terminate()?;
    k.kill()?;
    println!(
        "  Process exit codes: return -> {}, return 3 -> {}, panic -> {}, terminate -> {}, kill -> {}",
        codes[0],
        codes[1],
        codes[2],
        t.join()?,
        k.join()?
    );
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let s = Instant::now();
            Process::fork(|| {})
                .and_then(|p| p.join())
                .map(|_| s.elapsed())
        })
        .collect::<multiproc::Result<_>>()?;
    times.sort();
    println!(
        "  Process::fork + join of an empty child: {} (median of 50)",
        ms(times[25])
    );

    // A daemon dies with its parent, even when the parent is SIGKILLed.
    let seg = Segment::anonymous(8)?;
    // SAFETY: 8 bytes, 128-aligned, used atomically.
    let cell = unsafe { &*(seg.as_ptr() as *const AtomicU64) };
    let parent = Process::fork(|| {
        let d = ProcessBuilder::new()
            .daemon(true)
            .fork(sleeper)
            .map(|d| d.pid());
        cell.store(u64::from(d.unwrap_or(0)), Ordering::SeqCst);
        sleeper();
    })?;
    while cell.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let daemon = cell.load(Ordering::SeqCst);
    parent.kill()?;
    parent.join()?;
    let s = Instant::now();
    // Gone: no longer running (dead, or a zombie waiting for init to reap it).
    while proc_state(daemon as u32) != ProcState::Gone && s.elapsed().as_secs() < 5 {
        std::thread::sleep(Duration::from_micros(200));
    }
    println!(
        "  daemon child gone {} after its parent was SIGKILLed",
        ms(s.elapsed())
    );

    // Pool: Python's map, faster.
    let pool = Pool::new(2)?;
    println!(
        "  Pool(2).map(cube, [1, 2, 3, 4]) -> {:?}",
        pool.map(cube, [1, 2, 3, 4])?
    );
    pool.map_chunked(cube, 0..1000, 1)?;
    let s = Instant::now();
    pool.map_chunked(cube, 0..100_000, 1)?;
    let one = s.elapsed();
    let s = Instant::now();
    pool.map(cube, 0..100_000)?;
    println!(
        "  map over 100k items: chunksize 1 {}, default chunking {}",
        rate(100_000, one),
        rate(100_000, s.elapsed())
    );
    let lazy: Vec<u64> = pool
        .imap(cube, 1u64..)?
        .take(5)
        .collect::<multiproc::Result<_>>()?;
    println!("  imap over an endless iterator, first 5: {lazy:?}");
    let big = vec![7u8; 8 << 20];
    let s = Instant::now();
    let back = pool.apply(echo_len, big)?;
    println!(
        "  an 8 MiB argument and result (4 KiB messages, in pieces): {} round trip",
        ms(s.elapsed())
    );
    assert_eq!(back.len(), 8 << 20);

    // Failures: a panicking task, a worker killed mid-task.
    let results: Vec<_> = pool.imap(panics_on_3, 0..5)?.collect();
    let failed: Vec<usize> = (0..5).filter(|&i| results[i].is_err()).collect();
    if let Some(Err(Error::TaskFailed { message })) = results.get(3) {
        println!("  imap with a panicking task: items {failed:?} fail ({message})");
    }
    let s = Instant::now();
    let died = pool.apply(kill_myself, ());
    let after = pool.map(cube, 0..10)?;
    println!(
        "  a worker SIGKILLed mid-task: {}; replaced, pool back to work in {} ({} results)",
        died.err().map_or("no error?".into(), |e| e.to_string()),
        ms(s.elapsed()),
        after.len()
    );

    // terminate with work pending returns at once.
    let pending: Vec<_> = (0..8)
        .map(|_| pool.apply_async(sleep_ms, 10_000))
        .collect::<multiproc::Result<_>>()?;
    let s = Instant::now();
    pool.terminate();
    let closed = pending
        .iter()
        .filter(|r| matches!(r.get(), Err(Error::Closed)))
        .count();
    println!(
        "  terminate() with 8 ten-second tasks pending: returned in {}, {closed} tasks -> Err(Closed)",
        ms(s.elapsed())
    );
    Ok(())
}
