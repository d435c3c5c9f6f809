//! [`Pool`]: Python's process pool, on this crate's own queues.
//!
//! ```
//! # fn main() -> multiproc::Result<()> {
//! use multiproc::Pool;
//!
//! fn cube(n: u64) -> u64 {
//!     n * n * n
//! }
//!
//! let pool = Pool::new(2)?;
//! assert_eq!(pool.map(cube, [1, 2, 3, 4])?, [1, 8, 27, 64]);
//! let r = pool.apply_async(cube, 5)?;
//! assert_eq!(r.get()?, 125);
//! # Ok(()) }
//! ```
//!
//! ## How it works
//! `Pool::new(n)` starts a pool thread (`multiproc-pool`), which forks `n` workers
//! right away. Each worker has its own inbox, a [`ByteQueue`](crate::ByteQueue); all
//! send results into one shared result queue. The pool thread hands out chunks of
//! work (at most about 2 ms of work, and at most 256 chunks, per worker at a time, so
//! a slow chunk never holds many others up), collects results, checks every 10 ms that
//! the workers are alive and replaces dead ones. There is no feeder thread between a
//! `put` and the shared memory: a message is in the queue when `put` returns.
//! A worker starts with one chunk at a time (so slow tasks spread over the workers
//! as in Python) and gets more as it proves fast. Shared memory used: about 1 MiB
//! per worker for its inbox plus 1 MiB per worker (at most 16 MiB) for results.
//!
//! Tasks are plain `fn` pointers, and arguments and results are
//! `Serialize + DeserializeOwned` (encoded with postcard). A `fn` pointer travels as
//! an offset in this very executable, valid in every worker (a fork, or a fresh
//! start of the same binary); a closure could capture state that does not exist
//! there.
//!
//! ## Threads and start methods
//! Workers, and the replacements of dead ones, are started with the pool's
//! [`StartMethod`] ([`PoolBuilder::start_method`]; by default `ForkServer` once the
//! program has other threads, `Fork` while it has one — see
//! [`get_start_method`](crate::get_start_method)):
//! * `Spawn` / `ForkServer`: nothing is ever forked from this process. Workers start
//!   from a fresh copy of the program (the fork server's, or a re-execution) and
//!   attach to the pool's queues by name (mode 0600, unlinked when the pool drops;
//!   `multiproc::gc` removes those of a pool whose process was killed). Tasks see
//!   the program's statics as they were at start-up, not the caller's.
//! * `Fork`: workers are forked by the pool thread, at `build` and again for each
//!   replacement (after a death, or `maxtasksperchild`). Only that thread's copy
//!   exists in them (see the
//!   [fork caveat](crate::process#fork-only-the-calling-thread-survives)): a lock
//!   another thread of the program holds at that moment stays held there. The pool
//!   never holds a lock of its own across a fork.
//!
//! ## Failures
//! * A task that panics yields `Err(Error::TaskFailed { message })` for that item
//!   only (the panic message, with its location); the worker keeps going.
//! * A worker that dies (SIGKILL, abort, OOM) fails the chunk it was running with
//!   `Err(Error::WorkerDied { pid })`: that chunk may have run partly or fully, so it
//!   is **not retried** (a task is never run twice). Chunks the dead worker had been
//!   given but had not started go back to the queue and run on another worker. The
//!   pool forks a replacement and keeps going; nothing ever waits on a dead worker.
//! * An `initializer` that panics breaks the pool: every unfinished and future task
//!   fails with `TaskFailed` (instead of Python's endless respawn loop). Workers that
//!   die three times in a row before their initializer finished do the same.
//! * `map` returns the first error in item order; `imap`, `imap_unordered` and
//!   `AsyncResult::get` report errors per item.
//!
//! ## Large arguments and results
//! Messages up to 64 KiB travel through the queues, cut into pieces when longer
//! than the queues' maximum message length (4 KiB unless set with
//! [`PoolBuilder::max_message_len`]). Longer ones go through reused shared areas, so
//! any size works, for every start method, at memory speed: an argument is
//! serialized straight into one of the pool's argument areas (four per worker, plus
//! two) and a result straight into its worker's result area. The receiver decodes
//! it from the area with a deserializer that copies as it reads (serde is never
//! given a reference into memory another process can write): a byte string or
//! string is copied once, straight into the `Vec<u8>` / `String` it becomes, and
//! every length is checked against the message before anything is allocated. A
//! result of 1 MiB or more is decoded in place: its area is held by its outcome
//! until that is dropped (an [`AsyncResult`] holds it while it lives, so that `get`
//! can decode it again), and the worker meanwhile writes its next large result into
//! a new area; a shorter one is copied out at once (a few microseconds), so a
//! stream of medium results (a `map`'s default chunks) never makes new areas. The areas are
//! faulted in once and reused, so a steady stream of large payloads pays no page
//! faults. They stay as large as the largest payload seen while the pool lives.
//!
//! Byte buffers should serialize as byte strings (`serde_bytes::ByteBuf`, or a
//! newtype whose `Serialize` calls `serialize_bytes`): serde writes and reads a
//! plain `Vec<u8>` one element at a time, several times slower than copying it.

