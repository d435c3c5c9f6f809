//! [`SpscQueue<T>`]: a named single-producer single-consumer queue of `Pod` records —
//! the fastest path for 1:1 traffic between two processes.

use super::common::named_handle;
use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::spsc::{
    Consumer, Geometry, Producer, RegionMemory, RingCorrupt, Stop, CONSUMER_CLOSED, PRODUCER_CLOSED,
};
use crate::raw::spsc_role::{ClaimError, RawRole, RawSpscQueue};
use crate::segment::{self, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::sync::Identity;
use crate::sys::clock::{deadline_after, Deadline};
use crate::sys::ident::{current_process, fork_generation};
use crate::{Error, Result};
use bytemuck::Pod;
use core::fmt;
use core::marker::PhantomData;
use std::time::Duration;

/// Which side of a single-producer single-consumer object a handle plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The one process that puts.
    Producer,
    /// The one process that gets.
    Consumer,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

enum Side {
    /// Not claimed in this process yet (anonymous handles claim on first use).
    Unclaimed,
    Producer(Producer<RegionMemory>),
    Consumer(Consumer<RegionMemory>),
}

/// A bounded FIFO of `T` from exactly one producer process to exactly one consumer
/// process, shared by name: a Lamport ring ([`RawSpsc`](crate::raw::RawSpsc)) where a
/// put is a copy plus one Release store and a get a copy plus one Release store, with
/// no atomic read-modify-write and no syscall unless a side sleeps.
///
/// **Roles.** Each handle is either the producer or the consumer, chosen when it is
/// created or opened ([`Role`]). A role belongs to one process at a time: claiming a
/// role that a live process holds fails with [`Error::Busy`] naming that process; a
/// role whose process exited (SIGKILL included; a process lives while any of its
/// threads does) is taken over by the next claimant — nothing is lost: a put is
/// visible whole or not at all, and a record the dead consumer had not finished
/// taking is delivered again. Dropping a handle lets its role go. A handle inherited
/// through `fork` does not carry its role into the child (the child's first call
/// tries to claim it, and fails with [`Error::Busy`] while the parent holds it).
/// Data-moving methods take `&mut self`: one handle, one thread at a time.
///
/// **Capacity** is rounded up to a power of two ([`capacity`](SpscQueue::capacity)
/// says what you got); 0, or more than 2^40 bytes of records, is
/// [`Error::InvalidArgument`].
///
/// **Closing** ([`close`](SpscQueue::close), by either side) is final: puts fail with
/// [`Error::Closed`], gets drain what is left, then fail with [`Error::Closed`]. A
/// producer that dies does not close the queue (another may take its role).
///
/// **Blocking** calls spin briefly, then sleep on a shared futex; the other side pays
/// a syscall only when it finds a sleeper's flag raised.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::{Role, SpscQueue};
/// let name = format!("doc-spsc-{}", std::process::id());
/// let mut tx: SpscQueue<u64> = SpscQueue::create(&name, 1024, Role::Producer)?;
/// let mut rx: SpscQueue<u64> = SpscQueue::open(&name, Role::Consumer)?; // any process
/// tx.put(7)?;
/// tx.put_many(&[8, 9])?;
/// assert_eq!(rx.get()?, 7);
/// let mut out = [0u64; 4];
/// assert_eq!(rx.get_many(&mut out)?, 2);
/// assert_eq!(&out[..2], &[8, 9]);
/// # Ok(()) }
/// ```
pub struct SpscQueue<T: Pod> {
    obj: Object<RawSpscQueue>,
    geo: Geometry,
    role: Role,
    side: Side,
    /// The process that claimed the role (valid while `generation` matches).
    me: Identity,
    /// [`fork_generation`] when the role was claimed; 0 = not claimed.
    generation: u64,
    probe: Duration,
    _t: PhantomData<fn() -> T>,
}

named_handle! {
    impl[T: Pod] SpscQueue<T>: "queue" (anonymous), obj;
    debug[T: Pod] "SpscQueue" {
        "type" => |_| core::any::type_name::<T>(),
        "role" => |q| q.role,
        "len" => |q| q.len(),
        "capacity" => |q| q.capacity(),
    };
    /// Creates the queue `name` with room for `capacity` records (rounded up to a
    /// power of two) and claims `role` in it. `Err(AlreadyExists)` if the name is taken.
    create(capacity: usize, role: Role);
    /// Opens the queue `name` and claims `role` in it: `Err(Busy)` if a live process
    /// holds that role; a dead holder's role is taken over.
    open(role: Role);
    /// Opens `name` if it exists with this capacity (rounded up to a power of two),
    /// or creates it if it does not exist, and claims `role`. `Err(Mismatch)` if it
    /// exists with another capacity (it is left alone, the role unclaimed);
    /// `Err(InvalidArgument)` for a capacity `create` refuses, whether or not it exists.
    open_or_create(capacity: usize, role: Role);
    /// How often a sleeping side wakes to re-check (default 10 ms).
    with_probe_interval => probe;
    /// True once another process truncated the queue's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)); every operation that
    /// returns a `Result` then returns `Err(Corrupt)`, blocking ones within
    /// [`BROKEN_CHECK_EVERY`](crate::segment::BROKEN_CHECK_EVERY).
    is_broken;
}

fn geometry<T>(capacity: usize) -> Result<Geometry> {
    let unit = core::mem::size_of::<T>();
    if unit == 0 {
        return Err(Error::invalid(format!(
            "SpscQueue<{}>: zero-sized records carry no data; use a Semaphore to count events",
            core::any::type_name::<T>()
        )));
    }
    if capacity == 0 {
        return Err(Error::invalid(
            "an SpscQueue needs a capacity of at least 1",
        ));
    }
    capacity
        .checked_next_power_of_two()
        .and_then(|c| Geometry::new(c as u64, unit))
        .ok_or_else(|| {
            Error::invalid(format!(
                "an SpscQueue of {capacity} records of {unit} bytes exceeds the limit of {} bytes",
                crate::raw::spsc::MAX_RING_BYTES
            ))
        })
}

impl<T: Pod> SpscQueue<T> {
    /// [`create`](SpscQueue::create) with explicit segment [`Options`].
    pub fn create_with(
        name: &str,
        capacity: usize,
        role: Role,
        opts: &Options,
    ) -> Result<SpscQueue<T>> {
        let geo = geometry::<T>(capacity)?;
        let obj = Object::create(name, opts, spec::<T>(geo), |_, _| Ok(()))?;
        let mut q = SpscQueue::from_obj(obj, geo, role);
        q.claim()?;
        Ok(q)
    }

    /// [`open`](SpscQueue::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, role: Role, opts: &Options) -> Result<SpscQueue<T>> {
        SpscQueue::open_checked(name, role, opts, |_| Ok(()))
    }

    /// [`open_with`](SpscQueue::open_with), with `check` judging the geometry before
    /// the role is claimed.
    fn open_checked(
        name: &str,
        role: Role,
        opts: &Options,
        check: impl FnOnce(Geometry) -> Result<()>,
    ) -> Result<SpscQueue<T>> {
        let mut geo = None;
        let obj = Object::open(
            name,
            opts,
            ObjectKind::SpscQueue,
            TypeInfo::of::<T>(),
            |img| {
                let [cap, unit, _, _] = img.params;
                let g = Geometry::new(cap, core::mem::size_of::<T>())
                    .filter(|_| unit == core::mem::size_of::<T>() as u64)
                    .ok_or_else(|| {
                        Error::corrupt(
                            name,
                            format!("impossible capacity {cap} of {unit}-byte records"),
                        )
                    })?;
                geo = Some(g);
                Ok(g.bytes())
            },
        )?;
        let geo = geo.ok_or_else(|| Error::corrupt(name, "no geometry"))?;
        check(geo)?;
        let mut q = SpscQueue::from_obj(obj, geo, role);
        q.claim()?;
        Ok(q)
    }

    /// [`open_or_create`](SpscQueue::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(
        name: &str,
        capacity: usize,
        role: Role,
        opts: &Options,
    ) -> Result<SpscQueue<T>> {
        let want = geometry::<T>(capacity)?.capacity();
        segment::open_or_create(
            || SpscQueue::create_with(name, capacity, role, opts),
            || {
                SpscQueue::open_checked(name, role, opts, |geo| {
                    segment::same_shape(
                        name,
                        ObjectKind::SpscQueue,
                        &[segment::param("capacity", geo.capacity(), want)],
                    )
                })
            },
        )
    }

    /// An unnamed queue shared with children forked after this call: returns
    /// `(producer, consumer)`. Each role is claimed by the first process that uses
    /// its handle, so the parent may keep one and a child use the other.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// let (mut tx, mut rx) = multiproc::SpscQueue::<u32>::anonymous(64)?;
    /// tx.put(1)?;
    /// assert_eq!(rx.get()?, 1);
    /// # Ok(()) }
    /// ```
    pub fn anonymous(capacity: usize) -> Result<(SpscQueue<T>, SpscQueue<T>)> {
        let geo = geometry::<T>(capacity)?;
        let creator = current_process();
        let obj = Object::<RawSpscQueue>::anonymous(spec::<T>(geo), |raw, _| {
            raw.producer.hold_provisionally(creator);
            raw.consumer.hold_provisionally(creator);
            Ok(())
        })?;
        Ok((
            SpscQueue::from_obj(obj.clone(), geo, Role::Producer),
            SpscQueue::from_obj(obj, geo, Role::Consumer),
        ))
    }

    fn from_obj(obj: Object<RawSpscQueue>, geo: Geometry, role: Role) -> SpscQueue<T> {
        SpscQueue {
            obj,
            geo,
            role,
            side: Side::Unclaimed,
            me: Identity { tid: 0, start: 0 },
            generation: 0,
            probe: DEFAULT_PROBE,
            _t: PhantomData,
        }
    }

    /// The role this handle plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Records the queue holds (a snapshot).
    pub fn len(&self) -> usize {
        self.obj.raw().ring.len(self.geo) as usize
    }

    /// True when the queue holds nothing (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.obj.raw().ring.is_empty()
    }

    /// True when the queue has no room (a snapshot).
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Records the queue can hold.
    pub fn capacity(&self) -> usize {
        self.geo.capacity() as usize
    }

    /// Closes the queue for good: puts fail with [`Error::Closed`]; gets drain, then
    /// fail with [`Error::Closed`]. Wakes every sleeper.
    pub fn close(&self) {
        self.obj.raw().ring.close(PRODUCER_CLOSED | CONSUMER_CLOSED);
    }

    /// True once the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.obj.raw().ring.closed() != 0
    }

    fn role_record(&self) -> &RawRole {
        let raw = self.obj.raw();
        match self.role {
            Role::Producer => &raw.producer,
            Role::Consumer => &raw.consumer,
        }
    }

    /// Claims this handle's role for the calling process and builds its cursor.
    #[cold]
    fn claim(&mut self) -> Result<()> {
        let me = current_process();
        let generation = fork_generation();
        match self.role_record().claim(me, true) {
            Ok(_) => {}
            Err(ClaimError::Busy(holder)) => {
                return Err(Error::Busy {
                    name: self.name().into(),
                    holder: holder.tid,
                })
            }
            Err(ClaimError::Dead(_) | ClaimError::Closed) => return Err(Error::Closed),
        }
        let mem = self.memory();
        let raw = self.obj.raw();
        let side = match self.role {
            Role::Producer => raw.ring.producer(self.geo, mem).map(Side::Producer),
            Role::Consumer => raw.ring.consumer(self.geo, mem).map(Side::Consumer),
        };
        match side {
            Ok(s) => self.side = s,
            Err(c) => {
                self.role_record().release(me);
                return Err(self.corrupt(c));
            }
        }
        self.me = me;
        self.generation = generation;
        Ok(())
    }

    fn memory(&self) -> RegionMemory {
        // SAFETY: the trailing region holds geo.bytes() bytes (checked at create/open)
        // and lives as long as `self.obj`, which every cursor's owner also holds; it
        // is only ever accessed through raw copies.
        unsafe { RegionMemory::new(self.obj.trailing(), self.obj.trailing_len()) }
    }

    fn corrupt(&self, c: RingCorrupt) -> Error {
        Error::corrupt(self.name(), c.detail)
    }

    #[cold]
    fn stop(&self, s: Stop) -> Error {
        match s {
            Stop::TimedOut => Error::Timeout,
            Stop::Closed | Stop::Gone => Error::Closed,
            Stop::Corrupt(c) => self.corrupt(c),
        }
    }

    fn wrong_role(&self, what: &str, need: Role) -> Error {
        Error::invalid(format!(
            "SpscQueue '{}': this handle is the {}; {what} needs a handle opened as Role::{:?}",
            self.name(),
            self.role.name(),
            need
        ))
    }

    /// The producer cursor, claiming the role first if needed.
    #[inline]
    fn producer(&mut self) -> Result<(&RawSpscQueue, &mut Producer<RegionMemory>, Duration)> {
        if self.generation != fork_generation() || !matches!(self.side, Side::Producer(_)) {
            if self.role != Role::Producer {
                return Err(self.wrong_role("put", Role::Producer));
            }
            self.claim()?;
        }
        match &mut self.side {
            Side::Producer(p) => Ok((self.obj.raw(), p, self.probe)),
            _ => unreachable!("a claimed producer has its cursor: claim builds it for the role"),
        }
    }

    /// The consumer cursor, claiming the role first if needed.
    #[inline]
    fn consumer(&mut self) -> Result<(&RawSpscQueue, &mut Consumer<RegionMemory>, Duration)> {
        if self.generation != fork_generation() || !matches!(self.side, Side::Consumer(_)) {
            if self.role != Role::Consumer {
                return Err(self.wrong_role("get", Role::Consumer));
            }
            self.claim()?;
        }
        match &mut self.side {
            Side::Consumer(c) => Ok((self.obj.raw(), c, self.probe)),
            _ => unreachable!("a claimed consumer has its cursor: claim builds it for the role"),
        }
    }

    /// The fast path of every put: a claimed producer, an open queue and room for
    /// `v` according to the cached `head`. False means "take the general path".
    #[inline(always)]
    fn put_fast(&mut self, v: &T) -> bool {
        if self.generation != fork_generation() {
            return false;
        }
        let Side::Producer(p) = &mut self.side else {
            return false;
        };
        let ring = &self.obj.raw().ring;
        ring.closed() == 0 && matches!(p.try_push(ring, v), Ok(true))
    }

    /// The fast path of every get: a claimed consumer and a record known to be there
    /// (or found by re-reading `tail` once).
    #[inline(always)]
    fn get_fast(&mut self) -> Option<T> {
        if self.generation != fork_generation() {
            return None;
        }
        let Side::Consumer(c) = &mut self.side else {
            return None;
        };
        c.try_pop::<T>(&self.obj.raw().ring).ok().flatten()
    }

    /// Puts `v`, waiting while the queue is full.
    #[inline]
    pub fn put(&mut self, v: T) -> Result<()> {
        if self.put_fast(&v) {
            return self.obj.intact(Ok(()));
        }
        let r = self.put_until(v, None);
        self.obj.intact(r)
    }

    /// Puts `v` if there is room now; `Err(Full)` otherwise.
    #[inline]
    pub fn try_put(&mut self, v: T) -> Result<()> {
        if self.put_fast(&v) {
            return self.obj.intact(Ok(()));
        }
        let r = self.try_put_slow(v);
        self.obj.intact(r)
    }

    #[inline(never)]
    fn try_put_slow(&mut self, v: T) -> Result<()> {
        let (raw, p, _) = self.producer()?;
        if raw.ring.closed() != 0 {
            return Err(Error::Closed);
        }
        match p.try_push(&raw.ring, &v) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Full),
            Err(c) => Err(self.corrupt(c)),
        }
    }

    /// Puts `v`, waiting at most `timeout` for room; `Err(Timeout)` after that.
    pub fn put_timeout(&mut self, v: T, timeout: Duration) -> Result<()> {
        let r = self.put_until(v, deadline_after(timeout));
        self.obj.intact(r)
    }

    #[inline(never)]
    fn put_until(&mut self, v: T, deadline: Deadline) -> Result<()> {
        // A wait's probes also check for truncation (nobody wakes a lost page).
        let seg = self.obj.segment().clone();
        let (raw, p, probe) = self.producer()?;
        let ring = &raw.ring;
        if ring.closed() != 0 {
            return Err(Error::Closed);
        }
        loop {
            match p.try_push(ring, &v) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(c) => return Err(self.corrupt(c)),
            }
            if let Err(s) = p.wait_free(ring, 1, deadline, probe, || seg.is_broken()) {
                return Err(self.stop(s));
            }
        }
    }

    /// Puts every record of `items` in order, waiting for room as needed; each
    /// batch that fits is published with one store.
    pub fn put_many(&mut self, items: &[T]) -> Result<()> {
        let r = self.put_many_until(items, None).map(|_| ());
        self.obj.intact(r)
    }

    /// Puts as many leading records of `items` as fit now (one store); returns how
    /// many. `Err(Full)` when none fit (and `items` is not empty).
    pub fn try_put_many(&mut self, items: &[T]) -> Result<usize> {
        let r = self.try_put_many_inner(items);
        self.obj.intact(r)
    }

    fn try_put_many_inner(&mut self, items: &[T]) -> Result<usize> {
        if items.is_empty() {
            return Ok(0);
        }
        let (raw, p, _) = self.producer()?;
        let ring = &raw.ring;
        if ring.closed() != 0 {
            return Err(Error::Closed);
        }
        let free = match p.free_for(ring, items.len() as u64) {
            Ok(f) => f,
            Err(c) => return Err(self.corrupt(c)),
        };
        if free == 0 {
            return Err(Error::Full);
        }
        let n = p.stage(bytemuck::cast_slice(items)) / core::mem::size_of::<T>();
        p.publish(ring);
        Ok(n)
    }

    /// As [`put_many`](SpscQueue::put_many), giving up after `timeout`: returns how
    /// many records were put (all of them unless it timed out).
    pub fn put_many_timeout(&mut self, items: &[T], timeout: Duration) -> Result<usize> {
        let r = self.put_many_until(items, deadline_after(timeout));
        self.obj.intact(r)
    }

    fn put_many_until(&mut self, items: &[T], deadline: Deadline) -> Result<usize> {
        // A wait's probes also check for truncation (nobody wakes a lost page).
        let seg = self.obj.segment().clone();
        let (raw, p, probe) = self.producer()?;
        let ring = &raw.ring;
        let bytes: &[u8] = bytemuck::cast_slice(items);
        let unit = core::mem::size_of::<T>();
        let cap = p.geometry().capacity();
        let mut done = 0;
        while done < items.len() {
            if ring.closed() != 0 {
                return Err(Error::Closed);
            }
            let left = (items.len() - done) as u64;
            // Wait for a useful amount of room, not single slots.
            let want = left.min((cap / 4).max(1));
            match p.free_for(ring, want) {
                Ok(f) if f >= want => {}
                Ok(_) => match p.wait_free(ring, want, deadline, probe, || seg.is_broken()) {
                    Ok(_) => {}
                    Err(Stop::TimedOut) if done > 0 => return Ok(done),
                    Err(s) => return Err(self.stop(s)),
                },
                Err(c) => return Err(self.corrupt(c)),
            }
            done += p.stage(&bytes[done * unit..]) / unit;
            p.publish(ring);
        }
        Ok(done)
    }

    /// Takes the oldest record, waiting while the queue is empty. `Err(Closed)` once
    /// the queue is closed and drained.
    #[inline]
    pub fn get(&mut self) -> Result<T> {
        if let Some(v) = self.get_fast() {
            return self.obj.intact(Ok(v));
        }
        let r = self.get_until(None);
        self.obj.intact(r)
    }

    /// Takes the oldest record if there is one; `Err(Empty)` otherwise
    /// (`Err(Closed)` if closed and drained).
    #[inline]
    pub fn try_get(&mut self) -> Result<T> {
        if let Some(v) = self.get_fast() {
            return self.obj.intact(Ok(v));
        }
        let r = self.try_get_slow();
        self.obj.intact(r)
    }

    #[inline(never)]
    fn try_get_slow(&mut self) -> Result<T> {
        let (raw, c, _) = self.consumer()?;
        let ring = &raw.ring;
        let closed = ring.closed() & PRODUCER_CLOSED != 0;
        match c.try_pop::<T>(ring) {
            Ok(Some(v)) => Ok(v),
            Ok(None) if closed => Err(Error::Closed),
            Ok(None) => Err(Error::Empty),
            Err(e) => Err(self.corrupt(e)),
        }
    }

    /// Takes the oldest record, waiting at most `timeout`; `Err(Timeout)` after that.
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<T> {
        let r = self.get_until(deadline_after(timeout));
        self.obj.intact(r)
    }

    #[inline(never)]
    fn get_until(&mut self, deadline: Deadline) -> Result<T> {
        // A wait's probes also check for truncation (nobody wakes a lost page).
        let seg = self.obj.segment().clone();
        let (raw, c, probe) = self.consumer()?;
        let ring = &raw.ring;
        loop {
            match c.try_pop::<T>(ring) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => return Err(self.corrupt(e)),
            }
            if let Err(s) = c.wait_available(ring, 1, deadline, probe, || seg.is_broken()) {
                return Err(self.stop(s));
            }
        }
    }

    /// Takes up to `out.len()` records in order, waiting until there is at least one;
    /// returns how many (one store frees them all).
    pub fn get_many(&mut self, out: &mut [T]) -> Result<usize> {
        self.get_many_until(out, None, true)
    }

    /// As [`get_many`](SpscQueue::get_many) without waiting: `Err(Empty)` when
    /// nothing is there.
    pub fn try_get_many(&mut self, out: &mut [T]) -> Result<usize> {
        self.get_many_until(out, None, false)
    }

    /// As [`get_many`](SpscQueue::get_many), waiting at most `timeout`.
    pub fn get_many_timeout(&mut self, out: &mut [T], timeout: Duration) -> Result<usize> {
        self.get_many_until(out, deadline_after(timeout), true)
    }

    fn get_many_until(&mut self, out: &mut [T], deadline: Deadline, wait: bool) -> Result<usize> {
        let r = self.get_many_inner(out, deadline, wait);
        self.obj.intact(r)
    }

    fn get_many_inner(&mut self, out: &mut [T], deadline: Deadline, wait: bool) -> Result<usize> {
        // A wait's probes also check for truncation (nobody wakes a lost page).
        let seg = self.obj.segment().clone();
        if out.is_empty() {
            return Ok(0);
        }
        let (raw, c, probe) = self.consumer()?;
        let ring = &raw.ring;
        let closed = ring.closed() & PRODUCER_CLOSED != 0;
        match c.available_for(ring, out.len() as u64) {
            Ok(0) if !wait => return Err(if closed { Error::Closed } else { Error::Empty }),
            Ok(0) => {
                if let Err(s) = c.wait_available(ring, 1, deadline, probe, || seg.is_broken()) {
                    return Err(self.stop(s));
                }
            }
            Ok(_) => {}
            Err(e) => return Err(self.corrupt(e)),
        }
        let n = c.take(bytemuck::cast_slice_mut(out)) / core::mem::size_of::<T>();
        c.release(ring);
        Ok(n)
    }
}

