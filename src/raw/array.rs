//! `RawArray`: a lock plus a sequence counter guarding `len` elements of a
//! [`Pod`] type stored in a region of `AtomicU64` words — the engine behind
//! [`RawValue`](super::RawValue), `Value` and `Array`.
//!
//! ## Layout
//! The header ([`RawArray`]) holds a [`RawLock`] and a sequence counter. The elements
//! live elsewhere (in a named object: the trailing region after the header), packed
//! densely in a slice of `AtomicU64` words: element `i` occupies bytes
//! `i * size_of::<T>() .. (i + 1) * size_of::<T>()` of the words' native-endian byte
//! image, and the last word is padded. The bytes are **only ever touched through
//! atomic word loads, stores and CAS**, so other processes writing them concurrently
//! is never undefined behaviour, and no `&mut` into shared memory is ever formed.
//!
//! ## Two kinds of element
//! * **word-sized** (`size_of::<T>()` is 1, 2, 4 or 8): elements are packed at
//!   multiples of their size, so none straddles a word. Reading one is a single atomic
//!   load; writing one is a single store (8 bytes) or a CAS loop on the word that
//!   holds it (smaller), so neighbours written at the same time by other processes
//!   are never lost. Read-modify-write ([`ArrayRef::update`], `fetch_add`, ...) is a
//!   CAS loop: **lock-free**, and atomic with respect to every other operation on the
//!   element.
//! * **multi-word** (any other size, e.g. `[u64; 8]`, `u128`, `[u8; 3]`): writers take
//!   the lock and bracket their stores with the sequence counter (odd while writing);
//!   readers never take the lock: they read the words and retry if the counter was odd
//!   or changed meanwhile (a *seqlock*). After [`READ_RETRIES`] failed attempts a
//!   reader takes the lock instead, so a reader never spins forever against a writer
//!   that died in the middle of a write.
//!
//! ## Writers that die
//! The lock is robust: when its holder dies the next acquirer gets
//! [`Acquire::Recovered`]. A holder that died between its stores left the counter odd;
//! [`RawArray::lock`] and [`RawArray::try_lock`] make it even again before returning
//! `Recovered`. The elements then hold what the dead writer left: each word is
//! either old or new, so a multi-word element may be half written (the lock's
//! [`Acquire::Recovered`] is how raw users learn this).
//!
//! ## Orderings
//! * `SYNC(elem)`: word stores and RMWs are Release (AcqRel), word loads Acquire: what
//!   a process wrote before `set` is visible to a process whose `get` saw the value.
//! * `SYNC(seq)`: a writer stores the odd count (Relaxed), then the data words
//!   (Release), then the even count (Release). A reader loads the count (Acquire), the
//!   data (Acquire), then the count again (Relaxed). If a data load saw a store of a
//!   newer writer, that writer's odd store happens-before the second count load, which
//!   therefore differs; if the first count load saw a writer's final even store, all of
//!   that writer's data is visible. Either way a torn read is detected.

use super::lock::{Acquire, RawLock, DEFAULT_PROBE};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{current_identity, spin_hint, Deadline, Identity};
use bytemuck::Pod;
use core::marker::PhantomData;
use core::mem::size_of;
use core::time::Duration;

/// How many optimistic attempts a seqlock reader makes before it takes the lock.
#[cfg(not(loom))]
pub const READ_RETRIES: u32 = 128;
/// How many optimistic attempts a seqlock reader makes before it takes the lock
/// (few under loom, which explores every interleaving of every attempt).
#[cfg(loom)]
pub const READ_RETRIES: u32 = 2;

/// Bytes per storage word.
const WORD: usize = 8;

/// True when `T` is read and written with single atomic word operations: its size is
/// 0, 1, 2, 4 or 8 bytes, so a densely packed element never straddles a word.
#[inline]
pub const fn is_word_sized<T>() -> bool {
    matches!(size_of::<T>(), 0 | 1 | 2 | 4 | 8)
}

/// Number of `AtomicU64` words that hold `len` elements of `T`, or `None` if that
/// overflows `usize`.
#[inline]
pub const fn words_for<T>(len: usize) -> Option<usize> {
    match len.checked_mul(size_of::<T>()) {
        Some(bytes) => Some(bytes.div_ceil(WORD)),
        None => None,
    }
}

