//! [`JoinableQueue<T>`]: a [`Queue<T>`](crate::Queue) that also counts unfinished
//! tasks, for `task_done` / `join` (Python's `multiprocessing.JoinableQueue`).

use super::common::tasks::Tasks;
use super::common::{
    deadline, named_handle, pod_ring, read_pod, ring_surface, write_pod, RingHandle,
};
use crate::raw::queue::TakeWith;
use crate::raw::queue_join::RawJoinableQueue;
use crate::segment::ObjectKind;
use crate::sync::current_identity;
use crate::sys::clock::Deadline;
use crate::Result;
use bytemuck::Pod;
use core::marker::PhantomData;
use std::time::Duration;

/// A [`Queue<T>`](crate::Queue) that counts unfinished tasks: every value put is a
/// task, finished when a consumer calls [`task_done`](JoinableQueue::task_done) after
/// getting it; [`join`](JoinableQueue::join) waits until every task is finished.
///
/// **Python's global count, and consumers that die.** As in Python, `task_done` may
/// be called by any thread or process, not only the one that got the value; called
/// more often than values were got (in all), it fails with `Err(InvalidArgument)`
/// (Python's `ValueError`). Each consumer thread's held tasks (got, not yet marked
/// done) are counted in an entry of its own, tagged with its identity, and what
/// happens to them when that thread is gone depends on how it went:
/// * **it let go of them** — it dropped a queue handle (any clone: a thread or
///   process function that returns normally drops the handles it owns), or called
///   [`hand_over`](JoinableQueue::hand_over): they stay unfinished, `join` waits for
///   them, and any thread or process finishes them with `task_done` — exactly
///   Python's behaviour (one process gets, another calls `task_done`, the getter
///   may exit first);
/// * **it died holding them** — killed by a signal, crashed, panicked, or ended
///   without dropping its handle (`std::process::exit`, `_exit`, a scoped thread
///   that borrowed the handle): they are *abandoned* — `join` stops waiting for them
///   within about 5 probe intervals (50 ms by default), and they are counted in
///   [`abandoned_tasks`](JoinableQueue::abandoned_tasks). Python's `join` would hang
///   forever here. A value it was still taking (its `get` had not returned) is
///   re-delivered to another consumer and stays unfinished until that one's
///   `task_done`.
///
/// While the thread that got a task lives, the task is unfinished whoever marks it
/// done. Up to 128 consumer threads holding unfinished tasks *at the same time*
/// (handed-over ones included) are tracked individually (an entry is freed when its
/// count reaches zero, or when its thread dies); tasks held by threads beyond that
/// are counted together and not recovered if their holder dies.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::JoinableQueue;
/// let q: JoinableQueue<u32> = JoinableQueue::create(&format!("doc-jq-{}", std::process::id()), 16)?;
/// q.put(1)?;
/// q.put(2)?;
/// assert!(!q.join_timeout(std::time::Duration::from_millis(1)));
/// for _ in 0..2 {
///     let _job = q.get()?;
///     q.task_done()?;
/// }
/// q.join();                      // returns at once: nothing unfinished
/// assert!(q.task_done().is_err());
/// # Ok(()) }
/// ```
pub struct JoinableQueue<T> {
    h: RingHandle<RawJoinableQueue>,
    _t: PhantomData<fn(T) -> T>,
}

named_handle! {
    impl[T: Pod] JoinableQueue<T>: "queue" (anonymous), h;
    /// Creates an empty joinable queue of at most `capacity` values (exactly as many
    /// as asked, as [`Queue::create`](crate::Queue::create)). Errors as `Queue::create`.
    create(capacity: usize);
    /// Opens the joinable queue `name`.
    open();
    /// Opens `name` if it exists with exactly this capacity, or creates it if it
    /// does not exist. Errors as
    /// [`Queue::open_or_create`](crate::Queue::open_or_create): `Err(Mismatch)` if it
    /// exists with another capacity.
    open_or_create(capacity: usize);
    /// How often a blocked call checks dead peers (default 10 ms; `join` checks every
    /// 5 intervals).
    with_probe_interval => h.probe;
}

pod_ring!(
    JoinableQueue,
    RawJoinableQueue,
    ObjectKind::JoinableQueue,
    "joinable queue"
);
ring_surface! {
    impl[T: Pod] JoinableQueue<T>: "values",
    close: "Wakes every sleeper. Unfinished tasks stay unfinished.",
    debug: "JoinableQueue"
        ["type" => |_| core::any::type_name::<T>()]
        ["unfinished" => |q| q.unfinished_tasks()]
}

