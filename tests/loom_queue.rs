//! loom models of the MPMC ring: put/get races, claims, wraparound, and recovery of
//! claims whose owner died (`loom_crash::die_after_next_claim` +
//! `sync::loom_declare_dead`).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use multiproc::raw::queue::{loom_crash, region_words, QueueError, RawQueue, Ring, TakeWith};
use multiproc::sync::atomic::{AtomicU64, Ordering};
use multiproc::sync::current_identity;

/// A ring of `cap` one-word slots, built as plain values.
struct Fixture {
    q: RawQueue,
    words: Vec<AtomicU64>,
    cap: usize,
    /// Most messages at once (`cap` unless a test lowers it).
    limit: usize,
    /// Whether members take leases (off unless a test turns them on).
    leases: bool,
}

impl Fixture {
    fn new(cap: usize) -> Arc<Fixture> {
        Self::build(cap, cap, false)
    }
    /// A ring of `cap` slots whose sole producer and consumer take leases.
    fn leased(cap: usize) -> Arc<Fixture> {
        Self::build(cap, cap, true)
    }
    /// A ring of `cap` slots holding at most `limit` messages.
    fn limited(cap: usize, limit: usize) -> Arc<Fixture> {
        Self::build(cap, limit, false)
    }
    fn build(cap: usize, limit: usize, leases: bool) -> Arc<Fixture> {
        let n = region_words(cap, 1).unwrap();
        Arc::new(Fixture {
            q: RawQueue::new(),
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
            cap,
            limit,
            leases,
        })
    }
    fn ring(&self) -> Ring<'_> {
        Ring::new(&self.q, &self.words, self.cap, 1)
            .unwrap()
            .with_limit(self.limit)
            .unwrap()
            .with_leases(self.leases)
    }
    /// With leases: a scheduling point before each operation. Loom 0.7's partial-order
    /// reduction otherwise prunes real interleavings when a thread loads a word before
    /// it writes it and another thread only loads it (a two-thread litmus of that
    /// shape ran one execution of the two it has); a leased put or get starts with
    /// such loads. Counted per model: see `model`.
    fn lease_yield(&self) {
        if self.leases {
            thread::yield_now();
        }
    }
    /// Puts `v`, retrying while full (yielding to the other threads).
    fn put(&self, v: u64) {
        loop {
            match self.try_put(v) {
                Ok(()) => return,
                Err(QueueError::Full) => thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    fn try_put(&self, v: u64) -> Result<(), QueueError> {
        self.lease_yield();
        self.ring()
            .try_put(current_identity(), |p| p[0].store(v, Ordering::Relaxed))
    }
    fn try_get(&self, probe: bool) -> Result<u64, QueueError> {
        self.lease_yield();
        self.ring().try_get(
            current_identity(),
            probe,
            &mut TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed)),
        )
    }
    /// Everything left, probing (recovering dead claims) as a blocking get would.
    fn drain(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..4 * self.cap + 4 {
            match self.try_get(true) {
                Ok(v) => out.push(v),
                Err(QueueError::Empty) | Err(QueueError::Closed) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        out
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

/// Everything the consumers got (each in increasing order: FIFO) and what is left,
/// sorted.
fn joined_in_order(f: &Fixture, consumers: Vec<thread::JoinHandle<Vec<u64>>>) -> Vec<u64> {
    let mut all = Vec::new();
    for c in consumers {
        let got = c.join().unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO broken: {got:?}");
        all.extend(got);
    }
    all.extend(f.drain());
    sorted(all)
}

#[test]
fn two_producers_one_consumer_deliver_each_value_once() {
    model(|| {
        let f = Fixture::new(2);
        let producers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|v| {
                let f = f.clone();
                thread::spawn(move || f.try_put(v).unwrap())
            })
            .collect();
        let mut got = Vec::new();
        if let Ok(v) = f.try_get(false) {
            got.push(v);
        }
        for p in producers {
            p.join().unwrap();
        }
        got.extend(f.drain());
        assert_eq!(sorted(got), vec![1, 2]);
        assert_eq!(f.ring().len(), 0);
    });
}

#[test]
fn two_consumers_race_for_each_value_and_fifo_holds() {
    model(|| {
        let f = Fixture::new(2);
        f.try_put(1).unwrap();
        f.try_put(2).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        if let Ok(v) = f.try_get(false) {
                            got.push(v);
                        }
                    }
                    got
                })
            })
            .collect();
        assert_eq!(joined_in_order(&f, consumers), vec![1, 2]);
    });
}

