//! `RawQueue`: a bounded, lock-free, crash-consistent MPMC ring of fixed-size slots.
//!
//! One ring algorithm serves every MPMC queue of the crate: `Queue<T>` (slots of
//! `size_of::<T>()` bytes), `JoinableQueue<T>` and `ByteQueue` (slots of a length word
//! plus `max_message_len` bytes). The ring is a [`RawQueue`] header (head, tail,
//! the two sides' wake-up words, closed flag — each on its own 128-byte line) plus a region of
//! `capacity` slots, viewed together through a [`Ring`].
//!
//! The ring holds a power of two of slots; a queue may ask for fewer (Python's
//! `Queue(6)` holds 6): its *limit* then bounds the messages in it (see
//! [`Ring::with_limit`] and "Limit" below).
//!
//! ## Algorithm
//! Vyukov's bounded MPMC ring, except that a claim is made on the *slot* and records
//! its owner, so that a claimant that dies never wedges the ring:
//!
//! * position `p` lives in slot `p % capacity`, at lap `p / capacity`;
//! * a producer at `tail = p` CASes the slot `FREE(lap)` → `WRITING(lap, me)`,
//!   advances `tail` (anyone may help), copies the message in, and stores
//!   `READY(lap)`;
//! * a consumer at `head = p` CASes `READY(lap)` → `READING(lap, me)`, advances
//!   `head` (anyone may help), copies the message out, and stores `FREE(lap + 1)`;
//! * a `WRITING` slot whose owner died is a *tombstone*: the consumer that reaches it
//!   frees it (`FREE(lap + 1)`) and moves on — that `put` never returned, so nothing
//!   is lost;
//! * a `READING` slot whose owner died still holds its message (the dead consumer
//!   only read it): a consumer takes the claim over and delivers the message again.
//!
//! Every transition moves a slot forward in the order `FREE(l) < WRITING(l) <
//! READY(l) < READING(l) < FREE(l + 1)` (a takeover replaces only the owner, a
//! waiter's flag only adds the `WAITER` bit to a `FREE` or `READY` state), which
//! is what makes the bounds checks below exact rather than heuristic.
//!
//! ## Limit
//! With a limit `L` below the ring size, a producer about to claim position `pos`
//! first reads the slot of position `pos - L` and refuses (full) unless it is
//! `FREE(lap + 1)` — that message was got and its slot freed. A consumer frees
//! position `q` only after `head` passed it, so every position up to `pos - L` was
//! claimed by consumers; and the claim of `pos` succeeds only while `pos` is the next
//! unclaimed position. So after the claim at most `L` messages are in the ring,
//! whatever other producers do meanwhile (each checks its own `pos`) — the same rule
//! as the ring-full check one lap back, `L` positions back instead of `capacity`.
//! Reading a slot state (not `head`) keeps the sleep handshake: a producer that must
//! wait flags that `READY` slot like any other it waits for (see "Blocking"). A ring
//! whose limit is its size skips the check: the fast path stays one CAS.
//!
//! ## Orderings
//! * `SYNC(slot-publish)`: the producer's `READY` store (Release) pairs with the
//!   consumer's Acquire CAS that takes the slot: the message bytes are visible.
//! * `SYNC(slot-free)`: the consumer's `FREE(lap + 1)` store (Release) pairs with the
//!   next producer's Acquire CAS: the consumer's reads are done before the slot is
//!   overwritten.
//! * `SYNC(index)`: every change of `head`/`tail` is a Release CAS made after seeing
//!   the slot it skips claimed; loads of the indices are Acquire. So an index that
//!   has passed a position proves that position's slot state, which is how a
//!   corrupted ring is told from a race.
//! * `SYNC(sleep)`: a waiter reads its side's wake sequence (SeqCst), then sets the
//!   `WAITER` bit of the slot it waits for by CAS; the claim that moves that slot on
//!   is a CAS too, so the two are ordered on the slot word itself: either the claim
//!   comes first (the waiter's CAS fails and it looks again) or it reads the bit,
//!   and its claimant bumps the sequence (SeqCst) and wakes the side once it has
//!   published or freed the slot — after the waiter read the sequence, so the
//!   kernel's re-check fails or the wake finds the waiter asleep. No store-load
//!   (Dekker) order is needed, so the publishing stores are plain Release stores.
//!
//! ## Blocking
//! Per put and per get on the claim path: one claiming CAS on the slot, one CAS
//! advancing the index (uncontended with one producer and one consumer), then a
//! plain Release store that completes the slot (a lease holder makes none of those
//! CASes: see "Leases"); no read of a sleepers' word, no syscall, no clock read. A
//! waiter polls a bounded, adaptive number of times (`raw::wait`'s `Spin`, with
//! one hint per side in the header), then:
//!
//! * if the slot it waits for is `FREE` (a get: no put at the head yet) or `READY`
//!   (a put: the ring, or its limit, is full), it flags that slot with the `WAITER`
//!   bit and sleeps on its side's [`Wakeups`] word (until the probe interval: to
//!   check stalled claimants). The claimant that moves the slot on sees the bit in
//!   its claim and wakes every sleeper of that side: one `futex_wake` per sleep, none
//!   when nobody sleeps;
//! * if it is held by a claimant mid-copy (`WRITING` at the head, `READING` at the
//!   tail), there is nothing to flag — that claim completes with a plain store — so
//!   the waiter naps (50 µs, doubling up to the probe interval) and looks again. A
//!   copy takes well under a microsecond unless its thread was preempted, and a
//!   claimant that died is recovered by the probes as before.
//!
//! Empty polls read only the slot at `head`, never the producers' `tail` line.
//!
//! Those locked operations are what bounds a single put/get between two processes:
//! the bench runs this ring alone (no owner records, no sleep handshake) with 0, 1
//! and 2 locked operations per message on each side, and with plain stores it keeps
//! up with a raw SPSC ring, while one CAS per side costs most of that (a locked
//! operation must own its cache line before it completes, so the line transfers
//! stop overlapping). So a side with one member takes no claims at all: see
//! "Leases".
//!
//! A claim that expects its slot to be ready makes its CAS from the state it
//! expects, without reading the slot first (a put's first attempt from `FREE(lap)`;
//! a blocking get's first attempt, and every claim of `get_many` after the first,
//! from `READY(lap)`): the slot's cache line then crosses between the cores once
//! per claim instead of twice (read shared, then upgraded for the CAS). A wrong
//! guess fails the CAS, which returns what the slot holds, and the attempt goes on
//! from that. Measured between two processes, in interleaved runs: `Queue<u64>`
//! put/get 22–23 → 24–33 M messages/s, spinning ping-pong 150–160 → 107–119 ns.
//!
//! ## Leases
//! Each side (producers, consumers) has a *lease* word in the header. The first
//! member of a side to operate takes it (CAS `FREE` → `HELD(me)`) and from then on,
//! while it is the side's only member, publishes with plain stores: a leased put
//! checks that the slot at `tail` is exactly `FREE(lap)`, copies the message in,
//! stores `READY(lap)` and then `tail + 1`; a leased get checks for exactly
//! `READY(lap)`, copies out, stores `FREE(lap + 1)` and then `head + 1`. No locked
//! instruction, no owner record; anything else at the index (a flagged slot, a full
//! or empty ring with more to check, a stalled claimant) takes the claim path above,
//! which stays correct for the holder too. Leases are taken only on rings whose
//! payload is at most [`LEASE_MAX_PAYLOAD_WORDS`] words (above it the copy dominates
//! the locked operations a lease saves) and only by a process the revokers'
//! barrier reaches (`sync::asym`: `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`,
//! registered first; a process that cannot register makes the side shared).
//!
//! * **Revoking.** Any other member (another thread or process) must first revoke
//!   the lease: CAS `HELD(h)` → `REVOKING(h)`, run the heavy barrier, and wait until
//!   the holder's `busy` word (beside its index; set by the holder around each leased
//!   operation, before its second look at the lease) reads 0. `SYNC(lease-revoke)`:
//!   by the barrier, either the holder's look at the lease after `busy = 1` sees
//!   `REVOKING` (it takes the claim path) or its `busy = 1` is visible to the
//!   revoker, who then waits for its Release `busy = 0`, after which the holder's
//!   slot and index stores are visible. The side then becomes `SHARED` (claims from
//!   then on, for good: a live holder may come back), or `FREE` again if the holder
//!   died (judged as owner records are; a dead holder does nothing more). A revoker
//!   polls `busy` briefly; a live holder still inside its operation (preempted)
//!   makes the caller look again later (`try_*` calls for up to 2 ms, then `Full` /
//!   `Empty`; blocking calls nap and honour their deadline).
//! * **Sleeping against a holder.** A holder's plain store would erase a slot's
//!   `WAITER` bit, so a waiter whose *other* side is held announces itself instead
//!   in the header (`getters_asleep` / `putters_asleep`), runs the heavy barrier and
//!   looks at its slot once more before it sleeps; every put (get) completes with a
//!   light barrier and a look at that flag, and a set flag is cleared and the side
//!   woken (`SYNC(lease-sleep)`: an asymmetric Dekker handshake). A waiter that saw
//!   no lease flags its slot as usual, then touches the lease word with an RMW:
//!   `SYNC(lease-take)`: a take ordered after that RMW reads from it (the take is
//!   AcqRel) and so sees the flag; one ordered before it is seen by the RMW, and the
//!   waiter announces itself too.
//! * **Crashes.** A producer holder that dies before its `READY` store lost a put
//!   that never returned (the slot is still `FREE`, a torn copy in it is
//!   overwritten); after it, `tail` lags by one and is helped along by the next
//!   claim, or by a consumer that finds the slot already got. A consumer holder that
//!   dies before its `FREE` store leaves the message `READY`: the next consumer gets
//!   it (that get never returned, so nothing is delivered twice); after it, `head`
//!   lags and is helped along. So a slot state proves a put at its position
//!   completed while `tail` may still say that position (not less): the corruption
//!   checks allow exactly that one step. [`RecoveryStats::leases_passed`] counts
//!   leases passed on from dead holders.
//! * **Untrusted words.** A holder that reads anything but its own `HELD` word takes
//!   the claim path; a forged `busy` for a live holder delays other members as a held
//!   lock would, never past their deadlines; a forged sleeper flag costs a wake-up.
//!
//! A holder's batch (`put_many`, `get_many`) runs in one `busy` section. A revoker
//! held up by a holder mid-operation naps, watching that holder (the death watcher
//! wakes it when the holder exits).
//!
//! Measured between two processes, `Queue<u64>` 1 → 1 (the bench's rows, VM in its
//! usual state): single put/get 17–47 M messages/s with claims → 150–210 M leased;
//! `put_many`/`get_many` (64) 44 → 230–280 M. Design notes:
//! `docs/design/queue-lease.md`.
//!
//! ## Owner records
//! Each slot has an owner record beside its state word: the claimant's
//! [`Identity::info`] (TID and thread start time), written right *after* the claiming
//! CAS and cleared to 0 right *before* the claim completes (`READY`/`FREE`) — and by
//! a recoverer right before its recovery CAS. So a non-zero record names either the
//! current claimant or a thread of another TID; a claim whose record names another
//! TID (or none) is judged by its TID alone. Liveness is therefore never judged on a
//! stale record, and a live thread is never taken for dead (PID reuse included); see
//! [`crate::sys::ident`] for the limits of that check (one PID namespace, `/proc`).
//!
//! ## Untrusted memory
//! Geometry (capacity, slot size) comes from the caller's validated copy, never from
//! the shared region. Every state read from the region is checked against the
//! position the indices imply; anything impossible is reported as
//! [`QueueError::Corrupt`], and every loop is bounded.

use super::wait::{first_probe, Spin};
use super::CachePadded;
use crate::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use crate::sync::{
    asym, futex_wait, futex_wake_all, owner_is_dead, spin_hint, watch_exit, Deadline, Identity,
    Instant, Task, WaitResult, Watch,
};
use crate::sys::clock::{expired, probe_deadline};
use core::time::Duration;

// ---- the slot state word ------------------------------------------------------------

/// TID of the claimant (`WRITING`/`READING`), 0 otherwise.
const TID_MASK: u64 = (1 << 22) - 1;
const TAG_SHIFT: u32 = 22;
/// Someone sleeps until this slot's state moves on (see "Blocking"): set only on
/// `FREE` (consumers waiting for the put at this position) and `READY` (producers
/// waiting for this message to be got), by the waiter's CAS.
const WAITER: u64 = 1 << 24;
const LAP_SHIFT: u32 = 25;
/// Laps are kept modulo 2^39.
const LAP_MASK: u64 = (1 << 39) - 1;
/// `lap_diff` of a state one lap behind.
const BEHIND: u64 = LAP_MASK;

