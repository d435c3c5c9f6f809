//! `RawSpsc`: the single-producer single-consumer ring — a Lamport ring with cached
//! indices. One implementation carries both fixed-size records
//! (`SpscQueue<T>`, one unit = one `T`) and byte streams
//! (`Pipe`, one unit = one byte).
//!
//! ## Layout and state
//! Two monotonically growing `u64` unit counters, each on its own 128-byte line:
//! `tail` (written only by the producer: units published) and `head` (written only by
//! the consumer: units consumed). Unit `p` lives in slot `p % capacity`; the ring
//! holds `tail - head` units, always in `0..=capacity`. A third, read-mostly line holds
//! the closed flags and the two sleepers' flags. The slots themselves are not part of
//! the struct: they live in a [`RingMemory`] (the trailing region of a segment).
//!
//! Each side keeps a process-local cursor ([`Producer`], [`Consumer`]) with its own
//! position and a *cached* copy of the other side's counter, refreshed only when the
//! cache says full (producer) or empty (consumer): in steady state a transfer touches
//! no line the other side writes, except the slots.
//!
//! ## Crash consistency
//! Publishing is one Release store of `tail` after the slots were written, consuming
//! one Release store of `head` after they were read. A producer killed at any
//! instruction leaves either the old or the new `tail`: its units appear whole or not
//! at all. A consumer killed before its `head` store leaves the units in the ring (the
//! next consumer reads them again). Nothing is ever half-published.
//!
//! ## Orderings
//! * `SYNC(spsc-publish)`: the producer's Release store of `tail` pairs with the
//!   consumer's Acquire load: the slots written before it are visible after it.
//! * `SYNC(spsc-release)`: the consumer's Release store of `head` pairs with the
//!   producer's Acquire load: the consumer has finished reading the slots it frees.
//! * `SYNC(spsc-stamp)` (byte streams that opt in, e.g. `Pipe`
//!   frames): the producer's Release store of a *stamp* word inside the staged bytes
//!   pairs with the consumer's Acquire load of that word: a consumer polling the
//!   stamp at its read position sees the bytes written before it — one cache line to
//!   watch, instead of `tail` and then the slot. `tail` is still published after
//!   the stamp; the consumer's cursor accepts stamped units ahead of the `tail` it
//!   can see ([`Consumer::accept`]).
//! * `SYNC(spsc-sleep)`: a sleeper stores its flag, issues a SeqCst fence and re-checks
//!   the counter; the other side stores the counter, then reads the flag (Relaxed,
//!   behind a compiler fence) and wakes the sleeper if it is set.
//!
//! Waits poll before they sleep for an adaptive budget (the crate's `Spin`, see
//! [`RawLock`](super::RawLock)'s module); each side keeps its hint in its own
//! counter's line, which only it writes.
//!
//! ## Sleeping without a fence on the fast path
//! A full fence after every publish would cost the stream more than half its
//! throughput (measured here: 64 M/s instead of 140 M/s for u64 records). So the
//! publishing side reads the sleeper's flag *without* a fence: its counter store may
//! then still sit in its store buffer while it reads a stale flag, and the sleeper,
//! re-checking right after raising its flag, may miss that store. Such a store
//! becomes visible within the time a store buffer takes to drain — tens of
//! nanoseconds; a descheduled CPU drains it too. So after raising its flag the
//! sleeper keeps polling for [`POST_FLAG_POLLS`] rounds (about a microsecond) before
//! it sleeps, and every later publish sees the flag. Should a wake-up still be lost,
//! the sleep ends at the caller's probe interval (every sleep has that timeout, to
//! check that the peer is alive) or deadline. A shorter safety timeout would cost
//! more than it saves: arming a short timer for every sleep tripled the blocking
//! round trip on this VM.
//!
//! ## Untrusted memory
//! Counters read from the region are checked (`tail - head <= capacity`, the other
//! side never runs ahead of us); a violation is [`RingCorrupt`], never a panic or an
//! out-of-bounds access. Slot offsets are always masked by the capacity, which comes
//! from the caller's validated [`Geometry`], never from the region.

pub use super::spsc_memory::{RegionMemory, RingMemory};
use super::wait::{Probes, Spin};
use super::CachePadded;
use crate::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use crate::sync::{futex_wait, futex_wake_all, spin_hint, Deadline, Instant, Task};
use core::mem::MaybeUninit;
use core::sync::atomic::compiler_fence;
use core::time::Duration;

/// Largest ring accepted: 2^40 bytes (1 TiB) of slots.
pub const MAX_RING_BYTES: u64 = 1 << 40;

/// Polls a sleeper makes after raising its flag, before it sleeps: they cover a
/// peer store still in that peer's store buffer (see the module docs).
#[cfg(not(loom))]
pub const POST_FLAG_POLLS: u32 = 32;
/// Polls a sleeper makes after raising its flag, before it sleeps (0 under loom).
#[cfg(loom)]
pub const POST_FLAG_POLLS: u32 = 0;

