//! Rows for the start section: process start + join (empty body) and Pool(2).map
//! with chunksize 1, through each start method (Fork, Spawn, ForkServer), against
//! Python's `fork`, `spawn` and `forkserver` in the same run.
use crate::common::{fmt_dur, fmt_rate, py_get, ratio, section, value, Ctx, Goal};
use multiproc::{Pool, ProcessBuilder, StartMethod};
use std::time::{Duration, Instant};

const N: u64 = 20_000;

fn cube(x: u64) -> u64 {
    x * x * x
}

fn empty(_: ()) {}

fn start_join(m: StartMethod, rounds: u32) -> Duration {
    let once = || {
        let p = ProcessBuilder::new()
            .start_method(m)
            .start(empty, ())
            .expect("start");
        assert_eq!(p.join().expect("join"), 0);
    };
    once(); // the first start pays the set-up (the fork server starts)
    let t = Instant::now();
    for _ in 0..rounds {
        once();
    }
    t.elapsed() / rounds
}

fn map1_rate(m: StartMethod) -> f64 {
    let pool = Pool::builder()
        .workers(2)
        .start_method(m)
        .build()
        .expect("Pool(2)");
    pool.map_chunked(cube, 0..1000, 1).expect("warm-up map");
    (0..2)
        .map(|_| {
            let t = Instant::now();
            let n = pool.map_chunked(cube, 0..N, 1).expect("map").len();
            assert_eq!(n as u64, N);
            N as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

pub fn run(ctx: &mut Ctx) {
    section("start: start + join (empty body) and Pool(2).map chunksize 1, per start method");
    let methods = [
        (StartMethod::Fork, "fork", 200),
        (StartMethod::Spawn, "spawn", 50),
        (StartMethod::ForkServer, "forkserver", 200),
    ];
    let mut ours = Vec::new();
    for &(m, _, rounds) in &methods {
        ours.push((start_join(m, rounds), map1_rate(m)));
    }
    let py = ctx.python("start_methods.py", &[&N.to_string()]);
    for (&(m, name, _), &(join, rate)) in methods.iter().zip(&ours) {
        value(
            &format!("{m:?}: start + join, empty body (multiproc)"),
            fmt_dur(join),
        );
        match py_get(&py, &format!("{name}_start_join")) {
            Some(theirs) => {
                value(
                    &format!("{name}: start() + join() (Python)"),
                    fmt_dur(Duration::from_secs_f64(theirs)),
                );
                ratio(
                    &format!("  {name} start + join: multiproc time / Python time"),
                    join.as_secs_f64(),
                    theirs,
                    Goal::AtMost(0.5),
                );
            }
            None => value(
                &format!("{name}: start() + join() (Python)"),
                "skipped".into(),
            ),
        }
        value(
            &format!("{m:?}: Pool(2).map, chunksize 1 (multiproc)"),
            format!("{}tasks/s", fmt_rate(rate)),
        );
        match py_get(&py, &format!("{name}_map1_rate")) {
            Some(theirs) => {
                value(
                    &format!("{name}: Pool(2).map(chunksize=1) (Python)"),
                    format!("{}tasks/s", fmt_rate(theirs)),
                );
                ratio(
                    &format!("  {name} map chunksize 1: multiproc / Python"),
                    rate,
                    theirs,
                    Goal::AtLeast(10.0),
                );
            }
            None => value(
                &format!("{name}: Pool(2).map(chunksize=1) (Python)"),
                "skipped".into(),
            ),
        }
    }
}
