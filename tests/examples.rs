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

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim_end).collect()
    }
    fn position(&self, line: &str) -> usize {
        self.lines()
            .iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("missing {line:?} in:\n{}", self.stdout))
    }
}

#[test]
fn pool_map() {
    let r = run("pool_map");
    r.in_order(&[
        "[1, 8, 27, 64]",
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]",
        "[1024, 243]",
        "任务 Task-1 完成",
        "任务 Task-2 完成",
        "任务 Task-3 完成",
        "任务 Task-4 完成",
        "所有任务执行完毕",
    ]);
    assert_eq!(r.count_prefix("任务 Task-"), 12, "{}", r.stdout);
}

#[test]
fn pool_in_threads() {
    let r = run("pool_in_threads");
    r.in_order(&[
        "start method: ForkServer",
        "squares: [0, 1, 4, 9, 16, 25, 36, 49]",
    ]);
    assert_eq!(r.count_prefix("worker "), 8, "{}", r.stdout);
}

#[test]
fn pool_imap() {
    let r = run("pool_imap");
    r.in_order(&[
        "=== 使用imap方法 ===",
        "结果: 任务 Task-1 完成",
        "结果: 任务 Task-2 完成",
        "结果: 任务 Task-3 完成",
        "结果: 任务 Task-4 完成",
        "=== 使用imap_unordered方法 ===",
    ]);
    let unordered_at = r.position("=== 使用imap_unordered方法 ===");
    let mut unordered: Vec<&str> = r.lines()[unordered_at..]
        .iter()
        .copied()
        .filter(|l| l.starts_with("结果: "))
        .collect();
    unordered.sort_unstable();
    assert_eq!(
        unordered,
        [
            "结果: 任务 Task-1 完成",
            "结果: 任务 Task-2 完成",
            "结果: 任务 Task-3 完成",
            "结果: 任务 Task-4 完成"
        ]
    );
    r.in_order(&[
        "first squares of an endless input: [1, 4, 9, 16, 25]",
        "所有任务执行完毕",
    ]);
}

#[test]
fn pool_apply_async() {
    let r = run("pool_apply_async");
    r.in_order(&[
        "任务1结果: 任务 Task-1 完成",
        "任务2结果: 任务 Task-2 完成",
        "任务3结果: 任务 Task-3 完成",
        "任务4结果: 任务 Task-4 完成",
        "所有任务执行完毕",
        "main process starting....",
    ]);
    for i in 0..10 {
        r.line_with(&format!("{i} is now running, process id: "));
    }
    let lines = r.lines();
    assert_eq!(*lines.last().unwrap(), "main process stoping....");
    // close() + join() waited for all ten jobs.
    let stop = r.position("main process stoping....");
    assert_eq!(
        lines[..stop]
            .iter()
            .filter(|l| l.contains(" is now running"))
            .count(),
        10
    );
}

#[test]
fn parallel_sum() {
    let r = run("parallel_sum");
    r.in_order(&[
        "Results: [500000500000, 2000001000000, 4500001500000, 8000002000000]",
        "Sequential results: [500000500000, 2000001000000, 4500001500000, 8000002000000]",
    ]);
    r.line_with("Time taken: ");
    r.line_with("Sequential time taken: ");
    assert!(r.line_with("Speedup: ").ends_with(" CPUs"));
}

#[test]
fn word_count() {
    let r = run("word_count");
    for n in 1..=4 {
        assert!(
            r.has(&format!("File file{n}.txt has {} words", 10 * n)),
            "{}",
            r.stdout
        );
    }
    r.in_order(&["Total word count: 100"]);
}