mod blob;
mod chan;
mod de;
mod engine;
mod jobs;
mod sink;
mod slots;
mod wire;
mod worker;

#[doc(hidden)]
pub use self::de::from_bytes_copying;
use self::jobs::{task_body, Body, Failure, Outcome, Shared};
use self::wire::{Item, Outcomes, Runner};
use super::start::{default_is_automatic, get_start_method, StartMethod};
use crate::sys::clock::std_deadline_after;
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default maximum length of one queue message; longer ones travel in pieces (and
/// those over 64 KiB through a shared area).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 4 << 10;

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// Dropping the pool terminates it, like leaving Python's `with Pool() as pool:`
/// block: workers are killed and unfinished tasks fail with [`Error::Closed`]. Call
/// [`close`](Pool::close) and [`join`](Pool::join) to let submitted work finish first.
pub struct Pool {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.shared.workers)
            .field("pids", &self.pids())
            .finish()
    }
}

/// Options for a [`Pool`] (Python's `Pool(processes, initializer, initargs,
/// maxtasksperchild)`).
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Pool;
/// fn double(x: i32) -> i32 { 2 * x }
/// let pool = Pool::builder()
///     .workers(2)
///     .initializer(|| { /* runs once in each worker, before any task */ })
///     .maxtasksperchild(100)  // each worker is replaced after 100 chunks
///     .build()?;
/// assert_eq!(pool.map(double, 0..5)?, [0, 2, 4, 6, 8]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PoolBuilder {
    workers: usize,
    initializer: Option<Arc<dyn Fn() + Send + Sync>>,
    max_tasks: Option<usize>,
    max_message_len: usize,
    start_method: Option<StartMethod>,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("workers", &self.workers)
            .field("initializer", &self.initializer.is_some())
            .field("maxtasksperchild", &self.max_tasks)
            .field("max_message_len", &self.max_message_len)
            .field("start_method", &self.start_method)
            .finish()
    }
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            workers: 0,
            initializer: None,
            max_tasks: None,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            start_method: None,
        }
    }
}

impl PoolBuilder {
    /// A builder for one worker per CPU, no initializer, workers never replaced.
    pub fn new() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Number of worker processes; 0 (the default) means [`cpu_count`](crate::cpu_count).
    pub fn workers(mut self, n: usize) -> PoolBuilder {
        self.workers = n;
        self
    }

    /// Runs `f` once in every worker (also in replacements) before its first task.
    ///
    /// Unlike tasks, the initializer may be a closure, because it needs
    /// [`StartMethod::Fork`]: workers are then forks of this process made after this
    /// call, so whatever it captures exists in them (a pool with an initializer
    /// defaults to `Fork`; `build` refuses one with another method). If it panics,
    /// the pool is broken: every task fails with [`Error::TaskFailed`].
    pub fn initializer(mut self, f: impl Fn() + Send + Sync + 'static) -> PoolBuilder {
        self.initializer = Some(Arc::new(f));
        self
    }

    /// Replaces each worker after it has run `n` chunks (Python's `maxtasksperchild`;
    /// a `map` chunk counts as one task, as in Python). `0` means never.
    pub fn maxtasksperchild(mut self, n: usize) -> PoolBuilder {
        self.max_tasks = (n > 0).then_some(n);
        self
    }