/// `closed` bit: the producer side is closed — no more units will come; the consumer
/// drains what is there, then sees [`Stop::Closed`].
pub const PRODUCER_CLOSED: u32 = 1;
/// `closed` bit: the consumer side is closed — nobody will read; puts fail.
pub const CONSUMER_CLOSED: u32 = 2;

/// A sleeper's flag: `ASLEEP` while a side sleeps (or is about to), `AWAKE` otherwise.
const AWAKE: u32 = 0;
const ASLEEP: u32 = 1;

/// The ring's shape: `capacity` units (a power of two) of `unit` bytes each.
///
/// Always a process-local, validated value: the capacity read back from a region is
/// never used to index slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    cap: u64,
    unit: usize,
}

impl Geometry {
    /// `capacity` units of `unit` bytes; `None` unless `capacity` is a power of two,
    /// `unit >= 1` and the slots fit in [`MAX_RING_BYTES`].
    pub const fn new(capacity: u64, unit: usize) -> Option<Geometry> {
        if capacity == 0 || !capacity.is_power_of_two() || unit == 0 {
            return None;
        }
        match capacity.checked_mul(unit as u64) {
            Some(b) if b <= MAX_RING_BYTES => Some(Geometry {
                cap: capacity,
                unit,
            }),
            _ => None,
        }
    }
    /// Capacity in units.
    #[inline]
    pub const fn capacity(&self) -> u64 {
        self.cap
    }
    /// Bytes per unit.
    #[inline]
    pub const fn unit(&self) -> usize {
        self.unit
    }
    /// Bytes of slot memory the ring needs.
    #[inline]
    pub const fn bytes(&self) -> usize {
        self.cap as usize * self.unit
    }
    /// Whole units in `bytes` (no division for byte rings).
    #[inline(always)]
    const fn units_in(&self, bytes: usize) -> u64 {
        if self.unit == 1 {
            bytes as u64
        } else {
            (bytes / self.unit) as u64
        }
    }
    /// Index of the slot holding unit `pos`.
    #[inline]
    const fn slot(&self, pos: u64) -> u64 {
        pos & (self.cap - 1)
    }

    /// Where `units` units from position `pos` lie in the ring, in bytes: the offset
    /// of the part up to the ring's end, its length, and the length of the rest, which
    /// wraps to offset 0. `units <= cap` keeps both parts in `0..bytes()`.
    #[inline]
    const fn span(&self, pos: u64, units: u64) -> (usize, usize, usize) {
        let slot = self.slot(pos);
        let first = if units < self.cap - slot {
            units
        } else {
            self.cap - slot
        };
        (
            slot as usize * self.unit,
            first as usize * self.unit,
            (units - first) as usize * self.unit,
        )
    }
}

/// The corruption a ring found in its region (a counter out of range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingCorrupt {
    /// What was wrong.
    pub detail: &'static str,
}

/// Why a wait on the ring ended without success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The deadline passed.
    TimedOut,
    /// The ring was closed (see [`PRODUCER_CLOSED`], [`CONSUMER_CLOSED`]).
    Closed,
    /// The caller's `gone` probe reported the peer gone.
    Gone,
    /// The region holds impossible counters.
    Corrupt(RingCorrupt),
}

impl From<RingCorrupt> for Stop {
    fn from(c: RingCorrupt) -> Stop {
        Stop::Corrupt(c)
    }
}

/// One side's line: its position counter and the spin hint of its waits.
#[repr(C)]
#[derive(Debug)]
struct Counter {
    /// `tail` (producer) or `head` (consumer).
    pos: AtomicU64,
    /// Spin hint of this side's waits (the crate's `Spin`); any value is safe.
    spin: AtomicU32,
    _pad: u32,
}

impl Counter {
    #[cfg(not(loom))]
    const fn new() -> Counter {
        Counter {
            pos: AtomicU64::new(0),
            spin: AtomicU32::new(0),
            _pad: 0,
        }
    }
    #[cfg(loom)]
    fn new() -> Counter {
        Counter {
            pos: AtomicU64::new(0),
            spin: AtomicU32::new(0),
            _pad: 0,
        }
    }
}

/// The read-mostly control line.
#[repr(C)]
#[derive(Debug)]
struct Control {
    /// [`PRODUCER_CLOSED`] | [`CONSUMER_CLOSED`]; bits only ever get set.
    closed: AtomicU32,
    /// The consumer's sleeper flag (a futex word): `ASLEEP` while it waits for units.
    data_waiter: AtomicU32,
    /// The producer's sleeper flag (a futex word): `ASLEEP` while it waits for room.
    space_waiter: AtomicU32,
    _pad: u32,
}

/// The shared state of a single-producer single-consumer ring (see the module docs).
///
/// All-zero bytes are an empty, open ring.
#[repr(C)]
#[derive(Debug)]
pub struct RawSpsc {
    /// Units published, written only by the producer (with the producer's spin
    /// hint). `tail - head` is in `0..=capacity`.
    tail: CachePadded<Counter>,
    /// Units consumed, written only by the consumer (with the consumer's spin hint).
    head: CachePadded<Counter>,
    ctl: CachePadded<Control>,
}