/// Integer types with lock-free `fetch_add` & co. on shared elements: the primitive
/// integers of 1, 2, 4 and 8 bytes. Arithmetic wraps around, as with `AtomicU64`.
pub trait Integer:
    Pod
    + Ord
    + core::ops::BitAnd<Output = Self>
    + core::ops::BitOr<Output = Self>
    + core::ops::BitXor<Output = Self>
    + sealed::Sealed
{
    /// `self + rhs`, wrapping around at the type's bounds.
    fn wrapping_add(self, rhs: Self) -> Self;
    /// `self - rhs`, wrapping around at the type's bounds.
    fn wrapping_sub(self, rhs: Self) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Integer for $t {
            #[inline]
            fn wrapping_add(self, rhs: Self) -> Self {
                <$t>::wrapping_add(self, rhs)
            }
            #[inline]
            fn wrapping_sub(self, rhs: Self) -> Self {
                <$t>::wrapping_sub(self, rhs)
            }
        }
    )*};
}
integer!(u8, i8, u16, i16, u32, i32, u64, i64, usize, isize);

// ---- byte plumbing: everything goes through atomic words ----

/// The `size_of::<T>()` bytes of the word image starting at byte `off` (< 8).
#[inline]
fn extract<T: Pod>(word: u64, off: usize) -> T {
    let bytes = word.to_ne_bytes();
    let mut v = T::zeroed();
    bytemuck::bytes_of_mut(&mut v).copy_from_slice(&bytes[off..off + size_of::<T>()]);
    v
}

/// `word` with its bytes `off .. off + size_of::<T>()` replaced by `v`.
#[inline]
fn insert<T: Pod>(word: u64, off: usize, v: T) -> u64 {
    let mut bytes = word.to_ne_bytes();
    bytes[off..off + size_of::<T>()].copy_from_slice(bytemuck::bytes_of(&v));
    u64::from_ne_bytes(bytes)
}

/// `v`'s bytes as the low-address bytes of a word (for 8-byte `T`: its exact bits).
#[inline]
fn to_word<T: Pod>(v: T) -> u64 {
    insert(0, 0, v)
}

/// Copies bytes `off .. off + out.len()` of the words' image into `out`, one atomic
/// load per word touched.
///
/// The caller guarantees `off + out.len() <= words.len() * 8` (the view invariant).
#[inline]
fn read_bytes(words: &[AtomicU64], off: usize, out: &mut [u8]) {
    let mut pos = 0;
    while pos < out.len() {
        let at = off + pos;
        let (w, in_w) = (at / WORD, at % WORD);
        let n = (WORD - in_w).min(out.len() - pos);
        // SYNC(elem) / SYNC(seq): Acquire pairs with the Release stores of writers.
        let word = words[w].load(Ordering::Acquire).to_ne_bytes();
        out[pos..pos + n].copy_from_slice(&word[in_w..in_w + n]);
        pos += n;
    }
}

