//! Thread identity and a liveness check that tells a reused TID apart from the
//! thread that had it, down to one clock tick.
//!
//! An owner is named by its kernel thread id (TID) plus the thread's start time (in
//! clock ticks since boot, field 22 of `/proc/<tid>/stat`). Both are packed into one
//! `u64` ([`Identity::info`]) so that an owner record is a single atomic store.
//!
//! ## The limit: one clock tick
//! The start time counts clock ticks (`USER_HZ`, 100 per second on Linux: 10 ms), so
//! `(tid, start)` names one thread only if its TID is not handed out again within the
//! same tick. Linux hands TIDs out in increasing order and wraps at `pid_max` (32,768
//! by default, often raised to 4,194,304), so a reuse within 10 ms takes a tiny
//! `pid_max` with that many threads created in the tick, or someone writing
//! `/proc/sys/kernel/ns_last_pid` (a privileged operation). Then the new thread
//! passes for the dead owner: its lock is not recovered while that thread lives (it
//! is, once that thread exits). Exact liveness needs a lock the kernel drops at death
//! (the registry + OFD locks of DESIGN.md).
//!
//! With `std`, the calling thread's identity is cached in a thread-local (`gettid` and
//! the `/proc` read are syscalls); a `pthread_atfork` child handler clears the cache,
//! since a forked child's only thread has a new TID.

/// Largest TID Linux can hand out (`PID_MAX_LIMIT` = 2^22 on 64-bit).
pub const MAX_TID: u32 = (1 << 22) - 1;
const TID_BITS: u32 = 22;

/// A thread, named so that a dead thread is not mistaken for a live one (down to one
/// clock tick: see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Kernel thread id, `1..=MAX_TID`.
    pub tid: u32,
    /// Start time of the thread in clock ticks since boot (0 if unknown).
    pub start: u64,
}

impl Identity {
    /// `(start << 22) | tid`: the one-word owner record kept beside lock words.
    #[inline]
    pub fn info(self) -> u64 {
        (self.start << TID_BITS) | u64::from(self.tid)
    }

    /// Unpacks [`Identity::info`].
    #[inline]
    pub fn from_info(info: u64) -> Identity {
        Identity {
            tid: (info & u64::from(MAX_TID)) as u32,
            start: info >> TID_BITS,
        }
    }
}

/// A thread or a process, as a waiter names what it waits for the exit of (with `std`,
/// the death watcher, `sys::watch`, wakes it when that task exits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// One thread (a lock holder, a queue claimant, a barrier party): gone when it
    /// exits, even if its process lives on.
    Thread(u32),
    /// A whole process (a pipe end): gone when its last thread exits.
    Process(u32),
}

impl Task {
    /// The thread or process id.
    #[inline]
    pub fn id(self) -> u32 {
        match self {
            Task::Thread(t) | Task::Process(t) => t,
        }
    }
}

/// The calling thread's kernel TID (a syscall; see [`current`] for the cached form).
#[inline]
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// The calling process's id (cached with `std`: glibc no longer caches it, and a
/// segment's drop asks for it; a forked child's `pthread_atfork` handler clears it).
#[inline]
pub fn getpid() -> u32 {
    #[cfg(feature = "std")]
    {
        cache::pid()
    }
    #[cfg(not(feature = "std"))]
    {
        getpid_uncached()
    }
}

/// The calling process's id, asked of the kernel.
#[inline]
pub fn getpid_uncached() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// What `/proc/<tid>/stat` says of a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Running, sleeping, stopped...: alive, started at this tick.
    Alive {
        /// Start time in clock ticks since boot.
        start: u64,
    },
    /// Exited (zombie or dead), exiting (`PF_EXITING`), absent, or a kernel thread
    /// (`PF_KTHREAD`: never a user-space owner).
    Gone,
    /// `/proc` could not tell (not mounted, no permission).
    Unknown,
}

/// Reads the state and start time of `tid` from `/proc/<tid>/stat`.
pub fn proc_state(tid: u32) -> ProcState {
    let mut buf = [0u8; 1024];
    match read_stat(tid, &mut buf) {
        Ok(line) => parse_stat(line),
        Err(s) => s,
    }
}