// SAFETY: repr(C) atomics (the padding wrapper is repr(C) too), all-zero = empty and
// open, no pointers, no Drop, align 128.
unsafe impl super::SharedState for RawSpsc {}

impl Default for RawSpsc {
    fn default() -> Self {
        RawSpsc::new()
    }
}

impl RawSpsc {
    /// An empty, open ring (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawSpsc {
        RawSpsc {
            tail: CachePadded(Counter::new()),
            head: CachePadded(Counter::new()),
            ctl: CachePadded(Control {
                closed: AtomicU32::new(0),
                data_waiter: AtomicU32::new(AWAKE),
                space_waiter: AtomicU32::new(AWAKE),
                _pad: 0,
            }),
        }
    }
    /// An empty, open ring (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawSpsc {
        RawSpsc {
            tail: CachePadded(Counter::new()),
            head: CachePadded(Counter::new()),
            ctl: CachePadded(Control {
                closed: AtomicU32::new(0),
                data_waiter: AtomicU32::new(AWAKE),
                space_waiter: AtomicU32::new(AWAKE),
                _pad: 0,
            }),
        }
    }

    /// A producer cursor over `mem`, starting at the ring's current `tail`: the one
    /// process-local handle through which units are written. Only one may be in use
    /// at a time (the caller's role claim ensures it).
    pub fn producer<M: RingMemory>(
        &self,
        geo: Geometry,
        mem: M,
    ) -> Result<Producer<M>, RingCorrupt> {
        check_memory(geo, &mem)?;
        // A previous producer's units are published by its Release store; we only
        // continue after them.
        let tail = self.tail.pos.load(Ordering::Relaxed);
        self.producer_at(geo, mem, tail)
    }

    /// As [`producer`](RawSpsc::producer), for a byte stream whose consumer takes
    /// units on the evidence of a stamp ([`Consumer::accept`]), taken over from a
    /// producer that died: if it died after stamping units but before publishing
    /// `tail`, the consumer may have taken and released them, so that `head` is
    /// ahead of `tail` (by at most the capacity). The new producer then continues
    /// after what was consumed, where [`producer`](RawSpsc::producer) would report
    /// the ring corrupt.
    pub fn producer_resuming<M: RingMemory>(
        &self,
        geo: Geometry,
        mem: M,
    ) -> Result<Producer<M>, RingCorrupt> {
        check_memory(geo, &mem)?;
        let tail = self.tail.pos.load(Ordering::Relaxed);
        // SYNC(spsc-release): Acquire pairs with the consumer's Release store of head.
        let head = self.head.pos.load(Ordering::Acquire);
        let ahead = head.wrapping_sub(tail);
        let start = if ahead != 0 && ahead <= geo.cap {
            head
        } else {
            tail
        };
        self.producer_at(geo, mem, start)
    }

    fn producer_at<M: RingMemory>(
        &self,
        geo: Geometry,
        mem: M,
        tail: u64,
    ) -> Result<Producer<M>, RingCorrupt> {
        let mut p = Producer {
            geo,
            mem,
            tail,
            staged: 0,
            head: tail.wrapping_sub(geo.cap),
            spin: true,
        };
        p.refresh(self)?;
        Ok(p)
    }

    /// A consumer cursor over `mem`, starting at the ring's current `head`.
    pub fn consumer<M: RingMemory>(
        &self,
        geo: Geometry,
        mem: M,
    ) -> Result<Consumer<M>, RingCorrupt> {
        check_memory(geo, &mem)?;
        let head = self.head.pos.load(Ordering::Relaxed);
        let mut c = Consumer {
            geo,
            mem,
            head,
            taken: 0,
            tail: head,
            spin: true,
        };
        c.refresh(self)?;
        Ok(c)
    }

    /// Units in the ring (a snapshot, clamped to `0..=geo.capacity()`).
    pub fn len(&self, geo: Geometry) -> u64 {
        let head = self.head.pos.load(Ordering::Relaxed);
        let tail = self.tail.pos.load(Ordering::Relaxed);
        tail.wrapping_sub(head).min(geo.cap)
    }

    /// True when the ring holds nothing (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.head.pos.load(Ordering::Relaxed) == self.tail.pos.load(Ordering::Relaxed)
    }

    /// The units published so far (`tail`), with Acquire ordering.
    #[inline]
    pub fn published(&self) -> u64 {
        // SYNC(spsc-publish): Acquire pairs with the producer's Release store.
        self.tail.pos.load(Ordering::Acquire)
    }

    /// The spin hint of the consumer's waits, for callers that poll something of
    /// their own before waiting on the ring (see [`Consumer::set_spin`]).
    #[cfg_attr(not(feature = "std"), allow(dead_code))] // used by the std Pipe
    pub(crate) fn consumer_spin_hint(&self) -> &AtomicU32 {
        &self.head.spin
    }

    /// The closed bits ([`PRODUCER_CLOSED`], [`CONSUMER_CLOSED`]).
    #[inline]
    pub fn closed(&self) -> u32 {
        self.ctl.closed.load(Ordering::Acquire)
    }

    /// Sets closed bits and wakes both sides. Closing is final.
    pub fn close(&self, bits: u32) {
        self.ctl
            .closed
            .fetch_or(bits & (PRODUCER_CLOSED | CONSUMER_CLOSED), Ordering::AcqRel);
        // SYNC(spsc-sleep): orders the closed bits before the flag stores below,
        // against a sleeper's flag swap before its re-check: either it sees the bits
        // or its `ASLEEP` is overwritten (so its futex wait returns). Without it a
        // sleeper could miss both and sleep to its probe timeout (found by loom).
        fence(Ordering::SeqCst);
        for w in [&self.ctl.data_waiter, &self.ctl.space_waiter] {
            w.store(AWAKE, Ordering::Relaxed);
            futex_wake_all(w);
        }
    }

    /// Waits until `ready()` holds, sleeping on `word` (the caller's sleeper flag).
    ///
    /// Polls for the adaptive budget of the `spin` hint (if any), then raises the
    /// flag and sleeps; `peer.gone()` runs at each probe while asleep (a `Probes`
    /// schedule growing to `probe`) and ends the wait with [`Stop::Gone`] when true.
    /// From the first probe on, the task `peer.task()` names is watched (see
    /// `Probes::watch`): its exit wakes the sleep for a probe at once.
    fn wait_on(
        &self,
        word: &AtomicU32,
        spin: Option<&AtomicU32>,
        deadline: Deadline,
        probe: Duration,
        mut ready: impl FnMut() -> Result<bool, Stop>,
        mut peer: impl PeerProbe,
    ) -> Result<(), Stop> {
        if let Some(hint) = spin {
            let phase = Spin::start(hint);
            for _ in 0..phase.budget() {
                if ready()? {
                    phase.succeeded(hint);
                    return Ok(());
                }
                spin_hint();
            }
            phase.failed(hint);
        }
        // Growing probes only when there is a peer to watch: the first probe starts the
        // watch early in a long wait. With nobody to watch, probe at the interval.
        let mut probes = match peer.task() {
            Some(_) => Probes::new(probe),
            None => Probes::every(probe),
        };
        let result = 'wait: loop {
            let was = word.swap(ASLEEP, Ordering::Relaxed);
            // SYNC(spsc-sleep): orders our flag before the re-check, against the
            // peer's counter store before its flag load (see the module docs).
            fence(Ordering::SeqCst);
            let polls = if was == AWAKE { POST_FLAG_POLLS } else { 0 };
            for i in 0..=polls {
                match ready() {
                    Ok(true) => break 'wait Ok(()),
                    Ok(false) => {}
                    Err(e) => break 'wait Err(e),
                }
                if i < polls {
                    spin_hint();
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break Err(Stop::TimedOut);
            }
            let r = futex_wait(word, ASLEEP, Some(probes.next_wake(deadline)));
            if probes.due(r, deadline) {
                // `gone` also checks more than liveness (a truncated segment): it runs
                // even when the watch was kept.
                let _ = match peer.task() {
                    Some(t) => probes.watch(word, &[t]),
                    None => probes.watch(word, &[]),
                };
                if peer.gone() {
                    // One last look: what arrived before the peer went still counts.
                    match ready() {
                        Ok(true) => break Ok(()),
                        Ok(false) => break Err(Stop::Gone),
                        Err(e) => break Err(e),
                    }
                }
            }
        };
        word.store(AWAKE, Ordering::Relaxed);
        result
    }
}

