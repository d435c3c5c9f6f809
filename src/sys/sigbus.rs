//! Surviving truncation: a `SIGBUS` handler for the segments this process maps.
//!
//! Any process that can write a segment's file can `ftruncate` it; every process that
//! has it mapped then takes `SIGBUS` on its next access to a page past the new end of
//! the file, and `SIGBUS`'s default action kills. This module turns that into a
//! recoverable condition:
//!
//! * every segment mapping is registered in a table of `(start, len)` ranges
//!   that a signal handler can read: fixed chunks of atomic slots, linked by atomic
//!   pointers, allocated outside the handler and never freed;
//! * a `SIGBUS` handler (installed once, the first time a segment is mapped) looks the
//!   faulting address up in that table. For one of ours it marks the segment *broken*
//!   and maps private zero pages (`MAP_FIXED | MAP_ANONYMOUS | MAP_PRIVATE`) over the
//!   mapping from the faulting page to its end, then returns: the faulting instruction
//!   runs again on the zero page. Operations on the segment report
//!   [`Error::Corrupt`](crate::Error::Corrupt) from then on;
//! * an address that is not ours is passed to the handler that was installed before
//!   (called as it expects, `sa_sigaction` or `sa_handler`). When that was the default
//!   action, the default is restored and the fault re-runs, so the process dies of
//!   `SIGBUS` exactly as it would have without us.
//!
//! ## Async-signal safety
//! The handler allocates nothing, takes no lock and calls only `mmap`, `sigaction`,
//! `raise` and the chained handler. A slot is read seqlock-style: its state (which
//! carries a generation) is read before and after its range, and a slot that changed
//! meanwhile is skipped, so a slot being reused by another thread can never make the
//! handler map over memory that is not a segment.
//!
//! ## Claiming a range
//! Each slot keeps `replaced_from`, the lowest address already covered by zero pages
//! (the mapping's end while intact). A faulting thread claims `[page, replaced_from)`
//! with one CAS *before* it maps, and sets the broken flag before it maps, so no
//! thread reads a zero page while the flag is still clear. A thread that faults on a
//! page another thread has claimed but not mapped yet returns and faults again until
//! the mapping exists (`SA_NODEFER` lets the signal nest). Pages are never replaced
//! twice, so what a process wrote to its zero pages is not reset under it.
//!
//! ## Opting out
//! Programs that own `SIGBUS` call [`set_handler_enabled(false)`](set_handler_enabled)
//! before they map their first segment, or set the environment variable
//! `MULTIPROC_SIGBUS=off` (also `0`, `false`, `no`). Truncation then kills again.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Environment variable that disables the handler when set to `off`, `0`, `false` or `no`.
pub const ENV_VAR: &str = "MULTIPROC_SIGBUS";

/// Slots per chunk of the table.
const CHUNK_SLOTS: usize = 64;

// Slot states, in the low two bits of `Slot::state`; the rest is a generation that
// changes on every claim, so a reader sees a reuse even if the state comes back.
/// Nobody owns the slot.
const FREE: u32 = 0;
/// A registrar or deregistrar owns it; its range is not to be trusted.
const BUSY: u32 = 1;
/// It describes a live mapping.
const LIVE: u32 = 2;
const STATE_MASK: u32 = 3;
const GEN_ONE: u32 = 4;

#[inline]
fn state_of(s: u32) -> u32 {
    s & STATE_MASK
}

/// One registered mapping.
#[derive(Debug)]
pub(crate) struct Slot {
    /// `FREE`/`BUSY`/`LIVE` in the low bits, a generation above.
    state: AtomicU32,
    /// Non-zero once the handler replaced part of the mapping (or a size check found
    /// the file shorter than the mapping). Never cleared while the slot is owned.
    broken: AtomicU32,
    /// First byte of the mapping (page-aligned).
    start: AtomicUsize,
    /// One past its last byte, rounded up to a page.
    end: AtomicUsize,
    /// Lowest address already claimed for zero pages; `end` while intact.
    replaced_from: AtomicUsize,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicU32::new(FREE),
            broken: AtomicU32::new(0),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            replaced_from: AtomicUsize::new(0),
        }
    }

    /// True once the mapping lost pages to a truncation (or was found truncated).
    ///
    /// One relaxed load: cheap enough for every operation's fast path.
    #[inline]
    pub fn is_broken(&self) -> bool {
        // SYNC(sigbus-broken): pairs with the store in `mark_broken`; a Relaxed load
        // suffices because the zero page itself is only mapped after that store.
        self.broken.load(Ordering::Relaxed) != 0
    }

    /// Marks the mapping broken (a size check found the file shorter than it).
    pub fn mark_broken(&self) {
        // SYNC(sigbus-broken): set before any zero page is mapped.
        self.broken.store(1, Ordering::SeqCst);
    }
}