    /// Largest single queue message, in bytes (at least 64; default 4 KiB). Longer
    /// arguments and results are sent in pieces of this size, up to 64 KiB; longer
    /// still, through a shared area of the worker's.
    pub fn max_message_len(mut self, bytes: usize) -> PoolBuilder {
        self.max_message_len = bytes;
        self
    }

    /// How workers (and their replacements) are started; default: the process-wide
    /// [`get_start_method`](crate::get_start_method) (see
    /// [`set_start_method`](crate::set_start_method)), except that a pool with an
    /// [`initializer`](PoolBuilder::initializer) closure uses
    /// [`Fork`](StartMethod::Fork) unless told otherwise — a closure exists only in
    /// this process's memory.
    ///
    /// With [`Spawn`](StartMethod::Spawn) or [`ForkServer`](StartMethod::ForkServer)
    /// nothing is ever forked from this (possibly multi-threaded) process; the
    /// workers start from a fresh copy of the program, attach to the pool's queues
    /// by name, and cannot run an initializer closure (`build` refuses one).
    pub fn start_method(mut self, m: StartMethod) -> PoolBuilder {
        self.start_method = Some(m);
        self
    }

    /// Starts the pool: starts the workers now.
    pub fn build(self) -> Result<Pool> {
        let method = match self.start_method {
            Some(m) => m,
            None if self.initializer.is_some() && default_is_automatic() => StartMethod::Fork,
            None => get_start_method(),
        };
        if method != StartMethod::Fork && self.initializer.is_some() {
            return Err(Error::invalid(format!(
                "a pool started with {method:?} cannot run an initializer closure (its \
                 workers do not share this process's memory): use StartMethod::Fork, or \
                 do the set-up at the start of each task"
            )));
        }
        let workers = if self.workers == 0 {
            crate::cpu_count()
        } else {
            self.workers
        };
        if workers > u16::MAX as usize {
            return Err(Error::invalid(format!(
                "a pool of {workers} workers is too large (at most {})",
                u16::MAX
            )));
        }
        if !(64..=(1 << 30)).contains(&self.max_message_len) {
            return Err(Error::invalid(format!(
                "max_message_len {} is out of range 64..=1 GiB",
                self.max_message_len
            )));
        }
        let (shared, thread) = engine::start(engine::Config {
            workers,
            initializer: self.initializer,
            max_tasks: self.max_tasks,
            max_message_len: self.max_message_len,
            inbox_capacity: engine::MAX_WINDOW,
            method,
        })?;
        Ok(Pool {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// Python's default chunk size for `map`: `ceil(len / (4 × workers))`.
pub fn default_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(4 * workers.max(1)).max(1)
}

fn decode<R: DeserializeOwned>(o: Item<'_>) -> Result<R> {
    match o {
        Item::Ok(src) => src.decode().map_err(|e| Error::TaskFailed {
            message: format!(
                "could not decode the result as {}: {e}",
                std::any::type_name::<R>()
            ),
        }),
        Item::Failed(message) => Err(Error::TaskFailed {
            message: String::from_utf8_lossy(message).into_owned(),
        }),
    }
}

/// Serializes `items` into chunk bodies of `chunksize` items each (large ones
/// straight into shared memory).
fn chunk_bodies<'a, T: Serialize + 'a>(
    shared: &Shared,
    runner: Runner,
    f: usize,
    items: impl IntoIterator<Item = &'a T>,
    chunksize: usize,
) -> Result<Vec<(u64, Body)>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let (body, _) = task_body(&shared.args, runner, f, |sink| {
            for item in items.by_ref().take(chunksize) {
                wire::push_item(sink, item)?;
            }
            Ok(0)
        })
        .map_err(Error::invalid)?;
        out.push((out.len() as u64, body));
    }
    Ok(out)
}

impl Pool {
    /// A pool of `workers` processes (0: one per CPU), started now with the default
    /// start method ([`get_start_method`](crate::get_start_method)).
    pub fn new(workers: usize) -> Result<Pool> {
        PoolBuilder::new().workers(workers).build()
    }

