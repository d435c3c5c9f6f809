//! Job bookkeeping: the state user threads share with the pool thread (submitted
//! chunks, each job's finished outcomes, the close/join/terminate requests) and the
//! calls user threads make on it. The pool thread's side is in `engine.rs`.

use super::blob::{ArgArea, ArgAreas, Buf};
use super::chan::Chan;
use super::sink::Sink;
use super::wire::{self, Outcomes, Runner};
use crate::process::start;
use crate::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often `join` looks whether the pool thread has finished.
const JOIN_POLL: Duration = Duration::from_millis(100);

/// Why a chunk produced no results.
#[derive(Clone, Debug)]
pub(super) enum Failure {
    /// The worker running it died.
    WorkerDied(u32),
    /// The pool was terminated (or dropped) first.
    Closed,
    /// The pool's initializer failed, so no worker can run anything.
    Broken(String),
    /// A message from the worker could not be parsed.
    Corrupt(String),
    /// The chunk's arguments could not be put in shared memory (e.g. /dev/shm full).
    Payload(String),
}

impl Failure {
    pub fn to_error(&self) -> Error {
        match self {
            Failure::WorkerDied(pid) => Error::WorkerDied { pid: *pid },
            Failure::Closed => Error::Closed,
            Failure::Broken(m) => Error::TaskFailed {
                message: format!("the pool is broken: {m}"),
            },
            Failure::Corrupt(m) => Error::corrupt("", format!("pool result: {m}")),
            Failure::Payload(m) => Error::TaskFailed {
                message: format!(
                    "the pool could not pass this task's arguments to a worker through \
                     shared memory ({m}): free space in /dev/shm or pass smaller arguments"
                ),
            },
        }
    }
}

/// A finished chunk.
#[derive(Clone, Debug)]
pub(super) enum Outcome {
    Items(Outcomes),
    Failed(Failure),
}

/// A submitted chunk and its whole TASK message body.
pub(super) struct Chunk {
    pub id: u64,
    pub job: u64,
    pub index: u64,
    pub body: Body,
}

/// A TASK message body: room for the chunk id, runner, function, then the items.
pub(super) enum Body {
    /// In private memory (short, or no argument area was free); a large one goes
    /// back to the spare buffers when the chunk is done.
    Private(Buf),
    /// The first `.1` bytes of an argument area, which the chunk holds until it is
    /// done (see `blob.rs`).
    Area(ArgArea, usize),
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Body::Private(b) => b.len(),
            Body::Area(_, len) => *len,
        }
    }

    /// Writes the chunk id at the start.
    fn set_id(&mut self, id: u64) {
        match self {
            Body::Private(b) => b[..8].copy_from_slice(&id.to_le_bytes()),
            Body::Area(a, _) => a.patch(0, &id.to_le_bytes()),
        }
    }
}