struct Chunk {
    slots: [Slot; CHUNK_SLOTS],
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    const fn new() -> Chunk {
        Chunk {
            slots: [const { Slot::new() }; CHUNK_SLOTS],
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// The first chunk; later ones are leaked boxes linked from it.
static TABLE: Chunk = Chunk::new();

/// Calls `f` on every chunk, following `next` pointers (async-signal-safe).
fn for_each_chunk(mut f: impl FnMut(&'static Chunk) -> bool) {
    let mut c: &'static Chunk = &TABLE;
    loop {
        if !f(c) {
            return;
        }
        // SYNC(sigbus-chunk): pairs with the Release CAS that links a new chunk.
        let next = c.next.load(Ordering::Acquire);
        if next.is_null() {
            return;
        }
        // SAFETY: chunks are leaked boxes, never freed, fully initialised before they
        // were linked (SYNC(sigbus-chunk)).
        c = unsafe { &*next };
    }
}

/// A registration: deregisters on drop.
#[derive(Debug)]
pub(crate) struct Registration {
    slot: &'static Slot,
}

impl Registration {
    /// The slot, for [`Slot::is_broken`].
    #[inline]
    pub fn slot(&self) -> &'static Slot {
        self.slot
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let s = self.slot.state.load(Ordering::Relaxed);
        // BUSY first, so a handler that reads the slot meanwhile skips it (the caller
        // unmaps only after this drop, and nothing may touch the mapping then).
        self.slot.state.store(
            (s & !STATE_MASK).wrapping_add(GEN_ONE) | BUSY,
            Ordering::SeqCst,
        );
        self.slot.broken.store(0, Ordering::Relaxed);
        self.slot.state.store(
            (s & !STATE_MASK).wrapping_add(GEN_ONE) | FREE,
            Ordering::Release,
        );
    }
}

/// Registers the mapping `[start, start + len)` (page-aligned start) and installs the
/// handler if this is the first registration and it is enabled.
///
/// # Safety
/// * `[start, start + len)` is a shared file mapping owned by the caller, which stays
///   mapped until the returned [`Registration`] is dropped;
/// * nothing relies on its pages staying file-backed: after a truncation the handler
///   replaces them with private zero pages.
pub(crate) unsafe fn register(start: *mut u8, len: usize) -> Registration {
    install_once();
    let page = page_size();
    let start = start as usize;
    let end = start.saturating_add(len).next_multiple_of(page);
    let mut found = None;
    let mut last: &'static Chunk = &TABLE;
    for_each_chunk(|c| {
        last = c;
        for slot in &c.slots {
            let s = slot.state.load(Ordering::Relaxed);
            if state_of(s) == FREE
                && slot
                    .state
                    .compare_exchange(
                        s,
                        (s & !STATE_MASK).wrapping_add(GEN_ONE) | BUSY,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                found = Some(slot);
                return false;
            }
        }
        true
    });
    let slot = match found {
        Some(s) => s,
        None => {
            // Every slot is taken: link a new chunk whose first slot is ours.
            let chunk: &'static Chunk = Box::leak(Box::new(Chunk::new()));
            chunk.slots[0]
                .state
                .store(GEN_ONE | BUSY, Ordering::Relaxed);
            let mut tail = last;
            loop {
                // SYNC(sigbus-chunk): publishes the initialised chunk.
                match tail.next.compare_exchange(
                    ptr::null_mut(),
                    chunk as *const Chunk as *mut Chunk,
                    Ordering::Release,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    // SAFETY: as in `for_each_chunk`: linked chunks are never freed.
                    Err(next) => tail = unsafe { &*next },
                }
            }
            &chunk.slots[0]
        }
    };
    slot.broken.store(0, Ordering::Relaxed);
    slot.start.store(start, Ordering::Relaxed);
    slot.end.store(end, Ordering::Relaxed);
    slot.replaced_from.store(end, Ordering::Relaxed);
    let s = slot.state.load(Ordering::Relaxed);
    // SYNC(sigbus-slot): the range is published with the LIVE state.
    slot.state
        .store((s & !STATE_MASK) | LIVE, Ordering::Release);
    Registration { slot }
}

// ---- enabling and installing ------------------------------------------------------

/// Nobody decided yet: the environment variable decides at the first mapping.
const UNDECIDED: u32 = 0;
const ENABLED: u32 = 1;
const DISABLED: u32 = 2;
static WANTED: AtomicU32 = AtomicU32::new(UNDECIDED);
/// Set while our handler is the installed one.
static INSTALLED: AtomicU32 = AtomicU32::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// Serialises installing and removing (never taken in the handler).
static INSTALL: Mutex<()> = Mutex::new(());

/// The disposition found when we installed ours; written under [`INSTALL`] before our
/// handler is installed, read by the handler (the `sigaction` call that installs the
/// handler orders the write before any delivery).
struct Previous(core::cell::UnsafeCell<libc::sigaction>);
// SAFETY: written only under INSTALL while our handler is not installed; read only
// by the handler, which runs only while it is installed.
unsafe impl Sync for Previous {}
// SAFETY: all-zero bytes are a valid `sigaction` (SIG_DFL, empty mask, no flags).
static PREVIOUS: Previous = Previous(core::cell::UnsafeCell::new(unsafe { core::mem::zeroed() }));

/// Enables or disables the `SIGBUS` handler that lets this process survive another
/// process truncating a segment it has mapped.
///
/// Call it before the first segment is mapped to keep `SIGBUS` entirely to your
/// program (the environment variable [`ENV_VAR`] `=off` does the same). Called later
/// with `false`, it removes the handler again if it is still the installed one
/// (restoring what was there before). With `true`, it installs the handler now (if
/// it is not installed), chaining to whatever handler is installed at that moment.
///
/// Without the handler, a truncated segment kills every process that touches a lost
/// page with `SIGBUS`, as any shared mapping does.
///
/// ```
/// // A program that handles SIGBUS itself, first thing in main():
/// multiproc::sigbus::set_handler_enabled(false);
/// assert!(!multiproc::sigbus::handler_installed());
/// # multiproc::sigbus::set_handler_enabled(true);
/// ```
pub fn set_handler_enabled(enabled: bool) {
    let _g = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    WANTED.store(if enabled { ENABLED } else { DISABLED }, Ordering::SeqCst);
    let installed = INSTALLED.load(Ordering::SeqCst) != 0;
    if enabled && !installed {
        install_locked();
    } else if !enabled && installed {
        uninstall_locked();
    }
}

/// True while this crate's `SIGBUS` handler is installed.
pub fn handler_installed() -> bool {
    INSTALLED.load(Ordering::SeqCst) != 0
}

fn page_size() -> usize {
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    PAGE.store(p, Ordering::Relaxed);
    p
}

fn env_disables() -> bool {
    std::env::var(ENV_VAR).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        )
    })
}

