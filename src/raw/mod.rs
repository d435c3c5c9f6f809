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
pub unsafe trait SharedState: Sync {}

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
