//! A pool worker: a forked child that runs chunks from its inbox until told to stop.

use super::blob::{self, Area, BLOB_MIN, HOLD_MIN};
use super::chan::Chan;
use super::de::Reader;
use super::sink::Sink;
use super::slots::{free_tag, Slots};
use super::wire::{self, FrameHeader, Runner, HEADER_LEN};
use crate::process::start;
use crate::sync::atomic::Ordering;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Once};

/// Everything a worker needs, moved into the child by `fork`.
pub(super) struct WorkerCtx {
    pub sender: u32,
    pub inbox: Chan,
    pub results: Chan,
    pub slots: Slots,
    /// The prefix of the pool's blob names (see `blob.rs`).
    pub blobs: String,
    pub index: usize,
    pub initializer: Option<Arc<dyn Fn() + Send + Sync>>,
    pub max_tasks: Option<usize>,
}

/// What a worker that is not a fork of the pool's process (`Spawn`, `ForkServer`)
/// needs to find the pool: the names of its queues and slots.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct WorkerSpec {
    pub sender: u32,
    pub inbox: String,
    pub results: String,
    pub slots: String,
    pub blobs: String,
    pub workers: usize,
    pub index: usize,
    pub max_tasks: Option<usize>,
}

/// Entry of a spawned or fork-server worker: opens the pool's objects and serves.
pub(super) fn spawned_main(spec: WorkerSpec) -> i32 {
    // A fresh process with one thread: the hook can be installed safely here.
    install_panic_hook();
    let opened = (|| -> crate::Result<WorkerCtx> {
        Ok(WorkerCtx {
            sender: spec.sender,
            inbox: Chan::open(&spec.inbox)?,
            results: Chan::open(&spec.results)?,
            slots: Slots::open(&spec.slots, spec.workers)?,
            blobs: spec.blobs,
            index: spec.index,
            initializer: None,
            max_tasks: spec.max_tasks,
        })
    })();
    match opened {
        Ok(ctx) if spec.index < spec.workers => main(ctx),
        Ok(_) => QUEUE_FAILED,
        Err(e) => {
            eprintln!("multiproc: a pool worker could not attach to its pool: {e}");
            QUEUE_FAILED
        }
    }
}

/// Polls of an empty inbox before the worker sleeps.
const INBOX_SPIN: u32 = 200;

/// Exit code of a worker whose queue failed.
const QUEUE_FAILED: i32 = 2;
/// Exit code of a worker whose initializer panicked.
const INIT_FAILED: i32 = 3;

/// Most of the pool's argument areas a worker keeps mapped.
const ARG_AREAS_MAPPED: usize = 8;

/// The worker's ends of its two areas and of the pool's argument areas (see
/// `blob.rs`).
#[derive(Default)]
struct Areas {
    task: Option<Area>,
    /// Messages copied out of the task area.
    taken: u64,
    result: Option<Area>,
    /// Messages written into the result area.
    written: u64,
    /// Generation of the result area the last message sent was in (0: none).
    sent_gen: u64,
    /// The number (`written`) of the last message written into the current result
    /// area (0: none yet).
    last_in_area: u64,
}

/// True once the pool has copied our last message out of the result area.
fn area_taken(ctx: &WorkerCtx, areas: &Areas) -> bool {
    // SYNC(res-taken): pairs with the pool's Release increment once it has copied
    // our last message out: the area is free again.
    ctx.slots.get(ctx.index).res_taken.load(Ordering::Acquire) >= areas.written
}

/// Waits until the pool has copied our last message out of the result area: a few
/// tens of microseconds of polling (the pool thread is usually copying it right
/// now), then short sleeps.
fn wait_area_taken(ctx: &WorkerCtx, areas: &Areas) {
    for _ in 0..AREA_POLLS {
        if area_taken(ctx, areas) {
            return;
        }
        std::thread::yield_now();
    }
    let mut pause = std::time::Duration::from_micros(20);
    while !area_taken(ctx, areas) {
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_micros(200));
    }
}

/// Polls (each after a `yield_now`) of the pool's progress before a worker whose
/// result area is still unread sleeps.
const AREA_POLLS: u32 = 64;

