//! Small helpers shared by the tour's sections.
#![allow(dead_code)]

/// A name unique to this tour run.
pub fn name(what: &str) -> String {
    format!("tour-{what}-{}", std::process::id())
}

/// Prints a section heading.
pub fn section(title: &str) {
    println!("\n== {title}");
}

/// Forks a child that runs `f` and exits with its return value; returns its pid.
pub fn fork(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `f` and then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for a forked child; returns its exit code.
pub fn wait(pid: libc::pid_t) -> i32 {
    let mut st = 0;
    // SAFETY: `pid` is our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        -libc::WTERMSIG(st)
    }
}
