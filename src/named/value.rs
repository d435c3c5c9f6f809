//! `Value<T>`: one `T: Pod` shared by name between processes.

use super::common::{
    acquire_elems, check_elem_params, elem_params, named_handle, refuse_self_deadlock,
    try_lock_elems, under_lock, words_or_invalid, words_ptr, words_slice, Locked,
};
use crate::raw::array::is_word_sized;
use crate::raw::lock::{Acquire, DEFAULT_PROBE};
use crate::raw::{Integer, RawValue, ValueRef};
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

/// One value of type `T` in named shared memory, like Python's
/// `multiprocessing.Value` — any process can attach to it by name.
///
/// * **Word-sized `T`** (1, 2, 4 or 8 bytes: integers, `f64`, `[u8; 4]`, ...):
///   [`get`](Value::get) and [`set`](Value::set) are single atomic instructions;
///   [`fetch_add`](Value::fetch_add) & co. (integers), [`swap`](Value::swap),
///   [`compare_exchange`](Value::compare_exchange) and [`update`](Value::update) are
///   lock-free and atomic with respect to each other.
/// * **Larger `T`** (`[u64; 8]`, a `#[derive(Pod)]` struct, `u128`, ...): writers
///   take the value's lock; readers use a seqlock — they never block writers and never
///   see a torn value.
/// * **[`lock`](Value::lock)** gives a [`ValueGuard`]: a private copy taken under the
///   lock and written back when the guard drops (if it was changed) — for
///   read-modify-write of several fields of a struct. It excludes other guards and
///   locked writers, **not** lock-free operations, which its write-back overwrites:
///   for word-sized `T` use [`update`](Value::update) instead.
/// * A process killed mid-write never wedges the others: readers fall back to the
///   lock after a bounded number of retries, and the lock recovers from a dead holder
///   within its probe interval (a multi-word value may then be half written).
///
/// If another process truncates the value's file, this process survives (see
/// [`is_broken`](Value::is_broken)): with no error to return, the operations go on
/// on a zero page private to this process.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Value;
/// let name = format!("doc-value-{}", std::process::id());
/// let hits: Value<u64> = Value::create(&name, 0)?;
///
/// // In another process (forked here; an unrelated program works the same way):
/// let pid = unsafe { libc::fork() };
/// if pid == 0 {
///     let hits: Value<u64> = Value::open(&name).unwrap();
///     for _ in 0..1000 {
///         hits.fetch_add(1);
///     }
///     unsafe { libc::_exit(0) };
/// }
/// for _ in 0..1000 {
///     hits.fetch_add(1);
/// }
/// unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
/// assert_eq!(hits.get(), 2000);
/// # Ok(()) }
/// ```
pub struct Value<T> {
    obj: Object<RawValue>,
    words: NonNull<AtomicU64>,
    probe: Duration,
    _t: PhantomData<fn() -> T>,
}

named_handle! {
    impl[T: Pod] Value<T>: "value" (anonymous), obj;
    debug[T] "Value" { "type" => |_| core::any::type_name::<T>() };
    /// Creates the value `name` holding `init`. `Err(AlreadyExists)` if the name is
    /// taken; `Err(InvalidArgument)` for a zero-sized `T`.
    create(init: T);
    /// Opens the value `name`. `Err(WrongKind)` if it is not a value, `Err(WrongType)`
    /// if it holds another type than `T` (the message names both), `Err(Corrupt)` if
    /// its header is inconsistent.
    open();
    /// Opens `name`, creating it holding `init` if it does not exist. An existing
    /// value of type `T` is returned as it is: `init` is a starting value (state), not
    /// a creation parameter, so it is not compared. `Err(WrongType)` if it holds
    /// another type.
    open_or_create(init: T);
    /// How often a waiter for the lock checks that its holder is alive: the bound on
    /// how long a dead writer can delay others (default 10 ms).
    with_probe_interval => probe;
    /// True once another process truncated the value's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)). No operation of a `Value`
    /// returns an error, so they go on, on a zero page private to this process: what
    /// it writes, no other process sees, and guards report
    /// [`recovered`](ValueGuard::recovered). Check this where it matters.
    is_broken;
}

