//! Large payloads out of band: a logical message longer than [`BLOB_MIN`] bytes
//! does not travel through its queue in pieces. Its sender copies it into an
//! *area* (a segment reused from message to message, so its pages stay mapped on
//! both sides and a copy runs at memory speed) and puts only a
//! [`BLOB`](super::wire::BLOB) piece (`tag u64`, `len u64`, `gen u64`) in the
//! queue; the receiver copies the bytes out of area `gen`.
//!
//! Each worker has two areas, each holding one message at a time:
//!
//! | area                      | name                        | written by | a new message waits until                 |
//! |---------------------------|-----------------------------|------------|-------------------------------------------|
//! | its TASKs                 | `{base}-a{worker}-{gen}`    | pool       | the worker has copied the last one out (`WorkerSlot::arg_taken`) |
//! | its RESULTs (and others)  | `{base}-r{sender}-{gen}`    | worker     | the pool has opened the last one (`WorkerSlot::res_taken`), and released it (`res_free`), else it goes into a new generation |
//!
//! A RESULT of [`HOLD_MIN`] bytes or more is not copied out: its outcome holds the
//! area (`wire::HeldArea`) and results are decoded from it in place, by the
//! copy-on-read deserializer of `de.rs` (a byte string is copied once, into the
//! value). When the outcome is dropped (the `AsyncResult` is, or `map` has decoded
//! it), the pool stores the message's number in `WorkerSlot::res_free`, and the
//! worker writes its next result over it; while it is held the worker writes the
//! next one into a new generation instead if it is that long too, else in pieces
//! (never waiting for a user thread). Shorter results and other large messages are
//! copied out by the pool at once. A worker never waits for the pool to open its
//! last result while a task could run: its next result stays private until the
//! area is free, and a result shorter than [`HOLD_MIN`] goes in pieces if it still
//! is not when it is sent. A worker reads a large argument in place
//! from the pool's argument area (the chunk holds it until done).
//!
//! A large *argument* goes one step further: the user thread serializes it straight
//! into an **argument area** of the pool (`{base}-p{id}-{gen}`, see [`ArgAreas`]),
//! which the chunk holds until it is finished; its piece names the area (`area` =
//! `id`, where 0 means the worker's own task area), and nobody copies it before the
//! worker copies it out. Only when all the pool's argument areas (four per worker, plus
//! two) are held does a large argument stay private and travel through the worker's
//! task area as above.
//!
//! An area that is too small is replaced by a larger one under the next `gen`.
//! The pool creates and holds the task areas (the name goes with the handle). A
//! worker creates its result areas and persists them (it may exit before the pool
//! looked); the pool unlinks each one as soon as it has opened it, and, after the
//! worker died or at the end, every `gen` the worker announced in
//! `WorkerSlot::res_gen` that it did not open. A worker killed between creating and
//! persisting leaves an orphan, which [`gc`] reclaims.
//!
//! Names are never read from shared memory: each side derives them from what it
//! knows and the `gen` in the piece, so a message can only point at an area of
//! this pool. Lengths are checked against the area's size.
//!
//! ## Memory speed
//! A fresh 8 MiB buffer costs 2048 page faults at first touch, more than the copy
//! itself. So every buffer a large message passes through is touched once and
//! reused: an area is faulted in when it is created or attached
//! ([`populate`](crate::sys::shm::populate)); the worker writes its results straight
//! into its area ([`Sink`](super::sink::Sink)); the byte strings decoded in place from
//! an area come from a small stock of spare buffers ([`Buf`]) when it has one.
//!
//! [`gc`]: crate::gc

use crate::{Error, Result, Segment};
use std::sync::Mutex;

/// Messages longer than this go through an area; shorter ones travel in pieces.
pub(super) const BLOB_MIN: usize = 64 << 10;

/// Shortest RESULT the pool leaves in its worker's area, held by its outcome and
/// decoded in place (see `wire::HeldArea`); a shorter one is copied out at once
/// (a few microseconds) and the area is free again. Held areas make a worker write
/// its next large result into a new generation — a segment whose pages both sides
/// fault in, ≈ 0.5 ms per MiB here — so a short result gains nothing
/// from being held, and a stream of them (a `map` with default chunking, whose chunk
/// results of 100–200 KiB wait while the user thread collects the chunks before
/// them in order) ran at half the speed of pieces when each was held.
pub(super) const HOLD_MIN: usize = 1 << 20;

/// Name of generation `gen` of worker `index`'s task area.
pub(super) fn task_area(base: &str, index: usize, gen: u64) -> String {
    format!("{base}-a{index:x}-{gen:x}")
}

/// Name of generation `gen` of worker incarnation `sender`'s result area.
pub(super) fn result_area(base: &str, sender: u32, gen: u64) -> String {
    format!("{base}-r{sender:x}-{gen:x}")
}

