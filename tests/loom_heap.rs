//! loom models of the `RawHeap` commit/recovery protocol (the core of `Dict` and
//! `List`): a writer's call goes through the undo journal and the seqlock; a reader
//! copying out never returns a torn or mixed state; a writer killed after any prefix
//! of its journaled stores is rolled back by the next lock holder, and a reader
//! racing that recovery sees the state before the call (or after it, had it
//! committed), never a mix.
//!
//! The heap runs over a `Vec` of loom atomics (`Heap::over`): loom's atomics are not
//! layout-compatible with a mapping.
//!
//! Every actor runs in a spawned thread and the model's main thread only joins them:
//! loom 0.7 explores a single interleaving when the main thread races a spawned one
//! that starts with a load (tokio-rs/loom#392), which would make these models pass
//! vacuously. Each model's number of explored executions is checked to be > 1.
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release
//! --no-default-features --test loom_heap`
#![cfg(loom)]

use loom::sync::atomic::AtomicU64;
use loom::sync::Arc;
use loom::thread;
use multiproc::raw::heap::{Heap, HeapError, RawHeap, Txn};
use multiproc::sync::{current_identity, loom_declare_dead};
use std::time::Duration;

const PROBE: Duration = Duration::from_millis(10);
/// Arena words: two 32-byte blocks (the old and the new record) and some slack.
const WORDS: usize = 16;

/// The state a reader copies out: (len, first record word, second record word).
type State = (u64, u64, u64);
/// Before the modelled call: one item, record [1, 1].
const BEFORE: State = (1, 1, 1);
/// After it: two items, record [2, 2] (the old record freed).
const AFTER: State = (2, 2, 2);

/// Runs a model with a preemption bound that keeps it small; fails if loom explored
/// only one execution (the model would then check nothing about the races).
fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(bound);
    b.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    assert!(runs > 1, "loom explored {runs} execution(s)");
}

struct Shared {
    raw: RawHeap,
    words: Vec<AtomicU64>,
}

impl Shared {
    fn heap(&self) -> Heap<'_, &[AtomicU64]> {
        Heap::over(&self.raw, &self.words)
    }
}

fn grow(_: u64, _: u64) -> bool {
    true
}

/// A heap holding BEFORE, committed by a call that finished.
fn shared() -> Arc<Shared> {
    let s = Arc::new(Shared {
        raw: RawHeap::new(),
        words: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
    });
    let h = s.heap();
    let me = current_identity();
    assert!(h.lock(me, None, PROBE).is_held());
    let mut g = grow;
    let mut t = h.txn(&mut g);
    let p = t.alloc(16).unwrap();
    t.write_fresh(p, &[1u8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    t.set_root(p).unwrap();
    t.set_len(1).unwrap();
    t.commit();
    // SAFETY: this thread holds the lock; the transaction is committed.
    unsafe { h.unlock(me) };
    s
}

/// The modelled call, as `Dict` does an insert that replaces a record: allocate and
/// fill a new record, publish, switch the root, bump the length, free the old record
/// (5 journaled stores: top, root, len, the old block's header, its class head).
/// With `die = Some(k)` the writer is killed before its journaled store `k` (`k = 5`:
/// after every store, before the commit): it returns without committing or unlocking
/// and is declared dead. Returns whether it committed.
fn writer(s: &Shared, die: Option<usize>) -> bool {
    let h = s.heap();
    let me = current_identity();
    assert!(h.lock(me, None, PROBE).is_held());
    let mut g = grow;
    let mut t = h.txn(&mut g);
    if let Some(k) = die {
        t.die_at_store(k);
    }
    match (steps(&mut t), die) {
        (Ok(()), None) => {
            t.commit();
            // SAFETY: this thread holds the lock; the transaction is committed.
            unsafe { h.unlock(me) };
            true
        }
        (Ok(()), Some(_)) | (Err(HeapError::Corrupt("simulated crash")), Some(_)) => {
            loom_declare_dead(); // killed here: no commit, no unlock
            false
        }
        (Err(e), _) => panic!("the modelled call failed: {e:?}"),
    }
}

/// The call's steps (journaled stores counted in `writer`'s doc).
fn steps<'a>(t: &mut Txn<'_, 'a, &'a [AtomicU64]>) -> Result<(), HeapError> {
    let old = t.heap().root_word();
    let q = t.alloc(16)?;
    t.set_fresh(q, 2)?;
    t.set_fresh(q + 8, 2)?;
    t.publish();
    t.set_root(q)?;
    t.set_len(t.heap().len_word() + 1)?;
    t.free(old)?;
    t.finish()
}

/// What `Dict::get` does: an optimistic copy under the seqlock, else a read under
/// the lock (which recovers an interrupted call first).
fn read(s: &Shared) -> State {
    let h = s.heap();
    let copy = |h: &Heap<'_, &[AtomicU64]>| -> Result<State, HeapError> {
        let r = h.root_word();
        Ok((h.len_word(), h.load(r)?, h.load(r + 8)?))
    };
    match h.try_read(copy) {
        Some(r) => r.expect("a consistent read of a well-formed heap"),
        None => {
            let me = current_identity();
            assert!(h.lock(me, None, PROBE).is_held());
            let r = copy(&h).expect("a read under the lock");
            // SAFETY: this thread holds the lock and opened no transaction.
            unsafe { h.unlock(me) };
            r
        }
    }
}