impl<T: Pod> Drop for SpscQueue<T> {
    fn drop(&mut self) {
        if self.generation != 0 && self.generation == fork_generation() {
            self.role_record().release(self.me);
        }
    }
}

fn spec<T>(geo: Geometry) -> ObjectSpec {
    ObjectSpec {
        kind: ObjectKind::SpscQueue,
        ty: TypeInfo::of::<T>(),
        params: [geo.capacity(), geo.unit() as u64, 0, 0],
        trailing: geo.bytes(),
    }
}

/// The common surface of [`SpscProducer`] and [`SpscConsumer`]: construction with
/// their role fixed, and the snapshot and close methods of [`SpscQueue`].
macro_rules! typed_end {
    ($end:ident, $role:expr, $what:literal) => {
        impl<T: Pod> $end<T> {
            #[doc = concat!("Creates the queue `name` (as [`SpscQueue::create`]) and claims its ", $what, " role.")]
            pub fn create(name: &str, capacity: usize) -> Result<$end<T>> {
                SpscQueue::create(name, capacity, $role).map($end)
            }

            /// [`create`](Self::create) with explicit segment [`Options`].
            pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<$end<T>> {
                SpscQueue::create_with(name, capacity, $role, opts).map($end)
            }

            #[doc = concat!("Opens the queue `name` and claims its ", $what, " role (as [`SpscQueue::open`]): `Err(Busy)` if a live process holds it.")]
            pub fn open(name: &str) -> Result<$end<T>> {
                SpscQueue::open(name, $role).map($end)
            }

            /// [`open`](Self::open) with explicit [`Options`].
            pub fn open_with(name: &str, opts: &Options) -> Result<$end<T>> {
                SpscQueue::open_with(name, $role, opts).map($end)
            }

            /// Opens `name` or creates it, as [`SpscQueue::open_or_create`].
            pub fn open_or_create(name: &str, capacity: usize) -> Result<$end<T>> {
                SpscQueue::open_or_create(name, capacity, $role).map($end)
            }

            /// [`open_or_create`](Self::open_or_create) with explicit segment [`Options`].
            pub fn open_or_create_with(
                name: &str,
                capacity: usize,
                opts: &Options,
            ) -> Result<$end<T>> {
                SpscQueue::open_or_create_with(name, capacity, $role, opts).map($end)
            }

            /// As [`SpscQueue::with_probe_interval`].
            pub fn with_probe_interval(self, probe: Duration) -> $end<T> {
                $end(self.0.with_probe_interval(probe))
            }

            /// The queue's name ("" for an anonymous queue).
            pub fn name(&self) -> &str {
                self.0.name()
            }

            /// Keeps the name after the creating handle drops.
            pub fn persist(&self) {
                self.0.persist()
            }

            /// Records the queue holds (a snapshot).
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// True when the queue holds nothing (a snapshot).
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            /// True when the queue has no room (a snapshot).
            pub fn is_full(&self) -> bool {
                self.0.is_full()
            }

            /// Records the queue can hold.
            pub fn capacity(&self) -> usize {
                self.0.capacity()
            }

            /// Closes the queue for good, as [`SpscQueue::close`].
            pub fn close(&self) {
                self.0.close()
            }

            /// True once the queue was closed.
            pub fn is_closed(&self) -> bool {
                self.0.is_closed()
            }

            /// True once another process truncated the queue's segment (as
            /// [`SpscQueue::is_broken`]).
            pub fn is_broken(&self) -> bool {
                self.0.is_broken()
            }

            /// The role-checked handle this end wraps.
            pub fn into_queue(self) -> SpscQueue<T> {
                self.0
            }
        }

        impl<T: Pod> fmt::Debug for $end<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($end))
                    .field("name", &self.name())
                    .field("type", &core::any::type_name::<T>())
                    .field("len", &self.len())
                    .field("capacity", &self.capacity())
                    .finish()
            }
        }
    };
}

