//! Rows for the pool section: `Pool::map` throughput and `Process::fork` + `join`
//! latency, an 8 MiB argument + 8 MiB result round trip through `Pool::apply` (as a
//! byte string, and for comparison as a plain `Vec<u8>`, which serde handles element
//! by element), against Python's `multiprocessing` (fork start method) in the same
//! run.
use crate::common::{fmt_dur, fmt_rate, py_get, ratio, section, value, Ctx, Goal};
use multiproc::{Pool, Process};
use serde::{Deserialize, Serialize};
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

/// Bytes serialized as one byte string (as Python pickles `bytes`), not element by
/// element as a `Vec<u8>` is.
#[derive(Serialize, Deserialize)]
struct Bytes(#[serde(with = "serde_bytes")] Vec<u8>);

/// The payload task: returns as many bytes as it got (a new buffer, so that the
/// result is really produced in the worker).
fn echo(b: Bytes) -> Bytes {
    let mut out = b.0;
    if let Some(x) = out.first_mut() {
        *x = x.wrapping_add(1);
    }
    Bytes(out)
}

/// The same task over a plain `Vec<u8>`, which serde handles element by element.
fn echo_vec(mut b: Vec<u8>) -> Vec<u8> {
    if let Some(x) = b.first_mut() {
        *x = x.wrapping_add(1);
    }
    b
}

/// Bytes each way in the payload row.
const PAYLOAD: usize = 8 << 20;

/// Median round trip of `Pool::apply(echo_vec, PAYLOAD bytes as a Vec<u8>)`.
fn payload_vec_round_trip(pool: &Pool, rounds: usize) -> Duration {
    let arg = vec![7u8; PAYLOAD];
    let times = (0..rounds)
        .map(|_| {
            let a = arg.clone();
            let t = Instant::now();
            let r = pool.apply(echo_vec, a).expect("apply");
            let d = t.elapsed();
            assert_eq!((r.len(), r[0]), (PAYLOAD, 8));
            d
        })
        .collect();
    crate::common::median(times)
}

/// Median round trip of `Pool::apply(echo, PAYLOAD bytes)` over `rounds` calls.
fn payload_round_trip(pool: &Pool, rounds: usize) -> Duration {
    let arg = vec![7u8; PAYLOAD];
    let times = (0..rounds)
        .map(|_| {
            let a = Bytes(arg.clone());
            let t = Instant::now();
            let r = pool.apply(echo, a).expect("apply");
            let d = t.elapsed();
            assert_eq!(r.0.len(), PAYLOAD);
            assert_eq!(r.0[0], 8);
            d
        })
        .collect();
    crate::common::median(times)
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
    payload_round_trip(&pool, 2);
    let payload = payload_round_trip(&pool, 15);
    payload_vec_round_trip(&pool, 1);
    let payload_vec = payload_vec_round_trip(&pool, 5);
    drop(pool);

    let py = ctx.python("pool_map.py", &[&N.to_string(), &PAYLOAD.to_string()]);
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
    value(
        "Pool(2).apply, 8 MiB argument + 8 MiB result (multiproc)",
        fmt_dur(payload),
    );
    // Each way at >= 0.5x memcpy means 16 MiB moved per round trip at >= 0.5x.
    let each_way = 2.0 * PAYLOAD as f64 / payload.as_secs_f64();
    ratio(
        "  payload: 16 MiB / round trip vs memcpy",
        each_way,
        ctx.memcpy_bw,
        Goal::AtLeast(0.5),
    );
    value(
        "Pool(2).apply, the same as Vec<u8> (serde: element by element)",
        fmt_dur(payload_vec),
    );
    ratio(
        "  Vec<u8> payload: 16 MiB / round trip vs memcpy",
        2.0 * PAYLOAD as f64 / payload_vec.as_secs_f64(),
        ctx.memcpy_bw,
        Goal::None,
    );
    match py_get(&py, "apply_payload") {
        Some(theirs) => {
            value(
                "Pool(2).apply, 8 MiB bytes in and out (Python)",
                fmt_dur(Duration::from_secs_f64(theirs)),
            );
            ratio(
                "  payload: Python time / multiproc time",
                theirs,
                payload.as_secs_f64(),
                Goal::AtLeast(20.0),
            );
        }
        None => value("Pool(2).apply, 8 MiB in and out (Python)", "skipped".into()),
    }
}
