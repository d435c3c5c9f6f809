//! `Pool`: results in order, laziness, failures of tasks and workers, shutdown, and
//! no process left behind.
#![cfg(all(feature = "std", not(loom)))]

mod common;
use common::*;
use multiproc::process::default_chunksize;
use multiproc::sys::ident::{proc_state, ProcState};
use multiproc::{Error, Pool, Segment};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

fn cube(n: u64) -> u64 {
    n * n * n
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn fma(a: i64, b: i64, c: i64) -> i64 {
    a * b + c
}

fn panics_on_7(x: u32) -> u32 {
    if x == 7 {
        panic!("boom {x}");
    }
    x
}

fn my_pid(_: u32) -> u32 {
    std::process::id()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Marks word 0 of the named segment, then sleeps: lets a test know the task started.
fn mark_then_sleep(name: String) -> u32 {
    let seg = Segment::open(&name).unwrap();
    // SAFETY: an 8-byte segment, accessed atomically.
    let w = unsafe { &*(seg.as_ptr() as *const AtomicU64) };
    w.store(u64::from(std::process::id()), Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(30));
    0
}

fn kill_myself(_: ()) -> u32 {
    // SAFETY: SIGKILL to our own process.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    0
}

fn bytes_len_and_echo(v: Vec<u8>) -> (usize, Vec<u8>) {
    let n = v.len();
    (n, v.into_iter().rev().collect())
}

#[test]
fn map_cube_gives_1_8_27_64() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        assert_eq!(pool.map(cube, [1, 2, 3, 4]).unwrap(), [1, 8, 27, 64]);
        assert_eq!(
            pool.map(cube, Vec::<u64>::new()).unwrap(),
            Vec::<u64>::new()
        );
    });
}

#[test]
fn results_come_back_in_order_for_10k_items() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        let want: Vec<u64> = (0..10_000).map(cube).collect();
        assert_eq!(pool.map(cube, 0..10_000).unwrap(), want);
        assert_eq!(pool.map_chunked(cube, 0..10_000, 1).unwrap(), want);
        assert_eq!(pool.map_chunked(cube, 0..10_000, 777).unwrap(), want);
        let ordered: Vec<u64> = pool
            .imap(cube, 0..10_000)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ordered, want);
    });
}

#[test]
fn default_chunksize_is_pythons() {
    // ceil(len / (4 * workers)), at least 1.
    assert_eq!(default_chunksize(4, 2), 1);
    assert_eq!(default_chunksize(100, 2), 13);
    assert_eq!(default_chunksize(100_000, 2), 12_500);
    assert_eq!(default_chunksize(0, 4), 1);
}

#[test]
fn starmap_unpacks_argument_tuples() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        assert_eq!(
            pool.starmap(add, [(1, 2), (3, 4), (-5, 5)]).unwrap(),
            [3, 7, 0]
        );
        assert_eq!(
            pool.starmap3(fma, [(2, 3, 1), (4, 5, -20)]).unwrap(),
            [7, 0]
        );
    });
}

#[test]
fn imap_reads_its_input_lazily() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        let pulled = Arc::new(AtomicUsize::new(0));
        let p = pulled.clone();
        // An endless input: Python's imap would try to read all of it first.
        let input = (0u64..).inspect(move |_| {
            p.fetch_add(1, Ordering::Relaxed);
        });
        let first: Vec<u64> = pool
            .imap(cube, input)
            .unwrap()
            .take(10)
            .map(Result::unwrap)
            .collect();
        assert_eq!(first, (0..10).map(cube).collect::<Vec<_>>());
        let n = pulled.load(Ordering::Relaxed);
        // At most a window and a bit per worker is read ahead, never the whole input.
        assert!((10..=10 + 2 * 258).contains(&n), "read {n} items ahead");
    });
}

#[test]
fn imap_unordered_yields_every_item_exactly_once() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        let mut got: Vec<u64> = pool
            .imap_unordered(cube, 0..2_000)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..2_000).map(cube).collect::<Vec<_>>());
        let mut chunked: Vec<u64> = pool
            .imap_unordered_chunked(cube, 0..2_000, 64)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        chunked.sort_unstable();
        assert_eq!(chunked, got);
    });
}