/// Writes `src` at byte `off` of the words' image: whole words with one store each,
/// partly covered words with a CAS loop that keeps the other bytes (which may belong
/// to elements other processes are updating lock-free).
///
/// The caller guarantees `off + src.len() <= words.len() * 8`.
#[inline]
fn write_bytes(words: &[AtomicU64], off: usize, src: &[u8]) {
    let mut pos = 0;
    while pos < src.len() {
        let at = off + pos;
        let (w, in_w) = (at / WORD, at % WORD);
        let n = (WORD - in_w).min(src.len() - pos);
        let word = &words[w];
        if n == WORD {
            let mut b = [0u8; WORD];
            b.copy_from_slice(&src[pos..pos + WORD]);
            // SYNC(elem) / SYNC(seq): Release pairs with the Acquire loads of readers.
            word.store(u64::from_ne_bytes(b), Ordering::Release);
        } else {
            let mut cur = word.load(Ordering::Relaxed);
            loop {
                let mut b = cur.to_ne_bytes();
                b[in_w..in_w + n].copy_from_slice(&src[pos..pos + n]);
                let new = u64::from_ne_bytes(b);
                // SYNC(elem): AcqRel RMW, as above.
                match word.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        pos += n;
    }
}

/// Writes the elements of `new` that differ from `orig` (both `len * size` bytes, the
/// whole array's image), run by run. Elements equal in both are not touched at all,
/// so a concurrent lock-free update of one of them is never overwritten.
fn write_changed(words: &[AtomicU64], size: usize, orig: &[u8], new: &[u8]) {
    if size == 0 {
        return;
    }
    let len = orig.len().min(new.len()) / size;
    let mut i = 0;
    while i < len {
        let differs = |i: usize| orig[i * size..(i + 1) * size] != new[i * size..(i + 1) * size];
        if !differs(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < len && differs(i) {
            i += 1;
        }
        write_bytes(words, start * size, &new[start * size..i * size]);
    }
}

/// The header of a shared array (or, through [`RawValue`](super::RawValue), of a
/// single value): the lock that serialises locked writers, and the seqlock counter.
///
/// Made only of atomics; all-zero bytes are a valid, unlocked, consistent header.
#[repr(C)]
#[derive(Debug)]
pub struct RawArray {
    /// Serialises every writer that is not a single lock-free word operation: writes
    /// of multi-word elements, bulk writes, guards' write-backs.
    lock: RawLock,
    /// The seqlock counter: even = stable, odd = a locked writer is storing words.
    /// Only the lock holder changes it (plus the recoverer of a dead holder, which
    /// makes it even again).
    seq: AtomicU64,
}

// SAFETY: repr(C) of a RawLock (SharedState) and an AtomicU64; all-zero is unlocked
// with an even counter; no pointers, no Drop; align 8.
unsafe impl super::SharedState for RawArray {}

impl Default for RawArray {
    fn default() -> Self {
        RawArray::new()
    }
}

impl RawArray {
    /// An unlocked header with an even counter (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawArray {
        RawArray {
            lock: RawLock::new(),
            seq: AtomicU64::new(0),
        }
    }
    /// An unlocked header with an even counter (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawArray {
        RawArray {
            lock: RawLock::new(),
            seq: AtomicU64::new(0),
        }
    }

    /// A typed view of `len` elements of `T` stored in `words`; `None` if `words` is
    /// too short for them (or `len * size_of::<T>()` overflows).
    ///
    /// ```
    /// use multiproc::raw::RawArray;
    /// use core::sync::atomic::AtomicU64;
    /// let header = RawArray::new();
    /// let words: Vec<AtomicU64> = (0..2).map(|_| AtomicU64::new(0)).collect();
    /// let a = header.view::<u32>(&words, 4).unwrap(); // 4 × 4 bytes in 2 words
    /// a.set(3, 7);
    /// assert_eq!(a.fetch_add(3, 1), Some(7));
    /// assert_eq!(a.get(3), Some(8));
    /// assert_eq!(a.get(4), None);
    /// ```
    #[inline]
    pub fn view<'a, T: Pod>(
        &'a self,
        words: &'a [AtomicU64],
        len: usize,
    ) -> Option<ArrayRef<'a, T>> {
        let need = words_for::<T>(len)?;
        if words.len() < need {
            return None;
        }
        Some(ArrayRef {
            raw: self,
            words,
            len,
            probe: DEFAULT_PROBE,
            _t: PhantomData,
        })
    }

    /// Takes the lock (see [`RawLock::lock`]). A counter left odd — by a holder that
    /// died mid-write ([`Acquire::Recovered`]) or by a foreign write — is made even
    /// again: while we hold the lock nobody is writing, so the words are final.
    #[inline]
    pub fn lock(&self, me: Identity, deadline: Deadline, probe: Duration) -> Acquire {
        let a = self.lock.lock(me, deadline, probe);
        if a.is_held() {
            self.repair();
        }
        a
    }

    /// Takes the lock if that needs no waiting (see [`RawLock::try_lock`]); repairs the
    /// counter as [`lock`](RawArray::lock) does.
    #[inline]
    pub fn try_lock(&self, me: Identity) -> Acquire {
        let a = self.lock.try_lock(me);
        if a.is_held() {
            self.repair();
        }
        a
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The caller holds the lock and has ended any write it began
    /// ([`end_write`](RawArray::end_write)); see [`RawLock::unlock`].
    #[inline]
    pub unsafe fn unlock(&self, me: Identity) {
        // SAFETY: forwarded contract.
        unsafe { self.lock.unlock(me) }
    }

    /// The lock itself (to build guards on). Acquire it through
    /// [`lock`](RawArray::lock), which repairs the counter after a dead holder.
    #[inline]
    pub fn raw_lock(&self) -> &RawLock {
        &self.lock
    }

    /// The seqlock counter (a snapshot): odd while a locked writer is storing.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Makes the counter odd: seqlock readers will retry until
    /// [`end_write`](RawArray::end_write). Call only while holding the lock.
    #[inline]
    pub fn begin_write(&self) {
        let s = self.seq.load(Ordering::Relaxed);
        // SYNC(seq): ordered before the data stores by their Release.
        self.seq.store(s | 1, Ordering::Relaxed);
    }

    /// Makes the counter even (and new): the words stored since
    /// [`begin_write`](RawArray::begin_write) are published. Call only while holding
    /// the lock.
    #[inline]
    pub fn end_write(&self) {
        let s = self.seq.load(Ordering::Relaxed);
        // SYNC(seq): Release pairs with the Acquire first load of readers.
        self.seq.store((s | 1).wrapping_add(1), Ordering::Release);
    }

    /// Right after taking the lock: a counter left odd becomes even.
    #[inline]
    fn repair(&self) {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 == 1 {
            // SYNC(seq): Release, as end_write.
            self.seq.store(s.wrapping_add(1), Ordering::Release);
        }
    }

    /// Blocks for the lock. A lock word naming the calling thread is taken over (see
    /// [`RawLock`]'s "Impossible holders"): the operations that call this must not be
    /// used while the calling thread holds the lock (the named handles refuse that
    /// before calling, knowing which locks their guards hold; shared memory cannot
    /// tell them).
    #[inline]
    fn lock_blocking(&self, probe: Duration) -> Unlock<'_> {
        let me = current_identity();
        let _ = self.lock(me, None, probe);
        Unlock { raw: self, me }
    }

    /// Runs `read` until it ran while no locked writer wrote; falls back to the lock
    /// after [`READ_RETRIES`] attempts.
    #[inline]
    fn read_consistent(&self, probe: Duration, mut read: impl FnMut()) {
        let mut tries = 0;
        loop {
            // SYNC(seq): Acquire pairs with end_write's Release.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                read();
                // Ordered after the data loads by their Acquire (see the module doc).
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return;
                }
            }
            tries += 1;
            if tries >= READ_RETRIES {
                break;
            }
            spin_hint();
        }
        self.read_locked_slow(probe, read);
    }

    #[cold]
    fn read_locked_slow(&self, probe: Duration, mut read: impl FnMut()) {
        let me = current_identity();
        if self.lock.is_held_by(me) {
            // Our own guard holds the lock: nobody else writes under it.
            read();
            return;
        }
        let _ = self.lock(me, None, probe);
        let _unlock = Unlock { raw: self, me };
        read();
    }
}

