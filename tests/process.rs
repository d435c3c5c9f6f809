//! `Process`: fork a closure, exit codes with Python's semantics, join with and
//! without timeouts, signals, daemons, names, and no zombies left behind.
#![cfg(all(feature = "std", not(loom)))]

mod common;
use common::*;
use multiproc::sys::ident::{proc_state, ProcState};
use multiproc::{active_children, cpu_count, current_process, Process, ProcessBuilder, Segment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(30);

/// Eight shared u64 words, inherited by forked children.
struct Shared(Segment);

impl Shared {
    fn new() -> Shared {
        Shared(Segment::anonymous(64).unwrap())
    }
    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < 8);
        // SAFETY: 64 bytes, 128-aligned, accessed only atomically.
        unsafe { &*(self.0.as_ptr() as *const AtomicU64).add(i) }
    }
}

/// Waits until `pid` no longer exists (or is a zombie someone else must reap).
fn wait_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if proc_state(pid) == ProcState::Gone {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn normal_exit_has_exitcode_zero() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| {}).unwrap();
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(p.exitcode(), Some(0));
        assert!(!p.is_alive());
        // join again: same answer, nothing left to reap.
        assert_eq!(p.join().unwrap(), 0);
    });
}

/// An absurdly large timeout waits (here: for a child that exits) instead of
/// panicking on `Instant` overflow.
#[test]
fn join_timeout_of_duration_max_waits_instead_of_panicking() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| std::thread::sleep(Duration::from_millis(20))).unwrap();
        assert_eq!(p.join_timeout(Duration::MAX).unwrap(), Some(0));
    });
}

#[test]
fn closure_returning_3_and_process_exit_3_both_give_exitcode_3() {
    watchdog(WATCHDOG, || {
        let returned = Process::fork(|| 3).unwrap();
        let exited = Process::fork(|| -> i32 { std::process::exit(3) }).unwrap();
        assert_eq!(returned.join().unwrap(), 3);
        assert_eq!(exited.join().unwrap(), 3);
    });
}

#[test]
fn panicking_child_has_exitcode_one() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| -> i32 { panic!("boom in the child") }).unwrap();
        assert_eq!(p.join().unwrap(), 1);
    });
}

#[test]
fn err_result_has_exitcode_one() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| -> Result<(), String> { Err("bad input".into()) }).unwrap();
        assert_eq!(p.join().unwrap(), 1);
        let ok = Process::fork(|| -> Result<i32, String> { Ok(7) }).unwrap();
        assert_eq!(ok.join().unwrap(), 7);
    });
}

#[test]
fn terminate_gives_minus_15_and_kill_minus_9() {
    watchdog(WATCHDOG, || {
        let sleeper = || std::thread::sleep(Duration::from_secs(60));
        let t = Process::fork(sleeper).unwrap();
        let k = Process::fork(sleeper).unwrap();
        assert_eq!(t.exitcode(), None);
        assert!(t.is_alive());
        t.terminate().unwrap();
        k.kill().unwrap();
        assert_eq!(t.join().unwrap(), -15);
        assert_eq!(k.join().unwrap(), -9);
        assert_eq!(t.exitcode(), Some(-15));
        // Signalling a reaped child is a no-op, as in Python.
        t.terminate().unwrap();
        k.kill().unwrap();
    });
}

#[test]
fn join_timeout_on_a_sleeper_returns_none_then_the_code() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| std::thread::sleep(Duration::from_millis(300))).unwrap();
        let t = Instant::now();
        assert_eq!(p.join_timeout(Duration::from_millis(50)).unwrap(), None);
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(50),
            "returned early: {waited:?}"
        );
        assert!(p.is_alive());
        assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(0));
        assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), Some(0));
    });
}

#[test]
fn join_from_two_threads_returns_the_same_code() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| {
            std::thread::sleep(Duration::from_millis(50));
            5
        })
        .unwrap();
        let p2 = p.clone();
        let h = std::thread::spawn(move || p2.join().unwrap());
        assert_eq!(p.join().unwrap(), 5);
        assert_eq!(h.join().unwrap(), 5);
    });
}

#[test]
fn child_sees_its_name_and_pid() {
    watchdog(WATCHDOG, || {
        let shared = Shared::new();
        let p = ProcessBuilder::new()
            .name("worker-A")
            .fork(|| {
                let me = current_process();
                shared.word(0).store(u64::from(me.pid()), Ordering::SeqCst);
                let ok = me.name() == "worker-A" && !me.daemon();
                i32::from(!ok)
            })
            .unwrap();
        assert_eq!(p.name(), "worker-A");
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(shared.word(0).load(Ordering::SeqCst), u64::from(p.pid()));
        assert_eq!(current_process().pid(), std::process::id());
    });
}

#[test]
fn default_names_follow_python_process_n_and_n_colon_m() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| {
            let me = current_process().name().to_owned();
            // A grandchild is named after its parent's index.
            let g = Process::fork(|| {}).unwrap();
            let (parent_idx, grand) = (me.strip_prefix("Process-").unwrap().to_owned(), g.name());
            let ok = grand == format!("Process-{parent_idx}:1") && g.join().unwrap() == 0;
            i32::from(!ok)
        })
        .unwrap();
        assert!(p.name().starts_with("Process-"), "{}", p.name());
        assert_eq!(p.join().unwrap(), 0);
    });
}