/// An absurdly large timeout waits for the result instead of panicking on `Instant`
/// overflow.
#[test]
fn get_and_wait_timeout_of_duration_max_wait_instead_of_panicking() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(1).unwrap();
        let r = pool.apply_async(cube, 3).unwrap();
        assert!(r.wait_timeout(Duration::MAX));
        assert_eq!(r.get_timeout(Duration::MAX).unwrap(), 27);
    });
}

#[test]
fn a_panicking_task_fails_only_itself() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        let results: Vec<_> = pool.imap(panics_on_7, 0..20).unwrap().collect();
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v as usize, i),
                Err(Error::TaskFailed { message }) => {
                    assert_eq!(i, 7);
                    assert!(message.contains("boom 7"), "{message}");
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
        // map reports the failure; the pool keeps working.
        assert!(matches!(
            pool.map(panics_on_7, 0..20),
            Err(Error::TaskFailed { .. })
        ));
        let r = pool.apply_async(panics_on_7, 7).unwrap();
        assert!(matches!(r.get(), Err(Error::TaskFailed { .. })));
        assert_eq!(r.successful(), Some(false));
        assert_eq!(pool.apply(panics_on_7, 8).unwrap(), 8);
    });
}

#[test]
fn a_worker_killing_itself_fails_its_task_and_is_replaced() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        let before = pool.pids();
        let r = pool.apply_async(kill_myself, ()).unwrap();
        let dead = match r.get() {
            Err(Error::WorkerDied { pid }) => pid,
            other => panic!("expected WorkerDied, got {other:?}"),
        };
        assert!(before.contains(&dead));
        // The pool goes on, with a new worker in place of the dead one.
        assert_eq!(
            pool.map(cube, 0..100).unwrap(),
            (0..100).map(cube).collect::<Vec<_>>()
        );
        assert!(wait_until(Duration::from_secs(10), || {
            let now = pool.pids();
            now.len() == 2 && !now.contains(&dead)
        }));
    });
}

#[test]
fn a_killed_worker_fails_its_running_task_and_queued_tasks_run_elsewhere() {
    watchdog(WATCHDOG, || {
        let name = unique("pool-mark");
        let seg = Segment::create(&name, 8).unwrap();
        // SAFETY: 8 bytes, accessed atomically.
        let mark = unsafe { &*(seg.as_ptr() as *const AtomicU64) };
        let pool = Pool::new(1).unwrap();
        let long = pool.apply_async(mark_then_sleep, name.clone()).unwrap();
        let quick: Vec<_> = (0..5).map(|x| pool.apply_async(cube, x).unwrap()).collect();
        assert!(wait_until(WATCHDOG, || mark.load(Ordering::SeqCst) != 0));
        let pid = mark.load(Ordering::SeqCst) as u32;
        // SAFETY: `pid` is the pool's worker, a child of this process.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        assert!(matches!(long.get(), Err(Error::WorkerDied { pid: p }) if p == pid));
        for (x, r) in quick.iter().enumerate() {
            assert_eq!(r.get().unwrap(), cube(x as u64));
        }
    });
}

#[test]
fn terminate_with_tasks_pending_returns_promptly() {
    watchdog(Duration::from_secs(20), || {
        let pool = Pool::new(2).unwrap();
        let results: Vec<_> = (0..20)
            .map(|_| pool.apply_async(sleep_ms, 10_000).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let pids = pool.pids();
        pool.terminate();
        for r in &results {
            assert!(matches!(r.get(), Err(Error::Closed)));
            assert!(r.ready());
        }
        for pid in pids {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "worker {pid} left behind"
            );
        }
        assert!(matches!(pool.apply_async(cube, 1), Err(Error::Closed)));
    });
}

#[test]
fn close_then_join_finishes_submitted_work() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        assert!(matches!(pool.join(), Err(Error::InvalidArgument { .. })));
        let results: Vec<_> = (0..6)
            .map(|x| pool.apply_async(sleep_ms, 20 + x).unwrap())
            .collect();
        pool.close();
        assert!(matches!(pool.apply_async(cube, 1), Err(Error::Closed)));
        assert!(matches!(pool.map(cube, [1]), Err(Error::Closed)));
        pool.join().unwrap();
        for (x, r) in results.iter().enumerate() {
            assert!(r.ready());
            assert_eq!(r.get().unwrap(), 20 + x as u64);
        }
        assert!(pool.pids().is_empty());
    });
}

