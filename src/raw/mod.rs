//! The `no_std` core: every algorithm, as `#[repr(C)]` structs of atomics that live
//! inside any shared region.
//!
//! Rules for every type here:
//! * made only of atomics and plain integers (see [`SharedState`]); no pointers (a
//!   region sits at a different address in each process), no `Drop`, no
//!   process-local state;
//! * all-zero bytes are a valid initial image (`ftruncate` zero-fills);
//! * every value read from the region is untrusted: indices and lengths are
//!   bounds-checked, and nonsense is reported, never trusted.
//!
//! How reads that race a foreign writer are handled (coordination words are atomics;
//! payload bytes are raw copies whose garbage is tolerated and validated) is stated
//! once in the crate docs: [Reads that race a foreign
//! writer](crate#reads-that-race-a-foreign-writer).
//!
//! ## In memory of your own
//! Nothing here needs this crate's segments: the raw types work in any memory that
//! several processes map, e.g. an anonymous `MAP_SHARED` mapping inherited through
//! `fork` (for a validated *named* segment holding your own struct, see
//! `Shared<R>`). Zeroed memory is a valid, empty image of every type here:
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use core::mem::size_of;
//! use core::time::Duration;
//! use multiproc::raw::queue::{region_words, Ring, TakeWith, WaitPolicy};
//! use multiproc::raw::{Acquire, RawLock, RawQueue};
//! use multiproc::sync::atomic::{AtomicU64, Ordering};
//! use multiproc::sys::{clock, ident};
//!
//! const CAP: usize = 8; // slots, a power of two
//! const WORDS: usize = match region_words(CAP, 1) { Some(w) => w, None => panic!() };
//!
//! /// Our own layout: a lock and the counter it guards, and a ring of u64 messages.
//! #[repr(C)]
//! struct Region {
//!     lock: RawLock,
//!     counter: AtomicU64,
//!     queue: RawQueue,
//!     slots: [AtomicU64; WORDS],
//! }
//!
//! // SAFETY: an anonymous shared mapping of the region's size; the kernel zero-fills it.
//! let p = unsafe {
//!     libc::mmap(core::ptr::null_mut(), size_of::<Region>(), libc::PROT_READ | libc::PROT_WRITE,
//!                libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
//! };
//! assert_ne!(p, libc::MAP_FAILED);
//! // SAFETY: page-aligned, large enough, and all-zero is a valid Region (atomics only).
//! let region: &Region = unsafe { &*p.cast::<Region>() };
//! let ring = Ring::new(&region.queue, &region.slots, CAP, 1).expect("geometry");
//!
//! let bump = || {
//!     let me = ident::current();
//!     let deadline = clock::deadline_after(Duration::from_secs(10));
//!     assert!(region.lock.lock(me, deadline, Duration::from_millis(10)).is_held());
//!     let n = region.counter.load(Ordering::Relaxed); // guarded by the lock
//!     region.counter.store(n + 1, Ordering::Relaxed);
//!     // SAFETY: we hold the lock and are done with what it guards.
//!     unsafe { region.lock.unlock(me) };
//! };
//!
//! // SAFETY: the child only uses the region and then _exits.
//! let child = unsafe { libc::fork() };
//! assert!(child >= 0);
//! if child == 0 {
//!     bump();
//!     let deadline = clock::deadline_after(Duration::from_secs(10));
//!     for v in 1..=3u64 {
//!         let sent = ring.put(ident::current(), deadline, &mut WaitPolicy::default(),
//!                             |payload| payload[0].store(v, Ordering::Relaxed));
//!         if sent.is_err() {
//!             // SAFETY: as below.
//!             unsafe { libc::_exit(1) }
//!         }
//!     }
//!     // SAFETY: leave without running the parent's destructors.
//!     unsafe { libc::_exit(0) }
//! }
//! bump();
//! // Every wait has a deadline: a child that never sends fails the example instead
//! // of hanging it.
//! let deadline = clock::deadline_after(Duration::from_secs(30));
//! let mut got = Vec::new();
//! for _ in 0..3 {
//!     let v = ring.get(ident::current(), deadline, &mut WaitPolicy::default(),
//!                      &mut TakeWith(|payload: &[AtomicU64]| payload[0].load(Ordering::Relaxed)));
//!     got.push(v.expect("the child's messages arrive"));
//! }
//! assert_eq!(got, [1, 2, 3]);
//! let mut status = 0;
//! // SAFETY: `child` is our child; status is writable.
//! assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
//! assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
//! assert_eq!(region.counter.load(Ordering::Relaxed), 2);
//! // SAFETY: nothing refers to the region any more.
//! unsafe { libc::munmap(p, size_of::<Region>()) };
//! # }
//! ```
//!
//! Blocking goes through [`crate::sync`]: shared futexes, absolute
//! `CLOCK_MONOTONIC` deadlines, and a bounded spin before sleeping.

