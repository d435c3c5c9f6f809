//! [`Pipe`]: a connection between two processes — Python's `multiprocessing.Pipe` —
//! carrying whole messages of any length through shared memory.
//!
//! ## Wire format
//! Each direction is one byte ring ([`RawSpsc`](crate::raw::RawSpsc) with one-byte
//! units) carrying stamped frames, defined in [`raw::frame`](crate::raw::frame) (pure,
//! fuzzed on its own). The sender writes a frame's header and bytes, then stores its
//! stamp (Release), then publishes `tail` as any ring producer does. A receiver polls
//! the stamp word at its read position: it sits in the same cache line as the frame's
//! first bytes, so a small message costs the receiver one cache miss, not two
//! (`tail`, then the slot). `tail` still drives sleeping, waking and the free-space
//! accounting.
//!
//! The receiver assembles pieces in its own buffer and hands out a message only when
//! it is complete: a sender that dies, closes or gives up mid-message never delivers
//! a partial one.

use super::common::named_handle;
use crate::raw::frame::{
    self, decode, frame_len, header, padded, ABORT, MAX_MESSAGE_LEN, OVERHEAD, PIECE, START, WHOLE,
};
use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::spsc::{
    Consumer, Geometry, PeerProbe, Producer, RegionMemory, RingCorrupt, Stop, CONSUMER_CLOSED,
    MAX_RING_BYTES, PRODUCER_CLOSED,
};
use crate::raw::spsc_role::{ClaimError, Claimed, RawPipe, RoleStatus};
use crate::raw::wait::spin_until;
use crate::segment::{self, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::sync::Task;
use crate::sys::clock::{deadline_after, Deadline, Instant};
use crate::sys::ident::{current_process, fork_generation, forks_so_far};
use crate::{Error, Result};
use core::fmt;
use std::sync::Arc;
use std::time::Duration;

const MIN_PIPE_CAPACITY: usize = 64;

/// Which end of a pipe a handle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PipeEnd {
    /// The creator's end ([`Pipe::create`]; the first of [`Pipe::new`]'s pair; the
    /// sending end of a one-way pipe).
    A,
    /// The opener's end ([`Pipe::open`]; the second of [`Pipe::new`]'s pair; the
    /// receiving end of a one-way pipe).
    B,
}

impl PipeEnd {
    fn index(self) -> usize {
        match self {
            PipeEnd::A => 0,
            PipeEnd::B => 1,
        }
    }
}

struct Tx {
    cur: Producer<RegionMemory>,
    nonce: u64,
    /// A streamed message was abandoned: an ABORT frame must precede the next one.
    need_abort: bool,
    /// The peer was found dead or closed: sends fail at once.
    peer_gone: bool,
    /// When (a coarse [`Instant`]) a send next checks that the peer is alive: about
    /// once per probe interval, so that a dead peer is noticed by sends that never
    /// wait, without a `/proc` read per send.
    next_check: Instant,
}

impl Tx {
    /// Stages one stamped frame; the caller checked that `frame_len(data.len())`
    /// bytes are free. Not visible to `tail` readers until published.
    #[inline(always)]
    fn frame(&mut self, kind: u64, value: u64, data: &[u8]) {
        let at = self.cur.position();
        // SYNC(spsc-stamp) (in the ring): the frame's bytes are written before it.
        self.cur
            .stage_stamped(header(kind, value), data, at ^ self.nonce);
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    len: u64,
    got: u64,
    /// Skip its bytes (it was refused as too large).
    discard: bool,
}

struct Rx {
    cur: Consumer<RegionMemory>,
    nonce: u64,
    /// The message being assembled, if any.
    msg: Option<InFlight>,
    /// Its bytes so far, kept between calls that timed out mid-message.
    partial: Vec<u8>,
    /// The peer closed or died and everything it sent was drained.
    eof: bool,
    /// This end was taken over from a process that died: the read position may lie
    /// inside a message it was assembling, whose remaining pieces are skipped.
    resync: bool,
    /// When (a coarse [`Instant`]) a receive that finds nothing and does not wait
    /// next checks that the peer is alive (as [`Tx::next_check`]).
    next_check: Instant,
}

impl Rx {
    /// True (and the next check scheduled) once a probe interval has passed since
    /// the last check of the peer by a receive that did not wait.
    fn check_due(&mut self, probe: Duration) -> bool {
        let now = Instant::coarse_now();
        if now < self.next_check {
            return false;
        }
        self.next_check = now.add(probe);
        true
    }

    /// True if a stamped frame starts at the read position.
    #[inline]
    fn stamped(&self) -> bool {
        let at = self.cur.position();
        self.cur.stamp(at) == Some(at ^ self.nonce)
    }

    /// Takes the stamp and header of the frame at the read position, if it is there;
    /// its data is then readable.
    #[inline]
    fn next_frame(&mut self) -> core::result::Result<Option<frame::Frame>, &'static str> {
        let at = self.cur.position();
        if self.cur.stamp(at) != Some(at ^ self.nonce) {
            return Ok(None);
        }
        let h = self.cur.stamp(at.wrapping_add(8)).unwrap_or(0);
        let frame = frame::parse(h, self.cur.geometry().capacity())?;
        self.cur
            .accept(frame_len(frame.data))
            .map_err(|c| c.detail)?;
        self.cur.skip(OVERHEAD);
        Ok(Some(frame))
    }

    /// Skips the padding after `data` bytes and frees the frame for the producer.
    #[inline(always)]
    fn finish_frame(&mut self, ring: &crate::raw::RawSpsc, data: u64) {
        self.cur.skip(padded(data) - data);
        self.cur.release(ring);
    }
}

/// The handles of an anonymous pair still open in the process that made the pair,
/// per end (shared by the pair's two handles). A forked child inherits copies of the
/// handles and of these counts, but it is another process: it ignores them.
#[derive(Debug)]
struct LocalEnds {
    /// [`fork_generation`] of the process that made the pair.
    generation: u64,
    /// [`forks_so_far`] when the pair was made.
    forks: u64,
    /// Handles of end A and end B not yet closed in that process.
    open: [AtomicU32; 2],
}

impl LocalEnds {
    /// True if this process holds an open handle of `end`: it may still use that end
    /// (taking it over from a holder that exited), so the end is not gone.
    fn holds(&self, end: usize) -> bool {
        self.generation == fork_generation() && self.open[end].load(Ordering::Relaxed) > 0
    }

    /// True while no process but this one can hold a handle of the pair: this is the
    /// process that made it, and it has not forked since.
    fn unshared(&self) -> bool {
        self.generation == fork_generation() && self.forks == forks_so_far()
    }
}

/// What the inlined receive path found.
enum Fast {
    Got(usize),
    Nothing,
    Slow,
}