/// Makes sure the result area, free again (see [`wait_area_taken`]), holds `len`
/// bytes (a new generation if it must grow) and returns it, ready to be written.
/// `None`: no area (none could be made, or the current one is still held and `len`
/// is below [`HOLD_MIN`], too short to be worth a new one); the message goes in
/// pieces.
fn result_area<'a>(ctx: &WorkerCtx, areas: &'a mut Areas, len: usize) -> Option<&'a Area> {
    debug_assert!(area_taken(ctx, areas));
    let slot = ctx.slots.get(ctx.index);
    let (blobs, sender) = (&ctx.blobs, ctx.sender);
    // SYNC(res-free): pairs with the Release store of the pool once nothing holds
    // our last message (its outcome was dropped): only then is the area ours again.
    let held = areas.last_in_area != 0
        && slot.res_free.load(Ordering::Acquire) != free_tag(sender, areas.last_in_area);
    if held && len < HOLD_MIN {
        return None;
    }
    let grows = held || areas.result.as_ref().map_or(true, |a| a.seg.len() < len);
    if grows {
        if let Some(old) = &areas.result {
            if old.gen != areas.sent_gen {
                // Outgrown before any message named it: the pool will never open
                // it, so its name is ours to remove.
                blob::remove(&blob::result_area(blobs, sender, old.gen));
            }
        }
        // Announced before it exists, so that the pool removes it if we die.
        let gen = areas.result.as_ref().map_or(1, |a| a.gen + 1);
        slot.res_gen.store(gen, Ordering::Release);
    }
    let name = |g| blob::result_area(blobs, sender, g);
    let area = if held {
        // Still held by an outcome the pool keeps: write a new generation instead
        // (the pool unlinked the name of the old one; its pages go when released).
        areas.last_in_area = 0;
        blob::renew(&mut areas.result, len, name).ok()?
    } else {
        blob::ensure(&mut areas.result, len, name).ok()?
    };
    if grows {
        // The pool unlinks the name once it has opened it (we may exit first).
        area.seg.persist();
    }
    Some(area)
}

/// Sends the message of `len` bytes already written into the result area.
fn send_area(
    ctx: &WorkerCtx,
    areas: &mut Areas,
    kind: u8,
    tag: u64,
    len: usize,
    buf: &mut Vec<u8>,
) -> crate::Result<()> {
    let gen = areas.result.as_ref().map_or(0, |a| a.gen);
    let r = wire::BlobRef {
        tag,
        len: len as u64,
        gen,
        area: 0,
    };
    wire::blob_piece(kind, ctx.sender, r, buf);
    ctx.results.put(buf)?;
    areas.written += 1;
    areas.last_in_area = areas.written;
    areas.sent_gen = gen;
    // SYNC(worker-sent): the message is entirely in the queue before it is counted.
    ctx.slots
        .get(ctx.index)
        .sent
        .fetch_add(1, Ordering::Release);
    Ok(())
}

/// Sends one logical message from private memory (in pieces if it is long, through
/// the result area if it is longer than [`BLOB_MIN`] and one can be had), waiting
/// for room.
fn send(
    ctx: &WorkerCtx,
    areas: &mut Areas,
    kind: u8,
    body: &[u8],
    buf: &mut Vec<u8>,
) -> crate::Result<()> {
    if body.len() > BLOB_MIN {
        // Without an area (e.g. /dev/shm full), in pieces like any other message.
        // A message too short for a new area goes in pieces rather than wait for
        // the pool to open the last one (it would likely still be held).
        if body.len() >= HOLD_MIN {
            wait_area_taken(ctx, areas);
        }
        let area = match area_taken(ctx, areas) {
            true => result_area(ctx, areas, body.len()),
            false => None,
        };
        if let Some(area) = area {
            blob::put(area, body);
            let tag = if kind == wire::RESULT {
                wire::chunk_id(body)
            } else {
                0
            };
            return send_area(ctx, areas, kind, tag, body.len(), buf);
        }
    }
    let mut at = 0;
    loop {
        at = wire::piece(kind, ctx.sender, body, at, ctx.results.max(), buf);
        ctx.results.put(buf)?;
        if at >= body.len() {
            break;
        }
    }
    // SYNC(worker-sent): the message is entirely in the queue before it is counted.
    ctx.slots
        .get(ctx.index)
        .sent
        .fetch_add(1, Ordering::Release);
    Ok(())
}

/// The pool's argument areas this worker has mapped, by id, most recently used last.
type ArgMaps = Vec<(u64, Option<Area>)>;

