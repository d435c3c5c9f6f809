//! # multiproc
//!
//! Python's `multiprocessing`, done properly for Rust: processes share memory **by
//! name** and talk through it at memory speed, and keep working when one of them dies.
//!
//! Any process — a forked child or an unrelated program started later — attaches to
//! an object by its name:
//!
//! ```no_run
//! # fn main() -> multiproc::Result<()> {
//! use multiproc::{Lock, Value};
//! // process A
//! let hits: Value<u64> = Value::create("hits", 0)?;
//! // process B, started any time later
//! let hits: Value<u64> = Value::open("hits")?;
//! hits.fetch_add(1);
//! # Ok(()) }
//! ```
//!
//! ## Layers
//! * [`raw`] — the `no_std` core: every algorithm as `#[repr(C)]` structs of atomics
//!   that work inside any shared region;
//! * [`sys`] — the only FFI: shared futexes, monotonic deadlines, thread identity and
//!   liveness, POSIX shared memory;
//! * the named objects (std): [`Segment`], [`Lock`], [`Value`], [`Array`], ... — thin
//!   handles on a segment plus the raw struct inside it.
//!
//! ## Nothing left behind
//! Every handle holds an OFD lock on its object's file ([`sys::ofd`]), so the kernel
//! knows who uses an object however its processes die. An object whose creator is
//! gone, that was not `persist()`ed and that nobody holds is an orphan: [`gc`]
//! removes orphans, [`list`] describes every object, and `X::create` over an orphan
//! reclaims the name. The `multiproc` tool (feature `cli`) does the same from a shell.
//!
//! ## Shared memory is untrusted
//! Another process may write anything into a segment at any time. Opening validates
//! the header (magic, layout version, kind, element type, sizes); operations
//! bounds-check every index they read and report [`Error::Corrupt`] instead of
//! panicking or touching memory out of bounds.
#![cfg_attr(not(any(feature = "std", loom)), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod raw;
pub mod sync;
pub mod sys;

#[cfg(all(feature = "std", not(loom)))]
mod array;
#[cfg(all(feature = "std", not(loom)))]
mod barrier;
#[cfg(all(feature = "std", not(loom)))]
mod byte_queue;
#[cfg(all(feature = "std", not(loom)))]
mod condition;
#[cfg(all(feature = "std", not(loom)))]
mod container;
#[cfg(all(feature = "std", not(loom)))]
mod dict;
#[cfg(all(feature = "std", not(loom)))]
mod error;
#[cfg(all(feature = "std", not(loom)))]
mod event;
#[cfg(all(feature = "std", not(loom)))]
mod handle_serde;
#[cfg(all(feature = "std", not(loom)))]
mod joinable_queue;
#[cfg(all(feature = "std", not(loom)))]
mod list;
#[cfg(all(feature = "std", not(loom)))]
mod lock;
#[cfg(all(feature = "std", not(loom)))]
mod pipe;
#[cfg(all(feature = "std", not(loom)))]
pub mod process;
#[cfg(all(feature = "std", not(loom)))]
mod queue;
#[cfg(all(feature = "std", not(loom)))]
mod rlock;
#[cfg(all(feature = "std", not(loom)))]
pub mod segment;
#[cfg(all(feature = "std", not(loom)))]
mod semaphore;
#[cfg(all(feature = "std", not(loom)))]
mod spsc_queue;
#[cfg(all(feature = "std", not(loom)))]
mod value;

#[cfg(all(feature = "std", not(loom)))]
pub use array::{Array, ArrayGuard};
#[cfg(all(feature = "std", not(loom)))]
pub use barrier::Barrier;
#[cfg(all(feature = "std", not(loom)))]
pub use byte_queue::ByteQueue;
#[cfg(all(feature = "std", not(loom)))]
pub use condition::{Condition, ConditionGuard};
#[cfg(all(feature = "std", not(loom)))]
pub use dict::{Dict, DictGuard};
#[cfg(all(feature = "std", not(loom)))]
pub use error::{Error, Result};
#[cfg(all(feature = "std", not(loom)))]
pub use event::Event;
#[cfg(all(feature = "std", not(loom)))]
pub use joinable_queue::JoinableQueue;
#[cfg(all(feature = "std", not(loom)))]
pub use list::{List, ListGuard};
#[cfg(all(feature = "std", not(loom)))]
pub use lock::{Lock, LockGuard, LockResult, OwnerDied, TryLockError, TryLockResult};
#[cfg(all(feature = "std", not(loom)))]
pub use pipe::{Pipe, PipeEnd, PipeReceiver, PipeSender};
#[cfg(all(feature = "std", not(loom)))]
pub use process::{
    active_children, cpu_count, current_process, forkserver_pid, get_start_method, init,
    set_start_method, AsyncResult, CurrentProcess, Imap, IntoExitCode, Pool, PoolBuilder, Process,
    ProcessBuilder, StartMethod,
};
#[cfg(all(feature = "std", not(loom)))]
pub use queue::Queue;
pub use raw::Integer;
#[cfg(all(feature = "std", not(loom)))]
pub use rlock::{RLock, RLockGuard};
#[cfg(all(feature = "std", not(loom)))]
pub use segment::{gc, list, unlink, ObjectInfo, Options, Segment};
#[cfg(all(feature = "std", not(loom)))]
pub use semaphore::{BoundedSemaphore, Semaphore};
#[cfg(all(feature = "std", not(loom)))]
pub use spsc_queue::{Role, SpscConsumer, SpscProducer, SpscQueue};
#[cfg(all(feature = "std", not(loom)))]
pub use sys::sigbus;
#[cfg(all(feature = "std", not(loom)))]
pub use value::{Value, ValueGuard};