/// One end of a pipe: a connection between two processes carrying whole messages of
/// any length — Python's `multiprocessing.Pipe()` / `Connection`, through shared
/// memory.
///
/// * [`Pipe::new`] gives an anonymous duplex pair for a parent and its forked child;
///   [`Pipe::create`] / [`Pipe::open`] give the two ends of a named pipe to unrelated
///   processes; [`Pipe::one_way`] and [`Pipe::create_one_way`] are Python's
///   `duplex=False`.
/// * [`send_bytes`](Pipe::send_bytes) takes a message of any length: one that fits in
///   the ring is written with one store; a longer one streams through the ring in
///   pieces and arrives whole. [`recv_bytes`](Pipe::recv_bytes) and
///   [`recv_bytes_into`](Pipe::recv_bytes_into) (no allocation when the buffer is
///   large enough) return complete messages only. [`send`](Pipe::send) /
///   [`recv`](Pipe::recv) carry any serde type (postcard encoding).
/// * Every blocking call has `_timeout` and `try_` forms and [`poll`](Pipe::poll)
///   waits for data. Blocking spins briefly, then sleeps on a shared futex; the other
///   side pays a syscall only when it finds a sleeper's flag raised.
///
/// **End of the connection.** After the peer [`close`](Pipe::close)s (or drops) its
/// end, `recv` returns what it sent, then `Err(Closed)` (Python's `EOFError`); `send`
/// fails with `Err(Closed)` (Python's `BrokenPipeError`). If the peer *process dies*
/// without closing (all of its threads: a process whose main thread exited lives on
/// in its other threads), the same happens within the probe interval (10 ms by
/// default, [`with_probe_interval`](Pipe::with_probe_interval)): a waiting `recv` or
/// `send` checks the peer once per interval, a `send` (or a receive finding nothing)
/// that does not wait checks it when an interval has passed since its last check
/// (read on the coarse clock, so up
/// to a clock tick, a few milliseconds, later), and once one call has found
/// the peer gone, every later `recv` (after draining) and `send` fails at once. A
/// message the dead peer was still streaming is dropped, never delivered in part.
///
/// **One process per end.** Each end records the process holding it: using an end
/// that another live process holds fails with [`Error::Busy`] naming that process.
/// An end whose process exited without closing it passes to the next process that
/// uses it (CPython's `test_boundaries`: a child polls the reader end and exits, then
/// the parent reads from it) — unless the peer has already reported the connection
/// ended, which closes that end for good. An end that was closed cannot be used
/// again (`Err(Closed)`): a pipe is one connection. The ends of an anonymous pair
/// belong to the process that first uses them, so a parent can keep one and a forked
/// child use the other; an unused copy inherited through `fork` can be dropped or
/// closed without affecting anyone. As with Python's file descriptors, while a
/// handle of the peer's end is open in the process that made the pair, the peer's
/// end counts as alive there (that handle may still take it over): drop such unused
/// copies in the parent, or its `recv` waits for a peer that is gone.
///
/// Data-moving methods take `&mut self`: one handle, one thread at a time. To send
/// from one thread while another receives on the same end, [`split`](Pipe::split) it
/// into a [`PipeSender`] and a [`PipeReceiver`].
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Pipe;
/// let (mut a, mut b) = Pipe::new(64 * 1024)?;
/// a.send_bytes(b"hello")?;
/// assert_eq!(b.recv_bytes()?, b"hello");
/// b.send(&("any", vec![1u32, 2, 3]))?;           // serde types
/// let (s, v): (String, Vec<u32>) = a.recv()?;
/// assert_eq!((s.as_str(), v.len()), ("any", 3));
/// let reader = std::thread::spawn(move || b.recv_bytes().map(|m| m.len()));
/// a.send_bytes(&vec![7u8; 1 << 20])?;              // longer than the ring: streamed
/// assert_eq!(reader.join().unwrap()?, 1 << 20);
/// # Ok(()) }
/// ```
pub struct Pipe {
    /// Its sending half (the cursor of the ring this end writes).
    tx: PipeSender,
    /// Its receiving half (the cursor of the ring this end reads).
    rx: PipeReceiver,
}

named_handle! {
    impl[] Pipe: "pipe" (anonymous), tx.shared.obj;
    debug[] "Pipe" {
        "end" => |p| p.end(),
        "duplex" => |p| p.is_duplex(),
        "capacity" => |p| p.capacity(),
        "closed" => |p| p.is_closed(),
    };
    /// Creates the named duplex pipe `name` and returns its end A; another process
    /// gets end B with [`open`](Pipe::open). `Err(AlreadyExists)` if the name is
    /// taken. The name is unlinked when this handle drops (unless
    /// [`persist`](Pipe::persist)ed).
    create(capacity_bytes: usize);
    /// Opens end B of the named pipe `name`. `Err(Busy)` if a live process holds end
    /// B already; `Err(Closed)` if end B was closed (or its peer found its process
    /// dead); an end B whose process exited unnoticed is taken over.
    open();
    /// Opens end B of `name` if it is a duplex pipe of this capacity (rounded as
    /// `create` rounds it), or creates the (duplex) pipe and returns its end A if it
    /// does not exist: see [`end`](Pipe::end). `Err(Mismatch)` if it exists with
    /// another capacity or is one-way (it is left alone, end B unclaimed).
    open_or_create(capacity_bytes: usize);
    /// True once another process truncated the pipe's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)); sends, receives and polls
    /// then return `Err(Corrupt)` (waiting ones within a probe interval).
    is_broken;
}

/// The sending half of a pipe end, from [`Pipe::split`]: it has the end's send
/// methods and no receive methods, and may be moved to another thread than the
/// [`PipeReceiver`] of the same end. `Send` and `Sync`.
///
/// [`close`](PipeSender::close) (or dropping it) ends the sending direction: the
/// peer's receives drain what was sent, then return `Err(Closed)` — a socket's
/// `shutdown(SHUT_WR)`; Python's `Connection` closes both directions at once, as
/// [`Pipe::close`] does. The end itself (its role, see [`Pipe`]) is closed when both
/// halves are closed or dropped.
///
/// A sender has no receive methods:
///
/// ```compile_fail
/// let (a, _b) = multiproc::Pipe::new(4096).unwrap();
/// let (mut tx, _rx) = a.split();
/// let _ = tx.recv_bytes(); // error: no method `recv_bytes` on `PipeSender`
/// ```
pub struct PipeSender {
    shared: Arc<EndShared>,
    /// `Some` once the end was claimed in this process, if it can send.
    tx: Option<Tx>,
    /// [`fork_generation`] when this half got its cursor; 0 = not yet.
    generation: u64,
    probe: Duration,
    /// `close` was called on this half (or on its [`Pipe`]).
    closed: bool,
    scratch: Vec<u8>,
}

/// The receiving half of a pipe end, from [`Pipe::split`]: it has the end's receive
/// methods and [`poll`](PipeReceiver::poll), no send methods, and may be moved to
/// another thread than the [`PipeSender`] of the same end. `Send` and `Sync`.
///
/// [`close`](PipeReceiver::close) (or dropping it) ends the receiving direction: the
/// peer's sends fail with `Err(Closed)` (what was sent and not received is dropped)
/// — a socket's `shutdown(SHUT_RD)`. The end itself is closed when both halves are
/// closed or dropped.
///
/// A receiver has no send methods:
///
/// ```compile_fail
/// let (a, _b) = multiproc::Pipe::new(4096).unwrap();
/// let (_tx, mut rx) = a.split();
/// let _ = rx.send_bytes(b"x"); // error: no method `send_bytes` on `PipeReceiver`
/// ```
pub struct PipeReceiver {
    shared: Arc<EndShared>,
    /// `Some` once the end was claimed in this process, if it can receive.
    rx: Option<Rx>,
    /// [`fork_generation`] when this half got its cursor; 0 = not yet.
    generation: u64,
    probe: Duration,
    max_message: u64,
    /// `close` was called on this half (or on its [`Pipe`]).
    closed: bool,
    scratch: Vec<u8>,
}

