//! Where the slots of a [`RawSpsc`](super::RawSpsc) ring live, and how bytes are
//! copied in and out of them: the [`RingMemory`] contract, [`RegionMemory`] over a
//! mapping, and the copy helpers (inline short copies, streaming stores for large
//! ones). Apart from the ring and its cursors, which only ever reach the slots
//! through [`RingMemory`].
//!
//! ## Foreign writers
//! The slots are plain bytes in memory other processes map: a hostile or buggy one
//! may write them while we copy. Copies are raw (`copy_nonoverlapping` on raw
//! pointers, never references into the region), so such a race yields garbage
//! bytes in the copy, which the layers above treat as untrusted data; stamp words are
//! read as atomics ([`RingMemory::word`]). This is the crate's one stance on such
//! races: see [Reads that race a foreign writer](crate#reads-that-race-a-foreign-writer).

use crate::sync::atomic::AtomicU64;

/// Where a ring's slots live.
///
/// # Safety
/// Implementors guarantee that [`len`](RingMemory::len) bytes at offsets
/// `0..len()` can be written and read through [`write`](RingMemory::write) and
/// [`read`](RingMemory::read) for as long as the value lives, by this process while
/// other processes do the same (the ring protocol keeps a producer's writes and a
/// consumer's reads of one slot apart in time; a hostile process may break that, so
/// concurrent access must at worst yield garbage bytes, never undefined behaviour
/// beyond the bytes themselves).
pub unsafe trait RingMemory {
    /// Bytes available.
    fn len(&self) -> usize;
    /// True when the memory holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `n` bytes from `src` to offset `off`.
    ///
    /// # Safety
    /// `off + n <= len()`; `src` is valid for reading `n` bytes.
    unsafe fn write(&self, off: usize, src: *const u8, n: usize);
    /// Copies `n` bytes at offset `off` to `dst`.
    ///
    /// # Safety
    /// `off + n <= len()`; `dst` is valid for writing `n` bytes.
    unsafe fn read(&self, off: usize, dst: *mut u8, n: usize);
    /// As [`read`](RingMemory::read), for a destination that will not be read again
    /// soon (a large message): may bypass the cache. The default is `read`.
    ///
    /// # Safety
    /// As for [`read`](RingMemory::read).
    unsafe fn read_streaming(&self, off: usize, dst: *mut u8, n: usize) {
        // SAFETY: the same contract.
        unsafe { self.read(off, dst, n) }
    }
    /// The 8 bytes at `off` as an atomic word, for stamps (see [`Producer::stamp`](super::spsc::Producer::stamp));
    /// `None` if `off` is not 8-aligned and in bounds, or the memory cannot do it.
    fn word(&self, off: usize) -> Option<&AtomicU64> {
        let _ = off;
        None
    }
}

