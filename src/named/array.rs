//! `Array<T>`: a fixed-length array of `T: Pod` shared by name between processes.

use super::common::{
    acquire_elems, check_elem_params, elem_params, named_handle, refuse_self_deadlock,
    try_lock_elems, under_lock, words_or_invalid, words_ptr, words_slice, Locked,
};
use crate::raw::array::{is_word_sized, ArrayRef, Integer, RawArray};
use crate::raw::lock::{Acquire, DEFAULT_PROBE};
use crate::segment::{self, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::sync::atomic::AtomicU64;
use crate::sync::Identity;
use crate::sys::clock::deadline_after;
use crate::{Error, Result};
use bytemuck::Pod;
use core::fmt;
use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr::NonNull;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// A fixed-length array of `T` in named shared memory, like Python's
/// `multiprocessing.Array` — any process can attach to it by name.
///
/// * **Element access is atomic.** For 1-, 2-, 4- and 8-byte `T`, [`get`](Array::get)
///   and [`set`](Array::set) are single atomic word operations, and
///   [`update`](Array::update), [`fetch_add`](Array::fetch_add) & co. are lock-free
///   CAS loops (neighbouring elements sharing a word are never disturbed). Larger `T`
///   are written under the array's lock and read with a seqlock: readers never block
///   writers and never see a torn element.
/// * **Bulk access** — [`to_vec`](Array::to_vec), [`copy_from_slice`](Array::copy_from_slice),
///   [`fill`](Array::fill) — is one seqlock read or one locked write: consistent
///   with respect to other bulk writers and guards.
/// * **[`lock`](Array::lock)** gives an [`ArrayGuard`]: a private copy of the whole
///   array (`DerefMut<Target = [T]>`), taken under the lock and written back —
///   only the elements that changed — when the guard drops. That costs two O(len)
///   copies, and it excludes other guards and bulk writers, **not** lock-free
///   element operations of other processes, which a guard's write-back of the same
///   element overwrites. For one element, prefer `update`/`fetch_add`.
/// * A writer that dies mid-write never wedges readers: they fall back to the lock,
///   whose next acquirer recovers it (each element then holds its old or new value;
///   a multi-word element may be half written).
///
/// Lengths of 0 are allowed; zero-sized element types are refused.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Array;
/// let name = format!("doc-array-{}", std::process::id());
/// let a: Array<u32> = Array::from_slice(&name, &[1, 2, 3])?;
/// let b: Array<u32> = Array::open(&name)?; // in any process
/// b.set(0, 10)?;
/// b.fetch_add(2, 5)?;
/// assert_eq!(a.to_vec(), [10, 2, 8]);
/// {
///     let mut g = a.lock();
///     g.reverse();
/// } // written back here
/// assert_eq!(b.get(0), Some(8));
/// assert_eq!(b.get(3), None);
/// assert!(b.set(3, 0).is_err());
/// # Ok(()) }
/// ```
pub struct Array<T> {
    obj: Object<RawArray>,
    words: NonNull<AtomicU64>,
    nwords: usize,
    len: usize,
    probe: Duration,
    _t: PhantomData<fn() -> T>,
}

named_handle! {
    impl[T: Pod] Array<T>: "array" (anonymous), obj;
    debug[T] "Array" {
        "type" => |_| core::any::type_name::<T>(),
        "len" => |a| a.len,
    };
    /// Creates an array of `len` zeroed elements named `name`.
    /// `Err(AlreadyExists)` if the name is taken; `Err(InvalidArgument)` for a zero-sized
    /// `T` or an absurd length.
    create(len: usize);
    /// Opens the array `name`. `Err(WrongKind)` if it is not an array, `Err(WrongType)`
    /// if its elements are not `T`, `Err(Corrupt)` if its header is inconsistent.
    open();
    /// Opens `name` if it exists with `len` elements, or creates it with `len` zeroed
    /// elements if it does not exist. `Err(Mismatch)` if it exists with another
    /// length (it is left alone); `Err(WrongType)` if its elements are not `T`.
    open_or_create(len: usize);
    /// How often a waiter for the lock checks that its holder is alive: the bound on
    /// how long a dead writer can delay others (default 10 ms).
    with_probe_interval => probe;
    /// True once another process truncated the array's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)). Operations returning a
    /// `Result` then return `Err(Corrupt)` and `get` returns `None`; `to_vec`, `fill`
    /// and guards work on zero pages private to this process (guards report
    /// [`recovered`](ArrayGuard::recovered)).
    is_broken;
}

// SAFETY: the pointers point into the mapping that `obj` keeps alive; everything they
// reach is atomics (SharedState), usable from any thread. T: Pod is plain data.
unsafe impl<T: Pod> Send for Array<T> {}
// SAFETY: as above.
unsafe impl<T: Pod> Sync for Array<T> {}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            obj: self.obj.clone(),
            words: self.words,
            nwords: self.nwords,
            len: self.len,
            probe: self.probe,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> Array<T> {
    /// [`create`](Array::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, len: usize, opts: &Options) -> Result<Array<T>> {
        Array::build(name, len, opts, None)
    }

    /// Creates an array named `name` holding a copy of `items`.
    pub fn from_slice(name: &str, items: &[T]) -> Result<Array<T>> {
        Array::from_slice_with(name, items, &Options::default())
    }

    /// [`from_slice`](Array::from_slice) with explicit segment [`Options`].
    pub fn from_slice_with(name: &str, items: &[T], opts: &Options) -> Result<Array<T>> {
        Array::build(name, items.len(), opts, Some(items))
    }

    /// An unnamed array of `len` zeroed elements, shared with children forked after
    /// this call.
    pub fn anonymous(len: usize) -> Result<Array<T>> {
        let words = words_or_invalid::<T>("array", "", len)?;
        let obj = Object::<RawArray>::anonymous(
            Array::<T>::spec(len, words, TypeInfo::of::<T>()),
            |_, _| Ok(()),
        )?;
        Ok(Array::from_obj(obj, len, words))
    }

    fn spec(len: usize, words: usize, ty: TypeInfo) -> ObjectSpec {
        ObjectSpec {
            kind: ObjectKind::Array,
            ty,
            params: elem_params::<T>(len, words),
            trailing: words * 8,
        }
    }

    fn build(name: &str, len: usize, opts: &Options, items: Option<&[T]>) -> Result<Array<T>> {
        let words = words_or_invalid::<T>("array", name, len)?;
        let obj = Object::create(
            name,
            opts,
            Array::<T>::spec(len, words, opts.element_type::<T>()),
            |raw: &RawArray, trailing| {
                if let Some(items) = items {
                    let p =
                        NonNull::new(trailing.cast::<AtomicU64>()).unwrap_or(NonNull::dangling());
                    // SAFETY: the trailing region holds `words` aligned words of the new
                    // mapping, which lives until `init` returns.
                    let w = unsafe { words_slice(p, words) };
                    let view = raw
                        .view::<T>(w, len)
                        .ok_or_else(|| Error::invalid("array layout mismatch"))?;
                    view.write_from(items);
                }
                Ok(())
            },
        )?;
        Ok(Array::from_obj(obj, len, words))
    }

    /// [`open`](Array::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Array<T>> {
        if size_of::<T>() == 0 {
            words_or_invalid::<T>("array", name, 0)?;
        }
        let mut len = 0;
        let obj = Object::open(
            name,
            opts,
            ObjectKind::Array,
            opts.element_type::<T>(),
            |img| {
                let (n, bytes) = check_elem_params::<T>(name, img)?;
                len = n;
                Ok(bytes)
            },
        )?;
        let words = obj.trailing_len() / 8;
        Ok(Array::from_obj(obj, len, words))
    }

    /// [`open_or_create`](Array::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, len: usize, opts: &Options) -> Result<Array<T>> {
        words_or_invalid::<T>("array", name, len)?;
        segment::open_or_create(
            || Array::create_with(name, len, opts),
            || {
                let a = Array::open_with(name, opts)?;
                segment::same_shape(
                    name,
                    ObjectKind::Array,
                    &[segment::param("length", a.len(), len)],
                )?;
                Ok(a)
            },
        )
    }

    fn from_obj(obj: Object<RawArray>, len: usize, nwords: usize) -> Array<T> {
        Array {
            words: words_ptr(&obj),
            obj,
            nwords,
            len,
            probe: DEFAULT_PROBE,
            _t: PhantomData,
        }
    }

    /// The segment holding the array.
    pub fn segment(&self) -> &segment::Segment {
        self.obj.segment()
    }

    /// The raw header inside the segment.
    pub fn raw(&self) -> &RawArray {
        self.obj.raw()
    }

    /// The typed raw view the operations run on.
    #[inline]
    pub fn view(&self) -> ArrayRef<'_, T> {
        // SAFETY: `words` points at `nwords` words of the mapping `self.obj` keeps alive.
        let w = unsafe { words_slice(self.words, self.nwords) };
        match self.obj.raw().view::<T>(w, self.len) {
            Some(v) => v.with_probe(self.probe),
            // Unreachable from shared data: `len` and `nwords` are this handle's own
            // copies, and nwords == words_for(len) was checked at create/open.
            None => unreachable!("array '{}': words checked at open", self.name()),
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the array has no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when single elements are read and written with one atomic instruction
    /// (`T` of 1, 2, 4 or 8 bytes); otherwise a seqlock and the lock are used.
    #[inline]
    pub fn is_lock_free(&self) -> bool {
        is_word_sized::<T>()
    }

    fn out_of_range(&self, i: usize) -> Error {
        Error::invalid(format!(
            "index {i} is out of range for array '{}' of length {}",
            self.name(),
            self.len
        ))
    }

    #[inline]
    fn in_range<R>(&self, i: usize, r: Option<R>) -> Result<R> {
        self.obj.intact(r.ok_or_else(|| self.out_of_range(i)))
    }

    /// Element `i`, or `None` if `i >= len()` (and, once another process truncated
    /// the array's segment, always: see [`is_broken`](Array::is_broken)).
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        self.view().get(i).filter(|_| !self.obj.broken())
    }

    /// Panics if this thread holds the lock through a guard and `T` is written under
    /// the lock (multi-word): the write would wait for the guard.
    #[inline]
    fn refuse_self_deadlock_for_multi_word(&self) {
        if !is_word_sized::<T>() {
            refuse_self_deadlock(self.raw(), "this array");
        }
    }

    /// Stores `x` at `i`. `Err(InvalidArgument)` if `i >= len()`.
    #[inline]
    pub fn set(&self, i: usize, x: T) -> Result<()> {
        self.refuse_self_deadlock_for_multi_word();
        if self.view().set(i, x) {
            self.obj.intact(Ok(()))
        } else {
            self.obj.intact(Err(self.out_of_range(i)))
        }
    }

    /// Atomically replaces element `i` with what `f` makes of it; returns `f`'s result.
    ///
    /// For 1-, 2-, 4- and 8-byte `T` this is a lock-free CAS loop, so **`f` may run more
    /// than once** (on a fresh copy each time: keep it free of side effects); it is
    /// atomic with respect to `fetch_add` & co. For larger `T` it runs once, under the
    /// lock.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// let a = multiproc::Array::<f64>::anonymous(4)?;
    /// a.update(1, |x| *x += 0.5)?;
    /// assert_eq!(a.get(1), Some(0.5));
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn update<R>(&self, i: usize, f: impl FnMut(&mut T) -> R) -> Result<R> {
        if is_word_sized::<T>() {
            return self.in_range(i, self.view().update(i, f));
        }
        let me = refuse_self_deadlock(self.raw(), "this array");
        self.in_range(i, self.view().update(i, under_lock(self.raw(), me, f)))
    }

    /// Stores `x` at `i`, returning the previous element.
    #[inline]
    pub fn swap(&self, i: usize, x: T) -> Result<T> {
        self.refuse_self_deadlock_for_multi_word();
        self.in_range(i, self.view().swap(i, x))
    }

    /// Stores `new` at `i` if the element's bytes equal `current`'s:
    /// `Ok(Ok(previous))` if it did, `Ok(Err(actual))` if not.
    #[inline]
    pub fn compare_exchange(&self, i: usize, current: T, new: T) -> Result<Result<T, T>> {
        self.refuse_self_deadlock_for_multi_word();
        self.in_range(i, self.view().compare_exchange(i, current, new))
    }

    /// A copy of every element: one seqlock read, consistent with respect to bulk
    /// writes and guards (lock-free element updates made meanwhile are each seen
    /// before or after).
    pub fn to_vec(&self) -> Vec<T> {
        let mut v = vec![T::zeroed(); self.len];
        self.view().read_into(&mut v);
        v
    }

    /// Copies every element into `out`. `Err(InvalidArgument)` unless
    /// `out.len() == len()`.
    pub fn copy_to_slice(&self, out: &mut [T]) -> Result<()> {
        self.obj.intact(if self.view().read_into(out) {
            Ok(())
        } else {
            Err(self.len_mismatch("copy_to_slice", out.len()))
        })
    }

    /// Overwrites every element from `src`, as one locked write.
    /// `Err(InvalidArgument)` unless `src.len() == len()`.
    pub fn copy_from_slice(&self, src: &[T]) -> Result<()> {
        refuse_self_deadlock(self.raw(), "this array");
        self.obj.intact(if self.view().write_from(src) {
            Ok(())
        } else {
            Err(self.len_mismatch("copy_from_slice", src.len()))
        })
    }

    fn len_mismatch(&self, what: &str, got: usize) -> Error {
        Error::invalid(format!(
            "{what}: array '{}' has {} elements but the slice has {got}",
            self.name(),
            self.len
        ))
    }

    /// Sets every element to `x`, as one locked write.
    pub fn fill(&self, x: T) {
        refuse_self_deadlock(self.raw(), "this array");
        self.view().fill(x)
    }

    /// Locks the array and returns a guard holding a private copy of it (two O(len)
    /// copies); changed elements are written back when the guard drops. Blocks while
    /// another guard or bulk writer holds the lock; a holder that died is recovered
    /// (see [`ArrayGuard::recovered`]).
    ///
    /// A lock word that names the calling thread although none of its guards holds the
    /// lock was forged by another process (it cannot be real): the lock is taken over
    /// as from a dead holder ([`ArrayGuard::recovered`]).
    ///
    /// # Panics
    /// If the calling thread already holds this array's lock (a live guard, through
    /// any handle, or inside an [`update`](Array::update) of a multi-word element):
    /// waiting would deadlock. The same holds for the operations that take the lock —
    /// [`fill`](Array::fill), [`copy_from_slice`](Array::copy_from_slice), or a write
    /// of a multi-word element — while this thread holds a guard: change the guard
    /// instead. Only this process's own guards count, so no other process can cause
    /// the panic.
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        let (a, me) = acquire_elems(self.raw(), None, self.probe, "this array");
        self.guard(a, me)
    }

    /// True while some thread holds the array's lock (a guard or a locked writer).
    pub fn is_locked(&self) -> bool {
        self.raw().raw_lock().is_locked()
    }

    /// [`lock`](Array::lock), unless another thread holds the lock: then `None`.
    pub fn try_lock(&self) -> Option<ArrayGuard<'_, T>> {
        let (a, me) = try_lock_elems(self.raw());
        a.is_held().then(|| self.guard(a, me))
    }

    /// [`lock`](Array::lock), waiting at most `timeout`: `None` after that.
    ///
    /// # Panics
    /// As [`lock`](Array::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Option<ArrayGuard<'_, T>> {
        let (a, me) = acquire_elems(
            self.raw(),
            deadline_after(timeout),
            self.probe,
            "this array",
        );
        a.is_held().then(|| self.guard(a, me))
    }

    fn guard(&self, a: Acquire, me: Identity) -> ArrayGuard<'_, T> {
        let orig = vec![T::zeroed(); self.len];
        ArrayGuard {
            array: self,
            // SAFETY: called right after `me` acquired the lock.
            locked: unsafe { Locked::new(self.raw(), self.view(), a, me, self.obj.broken(), orig) },
        }
    }
}