/// Writes what the two halves of an end share (each over its own cursor field, half
/// index and cursor builder): `Debug`, `Drop`, `name`, `end`, `is_closed`,
/// `is_broken`, `close`, claiming the end on first use, and what a call works with.
macro_rules! half_surface {
    (
        $ty:ident, $cur:ident: $cur_ty:ty, $half:ident, $build:ident,
        $can:ident ($verb:literal), $ring:ident, $other:literal
    ) => {
        impl Drop for $ty {
            fn drop(&mut self) {
                self.close();
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &self.shared.name())
                    .field("end", &self.shared.end)
                    .field("closed", &self.closed)
                    .finish()
            }
        }

        impl $ty {
            /// The pipe's name ("" for an anonymous pipe).
            pub fn name(&self) -> &str {
                self.shared.name()
            }

            /// Which end this half belongs to.
            pub fn end(&self) -> PipeEnd {
                self.shared.end
            }

            /// True once [`close`](Self::close) was called on this half or on its
            /// [`Pipe`].
            pub fn is_closed(&self) -> bool {
                self.closed
            }

            /// True once another process truncated the pipe's segment (as
            /// [`Pipe::is_broken`]).
            pub fn is_broken(&self) -> bool {
                self.shared.obj.is_broken()
            }

            #[doc = concat!(
                "Closes this half (see [`", stringify!($ty), "`]); further calls on it fail ",
                "with `Err(Closed)`.\nDropping it closes it too. Idempotent."
            )]
            pub fn close(&mut self) {
                if !self.closed {
                    self.closed = true;
                    self.shared.close_half($half);
                }
            }

            /// Claims the end on first use in this process (from either half; anonymous
            /// ends, fork-inherited handles) and builds this half's cursor.
            #[inline]
            fn ready(&mut self) -> Result<()> {
                if self.closed {
                    return Err(Error::Closed);
                }
                if self.generation != fork_generation() {
                    self.claim()?;
                }
                Ok(())
            }

            /// Claims the end if needed and hands out what a call on this half works
            /// with: the [`Wire`] of its ring and its cursor. `Err(InvalidArgument)`
            /// on the wrong end of a one-way pipe.
            #[inline]
            fn wired(&mut self) -> Result<(Wire<'_>, &mut $cur_ty)> {
                self.ready()?;
                if !self.shared.$can() {
                    return Err(self.shared.wrong_end($other));
                }
                let wire = self.shared.wire(self.shared.$ring());
                let Some(cur) = self.$cur.as_mut() else {
                    unreachable!(concat!(
                        "a claimed pipe end that can ", $verb, " has its cursor: claim builds it"
                    ))
                };
                Ok((wire, cur))
            }

            #[cold]
            fn claim(&mut self) -> Result<()> {
                let taken_over = self.shared.claim()?;
                let mut cur = self.shared.$build(taken_over, self.probe)?;
                if let Some(c) = cur.as_mut() {
                    // The end may have been claimed long ago by the other half: the
                    // peer is checked at the first call, as it would have been by then.
                    c.next_check = Instant::coarse_now();
                }
                self.$cur = cur;
                self.generation = fork_generation();
                Ok(())
            }
        }
    };
}

/// Half indices of [`EndShared::half_closed`].
const SENDING: usize = 0;
const RECEIVING: usize = 1;

/// [`EndShared::claim`] states (low two bits; the rest is the process's
/// [`fork_generation`]).
const CLAIMING: u64 = 1;
const CLAIMED: u64 = 2;
const TAKEN_OVER: u64 = 3;

/// What the two halves of one end share: the segment, the end's claim by this
/// process, and which halves were closed. Lock-free, so that a child forked while
/// another thread was claiming is never stuck behind that thread (fork copies only
/// the calling thread).
struct EndShared {
    obj: Object<RawPipe>,
    end: PipeEnd,
    geo: Geometry,
    duplex: bool,
    /// The pair's handles open in this process (anonymous pipes only).
    local: Option<Arc<LocalEnds>>,
    /// `generation << 2 | state`: the end's claim in the process of [`fork_generation`]
    /// `generation`; 0 = never claimed.
    ///
    /// | state        | meaning                                                  |
    /// |--------------|----------------------------------------------------------|
    /// | `CLAIMING`   | a thread of that process is claiming the role            |
    /// | `CLAIMED`    | the role is held; it was free or provisional             |
    /// | `TAKEN_OVER` | the role is held; it was taken over from a dead process |
    ///
    /// A `CLAIMING` of an older generation is a claim cut off by `fork`: a thread of
    /// the parent that the child does not have. The child claims over it.
    claim: AtomicU64,
    /// `close` was called on the sending / receiving half.
    half_closed: [AtomicBool; 2],
    /// The end's handle was closed in this process (once: it counts in `local`).
    closed: AtomicBool,
}

/// What a call that may wait on one ring of an end works with, borrowed from the
/// end's [`EndShared`].
struct Wire<'a> {
    name: &'a str,
    raw: &'a RawPipe,
    /// Waits' probes also check for truncation: nobody wakes a lost page.
    seg: &'a segment::Segment,
    ring: &'a crate::raw::RawSpsc,
    peer: usize,
    duplex: bool,
    local: Option<&'a LocalEnds>,
}

impl<'a> Wire<'a> {
    /// The peer end as a waiting ring sees it (gone, or its holder to watch).
    fn peer_end(&self) -> PeerEnd<'a> {
        PeerEnd {
            raw: self.raw,
            peer: self.peer,
            local: self.local,
            seg: self.seg,
        }
    }
}

impl EndShared {
    fn name(&self) -> &str {
        self.obj.name()
    }

    /// The [`Wire`] of ring `ring_i` of this end.
    fn wire(&self, ring_i: usize) -> Wire<'_> {
        let raw = self.obj.raw();
        Wire {
            name: self.obj.name(),
            raw,
            seg: self.obj.segment(),
            ring: &raw.rings[ring_i],
            peer: self.peer(),
            duplex: self.duplex,
            local: self.local.as_deref(),
        }
    }

    /// A call in the direction this end of a one-way pipe does not have; `this` is
    /// the direction it has ("sending", "receiving").
    fn wrong_end(&self, this: &str) -> Error {
        Error::invalid(format!(
            "pipe '{}': this is the {this} end of a one-way pipe",
            self.name()
        ))
    }

    fn can_send(&self) -> bool {
        self.duplex || self.end == PipeEnd::A
    }

    fn can_recv(&self) -> bool {
        self.duplex || self.end == PipeEnd::B
    }

    fn send_ring(&self) -> usize {
        self.end.index()
    }

    fn recv_ring(&self) -> usize {
        if self.duplex {
            1 - self.end.index()
        } else {
            0
        }
    }

    fn peer(&self) -> usize {
        1 - self.end.index()
    }

    fn memory(&self, ring: usize) -> RegionMemory {
        let bytes = self.geo.bytes();
        // SAFETY: the trailing region holds one ring of `bytes` per direction (checked
        // at create/open), lives as long as `self.obj`, and is only accessed through
        // raw copies.
        unsafe { RegionMemory::new(self.obj.trailing().add(ring * bytes), bytes) }
    }

    fn corrupt(&self, c: RingCorrupt) -> Error {
        Error::corrupt(self.name(), c.detail)
    }

    /// The [`fork_generation`] of the process that holds the end through these
    /// handles; 0 if none ever did.
    fn claimed_generation(&self) -> u64 {
        let c = self.claim.load(Ordering::SeqCst);
        if c & 3 >= CLAIMED {
            c >> 2
        } else {
            0
        }
    }

    /// Claims the end for this process unless it holds it already (from either
    /// half); `Ok(true)` if the claim took it over from a process that died.
    #[cold]
    fn claim(&self) -> Result<bool> {
        let generation = fork_generation();
        loop {
            let cur = self.claim.load(Ordering::Acquire);
            if cur >> 2 == generation {
                match cur & 3 {
                    CLAIMED => return Ok(false),
                    TAKEN_OVER => return Ok(true),
                    // The other half is claiming right now: a CAS and at most a
                    // `/proc` read away.
                    _ => {
                        std::thread::yield_now();
                        continue;
                    }
                }
            }
            let mine = generation << 2 | CLAIMING;
            if self
                .claim
                .compare_exchange(cur, mine, Ordering::Acquire, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let r = match self.obj.raw().ends[self.end.index()].claim(current_process(), true) {
                Ok(Claimed::Fresh) => Ok(false),
                Ok(Claimed::TakenOver(_)) => Ok(true),
                Err(ClaimError::Busy(holder)) => Err(Error::Busy {
                    name: self.name().into(),
                    holder: holder.tid,
                }),
                Err(ClaimError::Dead(_) | ClaimError::Closed) => Err(Error::Closed),
            };
            let Ok(taken_over) = r else {
                self.claim.store(cur, Ordering::Release);
                return r;
            };
            let state = if taken_over { TAKEN_OVER } else { CLAIMED };
            // SeqCst with `close_half`'s: a half closed before this store is seen
            // below, one closed after sees the claim and closes its direction itself.
            self.claim.store(generation << 2 | state, Ordering::SeqCst);
            for half in [SENDING, RECEIVING] {
                if self.half_closed[half].load(Ordering::SeqCst) {
                    self.close_direction(half);
                }
            }
            return Ok(taken_over);
        }
    }

    /// Lets the end go again after a claim whose cursors could not be built, as a
    /// process that dies there would.
    #[cold]
    fn unclaim(&self) {
        self.obj.raw().ends[self.end.index()].release(current_process());
        self.claim.store(0, Ordering::SeqCst);
    }

    /// The sending cursor at the ring's current position (`None` for the receiving
    /// end of a one-way pipe).
    fn sender_cursor(&self, taken_over: bool, probe: Duration) -> Result<Option<Tx>> {
        if !self.can_send() {
            return Ok(None);
        }
        let raw = self.obj.raw();
        // Published by the creator's READY store, which `open` acquired.
        let nonce = raw.nonce.load(Ordering::Relaxed);
        let ring = &raw.rings[self.send_ring()];
        let mem = self.memory(self.send_ring());
        let cur = if taken_over {
            ring.producer_resuming(self.geo, mem)
        } else {
            ring.producer(self.geo, mem)
        };
        match cur {
            Ok(cur) if cur.position() % 8 != 0 => Err(self.misaligned()),
            Ok(cur) => Ok(Some(Tx {
                cur,
                nonce,
                // A message the previous holder was streaming ends here.
                need_abort: taken_over,
                peer_gone: false,
                next_check: Instant::coarse_now().add(probe),
            })),
            Err(c) => Err(self.corrupt(c)),
        }
    }

    /// The receiving cursor at the ring's current position (`None` for the sending
    /// end of a one-way pipe).
    fn receiver_cursor(&self, taken_over: bool, probe: Duration) -> Result<Option<Rx>> {
        if !self.can_recv() {
            return Ok(None);
        }
        let raw = self.obj.raw();
        let nonce = raw.nonce.load(Ordering::Relaxed);
        let ring = &raw.rings[self.recv_ring()];
        match ring.consumer(self.geo, self.memory(self.recv_ring())) {
            Ok(cur) if cur.position() % 8 != 0 => Err(self.misaligned()),
            Ok(mut cur) => {
                // Receives spin on the stamp themselves, then let the ring sleep.
                cur.set_spin(false);
                Ok(Some(Rx {
                    cur,
                    nonce,
                    msg: None,
                    partial: Vec::new(),
                    eof: false,
                    resync: taken_over,
                    next_check: Instant::coarse_now().add(probe),
                }))
            }
            Err(c) => Err(self.corrupt(c)),
        }
    }

    fn misaligned(&self) -> Error {
        Error::corrupt(self.name(), "a pipe position is not 8-aligned")
    }

    /// Ends one direction of this end, if this process holds it: the sending one
    /// (the peer's receives drain, then end) or the receiving one (the peer's sends
    /// fail).
    fn close_direction(&self, half: usize) {
        let raw = self.obj.raw();
        if half == SENDING && self.can_send() {
            raw.rings[self.send_ring()].close(PRODUCER_CLOSED);
        } else if half == RECEIVING && self.can_recv() {
            raw.rings[self.recv_ring()].close(CONSUMER_CLOSED);
        }
    }

    /// `close` on one half: its direction ends, and the end once both halves closed.
    fn close_half(&self, half: usize) {
        self.half_closed[half].store(true, Ordering::SeqCst);
        if self.half_closed[1 - half].load(Ordering::SeqCst) {
            self.close_end();
        } else if self.claimed_generation() == fork_generation() {
            self.close_direction(half);
        }
    }

    /// Closes the end's handle in this process: the end for good if this process
    /// holds it (or if it is an anonymous end nobody can hold yet). Once.
    fn close_end(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let generation = self.claimed_generation();
        if let Some(local) = &self.local {
            local.open[self.end.index()].fetch_sub(1, Ordering::Relaxed);
            if generation == 0 && local.unshared() {
                // Never used, and no other process can hold a copy: this handle was
                // the end's only one, so the end is closed for good.
                close_end(self.obj.raw(), self.end.index(), self.duplex);
                return;
            }
        }
        if generation == 0 || generation != fork_generation() {
            return;
        }
        close_end(self.obj.raw(), self.end.index(), self.duplex);
    }
}

