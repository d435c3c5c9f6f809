//! Start methods: how a child process comes to exist — Python's `fork`, `spawn` and
//! `forkserver`.
//!
//! ## The job
//! A child started with [`Spawn`](StartMethod::Spawn) or
//! [`ForkServer`](StartMethod::ForkServer) runs a *job*: a `fn(A) -> R` and its
//! postcard-encoded argument, its name, identity and daemon flag. Function pointers
//! travel as offsets from [`anchor`], a function of this crate, so they survive the
//! address-space randomisation of a fresh `exec`; they are only meaningful in the
//! same executable, which the spawned child checks (see [`Fingerprint`]) before it
//! calls anything.
//!
//! ## Spawn
//! The parent writes the job into a private `memfd` and starts `/proc/self/exe` with
//! `MULTIPROC_SPAWN=<job fd>:<reply fd>` in its environment; only that child inherits
//! the two descriptors (`FD_CLOEXEC` is cleared between its `fork` and `exec`). In the
//! child, [`dispatch`] — called by an `.init_array` constructor before `main`, and by
//! [`init`] — reads the job, checks the executable, answers `K` (running) or `E` and
//! a message (refused) on the reply pipe, runs the job and exits. The user's `main`
//! never runs in a spawned child.

use super::current;
use super::exit::{exit_child, IntoExitCode, PANIC_EXIT_CODE};
use crate::sys::process as os;
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How a child process is started (Python's start methods, with their meanings).
///
/// | method | how | cost | threads of the caller |
/// |---|---|---|---|
/// | `Fork` | `fork(2)` of the caller | cheapest | their locks are copied, possibly held: a child can hang |
/// | `Spawn` | re-executes `/proc/self/exe`, which runs the function before `main` | an `exec` and a fresh start per child | irrelevant |
/// | `ForkServer` | a server process, started while the program was single-threaded (or spawned), forks each child | one request round trip | irrelevant |
///
/// `Spawn` and `ForkServer` run `fn` pointers with serde arguments (a closure cannot
/// cross an `exec`), and the child starts from a fresh copy of the program's
/// statics, not from the caller's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StartMethod {
    /// `fork(2)` the calling process (only the calling thread exists in the child).
    Fork,
    /// Re-execute the current executable and run the function in it.
    Spawn,
    /// Ask a single-threaded fork server to fork the child.
    ForkServer,
}

const AUTO: u8 = 0;
static DEFAULT: AtomicU8 = AtomicU8::new(AUTO);

fn to_u8(m: StartMethod) -> u8 {
    match m {
        StartMethod::Fork => 1,
        StartMethod::Spawn => 2,
        StartMethod::ForkServer => 3,
    }
}

/// Sets the process-wide default start method (Python's `set_start_method`), used
/// by [`ProcessBuilder::start`](super::ProcessBuilder::start) and [`Pool`](super::Pool)
/// when they are not given one.
///
/// Without a call the default is chosen at each start: [`StartMethod::Fork`] while
/// the calling process has exactly one thread, [`StartMethod::ForkServer`] once it
/// has more — so other threads can never leave a lock held in a child.
pub fn set_start_method(m: StartMethod) {
    DEFAULT.store(to_u8(m), Ordering::Relaxed);
}

/// The start method the default resolves to right now (see [`set_start_method`]).
pub fn get_start_method() -> StartMethod {
    match DEFAULT.load(Ordering::Relaxed) {
        1 => StartMethod::Fork,
        2 => StartMethod::Spawn,
        3 => StartMethod::ForkServer,
        _ => {
            if only_thread() {
                StartMethod::Fork
            } else {
                StartMethod::ForkServer
            }
        }
    }
}

/// True when no default was set with [`set_start_method`].
pub(crate) fn default_is_automatic() -> bool {
    DEFAULT.load(Ordering::Relaxed) == AUTO
}

/// The number of threads of the calling process (`Threads:` in `/proc/self/status`).
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// True when the calling thread is the process's only one, not counting the death
/// watcher (`crate::sys::watch`), which is fork-safe: a child never touches its state.
pub(crate) fn only_thread() -> bool {
    let ours = usize::from(crate::sys::watch::runs_here());
    thread_count().map(|n| n.saturating_sub(ours)) == Some(1)
}