/// Slot tags: the low two bits above the TID.
const FREE: u64 = 0;
const WRITING: u64 = 1;
const READY: u64 = 2;
const READING: u64 = 3;

/// Largest capacity accepted, in slots.
pub const MAX_CAPACITY: usize = 1 << 30;

/// Words of a slot before its payload: the state word and the owner record.
pub const SLOT_HEADER_WORDS: usize = 2;

#[inline]
fn make_state(lap: u64, tag: u64, tid: u32) -> u64 {
    ((lap & LAP_MASK) << LAP_SHIFT) | (tag << TAG_SHIFT) | (u64::from(tid) & TID_MASK)
}
#[inline]
fn lap_of(s: u64) -> u64 {
    s >> LAP_SHIFT
}
#[inline]
fn tag_of(s: u64) -> u64 {
    (s >> TAG_SHIFT) & 3
}
/// True if a waiter asked to be woken when this state moves on.
#[inline]
fn has_waiter(s: u64) -> bool {
    s & WAITER != 0
}
#[inline]
fn tid_of(s: u64) -> u32 {
    (s & TID_MASK) as u32
}
/// How far the state's lap is ahead of `lap`, modulo 2^40 (`BEHIND` = one behind).
#[inline]
fn lap_diff(s: u64, lap: u64) -> u64 {
    lap_of(s).wrapping_sub(lap) & LAP_MASK
}

// ---- the lease words -----------------------------------------------------------------

/// A lease word: a tag in the top two bits, the holder's [`Identity::info`] (its low
/// 62 bits: a start time below 2^40 clock ticks, 348 years at 100 Hz) below.
/// All-zero is `L_NONE`.
const LEASE_SHIFT: u32 = 62;
const LEASE_INFO: u64 = (1 << LEASE_SHIFT) - 1;
/// Nobody holds the lease; the first operation of the side takes it.
const L_NONE: u64 = 0;
/// The holder named in the word works with plain stores.
const L_HELD: u64 = 1;
/// Being revoked: the holder's next operation takes the claim path; the revoker
/// waits for the one in flight (the holder's `busy` word).
const L_REVOKING: u64 = 2;
/// The side had more than one live member: claims only, for good.
const L_SHARED: u64 = 3;

#[inline]
fn lease_word(tag: u64, info: u64) -> u64 {
    (tag << LEASE_SHIFT) | (info & LEASE_INFO)
}
#[inline]
fn lease_tag(l: u64) -> u64 {
    l >> LEASE_SHIFT
}
#[inline]
fn held_by(me: Identity) -> u64 {
    lease_word(L_HELD, me.info())
}
/// True if a lease word names a holder that may still store plainly.
#[inline]
fn leased(l: u64) -> bool {
    matches!(lease_tag(l), L_HELD | L_REVOKING)
}

/// Largest payload, in words, of a ring whose members take leases (see "Leases"):
/// above it the copy dominates the locked operations a lease saves, and a revoker
/// would wait for long copies.
pub const LEASE_MAX_PAYLOAD_WORDS: usize = 32;

/// Polls a revoker makes for the holder's operation in flight before it lets its
/// caller nap (a leased put or get takes well under a microsecond unless its thread
/// is preempted).
const REVOKE_POLLS: u32 = if cfg!(loom) { 1 } else { 256 };

/// How long a non-blocking call waits for a revocation to complete (a holder
/// preempted mid-operation) before it reports `Full` or `Empty`.
const REVOKE_WAIT: Duration = Duration::from_millis(2);

/// Which protocol a member of one side of the ring uses for this operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The caller holds the side's lease: plain stores.
    Leased,
    /// Claims (CAS), as every member of a shared side.
    Claim,
}

/// A lease holder's Release store of a slot state. Under loom a swap: loom 0.7
/// leaves a plain store unordered against a concurrent RMW of the same word (a
/// waiter's flag CAS), which C11 orders (an RMW reads the value just before it in
/// the word's total modification order); with a store, loom lets the waiter's later
/// load return its own flag after the holder's store, a deadlock no machine shows.
#[inline(always)]
fn store_plain(word: &AtomicU64, v: u64) {
    #[cfg(not(loom))]
    word.store(v, Ordering::Release);
    #[cfg(loom)]
    word.swap(v, Ordering::Release);
}

/// What a lease holder's operation did.
enum Leased<R> {
    Done(R),
    /// Full (put) or empty (get): the slot whose state must move on first.
    NotNow(Blocker),
    /// Anything else: the claim path decides.
    Other,
    /// The caller does not hold the lease (the lease protocol decides).
    NotHolder,
}

/// How [`Ring::enter_leased`] went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enter {
    In,
    NotHolder,
    Lost,
}

/// One side of the ring, as its lease protocol sees it.
struct Side<'a> {
    lease: &'a AtomicU64,
    index: &'a Index,
}

// ---- errors ---------------------------------------------------------------------------

/// Why a ring operation did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// No free slot (non-blocking put).
    Full,
    /// No message (non-blocking get).
    Empty,
    /// The queue is closed (puts), or closed and drained (gets).
    Closed,
    /// A deadline passed.
    Timeout,
    /// The next message does not fit the caller's buffer (it stays queued); carries
    /// the message's length word.
    WontFit(u64),
    /// The region holds an impossible state.
    Corrupt(&'static str),
}

/// Outcome of one non-blocking attempt.
enum Attempt {
    /// Nothing to do now: full (put) or empty (get). `Some` names the slot whose
    /// state must move on first, when a waiter may sleep on it (see "Blocking");
    /// `None` when that slot is held by a claimant mid-copy.
    NotNow(Option<Blocker>),
    /// The slot at the index is claimed by a thread that has not finished: a live
    /// one, or one whose liveness was not checked (`probe == false`).
    Stalled,
    /// The side's lease is being revoked from a live holder still inside an
    /// operation (see "Leases"): look again shortly.
    Revoking,
    Fail(QueueError),
}

/// The slot a failed attempt waits for, and the state it saw there (`FREE` at the
/// head for a get, `READY` for a put on a full ring).
#[derive(Clone, Copy)]
struct Blocker {
    pos: u64,
    state: u64,
}

impl From<QueueError> for Attempt {
    fn from(e: QueueError) -> Self {
        Attempt::Fail(e)
    }
}

// ---- consumers' hooks -----------------------------------------------------------------

/// What a consumer does with the message it claims. `admit` runs just before the
/// claiming CAS (and only then), `lost` if that CAS failed, `take` after it succeeded.
pub trait Take {
    /// What `take` produces.
    type Out;
    /// True if `admit` always admits and `lost` does nothing: a get may then claim a
    /// slot before reading it.
    const ADMITS_ALL: bool = false;
    /// Whether to claim the message whose payload is `p` (still owned by the ring:
    /// it may be claimed by someone else meanwhile). `false` leaves it queued and the
    /// call fails with [`QueueError::WontFit`].
    #[inline]
    fn admit(&mut self, p: &[AtomicU64]) -> bool {
        let _ = p;
        true
    }
    /// The claim that `admit` preceded failed (another consumer was first).
    #[inline]
    fn lost(&mut self) {}
    /// Copies the claimed message out of its payload words.
    fn take(&mut self, p: &[AtomicU64]) -> Self::Out;
}

/// A [`Take`] that admits everything and copies with a closure.
#[derive(Debug)]
pub struct TakeWith<F>(pub F);

impl<R, F: FnMut(&[AtomicU64]) -> R> Take for TakeWith<F> {
    type Out = R;
    const ADMITS_ALL: bool = true;
    #[inline]
    fn take(&mut self, p: &[AtomicU64]) -> R {
        (self.0)(p)
    }
}

// ---- the shared header ----------------------------------------------------------------

/// A futex word for sleepers whose wakers change some *other* word first (a joinable
/// queue's joiners, `crate::raw::queue_join`): a wake sequence in the low 31 bits and
/// a SLEEPING flag, a Dekker handshake (the ring itself flags its slots instead, see
/// [`Wakeups`]).
///
/// | bits  | meaning                                                          |
/// |-------|------------------------------------------------------------------|
/// | 0..31 | sequence, bumped by every wake: sleepers wait for it to change    |
/// | 31    | `SLEEPING`: someone may sleep here; the next waker clears it and  |
/// |       | wakes everyone                                                    |
///
/// Clearing the flag on the first wake makes one `futex_wake` per *sleep episode*,
/// not per change: a waker that keeps going while the woken thread is still being
/// scheduled makes no further syscall.
#[repr(C)]
#[derive(Debug)]
pub struct Waiters {
    word: AtomicU32,
    _pad: u32,
}

/// Someone may be sleeping on a [`Waiters`] word.
const SLEEPING: u32 = 1 << 31;

impl Default for Waiters {
    fn default() -> Self {
        Waiters::new()
    }
}

impl Waiters {
    /// Nobody sleeping (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> Waiters {
        Waiters {
            word: AtomicU32::new(0),
            _pad: 0,
        }
    }
    /// Nobody sleeping (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> Waiters {
        Waiters {
            word: AtomicU32::new(0),
            _pad: 0,
        }
    }

    /// Wakes the sleepers, if any announced themselves. `SYNC(sleep)`: the caller's
    /// SeqCst publication, then this SeqCst load.
    #[inline]
    pub(crate) fn wake(&self) {
        super::wait::model_seqcst();
        if self.word.load(Ordering::SeqCst) & SLEEPING != 0 {
            self.wake_slow();
        }
    }

    #[cold]
    fn wake_slow(&self) {
        let old = self
            .word
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (w & SLEEPING != 0).then_some(w.wrapping_add(1) & !SLEEPING)
            });
        if old.is_ok() {
            // Flag cleared for everyone: everyone must wake (each re-announces if it
            // sleeps again).
            futex_wake_all(&self.word);
        }
    }

    /// Announces a sleeper; returns the word to wait on. The caller must re-check its
    /// predicate after this and then call [`sleep`](Self::sleep).
    pub(crate) fn announce(&self) -> u32 {
        let w = self.word.fetch_or(SLEEPING, Ordering::SeqCst) | SLEEPING;
        // SYNC(sleep): orders the announcement before the re-check of the ring.
        fence(Ordering::SeqCst);
        w
    }

    /// Sleeps until woken or `until` (the announcement stays: a later waker clears
    /// it).
    pub(crate) fn sleep(&self, w: u32, until: Deadline) -> WaitResult {
        futex_wait(&self.word, w, until)
    }

    /// True if someone may be sleeping (a snapshot).
    pub fn has_sleepers(&self) -> bool {
        self.word.load(Ordering::Relaxed) & SLEEPING != 0
    }
}

/// Where one side of a ring (consumers or producers) sleeps: a futex word and that
/// side's spin hint.
///
/// Whether anyone sleeps is not kept here but in the slot the sleepers wait for (its
/// `WAITER` bit, see "Blocking" in the module docs), so a put or get that finds no
/// bit neither reads nor writes this line.
#[repr(C)]
#[derive(Debug)]
pub struct Wakeups {
    /// Bumped by every wake: a sleeper waits for it to change.
    seq: AtomicU32,
    /// The side's adaptive spin budget (`raw::wait`'s `Spin`; untrusted).
    spin: AtomicU32,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups::new()
    }
}

impl Wakeups {
    /// Nobody sleeping (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> Wakeups {
        Wakeups {
            seq: AtomicU32::new(0),
            spin: AtomicU32::new(0),
        }
    }
    /// Nobody sleeping (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> Wakeups {
        Wakeups {
            seq: AtomicU32::new(0),
            spin: AtomicU32::new(0),
        }
    }

    /// The value to sleep on: read *before* setting the [`WAITER`] bit.
    #[inline]
    fn seq(&self) -> u32 {
        // SYNC(sleep): SeqCst, as the bump it must not miss.
        self.seq.load(Ordering::SeqCst)
    }

    /// Wakes every sleeper of this side (each re-checks the ring).
    #[cold]
    fn wake(&self) {
        // SYNC(sleep): the bump fails the kernel's re-check of a sleeper that read
        // `seq` before it.
        self.seq.fetch_add(1, Ordering::SeqCst);
        futex_wake_all(&self.seq);
    }

    /// Sleeps while `seq` is `w`, until woken or `until`.
    #[inline]
    fn sleep(&self, w: u32, until: Deadline) -> WaitResult {
        futex_wait(&self.seq, w, until)
    }
}