fn geometry(capacity: usize) -> Result<Geometry> {
    if capacity == 0 {
        return Err(Error::invalid("a pipe needs a capacity of at least 1 byte"));
    }
    capacity
        .max(MIN_PIPE_CAPACITY)
        .checked_next_power_of_two()
        .and_then(|c| Geometry::new(c as u64, 1))
        .ok_or_else(|| {
            Error::invalid(format!(
                "a pipe capacity of {capacity} bytes exceeds the limit of {MAX_RING_BYTES} bytes"
            ))
        })
}

fn spec(geo: Geometry, duplex: bool) -> ObjectSpec {
    ObjectSpec {
        kind: ObjectKind::Pipe,
        ty: TypeInfo::NONE,
        params: [geo.capacity(), u64::from(duplex), 0, 0],
        trailing: geo.bytes() * if duplex { 2 } else { 1 },
    }
}

/// True when the end `peer` is gone for good: closed, or its process exited (every
/// thread of it) while no handle of that end is open in this process — such a handle
/// could still take the end over, as a Python process holding a copy of a pipe's fd
/// keeps the pipe open. Reads `/proc` when the end is held.
fn peer_gone(raw: &RawPipe, peer: usize, local: Option<&LocalEnds>) -> bool {
    match raw.ends[peer].status() {
        RoleStatus::Closed => true,
        RoleStatus::Dead(_) => !local.is_some_and(|l| l.holds(peer)),
        RoleStatus::Free | RoleStatus::Held { .. } => false,
    }
}

/// A waiting end's view of its peer `peer` for the ring's wait (`PeerProbe`): gone
/// as [`peer_gone`] judges it, or the segment broken; the process holding the end is
/// watched meanwhile, so its exit ends a long wait at once.
struct PeerEnd<'a> {
    raw: &'a RawPipe,
    peer: usize,
    local: Option<&'a LocalEnds>,
    seg: &'a segment::Segment,
}

impl PeerProbe for PeerEnd<'_> {
    fn gone(&mut self) -> bool {
        peer_gone(self.raw, self.peer, self.local) || self.seg.is_broken()
    }
    fn task(&mut self) -> Option<Task> {
        let holder = self.raw.ends[self.peer].holder()?;
        Some(Task::Process(holder.tid))
    }
}

/// Closes end `end` of the pipe: its role for good, then its rings (the peer's sends
/// fail, the peer's receives drain what it sent, then end). The holder's `close`,
/// and the peer's once it found the holder gone (so that nobody takes a dead end over
/// after its peer reported the connection ended). Idempotent.
fn close_end(raw: &RawPipe, end: usize, duplex: bool) {
    // Refuse the peer's sends before announcing EOF: a peer that saw our EOF then
    // also sees that its sends fail (each close is a Release, each check an Acquire).
    raw.ends[end].close();
    let (can_send, can_recv) = (duplex || end == 0, duplex || end == 1);
    if can_recv {
        raw.rings[if duplex { 1 - end } else { 0 }].close(CONSUMER_CLOSED);
    }
    if can_send {
        raw.rings[end].close(PRODUCER_CLOSED);
    }
}

impl Pipe {
    /// Longest message a pipe carries: 2^48 - 1 bytes (256 TiB).
    pub const MAX_MESSAGE_LEN: u64 = MAX_MESSAGE_LEN;
    /// Smallest ring capacity a pipe gets (smaller requests are rounded up to it).
    pub const MIN_CAPACITY: usize = MIN_PIPE_CAPACITY;

    /// An anonymous duplex pipe `(a, b)` with `capacity_bytes` of ring in each
    /// direction (rounded up to a power of two, at least
    /// [`MIN_CAPACITY`](Pipe::MIN_CAPACITY)), shared with children forked after this
    /// call.
    pub fn new(capacity_bytes: usize) -> Result<(Pipe, Pipe)> {
        Pipe::anonymous(capacity_bytes, true)
    }

    /// An anonymous one-way pipe, Python's `Pipe(duplex=False)`: returns
    /// `(receiver, sender)`, in Python's order.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// let (mut r, mut w) = multiproc::Pipe::one_way(4096)?;
    /// w.send_bytes(b"one way")?;
    /// assert_eq!(r.recv_bytes()?, b"one way");
    /// assert!(r.send_bytes(b"no").is_err());
    /// # Ok(()) }
    /// ```
    pub fn one_way(capacity_bytes: usize) -> Result<(Pipe, Pipe)> {
        let (a, b) = Pipe::anonymous(capacity_bytes, false)?;
        Ok((b, a))
    }

