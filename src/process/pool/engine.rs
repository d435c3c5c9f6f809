//! The pool's engine: the state user threads share with the pool thread, and the
//! pool thread itself (dispatch, collect, supervise, replace).
//!
//! ## Who owns a chunk
//! A chunk (a slice of a job's items, run by one worker in one go) is, at any time,
//! in exactly one place:
//! * `State::pending` — submitted, not yet given to a worker (user threads add here);
//! * `Worker::assigned` — written (or being written) into that worker's own inbox;
//! * finished — its [`Outcome`] is recorded in its job.
//!
//! Each worker has its own inbox, so the pool thread always knows which chunks a
//! worker holds. A worker writes the id of the chunk it runs into its shared
//! [`WorkerSlot`] *before* calling user code. When a worker dies, the pool thread
//! first collects everything the worker sent (the slot counts its messages), then
//! fails the chunk named in `running` with [`Failure::WorkerDied`] (it may have run,
//! fully or partly, so it is not run again), puts every other chunk it held back at
//! the front of `pending` (those never started), empties its inbox and forks a
//! replacement. Nothing waits on a dead process, so the pool cannot hang on one.

use super::blob::{self, Area, ArgAreas, Buf, BLOB_MIN};
use super::chan::Chan;
use super::jobs::{Body, Chunk, Failure, Outcome, Shared, State};
use super::slots::{self, Slots};
use super::wire::{self, FrameHeader, HeldArea, Outcomes, HEADER_LEN};
use super::worker::{self, WorkerCtx};
use crate::process::child::fork_child;
use crate::process::current;
use crate::process::forkserver;
use crate::process::relay::{Relay, Relayed};
use crate::process::start::{self, StartMethod};
use crate::sync::atomic::Ordering;
use crate::sys::process as os;
use crate::{Error, Result};
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Most chunks a worker holds at once (sent, not finished).
pub(super) const MAX_WINDOW: usize = 256;
/// A worker's window is sized to hold about this much work, so that a slow chunk
/// never keeps many others waiting behind it while another worker idles.
const WINDOW_TARGET: Duration = Duration::from_millis(2);
/// How often worker liveness is checked while work is outstanding / while idle.
const SUPERVISE_BUSY: Duration = Duration::from_millis(10);
const SUPERVISE_IDLE: Duration = Duration::from_millis(100);
/// Workers that die before finishing start-up this many times in a row break the pool.
const MAX_STARTUP_DEATHS: u32 = 3;

/// Pool configuration, fixed at start.
pub(super) struct Config {
    pub workers: usize,
    pub initializer: Option<Arc<dyn Fn() + Send + Sync>>,
    pub max_tasks: Option<usize>,
    pub max_message_len: usize,
    pub inbox_capacity: usize,
    pub method: StartMethod,
}