/// Environment variable that marks a spawned child: `<job fd>:<reply fd>`.
pub(crate) const SPAWN_ENV: &str = "MULTIPROC_SPAWN";

/// Exit code of a spawned child that refused its job (other executable, bad job).
pub const SPAWN_REFUSED_EXIT_CODE: i32 = 121;

/// The constructor that dispatches spawned children before `main`. `#[used]` keeps
/// it in this crate's object file, and [`spawn`] names it, so that every binary that
/// can spawn also links the code that receives the spawn.
#[used]
#[link_section = ".init_array"]
pub(crate) static SPAWN_CONSTRUCTOR: extern "C" fn() = spawn_constructor;

extern "C" fn spawn_constructor() {
    dispatch();
}

/// A function of this crate from which function pointers are measured.
#[inline(never)]
pub(crate) fn anchor() -> usize {
    // Distinct body, so that the linker never folds it into another function.
    std::hint::black_box(0x6d70_616e_6368_6f72)
}

/// `f` as an offset from [`anchor`].
pub(crate) fn to_offset(f: usize) -> u64 {
    f.wrapping_sub(anchor as fn() -> usize as usize) as u64
}

/// The address of the function at `offset` from [`anchor`] in this executable.
pub(crate) fn from_offset(offset: u64) -> usize {
    (anchor as fn() -> usize as usize).wrapping_add(offset as usize)
}

/// The identity of an executable file: device, inode, size and modification time of
/// what `/proc/self/exe` names. A spawned child refuses to run when its own differs
/// from its parent's: a function offset only means the same function in the same
/// file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Fingerprint {
    fn of(path: &Path) -> io::Result<Fingerprint> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Fingerprint {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }

    fn mine() -> io::Result<Fingerprint> {
        Fingerprint::of(Path::new("/proc/self/exe"))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device {} inode {}, {} bytes, modified {} ns",
            self.dev, self.ino, self.size, self.mtime_ns
        )
    }
}

/// What a spawned or fork-server child runs.
#[derive(Serialize, Deserialize)]
pub(crate) struct Job {
    /// Offset of the `fn(usize, &[u8]) -> i32` runner that decodes and calls `f`.
    pub runner: u64,
    /// Offset of the user's function.
    pub f: u64,
    pub arg: Vec<u8>,
    pub name: String,
    pub identity: Vec<u32>,
    pub daemon: bool,
    /// The process that must be our parent (daemon children check it).
    pub parent: u32,
    /// The parent's executable.
    pub exe: Fingerprint,
}

/// Calls a job's function: `f` is a `fn(A) -> R`, `arg` its postcard encoding.
pub(crate) type Runner = fn(usize, &[u8]) -> i32;

/// The runner for `fn(A) -> R`.
pub(crate) fn run_entry<A: DeserializeOwned, R: IntoExitCode>(f: usize, arg: &[u8]) -> i32 {
    // SAFETY: `f` was made from a `fn(A) -> R` by `Job::new::<A, R>`, which pairs it
    // with exactly this instantiation, in this executable (checked by fingerprint).
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    let a = match postcard::from_bytes::<A>(arg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "multiproc: could not decode the argument as {}: {e}",
                std::any::type_name::<A>()
            );
            return PANIC_EXIT_CODE;
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(a))) {
        Ok(r) => r.into_exit_code(),
        Err(_) => PANIC_EXIT_CODE,
    }
}

impl Job {
    /// The job running `f(arg)` as child `name`.
    pub fn new<A: Serialize + DeserializeOwned, R: IntoExitCode>(
        f: fn(A) -> R,
        arg: &A,
        name: String,
        identity: Vec<u32>,
        daemon: bool,
    ) -> Result<Job> {
        let arg = postcard::to_allocvec(arg).map_err(|e| {
            Error::invalid(format!(
                "the argument of process '{name}' could not be serialized as {}: {e}",
                std::any::type_name::<A>()
            ))
        })?;
        Ok(Job {
            runner: to_offset(run_entry::<A, R> as Runner as usize),
            f: to_offset(f as usize),
            arg,
            name,
            identity,
            daemon,
            parent: crate::sys::ident::getpid(),
            exe: my_fingerprint()?,
        })
    }
}