#[test]
fn async_result_reports_readiness_and_times_out() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(1).unwrap();
        let slow = pool.apply_async(sleep_ms, 300).unwrap();
        assert!(!slow.ready());
        assert_eq!(slow.successful(), None);
        assert!(matches!(
            slow.get_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        assert!(!slow.wait_timeout(Duration::from_millis(1)));
        slow.wait();
        assert!(slow.ready());
        assert_eq!(slow.successful(), Some(true));
        // get may be called again.
        assert_eq!(slow.get().unwrap(), 300);
        assert_eq!(slow.get_timeout(Duration::ZERO).unwrap(), 300);
    });
}

#[test]
fn initializer_runs_in_every_worker_before_tasks() {
    static INITIALISED: AtomicU64 = AtomicU64::new(0);
    fn read_init(_: u32) -> u64 {
        INITIALISED.load(Ordering::SeqCst)
    }
    watchdog(WATCHDOG, || {
        let pool = Pool::builder()
            .workers(2)
            .initializer(|| INITIALISED.store(42, Ordering::SeqCst))
            .build()
            .unwrap();
        assert!(pool
            .map_chunked(read_init, 0..50, 1)
            .unwrap()
            .iter()
            .all(|&v| v == 42));
        // Not in this process: only in the workers.
        assert_eq!(INITIALISED.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_panicking_initializer_breaks_the_pool_instead_of_hanging() {
    watchdog(WATCHDOG, || {
        let pool = Pool::builder()
            .workers(2)
            .initializer(|| panic!("no database"))
            .build()
            .unwrap();
        match pool.map(cube, 0..10) {
            Err(Error::TaskFailed { message }) => {
                assert!(message.contains("no database"), "{message}")
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        assert!(pool.apply(cube, 2).is_err());
    });
}

#[test]
fn maxtasksperchild_replaces_workers() {
    watchdog(WATCHDOG, || {
        let pool = Pool::builder()
            .workers(1)
            .maxtasksperchild(2)
            .build()
            .unwrap();
        let pids: Vec<u32> = (0..6).map(|x| pool.apply(my_pid, x).unwrap()).collect();
        let mut distinct = pids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{pids:?}");
        assert_eq!(pool.map_chunked(cube, 0..20, 1).unwrap().len(), 20);
    });
}

#[test]
fn large_arguments_and_results_travel_in_pieces() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        let inputs: Vec<Vec<u8>> = (0..4u8)
            .map(|k| {
                (0..(1usize << 20) + 3)
                    .map(|i| (i as u8).wrapping_mul(k + 1))
                    .collect()
            })
            .collect();
        let out = pool
            .map_chunked(bytes_len_and_echo, inputs.clone(), 1)
            .unwrap();
        for (i, (n, rev)) in out.into_iter().enumerate() {
            assert_eq!(n, inputs[i].len());
            assert!(rev.iter().eq(inputs[i].iter().rev()));
        }
        // Tiny messages: every argument and result is cut into many pieces.
        let tiny = Pool::builder()
            .workers(2)
            .max_message_len(64)
            .build()
            .unwrap();
        let v: Vec<Vec<u8>> = (0..20).map(|k| vec![k; 1000 + k as usize]).collect();
        let out = tiny.map(bytes_len_and_echo, v.clone()).unwrap();
        for (i, (n, rev)) in out.into_iter().enumerate() {
            assert_eq!((n, rev), (v[i].len(), v[i].clone()));
        }
    });
}

#[test]
fn dropping_the_pool_kills_its_workers() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        let _pending = pool.apply_async(sleep_ms, 10_000).unwrap();
        let pids = pool.pids();
        assert_eq!(pids.len(), 2);
        drop(pool);
        for pid in pids {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "worker {pid} left behind"
            );
        }
    });
}