impl<T: Integer> Array<T> {
    /// Adds `x` to element `i` (wrapping), returning the previous value. Lock-free: one
    /// atomic instruction for 8-byte `T`, a CAS loop for smaller ones.
    #[inline]
    pub fn fetch_add(&self, i: usize, x: T) -> Result<T> {
        self.in_range(i, self.view().fetch_add(i, x))
    }
    /// Subtracts `x` from element `i` (wrapping), returning the previous value.
    #[inline]
    pub fn fetch_sub(&self, i: usize, x: T) -> Result<T> {
        self.in_range(i, self.view().fetch_sub(i, x))
    }
    /// Bitwise-ands `x` into element `i`, returning the previous value.
    #[inline]
    pub fn fetch_and(&self, i: usize, x: T) -> Result<T> {
        self.in_range(i, self.view().fetch_and(i, x))
    }
    /// Bitwise-ors `x` into element `i`, returning the previous value.
    #[inline]
    pub fn fetch_or(&self, i: usize, x: T) -> Result<T> {
        self.in_range(i, self.view().fetch_or(i, x))
    }
    /// Bitwise-xors `x` into element `i`, returning the previous value.
    #[inline]
    pub fn fetch_xor(&self, i: usize, x: T) -> Result<T> {
        self.in_range(i, self.view().fetch_xor(i, x))
    }
    /// Stores the maximum of element `i` and `x`, returning the previous value.
    #[inline]
    pub fn fetch_max(&self, i: usize, x: T) -> Result<T> {
        self.in_range(i, self.view().fetch_max(i, x))
    }
    /// Stores the minimum of element `i` and `x`, returning the previous value.
    #[inline]
    pub fn fetch_min(&self, i: usize, x: T) -> Result<T> {
        self.in_range(i, self.view().fetch_min(i, x))
    }
}

/// The locked [`Array`]: a private copy of its elements (`DerefMut<Target = [T]>`).
///
/// Dropping the guard writes back the elements that changed (as one seqlock write,
/// only if it was mutably dereferenced) and releases the lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod> {
    array: &'a Array<T>,
    locked: Locked<'a, T, Vec<T>>,
}

impl<T: Pod> ArrayGuard<'_, T> {
    /// True if the lock was taken over from a holder that died holding it. Guards
    /// write back only when they drop, so only a writer killed during its write-back
    /// (or bulk write) can have left elements half-updated.
    pub fn recovered(&self) -> bool {
        self.locked.recovered()
    }
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.locked.copy()
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.locked.copy_mut()
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayGuard")
            .field("array", &self.array.name())
            .field("elements", &self.locked.copy().as_slice())
            .finish()
    }
}