fn install_once() {
    page_size();
    let wanted = WANTED.load(Ordering::Acquire);
    if wanted == DISABLED || INSTALLED.load(Ordering::Acquire) != 0 {
        return;
    }
    let _g = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let mut wanted = WANTED.load(Ordering::SeqCst);
    if wanted == UNDECIDED {
        wanted = if env_disables() { DISABLED } else { ENABLED };
        WANTED.store(wanted, Ordering::SeqCst);
    }
    if wanted == ENABLED && INSTALLED.load(Ordering::SeqCst) == 0 {
        install_locked();
    }
}

/// Installs our handler, remembering the previous one. Caller holds [`INSTALL`].
fn install_locked() {
    // SAFETY: all-zero is a valid sigaction; fields are then set as the kernel expects.
    let mut ours: libc::sigaction = unsafe { core::mem::zeroed() };
    ours.sa_sigaction = handler as *const () as usize;
    ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER | libc::SA_RESTART;
    // SAFETY: `ours.sa_mask` is a valid sigset to initialise.
    unsafe { libc::sigemptyset(&mut ours.sa_mask) };
    // SAFETY: our handler is not installed (INSTALLED is 0 and we hold INSTALL), so
    // nothing reads PREVIOUS; sigaction writes the old disposition into it.
    let r = unsafe { libc::sigaction(libc::SIGBUS, &ours, PREVIOUS.0.get()) };
    if r == 0 {
        INSTALLED.store(1, Ordering::SeqCst);
    }
}

/// Restores the previous handler if ours is still the installed one. Caller holds
/// [`INSTALL`].
fn uninstall_locked() {
    // SAFETY: all-zero is a valid sigaction to be filled in by the kernel.
    let mut cur: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: a null new action only queries.
    unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), &mut cur) };
    if cur.sa_sigaction != handler as *const () as usize {
        // Someone installed theirs over ours: leave theirs alone (it may chain to us).
        return;
    }
    // SAFETY: PREVIOUS was written when ours was installed and is not written now.
    unsafe { libc::sigaction(libc::SIGBUS, PREVIOUS.0.get(), ptr::null_mut()) };
    INSTALLED.store(0, Ordering::SeqCst);
}

