//! `inspect`: an object's header and live state, for the `multiproc` tool and for
//! debugging. Read-only snapshots through atomics; a corrupt segment is reported, not
//! a crash.

use super::lifecycle::{info, ObjectInfo};
use super::object::trailing_offset;
use super::{HeaderImage, ObjectKind, Options, Segment, TypeInfo};
use crate::raw::heap::Heap;
use crate::raw::queue::{LeaseState, SLOT_HEADER_WORDS};
use crate::raw::queue_join::RawJoinableQueue;
use crate::raw::spsc::Geometry;
use crate::raw::spsc_role::{RawPipe, RawRole, RawSpscQueue, RoleStatus};
use crate::raw::{
    RawArray, RawBarrier, RawCondition, RawEvent, RawLock, RawQueue, RawRLock, RawSemaphore,
    RawValue, Ring, SharedState,
};
use crate::sync::atomic::AtomicU64;
use crate::sys::ident;
use crate::Result;
use core::mem::size_of;
use std::time::Duration;

/// Longest run of an object's bytes shown in hex.
const MAX_HEX: usize = 256;

/// What [`inspect`] found: the [`ObjectInfo`], the header's fields, whether the object
/// opens, and its live state, as `(field, value)` pairs with stable field names.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// What [`list`](super::list) says about it.
    pub info: ObjectInfo,
    /// The header's fields (`magic`, `version`, `kind`, `state`, ...), empty when the
    /// file is too short to hold one.
    pub header: Vec<(&'static str, String)>,
    /// `None` if the object opens as its kind; else why not (the error `open` gives).
    pub invalid: Option<String>,
    /// The live state, per kind (`holder`, `value`, `len`, ...); empty when invalid.
    pub state: Vec<(&'static str, String)>,
}

/// The header and live state of the object `name`. `Err(NotFound)` if it does not
/// exist; a corrupt object is an `Ok` whose [`invalid`](Inspection::invalid) says why.
/// Inspecting attaches to the object for the moment it takes, like any `open`.
pub fn inspect(name: &str) -> Result<Inspection> {
    let info = info(name)?;
    let header = info.header.map(header_fields).unwrap_or_default();
    let mut out = Inspection {
        info,
        header,
        invalid: None,
        state: Vec::new(),
    };
    let Some(kind) = out.info.kind else {
        out.invalid = Some(match &out.info.status {
            super::Status::Corrupt { detail } | super::Status::Unreadable { detail } => {
                detail.clone()
            }
            _ => "not a multiproc object".to_owned(),
        });
        return Ok(out);
    };
    let opts = Options::new().init_timeout(Duration::from_millis(100));
    match Segment::open_raw(name, &opts, kind, TypeInfo::NONE, |_| Ok(())) {
        Ok(seg) => match live_state(kind, &seg) {
            Ok(state) => out.state = state,
            Err(e) => out.invalid = Some(e),
        },
        Err(e) => out.invalid = Some(e.to_string()),
    }
    Ok(out)
}

fn header_fields(h: HeaderImage) -> Vec<(&'static str, String)> {
    vec![
        ("magic", format!("{:#018x}", h.magic)),
        ("version", h.version.to_string()),
        ("kind", h.kind.to_string()),
        ("state", h.state.to_string()),
        ("creator_tid", h.creator_tid.to_string()),
        ("creator_start", h.creator_start.to_string()),
        ("creator_pid", h.creator_pid.to_string()),
        ("creator_pstart", h.creator_pstart.to_string()),
        ("created_ns", h.created_ns.to_string()),
        ("total_len", h.total_len.to_string()),
        ("data_offset", h.data_offset.to_string()),
        ("data_len", h.data_len.to_string()),
        ("type_size", h.type_size.to_string()),
        ("type_align", h.type_align.to_string()),
        ("type_hash", format!("{:#018x}", h.type_hash)),
        ("type_name", h.type_name().to_owned()),
        ("params", format!("{:?}", h.params)),
        ("flags", format!("{:#x}", h.flags)),
    ]
}

/// The raw struct `R` at the start of the data region, if the region holds one.
fn raw<R: SharedState>(seg: &Segment) -> std::result::Result<&R, String> {
    if seg.len() < size_of::<R>() {
        return Err(format!(
            "{} data bytes cannot hold its state ({} bytes)",
            seg.len(),
            size_of::<R>()
        ));
    }
    // SAFETY: the data region is LINE-aligned and holds size_of::<R>() bytes (checked);
    // R is SharedState (atomics, valid for any bytes), so a shared reference is sound
    // while other processes write it; it lives as long as `seg`.
    Ok(unsafe { &*seg.as_ptr().cast::<R>() })
}

/// `len` bytes of the data region from `offset`, if in bounds, copied with volatile
/// reads (other processes may be writing them).
fn bytes_at(seg: &Segment, offset: usize, len: usize) -> std::result::Result<Vec<u8>, String> {
    match offset.checked_add(len) {
        Some(end) if end <= seg.len() => {}
        _ => {
            return Err(format!(
                "{len} bytes at {offset} lie beyond its {} data bytes",
                seg.len()
            ))
        }
    }
    Ok((0..len)
        // SAFETY: offset + len <= seg.len(), checked above; u8 reads need no alignment.
        .map(|i| unsafe { seg.as_ptr().add(offset + i).read_volatile() })
        .collect())
}

/// The words of the trailing region after `R`, if it holds `n` of them.
fn words<R>(seg: &Segment, n: usize) -> std::result::Result<&[AtomicU64], String> {
    let off = trailing_offset::<R>();
    match n.checked_mul(8).and_then(|b| b.checked_add(off)) {
        Some(end) if end <= seg.len() => {}
        _ => {
            return Err(format!(
                "{n} slot words lie beyond its {} data bytes",
                seg.len()
            ))
        }
    }
    // SAFETY: in bounds (checked); the trailing region is LINE-aligned, AtomicU64
    // tolerates foreign writes, and the slice lives as long as `seg`.
    Ok(unsafe { core::slice::from_raw_parts(seg.as_ptr().add(off).cast::<AtomicU64>(), n) })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `"tid (alive)"` / `"tid (dead)"`, or `"-"` when nobody.
fn thread(tid: Option<u32>) -> String {
    match tid {
        None => "-".to_owned(),
        Some(t) => {
            let dead = ident::is_dead(ident::Identity { tid: t, start: 0 });
            format!("{t} ({})", if dead { "dead" } else { "alive" })
        }
    }
}

fn role(r: &RawRole) -> String {
    match r.status() {
        RoleStatus::Free => "free".to_owned(),
        RoleStatus::Held { holder, .. } => format!("pid {} (alive)", holder.tid),
        RoleStatus::Dead(holder) => format!("pid {} (dead)", holder.tid),
        RoleStatus::Closed => "closed".to_owned(),
    }
}

type Fields = Vec<(&'static str, String)>;

/// Words of a queue's slot region, from its parameters `[capacity, payload words, ..]`.
fn ring_words(p: [u64; 4]) -> std::result::Result<usize, String> {
    usize::try_from(p[0])
        .ok()
        .zip(usize::try_from(p[1]).ok())
        .and_then(|(cap, w)| cap.checked_mul(SLOT_HEADER_WORDS + w))
        .ok_or_else(|| format!("impossible geometry {p:?}"))
}

/// A lease, for `inspect` (see `raw::queue`, "Leases").
fn lease(l: LeaseState) -> String {
    let who = |id: ident::Identity| {
        let dead = ident::is_dead(id);
        format!("tid {} ({})", id.tid, if dead { "dead" } else { "alive" })
    };
    match l {
        LeaseState::Free => "free".into(),
        LeaseState::Held(id) => format!("held by {}", who(id)),
        LeaseState::Revoking(id) => format!("being revoked from {}", who(id)),
        LeaseState::Shared => "shared (claims)".into(),
    }
}

fn ring_state(
    s: &mut Fields,
    q: &RawQueue,
    words: &[AtomicU64],
    p: [u64; 4],
) -> std::result::Result<(), String> {
    let ring = Ring::new(q, words, p[0] as usize, p[1] as usize)
        .ok_or_else(|| format!("impossible geometry {p:?}"))?;
    let (head, tail) = ring.indices();
    let rec = ring.recovery_stats();
    let (getters, putters) = ring.sleepers();
    s.push(("len", ring.len().to_string()));
    s.push(("capacity", ring.capacity().to_string()));
    s.push(("closed", ring.is_closed().to_string()));
    s.push(("head", head.to_string()));
    s.push(("tail", tail.to_string()));
    s.push(("skipped_dead_puts", rec.skipped.to_string()));
    s.push(("redelivered_dead_gets", rec.redelivered.to_string()));
    s.push(("leases_passed_from_dead", rec.leases_passed.to_string()));
    let (put_lease, get_lease) = ring.leases();
    s.push(("put_lease", lease(put_lease)));
    s.push(("get_lease", lease(get_lease)));
    s.push(("getters_sleeping", getters.to_string()));
    s.push(("putters_sleeping", putters.to_string()));
    let mut claims = Vec::new();
    ring.for_each_claim(|slot, writing, owner| {
        let dead = ident::is_dead(owner);
        claims.push(format!(
            "slot {slot} {} by tid {} ({})",
            if writing { "put" } else { "get" },
            owner.tid,
            if dead { "dead" } else { "alive" }
        ));
    });
    s.push(("claimed_slots", claims.join(", ")));
    Ok(())
}

fn live_state(kind: ObjectKind, seg: &Segment) -> std::result::Result<Fields, String> {
    let p = seg.header().params;
    let mut s: Fields = Vec::new();
    match kind {
        ObjectKind::Lock => {
            let l: &RawLock = raw(seg)?;
            s.push(("locked", l.is_locked().to_string()));
            s.push(("holder", thread(l.holder())));
            s.push(("sleepers", l.may_have_sleepers().to_string()));
        }
        ObjectKind::RLock => {
            let l: &RawRLock = raw(seg)?;
            s.push(("locked", l.is_locked().to_string()));
            s.push(("holder", thread(l.holder())));
            s.push(("sleepers", l.may_have_sleepers().to_string()));
        }
        ObjectKind::Semaphore | ObjectKind::BoundedSemaphore => {
            let m: &RawSemaphore = raw(seg)?;
            s.push(("value", m.value().to_string()));
            s.push(("waiters", m.sleepers().to_string()));
            if kind == ObjectKind::BoundedSemaphore {
                s.push(("bound", p[0].to_string()));
            }
        }
        ObjectKind::Event => {
            let e: &RawEvent = raw(seg)?;
            s.push(("set", e.is_set().to_string()));
            s.push(("waiters", e.sleepers().to_string()));
        }
        ObjectKind::Condition => {
            let c: &RawCondition = raw(seg)?;
            s.push(("locked", c.lock().is_locked().to_string()));
            s.push(("holder", thread(c.lock().holder())));
            s.push(("waiters", c.waiting().to_string()));
        }
        ObjectKind::Barrier => {
            let b: &RawBarrier = raw(seg)?;
            s.push(("parties", p[0].to_string()));
            s.push(("waiting", b.n_waiting().to_string()));
            s.push(("broken", b.is_broken().to_string()));
        }
        ObjectKind::Value | ObjectKind::Array => {
            let (len, size) = (p[0] as usize, p[1] as usize);
            let lock = if kind == ObjectKind::Value {
                let v: &RawValue = raw(seg)?;
                v.raw_lock().holder()
            } else {
                let a: &RawArray = raw(seg)?;
                a.raw_lock().holder()
            };
            let off = if kind == ObjectKind::Value {
                trailing_offset::<RawValue>()
            } else {
                trailing_offset::<RawArray>()
            };
            let total = len.checked_mul(size).ok_or("impossible length")?;
            let b = bytes_at(seg, off, total.min(MAX_HEX))?;
            s.push(("len", len.to_string()));
            s.push(("element_size", size.to_string()));
            s.push(("lock_holder", thread(lock)));
            let more = if total > MAX_HEX { "…" } else { "" };
            s.push(("bytes", format!("{}{more}", hex(&b))));
        }
        ObjectKind::Queue | ObjectKind::ByteQueue => {
            let q: &RawQueue = raw(seg)?;
            ring_state(&mut s, q, words::<RawQueue>(seg, ring_words(p)?)?, p)?;
            if kind == ObjectKind::ByteQueue {
                s.push(("slot_bytes", (p[1] * 8).to_string()));
            }
        }
        ObjectKind::JoinableQueue | ObjectKind::JoinableByteQueue => {
            let q: &RawJoinableQueue = raw(seg)?;
            ring_state(
                &mut s,
                &q.queue,
                words::<RawJoinableQueue>(seg, ring_words(p)?)?,
                p,
            )?;
            if kind == ObjectKind::JoinableByteQueue {
                s.push(("slot_bytes", (p[1] * 8).to_string()));
            }
            s.push(("tasks_held", q.join.held().to_string()));
            s.push(("tasks_abandoned", q.join.abandoned().to_string()));
        }
        ObjectKind::SpscQueue => {
            let q: &RawSpscQueue = raw(seg)?;
            let geo = Geometry::new(p[0], p[1] as usize).ok_or("impossible geometry")?;
            s.push(("len", q.ring.len(geo).to_string()));
            s.push(("capacity", geo.capacity().to_string()));
            s.push(("closed", q.ring.closed().to_string()));
            s.push(("producer", role(&q.producer)));
            s.push(("consumer", role(&q.consumer)));
        }
        ObjectKind::Pipe => {
            let pipe: &RawPipe = raw(seg)?;
            let geo = Geometry::new(p[0], 1).ok_or("impossible geometry")?;
            s.push(("capacity_bytes", geo.capacity().to_string()));
            s.push(("duplex", (p[1] != 0).to_string()));
            s.push(("bytes_a_to_b", pipe.rings[0].len(geo).to_string()));
            if p[1] != 0 {
                s.push(("bytes_b_to_a", pipe.rings[1].len(geo).to_string()));
            }
            s.push(("end_a", role(&pipe.ends[0])));
            s.push(("end_b", role(&pipe.ends[1])));
        }
        ObjectKind::Segment | ObjectKind::Pool => {
            let b = bytes_at(seg, 0, seg.len().min(64))?;
            s.push(("len", seg.len().to_string()));
            s.push(("first_bytes", hex(&b)));
        }
        ObjectKind::Dict | ObjectKind::List => {
            // SAFETY: the data region is 128-aligned (after the 256-byte header of a
            // page-aligned mapping) and `seg.len()` bytes long; only header words are
            // read here, and the view lives no longer than `seg`.
            let heap = unsafe { Heap::new(seg.as_ptr(), seg.len()) }
                .ok_or("its data region cannot hold a heap header")?;
            s.push(("len", heap.len_word().to_string()));
            s.push(("bytes_used", heap.top_word().to_string()));
            s.push(("bytes_committed", heap.committed().to_string()));
            s.push(("byte_limit", heap.capacity().to_string()));
        }
        // Kinds added later show their parameters until they get a decoder here.
        #[allow(unreachable_patterns)]
        _ => {
            s.push(("params", format!("{p:?}")));
            s.push(("len", seg.len().to_string()));
        }
    }
    Ok(s)
}