fn my_fingerprint() -> Result<Fingerprint> {
    Fingerprint::mine().map_err(|e| {
        Error::Io(io::Error::new(
            e.kind(),
            format!("cannot identify this executable (/proc/self/exe): {e}"),
        ))
    })
}

/// Runs `job` in this (new, single-threaded) child and exits; `reply` (spawned
/// children) is told `K` once the child has become who the job says.
pub(crate) fn run_job(job: Job, reply: Option<File>) -> ! {
    if job.daemon {
        if os::set_parent_death_signal(libc::SIGKILL).is_err() {
            refuse(
                reply,
                "PR_SET_PDEATHSIG failed: a daemon could outlive its parent",
            );
        }
        // The parent may have died before prctl took effect: then nobody will signal us.
        if os::getppid() != job.parent {
            os::kill_self();
        }
    }
    current::become_child(job.name, job.identity, job.daemon);
    if let Some(mut r) = reply {
        let _ = r.write_all(b"K");
    }
    let runner = from_offset(job.runner);
    // SAFETY: `runner` is the offset of a `Runner` in the parent's executable, which
    // is this one (fork server: a fork of it; spawn: checked by `dispatch`).
    let runner = unsafe { std::mem::transmute::<usize, Runner>(runner) };
    let f = from_offset(job.f);
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner(f, &job.arg)))
        .unwrap_or(PANIC_EXIT_CODE);
    exit_child(code)
}

fn refuse(reply: Option<File>, msg: &str) -> ! {
    eprintln!("multiproc: spawned child refused to run: {msg}");
    if let Some(mut r) = reply {
        let mut m = b"E".to_vec();
        m.extend_from_slice(msg.as_bytes());
        let _ = r.write_all(&m);
    }
    let _ = io::stderr().flush();
    os::exit_now(SPAWN_REFUSED_EXIT_CODE)
}

/// In a spawned child: runs its job and exits. Elsewhere: returns at once.
pub(crate) fn dispatch() {
    let Some(v) = std::env::var_os(SPAWN_ENV) else {
        return;
    };
    // Not for our own children: they get their own variable.
    std::env::remove_var(SPAWN_ENV);
    let v = v.to_string_lossy().into_owned();
    let fds: Vec<i32> = v.split(':').filter_map(|s| s.parse().ok()).collect();
    let [job_fd, reply_fd] = fds[..] else {
        refuse(None, &format!("{SPAWN_ENV}={v:?} is not '<fd>:<fd>'"));
    };
    // SAFETY: the parent passed these two descriptors to this child only, for this.
    let (job_file, reply) = unsafe { (File::from_raw_fd(job_fd), File::from_raw_fd(reply_fd)) };
    let _ = os::set_cloexec(job_fd, true);
    let _ = os::set_cloexec(reply_fd, true);
    let mut bytes = Vec::new();
    let len = job_file.metadata().map(|m| m.len()).unwrap_or(0);
    bytes.resize(len.min(1 << 40) as usize, 0);
    if let Err(e) = job_file.read_exact_at(&mut bytes, 0) {
        refuse(Some(reply), &format!("cannot read the job: {e}"));
    }
    drop(job_file);
    let job: Job = match postcard::from_bytes(&bytes) {
        Ok(j) => j,
        Err(e) => refuse(Some(reply), &format!("the job is unreadable: {e}")),
    };
    match Fingerprint::mine() {
        Ok(me) if me == job.exe => {}
        Ok(me) => refuse(
            Some(reply),
            &format!(
                "its executable ({}, {me}) is not the parent's ({}): a function \
                 pointer means nothing in another build; spawn from the same binary \
                 (restart the parent after rebuilding)",
                exe_path(),
                job.exe
            ),
        ),
        Err(e) => refuse(Some(reply), &format!("cannot identify its executable: {e}")),
    }
    run_job(job, Some(reply))
}

fn exe_path() -> String {
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/proc/self/exe".into())
}