/// Serializes a TASK body: the header for `runner` and `f`, then the items `items`
/// writes (it returns how many). A large body is written straight into an argument
/// area of `args` when one is free. `Err`: an item could not be serialized.
pub(super) fn task_body(
    args: &std::sync::Arc<ArgAreas>,
    runner: Runner,
    f: usize,
    items: impl FnOnce(&mut Sink<'_>) -> std::result::Result<usize, String>,
) -> std::result::Result<(Body, usize), String> {
    let mut held: Option<ArgArea> = None;
    let mut spill = |len: usize| args.ensure(&mut held, len);
    let mut vec = Vec::with_capacity(64);
    let mut sink = Sink::new(&mut vec, Some(&mut spill));
    sink.extend(&0u64.to_le_bytes());
    // Offsets, not addresses: a spawned worker maps this executable elsewhere.
    sink.extend(&start::to_offset(runner as usize).to_le_bytes());
    sink.extend(&start::to_offset(f).to_le_bytes());
    let n = items(&mut sink)?;
    let (len, spilled) = (sink.len(), sink.spilled());
    Ok(match held {
        Some(area) if spilled => (Body::Area(area, len), n),
        // An area that was let go of (the body stayed private) returns when dropped.
        _ => (Body::Private(Buf::from(vec)), n),
    })
}

/// A job's finished chunks, by chunk index: a window that slides forward as the
/// oldest chunks are taken (indexes are dense, from 0).
#[derive(Default)]
pub(super) struct Finished {
    /// Index of `slots[0]`.
    base: u64,
    slots: VecDeque<Slot>,
}

#[derive(Default)]
enum Slot {
    #[default]
    Waiting,
    Ready(Outcome),
    Taken,
}

impl Finished {
    pub(super) fn insert(&mut self, index: u64, o: Outcome) {
        let Some(at) = index.checked_sub(self.base) else {
            return;
        };
        let at = at as usize;
        if self.slots.len() <= at {
            self.slots.resize_with(at + 1, Slot::default);
        }
        self.slots[at] = Slot::Ready(o);
    }

    fn get(&self, index: u64) -> Option<&Outcome> {
        let at = index.checked_sub(self.base)? as usize;
        match self.slots.get(at) {
            Some(Slot::Ready(o)) => Some(o),
            _ => None,
        }
    }

    fn remove(&mut self, index: u64) -> Option<Outcome> {
        let at = index.checked_sub(self.base)? as usize;
        let slot = self.slots.get_mut(at)?;
        let Slot::Ready(_) = slot else {
            return None;
        };
        let Slot::Ready(o) = std::mem::replace(slot, Slot::Taken) else {
            return None;
        };
        while matches!(self.slots.front(), Some(Slot::Taken)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(o)
    }

    fn remove_any(&mut self) -> Option<(u64, Outcome)> {
        let at = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Ready(_)))?;
        let index = self.base + at as u64;
        self.remove(index).map(|o| (index, o))
    }

    /// The outcomes in index order (`None`: not finished), from index `base`.
    fn into_vec(self) -> Vec<Option<Outcome>> {
        self.slots
            .into_iter()
            .map(|s| match s {
                Slot::Ready(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    fn clear(&mut self) {
        self.slots.clear();
    }
}

#[derive(Default)]
pub(super) struct Job {
    pub(super) outcomes: Finished,
    /// Chunks submitted and not finished yet.
    pub(super) outstanding: usize,
    /// Nobody will read the outcomes (the handle was dropped): discard them.
    pub(super) abandoned: bool,
    /// A user thread sleeps on this job.
    pub(super) waiting: bool,
    /// ... and only wants to hear once every chunk has finished (`map`).
    pub(super) wait_all: bool,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) pending: VecDeque<Chunk>,
    pub(super) jobs: HashMap<u64, Job>,
    pub(super) next_job: u64,
    pub(super) next_chunk: u64,
    /// `close()` was called: no new jobs.
    pub(super) closed: bool,
    pub(super) join_requested: bool,
    pub(super) terminate_requested: bool,
    /// Set when the initializer failed (or workers cannot start): every chunk fails.
    pub(super) broken: Option<String>,
    /// The pool thread has exited; every job is finished.
    pub(super) finished: bool,
    /// Pids of the current workers (for diagnostics and tests).
    pub(super) pids: Vec<u32>,
}

/// What user threads and the pool thread share.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) cond: Condvar,
    /// The result queue, for posting WAKE when the pool thread sleeps.
    pub(super) results: Chan,
    /// Where user threads serialize large arguments.
    pub(super) args: std::sync::Arc<ArgAreas>,
    pub(super) sleeping: AtomicBool,
    pub(super) workers: usize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(
        &self,
        g: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, State>, bool) {
        match deadline {
            None => (self.cond.wait(g).unwrap_or_else(|e| e.into_inner()), false),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (g, true);
                }
                let (g, _) = self
                    .cond
                    .wait_timeout(g, left)
                    .unwrap_or_else(|e| e.into_inner());
                (g, Instant::now() >= d)
            }
        }
    }

    /// Wakes the pool thread if it sleeps (it sleeps on the result queue).
    pub fn wake_pool(&self) {
        // SYNC(pool-sleep): pairs with the store in `sleep`; the state mutex orders
        // the submission before this load.
        if self.sleeping.load(std::sync::atomic::Ordering::SeqCst) {
            let mut buf = Vec::new();
            wire::piece(
                wire::WAKE,
                wire::SENDER_USER,
                &[],
                0,
                self.results.max(),
                &mut buf,
            );
            // Full: the pool thread has messages to read and is awake anyway.
            let _ = self.results.try_put(&buf);
        }
    }

    /// Starts a job; `Err(Closed)` after close/terminate.
    pub fn new_job(&self) -> Result<u64> {
        let mut s = self.lock();
        if s.closed || s.finished || s.terminate_requested {
            return Err(Error::Closed);
        }
        if let Some(m) = &s.broken {
            return Err(Failure::Broken(m.clone()).to_error());
        }
        let id = s.next_job;
        s.next_job += 1;
        s.jobs.insert(id, Job::default());
        Ok(id)
    }

    /// Submits chunks `(index, body)` of `job`.
    pub fn submit(&self, job: u64, chunks: impl IntoIterator<Item = (u64, Body)>) -> Result<()> {
        {
            let mut s = self.lock();
            if s.finished || s.terminate_requested {
                return Err(Error::Closed);
            }
            let broken = s.broken.clone();
            for (index, mut body) in chunks {
                let id = s.next_chunk;
                s.next_chunk += 1;
                body.set_id(id);
                let Some(j) = s.jobs.get_mut(&job) else {
                    return Err(Error::Closed);
                };
                if let Some(m) = &broken {
                    j.outcomes
                        .insert(index, Outcome::Failed(Failure::Broken(m.clone())));
                    continue;
                }
                j.outstanding += 1;
                s.pending.push_back(Chunk {
                    id,
                    job,
                    index,
                    body,
                });
            }
        }
        self.wake_pool();
        Ok(())
    }

    /// Waits for chunk `index` of `job` and takes its outcome; `None` at the deadline.
    pub fn take_chunk(&self, job: u64, index: u64, deadline: Option<Instant>) -> Option<Outcome> {
        let mut s = self.lock();
        loop {
            let Some(j) = s.jobs.get_mut(&job) else {
                return Some(Outcome::Failed(Failure::Closed));
            };
            if let Some(o) = j.outcomes.remove(index) {
                j.waiting = false;
                return Some(o);
            }
            j.waiting = true;
            let (g, timed_out) = self.wait(s, deadline);
            s = g;
            if timed_out {
                if let Some(j) = s.jobs.get_mut(&job) {
                    if let Some(o) = j.outcomes.remove(index) {
                        return Some(o);
                    }
                    j.waiting = false;
                }
                return None;
            }
        }
    }

    /// Waits for chunk `index` of `job` and returns a copy of its outcome, leaving it
    /// in place (for results that may be read again); `None` at the deadline.
    pub fn peek_chunk(&self, job: u64, index: u64, deadline: Option<Instant>) -> Option<Outcome> {
        let mut s = self.lock();
        loop {
            let Some(j) = s.jobs.get_mut(&job) else {
                return Some(Outcome::Failed(Failure::Closed));
            };
            if let Some(o) = j.outcomes.get(index) {
                return Some(o.clone());
            }
            j.waiting = true;
            let (g, timed_out) = self.wait(s, deadline);
            s = g;
            if timed_out {
                return s
                    .jobs
                    .get(&job)
                    .and_then(|j| j.outcomes.get(index).cloned());
            }
        }
    }

    /// Records an outcome decided on the user's side (e.g. an argument that could not
    /// be serialized), for a chunk that was never submitted.
    pub fn record_local(&self, job: u64, index: u64, outcome: Outcome) {
        if let Some(j) = self.lock().jobs.get_mut(&job) {
            j.outcomes.insert(index, outcome);
        }
    }

    /// True if chunk `index` of `job` has finished (without taking it).
    pub fn chunk_ready(&self, job: u64, index: u64) -> bool {
        let s = self.lock();
        s.jobs
            .get(&job)
            .map_or(true, |j| j.outcomes.get(index).is_some())
    }

    /// Waits for any finished chunk of `job` and takes it.
    pub fn take_any(&self, job: u64) -> (u64, Outcome) {
        let mut s = self.lock();
        loop {
            let Some(j) = s.jobs.get_mut(&job) else {
                return (u64::MAX, Outcome::Failed(Failure::Closed));
            };
            if let Some((k, o)) = j.outcomes.remove_any() {
                j.waiting = false;
                return (k, o);
            }
            j.waiting = true;
            s = self.wait(s, None).0;
        }
    }

    /// Waits until every chunk of `job` has finished; takes all outcomes and ends the job.
    /// The outcomes are in chunk order, from chunk 0 (`None`: never finished).
    pub fn take_all(&self, job: u64) -> Vec<Option<Outcome>> {
        let mut s = self.lock();
        loop {
            let Some(j) = s.jobs.get_mut(&job) else {
                return Vec::new();
            };
            if j.outstanding == 0 {
                return s
                    .jobs
                    .remove(&job)
                    .map(|j| j.outcomes.into_vec())
                    .unwrap_or_default();
            }
            j.waiting = true;
            j.wait_all = true;
            s = self.wait(s, None).0;
        }
    }

    /// The job's handle is gone: drop its queued chunks and, as they finish, its outcomes.
    pub fn abandon(&self, job: u64) {
        let mut s = self.lock();
        let before = s.pending.len();
        s.pending.retain(|c| c.job != job);
        let removed = before - s.pending.len();
        if let Some(j) = s.jobs.get_mut(&job) {
            j.outstanding -= removed.min(j.outstanding);
            j.outcomes.clear();
            j.abandoned = true;
            if j.outstanding == 0 {
                s.jobs.remove(&job);
            }
        }
    }

    /// `close()`: no new jobs; submitted work still runs.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake_pool();
    }

    /// Asks the pool thread to finish all work, stop the workers and exit; waits.
    pub fn join(&self) -> Result<()> {
        let mut s = self.lock();
        if !s.closed && !s.terminate_requested && !s.finished {
            return Err(Error::invalid(
                "Pool::join needs close() or terminate() first (as in Python)",
            ));
        }
        s.join_requested = true;
        drop(s);
        self.wake_pool();
        let mut s = self.lock();
        while !s.finished {
            s = self.wait(s, Some(Instant::now() + JOIN_POLL)).0;
        }
        Ok(())
    }

    /// Asks the pool thread to kill the workers and fail every unfinished chunk; waits.
    pub fn terminate(&self) {
        let mut s = self.lock();
        s.terminate_requested = true;
        s.closed = true;
        drop(s);
        self.wake_pool();
        let mut s = self.lock();
        while !s.finished {
            s = self
                .wait(s, Some(Instant::now() + Duration::from_millis(20)))
                .0;
            drop(s);
            self.wake_pool();
            s = self.lock();
        }
    }
}
