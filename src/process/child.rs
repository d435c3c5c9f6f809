//! [`Process`], [`ProcessBuilder`] and the fork machinery the pool shares.

use super::exit::{exit_child, IntoExitCode, PANIC_EXIT_CODE};
use super::record::ChildInner;
use super::start::{self, Job, StartMethod};
use super::{current, forkserver, registry};
use crate::sys::process as os;
use crate::{Error, Result};
use std::fmt;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A child process started by [`Process::fork`], [`ProcessBuilder::fork`] or
/// [`ProcessBuilder::start`] (Python's `multiprocessing.Process`, with `start()`
/// folded into `fork`/`start`). It behaves the same whatever its
/// [`StartMethod`]; a child of the fork server is that server's child, so its exit
/// code is relayed by the server rather than reaped here.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Process;
/// let p = Process::fork(|| println!("hello from the child"))?;
/// assert_eq!(p.join()?, 0);
///
/// let q = Process::fork(|| 3)?;                  // the closure's i32 is the exit code
/// assert_eq!(q.join()?, 3);
///
/// let r = Process::fork(|| std::thread::sleep(std::time::Duration::from_secs(60)))?;
/// r.terminate()?;                                // SIGTERM
/// assert_eq!(r.join()?, -15);                    // Python's exitcode: -N for signal N
/// # Ok(()) }
/// ```
///
/// ## Exit codes
/// [`exitcode`](Process::exitcode) and [`join`](Process::join) follow Python: the
/// child's exit status for a normal exit, `-N` when it was killed by signal `N`. A
/// closure that panics ends the child with [`PANIC_EXIT_CODE`] (1) after the panic
/// message is printed on the child's stderr.
///
/// ## Dropping a handle
/// Like Python, dropping a `Process` does **not** kill the child. If the child still
/// runs when its last handle drops, a background thread (`multiproc-reaper`, started
/// on demand, gone once it has nothing to do) reaps it when it exits, so it never
/// stays a zombie for more than ~100 ms. At normal exit of this process, daemon
/// children are SIGKILLed and non-daemon children are waited for (Python's
/// behaviour); see [`ProcessBuilder::daemon`].
///
/// Handles are `Clone` (all clones name the same child), `Send` and `Sync`; `join`
/// may be called from several threads and any number of times.
#[derive(Clone)]
pub struct Process {
    /// Dropped by hand in `Drop`, so that an orphaned child is reported only once
    /// this handle no longer counts.
    inner: ManuallyDrop<Arc<ChildInner>>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.inner.name)
            .field("pid", &self.inner.pid)
            .field("daemon", &self.inner.daemon)
            .field("exitcode", &self.exitcode())
            .finish()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: `inner` is taken exactly once, here, and never used again.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        // The last handle (the registry holds the other reference) of a running child.
        let orphan = Arc::strong_count(&inner) <= 2 && matches!(inner.poll(), Ok(None));
        drop(inner);
        if orphan {
            registry::orphaned();
        }
    }
}

impl Process {
    pub(crate) fn from_inner(inner: Arc<ChildInner>) -> Process {
        Process {
            inner: ManuallyDrop::new(inner),
        }
    }