/// Starts the pool thread, which forks the workers; returns once they are forked.
pub(super) fn start(cfg: Config) -> Result<(Arc<Shared>, std::thread::JoinHandle<()>)> {
    worker::install_panic_hook();
    // Room for every result the workers may owe at once (the engine never lets more
    // chunks out than this), so that a worker never waits to deliver a result.
    let results_cap = (cfg.workers * MAX_WINDOW)
        .clamp(64, 4096)
        .next_power_of_two();
    // Fork: anonymous queues, inherited. Spawn/ForkServer: the workers are not our
    // forks, so they open named ones (mode 0600, unlinked when the pool drops).
    // Blobs (large messages) are named for every method.
    let blobs = {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        format!(
            "multiproc-pool-{}-{}-{:x}",
            crate::sys::ident::getpid(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        )
    };
    let base = (cfg.method != StartMethod::Fork).then_some(&blobs);
    let named = |what: &str| base.map(|b| format!("{b}-{what}"));
    let results = Chan::new(
        results_cap,
        cfg.max_message_len,
        named("results").as_deref(),
    )?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        cond: Condvar::new(),
        results: results.clone(),
        // Four per worker, plus two: every chunk of a `map` with default chunking (four
        // per worker, as Python makes them) has one while all are in flight.
        args: Arc::new(ArgAreas::new(blobs.clone(), 4 * cfg.workers + 2)),
        sleeping: AtomicBool::new(false),
        workers: cfg.workers,
    });
    let slots = Slots::new(cfg.workers, named("slots").as_deref())?;
    let mut workers = Vec::with_capacity(cfg.workers);
    for index in 0..cfg.workers {
        let inbox = named(&format!("inbox-{index}"));
        workers.push(Worker::new(
            index,
            Chan::new(cfg.inbox_capacity, cfg.max_message_len, inbox.as_deref())?,
        ));
    }
    let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
    let sh = shared.clone();
    let thread = std::thread::Builder::new()
        .name("multiproc-pool".into())
        .spawn(move || {
            let mut engine = Engine {
                shared: sh.clone(),
                cfg,
                slots,
                results,
                workers,
                blobs,
                buf: Vec::new(),
                batch: Vec::new(),
                startup_deaths: 0,
                stopping: false,
                results_cap,
            };
            // Fork from this thread: the workers' PR_SET_PDEATHSIG is tied to it,
            // and it lives exactly as long as the pool.
            let started = (0..engine.workers.len()).try_for_each(|i| engine.spawn(i));
            let ok = started.is_ok();
            let _ = tx.send(started);
            if !ok {
                engine.kill_all();
                engine.finish(Failure::Closed);
                return;
            }
            // The pool thread naps for tens of microseconds between passes (see
            // `Engine::nap`): the default 50 µs timer slack would double the naps.
            let _ = os::set_timer_slack(1_000);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run()));
            if r.is_err() {
                // A bug in the engine: never leave workers or waiters behind.
                engine.kill_all();
                engine.finish(Failure::Broken("the pool thread panicked".into()));
            }
        })
        .map_err(Error::Io)?;
    match rx.recv() {
        Ok(Ok(())) => Ok((shared, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(Error::Io(std::io::Error::other(
                "the pool thread died while starting",
            )))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Life {
    Alive,
    /// Reaped with this exit code; its messages are still being collected.
    Dead(i32),
    /// Not running and not to be replaced (stopped, or the pool is broken).
    Gone,
}

struct Assigned {
    chunk: Chunk,
    sent_at: Instant,
}

struct Worker {
    index: usize,
    inbox: Chan,
    pid: u32,
    /// Set for a child of the fork server (not ours to reap: its exit is relayed).
    relay: Option<Arc<Relay>>,
    /// Incarnation number (in the low 16 bits of the sender id).
    gen: u32,
    life: Life,
    /// Chunks given to this worker and not finished, in the order they were given.
    assigned: VecDeque<Assigned>,
    /// `assigned[..sent_chunks]` are entirely in the inbox; of `assigned[sent_chunks]`
    /// the first `cursor` body bytes are; the rest are not written yet.
    sent_chunks: usize,
    cursor: usize,
    /// Chunks given to this incarnation (for `maxtasksperchild`).
    given: usize,
    /// Complete messages received from this incarnation.
    received: u64,
    /// Pieces of a message being reassembled.
    partial: Vec<u8>,
    window: usize,
    /// Smoothed time one chunk takes, in ns (0: unknown yet).
    service_ns: f64,
    last_result: Instant,
    stop_sent: bool,
    /// Our end of the worker's task area (kept across incarnations; see `blob.rs`).
    task_area: Option<Area>,
    /// Messages written into the task area for this incarnation.
    arg_written: u64,
    /// The incarnation's result area, once opened (its name is unlinked then).
    result_area: Option<Area>,
    /// Messages copied out of the result areas of this incarnation.
    res_taken: u64,
}

impl Worker {
    fn new(index: usize, inbox: Chan) -> Worker {
        Worker {
            index,
            inbox,
            pid: 0,
            relay: None,
            gen: 0,
            life: Life::Gone,
            assigned: VecDeque::new(),
            sent_chunks: 0,
            cursor: 0,
            given: 0,
            received: 0,
            partial: Vec::new(),
            window: 1,
            service_ns: 0.0,
            last_result: Instant::now(),
            stop_sent: false,
            task_area: None,
            arg_written: 0,
            result_area: None,
            res_taken: 0,
        }
    }

    fn sender(&self) -> u32 {
        wire::worker_sender(self.index, self.gen)
    }

    /// Reaps the worker if it has exited: `Ok(Some(exitcode))`, `Ok(None)` while it
    /// runs, `Err` when its exit code cannot be known (reaped by someone else, or
    /// its fork server died).
    fn try_reap(&self) -> std::io::Result<Option<i32>> {
        match &self.relay {
            None => os::try_reap(self.pid),
            Some(r) => match r.status() {
                Relayed::Running => Ok(None),
                Relayed::Exited(c) => Ok(Some(c)),
                Relayed::Lost => Err(std::io::Error::other("the fork server died")),
            },
        }
    }

    fn kill(&self) {
        let _ = match &self.relay {
            None => os::signal(self.pid, libc::SIGKILL),
            Some(r) => r
                .signal(self.pid, libc::SIGKILL)
                .map_err(|e| std::io::Error::other(e.to_string())),
        };
    }

    /// Waits until the worker has exited (without reaping it, for our own children).
    fn wait_exited(&self) {
        match &self.relay {
            None => {
                let _ = os::wait_exited(self.pid);
            }
            Some(r) => {
                r.wait(None);
            }
        }
    }
}

struct Engine {
    shared: Arc<Shared>,
    cfg: Config,
    slots: Slots,
    results: Chan,
    workers: Vec<Worker>,
    /// The prefix of this pool's blob names (see `blob.rs`).
    blobs: String,
    buf: Vec<u8>,
    /// Finished chunks not yet recorded in their jobs: (job, index, outcome).
    batch: Vec<(u64, u64, Outcome)>,
    startup_deaths: u32,
    /// Join: workers were told to stop.
    stopping: bool,
    /// Most chunks out at once, over all workers (the result queue's capacity).
    results_cap: usize,
}

impl Engine {
    /// Forks incarnation `gen + 1` of worker `i`.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let slot = self.slots.get(i);
        // SYNC(slot-reset): the previous incarnation is reaped; the fork below
        // publishes these zeros to the new one.
        slot.running.store(0, Ordering::Relaxed);
        slot.sent.store(0, Ordering::Relaxed);
        slot.ready.store(0, Ordering::Relaxed);
        slot.arg_taken.store(0, Ordering::Relaxed);
        slot.res_taken.store(0, Ordering::Relaxed);
        slot.res_gen.store(0, Ordering::Relaxed);
        slot.res_free.store(0, Ordering::Relaxed);
        let w = &mut self.workers[i];
        w.gen = w.gen.wrapping_add(1) & 0xffff;
        w.given = 0;
        w.received = 0;
        w.partial.clear();
        w.sent_chunks = 0;
        w.cursor = 0;
        w.window = 1;
        w.service_ns = 0.0;
        w.stop_sent = false;
        w.arg_written = 0;
        w.result_area = None;
        w.res_taken = 0;
        let ctx = WorkerCtx {
            sender: w.sender(),
            inbox: w.inbox.clone(),
            results: self.results.clone(),
            slots: self.slots.clone(),
            blobs: self.blobs.clone(),
            index: i,
            initializer: self.cfg.initializer.clone(),
            max_tasks: self.cfg.max_tasks,
        };
        let (identity, name) = current::next_child("PoolWorker");
        let (pid, relay) = match self.cfg.method {
            StartMethod::Fork => {
                let pid =
                    fork_child(name, identity, true, move || worker::main(ctx)).map_err(|e| {
                        Error::Io(std::io::Error::new(
                            e.kind(),
                            format!("forking a pool worker failed: {e}"),
                        ))
                    })?;
                (pid, None)
            }
            method => {
                let spec = worker::WorkerSpec {
                    sender: ctx.sender,
                    inbox: ctx.inbox.name().to_owned(),
                    results: ctx.results.name().to_owned(),
                    slots: ctx.slots.name().to_owned(),
                    blobs: ctx.blobs.clone(),
                    workers: self.workers.len(),
                    index: i,
                    max_tasks: ctx.max_tasks,
                };
                let job = start::Job::new(worker::spawned_main, &spec, name, identity, true)?;
                if method == StartMethod::Spawn {
                    (start::spawn(&job, None)?, None)
                } else {
                    let (pid, relay) = forkserver::start_child(job)?;
                    (pid, Some(relay))
                }
            }
        };
        let w = &mut self.workers[i];
        w.pid = pid;
        w.relay = relay;
        w.life = Life::Alive;
        let pids = self
            .workers
            .iter()
            .filter(|w| w.life == Life::Alive)
            .map(|w| w.pid)
            .collect();
        self.shared.lock().pids = pids;
        Ok(())
    }

    fn run(&mut self) {
        let mut next_check = Instant::now();
        loop {
            let mut progress = false;
            // 1. Requests and new work.
            let (terminate, join) = {
                let s = self.shared.lock();
                (s.terminate_requested, s.join_requested)
            };
            if terminate {
                self.kill_all();
                self.finish(Failure::Closed);
                return;
            }
            if self.dispatch() {
                progress = true;
                // Work is out: check on the workers at the busy pace from now on.
                next_check = next_check.min(Instant::now() + SUPERVISE_BUSY);
            }
            // 2. Results.
            progress |= self.drain(256);
            self.record();
            // 3. Liveness.
            let now = Instant::now();
            if now >= next_check {
                self.check_workers();
                let busy = self.workers.iter().any(|w| !w.assigned.is_empty());
                next_check = now + if busy { SUPERVISE_BUSY } else { SUPERVISE_IDLE };
            }
            progress |= self.finalize_deaths();
            // 4. Join: all work done -> stop the workers, then exit.
            if join && self.all_done() {
                if self.stop_workers() {
                    self.finish(Failure::Closed);
                    return;
                }
                progress = true;
            }
            if progress {
                continue;
            }
            // 5. Nothing to do. When every busy worker will have emptied half its
            //    window within a few tens of microseconds, nap that long instead of
            //    sleeping on the queue: the workers then never pay a futex wake per
            //    result, and one pass collects many results.
            if let Some(nap) = self.nap() {
                std::thread::sleep(nap);
                continue;
            }
            // Otherwise sleep on the result queue until a message or the next
            // liveness check.
            // SYNC(pool-sleep): announce the sleep, then re-check for work under the
            // lock; a submitter that pushes after our check sees `sleeping`.
            self.shared
                .sleeping
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let (work, blocked_send) = self.has_dispatchable_work();
            if !work {
                let mut timeout = next_check.saturating_duration_since(Instant::now());
                if blocked_send {
                    // A long message waits for room in an inbox: the worker frees it
                    // without sending us anything, so look again soon.
                    timeout = timeout.min(Duration::from_micros(200));
                }
                let mut buf = std::mem::take(&mut self.buf);
                match self
                    .results
                    .get_timeout(&mut buf, timeout.max(Duration::from_micros(100)))
                {
                    Ok(true) => self.handle_piece(&buf),
                    Ok(false) => {}
                    Err(e) => self.fatal(&e),
                }
                self.buf = buf;
            }
            self.shared
                .sleeping
                .store(false, std::sync::atomic::Ordering::SeqCst);
            self.record();
        }
    }

    /// How long to nap before collecting results, when that is short (fast tasks,
    /// full windows); `None` when the pool thread should sleep on the queue instead.
    fn nap(&self) -> Option<Duration> {
        const MIN: f64 = 20_000.0;
        const MAX: f64 = 200_000.0;
        let now = Instant::now();
        let mut nap = f64::MAX;
        for w in &self.workers {
            let Some(first) = w.assigned.front() else {
                continue;
            };
            if w.life != Life::Alive || w.service_ns <= 0.0 || w.sent_chunks < w.assigned.len() {
                return None;
            }
            // A worker silent for over 5 ms runs a slow chunk after all:
            // polling for it would only burn CPU.
            let since = now.saturating_duration_since(w.last_result.max(first.sent_at));
            if since > Duration::from_millis(5) {
                return None;
            }
            let half = (w.assigned.len() as f64 / 2.0).max(1.0) * w.service_ns;
            nap = nap.min(half);
        }
        if nap > MAX {
            return None;
        }
        Some(Duration::from_nanos(nap.max(MIN) as u64))
    }

    /// Whether the pool thread must act right now (checked under the lock), and
    /// whether some chunk is only partly written into a full inbox.
    fn has_dispatchable_work(&self) -> (bool, bool) {
        let blocked = self
            .workers
            .iter()
            .any(|w| w.life == Life::Alive && w.sent_chunks < w.assigned.len());
        let s = self.shared.lock();
        if s.terminate_requested {
            return (true, blocked);
        }
        let room = self.workers.iter().any(|w| self.has_room(w));
        (!s.pending.is_empty() && room, blocked)
    }

    fn has_room(&self, w: &Worker) -> bool {
        w.life == Life::Alive
            && !self.stopping
            && w.assigned.len() < w.window
            && self.cfg.max_tasks.map_or(true, |m| w.given < m)
            && self.chunks_out() < self.results_cap
    }

    /// Chunks given to workers and not finished.
    fn chunks_out(&self) -> usize {
        self.workers.iter().map(|w| w.assigned.len()).sum()
    }

    /// Moves pending chunks into workers' inboxes; true if anything moved.
    fn dispatch(&mut self) -> bool {
        let mut progress = false;
        // Continue chunks partly written into full inboxes.
        for i in 0..self.workers.len() {
            progress |= self.push_pieces(i);
        }
        // Hand out new chunks, least-loaded worker first.
        let mut wants: Vec<(usize, usize)> = self
            .workers
            .iter()
            .filter(|w| self.has_room(w))
            .map(|w| {
                let mut n = w.window - w.assigned.len();
                if let Some(m) = self.cfg.max_tasks {
                    n = n.min(m - w.given);
                }
                (w.index, n)
            })
            .collect();
        if wants.is_empty() {
            return progress;
        }
        wants.sort_by_key(|&(i, _)| self.workers[i].assigned.len());
        let mut taken: Vec<(usize, Chunk)> = Vec::new();
        {
            let mut s = self.shared.lock();
            // Round-robin one chunk at a time, so a short list spreads over workers.
            let budget = self.results_cap.saturating_sub(self.chunks_out());
            let mut left: usize = wants.iter().map(|w| w.1).sum::<usize>().min(budget);
            while left > 0 && !s.pending.is_empty() {
                for (i, n) in wants.iter_mut() {
                    if left == 0 {
                        break;
                    }
                    if *n == 0 {
                        continue;
                    }
                    let Some(c) = s.pending.pop_front() else {
                        break;
                    };
                    taken.push((*i, c));
                    *n -= 1;
                    left -= 1;
                }
            }
        }
        let now = Instant::now();
        let mut touched = Vec::new();
        for (i, chunk) in taken {
            let w = &mut self.workers[i];
            w.given += 1;
            w.assigned.push_back(Assigned {
                chunk,
                sent_at: now,
            });
            if !touched.contains(&i) {
                touched.push(i);
            }
            progress = true;
        }
        for i in touched {
            self.push_pieces(i);
        }
        progress
    }

    /// Writes pieces of worker `i`'s unsent chunks into its inbox until all are in
    /// or the inbox is full; true if anything was written.
    fn push_pieces(&mut self, i: usize) -> bool {
        let mut progress = false;
        loop {
            let w = &mut self.workers[i];
            if w.life != Life::Alive {
                return progress;
            }
            let Some(a) = w.assigned.get_mut(w.sent_chunks) else {
                return progress;
            };
            let len = a.chunk.body.len();
            let (end, own_area) = match &a.chunk.body {
                Body::Area(arg, _) => {
                    // Already in shared memory: only its piece travels.
                    let r = wire::BlobRef {
                        tag: a.chunk.id,
                        len: len as u64,
                        gen: arg.area.as_ref().map_or(0, |x| x.gen),
                        area: arg.id,
                    };
                    wire::blob_piece(wire::TASK, 0, r, &mut self.buf);
                    (len, false)
                }
                Body::Private(body) if len > BLOB_MIN => {
                    // SYNC(arg-taken): pairs with the worker's Release store once it
                    // has copied the last message out of its task area.
                    let taken = self.slots.get(i).arg_taken.load(Ordering::Acquire);
                    if taken < w.arg_written {
                        // The area still holds a message the worker has not read.
                        return progress;
                    }
                    let (blobs, index) = (&self.blobs, w.index);
                    let area = match blob::ensure(&mut w.task_area, len, |g| {
                        blob::task_area(blobs, index, g)
                    }) {
                        Ok(area) => area,
                        Err(e) => {
                            // Never given to the worker: fail it here, with the reason.
                            if let Some(a) = w.assigned.remove(w.sent_chunks) {
                                let why = Failure::Payload(e.to_string());
                                self.batch
                                    .push((a.chunk.job, a.chunk.index, Outcome::Failed(why)));
                            }
                            progress = true;
                            continue;
                        }
                    };
                    blob::put(area, body);
                    let r = wire::BlobRef {
                        tag: a.chunk.id,
                        len: len as u64,
                        gen: area.gen,
                        area: 0,
                    };
                    wire::blob_piece(wire::TASK, 0, r, &mut self.buf);
                    (len, true)
                }
                Body::Private(body) => (
                    wire::piece(wire::TASK, 0, body, w.cursor, w.inbox.max(), &mut self.buf),
                    false,
                ),
            };
            match w.inbox.try_put(&self.buf) {
                Ok(true) => {
                    progress = true;
                    if own_area {
                        w.arg_written += 1;
                    }
                    if end >= len {
                        w.sent_chunks += 1;
                        w.cursor = 0;
                    } else {
                        w.cursor = end;
                    }
                }
                Ok(false) => return progress,
                Err(e) => {
                    self.fatal(&e);
                    return progress;
                }
            }
        }
    }

    /// Takes up to `max` messages from the result queue without waiting.
    fn drain(&mut self, max: usize) -> bool {
        let mut any = false;
        let mut buf = std::mem::take(&mut self.buf);
        for _ in 0..max {
            match self.results.try_get(&mut buf) {
                Ok(true) => {
                    any = true;
                    self.handle_piece(&buf);
                }
                Ok(false) => break,
                Err(e) => {
                    self.fatal(&e);
                    break;
                }
            }
        }
        self.buf = buf;
        any
    }

    fn handle_piece(&mut self, piece: &[u8]) {
        let Some(h) = FrameHeader::read(piece) else {
            return;
        };
        if h.kind == wire::WAKE {
            return;
        }
        let index = (h.sender >> 16) as usize;
        let Some(w) = self.workers.get_mut(index) else {
            return;
        };
        if w.sender() != h.sender || w.life == Life::Gone {
            // From a previous incarnation, already accounted for.
            return;
        }
        let blob_ref = (h.flags & wire::BLOB != 0).then(|| wire::blob_ref(&piece[HEADER_LEN..]));
        if blob_ref.is_none() {
            w.partial.extend_from_slice(&piece[HEADER_LEN..]);
            if h.flags & wire::MORE != 0 {
                return;
            }
        }
        w.received += 1;
        let mut body = std::mem::take(&mut w.partial);
        // A RESULT of `HOLD_MIN` bytes or more stays in its area, held by its outcome
        // (see `HeldArea`); anything else is copied out.
        let mut held = None;
        if let Some(r) = blob_ref {
            let (blobs, sender) = (&self.blobs, h.sender);
            let attached = match r {
                Some(r) if r.area == 0 => blob::attach(&mut w.result_area, r.gen, true, |g| {
                    blob::result_area(blobs, sender, g)
                }),
                _ => Err(Error::corrupt("", "a pool area message is malformed")),
            };
            w.res_taken += 1;
            let tag = slots::free_tag(h.sender, w.res_taken);
            let read = match (attached, r) {
                (Ok(area), Some(r)) if h.kind == wire::RESULT && r.len >= blob::HOLD_MIN as u64 => {
                    match usize::try_from(r.len).ok().filter(|&l| l <= area.seg.len()) {
                        Some(len) => {
                            let release = Some((self.slots.clone(), index, tag));
                            held = Some(HeldArea::new(area.seg.clone(), len, release));
                            Ok(())
                        }
                        None => Err(Error::corrupt(
                            area.seg.name(),
                            format!(
                                "a pool message says it holds {} bytes, its area only {}",
                                r.len,
                                area.seg.len()
                            ),
                        )),
                    }
                }
                (Ok(area), Some(r)) => blob::take(area, r.len, &mut body),
                (Ok(_), None) => Err(Error::corrupt("", "a pool area message is malformed")),
                (Err(e), _) => Err(e),
            };
            let slot = self.slots.get(index);
            // SYNC(res-taken): the message is opened (or copied out) before the
            // worker may write the area again; pairs with its Acquire load.
            slot.res_taken.store(w.res_taken, Ordering::Release);
            if held.is_none() {
                // SYNC(res-free): nothing holds it: copied out, or unreadable.
                slot.res_free.store(tag, Ordering::Release);
            }
            if let Err(e) = read {
                let tag = r.map_or(0, |r| r.tag);
                self.unreadable(index, h.kind, tag, e);
                return;
            }
        }
        match h.kind {
            wire::RESULT => self.on_result(index, &mut body, held),
            wire::INIT_FAILED => {
                let msg = String::from_utf8_lossy(&body).into_owned();
                let pid = w.pid;
                self.break_pool(format!("the initializer panicked in worker {pid}: {msg}"));
            }
            _ => {}
        }
        // Keep the buffer's capacity for the next message.
        let w = &mut self.workers[index];
        if w.partial.is_empty() {
            w.partial = body;
            w.partial.clear();
        }
    }

    /// A message of worker `index` that was put in a blob could not be read: fails
    /// the chunk it was the result of (`tag`), or breaks the pool for INIT_FAILED.
    fn unreadable(&mut self, index: usize, kind: u8, tag: u64, e: Error) {
        let w = &mut self.workers[index];
        let pid = w.pid;
        match kind {
            wire::RESULT => {
                let Some(pos) = w.assigned.iter().position(|a| a.chunk.id == tag) else {
                    return;
                };
                if pos >= w.sent_chunks {
                    return;
                }
                if let Some(a) = w.assigned.remove(pos) {
                    w.sent_chunks -= 1;
                    let why = Failure::Corrupt(format!(
                        "the result of worker {pid} could not be read: {e}"
                    ));
                    self.batch
                        .push((a.chunk.job, a.chunk.index, Outcome::Failed(why)));
                }
            }
            wire::INIT_FAILED => self.break_pool(format!(
                "the initializer failed in worker {pid} (its message could not be read: {e})"
            )),
            _ => {}
        }
    }

    /// Removes the result area worker `i`'s incarnation announced and we never
    /// opened (it died, or the pool ends, before we read from it).
    fn remove_unread_blobs(&self, i: usize) {
        let w = &self.workers[i];
        let announced = self.slots.get(i).res_gen.load(Ordering::Acquire);
        let opened = w.result_area.as_ref().map_or(0, |a| a.gen);
        // A corrupt generation must not make us loop for long. The worker removes
        // the generations it outgrew itself; the last one announced is the one left.
        let last = (announced > opened + 16).then_some(announced);
        for gen in (opened + 1..=announced.min(opened + 16)).chain(last) {
            blob::remove(&blob::result_area(&self.blobs, w.sender(), gen));
        }
    }

    /// A RESULT message: in `body` (a large one is moved into the outcome, leaving it
    /// empty), or left in its area (`held`).
    fn on_result(&mut self, index: usize, body: &mut Vec<u8>, held: Option<HeldArea>) {
        let now = Instant::now();
        let w = &mut self.workers[index];
        if let Some(h) = &held {
            // Its chunk id and service time, copied out.
            body.clear();
            if let Some(head) = h.reader().and_then(|mut r| r.array::<16>().ok()) {
                body.extend_from_slice(&head);
            }
        }
        let Some(id) = body
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        else {
            return;
        };
        let Some(pos) = w.assigned.iter().position(|a| a.chunk.id == id) else {
            // Already failed (its worker was declared dead): ignore the late result.
            return;
        };
        if pos >= w.sent_chunks {
            // A result for a chunk we never finished writing: impossible unless the
            // worker's messages are corrupt.
            return;
        }
        let Some(a) = w.assigned.remove(pos) else {
            return;
        };
        w.sent_chunks -= 1;
        // Service time as the worker measured it (results reach us in batches, so
        // arrival times say little); at least 100 ns for the queue round trip.
        let sample = body
            .get(8..16)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .max(100) as f64;
        w.service_ns = if w.service_ns == 0.0 {
            sample
        } else {
            0.8 * w.service_ns + 0.2 * sample
        };
        w.last_result = now;
        let fit = WINDOW_TARGET.as_nanos() as f64 / w.service_ns.max(1.0);
        w.window = (1 + fit as usize).clamp(1, MAX_WINDOW);
        let parsed = if let Some(h) = held {
            Outcomes::from_area(h, 16)
        } else if body.len() > BLOB_MIN {
            // Kept as it is (no copy); it returns to the spare buffers once read.
            Outcomes::parse_owned(Buf::from(std::mem::take(body)), 16)
        } else {
            body.get(16..).and_then(Outcomes::parse)
        };
        let outcome = match parsed {
            Some(items) => Outcome::Items(items),
            None => Outcome::Failed(Failure::Corrupt(format!(
                "malformed result message from worker {}",
                w.pid
            ))),
        };
        self.batch.push((a.chunk.job, a.chunk.index, outcome));
    }

    /// Records finished chunks in their jobs and wakes the waiters that care.
    fn record(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut notify = false;
        {
            let mut s = self.shared.lock();
            for (job, index, outcome) in self.batch.drain(..) {
                let Some(j) = s.jobs.get_mut(&job) else {
                    continue;
                };
                j.outstanding = j.outstanding.saturating_sub(1);
                if j.abandoned {
                    if j.outstanding == 0 {
                        s.jobs.remove(&job);
                    }
                    continue;
                }
                j.outcomes.insert(index, outcome);
                notify |= j.waiting && (!j.wait_all || j.outstanding == 0);
            }
        }
        if notify {
            self.shared.cond.notify_all();
        }
    }

    /// Reaps workers that exited.
    fn check_workers(&mut self) {
        for w in &mut self.workers {
            if w.life != Life::Alive {
                continue;
            }
            match w.try_reap() {
                Ok(Some(code)) => w.life = Life::Dead(code),
                Ok(None) => {}
                // Reaped by someone else (waitpid(-1)): it is gone all the same.
                Err(_) => w.life = Life::Dead(-1),
            }
        }
    }

    /// Settles dead workers once all they sent has been read; true if any settled.
    fn finalize_deaths(&mut self) -> bool {
        let mut any = false;
        let slots = self.slots.clone();
        for i in 0..self.workers.len() {
            let Life::Dead(code) = self.workers[i].life else {
                continue;
            };
            let slot = slots.get(i);
            // SYNC(worker-sent): pairs with the worker's Release increment after each
            // complete put; every counted message is in the queue.
            let sent = slot.sent.load(Ordering::Acquire);
            if self.workers[i].received < sent {
                // Its last results are still in the queue: read them first.
                self.drain(usize::MAX);
                if self.workers[i].received < sent {
                    continue;
                }
            }
            any = true;
            self.remove_unread_blobs(i);
            let running = slot.running.load(Ordering::Acquire);
            let ready = slot.ready.load(Ordering::Acquire) != 0;
            let w = &mut self.workers[i];
            let pid = w.pid;
            let mut requeue = Vec::new();
            for a in w.assigned.drain(..) {
                if running == a.chunk.id + 1 {
                    self.batch.push((
                        a.chunk.job,
                        a.chunk.index,
                        Outcome::Failed(Failure::WorkerDied(pid)),
                    ));
                } else {
                    requeue.push(a.chunk);
                }
            }
            w.sent_chunks = 0;
            w.cursor = 0;
            w.partial.clear();
            // Stale task messages must not reach the replacement.
            let mut scratch = Vec::new();
            while let Ok(true) = w.inbox.try_get(&mut scratch) {}
            w.life = Life::Gone;
            if !requeue.is_empty() {
                let mut s = self.shared.lock();
                match s.broken.clone() {
                    // Nobody will ever run them.
                    Some(m) => {
                        drop(s);
                        for c in requeue {
                            let why = Failure::Broken(m.clone());
                            self.batch.push((c.job, c.index, Outcome::Failed(why)));
                        }
                    }
                    None => {
                        for c in requeue.into_iter().rev() {
                            s.pending.push_front(c);
                        }
                    }
                }
            }
            self.record();
            let (broken, stopping) = {
                let s = self.shared.lock();
                (s.broken.is_some(), self.stopping)
            };
            if !ready && code != 0 {
                self.startup_deaths += 1;
                if self.startup_deaths >= MAX_STARTUP_DEATHS && !broken {
                    self.break_pool(format!(
                        "workers keep dying before they are ready (last exit code {code})"
                    ));
                }
            } else if ready {
                self.startup_deaths = 0;
            }
            let broken = self.shared.lock().broken.is_some();
            if !broken && !stopping {
                if let Err(e) = self.spawn(i) {
                    if self.workers.iter().all(|w| w.life != Life::Alive) {
                        self.break_pool(e.to_string());
                    }
                }
            }
        }
        any
    }

    /// True when no chunk is pending, assigned, or being settled.
    fn all_done(&self) -> bool {
        let s = self.shared.lock();
        s.pending.is_empty()
            && self
                .workers
                .iter()
                .all(|w| w.assigned.is_empty() && !matches!(w.life, Life::Dead(_)))
    }

    /// Sends STOP to every worker and reaps those that exited; true once all are gone.
    fn stop_workers(&mut self) -> bool {
        self.stopping = true;
        let mut buf = Vec::new();
        for w in &mut self.workers {
            if w.life == Life::Alive && !w.stop_sent {
                wire::piece(wire::STOP, 0, &[], 0, w.inbox.max(), &mut buf);
                if let Ok(true) = w.inbox.try_put(&buf) {
                    w.stop_sent = true;
                }
            }
        }
        for w in &mut self.workers {
            if w.life == Life::Alive {
                match w.try_reap() {
                    Ok(Some(_)) | Err(_) => w.life = Life::Gone,
                    Ok(None) => {}
                }
            } else if matches!(w.life, Life::Dead(_)) {
                w.life = Life::Gone;
            }
        }
        let done = self.workers.iter().all(|w| w.life != Life::Alive);
        if !done {
            std::thread::sleep(Duration::from_millis(1));
        }
        done
    }

    /// SIGKILLs and reaps every worker.
    fn kill_all(&mut self) {
        for w in &mut self.workers {
            if w.life == Life::Alive {
                w.kill();
            }
        }
        for w in &mut self.workers {
            if w.life == Life::Alive {
                w.wait_exited();
                let _ = w.try_reap();
            }
            w.life = Life::Gone;
        }
    }

    /// No worker can ever run anything: fail all pending work and refuse new work.
    fn break_pool(&mut self, msg: String) {
        let mut s = self.shared.lock();
        if s.broken.is_none() {
            s.broken = Some(msg.clone());
        }
        let pending: Vec<Chunk> = s.pending.drain(..).collect();
        drop(s);
        for c in pending {
            self.batch.push((
                c.job,
                c.index,
                Outcome::Failed(Failure::Broken(msg.clone())),
            ));
        }
        self.record();
    }

    /// A queue failed (corrupted): stop everything rather than guess.
    fn fatal(&mut self, e: &Error) {
        let msg = format!("a pool queue failed: {e}");
        self.break_pool(msg.clone());
        self.kill_all();
        for w in &mut self.workers {
            for a in w.assigned.drain(..) {
                let why = Failure::Broken(msg.clone());
                self.batch
                    .push((a.chunk.job, a.chunk.index, Outcome::Failed(why)));
            }
            w.sent_chunks = 0;
            w.cursor = 0;
        }
        self.record();
    }

    /// Fails everything unfinished with `why` and marks the pool finished.
    fn finish(&mut self, why: Failure) {
        for i in 0..self.workers.len() {
            if self.workers[i].gen != 0 {
                self.remove_unread_blobs(i);
            }
        }
        for w in &mut self.workers {
            for a in w.assigned.drain(..) {
                self.batch
                    .push((a.chunk.job, a.chunk.index, Outcome::Failed(why.clone())));
            }
        }
        let pending: Vec<Chunk> = self.shared.lock().pending.drain(..).collect();
        for c in pending {
            self.batch
                .push((c.job, c.index, Outcome::Failed(why.clone())));
        }
        self.record();
        let mut s = self.shared.lock();
        s.finished = true;
        s.pids.clear();
        // Jobs whose waiters are gone can go; others keep their outcomes for readers.
        drop(s);
        self.shared.cond.notify_all();
    }
}
