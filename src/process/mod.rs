//! Python's process model: [`Process`] (fork a closure, join it, read its exit code)
//! and, built on this crate's own queues, a process pool.
//!
//! ```
//! # fn main() -> multiproc::Result<()> {
//! use multiproc::{current_process, Process, ProcessBuilder};
//! use std::time::Duration;
//!
//! let p = ProcessBuilder::new().name("worker-A").fork(|| {
//!     println!("Worker start {}", current_process().name());
//! })?;
//! assert_eq!(p.join()?, 0);
//!
//! let slow = Process::fork(|| std::thread::sleep(Duration::from_secs(5)))?;
//! assert_eq!(slow.join_timeout(Duration::from_millis(10))?, None); // still running
//! slow.terminate()?;                                               // SIGTERM
//! assert_eq!(slow.join()?, -15);                                   // -N: killed by signal N
//! # Ok(()) }
//! ```
//!
//! ## Start methods
//! [`Process::fork`] forks a closure. [`ProcessBuilder::start`] runs a `fn` with a
//! serde argument through any [`StartMethod`] — `Fork`, `Spawn` or `ForkServer`,
//! Python's three — and so does the [`Pool`]. The default
//! ([`get_start_method`]; [`set_start_method`] overrides it) is `Fork` while the
//! calling process has exactly one thread, `ForkServer` once it has more: a default
//! start never copies a lock that another thread holds.
//!
//! ```
//! # fn main() -> multiproc::Result<()> {
//! use multiproc::{ProcessBuilder, StartMethod};
//! fn greet(who: String) -> i32 {
//!     println!("hello, {who}");
//!     0
//! }
//! for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
//!     let p = ProcessBuilder::new().start_method(m).start(greet, "world".to_string())?;
//!     assert_eq!(p.join()?, 0);
//! }
//! # Ok(()) }
//! ```
//!
//! ## Fork: only the calling thread survives
//! A `Fork` child is made with `fork(2)`, like Python's `fork` start method, and
//! inherits the same caveat Python documents: *safely forking a multithreaded
//! process is problematic.* The child is a copy of the parent's memory in which only
//! the thread that called `fork` exists. Locks held at that instant by the parent's
//! other threads (a `Mutex`, a channel, a logging or allocator-internal lock of some
//! library) stay locked forever in the child, and that thread's work is simply
//! missing there. So:
//! * do not hold process-local locks across a fork, and do not rely in the child on
//!   state that other threads were in the middle of updating;
//! * fork early (before starting threads) when you can, or use
//!   [`StartMethod::Spawn`] / [`StartMethod::ForkServer`], which never fork this
//!   process;
//! * objects of this crate are safe to use in the child: they live in shared memory
//!   and recover from a holder that vanished (see [`Lock`](crate::Lock)).
//!
//! This crate takes care of its own part: stdout and stderr are flushed before the
//! fork and their locks are held across it (so the child neither prints buffered
//! text twice nor inherits them locked), its bookkeeping is per process, and the
//! child never returns into the caller's code — after the closure it reaps its own
//! children, flushes stdout/stderr and calls `_exit` (no destructors or `atexit`
//! handlers of the parent run twice).
//!
//! ## No zombies
//! [`Process::join`] reaps. A child whose last [`Process`] handle is dropped while it
//! runs is reaped by a short-lived background thread once it exits. At normal exit
//! (an `atexit` hook), daemon children are killed and all children are reaped.

mod child;
mod current;
mod exit;
mod forkserver;
mod pool;
mod record;
mod registry;
mod relay;
mod start;

pub use child::{Process, ProcessBuilder};
pub use current::{current_process, CurrentProcess};
pub use exit::{IntoExitCode, PANIC_EXIT_CODE};
pub use forkserver::forkserver_pid;
#[doc(hidden)]
pub use pool::from_bytes_copying as pool_from_bytes_copying;
pub use pool::{default_chunksize, AsyncResult, Imap, Pool, PoolBuilder, DEFAULT_MAX_MESSAGE_LEN};
pub use start::{
    get_start_method, set_start_method, thread_count, StartMethod, SPAWN_REFUSED_EXIT_CODE,
};

/// Call as the first line of `main`: runs this process's job if it is a spawned
/// child (and never returns then), and starts the fork server while the program is
/// still single-threaded. Harmless if called twice.
///
/// Test binaries and examples do not need it: an `.init_array` constructor of this
/// crate dispatches spawned children before `main` in any binary that links it.
pub fn init() {
    start::dispatch();
    if start::only_thread() {
        forkserver::start_early();
    }
}

/// The number of CPUs this process may run on (honours CPU affinity and cgroup
/// quotas, like Python 3.13's `os.process_cpu_count()`); at least 1.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The live children forked by this process through [`Process`] (Python's
/// `active_children()`). As in Python, it reaps the children that have exited.
pub fn active_children() -> Vec<Process> {
    let mut r = registry::lock();
    r.prune();
    r.children
        .iter()
        .cloned()
        .map(Process::from_inner)
        .collect()
}