/// Slot memory at a raw address: a region of a mapping (e.g. a segment's trailing
/// bytes). A process-local handle, never stored in shared memory.
#[derive(Clone, Copy, Debug)]
pub struct RegionMemory {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the pointer names shared memory that every thread may access; the handle
// itself is plain data.
unsafe impl Send for RegionMemory {}
// SAFETY: as above; all accesses go through the ring protocol.
unsafe impl Sync for RegionMemory {}

impl RegionMemory {
    /// `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is valid for reads and writes of `len` bytes for as long as the value (and
    /// every cursor holding it) is used, and is never covered by a Rust reference.
    pub const unsafe fn new(ptr: *mut u8, len: usize) -> RegionMemory {
        RegionMemory { ptr, len }
    }
}

// SAFETY: `new`'s contract makes `len` bytes at `ptr` valid; raw copies tolerate
// concurrent foreign writes (the bytes are then garbage, which readers validate).
unsafe impl RingMemory for RegionMemory {
    #[inline]
    fn len(&self) -> usize {
        self.len
    }
    #[inline]
    unsafe fn write(&self, off: usize, src: *const u8, n: usize) {
        debug_assert!(off + n <= self.len);
        // SAFETY: in bounds per the caller's contract; `src` is a private buffer, so
        // the ranges do not overlap.
        unsafe { copy(src, self.ptr.add(off), n) }
    }
    #[inline]
    unsafe fn read(&self, off: usize, dst: *mut u8, n: usize) {
        debug_assert!(off + n <= self.len);
        // SAFETY: as above.
        unsafe { copy(self.ptr.add(off), dst, n) }
    }
    #[inline]
    unsafe fn read_streaming(&self, off: usize, dst: *mut u8, n: usize) {
        debug_assert!(off + n <= self.len);
        // SAFETY: as in `read`.
        unsafe { copy_streaming(self.ptr.add(off), dst, n) }
    }
    // loom's atomics are not layout-compatible with plain memory: no words under loom.
    #[cfg(not(loom))]
    #[inline]
    fn word(&self, off: usize) -> Option<&AtomicU64> {
        let addr = (self.ptr as usize).checked_add(off)?;
        if addr % 8 != 0 || off.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: 8 aligned bytes inside the region (`new`'s contract); an AtomicU64
        // may alias memory that other processes write, and no `&mut` to it exists.
        Some(unsafe { &*(addr as *const AtomicU64) })
    }
}

/// `copy_nonoverlapping`, with short copies done inline: a call to `memcpy` costs
/// more than moving the 8 or 16 bytes of a small message.
///
/// # Safety
/// As for `copy_nonoverlapping`.
#[inline(always)]
unsafe fn copy(src: *const u8, dst: *mut u8, n: usize) {
    use core::ptr::{read_unaligned as rd, write_unaligned as wr};
    // SAFETY: every access below stays within `n` bytes of `src` and `dst`.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                // First, middle and last byte cover 1, 2 and 3 bytes.
                let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
                *dst = a;
                *dst.add(n / 2) = b;
                *dst.add(n - 1) = c;
            }
            4..=7 => {
                let (a, b) = (rd(src as *const u32), rd(src.add(n - 4) as *const u32));
                wr(dst as *mut u32, a);
                wr(dst.add(n - 4) as *mut u32, b);
            }
            8..=16 => {
                let (a, b) = (rd(src as *const u64), rd(src.add(n - 8) as *const u64));
                wr(dst as *mut u64, a);
                wr(dst.add(n - 8) as *mut u64, b);
            }
            _ => core::ptr::copy_nonoverlapping(src, dst, n),
        }
    }
}

/// `copy_nonoverlapping` with non-temporal stores on x86_64: the destination lines
/// are written without being read first (no read-for-ownership), which halves the
/// memory traffic of copying into a large buffer that is not in the cache — what
/// `memcpy` itself does for large copies.
///
/// # Safety
/// As for `copy_nonoverlapping`.
#[inline]
unsafe fn copy_streaming(src: *const u8, dst: *mut u8, n: usize) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    if n >= 4096 {
        use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        // SAFETY: all accesses stay within `n` bytes of `src` and `dst`; SSE2 is part
        // of the x86_64 baseline; stream stores need 16-byte aligned addresses, which
        // the head copy establishes.
        unsafe {
            let head = dst.align_offset(16).min(n);
            copy(src, dst, head);
            let (mut s, mut d, mut left) = (src.add(head), dst.add(head), n - head);
            while left >= 64 {
                let a = _mm_loadu_si128(s as *const __m128i);
                let b = _mm_loadu_si128(s.add(16) as *const __m128i);
                let c = _mm_loadu_si128(s.add(32) as *const __m128i);
                let e = _mm_loadu_si128(s.add(48) as *const __m128i);
                _mm_stream_si128(d as *mut __m128i, a);
                _mm_stream_si128(d.add(16) as *mut __m128i, b);
                _mm_stream_si128(d.add(32) as *mut __m128i, c);
                _mm_stream_si128(d.add(48) as *mut __m128i, e);
                s = s.add(64);
                d = d.add(64);
                left -= 64;
            }
            copy(s, d, left);
            // Order the streaming stores before anything this thread does next (e.g.
            // handing the buffer to another thread).
            _mm_sfence();
        }
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, n) }
}
