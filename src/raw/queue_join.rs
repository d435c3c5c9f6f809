//! `RawJoin`: the unfinished-task count of a joinable queue, robust to consumers
//! that die.
//!
//! Python keeps one counter: `put` raises it, `task_done` lowers it, `join` waits for
//! zero — so a consumer that dies between `get` and `task_done` makes `join` hang
//! forever. Here the count is *derived*:
//!
//! ```text
//! unfinished = messages in the ring (tail - head)
//!            + messages stranded by consumers that died mid-get (re-delivered later)
//!            + Σ held, over the per-thread entries of live consumers
//! ```
//!
//! Each consumer thread owns an entry (its [`Identity`] plus a `held` count). A get
//! raises `held` just before its claiming CAS (and lowers it again if the claim
//! fails); `task_done` lowers it. When a consumer dies, its entry is *folded*: its
//! held tasks are counted as abandoned (they were taken and will never be marked
//! done) and stop counting as unfinished, so `join` does not wait for the dead.
//! The message it was taking at the moment of death, if any, is re-delivered and
//! counts again through the ring.
//!
//! **Handed over** (Python's global count): a consumer that lets go of its tasks
//! without finishing them — its thread drops its queue handle, or calls
//! [`RawJoin::hand_over`] — marks its entry [`HANDED`] instead of its identity. A
//! handed entry belongs to nobody: it is never folded (its tasks stay unfinished and
//! `join` waits for them), and any thread's `task_done` lowers it; whoever lowers it
//! to zero frees it. So Python's pattern — one process gets, another calls
//! `task_done`, the getter exits normally first — works; only a consumer that *dies*
//! holding tasks (never let go of them) has them abandoned.
//!
//! Reading order makes the sum exact for a joiner: the ring first, then stranded
//! slots, then the entries — every move of a task (ring → held, stranded → held)
//! raises its destination before it leaves its source (`SYNC(held)`: the Release
//! claim CAS / head CAS after the Relaxed `held` increment, paired with the
//! joiner's Acquire loads), so a task is never missed, only briefly counted twice.

use super::queue::{QueueError, Ring, Waiters};
use super::CachePadded;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{owner_is_dead, Deadline, Identity, WaitResult};
use crate::sys::clock::{expired, probe_deadline};
use core::time::Duration;

/// Consumer threads holding unfinished tasks at once that are tracked individually;
/// more share one untracked counter.
pub const HELD_ENTRIES: usize = 128;

/// Owner record of an entry whose tasks were handed over: TID 0, so no thread's
/// [`Identity::info`] equals it; never judged dead.
pub const HANDED: u64 = !(crate::sys::ident::MAX_TID as u64);

/// One consumer thread's tasks: taken by `get`, not yet `task_done`.
#[repr(C)]
#[derive(Debug)]
pub struct HeldEntry {
    /// [`Identity::info`] of the owning thread; 0 = free; [`HANDED`] = handed over.
    owner: AtomicU64,
    /// Tasks the owner got (or is claiming) and has not marked done.
    held: AtomicU64,
}

#[repr(C)]
#[derive(Debug)]
struct JoinCounts {
    /// Tasks held by consumers that died: counted as finished.
    abandoned: AtomicU64,
    /// Tasks held by threads beyond the `HELD_ENTRIES` tracked ones (not recovered
    /// if their holder dies).
    overflow: AtomicU64,
}

/// The join state of a joinable queue: joiners' futex, counters and the
/// per-consumer entries (one 128-byte line each). All-zero bytes: nothing held.
#[repr(C)]
#[derive(Debug)]
pub struct RawJoin {
    joiners: CachePadded<Waiters>,
    counts: CachePadded<JoinCounts>,
    entries: [CachePadded<HeldEntry>; HELD_ENTRIES],
}

// SAFETY: repr(C) atomics only (through repr(C) wrappers), all-zero = nothing held,
// no pointers, align 128.
unsafe impl super::SharedState for RawJoin {}

impl Default for RawJoin {
    fn default() -> Self {
        RawJoin::new()
    }
}

/// `task_done` was called more often than tasks were got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyTaskDone;

/// Where a consumer's held count lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Entry `i` of the table.
    Entry(usize),
    /// The shared overflow counter (all entries taken by live threads).
    Overflow,
}

fn entry_new() -> CachePadded<HeldEntry> {
    CachePadded(HeldEntry {
        owner: AtomicU64::new(0),
        held: AtomicU64::new(0),
    })
}