// ---- the handler ------------------------------------------------------------------

/// What the handler did with a fault.
enum Outcome {
    /// The address is in one of our mappings and is (being) replaced: re-run.
    Ours,
    /// Not ours: chain.
    Foreign,
    /// Ours, but the zero pages could not be mapped: die as without us.
    Failed,
}

/// Looks `addr` up and replaces the lost pages (async-signal-safe).
fn recover(addr: usize) -> Outcome {
    let page = addr & !(page_size() - 1);
    let mut outcome = Outcome::Foreign;
    for_each_chunk(|c| {
        for slot in &c.slots {
            // SYNC(sigbus-slot): pairs with the Release store of LIVE in `register`.
            let s1 = slot.state.load(Ordering::Acquire);
            if state_of(s1) != LIVE {
                continue;
            }
            let start = slot.start.load(Ordering::Relaxed);
            let end = slot.end.load(Ordering::Relaxed);
            core::sync::atomic::fence(Ordering::Acquire);
            if slot.state.load(Ordering::Relaxed) != s1 || addr < start || addr >= end {
                continue;
            }
            outcome = replace_from(slot, page);
            return false;
        }
        true
    });
    outcome
}

/// Claims `[page, replaced_from)` and maps zero pages over it.
fn replace_from(slot: &Slot, page: usize) -> Outcome {
    let mut rf = slot.replaced_from.load(Ordering::Acquire);
    loop {
        if page >= rf {
            // Already replaced, or claimed by a thread that is mapping it now.
            return Outcome::Ours;
        }
        match slot
            .replaced_from
            .compare_exchange(rf, page, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break,
            Err(now) => rf = now,
        }
    }
    slot.mark_broken();
    // SAFETY: `[page, rf)` lies inside a live mapping of ours (checked against the
    // slot's range under its generation), which the process can only unmap after
    // deregistering it; MAP_FIXED replaces exactly those pages with private zeroes.
    // MAP_NORESERVE: the range may be a large sparse reservation (a Dict's 64 GiB),
    // which heuristic overcommit refuses to charge as private memory up front.
    let p = unsafe {
        libc::mmap(
            page as *mut libc::c_void,
            rf - page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Outcome::Failed
    } else {
        Outcome::Ours
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let saved_errno = super::errno();
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // Only faults the kernel raised (si_code > 0) carry an address; BUS_MCEERR_* are
    // memory failures, not truncation, and are not ours to hide.
    let from_fault = code > 0;
    if from_fault && code != libc::BUS_MCEERR_AR && code != libc::BUS_MCEERR_AO {
        match recover(addr) {
            Outcome::Ours => {
                restore_errno(saved_errno);
                return;
            }
            Outcome::Failed => {
                die_as_default(from_fault);
                return;
            }
            Outcome::Foreign => {}
        }
    }
    chain(sig, info, ctx, from_fault);
    restore_errno(saved_errno);
}

fn restore_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// Passes the signal to the disposition that was installed before ours.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, fault: bool) {
    // SAFETY: PREVIOUS is written only while our handler is not installed.
    let prev = unsafe { &*PREVIOUS.0.get() };
    match prev.sa_sigaction {
        libc::SIG_DFL => die_as_default(fault),
        libc::SIG_IGN => {
            // The kernel does not let a fault be ignored (it resets the action to the
            // default and kills); a SIGBUS sent with kill() is ignored, as asked.
            if fault {
                die_as_default(fault);
            }
        }
        f if prev.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous handler was installed with SA_SIGINFO, so it has
            // this signature; we pass what the kernel passed us.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { core::mem::transmute(f) };
            f(sig, info, ctx);
        }
        f => {
            // SAFETY: without SA_SIGINFO the previous handler takes just the signal.
            let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(f) };
            f(sig);
        }
    }
}

/// Restores the default action; a fault then re-runs and kills, a sent signal is
/// raised again.
fn die_as_default(fault: bool) {
    // SAFETY: all-zero is SIG_DFL with an empty mask; sigaction and raise are
    // async-signal-safe.
    unsafe {
        let dfl: libc::sigaction = core::mem::zeroed();
        libc::sigaction(libc::SIGBUS, &dfl, ptr::null_mut());
        if !fault {
            libc::raise(libc::SIGBUS);
        }
    }
}
