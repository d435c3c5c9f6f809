//! What travels through the pool's queues, and the type-erased task runners.
//!
//! Every queue message starts with a [`FrameHeader`]. A logical message longer than
//! the queue's maximum message length is cut into pieces, each with its own header;
//! all but the last carry [`MORE`]. Pieces of one sender arrive in order (a sender
//! writes one logical message at a time), so the receiver appends them per sender.
//! A logical message longer than [`BLOB_MIN`](super::blob::BLOB_MIN) instead travels
//! in a reused shared area (see `blob.rs`): its one piece carries [`BLOB`] and the
//! body `tag u64` (the chunk id, for TASK and RESULT) + `len u64` + `gen u64` (the
//! area's generation) + `area u64` (which area: [`BlobRef`]).
//!
//! | kind           | direction       | body                                              |
//! |----------------|-----------------|---------------------------------------------------|
//! | [`TASK`]       | pool → worker   | chunk id u64, runner u64, fn u64, items           |
//! | [`STOP`]       | pool → worker   | (empty): exit cleanly                             |
//! | [`RESULT`]     | worker → pool   | chunk id u64, service time ns u64, outcomes       |
//! | [`INIT_FAILED`]| worker → pool   | the initializer's panic message (UTF-8)           |
//! | [`WAKE`]       | user → pool     | (empty): new work or a request is waiting         |
//!
//! `items` is a sequence of `len u32` + postcard bytes; `outcomes` a sequence of
//! `tag u8` ([`OK`] / [`PANICKED`] / [`BAD_INPUT`]) + `len u32` + bytes (postcard
//! bytes of the result, or a UTF-8 message). All integers are little-endian.

use super::blob::{Buf, BLOB_MIN};
use super::de::{self, Reader};
use super::sink::{Sink, SinkOut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::sync::Arc;

pub(super) const TASK: u8 = 1;
pub(super) const STOP: u8 = 2;
pub(super) const RESULT: u8 = 3;
pub(super) const INIT_FAILED: u8 = 4;
pub(super) const WAKE: u8 = 5;

/// Flag: more pieces of this logical message follow.
pub(super) const MORE: u8 = 1;
/// Flag: the message is in an area; this piece holds its tag, length and area.
pub(super) const BLOB: u8 = 2;

/// Outcome tags.
pub(super) const OK: u8 = 0;
pub(super) const PANICKED: u8 = 1;
pub(super) const BAD_INPUT: u8 = 2;

/// Sender id of user threads posting [`WAKE`].
pub(super) const SENDER_USER: u32 = u32::MAX;

/// The header in front of every piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FrameHeader {
    pub flags: u8,
    pub kind: u8,
    /// Who wrote it: `(worker index << 16) | incarnation` for workers, 0 for the pool.
    pub sender: u32,
}

pub(super) const HEADER_LEN: usize = 8;

impl FrameHeader {
    pub fn write(self, out: &mut [u8]) {
        out[0] = self.flags;
        out[1] = self.kind;
        out[2..4].fill(0);
        out[4..8].copy_from_slice(&self.sender.to_le_bytes());
    }