    fn anonymous(capacity_bytes: usize, duplex: bool) -> Result<(Pipe, Pipe)> {
        let geo = geometry(capacity_bytes)?;
        let creator = current_process();
        let obj = Object::<RawPipe>::anonymous(spec(geo, duplex), |raw, _| {
            raw.nonce.store(fresh_nonce(), Ordering::Relaxed);
            for end in &raw.ends {
                end.hold_provisionally(creator);
            }
            Ok(())
        })?;
        let local = Arc::new(LocalEnds {
            generation: fork_generation(),
            forks: forks_so_far(),
            open: [AtomicU32::new(1), AtomicU32::new(1)],
        });
        let a = Pipe::from_obj(obj.clone(), PipeEnd::A, geo, duplex, Some(local.clone()));
        let b = Pipe::from_obj(obj, PipeEnd::B, geo, duplex, Some(local));
        Ok((a, b))
    }

    /// [`create`](Pipe::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, capacity_bytes: usize, opts: &Options) -> Result<Pipe> {
        Pipe::create_named(name, capacity_bytes, true, opts)
    }

    /// Creates the named one-way pipe `name`: the returned end A only sends, the end
    /// B that [`open`](Pipe::open) returns only receives.
    pub fn create_one_way(name: &str, capacity_bytes: usize) -> Result<Pipe> {
        Pipe::create_named(name, capacity_bytes, false, &Options::default())
    }

    fn create_named(
        name: &str,
        capacity_bytes: usize,
        duplex: bool,
        opts: &Options,
    ) -> Result<Pipe> {
        let geo = geometry(capacity_bytes)?;
        let obj = Object::create(name, opts, spec(geo, duplex), |raw: &RawPipe, _| {
            raw.nonce.store(fresh_nonce(), Ordering::Relaxed);
            Ok(())
        })?;
        let mut p = Pipe::from_obj(obj, PipeEnd::A, geo, duplex, None);
        p.claim()?;
        Ok(p)
    }

    /// [`open`](Pipe::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Pipe> {
        Pipe::open_checked(name, opts, |_, _| Ok(()))
    }

    /// [`open_with`](Pipe::open_with), with `check` judging the shape (geometry,
    /// duplex) before end B is claimed.
    fn open_checked(
        name: &str,
        opts: &Options,
        check: impl FnOnce(Geometry, bool) -> Result<()>,
    ) -> Result<Pipe> {
        let mut shape = None;
        let obj = Object::open(name, opts, ObjectKind::Pipe, TypeInfo::NONE, |img| {
            let [cap, duplex, _, _] = img.params;
            let geo = Geometry::new(cap, 1)
                .filter(|_| cap >= MIN_PIPE_CAPACITY as u64 && duplex <= 1)
                .ok_or_else(|| {
                    Error::corrupt(
                        name,
                        format!("impossible pipe shape ({cap} bytes, duplex {duplex})"),
                    )
                })?;
            shape = Some((geo, duplex == 1));
            Ok(geo.bytes() * if duplex == 1 { 2 } else { 1 })
        })?;
        let (geo, duplex) = shape.ok_or_else(|| Error::corrupt(name, "no shape"))?;
        check(geo, duplex)?;
        let mut p = Pipe::from_obj(obj, PipeEnd::B, geo, duplex, None);
        p.claim()?;
        Ok(p)
    }

    /// [`open_or_create`](Pipe::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, capacity_bytes: usize, opts: &Options) -> Result<Pipe> {
        let want = geometry(capacity_bytes)?.capacity();
        let direction = |duplex: bool| if duplex { "duplex" } else { "one-way" };
        segment::open_or_create(
            || Pipe::create_with(name, capacity_bytes, opts),
            || {
                Pipe::open_checked(name, opts, |geo, duplex| {
                    segment::same_shape(
                        name,
                        ObjectKind::Pipe,
                        &[
                            segment::param("capacity", geo.capacity(), want),
                            segment::param("direction", direction(duplex), direction(true)),
                        ],
                    )
                })
            },
        )
    }

    fn from_obj(
        obj: Object<RawPipe>,
        end: PipeEnd,
        geo: Geometry,
        duplex: bool,
        local: Option<Arc<LocalEnds>>,
    ) -> Pipe {
        let shared = Arc::new(EndShared {
            obj,
            end,
            geo,
            duplex,
            local,
            claim: AtomicU64::new(0),
            half_closed: [AtomicBool::new(false), AtomicBool::new(false)],
            closed: AtomicBool::new(false),
        });
        Pipe {
            tx: PipeSender {
                shared: shared.clone(),
                tx: None,
                generation: 0,
                probe: DEFAULT_PROBE,
                closed: false,
                scratch: Vec::new(),
            },
            rx: PipeReceiver {
                shared,
                rx: None,
                generation: 0,
                probe: DEFAULT_PROBE,
                max_message: MAX_MESSAGE_LEN,
                closed: false,
                scratch: Vec::new(),
            },
        }
    }

    /// Splits this end into its sending and receiving halves, which may be used from
    /// different threads at once: a thread blocked in
    /// [`recv_bytes`](PipeReceiver::recv_bytes) does not hold up another thread's
    /// [`send_bytes`](PipeSender::send_bytes). The halves share the end: it stays
    /// claimed by this process until both are closed or dropped (see [`PipeSender`]
    /// and [`PipeReceiver`] for what closing one half means). Settings made with
    /// [`with_probe_interval`](Pipe::with_probe_interval) and
    /// [`with_max_message_len`](Pipe::with_max_message_len) carry over.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// use multiproc::Pipe;
    /// let (a, mut b) = Pipe::new(4096)?;
    /// let (mut tx, mut rx) = a.split();
    /// // One thread waits for the reply while this one sends the request.
    /// let waiter = std::thread::spawn(move || rx.recv_bytes());
    /// tx.send_bytes(b"ping")?;
    /// assert_eq!(b.recv_bytes()?, b"ping");
    /// b.send_bytes(b"pong")?;
    /// assert_eq!(waiter.join().unwrap()?, b"pong");
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> (PipeSender, PipeReceiver) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so each half is moved out
        // exactly once (Pipe's own Drop, which would close them, does not run).
        unsafe { (core::ptr::read(&this.tx), core::ptr::read(&this.rx)) }
    }

    /// How often a waiting call checks that the peer process is alive: the bound on
    /// how long a dead peer can go unnoticed (default 10 ms).
    pub fn with_probe_interval(mut self, probe: Duration) -> Pipe {
        let probe = probe.max(Duration::from_micros(100));
        self.tx.probe = probe;
        self.rx.probe = probe;
        self
    }

    /// Refuses (and skips) incoming messages longer than `max` bytes with
    /// [`Error::TooLarge`] instead of allocating for them (default: no limit).
    pub fn with_max_message_len(mut self, max: usize) -> Pipe {
        self.rx.max_message = (max as u64).min(MAX_MESSAGE_LEN);
        self
    }

    /// Which end this handle is.
    pub fn end(&self) -> PipeEnd {
        self.tx.shared.end
    }

    /// True for a duplex pipe (both ends send and receive).
    pub fn is_duplex(&self) -> bool {
        self.tx.shared.duplex
    }

    /// Ring bytes in each direction. Messages up to `capacity() - 16` bytes are
    /// written whole; longer ones are streamed.
    pub fn capacity(&self) -> usize {
        self.tx.shared.geo.bytes()
    }

    /// True if this end may send.
    pub fn can_send(&self) -> bool {
        self.tx.shared.can_send()
    }

    /// True if this end may receive.
    pub fn can_recv(&self) -> bool {
        self.tx.shared.can_recv()
    }

    /// True once [`close`](Pipe::close) was called on this handle.
    pub fn is_closed(&self) -> bool {
        self.tx.closed
    }

    /// Claims this end for the calling process and builds its cursors (`create` and
    /// `open` do it at once, so that a busy or closed end is refused there).
    #[cold]
    fn claim(&mut self) -> Result<()> {
        let shared = self.tx.shared.clone();
        let taken_over = shared.claim()?;
        let built = shared
            .sender_cursor(taken_over, self.tx.probe)
            .and_then(|tx| Ok((tx, shared.receiver_cursor(taken_over, self.rx.probe)?)));
        match built {
            Ok((tx, rx)) => {
                let generation = fork_generation();
                (self.tx.tx, self.tx.generation) = (tx, generation);
                (self.rx.rx, self.rx.generation) = (rx, generation);
                Ok(())
            }
            Err(e) => {
                shared.unclaim();
                Err(e)
            }
        }
    }

    /// Sends one message of any length, waiting for room as needed.
    #[inline]
    pub fn send_bytes(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.send_bytes(msg)
    }

    /// Sends `msg`, waiting at most `timeout`. On `Err(Timeout)` the message is not
    /// delivered — also when it was being streamed: the receiver drops what it got.
    pub fn send_bytes_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.tx.send_bytes_timeout(msg, timeout)
    }

    /// Sends `msg` only if it fits in the ring whole right now: `Err(Full)` if there
    /// is no room yet, `Err(TooLarge)` if it is longer than `capacity() - 16` bytes
    /// (send those with [`send_bytes`](Pipe::send_bytes)).
    #[inline]
    pub fn try_send_bytes(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.try_send_bytes(msg)
    }

    /// Sends `value` encoded with postcard.
    pub fn send<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.tx.send::<T>(value)
    }

    /// [`send`](Pipe::send), waiting at most `timeout`.
    pub fn send_timeout<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<()> {
        self.tx.send_timeout::<T>(value, timeout)
    }

    /// Receives the next message, waiting for it.
    #[inline]
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.rx.recv_bytes()
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.rx.recv_bytes_timeout(timeout)
    }

    /// Receives the next message if it has arrived (`Err(Empty)` otherwise).
    pub fn try_recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.rx.try_recv_bytes()
    }

    /// Receives the next message into `buf` (replacing its contents), waiting for it;
    /// returns its length. Allocates only if `buf`'s capacity is too small.
    #[inline]
    pub fn recv_bytes_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.rx.recv_bytes_into(buf)
    }

    /// [`recv_bytes_into`](Pipe::recv_bytes_into), waiting at most `timeout`.
    pub fn recv_bytes_into_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize> {
        self.rx.recv_bytes_into_timeout(buf, timeout)
    }

    /// [`recv_bytes_into`](Pipe::recv_bytes_into) without waiting: `Err(Empty)` when
    /// no complete message is there yet.
    #[inline]
    pub fn try_recv_bytes_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.rx.try_recv_bytes_into(buf)
    }

    /// Waits up to `timeout` (`None`: forever) until a message is available — or the
    /// peer is gone, so that [`recv_bytes`](Pipe::recv_bytes) returns at once either
    /// way (Python's `poll`). `Ok(false)` on timeout; `poll(Some(Duration::ZERO))`
    /// only looks.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        self.rx.poll(timeout)
    }

    /// Receives a message and decodes it as `T` (postcard). A message that is not a
    /// valid `T` is an error (`Err(Corrupt)`), never a panic.
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        self.rx.recv::<T>()
    }

    /// [`recv`](Pipe::recv), waiting at most `timeout`.
    pub fn recv_timeout<T: serde::de::DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        self.rx.recv_timeout::<T>(timeout)
    }

    /// [`recv`](Pipe::recv) without waiting: `Err(Empty)` when no message is there.
    pub fn try_recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        self.rx.try_recv::<T>()
    }

    /// Closes this end: the peer's `recv` drains what was sent, then returns
    /// `Err(Closed)`; its `send` fails with `Err(Closed)`. Further calls on this handle
    /// fail with `Err(Closed)`. Dropping the handle closes it too. On an anonymous
    /// handle this process never used, only the handle is closed once the pair may
    /// have been copied by `fork` (another process may use the end); before that, it
    /// was the end's only handle, and the end closes.
    pub fn close(&mut self) {
        if self.tx.closed && self.rx.closed {
            return;
        }
        self.tx.closed = true;
        self.rx.closed = true;
        let shared = &self.tx.shared;
        for half in [SENDING, RECEIVING] {
            shared.half_closed[half].store(true, Ordering::SeqCst);
        }
        shared.close_end();
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.close();
    }
}

