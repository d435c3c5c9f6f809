//! Blocking in one place: the sleep/wake handshakes every primitive uses.
//!
//! A waiter that finds its predicate false must sleep on a futex word without
//! missing the wake-up of a peer that makes the predicate true meanwhile. Every
//! handshake in the crate is one of these (each pair of ends carries the same
//! `SYNC(label)`):
//!
//! | object | futex word | who may sleep (the hint a waker reads) | label | why no wake-up is lost |
//! |---|---|---|---|---|
//! | `RawLock` | `word` | `WAITERS` bit of the word itself | `lock` | the bit is set by CAS on the very word the waiter sleeps on, so the releaser's CAS to unlocked sees it, and a release after the bit changes the word the kernel re-checks |
//! | `RawSemaphore` | `value` | [`Sleepers`] `sleepers` | `sem-sleep` | Dekker: waiter `sleepers += 1` then re-reads `value`; releaser bumps `value` then reads `sleepers` (all SeqCst) |
//! | `RawEvent` | `word` | [`Sleepers`] `sleepers` | `event-sleep` | Dekker: waiter `sleepers += 1` then the kernel re-reads the word; `set` moves the word then reads `sleepers` |
//! | `RawCondition` | `seq` | [`Sleepers`] `sleepers` | `cond-sleep` | Dekker: waiter reads `seq`, checks its token, `sleepers += 1`, kernel re-reads `seq`; notifier grants, bumps `seq`, reads `sleepers` |
//! | `RawBarrier` | `word` | [`Sleepers`] `sleepers` | `barrier-sleep` | Dekker: waiter `sleepers += 1`, kernel re-reads the word; the completing party moves the word then reads `sleepers` |
//! | `RawQueue` | `Wakeups::seq` (not-empty / not-full) | `WAITER` bit in the *slot* the waiter waits for | `sleep` | the waiter reads `seq`, then CASes the bit into the slot (`FREE` at the head, `READY` when full); the claim that moves that slot on is a CAS on the same word, so it either fails the waiter's CAS (the waiter looks again) or reads the bit, and its claimant bumps `seq` and wakes after completing the slot; no store-load order, so publishing stays a plain Release store |
//! | `RawJoin` (joinable queue's joiners) | `Waiters::word` | `SLEEPING` bit of that word | `sleep` | the joiner sets the bit (SeqCst RMW + fence) then re-checks the counts; `task_done`'s SeqCst decrement is followed by a SeqCst load of the word; a waker clears the bit and bumps the word, which fails the kernel's re-check |
//! | `RawSpsc` | the side's sleep word | `ASLEEP` value of that word | `spsc-sleep` | the sleeper swaps in `ASLEEP`, fences, re-checks the cursor; the peer stores its cursor and reads the flag *without* a fence (for throughput), so a wake-up can be lost to a store buffer: the sleeper's `POST_FLAG_POLLS` outlast the drain, and every sleep is bounded by the probe interval (see `raw::spsc`, "Sleeping without a fence"); `close` fences before it overwrites the flags |
//!
//! The Dekker handshakes (all but the lock's, the queue ring's and the SPSC ring's)
//! rely on SeqCst accesses on the waker's side, which the C11 model orders;
//! loom models SeqCst accesses as AcqRel only (its README, "Unsupported features"),
//! so under `--cfg loom` [`Sleepers`] and the joiners' waker add the `fence(SeqCst)`
//! ([`model_seqcst`]) that gives the model the order C11 already guarantees
//! (nothing changes in a normal build).
//!
//! Under loom a futex wait really parks (see `crate::sync`), so a model in which a
//! waiter sleeps with nobody left to wake it fails with a deadlock
//! (`tests/loom_wait.rs` has one such model per blocking object, and removing any
//! of the wakes above makes its model fail).
//!
//! # Before sleeping: spinning
//! One spin policy, [`Spin`] / [`spin_until`]: a per-*object* adaptive budget (a hint
//! word in shared memory, doubled when a wait ends while polling, halved when it
//! sleeps, with an exploring wait now and then; see [`Spin`] for why the numbers are
//! what they are). Lock, Semaphore, Event, Condition, Barrier, the SPSC ring, the
//! pipe and the MPMC queue (one hint per side of the ring: consumers waiting for
//! messages and producers waiting for room learn apart) use it. A caller may fix the
//! budget instead (`Queue::with_spin_limit`, `WaitPolicy::spin`): that is an
//! override, not a second policy.
//!
//! # While sleeping: probes
//! [`Probes`] schedules the liveness checks of a waiter whose wake-up could be owed
//! by a peer that died: every sleep is bounded by the next probe, and a waiter that
//! watches its peers (`Probes::watch`) is woken for a probe as soon as one exits
//! (the death watcher's shared futex wake on the word it sleeps on, with `std`).
//! Under loom only a timed-out wait is due for a probe (nothing watches), and a
//! timed wait times out only past its deadline or once a model declared a thread
//! dead, so probes never stand in for a lost wake-up in a model.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{
    futex_wait, futex_wake, futex_wake_all, spin_hint, watch_exit, Deadline, Task, WaitResult,
    Watch, SPIN_LIMIT,
};
use core::time::Duration;