/// How long a spawning parent waits for its child to start running the job.
const SPAWN_HANDSHAKE: Duration = Duration::from_secs(30);

/// Starts a child of `exe` (default `/proc/self/exe`) that runs `job`; returns its
/// pid once it runs the job, or the reason it refused.
pub(crate) fn spawn(job: &Job, exe: Option<&Path>) -> Result<u32> {
    // Keep the constructor that receives this spawn in every binary that spawns.
    std::hint::black_box(&SPAWN_CONSTRUCTOR);
    let bytes = postcard::to_allocvec(job)
        .map_err(|e| Error::invalid(format!("could not encode a spawn job: {e}")))?;
    let mut job_file = crate::sys::shm::anonymous()?;
    job_file.write_all(&bytes)?;
    let (reply_r, reply_w) = os::pipe_cloexec()?;
    let (jfd, wfd) = (job_file.as_raw_fd(), reply_w.as_raw_fd());
    let exe: PathBuf = exe.map_or_else(|| PathBuf::from("/proc/self/exe"), Path::to_path_buf);
    let mut cmd = std::process::Command::new(&exe);
    {
        use std::os::unix::process::CommandExt;
        if let Some(a0) = std::env::args_os().next() {
            cmd.arg0(a0);
        }
        cmd.env(SPAWN_ENV, format!("{jfd}:{wfd}"));
        // SAFETY: the closure runs between fork and exec and only calls fcntl, which
        // is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                os::set_cloexec(jfd, false)?;
                os::set_cloexec(wfd, false)
            });
        }
    }
    let child = cmd.spawn().map_err(|e| {
        Error::Io(io::Error::new(
            e.kind(),
            format!("spawning {} failed: {e}", exe.display()),
        ))
    })?;
    let pid = child.id();
    // The child's handle closes its stdio only; we reap by pid.
    drop(child);
    drop(reply_w);
    drop(job_file);
    match read_reply(reply_r, SPAWN_HANDSHAKE) {
        Ok(Reply::Running) => Ok(pid),
        Ok(r) => {
            let _ = os::signal(pid, libc::SIGKILL);
            let code = reap_blocking(pid);
            Err(Error::invalid(match r {
                Reply::Refused(m) => format!(
                    "spawned process '{}' (pid {pid}) refused to run: {m}",
                    job.name
                ),
                Reply::Silent => format!(
                    "spawned process '{}' (pid {pid}) ended (exit code {code}) before \
                     running its function: does this binary link multiproc's dispatch \
                     (call multiproc::init() first in main)?",
                    job.name
                ),
                Reply::TimedOut => format!(
                    "spawned process '{}' (pid {pid}) did not start its function within \
                     {SPAWN_HANDSHAKE:?}; killed (call multiproc::init() first in main)",
                    job.name
                ),
                Reply::Running => unreachable!(),
            }))
        }
        Err(e) => {
            let _ = os::signal(pid, libc::SIGKILL);
            reap_blocking(pid);
            Err(Error::Io(e))
        }
    }
}

fn reap_blocking(pid: u32) -> i32 {
    loop {
        match os::try_reap(pid) {
            Ok(Some(c)) => return c,
            Ok(None) => {
                let _ = os::wait_exited(pid);
            }
            Err(_) => return -1,
        }
    }
}

enum Reply {
    Running,
    Refused(String),
    /// The pipe closed with nothing said: the child exited (or exec'd something else).
    Silent,
    TimedOut,
}

fn read_reply(fd: OwnedFd, timeout: Duration) -> io::Result<Reply> {
    if !os::poll_readable(&fd, timeout)? {
        return Ok(Reply::TimedOut);
    }
    let mut f = File::from(fd);
    let mut first = [0u8; 1];
    loop {
        match f.read(&mut first) {
            Ok(0) => return Ok(Reply::Silent),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if first[0] == b'K' {
        return Ok(Reply::Running);
    }
    let mut rest = Vec::new();
    let _ = f.take(64 << 10).read_to_end(&mut rest);
    Ok(Reply::Refused(String::from_utf8_lossy(&rest).into_owned()))
}