/// Name of generation `gen` of the pool's argument area `id`.
pub(super) fn arg_area(base: &str, id: u64, gen: u64) -> String {
    format!("{base}-p{id:x}-{gen:x}")
}

/// An area of ours (or one we opened), with its generation.
pub(super) struct Area {
    pub gen: u64,
    pub seg: Segment,
}

/// Makes sure `area` holds at least `len` bytes: keeps it, or creates generation
/// `gen + 1` with `name(gen + 1)` (the old one goes when its handle drops).
pub(super) fn ensure(
    area: &mut Option<Area>,
    len: usize,
    name: impl FnOnce(u64) -> String,
) -> Result<&Area> {
    let next = match area {
        Some(a) if a.seg.len() >= len => None,
        Some(a) => Some(a.gen + 1),
        None => Some(1),
    };
    make(area, next, len, name)
}

/// Replaces `area` with generation `gen + 1` (named `name(gen + 1)`) of at least
/// `len` bytes, even if it is long enough (someone else still reads it).
pub(super) fn renew(
    area: &mut Option<Area>,
    len: usize,
    name: impl FnOnce(u64) -> String,
) -> Result<&Area> {
    let next = area.as_ref().map_or(1, |a| a.gen + 1);
    make(area, Some(next), len, name)
}

/// Creates generation `next` of `area` (if `Some`), or keeps it.
fn make(
    area: &mut Option<Area>,
    next: Option<u64>,
    len: usize,
    name: impl FnOnce(u64) -> String,
) -> Result<&Area> {
    if let Some(gen) = next {
        // Room to grow by a quarter before the next replacement: a power of two up
        // to 1 MiB (the first chunks of a `map` need ~100 KiB areas, and every page
        // is faulted in below), whole MiB beyond.
        let want = len.saturating_add(len / 4);
        let size = if want <= 1 << 20 {
            want.next_power_of_two().max(2 * BLOB_MIN)
        } else {
            want.checked_next_multiple_of(1 << 20).unwrap_or(len)
        };
        *area = None;
        let seg = Segment::create(&name(gen), size)?;
        // Fault its pages in now, in one call: the first message through it then
        // copies at memory speed, and a full /dev/shm is an error here rather than a
        // SIGBUS while copying. (EINVAL: a kernel before 5.14, which cannot say.)
        // SAFETY: the range is the segment's own mapping.
        match unsafe { crate::sys::shm::populate(seg.as_ptr(), seg.len(), true) } {
            Err(e) if e.raw_os_error() != Some(libc::EINVAL) => {
                return Err(Error::Io(std::io::Error::new(
                    e.kind(),
                    format!(
                        "could not back a {size}-byte pool area in shared memory ({e}): \
                         free space in /dev/shm or pass smaller payloads"
                    ),
                )))
            }
            _ => {}
        }
        *area = Some(Area { gen, seg });
    }
    area.as_ref()
        .ok_or_else(|| Error::invalid("a pool area vanished"))
}

/// Makes `area` the generation `gen` opened as `name(gen)`, unless it already is;
/// with `unlink`, the name is removed once opened (the mapping stays).
pub(super) fn attach(
    area: &mut Option<Area>,
    gen: u64,
    unlink: bool,
    name: impl FnOnce(u64) -> String,
) -> Result<&Area> {
    if area.as_ref().map_or(true, |a| a.gen != gen) {
        *area = None;
        let name = name(gen);
        let seg = Segment::open(&name);
        if unlink {
            remove(&name);
        }
        let seg = seg?;
        // Map its pages now, in one call, rather than fault on each while copying.
        // Only a speed-up: a failure shows again, as zeros or an error, when we read.
        // SAFETY: the range is the segment's own mapping.
        let _ = unsafe { crate::sys::shm::populate(seg.as_ptr(), seg.len(), false) };
        *area = Some(Area { gen, seg });
    }
    area.as_ref()
        .ok_or_else(|| Error::invalid("a pool area vanished"))
}

/// The pool's argument areas: created by user threads on demand (at most `max`), each
/// held by one chunk from serialization until the chunk is finished, then kept for
/// the next large argument (so its pages stay faulted in).
pub(super) struct ArgAreas {
    base: String,
    max: usize,
    state: Mutex<ArgState>,
}

#[derive(Default)]
struct ArgState {
    /// Areas no chunk holds, by id.
    free: Vec<(u64, Area)>,
    /// Areas that exist (free or held).
    live: usize,
    /// The id the next new area gets (ids start at 1: 0 names a worker's own area).
    next_id: u64,
}