/// Reads `/proc/<tid>/stat` into `buf`: the line, or what its absence means
/// ([`ProcState::Gone`] or [`ProcState::Unknown`]).
fn read_stat(tid: u32, buf: &mut [u8; 1024]) -> Result<&[u8], ProcState> {
    // "/proc/" + up to 10 digits + "/stat" + NUL
    let mut path = [0u8; 32];
    let mut n = 0;
    for &b in b"/proc/" {
        path[n] = b;
        n += 1;
    }
    let mut digits = [0u8; 10];
    let mut d = 0;
    let mut t = tid;
    loop {
        digits[d] = b'0' + (t % 10) as u8;
        d += 1;
        t /= 10;
        if t == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[n] = digits[d];
        n += 1;
    }
    for &b in b"/stat" {
        path[n] = b;
        n += 1;
    }
    // SAFETY: `path` is NUL-terminated (zero-initialised, n < 32).
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(match super::errno() {
            libc::ENOENT | libc::ESRCH => ProcState::Gone,
            _ => ProcState::Unknown,
        });
    }
    // SAFETY: `buf` is writable for its whole length; `fd` is open.
    let len = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: `fd` is ours and open.
    unsafe { libc::close(fd) };
    if len <= 0 {
        // ESRCH on read: the thread exited between open and read.
        return Err(ProcState::Gone);
    }
    Ok(&buf[..len as usize])
}

/// `PF_EXITING` in the kernel's task flags (field 9 of `/proc/*/stat`): set at the very
/// start of `do_exit`, before the thread's memory is released and before `pthread_join`
/// or a futex on its TID word can return. A thread with it set never runs user code
/// again, although `/proc` still shows it running or sleeping until it is reaped.
const PF_EXITING: u64 = 0x4;

/// `PF_KTHREAD` in the kernel's task flags: a kernel thread, which never runs user code
/// and so can never hold one of our objects. A lock word naming one was forged (or is
/// garbage); counting it as gone lets the next acquirer recover the lock.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Parses the state (field 3), the flags (field 9) and the start time (field 22) out
/// of a `/proc/*/stat` line. A zombie, dead or exiting thread, and a kernel thread, is
/// [`ProcState::Gone`].
pub fn parse_stat(line: &[u8]) -> ProcState {
    match stat_fields(line) {
        None => ProcState::Unknown,
        Some(f) if f.exited() || f.kernel_thread() => ProcState::Gone,
        Some(f) => ProcState::Alive { start: f.start },
    }
}

/// The fields of a `/proc/*/stat` line that liveness needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StatFields {
    /// Field 3: `R`, `S`, `Z`, ...
    state: u8,
    /// Field 9: the kernel's task flags.
    flags: u64,
    /// Field 20: threads in the thread group (for a group leader that exited while
    /// other threads run, the zombie leader is counted too).
    threads: u64,
    /// Field 22: start time in clock ticks since boot.
    start: u64,
}

