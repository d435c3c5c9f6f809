//! Start methods (`Fork`, `Spawn`, `ForkServer`): children started every way behave
//! the same — exit codes, signals, daemon death with the parent, pools — and the two
//! safe methods stay safe in a program whose other threads hold locks.

mod common;

use common::{role, wait_until, watchdog, ROLE};
use multiproc::sys::ident::{proc_state, ProcState};
use multiproc::{Pool, ProcessBuilder, StartMethod};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ALL: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

fn exit_with(code: i32) -> i32 {
    code
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn start<A, R>(m: StartMethod, f: fn(A) -> R, arg: A) -> multiproc::Process
where
    A: serde::Serialize + serde::de::DeserializeOwned,
    R: multiproc::IntoExitCode,
{
    ProcessBuilder::new()
        .start_method(m)
        .start(f, arg)
        .unwrap_or_else(|e| panic!("{m:?}: start failed: {e}"))
}

#[test]
fn each_method_reports_the_functions_exit_code() {
    watchdog(Duration::from_secs(20), || {
        for m in ALL {
            for code in [0, 3, 77] {
                let p = start(m, exit_with, code);
                assert_eq!(p.join().unwrap(), code, "{m:?}");
                assert_eq!(p.exitcode(), Some(code), "{m:?}");
                assert!(!p.is_alive(), "{m:?}");
            }
        }
    });
}

#[test]
fn each_method_reports_terminate_and_kill_as_minus_the_signal() {
    watchdog(Duration::from_secs(20), || {
        for m in ALL {
            let p = start(m, sleep_ms, 60_000);
            assert!(p.is_alive(), "{m:?}");
            assert_eq!(
                p.join_timeout(Duration::from_millis(20)).unwrap(),
                None,
                "{m:?}"
            );
            p.terminate().unwrap();
            assert_eq!(p.join().unwrap(), -libc::SIGTERM, "{m:?}");
            let q = start(m, sleep_ms, 60_000);
            q.kill().unwrap();
            assert_eq!(q.join().unwrap(), -libc::SIGKILL, "{m:?}");
            assert_eq!(q.exitcode(), Some(-libc::SIGKILL), "{m:?}");
        }
    });
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn a_pool_maps_through_each_method() {
    watchdog(Duration::from_secs(30), || {
        for m in ALL {
            let pool = Pool::builder().workers(2).start_method(m).build().unwrap();
            let want: Vec<u64> = (0..100).map(|x| x * x).collect();
            assert_eq!(
                pool.map_chunked(square, 0..100u64, 1).unwrap(),
                want,
                "{m:?}"
            );
            assert_eq!(pool.apply(square, 12).unwrap(), 144, "{m:?}");
            pool.close();
            pool.join().unwrap();
        }
    });
}

/// The lock a thread of the parent holds while children start (and that children
/// take themselves); `FORK_SHARED` is the Fork test's own, so that the tests can run
/// at the same time.
static SHARED: Mutex<u64> = Mutex::new(0);
static FORK_SHARED: Mutex<u64> = Mutex::new(0);

/// A child body that takes `SHARED` (or `FORK_SHARED`) and stdout's lock: it hangs
/// if it inherited either one held.
fn use_inherited_locks(fork_test: bool) -> i32 {
    let m = if fork_test { &FORK_SHARED } else { &SHARED };
    *m.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"");
    let _ = out.flush();
    0
}

/// Asks thread 1 to take stdout's lock: it acknowledges on the first channel and
/// holds the lock until the second one's sender is dropped.
type StdoutRequest = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

/// 8 busy threads: thread 0 holds `SHARED` throughout, thread 1 takes stdout's lock
/// whenever asked (and holds it until told to let go), all of them allocate in a loop.
struct BusyThreads {
    stop: Arc<AtomicBool>,
    take_stdout: std::sync::mpsc::Sender<StdoutRequest>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyThreads {
    fn start() -> BusyThreads {
        let stop = Arc::new(AtomicBool::new(false));
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (take_tx, take_rx) = std::sync::mpsc::channel::<StdoutRequest>();
        let mut take_rx = Some(take_rx);
        let mut threads = Vec::new();
        for i in 0..8 {
            let (stop, held) = (stop.clone(), held_tx.clone());
            let take = if i == 1 { take_rx.take() } else { None };
            threads.push(std::thread::spawn(move || {
                let g = (i == 0).then(|| SHARED.lock().unwrap_or_else(|e| e.into_inner()));
                let _ = held.send(());
                if let Some(take) = take {
                    // Holds stdout's lock from each request until the requester
                    // drops its release sender (after starting its child).
                    for (ack, release) in take {
                        let out = std::io::stdout().lock();
                        let _ = ack.send(());
                        let _ = release.recv();
                        drop(out);
                    }
                    return;
                }
                let mut v: Vec<u64> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    v.push(v.len() as u64); // allocates: the allocator is busy too
                    if v.len() > 4096 {
                        v = Vec::new();
                    }
                }
                drop(g);
            }));
        }
        for _ in 0..8 {
            held_rx.recv().unwrap();
        }
        BusyThreads {
            stop,
            take_stdout: take_tx,
            threads,
        }
    }

    /// Runs `f` while thread 1 holds stdout's lock.
    fn with_stdout_held<R>(&self, f: impl FnOnce() -> R) -> R {
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        self.take_stdout.send((ack_tx, release_rx)).unwrap();
        ack_rx.recv().unwrap(); // thread 1 holds stdout's lock now
        let r = f();
        drop(release_tx);
        r
    }
}

impl Drop for BusyThreads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let (tx, _) = std::sync::mpsc::channel();
        self.take_stdout = tx; // ends thread 1's loop
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn hundred_children_run_while_other_threads_hold_locks(m: StartMethod) {
    let busy = BusyThreads::start();
    for i in 0..100 {
        let p = busy.with_stdout_held(|| start(m, use_inherited_locks, false));
        match p.join_timeout(Duration::from_secs(10)).unwrap() {
            Some(code) => assert_eq!(code, 0, "{m:?}: child {i}"),
            None => {
                let _ = p.kill();
                panic!("{m:?}: child {i} hung on a lock held by another thread of its parent");
            }
        }
    }
    drop(busy);
}

#[test]
fn spawn_children_run_100_of_100_while_other_threads_hold_locks() {
    watchdog(Duration::from_secs(60), || {
        hundred_children_run_while_other_threads_hold_locks(StartMethod::Spawn)
    });
}

#[test]
fn forkserver_children_run_100_of_100_while_other_threads_hold_locks() {
    watchdog(Duration::from_secs(60), || {
        hundred_children_run_while_other_threads_hold_locks(StartMethod::ForkServer)
    });
}

/// The hazard the safe methods avoid: a forked child inherits `FORK_SHARED` locked by a
/// thread that does not exist in it, and waits for it forever.
#[test]
fn a_forked_child_hangs_on_a_mutex_another_thread_held() {
    watchdog(Duration::from_secs(20), || {
        let stop = Arc::new(AtomicBool::new(false));
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _g = FORK_SHARED.lock().unwrap_or_else(|e| e.into_inner());
                held_tx.send(()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        held_rx.recv().unwrap();
        // (Not stdout's lock here: Fork itself takes it, so the parent would wait.)
        let p = ProcessBuilder::new()
            .start_method(StartMethod::Fork)
            .start(use_inherited_locks, true)
            .unwrap();
        assert_eq!(
            p.join_timeout(Duration::from_secs(1)).unwrap(),
            None,
            "the forked child should be stuck on the inherited mutex"
        );
        p.kill().unwrap();
        assert_eq!(p.join().unwrap(), -libc::SIGKILL);
        stop.store(true, Ordering::Relaxed);
        holder.join().unwrap();
    });
}

fn touch(path: String) -> i32 {
    std::fs::write(path, b"ran").map_or(1, |_| 0)
}

#[test]
fn a_spawned_child_refuses_another_executable_with_a_clear_error() {
    watchdog(Duration::from_secs(20), || {
        let dir = std::env::temp_dir().join(common::unique("spawn-exe"));
        std::fs::create_dir_all(&dir).unwrap();
        // A copy of this very test binary: the same code, but another file, so the
        // child cannot prove that offsets from the parent mean the same functions.
        // `cp` writes it: had this process opened it for writing, a child forked
        // meanwhile by another test thread could hold that descriptor and make the
        // exec fail with ETXTBSY.
        let copy = dir.join("copy");
        let cp = std::process::Command::new("cp")
            .arg(std::env::current_exe().unwrap())
            .arg(&copy)
            .status()
            .unwrap();
        assert!(cp.success());
        let marker = dir.join("marker");
        let r = ProcessBuilder::new()
            .start_method(StartMethod::Spawn)
            .executable(&copy)
            .start(touch, marker.display().to_string());
        let err = r.expect_err("a child running another executable must refuse");
        let msg = err.to_string();
        assert!(msg.contains("refused to run"), "{msg}");
        assert!(msg.contains("is not the parent's"), "{msg}");
        assert!(!marker.exists(), "the function ran in the other executable");
        // The same function through this executable runs.
        let p = ProcessBuilder::new()
            .start_method(StartMethod::Spawn)
            .start(touch, marker.display().to_string())
            .unwrap();
        assert_eq!(p.join().unwrap(), 0);
        assert!(marker.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn init_is_harmless_in_a_parent_and_when_called_twice() {
    watchdog(Duration::from_secs(20), || {
        multiproc::init();
        multiproc::init();
        let p = start(StartMethod::Spawn, exit_with, 5);
        assert_eq!(p.join().unwrap(), 5);
    });
}

/// Starts this test binary as role `role` of `test`; returns it and the pids it
/// printed on its `pids` line.
fn owner_with_pids(test: &str, role: &str) -> (std::process::Child, Vec<u32>) {
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = owner.stdout.take().unwrap();
    let pids = watchdog(Duration::from_secs(20), move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("the owner printed no pids").unwrap();
            // The harness prints "test NAME ... " before it, on the same line.
            if let Some((_, rest)) = line.split_once("pids ") {
                return rest
                    .split(' ')
                    .map(|p| p.parse().unwrap())
                    .collect::<Vec<u32>>();
            }
        }
    });
    (owner, pids)
}

fn is_gone(pid: u32) -> bool {
    proc_state(pid) == ProcState::Gone
}

/// Role: starts a daemon child through each method (and so the fork server),
/// prints `pids <fork server> <fork> <spawn> <forkserver>` and sleeps.
fn daemon_owner() {
    let mut pids = Vec::new();
    let mut children = Vec::new();
    for m in ALL {
        let p = ProcessBuilder::new()
            .start_method(m)
            .daemon(true)
            .start(sleep_ms, 60_000)
            .unwrap();
        pids.push(p.pid().to_string());
        children.push(p);
    }
    let server = multiproc::forkserver_pid().expect("a fork server runs");
    println!("pids {server} {}", pids.join(" "));
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn daemon_children_of_every_method_die_when_their_parent_is_killed() {
    if role().as_deref() == Some("daemon-owner") {
        return daemon_owner();
    }
    let (mut owner, pids) = owner_with_pids(
        "daemon_children_of_every_method_die_when_their_parent_is_killed",
        "daemon-owner",
    );
    assert_eq!(pids.len(), 4);
    for &pid in &pids[1..] {
        assert!(
            !is_gone(pid),
            "daemon {pid} should run while its parent runs"
        );
    }
    owner.kill().unwrap();
    owner.wait().unwrap();
    for (m, &pid) in ALL.iter().zip(&pids[1..]) {
        assert!(
            wait_until(Duration::from_secs(10), || is_gone(pid)),
            "{m:?} daemon {pid} outlived its parent"
        );
    }
}

#[test]
fn the_fork_server_exits_when_its_parent_is_killed() {
    if role().as_deref() == Some("server-owner") {
        return daemon_owner();
    }
    let (mut owner, pids) = owner_with_pids(
        "the_fork_server_exits_when_its_parent_is_killed",
        "server-owner",
    );
    let server = pids[0];
    assert!(
        !is_gone(server),
        "the fork server should run while its parent runs"
    );
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || is_gone(server)),
        "the fork server {server} outlived its parent"
    );
}

#[test]
fn a_forked_child_gets_its_own_fork_server() {
    watchdog(Duration::from_secs(20), || {
        let p = start(StartMethod::ForkServer, exit_with, 0);
        assert_eq!(p.join().unwrap(), 0);
        let parents_server = multiproc::forkserver_pid().unwrap();
        let child = multiproc::Process::fork(move || {
            let q = start(StartMethod::ForkServer, exit_with, 9);
            let own = multiproc::forkserver_pid().unwrap();
            match q.join() {
                Ok(9) if own != parents_server => 0,
                _ => 1,
            }
        })
        .unwrap();
        assert_eq!(child.join().unwrap(), 0);
    });
}