/// What a waiting side of a ring asks about its peer: whether it is gone for good
/// (at each probe), and which task to watch meanwhile, so that the peer's exit wakes
/// the wait at once (`Probes::watch`). Any `FnMut() -> bool` is a `PeerProbe` that
/// names no task (its probes stay on their schedule).
pub trait PeerProbe {
    /// True when the peer is gone for good (may read `/proc`).
    fn gone(&mut self) -> bool;
    /// The peer's thread or process, if one is known (a snapshot, no liveness check).
    fn task(&mut self) -> Option<Task> {
        None
    }
}

impl<F: FnMut() -> bool> PeerProbe for F {
    #[inline]
    fn gone(&mut self) -> bool {
        self()
    }
}

/// Wakes the side sleeping on `word`, if any: a Relaxed load on the fast path.
#[inline]
fn notify(word: &AtomicU32) {
    // SYNC(spsc-sleep): keep the compiler from hoisting the flag load above the
    // counter store just made (the hardware may still; see the module docs).
    compiler_fence(Ordering::SeqCst);
    // Under loom only: loom has no time, so it cannot model the store-buffer drain
    // that the sleeper's `POST_FLAG_POLLS` wait out; this fence stands for it (see
    // "Sleeping without a fence" and `raw::wait`).
    #[cfg(loom)]
    fence(Ordering::SeqCst);
    if word.load(Ordering::Relaxed) != AWAKE {
        wake(word);
    }
}