impl StatFields {
    /// This thread has exited or is exiting: zombie, dead, or `PF_EXITING`.
    fn exited(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x') || self.flags & PF_EXITING != 0
    }
    /// A kernel thread: it never runs user code, so it never holds one of our objects.
    fn kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

fn stat_fields(line: &[u8]) -> Option<StatFields> {
    // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
    let close = line.iter().rposition(|&b| b == b')')?;
    let mut fields = line[close + 1..]
        .split(|&b| b == b' ' || b == b'\n')
        .filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    // Field 9 is the 6th after the state (field 3), field 20 the 11th after that and
    // field 22 the 2nd after that.
    let flags = fields.nth(5).and_then(decimal);
    let threads = fields.nth(10).and_then(decimal);
    let start = fields.nth(1).and_then(decimal);
    match (flags, threads, start) {
        (Some(flags), Some(threads), Some(start)) => Some(StatFields {
            state,
            flags,
            threads,
            start,
        }),
        // A zombie needs no more fields to be judged.
        _ if matches!(state, b'Z' | b'X' | b'x') => Some(StatFields {
            state,
            flags: 0,
            threads: 0,
            start: 0,
        }),
        _ => None,
    }
}

/// An unsigned decimal field, `None` if it holds anything else.
fn decimal(field: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(v)
}

/// The calling thread's identity, read afresh (two syscalls).
pub fn current_uncached() -> Identity {
    let tid = gettid();
    let start = match proc_state(tid) {
        ProcState::Alive { start } => start,
        _ => 0,
    };
    Identity { tid, start }
}

/// The calling thread's identity (cached per thread with `std`).
#[inline]
pub fn current() -> Identity {
    #[cfg(feature = "std")]
    {
        cache::current()
    }
    #[cfg(not(feature = "std"))]
    {
        current_uncached()
    }
}

/// True when the thread recorded as `owner` has certainly exited: its TID is gone, is
/// a zombie, is exiting, names a kernel thread (never an owner), or now belongs to a
/// thread started in another clock tick (TID reuse; see the module docs for reuse
/// within one tick). When `/proc` cannot tell, the owner is presumed alive.
///
/// For a *process* recorded as `current_process` records it, use
/// [`process_is_dead`]: a process outlives its main thread.
pub fn is_dead(owner: Identity) -> bool {
    if owner.tid == 0 || owner.tid > MAX_TID {
        return true;
    }
    match proc_state(owner.tid) {
        ProcState::Gone => true,
        ProcState::Alive { start } => owner.start != 0 && start != owner.start,
        ProcState::Unknown => vanished(owner.tid),
    }
}

/// True when the process recorded as `owner` (`tid` = process id, `start` = the
/// process's start time, as `current_process` records it) has certainly exited —
/// *all* of its threads — or its id now names a process started at another time
/// (PID reuse). When `/proc` cannot tell, the process is presumed alive.
///
/// A process lives while any of its threads does: when the main thread exits on its
/// own (`pthread_exit`, `SYS_exit`), `/proc/<pid>/stat` shows the leader as a zombie
/// (or exiting) while the other threads run on, with the group's thread count (field
/// 20, the zombie leader included) above 1. Thread-level records (lock holders, queue
/// claims) use [`is_dead`] instead: they are right to die with their thread.
pub fn process_is_dead(owner: Identity) -> bool {
    if owner.tid == 0 || owner.tid > MAX_TID {
        return true;
    }
    let mut buf = [0u8; 1024];
    let fields = match read_stat(owner.tid, &mut buf) {
        Ok(line) => stat_fields(line),
        Err(ProcState::Gone) => return true,
        Err(_) => None,
    };
    let Some(f) = fields else {
        return vanished(owner.tid);
    };
    if f.start != 0 && owner.start != 0 && f.start != owner.start {
        return true; // the id was reused
    }
    if f.kernel_thread() {
        return true; // forged: no process of ours is a kernel thread
    }
    // The leader's own state, else whether another thread of its group remains.
    f.exited() && f.threads <= 1
}

/// No `/proc` answer: `kill(2)` with signal 0 at least sees a vanished id.
fn vanished(tid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(tid as libc::pid_t, 0) };
    r != 0 && super::errno() == libc::ESRCH
}

#[cfg(feature = "std")]
mod cache {
    use super::Identity;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    std::thread_local! {
        static ME: Cell<Option<Identity>> = const { Cell::new(None) };
    }

    /// The process id, 0 until first asked (and again in a forked child).
    static PID: AtomicU32 = AtomicU32::new(0);
    /// Bumped in every forked child (see `fork_generation`).
    pub(super) static GENERATION: AtomicU64 = AtomicU64::new(1);
    /// Bumped before every fork (see `forks_so_far`).
    pub(super) static FORKS: AtomicU64 = AtomicU64::new(0);

    extern "C" fn count_fork() {
        FORKS.fetch_add(1, Ordering::Relaxed);
    }

