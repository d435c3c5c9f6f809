//! [`Queue<T>`]: a named, bounded, lock-free MPMC queue of plain-data values that
//! survives any producer or consumer being killed; and the ring handle shared with
//! [`JoinableQueue`](crate::JoinableQueue) and [`ByteQueue`](crate::ByteQueue).

use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::queue::{
    load_bytes, region_words, store_bytes, words_for, QueueError, RawQueue, RecoveryStats, Ring,
    TakeWith, WaitPolicy, MAX_CAPACITY, SLOT_HEADER_WORDS,
};
use crate::raw::SharedState;
use crate::segment::{self, HeaderImage, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::current_identity;
use crate::sys::clock::{deadline_after, Deadline};
use crate::{Error, Result};
use bytemuck::Pod;
use core::fmt;
use core::marker::PhantomData;
use std::time::Duration;

/// Version of the queue layout, stored in the header parameters. Format 3 keeps a
/// sleeper's bit in each slot state (laps shrank by a bit) and a spin hint per side;
/// format 2 stored the requested capacity (the limit; the ring has the next power
/// of two of slots); format 1 stored the slot count, a power of two, which was also
/// the limit.
const QUEUE_FORMAT: u64 = 3;
/// The oldest format this build still opens: slot states of formats 1 and 2 read
/// differently, so a process of an older build and one of this build must not share
/// a queue (each refuses the other's).
const QUEUE_FORMAT_MIN: u64 = 3;

/// A raw state struct that contains a ring header.
pub(crate) trait HasRing: SharedState {
    fn ring_header(&self) -> &RawQueue;
}

impl HasRing for RawQueue {
    fn ring_header(&self) -> &RawQueue {
        self
    }
}

/// Checks a requested capacity (in messages): 0 or more than [`MAX_CAPACITY`] is an
/// error. The ring gets [`ring_slots`] slots for it.
pub(crate) fn check_capacity(what: &str, capacity: usize) -> Result<usize> {
    if capacity == 0 {
        return Err(Error::invalid(format!(
            "{what} needs a capacity of at least 1"
        )));
    }
    if capacity > MAX_CAPACITY {
        return Err(Error::invalid(format!(
            "{what}: a capacity of {capacity} is over the limit of {MAX_CAPACITY} slots"
        )));
    }
    Ok(capacity)
}

/// Slots of the ring that holds at most `capacity` messages: the next power of two.
pub(crate) fn ring_slots(capacity: usize) -> usize {
    capacity.next_power_of_two()
}

/// Bytes of the slot region for `capacity` slots of `payload_words` words.
pub(crate) fn region_bytes(what: &str, capacity: usize, payload_words: usize) -> Result<usize> {
    region_words(capacity, payload_words)
        .and_then(|w| w.checked_mul(8))
        .ok_or_else(|| {
            Error::invalid(format!(
                "{what}: {capacity} slots of {payload_words} words do not fit in memory"
            ))
        })
}

/// A named ring: the segment, the validated geometry and the wait tuning. Shared by
/// every MPMC queue type.
pub(crate) struct RingHandle<R> {
    obj: Object<R>,
    /// Slots of the ring (a power of two).
    cap: usize,
    /// Most messages at once (`1..=cap`): the capacity asked for.
    limit: usize,
    payload_words: usize,
    probe: Duration,
    /// Polls before sleeping: `None` for the adaptive budget kept in the ring header.
    spin: Option<u32>,
    /// When a non-blocking get last probed for dead claimants (monotonic ns;
    /// process-local).
    last_probe: AtomicU64,
}

impl<R> Clone for RingHandle<R> {
    fn clone(&self) -> Self {
        RingHandle {
            obj: self.obj.clone(),
            cap: self.cap,
            limit: self.limit,
            payload_words: self.payload_words,
            probe: self.probe,
            spin: self.spin,
            last_probe: AtomicU64::new(self.last_probe.load(Ordering::Relaxed)),
        }
    }
}

/// What a queue type stores in its header: kind, element type, parameters.
pub(crate) struct RingSpec {
    pub kind: ObjectKind,
    pub ty: TypeInfo,
    /// Capacity in messages, as asked (checked); the ring has [`ring_slots`] slots.
    pub cap: usize,
    pub payload_words: usize,
    /// Kind-specific parameter (element size, max message length).
    pub extra: u64,
}

impl RingSpec {
    fn object_spec(&self, what: &str) -> Result<ObjectSpec> {
        Ok(ObjectSpec {
            kind: self.kind,
            ty: self.ty,
            params: [
                self.cap as u64,
                self.payload_words as u64,
                self.extra,
                QUEUE_FORMAT,
            ],
            trailing: region_bytes(what, ring_slots(self.cap), self.payload_words)?,
        })
    }
}

impl<R: HasRing> RingHandle<R> {
    pub fn create(name: &str, opts: &Options, spec: RingSpec) -> Result<Self> {
        let ospec = spec.object_spec(&format!("queue '{name}'"))?;
        let obj = Object::create(name, opts, ospec, |_, _| Ok(()))?;
        Ok(Self::from_obj(obj, spec.cap, spec.payload_words))
    }

    pub fn anonymous(spec: RingSpec) -> Result<Self> {
        let ospec = spec.object_spec("anonymous queue")?;
        let obj = Object::anonymous(ospec, |_, _| Ok(()))?;
        Ok(Self::from_obj(obj, spec.cap, spec.payload_words))
    }

    /// Opens `name`; `check_extra` validates the kind-specific parameter and returns
    /// the payload words it implies.
    pub fn open(
        name: &str,
        opts: &Options,
        kind: ObjectKind,
        ty: TypeInfo,
        check_extra: impl FnOnce(u64) -> Result<usize>,
    ) -> Result<Self> {
        let mut geometry = (0, 0);
        let obj = Object::open(name, opts, kind, ty, |img: &HeaderImage| {
            let [cap, words, extra, format] = img.params;
            if !(QUEUE_FORMAT_MIN..=QUEUE_FORMAT).contains(&format) {
                return Err(Error::corrupt(
                    name,
                    format!(
                        "queue format {format} (this build reads formats {QUEUE_FORMAT_MIN} to {QUEUE_FORMAT})"
                    ),
                ));
            }
            let cap = usize::try_from(cap).unwrap_or(usize::MAX);
            if cap == 0 || cap > MAX_CAPACITY || (format == 1 && !cap.is_power_of_two()) {
                return Err(Error::corrupt(
                    name,
                    format!("a capacity of {cap} slots is impossible"),
                ));
            }
            let want = check_extra(extra)?;
            if words != want as u64 {
                return Err(Error::corrupt(
                    name,
                    format!("slots of {words} words, but its element needs {want}"),
                ));
            }
            geometry = (cap, want);
            region_bytes(name, ring_slots(cap), want)
        })?;
        Ok(Self::from_obj(obj, geometry.0, geometry.1))
    }

    /// `limit`: the capacity in messages (validated); the ring has
    /// [`ring_slots`]`(limit)` slots.
    fn from_obj(obj: Object<R>, limit: usize, payload_words: usize) -> Self {
        RingHandle {
            obj,
            cap: ring_slots(limit),
            limit,
            payload_words,
            probe: DEFAULT_PROBE,
            spin: None,
            last_probe: AtomicU64::new(0),
        }
    }

    /// The ring view. Geometry comes from the validated private copy.
    #[inline]
    pub fn ring(&self) -> Result<Ring<'_>> {
        self.ring_view()
            .ok_or_else(|| self.corrupt("its geometry is invalid"))
    }

    /// [`ring`](Self::ring) as an `Option`: blocking calls build the view in
    /// registers this way rather than through a `Result` with a large error.
    #[inline]
    fn ring_view(&self) -> Option<Ring<'_>> {
        let n = self.cap * (SLOT_HEADER_WORDS + self.payload_words);
        // SAFETY: the trailing region is LINE-aligned and holds exactly `n` u64 words
        // (its length was computed from this geometry at create, and checked against
        // the file at open); AtomicU64 tolerates concurrent writes from any process,
        // and the region lives as long as `self.obj`.
        let words =
            unsafe { core::slice::from_raw_parts(self.obj.trailing() as *const AtomicU64, n) };
        Ring::new(
            self.obj.raw().ring_header(),
            words,
            self.cap,
            self.payload_words,
        )
        .and_then(|r| r.with_limit(self.limit))
    }

    pub fn raw(&self) -> &R {
        self.obj.raw()
    }

    pub fn name(&self) -> &str {
        self.obj.name()
    }

    pub fn persist(&self) {
        self.obj.persist()
    }

    pub fn capacity(&self) -> usize {
        self.limit
    }

    pub fn set_probe(&mut self, probe: Duration) {
        self.probe = probe.max(Duration::from_micros(100));
    }

    pub fn set_spin(&mut self, spin: Option<u32>) {
        self.spin = spin;
    }

    pub fn policy(&self) -> WaitPolicy {
        WaitPolicy {
            spin: self.spin,
            ..WaitPolicy::adaptive(self.probe)
        }
    }

    /// True at most once per probe interval: time for a non-blocking get that found
    /// nothing to check for dead claimants (a syscall, and a scan of the ring).
    pub fn probe_due(&self) -> bool {
        let now = crate::sys::clock::Instant::now().as_nanos();
        let last = self.last_probe.load(Ordering::Relaxed);
        let every = u64::try_from(self.probe.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every {
            return false;
        }
        self.last_probe.store(now, Ordering::Relaxed);
        true
    }

    /// A non-blocking get: `attempt(probe)` without probing first; when that finds
    /// nothing and a probe is due, once more with probing.
    #[inline]
    pub fn try_get_with<X>(
        &self,
        mut attempt: impl FnMut(&Ring<'_>, bool) -> core::result::Result<X, QueueError>,
    ) -> Result<X> {
        let ring = self.ring()?;
        match attempt(&ring, false) {
            Err(QueueError::Empty) if self.probe_due() => attempt(&ring, true),
            r => r,
        }
        .map_or_else(|e| self.done(Err(e)), |x| self.done(Ok(x)))
    }

    /// A ring call's result as the crate's, unless the segment broke meanwhile: then
    /// `Err(Corrupt)` (what it read or wrote was a process-private zero page).
    #[inline]
    pub fn done<X>(&self, r: core::result::Result<X, QueueError>) -> Result<X> {
        self.obj.segment().intact(r.map_err(|e| self.err(e)))
    }

    pub fn corrupt(&self, detail: &str) -> Error {
        Error::corrupt(self.name(), detail)
    }

    /// Maps a ring error to the crate's error, naming the object.
    pub fn err(&self, e: QueueError) -> Error {
        match e {
            QueueError::Full => Error::Full,
            QueueError::Empty => Error::Empty,
            QueueError::Closed => Error::Closed,
            QueueError::Timeout => Error::Timeout,
            QueueError::WontFit(len) => Error::TooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: 0,
            },
            QueueError::Corrupt(d) => self.corrupt(d),
        }
    }

    pub fn len(&self) -> usize {
        self.ring().map_or(0, |r| r.len())
    }

    pub fn is_closed(&self) -> bool {
        self.ring().map_or(true, |r| r.is_closed())
    }

    pub fn close(&self) {
        if let Ok(r) = self.ring() {
            r.close()
        }
    }

    pub fn recovery_stats(&self) -> RecoveryStats {
        self.ring().map(|r| r.recovery_stats()).unwrap_or_default()
    }

    pub fn is_broken(&self) -> bool {
        self.obj.is_broken()
    }

    /// Runs a blocking ring call with this handle's policy.
    #[inline]
    /// An unbounded call runs in slices that check for truncation
    /// ([`Segment::sliced`](crate::segment::Segment)).
    pub fn blocking<X>(
        &self,
        deadline: Deadline,
        f: impl FnMut(&Ring<'_>, &mut WaitPolicy, Deadline) -> core::result::Result<X, QueueError>,
    ) -> Result<X> {
        self.done(self.blocking_raw(deadline, f)?)
    }

    /// [`blocking`](Self::blocking), handing back the ring's own result (the caller
    /// passes it through [`done`](Self::done) or [`intact`](Self::intact)).
    ///
    /// The first attempt runs here, inline (a deadline already past makes the ring
    /// call one attempt): a call that succeeds at once costs no more than its
    /// `try_` form. Only a call that must wait enters the slices.
    #[inline]
    pub fn blocking_raw<X>(
        &self,
        deadline: Deadline,
        mut f: impl FnMut(&Ring<'_>, &mut WaitPolicy, Deadline) -> core::result::Result<X, QueueError>,
    ) -> Result<core::result::Result<X, QueueError>> {
        let Some(ring) = self.ring_view() else {
            return Err(self.corrupt("its geometry is invalid"));
        };
        let mut policy = self.policy();
        if deadline.is_none() {
            match f(&ring, &mut policy, Some(crate::sync::Instant::EPOCH)) {
                Err(QueueError::Timeout) => {}
                r => return Ok(r),
            }
        }
        self.wait_sliced(&ring, deadline, &mut policy, f)
    }

    #[cold]
    fn wait_sliced<X>(
        &self,
        ring: &Ring<'_>,
        deadline: Deadline,
        policy: &mut WaitPolicy,
        mut f: impl FnMut(&Ring<'_>, &mut WaitPolicy, Deadline) -> core::result::Result<X, QueueError>,
    ) -> Result<core::result::Result<X, QueueError>> {
        self.obj.segment().sliced(
            deadline,
            false,
            |d| f(ring, policy, d),
            |r| matches!(r, Err(QueueError::Timeout)),
        )
    }

    /// `r`, unless the segment broke: see [`Segment::intact`](crate::segment::Segment).
    #[inline]
    pub fn intact<X>(&self, r: Result<X>) -> Result<X> {
        self.obj.segment().intact(r)
    }
}

/// Deadline for a `*_timeout` call.
#[inline]
pub(crate) fn deadline(timeout: Duration) -> Deadline {
    deadline_after(timeout)
}

/// Copies a plain value into payload words.
#[inline]
pub(crate) fn write_pod<T: Pod>(v: &T) -> impl FnMut(&[AtomicU64]) + '_ {
    move |p| store_bytes(p, bytemuck::bytes_of(v))
}

/// Copies a plain value out of payload words.
#[inline]
pub(crate) fn read_pod<T: Pod>(p: &[AtomicU64]) -> T {
    let mut v = T::zeroed();
    load_bytes(p, bytemuck::bytes_of_mut(&mut v));
    v
}

fn queue_spec<T: Pod>(kind: ObjectKind, what: &str, capacity: usize) -> Result<RingSpec> {
    Ok(RingSpec {
        kind,
        ty: TypeInfo::of::<T>(),
        cap: check_capacity(what, capacity)?,
        payload_words: words_for(core::mem::size_of::<T>()),
        extra: core::mem::size_of::<T>() as u64,
    })
}

pub(crate) fn check_elem<T>(name: &str) -> impl FnOnce(u64) -> Result<usize> + '_ {
    move |size| {
        if size != core::mem::size_of::<T>() as u64 {
            return Err(Error::corrupt(
                name,
                format!(
                    "elements of {size} bytes recorded, but {} is {} bytes",
                    core::any::type_name::<T>(),
                    core::mem::size_of::<T>()
                ),
            ));
        }
        Ok(words_for(core::mem::size_of::<T>()))
    }
}

pub(crate) fn create_ring<T: Pod, R: HasRing>(
    kind: ObjectKind,
    name: &str,
    capacity: usize,
    opts: &Options,
) -> Result<RingHandle<R>> {
    let spec = queue_spec::<T>(kind, &format!("queue '{name}'"), capacity)?;
    RingHandle::create(name, opts, spec)
}

pub(crate) fn anonymous_ring<T: Pod, R: HasRing>(
    kind: ObjectKind,
    capacity: usize,
) -> Result<RingHandle<R>> {
    let spec = queue_spec::<T>(kind, "anonymous queue", capacity)?;
    RingHandle::anonymous(spec)
}

/// The shared `open_or_create` of `Queue` and `JoinableQueue`: an existing queue is
/// returned only if its capacity is `capacity` (capacities are exact, as `create`
/// makes them).
pub(crate) fn open_or_create_ring<T: Pod, R: HasRing>(
    kind: ObjectKind,
    name: &str,
    capacity: usize,
    opts: &Options,
) -> Result<RingHandle<R>> {
    // Bad arguments are refused whether or not the queue exists.
    let want = queue_spec::<T>(kind, &format!("queue '{name}'"), capacity)?.cap;
    segment::open_or_create(
        || create_ring::<T, R>(kind, name, capacity, opts),
        || {
            let h = open_ring::<T, R>(kind, name, opts)?;
            segment::same_shape(
                name,
                kind,
                &[segment::param("capacity", h.capacity(), want)],
            )?;
            Ok(h)
        },
    )
}

pub(crate) fn open_ring<T: Pod, R: HasRing>(
    kind: ObjectKind,
    name: &str,
    opts: &Options,
) -> Result<RingHandle<R>> {
    RingHandle::open(name, opts, kind, TypeInfo::of::<T>(), check_elem::<T>(name))
}

/// A bounded multi-producer multi-consumer queue of `T: Pod` values in shared memory,
/// shared by name between processes (Python's `multiprocessing.Queue`, without the
/// feeder thread: `put` has finished in shared memory when it returns).
///
/// * **Lock-free**: put and get are a few atomic operations on the slot and an index;
///   no syscall unless someone sleeps (blocking calls spin briefly, adaptively, and
///   then sleep on a shared futex; a waker calls `futex_wake` only when someone
///   sleeps).
/// * **Crash-consistent**: a producer or consumer killed at any instruction never
///   wedges the queue. A message whose `put` returned `Ok` is delivered exactly once
///   — unless the consumer that took it died before its `get` returned; then it is
///   delivered again (to another consumer, out of order). A put cut short by its
///   producer's death delivers nothing. Values are never torn.
/// * **Capacity** is exact, as Python's `Queue(maxsize)`: `Queue::create(name, 6)`
///   holds 6 values and the 7th `try_put` is `Err(Full)`, also with concurrent
///   producers. The ring underneath has the next power of two of slots (each slot
///   takes 16 bytes plus `size_of::<T>()` rounded up to 8); a power-of-two capacity
///   skips the limit check entirely. 0 or more than 2^30 is `InvalidArgument`.
/// * **FIFO** per producer: values put by one thread are got in the order put (a
///   re-delivered value excepted).
/// * **Close**: after [`close`](Queue::close), puts fail with `Closed`; gets drain what
///   is left, then fail with `Closed`. Every sleeper wakes.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Queue;
/// let name = format!("doc-queue-{}", std::process::id());
/// let q: Queue<u64> = Queue::create(&name, 1000)?;    // holds exactly 1000
/// assert_eq!(q.capacity(), 1000);
/// q.put(7)?;
/// let other: Queue<u64> = Queue::open(&name)?;        // from any process
/// assert_eq!(other.get()?, 7);
/// assert!(matches!(other.try_get(), Err(multiproc::Error::Empty)));
/// q.close();
/// assert!(matches!(other.get(), Err(multiproc::Error::Closed)));
/// # Ok(()) }
/// ```
pub struct Queue<T> {
    h: RingHandle<RawQueue>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            h: self.h.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("type", &core::any::type_name::<T>())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T: Pod> Queue<T> {
    /// Creates an empty queue named `name` holding at most `capacity` values (exactly
    /// as many as asked). `Err(AlreadyExists)` if the name is taken,
    /// `Err(InvalidArgument)` for a capacity of 0 or over 2^30.
    ///
    /// A name left behind by a crashed creator (an orphan: creator gone, not
    /// persisted, held by no live process) is reclaimed and created afresh, so a
    /// restarted service just creates; see [`gc`](crate::gc).
    pub fn create(name: &str, capacity: usize) -> Result<Queue<T>> {
        Queue::create_with(name, capacity, &Options::default())
    }
    /// [`create`](Queue::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Queue<T>> {
        Ok(Queue::wrap(create_ring::<T, RawQueue>(
            ObjectKind::Queue,
            name,
            capacity,
            opts,
        )?))
    }
    /// An unnamed queue shared only with children forked after this call.
    pub fn anonymous(capacity: usize) -> Result<Queue<T>> {
        Ok(Queue::wrap(anonymous_ring::<T, RawQueue>(
            ObjectKind::Queue,
            capacity,
        )?))
    }
    /// Opens the queue `name`. `Err(WrongType)` if it holds another element type.
    pub fn open(name: &str) -> Result<Queue<T>> {
        Queue::open_with(name, &Options::default())
    }
    /// [`open`](Queue::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Queue<T>> {
        Ok(Queue::wrap(open_ring::<T, RawQueue>(
            ObjectKind::Queue,
            name,
            opts,
        )?))
    }
    /// Opens `name` if it exists with exactly this capacity, or creates it if it does
    /// not exist. `Err(Mismatch)` if it
    /// exists with another capacity (it is left alone); `Err(WrongType)` if it holds
    /// another element type; `Err(InvalidArgument)` for a capacity `create` refuses.
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Queue<T>> {
        Queue::open_or_create_with(name, capacity, &Options::default())
    }
    /// [`open_or_create`](Queue::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, capacity: usize, opts: &Options) -> Result<Queue<T>> {
        Ok(Queue::wrap(open_or_create_ring::<T, RawQueue>(
            ObjectKind::Queue,
            name,
            capacity,
            opts,
        )?))
    }

    fn wrap(h: RingHandle<RawQueue>) -> Queue<T> {
        Queue { h, _t: PhantomData }
    }

    /// How often a blocked `get` checks that a producer stalled mid-`put` is still
    /// alive: the bound on how long a dead producer delays consumers (default 10 ms).
    pub fn with_probe_interval(mut self, probe: Duration) -> Queue<T> {
        self.h.set_probe(probe);
        self
    }

    /// How many times a blocking call polls before it sleeps: `Some(n)` fixes it
    /// (`Some(u32::MAX)`: spin, never sleep — lowest latency, burns a core), `None`
    /// restores the default adaptive spinning.
    pub fn with_spin_limit(mut self, spin: Option<u32>) -> Queue<T> {
        self.h.set_spin(spin);
        self
    }

    /// The queue's name ("" for an anonymous queue).
    pub fn name(&self) -> &str {
        self.h.name()
    }
    /// Keeps the name after this (creating) handle drops.
    pub fn persist(&self) {
        self.h.persist()
    }

    /// Puts `v`, waiting for room. `Err(Closed)` once the queue is closed.
    #[inline]
    pub fn put(&self, v: T) -> Result<()> {
        self.put_deadline(v, None)
    }
    /// Puts `v` if there is room now: `Err(Full)` otherwise.
    #[inline]
    pub fn try_put(&self, v: T) -> Result<()> {
        let ring = self.h.ring()?;
        ring.try_put(current_identity(), write_pod(&v))
            .map_or_else(|e| self.h.done(Err(e)), |x| self.h.done(Ok(x)))
    }
    /// Puts `v`, waiting at most `timeout` for room: `Err(Timeout)` after that.
    pub fn put_timeout(&self, v: T, timeout: Duration) -> Result<()> {
        self.put_deadline(v, deadline(timeout))
    }
    #[inline]
    fn put_deadline(&self, v: T, deadline: Deadline) -> Result<()> {
        let me = current_identity();
        self.h.blocking(deadline, |ring, policy, d| {
            ring.put(me, d, policy, write_pod(&v))
        })
    }

    /// Takes the oldest value, waiting for one. `Err(Closed)` once the queue is
    /// closed and drained.
    #[inline]
    pub fn get(&self) -> Result<T> {
        self.get_deadline(None)
    }
    /// Takes the oldest value if there is one now: `Err(Empty)` otherwise (also while
    /// the oldest put is still copying its value in), `Err(Closed)` when closed and
    /// drained.
    #[inline]
    pub fn try_get(&self) -> Result<T> {
        let me = current_identity();
        self.h
            .try_get_with(|ring, probe| ring.try_get(me, probe, &mut TakeWith(read_pod::<T>)))
    }
    /// Takes the oldest value, waiting at most `timeout`: `Err(Timeout)` after that.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_deadline(deadline(timeout))
    }
    #[inline]
    fn get_deadline(&self, deadline: Deadline) -> Result<T> {
        let me = current_identity();
        self.h.blocking(deadline, |ring, policy, d| {
            ring.get(me, d, policy, &mut TakeWith(read_pod::<T>))
        })
    }

    /// Puts every value of `items` in order, waiting for room as needed; sleeping
    /// consumers are woken once per sleep, not once per value. On error (`Closed`) a
    /// prefix of `items` may have been put; use [`try_put_many`](Queue::try_put_many)
    /// to know exactly how much.
    pub fn put_many(&self, items: &[T]) -> Result<()> {
        self.put_many_deadline(items, None).map(|_| ())
    }
    /// [`put_many`](Queue::put_many), waiting for room at most `timeout` in all:
    /// returns how many values were put, fewer than `items.len()` only when the time
    /// ran out (the rest were not put). `Err(Closed)` as `put_many`.
    pub fn put_many_timeout(&self, items: &[T], timeout: Duration) -> Result<usize> {
        self.put_many_deadline(items, deadline(timeout))
    }
    fn put_many_deadline(&self, items: &[T], deadline: Deadline) -> Result<usize> {
        let mut done = 0;
        while done < items.len() {
            done += self.try_put_many(&items[done..])?;
            if done < items.len() {
                // Full: wait for room for the next one the ordinary way.
                match self.put_deadline(items[done], deadline) {
                    Ok(()) => done += 1,
                    Err(Error::Timeout) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(done)
    }
    /// Puts the longest prefix of `items` that fits now; returns its length (0 when
    /// full). `Err(Closed)` if closed.
    pub fn try_put_many(&self, items: &[T]) -> Result<usize> {
        let ring = self.h.ring()?;
        ring.try_put_many(current_identity(), items.len(), |i, p| {
            store_bytes(p, bytemuck::bytes_of(&items[i]))
        })
        .map_or_else(|e| self.h.done(Err(e)), |x| self.h.done(Ok(x)))
    }
    /// Waits for at least one value, then takes as many as are available, up to
    /// `buf.len()`; returns how many. `Err(Closed)` when closed and drained.
    pub fn get_many(&self, buf: &mut [T]) -> Result<usize> {
        self.get_many_deadline(buf, None)
    }
    /// [`get_many`](Queue::get_many), waiting at most `timeout` for the first value:
    /// `Err(Timeout)` if none came (with an empty `buf`, `Ok(0)` at once).
    pub fn get_many_timeout(&self, buf: &mut [T], timeout: Duration) -> Result<usize> {
        self.get_many_deadline(buf, deadline(timeout))
    }
    fn get_many_deadline(&self, buf: &mut [T], deadline: Deadline) -> Result<usize> {
        let me = current_identity();
        self.h.blocking(deadline, |ring, policy, d| {
            ring.get_many(me, d, policy, buf.len(), |i, p| buf[i] = read_pod(p))
        })
    }
    /// Takes up to `buf.len()` values that are available now; returns how many (0
    /// when empty). `Err(Closed)` when closed and drained.
    pub fn try_get_many(&self, buf: &mut [T]) -> Result<usize> {
        let ring = self.h.ring()?;
        let me = current_identity();
        match ring.try_get_many(me, buf.len(), |i, p| buf[i] = read_pod(p)) {
            Ok(0) if !buf.is_empty() && self.h.probe_due() => {
                match ring.try_get(me, true, &mut TakeWith(read_pod::<T>)) {
                    Ok(v) => {
                        buf[0] = v;
                        Ok(1)
                    }
                    Err(QueueError::Empty) => Ok(0),
                    Err(e) => self.h.done(Err(e)),
                }
            }
            r => self.h.done(r),
        }
    }

    /// Values in the queue: puts begun minus gets begun, as one consistent snapshot
    /// (see [`Ring::len`]). Exact whenever no put or get is in flight; never more than
    /// [`capacity`](Queue::capacity).
    pub fn len(&self) -> usize {
        self.h.len()
    }
    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `len() == capacity()`.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }
    /// How many values the queue holds when full: the capacity it was created with.
    pub fn capacity(&self) -> usize {
        self.h.capacity()
    }
    /// Closes the queue: puts fail with `Closed`; gets drain it, then fail with
    /// `Closed`. Wakes every sleeper. Cannot be undone.
    pub fn close(&self) {
        self.h.close()
    }
    /// True once [`close`](Queue::close) was called (by any process).
    pub fn is_closed(&self) -> bool {
        self.h.is_closed()
    }
    /// What crash recovery has done on this queue so far.
    pub fn recovery_stats(&self) -> RecoveryStats {
        self.h.recovery_stats()
    }
    /// True once another process truncated the queue's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)); every operation that
    /// returns a `Result` then returns `Err(Corrupt)`, blocking ones within
    /// [`BROKEN_CHECK_EVERY`](crate::segment::BROKEN_CHECK_EVERY).
    pub fn is_broken(&self) -> bool {
        self.h.is_broken()
    }
}
