//! [`Queue<T>`]: a named, bounded, lock-free MPMC queue of plain-data values that
//! survives any producer or consumer being killed. Its ring handle, shared with
//! [`JoinableQueue`](crate::JoinableQueue) and [`ByteQueue`](crate::ByteQueue), is
//! [`common::ring`](super::common::ring).

use super::common::{
    deadline, named_handle, pod_ring, read_pod, ring_surface, write_pod, RingHandle,
};
use crate::raw::queue::{store_bytes, QueueError, RawQueue, TakeWith};
use crate::segment::ObjectKind;
use crate::sync::current_identity;
use crate::sys::clock::Deadline;
use crate::{Error, Result};
use bytemuck::Pod;
use core::marker::PhantomData;
use std::time::Duration;

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

named_handle! {
    impl[T: Pod] Queue<T>: "queue" (anonymous), h;
    /// Creates an empty queue named `name` holding at most `capacity` values (exactly
    /// as many as asked). `Err(AlreadyExists)` if the name is taken,
    /// `Err(InvalidArgument)` for a capacity of 0 or over 2^30.
    create(capacity: usize);
    /// Opens the queue `name`. `Err(WrongType)` if it holds another element type.
    open();
    /// Opens `name` if it exists with exactly this capacity, or creates it if it does
    /// not exist. `Err(Mismatch)` if it
    /// exists with another capacity (it is left alone); `Err(WrongType)` if it holds
    /// another element type; `Err(InvalidArgument)` for a capacity `create` refuses.
    open_or_create(capacity: usize);
    /// How often a blocked `get` checks that a producer stalled mid-`put` is still
    /// alive: the bound on how long a dead producer delays consumers (default 10 ms).
    with_probe_interval => h.probe;
}

pod_ring!(Queue, RawQueue, ObjectKind::Queue, "queue");
ring_surface! {
    impl[T: Pod] Queue<T>: "values", close: "Wakes every sleeper. Cannot be undone.",
    debug: "Queue" ["type" => |_| core::any::type_name::<T>()] []
}

impl<T: Pod> Queue<T> {
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
}
