//! The element segments of [`Value`](crate::Value) and [`Array`](crate::Array):
//! their header parameters, their word region, and taking their lock.

use super::hold::{held_here, Held, HeldHere};
use crate::raw::array::{words_for, ArrayRef, RawArray};
use crate::raw::lock::Acquire;
use crate::segment::{self, HeaderImage, Object};
use crate::sync::atomic::AtomicU64;
use crate::sync::Identity;
use crate::sys::clock::Deadline;
use crate::{Error, Result};
use bytemuck::Pod;
use core::mem::size_of;
use core::ptr::NonNull;
use std::time::Duration;

/// Header parameters shared by `Value` and `Array`:
/// `[len, element size, words, check]`, where `check` is a hash of the other three so
/// that a corrupted length that still fits the file is caught too.
pub(crate) fn elem_params<T>(len: usize, words: usize) -> [u64; 4] {
    let (len, size, words) = (len as u64, size_of::<T>() as u64, words as u64);
    [len, size, words, params_check(len, size, words)]
}

fn params_check(len: u64, size: u64, words: u64) -> u64 {
    let mut h: u64 = 0x6d70_7261_7272_6179; // "mprarray"
    for x in [len, size, words] {
        h = (h ^ x).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    h
}

/// The number of words `len` elements of `T` need, or `InvalidArgument` naming the
/// object: zero-sized `T` and lengths whose byte size overflows are refused.
pub(crate) fn words_or_invalid<T>(what: &str, name: &str, len: usize) -> Result<usize> {
    if size_of::<T>() == 0 {
        return Err(Error::invalid(format!(
            "{what} '{name}': the element type {} is zero-sized and would hold no data",
            core::any::type_name::<T>()
        )));
    }
    let words = words_for::<T>(len)
        .filter(|w| {
            w.checked_mul(8)
                .is_some_and(|b| b as u64 <= segment::MAX_SEGMENT_LEN)
        })
        .ok_or_else(|| {
            Error::invalid(format!(
                "{what} '{name}': {len} elements of {} ({} bytes each) exceed the \
                 segment limit of {} bytes",
                core::any::type_name::<T>(),
                size_of::<T>(),
                segment::MAX_SEGMENT_LEN
            ))
        })?;
    Ok(words)
}

/// Validates the parameters of an opened `Value`/`Array` header; returns the element
/// count and the trailing length they imply.
pub(crate) fn check_elem_params<T>(name: &str, img: &HeaderImage) -> Result<(usize, usize)> {
    let [len, size, words, check] = img.params;
    if size != size_of::<T>() as u64 || size != u64::from(img.type_size) {
        return Err(Error::corrupt(
            name,
            format!(
                "its parameters record {size}-byte elements but its type record says {} \
                 and {} is {} bytes",
                img.type_size,
                core::any::type_name::<T>(),
                size_of::<T>()
            ),
        ));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|_| size != 0)
        .ok_or_else(|| Error::corrupt(name, format!("impossible element count {len}")))?;
    let need = words_for::<T>(len).and_then(|w| w.checked_mul(8));
    match need {
        Some(bytes)
            if words == (bytes / 8) as u64 && check == params_check(len as u64, size, words) =>
        {
            Ok((len, bytes))
        }
        _ => Err(Error::corrupt(
            name,
            format!(
                "its parameters (len {len}, element size {size}, {words} words, check \
                 {check:#x}) are inconsistent: {len} elements need {} words",
                need.map_or_else(
                    || "an impossible number of".to_owned(),
                    |b| (b / 8).to_string()
                )
            ),
        )),
    }
}

/// The words of an object's trailing region.
pub(crate) fn words_ptr<R: crate::raw::SharedState>(obj: &Object<R>) -> NonNull<AtomicU64> {
    // The trailing region is LINE-aligned inside a mapping, hence non-null and aligned.
    NonNull::new(obj.trailing().cast::<AtomicU64>()).unwrap_or(NonNull::dangling())
}

/// Builds `&[AtomicU64]` over `n` words at `p`.
///
/// # Safety
/// `p` points at `n` 8-aligned words of a mapping that outlives `'a`.
pub(crate) unsafe fn words_slice<'a>(p: NonNull<AtomicU64>, n: usize) -> &'a [AtomicU64] {
    // SAFETY: per the contract; AtomicU64 tolerates concurrent foreign writes, and
    // nobody ever forms a non-atomic or `&mut` reference to these bytes.
    unsafe { core::slice::from_raw_parts(p.as_ptr(), n) }
}

/// Takes a raw array lock for the calling thread, refusing a self-deadlock (see
/// [`refuse_self_deadlock`]). A lock word that names this thread without a live guard
/// of it was forged: it is taken over ([`Acquire::Recovered`]).
pub(crate) fn acquire_elems(
    raw: &RawArray,
    deadline: Deadline,
    probe: Duration,
    what: &str,
) -> (Acquire, Identity) {
    let me = refuse_self_deadlock(raw, what);
    (raw.lock(me, deadline, probe), me)
}

/// The calling thread's identity, after checking that it does not hold `raw`'s lock
/// through a live guard (or in a closure run under it): the callers are about to wait
/// for that lock, which would deadlock — a bug in the caller, reported by a panic.
/// Only this process's record of its guards is consulted ([`held_here`]), never the
/// shared lock word alone, so no other process can cause the panic.
pub(crate) fn refuse_self_deadlock(raw: &RawArray, what: &str) -> Identity {
    let me = crate::sync::current_identity();
    let lock = raw.raw_lock();
    // Unreachable from shared memory: `held_here` is this thread's own record.
    assert!(
        !(lock.holder() == Some(me.tid) && held_here(lock, me)),
        "this thread already holds the lock of {what} (a guard from lock() is alive): \
         waiting for it would deadlock; use the guard instead"
    );
    me
}

/// Runs `f` (a user closure that the raw layer runs under the lock) with the lock
/// recorded as held by this thread, so that a nested locking call in `f` is refused
/// by [`refuse_self_deadlock`] rather than taking the lock over.
pub(crate) fn under_lock<'a, T, R>(
    raw: &'a RawArray,
    me: Identity,
    mut f: impl FnMut(&mut T) -> R + 'a,
) -> impl FnMut(&mut T) -> R + 'a {
    let lock = raw.raw_lock();
    move |v| {
        let _here = HeldHere::new(lock, me);
        f(v)
    }
}