/// An argument area held by a chunk (or being written); back to its pool when dropped.
pub(super) struct ArgArea {
    pub id: u64,
    pub area: Option<Area>,
    home: std::sync::Arc<ArgAreas>,
}

impl ArgAreas {
    /// At most `max` argument areas named after `base`.
    pub fn new(base: String, max: usize) -> ArgAreas {
        ArgAreas {
            base,
            max,
            state: Mutex::new(ArgState {
                next_id: 1,
                ..ArgState::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ArgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `held` an area of at least `len` bytes: grows it, or takes a free one
    /// (the smallest that fits, else the largest, grown), or a new one. `None` when
    /// all areas are held by other chunks or none can be created; `held` is then
    /// empty (a failed growth loses the area).
    pub fn ensure(
        self: &std::sync::Arc<Self>,
        held: &mut Option<ArgArea>,
        len: usize,
    ) -> Option<(*mut u8, usize)> {
        if held.is_none() {
            let mut s = self.lock();
            let fits = (0..s.free.len())
                .filter(|&i| s.free[i].1.seg.len() >= len)
                .min_by_key(|&i| s.free[i].1.seg.len());
            let pick = fits.or_else(|| (0..s.free.len()).max_by_key(|&i| s.free[i].1.seg.len()));
            let (id, area) = match pick {
                Some(i) => {
                    let (id, area) = s.free.swap_remove(i);
                    (id, Some(area))
                }
                None if s.live < self.max => {
                    s.live += 1;
                    s.next_id += 1;
                    (s.next_id - 1, None)
                }
                None => return None,
            };
            *held = Some(ArgArea {
                id,
                area,
                home: self.clone(),
            });
        }
        let a = held.as_mut()?;
        let (base, id) = (&self.base, a.id);
        match ensure(&mut a.area, len, |g| arg_area(base, id, g)) {
            Ok(area) => Some((area.seg.as_ptr(), area.seg.len())),
            Err(_) => {
                *held = None; // its Drop counts it gone (no area left)
                None
            }
        }
    }
}

impl Drop for ArgArea {
    fn drop(&mut self) {
        let mut s = self.home.lock();
        match self.area.take() {
            Some(area) => s.free.push((self.id, area)),
            None => s.live -= 1,
        }
    }
}

impl ArgArea {
    /// Overwrites the bytes at `at` with `b` (the chunk id, once it is known).
    pub fn patch(&self, at: usize, b: &[u8]) {
        let Some(area) = &self.area else {
            return;
        };
        // Unreachable from shared data: callers patch the header they wrote.
        assert!(at + b.len() <= area.seg.len(), "a pool area is too short");
        // SAFETY: in bounds (checked above); no worker reads this area until the
        // chunk's piece is sent, which happens after the chunk is submitted.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), area.seg.as_ptr().add(at), b.len()) };
    }
}

/// Copies `body` into the start of `area`.
pub(super) fn put(area: &Area, body: &[u8]) {
    // Unreachable from shared data: `ensure` made the area at least this long.
    assert!(body.len() <= area.seg.len(), "a pool area is too short");
    // SAFETY: the area maps at least `body.len()` bytes (checked above); the reader
    // does not look at them until the piece naming them is sent (the slot counters
    // say it has finished with the previous message); `body` is private memory.
    unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), area.seg.as_ptr(), body.len()) };
}

/// Copies the first `len` bytes of `area` into `out` (cleared first; reserved with
/// [`Buf::reserve`] if it is too small).
pub(super) fn take(area: &Area, len: u64, out: &mut Vec<u8>) -> Result<()> {
    let Some(len) = usize::try_from(len).ok().filter(|&l| l <= area.seg.len()) else {
        return Err(Error::corrupt(
            area.seg.name(),
            format!(
                "a pool message says it holds {len} bytes, its area only {}",
                area.seg.len()
            ),
        ));
    };
    out.clear();
    Buf::reserve(out, len);
    // SAFETY: the area maps at least `len` bytes (checked above) and `out` has room
    // for `len`. The writer finished them before sending the piece; a hostile writer
    // can only change the bytes we copy, which are then parsed as untrusted input. A
    // truncated segment reads as zeros (the SIGBUS handler maps zero pages over it).
    unsafe {
        std::ptr::copy_nonoverlapping(area.seg.as_ptr(), out.as_mut_ptr(), len);
        out.set_len(len);
    }
    // Zeros standing in for a truncated area's bytes could still parse (a `()`
    // result has no bytes to miss): refuse the copy instead.
    if area.seg.broken() {
        return Err(Error::corrupt(
            area.seg.name(),
            "the pool area was truncated while its message was copied out",
        ));
    }
    Ok(())
}

/// Removes the name `name` if it exists.
pub(super) fn remove(name: &str) {
    let _ = crate::segment::unlink(name);
}

/// Spare buffers kept for the next large message (at most this many).
const STOCK_MAX: usize = 4;

/// Buffers of large messages that were dropped: their pages are faulted in already.
/// Only ever `try_lock`ed: a worker forked while another thread held the lock must
/// never wait for it (it just allocates).
struct Stock(Mutex<Vec<Vec<u8>>>);

static STOCK: Stock = Stock(Mutex::new(Vec::new()));

impl Stock {
    /// The smallest spare buffer that holds `len` bytes (emptied), if any.
    fn take(&self, len: usize) -> Option<Vec<u8>> {
        let mut stock = self.0.try_lock().ok()?;
        let i = (0..stock.len())
            .filter(|&i| stock[i].capacity() >= len)
            .min_by_key(|&i| stock[i].capacity())?;
        let mut v = stock.swap_remove(i);
        v.clear();
        Some(v)
    }