impl<T> Drop for JoinableQueue<T> {
    fn drop(&mut self) {
        // Letting go of a handle is a normal end: the tasks this thread holds stay
        // unfinished for others to finish (Python's global count). A panicking thread
        // is treated as one that died: its tasks will be abandoned.
        if !std::thread::panicking() {
            Tasks(&self.h).let_go();
        }
    }
}

impl<T: Pod> JoinableQueue<T> {
    // ---- producers: as Queue -------------------------------------------------------

    /// Puts `v` (one more unfinished task), waiting for room.
    pub fn put(&self, v: T) -> Result<()> {
        self.put_deadline(v, None)
    }
    /// Puts `v` if there is room now: `Err(Full)` otherwise.
    pub fn try_put(&self, v: T) -> Result<()> {
        let ring = self.h.ring()?;
        ring.try_put(current_identity(), write_pod(&v))
            .map_or_else(|e| self.h.done(Err(e)), |x| self.h.done(Ok(x)))
    }
    /// Puts `v`, waiting at most `timeout`: `Err(Timeout)` after that.
    pub fn put_timeout(&self, v: T, timeout: Duration) -> Result<()> {
        self.put_deadline(v, deadline(timeout))
    }
    fn put_deadline(&self, v: T, deadline: Deadline) -> Result<()> {
        let me = current_identity();
        self.h.blocking(deadline, |ring, policy, d| {
            ring.put(me, d, policy, write_pod(&v))
        })
    }

    // ---- consumers -----------------------------------------------------------------

    /// Takes the oldest value, waiting for one; the caller then owes a
    /// [`task_done`](JoinableQueue::task_done). `Err(Closed)` when closed and drained.
    pub fn get(&self) -> Result<T> {
        self.get_deadline(None)
    }
    /// Takes the oldest value if there is one now: `Err(Empty)` otherwise.
    pub fn try_get(&self) -> Result<T> {
        let me = current_identity();
        let tasks = Tasks(&self.h);
        self.h.try_get_with(|ring, probe| {
            ring.try_get(me, probe, &mut tasks.counted(me, TakeWith(read_pod::<T>)))
        })
    }
    /// Takes the oldest value, waiting at most `timeout`: `Err(Timeout)` after that.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_deadline(deadline(timeout))
    }
    fn get_deadline(&self, deadline: Deadline) -> Result<T> {
        let me = current_identity();
        let tasks = Tasks(&self.h);
        self.h.blocking(deadline, |ring, policy, d| {
            ring.get(
                me,
                d,
                policy,
                &mut tasks.counted(me, TakeWith(read_pod::<T>)),
            )
        })
    }

    /// Marks one task finished. `Err(InvalidArgument)` if called more often than
    /// values were got (across all consumers).
    pub fn task_done(&self) -> Result<()> {
        Tasks(&self.h).task_done()
    }

    /// Lets go of the tasks the calling thread got and has not marked done: they
    /// stay unfinished for any thread or process to [`task_done`](JoinableQueue::task_done),
    /// and are no longer abandoned if this thread dies (see the type's docs). Done
    /// automatically when the thread drops a handle (unless it is panicking).
    /// Returns how many tasks were handed over.
    pub fn hand_over(&self) -> u64 {
        Tasks(&self.h).hand_over()
    }

    /// Waits until every task put so far is finished (Python's `join`). Tasks held by
    /// consumers that died count as finished (see the type's docs).
    pub fn join(&self) {
        self.join_deadline(None);
    }
    /// [`join`](JoinableQueue::join), waiting at most `timeout`: true if every task
    /// is finished.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_deadline(deadline(timeout))
    }
    fn join_deadline(&self, deadline: Deadline) -> bool {
        Tasks(&self.h).join(deadline)
    }

    /// Unfinished tasks now: values queued, plus values got and not marked done by
    /// live consumers (a snapshot; does not check for dead consumers).
    pub fn unfinished_tasks(&self) -> usize {
        Tasks(&self.h).unfinished()
    }
    /// Unfinished tasks that their getters let go of (see
    /// [`hand_over`](JoinableQueue::hand_over)), waiting for anyone's `task_done`
    /// (a snapshot).
    pub fn handed_over_tasks(&self) -> u64 {
        self.h.raw().join.handed()
    }
    /// Tasks abandoned so far by consumers that died holding them.
    pub fn abandoned_tasks(&self) -> u64 {
        self.h.raw().join.abandoned()
    }
}
