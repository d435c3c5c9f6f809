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
//!
//! At the end: every goal row with its verdict, counted; the time each section took;
//! the rows file `target/versus/rows.tsv` and the chart `target/versus/versus.svg`
//! (see `record.rs` and `chart.rs`). `-- --chart-only[=ROWS.tsv]` redraws the chart
//! from a rows file without measuring anything. `MULTIPROC_BENCH_BEFORE=FILE` shows
//! another build's rows beside these (`benches/before-after.sh REV` does it all).

mod chart;
mod common;
mod containers;
mod fastpath;
mod foundation;
mod pipe;
mod pool;
mod queue;
mod record;
mod start;
mod sync;

use common::Ctx;

fn main() {
    let start = std::time::Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(a) = args.iter().find(|a| a.starts_with("--chart-only")) {
        let rows = a.strip_prefix("--chart-only=").map(Into::into);
        std::process::exit(chart_only(rows));
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let want = |s: &str| filters.is_empty() || filters.iter().any(|f| s.contains(f.as_str()));
    record::load_before();
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
    record::finish(start);
}

/// Redraws the chart from a rows file (default: this build's last run's).
fn chart_only(rows: Option<std::path::PathBuf>) -> i32 {
    let path = rows.unwrap_or_else(|| record::out_dir().join("rows.tsv"));
    let (rows, before) = match std::fs::read_to_string(&path) {
        Ok(text) => match record::parse_rows(&text) {
            Some(parsed) => parsed,
            None => {
                eprintln!("{} is not a rows file of this bench", path.display());
                return 1;
            }
        },
        Err(e) => {
            eprintln!(
                "cannot read {}: {e} (run the bench once first)",
                path.display()
            );
            return 1;
        }
    };
    let svg = path.with_file_name("versus.svg");
    print!("{}", record::summary(&rows, before.as_deref()));
    match chart::write_svg(&rows, &svg, before.as_deref()) {
        Ok(()) => {
            println!("chart: {}", svg.display());
            0
        }
        Err(e) => {
            eprintln!("chart not written: {e}");
            1
        }
    }
}