/// The producing end of an [`SpscQueue`], its role fixed in the type (as rtrb's
/// `Producer`): it has the put methods and no get methods, so a get on the wrong
/// end is a compile error rather than `Err(InvalidArgument)` at run time. Roles,
/// closing, blocking and `fork` behave as on [`SpscQueue`].
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::{SpscConsumer, SpscProducer};
/// let name = format!("doc-spsc-ends-{}", std::process::id());
/// let mut tx: SpscProducer<u64> = SpscProducer::create(&name, 1024)?;
/// let mut rx: SpscConsumer<u64> = SpscConsumer::open(&name)?; // any process
/// tx.put(7)?;
/// assert_eq!(rx.get()?, 7);
/// # Ok(()) }
/// ```
///
/// A producer cannot get:
///
/// ```compile_fail
/// let (mut tx, _rx) = multiproc::SpscQueue::<u32>::anonymous_ends(8).unwrap();
/// let _ = tx.get(); // error: no method `get` on `SpscProducer<u32>`
/// ```
pub struct SpscProducer<T: Pod>(SpscQueue<T>);

/// The consuming end of an [`SpscQueue`], its role fixed in the type: it has the
/// get methods and no put methods. See [`SpscProducer`].
///
/// A consumer cannot put:
///
/// ```compile_fail
/// let (_tx, mut rx) = multiproc::SpscQueue::<u32>::anonymous_ends(8).unwrap();
/// let _ = rx.put(1); // error: no method `put` on `SpscConsumer<u32>`
/// ```
pub struct SpscConsumer<T: Pod>(SpscQueue<T>);

