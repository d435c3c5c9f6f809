//! Rows for the containers section: `Dict` get/insert (u64 → u64, and a 16-byte
//! String → 100-byte value) in one and two processes, `List` push/get, a snapshot of
//! 100 k entries — against Python's `Manager().dict()` / `.list()` and, for the
//! snapshot, `HashMap::clone` in one process — and, for get and insert in one
//! process, against LMDB (the `heed` peer in benches/peers: an environment on
//! /dev/shm with `NO_SYNC | NO_META_SYNC | WRITE_MAP`, one transaction per call).
use crate::common::{fmt_rate, fork_peer, py_get, ratio, section, value, Ctx, Goal};
use multiproc::{Dict, List};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const N: u64 = 200_000;

pub fn run(ctx: &mut Ctx) {
    section("containers: Dict, List (vs Python Manager)");
    let py = ctx.python("containers_manager.py", &["20000"]);
    let pid = std::process::id();
    let lmdb = Lmdb::build();

    let d: Dict<u64, u64> = Dict::create(&format!("bench-dict-{pid}")).unwrap();
    let ins = rate(N, |i| {
        d.insert(i, i).unwrap();
    });
    let get = rate(N, |i| {
        d.get(&i).unwrap();
    });
    row(
        "Dict<u64, u64> insert, 1 process",
        ins,
        py_get(&py, "dict_set"),
    );
    row(
        "Dict<u64, u64> get, 1 process",
        get,
        py_get(&py, "dict_get"),
    );
    lmdb.rows("u64", "Dict<u64, u64>", ins, get);

    let key = |i: u64| format!("key-{i:012}"); // 16 bytes
    let val = vec![7u8; 100];
    let s: Dict<String, Vec<u8>> = Dict::create(&format!("bench-sdict-{pid}")).unwrap();
    let ins = rate(N, |i| drop(s.insert(key(i), val.clone()).unwrap()));
    let get = rate(N, |i| drop(s.get(&key(i)).unwrap()));
    row(
        "Dict<String16, [u8; 100]> insert, 1 process",
        ins,
        py_get(&py, "dict_set"),
    );
    row(
        "Dict<String16, [u8; 100]> get, 1 process",
        get,
        py_get(&py, "dict_get"),
    );
    lmdb.rows("str", "Dict<String16, [u8; 100]>", ins, get);

    let two = |write: bool| {
        let t = Instant::now();
        let peer = fork_peer(|| {
            let d: Dict<u64, u64> = Dict::open(d.name()).unwrap();
            for i in 0..N {
                if write {
                    d.insert(N + i, i).unwrap();
                } else {
                    d.get(&i).unwrap();
                }
            }
        });
        for i in 0..N {
            if write {
                d.insert(2 * N + i, i).unwrap();
            } else {
                d.get(&i).unwrap();
            }
        }
        assert!(peer.join());
        (2 * N) as f64 / t.elapsed().as_secs_f64()
    };
    let ins2 = two(true);
    let get2 = two(false);
    row(
        "Dict<u64, u64> insert, 2 processes (total)",
        ins2,
        py_get(&py, "dict_set"),
    );
    row(
        "Dict<u64, u64> get, 2 processes (total)",
        get2,
        py_get(&py, "dict_get"),
    );

    let l: List<u64> = List::create(&format!("bench-list-{pid}")).unwrap();
    let push = rate(N, |i| l.push(i).unwrap());
    let lget = rate(N, |i| {
        l.get(i as usize).unwrap();
    });
    row(
        "List<u64> push, 1 process",
        push,
        py_get(&py, "list_append"),
    );
    row("List<u64> get, 1 process", lget, py_get(&py, "list_get"));

    // Snapshot of 100 k entries vs cloning a HashMap of the same in one process.
    let snap: Dict<u64, u64> = Dict::create(&format!("bench-snap-{pid}")).unwrap();
    let mut h = HashMap::new();
    for i in 0..100_000u64 {
        snap.insert(i, i).unwrap();
        h.insert(i, i);
    }
    let ours = best(|| {
        let t = Instant::now();
        assert_eq!(snap.items().unwrap().len(), 100_000);
        t.elapsed()
    });
    let theirs = best(|| {
        let t = Instant::now();
        assert_eq!(h.clone().len(), 100_000);
        t.elapsed()
    });
    value("Dict items() of 100 k entries", format!("{ours:>10.2?}"));
    value(
        "  HashMap::clone of the same, one process",
        format!("{theirs:>10.2?}"),
    );
    ratio(
        "  items() time / HashMap::clone time",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        Goal::None,
    );
}