    /// Forks a child that runs `f` and exits with its [`IntoExitCode`] code (a
    /// panic: exit code 1). Shorthand for `ProcessBuilder::new().fork(f)`.
    ///
    /// The child is a copy of this process in which **only the calling thread
    /// exists**: see the [module documentation](crate::process#fork-only-the-calling-thread-survives).
    /// This is always a fork, whatever the default start method: in a program with
    /// other threads, prefer [`ProcessBuilder::start`] with a `fn`, which uses
    /// [`StartMethod::ForkServer`] there by default.
    /// The child never returns into the caller's code: after `f` it reaps its own
    /// children, flushes stdout and stderr and calls `_exit`.
    ///
    /// A closure that never returns (it ends in `std::process::exit`, say) needs its
    /// return type spelled out: `Process::fork(|| -> i32 { std::process::exit(3) })`.
    pub fn fork<F, R>(f: F) -> Result<Process>
    where
        F: FnOnce() -> R,
        R: IntoExitCode,
    {
        ProcessBuilder::new().fork(f)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The child's name (`Process-N` unless set with [`ProcessBuilder::name`]).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// True for a daemon child (see [`ProcessBuilder::daemon`]).
    pub fn daemon(&self) -> bool {
        self.inner.daemon
    }

    /// Waits for the child to exit and returns its exit code (`-N` if killed by
    /// signal `N`). Reaps it: no zombie is left. Calling it again returns the same code.
    pub fn join(&self) -> Result<i32> {
        Ok(self.inner.wait()?)
    }

    /// Waits at most `timeout`: `Ok(Some(exitcode))`, or `Ok(None)` if it still runs.
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>> {
        Ok(self.inner.wait_timeout(timeout)?)
    }

    /// True until the child has exited (reaps it if it has).
    pub fn is_alive(&self) -> bool {
        matches!(self.inner.poll(), Ok(None))
    }

    /// The exit code once the child has exited (Python's `exitcode`): `None` while it
    /// runs; `-N` if it was killed by signal `N`. Never blocks.
    pub fn exitcode(&self) -> Option<i32> {
        self.inner.poll().ok().flatten()
    }

    /// Sends SIGTERM (Python's `terminate()`): the child ends without running its
    /// destructors, and [`exitcode`](Process::exitcode) becomes -15. Does nothing if
    /// the child has already been reaped. Follow with [`join`](Process::join).
    pub fn terminate(&self) -> Result<()> {
        Ok(self.inner.signal(libc::SIGTERM)?)
    }

    /// Sends SIGKILL (Python's `kill()`); [`exitcode`](Process::exitcode) becomes -9.
    pub fn kill(&self) -> Result<()> {
        Ok(self.inner.signal(libc::SIGKILL)?)
    }

    /// Sends an arbitrary signal, if the child has not been reaped yet.
    pub fn signal(&self, sig: i32) -> Result<()> {
        Ok(self.inner.signal(sig)?)
    }
}

/// Options for a child process: its name and whether it is a daemon.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::{current_process, ProcessBuilder};
/// let p = ProcessBuilder::new()
///     .name("worker-A")
///     .fork(|| assert_eq!(current_process().name(), "worker-A"))?;
/// assert_eq!(p.name(), "worker-A");
/// assert_eq!(p.join()?, 0);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ProcessBuilder {
    name: Option<String>,
    daemon: bool,
    start_method: Option<StartMethod>,
    executable: Option<PathBuf>,
}

impl ProcessBuilder {
    /// A non-daemon child with the default name (`Process-N`).
    pub fn new() -> ProcessBuilder {
        ProcessBuilder::default()
    }

    /// The child's name, as [`current_process`](super::current_process) reports it
    /// inside the child and [`Process::name`] outside.
    pub fn name(mut self, name: impl Into<String>) -> ProcessBuilder {
        self.name = Some(name.into());
        self
    }

    /// A daemon child dies with its parent (Python's `daemon=True`):
    /// * when the parent exits normally (returns from `main`, calls
    ///   `std::process::exit`, or a child of ours returns from its closure), its
    ///   daemon children are SIGKILLed and reaped, by an `atexit` hook;
    /// * when the parent dies any other way (SIGKILL, crash), the kernel SIGKILLs the
    ///   child (`PR_SET_PDEATHSIG`). If the parent is already gone by the time the
    ///   child has set this up, the child kills itself at once.
    ///
    /// Linux ties `PR_SET_PDEATHSIG` to the *thread* that forked: fork daemon children
    /// from a thread that lives as long as they should (normally the main thread),
    /// because they are killed when that thread exits.
    pub fn daemon(mut self, daemon: bool) -> ProcessBuilder {
        self.daemon = daemon;
        self
    }

