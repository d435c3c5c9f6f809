//! Where a message body is written, and the postcard output that writes it.
//!
//! A [`Sink`] writes into private memory (a reused `Vec`) while the body is short.
//! When a writer that may *spill* (a worker writing its RESULT) passes
//! [`BLOB_MIN`](super::blob::BLOB_MIN) bytes, the sink asks for a shared area, copies
//! what it holds into it once and goes on writing there: a large result is
//! serialized straight into the area the pool copies it out of, never into a
//! private buffer first. When a later write does not fit, the sink copies the area's
//! bytes back into the private buffer, asks for a larger area and copies them over
//! (two copies per growth; areas are reused, so this happens only while they grow).
//! If no area can be had, the sink stays in private memory and the caller sends the
//! body the way it sends any private body.
//!
//! Writing into shared memory is fine (through raw pointers, never a `&mut`);
//! nothing here *reads* serde input from shared memory.

use super::blob::{Buf, BLOB_MIN};

/// Gives a sink a shared area of at least `len` bytes: its start and length. The
/// area stays mapped and unused by anyone else until the caller sends the message
/// or asks again (which may replace it). `None`: no area (the reason is the spiller's
/// to report).
pub(super) type Spill<'a> = &'a mut dyn FnMut(usize) -> Option<(*mut u8, usize)>;

/// A message body being written: see the module docs.
pub(super) struct Sink<'a> {
    /// The body while it is private (also the scratch space when an area grows).
    vec: &'a mut Vec<u8>,
    spill: Option<Spill<'a>>,
    /// The area the body is in, once spilled: start and length.
    area: Option<(*mut u8, usize)>,
    /// Bytes written (in `vec` or in the area).
    len: usize,
}