#[test]
fn workers_die_when_the_pool_process_is_killed() {
    if role().as_deref() == Some("pool-owner") {
        let pool = Pool::new(2).unwrap();
        let _r = pool.apply_async(sleep_ms, 30_000).unwrap();
        let pids: Vec<String> = pool.pids().iter().map(u32::to_string).collect();
        println!("pids {}", pids.join(" "));
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "workers_die_when_the_pool_process_is_killed",
            "--nocapture",
        ])
        .env(ROLE, "pool-owner")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = owner.stdout.take().unwrap();
    let pids: Vec<u32> = watchdog(WATCHDOG, move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("owner printed no pids").unwrap();
            if let Some(rest) = line.strip_prefix("pids ") {
                return rest.split(' ').map(|p| p.parse().unwrap()).collect();
            }
        }
    });
    assert_eq!(pids.len(), 2);
    let owner_pid = owner.id();
    owner.kill().unwrap();
    owner.wait().unwrap();
    for pid in pids {
        assert!(
            wait_until(Duration::from_secs(10), || proc_state(pid)
                == ProcState::Gone),
            "worker {pid} outlived its pool's process"
        );
    }
    // A pool started with Spawn or ForkServer (the default here: the harness has
    // threads) keeps its queues under names, which the killed owner could not unlink.
    let prefix = format!("multiproc-pool-{owner_pid}-");
    for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_prefix("mp.").filter(|n| n.starts_with(&prefix)) {
            multiproc::unlink(name).unwrap();
        }
    }
}

#[test]
fn no_zombie_processes_are_left_behind() {
    if role().as_deref() == Some("pool-zombies") {
        let pool = Pool::new(2).unwrap();
        pool.map(cube, 0..1000).unwrap();
        // A dead worker is reaped and replaced.
        let _ = pool.apply(kill_myself, ());
        pool.map(cube, 0..1000).unwrap();
        let recycled = Pool::builder()
            .workers(1)
            .maxtasksperchild(1)
            .build()
            .unwrap();
        for x in 0..5 {
            recycled.apply(cube, x).unwrap();
        }
        pool.close();
        pool.join().unwrap();
        let t = Pool::new(2).unwrap();
        let _r = t.apply_async(sleep_ms, 10_000).unwrap();
        t.terminate();
        drop(Pool::new(2).unwrap());
        drop(recycled);
        // Every pool is closed, terminated or dropped: its workers exit and are reaped.
        assert!(no_children_left(
            std::process::id(),
            Duration::from_secs(10)
        ));
        return;
    }
    let child = spawn_self("no_zombie_processes_are_left_behind", "pool-zombies");
    let (code, out) = wait_self(child, WATCHDOG);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("children left: []"), "{out}");
}

#[test]
fn workers_start_even_while_another_thread_panics() {
    // A worker forked while another thread holds the panic machinery's locks must not
    // need them to start (it used to install its panic hook after the fork).
    watchdog(WATCHDOG, || {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let panicker = std::thread::spawn(move || {
            let mut n = 0u32;
            while !s.load(Ordering::Relaxed) {
                let _ = std::panic::catch_unwind(|| panic!("background panic {n}"));
                n += 1;
            }
            n
        });
        // maxtasksperchild(1): a fork for every task.
        let pool = Pool::builder()
            .workers(2)
            .maxtasksperchild(1)
            .build()
            .unwrap();
        let got = pool.map_chunked(cube, 0..100, 1).unwrap();
        stop.store(true, Ordering::Relaxed);
        assert!(panicker.join().unwrap() > 0);
        assert_eq!(got, (0..100).map(cube).collect::<Vec<_>>());
    });
}

/// Bytes serialized as one byte string (not element by element, as `Vec<u8>` is):
/// large payloads then cost what copying them costs.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Bytes(#[serde(with = "serde_bytes")] Vec<u8>);

/// A payload of `len` bytes that differs at every position from its neighbours.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8) ^ ((i >> 8) as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Each byte + 1, and the length as a trailing 8 bytes: a result the worker made.
fn plus_one(b: Bytes) -> Bytes {
    let n = b.0.len() as u64;
    let mut out: Vec<u8> = b.0.into_iter().map(|x| x.wrapping_add(1)).collect();
    out.extend_from_slice(&n.to_le_bytes());
    Bytes(out)
}

fn expect_plus_one(input: &[u8], out: &Bytes) {
    assert_eq!(out.0.len(), input.len() + 8, "result length");
    assert_eq!(&out.0[input.len()..], &(input.len() as u64).to_le_bytes());
    let bad = input
        .iter()
        .zip(&out.0)
        .position(|(a, b)| a.wrapping_add(1) != *b);
    assert_eq!(bad, None, "first wrong byte of the result");
}

