//! What the handle files share, so that no handle file borrows from another: lock
//! holds and their results ([`hold`]), the element segments of `Value` and `Array`
//! ([`elems`]), the named ring of the MPMC queues ([`ring`]), and the heap segment
//! under `Dict` and `List` ([`container`]), what the byte queues share ([`bytes`]),
//! the joinable queues' task accounting ([`tasks`]); and the surface every handle
//! shares, written once ([`skeleton`]).

pub mod bytes;
pub mod container;
pub mod elems;
pub mod hold;
pub mod ring;
pub mod skeleton;
pub mod tasks;

pub(crate) use elems::*;
pub use hold::*;
pub(crate) use ring::*;
pub(crate) use ring::{pod_ring, ring_surface};
pub(crate) use skeleton::named_handle;