    pub fn read(b: &[u8]) -> Option<FrameHeader> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(FrameHeader {
            flags: b[0],
            kind: b[1],
            sender: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

/// The sender id of incarnation `gen` of worker `index`.
pub(super) fn worker_sender(index: usize, gen: u32) -> u32 {
    ((index as u32) << 16) | (gen & 0xffff)
}

/// Writes into `buf` (cleared first) the piece of `body` that starts at `at`, for a
/// queue whose messages hold at most `max` bytes; returns where the next piece
/// starts. The last piece (no [`MORE`] flag) ends at `body.len()`; an empty body is
/// one empty piece.
pub(super) fn piece(
    kind: u8,
    sender: u32,
    body: &[u8],
    at: usize,
    max: usize,
    buf: &mut Vec<u8>,
) -> usize {
    let max_body = max.saturating_sub(HEADER_LEN).max(1);
    let end = (at + max_body).min(body.len());
    buf.clear();
    buf.resize(HEADER_LEN, 0);
    FrameHeader {
        flags: if end < body.len() { MORE } else { 0 },
        kind,
        sender,
    }
    .write(buf);
    buf.extend_from_slice(&body[at..end]);
    end
}

/// Where a [`BLOB`] piece's message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BlobRef {
    /// The chunk id, for TASK and RESULT.
    pub tag: u64,
    pub len: u64,
    /// The area's generation.
    pub gen: u64,
    /// 0: the receiving worker's task area (or the sender's result area); else the
    /// pool's argument area of this id.
    pub area: u64,
}

/// Writes into `buf` (cleared first) the one piece of a message of `len` bytes that
/// travels in generation `gen` of area `area` (see [`BlobRef`]).
pub(super) fn blob_piece(kind: u8, sender: u32, r: BlobRef, buf: &mut Vec<u8>) {
    buf.clear();
    buf.resize(HEADER_LEN, 0);
    FrameHeader {
        flags: BLOB,
        kind,
        sender,
    }
    .write(buf);
    for w in [r.tag, r.len, r.gen, r.area] {
        buf.extend_from_slice(&w.to_le_bytes());
    }
}

/// The [`BlobRef`] of a [`BLOB`] piece's body; None if it is malformed.
pub(super) fn blob_ref(body: &[u8]) -> Option<BlobRef> {
    let word = |i: usize| Some(u64::from_le_bytes(body.get(i..i + 8)?.try_into().ok()?));
    if body.len() != 32 {
        return None;
    }
    Some(BlobRef {
        tag: word(0)?,
        len: word(8)?,
        gen: word(16)?,
        area: word(24)?,
    })
}

/// The chunk id at the start of a TASK or RESULT body (0 if it is too short).
pub(super) fn chunk_id(body: &[u8]) -> u64 {
    body.get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
}

/// Appends `len u32` + the postcard bytes of `value` to `out` (nothing on error).
pub(super) fn push_item<T: Serialize>(out: &mut Sink<'_>, value: &T) -> Result<(), String> {
    let at = out.len();
    out.extend(&[0; 4]);
    let written = postcard::serialize_with_flavor::<T, _, ()>(value, SinkOut(out))
        .map_err(|e| format!("could not serialize a pool argument: {e}"))
        .and_then(|()| {
            u32::try_from(out.len() - at - 4)
                .map_err(|_| "a pool argument is larger than 4 GiB".to_owned())
        });
    match written {
        Ok(len) => {
            out.patch(at, &len.to_le_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(at);
            Err(e)
        }
    }
}

/// Iterates over a sequence of `len u32` + bytes; yields `None` once on malformed
/// input, then stops. (Workers read items through a [`Reader`] instead.)
#[cfg(test)]
pub(super) fn items(b: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut rest = Some(b);
    std::iter::from_fn(move || {
        let b = rest?;
        if b.is_empty() {
            rest = None;
            return None;
        }
        let item = b
            .get(..4)
            .and_then(|l| l.try_into().ok())
            .map(|l| u32::from_le_bytes(l) as usize)
            .and_then(|len| b.get(4..4 + len));
        rest = item.map(|i| &b[4 + i.len()..]);
        Some(item)
    })
}

/// One item's outcome as the worker reported it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Item<'a> {
    /// postcard bytes of the result.
    Ok(Src<'a>),
    /// The function panicked (or the argument could not be decoded): the message.
    Failed(&'a [u8]),
}

/// Where a result's postcard bytes are.
#[derive(Clone, Copy, Debug)]
pub(super) enum Src<'a> {
    /// In private memory.
    Bytes(&'a [u8]),
    /// `len` bytes from `start` on in a result area the outcome holds (read in place).
    Area(&'a HeldArea, usize, usize),
}

impl Src<'_> {
    /// Decodes the result: postcard over private bytes; the copy-on-read
    /// [`Reader`] in an area (a byte string is copied once, into the value).
    #[inline]
    pub fn decode<R: DeserializeOwned>(self) -> Result<R, String> {
        match self {
            Src::Bytes(b) => postcard::from_bytes(b).map_err(|e| e.to_string()),
            Src::Area(held, start, len) => Src::decode_area(held, start, len),
        }
    }

    /// [`decode`](Src::decode) of a result in an area (out of line: the private case
    /// runs once per item of every chunk).
    #[inline(never)]
    fn decode_area<R: DeserializeOwned>(
        held: &HeldArea,
        start: usize,
        len: usize,
    ) -> Result<R, String> {
        let mut item = held
            .reader()
            .and_then(|mut r| r.split(start).and_then(|_| r.split(len)))
            .ok_or("a result lies outside its area")?;
        let r = de::from_reader(&mut item).map_err(|e| e.to_string());
        if !item.intact() {
            return Err("the pool area holding the result was truncated".to_owned());
        }
        r
    }
}

/// A large RESULT message left in the worker's result area, held by its outcome
/// until the outcome is dropped (its results are decoded straight from the area);
/// then the worker may write its next message there (`WorkerSlot::res_free`). Until
/// then it writes into a new generation.
pub(super) struct HeldArea {
    seg: crate::Segment,
    len: usize,
    /// Slots, worker index and the `res_free` word stored once the area is released.
    release: Option<(super::slots::Slots, usize, u64)>,
}

impl HeldArea {
    /// The message of `len` bytes at the start of `seg`, released by storing `tag`
    /// into worker `index`'s `res_free` word when dropped.
    pub fn new(
        seg: crate::Segment,
        len: usize,
        release: Option<(super::slots::Slots, usize, u64)>,
    ) -> HeldArea {
        HeldArea { seg, len, release }
    }

    /// A reader over the message; `None` if it is longer than the area.
    pub fn reader(&self) -> Option<Reader<'_>> {
        Reader::in_segment(&self.seg, self.len)
    }
}

impl std::fmt::Debug for HeldArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldArea")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for HeldArea {
    fn drop(&mut self) {
        if let Some((slots, index, tag)) = &self.release {
            // SYNC(res-free): every read of the area happened before; pairs with the
            // worker's Acquire load before it writes the area again.
            slots
                .get(*index)
                .res_free
                .store(*tag, crate::sync::atomic::Ordering::Release);
        }
    }
}

/// An outcome of a result left in its area: where each item is (validated once;
/// failure messages copied out).
#[derive(Debug)]
enum AreaItem {
    Ok(usize, usize),
    Failed(Vec<u8>),
}

/// The outcomes of one chunk: `tag u8` + `len u32` + bytes per item, validated.
#[derive(Clone, Debug)]
pub(super) struct Outcomes(Repr);

/// Where a chunk's outcomes are: a short message's own bytes, a large message's
/// buffer from `.1` on (shared, so that an `AsyncResult` read twice does not copy
/// it), or a large message still in the worker's result area.
#[derive(Clone, Debug)]
enum Repr {
    Short(Vec<u8>),
    Large(Arc<Buf>, usize),
    Area(Arc<(HeldArea, Vec<AreaItem>)>),
}

impl Outcomes {
    /// True if `b` is a well-formed outcomes part of a RESULT body.
    fn valid(b: &[u8]) -> bool {
        let mut rest = b;
        while !rest.is_empty() {
            let tag = rest[0];
            let Some(len) = rest.get(1..5).and_then(|l| l.try_into().ok()) else {
                return false;
            };
            let len = u32::from_le_bytes(len) as usize;
            if !matches!(tag, OK | PANICKED | BAD_INPUT) || rest.len() < 5 + len {
                return false;
            }
            rest = &rest[5 + len..];
        }
        true
    }

    /// Validates the outcomes part of a RESULT body. `None` on malformed input.
    pub fn parse(b: &[u8]) -> Option<Outcomes> {
        Outcomes::valid(b).then(|| Outcomes(Repr::Short(b.to_vec())))
    }

    /// [`parse`](Outcomes::parse) of `body[start..]`, keeping `body` (no copy).
    pub fn parse_owned(body: Buf, start: usize) -> Option<Outcomes> {
        Outcomes::valid(body.get(start..)?).then(|| Outcomes(Repr::Large(Arc::new(body), start)))
    }

    /// The outcomes from `start` on of a message left in its area, which they hold
    /// (see [`HeldArea`]). The framing is read once, here, by copying it out; the
    /// results stay in the area. `None` on malformed input or a truncated area.
    pub fn parse_area(held: HeldArea, start: usize) -> Option<Outcomes> {
        let mut r = held.reader()?;
        r.split(start)?;
        let mut items = Vec::new();
        while r.remaining() > 0 {
            let [tag, l0, l1, l2, l3] = r.array::<5>().ok()?;
            let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
            let at = held.len - r.remaining();
            match tag {
                OK => {
                    r.split(len)?;
                    items.push(AreaItem::Ok(at, len));
                }
                PANICKED | BAD_INPUT => items.push(AreaItem::Failed(r.owned(len).ok()?)),
                _ => return None,
            }
        }
        if !r.intact() {
            return None;
        }
        Some(Outcomes(Repr::Area(Arc::new((held, items)))))
    }

    /// The outcomes from `start` on of a message in an area. They are worth reading
    /// in place (and holding the area for) only when they hold a large result: when
    /// the first one is, [`parse_area`](Outcomes::parse_area); else (many small ones)
    /// the message is copied out at once and the area released, for the worker's
    /// next message (holding it would make the worker write a new generation).
    pub fn from_area(held: HeldArea, start: usize) -> Option<Outcomes> {
        let mut r = held.reader()?;
        r.split(start)?;
        let [tag, l0, l1, l2, l3] = r.array::<5>().unwrap_or_default();
        if tag == OK && u32::from_le_bytes([l0, l1, l2, l3]) as usize > BLOB_MIN {
            return Outcomes::parse_area(held, start);
        }
        let mut r = held.reader()?;
        let body = r.owned(r.remaining()).ok()?;
        if !r.intact() {
            return None;
        }
        drop(held); // releases the area
        Outcomes::parse_owned(Buf::from(body), start)
    }

    /// `n` failures with the same message.
    pub fn failed(msg: &str, n: usize) -> Outcomes {
        let mut b = Vec::new();
        let mut sink = Sink::new(&mut b, None);
        for _ in 0..n {
            push_outcome(&mut sink, PANICKED, msg.as_bytes());
        }
        Outcomes(Repr::Short(b))
    }

    pub fn iter(&self) -> impl Iterator<Item = Item<'_>> {
        let (mut rest, area) = match &self.0 {
            Repr::Short(v) => (&v[..], None),
            Repr::Large(b, start) => (b.get(*start..).unwrap_or_default(), None),
            Repr::Area(a) => (&[][..], Some((&a.0, a.1.iter()))),
        };
        let mut area = area;
        std::iter::from_fn(move || {
            if let Some((held, items)) = area.as_mut() {
                return Some(match items.next()? {
                    AreaItem::Ok(at, len) => Item::Ok(Src::Area(held, *at, *len)),
                    AreaItem::Failed(m) => Item::Failed(m),
                });
            }
            if rest.len() < 5 {
                return None;
            }
            let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let bytes = rest.get(5..5 + len)?;
            let item = if rest[0] == OK {
                Item::Ok(Src::Bytes(bytes))
            } else {
                Item::Failed(bytes)
            };
            rest = &rest[5 + len..];
            Some(item)
        })
    }
}

fn push_outcome(out: &mut Sink<'_>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend(&(bytes.len() as u32).to_le_bytes());
    out.extend(bytes);
}

/// Appends an OK outcome with the postcard bytes of `r` (or a failure if `r` cannot
/// be serialized, or its bytes would not fit the 4 GiB an outcome can hold).
fn push_result<R: Serialize>(out: &mut Sink<'_>, r: &R) {
    let at = out.len();
    out.push(OK);
    out.extend(&[0; 4]);
    let written = postcard::serialize_with_flavor::<R, _, ()>(r, SinkOut(out))
        .map_err(|e| e.to_string())
        .and_then(|()| {
            u32::try_from(out.len() - at - 5)
                .map_err(|_| "the result is larger than 4 GiB".to_owned())
        });
    match written {
        Ok(len) => out.patch(at + 1, &len.to_le_bytes()),
        Err(e) => {
            out.truncate(at);
            let msg = format!("could not serialize the result: {e}");
            push_outcome(out, PANICKED, msg.as_bytes());
        }
    }
}

/// A type-erased task runner: decodes each item of `input` (the items part of a TASK
/// body, private or still in a pool area: see `de.rs`), calls the function whose
/// address is `f`, and appends one outcome per item to `out`.
///
/// # Safety
/// `f` must be the address of a function of exactly the type the runner was
/// instantiated for (the pool sends each runner together with such a function).
pub(super) type Runner = unsafe fn(f: usize, input: Reader<'_>, out: &mut Sink<'_>);

thread_local! {
    /// The last panic's message, captured by the worker's panic hook.
    pub(super) static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `call` on every item, catching panics per item. Each argument is decoded
/// straight from `input` ([`de`]): a byte string in a pool area is copied once, into
/// the value the function gets.
fn run_items<A: DeserializeOwned>(
    mut input: Reader<'_>,
    out: &mut Sink<'_>,
    mut call: impl FnMut(A, &mut Sink<'_>),
) {
    while input.remaining() > 0 {
        let item = input
            .array::<4>()
            .ok()
            .and_then(|l| input.split(u32::from_le_bytes(l) as usize));
        let Some(mut item) = item else {
            push_outcome(out, BAD_INPUT, b"malformed task message");
            return;
        };
        let decoded = de::from_reader::<A>(&mut item);
        if !item.intact() {
            // What was read may be zeros standing in for a truncated area's bytes.
            push_outcome(
                out,
                BAD_INPUT,
                b"the pool area holding the argument was truncated while it was read",
            );
            return;
        }
        let arg: A = match decoded {
            Ok(a) => a,
            Err(e) => {
                let msg = format!(
                    "could not decode the argument as {}: {e}",
                    std::any::type_name::<A>()
                );
                push_outcome(out, BAD_INPUT, msg.as_bytes());
                continue;
            }
        };
        let before = out.len();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(arg, out)));
        if r.is_err() {
            out.truncate(before);
            let msg = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "the task panicked".to_owned());
            push_outcome(out, PANICKED, msg.as_bytes());
        }
    }
}