    /// A [`PoolBuilder`] for the initializer, `maxtasksperchild` and other options.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The number of worker processes.
    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// The pids of the current workers (they change when workers are replaced).
    pub fn pids(&self) -> Vec<u32> {
        self.shared.lock().pids.clone()
    }

    fn run_all<T: Serialize, R: DeserializeOwned>(
        &self,
        runner: Runner,
        f: usize,
        items: &[T],
        chunksize: Option<usize>,
    ) -> Result<Vec<R>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let chunksize = chunksize.unwrap_or_else(|| default_chunksize(items.len(), self.workers()));
        if chunksize == 0 {
            return Err(Error::invalid("chunksize must be at least 1"));
        }
        let chunks = chunk_bodies(&self.shared, runner, f, items, chunksize)?;
        let n_chunks = chunks.len() as u64;
        let job = self.shared.new_job()?;
        if let Err(e) = self.shared.submit(job, chunks) {
            self.shared.abandon(job);
            return Err(e);
        }
        let mut outcomes = self.shared.take_all(job).into_iter();
        let mut results = Vec::with_capacity(items.len());
        for _ in 0..n_chunks {
            match outcomes.next().flatten() {
                Some(Outcome::Items(v)) => {
                    for o in v.iter() {
                        results.push(decode(o)?);
                    }
                }
                Some(Outcome::Failed(f)) => return Err(f.to_error()),
                None => return Err(Error::Closed),
            }
        }
        if results.len() != items.len() {
            return Err(Error::corrupt(
                "",
                format!(
                    "the pool returned {} results for {} items",
                    results.len(),
                    items.len()
                ),
            ));
        }
        Ok(results)
    }

    /// Applies `f` to every item in parallel; results in item order (Python's
    /// `map`). Items are sent in chunks of Python's default size,
    /// `ceil(len / (4 × workers))`. `Err` is the first failure in item order
    /// ([`Error::TaskFailed`] for a panic, [`Error::WorkerDied`] if a worker died).
    pub fn map<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let items: Vec<A> = items.into_iter().collect();
        self.run_all(wire::run_unary::<A, R>, f as usize, &items, None)
    }

    /// [`map`](Pool::map) with an explicit chunk size (items sent to a worker at once).
    pub fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let items: Vec<A> = items.into_iter().collect();
        self.run_all(wire::run_unary::<A, R>, f as usize, &items, Some(chunksize))
    }

    /// Calls `f(a, b)` for every `(a, b)` in parallel (Python's `starmap`).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let items: Vec<(A, B)> = items.into_iter().collect();
        self.run_all(wire::run_binary::<A, B, R>, f as usize, &items, None)
    }

    /// Calls `f(a, b, c)` for every `(a, b, c)` in parallel (`starmap` for three arguments).
    pub fn starmap3<A, B, C, R>(
        &self,
        f: fn(A, B, C) -> R,
        items: impl IntoIterator<Item = (A, B, C)>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        C: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let items: Vec<(A, B, C)> = items.into_iter().collect();
        self.run_all(wire::run_ternary::<A, B, C, R>, f as usize, &items, None)
    }

    /// Lazily maps `f` over `items`, yielding results in item order as they arrive
    /// (Python's `imap`, chunk size 1). Unlike Python, the input is consumed lazily:
    /// at most a few chunks per worker are read ahead, so `items` may be endless.
    pub fn imap<A, R, I>(&self, f: fn(A) -> R, items: I) -> Result<Imap<I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.imap_chunked(f, items, 1)
    }

    /// [`imap`](Pool::imap) with `chunksize` items per task.
    pub fn imap_chunked<A, R, I>(
        &self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Result<Imap<I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        Imap::new(
            self,
            wire::run_unary::<A, R>,
            f as usize,
            items.into_iter(),
            chunksize,
            true,
        )
    }

    /// Like [`imap`](Pool::imap), but yields results as soon as they finish, in any
    /// order (Python's `imap_unordered`).
    pub fn imap_unordered<A, R, I>(&self, f: fn(A) -> R, items: I) -> Result<Imap<I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.imap_unordered_chunked(f, items, 1)
    }

    /// [`imap_unordered`](Pool::imap_unordered) with `chunksize` items per task.
    pub fn imap_unordered_chunked<A, R, I>(
        &self,
        f: fn(A) -> R,
        items: I,
        chunksize: usize,
    ) -> Result<Imap<I::IntoIter, R>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        Imap::new(
            self,
            wire::run_unary::<A, R>,
            f as usize,
            items.into_iter(),
            chunksize,
            false,
        )
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python's `apply`).
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Starts `f(arg)` in a worker; the [`AsyncResult`] delivers the result (Python's
    /// `apply_async`).
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let chunks = chunk_bodies(&self.shared, wire::run_unary::<A, R>, f as usize, [&arg], 1)?;
        let job = self.shared.new_job()?;
        let result = AsyncResult {
            shared: self.shared.clone(),
            job,
            _r: PhantomData,
        };
        self.shared.submit(job, chunks)?;
        Ok(result)
    }

    /// No new tasks (they fail with [`Error::Closed`]); submitted ones still run.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Waits until all submitted work is done and the workers have exited. Needs
    /// [`close`](Pool::close) (or [`terminate`](Pool::terminate)) first, as in Python:
    /// otherwise `Err(InvalidArgument)`.
    pub fn join(&self) -> Result<()> {
        self.shared.join()?;
        self.join_thread();
        Ok(())
    }

    /// Stops at once: SIGKILLs the workers, reaps them, and fails every unfinished
    /// task with [`Error::Closed`]. Returns promptly even with tasks pending.
    pub fn terminate(&self) {
        self.shared.terminate();
        self.join_thread();
    }

    fn join_thread(&self) {
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The result of [`Pool::apply_async`], delivered when its task finishes.
pub struct AsyncResult<R> {
    shared: Arc<Shared>,
    job: u64,
    _r: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.shared.chunk_ready(self.job, 0))
            .finish()
    }
}