half_surface!(
    PipeSender, tx: Tx, SENDING, sender_cursor, can_send("send"), send_ring, "receiving"
);

impl PipeSender {
    /// True if this end may send (false for the wrong end of a one-way pipe, whose
    /// calls fail with `Err(InvalidArgument)`).
    pub fn can_send(&self) -> bool {
        self.shared.can_send()
    }

    /// Sends one message of any length, waiting for room as needed.
    #[inline]
    pub fn send_bytes(&mut self, msg: &[u8]) -> Result<()> {
        if self.send_fast(msg) {
            return self.shared.obj.intact(Ok(()));
        }
        let r = self.send_until(msg, None, true);
        self.shared.obj.intact(r)
    }

    /// Sends `msg`, waiting at most `timeout`. On `Err(Timeout)` the message is not
    /// delivered — also when it was being streamed: the receiver drops what it got.
    pub fn send_bytes_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        if self.send_fast(msg) {
            return self.shared.obj.intact(Ok(()));
        }
        let r = self.send_until(msg, deadline_after(timeout), true);
        self.shared.obj.intact(r)
    }

    /// Sends `msg` only if it fits in the ring whole right now: `Err(Full)` if there
    /// is no room yet, `Err(TooLarge)` if it is longer than `capacity() - 16` bytes
    /// (send those with [`send_bytes`](PipeSender::send_bytes)).
    #[inline]
    pub fn try_send_bytes(&mut self, msg: &[u8]) -> Result<()> {
        if self.send_fast(msg) {
            return self.shared.obj.intact(Ok(()));
        }
        let r = self.send_until(msg, None, false);
        self.shared.obj.intact(r)
    }

    /// The inlined path of every send: a claimed, open end, a live peer and room for
    /// the whole message according to the cached `head`.
    #[inline(always)]
    fn send_fast(&mut self, msg: &[u8]) -> bool {
        if self.closed || self.generation != fork_generation() {
            return false;
        }
        let ring_i = self.shared.send_ring();
        let Some(tx) = self.tx.as_mut() else {
            return false;
        };
        let ring = &self.shared.obj.raw().rings[ring_i];
        let len = msg.len() as u64;
        if tx.need_abort
            || tx.peer_gone
            || frame_len(len) > tx.cur.free()
            || ring.closed() != 0
            || Instant::coarse_now() >= tx.next_check
        {
            return false;
        }
        tx.frame(WHOLE, len, msg);
        tx.cur.publish(ring);
        true
    }

    #[inline(never)]
    fn send_until(&mut self, msg: &[u8], deadline: Deadline, wait: bool) -> Result<()> {
        let probe = self.probe;
        let (w, tx) = self.wired()?;
        let len = msg.len() as u64;
        if len > MAX_MESSAGE_LEN {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: MAX_MESSAGE_LEN as usize,
            });
        }
        let now = Instant::coarse_now();
        if now >= tx.next_check && !tx.peer_gone {
            tx.next_check = now.add(probe);
            if peer_gone(w.raw, w.peer, w.local) {
                tx.peer_gone = true;
                close_end(w.raw, w.peer, w.duplex);
            }
        }
        if tx.peer_gone || w.ring.closed() != 0 {
            return Err(Error::Closed);
        }
        let cap = tx.cur.geometry().capacity();
        let corrupt = |c: RingCorrupt| Error::corrupt(w.name, c.detail);
        // Waits for `want` free bytes; the error to return otherwise.
        let room = |tx: &mut Tx, want: u64| -> core::result::Result<(), Error> {
            match tx.cur.free_for(w.ring, want) {
                Ok(f) if f >= want => return Ok(()),
                Ok(_) => {}
                Err(c) => return Err(corrupt(c)),
            }
            if !wait {
                return Err(Error::Full);
            }
            match tx
                .cur
                .wait_free(w.ring, want, deadline, probe, w.peer_end())
            {
                Ok(_) => Ok(()),
                Err(Stop::TimedOut) => Err(Error::Timeout),
                Err(s @ (Stop::Closed | Stop::Gone)) => {
                    if s == Stop::Gone {
                        close_end(w.raw, w.peer, w.duplex);
                    }
                    tx.peer_gone = true;
                    Err(Error::Closed)
                }
                Err(Stop::Corrupt(c)) => Err(corrupt(c)),
            }
        };
        if tx.need_abort {
            room(tx, OVERHEAD)?;
            tx.frame(ABORT, 0, &[]);
            tx.cur.publish(w.ring);
            tx.need_abort = false;
        }
        if frame_len(len) <= cap {
            room(tx, frame_len(len))?;
            tx.frame(WHOLE, len, msg);
            tx.cur.publish(w.ring);
            return Ok(());
        }
        if !wait {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: (cap - OVERHEAD) as usize,
            });
        }
        // Streamed: START, then PIECEs of at most a quarter ring each, so that the
        // receiver copies one piece out while we copy the next in.
        let piece = (cap / 4).max(4 * OVERHEAD);
        let mut sent = 0u64;
        let mut started = false;
        while sent < len {
            let left = len - sent;
            let start = if started { 0 } else { OVERHEAD };
            if let Err(e) = room(tx, start + frame_len(left).min(piece)) {
                if started && matches!(e, Error::Timeout) {
                    tx.need_abort = true;
                }
                return Err(e);
            }
            if !started {
                tx.frame(START, len, &[]);
                started = true;
            }
            let fits = (tx.cur.free() - OVERHEAD) & !7;
            let n = left.min(fits).min(piece - OVERHEAD);
            tx.frame(PIECE, n, &msg[sent as usize..(sent + n) as usize]);
            tx.cur.publish(w.ring);
            sent += n;
        }
        Ok(())
    }

    /// Sends `value` encoded with postcard.
    pub fn send<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.send_encoded(value, None)
    }

    /// [`send`](PipeSender::send), waiting at most `timeout`.
    pub fn send_timeout<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<()> {
        self.send_encoded(value, deadline_after(timeout))
    }

    fn send_encoded<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
        deadline: Deadline,
    ) -> Result<()> {
        let mut buf = core::mem::take(&mut self.scratch);
        buf.clear();
        let r = match postcard::to_extend(value, buf) {
            Ok(b) => {
                buf = b;
                self.send_until(&buf, deadline, true)
            }
            Err(e) => {
                buf = Vec::new();
                Err(Error::invalid(format!(
                    "cannot encode a {} for a pipe: {e}",
                    core::any::type_name::<T>()
                )))
            }
        };
        self.scratch = buf;
        r
    }
}