/// Releases the lock on drop (also when a user closure panics under it).
struct Unlock<'a> {
    raw: &'a RawArray,
    me: Identity,
}

impl Drop for Unlock<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: an Unlock exists only while `me` holds the lock, every write begun
        // under it has ended, and nothing is touched after this.
        unsafe { self.raw.unlock(self.me) }
    }
}

/// A typed view of a shared array: a [`RawArray`] header plus `len` elements of `T`
/// in a slice of words. Every index is bounds-checked against `len` (a value of the
/// caller's, never re-read from shared memory); out-of-range indices give `None` or
/// `false`.
///
/// See the [module docs](self) for which operations are lock-free. The others take the
/// header's lock, and must not be called by a thread that holds it already: a lock word
/// naming the calling thread is taken as forged and taken over (see [`RawLock`]'s
/// "Impossible holders"), so the outer hold would end with the call.
pub struct ArrayRef<'a, T> {
    raw: &'a RawArray,
    /// At least `words_for::<T>(len)` words (checked by [`RawArray::view`]).
    words: &'a [AtomicU64],
    len: usize,
    probe: Duration,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for ArrayRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ArrayRef<'_, T> {}

impl<T> core::fmt::Debug for ArrayRef<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ArrayRef")
            .field("type", &core::any::type_name::<T>())
            .field("len", &self.len)
            .finish()
    }
}

