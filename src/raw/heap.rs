//! `RawHeap`: a crash-consistent arena of variable-size blocks inside a shared
//! region, the core of `Dict` and `List`.
//!
//! ## Layout
//! The region starts with a [`RawHeap`] header (lock, seqlock version, undo journal,
//! allocator state, the container's root words), followed by the arena at
//! [`ARENA`]. Everything is addressed by **byte offsets from the region's start**,
//! never by pointers; offset 0 means "none". Only the first `committed` arena bytes
//! are backed by memory (the caller's `grow` seam commits more, e.g. with
//! `posix_fallocate`), so the region may be a large sparse reservation.
//!
//! ## Allocation
//! Blocks come in size classes four per doubling (32, 40, 48, 56, 64, 80, ... bytes:
//! at most 25% slack), each block starting with one header word naming its class.
//! Freed blocks go on a per-class free list and are reused first; otherwise the bump
//! pointer `top` advances. A free block's link to the next one sits in its header
//! word (above the class), never in the payload: an allocation that is rolled back
//! may have scribbled over the payload, but never over the list.
//!
//! ## Commits (`SYNC(heap-publish)`)
//! One writer at a time holds the robust lock. Every store a writer makes to a word
//! that the state before its call depends on goes through [`Txn::jset`]: the word's
//! old value is appended to the undo journal (and `journal_len` advanced, Release)
//! before the word changes. Stores into freshly allocated blocks need no journal.
//! The call commits by storing `journal_len = 0`: one atomic store.
//!
//! A writer that dies leaves a non-empty journal; the next one to take the lock
//! (it is told `Recovered`, or sees `journal_len != 0`) restores the journaled words
//! in reverse order — idempotent, so a recoverer that dies too is recovered in turn —
//! and the container is exactly as before the interrupted call.
//!
//! A writer that died released nothing, so no Release/Acquire pair orders its stores
//! before the recoverer's (`SYNC(heap-death)`): when the lock is taken over from a
//! dead holder, the recoverer reads `journal_len` (Acquire, pairing with the dead
//! writer's last `SYNC(heap-journal)` Release) and `version` with read-modify-writes,
//! and restores each journaled word with a swap, which is ordered after whatever the
//! dead writer stored there. `tests/loom_heap.rs` models the protocol.
//!
//! ## Readers
//! Readers never take the lock on the fast path. Writers make `version` odd before
//! they change a word readers follow (the index, the lengths, a block being freed)
//! and even again after the commit; a reader copies out what it needs between two
//! equal even reads of `version` (`SYNC(heap-publish)`: Release on the writer's
//! even store, Acquire fence before the reader's second load) and retries otherwise.
//! After [`READ_TRIES`] failed attempts (a long or dead writer) it reads under the
//! lock, which also recovers a dead writer's call.
//!
//! ## Word access
//! The header is a [`RawHeap`] value; arena words are reached through a
//! [`HeapMemory`] backing: [`Region`] (a mapping: the word at an offset is a pointer
//! cast, monomorphised and inlined — the real path) or, for loom models, a slice of
//! atomics (loom's atomics are not layout-compatible with a mapping). Journaled
//! header words are the header's own fields, found by offset.
//!
//! ## Untrusted memory
//! All data words are atomics (`AtomicU64`, Relaxed inside the seqlock window), so a
//! racing or hostile writer is never undefined behaviour. Every offset and length
//! read from the region is checked against the committed arena before use, table and
//! vector capacities against their blocks, probe loops against their capacity. A
//! failed check inside a reader is a torn read if the version moved, and
//! [`HeapError::Corrupt`] if it did not.

use super::lock::{Acquire, RawLock};
use crate::sync::atomic::{fence, AtomicU64, Ordering};
use crate::sync::{spin_hint, Deadline, Identity};
use core::marker::PhantomData;
use core::mem::{offset_of, size_of};
use core::time::Duration;