half_surface!(
    PipeReceiver, rx: Rx, RECEIVING, receiver_cursor, can_recv("receive"), recv_ring, "sending"
);

impl PipeReceiver {
    /// True if this end may recv (false for the wrong end of a one-way pipe, whose
    /// calls fail with `Err(InvalidArgument)`).
    pub fn can_recv(&self) -> bool {
        self.shared.can_recv()
    }

    /// Refuses (and skips) incoming messages longer than `max` bytes (as
    /// [`Pipe::with_max_message_len`]).
    pub fn with_max_message_len(mut self, max: usize) -> PipeReceiver {
        self.max_message = (max as u64).min(MAX_MESSAGE_LEN);
        self
    }

    /// Receives the next message, waiting for it.
    #[inline]
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.recv_bytes_into(&mut v)?;
        Ok(v)
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.recv_bytes_into_timeout(&mut v, timeout)?;
        Ok(v)
    }

    /// Receives the next message if it has arrived (`Err(Empty)` otherwise).
    pub fn try_recv_bytes(&mut self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.try_recv_bytes_into(&mut v)?;
        Ok(v)
    }

    /// Receives the next message into `buf` (replacing its contents), waiting for it;
    /// returns its length. Allocates only if `buf`'s capacity is too small.
    #[inline]
    pub fn recv_bytes_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let r = match self.recv_fast(buf) {
            Fast::Got(n) => Ok(n),
            _ => self.recv_until(buf, None, true),
        };
        self.shared.obj.intact(r)
    }

    /// [`recv_bytes_into`](PipeReceiver::recv_bytes_into), waiting at most `timeout`.
    pub fn recv_bytes_into_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize> {
        let r = match self.recv_fast(buf) {
            Fast::Got(n) => Ok(n),
            _ => self.recv_until(buf, deadline_after(timeout), true),
        };
        self.shared.obj.intact(r)
    }

    /// [`recv_bytes_into`](PipeReceiver::recv_bytes_into) without waiting: `Err(Empty)` when
    /// no complete message is there yet.
    #[inline]
    pub fn try_recv_bytes_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let r = match self.recv_fast(buf) {
            Fast::Got(n) => Ok(n),
            Fast::Nothing => Err(Error::Empty),
            Fast::Slow => self.recv_until(buf, None, false),
        };
        self.shared.obj.intact(r)
    }

    /// The inlined path of every receive: a whole message stamped at the read
    /// position of a claimed, open end (or, cheaply, nothing there).
    #[inline(always)]
    fn recv_fast(&mut self, out: &mut Vec<u8>) -> Fast {
        if self.closed || self.generation != fork_generation() {
            return Fast::Slow;
        }
        let (ring_i, max) = (self.shared.recv_ring(), self.max_message);
        let Some(rx) = self.rx.as_mut() else {
            return Fast::Slow;
        };
        if rx.msg.is_some() || rx.eof || rx.resync {
            return Fast::Slow;
        }
        let ring = &self.shared.obj.raw().rings[ring_i];
        let at = rx.cur.position();
        if rx.cur.stamp(at) != Some(at ^ rx.nonce) {
            if ring.closed() & PRODUCER_CLOSED != 0 || Instant::coarse_now() >= rx.next_check {
                return Fast::Slow;
            }
            return Fast::Nothing;
        }
        let Some((WHOLE, len)) = decode(rx.cur.stamp(at.wrapping_add(8)).unwrap_or(0)) else {
            return Fast::Slow;
        };
        out.clear();
        if len > max
            || rx.cur.accept(frame_len(len)).is_err()
            || (out.capacity() < len as usize && out.try_reserve_exact(len as usize).is_err())
        {
            return Fast::Slow;
        }
        rx.cur.skip(OVERHEAD);
        take_into(&mut rx.cur, out, len);
        rx.finish_frame(ring, len);
        Fast::Got(len as usize)
    }

    #[inline(never)]
    fn recv_until(&mut self, out: &mut Vec<u8>, deadline: Deadline, wait: bool) -> Result<usize> {
        out.clear();
        let (probe, max) = (self.probe, self.max_message);
        let (w, rx) = self.wired()?;
        let corrupt = |detail: &str| Error::corrupt(w.name, detail);
        if rx.msg.is_some() {
            core::mem::swap(out, &mut rx.partial);
        }
        loop {
            let frame = match rx.next_frame() {
                Ok(Some(f)) => f,
                Err(detail) => return Err(corrupt(detail)),
                Ok(None) => {
                    // Nothing stamped at the read position (yet).
                    let stop = if rx.eof {
                        Some(Stop::Closed)
                    } else if !wait {
                        let closed = w.ring.closed() & PRODUCER_CLOSED != 0;
                        if rx.stamped() {
                            None
                        } else if closed {
                            Some(Stop::Closed)
                        } else if rx.check_due(probe) && peer_gone(w.raw, w.peer, w.local) {
                            Some(Stop::Gone)
                        } else {
                            Some(Stop::TimedOut)
                        }
                    } else {
                        // Spin on the stamp, then sleep on the ring's `tail`.
                        if spin_until(w.ring.consumer_spin_hint(), || rx.stamped()) {
                            None
                        } else {
                            let r = rx.cur.wait_available(
                                w.ring,
                                OVERHEAD,
                                deadline,
                                probe,
                                w.peer_end(),
                            );
                            match r {
                                Ok(_) if rx.stamped() => None,
                                Ok(_) => {
                                    return Err(corrupt("a published pipe frame has no stamp"))
                                }
                                Err(s) => Some(s),
                            }
                        }
                    };
                    match stop {
                        None => continue,
                        Some(Stop::TimedOut) => {
                            if rx.msg.is_some() {
                                core::mem::swap(out, &mut rx.partial);
                            }
                            return Err(if wait { Error::Timeout } else { Error::Empty });
                        }
                        Some(s @ (Stop::Closed | Stop::Gone)) => {
                            if s == Stop::Gone {
                                // The connection is over for both sides: our sends
                                // fail too, and nobody takes the dead end over.
                                close_end(w.raw, w.peer, w.duplex);
                            }
                            // Frames stamped before the close still count.
                            if rx.stamped() {
                                continue;
                            }
                            // Whatever is left is a message the peer never finished.
                            rx.eof = true;
                            rx.msg = None;
                            out.clear();
                            return Err(Error::Closed);
                        }
                        Some(Stop::Corrupt(c)) => return Err(corrupt(c.detail)),
                    }
                }
            };
            let v = frame.value;
            if rx.resync {
                if frame.kind == PIECE && rx.msg.is_none() {
                    // The rest of a message the previous holder was assembling.
                    rx.cur.skip(v);
                    rx.finish_frame(w.ring, v);
                    continue;
                }
                rx.resync = false;
            }
            match (frame.kind, rx.msg.as_mut()) {
                (WHOLE, None) => {
                    if v > max || out.try_reserve_exact(v as usize).is_err() {
                        rx.cur.skip(v);
                        rx.finish_frame(w.ring, v);
                        return Err(Error::TooLarge {
                            len: v as usize,
                            max: max as usize,
                        });
                    }
                    take_into(&mut rx.cur, out, v);
                    rx.finish_frame(w.ring, v);
                    return Ok(v as usize);
                }
                (START, None) => {
                    let refuse = v > max || out.try_reserve_exact(v as usize).is_err();
                    rx.msg = Some(InFlight {
                        len: v,
                        got: 0,
                        discard: refuse,
                    });
                    rx.finish_frame(w.ring, 0);
                    if refuse {
                        // Its pieces are skipped as they come.
                        return Err(Error::TooLarge {
                            len: v as usize,
                            max: max as usize,
                        });
                    }
                }
                (PIECE, Some(m)) => {
                    if v == 0 || v > m.len - m.got {
                        return Err(corrupt("a pipe message piece overruns its message"));
                    }
                    if m.discard {
                        rx.cur.skip(v);
                    } else if m.len >= STREAMING_COPY {
                        take_into_streaming(&mut rx.cur, out, v);
                    } else {
                        take_into(&mut rx.cur, out, v);
                    }
                    m.got += v;
                    let done = *m;
                    rx.finish_frame(w.ring, v);
                    if done.got == done.len {
                        rx.msg = None;
                        if !done.discard {
                            return Ok(done.len as usize);
                        }
                    }
                }
                (ABORT, _) => {
                    // The sender gave up on the message it was streaming.
                    rx.msg = None;
                    out.clear();
                    rx.finish_frame(w.ring, 0);
                }
                _ => return Err(corrupt("a pipe frame arrived out of order")),
            }
        }
    }

    /// Waits up to `timeout` (`None`: forever) until a message is available — or the
    /// peer is gone, so that [`recv_bytes`](PipeReceiver::recv_bytes) returns at once either
    /// way (Python's `poll`). `Ok(false)` on timeout; `poll(Some(Duration::ZERO))`
    /// only looks.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let r = self.poll_inner(timeout);
        self.shared.obj.intact(r)
    }

    fn poll_inner(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let probe = self.probe;
        let (w, rx) = self.wired()?;
        if rx.eof || rx.stamped() {
            return Ok(true);
        }
        if timeout == Some(Duration::ZERO) {
            if w.ring.closed() & PRODUCER_CLOSED != 0 {
                return Ok(true);
            }
            let gone = peer_gone(w.raw, w.peer, w.local);
            if gone {
                close_end(w.raw, w.peer, w.duplex);
            }
            return Ok(gone);
        }
        if spin_until(w.ring.consumer_spin_hint(), || rx.stamped()) {
            return Ok(true);
        }
        let deadline = timeout.and_then(deadline_after);
        match rx
            .cur
            .wait_available(w.ring, OVERHEAD, deadline, probe, w.peer_end())
        {
            Ok(_) | Err(Stop::Closed) => Ok(true),
            Err(Stop::Gone) => {
                // As in recv: the connection is over, and recv now says so at once.
                close_end(w.raw, w.peer, w.duplex);
                Ok(true)
            }
            Err(Stop::TimedOut) => Ok(false),
            Err(Stop::Corrupt(c)) => Err(Error::corrupt(w.name, c.detail)),
        }
    }

    /// Receives a message and decodes it as `T` (postcard). A message that is not a
    /// valid `T` is an error (`Err(Corrupt)`), never a panic.
    pub fn recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        self.recv_decoded(None, true)
    }

    /// [`recv`](PipeReceiver::recv), waiting at most `timeout`.
    pub fn recv_timeout<T: serde::de::DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        self.recv_decoded(deadline_after(timeout), true)
    }

    /// [`recv`](PipeReceiver::recv) without waiting: `Err(Empty)` when no message is there.
    pub fn try_recv<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        self.recv_decoded(None, false)
    }

    fn recv_decoded<T: serde::de::DeserializeOwned>(
        &mut self,
        deadline: Deadline,
        wait: bool,
    ) -> Result<T> {
        let mut buf = core::mem::take(&mut self.scratch);
        let r = self.recv_until(&mut buf, deadline, wait).and_then(|n| {
            postcard::from_bytes(&buf[..n]).map_err(|e| {
                Error::corrupt(
                    self.shared.name(),
                    format!(
                        "a message of {n} bytes is not a valid {} ({e}): the peer sent another type",
                        core::any::type_name::<T>()
                    ),
                )
            })
        });
        self.scratch = buf;
        r
    }
}