/// Rarely written state: the closed flag and recovery counters.
#[repr(C)]
#[derive(Debug)]
struct Control {
    /// 0 = open, anything else = closed.
    closed: AtomicU32,
    _pad: u32,
    /// Tombstones freed (puts whose producer died mid-copy).
    skipped: AtomicU64,
    /// Messages taken over from consumers that died mid-copy and delivered again.
    redelivered: AtomicU64,
    /// Leases passed on from holders that died.
    leases_passed: AtomicU64,
    /// The producers' lease (see "Leases" in the module docs): a lease word.
    put_lease: AtomicU64,
    /// The consumers' lease.
    get_lease: AtomicU64,
    /// Consumers may sleep waiting for a put by the producers' lease holder: set by
    /// them, cleared (and the consumers woken) by the next put that sees it.
    getters_asleep: AtomicU32,
    /// Producers may sleep waiting for a get by the consumers' lease holder.
    putters_asleep: AtomicU32,
}

/// An index (`head` or `tail`) and the `busy` word of its side's lease holder: set
/// while the holder is inside a leased put (get), read only by a revoker.
#[repr(C)]
#[derive(Debug)]
struct Index {
    pos: AtomicU64,
    busy: AtomicU64,
}

impl Index {
    #[cfg(not(loom))]
    const fn new() -> Index {
        Index {
            pos: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }
    #[cfg(loom)]
    fn new() -> Index {
        Index {
            pos: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }
}

/// The header of an MPMC ring: indices, sleepers and the closed flag, each hot field
/// on its own 128-byte line. The slots live in a separate region (see [`Ring`]).
///
/// All-zero bytes are an empty, open ring.
#[repr(C)]
#[derive(Debug)]
pub struct RawQueue {
    /// Next position producers claim. `head <= tail <= head + capacity`, except that
    /// `tail` may lag one behind a slot already claimed (anyone may advance it).
    tail: CachePadded<Index>,
    /// Next position consumers claim; may lag one behind a slot already taken.
    head: CachePadded<Index>,
    /// Consumers sleeping for a message.
    not_empty: CachePadded<Wakeups>,
    /// Producers sleeping for a free slot.
    not_full: CachePadded<Wakeups>,
    ctl: CachePadded<Control>,
}

// SAFETY: repr(C), made only of atomics and a u32 (through repr(C, align(128))
// CachePadded wrappers); all-zero is an empty open ring; no pointers; align 128.
unsafe impl super::SharedState for RawQueue {}

impl Default for RawQueue {
    fn default() -> Self {
        RawQueue::new()
    }
}

impl RawQueue {
    /// An empty, open ring header (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawQueue {
        RawQueue {
            tail: CachePadded(Index::new()),
            head: CachePadded(Index::new()),
            not_empty: CachePadded(Wakeups::new()),
            not_full: CachePadded(Wakeups::new()),
            ctl: CachePadded(Control {
                closed: AtomicU32::new(0),
                _pad: 0,
                skipped: AtomicU64::new(0),
                redelivered: AtomicU64::new(0),
                leases_passed: AtomicU64::new(0),
                put_lease: AtomicU64::new(0),
                get_lease: AtomicU64::new(0),
                getters_asleep: AtomicU32::new(0),
                putters_asleep: AtomicU32::new(0),
            }),
        }
    }
    /// An empty, open ring header (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawQueue {
        RawQueue {
            tail: CachePadded(Index::new()),
            head: CachePadded(Index::new()),
            not_empty: CachePadded(Wakeups::new()),
            not_full: CachePadded(Wakeups::new()),
            ctl: CachePadded(Control {
                closed: AtomicU32::new(0),
                _pad: 0,
                skipped: AtomicU64::new(0),
                redelivered: AtomicU64::new(0),
                leases_passed: AtomicU64::new(0),
                put_lease: AtomicU64::new(0),
                get_lease: AtomicU64::new(0),
                getters_asleep: AtomicU32::new(0),
                putters_asleep: AtomicU32::new(0),
            }),
        }
    }
}

/// The payload words a named queue gives slots that must hold `min` words: slots
/// (state, owner record, payload) padded to a power of two of words up to 64 bytes,
/// to a multiple of 64 bytes above, so that no slot straddles two cache lines (a
/// straddling slot costs a put or get two line transfers; measured on `Queue<u64>`,
/// 24-byte slots padded to 32 took single put/get from 53–58 to 64–69 M msgs/s).
pub const fn slot_payload_words(min: usize) -> usize {
    let stride = SLOT_HEADER_WORDS + min;
    let padded = if stride <= 8 {
        stride.next_power_of_two()
    } else {
        stride.next_multiple_of(8)
    };
    padded - SLOT_HEADER_WORDS
}

/// Words (u64) a slot region needs for `capacity` slots of `payload_words` each.
pub const fn region_words(capacity: usize, payload_words: usize) -> Option<usize> {
    capacity.checked_mul(SLOT_HEADER_WORDS + payload_words)
}

/// Tuning of blocking calls, and what the call did.
#[derive(Clone, Copy, Debug)]
pub struct WaitPolicy {
    /// Polls before sleeping (each poll is one attempt plus a spin hint): `None` for
    /// the crate's adaptive budget (`raw::wait`'s `Spin`, kept per ring side in
    /// the header), `Some(n)` for exactly `n`; `Some(u32::MAX)` spins without ever
    /// sleeping (deadlines and liveness probes still apply).
    pub spin: Option<u32>,
    /// How often a waiter checks that a stalled claimant is alive.
    pub probe: Duration,
    /// Output: set when the call slept in the kernel.
    pub slept: bool,
}

impl WaitPolicy {
    /// Exactly `spin` polls before sleeping, probing stalled claimants every `probe`.
    pub const fn new(spin: u32, probe: Duration) -> WaitPolicy {
        WaitPolicy {
            spin: Some(spin),
            probe,
            slept: false,
        }
    }

    /// The adaptive spin budget, probing stalled claimants every `probe`.
    pub const fn adaptive(probe: Duration) -> WaitPolicy {
        WaitPolicy {
            spin: None,
            probe,
            slept: false,
        }
    }
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy::adaptive(super::lock::DEFAULT_PROBE)
    }
}

/// Most claimants a waiting consumer watches (see `Ring::watch_claimants`); a
/// claimant beyond them is still found by the scans.
const WATCHED_CLAIMANTS: usize = 16;

/// Polls between clock reads while spinning (deadline and probe checks).
const CLOCK_EVERY: u32 = 1024;

/// The first nap of a waiter whose way is blocked by a claimant mid-copy (see
/// "Blocking"): a copy takes well under a microsecond unless its thread was
/// preempted, and then a nap of a scheduler tick's order is what it costs.
const FIRST_NAP: Duration = Duration::from_micros(50);

/// Counters a ring keeps about recoveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Puts abandoned by a producer that died mid-copy, whose slots were freed.
    pub skipped: u64,
    /// Messages taken over from a consumer that died mid-copy, and delivered again.
    pub redelivered: u64,
    /// Leases (see "Leases" in the module docs) passed on from a sole producer or
    /// consumer that died.
    pub leases_passed: u64,
}

/// One side's lease, as [`Ring::leases`] reads it (see "Leases" in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Nobody holds it: the side's next member takes it.
    Free,
    /// The named thread is the side's sole member and stores plainly.
    Held(Identity),
    /// Being revoked from the named thread by another member.
    Revoking(Identity),
    /// The side has had more than one member: claims only.
    Shared,
}

// ---- the view -------------------------------------------------------------------------

/// A ring: a [`RawQueue`] header plus its slot region, with the geometry the caller
/// validated (never re-read from shared memory).
///
/// Slot `i` occupies words `i * stride .. (i + 1) * stride` of the region: the state
/// word, the owner record, then `payload_words` payload words.
#[derive(Clone, Copy, Debug)]
pub struct Ring<'a> {
    q: &'a RawQueue,
    words: &'a [AtomicU64],
    cap: u64,
    /// Most messages in the ring at once: `1..=cap` (see "Limit" in the module docs).
    limit: u64,
    shift: u32,
    stride: usize,
    /// Whether members take leases (see "Leases"): every view of one ring must agree.
    leases: bool,
}

