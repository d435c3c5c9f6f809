//! The named ring under every MPMC queue handle ([`Queue`](crate::Queue),
//! [`JoinableQueue`](crate::JoinableQueue), [`ByteQueue`](crate::ByteQueue)): its
//! header parameters, validation at open, wait tuning, and the mapping of ring
//! errors to the crate's.

use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::queue::{
    load_bytes, region_words, slot_payload_words, store_bytes, words_for, QueueError, RawQueue,
    RecoveryStats, Ring, WaitPolicy, MAX_CAPACITY, SLOT_HEADER_WORDS,
};
use crate::raw::SharedState;
use crate::segment::{self, HeaderImage, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sys::clock::{deadline_after, Deadline};
use crate::{Error, Result};
use bytemuck::Pod;
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
    /// How often a blocked call checks for dead claimants (set by the handle's
    /// `with_probe_interval`).
    pub(crate) probe: Duration,
    /// Polls before sleeping: `None` for the adaptive budget kept in the ring header.
    spin: Option<u32>,
    /// When a non-blocking get last probed for dead claimants (monotonic ns;
    /// process-local).
    last_probe: AtomicU64,
    /// The ring view, built once from the validated geometry (`None` if it is
    /// impossible). Its `'static` stands for "as long as `obj`": the mapping never
    /// moves while `obj` (or a clone sharing it) lives, and the view is only handed
    /// out borrowed from `self` (see [`ring_view`](Self::ring_view)).
    view: Option<Ring<'static>>,
    /// The segment's broken flag (see `Segment::broken`), kept to skip the pointer
    /// chase through the segment on every call.
    broken: &'static crate::sys::sigbus::Slot,
}

impl<R> Clone for RingHandle<R> {
    fn clone(&self) -> Self {
        RingHandle {
            view: self.view,
            broken: self.broken,
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
            let want = slot_payload_words(check_extra(extra)?);
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
        let cap = ring_slots(limit);
        let n = cap * (SLOT_HEADER_WORDS + payload_words);
        // SAFETY: the trailing region is LINE-aligned and holds exactly `n` u64 words
        // (its length was computed from this geometry at create, and checked against
        // the file at open); AtomicU64 tolerates concurrent writes from any process.
        // The header and the region live in the mapping, which stays at this address
        // as long as `obj` or a clone of it lives; the `'static` view is only lent
        // out for as long as `self` (`ring_view`).
        let view = unsafe {
            let words = core::slice::from_raw_parts(obj.trailing() as *const AtomicU64, n);
            let header: &'static RawQueue = &*(obj.raw().ring_header() as *const RawQueue);
            Ring::new(header, words, cap, payload_words).and_then(|r| r.with_limit(limit))
        };
        RingHandle {
            broken: obj.segment().broken_flag(),
            view,
            obj,
            cap,
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
            .copied()
            .ok_or_else(|| self.corrupt("its geometry is invalid"))
    }

    /// [`ring`](Self::ring) as an `Option`: blocking calls build the view in
    /// registers this way rather than through a `Result` with a large error.
    #[inline]
    fn ring_view(&self) -> Option<&Ring<'_>> {
        // Shortened to the borrow of `self` (see `view`); lent, not copied.
        self.view.as_ref()
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
        mut f: impl FnMut(&Ring<'_>, &mut WaitPolicy, Deadline) -> core::result::Result<X, QueueError>,
    ) -> Result<X> {
        let Some(ring) = self.ring_view() else {
            return Err(self.corrupt("its geometry is invalid"));
        };
        let mut policy = self.policy();
        if deadline.is_none() {
            // The common case first, its result checked in place: a call that
            // succeeds at once hands back `Ok` without moving the ring's result
            // through the layers below (measured: copying it through them made a
            // put wait for its own slot stores to reach the consumer's core, and
            // halved `Queue<u64>`'s single put/get between two processes).
            match f(ring, &mut policy, Some(crate::sync::Instant::EPOCH)) {
                Ok(x) if !self.broken.is_broken() => return Ok(x),
                Err(QueueError::Timeout) => {}
                r => return self.done(r),
            }
        }
        self.done(self.wait_sliced(ring, deadline, &mut policy, f)?)
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
            match f(ring, &mut policy, Some(crate::sync::Instant::EPOCH)) {
                Err(QueueError::Timeout) => {}
                r => return Ok(r),
            }
        }
        self.wait_sliced(ring, deadline, &mut policy, f)
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

fn queue_spec<T: Pod>(
    kind: ObjectKind,
    what: &str,
    capacity: usize,
    ty: TypeInfo,
) -> Result<RingSpec> {
    Ok(RingSpec {
        kind,
        ty,
        cap: check_capacity(what, capacity)?,
        payload_words: slot_payload_words(words_for(core::mem::size_of::<T>())),
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
    let spec = queue_spec::<T>(
        kind,
        &format!("queue '{name}'"),
        capacity,
        opts.element_type::<T>(),
    )?;
    RingHandle::create(name, opts, spec)
}

pub(crate) fn anonymous_ring<T: Pod, R: HasRing>(
    kind: ObjectKind,
    capacity: usize,
) -> Result<RingHandle<R>> {
    let spec = queue_spec::<T>(kind, "anonymous queue", capacity, TypeInfo::of::<T>())?;
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
    let want = check_capacity(&format!("queue '{name}'"), capacity)?;
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
    RingHandle::open(
        name,
        opts,
        kind,
        opts.element_type::<T>(),
        check_elem::<T>(name),
    )
}

/// Writes the state and tuning surface every MPMC queue handle shares (its
/// `h: RingHandle` field): `with_spin_limit`, `len`, `is_empty`, `is_full`,
/// `capacity`, `close`, `is_closed`, `recovery_stats`, `is_broken`, each with its
/// docs, and `Debug` (name, the fields listed first, len, capacity, the fields listed
/// second, closed). `$items` names what the queue holds ("values", "messages");
/// `$closing` is what `close` does besides closing.
macro_rules! ring_surface {
    (
        impl[$($g:tt)*] $ty:ty : $items:literal, close: $closing:literal,
        debug: $dname:literal
            [$($pl:literal => $pv:expr),* $(,)?]
            [$($ql:literal => $qv:expr),* $(,)?]
    ) => {
        impl<$($g)*> core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct($dname)
                    .field("name", &self.h.name())
                    $(.field($pl, &$crate::named::common::skeleton::view(self, $pv)))*
                    .field("len", &self.len())
                    .field("capacity", &self.capacity())
                    $(.field($ql, &$crate::named::common::skeleton::view(self, $qv)))*
                    .field("closed", &self.is_closed())
                    .finish()
            }
        }

        impl<$($g)*> $ty {
            /// How many times a blocking call polls before it sleeps: `Some(n)` fixes it
            /// (`Some(u32::MAX)`: spin, never sleep — lowest latency, burns a core),
            /// `None` restores the default adaptive spinning.
            pub fn with_spin_limit(mut self, spin: Option<u32>) -> $ty {
                self.h.set_spin(spin);
                self
            }

            #[doc = concat!(
                "The ", $items, " in the queue: puts begun minus gets begun, as one ",
                "consistent snapshot\n(see [`Ring::len`](crate::raw::queue::Ring::len)). ",
                "Exact whenever no put or get\nis in flight; never more than ",
                "[`capacity`](Self::capacity)."
            )]
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
            #[doc = concat!(
                "How many ", $items, " the queue holds when full: the capacity it was ",
                "created with."
            )]
            pub fn capacity(&self) -> usize {
                self.h.capacity()
            }
            #[doc = concat!(
                "Closes the queue: puts fail with `Closed`; gets drain it, then fail with\n",
                "`Closed`. ", $closing
            )]
            pub fn close(&self) {
                self.h.close()
            }
            /// True once [`close`](Self::close) was called (by any process).
            pub fn is_closed(&self) -> bool {
                self.h.is_closed()
            }
            /// What crash recovery has done on this queue so far.
            pub fn recovery_stats(&self) -> $crate::raw::queue::RecoveryStats {
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
    };
}
pub(crate) use ring_surface;