/// Where a received message is.
#[derive(Clone, Copy)]
enum Place {
    /// In `msg`, whole.
    Private,
    /// The first `len` bytes of the argument area `args[at]`, which the chunk holds
    /// until it is done: it is read from there, in place ([`Reader`]), and only its
    /// first [`TASK_HEAD`] bytes (at most) are copied into `msg`.
    Arg { at: usize, len: usize },
}

/// The fixed part of a TASK body: chunk id, runner, function.
const TASK_HEAD: usize = 24;

/// Receives one logical message into `msg` (or finds it in an argument area);
/// returns its kind and where it is.
fn recv(
    ctx: &WorkerCtx,
    areas: &mut Areas,
    args: &mut ArgMaps,
    piece: &mut Vec<u8>,
    msg: &mut Vec<u8>,
) -> crate::Result<(u8, Place)> {
    msg.clear();
    loop {
        ctx.inbox.get(piece)?;
        let Some(h) = FrameHeader::read(piece) else {
            return Err(crate::Error::corrupt(
                "",
                "a pool task message is too short",
            ));
        };
        if h.flags & wire::BLOB != 0 {
            // A whole message in our task area.
            let Some(r) = wire::blob_ref(&piece[HEADER_LEN..]) else {
                return Err(crate::Error::corrupt(
                    "",
                    "a pool area message is malformed",
                ));
            };
            if r.area != 0 {
                // In one of the pool's argument areas, which the chunk holds: read in
                // place; nobody waits for us to have done so.
                let at = match args.iter().position(|(id, _)| *id == r.area) {
                    Some(at) => at,
                    None => {
                        if args.len() >= ARG_AREAS_MAPPED {
                            args.remove(0);
                        }
                        args.push((r.area, None));
                        args.len() - 1
                    }
                };
                let entry = args.remove(at);
                args.push(entry);
                let (blobs, id) = (&ctx.blobs, r.area);
                let slot = &mut args.last_mut().expect("just pushed").1;
                let area = blob::attach(slot, r.gen, false, |g| blob::arg_area(blobs, id, g))?;
                let Some(mut reader) = usize::try_from(r.len)
                    .ok()
                    .and_then(|len| Reader::in_segment(&area.seg, len))
                else {
                    return Err(crate::Error::corrupt(
                        area.seg.name(),
                        format!(
                            "a pool message says it holds {} bytes, its area only {}",
                            r.len,
                            area.seg.len()
                        ),
                    ));
                };
                let len = reader.remaining();
                let head = reader.remaining().min(TASK_HEAD);
                msg.resize(head, 0);
                reader
                    .read_into(msg)
                    .map_err(|e| crate::Error::corrupt(area.seg.name(), e.to_string()))?;
                let at = args.len() - 1;
                return Ok((h.kind, Place::Arg { at, len }));
            }
            let (blobs, index) = (&ctx.blobs, ctx.index);
            let area = blob::attach(&mut areas.task, r.gen, false, |g| {
                blob::task_area(blobs, index, g)
            })?;
            blob::take(area, r.len, msg)?;
            areas.taken += 1;
            // SYNC(arg-taken): the message is copied out before the pool may reuse
            // the area; pairs with its Acquire load.
            ctx.slots
                .get(ctx.index)
                .arg_taken
                .store(areas.taken, Ordering::Release);
            return Ok((h.kind, Place::Private));
        }
        msg.extend_from_slice(&piece[HEADER_LEN..]);
        if h.flags & wire::MORE == 0 {
            return Ok((h.kind, Place::Private));
        }
    }
}

/// True in a pool worker: the panic hook captures messages instead of printing them.
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// Installs (once per process, from `Pool::new`, never in a forked worker) a panic
/// hook that, in pool workers only, captures the message for the task's outcome
/// instead of printing it (the caller gets it as `TaskFailed`, as Python re-raises
/// a task's exception); elsewhere it calls the hook that was installed before.
///
/// It must be installed *before* the workers are forked: `set_hook` in a forked child
/// could wait forever on the hook's lock if another thread of the parent was
/// panicking at the instant of the fork.
pub(super) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_WORKER.load(std::sync::atomic::Ordering::Relaxed) {
                return previous(info);
            }
            let payload = info.payload();
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_owned());
            let msg = match info.location() {
                Some(l) => format!(
                    "panicked at {}:{}:{}: {what}",
                    l.file(),
                    l.line(),
                    l.column()
                ),
                None => format!("panicked: {what}"),
            };
            wire::LAST_PANIC.with(|p| *p.borrow_mut() = Some(msg));
        }));
    });
}

