//! The operating-system layer: the only module that calls into `libc`.
//!
//! Everything here works without `std` except `shm`, which opens named POSIX
//! shared memory for the segment layer, `ofd`, the locks that track who has
//! a segment mapped, and `watch`, the thread that wakes waiters when a peer dies.

pub mod clock;
pub mod futex;
pub mod ident;
#[cfg(feature = "std")]
pub mod maps;
pub mod membarrier;
#[cfg(feature = "std")]
pub mod ofd;
#[cfg(feature = "std")]
pub mod process;
#[cfg(feature = "std")]
pub mod shm;
#[cfg(feature = "std")]
pub mod sigbus;
#[cfg(all(feature = "std", not(loom)))]
pub mod watch;

/// The calling thread's `errno`.
#[inline]
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location returns a valid pointer to the calling thread's errno.
    unsafe { *libc::__errno_location() }
}
