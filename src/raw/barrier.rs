//! `RawBarrier`: a reusable barrier for a fixed number of parties, as Python's
//! `Barrier`, that breaks instead of hanging when a party dies.
//!
//! One futex word holds the whole state (see [`RawBarrier`]'s `word`): every
//! arrival is one CAS, the last arrival of a generation bumps the generation and
//! wakes everyone. A generation ends either *released* (all parties arrived) or
//! *broken* (`abort`, a timeout, a dead party — then `reset` starts the next one);
//! the word keeps the outcome of the last 8 generations, so a waiter that wakes late
//! still learns how *its* generation ended.
//!
//! ## Actions (Python's `action=`)
//! A last party that has an action to run arrives *holding* the generation
//! ([`RawBarrier::arrive_holding`]): its CAS sets the count to `parties` instead of
//! starting the next generation, so nobody is released while it runs the action; it
//! then [`complete`](RawBarrier::complete)s — starting the next generation, or
//! breaking this one if the action failed. Meanwhile it stays recorded (below), so
//! if it dies in the action, the waiters break the barrier; a waiter's timeout
//! during the action breaks it too (and the holder then gets `Broken`). A party
//! that arrives while the count is `parties` (more threads than parties) is told
//! [`BarrierError::Releasing`] and waits for the next generation.
//!
//! ## Dead parties
//! Before it arrives, a party records its [`Identity`] in a free slot of a small
//! table, and clears it when it leaves. Waiters probe the liveness of the recorded
//! parties at their probe interval (a few per probe, round-robin from a shared
//! cursor); a dead one breaks the current generation (and its slot is reclaimed).
//! So a party that dies anywhere between entering `wait` and leaving it breaks the
//! barrier within about one probe interval. From its first probe on a waiter also
//! watches the parties recorded then (`Probes::watch`, refreshed at each probe):
//! with `std`, the death watcher wakes it as soon as one of them exits, and it
//! probes that one at once — a fraction of a millisecond instead of the interval. A party that dies *before* calling
//! `wait` cannot be told from a slow one: use a timeout for that.
//!
//! Orderings: arrivals are AcqRel RMWs on the word and waiters read it with Acquire
//! (`SYNC(barrier)`): everything every party wrote before `wait` is visible to every
//! party after it. Sleeping is the Dekker handshake `SYNC(barrier-sleep)` (SeqCst).

use super::wait::{spin_until, Probes, Sleepers};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{owner_is_dead, Deadline, Identity, Task, WaitResult};
use crate::sys::clock::expired;
use core::time::Duration;

/// The most parties a barrier may have.
#[cfg(not(loom))]
pub const MAX_PARTIES: u32 = 64;
/// The most parties a barrier may have (small under loom, to keep models small).
#[cfg(loom)]
pub const MAX_PARTIES: u32 = 3;
/// Identity slots: room for a full generation waiting plus one that has not left yet.
const SLOTS: usize = 2 * MAX_PARTIES as usize;
/// Liveness checks per probe.
const CHECKS_PER_PROBE: usize = 2;

const BROKEN: u32 = 1;
const COUNT_SHIFT: u32 = 1;
const COUNT_MASK: u32 = 0x7f << COUNT_SHIFT;
const HISTORY_SHIFT: u32 = 8;
const HISTORY_MASK: u32 = 0xff << HISTORY_SHIFT;
const GEN_SHIFT: u32 = 16;
/// How many past outcomes the word remembers.
const HISTORY_LEN: u32 = 8;

#[inline]
fn is_broken(w: u32) -> bool {
    w & BROKEN != 0
}
#[inline]
fn count(w: u32) -> u32 {
    (w & COUNT_MASK) >> COUNT_SHIFT
}
#[inline]
fn generation(w: u32) -> u32 {
    w >> GEN_SHIFT
}
#[inline]
fn history(w: u32) -> u32 {
    (w & HISTORY_MASK) >> HISTORY_SHIFT
}
/// The word that starts the generation after `w`'s, recording how `w`'s ended.
#[inline]
fn next_generation(w: u32, broken: bool) -> u32 {
    let hist = ((history(w) << 1) | u32::from(broken)) & 0xff;
    (generation(w).wrapping_add(1) << GEN_SHIFT) | (hist << HISTORY_SHIFT)
}