#[test]
fn consumers_claiming_without_reading_first_race_a_producer_and_each_other() {
    // `try_get_many` claims every message after its first one speculatively (a CAS
    // from the READY state it expects, no read first): a wrong guess — no message
    // yet, the other consumer was first — must change nothing.
    model(|| {
        let f = Fixture::new(4);
        f.try_put(1).unwrap();
        let producer = {
            let f = f.clone();
            thread::spawn(move || {
                f.try_put(2).unwrap();
                f.try_put(3).unwrap();
            })
        };
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    let _ = f.ring().try_get_many(current_identity(), 2, |_, p| {
                        got.push(p[0].load(Ordering::Relaxed))
                    });
                    got
                })
            })
            .collect();
        producer.join().unwrap();
        assert_eq!(joined_in_order(&f, consumers), vec![1, 2, 3]);
        assert_eq!(f.ring().len(), 0);
    });
}

#[test]
fn wraparound_with_a_concurrent_consumer() {
    model(|| {
        let f = Fixture::new(1);
        let f2 = f.clone();
        let producer = thread::spawn(move || {
            let mut put = 0;
            for v in 1..=2 {
                for _ in 0..3 {
                    match f2.try_put(v) {
                        Ok(()) => {
                            put += 1;
                            break;
                        }
                        Err(QueueError::Full) => thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
            put
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            if let Ok(v) = f.try_get(false) {
                got.push(v);
            }
        }
        let put = producer.join().unwrap();
        got.extend(f.drain());
        assert_eq!(got.len(), put);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO broken: {got:?}");
    });
}

#[test]
fn dead_producer_claim_becomes_a_tombstone_and_the_ring_moves_on() {
    model(|| {
        let f = Fixture::new(2);
        let dying = {
            let f = f.clone();
            thread::spawn(move || {
                loom_crash::die_after_next_claim();
                let _ = f.try_put(99);
                !loom_crash::pending()
            })
        };
        let live = {
            let f = f.clone();
            thread::spawn(move || f.try_put(7))
        };
        let mut got = Vec::new();
        if let Ok(v) = f.try_get(true) {
            got.push(v);
        }
        let died = dying.join().unwrap();
        let put = live.join().unwrap();
        got.extend(f.drain());
        // 99 was never published: it must never appear; 7 exactly once if put.
        assert_eq!(got, if put.is_ok() { vec![7] } else { vec![] });
        assert_eq!(f.ring().len(), 0);
        assert_eq!(f.ring().recovery_stats().skipped, u64::from(died));
        // The ring still works at full capacity.
        f.try_put(1).unwrap();
        f.try_put(2).unwrap();
        assert_eq!(f.try_get(false).unwrap(), 1);
        assert_eq!(f.try_get(false).unwrap(), 2);
    });
}

#[test]
fn dead_consumer_claim_is_taken_over_and_redelivered_once() {
    model(|| {
        let f = Fixture::new(2);
        f.try_put(1).unwrap();
        f.try_put(2).unwrap();
        let dying = {
            let f = f.clone();
            thread::spawn(move || {
                loom_crash::die_after_next_claim();
                let _ = f.try_get(false);
                // Did it claim (and die), or find nothing left to claim?
                !loom_crash::pending()
            })
        };
        let live = {
            let f = f.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..2 {
                    if let Ok(v) = f.try_get(true) {
                        got.push(v);
                    }
                }
                got
            })
        };
        let died = dying.join().unwrap();
        let mut got = live.join().unwrap();
        got.extend(f.drain());
        assert_eq!(sorted(got), vec![1, 2], "each value exactly once");
        assert_eq!(f.ring().recovery_stats().redelivered, u64::from(died));
        f.try_put(3).unwrap();
        f.try_put(4).unwrap();
        assert_eq!(f.drain(), vec![3, 4]);
    });
}

#[test]
fn close_races_with_put_and_get() {
    model(|| {
        let f = Fixture::new(2);
        let producer = {
            let f = f.clone();
            thread::spawn(move || f.try_put(5))
        };
        let closer = {
            let f = f.clone();
            thread::spawn(move || f.ring().close())
        };
        let first = f.try_get(false);
        let put = producer.join().unwrap();
        closer.join().unwrap();
        let mut got: Vec<u64> = first.iter().copied().collect();
        loop {
            match f.try_get(true) {
                Ok(v) => got.push(v),
                Err(QueueError::Closed) => break,
                Err(e) => panic!("closed queue reported {e:?}"),
            }
        }
        match put {
            Ok(()) => assert_eq!(got, vec![5]),
            Err(QueueError::Closed) => assert!(got.is_empty()),
            Err(e) => panic!("{e:?}"),
        }
    });
}

#[test]
fn producer_wrapping_onto_a_dead_readers_slot_waits_for_its_recovery() {
    model(|| {
        let f = Fixture::new(1);
        f.try_put(1).unwrap();
        let dying = {
            let f = f.clone();
            thread::spawn(move || {
                loom_crash::die_after_next_claim();
                let _ = f.try_get(false);
                !loom_crash::pending()
            })
        };
        let producer = {
            let f = f.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    match f.try_put(2) {
                        Ok(()) => return true,
                        Err(QueueError::Full) => thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
                false
            })
        };
        let mut got = Vec::new();
        if let Ok(v) = f.try_get(true) {
            got.push(v);
        }
        let died = dying.join().unwrap();
        let put = producer.join().unwrap();
        got.extend(f.drain());
        if !put {
            // Room now that the dead reader's slot was recovered.
            f.try_put(2).unwrap();
            got.extend(f.drain());
        }
        assert_eq!(sorted(got), vec![1, 2], "each value exactly once");
        assert_eq!(f.ring().recovery_stats().redelivered, u64::from(died));
    });
}

#[test]
fn a_limit_below_the_ring_size_holds_under_racing_producers_and_a_consumer() {
    // Ring of 4 slots, limit 2: one value is queued; two producers race a consumer.
    // Whatever the interleaving, the ring never holds more than 2 values, and every
    // value whose put succeeded is got exactly once.
    model(|| {
        let f = Fixture::limited(4, 2);
        f.try_put(10).unwrap();
        let producers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|v| {
                let f = f.clone();
                thread::spawn(move || f.try_put(v).is_ok().then_some(v))
            })
            .collect();
        let first = f.try_get(false).ok();
        let mut put: Vec<u64> = vec![10];
        put.extend(producers.into_iter().filter_map(|p| p.join().unwrap()));
        let (head, tail) = f.ring().indices();
        assert!(
            tail - head <= 2,
            "{} values in a ring limited to 2",
            tail - head
        );
        let mut got: Vec<u64> = first.into_iter().collect();
        got.extend(f.drain());
        assert_eq!(sorted(got), sorted(put));
    });
}