impl<R: DeserializeOwned> AsyncResult<R> {
    fn outcome(&self, deadline: Option<Instant>) -> Option<Outcome> {
        self.shared.peek_chunk(self.job, 0, deadline)
    }

    fn decode(o: Outcome) -> Result<R> {
        match o {
            Outcome::Items(v) => {
                let mut it = v.iter();
                match (it.next(), it.next()) {
                    (Some(o), None) => decode(o),
                    _ => Err(Error::corrupt(
                        "",
                        "a single task gave a number of results other than one",
                    )),
                }
            }
            Outcome::Failed(f) => Err(f.to_error()),
        }
    }

    /// Waits for the result. May be called again (and from several threads).
    pub fn get(&self) -> Result<R> {
        Self::decode(
            self.outcome(None)
                .unwrap_or(Outcome::Failed(Failure::Closed)),
        )
    }

    /// Waits at most `timeout`; `Err(Timeout)` if the task has not finished by then.
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        match self.outcome(std_deadline_after(timeout)) {
            Some(o) => Self::decode(o),
            None => Err(Error::Timeout),
        }
    }

    /// True once the task has finished (or failed).
    pub fn ready(&self) -> bool {
        self.shared.chunk_ready(self.job, 0)
    }

    /// `Some(true)` if the task finished without error, `Some(false)` if it failed,
    /// `None` while it runs (Python raises `ValueError` then).
    pub fn successful(&self) -> Option<bool> {
        if !self.ready() {
            return None;
        }
        Some(matches!(
            self.outcome(Some(Instant::now())),
            Some(Outcome::Items(v)) if v.iter().all(|o| matches!(o, Item::Ok(_)))
        ))
    }

    /// Waits until the task has finished.
    pub fn wait(&self) {
        let _ = self.outcome(None);
    }

    /// Waits at most `timeout`; true if the task has finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.outcome(std_deadline_after(timeout)).is_some()
    }
}