#[cold]
#[inline(never)]
fn wake(word: &AtomicU32) {
    if word.swap(AWAKE, Ordering::Relaxed) != AWAKE {
        futex_wake_all(word);
    }
}

fn check_memory<M: RingMemory>(geo: Geometry, mem: &M) -> Result<(), RingCorrupt> {
    if mem.len() < geo.bytes() {
        return Err(RingCorrupt {
            detail: "the slot memory is smaller than the ring's capacity",
        });
    }
    Ok(())
}

/// The producer's process-local cursor: position, staged units and a cached `head`.
#[derive(Debug)]
pub struct Producer<M> {
    geo: Geometry,
    mem: M,
    /// Units published (our copy of `tail`).
    tail: u64,
    /// Units written after `tail` but not yet published.
    staged: u64,
    /// Cached `head`: a lower bound of the consumer's progress.
    head: u64,
    /// Waits poll (an adaptive budget) before they sleep.
    spin: bool,
}

impl<M: RingMemory> Producer<M> {
    /// Whether waits poll (an adaptive budget) before they sleep (default true);
    /// callers that poll something else first turn it off.
    pub fn set_spin(&mut self, spin: bool) {
        self.spin = spin;
    }

    /// The ring's geometry.
    #[inline]
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Position of the next unit to write (published + staged).
    #[inline]
    pub fn position(&self) -> u64 {
        self.tail.wrapping_add(self.staged)
    }

    /// Units staged and not yet published.
    #[inline]
    pub fn staged(&self) -> u64 {
        self.staged
    }

    /// Free units according to the cache (a lower bound).
    #[inline]
    pub fn free(&self) -> u64 {
        self.geo.cap - self.position().wrapping_sub(self.head)
    }

    /// Free units, re-reading `head` only if the cache shows fewer than `want`.
    #[inline]
    pub fn free_for(&mut self, ring: &RawSpsc, want: u64) -> Result<u64, RingCorrupt> {
        let f = self.free();
        if f >= want {
            return Ok(f);
        }
        self.refresh(ring)
    }

    /// Re-reads `head`; returns the free units.
    pub fn refresh(&mut self, ring: &RawSpsc) -> Result<u64, RingCorrupt> {
        // SYNC(spsc-release): Acquire pairs with the consumer's Release store of head.
        let head = ring.head.pos.load(Ordering::Acquire);
        let used = self.position().wrapping_sub(head);
        if used > self.geo.cap || head.wrapping_sub(self.head) > self.geo.cap {
            return Err(RingCorrupt {
                detail: "the consumer's position is outside the ring",
            });
        }
        self.head = head;
        Ok(self.geo.cap - used)
    }

    /// Copies `units` units from `src` behind the staged ones.
    ///
    /// # Safety
    /// `units <= self.free()`; `src` is valid for `units * unit` bytes.
    #[inline]
    unsafe fn copy_in(&mut self, src: *const u8, units: u64) {
        let (off, first, rest) = self.geo.span(self.position(), units);
        // SAFETY: both parts lie in 0..geo.bytes() <= mem.len() (`span`, and the length
        // checked when the cursor was made); `src` per the contract.
        unsafe {
            self.mem.write(off, src, first);
            if rest > 0 {
                // Wrapped: the rest goes to the start of the ring.
                self.mem.write(0, src.add(first), rest);
            }
        }
        self.staged += units;
    }

    /// Stages as many whole units of `src` as fit (per the cache); returns how many
    /// bytes were staged. Nothing is visible to the consumer before
    /// [`publish`](Producer::publish).
    pub fn stage(&mut self, src: &[u8]) -> usize {
        let units = self.geo.units_in(src.len()).min(self.free());
        // SAFETY: units <= free; `src` holds at least units * unit bytes.
        unsafe { self.copy_in(src.as_ptr(), units) };
        units as usize * self.geo.unit
    }

    /// Stages one record; false (nothing staged) when the cache shows no room or
    /// `T` is not the ring's unit.
    #[inline]
    pub fn stage_one<T: bytemuck::Pod>(&mut self, v: &T) -> bool {
        if core::mem::size_of::<T>() != self.geo.unit || self.free() == 0 {
            return false;
        }
        let off = self.geo.slot(self.position()) as usize * self.geo.unit;
        // SAFETY: one unit is free; a single unit never wraps, so `off + size_of::<T>()
        // <= geo.bytes() <= mem.len()`; `v` is size_of::<T>() readable bytes. The
        // constant length lets this compile to plain moves.
        unsafe {
            self.mem
                .write(off, (v as *const T).cast(), core::mem::size_of::<T>())
        };
        self.staged += 1;
        true
    }