/// Runner for `fn(A) -> R`.
///
/// # Safety
/// `f` is the address of a `fn(A) -> R`.
pub(super) unsafe fn run_unary<A: DeserializeOwned, R: Serialize>(
    f: usize,
    input: Reader<'_>,
    out: &mut Sink<'_>,
) {
    // SAFETY: per the contract, `f` came from a `fn(A) -> R` of this very binary.
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    run_items::<A>(input, out, |a, out| {
        let r = f(a);
        push_result(out, &r);
    });
}

/// Runner for `fn(A, B) -> R` over `(A, B)` items (`starmap`).
///
/// # Safety
/// `f` is the address of a `fn(A, B) -> R`.
pub(super) unsafe fn run_binary<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
    f: usize,
    input: Reader<'_>,
    out: &mut Sink<'_>,
) {
    // SAFETY: per the contract.
    let f = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(f) };
    run_items::<(A, B)>(input, out, |(a, b), out| {
        let r = f(a, b);
        push_result(out, &r);
    });
}

/// Runner for `fn(A, B, C) -> R` over `(A, B, C)` items (`starmap3`).
///
/// # Safety
/// `f` is the address of a `fn(A, B, C) -> R`.
pub(super) unsafe fn run_ternary<A, B, C, R>(f: usize, input: Reader<'_>, out: &mut Sink<'_>)
where
    A: DeserializeOwned,
    B: DeserializeOwned,
    C: DeserializeOwned,
    R: Serialize,
{
    // SAFETY: per the contract.
    let f = unsafe { std::mem::transmute::<usize, fn(A, B, C) -> R>(f) };
    run_items::<(A, B, C)>(input, out, |(a, b, c), out| {
        let r = f(a, b, c);
        push_result(out, &r);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_area_piece_carries_its_tag_length_and_generation_and_nothing_else_parses() {
        let mut buf = Vec::new();
        let r = BlobRef {
            tag: 42,
            len: 8 << 20,
            gen: 3,
            area: 5,
        };
        blob_piece(RESULT, 9, r, &mut buf);
        let h = FrameHeader::read(&buf).unwrap();
        assert_eq!((h.flags, h.kind, h.sender), (BLOB, RESULT, 9));
        assert_eq!(blob_ref(&buf[HEADER_LEN..]), Some(r));
        // A forged piece of any other length is refused, not read past its end.
        for n in [0, 8, 16, 24, 31, 33, 40] {
            assert_eq!(blob_ref(&vec![1; n]), None, "{n} bytes");
        }
    }

    #[test]
    fn owned_outcomes_skip_the_header_and_are_validated_like_borrowed_ones() {
        let mut body = vec![0xee; 16];
        let mut sink = Sink::new(&mut body, None);
        sink.extend(&[0xee; 16]);
        push_outcome(&mut sink, OK, b"abc");
        let o = Outcomes::parse_owned(Buf::from(body.clone()), 16).unwrap();
        assert!(matches!(
            o.iter().next(),
            Some(Item::Ok(Src::Bytes(b"abc")))
        ));
        assert_eq!(o.iter().count(), 1);
        body.push(7); // a truncated extra outcome
        assert!(Outcomes::parse_owned(Buf::from(body), 16).is_none());
        assert!(Outcomes::parse_owned(Buf::from(vec![0; 3]), 16).is_none());
    }

    /// A RESULT body (16 header bytes, then `outcomes`) written into a new segment.
    fn result_in_area(name: &str, outcomes: &[u8]) -> (crate::Segment, usize) {
        let seg = crate::Segment::create(name, 16 + outcomes.len()).unwrap();
        // SAFETY: the segment maps at least that many bytes; nobody else knows it.
        unsafe {
            std::ptr::write_bytes(seg.as_ptr(), 0xee, 16);
            std::ptr::copy_nonoverlapping(outcomes.as_ptr(), seg.as_ptr().add(16), outcomes.len());
        }
        (seg, 16 + outcomes.len())
    }

    #[test]
    fn a_large_result_is_read_in_place_small_ones_are_copied_out_and_bad_framing_refused() {
        let name = format!("mp-test-wire-area-{}", std::process::id());
        let big = vec![3u8; BLOB_MIN + 1];
        let big_pc = postcard::to_allocvec(&big).unwrap();
        let mut body = Vec::new();
        let mut sink = Sink::new(&mut body, None);
        push_outcome(&mut sink, OK, &big_pc);
        push_outcome(&mut sink, PANICKED, b"boom");
        let (seg, len) = result_in_area(&name, &body);
        let o = Outcomes::from_area(HeldArea::new(seg, len, None), 16).unwrap();
        let items: Vec<Item<'_>> = o.iter().collect();
        assert!(matches!(items[0], Item::Ok(Src::Area(..))));
        assert!(matches!(items[1], Item::Failed(b"boom")));
        let Item::Ok(src) = items[0] else {
            unreachable!()
        };
        assert_eq!(src.decode::<Vec<u8>>().unwrap(), big);
        let _ = crate::segment::unlink(&name);

        // Small outcomes: copied out, in private memory.
        let mut body = Vec::new();
        let mut sink = Sink::new(&mut body, None);
        for x in 0..3u32 {
            push_outcome(&mut sink, OK, &postcard::to_allocvec(&x).unwrap());
        }
        let (seg, len) = result_in_area(&name, &body);
        let o = Outcomes::from_area(HeldArea::new(seg, len, None), 16).unwrap();
        let got: Vec<u32> = o
            .iter()
            .map(|i| match i {
                Item::Ok(s @ Src::Bytes(_)) => s.decode().unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, [0, 1, 2]);
        let _ = crate::segment::unlink(&name);

        // A large first outcome followed by an unknown tag, or a length past the end.
        for tail in [&[9u8, 0, 0, 0, 0][..], &[OK, 0xff, 0xff, 0, 0, 1]] {
            let mut body = Vec::new();
            let mut sink = Sink::new(&mut body, None);
            push_outcome(&mut sink, OK, &big_pc);
            sink.extend(tail);
            let (seg, len) = result_in_area(&name, &body);
            assert!(Outcomes::from_area(HeldArea::new(seg, len, None), 16).is_none());
            let _ = crate::segment::unlink(&name);
        }
        // A message longer than its area.
        let (seg, len) = result_in_area(&name, &[]);
        assert!(Outcomes::from_area(HeldArea::new(seg, len + (2 << 20), None), 16).is_none());
        let _ = crate::segment::unlink(&name);
    }

    #[test]
    fn pieces_cover_the_body_exactly() {
        let body: Vec<u8> = (0..=255).cycle().take(1000).collect();
        for max in [HEADER_LEN + 1, 64, 999, 1008, 1009, 4096] {
            let mut buf = Vec::new();
            let mut got = Vec::new();
            let mut at = 0;
            loop {
                at = piece(TASK, 7, &body, at, max, &mut buf);
                assert!(buf.len() <= max);
                let h = FrameHeader::read(&buf).unwrap();
                assert_eq!((h.kind, h.sender), (TASK, 7));
                got.extend_from_slice(&buf[HEADER_LEN..]);
                assert_eq!(h.flags & MORE != 0, at < body.len());
                if h.flags & MORE == 0 {
                    break;
                }
            }
            assert_eq!(got, body, "max {max}");
        }
        // An empty body is one empty piece.
        let mut buf = Vec::new();
        assert_eq!(piece(STOP, 0, &[], 0, 64, &mut buf), 0);
        assert_eq!(buf.len(), HEADER_LEN);
        assert_eq!(FrameHeader::read(&buf).unwrap().flags, 0);
    }

    #[test]
    fn items_round_trip_and_reject_garbage() {
        let mut b = Vec::new();
        let mut sink = Sink::new(&mut b, None);
        push_item(&mut sink, &5u32).unwrap();
        push_item(&mut sink, &"hello".to_owned()).unwrap();
        let all: Vec<_> = items(&b).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(postcard::from_bytes::<u32>(all[0].unwrap()).unwrap(), 5);
        assert_eq!(items(&[9, 0, 0, 0, 1]).collect::<Vec<_>>(), [None]);
        assert!(Outcomes::parse(&[7, 0, 0, 0, 0]).is_none());
        assert!(Outcomes::parse(&[0, 9, 0, 0, 0, 1]).is_none());
        assert_eq!(Outcomes::failed("x", 3).iter().count(), 3);
    }

    fn square(x: u64) -> u64 {
        x * x
    }

    #[test]
    fn unary_runner_calls_the_function_per_item() {
        let mut input = Vec::new();
        let mut sink = Sink::new(&mut input, None);
        for x in [1u64, 2, 3] {
            push_item(&mut sink, &x).unwrap();
        }
        let mut out = Vec::new();
        let f: fn(u64) -> u64 = square;
        let mut sink = Sink::new(&mut out, None);
        // SAFETY: `f` is a fn(u64) -> u64.
        unsafe { run_unary::<u64, u64>(f as usize, Reader::new(&input), &mut sink) };
        let got: Vec<u64> = Outcomes::parse(&out)
            .unwrap()
            .iter()
            .map(|o| match o {
                Item::Ok(b) => b.decode().unwrap(),
                Item::Failed(m) => panic!("{}", String::from_utf8_lossy(m)),
            })
            .collect();
        assert_eq!(got, [1, 4, 9]);
    }
}