impl<'a> Sink<'a> {
    /// A sink that writes into `vec` (cleared first) and, with `spill`, into shared
    /// areas once the body is longer than `BLOB_MIN`.
    pub fn new(vec: &'a mut Vec<u8>, spill: Option<Spill<'a>>) -> Sink<'a> {
        vec.clear();
        Sink {
            vec,
            spill,
            area: None,
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The body if it is in private memory; `None` once it is in an area.
    #[cfg(test)]
    pub fn private(&self) -> Option<&[u8]> {
        self.area.is_none().then_some(&self.vec[..])
    }

    /// True if the body is in the area last given by the spiller.
    pub fn spilled(&self) -> bool {
        self.area.is_some()
    }

    /// Appends `b`. The common cases (room in the area, or a short private body with
    /// room in its buffer: every small item of a chunk) take one bounds check and a
    /// copy; the rest is out of line.
    #[inline]
    pub fn extend(&mut self, b: &[u8]) {
        let end = self.len.saturating_add(b.len());
        match self.area {
            Some((ptr, cap)) if end <= cap => {
                // SAFETY: the area maps `cap >= end` bytes and is ours to write until
                // the message is sent (the spiller's contract); `b` is private memory
                // (nothing we write from lives in the area).
                unsafe { copy(b, ptr.add(self.len)) };
                self.len = end;
            }
            None if end <= self.vec.capacity() && (end <= BLOB_MIN || self.spill.is_none()) => {
                debug_assert_eq!(self.vec.len(), self.len, "a private body is all of `vec`");
                // SAFETY: `end <= capacity`, so the `b.len()` bytes after the `len`
                // initialized ones are allocated; they are initialized before
                // `set_len` covers them (`vec` holds the private body: `len` bytes).
                unsafe {
                    copy(b, self.vec.as_mut_ptr().add(self.len));
                    self.vec.set_len(end);
                }
                self.len = end;
            }
            _ => self.extend_slow(b),
        }
    }

    /// [`extend`](Sink::extend) when the body must move: into a larger area, into an
    /// area for the first time, or into a larger private buffer.
    #[inline(never)]
    fn extend_slow(&mut self, b: &[u8]) {
        let end = self.len.saturating_add(b.len());
        // An area too short for `end` (the fast path took every other case in one).
        self.unspill();
        if end > BLOB_MIN && self.spill.is_some() && self.spill_for(end, b) {
            return;
        }
        // A long private body goes into a spare buffer whose pages are faulted in.
        Buf::reserve(self.vec, end);
        self.vec.extend_from_slice(b);
        self.len = end;
    }

    /// Appends one byte (serde writes a `Vec<u8>` this way, byte by byte: the common
    /// cases take no more than a bounds check).
    #[inline]
    pub fn push(&mut self, b: u8) {
        match self.area {
            Some((ptr, cap)) if self.len < cap => {
                // SAFETY: `len < cap`, the area's length; it is ours to write (as in
                // `extend`).
                unsafe { ptr.add(self.len).write(b) };
                self.len += 1;
            }
            None if self.len < BLOB_MIN || self.spill.is_none() => {
                self.vec.push(b);
                self.len += 1;
            }
            _ => self.extend(&[b]),
        }
    }

    /// Overwrites the bytes at `at` (already written) with `b`.
    #[inline]
    pub fn patch(&mut self, at: usize, b: &[u8]) {
        // Unreachable from shared data: callers patch what they wrote.
        assert!(
            at + b.len() <= self.len,
            "patching past the end of a message"
        );
        match self.area {
            // SAFETY: `at + b.len() <= len <= cap`; the area is ours to write (as in
            // `extend`).
            Some((ptr, _)) => unsafe {
                std::ptr::copy_nonoverlapping(b.as_ptr(), ptr.add(at), b.len())
            },
            None => self.vec[at..at + b.len()].copy_from_slice(b),
        }
    }

    /// Forgets everything from `len` on.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            if self.area.is_none() {
                self.vec.truncate(len);
            }
        }
    }

    /// Copies the body from the area back into `vec` (the area is about to be
    /// replaced by a larger one, or none can be had).
    fn unspill(&mut self) {
        let Some((ptr, _)) = self.area.take() else {
            return;
        };
        self.vec.clear();
        self.vec.reserve(self.len);
        // SAFETY: the area holds the `len` bytes we wrote (len <= cap) and `vec` has
        // room for them. We read back only bytes we wrote ourselves, into plain
        // bytes; the body is parsed as untrusted input by its receiver anyway.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, self.vec.as_mut_ptr(), self.len);
            self.vec.set_len(self.len);
        }
    }

    /// Moves the body (in `vec`) into an area of at least `end` bytes and appends `b`
    /// there; false (nothing changed) if the spiller has no area.
    fn spill_for(&mut self, end: usize, b: &[u8]) -> bool {
        let Some(spill) = self.spill.as_mut() else {
            return false;
        };
        // Ask for twice what is needed: a body written byte by byte then grows its
        // area a logarithmic number of times, not once per write.
        let want = end.max(self.len.saturating_mul(2));
        let Some((ptr, cap)) = spill(want).filter(|&(_, cap)| cap >= end) else {
            // No area: stay private from now on.
            self.spill = None;
            return false;
        };
        // SAFETY: the area maps `cap >= end` bytes and is ours to write (the
        // spiller's contract); `vec` holds the `len` bytes written so far and `b` is
        // private memory.
        unsafe {
            std::ptr::copy_nonoverlapping(self.vec.as_ptr(), ptr, self.len);
            std::ptr::copy_nonoverlapping(b.as_ptr(), ptr.add(self.len), b.len());
        }
        self.len = end;
        self.area = Some((ptr, cap));
        true
    }
}

/// Copies `b` to `dst`: postcard writes every integer as a varint of 1-10 bytes, which
/// a loop copies faster than a call to `memcpy`.
///
/// # Safety
/// `dst` is valid for `b.len()` byte writes and does not overlap `b`.
#[inline(always)]
unsafe fn copy(b: &[u8], dst: *mut u8) {
    if b.len() <= 16 {
        for (i, &x) in b.iter().enumerate() {
            // SAFETY: `i < b.len()`: within what the caller made valid.
            unsafe { dst.add(i).write(x) };
        }
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst, b.len()) };
    }
}

/// Lets postcard write into a [`Sink`] in bulk (one copy per `serialize_bytes`).
pub(super) struct SinkOut<'s, 'a>(pub &'s mut Sink<'a>);