#[test]
fn queue_producer_consumer() {
    let r = run("queue_producer_consumer");
    r.in_order(&["1", "4", "9", "16"]);
    let values = |prefix: &str| -> Vec<u32> {
        let mut v: Vec<u32> = r
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|n| n.parse().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    let (produced, consumed) = (values("Produced "), values("Consumed "));
    assert_eq!(produced.len(), 5);
    assert!(produced.iter().all(|v| (1..=100).contains(v)));
    assert_eq!(produced, consumed);
    r.in_order(&[
        "Consumer got the poison pill",
        "exit codes: producer Some(0), consumer Some(0)",
    ]);
}

#[test]
fn joinable_queue() {
    let r = run("joinable_queue");
    assert_eq!(r.stdout.matches(" processed ").count(), 10, "{}", r.stdout);
    r.in_order(&["all tasks done: 10 processed, 0 unfinished"]);
}

#[test]
fn pipe_sender_receiver() {
    let r = run("pipe_sender_receiver");
    let sent: Vec<String> = (0..5).map(|i| format!("发送者: 发送了数据 {i}")).collect();
    let received: Vec<String> = (0..5).map(|i| format!("接收者: 接收了数据 {i}")).collect();
    r.in_order(&sent.iter().map(String::as_str).collect::<Vec<_>>());
    let mut tail: Vec<&str> = received.iter().map(String::as_str).collect();
    tail.extend(["接收者: 管道已关闭", "所有进程执行完毕"]);
    r.in_order(&tail);
}

#[test]
fn value_array() {
    let r = run("value_array");
    r.in_order(&[
        "Final counter value: 0",
        "Final array values: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]",
        "v.value = 11",
    ]);
}

#[test]
fn lock_counter() {
    let r = run("lock_counter");
    let arr: Vec<String> = (0..10).map(|i| format!("arr[{i}] = {}", 2 * i)).collect();
    let mut want = vec!["4000", "最终结果: 0"];
    want.extend(arr.iter().map(String::as_str));
    want.push("所有进程执行完毕");
    r.in_order(&want);
}

#[test]
fn rlock_nested() {
    let r = run("rlock_nested");
    assert_eq!(r.count_prefix("Process-"), 10, "{}", r.stdout);
    assert_eq!(r.stdout.matches("holds the rlock 5 deep").count(), 2);
    r.in_order(&["最终结果: 0"]);
}

#[test]
fn semaphore_connections() {
    let r = run("semaphore_connections");
    for what in ["等待连接...", "获得连接", "释放连接"] {
        assert_eq!(r.stdout.matches(what).count(), 10, "{what}\n{}", r.stdout);
    }
    // Never more than 3 connections at once, judged from the printed order too.
    let mut held = 0i32;
    for l in r.lines() {
        if l.ends_with("获得连接") {
            held += 1;
            assert!(held <= 3, "{}", r.stdout);
        } else if l.ends_with("释放连接") {
            held -= 1;
        }
    }
    r.in_order(&["所有连接完成"]);
    let peak = r.line_with("at most ");
    assert!(
        ["at most 1 ", "at most 2 ", "at most 3 "]
            .iter()
            .any(|p| peak.starts_with(p)),
        "{peak}"
    );
}

#[test]
fn event_traffic_light() {
    let r = run("event_traffic_light");
    r.in_order(&[
        "等待者: 等待事件发生...",
        "等待者: 事件已发生，继续执行",
        "所有进程执行完毕",
    ]);
    assert!(r.position("设置者: 准备触发事件") < r.position("所有进程执行完毕"));
    assert!(r.position("设置者: 事件已触发") < r.position("所有进程执行完毕"));
    for car in 0..10 {
        let coming = r.position(&format!("car {car} is coming"));
        let passed = r.position(&format!("car {car} pass the cross road"));
        assert!(coming < passed);
    }
    assert!(r.has("<<<<<<<<<<<<<<< red to green >>>>>>>>>>>>>>>>>>>"));
    let pid: u32 = r
        .line_with("all cars passed; the daemon traffic light ")
        .split(' ')
        .find_map(|w| w.parse().ok())
        .unwrap();
    assert!(
        pid_is_gone(pid),
        "the daemon traffic light {pid} outlived its parent"
    );
}

#[test]
fn condition_producer_consumer() {
    let r = run("condition_producer_consumer");
    let produced: Vec<String> = (0..10)
        .map(|i| format!("生产者: 生产了数据 {i}，"))
        .collect();
    let consumed: Vec<String> = (0..10)
        .map(|i| format!("消费者: 消费了数据 {i}，"))
        .collect();
    let lines = r.lines();
    for want in [&produced, &consumed] {
        let got: Vec<&str> = lines
            .iter()
            .filter(|l| want.iter().any(|w| l.starts_with(w.as_str())))
            .copied()
            .collect();
        assert_eq!(got.len(), 10, "{}", r.stdout);
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(g.starts_with(w.as_str()), "{g} should start with {w}");
        }
    }
    // The buffer never holds more than 5 items.
    for l in &lines {
        if let Some((_, list)) = l.split_once("当前队列: ") {
            assert!(list.matches(',').count() < 5, "{l}");
        }
    }
    r.in_order(&["所有进程执行完毕"]);
}

#[test]
fn barrier() {
    let r = run("barrier");
    let last_arrival = (1..=3)
        .map(|i| r.position(&format!("任务 Task-{i} 到达栅栏")))
        .max()
        .unwrap();
    let mut indexes = Vec::new();
    for i in 1..=3 {
        let line = r.line_with(&format!("任务 Task-{i} 继续执行 (arrival index "));
        assert!(r.position(line) > last_arrival, "{}", r.stdout);
        indexes.push(line.chars().rev().nth(1).unwrap());
    }
    indexes.sort_unstable();
    assert_eq!(indexes, ['0', '1', '2']);
    r.in_order(&["所有任务执行完毕"]);
}

#[test]
fn manager_list_pool() {
    let r = run("manager_list_pool");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r.in_order(&["[] 1", "[1] 2", "[1, 2] 3", "[1, 2, 3]"]);
}

#[test]
fn manager_dict_lock() {
    let r = run("manager_dict_lock");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r.in_order(&["{0: 0, 1: 1, 2: 4, 3: 9, 4: 16, 5: 25, 6: 36, 7: 49, 8: 64, 9: 81}"]);
}

#[test]
fn manager_list_dict() {
    let r = run("manager_list_dict");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // The two processes interleave under the lock one whole batch at a time.
    r.in_order(&[
        "添加了元素 1，当前列表: [1]",
        "添加了元素 5，当前列表: [1, 2, 3, 4, 5]",
    ]);
    r.in_order(&[
        "更新了字典 a: 1，当前字典: {'a': 1}",
        "更新了字典 b: 2，当前字典: {'a': 1, 'b': 2}",
        "更新了字典 c: 3，当前字典: {'a': 1, 'b': 2, 'c': 3}",
    ]);
    r.in_order(&[
        "最终列表: [1, 2, 3, 4, 5]",
        "最终字典: {'a': 1, 'b': 2, 'c': 3}",
        "所有进程执行完毕",
    ]);
}