impl<R> Drop for AsyncResult<R> {
    fn drop(&mut self) {
        self.shared.abandon(self.job);
    }
}

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: yields one
/// `Result<R>` per input item. Dropping it abandons the rest of the work (queued
/// chunks are dropped; running ones finish and their results are discarded).
pub struct Imap<I, R> {
    shared: Arc<Shared>,
    job: u64,
    runner: Runner,
    f: usize,
    input: Option<I>,
    chunksize: usize,
    ordered: bool,
    /// Chunks submitted so far (their indexes are 0..submitted).
    submitted: u64,
    /// Ordered: index of the next chunk to yield.
    next: u64,
    /// Item counts of submitted chunks not yet yielded.
    sizes: HashMap<u64, usize>,
    /// Results of the chunk being yielded.
    current: VecDeque<Result<R>>,
    /// Chunks kept in flight ahead of the consumer.
    lookahead: u64,
}

impl<I, R> fmt::Debug for Imap<I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("ordered", &self.ordered)
            .field("chunksize", &self.chunksize)
            .field("submitted", &self.submitted)
            .finish_non_exhaustive()
    }
}

impl<I, R> Imap<I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned,
{
    fn new(
        pool: &Pool,
        runner: Runner,
        f: usize,
        input: I,
        chunksize: usize,
        ordered: bool,
    ) -> Result<Self> {
        if chunksize == 0 {
            return Err(Error::invalid("chunksize must be at least 1"));
        }
        let job = pool.shared.new_job()?;
        let lookahead = (pool.workers() * (engine::MAX_WINDOW + 2)) as u64;
        Ok(Imap {
            shared: pool.shared.clone(),
            job,
            runner,
            f,
            input: Some(input),
            chunksize,
            ordered,
            submitted: 0,
            next: 0,
            sizes: HashMap::new(),
            current: VecDeque::new(),
            lookahead,
        })
    }

    /// Reads and submits input until `lookahead` chunks are in flight.
    fn top_up(&mut self) {
        let mut batch = Vec::new();
        while (self.sizes.len() as u64) < self.lookahead {
            let Some(input) = self.input.as_mut() else {
                break;
            };
            let mut n = 0;
            let mut bad = None;
            let chunksize = self.chunksize;
            let body = task_body(&self.shared.args, self.runner, self.f, |sink| {
                for item in input.by_ref().take(chunksize) {
                    n += 1;
                    if let Err(e) = wire::push_item(sink, &item) {
                        bad = Some(e);
                    }
                }
                Ok(n)
            });
            if n == 0 {
                self.input = None;
                break;
            }
            let index = self.submitted;
            self.submitted += 1;
            self.sizes.insert(index, n);
            match (bad, body) {
                (None, Ok((body, _))) => batch.push((index, body)),
                (Some(msg), _) | (None, Err(msg)) => self.shared.record_local(
                    self.job,
                    index,
                    Outcome::Items(Outcomes::failed(&msg, n)),
                ),
            }
        }
        if !batch.is_empty() {
            let indexes: Vec<u64> = batch.iter().map(|(i, _)| *i).collect();
            if self.shared.submit(self.job, batch).is_err() {
                // The pool is closed or gone: these chunks fail, and no more are read.
                self.input = None;
                for index in indexes {
                    self.shared
                        .record_local(self.job, index, Outcome::Failed(Failure::Closed));
                }
            }
        }
    }
}

impl<I, R> Iterator for Imap<I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(r) = self.current.pop_front() {
                return Some(r);
            }
            self.top_up();
            if self.sizes.is_empty() {
                return None;
            }
            let (index, outcome) = if self.ordered {
                let index = self.next;
                let o = self
                    .shared
                    .take_chunk(self.job, index, None)
                    .unwrap_or(Outcome::Failed(Failure::Closed));
                self.next += 1;
                (index, o)
            } else {
                self.shared.take_any(self.job)
            };
            let n = self.sizes.remove(&index).unwrap_or(0);
            match outcome {
                Outcome::Items(v) => self.current.extend(v.iter().map(decode)),
                Outcome::Failed(f) => {
                    if index == u64::MAX {
                        // The job is gone (pool terminated): end with one error.
                        self.sizes.clear();
                        self.input = None;
                        return Some(Err(f.to_error()));
                    }
                    self.current.extend((0..n).map(|_| Err(f.to_error())));
                }
            }
        }
    }
}

impl<I, R> Drop for Imap<I, R> {
    fn drop(&mut self) {
        self.shared.abandon(self.job);
    }
}