impl<'a> Ring<'a> {
    /// Views `q` and `words` as a ring of `capacity` slots of `payload_words` words.
    /// `None` unless `capacity` is a power of two in `1..=MAX_CAPACITY` and `words`
    /// holds exactly [`region_words`]`(capacity, payload_words)` words.
    #[inline]
    pub fn new(
        q: &'a RawQueue,
        words: &'a [AtomicU64],
        capacity: usize,
        payload_words: usize,
    ) -> Option<Ring<'a>> {
        if capacity == 0 || capacity > MAX_CAPACITY || !capacity.is_power_of_two() {
            return None;
        }
        if region_words(capacity, payload_words) != Some(words.len()) {
            return None;
        }
        Some(Ring {
            q,
            words,
            cap: capacity as u64,
            limit: capacity as u64,
            shift: capacity.trailing_zeros(),
            stride: SLOT_HEADER_WORDS + payload_words,
            leases: !cfg!(loom) && payload_words <= LEASE_MAX_PAYLOAD_WORDS,
        })
    }

    /// The same ring with leases on or off (see "Leases" in the module docs). By
    /// default they are on for payloads of up to [`LEASE_MAX_PAYLOAD_WORDS`] words
    /// (off under loom, whose models turn them on). **Every view of one ring, in
    /// every process, must agree**: a member that ignores a lease races its holder's
    /// plain stores.
    #[inline]
    pub fn with_leases(self, on: bool) -> Ring<'a> {
        Ring { leases: on, ..self }
    }

    /// The same ring holding at most `limit` messages at once (Python's exact
    /// `maxsize`). `None` unless `limit` is in `1..=`[`slots`](Self::slots).
    #[inline]
    pub fn with_limit(self, limit: usize) -> Option<Ring<'a>> {
        if limit == 0 || limit as u64 > self.cap {
            return None;
        }
        Some(Ring {
            limit: limit as u64,
            ..self
        })
    }

    /// Capacity in messages: the limit (the slot count unless
    /// [`with_limit`](Self::with_limit) set a lower one).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.limit as usize
    }

    /// Slots in the ring (a power of two, at least the capacity).
    #[inline]
    pub fn slots(&self) -> usize {
        self.cap as usize
    }

    /// With a limit below the ring size: `Ok(None)` when position `pos` may be
    /// claimed — the slot of position `pos - limit` was freed (see "Limit" in the
    /// module docs) — `Ok(Some(state))` when that message is still queued (or being
    /// read), `Err(state)` when that slot holds something else (the caller rechecks).
    #[inline]
    fn limit_allows(&self, pos: u64) -> Result<Option<u64>, u64> {
        if pos < self.limit {
            return Ok(None);
        }
        let back = pos - self.limit;
        // SYNC(slot-free)
        let s = self.slot(back)[0].load(Ordering::Acquire);
        let lap = self.lap(back);
        match lap_diff(s, lap) {
            1 if tag_of(s) == FREE => Ok(None),
            0 => Ok(Some(s)),
            _ => Err(s),
        }
    }

    /// The header.
    #[inline]
    pub fn raw(&self) -> &'a RawQueue {
        self.q
    }

    #[inline]
    fn slot(&self, pos: u64) -> &'a [AtomicU64] {
        let i = (pos & (self.cap - 1)) as usize * self.stride;
        debug_assert!(i + self.stride <= self.words.len());
        // SAFETY: `pos & (cap - 1) < cap`, so `i + stride <= cap * stride`, which is
        // `words.len()` (checked in `new`; no view changes its `words`, `cap` or
        // `stride` afterwards). Every call of every ring operation goes through here:
        // the bounds check it saves showed in profiles.
        unsafe { self.words.get_unchecked(i..i + self.stride) }
    }

    #[inline]
    fn lap(&self, pos: u64) -> u64 {
        (pos >> self.shift) & LAP_MASK
    }

    /// Upper bound on the iterations of one attempt: a corrupted ring cannot make a
    /// call loop forever (each legitimate retry means another thread made progress).
    #[inline]
    fn budget(&self) -> u64 {
        (1 << 20) + 4 * self.cap
    }

    /// True once [`close`](Self::close) was called.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.q.ctl.closed.load(Ordering::SeqCst) != 0
    }

    /// Closes the ring: puts fail with `Closed`, gets drain it and then fail with
    /// `Closed`. Wakes every sleeper. Idempotent.
    pub fn close(&self) {
        self.q.ctl.closed.store(1, Ordering::SeqCst);
        self.q.not_empty.wake();
        self.q.not_full.wake();
    }

    /// Messages in the ring: positions claimed by producers minus positions claimed
    /// by consumers, read as one consistent snapshot and clamped to
    /// `0..=capacity`. When no call is in flight this is exactly the number of
    /// messages a sequence of gets would return; a put in progress counts from its
    /// claim, a get in progress stops counting at its claim, and a put abandoned by a
    /// dead producer counts until a consumer skips its slot.
    pub fn len(&self) -> usize {
        let mut tail = self.q.tail.pos.load(Ordering::SeqCst);
        for _ in 0..64 {
            let head = self.q.head.pos.load(Ordering::SeqCst);
            let t2 = self.q.tail.pos.load(Ordering::SeqCst);
            if t2 == tail {
                return tail.saturating_sub(head).min(self.limit) as usize;
            }
            tail = t2;
        }
        let head = self.q.head.pos.load(Ordering::SeqCst);
        tail.saturating_sub(head).min(self.limit) as usize
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(head, tail)` snapshot, for diagnostics.
    pub fn indices(&self) -> (u64, u64) {
        (
            self.q.head.pos.load(Ordering::Relaxed),
            self.q.tail.pos.load(Ordering::Relaxed),
        )
    }

    /// What recovery has done so far.
    pub fn recovery_stats(&self) -> RecoveryStats {
        RecoveryStats {
            skipped: self.q.ctl.skipped.load(Ordering::Relaxed),
            redelivered: self.q.ctl.redelivered.load(Ordering::Relaxed),
            leases_passed: self.q.ctl.leases_passed.load(Ordering::Relaxed),
        }
    }

    /// The producers' and the consumers' leases (a snapshot, for diagnostics).
    pub fn leases(&self) -> (LeaseState, LeaseState) {
        let read = |w: &AtomicU64| {
            let l = w.load(Ordering::Relaxed);
            let who = Identity::from_info(l & LEASE_INFO);
            match lease_tag(l) {
                L_NONE => LeaseState::Free,
                L_HELD => LeaseState::Held(who),
                L_REVOKING => LeaseState::Revoking(who),
                _ => LeaseState::Shared,
            }
        };
        (read(&self.q.ctl.put_lease), read(&self.q.ctl.get_lease))
    }

    /// Calls `f(slot, writing, owner)` for every slot claimed at this moment by a
    /// producer (`writing`) or a consumer: a snapshot for diagnostics, each slot's
    /// state word and owner record read once (they may change meanwhile). `owner` is
    /// the record beside the state, or only its TID if the record was not yet written.
    pub fn for_each_claim(&self, mut f: impl FnMut(usize, bool, Identity)) {
        for i in 0..self.capacity() {
            let slot = self.slot(i as u64);
            let s = slot[0].load(Ordering::Relaxed);
            let tag = tag_of(s);
            if tag != WRITING && tag != READING {
                continue;
            }
            let rec = Identity::from_info(slot[1].load(Ordering::Relaxed));
            let owner = if rec.tid == tid_of(s) {
                rec
            } else {
                Identity {
                    tid: tid_of(s),
                    start: 0,
                }
            };
            f(i, tag == WRITING, owner);
        }
    }

    /// Whether consumers, and producers, may be sleeping (a snapshot: a scan of the
    /// slots for `WAITER` bits).
    pub fn sleepers(&self) -> (bool, bool) {
        let (mut getters, mut putters) = (
            self.q.ctl.getters_asleep.load(Ordering::Relaxed) != 0,
            self.q.ctl.putters_asleep.load(Ordering::Relaxed) != 0,
        );
        for i in 0..self.cap {
            let s = self.slot(i)[0].load(Ordering::Relaxed);
            if has_waiter(s) {
                getters |= tag_of(s) == FREE;
                putters |= tag_of(s) == READY;
            }
        }
        (getters, putters)
    }

    // ---- leases ----------------------------------------------------------------------

    #[inline]
    fn producers(&self) -> Side<'a> {
        Side {
            lease: &self.q.ctl.put_lease,
            index: &self.q.tail,
        }
    }

    #[inline]
    fn consumers(&self) -> Side<'a> {
        Side {
            lease: &self.q.ctl.get_lease,
            index: &self.q.head,
        }
    }

    /// The protocol of the caller's next operation on `side`, when it does not hold
    /// the side's lease: takes the lease if nobody holds it, revokes it from another
    /// holder (see "Leases").
    #[cold]
    fn mode_slow(&self, side: &Side<'a>, me: Identity) -> Result<Mode, Attempt> {
        let mine = held_by(me);
        let mut l = side.lease.load(Ordering::Acquire);
        for _ in 0..8 {
            if l == mine && asym::registered() {
                return Ok(Mode::Leased);
            }
            match lease_tag(l) {
                L_SHARED => return Ok(Mode::Claim),
                L_NONE => {
                    // Take it if the revokers' barrier reaches this process; else the
                    // side is shared for good (a member that claims rules out
                    // plain stores by anyone).
                    let want = if asym::register() {
                        mine
                    } else {
                        lease_word(L_SHARED, 0)
                    };
                    match side
                        .lease
                        .compare_exchange(l, want, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) if want == mine => {
                            // A dead holder's `busy` may still be set: only the holder
                            // writes it.
                            side.index.busy.store(0, Ordering::Release);
                            // SYNC(lease-take): the CAS is AcqRel: a waiter that
                            // flagged a slot and then touched the lease word (see
                            // `arrange_wake`) before it is seen with its flag.
                            return Ok(Mode::Leased);
                        }
                        Ok(_) => return Ok(Mode::Claim),
                        Err(now) => l = now,
                    }
                }
                // Held by another thread (or by this TID in an image that did not
                // register: an exec), or being revoked.
                _ => l = self.revoke(side, l)?,
            }
        }
        // The word kept changing under us (or was forged): look again later.
        Err(Attempt::Revoking)
    }

    /// Revokes the lease `l` (`L_HELD` by another thread, or `L_REVOKING`); returns
    /// the word that replaced it, or `Err(Revoking)` while its live holder is still
    /// inside an operation.
    #[cold]
    fn revoke(&self, side: &Side<'a>, mut l: u64) -> Result<u64, Attempt> {
        if lease_tag(l) == L_HELD {
            let r = lease_word(L_REVOKING, l);
            match side
                .lease
                .compare_exchange(l, r, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => l = r,
                Err(now) => return Ok(now),
            }
        }
        // SYNC(lease-revoke): after this barrier, either the holder's re-read of the
        // lease (after its `busy = 1`) sees REVOKING, or its `busy = 1` is visible.
        asym::heavy();
        let holder = Identity::from_info(l & LEASE_INFO);
        let mut polls = 0;
        // SYNC(lease-revoke): Acquire pairs with the holder's Release `busy = 0`: the
        // stores of its last leased operation are visible.
        while side.index.busy.load(Ordering::Acquire) != 0 {
            if polls == REVOKE_POLLS {
                if !owner_is_dead(holder) {
                    return Err(Attempt::Revoking);
                }
                break;
            }
            polls += 1;
            spin_hint();
        }
        // A dead holder leaves the side to whoever comes next (nobody claimed while
        // it held the lease); a live one may operate again, with claims from now on.
        let next = if owner_is_dead(holder) {
            L_NONE
        } else {
            lease_word(L_SHARED, 0)
        };
        match side
            .lease
            .compare_exchange(l, next, Ordering::SeqCst, Ordering::Acquire)
        {
            Ok(_) => {
                if next == L_NONE {
                    self.q.ctl.leases_passed.fetch_add(1, Ordering::Relaxed);
                }
                // Sleepers that counted on the holder to wake them look again.
                self.q.not_empty.wake();
                self.q.not_full.wake();
                Ok(next)
            }
            Err(now) => Ok(now),
        }
    }

    /// Starts a leased operation on `side`: `In` with the holder's `busy` word set
    /// and the lease looked at again after it (`SYNC(lease-revoke)`), `NotHolder`
    /// if the caller does not hold the lease (nothing written: only the holder writes
    /// `busy`), `Lost` if it was being revoked meanwhile (`busy` cleared again).
    #[inline(always)]
    fn enter_leased(&self, side: &Side<'a>, me: Identity) -> Enter {
        if side.lease.load(Ordering::Relaxed) != held_by(me) || !asym::registered() {
            return Enter::NotHolder;
        }
        side.index.busy.store(1, Ordering::Relaxed);
        // SYNC(lease-revoke): `busy = 1`, then the re-read of the lease.
        asym::light();
        if side.lease.load(Ordering::Relaxed) != held_by(me) {
            side.index.busy.store(0, Ordering::Release);
            return Enter::Lost;
        }
        Enter::In
    }

    /// [`enter_leased`](Self::enter_leased), then where the operation works: the
    /// side's index, its position, that position's lap and slot. `Err` with what a
    /// leased operation returns when it cannot start (`NotHolder` or `Other`).
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn leased_at<R>(
        &self,
        side: &Side<'a>,
        me: Identity,
    ) -> Result<(&'a Index, u64, u64, &'a [AtomicU64]), Leased<R>> {
        match self.enter_leased(side, me) {
            Enter::In => {}
            Enter::NotHolder => return Err(Leased::NotHolder),
            Enter::Lost => return Err(Leased::Other),
        }
        let ix = side.index;
        let pos = ix.pos.load(Ordering::Acquire);
        Ok((ix, pos, self.lap(pos), self.slot(pos)))
    }

    /// After a put (get) completed: wakes the other side's sleepers if they
    /// announced themselves in `asleep` (those waiting on a lease holder's slot, see
    /// "Leases"). `SYNC(lease-sleep)`: the light barrier orders the completing store
    /// before the load of `asleep`; a sleeper's heavy barrier does the rest.
    #[inline]
    fn wake_asleep(&self, asleep: &AtomicU32, side: &Wakeups) {
        asym::light();
        if asleep.load(Ordering::Relaxed) != 0 {
            Self::wake_asleep_slow(asleep, side);
        }
    }

    #[cold]
    fn wake_asleep_slow(asleep: &AtomicU32, side: &Wakeups) {
        if asleep.swap(0, Ordering::SeqCst) != 0 {
            side.wake();
        }
    }

    /// Arranges for the caller (which read its side's wake sequence first) to be
    /// woken when the slot `b` moves on; false if it already did (look again). The
    /// claimant that moves it on wakes the caller's side if it sees the slot's
    /// [`WAITER`] bit (see "Blocking") — but a lease holder on the other side
    /// (`other`) stores plainly and would erase the bit, so against one the caller
    /// announces itself in `asleep` instead, with a heavy barrier before it checks
    /// the slot again (see "Leases").
    #[cold]
    fn arrange_wake(&self, b: Blocker, other: &AtomicU64, asleep: &AtomicU32) -> bool {
        if !(self.leases && leased(other.load(Ordering::Acquire))) {
            if !self.flag(b) {
                return false;
            }
            // SYNC(lease-take): an RMW on the lease word, after the flag: a take
            // ordered after it in the word's modification order reads from it (the
            // take is AcqRel), so its holder sees our flag; one ordered before it is
            // seen here.
            if !(self.leases && leased(other.fetch_or(0, Ordering::AcqRel))) {
                return true;
            }
        }
        asleep.store(1, Ordering::SeqCst);
        // SYNC(lease-sleep): either the holder's load of `asleep` sees our store, or
        // its completing store is seen by our load below.
        asym::heavy();
        self.slot(b.pos)[0].load(Ordering::Acquire) & !WAITER == b.state & !WAITER
    }

    /// Retries `attempt` while a revocation is in progress, up to [`REVOKE_WAIT`]
    /// (for non-blocking calls: a holder preempted mid-operation).
    #[inline]
    fn settle<T>(&self, mut attempt: impl FnMut() -> Result<T, Attempt>) -> Result<T, Attempt> {
        let r = attempt();
        if !matches!(r, Err(Attempt::Revoking)) {
            return r;
        }
        self.settle_slow(attempt)
    }

    #[cold]
    fn settle_slow<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, Attempt>,
    ) -> Result<T, Attempt> {
        let until = Instant::now() + REVOKE_WAIT;
        loop {
            let r = attempt();
            if !matches!(r, Err(Attempt::Revoking)) || cfg!(loom) || expired(Some(until)) {
                return r;
            }
            spin_hint();
        }
    }

    // ---- producers -------------------------------------------------------------------

    /// Puts one message without waiting: `write` fills the slot's payload words.
    /// `Err(Full)`, `Err(Closed)` or `Err(Corrupt)`.
    #[inline]
    pub fn try_put(
        &self,
        me: Identity,
        mut write: impl FnMut(&[AtomicU64]),
    ) -> Result<(), QueueError> {
        match self.settle(|| self.put_attempt(me, true, &mut write)) {
            Ok(()) => Ok(()),
            Err(Attempt::Fail(e)) => Err(e),
            Err(_) => Err(QueueError::Full),
        }
    }

    /// Puts one message, waiting (spin, then sleep) until there is room or `deadline`
    /// passes (`Err(Timeout)`). A deadline already past makes it a [`try_put`]
    /// (`Err(Timeout)` when full).
    ///
    /// [`try_put`]: Self::try_put
    #[inline]
    pub fn put(
        &self,
        me: Identity,
        deadline: Deadline,
        policy: &mut WaitPolicy,
        mut write: impl FnMut(&[AtomicU64]),
    ) -> Result<(), QueueError> {
        match self.put_attempt(me, true, &mut write) {
            Ok(()) => Ok(()),
            Err(Attempt::Fail(e)) => Err(e),
            Err(_) => self.put_slow(me, deadline, policy, &mut write),
        }
    }

    #[cold]
    fn put_slow(
        &self,
        me: Identity,
        deadline: Deadline,
        policy: &mut WaitPolicy,
        write: &mut impl FnMut(&[AtomicU64]),
    ) -> Result<(), QueueError> {
        if expired(deadline) {
            return Err(QueueError::Timeout);
        }
        let hint = &self.q.not_full.spin;
        let spin = Spin::start_or(policy.spin, hint);
        let mut polls = 0u32;
        let mut nap = FIRST_NAP;
        // The producers' lease holder, while a revocation waits for it (see below).
        let mut watch: Option<Watch<'_>> = None;
        loop {
            let blocker = match self.put_attempt(me, false, write) {
                Ok(()) => break,
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::NotNow(b)) => b,
                Err(Attempt::Stalled) => None,
                Err(Attempt::Revoking) => {
                    let (lease, word) = (&self.q.ctl.put_lease, &self.q.not_full.seq);
                    self.watch_holder(lease, word, &mut watch);
                    None
                }
            };
            if polls < spin.budget() {
                polls += 1;
                spin_hint();
                if polls % CLOCK_EVERY == 0 && expired(deadline) {
                    return Err(QueueError::Timeout);
                }
                continue;
            }
            if !policy.slept {
                spin.failed(hint);
            }
            // SYNC(sleep): read the sequence, then flag the slot we wait for.
            let w = self.q.not_full.seq();
            let until = match blocker {
                Some(b) => {
                    let (other, asleep) = (&self.q.ctl.get_lease, &self.q.ctl.putters_asleep);
                    if !self.arrange_wake(b, other, asleep) {
                        continue; // it moved on: look again
                    }
                    if self.is_closed() {
                        return Err(QueueError::Closed);
                    }
                    // Producers never need to probe a peer: a dead claimant in their
                    // way is recovered by consumers, whose frees wake us. The bounded
                    // sleep only guards against a wake lost to a foreign write.
                    probe_deadline(deadline, policy.probe.saturating_mul(10))
                }
                None => self.nap(deadline, &mut nap, policy.probe),
            };
            if expired(deadline) {
                return Err(QueueError::Timeout);
            }
            policy.slept = true;
            self.q.not_full.sleep(w, Some(until));
            polls = spin.budget().saturating_sub(spin.budget() / 4);
        }
        if !policy.slept {
            spin.succeeded(hint);
        }
        Ok(())
    }

    /// Puts messages with `write(i, payload)` for `i in 0..n` while there is room;
    /// returns how many were put (0 when full).
    pub fn try_put_many(
        &self,
        me: Identity,
        n: usize,
        mut write: impl FnMut(usize, &[AtomicU64]),
    ) -> Result<usize, QueueError> {
        let mut done = 0;
        while done < n {
            if self.leases && !self.is_closed() {
                let w = &mut |i: usize, p: &[AtomicU64]| write(done + i, p);
                if let Some(k) = self.leased_many(me, true, n - done, w) {
                    done += k;
                    if done == n {
                        break;
                    }
                }
            }
            match self.settle(|| self.put_attempt(me, true, &mut |p: &[AtomicU64]| write(done, p)))
            {
                Ok(()) => done += 1,
                Err(Attempt::Fail(e)) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// The lease holder's batch put (`producer`) or get: [`put_leased`] or
    /// [`get_leased`] for up to `n` messages in one `busy` section (one look at the
    /// lease, one wake-up check), `f(i, payload)` filling or reading each. How many
    /// it moved (it stops at the first slot not plainly free, or not plainly holding
    /// a message); `None` if the caller does not hold the side's lease.
    ///
    /// [`put_leased`]: Self::put_leased
    /// [`get_leased`]: Self::get_leased
    fn leased_many(
        &self,
        me: Identity,
        producer: bool,
        n: usize,
        f: &mut impl FnMut(usize, &[AtomicU64]),
    ) -> Option<usize> {
        let side = if producer {
            self.producers()
        } else {
            self.consumers()
        };
        if self.enter_leased(&side, me) != Enter::In {
            return None;
        }
        let ix = side.index;
        let mut pos = ix.pos.load(Ordering::Acquire);
        let mut k = 0;
        while k < n {
            let (lap, slot) = (self.lap(pos), self.slot(pos));
            let (from, to) = if producer {
                (make_state(lap, FREE, 0), make_state(lap, READY, 0))
            } else {
                (
                    make_state(lap, READY, 0),
                    make_state(lap.wrapping_add(1), FREE, 0),
                )
            };
            // SYNC(slot-free) for a put, SYNC(slot-publish) for a get: Acquire.
            if slot[0].load(Ordering::Acquire) != from
                || (producer
                    && self.limit != self.cap
                    && !matches!(self.limit_allows(pos), Ok(None)))
            {
                break;
            }
            f(k, &slot[SLOT_HEADER_WORDS..]);
            k += 1;
            #[cfg(loom)]
            if !producer && loom_crash::due() {
                return Some(k); // dead before freeing: the message stays queued
            }
            // SYNC(slot-publish) / SYNC(slot-free): Release; then the index, per
            // message (the other side allows it one step behind a slot, no more).
            store_plain(&slot[0], to);
            #[cfg(loom)]
            if producer && loom_crash::due() {
                return Some(k); // dead: `busy` stays set, `tail` lags
            }
            pos = pos.wrapping_add(1);
            ix.pos.store(pos, Ordering::Release);
        }
        // SYNC(lease-revoke): Release pairs with the revoker's Acquire.
        ix.busy.store(0, Ordering::Release);
        if k > 0 {
            if producer {
                self.wake_asleep(&self.q.ctl.getters_asleep, &self.q.not_empty);
            } else {
                self.wake_asleep(&self.q.ctl.putters_asleep, &self.q.not_full);
            }
        }
        Some(k)
    }

    /// One attempt to claim the slot at `tail`, fill it and publish it.
    #[inline]
    fn put_attempt(
        &self,
        me: Identity,
        speculate: bool,
        write: &mut impl FnMut(&[AtomicU64]),
    ) -> Result<(), Attempt> {
        if self.is_closed() {
            return Err(QueueError::Closed.into());
        }
        if self.leases {
            // The holder's put checks the lease itself; anyone else finds out there
            // what to do.
            let mut r = self.put_leased(me, write);
            if matches!(r, Leased::NotHolder)
                && self.mode_slow(&self.producers(), me)? == Mode::Leased
            {
                r = self.put_leased(me, write);
            }
            match r {
                Leased::Done(()) => return Ok(()),
                Leased::NotNow(b) => return Err(Attempt::NotNow(Some(b))),
                Leased::NotHolder | Leased::Other => {}
            }
        }
        let mut budget = self.budget();
        // SYNC(index)
        let mut pos = self.q.tail.pos.load(Ordering::Acquire);
        // A slot ready for position `pos` holds exactly FREE(lap) unless a consumer
        // sleeps on it: on the fast path, claim it without reading it first (one
        // cache-line transfer instead of two).
        let mut guess = speculate.then(|| make_state(self.lap(pos), FREE, 0));
        loop {
            budget -= 1;
            if budget == 0 {
                return Err(QueueError::Corrupt(
                    "a put made no progress: the ring's states contradict its indices",
                )
                .into());
            }
            let slot = self.slot(pos);
            let lap = self.lap(pos);
            let s = match guess.take() {
                Some(g) => g,
                None => slot[0].load(Ordering::Acquire),
            };
            let d = lap_diff(s, lap);
            let tag = tag_of(s);
            if d == 0 && tag == FREE {
                if self.limit != self.cap {
                    match self.limit_allows(pos) {
                        Ok(None) => {}
                        Ok(Some(bs)) => {
                            // As many messages as the limit allows: full, unless tail
                            // moved.
                            let now = self.q.tail.pos.load(Ordering::Acquire);
                            if now == pos {
                                return Err(match tag_of(bs) {
                                    READING => Attempt::Stalled,
                                    READY => Attempt::NotNow(Some(Blocker {
                                        pos: pos - self.limit,
                                        state: bs,
                                    })),
                                    _ => Attempt::NotNow(None),
                                });
                            }
                            pos = now;
                            continue;
                        }
                        Err(bs) => {
                            let back = self.slot(pos - self.limit);
                            pos = self.recheck(
                                &self.q.tail.pos,
                                pos,
                                back,
                                bs,
                                "a slot's lap contradicts the queue's capacity limit",
                            )?;
                            continue;
                        }
                    }
                }
                // Position `pos` is unclaimed: claim it.
                // SYNC(slot-free): Acquire pairs with the consumer's FREE store.
                // SYNC(sleep): Acquire pairs with a sleeping consumer's flag CAS.
                // Release: as for every claim (see get_attempt).
                match slot[0].compare_exchange(
                    s,
                    make_state(lap, WRITING, me.tid),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        slot[1].store(me.info(), Ordering::Relaxed);
                        // SYNC(index): Release, after the claim.
                        let _ = self.q.tail.pos.compare_exchange(
                            pos,
                            pos.wrapping_add(1),
                            Ordering::Release,
                            Ordering::Relaxed,
                        );
                        #[cfg(loom)]
                        if loom_crash::due() {
                            return Ok(());
                        }
                        write(&slot[SLOT_HEADER_WORDS..]);
                        slot[1].store(0, Ordering::Relaxed);
                        // SYNC(slot-publish): Release.
                        slot[0].store(make_state(lap, READY, 0), Ordering::Release);
                        if has_waiter(s) {
                            self.q.not_empty.wake();
                        }
                        self.wake_asleep(&self.q.ctl.getters_asleep, &self.q.not_empty);
                        return Ok(());
                    }
                    Err(now) if now != s && lap_diff(now, lap) == 0 && tag_of(now) == FREE => {
                        // Unclaimed after all, with other bits than we guessed (a
                        // sleeping consumer's flag): claim what is there.
                        guess = Some(now);
                        continue;
                    }
                    Err(_) => {
                        pos = self.q.tail.pos.load(Ordering::Acquire);
                        continue;
                    }
                }
            }
            if d == 0 {
                // Already claimed this lap: tail lags behind; help it along.
                pos = self.help(&self.q.tail.pos, pos);
                continue;
            }
            if d == BEHIND && tag != FREE {
                // The slot still holds position pos - capacity: full, unless tail moved.
                let now = self.q.tail.pos.load(Ordering::Acquire);
                if now == pos {
                    return Err(match tag {
                        READING => Attempt::Stalled,
                        READY => Attempt::NotNow(Some(Blocker { pos, state: s })),
                        _ => Attempt::NotNow(None),
                    });
                }
                pos = now;
                continue;
            }
            // Anything else contradicts tail == pos unless tail moved meanwhile.
            pos = self.recheck(
                &self.q.tail.pos,
                pos,
                slot,
                s,
                "a slot's lap contradicts the tail index",
            )?;
        }
    }

    /// The lease holder's put (see "Leases"): plain stores only. `Other` if it
    /// found anything but a free slot at `tail` or a full ring (or lost the lease):
    /// take the claim path.
    #[inline(always)]
    fn put_leased(&self, me: Identity, write: &mut impl FnMut(&[AtomicU64])) -> Leased<()> {
        let (ix, pos, lap, slot) = match self.leased_at(&self.producers(), me) {
            Ok(at) => at,
            Err(not) => return not,
        };
        // SYNC(slot-free): Acquire pairs with the consumer's FREE store. Exactly
        // FREE(lap): no flag of a sleeping consumer (the claim path wakes it).
        let s = slot[0].load(Ordering::Acquire);
        if s != make_state(lap, FREE, 0)
            || (self.limit != self.cap && !matches!(self.limit_allows(pos), Ok(None)))
        {
            ix.busy.store(0, Ordering::Release);
            // The message one lap back is still queued (nobody else moves `tail`):
            // full, without touching the slot again.
            if s == make_state(lap.wrapping_sub(1) & LAP_MASK, READY, 0) {
                return Leased::NotNow(Blocker { pos, state: s });
            }
            return Leased::Other;
        }
        write(&slot[SLOT_HEADER_WORDS..]);
        // SYNC(slot-publish): Release. Then the index: a consumer that finds the
        // slot taken while `tail` still says `pos` helps it along.
        store_plain(&slot[0], make_state(lap, READY, 0));
        #[cfg(loom)]
        if loom_crash::due() {
            return Leased::Done(()); // dead: `busy` stays set, `tail` lags
        }
        ix.pos.store(pos.wrapping_add(1), Ordering::Release);
        // SYNC(lease-revoke): Release pairs with the revoker's Acquire.
        ix.busy.store(0, Ordering::Release);
        self.wake_asleep(&self.q.ctl.getters_asleep, &self.q.not_empty);
        Leased::Done(())
    }

    /// Sets the [`WAITER`] bit of the slot a waiter is blocked on, if it still holds
    /// the state the waiter saw there; false if it moved on (the waiter looks again).
    /// `SYNC(sleep)`: the claimant that moves the slot on reads the bit with its
    /// claiming CAS and wakes the waiter's side after it completes.
    ///
    /// Always a CAS, also when the bit was already set (by another waiter): the
    /// check must come *after* the waiter read the wake sequence, or a state seen
    /// before the claim and its wake would send the waiter to sleep on the
    /// sequence that wake already bumped (`loom_wait`'s
    /// `two_consumers_sleeping_on_one_slot_are_both_woken` finds that).
    #[cold]
    fn flag(&self, b: Blocker) -> bool {
        self.slot(b.pos)[0]
            .compare_exchange(
                b.state,
                b.state | WAITER,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// How long a waiter naps while a claimant is mid-copy (nothing to flag: its
    /// completion is a plain store that wakes nobody): doubling naps from
    /// [`FIRST_NAP`] up to `probe`, never past `deadline`. Under loom, a deadline
    /// already past (the futex model then only yields).
    #[cold]
    fn nap(&self, deadline: Deadline, nap: &mut Duration, probe: Duration) -> Instant {
        if cfg!(loom) {
            return Instant::now();
        }
        let until = probe_deadline(deadline, *nap);
        *nap = nap.saturating_mul(2).min(probe);
        until
    }

    /// A slot state `s` at `pos` that contradicts `index`: if `index` still says `pos`
    /// and the slot still holds `s`, the ring contradicts itself (`Corrupt(why)`);
    /// otherwise someone moved on meanwhile, and the caller looks again at the
    /// returned position.
    #[inline]
    fn recheck(
        &self,
        index: &AtomicU64,
        pos: u64,
        slot: &[AtomicU64],
        s: u64,
        why: &'static str,
    ) -> Result<u64, Attempt> {
        let now = index.load(Ordering::Acquire);
        if now == pos && slot[0].load(Ordering::Acquire) == s {
            return Err(QueueError::Corrupt(why).into());
        }
        Ok(now)
    }

    /// Advances `index` from `pos` to `pos + 1` (if nobody did); returns its new value.
    #[inline]
    fn help(&self, index: &AtomicU64, pos: u64) -> u64 {
        // SYNC(index): Release after seeing the slot at `pos` claimed.
        match index.compare_exchange(
            pos,
            pos.wrapping_add(1),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => pos.wrapping_add(1),
            Err(now) => now,
        }
    }

    // ---- consumers -------------------------------------------------------------------

    /// Takes one message without waiting, through the hooks of `t` (see [`Take`]).
    /// `probe`: check whether a claimant blocking the head died (reads `/proc`: a
    /// syscall) and recover its slot, and if there is nothing at the head, scan the
    /// ring for a message stranded by a dead consumer (reads every slot). Callers
    /// that only ever poll should probe now and then (the handles do, once per probe
    /// interval), or a dead claimant could block them forever. `Err(Empty)`, `Err(Closed)` (closed
    /// and drained), `Err(Corrupt)`.
    #[inline]
    pub fn try_get<R>(
        &self,
        me: Identity,
        probe: bool,
        t: &mut impl Take<Out = R>,
    ) -> Result<R, QueueError> {
        match self.settle(|| self.get_attempt(me, probe, false, t)) {
            Ok(r) => Ok(r),
            Err(Attempt::Fail(e)) => Err(e),
            Err(Attempt::NotNow(_)) if probe && !self.is_closed() => {
                match self.take_stranded(me, t)? {
                    Some(r) => Ok(r),
                    None => Err(QueueError::Empty),
                }
            }
            Err(_) => self.empty_or_closed(me, probe, t),
        }
    }

    /// Nothing was found: `Closed` if the ring is closed (after one more look, since a
    /// put may have completed just before the close, and a look for messages stranded
    /// by dead consumers), else `Empty`.
    #[cold]
    fn empty_or_closed<R>(
        &self,
        me: Identity,
        probe: bool,
        t: &mut impl Take<Out = R>,
    ) -> Result<R, QueueError> {
        if !self.is_closed() {
            return Err(QueueError::Empty);
        }
        match self.settle(|| self.get_attempt(me, probe, false, t)) {
            Ok(r) => Ok(r),
            Err(Attempt::Fail(e)) => Err(e),
            Err(Attempt::Stalled) | Err(Attempt::Revoking) => Err(QueueError::Empty),
            // Drained up to the head; a message stranded behind it by a consumer that
            // died mid-get is still owed to someone.
            Err(Attempt::NotNow(_)) => match self.take_stranded(me, t)? {
                Some(r) => Ok(r),
                None => Err(QueueError::Closed),
            },
        }
    }

    /// Takes one message, waiting until one arrives, the ring is closed and drained
    /// (`Err(Closed)`) or `deadline` passes (`Err(Timeout)`). A claimant that blocks
    /// the head is checked for liveness every `policy.probe`, and recovered if dead.
    /// A deadline already past makes it one attempt (`Err(Timeout)` when empty).
    #[inline]
    pub fn get<R>(
        &self,
        me: Identity,
        deadline: Deadline,
        policy: &mut WaitPolicy,
        t: &mut impl Take<Out = R>,
    ) -> Result<R, QueueError> {
        match self.get_attempt(me, false, true, t) {
            Ok(r) => Ok(r),
            Err(Attempt::Fail(e)) => Err(e),
            Err(_) => self.get_slow(me, deadline, policy, t),
        }
    }

    #[cold]
    fn get_slow<R>(
        &self,
        me: Identity,
        deadline: Deadline,
        policy: &mut WaitPolicy,
        t: &mut impl Take<Out = R>,
    ) -> Result<R, QueueError> {
        if expired(deadline) {
            if self.is_closed() {
                return self.empty_or_closed(me, false, t);
            }
            return Err(QueueError::Timeout);
        }
        let hint = &self.q.not_empty.spin;
        let spin = Spin::start_or(policy.spin, hint);
        let mut polls = 0u32;
        let mut nap = FIRST_NAP;
        // A probe (liveness check of a stalled claimant; now and then a scan for
        // messages stranded by dead consumers) is due every `policy.probe`.
        let mut probe_due = false;
        // Read lazily: a message often arrives within the first polls, and a clock
        // read (tens of ns in a VM) would only delay noticing it.
        let mut last_probe: Option<Instant> = None;
        let mut idle_probes = 0u32;
        let mut scan_every = 1u32;
        // The claimants seen at the last scan, watched (see `raw::wait::Probes`): one
        // that dies wakes us for a scan at once.
        let mut watch: Option<Watch<'_>> = None;
        let mut fire_seen = false;
        // The probe interval grows to `policy.probe` as `Probes` schedules it, so that
        // the first probe (and the watch it starts) comes early in a long wait.
        let mut probe_every = first_probe(policy.probe);
        let r = loop {
            let probing = core::mem::take(&mut probe_due);
            let blocker = match self.get_attempt(me, probing, false, t) {
                Ok(r) => break r,
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::NotNow(b)) => {
                    if self.is_closed() {
                        return self.empty_or_closed(me, probing, t);
                    }
                    if probing {
                        // Idle: look for stranded messages at a slowly growing
                        // interval (the scan reads the whole ring).
                        idle_probes += 1;
                        if idle_probes >= scan_every {
                            idle_probes = 0;
                            scan_every = (scan_every * 2).min(64);
                            // Watch the claimants first, then probe them: a death
                            // after this wakes us, one before is found by the scan.
                            if self.watch_claimants(&mut watch) {
                                fire_seen = false;
                            }
                            if let Some(r) = self.take_stranded(me, t)? {
                                break r;
                            }
                        }
                    }
                    b
                }
                Err(Attempt::Stalled) => None,
                Err(Attempt::Revoking) => {
                    // A holder that dies mid-operation wakes us at once.
                    let (lease, word) = (&self.q.ctl.get_lease, &self.q.not_empty.seq);
                    if self.watch_holder(lease, word, &mut watch) {
                        fire_seen = false;
                    }
                    None
                }
            };
            if polls < spin.budget() {
                polls += 1;
                spin_hint();
                if polls % CLOCK_EVERY == 0 {
                    // A long spin still honours the deadline and probes stalled peers.
                    if expired(deadline) {
                        return Err(QueueError::Timeout);
                    }
                    let now = Instant::now();
                    match last_probe {
                        Some(t) if t.until(now) < probe_every => {}
                        Some(_) => {
                            last_probe = Some(now);
                            probe_due = true;
                        }
                        None => last_probe = Some(now),
                    }
                }
                continue;
            }
            if !policy.slept {
                spin.failed(hint);
            }
            // SYNC(sleep): read the sequence, then flag the slot we wait for.
            let w = self.q.not_empty.seq();
            let napping = blocker.is_none();
            let until = match blocker {
                Some(b) => {
                    let (other, asleep) = (&self.q.ctl.put_lease, &self.q.ctl.getters_asleep);
                    if !self.arrange_wake(b, other, asleep) {
                        continue; // it moved on: look again
                    }
                    if self.is_closed() {
                        return self.empty_or_closed(me, false, t);
                    }
                    probe_deadline(deadline, probe_every)
                }
                None => self.nap(deadline, &mut nap, probe_every),
            };
            if expired(deadline) {
                return Err(QueueError::Timeout);
            }
            policy.slept = true;
            if self.q.not_empty.sleep(w, Some(until)) == WaitResult::TimedOut {
                // A flagged sleep times out at the probe interval; naps are shorter:
                // probe after one only once the interval has passed (always under
                // loom, where a nap is a yield and probes cost nothing).
                let now = Instant::now();
                let due = !napping
                    || cfg!(loom)
                    || last_probe.map_or(true, |t| t.until(now) >= probe_every);
                if due {
                    last_probe = Some(now);
                    probe_due = true;
                    probe_every = probe_every.saturating_mul(2).min(policy.probe);
                }
            } else if !fire_seen && watch.as_ref().is_some_and(|w| w.fired().is_some()) {
                // A watched claimant exited: scan now, out of schedule (once).
                fire_seen = true;
                probe_due = true;
                idle_probes = scan_every;
            }
            polls = spin.budget().saturating_sub(spin.budget() / 4);
        };
        if !policy.slept {
            spin.succeeded(hint);
        }
        Ok(r)
    }

    /// Takes up to `n` messages without waiting, `read(i, payload)` for each; returns
    /// how many (0 when empty; `Err(Closed)` when closed and drained).
    pub fn try_get_many(
        &self,
        me: Identity,
        n: usize,
        mut read: impl FnMut(usize, &[AtomicU64]),
    ) -> Result<usize, QueueError> {
        let mut done = 0;
        while done < n {
            if self.leases {
                let r = &mut |i: usize, p: &[AtomicU64]| read(done + i, p);
                if let Some(k) = self.leased_many(me, false, n - done, r) {
                    done += k;
                    if done == n {
                        break;
                    }
                }
            }
            let mut t = TakeWith(|p: &[AtomicU64]| read(done, p));
            match self.settle(|| self.get_attempt(me, false, done > 0, &mut t)) {
                Ok(()) => done += 1,
                Err(Attempt::Fail(e)) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if done > 0 {
            return Ok(done);
        }
        if n > 0 && self.is_closed() {
            // One more look: a put may have completed right before the close.
            let mut t = TakeWith(|p: &[AtomicU64]| read(0, p));
            return match self.settle(|| self.get_attempt(me, false, false, &mut t)) {
                Ok(()) => Ok(1),
                Err(Attempt::Fail(e)) => Err(e),
                Err(Attempt::Stalled) | Err(Attempt::Revoking) => Ok(0),
                Err(Attempt::NotNow(_)) => Err(QueueError::Closed),
            };
        }
        Ok(0)
    }

    /// Blocks until at least one message can be taken (as [`get`](Self::get)), then
    /// takes up to `n` without waiting more.
    pub fn get_many(
        &self,
        me: Identity,
        deadline: Deadline,
        policy: &mut WaitPolicy,
        n: usize,
        mut read: impl FnMut(usize, &[AtomicU64]),
    ) -> Result<usize, QueueError> {
        if n == 0 {
            return Ok(0);
        }
        self.get(
            me,
            deadline,
            policy,
            &mut TakeWith(|p: &[AtomicU64]| read(0, p)),
        )?;
        let more = self
            .try_get_many(me, n - 1, |i, p| read(i + 1, p))
            .unwrap_or(0);
        Ok(1 + more)
    }

    /// One attempt to take the message at `head`.
    #[inline]
    fn get_attempt<R, T: Take<Out = R>>(
        &self,
        me: Identity,
        probe: bool,
        speculate: bool,
        t: &mut T,
    ) -> Result<R, Attempt> {
        if self.leases {
            let mut r = self.get_leased(me, t);
            if matches!(r, Leased::NotHolder)
                && self.mode_slow(&self.consumers(), me)? == Mode::Leased
            {
                r = self.get_leased(me, t);
            }
            match r {
                Leased::Done(r) => return Ok(r),
                Leased::NotNow(b) if !probe => return Err(Attempt::NotNow(Some(b))),
                _ => {}
            }
        }
        let mut budget = self.budget();
        // SYNC(index)
        let mut pos = self.q.head.pos.load(Ordering::Acquire);
        // A slot holding the message for position `pos` holds exactly READY(lap)
        // unless a producer sleeps on it: when the caller expects a message, claim it
        // without reading it first — one cache-line transfer instead of a read and
        // then an upgrade for the CAS (what `put_attempt` does for FREE slots). Only
        // for a `Take` whose `admit` has nothing to check before the claim.
        let mut guess = (speculate && T::ADMITS_ALL).then(|| make_state(self.lap(pos), READY, 0));
        loop {
            budget -= 1;
            if budget == 0 {
                return Err(QueueError::Corrupt(
                    "a get made no progress: the ring's states contradict its indices",
                )
                .into());
            }
            let slot = self.slot(pos);
            let lap = self.lap(pos);
            let guessed = guess.take();
            let s = match guessed {
                Some(g) => g,
                None => slot[0].load(Ordering::Acquire),
            };
            let d = lap_diff(s, lap);
            let tag = tag_of(s);
            if d == 0 && tag == READY {
                if !t.admit(&slot[SLOT_HEADER_WORDS..]) {
                    // Only meaningful if the slot did not change while we looked.
                    if slot[0].load(Ordering::Acquire) == s {
                        return Err(QueueError::WontFit(
                            slot[SLOT_HEADER_WORDS].load(Ordering::Relaxed),
                        )
                        .into());
                    }
                    pos = self.q.head.pos.load(Ordering::Acquire);
                    continue;
                }
                // SYNC(slot-publish): Acquire pairs with the producer's READY store.
                // SYNC(sleep): Acquire pairs with a sleeping producer's flag CAS.
                // Release too: a joinable queue's held count, raised before this
                // claim, must be visible to whoever sees the claim.
                let claim = slot[0].compare_exchange(
                    s,
                    make_state(lap, READING, me.tid),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                if let (Err(now), Some(_)) = (claim, guessed) {
                    // The guess was wrong (no message yet, another state, a sleeping
                    // producer's flag): go on from what the slot holds, at this
                    // position (Acquire, as a load of it would be).
                    guess = Some(now);
                    continue;
                }
                if claim.is_ok() {
                    slot[1].store(me.info(), Ordering::Relaxed);
                    // SYNC(index): Release, after the claim.
                    let _ = self.q.head.pos.compare_exchange(
                        pos,
                        pos.wrapping_add(1),
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                    #[cfg(loom)]
                    if loom_crash::due() {
                        return Err(Attempt::Stalled);
                    }
                    return Ok(self.finish_read(slot, lap, has_waiter(s), t));
                }
                t.lost();
                pos = self.q.head.pos.load(Ordering::Acquire);
                continue;
            }
            if (d == 0 && tag == READING) || d == 1 {
                // Position pos was taken (or skipped) already: head lags; help it. The
                // slot's state proves that a put at pos completed: `tail` is past it,
                // or still at it if a lease holder published and has not advanced it
                // yet (help it too); if tail says anything else, the ring is corrupt.
                let tail = self.q.tail.pos.load(Ordering::Acquire);
                if tail == pos {
                    self.help(&self.q.tail.pos, pos);
                } else if (tail.wrapping_sub(pos) as i64) < 0 {
                    return Err(
                        QueueError::Corrupt("a slot was consumed beyond the tail index").into(),
                    );
                }
                pos = self.help(&self.q.head.pos, pos);
                continue;
            }
            if d == 0 && tag == WRITING {
                // A put is copying its message in.
                if probe && self.claimant_is_dead(slot, s) {
                    self.tombstone(slot, pos, s)?;
                    pos = self.q.head.pos.load(Ordering::Acquire);
                    continue;
                }
                return Err(Attempt::Stalled);
            }
            if (d == 0 && tag == FREE) || (d == BEHIND && tag == READING) {
                // Nothing at pos yet (for READING, the previous lap's consumer is still
                // copying — or died: its message is re-delivered from here).
                if d == BEHIND && probe && self.claimant_is_dead(slot, s) {
                    if let Some(r) = self.take_over(me, slot, s, t) {
                        return Ok(r);
                    }
                    continue;
                }
                // The slot proves that nothing was queued at `pos` when we read it:
                // empty. Polling consumers stop here, without touching the producers'
                // `tail` line; probing ones cross-check it against the indices. A
                // sleeper waits for the put at `pos` (FREE), or for the consumer
                // still copying the previous lap out (READING: nothing to flag).
                let b = (tag == FREE).then_some(Blocker { pos, state: s });
                if !probe {
                    return Err(Attempt::NotNow(b));
                }
                let tail = self.q.tail.pos.load(Ordering::Acquire);
                if tail == pos {
                    return Err(Attempt::NotNow(b));
                }
                if tail.wrapping_add(1) == pos {
                    // A lease holder published `pos - 1`, which was got already, and
                    // has not advanced `tail` yet (or died first): help it along.
                    self.help(&self.q.tail.pos, tail);
                    return Err(Attempt::NotNow(b));
                }
                // tail > pos: a producer claimed pos after we looked (the state must
                // have moved on), or head moved; anything else is corruption.
                pos = self.recheck(
                    &self.q.head.pos,
                    pos,
                    slot,
                    s,
                    "an unclaimed slot lies behind the tail index",
                )?;
                continue;
            }
            // Any other state contradicts head == pos, unless head moved meanwhile.
            pos = self.recheck(
                &self.q.head.pos,
                pos,
                slot,
                s,
                "a slot's lap contradicts the head index",
            )?;
        }
    }

    /// The lease holder's get (see "Leases"): plain stores only. `NotNow` when
    /// the slot at `head` is free (nothing queued), `Other` if it found anything
    /// else but a message (or lost the lease, or `t` did not admit the message):
    /// take the claim path.
    #[inline(always)]
    fn get_leased<R>(&self, me: Identity, t: &mut impl Take<Out = R>) -> Leased<R> {
        let (ix, pos, lap, slot) = match self.leased_at(&self.consumers(), me) {
            Ok(at) => at,
            Err(not) => return not,
        };
        // SYNC(slot-publish): Acquire pairs with the producer's READY store. Exactly
        // READY(lap): no flag of a sleeping producer (the claim path wakes it).
        let s = slot[0].load(Ordering::Acquire);
        if s != make_state(lap, READY, 0) || !t.admit(&slot[SLOT_HEADER_WORDS..]) {
            ix.busy.store(0, Ordering::Release);
            // Nothing put at `head` yet (as the claim path's empty case, which a
            // probing caller still runs to cross-check the indices).
            if s == make_state(lap, FREE, 0) {
                return Leased::NotNow(Blocker { pos, state: s });
            }
            return Leased::Other;
        }
        let r = t.take(&slot[SLOT_HEADER_WORDS..]);
        #[cfg(loom)]
        if loom_crash::due() {
            return Leased::Done(r); // dead before freeing: the message stays queued
        }
        // SYNC(slot-free): Release. Then the index (as a claim's help would).
        store_plain(&slot[0], make_state(lap.wrapping_add(1), FREE, 0));
        ix.pos.store(pos.wrapping_add(1), Ordering::Release);
        // SYNC(lease-revoke): Release pairs with the revoker's Acquire.
        ix.busy.store(0, Ordering::Release);
        self.wake_asleep(&self.q.ctl.putters_asleep, &self.q.not_full);
        Leased::Done(r)
    }

    /// Copies a claimed message out and frees the slot for the next lap; wakes the
    /// producers if one flagged the slot (`waiter`, read by the claim).
    #[inline]
    fn finish_read<R>(
        &self,
        slot: &[AtomicU64],
        lap: u64,
        waiter: bool,
        t: &mut impl Take<Out = R>,
    ) -> R {
        let r = t.take(&slot[SLOT_HEADER_WORDS..]);
        slot[1].store(0, Ordering::Relaxed);
        // SYNC(slot-free): Release.
        slot[0].store(make_state(lap.wrapping_add(1), FREE, 0), Ordering::Release);
        if waiter {
            self.q.not_full.wake();
        }
        self.wake_asleep(&self.q.ctl.putters_asleep, &self.q.not_full);
        r
    }

    /// Frees the slot of a put whose producer died mid-copy (state `s` = `WRITING`).
    #[cold]
    fn tombstone(&self, slot: &[AtomicU64], pos: u64, s: u64) -> Result<(), QueueError> {
        // The producer may have died before advancing tail past its claim.
        let tail = self.q.tail.pos.load(Ordering::Acquire);
        if tail == pos {
            self.help(&self.q.tail.pos, pos);
        } else if tail.wrapping_sub(pos) as i64 <= 0 {
            return Err(QueueError::Corrupt(
                "a claimed slot lies beyond the tail index",
            ));
        }
        let lap = lap_of(s);
        // The dead owner's record goes first (see "Owner records").
        slot[1].store(0, Ordering::Relaxed);
        // SYNC(slot-free): Release, as a consumer's free.
        if slot[0]
            .compare_exchange(
                s,
                make_state(lap.wrapping_add(1), FREE, 0),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.help(&self.q.head.pos, pos);
            self.q.ctl.skipped.fetch_add(1, Ordering::Relaxed);
            self.q.not_full.wake();
        }
        Ok(())
    }

    /// Takes over the claim of a consumer that died mid-copy (state `s` =
    /// `READING(lap, dead)`) and delivers its message. `None` if someone else did.
    #[cold]
    fn take_over<R>(
        &self,
        me: Identity,
        slot: &[AtomicU64],
        s: u64,
        t: &mut impl Take<Out = R>,
    ) -> Option<R> {
        let lap = lap_of(s);
        if !t.admit(&slot[SLOT_HEADER_WORDS..]) {
            return None;
        }
        // The dead owner's record goes first (see "Owner records").
        slot[1].store(0, Ordering::Relaxed);
        // SYNC(slot-publish): Acquire; the message was published before `s`. Release:
        // as for an ordinary claim.
        if slot[0]
            .compare_exchange(
                s,
                make_state(lap, READING, me.tid),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            t.lost();
            return None;
        }
        slot[1].store(me.info(), Ordering::Relaxed);
        self.q.ctl.redelivered.fetch_add(1, Ordering::Relaxed);
        // Producers wait on a READING slot by napping, not flagging: wake them anyway
        // (this path is rare), so they need not finish their nap.
        Some(self.finish_read(slot, lap, true, t))
    }

    /// Scans the whole ring for a message stranded behind `head` by a consumer that
    /// died mid-copy, and takes it over. `Ok(None)` if there is none.
    #[cold]
    pub fn take_stranded<R>(
        &self,
        me: Identity,
        t: &mut impl Take<Out = R>,
    ) -> Result<Option<R>, QueueError> {
        for i in 0..self.cap {
            let slot = self.slot(i);
            let s = slot[0].load(Ordering::Acquire);
            if tag_of(s) != READING || !self.claimant_is_dead(slot, s) {
                continue;
            }
            if let Some(r) = self.take_over(me, slot, s, t) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Replaces `watch` by a watch on the threads that hold claims now (up to
    /// [`WATCHED_CLAIMANTS`] of them; `WRITING` and `READING` slots), unless it is on
    /// the same ones (fired or not: see `Probes::watch`); true if it replaced it.
    /// Scans the ring (no `/proc` read). The watcher wakes the consumers' futex word,
    /// so a sleeper returns as `Woken` and looks at `watch`.
    fn watch_claimants(&self, watch: &mut Option<Watch<'a>>) -> bool {
        let mut tasks = [Task::Thread(0); WATCHED_CLAIMANTS];
        let mut n = 0;
        for i in 0..self.cap {
            let s = self.slot(i)[0].load(Ordering::Relaxed);
            let tid = tid_of(s);
            let tag = tag_of(s);
            if (tag == READING || tag == WRITING) && tid != 0 {
                let task = Task::Thread(tid);
                if !tasks[..n].contains(&task) {
                    tasks[n] = task;
                    n += 1;
                    if n == WATCHED_CLAIMANTS {
                        break;
                    }
                }
            }
        }
        if watch.as_ref().is_some_and(|w| w.covers(&tasks[..n])) {
            return false;
        }
        *watch = None;
        *watch = watch_exit(&self.q.not_empty.seq, &tasks[..n]);
        true
    }

    /// Replaces `watch` by a watch on the thread named in `lease` (a holder whose
    /// revocation waits for its operation in flight), unless it is on that one
    /// already; true if it replaced it. The watcher wakes `word`, the side's futex
    /// word the caller naps on, so a holder that dies mid-operation is found at once
    /// rather than at the end of a nap.
    fn watch_holder(
        &self,
        lease: &AtomicU64,
        word: &'a AtomicU32,
        watch: &mut Option<Watch<'a>>,
    ) -> bool {
        let l = lease.load(Ordering::Relaxed);
        if !leased(l) {
            return false;
        }
        let task = [Task::Thread(Identity::from_info(l & LEASE_INFO).tid)];
        if watch.as_ref().is_some_and(|w| w.covers(&task)) {
            return false;
        }
        *watch = None;
        *watch = watch_exit(word, &task);
        true
    }

    /// Messages stranded by dead consumers (READING slots whose owner died): the
    /// count joiners add to [`len`](Self::len). Scans the ring (a `/proc` read per
    /// READING slot).
    pub fn count_stranded(&self) -> usize {
        let mut n = 0;
        for i in 0..self.cap {
            let slot = self.slot(i);
            let s = slot[0].load(Ordering::Acquire);
            if tag_of(s) == READING && self.claimant_is_dead(slot, s) {
                n += 1;
            }
        }
        n
    }

    /// Frees the head slot if it is a tombstone (a put whose producer died); returns
    /// true if it did. For callers that wait on the ring without consuming (join).
    pub fn skip_dead_head(&self) -> Result<bool, QueueError> {
        let pos = self.q.head.pos.load(Ordering::Acquire);
        let slot = self.slot(pos);
        let s = slot[0].load(Ordering::Acquire);
        if lap_diff(s, self.lap(pos)) == 0 && tag_of(s) == WRITING && self.claimant_is_dead(slot, s)
        {
            self.tombstone(slot, pos, s)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// True when the claimant named in state `s` has certainly exited and the slot did
    /// not change while we looked.
    #[cold]
    fn claimant_is_dead(&self, slot: &[AtomicU64], s: u64) -> bool {
        let tid = tid_of(s);
        let info = slot[1].load(Ordering::Relaxed);
        let recorded = Identity::from_info(info);
        // The record is written after the claim and cleared before it ends: if it names
        // another thread (or none), only the TID's existence can be judged.
        let claimant = if recorded.tid == tid {
            recorded
        } else {
            Identity { tid, start: 0 }
        };
        // TID 0 cannot own anything: a claim without an owner is recoverable.
        (tid == 0 || owner_is_dead(claimant)) && slot[0].load(Ordering::Acquire) == s
    }
}

/// Loom only: a thread that dies right after its next claim, to model a SIGKILL
/// between a claim and its completion.
#[cfg(loom)]
pub mod loom_crash {
    use core::cell::Cell;

    loom::thread_local! {
        static DIE: Cell<bool> = Cell::new(false);
    }

    /// The calling loom thread dies (is declared dead, and its put or get stops)
    /// right after the next slot it claims — for a lease holder, right after its
    /// put publishes (before `tail` moves) or its get copies (before the slot is
    /// freed); its call then returns a meaningless result, and the thread must not
    /// touch the ring again.
    pub fn die_after_next_claim() {
        DIE.with(|d| d.set(true));
    }

    /// True if the thread asked to die and has not claimed anything since (so it
    /// did not die).
    pub fn pending() -> bool {
        DIE.with(|d| d.get())
    }

    pub(super) fn due() -> bool {
        let d = DIE.with(|d| d.replace(false));
        if d {
            crate::sync::loom_declare_dead();
        }
        d
    }
}

// ---- payload helpers ----------------------------------------------------------------

/// Words needed for `bytes` bytes.
#[inline]
pub const fn words_for(bytes: usize) -> usize {
    bytes.div_ceil(8)
}

/// Copies `src` into payload words (Relaxed atomic stores; the slot's claim orders
/// them). The last word is zero-padded. `dst` must hold `words_for(src.len())` words.
#[inline]
pub fn store_bytes(dst: &[AtomicU64], src: &[u8]) {
    let mut chunks = src.chunks_exact(8);
    for (w, c) in dst.iter().zip(&mut chunks) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        if let Some(w) = dst.get(src.len() / 8) {
            w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
    }
}

/// Copies payload words out into `dst` (Relaxed atomic loads). `src` must hold
/// `words_for(dst.len())` words.
#[inline]
pub fn load_bytes(src: &[AtomicU64], dst: &mut [u8]) {
    let n = dst.len();
    let mut chunks = dst.chunks_exact_mut(8);
    for (w, c) in src.iter().zip(&mut chunks) {
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        if let Some(w) = src.get(n / 8) {
            let b = w.load(Ordering::Relaxed).to_ne_bytes();
            let k = rest.len();
            rest.copy_from_slice(&b[..k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_word_round_trips() {
        let s = make_state(12345, READING, 77);
        assert_eq!(lap_of(s), 12345);
        assert_eq!(tag_of(s), READING);
        assert_eq!(tid_of(s), 77);
        assert_eq!(lap_diff(make_state(LAP_MASK, FREE, 0), 0), BEHIND);
        assert_eq!(lap_diff(make_state(0, FREE, 0), LAP_MASK), 1);
    }

    #[test]
    fn claims_show_a_put_in_progress_and_its_owner() {
        let q = RawQueue::new();
        let words: Vec<AtomicU64> = (0..region_words(4, 1).unwrap())
            .map(|_| AtomicU64::new(0))
            .collect();
        // A lease holder's put makes no claim: this is about claims.
        let ring = Ring::new(&q, &words, 4, 1).unwrap().with_leases(false);
        let me = Identity {
            tid: 4242,
            start: 7,
        };
        ring.try_put(me, |_| {}).unwrap();
        let mut seen = Vec::new();
        ring.try_put(me, |_| {
            ring.for_each_claim(|slot, writing, owner| seen.push((slot, writing, owner)))
        })
        .unwrap();
        assert_eq!(seen, [(1, true, me)], "the put in progress, in slot 1");
        let mut after = 0;
        ring.for_each_claim(|_, _, _| after += 1);
        assert_eq!(after, 0, "published slots are not claimed");
    }

    fn ring_of<'a>(q: &'a RawQueue, words: &'a [AtomicU64]) -> Ring<'a> {
        Ring::new(q, words, 4, 1).unwrap().with_leases(true)
    }

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    /// A thread that never lived (no such TID at that start time).
    const GHOST: Identity = Identity {
        tid: 4_000_000,
        start: 7,
    };

    #[test]
    #[cfg(not(loom))]
    fn a_sole_member_takes_the_lease_and_a_second_live_one_makes_the_side_shared() {
        if !crate::sync::asym::register() {
            return; // no expedited barrier here: nobody takes leases
        }
        let (q, w) = (RawQueue::new(), words(region_words(4, 1).unwrap()));
        let ring = ring_of(&q, &w);
        let me = crate::sync::current_identity();
        ring.try_put(me, |p| p[0].store(1, Ordering::Relaxed))
            .unwrap();
        assert_eq!(q.ctl.put_lease.load(Ordering::Relaxed), held_by(me));
        let mut seen = 0;
        ring.for_each_claim(|_, _, _| seen += 1);
        assert_eq!(seen, 0, "a leased put leaves no claim");
        let got = ring
            .try_get(
                me,
                false,
                &mut TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed)),
            )
            .unwrap();
        assert_eq!(got, 1);
        assert_eq!(q.ctl.get_lease.load(Ordering::Relaxed), held_by(me));
        // Another thread's put revokes the live holder's lease: claims for good.
        let other = Identity {
            tid: me.tid,
            start: me.start + 1,
        };
        ring.try_put(other, |p| p[0].store(2, Ordering::Relaxed))
            .unwrap();
        assert_eq!(lease_tag(q.ctl.put_lease.load(Ordering::Relaxed)), L_SHARED);
        ring.try_put(me, |p| p[0].store(3, Ordering::Relaxed))
            .unwrap();
        assert_eq!(lease_tag(q.ctl.put_lease.load(Ordering::Relaxed)), L_SHARED);
        let mut take = TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed));
        assert_eq!(ring.try_get(me, false, &mut take), Ok(2));
        assert_eq!(ring.try_get(me, false, &mut take), Ok(3));
        assert_eq!(ring.try_get(me, false, &mut take), Err(QueueError::Empty));
        assert_eq!(ring.len(), 0);
    }

    #[test]
    #[cfg(not(loom))]
    fn a_dead_holders_lease_passes_to_the_next_member_even_mid_operation() {
        if !crate::sync::asym::register() {
            return;
        }
        let (q, w) = (RawQueue::new(), words(region_words(4, 1).unwrap()));
        let ring = ring_of(&q, &w);
        let me = crate::sync::current_identity();
        // A holder that died inside a put, after publishing, before advancing tail.
        q.ctl.put_lease.store(held_by(GHOST), Ordering::Relaxed);
        q.tail.busy.store(1, Ordering::Relaxed);
        ring.slot(0)[2].store(10, Ordering::Relaxed);
        ring.slot(0)[0].store(make_state(0, READY, 0), Ordering::Relaxed);
        ring.try_put(me, |p| p[0].store(11, Ordering::Relaxed))
            .unwrap();
        assert_eq!(q.ctl.put_lease.load(Ordering::Relaxed), held_by(me));
        assert_eq!(q.tail.busy.load(Ordering::Relaxed), 0);
        assert_eq!(ring.len(), 2);
        // A consumer holder that died mid-get, after freeing, before advancing head.
        q.ctl.get_lease.store(held_by(GHOST), Ordering::Relaxed);
        q.head.busy.store(1, Ordering::Relaxed);
        ring.slot(0)[0].store(make_state(1, FREE, 0), Ordering::Relaxed);
        let mut take = TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed));
        assert_eq!(ring.try_get(me, false, &mut take), Ok(11));
        assert_eq!(q.ctl.get_lease.load(Ordering::Relaxed), held_by(me));
        assert_eq!(ring.try_get(me, false, &mut take), Err(QueueError::Empty));
        assert_eq!(ring.indices(), (2, 2));
    }

    #[test]
    #[cfg(not(loom))]
    fn a_live_holder_stuck_inside_an_operation_delays_others_only_briefly() {
        if !crate::sync::asym::register() {
            return;
        }
        let (q, w) = (RawQueue::new(), words(region_words(4, 1).unwrap()));
        let ring = ring_of(&q, &w);
        let me = crate::sync::current_identity();
        // A live holder (this thread, as another start time would not be: use the
        // real identity for the holder and a stranger for the caller) whose busy
        // word stays set, as a forged or preempted one would.
        q.ctl.put_lease.store(held_by(me), Ordering::Relaxed);
        q.tail.busy.store(1, Ordering::Relaxed);
        let stranger = Identity {
            tid: me.tid,
            start: me.start + 1,
        };
        let t = Instant::now();
        assert_eq!(ring.try_put(stranger, |_| {}), Err(QueueError::Full));
        assert!(t.until(Instant::now()) < Duration::from_secs(1));
        assert_eq!(
            lease_tag(q.ctl.put_lease.load(Ordering::Relaxed)),
            L_REVOKING
        );
        // A blocking put gives up at its deadline.
        let mut policy = WaitPolicy::default();
        let until = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            ring.put(stranger, Some(until), &mut policy, |_| {}),
            Err(QueueError::Timeout)
        );
        // Once the operation ends, the revocation completes.
        q.tail.busy.store(0, Ordering::Release);
        ring.try_put(stranger, |p| p[0].store(5, Ordering::Relaxed))
            .unwrap();
        assert_eq!(lease_tag(q.ctl.put_lease.load(Ordering::Relaxed)), L_SHARED);
        let mut take = TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed));
        assert_eq!(ring.try_get(me, false, &mut take), Ok(5));
    }

    #[test]
    fn byte_copies_round_trip() {
        let words: [AtomicU64; 3] = Default::default();
        for len in 0..=24 {
            let src: [u8; 24] = core::array::from_fn(|i| i as u8 + 1);
            store_bytes(&words, &src[..len]);
            let mut dst = [0u8; 24];
            load_bytes(&words, &mut dst[..len]);
            assert_eq!(dst[..len], src[..len]);
        }
    }
}