/// Under loom only: the SeqCst fence that stands for the order C11 gives a SeqCst
/// store followed by a SeqCst load (loom treats both as AcqRel). A no-op otherwise;
/// call it between the two, on the side of a Dekker handshake that has no fence.
#[inline(always)]
pub(crate) fn model_seqcst() {
    #[cfg(loom)]
    crate::sync::atomic::fence(Ordering::SeqCst);
}

/// How many threads may be asleep on an object's futex word: the waiter's half of a
/// Dekker handshake is [`announce`](Self::announce) then a re-check (the kernel's,
/// in [`sleep`](Self::sleep)); the waker's half is changing the word SeqCst then
/// [`wake`](Self::wake) / [`wake_all`](Self::wake_all), which skip the syscall when
/// nobody announced.
///
/// The count is a hint and untrusted: too high costs a syscall; a forged 0 skips a
/// wake-up, which a sleep bounded by a probe or deadline outlives.
#[repr(transparent)]
#[derive(Debug)]
pub(crate) struct Sleepers(AtomicU32);

impl Sleepers {
    /// Nobody asleep (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Sleepers {
        Sleepers(AtomicU32::new(0))
    }
    /// Nobody asleep (the same as all-zero bytes).
    #[cfg(loom)]
    pub(crate) fn new() -> Sleepers {
        Sleepers(AtomicU32::new(0))
    }

    /// Sets the count to 0 (for initialising an image before anyone shares it).
    #[inline]
    pub(crate) fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// A snapshot of the count.
    #[inline]
    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// The waiter's announcement (`sleepers += 1`, SeqCst): after it, the caller
    /// re-checks its predicate (SeqCst) or lets the kernel do so, then calls
    /// [`leave`](Self::leave).
    #[inline]
    pub(crate) fn announce(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        model_seqcst();
    }

    /// Withdraws an announcement (saturating: a corrupted count must not wrap into
    /// "always wake").
    #[inline]
    pub(crate) fn leave(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
    }

    /// Announces, sleeps while `*word == expected` (until `deadline`), leaves.
    #[inline]
    pub(crate) fn sleep(&self, word: &AtomicU32, expected: u32, deadline: Deadline) -> WaitResult {
        self.announce();
        let r = futex_wait(word, expected, deadline);
        self.leave();
        r
    }

    /// True if someone announced: the waker's half, after its SeqCst change.
    #[inline]
    fn any(&self) -> bool {
        model_seqcst();
        self.0.load(Ordering::SeqCst) != 0
    }

    /// Wakes up to `n` sleepers on `word`, if anyone announced.
    #[inline]
    pub(crate) fn wake(&self, word: &AtomicU32, n: u32) {
        if self.any() {
            futex_wake(word, n);
        }
    }

    /// Wakes every sleeper on `word`, if anyone announced.
    #[inline]
    pub(crate) fn wake_all(&self, word: &AtomicU32) {
        if self.any() {
            futex_wake_all(word);
        }
    }
}

impl Default for Sleepers {
    fn default() -> Self {
        Sleepers::new()
    }
}