/// Why a barrier wait failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierError {
    /// The generation was broken (abort, reset, a timeout, a dead party).
    Broken,
    /// The word holds an arrival count beyond the party count.
    Corrupt,
    /// The last party of the current generation is running its action: wait for the
    /// word to change ([`RawBarrier::wait_for_release`]) and arrive again.
    Releasing,
}

/// A party that arrived and has not left yet (see [`RawBarrier::arrive`]).
#[derive(Debug)]
#[must_use = "an arrival must be finished with RawBarrier::finish"]
pub struct Arrival {
    generation: u32,
    index: u32,
    slot: Option<usize>,
    me: Identity,
    /// True for the last party: it released the generation and is done.
    released: bool,
    /// True for a last party that arrived holding the generation: it must
    /// [`complete`](RawBarrier::complete) it.
    holding: bool,
}

impl Arrival {
    /// The arrival index, `0..parties` (the last to arrive gets `parties - 1`).
    pub fn index(&self) -> u32 {
        self.index
    }
    /// True when this is the last party, holding the generation until it
    /// [`complete`](RawBarrier::complete)s.
    pub fn is_holding(&self) -> bool {
        self.holding
    }
}

/// A barrier's shared state.
#[repr(C)]
#[derive(Debug)]
pub struct RawBarrier {
    /// | bits   | meaning                                                        |
    /// |--------|----------------------------------------------------------------|
    /// | 0      | `BROKEN`: the current generation is broken                     |
    /// | 1..8   | parties arrived in the current generation                      |
    /// | 8..16  | history: bit k set = generation `current − 1 − k` was broken   |
    /// | 16..32 | generation                                                     |
    word: AtomicU32,
    /// Threads that may be asleep on `word` (a hint: too high only costs a syscall).
    sleepers: Sleepers,
    /// Where the next liveness check starts (a hint).
    cursor: AtomicU32,
    /// How many polls recent waits needed (a hint for adaptive spinning).
    spin: AtomicU32,
    /// [`Identity::info`] of each thread inside `wait`; 0 = free.
    slots: [AtomicU64; SLOTS],
}

// SAFETY: repr(C), atomics and integers; all-zero = generation 0, nobody arrived, no
// slot taken; no pointers; align 8.
unsafe impl super::SharedState for RawBarrier {}

impl Default for RawBarrier {
    fn default() -> Self {
        RawBarrier::new()
    }
}