// ---- leases (a sole producer and consumer store plainly: `raw::queue`, "Leases";
// their sleep handshakes are modelled in `loom_wait`) ----
//
// Loom 0.7 explores few executions of some of these: its partial-order reduction
// prunes real interleavings when one thread loads a word and then writes it while
// another only loads it (a two-thread litmus of that shape — `t: load x; CAS x`,
// `main: load x` — runs one of its two executions), and a leased put or get starts
// with such loads. The yields before each operation (`lease_yield`) restore some of
// them: the revocation model runs 1740 executions with them, 392 without; the crash
// and batch models still run only one. What they check in the executions run holds; the same
// paths run across real processes in `queue_crash`'s
// `random_kills_of_a_sole_producer_and_consumer_holding_leases_…` and the unit tests.

#[test]
fn a_second_producer_revokes_a_live_holder_and_each_value_arrives_once() {
    model(|| {
        let f = Fixture::leased(4);
        // The main thread holds the producers' lease.
        f.put(1);
        let f2 = f.clone();
        let other = thread::spawn(move || f2.put(2));
        let f3 = f.clone();
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            if let Ok(v) = f3.try_get(false) {
                got.push(v);
            }
            got
        });
        f.put(3);
        other.join().unwrap();
        let got = joined_in_order(&f, vec![consumer]);
        assert_eq!(got, vec![1, 2, 3]);
    });
}