/// Messages at least this long are copied out of the ring with streaming stores:
/// their destination is far larger than the cache.
const STREAMING_COPY: u64 = 8 << 20;

/// As [`take_into`], with streaming stores (see [`STREAMING_COPY`]).
fn take_into_streaming(cur: &mut Consumer<RegionMemory>, out: &mut Vec<u8>, n: u64) {
    // SAFETY: take_uninit_streaming initialises the first bytes it counts, at most
    // as many as it was given.
    unsafe { append_with(out, n, |spare| cur.take_uninit_streaming(spare)) }
}

/// Appends `n` readable bytes of the ring to `out` (whose spare capacity is at least
/// `n`).
#[inline(always)]
fn take_into(cur: &mut Consumer<RegionMemory>, out: &mut Vec<u8>, n: u64) {
    // SAFETY: take_uninit initialises the first bytes it counts, at most as many as
    // it was given.
    unsafe { append_with(out, n, |spare| cur.take_uninit(spare)) }
}

/// Appends up to `n` bytes to `out` with `take`, which fills a prefix of the spare
/// capacity it is given and returns how many bytes that prefix has.
///
/// # Safety
/// `take` initialises the first bytes it returns the count of (no more than it was
/// given).
#[inline(always)]
unsafe fn append_with(
    out: &mut Vec<u8>,
    n: u64,
    take: impl FnOnce(&mut [core::mem::MaybeUninit<u8>]) -> usize,
) {
    let n = n as usize;
    if out.capacity() - out.len() < n {
        out.reserve(n);
    }
    let len = out.len();
    let spare = out.spare_capacity_mut();
    let n = n.min(spare.len());
    let got = take(&mut spare[..n]);
    // SAFETY: `take` initialised the first `got` spare bytes, per the contract.
    unsafe { out.set_len(len + got) };
}

/// A fresh random word for a pipe's stamps (not secret: it only has to differ from
/// whatever bytes a ring held before).
fn fresh_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::sys::clock::Instant::now().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}