impl RawJoin {
    /// Nothing held (the same as all-zero bytes).
    pub fn new() -> RawJoin {
        RawJoin {
            joiners: CachePadded(Waiters::new()),
            counts: CachePadded(JoinCounts {
                abandoned: AtomicU64::new(0),
                overflow: AtomicU64::new(0),
            }),
            entries: core::array::from_fn(|_| entry_new()),
        }
    }

    /// `me`'s entry, claiming a free one (or one of a dead thread) if it has none.
    /// `hint`: where it was last time.
    pub fn holder(&self, me: Identity, hint: usize) -> Holder {
        let info = me.info();
        if let Some(e) = self.entries.get(hint) {
            if e.owner.load(Ordering::Relaxed) == info {
                return Holder::Entry(hint);
            }
        }
        if let Some(i) = self.find(info) {
            return Holder::Entry(i);
        }
        for round in 0..2 {
            let home = me.tid as usize % HELD_ENTRIES;
            for k in 0..HELD_ENTRIES {
                let i = (home + k) % HELD_ENTRIES;
                let e = &self.entries[i];
                if e.owner.load(Ordering::Relaxed) == 0
                    && e.owner
                        .compare_exchange(0, info, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    return Holder::Entry(i);
                }
            }
            if round == 0 && self.fold_dead() == 0 {
                break;
            }
        }
        Holder::Overflow
    }

