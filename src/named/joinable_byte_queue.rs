//! [`JoinableByteQueue`]: a [`ByteQueue`](crate::ByteQueue) that counts unfinished
//! tasks, for `task_done` / `join` — the joinable queue of variable-length messages
//! (what Python's `JoinableQueue` of pickled objects is built on).

use super::common::bytes::{byte_puts, byte_spec, check_max, IntoVec};
use super::common::tasks::Tasks;
use super::common::{deadline, named_handle, ring_surface, RingHandle};
use crate::raw::queue::{words_for, QueueError};
use crate::raw::queue_join::RawJoinableQueue;
use crate::segment::{ObjectKind, Options, TypeInfo};
use crate::sync::current_identity;
use crate::sys::clock::Deadline;
use crate::Result;
use std::time::Duration;

/// A bounded MPMC queue of byte messages (as [`ByteQueue`](crate::ByteQueue): each
/// of at most [`max_message_len`](JoinableByteQueue::max_message_len) bytes) that
/// counts unfinished tasks (as [`JoinableQueue`](crate::JoinableQueue)): every message
/// put is a task, finished by a [`task_done`](JoinableByteQueue::task_done) after
/// its `get`; [`join`](JoinableByteQueue::join) sleeps until every task is finished.
///
/// Consumers that die holding tasks are handled exactly as by
/// [`JoinableQueue`](crate::JoinableQueue) (see "Python's global count, and
/// consumers that die" there): a consumer that lets go of its tasks (drops its handle
/// or calls [`hand_over`](JoinableByteQueue::hand_over)) leaves them for anyone's
/// `task_done`; one that is killed, crashes or exits without dropping its handle
/// has them *abandoned* — `join` stops waiting for them within about 5 probe
/// intervals and [`abandoned_tasks`](JoinableByteQueue::abandoned_tasks) counts
/// them — and a message it was still taking is re-delivered to another consumer.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::JoinableByteQueue;
/// use std::time::Duration;
/// let name = format!("doc-jbq-{}", std::process::id());
/// let q = JoinableByteQueue::create(&name, 16, 256)?;
/// q.put(b"job 1")?;
/// assert!(!q.join_timeout(Duration::from_millis(1)));
/// assert_eq!(q.get()?, b"job 1");
/// q.task_done()?;
/// q.join();                          // returns at once: nothing unfinished
/// # Ok(()) }
/// ```
pub struct JoinableByteQueue {
    h: RingHandle<RawJoinableQueue>,
    max: usize,
}

impl Clone for JoinableByteQueue {
    fn clone(&self) -> Self {
        JoinableByteQueue {
            h: self.h.clone(),
            max: self.max,
        }
    }
}

impl Drop for JoinableByteQueue {
    fn drop(&mut self) {
        // As JoinableQueue: letting go of a handle hands this thread's tasks over; a
        // panicking thread is treated as one that died.
        if !std::thread::panicking() {
            Tasks(&self.h).let_go();
        }
    }
}

named_handle! {
    impl[] JoinableByteQueue: "queue", h;
    /// Creates an empty joinable queue named `name` of at most `capacity` messages of
    /// up to `max_message_len` bytes each. Errors as
    /// [`ByteQueue::create`](crate::ByteQueue::create).
    create(capacity: usize, max_message_len: usize);
    /// Opens the joinable byte queue `name`.
    open();
    /// How often a blocked call checks dead peers (default 10 ms; `join` checks every
    /// 5 intervals).
    with_probe_interval => h.probe;
}

ring_surface! {
    impl[] JoinableByteQueue: "messages",
    close: "Wakes every sleeper. Unfinished tasks stay unfinished.",
    debug: "JoinableByteQueue"
        ["max_message_len" => |q| q.max]
        ["unfinished" => |q| q.unfinished_tasks()]
}

byte_puts!(JoinableByteQueue, "Puts `msg` (one more unfinished task)");

impl JoinableByteQueue {
    /// [`create`](JoinableByteQueue::create) with explicit segment [`Options`].
    pub fn create_with(
        name: &str,
        capacity: usize,
        max_message_len: usize,
        opts: &Options,
    ) -> Result<Self> {
        let spec = byte_spec(
            ObjectKind::JoinableByteQueue,
            &format!("joinable byte queue '{name}'"),
            capacity,
            max_message_len,
        )?;
        Ok(JoinableByteQueue {
            h: RingHandle::create(name, opts, spec)?,
            max: max_message_len,
        })
    }
    /// [`open`](JoinableByteQueue::open) with explicit [`Options`].
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        let mut max = 0;
        let h = RingHandle::open(
            name,
            opts,
            ObjectKind::JoinableByteQueue,
            TypeInfo::NONE,
            |m| {
                max = check_max(name, m)?;
                Ok(1 + words_for(max))
            },
        )?;
        Ok(JoinableByteQueue { h, max })
    }

    // ---- consumers -----------------------------------------------------------------

    /// Takes the oldest message, waiting for one; the caller then owes a
    /// [`task_done`](JoinableByteQueue::task_done). `Err(Closed)` once closed and
    /// drained.
    pub fn get(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.get_vec_deadline(&mut v, None)?;
        Ok(v)
    }
    /// Takes the oldest message into `buf` (replacing its contents, reusing its
    /// allocation) if there is one now: `Err(Empty)` otherwise. Returns its length.
    pub fn try_get_into_vec(&self, buf: &mut Vec<u8>) -> Result<usize> {
        let me = current_identity();
        let max = self.max;
        let tasks = Tasks(&self.h);
        self.h
            .try_get_with(|ring, probe| {
                ring.try_get(me, probe, &mut tasks.counted(me, IntoVec { buf, max }))
            })
            .and_then(|r| self.h.done(r))
    }
    /// Takes the oldest message into `buf`, waiting at most `timeout`:
    /// `Err(Timeout)` after that.
    pub fn get_into_vec_timeout(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.get_vec_deadline(buf, deadline(timeout))
    }
    fn get_vec_deadline(&self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<usize> {
        let me = current_identity();
        let max = self.max;
        let tasks = Tasks(&self.h);
        let r = self.h.blocking_raw(deadline, |ring, policy, d| {
            ring.get(me, d, policy, &mut tasks.counted(me, IntoVec { buf, max }))
        })?;
        self.h
            .done(r.and_then(|x: core::result::Result<usize, QueueError>| x))
    }

    /// Marks one task finished. `Err(InvalidArgument)` if called more often than
    /// messages were got (across all consumers).
    pub fn task_done(&self) -> Result<()> {
        Tasks(&self.h).task_done()
    }
    /// Lets go of the calling thread's unfinished tasks (see
    /// [`JoinableQueue::hand_over`](crate::JoinableQueue::hand_over)).
    pub fn hand_over(&self) -> u64 {
        Tasks(&self.h).hand_over()
    }
    /// Waits until every task put so far is finished; tasks held by consumers that
    /// died count as finished.
    pub fn join(&self) {
        Tasks(&self.h).join(None);
    }
    /// [`join`](JoinableByteQueue::join), waiting at most `timeout`: true if every
    /// task is finished.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        Tasks(&self.h).join(deadline(timeout))
    }
    /// Unfinished tasks now (a snapshot; does not check for dead consumers).
    pub fn unfinished_tasks(&self) -> usize {
        Tasks(&self.h).unfinished()
    }
    /// Tasks abandoned so far by consumers that died holding them.
    pub fn abandoned_tasks(&self) -> u64 {
        self.h.raw().join.abandoned()
    }
}