/// Number of size classes: block sizes up to about 2^44 bytes.
#[cfg(not(loom))]
pub const NCLASSES: usize = 160;
/// Number of size classes (loom models: blocks up to 128 bytes).
#[cfg(loom)]
pub const NCLASSES: usize = 8;
/// Undo-journal entries: enough for any single call (each word is journaled once per
/// call; a call touches the allocator heads, `top`, and a handful of root words).
#[cfg(not(loom))]
pub const JOURNAL_LEN: usize = 256;
/// Undo-journal entries (loom models: small calls only).
#[cfg(loom)]
pub const JOURNAL_LEN: usize = 16;
/// Arena bytes committed at a time, at least.
pub const MIN_CHUNK: u64 = 1 << 20;
/// Optimistic read attempts before a reader falls back to the lock.
#[cfg(not(loom))]
pub const READ_TRIES: u32 = 2000;
/// Optimistic read attempts before a reader falls back to the lock (loom: each
/// failed attempt is a yield, and the model must stay small).
#[cfg(loom)]
pub const READ_TRIES: u32 = 3;

/// One undo record: the word at `off` held `old` before the current call.
#[repr(C)]
#[derive(Debug, Default)]
pub struct JournalEntry {
    off: AtomicU64,
    old: AtomicU64,
}

/// The header of a shared heap. All-zero bytes are an empty heap with nothing
/// committed.
#[repr(C)]
#[derive(Debug)]
pub struct RawHeap {
    lock: RawLock,
    /// Seqlock: odd while a writer changes words readers follow.
    version: AtomicU64,
    /// Undo entries of the call in progress; 0 = no call in progress (committed).
    journal_len: AtomicU64,
    /// Arena bytes backed by memory (monotonic; never journaled).
    committed: AtomicU64,
    // ---- journaled words: from `top` to the end of `heads` ----
    /// Arena bytes handed out by the bump allocator.
    top: AtomicU64,
    /// Number of items in the container.
    len: AtomicU64,
    /// The container's root block (hash table or vector payload), 0 = none.
    root: AtomicU64,
    /// Container-specific counter (the dict's tombstones).
    aux: AtomicU64,
    /// Free-list heads per size class (block offsets), 0 = empty.
    heads: [AtomicU64; NCLASSES],
    journal: [JournalEntry; JOURNAL_LEN],
}

// SAFETY: repr(C), atomics only (RawLock is SharedState), all-zero = empty heap, no
// pointers, align 8.
unsafe impl super::SharedState for RawHeap {}

#[cfg(loom)]
impl RawHeap {
    /// An empty heap (the same as all-zero bytes), for loom models.
    pub fn new() -> RawHeap {
        let z = || AtomicU64::new(0);
        RawHeap {
            lock: RawLock::new(),
            version: z(),
            journal_len: z(),
            committed: z(),
            top: z(),
            len: z(),
            root: z(),
            aux: z(),
            heads: core::array::from_fn(|_| z()),
            journal: core::array::from_fn(|_| JournalEntry { off: z(), old: z() }),
        }
    }
}

#[cfg(loom)]
impl Default for RawHeap {
    fn default() -> Self {
        RawHeap::new()
    }
}

/// Where a heap's arena words live, for `'a`.
///
/// # Safety
/// [`word`](HeapMemory::word) returns the same atomic for the same offset for `'a`,
/// for every offset its contract admits.
pub unsafe trait HeapMemory<'a>: Copy {
    /// The arena word at byte offset `off` of the region.
    ///
    /// # Safety
    /// `off` is 8-aligned and `ARENA <= off`, `off + 8 <= span`, where `span` is the
    /// region size the heap was created with.
    unsafe fn word(self, off: u64) -> &'a AtomicU64;
}

/// Arena words in a mapping: the region's base address. A process-local handle.
#[derive(Clone, Copy, Debug)]
pub struct Region<'a> {
    base: *const u8,
    _words: PhantomData<&'a AtomicU64>,
}

// SAFETY: `Heap::new`'s contract makes the region valid for `span` bytes for `'a`.
unsafe impl<'a> HeapMemory<'a> for Region<'a> {
    #[inline(always)]
    unsafe fn word(self, off: u64) -> &'a AtomicU64 {
        // SAFETY: inside the region and 8-aligned (base is 128-aligned), per the
        // caller's contract and `Heap::new`'s; AtomicU64 tolerates concurrent writers.
        unsafe { &*self.base.add(off as usize).cast::<AtomicU64>() }
    }
}