    fn find(&self, info: u64) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.owner.load(Ordering::Relaxed) == info)
    }

    fn held_word(&self, h: Holder) -> &AtomicU64 {
        match h {
            Holder::Entry(i) => &self.entries[i % HELD_ENTRIES].held,
            Holder::Overflow => &self.counts.overflow,
        }
    }

    /// A get is about to claim a task (before its claiming CAS).
    #[inline]
    pub fn raise(&self, h: Holder) {
        // SYNC(held): Relaxed; published by the Release claim that follows.
        self.held_word(h).fetch_add(1, Ordering::Relaxed);
    }

    /// The claim that followed [`raise`](Self::raise) failed, or the get gave up.
    #[inline]
    pub fn lower(&self, h: Holder) {
        let _ = self
            .held_word(h)
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        self.wake_joiners();
    }

    /// Marks one task done: `me`'s own first, else any other holder's (Python lets
    /// any thread call `task_done`). `Err` if nothing is held anywhere: called
    /// more often than tasks were got.
    ///
    /// When `me`'s own count drops to zero, its entry is freed: entries are held only
    /// by threads with unfinished tasks, so [`HELD_ENTRIES`] bounds the threads that
    /// hold tasks *at once*, not the threads that ever consumed. Only the owner raises
    /// its entry's count (others may only lower it), so a count of zero stays zero
    /// while the owner frees the entry.
    pub fn task_done(&self, me: Identity, hint: usize) -> Result<(), TooManyTaskDone> {
        let dec = |w: &AtomicU64| {
            w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        };
        let info = me.info();
        let mine = match self.entries.get(hint) {
            Some(e) if e.owner.load(Ordering::Relaxed) == info => Some(hint),
            _ => self.find(info),
        };
        let own = mine.and_then(|i| dec(&self.entries[i].held).ok().map(|was| (i, was)));
        if let Some((i, 1)) = own {
            let _ = self.entries[i].owner.compare_exchange(
                info,
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        let done = own.is_some()
            || self.entries.iter().any(|e| match dec(&e.held) {
                Ok(was) => {
                    if was == 1 {
                        // A handed-over entry is freed by whoever finishes its last task
                        // (nobody raises it any more, so zero stays zero). SYNC(handed):
                        // our decrement read the hand-over's RMW or a later value.
                        let _ = e.owner.compare_exchange(
                            HANDED,
                            0,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    true
                }
                Err(_) => false,
            })
            || dec(&self.counts.overflow).is_ok();
        if !done {
            return Err(TooManyTaskDone);
        }
        self.wake_joiners();
        Ok(())
    }

    /// `me` lets go of the tasks it holds without finishing them: they stay
    /// unfinished (`join` waits for them) for any thread or process to `task_done`,
    /// and are no longer abandoned if `me` ends. Frees `me`'s entry if it holds
    /// none. Returns how many tasks were handed over.
    pub fn hand_over(&self, me: Identity, hint: usize) -> u64 {
        let info = me.info();
        let i = match self.entries.get(hint) {
            Some(e) if e.owner.load(Ordering::Relaxed) == info => hint,
            _ => match self.find(info) {
                Some(i) => i,
                None => return 0,
            },
        };
        let e = &self.entries[i];
        let held = e.held.load(Ordering::SeqCst);
        let to = if held == 0 { 0 } else { HANDED };
        if e.owner
            .compare_exchange(info, to, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return 0;
        }
        // Others' task_done may have finished the last of them meanwhile (they do not
        // free an entry they do not own): free it if so. An RMW, not a load: it reads
        // the latest count, and a task_done that lowers it after this reads our
        // Release here and so sees HANDED and frees the entry itself (SYNC(handed)).
        if to == HANDED && e.held.fetch_add(0, Ordering::AcqRel) == 0 {
            let _ = e
                .owner
                .compare_exchange(HANDED, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        held
    }

    #[inline]
    fn wake_joiners(&self) {
        // SYNC(sleep): the SeqCst decrement before this, then a SeqCst load.
        self.joiners.wake();
    }

    /// Folds the entries of dead consumers: their held tasks become abandoned and
    /// the entries free. Reads `/proc` once per entry holding tasks. Returns how many
    /// entries were freed.
    pub fn fold_dead(&self) -> usize {
        let mut freed = 0;
        for e in self.entries.iter() {
            let info = e.owner.load(Ordering::Acquire);
            if info == 0 || info == HANDED || !owner_is_dead(Identity::from_info(info)) {
                continue;
            }
            if e.owner.load(Ordering::Acquire) != info {
                continue;
            }
            let h = e.held.swap(0, Ordering::AcqRel);
            if h > 0 {
                self.counts.abandoned.fetch_add(h, Ordering::Relaxed);
            }
            if e.owner
                .compare_exchange(info, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                freed += 1;
            }
        }
        if freed > 0 {
            self.wake_joiners();
        }
        freed
    }

    /// Σ held over the entries and the overflow counter (a snapshot).
    pub fn held(&self) -> u64 {
        let mut n = self.counts.overflow.load(Ordering::Acquire);
        for e in self.entries.iter() {
            // SYNC(held): Acquire.
            n = n.saturating_add(e.held.load(Ordering::Acquire));
        }
        n
    }

    /// Tasks in handed-over entries (a snapshot): unfinished, owned by nobody.
    pub fn handed(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.owner.load(Ordering::Relaxed) == HANDED)
            .fold(0u64, |n, e| {
                n.saturating_add(e.held.load(Ordering::Relaxed))
            })
    }

    /// Tasks abandoned by consumers that died (counted as finished).
    pub fn abandoned(&self) -> u64 {
        self.counts.abandoned.load(Ordering::Relaxed)
    }

    /// Unfinished tasks of the queue `ring` (see the module docs), a snapshot.
    /// `probe`: first recover what dead peers left behind (skip tombstones at the
    /// head, fold dead consumers) — reads `/proc`.
    pub fn unfinished(&self, ring: &Ring<'_>, probe: bool) -> u64 {
        if probe {
            self.recover(ring);
        }
        // Ring, then stranded slots, then entries: see the module docs.
        let queued = ring.len() as u64;
        let stranded = ring.count_stranded() as u64;
        queued.saturating_add(stranded).saturating_add(self.held())
    }

    fn recover(&self, ring: &Ring<'_>) {
        for _ in 0..ring.slots() {
            if !matches!(ring.skip_dead_head(), Ok(true)) {
                break;
            }
        }
        self.fold_dead();
    }

    /// `unfinished(ring, probe) == 0`, cheaper: stops at the first part that is not
    /// zero.
    fn finished(&self, ring: &Ring<'_>, probe: bool) -> bool {
        if probe {
            self.recover(ring);
        }
        ring.is_empty() && ring.count_stranded() == 0 && self.held() == 0
    }

    /// Waits until no task is unfinished (`Ok(true)`) or `deadline` passes
    /// (`Ok(false)`). Dead peers are recovered every `probe`.
    pub fn join(
        &self,
        ring: &Ring<'_>,
        deadline: Deadline,
        probe: Duration,
    ) -> Result<bool, QueueError> {
        let mut probing = false;
        loop {
            if self.finished(ring, probing) {
                return Ok(true);
            }
            let seq = self.joiners.announce();
            if self.finished(ring, false) {
                return Ok(true);
            }
            if expired(deadline) {
                return Ok(false);
            }
            let until = probe_deadline(deadline, probe);
            probing = self.joiners.sleep(seq, Some(until)) == WaitResult::TimedOut;
        }
    }
}

/// The shared state of a joinable queue: its ring header and its join state.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawJoinableQueue {
    /// The ring header (slots live in the region after this struct).
    pub queue: super::RawQueue,
    /// Unfinished-task accounting.
    pub join: RawJoin,
}

// SAFETY: repr(C) of two SharedState structs.
unsafe impl super::SharedState for RawJoinableQueue {}