/// Calls `f(i)` for i in 0..n; returns calls per second.
fn rate(n: u64, mut f: impl FnMut(u64)) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..3).map(|_| f()).min().unwrap()
}

/// Prints our rate, and its ratio to Python's Manager (goal >= 100x).
fn row(label: &str, ours: f64, python: Option<f64>) {
    value(label, format!("{:>10}", fmt_rate(ours)));
    if let Some(p) = python {
        ratio(
            "  / python Manager proxy (1 process)",
            ours,
            p,
            Goal::AtLeast(100.0),
        );
    }
}

/// The LMDB peer (`lmdb-peer` in benches/peers), built on demand like the iceoryx2
/// one; its rows are skipped with the reason if it does not build or run.
struct Lmdb {
    bin: Result<std::path::PathBuf, String>,
}

impl Lmdb {
    fn build() -> Lmdb {
        let root = env!("CARGO_MANIFEST_DIR");
        let target = format!("{root}/target/peers");
        let out = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--bin", "lmdb-peer"])
            .args([
                "--manifest-path",
                &format!("{root}/benches/peers/Cargo.toml"),
            ])
            .args(["--target-dir", &target])
            .output();
        let bin = match out {
            Ok(o) if o.status.success() => Ok(format!("{target}/release/lmdb-peer").into()),
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let last = err.lines().rfind(|l| l.contains("error")).unwrap_or("");
                Err(format!("the LMDB peer did not build ({})", last.trim()))
            }
            Err(e) => Err(format!("cannot run cargo to build the LMDB peer: {e}")),
        };
        Lmdb { bin }
    }

    /// Prints LMDB's insert and get rates for `mode` and our ratios to them (goal
    /// >= 1x each).
    fn rows(&self, mode: &str, what: &str, ins: f64, get: f64) {
        match self.run(mode) {
            Ok((lins, lget)) => {
                value(
                    &format!("  LMDB (heed, /dev/shm, NO_SYNC) insert, {mode}"),
                    format!("{:>10}", fmt_rate(lins)),
                );
                ratio(
                    &format!("  {what} insert / LMDB insert"),
                    ins,
                    lins,
                    Goal::AtLeast(1.0),
                );
                value(
                    &format!("  LMDB (heed, /dev/shm, NO_SYNC) get, {mode}"),
                    format!("{:>10}", fmt_rate(lget)),
                );
                ratio(
                    &format!("  {what} get / LMDB get"),
                    get,
                    lget,
                    Goal::AtLeast(1.0),
                );
            }
            Err(e) => value(&format!("  vs LMDB ({mode})"), format!("skipped ({e})")),
        }
    }

    /// Runs `lmdb-peer <mode> N`: (insert, get) in calls per second. Killed after a
    /// minute; its environment directory is removed whatever happens.
    fn run(&self, mode: &str) -> Result<(f64, f64), String> {
        let bin = self.bin.as_ref().map_err(Clone::clone)?;
        let mut child = Command::new(bin)
            .args([mode, &N.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run the LMDB peer: {e}"))?;
        let dir = format!("/dev/shm/mpbench-lmdb-{}", child.id());
        let start = Instant::now();
        let mut timed_out = false;
        while child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&dir);
        if timed_out {
            return Err("the LMDB peer took over 60 s (machine oversubscribed?)".into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<f64>().ok())
        };
        match (get("insert "), get("get ")) {
            (Some(i), Some(g)) => Ok((i, g)),
            _ => Err(format!(
                "the LMDB peer failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )),
        }
    }
}