#[test]
fn arguments_and_results_of_8_and_64_mib_round_trip_with_every_start_method() {
    use multiproc::StartMethod;
    watchdog(Duration::from_secs(120), || {
        for m in [
            StartMethod::Fork,
            StartMethod::Spawn,
            StartMethod::ForkServer,
        ] {
            let pool = Pool::builder().workers(2).start_method(m).build().unwrap();
            for (len, seed) in [(8 << 20, 1u8), (64 << 20, 2), ((8 << 20) + 5, 3)] {
                let input = pattern(len, seed);
                let out = pool.apply(plus_one, Bytes(input.clone())).unwrap();
                expect_plus_one(&input, &out);
            }
            // Several large chunks in flight at once, on both workers, in order.
            let inputs: Vec<Vec<u8>> = (0..6).map(|k| pattern(3 << 20, k)).collect();
            let outs = pool
                .map_chunked(plus_one, inputs.iter().cloned().map(Bytes), 1)
                .unwrap();
            for (i, o) in inputs.iter().zip(&outs) {
                expect_plus_one(i, o);
            }
            // Small tasks around them still take the quick path.
            assert_eq!(
                pool.map(cube, 0..1000).unwrap(),
                (0..1000).map(cube).collect::<Vec<_>>(),
                "{m:?}"
            );
        }
    });
}

/// Names of this pool owner's blobs of worker results (`{base}-r{sender}-{seq}`) in
/// /dev/shm; the base is `multiproc-pool-{owner}-{n}-{hex}`.
fn result_blobs(owner: u32) -> Vec<String> {
    let prefix = format!("mp.multiproc-pool-{owner}-");
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| {
            f.starts_with(&prefix)
                && f.split('-').nth(5).is_some_and(|p| {
                    p.len() > 1
                        && p.starts_with('r')
                        && p[1..].bytes().all(|b| b.is_ascii_hexdigit())
                })
        })
        .collect()
}

/// Returns `len` bytes, after starting a thread that SIGKILLs this worker as soon as
/// its result blob appears (the worker is then writing it: mid-transfer). Counts
/// its runs in the segment `counter`.
fn big_result_then_die(arg: (String, u32, usize)) -> Bytes {
    let (counter, owner, len) = arg;
    let seg = Segment::open(&counter).unwrap();
    // SAFETY: 8 bytes, accessed atomically.
    let runs = unsafe { &*(seg.as_ptr() as *const AtomicU64) };
    runs.fetch_add(1, Ordering::SeqCst);
    std::thread::spawn(move || loop {
        if !result_blobs(owner).is_empty() {
            // SAFETY: signals our own process.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        std::thread::yield_now();
    });
    Bytes(pattern(len, 9))
}

#[test]
fn a_worker_killed_while_sending_a_large_result_fails_its_chunk_and_leaves_no_blob() {
    const NAME: &str =
        "a_worker_killed_while_sending_a_large_result_fails_its_chunk_and_leaves_no_blob";
    if role().as_deref() == Some("blob-owner") {
        let counter = unique("pool-blob-runs");
        let seg = Segment::create(&counter, 8).unwrap();
        // SAFETY: 8 bytes, accessed atomically.
        let runs = unsafe { &*(seg.as_ptr() as *const AtomicU64) };
        let pool = Pool::new(2).unwrap();
        let owner = std::process::id();
        let r = pool.apply(big_result_then_die, (counter.clone(), owner, 64 << 20));
        let pid = match r {
            Err(Error::WorkerDied { pid }) => pid,
            other => panic!("expected WorkerDied, got {:?}", other.map(|b| b.0.len())),
        };
        // Its blob is gone as soon as the death was settled.
        assert_eq!(result_blobs(owner), Vec::<String>::new());
        // Run once, never again elsewhere.
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The pool goes on, large payloads included.
        let input = pattern(8 << 20, 4);
        expect_plus_one(&input, &pool.apply(plus_one, Bytes(input.clone())).unwrap());
        assert_eq!(
            pool.map(cube, 0..100).unwrap(),
            (0..100).map(cube).collect::<Vec<_>>()
        );
        assert!(!pool.pids().contains(&pid));
        drop(pool);
        println!("done");
        return;
    }
    let child = spawn_self(NAME, "blob-owner");
    let owner = child.id();
    let (code, out) = wait_self(child, WATCHDOG);
    // Whatever the owner left (nothing, if it passed) is removed before asserting.
    let prefix = format!("mp.multiproc-pool-{owner}-");
    let mut left = Vec::new();
    for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = file
            .strip_prefix("mp.")
            .filter(|_| file.starts_with(&prefix))
        {
            left.push(name.to_owned());
            let _ = multiproc::unlink(name);
        }
    }
    assert_eq!(
        (code, out.contains("done")),
        (0, true),
        "owner output: {out}"
    );
    assert_eq!(left, Vec::<String>::new(), "names the pool left behind");
}