/// The worker's life; returns its exit code.
pub(super) fn main(mut ctx: WorkerCtx) -> i32 {
    IN_WORKER.store(true, std::sync::atomic::Ordering::Relaxed);
    // Spin only briefly on an empty inbox: the pool thread that fills it needs the
    // CPU more than we do (there are usually as many workers as CPUs).
    ctx.inbox = ctx.inbox.with_spin(Some(INBOX_SPIN));
    let slot = ctx.slots.get(ctx.index);
    let mut buf = Vec::new();
    let mut areas = Areas::default();
    let mut args = ArgMaps::new();
    if let Some(init) = &ctx.initializer {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init())).is_err() {
            let msg = wire::LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "the initializer panicked".to_owned());
            let _ = send(
                &ctx,
                &mut areas,
                wire::INIT_FAILED,
                msg.as_bytes(),
                &mut buf,
            );
            return INIT_FAILED;
        }
    }
    slot.ready.store(1, Ordering::Release);
    let mut piece = Vec::new();
    let mut msg = Vec::new();
    let mut out = Vec::new();
    let mut done = 0usize;
    loop {
        let (kind, place) = match recv(&ctx, &mut areas, &mut args, &mut piece, &mut msg) {
            Ok(k) => k,
            Err(_) => return QUEUE_FAILED,
        };
        let started = std::time::Instant::now();
        if kind == wire::STOP {
            return 0;
        }
        if kind != wire::TASK || msg.len() < TASK_HEAD {
            return QUEUE_FAILED;
        }
        // The items: after the head, in `msg` or still in the argument area.
        let input = match place {
            Place::Private => Some(Reader::new(&msg[TASK_HEAD..])),
            Place::Arg { at, len } => args[at].1.as_ref().and_then(|a| {
                let mut r = Reader::in_segment(&a.seg, len)?;
                r.split(TASK_HEAD)?;
                Some(r)
            }),
        };
        let Some(input) = input else {
            return QUEUE_FAILED;
        };
        let word =
            |i: usize| u64::from_le_bytes(msg[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let (id, runner, f) = (word(0), word(1), word(2));
        // SYNC(worker-running): the pool reads this after reaping us (fork/wait order it).
        slot.running.store(id.wrapping_add(1), Ordering::Release);
        // The RESULT body; a large one is written straight into the result area if
        // the pool has copied our last result out of it, else (rather than wait
        // while a task could run) it stays private and is copied over when sent.
        let mut spill = |len: usize| {
            if !area_taken(&ctx, &areas) {
                return None;
            }
            let area = result_area(&ctx, &mut areas, len)?;
            Some((area.seg.as_ptr(), area.seg.len()))
        };
        let mut sink = Sink::new(&mut out, Some(&mut spill));
        sink.extend(&id.to_le_bytes());
        sink.extend(&[0; 8]); // the service time, filled in below
        let (runner, f) = (start::from_offset(runner), start::from_offset(f));
        // SAFETY: the pool writes `runner` together with a function of exactly the
        // type that runner was instantiated for, as offsets in this very executable
        // (we are a fork of the pool's process, a fork of its fork server, or a
        // spawned copy whose executable was checked to be the same file). The inbox
        // is the pool's own: an unlinked queue for forked workers; for the others a
        // queue of mode 0600, reachable only by processes of this user.
        unsafe {
            let runner = std::mem::transmute::<usize, Runner>(runner);
            runner(f, input, &mut sink);
        }
        // How long the chunk took here: the pool sizes our window from it.
        let service = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        sink.patch(8, &service.to_le_bytes());
        let (len, spilled) = (sink.len(), sink.spilled());
        let sent = if spilled {
            send_area(&ctx, &mut areas, wire::RESULT, id, len, &mut buf)
        } else {
            send(&ctx, &mut areas, wire::RESULT, &out, &mut buf)
        };
        if sent.is_err() {
            return QUEUE_FAILED;
        }
        slot.running.store(0, Ordering::Release);
        done += 1;
        if ctx.max_tasks.is_some_and(|m| done >= m) {
            return 0;
        }
    }
}