// SAFETY: a heap over a slice has `span = ARENA + 8 * len` (`Heap::over`), so every
// admitted offset indexes inside it; the elements live for `'a`.
unsafe impl<'a> HeapMemory<'a> for &'a [AtomicU64] {
    #[inline]
    unsafe fn word(self, off: u64) -> &'a AtomicU64 {
        &self[((off - ARENA) / 8) as usize]
    }
}

/// Offset of the arena inside the region: the header rounded up to 128 bytes.
pub const ARENA: u64 = (size_of::<RawHeap>().div_ceil(128) * 128) as u64;
const TOP: u64 = offset_of!(RawHeap, top) as u64;
const LEN: u64 = offset_of!(RawHeap, len) as u64;
const ROOT: u64 = offset_of!(RawHeap, root) as u64;
const AUX: u64 = offset_of!(RawHeap, aux) as u64;
const HEADS: u64 = offset_of!(RawHeap, heads) as u64;
/// A block's header word: its size class in the low bits; while the block is free,
/// the next free block of its class above them.
const CLASS_BITS: u32 = 8;
const CLASS_MASK: u64 = (1 << CLASS_BITS) - 1;
/// Bytes per header word: 8 (loom's atomics are larger).
const WORD: u64 = size_of::<AtomicU64>() as u64;
const JOURNALED_END: u64 = HEADS + (NCLASSES as u64) * WORD;

/// Why a heap operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// The region holds an impossible state (what was wrong).
    Corrupt(&'static str),
    /// The container would exceed its byte limit: it needs `needed` arena bytes.
    Full {
        /// Arena bytes the call needed.
        needed: u64,
        /// The arena's size.
        limit: u64,
    },
    /// Committing more memory failed (`/dev/shm` is full).
    NoMemory {
        /// Arena bytes the call tried to commit.
        wanted: u64,
    },
    /// The call would change more distinct words than the journal holds.
    JournalFull,
    /// The lock was not acquired before the deadline.
    WouldBlock,
}

/// The block size of class `c`: `(4 + c % 4) << (c / 4 + 3)`.
#[inline]
pub fn class_size(c: usize) -> u64 {
    (4 + (c as u64 % 4)) << (c / 4 + 3)
}

/// The smallest class whose blocks hold `n` bytes.
#[inline]
pub fn class_of(n: u64) -> Option<usize> {
    if n <= 32 {
        return Some(0);
    }
    let e = 63 - (n - 1).leading_zeros() as u64; // 2^e <= n-1 < 2^(e+1), e >= 5
    let o = e - 5;
    let k = (1..=4u64).find(|&k| (4 + k) << (o + 3) >= n).unwrap_or(4);
    let c = (o * 4 + k) as usize;
    (c < NCLASSES).then_some(c)
}

#[inline]
fn is_odd(v: u64) -> bool {
    v & 1 == 1
}

/// A view of a heap: its header and the region it starts (arena words in `M`).
#[derive(Clone, Copy, Debug)]
pub struct Heap<'a, M = Region<'a>> {
    raw: &'a RawHeap,
    mem: M,
    /// Bytes of the region, header included.
    span: u64,
}

impl<'a> Heap<'a> {
    /// A view of the heap at the start of `len` bytes at `base`; `None` if `len`
    /// cannot hold the header.
    ///
    /// # Safety
    /// `base` is 128-aligned and valid for `len` bytes (reads and atomic writes) for
    /// `'a`; bytes past the committed arena are never touched.
    pub unsafe fn new(base: *mut u8, len: usize) -> Option<Heap<'a>> {
        if (len as u64) < ARENA || base.align_offset(128) != 0 {
            return None;
        }
        Some(Heap {
            // SAFETY: the region holds at least ARENA >= size_of::<RawHeap>() bytes,
            // aligned; RawHeap is SharedState (valid for any bytes written by anyone).
            raw: unsafe { &*base.cast::<RawHeap>() },
            mem: Region {
                base,
                _words: PhantomData,
            },
            span: len as u64,
        })
    }
}

impl<'a> Heap<'a, &'a [AtomicU64]> {
    /// A view of the heap `raw` whose arena is `words` (loom models and tests: the
    /// words are Rust values, not a mapping).
    pub fn over(raw: &'a RawHeap, words: &'a [AtomicU64]) -> Self {
        Heap {
            raw,
            mem: words,
            span: ARENA + 8 * words.len() as u64,
        }
    }
}