#[test]
fn many_small_tasks_between_large_ones_stay_correct() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        let big = pattern(1 << 20, 5);
        let bigs: Vec<_> = (0..4)
            .map(|_| pool.apply_async(plus_one, Bytes(big.clone())).unwrap())
            .collect();
        let small = pool.map_chunked(cube, 0..20_000, 1).unwrap();
        assert_eq!(small, (0..20_000).map(cube).collect::<Vec<_>>());
        for r in bigs {
            expect_plus_one(&big, &r.get().unwrap());
        }
        // Just under and just over the size that switches to shared segments.
        for len in [
            (64 << 10) - 64,
            (64 << 10) - 1,
            64 << 10,
            (64 << 10) + 1,
            100_000,
        ] {
            let input = pattern(len, 6);
            expect_plus_one(&input, &pool.apply(plus_one, Bytes(input.clone())).unwrap());
        }
    });
}

#[test]
fn a_large_result_read_in_place_stays_intact_while_its_worker_writes_newer_ones() {
    watchdog(WATCHDOG, || {
        // One worker: every result goes through the same worker's result area, which
        // an unread AsyncResult holds (its result is decoded from there, in place).
        let pool = Pool::new(1).unwrap();
        let inputs: Vec<Vec<u8>> = (0..4).map(|i| pattern((1 << 20) + i, i as u8)).collect();
        let held: Vec<_> = inputs
            .iter()
            .map(|b| {
                let r = pool.apply_async(plus_one, Bytes(b.clone())).unwrap();
                r.wait();
                r
            })
            .collect();
        // Newer results, each written while all the older ones are held.
        for (i, input) in inputs.iter().enumerate() {
            expect_plus_one(input, &pool.apply(plus_one, Bytes(input.clone())).unwrap());
            expect_plus_one(&inputs[i], &held[i].get().unwrap());
        }
        // Read twice, after all that: still the worker's bytes for each.
        for (input, r) in inputs.iter().zip(&held) {
            expect_plus_one(input, &r.get().unwrap());
        }
        drop(held);
        // Released: the worker goes on (reusing its area) with results intact.
        for input in &inputs {
            expect_plus_one(input, &pool.apply(plus_one, Bytes(input.clone())).unwrap());
        }
        let two = pool
            .map(plus_one, inputs.iter().map(|b| Bytes(b.clone())))
            .unwrap();
        for (input, out) in inputs.iter().zip(&two) {
            expect_plus_one(input, out);
        }
    });
}

#[test]
fn unread_results_on_both_sides_of_the_hold_threshold_stay_intact_in_any_order() {
    watchdog(WATCHDOG, || {
        // One worker, so every result goes through one result area: results under
        // 1 MiB are copied out of it at once, longer ones are held there by their
        // unread outcome (and the worker moves on to a new generation, or to
        // pieces for a short result written while a long one is held).
        let pool = Pool::new(1).unwrap();
        let sizes = [
            200 << 10,
            (1 << 20) + 5,
            100 << 10,
            (1 << 20) - 64,
            (1 << 20) - 8,
            3 << 20,
            (64 << 10) + 100,
            2 << 20,
        ];
        let inputs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| pattern(n, i as u8))
            .collect();
        let pending: Vec<_> = inputs
            .iter()
            .map(|b| pool.apply_async(plus_one, Bytes(b.clone())).unwrap())
            .collect();
        // Read newest first, each twice.
        for (input, r) in inputs.iter().zip(&pending).rev() {
            expect_plus_one(input, &r.get().unwrap());
            expect_plus_one(input, &r.get().unwrap());
        }
        drop(pending);
        let again = pool
            .map(plus_one, inputs.iter().map(|b| Bytes(b.clone())))
            .unwrap();
        for (input, out) in inputs.iter().zip(&again) {
            expect_plus_one(input, out);
        }
    });
}

/// Sizes around every boundary a payload crosses: empty, one byte, each length whose
/// task or result message is just under, at or just over the 64 KiB that moves it
/// from the queue into a shared area, a few MiB, and a size that makes both areas
/// grow after they served smaller messages.
fn boundary_sizes() -> Vec<usize> {
    let mut sizes = vec![0, 1, 4095, 4096, 4097];
    // The messages add 24 to 40 bytes of framing to the payload: sweep all of them.
    sizes.extend((64 << 10) - 48..=(64 << 10) + 8);
    sizes.extend([(1 << 20) + 3, 3 << 20, 12 << 20]);
    sizes
}

