//! `cargo bench --bench versus [-- SECTION...]`: multiproc against the physical floor
//! and against its peers, measured in one run and printed as ratios.
//!
//! The floor is implemented here, over a raw shared mapping between two processes:
//! an atomic spin ping-pong (the fastest possible round trip) and a Lamport SPSC ring
//! of u64 (the fastest possible one-way stream), plus `memcpy` bandwidth. Peers:
//! Python `multiprocessing` (when `python3` is present) and others per section.
//!
//! Absolute times on a shared VM mean little; the ratios, measured back to back in
//! one run, are what to read.

mod common;
mod containers;
mod fastpath;
mod foundation;
mod pipe;
mod pool;
mod queue;
mod start;
mod sync;

use common::Ctx;

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |s: &str| filters.is_empty() || filters.iter().any(|f| s.contains(f.as_str()));
    let mut ctx = Ctx::new();
    ctx.print_floor();
    if want("fastpath") {
        fastpath::run(&mut ctx);
    }
    if want("foundation") {
        foundation::run(&mut ctx);
    }
    if want("sync") {
        sync::run(&mut ctx);
    }
    if want("queue") {
        queue::run(&mut ctx);
    }
    if want("pipe") {
        pipe::run(&mut ctx);
    }
    if want("pool") {
        pool::run(&mut ctx);
    }
    if want("start") {
        start::run(&mut ctx);
    }
    if want("containers") {
        containers::run(&mut ctx);
    }
}
