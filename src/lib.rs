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
#![cfg_attr(
    all(feature = "std", not(loom)),
    doc = "* the named objects (std): [`Segment`], [`Lock`], [`Value`], [`Array`], ... — thin\n  handles on a segment plus the raw struct inside it."
)]
#![cfg_attr(
    not(all(feature = "std", not(loom))),
    doc = "* the named objects (std): `Segment`, `Lock`, `Value`, `Array`, ... — thin\n  handles on a segment plus the raw struct inside it (not in this `no_std` build)."
)]
//!
//! ## Nothing left behind
#![cfg_attr(
    all(feature = "std", not(loom)),
    doc = "Every handle holds an OFD lock on its object's file ([`sys::ofd`]), so the kernel\nknows who uses an object however its processes die. An object whose creator is\ngone, that was not `persist()`ed and that nobody holds is an orphan: [`gc`]\nremoves orphans, [`list`] describes every object, and `X::create` over an orphan\nreclaims the name. The `multiproc` tool (feature `cli`) does the same from a shell."
)]
#![cfg_attr(
    not(all(feature = "std", not(loom))),
    doc = "Every handle holds an OFD lock on its object's file (`sys::ofd`), so the kernel\nknows who uses an object however its processes die. An object whose creator is\ngone, that was not `persist()`ed and that nobody holds is an orphan: `gc`\nremoves orphans, `list` describes every object, and `X::create` over an orphan\nreclaims the name. The `multiproc` tool (feature `cli`) does the same from a shell."
)]
//!
//! ## Shared memory is untrusted
//! Another process may write anything into a segment at any time. Opening validates
//! the header (magic, layout version, kind, element type, sizes); operations
#![cfg_attr(
    all(feature = "std", not(loom)),
    doc = "bounds-check every index they read and report [`Error::Corrupt`] instead of\npanicking or touching memory out of bounds."
)]
#![cfg_attr(
    not(all(feature = "std", not(loom))),
    doc = "bounds-check every index they read and report `Error::Corrupt` instead of\npanicking or touching memory out of bounds."
)]
//!
//! ### Reads that race a foreign writer
//! The stance, stated once here (as memmap2 states it once on `Mmap`) and linked
//! from the [`raw`] modules. A foreign process may write any byte of a region at any
//! moment, so the rule is: never `&mut` into a region, never `&[u8]` over bytes
//! another process may be writing:
//! * every word that coordinates processes — lock words, slot states, cursors,
//!   counts, lengths — is an atomic and is only ever read and written as one (the
//!   MPMC ring's slots, [`raw::RawQueue`], are atomic words too), so a racing write
//!   is a value we validate, never a data race;
//! * payload bytes (the SPSC rings of `raw::spsc`, the byte frames of a pipe) are
//!   copied with raw-pointer copies (`copy_nonoverlapping`), never through `&[u8]`
//!   or `&mut [u8]` into the region. A copy that races a foreign writer — which only
//!   a process breaking the protocol can cause — yields garbage bytes in our private
//!   copy, which are then treated as untrusted data (length checks, stamps,
//!   `Error::Corrupt`); this is tolerated, as memmap2 tolerates it, rather than
//!   prevented;
//! * types placed in shared memory are made only of atomics and plain integers
//!   ([`raw::SharedState`]), so every bit pattern a writer leaves is a valid value.
//!
//! What cannot be defended against is a process that writes the memory *of this
//! process*; everything that arrives through a segment is only ever data.
#![cfg_attr(not(any(feature = "std", loom)), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod raw;
pub mod sync;
pub mod sys;

pub use raw::Integer;

// The std layer exists under one condition (feature `std`, and not a loom build),
// written once here. The macro has `cfg_if!`'s name and syntax so that rustfmt,
// which reads `cfg_if!` bodies for modules, still formats the files below.
macro_rules! cfg_if {
    (if #[cfg($meta:meta)] { $($item:item)* }) => {
        $(
            #[cfg($meta)]
            $item
        )*
    };
}

cfg_if! {
    if #[cfg(all(feature = "std", not(loom)))] {
        mod error;
        mod named;
        pub mod process;
        pub mod segment;

        pub use error::{Error, Result};
        pub use named::*;
        pub use process::{
            active_children, cpu_count, current_process, forkserver_pid, get_start_method, init,
            set_start_method, AsyncResult, CurrentProcess, Imap, IntoExitCode, Pool, PoolBuilder,
            Process, ProcessBuilder, StartMethod,
        };
        pub use segment::{gc, list, unlink, ObjectInfo, Options, Segment};
        pub use sys::sigbus;
    }
}