    /// Stages one 8-byte word at an 8-aligned position of a byte ring (one store, no
    /// copy loop); false (nothing staged) if there is no room or the ring is not a
    /// byte ring at an aligned position.
    #[inline]
    pub fn stage_word(&mut self, w: u64) -> bool {
        let pos = self.position();
        if self.geo.unit != 1 || pos % 8 != 0 || self.free() < 8 {
            return false;
        }
        let off = self.geo.slot(pos) as usize;
        let bytes = w.to_ne_bytes();
        // SAFETY: 8 units are free and the capacity is a multiple of 8 (a power of two
        // >= 8, since 8 units fit), so the aligned word does not wrap: in bounds.
        unsafe { self.mem.write(off, bytes.as_ptr(), 8) };
        self.staged += 8;
        true
    }

    /// Stages a *stamped frame* in a byte ring, at an 8-aligned position: an 8-byte
    /// stamp slot, the 8-byte `word`, `data`, and padding to a multiple of 8; then
    /// stores `stamp` into the slot ([`stamp`](Producer::stamp)). One bounds check
    /// and straight copies when the frame does not wrap (the common case). False
    /// (nothing staged) if the frame does not fit in the cached free space, the
    /// position is not aligned, or the ring is not a byte ring.
    #[inline]
    pub fn stage_stamped(&mut self, word: u64, data: &[u8], stamp: u64) -> bool {
        let at = self.position();
        let len = data.len() as u64;
        let total = 16 + ((len + 7) & !7);
        if self.geo.unit != 1 || at % 8 != 0 || total > self.free() {
            return false;
        }
        let off = self.geo.slot(at) as usize;
        if off + total as usize <= self.geo.bytes() {
            let w = word.to_ne_bytes();
            // SAFETY: the frame's `total` bytes at `off` are free and inside the slot
            // memory (no wrap); `data` is `len` readable bytes.
            unsafe {
                self.mem.write(off + 8, w.as_ptr(), 8);
                self.mem.write(off + 16, data.as_ptr(), data.len());
            }
            self.staged += total;
        } else {
            self.stage_gap(8);
            self.stage_word(word);
            self.stage(data);
            self.stage_gap(total - 16 - len);
        }
        self.stamp(at, stamp)
    }

    /// Stages `units` units without writing them (padding); false if fewer are free.
    #[inline]
    pub fn stage_gap(&mut self, units: u64) -> bool {
        if units > self.free() {
            return false;
        }
        self.staged += units;
        true
    }