    /// Forks the child, which runs `f` and exits with its code (see [`Process::fork`]).
    pub fn fork<F, R>(self, f: F) -> Result<Process>
    where
        F: FnOnce() -> R,
        R: IntoExitCode,
    {
        let (identity, default_name) = current::next_child("Process");
        let name = self.name.unwrap_or(default_name);
        let daemon = self.daemon;
        let child_name = name.clone();
        let pid = fork_child(child_name, identity, daemon, move || {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(r) => r.into_exit_code(),
                // The panic hook has printed the message on stderr.
                Err(_) => PANIC_EXIT_CODE,
            }
        })
        .map_err(|e| Error::Io(io::Error::new(e.kind(), format!("fork failed: {e}"))))?;
        let inner = Arc::new(ChildInner::own(pid, name, daemon));
        registry::register(inner.clone());
        Ok(Process::from_inner(inner))
    }

    /// The start method for [`start`](ProcessBuilder::start) (default: the
    /// process-wide one, see [`set_start_method`](crate::set_start_method)).
    pub fn start_method(mut self, m: StartMethod) -> ProcessBuilder {
        self.start_method = Some(m);
        self
    }

    /// The executable a [`Spawn`](StartMethod::Spawn)ed child runs (Python's
    /// `set_executable`; default `/proc/self/exe`, this very program). It must be
    /// the same file as this program's: a child that finds another executable
    /// refuses to run, and `start` returns the reason.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> ProcessBuilder {
        self.executable = Some(path.into());
        self
    }

    /// Starts a child that runs `f(arg)` and exits with its [`IntoExitCode`] code,
    /// with this builder's [start method](ProcessBuilder::start_method):
    /// * [`Fork`](StartMethod::Fork): as [`fork`](ProcessBuilder::fork);
    /// * [`Spawn`](StartMethod::Spawn): re-executes this program, which runs `f`
    ///   before `main` (see [`init`](crate::init));
    /// * [`ForkServer`](StartMethod::ForkServer): the fork server forks the child.
    ///
    /// `arg` is serialized (postcard) and `f` must be a plain `fn`: with `Spawn` and
    /// `ForkServer` the child does not share this process's memory. The returned
    /// [`Process`] behaves the same for every method (join, exit codes, signals,
    /// daemon).
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// use multiproc::{ProcessBuilder, StartMethod};
    /// fn work(n: u32) -> i32 { n as i32 + 1 }
    /// let p = ProcessBuilder::new().start_method(StartMethod::ForkServer).start(work, 41)?;
    /// assert_eq!(p.join()?, 42);
    /// # Ok(()) }
    /// ```
    pub fn start<A, R>(self, f: fn(A) -> R, arg: A) -> Result<Process>
    where
        A: serde::Serialize + serde::de::DeserializeOwned,
        R: IntoExitCode,
    {
        let method = self.start_method.unwrap_or_else(start::get_start_method);
        if method == StartMethod::Fork {
            return self.fork(move || f(arg));
        }
        let (identity, default_name) = current::next_child("Process");
        let name = self.name.unwrap_or(default_name);
        let daemon = self.daemon;
        let job = Job::new(f, &arg, name.clone(), identity, daemon)?;
        let inner = if method == StartMethod::Spawn {
            let pid = start::spawn(&job, self.executable.as_deref())?;
            ChildInner::own(pid, name, daemon)
        } else {
            let (pid, relay) = forkserver::start_child(job)?;
            ChildInner::relayed(pid, name, daemon, relay)
        };
        let inner = Arc::new(inner);
        registry::register(inner.clone());
        Ok(Process::from_inner(inner))
    }
}

/// Forks a child that becomes `name`, runs `body` and exits with its code; returns
/// the child's pid in the parent. The child never returns from this function.
///
/// stdout and stderr are flushed before the fork (or buffered output would be printed
/// twice) and their locks are held across it, so that the child never inherits them
/// locked by a thread that does not exist there.
pub(crate) fn fork_child(
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    body: impl FnOnce() -> i32,
) -> io::Result<u32> {
    let parent = crate::sys::ident::getpid();
    let out = io::stdout();
    let err = io::stderr();
    let mut out_guard = out.lock();
    let err_guard = err.lock();
    let _ = out_guard.flush();
    // SAFETY: the child runs only `child_main`, which ends in `_exit`; the stdio locks
    // are held by this thread, which is the one thread that exists in the child.
    let forked = unsafe { os::fork() };
    drop(err_guard);
    drop(out_guard);
    match forked? {
        os::Forked::Parent(pid) => Ok(pid),
        os::Forked::Child => child_main(parent, name, identity, daemon, body),
    }
}

fn child_main(
    parent: u32,
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    body: impl FnOnce() -> i32,
) -> ! {
    current::become_child(name, identity, daemon);
    if daemon {
        if os::set_parent_death_signal(libc::SIGKILL).is_err() {
            // Without the kernel's guarantee a daemon could outlive its parent.
            os::exit_now(PANIC_EXIT_CODE);
        }
        // The parent may have died before prctl took effect: then nobody will signal us.
        if os::getppid() != parent {
            os::kill_self();
        }
    }
    // Whatever happens in `body`, the child must not unwind into the caller's code.
    let code =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(PANIC_EXIT_CODE);
    exit_child(code)
}
