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
        return match super::errno() {
            libc::ENOENT | libc::ESRCH => ProcState::Gone,
            _ => ProcState::Unknown,
        };
    }
    let mut buf = [0u8; 1024];
    // SAFETY: `buf` is writable for its whole length; `fd` is open.
    let len = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: `fd` is ours and open.
    unsafe { libc::close(fd) };
    if len <= 0 {
        // ESRCH on read: the thread exited between open and read.
        return ProcState::Gone;
    }
    parse_stat(&buf[..len as usize])
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
    // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
    let Some(close) = line.iter().rposition(|&b| b == b')') else {
        return ProcState::Unknown;
    };
    let mut fields = line[close + 1..]
        .split(|&b| b == b' ' || b == b'\n')
        .filter(|f| !f.is_empty());
    let state = match fields.next() {
        Some(s) => s[0],
        None => return ProcState::Unknown,
    };
    if state == b'Z' || state == b'X' || state == b'x' {
        return ProcState::Gone;
    }
    // Field 9 is the 6th after the state (field 3), field 22 the 13th after that.
    let (Some(flags), Some(start)) = (
        fields.nth(5).and_then(decimal),
        fields.nth(12).and_then(decimal),
    ) else {
        return ProcState::Unknown;
    };
    if flags & (PF_EXITING | PF_KTHREAD) != 0 {
        return ProcState::Gone;
    }
    ProcState::Alive { start }
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
pub fn is_dead(owner: Identity) -> bool {
    if owner.tid == 0 || owner.tid > MAX_TID {
        return true;
    }
    match proc_state(owner.tid) {
        ProcState::Gone => true,
        ProcState::Alive { start } => owner.start != 0 && start != owner.start,
        ProcState::Unknown => {
            // No /proc: fall back to kill(2), which at least sees a vanished TID.
            // SAFETY: signal 0 only checks for existence.
            let r = unsafe { libc::kill(owner.tid as libc::pid_t, 0) };
            r != 0 && super::errno() == libc::ESRCH
        }
    }
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
    pub(super) fn at_fork_registered() -> bool {
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
        // SAFETY: registering a handler that only touches a thread-local Cell and
        // atomics.
        unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
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
/// producer, a pipe end) record this; [`is_dead`] judges it like a thread. Cached per
/// process (recomputed in a forked child).
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
