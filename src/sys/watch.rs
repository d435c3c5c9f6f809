//! The death watcher: a futex wake-up on a shared word as soon as a thread or process
//! that a local waiter waits for exits, so that waiters sleep on their futex word
//! alone and still learn of a death within a fraction of a millisecond.
//!
//! ## Why a thread
//! A waiter cannot sleep on a futex word and on a file descriptor in one syscall, and
//! waking up every few hundred µs to poll costs CPU for as long as a *live* holder
//! keeps the object. So each process has one lazily started thread that `poll`s the
//! `pidfd`s of the threads (`PIDFD_THREAD`, Linux 6.9) or processes that its local
//! waiters wait for. When one becomes readable (the kernel makes it so when the task
//! has exited: `exit_state` set, after `PF_EXITING`, so `/proc` already tells the
//! same story), the watcher marks the waiters' [`Watch`]es fired and does a *shared*
//! futex wake on each word they sleep on. A woken waiter probes at once (the same
//! `/proc` check as its timed probes), so a watch only ever brings a probe forward:
//! it never declares anyone dead by itself.
//!
//! ## Falling back
//! Every way a watch can fail to start leaves the waiter with its timed probes (the
//! probe interval stays the upper bound): no pidfd support (`ENOSYS`, or `EINVAL`
//! for `PIDFD_THREAD` on a kernel before 6.9 and a TID that is not a process), the
//! task already gone (`ESRCH`: the waiter's probe right after finds it dead), no
//! descriptors left (`EMFILE`), no thread (spawn failed).
//!
//! ## Identity
//! A pidfd names the task it was opened on, never a later task with the same id, so a
//! watch cannot be fooled by reuse *after* it was opened. A waiter opens it first and
//! probes `/proc` (start time included) *after*: a holder that died, or whose TID was
//! reused, before the watch existed is found by that probe.
//!
//! ## fork
//! A forked child has no watcher thread (fork copies only the calling thread). The
//! watcher records the pid it was started in; a process whose pid differs starts its
//! own, leaving the parent's (whose lock may have been held by a thread that does not
//! exist here) untouched except for closing its wake-up descriptor.
//!
//! ## Lifetimes
//! A [`Watch`] borrows the word it wakes; the watcher wakes words only while holding
//! the state lock, and dropping a `Watch` unregisters it under the same lock, so a
//! wake never reaches a word whose borrow has ended.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

pub use super::ident::Task;

/// `PIDFD_THREAD` (= `O_EXCL`): the pidfd reports the exit of the thread, not of its
/// whole thread group (Linux 6.9).
const PIDFD_THREAD: libc::c_int = libc::O_EXCL;

/// One waiter's registration: the word to wake and the tasks it waits for.
#[derive(Debug)]
struct Entry {
    /// Address of the futex word (valid while the entry is registered).
    word: usize,
    tasks: Vec<Task>,
    /// The id of the first watched task seen exiting; 0 until then.
    fired: AtomicU32,
}

/// A pidfd the watcher polls, shared by every entry that watches its task.
#[derive(Debug)]
struct Pidfd {
    task: Task,
    fd: OwnedFd,
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Arc<Entry>>,
    pidfds: Vec<Pidfd>,
}

/// The per-process watcher.
#[derive(Debug)]
struct Watcher {
    /// The process this watcher's thread runs in.
    pid: u32,
    /// An eventfd: written when a pidfd is added, so that the thread polls it too.
    kick: OwnedFd,
    state: Mutex<State>,
    /// [`STARTING`], [`RUNNING`] or [`FAILED`] (its thread could not be spawned).
    thread: AtomicU32,
}

const STARTING: u32 = 0;
const RUNNING: u32 = 1;
const FAILED: u32 = 2;

/// The watcher of the current process (leaked: it lives as long as the process).
static WATCHER: AtomicPtr<Watcher> = AtomicPtr::new(core::ptr::null_mut());

/// A registration with the death watcher; unregistered on drop. See the module docs.
#[derive(Debug)]
pub struct Watch<'a> {
    entry: Arc<Entry>,
    watcher: &'static Watcher,
    _word: PhantomData<&'a AtomicU32>,
}

