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
//! | its RESULTs (and others)  | `{base}-r{sender}-{gen}`    | worker     | the pool has copied the last one out (`WorkerSlot::res_taken`) |
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
//! [`gc`]: crate::gc

use crate::{Error, Result, Segment};

/// Messages longer than this go through an area; shorter ones travel in pieces.
pub(super) const BLOB_MIN: usize = 64 << 10;

/// Name of generation `gen` of worker `index`'s task area.
pub(super) fn task_area(base: &str, index: usize, gen: u64) -> String {
    format!("{base}-a{index:x}-{gen:x}")
}

/// Name of generation `gen` of worker incarnation `sender`'s result area.
pub(super) fn result_area(base: &str, sender: u32, gen: u64) -> String {
    format!("{base}-r{sender:x}-{gen:x}")
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
    if let Some(gen) = next {
        // Room to grow by a quarter before the next replacement, in whole MiB.
        let size = len
            .saturating_add(len / 4)
            .checked_next_multiple_of(1 << 20)
            .unwrap_or(len);
        *area = None;
        let seg = Segment::create(&name(gen), size)?;
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
        *area = Some(Area { gen, seg: seg? });
    }
    area.as_ref()
        .ok_or_else(|| Error::invalid("a pool area vanished"))
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

/// Copies the first `len` bytes of `area` into `out` (cleared first).
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
    out.reserve(len);
    // SAFETY: the area maps at least `len` bytes (checked above) and `out` has room
    // for `len`. The writer finished them before sending the piece; a hostile writer
    // can only change the bytes we copy, which are then parsed as untrusted input. A
    // truncated segment reads as zeros (the SIGBUS handler maps zero pages over it).
    unsafe {
        std::ptr::copy_nonoverlapping(area.seg.as_ptr(), out.as_mut_ptr(), len);
        out.set_len(len);
    }
    Ok(())
}

/// Removes the name `name` if it exists.
pub(super) fn remove(name: &str) {
    let _ = crate::segment::unlink(name);
}