impl<'a, T: Pod> ArrayRef<'a, T> {
    const SIZE: usize = size_of::<T>();

    /// Sets how often a waiter for the lock checks that its holder is alive.
    #[inline]
    pub fn with_probe(mut self, probe: Duration) -> Self {
        self.probe = probe;
        self
    }

    /// The header.
    #[inline]
    pub fn raw(&self) -> &'a RawArray {
        self.raw
    }

    /// The element words.
    #[inline]
    pub fn words(&self) -> &'a [AtomicU64] {
        self.words
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the array has no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when single elements are read and written with one atomic word
    /// operation (see [`is_word_sized`]).
    #[inline]
    pub fn is_lock_free(&self) -> bool {
        is_word_sized::<T>()
    }

    /// The word holding element `i` and the element's byte offset in it (word-sized
    /// `T` only; `i < len`).
    #[inline]
    fn slot(&self, i: usize) -> (&'a AtomicU64, usize) {
        let at = i * Self::SIZE;
        (&self.words[at / WORD], at % WORD)
    }

    /// Element `i`, or `None` if `i >= len`. One atomic load for word-sized `T`; a
    /// seqlock read otherwise.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        if is_word_sized::<T>() {
            if Self::SIZE == 0 {
                return Some(T::zeroed());
            }
            let (w, off) = self.slot(i);
            // SYNC(elem): Acquire pairs with the Release of writers.
            return Some(extract(w.load(Ordering::Acquire), off));
        }
        let mut v = T::zeroed();
        self.raw.read_consistent(self.probe, || {
            read_bytes(self.words, i * Self::SIZE, bytemuck::bytes_of_mut(&mut v))
        });
        Some(v)
    }

    /// Stores `x` at `i`; `false` if `i >= len`. Lock-free for word-sized `T`; takes the
    /// lock otherwise (readers never wait for it).
    #[inline]
    pub fn set(&self, i: usize, x: T) -> bool {
        if i >= self.len {
            return false;
        }
        if is_word_sized::<T>() {
            if Self::SIZE == WORD {
                // SYNC(elem): Release pairs with the Acquire of readers.
                self.slot(i).0.store(to_word(x), Ordering::Release);
            } else {
                write_bytes(self.words, i * Self::SIZE, bytemuck::bytes_of(&x));
            }
            return true;
        }
        let _u = self.raw.lock_blocking(self.probe);
        self.raw.begin_write();
        write_bytes(self.words, i * Self::SIZE, bytemuck::bytes_of(&x));
        self.raw.end_write();
        true
    }

    /// Atomically replaces element `i` with what `f` makes of it and returns `f`'s
    /// result; `None` if `i >= len`.
    ///
    /// For word-sized `T` this is a lock-free CAS loop: `f` may run **more than once**
    /// (each time on a fresh copy), and the update is atomic with respect to
    /// `fetch_add` & co. For other `T` it runs once, under the lock.
    #[inline]
    pub fn update<R>(&self, i: usize, mut f: impl FnMut(&mut T) -> R) -> Option<R> {
        if i >= self.len {
            return None;
        }
        if is_word_sized::<T>() {
            if Self::SIZE == 0 {
                return Some(f(&mut T::zeroed()));
            }
            let (w, off) = self.slot(i);
            let mut cur = w.load(Ordering::Acquire);
            loop {
                let mut v: T = extract(cur, off);
                let r = f(&mut v);
                let new = insert(cur, off, v);
                if new == cur {
                    return Some(r);
                }
                // SYNC(elem): AcqRel RMW.
                match w.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Some(r),
                    Err(now) => cur = now,
                }
            }
        }
        let _u = self.raw.lock_blocking(self.probe);
        let at = i * Self::SIZE;
        let mut v = T::zeroed();
        read_bytes(self.words, at, bytemuck::bytes_of_mut(&mut v));
        let orig = v;
        let r = f(&mut v);
        if bytemuck::bytes_of(&v) != bytemuck::bytes_of(&orig) {
            self.raw.begin_write();
            write_bytes(self.words, at, bytemuck::bytes_of(&v));
            self.raw.end_write();
        }
        Some(r)
    }

    /// Stores `x` at `i` and returns the previous element; `None` if `i >= len`.
    #[inline]
    pub fn swap(&self, i: usize, x: T) -> Option<T> {
        if is_word_sized::<T>() && Self::SIZE == WORD && i < self.len {
            // SYNC(elem): AcqRel RMW.
            let old = self.slot(i).0.swap(to_word(x), Ordering::AcqRel);
            return Some(extract(old, 0));
        }
        self.update(i, |v| core::mem::replace(v, x))
    }

    /// Stores `new` at `i` if the element's bytes equal `current`'s: `Ok(previous)` if
    /// it did, `Err(actual)` if not; `None` if `i >= len`. Comparison is bytewise (for
    /// floats: `-0.0 != 0.0`, and a NaN equals the same NaN bits).
    #[inline]
    pub fn compare_exchange(&self, i: usize, current: T, new: T) -> Option<Result<T, T>> {
        if is_word_sized::<T>() && Self::SIZE == WORD && i < self.len {
            // SYNC(elem): AcqRel RMW.
            let r = self.slot(i).0.compare_exchange(
                to_word(current),
                to_word(new),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            return Some(r.map(|w| extract(w, 0)).map_err(|w| extract(w, 0)));
        }
        self.update(i, |v| {
            if bytemuck::bytes_of(v) == bytemuck::bytes_of(&current) {
                Ok(core::mem::replace(v, new))
            } else {
                Err(*v)
            }
        })
    }

    /// Copies every element into `out` (`false`, copying nothing, if `out.len() !=
    /// len`). A seqlock read: consistent with respect to locked writers (bulk writes,
    /// guards, multi-word elements); lock-free single-element updates made meanwhile
    /// are each seen either before or after.
    pub fn read_into(&self, out: &mut [T]) -> bool {
        if out.len() != self.len {
            return false;
        }
        if Self::SIZE == 0 {
            return true;
        }
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
        self.raw
            .read_consistent(self.probe, || read_bytes(self.words, 0, bytes));
        true
    }

    /// Writes every element from `src` under the lock, as one seqlock write (`false`,
    /// writing nothing, if `src.len() != len`).
    pub fn write_from(&self, src: &[T]) -> bool {
        if src.len() != self.len {
            return false;
        }
        if Self::SIZE == 0 {
            return true;
        }
        let _u = self.raw.lock_blocking(self.probe);
        self.raw.begin_write();
        write_bytes(self.words, 0, bytemuck::cast_slice(src));
        self.raw.end_write();
        true
    }

    /// Sets every element to `x` under the lock, as one seqlock write.
    pub fn fill(&self, x: T) {
        if Self::SIZE == 0 {
            return;
        }
        let _u = self.raw.lock_blocking(self.probe);
        self.raw.begin_write();
        if is_word_sized::<T>() {
            // A word holds 8 / size whole elements: store the repeated pattern word by
            // word, and merge the partial last word.
            let mut pattern = [0u8; WORD];
            for chunk in pattern.chunks_exact_mut(Self::SIZE) {
                chunk.copy_from_slice(bytemuck::bytes_of(&x));
            }
            let bytes = self.len * Self::SIZE;
            for w in &self.words[..bytes / WORD] {
                // SYNC(elem) / SYNC(seq): Release, as in write_bytes.
                w.store(u64::from_ne_bytes(pattern), Ordering::Release);
            }
            let tail = bytes % WORD;
            write_bytes(self.words, bytes - tail, &pattern[..tail]);
        } else {
            for i in 0..self.len {
                write_bytes(self.words, i * Self::SIZE, bytemuck::bytes_of(&x));
            }
        }
        self.raw.end_write();
    }

    /// Copies every element into `out` while the caller holds the lock (no seqlock
    /// retry needed). `false` if `out.len() != len`.
    pub fn read_locked(&self, out: &mut [T]) -> bool {
        if out.len() != self.len {
            return false;
        }
        if Self::SIZE == 0 {
            return true;
        }
        read_bytes(self.words, 0, bytemuck::cast_slice_mut(out));
        true
    }

    /// Writes back the elements of `new` that differ from `orig` (both `len` long, else
    /// `false`) as one seqlock write — none at all if nothing differs. Elements equal
    /// in both are not touched, so concurrent lock-free updates of them survive. Call
    /// only while holding the lock.
    pub fn write_changed_locked(&self, orig: &[T], new: &[T]) -> bool {
        if orig.len() != self.len || new.len() != self.len {
            return false;
        }
        if Self::SIZE == 0 {
            return true;
        }
        let (orig, new): (&[u8], &[u8]) = (bytemuck::cast_slice(orig), bytemuck::cast_slice(new));
        if orig == new {
            return true;
        }
        self.raw.begin_write();
        write_changed(self.words, Self::SIZE, orig, new);
        self.raw.end_write();
        true
    }
}

