//! The named objects (std): thin handles on a [`Segment`](crate::Segment) plus the
//! raw struct inside it, one type (or one family of types) per file. Every public
//! name is re-exported at the crate root (`multiproc::Queue`, `multiproc::LockGuard`,
//! ...); this module itself is private.

mod common;

mod array;
mod barrier;
mod byte_queue;
mod condition;
mod dict;
mod event;
mod handle_serde;
mod joinable_byte_queue;
mod joinable_queue;
mod list;
mod lock;
mod pipe;
mod queue;
mod rlock;
mod semaphore;
mod shared;
mod spsc_queue;
mod value;

pub use array::{Array, ArrayGuard};
pub use barrier::Barrier;
pub use byte_queue::ByteQueue;
pub use common::{LockResult, OwnerDied, TryLockError, TryLockResult};
pub use condition::{Condition, ConditionGuard};
pub use dict::{Dict, DictGuard};
pub use event::Event;
pub use joinable_byte_queue::JoinableByteQueue;
pub use joinable_queue::JoinableQueue;
pub use list::{List, ListGuard};
pub use lock::{Lock, LockGuard};
pub use pipe::{Pipe, PipeEnd, PipeReceiver, PipeSender};
pub use queue::Queue;
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};
pub use shared::Shared;
pub use spsc_queue::{Role, SpscConsumer, SpscProducer, SpscQueue};
pub use value::{Value, ValueGuard};