#[test]
fn payloads_of_every_boundary_size_round_trip_exactly_through_fork_and_spawn_pools() {
    use multiproc::StartMethod;
    watchdog(Duration::from_secs(240), || {
        for m in [StartMethod::Fork, StartMethod::Spawn] {
            let pool = Pool::builder().workers(2).start_method(m).build().unwrap();
            for (k, len) in boundary_sizes().into_iter().enumerate() {
                // A byte string (one bulk copy each way) ...
                let input = pattern(len, k as u8);
                let out = pool.apply(plus_one, Bytes(input.clone()));
                expect_plus_one(&input, &out.unwrap_or_else(|e| panic!("{m:?} {len}: {e}")));
                // ... and a Vec<u8>, which serde writes one element at a time.
                let (n, rev) = pool.apply(bytes_len_and_echo, input.clone()).unwrap();
                assert_eq!(n, len, "{m:?}");
                assert!(
                    rev.iter().eq(input.iter().rev()),
                    "{m:?} {len}: bytes differ"
                );
            }
            // Large ones in flight on both workers at once come back in order.
            let inputs: Vec<Vec<u8>> = (0..5).map(|k| pattern((2 << 20) + k, k as u8)).collect();
            let outs = pool
                .map_chunked(plus_one, inputs.iter().cloned().map(Bytes), 1)
                .unwrap();
            for (i, o) in inputs.iter().zip(&outs) {
                expect_plus_one(i, o);
            }
        }
    });
}

/// Serializes as a 1 MiB byte string followed by a field that refuses to serialize:
/// fails midway, after more than 64 KiB were written.
#[derive(Debug)]
struct FailsMidway;

impl serde::Serialize for FailsMidway {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeTuple};
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Bytes(vec![0xAB; 1 << 20]))?;
        t.serialize_element(&Refuses)?;
        let _ = t.end();
        Err(S::Error::custom("unreachable: Refuses always fails"))
    }
}

struct Refuses;

impl serde::Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this field refuses to serialize"))
    }
}

impl<'de> serde::Deserialize<'de> for FailsMidway {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<FailsMidway, D::Error> {
        Err(serde::de::Error::custom("never sent"))
    }
}

/// A large result for odd `k`, one that fails midway through serialization for even.
fn large_or_failing(k: u32) -> Result<Bytes, FailsMidway> {
    if k % 2 == 1 {
        Ok(Bytes(pattern((1 << 20) + k as usize, k as u8)))
    } else {
        Err(FailsMidway)
    }
}

fn make_fails_midway(_: u32) -> FailsMidway {
    FailsMidway
}

