//! `current_process()`: who am I — name, pid, daemon flag — with Python's naming
//! (`MainProcess`, then `Process-1`, `Process-2`, and `Process-1:1` for a child of
//! `Process-1`).

use crate::sys::ident::getpid;
use std::fmt;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// What the calling process knows about itself (Python's `current_process()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
    daemon: bool,
}

impl CurrentProcess {
    /// The process's name: `"MainProcess"` for a process not forked by this crate,
    /// else the name given to [`ProcessBuilder::name`](super::ProcessBuilder::name)
    /// or Python's default `Process-N` (`Process-N:M` for grandchildren).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// True in a child forked with `daemon(true)` (or a pool worker).
    pub fn daemon(&self) -> bool {
        self.daemon
    }
    /// The parent's process id (`getppid`).
    pub fn parent_pid(&self) -> u32 {
        crate::sys::process::getppid()
    }
}

impl fmt::Display for CurrentProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {})", self.name, self.pid)
    }
}

struct Me {
    pid: u32,
    name: String,
    daemon: bool,
    /// Python's `_identity`: the child indexes from the main process down to us.
    identity: Vec<u32>,
    /// How many children this process has named so far.
    children: AtomicU32,
}

/// Leaked, never freed: a stale pointer (a parent's record seen in a child) stays valid.
static ME: AtomicPtr<Me> = AtomicPtr::new(std::ptr::null_mut());

fn me() -> &'static Me {
    let pid = getpid();
    loop {
        let cur = ME.load(Ordering::Acquire);
        // SAFETY: non-null values are leaked boxes, never freed.
        let stale = match unsafe { cur.as_ref() } {
            Some(m) if m.pid == pid => return m,
            other => other,
        };
        // First use, or a copy of a parent made by a plain `fork` that did not go
        // through this crate: keep the inherited name, as Python's `os.fork` does.
        let fresh = Box::into_raw(Box::new(Me {
            pid,
            name: stale.map_or_else(|| "MainProcess".to_owned(), |m| m.name.clone()),
            daemon: stale.is_some_and(|m| m.daemon),
            identity: stale.map_or_else(Vec::new, |m| m.identity.clone()),
            children: AtomicU32::new(0),
        }));
        match ME.compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just leaked; never freed.
            Ok(_) => return unsafe { &*fresh },
            // SAFETY: `fresh` came from Box::into_raw and was never shared.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

/// The calling process's name, pid and daemon flag.
///
/// ```
/// let me = multiproc::current_process();
/// assert_eq!(me.pid(), std::process::id());
/// println!("{} is running", me.name()); // "MainProcess" unless forked by multiproc
/// ```
pub fn current_process() -> CurrentProcess {
    let m = me();
    CurrentProcess {
        name: m.name.clone(),
        pid: m.pid,
        daemon: m.daemon,
    }
}

/// The identity and default name (`{prefix}-1:2`) for the next child of this process.
pub(crate) fn next_child(prefix: &str) -> (Vec<u32>, String) {
    let m = me();
    let n = m.children.fetch_add(1, Ordering::Relaxed) + 1;
    let mut identity = m.identity.clone();
    identity.push(n);
    let digits: Vec<String> = identity.iter().map(u32::to_string).collect();
    let name = format!("{prefix}-{}", digits.join(":"));
    (identity, name)
}

/// In a freshly forked child (single-threaded): records who we now are.
pub(crate) fn become_child(name: String, identity: Vec<u32>, daemon: bool) {
    let fresh = Box::into_raw(Box::new(Me {
        pid: getpid(),
        name,
        daemon,
        identity,
        children: AtomicU32::new(0),
    }));
    // The parent's record is leaked, not freed: nothing else can be reading it here.
    ME.store(fresh, Ordering::Release);
}
