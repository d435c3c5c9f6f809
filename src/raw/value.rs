//! `RawValue`: one shared [`Pod`] value — a [`RawArray`] of one element.
//!
//! Word-sized values (1, 2, 4 or 8 bytes) are read and written with single atomic
//! word operations, and `fetch_add` & co. are lock-free; larger values are read with
//! a seqlock and written under the header's lock. See [`super::array`] for the
//! algorithm, the orderings and what happens when a writer dies.

use super::array::{ArrayRef, Integer, RawArray};
use super::lock::{Acquire, RawLock};
use crate::sync::atomic::AtomicU64;
use crate::sync::{Deadline, Identity};
use bytemuck::Pod;
use core::time::Duration;

/// The header of a shared value: the lock for locked writers and the seqlock counter.
/// The value's bytes live in a separate slice of words (see [`RawValue::view`]).
///
/// Made only of atomics; all-zero bytes are a valid, unlocked, consistent header.
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct RawValue {
    inner: RawArray,
}

// SAFETY: a transparent wrapper of RawArray, which is SharedState.
unsafe impl super::SharedState for RawValue {}

impl RawValue {
    /// An unlocked header (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawValue {
        RawValue {
            inner: RawArray::new(),
        }
    }
    /// An unlocked header (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawValue {
        RawValue {
            inner: RawArray::new(),
        }
    }

    /// A typed view of the value of type `T` stored in `words`; `None` if `words` has
    /// fewer than `size_of::<T>().div_ceil(8)` words.
    ///
    /// ```
    /// use multiproc::raw::RawValue;
    /// use core::sync::atomic::AtomicU64;
    /// let header = RawValue::new();
    /// let words = [AtomicU64::new(0)];
    /// let v = header.view::<i64>(&words).unwrap();
    /// v.set(-3);
    /// assert_eq!(v.fetch_add(5), -3);
    /// assert_eq!(v.get(), 2);
    /// ```
    #[inline]
    pub fn view<'a, T: Pod>(&'a self, words: &'a [AtomicU64]) -> Option<ValueRef<'a, T>> {
        self.inner.view(words, 1).map(|a| ValueRef { a })
    }

    /// The header as an array header (a value is an array of one element).
    #[inline]
    pub fn as_array(&self) -> &RawArray {
        &self.inner
    }

    /// Takes the lock; see [`RawArray::lock`].
    #[inline]
    pub fn lock(&self, me: Identity, deadline: Deadline, probe: Duration) -> Acquire {
        self.inner.lock(me, deadline, probe)
    }

    /// Takes the lock without waiting; see [`RawArray::try_lock`].
    #[inline]
    pub fn try_lock(&self, me: Identity) -> Acquire {
        self.inner.try_lock(me)
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// As [`RawArray::unlock`]: the caller holds the lock and has ended its write.
    #[inline]
    pub unsafe fn unlock(&self, me: Identity) {
        // SAFETY: forwarded contract.
        unsafe { self.inner.unlock(me) }
    }

    /// The lock itself; see [`RawArray::raw_lock`].
    #[inline]
    pub fn raw_lock(&self) -> &RawLock {
        self.inner.raw_lock()
    }

    /// The seqlock counter (a snapshot): odd while a locked writer is storing.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.inner.seq()
    }
}

/// A typed view of a shared value: a [`RawValue`] header plus the words holding one
/// `T`. Lock-free for word-sized `T`; see [`super::array`].
pub struct ValueRef<'a, T> {
    a: ArrayRef<'a, T>,
}

impl<T> Clone for ValueRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ValueRef<'_, T> {}

impl<T> core::fmt::Debug for ValueRef<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ValueRef")
            .field("type", &core::any::type_name::<T>())
            .finish()
    }
}

// Every `ArrayRef` call below uses index 0 of a one-element view, so none returns
// `None`: the fallbacks are unreachable and exist only to avoid a panic path.
impl<'a, T: Pod> ValueRef<'a, T> {
    /// Sets how often a waiter for the lock checks that its holder is alive.
    #[inline]
    pub fn with_probe(self, probe: Duration) -> Self {
        ValueRef {
            a: self.a.with_probe(probe),
        }
    }

    /// The value as a one-element array view (for bulk and locked operations).
    #[inline]
    pub fn as_array(&self) -> ArrayRef<'a, T> {
        self.a
    }

    /// True when reads and writes are single atomic word operations.
    #[inline]
    pub fn is_lock_free(&self) -> bool {
        self.a.is_lock_free()
    }

    /// The value: one atomic load, or a seqlock read.
    #[inline]
    pub fn get(&self) -> T {
        self.a.get(0).unwrap_or_else(T::zeroed)
    }

    /// Stores `x`: lock-free for word-sized `T`, under the lock otherwise.
    #[inline]
    pub fn set(&self, x: T) {
        self.a.set(0, x);
    }

    /// Atomic read-modify-write; see [`ArrayRef::update`] (`f` may run more than once
    /// for word-sized `T`).
    #[inline]
    pub fn update<R>(&self, f: impl FnMut(&mut T) -> R) -> R {
        let mut f = f;
        match self.a.update(0, &mut f) {
            Some(r) => r,
            None => f(&mut T::zeroed()),
        }
    }

    /// Stores `x`, returning the previous value.
    #[inline]
    pub fn swap(&self, x: T) -> T {
        self.a.swap(0, x).unwrap_or_else(T::zeroed)
    }

    /// Stores `new` if the value's bytes equal `current`'s; see
    /// [`ArrayRef::compare_exchange`].
    #[inline]
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        self.a
            .compare_exchange(0, current, new)
            .unwrap_or_else(|| Err(T::zeroed()))
    }
}

impl<T: Integer> ValueRef<'_, T> {
    /// Adds `x` (wrapping), returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_add(&self, x: T) -> T {
        self.a.fetch_add(0, x).unwrap_or_else(T::zeroed)
    }
    /// Subtracts `x` (wrapping), returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_sub(&self, x: T) -> T {
        self.a.fetch_sub(0, x).unwrap_or_else(T::zeroed)
    }
    /// Bitwise and, returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_and(&self, x: T) -> T {
        self.a.fetch_and(0, x).unwrap_or_else(T::zeroed)
    }
    /// Bitwise or, returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_or(&self, x: T) -> T {
        self.a.fetch_or(0, x).unwrap_or_else(T::zeroed)
    }
    /// Bitwise xor, returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_xor(&self, x: T) -> T {
        self.a.fetch_xor(0, x).unwrap_or_else(T::zeroed)
    }
    /// Maximum, returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_max(&self, x: T) -> T {
        self.a.fetch_max(0, x).unwrap_or_else(T::zeroed)
    }
    /// Minimum, returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_min(&self, x: T) -> T {
        self.a.fetch_min(0, x).unwrap_or_else(T::zeroed)
    }
}