/// After every thread: the heap is quiescent and holds `want`, and its free list
/// holds exactly the blocks that are not the record.
fn settled(s: &Shared, want: State) {
    let h = s.heap();
    let me = current_identity();
    assert!(h.lock(me, None, PROBE).is_held());
    assert!(!h.call_in_progress());
    assert_eq!(read_locked(&h), want);
    // Blocks handed out: the record's, plus the replaced one (free) after the call.
    let free = h.check_free_lists().unwrap();
    assert_eq!(free, if want == AFTER { 32 } else { 0 });
    // SAFETY: this thread holds the lock and opened no transaction.
    unsafe { h.unlock(me) };
    assert_eq!(read(s), want);
}

fn read_locked<'a>(h: &Heap<'a, &'a [AtomicU64]>) -> State {
    let r = h.root_word();
    (h.len_word(), h.load(r).unwrap(), h.load(r + 8).unwrap())
}

#[test]
fn a_reader_racing_a_committing_writer_sees_before_or_after_never_a_mix() {
    model(3, || {
        let s = shared();
        let w = s.clone();
        let t = thread::spawn(move || assert!(writer(&w, None)));
        let r = s.clone();
        let reader = thread::spawn(move || {
            let x = read(&r);
            assert!(x == BEFORE || x == AFTER, "mixed read {x:?}");
        });
        t.join().unwrap();
        reader.join().unwrap();
        settled(&s, AFTER);
    });
}

/// A writer killed before journaled store `k` (k = 5: before the commit) and a
/// recoverer taking the lock over, racing it (nothing orders the dead writer's
/// stores before the recoverer's: `SYNC(heap-death)`); then, with that writer dead
/// again, a recoverer racing a reader.
fn killed_writer_is_rolled_back_while_a_reader_races(k: usize) {
    // The recoverer races the writer's stores and its death.
    model(2, move || {
        let s = shared();
        let w = s.clone();
        let dying = thread::spawn(move || assert!(!writer(&w, Some(k))));
        let r = s.clone();
        let recoverer = thread::spawn(move || recover(&r));
        dying.join().unwrap();
        recoverer.join().unwrap();
        settled(&s, BEFORE);
        // The heap keeps working: the same call, completed, commits.
        assert!(writer(&s, None));
        settled(&s, AFTER);
    });
    // A reader races the recoverer (and falls back to the lock if it sees the call
    // in progress too long, recovering it itself).
    model(3, move || {
        let s = shared();
        let w = s.clone();
        thread::spawn(move || assert!(!writer(&w, Some(k))))
            .join()
            .unwrap();
        let r = s.clone();
        let recoverer = thread::spawn(move || recover(&r));
        let r = s.clone();
        let reader = thread::spawn(move || {
            assert_eq!(read(&r), BEFORE, "a reader saw a killed call's changes");
        });
        recoverer.join().unwrap();
        reader.join().unwrap();
        settled(&s, BEFORE);
    });
}

/// Takes the lock (rolling back a dead holder's call) and checks the state is BEFORE.
fn recover(s: &Shared) {
    let h = s.heap();
    let me = current_identity();
    assert!(h.lock(me, None, PROBE).is_held());
    // Whoever took the lock first rolled the call back.
    assert!(!h.call_in_progress());
    assert_eq!(read_locked(&h), BEFORE);
    // SAFETY: this thread holds the lock and opened no transaction.
    unsafe { h.unlock(me) };
}

#[test]
fn writer_killed_before_its_first_journaled_store_leaves_the_heap_as_before() {
    killed_writer_is_rolled_back_while_a_reader_races(0);
}

#[test]
fn writer_killed_after_allocating_is_rolled_back() {
    killed_writer_is_rolled_back_while_a_reader_races(1);
}

#[test]
fn writer_killed_after_switching_the_root_is_rolled_back() {
    killed_writer_is_rolled_back_while_a_reader_races(2);
}

#[test]
fn writer_killed_after_bumping_the_length_is_rolled_back() {
    killed_writer_is_rolled_back_while_a_reader_races(3);
}

#[test]
fn writer_killed_halfway_through_a_free_is_rolled_back() {
    killed_writer_is_rolled_back_while_a_reader_races(4);
}

#[test]
fn writer_killed_just_before_its_commit_is_rolled_back() {
    killed_writer_is_rolled_back_while_a_reader_races(5);
}