pub mod array;
pub mod barrier;
pub mod condition;
#[cfg(all(test, feature = "std", not(loom)))]
mod crash_points;
#[cfg(not(loom))]
pub mod dict;
pub mod event;
pub mod frame;
pub mod heap;
#[cfg(not(loom))]
pub mod list;
pub mod lock;
pub mod queue;
pub mod queue_join;
pub mod rlock;
pub mod semaphore;
pub mod spsc;
pub mod spsc_memory;
pub mod spsc_role;
pub mod value;
pub(crate) mod wait;

pub use array::{ArrayRef, Integer, RawArray};
pub use barrier::RawBarrier;
pub use condition::RawCondition;
pub use event::RawEvent;
pub use heap::{Heap, HeapError, RawHeap};
pub use lock::{Acquire, RawLock};
pub use queue::{QueueError, RawQueue, Ring};
pub use rlock::RawRLock;
pub use semaphore::RawSemaphore;
pub use spsc::RawSpsc;
pub use spsc_role::{RawPipe, RawRole, RawSpscQueue};
pub use value::{RawValue, ValueRef};

/// Types that may be placed in memory shared between processes.
///
/// # Safety
/// Implementors guarantee that the type
/// * is `#[repr(C)]` and made only of atomics, plain integers and arrays or
///   `#[repr(C)]` structs of those — so every bit pattern is a valid value and
///   concurrent writes from other processes are not undefined behaviour;
/// * is valid when all its bytes are zero;
/// * holds no pointers and has no `Drop` impl;
/// * has an alignment of at most 128 (the alignment of data regions).
///
/// Implement it for your own types with [`shared_state!`](crate::shared_state),
/// which checks at compile time what can be checked.
pub unsafe trait SharedState: Sync {}

/// Declares a type [`SharedState`], checking at compile time what can be checked.
///
/// `multiproc::shared_state!(unsafe MyState);` writes `unsafe impl SharedState for
/// MyState {}` after const-asserting that `MyState` has an alignment of at most 128,
/// a non-zero size and no drop glue (and the compiler checks `Sync`). The rest of
/// the [`SharedState`] contract stays the caller's promise, which the `unsafe`
/// keyword in the invocation stands for: `MyState` is `#[repr(C)]`, made only of
/// atomics, plain integers and arrays or `#[repr(C)]` structs of those (no `bool`,
/// `char`, enums, references or pointers, whose bit patterns are not all valid), and
/// valid when all its bytes are zero.
///
/// ```
/// use multiproc::sync::atomic::{AtomicU32, AtomicU64};
///
/// #[repr(C)]
/// pub struct Board {
///     lock: multiproc::raw::RawLock,
///     hits: AtomicU64,
///     slots: [AtomicU32; 16],
/// }
/// // SAFETY: repr(C), made of a RawLock and atomics, valid when zeroed.
/// multiproc::shared_state!(unsafe Board);
/// ```
///
/// A type that breaks a checked rule does not compile:
///
/// ```compile_fail,E0080
/// #[repr(C, align(256))]
/// struct TooAligned(multiproc::sync::atomic::AtomicU64);
/// multiproc::shared_state!(unsafe TooAligned);
/// ```
///
/// ```compile_fail,E0080
/// #[repr(C)]
/// struct Empty;
/// multiproc::shared_state!(unsafe Empty);
/// ```
#[macro_export]
macro_rules! shared_state {
    ($(unsafe $ty:ty),+ $(,)?) => {$(
        const _: () = {
            ::core::assert!(
                ::core::mem::align_of::<$ty>() <= 128,
                "a SharedState type may be aligned to at most 128 bytes"
            );
            ::core::assert!(
                ::core::mem::size_of::<$ty>() > 0,
                "a SharedState type must not be zero-sized"
            );
            ::core::assert!(
                !::core::mem::needs_drop::<$ty>(),
                "a SharedState type must not need Drop"
            );
        };
        // SAFETY: the invoker wrote `unsafe` before the type, promising the
        // SharedState bullets not checked above (repr(C), atomics and plain integers
        // only, valid when zeroed, no pointers).
        unsafe impl $crate::raw::SharedState for $ty {}
    )+};
}

// SAFETY: a lone atomic satisfies every bullet.
unsafe impl SharedState for crate::sync::atomic::AtomicU32 {}
// SAFETY: as above.
unsafe impl SharedState for crate::sync::atomic::AtomicU64 {}

/// A 128-byte aligned wrapper: keeps a hot field on a cache line (and adjacent-line
/// prefetch pair) of its own.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct CachePadded<T>(pub T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}
