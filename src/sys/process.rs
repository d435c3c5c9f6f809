//! Child processes: `fork`, reaping, signals, parent-death signals, pidfds.
//!
//! Thin, documented wrappers so that the process layer (`crate::process`) holds no
//! FFI of its own. Every call here retries on `EINTR`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// What [`fork`] returned in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forked {
    /// The calling process, with the new child's pid.
    Parent(u32),
    /// The new child: only the thread that called `fork` exists in it.
    Child,
}

/// `fork(2)`.
///
/// # Safety
/// In the child only the calling thread survives: locks held by other threads stay
/// locked forever there, and their thread-locals are gone. The caller must make the
/// child run only code that is safe under those conditions and end it with
/// [`exit_now`] (never return into code that expects the parent's threads).
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the contract above.
    let pid = unsafe { libc::fork() };
    match pid {
        p if p < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p as u32)),
    }
}

/// `_exit(2)`: ends the process at once, without running `atexit` handlers or
/// flushing anything (flush Rust's stdout/stderr first).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// How a child ended, in Python's `exitcode` convention: `code >= 0` for a normal
/// exit, `-N` for death by signal `N`.
pub fn exitcode_of(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        // Stopped/continued are not reported (we never pass WUNTRACED/WCONTINUED).
        0
    }
}

/// Reaps `pid` if it has exited: `Ok(Some(exitcode))`, or `Ok(None)` while it runs.
/// `Err(ECHILD)` when `pid` is not (or no longer) an unreaped child of this process.
pub fn try_reap(pid: u32) -> io::Result<Option<i32>> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is writable; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == pid as libc::pid_t {
            return Ok(Some(exitcode_of(status)));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Blocks until `pid` has exited, *without* reaping it (`waitid(WNOWAIT)`): the
/// caller reaps it with [`try_reap`] while holding whatever lock guards the pid, so
/// that a pid is never signalled after it was reaped (and possibly reused).
pub fn wait_exited(pid: u32) -> io::Result<()> {
    exited_unreaped(pid, false).map(drop)
}

/// True if `pid` (an unreaped child) has exited, without waiting and without
/// reaping it: the non-blocking [`wait_exited`].
pub fn has_exited(pid: u32) -> io::Result<bool> {
    exited_unreaped(pid, true)
}

/// `waitid(P_PID, pid, WEXITED | WNOWAIT)`, with `WNOHANG` if `nohang`: true once
/// `pid` has exited (left unreaped); false only when `nohang` found it running.
fn exited_unreaped(pid: u32, nohang: bool) -> io::Result<bool> {
    let flags = libc::WEXITED | libc::WNOWAIT | if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: an all-zero siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is writable; P_PID + WEXITED|WNOWAIT only observes.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
        if r == 0 {
            // SAFETY: waitid filled `info`; `si_pid` stays 0 when WNOHANG found
            // nothing (waitid(2)).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `pidfd_open(2)`: a descriptor that becomes readable when `pid` exits. `pid` must
/// be an unreaped child (so that it cannot have been reused). `Err(ENOSYS)` on
/// kernels before 5.3.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else (pidfds are CLOEXEC).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits at most `timeout` for `fd` to become readable; true if it did.
pub fn poll_readable(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let deadline = super::clock::std_deadline_after(timeout);
    loop {
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(std::time::Instant::now())
        });
        // Round up so that a sub-millisecond wait still sleeps.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return Ok(true);
        }
        if r == 0 {
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(false);
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Sends `sig` to `pid` (`kill(2)`). The caller guarantees `pid` is an unreaped child.
pub fn signal(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to send `sig` to the calling process when the *thread* that forked
/// it exits (`prctl(PR_SET_PDEATHSIG)`).
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The parent process's pid (`getppid(2)`).
pub fn getppid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::getppid() as u32 }
}

/// Kills the calling process with SIGKILL (used when a daemon child finds its parent
/// already gone).
pub fn kill_self() -> ! {
    // SAFETY: SIGKILL to ourselves; cannot be caught.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    exit_now(137)
}

/// Registers `f` to run at normal process exit (`atexit(3)`).
pub fn at_exit(f: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `f` is a plain extern "C" function with static lifetime.
    if unsafe { libc::atexit(f) } != 0 {
        return Err(io::Error::other("atexit registration failed"));
    }
    Ok(())
}

/// Sets the calling thread's timer slack (`prctl(PR_SET_TIMERSLACK)`): how late the
/// kernel may end its sleeps to batch wake-ups (default 50 µs).
pub fn set_timer_slack(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes a number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `pipe2(O_CLOEXEC)`: `(read end, write end)`.
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets or clears `FD_CLOEXEC` on `fd`. Async-signal-safe (one `fcntl`), so it may
/// run between `fork` and `exec` to let exactly one child inherit `fd`.
pub fn set_cloexec(fd: libc::c_int, on: bool) -> io::Result<()> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD takes an integer and touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits for any child of the calling process to exit *without reaping it*
/// (`waitid(P_ALL, WEXITED | WNOWAIT)`): its pid. The caller reaps it with
/// [`try_reap`] once it has recorded that the pid is about to stop being its own.
/// `Err(ECHILD)` when there is no child.
pub fn wait_any_exited() -> io::Result<u32> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; P_ALL ignores the id.
        let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 {
            // SAFETY: waitid filled `info` for an exited child (si_pid is valid).
            return Ok(unsafe { info.si_pid() } as u32);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