#[test]
fn a_payload_whose_serialization_fails_midway_fails_alone_and_the_pool_goes_on() {
    watchdog(WATCHDOG, || {
        let pool = Pool::new(2).unwrap();
        // postcard keeps no custom message, only that serde refused.
        let refused = |m: &str| m.contains("could not serialize") && m.contains("Serde");
        // An argument: refused before anything is submitted.
        match pool.apply(|_: FailsMidway| 0u8, FailsMidway) {
            Err(Error::InvalidArgument { detail }) => assert!(refused(&detail), "{detail}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        // A result, alone and in the middle of a chunk whose other results are large:
        // only that item fails, with the reason; its neighbours arrive intact.
        match pool.apply(make_fails_midway, 0) {
            Err(Error::TaskFailed { message }) => assert!(refused(&message), "{message}"),
            other => panic!("expected TaskFailed, got {:?}", other.map(|_| ())),
        }
        let got: Vec<_> = pool
            .imap_chunked(large_or_failing, 0..6, 3)
            .unwrap()
            .collect();
        assert_eq!(got.len(), 6);
        for (k, r) in got.into_iter().enumerate() {
            match (k % 2, r) {
                (1, Ok(Ok(b))) => assert_eq!(b.0, pattern((1 << 20) + k, k as u8), "item {k}"),
                (0, Err(Error::TaskFailed { message })) => {
                    assert!(refused(&message), "item {k}: {message}")
                }
                (_, other) => panic!("item {k}: {:?}", other.map(|r| r.map(|b| b.0.len()))),
            }
        }
        // The areas are in a usable state afterwards.
        let input = pattern(5 << 20, 7);
        expect_plus_one(&input, &pool.apply(plus_one, Bytes(input.clone())).unwrap());
    });
}

#[test]
fn more_large_arguments_than_argument_areas_still_round_trip_in_order() {
    watchdog(WATCHDOG, || {
        // 2 workers have 10 argument areas: the other 10 arguments wait in private
        // memory and go through the workers' own task areas.
        let pool = Pool::new(2).unwrap();
        let inputs: Vec<Vec<u8>> = (0..20).map(|k| pattern(200_000 + k, k as u8)).collect();
        for _ in 0..2 {
            let outs = pool
                .map_chunked(plus_one, inputs.iter().cloned().map(Bytes), 1)
                .unwrap();
            assert_eq!(outs.len(), inputs.len());
            for (i, o) in inputs.iter().zip(&outs) {
                expect_plus_one(i, o);
            }
        }
    });
}

/// Counts its runs in segment `.0` (word 0) and records its pid (word 1), then
/// sleeps: a task with a large argument that a test kills while it runs.
fn big_argument_then_sleep(arg: (String, Bytes)) -> usize {
    let seg = Segment::open(&arg.0).unwrap();
    // SAFETY: 16 bytes, accessed atomically.
    let words = unsafe { &*(seg.as_ptr() as *const [AtomicU64; 2]) };
    words[0].fetch_add(1, Ordering::SeqCst);
    words[1].store(u64::from(std::process::id()), Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(30));
    arg.1 .0.len()
}

#[test]
fn a_worker_killed_holding_a_large_argument_fails_that_chunk_once_and_leaves_no_area() {
    // (and the result areas outgrown while a result is written leave no name either)
    const NAME: &str =
        "a_worker_killed_holding_a_large_argument_fails_that_chunk_once_and_leaves_no_area";
    if role().as_deref() == Some("arg-owner") {
        let counter = unique("pool-arg-runs");
        let seg = Segment::create(&counter, 16).unwrap();
        // SAFETY: 16 bytes, accessed atomically.
        let words = unsafe { &*(seg.as_ptr() as *const [AtomicU64; 2]) };
        let pool = Pool::new(1).unwrap();
        let doomed = pool
            .apply_async(
                big_argument_then_sleep,
                (counter.clone(), Bytes(pattern(8 << 20, 1))),
            )
            .unwrap();
        // Queued behind it, holding its own argument area meanwhile.
        let input = pattern(3 << 20, 2);
        let next = pool.apply_async(plus_one, Bytes(input.clone())).unwrap();
        assert!(wait_until(WATCHDOG, || words[1].load(Ordering::SeqCst) != 0));
        let pid = words[1].load(Ordering::SeqCst) as i32;
        // SAFETY: SIGKILL to the worker running the task.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        match doomed.get() {
            Err(Error::WorkerDied { pid: p }) => assert_eq!(p as i32, pid),
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        expect_plus_one(&input, &next.get().unwrap());
        assert_eq!(
            words[0].load(Ordering::SeqCst),
            1,
            "runs of the killed task"
        );
        // A Vec<u8> result is written byte by byte: a fresh worker's result area
        // grows several times while it is written, and the outgrown ones must go too.
        let fresh = Pool::new(1).unwrap();
        let input = pattern(6 << 20, 3);
        let (n, rev) = fresh.apply(bytes_len_and_echo, input.clone()).unwrap();
        assert!(n == input.len() && rev.iter().eq(input.iter().rev()));
        drop(fresh);
        drop((doomed, next));
        drop(pool);
        let prefix = format!("mp.multiproc-pool-{}-", std::process::id());
        let left: Vec<String> = std::fs::read_dir("/dev/shm")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&prefix))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "areas left behind");
        println!("done");
        return;
    }
    let child = spawn_self(NAME, "arg-owner");
    let owner = child.id();
    let (code, out) = wait_self(child, WATCHDOG);
    let prefix = format!("mp.multiproc-pool-{owner}-");
    for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = file
            .strip_prefix("mp.")
            .filter(|_| file.starts_with(&prefix))
        {
            let _ = multiproc::unlink(name);
        }
    }
    assert_eq!(
        (code, out.contains("done")),
        (0, true),
        "owner output: {out}"
    );
}