// ---- spinning and probing -----------------------------------------------------------

/// Fewest polls a wait makes before it sleeps, whatever its object's hint says.
const MIN_SPINS: u32 = 8;
/// Most polls a wait makes (an exploring wait, or one on an object whose waits end
/// while polling). Several [`SPIN_LIMIT`]s, so that it outlasts a peer's wake-up
/// from a futex sleep (tens of µs on a VM whose idle vCPU must be woken).
const MAX_SPINS: u32 = 4 * SPIN_LIMIT;
/// One wait in this many polls [`MAX_SPINS`] times, to learn whether spinning pays.
#[cfg_attr(loom, allow(dead_code))] // under loom every wait polls the same way
const EXPLORE_EVERY: u32 = 128;

/// Spin phases of this process so far (picks the exploring ones; process-local).
#[cfg(not(loom))]
static WAITS: AtomicU32 = AtomicU32::new(0);

/// Bounded, adaptive spinning before a futex wait.
///
/// A poll costs a `PAUSE` (tens of ns on current x86), a sleep and wake-up several
/// µs — tens of µs on a VM whose idle vCPU must be woken — for both sides. Spinning
/// pays when the thread that ends the wait is running meanwhile: then most waits end
/// within a few polls, and the rare one that comes late would still cost less
/// spinning than sleeping. It is wasted when that thread cannot run (an
/// oversubscribed machine) or takes long (a consumer waiting for a rare producer).
///
/// So each object keeps a `hint` (one of its fields, shared by all its users): the
/// budget its waits may poll, grown and shrunk like a congestion window. A wait
/// that ends while polling doubles it (up to [`MAX_SPINS`]); a wait that has to
/// sleep halves it (down to [`MIN_SPINS`]). One wait in [`EXPLORE_EVERY`] polls
/// `MAX_SPINS` times whatever the hint says: that is how two processes in a
/// ping-pong in which both sleep (each one's spin fails because the other sleeps)
/// find out that spinning would pay — one explorer outlasts the other's wake-up,
/// and from then on is awake when the other explores.
///
/// Measured on the 2-vCPU VM this was tuned on (Event and Semaphore ping-pong
/// between two processes): with the peers able to run side by side, 0.1–0.6 µs per
/// round trip against 20–30 µs for a futex-only ping-pong; with both pinned to one
/// CPU (spinning can never succeed), within 3–7 % of the futex-only ping-pong. A
/// fixed budget of `SPIN_LIMIT` polls (10 µs here) was 3–6× slower than futex-only
/// under load, and learning the polls a wait needed (instead of a budget) left
/// ping-pongs sleeping on every preemption (1.5–5 µs per round trip).
///
/// The MPMC queue keeps one hint per side of the ring: in a stream, consumers wait
/// often and briefly for the next message while producers rarely wait for room, and
/// one side's sleeps must not halve the other's budget. (The queue had a second,
/// process-local policy until its format 3 — start at `SPIN_LIMIT`, grow by a
/// quarter up to 16 × `SPIN_LIMIT`, halve on a sleep — tuned before its sleepers
/// flagged slots; with the wake now free when nobody sleeps, the shared budget and
/// its explorer serve it as they serve the others.)
///
/// The hint is untrusted like all shared state: any value is clamped, and a wrong
/// one only costs time.
#[derive(Debug)]
pub(crate) struct Spin {
    hint: u32,
    budget: u32,
    /// False for a budget the caller fixed: the hint is neither used nor changed.
    adaptive: bool,
}

impl Spin {
    /// Starts a spin phase on the object whose hint is `hint`.
    #[inline]
    pub(crate) fn start(hint: &AtomicU32) -> Spin {
        let h = hint.load(Ordering::Relaxed).min(MAX_SPINS);
        let budget = if explore() {
            MAX_SPINS
        } else {
            h.clamp(MIN_SPINS.min(MAX_SPINS), MAX_SPINS)
        };
        Spin {
            hint: h,
            budget,
            adaptive: true,
        }
    }