typed_end!(SpscProducer, Role::Producer, "producer");
typed_end!(SpscConsumer, Role::Consumer, "consumer");

impl<T: Pod> SpscQueue<T> {
    /// [`anonymous`](SpscQueue::anonymous) with typed ends: `(producer, consumer)`.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// let (mut tx, mut rx) = multiproc::SpscQueue::<u32>::anonymous_ends(64)?;
    /// tx.put(1)?;
    /// assert_eq!(rx.get()?, 1);
    /// # Ok(()) }
    /// ```
    pub fn anonymous_ends(capacity: usize) -> Result<(SpscProducer<T>, SpscConsumer<T>)> {
        let (p, c) = SpscQueue::anonymous(capacity)?;
        Ok((SpscProducer(p), SpscConsumer(c)))
    }
}

impl<T: Pod> SpscProducer<T> {
    /// Puts `v`, waiting while the queue is full (as [`SpscQueue::put`]).
    #[inline]
    pub fn put(&mut self, v: T) -> Result<()> {
        self.0.put(v)
    }

    /// Puts `v` if there is room now; `Err(Full)` otherwise.
    #[inline]
    pub fn try_put(&mut self, v: T) -> Result<()> {
        self.0.try_put(v)
    }

    /// Puts `v`, waiting at most `timeout` for room; `Err(Timeout)` after that.
    pub fn put_timeout(&mut self, v: T, timeout: Duration) -> Result<()> {
        self.0.put_timeout(v, timeout)
    }