impl postcard::ser_flavors::Flavor for SinkOut<'_, '_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, b: &[u8]) -> postcard::Result<()> {
        self.0.extend(b);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spiller over private memory standing in for shared areas; counts calls.
    struct FakeAreas {
        areas: Vec<Vec<u8>>,
        calls: usize,
        limit: usize,
    }

    impl FakeAreas {
        fn spill(&mut self, len: usize) -> Option<(*mut u8, usize)> {
            self.calls += 1;
            if len > self.limit {
                return None;
            }
            self.areas.push(vec![0xAA; len]);
            let a = self.areas.last_mut()?;
            Some((a.as_mut_ptr(), a.len()))
        }
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[test]
    fn a_short_body_stays_private_and_never_asks_for_an_area() {
        let mut fake = FakeAreas {
            areas: Vec::new(),
            calls: 0,
            limit: usize::MAX,
        };
        let mut vec = vec![9; 3];
        let mut f = |n| fake.spill(n);
        let mut sink = Sink::new(&mut vec, Some(&mut f));
        let b = pattern(BLOB_MIN, 1);
        sink.extend(&b);
        assert_eq!(sink.private(), Some(&b[..]));
        assert_eq!(fake.calls, 0);
    }

    #[test]
    fn a_long_body_moves_into_an_area_and_grows_with_its_bytes_intact() {
        let mut fake = FakeAreas {
            areas: Vec::new(),
            calls: 0,
            limit: usize::MAX,
        };
        let mut vec = Vec::new();
        let mut expect = Vec::new();
        let got;
        {
            let mut f = |n| fake.spill(n);
            let mut sink = Sink::new(&mut vec, Some(&mut f));
            // Byte by byte across the threshold, then big writes that grow the area.
            for (i, b) in pattern(BLOB_MIN + 10, 2).into_iter().enumerate() {
                sink.push(b);
                expect.push(b);
                assert_eq!(sink.len(), i + 1);
            }
            assert!(sink.spilled());
            for n in [1 << 20, 3 << 20, 1] {
                let b = pattern(n, n as u8);
                sink.extend(&b);
                expect.extend_from_slice(&b);
            }
            sink.patch(3, &[1, 2, 3]);
            expect[3..6].copy_from_slice(&[1, 2, 3]);
            sink.truncate(expect.len() - 5);
            expect.truncate(expect.len() - 5);
            sink.extend(b"tail");
            expect.extend_from_slice(b"tail");
            assert!(sink.spilled());
            let len = sink.len();
            got = fake.areas.last().unwrap()[..len].to_vec();
        }
        assert_eq!(got, expect);
        assert!(fake.calls <= 4, "{} areas for 4 MiB", fake.calls);
    }

    #[test]
    fn without_an_area_the_body_stays_private_and_complete() {
        let mut fake = FakeAreas {
            areas: Vec::new(),
            calls: 0,
            limit: 2 * BLOB_MIN,
        };
        let mut vec = Vec::new();
        let mut f = |n| fake.spill(n);
        let mut sink = Sink::new(&mut vec, Some(&mut f));
        let a = pattern(BLOB_MIN + 1, 3);
        let b = pattern(4 * BLOB_MIN, 4);
        sink.extend(&a);
        assert!(sink.spilled());
        sink.extend(&b); // needs more than the spiller will give
        let mut expect = a.clone();
        expect.extend_from_slice(&b);
        assert!(!sink.spilled());
        assert_eq!(sink.private(), Some(&expect[..]));
        sink.extend(&a); // and it does not ask again
        assert_eq!(fake.calls, 2);
    }

    #[test]
    fn postcard_writes_byte_strings_in_one_piece() {
        let mut vec = Vec::new();
        let mut sink = Sink::new(&mut vec, None);
        let v = serde_bytes_like(vec![5u8; 100_000]);
        postcard::serialize_with_flavor::<_, _, ()>(&v, SinkOut(&mut sink)).unwrap();
        let b = sink.private().unwrap().to_vec();
        assert_eq!(b, postcard::to_allocvec(&v).unwrap());
    }

    /// A byte string that serializes with `serialize_bytes`.
    struct ByteString(Vec<u8>);

    impl serde::Serialize for ByteString {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    fn serde_bytes_like(v: Vec<u8>) -> ByteString {
        ByteString(v)
    }
}