    /// A spin phase of `fixed` polls if the caller fixed one, else one on `hint`.
    #[inline]
    pub(crate) fn start_or(fixed: Option<u32>, hint: &AtomicU32) -> Spin {
        match fixed {
            Some(budget) => Spin {
                hint: 0,
                budget,
                adaptive: false,
            },
            None => Spin::start(hint),
        }
    }

    /// How many polls this phase may make.
    #[inline]
    pub(crate) fn budget(&self) -> u32 {
        self.budget
    }

    /// The wait ended while polling: spinning pays here, double the budget.
    #[inline]
    pub(crate) fn succeeded(&self, hint: &AtomicU32) {
        if !self.adaptive {
            return;
        }
        let next = (self.hint.max(MIN_SPINS) * 2).min(MAX_SPINS);
        if next != self.hint {
            hint.store(next, Ordering::Relaxed);
        }
    }

    /// The budget ran out: the caller is about to sleep, spinning was wasted; halve it.
    #[inline]
    pub(crate) fn failed(&self, hint: &AtomicU32) {
        if self.adaptive && self.hint != 0 {
            hint.store(self.hint / 2, Ordering::Relaxed);
        }
    }
}

#[inline]
fn explore() -> bool {
    #[cfg(not(loom))]
    {
        // A plain load and store, not an RMW: a count lost to a race only shifts
        // which wait explores.
        let n = WAITS.load(Ordering::Relaxed).wrapping_add(1);
        WAITS.store(n, Ordering::Relaxed);
        n % EXPLORE_EVERY == 0
    }
    #[cfg(loom)]
    {
        false
    }
}

/// Polls `ready` for a [`Spin`] phase on `hint`; true if it became true. Makes no
/// poll at all under loom (`SPIN_LIMIT` is 0).
#[inline]
pub(crate) fn spin_until(hint: &AtomicU32, mut ready: impl FnMut() -> bool) -> bool {
    if SPIN_LIMIT == 0 {
        return false;
    }
    let spin = Spin::start(hint);
    for _ in 0..spin.budget() {
        spin_hint();
        if ready() {
            spin.succeeded(hint);
            return true;
        }
    }
    spin.failed(hint);
    false
}

/// When a waiter next checks that a peer is alive: first after a sixteenth of the
/// probe interval (at least [`FIRST_PROBE`]), then at doubling intervals up to the
/// full interval. A peer that died *before* the wait began is thus found within about
/// half a millisecond, and a long wait costs one `/proc` read per probe interval.
///
/// A waiter may also [`watch`](Self::watch) the peers it probes: with `std`, the
/// death watcher (`crate::sys::watch`) then wakes it as soon as one of them exits,
/// and [`due`](Self::due) says a probe is due at once. So a peer that dies *during* a
/// long wait is found within a fraction of a millisecond instead of within the
/// current interval, at no extra CPU cost while it lives; the timed probes stay as
/// the fallback (no pidfd support, no descriptors left, a peer that changed while
/// the waiter slept) and their schedule is the upper bound.
#[derive(Debug)]
pub(crate) struct Probes<'a> {
    interval: Duration,
    max: Duration,
    next: crate::sync::Instant,
    watch: Option<Watch<'a>>,
    /// The watch's exit report was acted on (it brings one probe forward, not more).
    fire_seen: bool,
}

/// The shortest first probe delay.
pub(crate) const FIRST_PROBE: Duration = Duration::from_micros(500);

/// The first interval of a [`Probes`] schedule growing to `max` (for waits that keep
/// their own schedule).
#[inline]
pub(crate) fn first_probe(max: Duration) -> Duration {
    (max / 16).max(FIRST_PROBE).min(max)
}