#[test]
fn a_producer_holder_that_dies_after_publishing_leaves_its_lease_and_message() {
    model(|| {
        let f = Fixture::leased(2);
        let f2 = f.clone();
        let victim = thread::spawn(move || {
            loom_crash::die_after_next_claim();
            f2.put(1); // publishes, then dies before moving `tail`
        });
        let f3 = f.clone();
        let heir = thread::spawn(move || {
            victim.join().unwrap();
            f3.put(2); // revokes the dead holder's lease, takes it
        });
        let mut got = Vec::new();
        if let Ok(v) = f.try_get(false) {
            got.push(v);
        }
        heir.join().unwrap();
        got.extend(f.drain());
        assert_eq!(got, vec![1, 2]);
        assert_eq!(f.ring().len(), 0);
    });
}

#[test]
fn a_consumer_holder_that_dies_mid_get_leaves_the_message_queued() {
    model(|| {
        let f = Fixture::leased(2);
        f.put(1);
        f.put(2);
        let f2 = f.clone();
        let victim = thread::spawn(move || {
            loom_crash::die_after_next_claim();
            let _ = f2.try_get(false); // copies 1 out, dies before freeing it
        });
        let f3 = f.clone();
        let heir = thread::spawn(move || {
            victim.join().unwrap();
            let mut got = Vec::new();
            if let Ok(v) = f3.try_get(false) {
                got.push(v);
            }
            got
        });
        let got = joined_in_order(&f, vec![heir]);
        assert_eq!(
            got,
            vec![1, 2],
            "the dead holder's get never returned: 1 is still owed"
        );
    });
}

#[test]
fn lease_holders_batches_race_and_deliver_each_value_once_in_order() {
    model(|| {
        let f = Fixture::leased(4);
        let f2 = f.clone();
        let producer = thread::spawn(move || {
            // Up to 3 values in batches, two tries: what was not put is returned.
            let mut next = 1u64;
            for _ in 0..2 {
                f2.lease_yield();
                let ring = f2.ring();
                let n = ring
                    .try_put_many(current_identity(), (4 - next) as usize, |i, p| {
                        p[0].store(next + i as u64, Ordering::Relaxed)
                    })
                    .unwrap();
                next += n as u64;
            }
            next
        });
        let mut got = Vec::new();
        f.lease_yield();
        let ring = f.ring();
        let mut buf = [0u64; 3];
        let n = ring
            .try_get_many(current_identity(), 3, |i, p| {
                buf[i] = p[0].load(Ordering::Relaxed)
            })
            .unwrap();
        got.extend_from_slice(&buf[..n]);
        let next = producer.join().unwrap();
        got.extend(f.drain());
        let want: Vec<u64> = (1..next).collect();
        assert_eq!(got, want, "FIFO, each value put exactly once");
    });
}