// SAFETY: `words` points into the mapping that `obj` keeps alive; everything it reaches
// is atomics (SharedState), usable from any thread. T: Pod is plain data.
unsafe impl<T: Pod> Send for Value<T> {}
// SAFETY: as above.
unsafe impl<T: Pod> Sync for Value<T> {}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            obj: self.obj.clone(),
            words: self.words,
            probe: self.probe,
            _t: PhantomData,
        }
    }
}

fn value_spec<T>(ty: TypeInfo) -> Result<ObjectSpec> {
    let words = words_or_invalid::<T>("value", "", 1)?;
    Ok(ObjectSpec {
        kind: ObjectKind::Value,
        ty,
        params: elem_params::<T>(1, words),
        trailing: words * 8,
    })
}

impl<T: Pod> Value<T> {
    /// Number of storage words.
    const WORDS: usize = size_of::<T>().div_ceil(8);

    /// [`create`](Value::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, init: T, opts: &Options) -> Result<Value<T>> {
        words_or_invalid::<T>("value", name, 1)?;
        let obj = Object::create(
            name,
            opts,
            value_spec::<T>(opts.element_type::<T>())?,
            |raw, trailing| Value::<T>::init(raw, trailing, init),
        )?;
        Ok(Value::from_obj(obj))
    }

    /// An unnamed value holding `init`, shared with children forked after this call.
    pub fn anonymous(init: T) -> Result<Value<T>> {
        let obj = Object::anonymous(value_spec::<T>(TypeInfo::of::<T>())?, |raw, trailing| {
            Value::<T>::init(raw, trailing, init)
        })?;
        Ok(Value::from_obj(obj))
    }

    fn init(raw: &RawValue, trailing: *mut u8, init: T) -> Result<()> {
        let p = NonNull::new(trailing.cast::<AtomicU64>()).unwrap_or(NonNull::dangling());
        // SAFETY: the trailing region holds WORDS aligned words of the new mapping.
        let w = unsafe { words_slice(p, Self::WORDS) };
        raw.view::<T>(w)
            .ok_or_else(|| Error::invalid("value layout mismatch"))?
            .set(init);
        Ok(())
    }

    /// [`open`](Value::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Value<T>> {
        words_or_invalid::<T>("value", name, 1)?;
        let obj = Object::open(
            name,
            opts,
            ObjectKind::Value,
            opts.element_type::<T>(),
            |img| {
                let (len, bytes) = check_elem_params::<T>(name, img)?;
                if len != 1 {
                    return Err(Error::corrupt(
                        name,
                        format!("a value holds 1 element, its header says {len}"),
                    ));
                }
                Ok(bytes)
            },
        )?;
        Ok(Value::from_obj(obj))
    }

    /// [`open_or_create`](Value::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, init: T, opts: &Options) -> Result<Value<T>> {
        segment::open_or_create(
            || Value::create_with(name, init, opts),
            || Value::open_with(name, opts),
        )
    }

    fn from_obj(obj: Object<RawValue>) -> Value<T> {
        Value {
            words: words_ptr(&obj),
            obj,
            probe: DEFAULT_PROBE,
            _t: PhantomData,
        }
    }

    /// The segment holding the value.
    pub fn segment(&self) -> &segment::Segment {
        self.obj.segment()
    }

    /// The raw header inside the segment.
    pub fn raw(&self) -> &RawValue {
        self.obj.raw()
    }

    /// The typed raw view the operations run on.
    #[inline]
    pub fn view(&self) -> ValueRef<'_, T> {
        // SAFETY: `words` points at WORDS words of the mapping `self.obj` keeps alive.
        let w = unsafe { words_slice(self.words, Self::WORDS) };
        match self.obj.raw().view::<T>(w) {
            Some(v) => v.with_probe(self.probe),
            // Unreachable from shared data: WORDS is a constant, exactly the words one
            // T needs (and the segment's size was checked at create/open).
            None => unreachable!("value '{}': words checked at open", self.name()),
        }
    }

    /// True when `get`/`set` are single atomic instructions and `update` & co. are
    /// lock-free (`T` of 1, 2, 4 or 8 bytes).
    #[inline]
    pub fn is_lock_free(&self) -> bool {
        is_word_sized::<T>()
    }

    /// The value. One atomic load for word-sized `T`; a seqlock read otherwise (never
    /// torn, never blocks a writer).
    #[inline]
    pub fn get(&self) -> T {
        self.view().get()
    }

    /// Panics if this thread holds the lock through a guard and `T` is written under
    /// the lock (multi-word): the write would wait for the guard.
    #[inline]
    fn refuse_self_deadlock_for_multi_word(&self) {
        if !is_word_sized::<T>() {
            refuse_self_deadlock(self.raw().as_array(), "this value");
        }
    }

    /// Stores `x`. One atomic store for word-sized `T`; under the lock otherwise.
    #[inline]
    pub fn set(&self, x: T) {
        self.refuse_self_deadlock_for_multi_word();
        self.view().set(x)
    }

    /// Atomically replaces the value with what `f` makes of it; returns `f`'s result.
    ///
    /// For word-sized `T` this is a lock-free CAS loop, so **`f` may run more than
    /// once** (on a fresh copy each time: keep it free of side effects); it is atomic
    /// with respect to `fetch_add` & co. For larger `T` it runs once, under the lock.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// let v = multiproc::Value::<f64>::anonymous(1.5)?;
    /// let doubled = v.update(|x| { *x *= 2.0; *x });
    /// assert_eq!(doubled, 3.0);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn update<R>(&self, f: impl FnMut(&mut T) -> R) -> R {
        if is_word_sized::<T>() {
            return self.view().update(f);
        }
        let raw = self.raw().as_array();
        let me = refuse_self_deadlock(raw, "this value");
        self.view().update(under_lock(raw, me, f))
    }

    /// Stores `x`, returning the previous value.
    #[inline]
    pub fn swap(&self, x: T) -> T {
        self.refuse_self_deadlock_for_multi_word();
        self.view().swap(x)
    }

    /// Stores `new` if the value's bytes equal `current`'s: `Ok(previous)` if it did,
    /// `Err(actual)` if not. The comparison is bytewise (for floats `-0.0 != 0.0`).
    #[inline]
    pub fn compare_exchange(&self, current: T, new: T) -> core::result::Result<T, T> {
        self.refuse_self_deadlock_for_multi_word();
        self.view().compare_exchange(current, new)
    }

    /// Locks the value and returns a guard holding a private copy (`DerefMut`); the
    /// copy is written back when the guard drops, if it was changed. Blocks while
    /// another guard or locked writer holds the lock; a holder that died is recovered
    /// (see [`ValueGuard::recovered`]).
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// #[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
    /// #[repr(C)]
    /// struct Stats { count: u64, total: u64 }
    /// let v = multiproc::Value::anonymous(Stats { count: 0, total: 0 })?;
    /// {
    ///     let mut s = v.lock();
    ///     s.count += 1;
    ///     s.total += 42;
    /// } // both fields written back together
    /// assert_eq!(v.get().total, 42);
    /// # Ok(()) }
    /// ```
    ///
    /// A lock word that names the calling thread although none of its guards holds the
    /// lock was forged by another process (it cannot be real): the lock is taken over
    /// as from a dead holder ([`ValueGuard::recovered`]).
    ///
    /// # Panics
    /// If the calling thread already holds this value's lock (a live guard, through
    /// any handle, or inside an [`update`](Value::update) of a multi-word value):
    /// waiting would deadlock. The same holds for the operations that take the lock —
    /// [`set`](Value::set), [`update`](Value::update), [`swap`](Value::swap) or
    /// [`compare_exchange`](Value::compare_exchange) of a multi-word value — while this
    /// thread holds a guard: change the guard instead. Only this process's own guards
    /// count, so no other process can cause the panic.
    pub fn lock(&self) -> ValueGuard<'_, T> {
        let (a, me) = acquire_elems(self.raw().as_array(), None, self.probe, "this value");
        self.guard(a, me)
    }

    /// True while some thread holds the value's lock (a guard or a locked writer).
    pub fn is_locked(&self) -> bool {
        self.raw().raw_lock().is_locked()
    }

    /// [`lock`](Value::lock), unless another thread holds the lock: then `None`.
    pub fn try_lock(&self) -> Option<ValueGuard<'_, T>> {
        let (a, me) = try_lock_elems(self.raw().as_array());
        a.is_held().then(|| self.guard(a, me))
    }

    /// [`lock`](Value::lock), waiting at most `timeout`: `None` after that.
    ///
    /// # Panics
    /// As [`lock`](Value::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Option<ValueGuard<'_, T>> {
        let (a, me) = acquire_elems(
            self.raw().as_array(),
            deadline_after(timeout),
            self.probe,
            "this value",
        );
        a.is_held().then(|| self.guard(a, me))
    }

    fn guard(&self, a: Acquire, me: Identity) -> ValueGuard<'_, T> {
        let (raw, view) = (self.raw().as_array(), self.view().as_array());
        ValueGuard {
            value: self,
            // SAFETY: called right after `me` acquired the lock.
            locked: unsafe { Locked::new(raw, view, a, me, self.obj.broken(), [T::zeroed()]) },
        }
    }
}