#[test]
fn active_children_lists_running_children_until_they_are_joined() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
        assert!(active_children().iter().any(|c| c.pid() == p.pid()));
        p.kill().unwrap();
        p.join().unwrap();
        assert!(!active_children().iter().any(|c| c.pid() == p.pid()));
    });
}

#[test]
fn cpu_count_is_at_least_one() {
    assert!(cpu_count() >= 1);
}

#[test]
fn daemon_child_dies_when_its_parent_is_killed() {
    watchdog(WATCHDOG, || {
        let shared = Shared::new();
        let parent = Process::fork(|| {
            let d = ProcessBuilder::new()
                .daemon(true)
                .fork(|| std::thread::sleep(Duration::from_secs(60)))
                .unwrap();
            shared.word(0).store(u64::from(d.pid()), Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(60));
        })
        .unwrap();
        assert!(wait_until(WATCHDOG, || shared
            .word(0)
            .load(Ordering::SeqCst)
            != 0));
        let daemon = shared.word(0).load(Ordering::SeqCst) as u32;
        assert!(matches!(proc_state(daemon), ProcState::Alive { .. }));
        parent.kill().unwrap();
        assert_eq!(parent.join().unwrap(), -9);
        assert!(
            wait_gone(daemon, Duration::from_secs(10)),
            "daemon {daemon} outlived its parent"
        );
    });
}

#[test]
fn daemon_child_is_killed_when_its_parent_exits_normally() {
    watchdog(WATCHDOG, || {
        let shared = Shared::new();
        let parent = Process::fork(|| {
            let d = ProcessBuilder::new()
                .daemon(true)
                .fork(|| std::thread::sleep(Duration::from_secs(60)))
                .unwrap();
            shared.word(0).store(u64::from(d.pid()), Ordering::SeqCst);
            // Returning ends this child: its daemon children are killed first.
        })
        .unwrap();
        assert_eq!(parent.join().unwrap(), 0);
        let daemon = shared.word(0).load(Ordering::SeqCst) as u32;
        assert!(daemon != 0);
        assert!(
            wait_gone(daemon, Duration::from_secs(10)),
            "daemon {daemon} outlived its parent"
        );
    });
}

#[test]
fn parent_waits_for_non_daemon_children_at_exit() {
    watchdog(WATCHDOG, || {
        let shared = Shared::new();
        let parent = Process::fork(|| {
            let _c = Process::fork(|| {
                std::thread::sleep(Duration::from_millis(100));
                shared.word(1).store(1, Ordering::SeqCst);
            })
            .unwrap();
            // The handle drops here; the exit still waits for the child, as Python does.
        })
        .unwrap();
        assert_eq!(parent.join().unwrap(), 0);
        assert_eq!(shared.word(1).load(Ordering::SeqCst), 1);
    });
}

#[test]
fn dropped_handle_of_a_running_child_is_reaped_when_it_exits() {
    watchdog(WATCHDOG, || {
        let p = Process::fork(|| std::thread::sleep(Duration::from_millis(30))).unwrap();
        let pid = p.pid();
        drop(p);
        // Reaped: /proc no longer has it (a zombie would still be listed, in state Z).
        let reaped = wait_until(Duration::from_secs(10), || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(reaped, "child {pid} left unreaped");
    });
}

#[test]
fn no_zombie_children_are_left_behind() {
    // Run in a fresh process of its own, so other tests' children do not count.
    if role().as_deref() == Some("zombies") {
        let sleeper = || std::thread::sleep(Duration::from_millis(20));
        let joined = Process::fork(|| {}).unwrap();
        joined.join().unwrap();
        let killed = Process::fork(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
        killed.kill().unwrap();
        killed.join().unwrap();
        let polled = Process::fork(|| 2).unwrap();
        while polled.exitcode().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let timed = Process::fork(sleeper).unwrap();
        while timed
            .join_timeout(Duration::from_millis(5))
            .unwrap()
            .is_none()
        {}
        for _ in 0..5 {
            drop(Process::fork(sleeper).unwrap());
        }
        drop(Process::fork(|| {}).unwrap());
        // Dropped handles are reaped by the reaper within ~100 ms of their exit, and
        // every child here exits within 20 ms: soon none is left, alive or zombie.
        assert!(no_children_left(
            std::process::id(),
            Duration::from_secs(10)
        ));
        return;
    }
    let child = spawn_self("no_zombie_children_are_left_behind", "zombies");
    let (code, out) = wait_self(child, WATCHDOG);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("children left: []"), "{out}");
}

#[test]
fn panic_message_is_printed_on_the_childs_stderr() {
    if role().as_deref() == Some("panic") {
        let p = Process::fork(|| -> i32 { panic!("the child says boom") }).unwrap();
        println!("exitcode {}", p.join().unwrap());
        return;
    }
    // Re-executed with --nocapture, so that the child's stderr is the real one.
    let out = watchdog(WATCHDOG, || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "panic_message_is_printed_on_the_childs_stderr",
                "--nocapture",
            ])
            .env(ROLE, "panic")
            .output()
            .unwrap()
    });
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("exitcode 1"), "{stdout}");
    assert!(stderr.contains("the child says boom"), "{stderr}");
}