/// As [`RawArray::try_lock`] for the calling thread: `WouldBlock` if a live guard of
/// this thread holds it (as another thread's would).
pub(crate) fn try_lock_elems(raw: &RawArray) -> (Acquire, Identity) {
    let me = crate::sync::current_identity();
    let lock = raw.raw_lock();
    if lock.holder() == Some(me.tid) && held_here(lock, me) {
        return (Acquire::WouldBlock, me); // our own guard holds it
    }
    (raw.try_lock(me), me)
}

/// The core of [`ValueGuard`](crate::ValueGuard) and [`ArrayGuard`](crate::ArrayGuard):
/// a private copy (`B`: `[T; 1]` or `Vec<T>`) of the elements, read under the lock.
/// Dropping it writes back the elements that changed (as one seqlock write, only if
/// it was mutably borrowed), then releases the lock.
pub(crate) struct Locked<'a, T: Pod, B: AsRef<[T]>> {
    view: ArrayRef<'a, T>,
    orig: B,
    copy: B,
    dirty: bool,
    recovered: bool,
    // Dropped after `drop` wrote back: releases the lock.
    _held: Held<'a>,
}

impl<'a, T: Pod, B: AsRef<[T]> + AsMut<[T]> + Clone> Locked<'a, T, B> {
    /// Reads the elements of `view` into `orig` (their count) and keeps a copy.
    ///
    /// # Safety
    /// The calling thread `me` just acquired the lock of `raw` (`a`), the header of
    /// `view`.
    pub(crate) unsafe fn new(
        raw: &'a RawArray,
        view: ArrayRef<'a, T>,
        a: Acquire,
        me: Identity,
        broken: bool,
        mut orig: B,
    ) -> Self {
        // SAFETY: `me` holds the lock, per the contract.
        let held = unsafe { Held::new(raw.raw_lock(), me) };
        view.read_locked(orig.as_mut());
        Locked {
            view,
            copy: orig.clone(),
            orig,
            dirty: false,
            recovered: a == Acquire::Recovered || broken,
            _held: held,
        }
    }

    /// True if the lock was taken over from a dead holder (or the segment is broken).
    pub(crate) fn recovered(&self) -> bool {
        self.recovered
    }

    /// The private copy.
    pub(crate) fn copy(&self) -> &B {
        &self.copy
    }

    /// The private copy, to change: it is written back on drop.
    pub(crate) fn copy_mut(&mut self) -> &mut B {
        self.dirty = true;
        &mut self.copy
    }
}

impl<T: Pod, B: AsRef<[T]>> Drop for Locked<'_, T, B> {
    fn drop(&mut self) {
        if self.dirty {
            self.view
                .write_changed_locked(self.orig.as_ref(), self.copy.as_ref());
        }
    }
}
