//! Rows for the pool section: `Pool::map` throughput and `Process::fork` + `join`
//! latency, against Python's `multiprocessing` (fork start method) in the same run.
use crate::common::{fmt_dur, fmt_rate, py_get, ratio, section, value, Ctx, Goal};
use multiproc::{Pool, Process};
use std::time::{Duration, Instant};

const N: u64 = 100_000;

fn cube(x: u64) -> u64 {
    x * x * x
}

/// Best tasks/s of `rounds` maps of `N` items.
fn best_rate(rounds: usize, mut map: impl FnMut() -> usize) -> f64 {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let n = map();
            assert_eq!(n as u64, N);
            N as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

pub fn run(ctx: &mut Ctx) {
    section("pool: Pool(2).map over 100k trivial tasks, Process fork + join");
    // Fork + join of a child that does nothing (first, while this process is small).
    let rounds = 200;
    let t = Instant::now();
    for _ in 0..rounds {
        let p = Process::fork(|| {}).expect("fork");
        assert_eq!(p.join().expect("join"), 0);
    }
    let fork_join = t.elapsed() / rounds;

    let pool = Pool::new(2).expect("Pool::new(2)");
    pool.map_chunked(cube, 0..1000, 1).expect("warm-up map");
    let chunk1 = best_rate(2, || pool.map_chunked(cube, 0..N, 1).expect("map").len());
    let default = best_rate(5, || pool.map(cube, 0..N).expect("map").len());
    drop(pool);

    let py = ctx.python("pool_map.py", &[&N.to_string()]);
    value(
        "Pool(2).map, chunksize 1 (multiproc)",
        format!("{}tasks/s", fmt_rate(chunk1)),
    );
    match py_get(&py, "map_chunk1_rate") {
        Some(theirs) => {
            value(
                "Pool(2).map(chunksize=1) (Python)",
                format!("{}tasks/s", fmt_rate(theirs)),
            );
            ratio(
                "  chunksize 1: multiproc / Python",
                chunk1,
                theirs,
                Goal::AtLeast(10.0),
            );
        }
        None => value("Pool(2).map(chunksize=1) (Python)", "skipped".into()),
    }
    value(
        "Pool(2).map, default chunking (multiproc)",
        format!("{}tasks/s", fmt_rate(default)),
    );
    match py_get(&py, "map_default_rate") {
        Some(theirs) => {
            value(
                "Pool(2).map, default chunking (Python)",
                format!("{}tasks/s", fmt_rate(theirs)),
            );
            ratio(
                "  default chunking: multiproc / Python",
                default,
                theirs,
                Goal::AtLeast(1.0),
            );
        }
        None => value("Pool(2).map, default chunking (Python)", "skipped".into()),
    }
    value("Process::fork + join, empty child", fmt_dur(fork_join));
    match py_get(&py, "process_start_join") {
        Some(theirs) => {
            value(
                "Process().start() + join() (Python)",
                fmt_dur(Duration::from_secs_f64(theirs)),
            );
            // Times: lower is better, so the ratio is Python's time over ours.
            ratio(
                "  fork + join: Python time / multiproc time",
                theirs,
                fork_join.as_secs_f64(),
                Goal::AtLeast(1.0),
            );
        }
        None => value("Process().start() + join() (Python)", "skipped".into()),
    }
}