impl<'a, M: HeapMemory<'a>> Heap<'a, M> {
    /// The header.
    #[inline]
    pub fn raw(&self) -> &'a RawHeap {
        self.raw
    }

    /// Arena bytes the region can ever hold (the byte limit).
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.span - ARENA
    }

    /// End of the readable arena: `ARENA + committed`, clamped to the region.
    #[inline]
    fn limit(&self) -> u64 {
        ARENA
            + self
                .raw
                .committed
                .load(Ordering::Acquire)
                .min(self.capacity())
    }

    /// The word at `off` in the arena; `Corrupt` if it lies outside the committed
    /// arena or is misaligned.
    #[inline]
    pub fn word(&self, off: u64) -> Result<&'a AtomicU64, HeapError> {
        if off < ARENA || off % 8 != 0 || off.checked_add(8).map_or(true, |e| e > self.limit()) {
            return Err(HeapError::Corrupt("an offset points outside the arena"));
        }
        // SAFETY: 8-aligned, at or above ARENA, and ending inside the committed arena,
        // which `limit` clamps to the region.
        Ok(unsafe { self.mem.word(off) })
    }

    /// A journaled header word (`top` .. the heads, the header's own fields) or an
    /// arena word.
    #[inline]
    fn jword(&self, off: u64) -> Result<&'a AtomicU64, HeapError> {
        if (TOP..JOURNALED_END).contains(&off) {
            let r = self.raw;
            return match off {
                TOP => Ok(&r.top),
                LEN => Ok(&r.len),
                ROOT => Ok(&r.root),
                AUX => Ok(&r.aux),
                _ if off >= HEADS && (off - HEADS) % WORD == 0 => {
                    Ok(&r.heads[((off - HEADS) / WORD) as usize])
                }
                _ => Err(HeapError::Corrupt("a journal entry names no word")),
            };
        }
        self.word(off)
    }

    /// Loads the arena word at `off` (Relaxed; inside a read or under the lock).
    #[inline]
    pub fn load(&self, off: u64) -> Result<u64, HeapError> {
        Ok(self.word(off)?.load(Ordering::Relaxed))
    }

    /// Checks that `len` bytes at `off` lie in the committed arena.
    #[inline]
    pub fn check_range(&self, off: u64, len: u64) -> Result<(), HeapError> {
        match off.checked_add(len) {
            Some(end) if off >= ARENA && end <= self.limit() => Ok(()),
            _ => Err(HeapError::Corrupt("a length reaches past the arena")),
        }
    }

    /// Copies `dst.len()` bytes starting at the 8-aligned `off` into `dst`.
    pub fn copy_out(&self, off: u64, dst: &mut [u8]) -> Result<(), HeapError> {
        let n = dst.len() as u64;
        self.check_range(off, n.div_ceil(8).saturating_mul(8))?;
        let mut chunks = dst.chunks_mut(8);
        let mut at = off;
        for c in &mut chunks {
            let w = self.load(at)?.to_le_bytes();
            c.copy_from_slice(&w[..c.len()]);
            at += 8;
        }
        Ok(())
    }

    /// True if the bytes at the 8-aligned `off` equal `bytes`.
    pub fn bytes_eq(&self, off: u64, bytes: &[u8]) -> Result<bool, HeapError> {
        self.check_range(off, (bytes.len() as u64).div_ceil(8) * 8)?;
        let mut at = off;
        for c in bytes.chunks(8) {
            let w = self.load(at)?.to_le_bytes();
            if w[..c.len()] != *c {
                return Ok(false);
            }
            at += 8;
        }
        Ok(true)
    }

    /// Number of items (`len`), as of a consistent moment.
    #[inline]
    pub fn len_word(&self) -> u64 {
        self.raw.len.load(Ordering::Relaxed)
    }
    /// The root block's payload offset, 0 = none.
    #[inline]
    pub fn root_word(&self) -> u64 {
        self.raw.root.load(Ordering::Relaxed)
    }
    /// The container-specific counter.
    #[inline]
    pub fn aux_word(&self) -> u64 {
        self.raw.aux.load(Ordering::Relaxed)
    }
    /// Arena bytes handed out so far (blocks in use plus free lists).
    #[inline]
    pub fn top_word(&self) -> u64 {
        self.raw.top.load(Ordering::Relaxed)
    }
    /// Arena bytes committed (backed by `/dev/shm` pages) so far, clamped to the
    /// byte limit.
    #[inline]
    pub fn committed(&self) -> u64 {
        self.limit() - ARENA
    }

    /// True while a writer's call is in progress or was interrupted: the journal is
    /// not empty or the version is odd (the next lock holder rolls it back).
    #[inline]
    pub fn call_in_progress(&self) -> bool {
        self.raw.journal_len.load(Ordering::Acquire) != 0
            || is_odd(self.raw.version.load(Ordering::Acquire))
    }

    /// Runs `f` as an optimistic reader: `Some(result)` if no writer published while
    /// it ran, `None` after [`READ_TRIES`] attempts (read under the lock then).
    pub fn try_read<R>(
        &self,
        mut f: impl FnMut(&Heap<'a, M>) -> Result<R, HeapError>,
    ) -> Option<Result<R, HeapError>> {
        for _ in 0..READ_TRIES {
            // SYNC(heap-publish): pairs with the writer's Release store of an even version.
            let v1 = self.raw.version.load(Ordering::Acquire);
            if is_odd(v1) {
                spin_hint();
                continue;
            }
            let r = f(self);
            // SYNC(heap-publish): the reads above happen before the re-check.
            fence(Ordering::Acquire);
            if self.raw.version.load(Ordering::Relaxed) == v1 {
                return Some(r);
            }
        }
        None
    }

    /// Walks every free list (lock held): each block inside the handed-out arena, of
    /// its list's class, and no list longer than the arena could hold. Returns the
    /// free bytes.
    pub fn check_free_lists(&self) -> Result<u64, HeapError> {
        let top = self
            .raw
            .top
            .load(Ordering::Relaxed)
            .min(self.limit() - ARENA);
        let mut free = 0u64;
        for c in 0..NCLASSES {
            let size = class_size(c);
            let mut b = self.raw.heads[c].load(Ordering::Relaxed);
            let mut n = 0u64;
            while b != 0 {
                n += 1;
                let ok = b >= ARENA
                    && b % 8 == 0
                    && b.checked_add(size).is_some_and(|e| e <= ARENA + top)
                    && n <= top / size;
                let h = if ok { self.load(b)? } else { 0 };
                if !ok || h & CLASS_MASK != c as u64 {
                    return Err(HeapError::Corrupt("a free list is broken"));
                }
                free += size;
                b = h >> CLASS_BITS;
            }
        }
        Ok(free)
    }

    /// Takes the writer lock, then recovers an interrupted call if there is one.
    pub fn lock(&self, me: Identity, deadline: Deadline, probe: Duration) -> Acquire {
        let a = self.raw.lock.lock(me, deadline, probe);
        match a {
            Acquire::Acquired => self.recover(),
            Acquire::Recovered => self.roll_back(true),
            Acquire::WouldBlock => {}
        }
        a
    }

    /// The writer lock (for guards that release it on drop).
    #[inline]
    pub fn raw_lock(&self) -> &'a RawLock {
        &self.raw.lock
    }

    /// Releases the writer lock.
    ///
    /// # Safety
    /// `me` holds the lock and no transaction is open.
    pub unsafe fn unlock(&self, me: Identity) {
        // SAFETY: forwarded contract.
        unsafe { self.raw.lock.unlock(me) }
    }

    /// Rolls an interrupted call back (lock held). Idempotent.
    pub(crate) fn recover(&self) {
        self.roll_back(false)
    }

    /// As [`recover`](Self::recover); `dead`: the lock was taken over from a holder
    /// that died ([`Acquire::Recovered`]).
    fn roll_back(&self, dead: bool) {
        // SYNC(heap-death): a holder that died never released the lock, so no
        // Release/Acquire pair orders its stores before ours (the kernel, which
        // reported the death, does in practice, but the memory model does not say so).
        // Read-modify-writes read the latest value regardless, and our stores to a
        // word after an RMW of it are ordered after the dead writer's: the Acquire RMW
        // of `journal_len` pairs with its last Release store (`SYNC(heap-journal)`),
        // making the entries visible; the version is read by an RMW and each restored
        // word is swapped, not stored (a plain store could be ordered before the dead
        // writer's, which would then win: found by the loom model).
        let (n, v) = if dead {
            (
                self.raw.journal_len.fetch_add(0, Ordering::Acquire),
                self.raw.version.fetch_add(0, Ordering::Relaxed),
            )
        } else {
            (
                self.raw.journal_len.load(Ordering::Acquire),
                self.raw.version.load(Ordering::Relaxed),
            )
        };
        if n == 0 && !is_odd(v) {
            return;
        }
        if !is_odd(v) {
            self.raw.version.store(v.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
        }
        for e in self.raw.journal[..(n as usize).min(JOURNAL_LEN)]
            .iter()
            .rev()
        {
            let off = e.off.load(Ordering::Relaxed);
            // A hostile entry naming a word outside the journaled set is skipped.
            if let Ok(w) = self.jword(off) {
                let old = e.old.load(Ordering::Relaxed);
                if dead {
                    // SYNC(heap-death): ordered after the dead writer's store.
                    w.swap(old, Ordering::Relaxed);
                } else {
                    w.store(old, Ordering::Relaxed);
                }
            }
        }
        self.raw.journal_len.store(0, Ordering::Release);
        let v = self.raw.version.load(Ordering::Relaxed);
        // SYNC(heap-publish): the restored words are visible before the even version.
        self.raw
            .version
            .store((v | 1).wrapping_add(1), Ordering::Release);
    }

    /// Opens a transaction (the lock is held by the caller). `grow(offset, len)`
    /// commits `len` more region bytes at `offset`; false if the memory is not there.
    pub fn txn<'h>(&'h self, grow: &'h mut dyn FnMut(u64, u64) -> bool) -> Txn<'h, 'a, M> {
        Txn {
            heap: self,
            n: 0,
            published: false,
            frees: [0; MAX_FREES],
            nfrees: 0,
            #[cfg(any(test, loom))]
            stop_after: None,
            grow,
        }
    }
}