impl<T: Integer> ArrayRef<'_, T> {
    /// Adds `x` to element `i` (wrapping), returning the previous value; `None` if
    /// `i >= len`. Lock-free: one atomic instruction for 8-byte `T`, a CAS loop on the
    /// containing word for smaller ones.
    #[inline]
    pub fn fetch_add(&self, i: usize, x: T) -> Option<T> {
        if size_of::<T>() == WORD && i < self.len {
            // SYNC(elem): AcqRel RMW.
            let old = self.slot(i).0.fetch_add(to_word(x), Ordering::AcqRel);
            return Some(extract(old, 0));
        }
        self.update(i, |v| core::mem::replace(v, v.wrapping_add(x)))
    }

    /// Subtracts `x` from element `i` (wrapping), returning the previous value.
    #[inline]
    pub fn fetch_sub(&self, i: usize, x: T) -> Option<T> {
        if size_of::<T>() == WORD && i < self.len {
            // SYNC(elem): AcqRel RMW.
            let old = self.slot(i).0.fetch_sub(to_word(x), Ordering::AcqRel);
            return Some(extract(old, 0));
        }
        self.update(i, |v| core::mem::replace(v, v.wrapping_sub(x)))
    }

    /// Bitwise-ands `x` into element `i`, returning the previous value.
    #[inline]
    pub fn fetch_and(&self, i: usize, x: T) -> Option<T> {
        if size_of::<T>() == WORD && i < self.len {
            // SYNC(elem): AcqRel RMW.
            let old = self.slot(i).0.fetch_and(to_word(x), Ordering::AcqRel);
            return Some(extract(old, 0));
        }
        self.update(i, |v| core::mem::replace(v, *v & x))
    }

    /// Bitwise-ors `x` into element `i`, returning the previous value.
    #[inline]
    pub fn fetch_or(&self, i: usize, x: T) -> Option<T> {
        if size_of::<T>() == WORD && i < self.len {
            // SYNC(elem): AcqRel RMW.
            let old = self.slot(i).0.fetch_or(to_word(x), Ordering::AcqRel);
            return Some(extract(old, 0));
        }
        self.update(i, |v| core::mem::replace(v, *v | x))
    }

    /// Bitwise-xors `x` into element `i`, returning the previous value.
    #[inline]
    pub fn fetch_xor(&self, i: usize, x: T) -> Option<T> {
        if size_of::<T>() == WORD && i < self.len {
            // SYNC(elem): AcqRel RMW.
            let old = self.slot(i).0.fetch_xor(to_word(x), Ordering::AcqRel);
            return Some(extract(old, 0));
        }
        self.update(i, |v| core::mem::replace(v, *v ^ x))
    }

    /// Stores the maximum of element `i` and `x` (signed or unsigned as `T` is),
    /// returning the previous value.
    #[inline]
    pub fn fetch_max(&self, i: usize, x: T) -> Option<T> {
        self.update(i, |v| core::mem::replace(v, (*v).max(x)))
    }

    /// Stores the minimum of element `i` and `x`, returning the previous value.
    #[inline]
    pub fn fetch_min(&self, i: usize, x: T) -> Option<T> {
        self.update(i, |v| core::mem::replace(v, (*v).min(x)))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn layout_and_word_sizes() {
        assert!(is_word_sized::<u8>() && is_word_sized::<u64>() && is_word_sized::<()>());
        assert!(!is_word_sized::<[u8; 3]>() && !is_word_sized::<u128>());
        assert_eq!(words_for::<u8>(9), Some(2));
        assert_eq!(words_for::<[u64; 8]>(1), Some(8));
        assert_eq!(words_for::<u16>(usize::MAX), None);
        assert_eq!(words_for::<()>(usize::MAX), Some(0));
    }

    #[test]
    fn view_rejects_short_word_slices() {
        let h = RawArray::new();
        let w = words(1);
        assert!(h.view::<u8>(&w, 8).is_some());
        assert!(h.view::<u8>(&w, 9).is_none());
        assert!(h.view::<u64>(&w, usize::MAX).is_none());
    }

    #[test]
    fn sub_word_elements_do_not_disturb_neighbours() {
        let h = RawArray::new();
        let w = words(2);
        let a = h.view::<u8>(&w, 16).unwrap();
        for i in 0..16 {
            a.set(i, i as u8 * 3);
        }
        assert_eq!(a.fetch_add(5, 250), Some(15));
        assert_eq!(a.get(5), Some(9)); // wrapped
        for i in (0..16).filter(|&i| i != 5) {
            assert_eq!(a.get(i), Some(i as u8 * 3));
        }
    }

    #[test]
    fn straddling_elements_round_trip() {
        let h = RawArray::new();
        let w = words(3);
        let a = h.view::<[u8; 3]>(&w, 8).unwrap();
        for i in 0..8u8 {
            a.set(i.into(), [i, i + 1, i + 2]);
        }
        for i in 0..8u8 {
            assert_eq!(a.get(i.into()), Some([i, i + 1, i + 2]));
        }
        let mut out = [[0u8; 3]; 8];
        assert!(a.read_into(&mut out));
        assert_eq!(out[7], [7, 8, 9]);
        assert_eq!(h.seq() % 2, 0);
    }

    #[test]
    fn write_changed_touches_only_changed_elements() {
        let h = RawArray::new();
        let w = words(1);
        let a = h.view::<u16>(&w, 4).unwrap();
        let orig = [1u16, 2, 3, 4];
        assert!(a.write_from(&orig));
        // Another process bumps element 0 lock-free meanwhile ...
        a.fetch_add(0, 10);
        // ... and a guard writes back a change to element 2 only.
        assert!(a.write_changed_locked(&orig, &[1, 2, 30, 4]));
        let mut out = [0u16; 4];
        a.read_into(&mut out);
        assert_eq!(out, [11, 2, 30, 4]);
    }

    #[test]
    fn signed_max_min_and_compare_exchange() {
        let h = RawArray::new();
        let w = words(1);
        let a = h.view::<i32>(&w, 2).unwrap();
        a.set(1, -5);
        assert_eq!(a.fetch_max(1, -7), Some(-5));
        assert_eq!(a.fetch_min(1, -7), Some(-5));
        assert_eq!(a.get(1), Some(-7));
        assert_eq!(a.compare_exchange(1, -7, 3), Some(Ok(-7)));
        assert_eq!(a.compare_exchange(1, -7, 4), Some(Err(3)));
        assert_eq!(a.get(0), Some(0));
    }

    #[test]
    fn dead_writer_repair_makes_counter_even() {
        let h = RawArray::new();
        let dead = std::thread::spawn(move || {
            let me = current_identity();
            assert_eq!(h.lock(me, None, DEFAULT_PROBE), Acquire::Acquired);
            h.begin_write();
            h // "dies" holding the lock mid-write
        })
        .join()
        .unwrap();
        assert_eq!(dead.seq() % 2, 1);
        let w = words(8);
        let a = dead.view::<[u64; 8]>(&w, 1).unwrap();
        // A reader gives up on the seqlock and recovers the lock.
        assert_eq!(a.get(0), Some([0; 8]));
        assert_eq!(dead.seq() % 2, 0);
        assert!(!dead.raw_lock().is_locked());
    }
}