/// Writes how a queue of `T: Pod` over a ring of raw type `$raw` (object kind
/// `$kind`) is made: `Clone`, `create_with`, `anonymous`, `open_with`,
/// `open_or_create_with` and the private `wrap`. The type is a struct of
/// `h: RingHandle<$raw>` and `_t: PhantomData`.
macro_rules! pod_ring {
    ($ty:ident, $raw:ty, $kind:expr, $what:literal) => {
        impl<T> Clone for $ty<T> {
            fn clone(&self) -> Self {
                $ty {
                    h: self.h.clone(),
                    _t: core::marker::PhantomData,
                }
            }
        }

        impl<T: bytemuck::Pod> $ty<T> {
            /// [`create`](Self::create) with explicit segment [`Options`](crate::Options).
            pub fn create_with(
                name: &str,
                capacity: usize,
                opts: &$crate::Options,
            ) -> $crate::Result<$ty<T>> {
                let h = $crate::named::common::create_ring::<T, $raw>($kind, name, capacity, opts)?;
                Ok($ty::wrap(h))
            }
            #[doc = concat!(
                        "An unnamed ", $what, " shared only with children forked after this call."
                    )]
            pub fn anonymous(capacity: usize) -> $crate::Result<$ty<T>> {
                let h = $crate::named::common::anonymous_ring::<T, $raw>($kind, capacity)?;
                Ok($ty::wrap(h))
            }
            /// [`open`](Self::open) with explicit [`Options`](crate::Options) (init
            /// timeout, trusted owners).
            pub fn open_with(name: &str, opts: &$crate::Options) -> $crate::Result<$ty<T>> {
                let h = $crate::named::common::open_ring::<T, $raw>($kind, name, opts)?;
                Ok($ty::wrap(h))
            }
            /// [`open_or_create`](Self::open_or_create) with explicit segment
            /// [`Options`](crate::Options).
            pub fn open_or_create_with(
                name: &str,
                capacity: usize,
                opts: &$crate::Options,
            ) -> $crate::Result<$ty<T>> {
                let h = $crate::named::common::open_or_create_ring::<T, $raw>(
                    $kind, name, capacity, opts,
                )?;
                Ok($ty::wrap(h))
            }

            fn wrap(h: $crate::named::common::RingHandle<$raw>) -> $ty<T> {
                $ty {
                    h,
                    _t: core::marker::PhantomData,
                }
            }
        }
    };
}
pub(crate) use pod_ring;