    /// Stores `value` with Release into the 8-byte word at position `at`: a *stamp*.
    /// The word must lie within the staged units (8-aligned in the slot memory). A
    /// consumer polling that word ([`Consumer::stamp`]) sees every byte staged before
    /// the stamp, even before [`publish`](Producer::publish) — one cache line to
    /// watch instead of `tail` and then the slot. False (nothing stored) if `at` is not
    /// such a word.
    #[inline]
    pub fn stamp(&mut self, at: u64, value: u64) -> bool {
        let unit = self.geo.unit as u64;
        let into = at.wrapping_sub(self.tail);
        if into >= self.staged || (self.staged - into) * unit < 8 {
            return false;
        }
        let off = self.geo.slot(at) as usize * self.geo.unit;
        if off + 8 > self.geo.bytes() {
            return false;
        }
        match self.mem.word(off) {
            Some(w) => {
                // SYNC(spsc-stamp): Release pairs with the Acquire in Consumer::stamp.
                w.store(value, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Forgets the staged units (they were never visible).
    pub fn unstage(&mut self) {
        self.staged = 0;
    }

    /// Publishes the staged units (one Release store) and wakes a sleeping consumer.
    #[inline]
    pub fn publish(&mut self, ring: &RawSpsc) {
        if self.staged == 0 {
            return;
        }
        self.tail = self.tail.wrapping_add(self.staged);
        self.staged = 0;
        // SYNC(spsc-publish): Release pairs with the consumer's Acquire load of tail.
        ring.tail.pos.store(self.tail, Ordering::Release);
        notify(&ring.ctl.data_waiter);
    }

    /// Writes and publishes one record if there is room: the whole fast path of a
    /// typed put. `Ok(false)` when full.
    #[inline]
    pub fn try_push<T: bytemuck::Pod>(
        &mut self,
        ring: &RawSpsc,
        v: &T,
    ) -> Result<bool, RingCorrupt> {
        if self.free() == 0 && self.refresh(ring)? == 0 {
            return Ok(false);
        }
        if core::mem::size_of::<T>() != self.geo.unit {
            return Err(RingCorrupt {
                detail: "record size does not match the ring's unit",
            });
        }
        let off = self.geo.slot(self.position()) as usize * core::mem::size_of::<T>();
        // SAFETY: a slot is free and a single unit never wraps, so the record's bytes
        // lie in the checked slot memory; `v` is size_of::<T>() readable bytes.
        unsafe {
            self.mem
                .write(off, (v as *const T).cast(), core::mem::size_of::<T>())
        };
        self.staged += 1;
        self.publish(ring);
        Ok(true)
    }

    /// Waits until at least `want` units are free (`want <= capacity`), the ring is
    /// closed, `gone` reports the consumer gone (its task, if it names one, is watched
    /// meanwhile: see [`PeerProbe`]), or `deadline` passes.
    pub fn wait_free(
        &mut self,
        ring: &RawSpsc,
        want: u64,
        deadline: Deadline,
        probe: Duration,
        gone: impl PeerProbe,
    ) -> Result<u64, Stop> {
        let want = want.min(self.geo.cap);
        if ring.closed() != 0 {
            return Err(Stop::Closed);
        }
        if self.free_for(ring, want)? >= want {
            return Ok(self.free());
        }
        ring.wait_on(
            &ring.ctl.space_waiter,
            self.spin.then_some(&ring.tail.spin),
            deadline,
            probe,
            || {
                if ring.closed() != 0 {
                    return Err(Stop::Closed);
                }
                Ok(self.refresh(ring)? >= want)
            },
            gone,
        )?;
        Ok(self.free())
    }
}

/// The consumer's process-local cursor: position, taken units and a cached `tail`.
#[derive(Debug)]
pub struct Consumer<M> {
    geo: Geometry,
    mem: M,
    /// Units released (our copy of `head`).
    head: u64,
    /// Units read after `head` but not yet released.
    taken: u64,
    /// Cached `tail`: a lower bound of the producer's progress.
    tail: u64,
    /// Waits poll (an adaptive budget) before they sleep.
    spin: bool,
}

impl<M: RingMemory> Consumer<M> {
    /// Whether waits poll (an adaptive budget) before they sleep (default true);
    /// callers that poll something else first turn it off.
    pub fn set_spin(&mut self, spin: bool) {
        self.spin = spin;
    }

    /// The ring's geometry.
    #[inline]
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Position of the next unit to read (released + taken).
    #[inline]
    pub fn position(&self) -> u64 {
        self.head.wrapping_add(self.taken)
    }

    /// Units taken and not yet released.
    #[inline]
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Readable units according to the cache (a lower bound).
    #[inline]
    pub fn available(&self) -> u64 {
        self.tail.wrapping_sub(self.position())
    }

    /// Readable units, re-reading `tail` only if the cache shows fewer than `want`.
    #[inline]
    pub fn available_for(&mut self, ring: &RawSpsc, want: u64) -> Result<u64, RingCorrupt> {
        let a = self.available();
        if a >= want {
            return Ok(a);
        }
        self.refresh(ring)
    }

    /// Re-reads `tail`; returns the readable units.
    pub fn refresh(&mut self, ring: &RawSpsc) -> Result<u64, RingCorrupt> {
        let cap = self.geo.cap;
        let tail = ring.published();
        // As offsets from `head`: what we know (the cache, which units accepted through
        // stamps may have moved ahead of the visible `tail`) and what we see now. A
        // visible `tail` may even lag behind `head` after such units were released.
        let known = self.tail.wrapping_sub(self.head);
        let seen = tail.wrapping_sub(self.head);
        let held = if seen <= cap {
            seen.max(known)
        } else if self.head.wrapping_sub(tail) <= cap {
            known
        } else {
            return Err(RingCorrupt {
                detail: "the producer's position is outside the ring",
            });
        };
        if held < self.taken || held > cap {
            return Err(RingCorrupt {
                detail: "the producer's position is outside the ring",
            });
        }
        self.tail = self.head.wrapping_add(held);
        Ok(held - self.taken)
    }

    /// The stamp word at position `at` (Acquire), if the slot memory has a word there
    /// (see [`Producer::stamp`]).
    #[inline]
    pub fn stamp(&self, at: u64) -> Option<u64> {
        let off = self.geo.slot(at) as usize * self.geo.unit;
        if off + 8 > self.geo.bytes() {
            return None;
        }
        // SYNC(spsc-stamp): Acquire pairs with the Release in Producer::stamp.
        self.mem.word(off).map(|w| w.load(Ordering::Acquire))
    }

    /// Counts `units` units from the read position as published, on the evidence of
    /// a stamp (the producer wrote them before storing it). They must fit in the ring.
    #[inline]
    pub fn accept(&mut self, units: u64) -> Result<(), RingCorrupt> {
        let end = self.position().wrapping_add(units).wrapping_sub(self.head);
        if end > self.geo.cap {
            return Err(RingCorrupt {
                detail: "a stamped frame runs past the ring",
            });
        }
        if end > self.tail.wrapping_sub(self.head) {
            self.tail = self.head.wrapping_add(end);
        }
        Ok(())
    }

    /// Copies `units` units to `dst` and counts them as taken.
    ///
    /// # Safety
    /// `units <= self.available()`; `dst` is valid for writing `units * unit` bytes.
    #[inline]
    unsafe fn copy_out(&mut self, dst: *mut u8, units: u64) {
        let (off, first, rest) = self.geo.span(self.position(), units);
        // SAFETY: both parts lie in bounds of the checked memory (`span`); `dst` per
        // the contract.
        unsafe {
            self.mem.read(off, dst, first);
            if rest > 0 {
                self.mem.read(0, dst.add(first), rest);
            }
        }
        self.taken += units;
    }

    /// Takes as many whole units as are readable (per the cache) and fit in `dst`;
    /// returns the bytes written. Their slots stay reserved until
    /// [`release`](Consumer::release).
    pub fn take(&mut self, dst: &mut [u8]) -> usize {
        let units = self.geo.units_in(dst.len()).min(self.available());
        // SAFETY: units <= available; `dst` holds at least units * unit bytes.
        unsafe { self.copy_out(dst.as_mut_ptr(), units) };
        units as usize * self.geo.unit
    }

    /// As [`take`](Consumer::take), into uninitialised memory (e.g. a `Vec`'s spare
    /// capacity); the returned prefix of `dst` is initialised.
    pub fn take_uninit(&mut self, dst: &mut [MaybeUninit<u8>]) -> usize {
        let units = self.geo.units_in(dst.len()).min(self.available());
        // SAFETY: as in `take`; writing bytes into MaybeUninit memory is always fine.
        unsafe { self.copy_out(dst.as_mut_ptr().cast(), units) };
        units as usize * self.geo.unit
    }

    /// As [`take_uninit`](Consumer::take_uninit), copying with
    /// [`RingMemory::read_streaming`]: for large messages whose bytes will not be
    /// read again soon.
    pub fn take_uninit_streaming(&mut self, dst: &mut [MaybeUninit<u8>]) -> usize {
        let units = self.geo.units_in(dst.len()).min(self.available());
        let (off, first, rest) = self.geo.span(self.position(), units);
        let d: *mut u8 = dst.as_mut_ptr().cast();
        // SAFETY: as in `copy_out`: in bounds of the checked memory and of `dst`.
        unsafe {
            self.mem.read_streaming(off, d, first);
            if rest > 0 {
                self.mem.read_streaming(0, d.add(first), rest);
            }
        }
        self.taken += units;
        first + rest
    }

    /// Counts up to `units` readable units as taken without copying them.
    pub fn skip(&mut self, units: u64) -> u64 {
        let n = units.min(self.available());
        self.taken += n;
        n
    }

    /// Frees the taken units for the producer (one Release store) and wakes it if
    /// it sleeps.
    #[inline]
    pub fn release(&mut self, ring: &RawSpsc) {
        if self.taken == 0 {
            return;
        }
        self.head = self.head.wrapping_add(self.taken);
        self.taken = 0;
        // SYNC(spsc-release): Release pairs with the producer's Acquire load of head.
        ring.head.pos.store(self.head, Ordering::Release);
        notify(&ring.ctl.space_waiter);
    }

    /// Reads and releases one record if there is one: the whole fast path of a typed
    /// get.
    #[inline]
    pub fn try_pop<T: bytemuck::Pod>(&mut self, ring: &RawSpsc) -> Result<Option<T>, RingCorrupt> {
        if core::mem::size_of::<T>() != self.geo.unit {
            return Err(RingCorrupt {
                detail: "record size does not match the ring's unit",
            });
        }
        if self.available() == 0 && self.refresh(ring)? == 0 {
            return Ok(None);
        }
        let mut v = MaybeUninit::<T>::uninit();
        let off = self.geo.slot(self.position()) as usize * core::mem::size_of::<T>();
        // SAFETY: one unit is readable and never wraps (see `stage_one`); `v` has room
        // for size_of::<T>() bytes.
        unsafe {
            self.mem
                .read(off, v.as_mut_ptr().cast(), core::mem::size_of::<T>())
        };
        self.taken += 1;
        self.release(ring);
        // SAFETY: all size_of::<T>() bytes were written, and T is Pod: any bytes are a T.
        Ok(Some(unsafe { v.assume_init() }))
    }

    /// Waits until at least `want` units are readable (`want <= capacity`), the
    /// producer side is closed with fewer left ([`Stop::Closed`]), `gone` reports
    /// the producer gone (after a last look; its task, if it names one, is watched
    /// meanwhile: see [`PeerProbe`]), or `deadline` passes.
    pub fn wait_available(
        &mut self,
        ring: &RawSpsc,
        want: u64,
        deadline: Deadline,
        probe: Duration,
        gone: impl PeerProbe,
    ) -> Result<u64, Stop> {
        let want = want.min(self.geo.cap);
        if self.available_for(ring, want)? >= want {
            return Ok(self.available());
        }
        ring.wait_on(
            &ring.ctl.data_waiter,
            self.spin.then_some(&ring.head.spin),
            deadline,
            probe,
            || {
                // Read the closed bits first: units published before the close are
                // then certainly seen by the refresh.
                let closed = ring.closed() & PRODUCER_CLOSED != 0;
                if self.refresh(ring)? >= want {
                    return Ok(true);
                }
                if closed {
                    return Err(Stop::Closed);
                }
                Ok(false)
            },
            gone,
        )?;
        Ok(self.available())
    }
}