impl Watch<'_> {
    /// The id of a watched task that exited (the first seen), if any.
    #[inline]
    pub fn fired(&self) -> Option<u32> {
        match self.entry.fired.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// True if this watch is on exactly `tasks` (in order), fired or not.
    #[inline]
    pub fn covers(&self, tasks: &[Task]) -> bool {
        self.entry.tasks == tasks
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.watcher.state);
        s.entries.retain(|e| !Arc::ptr_eq(e, &self.entry));
        // Pidfds no entry needs any more are closed by the watcher thread on its next
        // pass (it may be polling them right now).
    }
}

/// Asks for a shared futex wake on `word` (and [`Watch::fired`]) as soon as any of
/// `tasks` exits. `None` when nothing could be watched (see "Falling back"): the
/// caller keeps probing on its schedule. Ids 0 and above `MAX_TID` are skipped.
pub fn watch<'a>(word: &'a AtomicU32, tasks: &[Task]) -> Option<Watch<'a>> {
    let tasks: Vec<Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.id() != 0 && t.id() <= super::ident::MAX_TID)
        .collect();
    if tasks.is_empty() {
        return None;
    }
    let watcher = watcher()?;
    let entry = Arc::new(Entry {
        word: word.as_ptr() as usize,
        tasks,
        fired: AtomicU32::new(0),
    });
    let mut s = lock(&watcher.state);
    let mut added = false;
    let mut watched = 0;
    for &task in &entry.tasks {
        if s.pidfds.iter().any(|p| p.task == task) {
            watched += 1;
            continue;
        }
        match pidfd_open(task) {
            Ok(fd) => {
                s.pidfds.push(Pidfd { task, fd });
                added = true;
                watched += 1;
            }
            Err(libc::ESRCH) => {
                // Already gone: the caller's probe after this finds it.
                entry.fired.store(task.id(), Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }
    if watched == 0 && entry.fired.load(Ordering::Relaxed) == 0 {
        return None;
    }
    s.entries.push(entry.clone());
    drop(s);
    if added {
        kick(watcher);
    }
    Some(Watch {
        entry,
        watcher,
        _word: PhantomData,
    })
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent at every unlock (no code in it can panic halfway).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process's watcher, started if need be; `None` if it cannot run.
fn watcher() -> Option<&'static Watcher> {
    let pid = super::ident::getpid();
    let cur = WATCHER.load(Ordering::Acquire);
    // SAFETY: a non-null WATCHER points at a leaked Watcher that is never freed.
    if let Some(w) = unsafe { cur.as_ref() } {
        if w.pid == pid {
            return (w.thread.load(Ordering::Relaxed) != FAILED).then_some(w);
        }
    }
    start(pid, cur)
}

/// True if this process runs a death-watcher thread. It is fork-safe (a child never
/// touches its lock or state, and starts its own), so callers that count threads to
/// decide whether `fork` is safe may leave it out.
pub fn runs_here() -> bool {
    // SAFETY: a non-null WATCHER points at a leaked Watcher that is never freed.
    unsafe { WATCHER.load(Ordering::Acquire).as_ref() }.is_some_and(|w| {
        w.pid == super::ident::getpid() && w.thread.load(Ordering::Relaxed) == RUNNING
    })
}

#[cold]
fn start(pid: u32, old: *mut Watcher) -> Option<&'static Watcher> {
    // SAFETY: eventfd takes a count and flags and returns a new descriptor.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let kick = unsafe { OwnedFd::from_raw_fd(fd) };
    let new = Box::into_raw(Box::new(Watcher {
        pid,
        kick,
        state: Mutex::new(State::default()),
        thread: AtomicU32::new(STARTING),
    }));
    if let Err(now) = WATCHER.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
        // Another thread started one first: use it.
        // SAFETY: `new` was never shared; `now` is non-null (it replaced `old`, and
        // nobody stores null) and leaked like every watcher.
        unsafe {
            drop(Box::from_raw(new));
            return now.as_ref();
        }
    }
    // SAFETY: `new` is now published and never freed.
    let w: &'static Watcher = unsafe { &*new };
    if let Some(old) = std::ptr::NonNull::new(old) {
        // SAFETY: leaked, never freed; this is a forked child (pid differs), where no
        // thread of the parent runs, so only its descriptors are ours to tidy. Its
        // pidfds sit behind a lock a vanished thread may hold: taken only if free.
        let old = unsafe { old.as_ref() };
        if let Ok(mut s) = old.state.try_lock() {
            s.pidfds.clear();
        }
        // SAFETY: the parent's eventfd, inherited; nothing in this process uses it,
        // and the leaked OwnedFd holding it is never dropped (no double close).
        unsafe { libc::close(old.kick.as_raw_fd()) };
    }
    let spawned = std::thread::Builder::new()
        .name("multiproc-death-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || run(w));
    let ok = spawned.is_ok();
    w.thread
        .store(if ok { RUNNING } else { FAILED }, Ordering::Relaxed);
    ok.then_some(w)
}

/// Makes the watcher thread rebuild its poll set.
fn kick(w: &Watcher) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to our eventfd.
    unsafe { libc::write(w.kick.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// `pidfd_open(2)` on a thread (`PIDFD_THREAD`) or process; `Err(errno)`.
fn pidfd_open(task: Task) -> Result<OwnedFd, i32> {
    let open = |id: u32, flags: libc::c_int| {
        // SAFETY: pidfd_open takes an id and flags and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, id as libc::pid_t, flags) };
        if fd < 0 {
            Err(super::errno())
        } else {
            // SAFETY: a fresh descriptor owned by nobody else (pidfds are CLOEXEC).
            Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        }
    };
    match task {
        Task::Process(pid) => open(pid, 0),
        Task::Thread(tid) => open(tid, PIDFD_THREAD),
    }
}

/// The watcher thread: poll the pidfds, fire the entries of tasks that exited.
fn run(w: &'static Watcher) {
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        fds.clear();
        fds.push(libc::pollfd {
            fd: w.kick.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        {
            let mut s = lock(&w.state);
            let State { entries, pidfds } = &mut *s;
            pidfds.retain(|p| entries.iter().any(|e| e.tasks.contains(&p.task)));
            fds.extend(pidfds.iter().map(|p| libc::pollfd {
                fd: p.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }));
        }
        // SAFETY: `fds` holds fds.len() valid pollfds; the pidfds stay open while we
        // poll (only this thread closes them).
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            continue; // EINTR (or ENOMEM: try again)
        }
        if fds[0].revents != 0 {
            let mut n: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 (non-blocking: drains the count).
            unsafe { libc::read(w.kick.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
        }
        let exited: Vec<RawFd> = fds[1..]
            .iter()
            .filter(|p| p.revents != 0)
            .map(|p| p.fd)
            .collect();
        if exited.is_empty() {
            continue;
        }
        let mut s = lock(&w.state);
        let State { entries, pidfds } = &mut *s;
        pidfds.retain(|p| {
            if !exited.contains(&p.fd.as_raw_fd()) {
                return true;
            }
            for e in entries.iter().filter(|e| e.tasks.contains(&p.task)) {
                let _ =
                    e.fired
                        .compare_exchange(0, p.task.id(), Ordering::Release, Ordering::Relaxed);
                // SAFETY: the entry is registered, so the `Watch` that borrows its word
                // is alive (it unregisters under this lock before its borrow ends).
                let word = unsafe { &*(e.word as *const AtomicU32) };
                super::futex::wake_all(word);
            }
            false // closes the pidfd: its task is gone
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_thread_that_exits_fires_its_watch_and_wakes_the_word() {
        let word = AtomicU32::new(0);
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(super::super::ident::gettid()).unwrap();
            let _ = go_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let w = watch(&word, &[Task::Thread(tid)]).expect("pidfd_open(PIDFD_THREAD)");
        assert_eq!(w.fired(), None, "a live thread is not reported");
        drop(go_tx);
        t.join().unwrap();
        let t0 = Instant::now();
        while w.fired().is_none() {
            // The wake ends this wait; the timeout only bounds a broken watcher.
            super::super::futex::wait(
                &word,
                0,
                Some(crate::sys::clock::Instant::now().add(Duration::from_millis(100))),
            );
            assert!(t0.elapsed() < Duration::from_secs(10), "watch never fired");
        }
        assert_eq!(w.fired(), Some(tid));
    }

    #[test]
    fn a_live_thread_of_this_process_is_never_reported() {
        let word = AtomicU32::new(0);
        let me = super::super::ident::gettid();
        let w = watch(
            &word,
            &[Task::Thread(me), Task::Process(std::process::id())],
        )
        .expect("watch");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(w.fired(), None);
        assert!(w.covers(&[Task::Thread(me), Task::Process(std::process::id())]));
    }

    #[test]
    fn ids_that_cannot_be_tasks_are_not_watched() {
        let word = AtomicU32::new(0);
        assert!(watch(&word, &[Task::Thread(0), Task::Process(u32::MAX)]).is_none());
    }
}
