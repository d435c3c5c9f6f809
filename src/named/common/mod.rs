//! What the handle files share, so that no handle file borrows from another: lock
//! holds and their results ([`hold`]), the element segments of `Value` and `Array`
//! ([`elems`]), and the named ring of the MPMC queues ([`ring`]).

pub mod elems;
pub mod hold;
pub mod ring;

pub(crate) use elems::*;
pub use hold::*;
pub(crate) use ring::*;
