//! The tutorial programs under `examples/`: each one runs (as a real process, under a
//! watchdog) and prints what its Python original prints.
//!
//! `cargo test` builds the examples into `target/<profile>/examples/`; this file finds
//! them next to its own binary (`target/<profile>/deps/`).
#![cfg(all(feature = "std", not(loom)))]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join(name)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn has(&self, line: &str) -> bool {
        self.stdout.lines().any(|l| l.trim_end() == line)
    }
    fn count_prefix(&self, prefix: &str) -> usize {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
    /// Asserts that every line in `lines` is printed, in this order.
    fn in_order(&self, lines: &[&str]) {
        let mut at = 0;
        let all: Vec<&str> = self.stdout.lines().map(str::trim_end).collect();
        for want in lines {
            match all[at..].iter().position(|l| l == want) {
                Some(i) => at += i + 1,
                None => panic!("missing (or out of order) {want:?} in:\n{}", self.stdout),
            }
        }
    }
    fn line_with(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{}", self.stdout))
    }
}

/// `cargo test --test examples` alone does not build the examples: build the one
/// we need (cargo holds no lock on the target directory while tests run).
fn build_example(name: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let release = !cfg!(debug_assertions);
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cmd.arg("--release");
    }
    let _ = cmd.status();
}

/// Runs `examples/<name>` to completion, killing it if it outlives the watchdog.
fn run(name: &str) -> Run {
    let path = example_path(name);
    if !path.exists() {
        build_example(name);
    }
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it (or run `cargo build --examples`)",
        path.display()
    );
    let mut child = Command::new(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "0")
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: example {name} still running after {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        code: status.code(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    };
    assert_eq!(
        run.code,
        Some(0),
        "example {name} failed\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn pid_is_gone(pid: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s)
                if s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')) =>
            {
                return true
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    false
}

#[test]
fn process_hello() {
    let r = run("process_hello");
    r.in_order(&["hello bob", "Worker start worker-A"]);
    assert!(r.has("2^10 = 1024") && r.has("3^5 = 243"), "{}", r.stdout);
    for t in ["A", "B"] {
        assert!(r.line_with(&format!("Task {t} started, pid ")).len() > 20);
        r.in_order(&[&format!("Task {t} completed"), "All tasks completed"]);
    }
}

#[test]
fn process_subclass() {
    let r = run("process_subclass");
    r.in_order(&[
        "TimerProcess-1: 1/3",
        "TimerProcess-1: 2/3",
        "TimerProcess-1: 3/3",
    ]);
    assert!(r.line_with("Process Process-1 started, pid: ").len() > 30);
    r.in_order(&["All processes finished"]);
    assert_eq!(r.count_prefix("Process Process-"), 4);
}

#[test]
fn daemon_heartbeat() {
    let r = run("daemon_heartbeat");
    let beats = r.count_prefix("heartbeat ");
    assert!((2..=6).contains(&beats), "{}", r.stdout);
    r.in_order(&["main process exiting; the daemon dies with it"]);
    let pid: u32 = r
        .line_with("main process started, daemon pid ")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid_is_gone(pid), "the daemon {pid} outlived its parent");
}

#[test]
fn terminate_exitcode() {
    let r = run("terminate_exitcode");
    r.in_order(&[
        "exitcode while running: None",
        "exitcode: -15",
        "exitcode after kill: -9",
        "exitcode of a normal exit: 0",
        "exitcode of exit(3): 3",
        "exitcode of a panic: 1",
    ]);
    assert_eq!(r.count_prefix("busy child "), 2);
    assert!(
        r.stdout
            .lines()
            .filter(|l| l.ends_with("exitcode: -15"))
            .count()
            == 3
    );
    assert!(
        r.stderr.contains("an uncaught error in the child"),
        "{}",
        r.stderr
    );
}