    /// Keeps `v` if it is large, replacing the smallest spare when the stock is full.
    fn give(&self, v: Vec<u8>) {
        if v.capacity() <= BLOB_MIN {
            return;
        }
        let Ok(mut stock) = self.0.try_lock() else {
            return;
        };
        if stock.len() < STOCK_MAX {
            stock.push(v);
        } else if let Some(small) = stock.iter_mut().min_by_key(|s| s.capacity()) {
            // Keep the larger buffers: they serve every smaller message too.
            if small.capacity() < v.capacity() {
                *small = v;
            }
        }
    }
}

/// A private buffer of a large message. When dropped, a buffer longer than
/// [`BLOB_MIN`] joins a small process-wide stock that the next large message is
/// copied into, so that its pages need no faulting in again.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Buf(Vec<u8>);

impl Buf {
    /// Makes `v` able to hold `len` bytes, swapping it for a spare buffer from the
    /// stock when it would have to grow past [`BLOB_MIN`] (its bytes are kept).
    pub fn reserve(v: &mut Vec<u8>, len: usize) {
        if v.capacity() >= len {
            return;
        }
        if len > BLOB_MIN {
            if let Some(mut spare) = STOCK.take(len) {
                spare.extend_from_slice(v);
                *v = spare;
                return;
            }
        }
        v.reserve(len - v.len());
    }
}

impl From<Vec<u8>> for Buf {
    fn from(v: Vec<u8>) -> Buf {
        Buf(v)
    }
}

impl std::ops::Deref for Buf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        STOCK.give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_copied_out_of_a_truncated_area_is_refused() {
        let name = format!("blob-take-{}", std::process::id());
        let mut area = None;
        let a = ensure(&mut area, 3 << 16, |g| format!("{name}-{g}")).unwrap();
        let len = a.seg.len();
        // SAFETY: the area's own mapping, written by this test only.
        unsafe { std::ptr::write_bytes(a.seg.as_ptr(), 7, len) };
        let mut out = Vec::new();
        take(a, len as u64, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 7));
        // Another process cuts the file to one page: the copy reads zeros past it.
        a.seg.cut_object(4096);
        let e = take(a, len as u64, &mut out).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        drop(area);
        remove(&format!("{name}-1"));
    }

    #[test]
    fn the_stock_hands_back_the_smallest_large_enough_buffer_emptied() {
        let stock = Stock(Mutex::new(Vec::new()));
        let big = vec![1u8; 4 * BLOB_MIN];
        let mid = vec![2u8; 2 * BLOB_MIN];
        let (big_at, mid_at) = (big.as_ptr(), mid.as_ptr());
        stock.give(big);
        stock.give(mid);
        stock.give(vec![3u8; BLOB_MIN]); // small: not kept
        let got = stock.take(BLOB_MIN + 1).unwrap();
        assert_eq!((got.as_ptr(), got.len()), (mid_at, 0));
        assert!(stock.take(5 * BLOB_MIN).is_none());
        let big = stock.take(3 * BLOB_MIN).unwrap();
        assert_eq!(big.as_ptr(), big_at);
        assert!(stock.take(1).is_none());
    }

    #[test]
    fn a_full_stock_keeps_its_largest_buffers() {
        let stock = Stock(Mutex::new(Vec::new()));
        for i in 0..STOCK_MAX {
            stock.give(vec![0u8; (2 + i) * BLOB_MIN]);
        }
        stock.give(vec![0u8; 10 * BLOB_MIN]);
        stock.give(vec![0u8; 2 * BLOB_MIN]); // smaller than all: dropped
        let mut caps: Vec<usize> = std::iter::from_fn(|| stock.take(0))
            .map(|v| v.capacity() / BLOB_MIN)
            .collect();
        caps.sort();
        assert_eq!(caps, [3, 4, 5, 10]);
    }
}