impl RawBarrier {
    /// A fresh barrier (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawBarrier {
        RawBarrier {
            word: AtomicU32::new(0),
            sleepers: Sleepers::new(),
            cursor: AtomicU32::new(0),
            spin: AtomicU32::new(0),
            slots: [const { AtomicU64::new(0) }; SLOTS],
        }
    }
    /// A fresh barrier (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawBarrier {
        RawBarrier {
            word: AtomicU32::new(0),
            sleepers: Sleepers::new(),
            cursor: AtomicU32::new(0),
            spin: AtomicU32::new(0),
            slots: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Waits until `parties` parties (`1..=MAX_PARTIES`) have called `wait`; returns
    /// the caller's arrival index. At `deadline` the caller breaks the barrier and
    /// gets `Err(Broken)`, as does everyone waiting with it.
    pub fn wait(
        &self,
        me: Identity,
        parties: u32,
        deadline: Deadline,
        probe: Duration,
    ) -> Result<u32, BarrierError> {
        self.wait_with(me, parties, deadline, probe, None)
    }

    /// As [`wait`](Self::wait); if the caller is the last party, it first runs
    /// `action` (Python's `action=`) while every other party is still held; an action
    /// that returns `false` (failed) breaks the barrier. A caller that arrives while
    /// another last party runs its action waits for the next generation.
    pub fn wait_with(
        &self,
        me: Identity,
        parties: u32,
        deadline: Deadline,
        probe: Duration,
        action: Option<&mut dyn FnMut() -> bool>,
    ) -> Result<u32, BarrierError> {
        self.wait_unless(me, parties, deadline, probe, action, &|| false)
    }

    /// As [`wait_with`](Self::wait_with), giving up with `Err(Corrupt)` (and without
    /// breaking the barrier) when `stop` returns true at a probe (see
    /// [`finish_unless`](Self::finish_unless)).
    pub fn wait_unless(
        &self,
        me: Identity,
        parties: u32,
        deadline: Deadline,
        probe: Duration,
        mut action: Option<&mut dyn FnMut() -> bool>,
        stop: &dyn Fn() -> bool,
    ) -> Result<u32, BarrierError> {
        loop {
            match self.arrive_holding(me, parties, action.is_some()) {
                Ok(a) if a.holding => {
                    let ok = action.as_mut().map_or(true, |f| f());
                    return self.complete(a, ok);
                }
                Ok(a) => return self.finish_unless(a, deadline, probe, stop),
                Err(BarrierError::Releasing) => {
                    if !self.wait_for_release(me, deadline, probe) {
                        // Our timeout ran out first: it breaks the barrier, as any.
                        let g = generation(self.word.load(Ordering::Relaxed));
                        self.break_generation(g);
                        return Err(BarrierError::Broken);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// First half of [`wait`](Self::wait): registers the caller and counts it in.
    pub fn arrive(&self, me: Identity, parties: u32) -> Result<Arrival, BarrierError> {
        self.arrive_holding(me, parties, false)
    }

    /// As [`arrive`](Self::arrive); with `hold`, the last party does not release the
    /// generation but holds it (see "Actions" in the module docs) until
    /// [`complete`](Self::complete). `Err(Releasing)` while another last party holds
    /// the current generation.
    pub fn arrive_holding(
        &self,
        me: Identity,
        parties: u32,
        hold: bool,
    ) -> Result<Arrival, BarrierError> {
        if parties == 0 || parties > MAX_PARTIES {
            return Err(BarrierError::Corrupt);
        }
        // SYNC(barrier)
        if is_broken(self.word.load(Ordering::Acquire)) {
            return Err(BarrierError::Broken);
        }
        let slot = self.claim_slot(me);
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if is_broken(w) {
                self.free_slot(slot, me);
                return Err(BarrierError::Broken);
            }
            let c = count(w);
            if c >= parties {
                self.free_slot(slot, me);
                return Err(if c == parties {
                    BarrierError::Releasing
                } else {
                    BarrierError::Corrupt
                });
            }
            let last = c + 1 == parties;
            let holding = last && hold;
            let next = if last && !hold {
                next_generation(w, false)
            } else {
                w + (1 << COUNT_SHIFT)
            };
            // SYNC(barrier): Release publishes our writes; Acquire (for the last party)
            // collects everyone's.
            // SYNC(barrier-sleep): SeqCst, before the load of `sleepers` below.
            match self
                .word
                .compare_exchange_weak(w, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    if last && !holding {
                        self.free_slot(slot, me);
                        self.wake_all();
                    }
                    return Ok(Arrival {
                        generation: generation(w),
                        index: c,
                        slot,
                        me,
                        released: last && !holding,
                        holding,
                    });
                }
                Err(x) => w = x,
            }
        }
    }

    /// Ends the generation that the last party `a` held (see
    /// [`arrive_holding`](Self::arrive_holding)): releases every party if `ok`, else
    /// breaks the barrier (its action failed: everyone gets `Broken`, and later waits
    /// too until [`reset`](Self::reset)). `Err(Broken)` also when the generation was
    /// broken while held (abort, reset, a waiter's timeout).
    pub fn complete(&self, a: Arrival, ok: bool) -> Result<u32, BarrierError> {
        if !a.holding {
            return if a.released {
                Ok(a.index)
            } else {
                Err(BarrierError::Corrupt)
            };
        }
        let mut w = self.word.load(Ordering::Relaxed);
        let result = loop {
            if generation(w) != a.generation || is_broken(w) {
                break Err(BarrierError::Broken);
            }
            let next = if ok {
                next_generation(w, false)
            } else {
                w | BROKEN
            };
            // SYNC(barrier): Release publishes the action's writes to every party.
            // SYNC(barrier-sleep): SeqCst, before the load of `sleepers`.
            match self
                .word
                .compare_exchange_weak(w, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) if ok => break Ok(a.index),
                Ok(_) => break Err(BarrierError::Broken),
                Err(x) => w = x,
            }
        };
        self.free_slot(a.slot, a.me);
        self.wake_all();
        result
    }

    /// Sleeps while the word still reads `w`, until `wake` at the latest.
    fn sleep(&self, w: u32, wake: crate::sync::Instant) -> WaitResult {
        // SYNC(barrier-sleep): announce ourselves, then the kernel re-checks the word.
        self.sleepers.sleep(&self.word, w, Some(wake))
    }

    /// After `Err(Releasing)`: waits until the word changes (the holder completed, or
    /// the generation broke), `deadline` passes (`false`), or a recorded party is
    /// found dead (the generation is broken, `true`).
    pub fn wait_for_release(&self, me: Identity, deadline: Deadline, probe: Duration) -> bool {
        let mut probes = Probes::new(probe);
        // SYNC(barrier)
        let w = self.word.load(Ordering::Acquire);
        loop {
            if self.word.load(Ordering::Acquire) != w {
                return true;
            }
            let r = self.sleep(w, probes.next_wake(deadline));
            if probes.due(r, deadline) {
                if self.word.load(Ordering::Acquire) != w {
                    return true;
                }
                if self.watch_and_probe(&mut probes, me) {
                    self.break_generation(generation(w));
                    return true;
                }
                if expired(deadline) {
                    return false;
                }
            }
        }
    }

    /// Second half of [`wait`](Self::wait): waits for the arrival's generation to end.
    pub fn finish(
        &self,
        a: Arrival,
        deadline: Deadline,
        probe: Duration,
    ) -> Result<u32, BarrierError> {
        self.finish_unless(a, deadline, probe, &|| false)
    }

    /// [`finish`](Self::finish), giving up with `Err(Corrupt)` (and without breaking
    /// the barrier) when `stop` returns true at a probe: the caller's segment was
    /// truncated, and its zero-page replacement will never see the round end.
    pub fn finish_unless(
        &self,
        a: Arrival,
        deadline: Deadline,
        probe: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<u32, BarrierError> {
        if a.released {
            return Ok(a.index);
        }
        if a.holding {
            return self.complete(a, true);
        }
        spin_until(&self.spin, || {
            self.outcome(&a, self.word.load(Ordering::Relaxed))
                .is_some()
        });
        let mut probes = Probes::new(probe);
        loop {
            // SYNC(barrier)
            let w = self.word.load(Ordering::Acquire);
            if let Some(result) = self.outcome(&a, w) {
                self.free_slot(a.slot, a.me);
                return result;
            }
            let r = self.sleep(w, probes.next_wake(deadline));
            if probes.due(r, deadline) {
                let w = self.word.load(Ordering::Acquire);
                if self.outcome(&a, w).is_some() {
                    continue;
                }
                if stop() {
                    self.free_slot(a.slot, a.me);
                    return Err(BarrierError::Corrupt);
                }
                if expired(deadline) || self.watch_and_probe(&mut probes, a.me) {
                    self.break_generation(a.generation);
                }
            }
        }
    }

    /// How `a`'s generation ended, judging by `w`; None while it goes on.
    fn outcome(&self, a: &Arrival, w: u32) -> Option<Result<u32, BarrierError>> {
        if generation(w) == a.generation {
            return is_broken(w).then_some(Err(BarrierError::Broken));
        }
        // Generations since ours ended (1 = ours was the last to end).
        let ago = generation(w).wrapping_sub(a.generation) & 0xffff;
        let broken = ago <= HISTORY_LEN && history(w) & (1 << (ago - 1)) != 0;
        Some(if broken {
            Err(BarrierError::Broken)
        } else {
            Ok(a.index)
        })
    }

    /// Breaks generation `g` if it is still current and not broken yet.
    fn break_generation(&self, g: u32) {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if generation(w) != g || is_broken(w) {
                return;
            }
            // SYNC(barrier-sleep): SeqCst, before the load of `sleepers`.
            match self.word.compare_exchange_weak(
                w,
                w | BROKEN,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => w = x,
            }
        }
        self.wake_all();
    }

    fn wake_all(&self) {
        // SYNC(barrier-sleep)
        self.sleepers.wake_all(&self.word);
    }

    /// Breaks the current generation: every waiter, and every later arrival until
    /// [`reset`](Self::reset), gets `Err(Broken)`.
    pub fn abort(&self) {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if is_broken(w) {
                return;
            }
            // SYNC(barrier-sleep): SeqCst, before the load of `sleepers`.
            match self.word.compare_exchange_weak(
                w,
                w | BROKEN,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => w = x,
            }
        }
        self.wake_all();
    }

    /// Starts a fresh generation: current waiters get `Err(Broken)`, later arrivals
    /// count from zero. Also reclaims the slots of dead parties.
    pub fn reset(&self) {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            // SYNC(barrier-sleep): SeqCst, before the load of `sleepers`.
            match self.word.compare_exchange_weak(
                w,
                next_generation(w, true),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => w = x,
            }
        }
        self.wake_all();
        for i in 0..SLOTS {
            let v = self.slots[i].load(Ordering::Relaxed);
            if v != 0 && owner_is_dead(Identity::from_info(v)) {
                let _ = self.slots[i].compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// The party count is not stored here (callers pass it); parties arrived in the
    /// current generation, 0 while broken.
    #[inline]
    pub fn n_waiting(&self) -> u32 {
        let w = self.word.load(Ordering::Relaxed);
        if is_broken(w) {
            0
        } else {
            count(w)
        }
    }

    /// True while the current generation is broken.
    #[inline]
    pub fn is_broken(&self) -> bool {
        is_broken(self.word.load(Ordering::Relaxed))
    }

    /// Records `me` in a free slot, starting at a place derived from its TID. None
    /// if the table is full even after reclaiming dead parties' slots (then the
    /// caller goes on unrecorded: its death would not break the barrier).
    fn claim_slot(&self, me: Identity) -> Option<usize> {
        let info = me.info();
        // Spread threads over the table (loom needs a start that does not depend on
        // the per-run thread ids).
        let start = if cfg!(loom) {
            0
        } else {
            me.tid as usize % SLOTS
        };
        for pass in 0..2 {
            for k in 0..SLOTS {
                let i = (start + k) % SLOTS;
                let v = self.slots[i].load(Ordering::Relaxed);
                let free = v == 0 || (pass == 1 && owner_is_dead(Identity::from_info(v)));
                if free
                    && self.slots[i]
                        .compare_exchange(v, info, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    return Some(i);
                }
            }
        }
        None
    }

    fn free_slot(&self, slot: Option<usize>, me: Identity) {
        if let Some(i) = slot {
            if let Some(s) = self.slots.get(i) {
                let _ = s.compare_exchange(me.info(), 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Checks a few recorded parties (not `me`) round-robin; true (and the slot
    /// reclaimed) if one of them is dead.
    /// At a due probe: watches every recorded party but `me` (see `Probes::watch`),
    /// then probes the one the watch saw exit, if any, and [`found_dead_party`]'s
    /// round-robin share. True if a party is dead (its slot is reclaimed).
    ///
    /// [`found_dead_party`]: Self::found_dead_party
    fn watch_and_probe<'a>(&'a self, probes: &mut Probes<'a>, me: Identity) -> bool {
        let info = me.info();
        let mut tasks = [Task::Thread(0); SLOTS];
        let mut n = 0;
        for slot in &self.slots {
            let v = slot.load(Ordering::Relaxed);
            if v != 0 && v != info {
                tasks[n] = Task::Thread(Identity::from_info(v).tid);
                n += 1;
            }
        }
        let _ = probes.watch(&self.word, &tasks[..n]);
        if let Some(tid) = probes.fired() {
            for slot in &self.slots {
                let v = slot.load(Ordering::Relaxed);
                let party = Identity::from_info(v);
                if v != 0 && v != info && party.tid == tid && owner_is_dead(party) {
                    let _ = slot.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
                    return true;
                }
            }
        }
        self.found_dead_party(me)
    }

    fn found_dead_party(&self, me: Identity) -> bool {
        let info = me.info();
        let start = self.cursor.load(Ordering::Relaxed) as usize % SLOTS;
        let mut checked = 0;
        for k in 0..SLOTS {
            let i = (start + k) % SLOTS;
            let v = self.slots[i].load(Ordering::Relaxed);
            if v == 0 || v == info {
                continue;
            }
            self.cursor
                .store(((i + 1) % SLOTS) as u32, Ordering::Relaxed);
            if owner_is_dead(Identity::from_info(v)) {
                let _ = self.slots[i].compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
                return true;
            }
            checked += 1;
            if checked == CHECKS_PER_PROBE {
                break;
            }
        }
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn word_fields_round_trip() {
        let w = next_generation(0, true);
        assert_eq!(generation(w), 1);
        assert_eq!(history(w), 1);
        assert_eq!(count(w), 0);
        let w = next_generation(w + (5 << COUNT_SHIFT), false);
        assert_eq!(generation(w), 2);
        assert_eq!(history(w), 0b10);
        let top = (0xffff << GEN_SHIFT) | BROKEN;
        assert_eq!(generation(next_generation(top, false)), 0);
    }
}
