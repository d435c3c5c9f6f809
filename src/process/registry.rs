//! Every child this process forked and has not reaped yet, so that no child is left
//! a zombie and daemon children die with us.
//!
//! * [`register`] records each child; the registry holds one `Arc` of it, each
//!   [`Process`](super::Process) handle another.
//! * A child whose last handle dropped while it still ran is an *orphan*: a
//!   background reaper thread (`multiproc-reaper`, started on demand, gone when no
//!   orphans are left) reaps it when it exits, so it is a zombie for at most
//!   [`REAPER_MAX_PAUSE`].
//! * At normal exit (an `atexit` hook in the parent; the same function before `_exit`
//!   in our children) daemon children are SIGKILLed and every child is reaped; the
//!   non-daemon ones are waited for, as Python does.
//!
//! The state is *fork-local*: a forked child sees an empty registry of its own, never
//! the parent's (whose lock another parent thread may have held at `fork` time).

use super::record::ChildInner;
use crate::sys::ident::getpid;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Longest pause of the reaper thread between two looks at its orphans.
pub(crate) const REAPER_MAX_PAUSE: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(crate) struct Registry {
    /// Unreaped children (entries whose status is known are pruned lazily).
    pub children: Vec<Arc<ChildInner>>,
    /// True while a reaper thread runs in this process.
    reaper_running: bool,
}

impl Registry {
    /// Reaps every child that has exited and forgets the reaped ones.
    pub fn prune(&mut self) {
        self.children.retain(|c| matches!(c.poll(), Ok(None)));
    }

    fn has_orphans(&self) -> bool {
        self.children.iter().any(|c| Arc::strong_count(c) == 1)
    }
}

/// A value of which each process has its own copy: a forked child starts from
/// `T::default()` instead of the parent's state (and its possibly-held lock).
pub(crate) struct ForkLocal<T> {
    ptr: AtomicPtr<Slot<T>>,
}

struct Slot<T> {
    pid: u32,
    value: Mutex<T>,
}

impl<T: Default> ForkLocal<T> {
    pub(crate) const fn new() -> Self {
        ForkLocal {
            ptr: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    pub(crate) fn get(&self) -> &Mutex<T> {
        let pid = getpid();
        loop {
            let cur = self.ptr.load(Ordering::Acquire);
            // SAFETY: non-null slots are leaked boxes, never freed (a parent's slot
            // stays valid, if stale, in its children).
            if let Some(slot) = unsafe { cur.as_ref() } {
                if slot.pid == pid {
                    return &slot.value;
                }
            }
            let fresh = Box::into_raw(Box::new(Slot {
                pid,
                value: Mutex::new(T::default()),
            }));
            match self
                .ptr
                .compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: `fresh` was just leaked and is never freed.
                Ok(_) => return unsafe { &(*fresh).value },
                Err(_) => {
                    // Another thread installed a slot first: free ours and retry.
                    // SAFETY: `fresh` came from Box::into_raw and was never shared.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }
}

static REGISTRY: ForkLocal<Registry> = ForkLocal::new();
static AT_EXIT: AtomicBool = AtomicBool::new(false);

/// The registry of the calling process.
pub(crate) fn lock() -> MutexGuard<'static, Registry> {
    REGISTRY.get().lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a freshly forked child (and makes sure the exit hook is installed).
pub(crate) fn register(child: Arc<ChildInner>) {
    if !AT_EXIT.swap(true, Ordering::AcqRel) {
        // Failing to register only loses the at-exit cleanup (PDEATHSIG still holds).
        let _ = crate::sys::process::at_exit(exit_hook);
    }
    let mut r = lock();
    r.prune();
    r.children.push(child);
}

/// Called when a handle of a still-running child drops: makes sure the reaper runs.
pub(crate) fn orphaned() {
    let mut r = lock();
    if r.reaper_running || !r.has_orphans() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("multiproc-reaper".into())
        .spawn(reaper);
    r.reaper_running = spawned.is_ok();
}

fn reaper() {
    let mut pause = Duration::from_millis(1);
    loop {
        std::thread::sleep(pause);
        pause = (pause * 2).min(REAPER_MAX_PAUSE);
        let mut r = lock();
        r.prune();
        if !r.has_orphans() {
            r.reaper_running = false;
            return;
        }
    }
}

extern "C" fn exit_hook() {
    cleanup_at_exit();
}

/// Python's exit behaviour: SIGKILL daemon children, then wait for every child.
pub(crate) fn cleanup_at_exit() {
    // Snapshot, so that no lock is held while waiting.
    let children: Vec<Arc<ChildInner>> = {
        let mut r = lock();
        r.prune();
        r.children.clone()
    };
    for c in children.iter().filter(|c| c.daemon) {
        let _ = c.signal(libc::SIGKILL);
    }
    for c in &children {
        let _ = c.wait();
    }
    lock().prune();
}