    extern "C" fn forget_in_child() {
        // In a forked child the only thread is the one that called fork: its cached
        // identity is the parent's thread, so drop it; the pid is the parent's too.
        let _ = ME.try_with(|c| c.set(None));
        PID.store(0, Ordering::Relaxed);
        GENERATION.fetch_add(1, Ordering::Relaxed);
    }

    /// 0: the atfork handler is not registered; `REGISTERED`: it is; anything else:
    /// the pid of a process one of whose threads is registering it. Not a `Once`: a
    /// child forked while another thread ran the `Once` would find it running forever
    /// and block; here such a child sees a foreign pid and registers on its own.
    static AT_FORK: AtomicU32 = AtomicU32::new(0);
    const REGISTERED: u32 = u32::MAX;

    /// True once the handler that clears the cache in forked children is registered
    /// (registering it if nobody is); false while another thread of this process is
    /// registering it — then the caller must not cache.
    #[inline]
    pub(super) fn at_fork_registered() -> bool {
        // One load on every fast path that asks (`fork_generation`); the rest once.
        AT_FORK.load(Ordering::Acquire) == REGISTERED || register_at_fork()
    }

    #[cold]
    #[inline(never)]
    fn register_at_fork() -> bool {
        let s = AT_FORK.load(Ordering::Acquire);
        if s == REGISTERED {
            return true;
        }
        let me = super::getpid_uncached();
        if s == me {
            return false;
        }
        if AT_FORK
            .compare_exchange(s, me, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // SAFETY: registering handlers that only touch a thread-local Cell and atomics.
        unsafe { libc::pthread_atfork(Some(count_fork), None, Some(forget_in_child)) };
        AT_FORK.store(REGISTERED, Ordering::Release);
        true
    }

    #[inline]
    pub(super) fn pid() -> u32 {
        match PID.load(Ordering::Relaxed) {
            0 => {
                // Cached only once the handler is registered, so no child can inherit
                // a stale pid.
                let p = super::getpid_uncached();
                if at_fork_registered() {
                    PID.store(p, Ordering::Relaxed);
                }
                p
            }
            p => p,
        }
    }

    #[inline]
    pub(super) fn current() -> Identity {
        ME.try_with(|c| match c.get() {
            Some(id) => id,
            None => {
                let id = super::current_uncached();
                if at_fork_registered() {
                    c.set(Some(id));
                }
                id
            }
        })
        .unwrap_or_else(|_| super::current_uncached())
    }
}

/// The calling *process*, named like a thread: `tid` is the process id, `start` the
/// process's start time. Objects whose roles belong to a process (an SPSC queue's
/// producer, a pipe end) record this; [`process_is_dead`] judges it (alive while any
/// of its threads is). Cached per process (recomputed in a forked child).
#[cfg(feature = "std")]
pub fn current_process() -> Identity {
    process::current()
}

/// A counter that changes in every child forked after the first call: a handle that
/// remembers it can tell, with one load, that it was inherited through `fork`.
#[cfg(feature = "std")]
#[inline]
pub fn fork_generation() -> u64 {
    process::generation()
}

/// How many times this process has forked since the first call (any thread; counted
/// before each fork): a value that has not changed since an object was made means no
/// other process can hold a copy of that object's handles.
#[cfg(feature = "std")]
#[inline]
pub fn forks_so_far() -> u64 {
    cache::at_fork_registered();
    cache::FORKS.load(core::sync::atomic::Ordering::Relaxed)
}

#[cfg(feature = "std")]
mod process {
    use super::cache::{at_fork_registered, GENERATION};
    use super::{getpid, proc_state, Identity, ProcState};
    use core::sync::atomic::{AtomicU64, Ordering};

    static CACHED: AtomicU64 = AtomicU64::new(0);
    static CACHED_GENERATION: AtomicU64 = AtomicU64::new(0);

    /// The fork generation; registers the atfork handler that bumps it (shared with
    /// the thread-identity cache: one handler, registered without a `Once`).
    #[inline]
    pub(super) fn generation() -> u64 {
        at_fork_registered();
        GENERATION.load(Ordering::Relaxed)
    }

