//! Multi-process test helpers: unique names, forked children with watchdogs, and
//! re-executing the test binary as an unrelated process.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A name no other test (or test run) uses: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A forked child process. Dropping it kills and reaps the child if still running.
#[derive(Debug)]
pub struct Child {
    pub pid: libc::pid_t,
    reaped: bool,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Forks; the child runs `f` and exits with its return value (101 if it panicked).
/// The child never returns into the test harness.
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: fork in a multithreaded test binary: the child only runs `f` and then
    // _exit, and glibc keeps malloc usable after fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: leaving the child without running the harness's atexit/destructors.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: false }
}

impl Child {
    /// Waits at most `timeout` for the child; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Exit> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            let mut status = 0;
            // SAFETY: pid is our child; status is writable.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return Some(if libc::WIFEXITED(status) {
                    Exit::Code(libc::WEXITSTATUS(status))
                } else {
                    Exit::Signal(libc::WTERMSIG(status))
                });
            }
            assert!(
                r == 0,
                "waitpid failed: {}",
                std::io::Error::last_os_error()
            );
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Waits for the child, failing the test if it takes longer than `watchdog`.
    pub fn join(mut self, watchdog: Duration) -> Exit {
        match self.wait_timeout(watchdog) {
            Some(e) => e,
            None => panic!(
                "watchdog: child {} still running after {watchdog:?}",
                self.pid
            ),
        }
    }

    /// Waits and asserts a clean exit (code 0).
    pub fn join_ok(self, watchdog: Duration) {
        let pid = self.pid;
        assert_eq!(self.join(watchdog), Exit::Code(0), "child {pid} failed");
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(mut self) {
        // SAFETY: pid is our unreaped child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        self.wait_timeout(Duration::from_secs(10))
            .expect("a SIGKILLed child must exit");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: pid is our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let mut status = 0;
            // SAFETY: as above.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// Runs `f` on a thread and fails the test if it does not finish within `limit`.
pub fn watchdog<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("watchdog: the test did not finish within {limit:?}"),
    }
}

/// Environment variable that tells a re-executed test binary which role to play.
pub const ROLE: &str = "MULTIPROC_TEST_ROLE";

/// Starts this test binary again as an unrelated process (not a fork), running only
/// `test_name`, with `role` in [`ROLE`]. The test checks [`role`] first.
pub fn spawn_self(test_name: &str, role: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("re-exec the test binary")
}

/// The role this process was started with by [`spawn_self`], if any.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Waits for a re-executed process with a watchdog; returns its stdout.
pub fn wait_self(mut child: std::process::Child, limit: Duration) -> (i32, String) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut out = String::new();
            use std::io::Read;
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            return (st.code().unwrap_or(-1), out);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: re-executed test process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `f` every millisecond until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Children of `pid` (alive or zombie), each with its state letter, read from /proc.
pub fn children_of(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut f = stat[close + 1..].split_whitespace();
        let (state, ppid) = (f.next(), f.next().and_then(|s| s.parse::<u32>().ok()));
        if let (Some(state), Some(ppid)) = (state, ppid) {
            if ppid == pid {
                out.push((p, state.chars().next().unwrap_or('?')));
            }
        }
    }
    out
}

/// Waits (up to `limit`) until `pid` has no children at all, alive or zombie, and
/// prints what is left as `children left: [...]` (empty when all were reaped).
pub fn no_children_left(pid: u32, limit: Duration) -> bool {
    let ok = wait_until(limit, || children_of(pid).is_empty());
    println!("children left: {:?}", children_of(pid));
    ok
}

/// A waiter's probe interval in the death-watcher tests: its timed probes fall at
/// about 0.6, 1.9, 4.4 and 9.4 s into a wait.
pub const SLOW_PROBE: Duration = Duration::from_secs(10);
/// When the holder dies in those tests, counted from just before the waiter waits: a
/// death then would be found by the timed probes only at 9.4 s, 4.9 s later.
pub const DIES_AFTER: Duration = Duration::from_millis(4500);
/// Well before that next timed probe: only the death watcher's wake-up recovers this
/// soon.
pub const WATCHED_RECOVERY: Duration = Duration::from_secs(2);

/// The death-watcher check shared by the lock kinds: a forked child runs `hold` (takes
/// the lock and keeps it), `is_locked` tells when it has; a waiter thread runs
/// `acquire` (true when told the holder died) with the lock's probe set to
/// [`SLOW_PROBE`]; the child is SIGKILLed [`DIES_AFTER`] into the wait, and the
/// waiter must be told within [`WATCHED_RECOVERY`].
pub fn assert_a_killed_holder_is_recovered_by_the_death_watcher(
    hold: impl FnOnce(),
    is_locked: impl Fn() -> bool,
    acquire: impl FnOnce() -> bool + Send + 'static,
) {
    let mut child = fork(move || {
        hold();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    while !is_locked() {
        assert!(child.wait_timeout(Duration::from_millis(1)).is_none());
    }
    let waiter = std::thread::spawn(acquire);
    std::thread::sleep(DIES_AFTER);
    let killed = Instant::now();
    child.kill();
    let died = watchdog(Duration::from_secs(60), move || waiter.join().unwrap());
    assert!(died, "the waiter must be told the holder died");
    let took = killed.elapsed();
    assert!(
        took < WATCHED_RECOVERY,
        "recovered {took:?} after the kill: not woken by the death watcher"
    );
}