impl<'a> Probes<'a> {
    /// A schedule whose intervals grow to `max`.
    pub(crate) fn new(max: Duration) -> Probes<'a> {
        let interval = first_probe(max);
        Probes {
            interval,
            max,
            next: crate::sync::Instant::now().add(interval),
            watch: None,
            fire_seen: false,
        }
    }

    /// A schedule that probes every `max` from the start: for waits with nobody to
    /// watch, where an early probe would learn nothing new. (A short first sleep is
    /// not free: the SPSC stream's throughput halved with it — a side that wakes by
    /// timeout instead of by its peer's notify falls out of step with it.)
    pub(crate) fn every(max: Duration) -> Probes<'a> {
        Probes {
            interval: max,
            max,
            next: crate::sync::Instant::now().add(max),
            watch: None,
            fire_seen: false,
        }
    }

    /// How long the next futex wait may sleep: until the next probe or `deadline`.
    #[inline]
    pub(crate) fn next_wake(&self, deadline: Deadline) -> crate::sync::Instant {
        match deadline {
            Some(d) if d < self.next => d,
            _ => self.next,
        }
    }

    /// After a wait ended with `r`: true when the caller should probe its peers and
    /// check its deadline now (and schedules the next probe) — on schedule, or at once
    /// when a watched peer exited.
    #[inline]
    pub(crate) fn due(&mut self, r: WaitResult, deadline: Deadline) -> bool {
        // Under loom only a timed-out wait is due (see the loom futex model in
        // `sync`): the wall clock must not steer a model's execution.
        if r == WaitResult::TimedOut
            || (!cfg!(loom) && crate::sync::Instant::now() >= self.next_wake(deadline))
        {
            self.interval = self.interval.saturating_mul(2).min(self.max);
            self.next = crate::sync::Instant::now().add(self.interval);
            true
        } else if !self.fire_seen && self.fired().is_some() {
            // Early, out of schedule: the watch's wake-up (the schedule is kept).
            self.fire_seen = true;
            true
        } else {
            false
        }
    }

    /// Has the sleeper on `word` woken as soon as any of `tasks` exits (see the type's
    /// docs), replacing the previous watch unless it covers the same tasks and has not
    /// fired. Call it when a probe is due, *before* probing those tasks: a task that
    /// exits after the watch started wakes the sleeper, one that exited (or whose id
    /// was reused) before is found by the probe. Empty `tasks` ends the watch.
    ///
    /// A watch on the same tasks is kept even once it fired: a task that exited
    /// yet does not count as gone (`/proc` cannot tell, or an end still held in this
    /// process) brings one probe forward, then the schedule rules again — re-watching
    /// it would wake the waiter over and over.
    ///
    /// True when the previous watch was kept and has not fired: it is on exactly
    /// `tasks`, was probed when it started, and none of them has exited since (a
    /// pidfd names the task it was opened on, never a reuse of its id) — the caller
    /// may skip reading `/proc` for them. The watcher's wake-up, moments after an
    /// exit, prompts the probe.
    #[inline]
    pub(crate) fn watch(&mut self, word: &'a AtomicU32, tasks: &[Task]) -> bool {
        if tasks.is_empty() {
            self.watch = None;
            return false;
        }
        if let Some(w) = &self.watch {
            if w.covers(tasks) {
                return w.fired().is_none();
            }
        }
        self.watch = None;
        self.watch = watch_exit(word, tasks);
        self.fire_seen = false;
        false
    }

    /// The id of a watched task seen exiting since the last [`watch`](Self::watch).
    #[inline]
    pub(crate) fn fired(&self) -> Option<u32> {
        self.watch.as_ref().and_then(|w| w.fired())
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_fired_watch_brings_one_probe_forward_not_more() {
        // A watched thread that exited but that the caller does not count as gone (as
        // a pipe end still held in this process): one early probe, then the schedule.
        let word = AtomicU32::new(0);
        let tid = std::thread::spawn(crate::sys::ident::gettid)
            .join()
            .unwrap();
        let mut probes = Probes::new(Duration::from_secs(10));
        assert!(!probes.watch(&word, &[Task::Thread(tid)]), "a new watch");
        let t = std::time::Instant::now();
        while probes.fired().is_none() {
            assert!(t.elapsed() < Duration::from_secs(10), "never fired");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(probes.due(WaitResult::Woken, None), "the early probe");
        assert!(!probes.due(WaitResult::Woken, None), "only one");
        assert!(
            !probes.watch(&word, &[Task::Thread(tid)]),
            "kept, not alive"
        );
        assert!(!probes.due(WaitResult::Woken, None), "still only one");
    }
}