    pub(super) fn current() -> Identity {
        let g = generation();
        if CACHED_GENERATION.load(Ordering::Acquire) == g {
            return Identity::from_info(CACHED.load(Ordering::Relaxed));
        }
        let pid = getpid();
        let start = match proc_state(pid) {
            ProcState::Alive { start } => start,
            _ => 0,
        };
        let me = Identity { tid: pid, start };
        if at_fork_registered() {
            CACHED.store(me.info(), Ordering::Relaxed);
            CACHED_GENERATION.store(g, Ordering::Release);
        }
        me
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_parens_in_name() {
        let line =
            b"123 (a (b) c) S 1 2 3 4 5 4194560 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21\n";
        assert_eq!(parse_stat(line), ProcState::Alive { start: 424242 });
        // The same thread with PF_EXITING (0x4) in its flags: on its way out.
        let exiting =
            b"123 (a (b) c) S 1 2 3 4 5 4194564 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21\n";
        assert_eq!(parse_stat(exiting), ProcState::Gone);
        // kthreadd (flags 0x208040, PF_KTHREAD set): never a holder, counts as gone.
        let kthread = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0\n";
        assert_eq!(parse_stat(kthread), ProcState::Gone);
        // Start time as the last field, before the newline.
        let short = b"9 (x) R 1 2 3 4 5 0 7 8 9 10 11 12 13 14 15 16 17 18 77\n";
        assert_eq!(parse_stat(short), ProcState::Alive { start: 77 });
        assert_eq!(parse_stat(b"9 (x) R 1 2 3 4 5 0x4 7"), ProcState::Unknown);
        let z = b"123 (x) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5 20\n";
        assert_eq!(parse_stat(z), ProcState::Gone);
        assert_eq!(parse_stat(b"garbage"), ProcState::Unknown);
    }

    #[test]
    fn a_zombie_leader_with_threads_left_is_a_live_process_but_a_dead_thread() {
        // As /proc showed them: a process whose main thread called SYS_exit while a
        // worker runs (2 threads, the zombie leader counted), then the same process
        // once the worker exited too (1 thread).
        let leader_gone =
            b"15503 (lz) Z 15502 15494 10783 0 -1 4227148 33 0 0 0 0 0 0 0 20 0 2 0 33484 0 0\n";
        let all_gone =
            b"15503 (lz) Z 15502 15494 10783 0 -1 4227148 38 0 0 0 0 0 0 0 20 0 1 0 33484 0 0\n";
        let f = stat_fields(leader_gone).unwrap();
        assert_eq!((f.state, f.threads, f.start), (b'Z', 2, 33484));
        assert!(f.exited() && f.threads > 1, "alive as a process");
        assert_eq!(parse_stat(leader_gone), ProcState::Gone, "dead as a thread");
        let f = stat_fields(all_gone).unwrap();
        assert!(f.exited() && f.threads <= 1, "dead as a process");
    }

    #[test]
    fn current_process_is_alive_and_a_reused_pid_is_dead() {
        let me = current_process();
        assert_eq!(me.tid, std::process::id());
        assert!(!process_is_dead(me));
        assert!(process_is_dead(Identity {
            tid: me.tid,
            start: me.start + 1
        }));
        assert!(process_is_dead(Identity { tid: 0, start: 1 }));
    }

    #[test]
    fn current_thread_is_alive_and_info_round_trips() {
        let me = current();
        assert!(me.tid > 0 && me.start > 0);
        assert_eq!(Identity::from_info(me.info()), me);
        assert!(!is_dead(me));
        assert!(is_dead(Identity {
            tid: me.tid,
            start: me.start + 1
        }));
    }

    #[test]
    fn exited_thread_is_dead() {
        // `join` returns once the kernel cleared the thread's TID word, which it does
        // after setting PF_EXITING but before the thread is reaped: /proc may still list
        // it, and it must already count as dead. Many times, to catch that window.
        for _ in 0..200 {
            let id = std::thread::spawn(current).join().unwrap();
            assert!(is_dead(id), "thread {} joined but not seen dead", id.tid);
        }
    }
}