/// One writer call in progress: journaled stores, allocation, publication.
pub struct Txn<'h, 'a, M = Region<'a>> {
    heap: &'h Heap<'a, M>,
    /// Journal entries written.
    n: usize,
    /// `version` is odd (readers are told to retry).
    published: bool,
    /// Blocks to free when the call ends: freed earlier, a block could be handed out
    /// again by the same call and overwritten, and a rollback would then restore a
    /// root pointing at the scribbled block.
    frees: [u64; MAX_FREES],
    nfrees: usize,
    /// Tests: fail the journaled store after this many (a simulated crash point).
    #[cfg(any(test, loom))]
    pub(crate) stop_after: Option<usize>,
    grow: &'h mut dyn FnMut(u64, u64) -> bool,
}

/// Blocks one call may free (a replaced record, an old table or vector).
const MAX_FREES: usize = 8;

impl<M> core::fmt::Debug for Txn<'_, '_, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Txn")
            .field("journaled", &self.n)
            .field("published", &self.published)
            .finish()
    }
}

impl<'a, M: HeapMemory<'a>> Txn<'_, 'a, M> {
    /// The heap.
    #[inline]
    pub fn heap(&self) -> &Heap<'a, M> {
        self.heap
    }

    /// Loom models: the call fails (as [`HeapError::Corrupt`]) at its journaled store
    /// number `n` (0-based), before that store touches anything — the caller then
    /// stops as a killed process would, leaving the journal for recovery.
    #[cfg(loom)]
    pub fn die_at_store(&mut self, n: usize) {
        self.stop_after = Some(n);
    }

    /// Tells readers to retry from now until the commit: call before changing any
    /// word a reader follows.
    pub fn publish(&mut self) {
        if !self.published {
            let v = self.heap.raw.version.load(Ordering::Relaxed);
            self.heap.raw.version.store(v | 1, Ordering::Relaxed);
            // SYNC(heap-publish): the odd version is ordered before the changes.
            fence(Ordering::Release);
            self.published = true;
        }
    }

    /// Stores `val` at `off` (a journaled header word or an arena word), journaling
    /// the old value first (once per word per call).
    pub fn jset(&mut self, off: u64, val: u64) -> Result<(), HeapError> {
        #[cfg(any(test, loom))]
        if let Some(n) = self.stop_after.as_mut() {
            if *n == 0 {
                return Err(HeapError::Corrupt("simulated crash"));
            }
            *n -= 1;
        }
        let w = self.heap.jword(off)?;
        let j = &self.heap.raw.journal;
        if !j[..self.n]
            .iter()
            .any(|e| e.off.load(Ordering::Relaxed) == off)
        {
            let e = j.get(self.n).ok_or(HeapError::JournalFull)?;
            e.off.store(off, Ordering::Relaxed);
            e.old.store(w.load(Ordering::Relaxed), Ordering::Relaxed);
            self.n += 1;
            // SYNC(heap-journal): the entry is complete before it counts, and counts
            // before the word changes (the fence orders the store below after it).
            self.heap
                .raw
                .journal_len
                .store(self.n as u64, Ordering::Release);
            fence(Ordering::Release);
        }
        w.store(val, Ordering::Relaxed);
        Ok(())
    }

    /// Stores into a block allocated by this call (no journal needed).
    #[inline]
    pub fn set_fresh(&self, off: u64, val: u64) -> Result<(), HeapError> {
        self.heap.word(off)?.store(val, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `bytes` at the 8-aligned `off` of a block allocated by this call (the
    /// last word zero-padded).
    pub fn write_fresh(&self, off: u64, bytes: &[u8]) -> Result<(), HeapError> {
        self.heap
            .check_range(off, (bytes.len() as u64).div_ceil(8) * 8)?;
        let mut at = off;
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.set_fresh(at, u64::from_le_bytes(w))?;
            at += 8;
        }
        Ok(())
    }

    /// Sets the item count.
    pub fn set_len(&mut self, len: u64) -> Result<(), HeapError> {
        self.jset(LEN, len)
    }
    /// Sets the root block.
    pub fn set_root(&mut self, root: u64) -> Result<(), HeapError> {
        self.jset(ROOT, root)
    }
    /// Sets the container-specific counter.
    pub fn set_aux(&mut self, v: u64) -> Result<(), HeapError> {
        self.jset(AUX, v)
    }

    /// Allocates a block with `n` usable bytes, 8-aligned; returns its payload offset.
    /// The payload holds garbage (a reused block): the caller writes all of it.
    pub fn alloc(&mut self, n: u64) -> Result<u64, HeapError> {
        let limit = self.heap.capacity();
        let full = HeapError::Full { needed: n, limit };
        let c = n.checked_add(8).and_then(class_of).ok_or(full)?;
        let size = class_size(c);
        let head_off = HEADS + c as u64 * WORD;
        let head = self.heap.jword(head_off)?.load(Ordering::Relaxed);
        if head != 0 {
            self.check_block(head, c)?;
            // The link lives in the block's header word, which the caller's writes
            // to the payload never touch: a rolled-back pop leaves the list intact.
            let next = self.heap.load(head)? >> CLASS_BITS;
            self.jset(head_off, next)?;
            return Ok(head + 8);
        }
        let top = self.heap.raw.top.load(Ordering::Relaxed);
        if top > limit {
            // `top` only ever grows up to the limit: a larger one was written over
            // (it would otherwise read as a request for exabytes).
            return Err(HeapError::Corrupt("the arena's top lies beyond its limit"));
        }
        let new_top = top
            .checked_add(size)
            .filter(|&t| t <= limit)
            .ok_or(HeapError::Full {
                needed: top.saturating_add(size),
                limit,
            })?;
        let committed = self.heap.raw.committed.load(Ordering::Relaxed).min(limit);
        if new_top > committed {
            let want = new_top
                .max(committed + committed / 2)
                .max(MIN_CHUNK)
                .div_ceil(MIN_CHUNK)
                .saturating_mul(MIN_CHUNK)
                .min(limit);
            if !(self.grow)(ARENA + committed, want - committed) {
                return Err(HeapError::NoMemory { wanted: want });
            }
            // Monotonic and idempotent: a writer dying after this commits nothing
            // that matters.
            self.heap.raw.committed.store(want, Ordering::Release);
        }
        self.jset(TOP, new_top)?;
        let block = ARENA + top;
        self.set_fresh(block, c as u64)?;
        Ok(block + 8)
    }

    /// A block header `block` of class `c` lies inside the handed-out arena.
    fn check_block(&self, block: u64, c: usize) -> Result<(), HeapError> {
        let top = ARENA
            + self
                .heap
                .raw
                .top
                .load(Ordering::Relaxed)
                .min(self.heap.capacity());
        let ok = block >= ARENA
            && block % 8 == 0
            && block.checked_add(class_size(c)).is_some_and(|e| e <= top)
            && self.heap.load(block)? & CLASS_MASK == c as u64;
        if ok {
            Ok(())
        } else {
            Err(HeapError::Corrupt("a free-list block is out of place"))
        }
    }

    /// Frees the block whose payload is at `payload` when the call ends (in
    /// [`finish`](Self::finish)): until then the block keeps its contents, so the call
    /// can still be rolled back.
    pub fn free(&mut self, payload: u64) -> Result<(), HeapError> {
        let slot = self
            .frees
            .get_mut(self.nfrees)
            .ok_or(HeapError::JournalFull)?;
        *slot = payload;
        self.nfrees += 1;
        Ok(())
    }

    /// Performs the deferred frees; call once the call's changes are complete, before
    /// [`commit`](Self::commit).
    pub fn finish(&mut self) -> Result<(), HeapError> {
        self.publish_if(self.nfrees > 0);
        for i in 0..self.nfrees {
            self.free_now(self.frees[i])?;
        }
        self.nfrees = 0;
        Ok(())
    }

    fn publish_if(&mut self, cond: bool) {
        if cond {
            self.publish();
        }
    }

    fn free_now(&mut self, payload: u64) -> Result<(), HeapError> {
        let block = payload
            .checked_sub(8)
            .ok_or(HeapError::Corrupt("a block offset is out of place"))?;
        let c = self.heap.load(block)? & CLASS_MASK;
        if c >= NCLASSES as u64 {
            return Err(HeapError::Corrupt("a block has an unknown size class"));
        }
        self.check_block(block, c as usize)?;
        let head_off = HEADS + c * WORD;
        let head = self.heap.jword(head_off)?.load(Ordering::Relaxed);
        self.jset(block, head << CLASS_BITS | c)?;
        self.jset(head_off, block)
    }

    /// Empties the heap: every block free, nothing allocated, no root, no items.
    /// Committed memory stays committed (and is reused).
    pub fn reset(&mut self) -> Result<(), HeapError> {
        self.publish();
        for c in 0..NCLASSES {
            let off = HEADS + c as u64 * WORD;
            if self.heap.jword(off)?.load(Ordering::Relaxed) != 0 {
                self.jset(off, 0)?;
            }
        }
        self.jset(TOP, 0)?;
        self.jset(ROOT, 0)?;
        self.jset(LEN, 0)?;
        self.jset(AUX, 0)
    }

    /// Makes the call's changes permanent: one atomic store, then the even version.
    pub fn commit(self) {
        // SYNC(heap-journal): the changes are complete before the journal empties.
        self.heap.raw.journal_len.store(0, Ordering::Release);
        if self.published {
            let v = self.heap.raw.version.load(Ordering::Relaxed);
            // SYNC(heap-publish): pairs with the reader's Acquire load.
            self.heap
                .raw
                .version
                .store((v | 1).wrapping_add(1), Ordering::Release);
        }
    }

    /// Undoes the call's changes (after an error).
    pub fn rollback(self) {
        self.heap.recover();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_sizes_with_at_most_a_quarter_slack() {
        for n in [
            1u64,
            8,
            32,
            33,
            40,
            41,
            64,
            65,
            100,
            1000,
            4096,
            4097,
            1 << 24,
            (1 << 24) + 1,
        ] {
            let c = class_of(n).unwrap();
            assert!(class_size(c) >= n, "{n}");
            assert!(c == 0 || class_size(c - 1) < n, "{n}");
            assert!(class_size(c) <= n.max(32) + n / 4 + 8, "{n}");
        }
        assert!(class_of(1 << 50).is_none());
    }
}