    /// Puts every record of `items` in order (as [`SpscQueue::put_many`]).
    pub fn put_many(&mut self, items: &[T]) -> Result<()> {
        self.0.put_many(items)
    }

    /// Puts as many leading records of `items` as fit now (as
    /// [`SpscQueue::try_put_many`]).
    pub fn try_put_many(&mut self, items: &[T]) -> Result<usize> {
        self.0.try_put_many(items)
    }

    /// As [`put_many`](Self::put_many), giving up after `timeout` (as
    /// [`SpscQueue::put_many_timeout`]).
    pub fn put_many_timeout(&mut self, items: &[T], timeout: Duration) -> Result<usize> {
        self.0.put_many_timeout(items, timeout)
    }
}

impl<T: Pod> SpscConsumer<T> {
    /// Takes the oldest record, waiting while the queue is empty (as
    /// [`SpscQueue::get`]).
    #[inline]
    pub fn get(&mut self) -> Result<T> {
        self.0.get()
    }

    /// Takes the oldest record if there is one; `Err(Empty)` otherwise.
    #[inline]
    pub fn try_get(&mut self) -> Result<T> {
        self.0.try_get()
    }

    /// Takes the oldest record, waiting at most `timeout`; `Err(Timeout)` after that.
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.0.get_timeout(timeout)
    }

    /// Takes up to `out.len()` records in order (as [`SpscQueue::get_many`]).
    pub fn get_many(&mut self, out: &mut [T]) -> Result<usize> {
        self.0.get_many(out)
    }

    /// As [`get_many`](Self::get_many) without waiting.
    pub fn try_get_many(&mut self, out: &mut [T]) -> Result<usize> {
        self.0.try_get_many(out)
    }

    /// As [`get_many`](Self::get_many), waiting at most `timeout`.
    pub fn get_many_timeout(&mut self, out: &mut [T], timeout: Duration) -> Result<usize> {
        self.0.get_many_timeout(out, timeout)
    }
}