impl<T: Integer> Value<T> {
    /// Adds `x` (wrapping), returning the previous value. Lock-free: one atomic
    /// instruction for 8-byte integers, a CAS loop for smaller ones.
    #[inline]
    pub fn fetch_add(&self, x: T) -> T {
        self.view().fetch_add(x)
    }
    /// Subtracts `x` (wrapping), returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_sub(&self, x: T) -> T {
        self.view().fetch_sub(x)
    }
    /// Bitwise-ands `x` into the value, returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_and(&self, x: T) -> T {
        self.view().fetch_and(x)
    }
    /// Bitwise-ors `x` into the value, returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_or(&self, x: T) -> T {
        self.view().fetch_or(x)
    }
    /// Bitwise-xors `x` into the value, returning the previous value. Lock-free.
    #[inline]
    pub fn fetch_xor(&self, x: T) -> T {
        self.view().fetch_xor(x)
    }
    /// Stores the maximum of the value and `x`, returning the previous value.
    /// Lock-free.
    #[inline]
    pub fn fetch_max(&self, x: T) -> T {
        self.view().fetch_max(x)
    }
    /// Stores the minimum of the value and `x`, returning the previous value.
    /// Lock-free.
    #[inline]
    pub fn fetch_min(&self, x: T) -> T {
        self.view().fetch_min(x)
    }
}

/// The locked [`Value`]: a private copy of it (`Deref`/`DerefMut<Target = T>`).
///
/// Dropping the guard writes the copy back (as one seqlock write, only if it was
/// mutably dereferenced and changed) and releases the lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Pod> {
    value: &'a Value<T>,
    locked: Locked<'a, T, [T; 1]>,
}

impl<T: Pod> ValueGuard<'_, T> {
    /// True if the lock was taken over from a holder that died holding it. Guards
    /// write back only when they drop, so only a writer killed during its write-back
    /// can have left a multi-word value half-updated.
    pub fn recovered(&self) -> bool {
        self.locked.recovered()
    }
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.locked.copy()[0]
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.locked.copy_mut()[0]
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueGuard")
            .field("value", &self.value.name())
            .field("copy", &self.locked.copy()[0])
            .finish()
    }
}
