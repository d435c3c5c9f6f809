//! Crash consistency: producers and consumers SIGKILLed at random points while
//! traffic flows. The accounting rule: a value whose `put` returned is delivered
//! exactly once — unless the consumer that took it died before recording it — never
//! twice, never torn; and the queue still works at full capacity afterwards.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{ByteQueue, Error, Queue, Segment};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(120);

/// Values per producer incarnation; an incarnation that put them all exits.
const PER: u64 = 1 << 14;
/// Producer incarnations the accounting table has room for.
const MAX_INC: u64 = 1024;

/// Shared accounting, in a segment: per incarnation, puts that returned; per value,
/// how many times it was received; flags.
struct Books {
    seg: Segment,
}

impl Books {
    const DONE: usize = 0; // MAX_INC u64s
    const FLAGS: usize = Self::DONE + MAX_INC as usize * 8; // stop, foreign
    const RECV: usize = Self::FLAGS + 128; // MAX_INC * PER u8s

    fn create(name: &str) -> Books {
        let len = Self::RECV + (MAX_INC * PER) as usize;
        Books {
            seg: Segment::create(name, len).unwrap(),
        }
    }
    fn at<A>(&self, off: usize) -> &A {
        assert!(off + std::mem::size_of::<A>() <= self.seg.len());
        // SAFETY: in bounds (checked), aligned by construction, atomics only.
        unsafe { &*(self.seg.as_ptr().add(off) as *const A) }
    }
    fn done(&self, inc: u64) -> &AtomicU64 {
        self.at(Self::DONE + inc as usize * 8)
    }
    fn stop(&self) -> &AtomicU32 {
        self.at(Self::FLAGS)
    }
    fn foreign(&self) -> &AtomicU32 {
        self.at(Self::FLAGS + 4)
    }
    fn recv(&self, inc: u64, seq: u64) -> &AtomicU8 {
        self.at(Self::RECV + (inc * PER + seq) as usize)
    }
    fn record(&self, v: u64) {
        let (inc, seq) = (v >> 32, v & 0xffff_ffff);
        if inc >= MAX_INC || seq >= PER {
            self.foreign().fetch_add(1, Ordering::SeqCst);
        } else {
            self.recv(inc, seq).fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// xorshift64*, seeded per run (the seed is printed for reproduction).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn spawn_producer(name: &str, books: &str, inc: u64) -> Child {
    let (name, books) = (name.to_owned(), books.to_owned());
    fork(move || {
        let q: Queue<u64> = Queue::open(&name).unwrap();
        let b = Books {
            seg: Segment::open(&books).unwrap(),
        };
        for seq in 0..PER {
            if b.stop().load(Ordering::SeqCst) != 0 {
                return 0;
            }
            loop {
                match q.put_timeout(inc << 32 | seq, Duration::from_millis(50)) {
                    Ok(()) => break,
                    Err(Error::Timeout) if b.stop().load(Ordering::SeqCst) == 0 => {}
                    Err(Error::Timeout) => return 0,
                    Err(e) => panic!("put: {e}"),
                }
            }
            b.done(inc).store(seq + 1, Ordering::SeqCst);
        }
        0
    })
}

fn spawn_consumer(name: &str, books: &str) -> Child {
    let (name, books) = (name.to_owned(), books.to_owned());
    fork(move || {
        let q: Queue<u64> = Queue::open(&name).unwrap();
        let b = Books {
            seg: Segment::open(&books).unwrap(),
        };
        let mut buf = [0u64; 8];
        let mut n = 0u64;
        loop {
            // Mix single and batch gets.
            n += 1;
            if n % 4 == 0 {
                match q.get_many(&mut buf) {
                    Ok(k) => buf[..k].iter().for_each(|&v| b.record(v)),
                    Err(e) => panic!("get_many: {e}"),
                }
            } else {
                match q.get() {
                    Ok(v) => b.record(v),
                    Err(e) => panic!("get: {e}"),
                }
            }
        }
    })
}

#[test]
fn random_kills_of_producers_and_consumers_lose_and_duplicate_nothing() {
    random_kills("crash-q", 3, 3);
}

/// One producer and one consumer at a time: each holds its side's lease (see
/// `raw::queue`, "Leases") and stores plainly, so the kills land inside leased puts
/// and gets; each victim is reaped before its successor starts, which takes the dead
/// holder's lease over.
#[test]
fn random_kills_of_a_sole_producer_and_consumer_holding_leases_lose_and_duplicate_nothing() {
    let stats = random_kills("crash-lease", 1, 1);
    if multiproc::sync::asym::register() {
        assert!(
            stats.leases_passed > 10,
            "the kills should have passed leases on from dead holders: {stats:?}"
        );
    }
}

/// Runs `producers` producers and `consumers` consumers over one queue, SIGKILLs one
/// of them at random 200 times (a fresh one takes each victim's place: with one per
/// side, after the victim is reaped), and checks the accounting rule.
fn random_kills(
    prefix: &str,
    n_producers: usize,
    n_consumers: usize,
) -> multiproc::raw::queue::RecoveryStats {
    const KILLS: usize = 200;
    // With one member per side, a successor started before its victim died would
    // revoke the live victim's lease, and the side would take claims for good.
    let reap_first = n_producers == 1 && n_consumers == 1;
    let name = unique(prefix);
    let books_name = format!("{name}.books");
    let q: Queue<u64> = Queue::create(&name, 64).unwrap();
    let books = Books::create(&books_name);
    let seed = Instant::now().elapsed().as_nanos() as u64 ^ (std::process::id() as u64) << 20 | 1;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);

    watchdog(WATCHDOG, move || {
        let started = Instant::now();
        let mut next_inc = 0u64;
        let mut producers: Vec<Child> = (0..n_producers)
            .map(|_| {
                next_inc += 1;
                spawn_producer(&name, &books_name, next_inc - 1)
            })
            .collect();
        let mut consumers: Vec<Child> = (0..n_consumers)
            .map(|_| spawn_consumer(&name, &books_name))
            .collect();
        let (mut producer_kills, mut consumer_kills) = (0, 0);
        for _ in 0..KILLS {
            std::thread::sleep(Duration::from_micros(rng.below(8_000)));
            // Replace producers that finished their values.
            for p in producers.iter_mut() {
                if let Some(exit) = p.wait_timeout(Duration::ZERO) {
                    assert_eq!(exit, Exit::Code(0), "a producer failed");
                    assert!(next_inc < MAX_INC);
                    next_inc += 1;
                    *p = spawn_producer(&name, &books_name, next_inc - 1);
                }
            }
            let victim = rng.below((n_producers + n_consumers) as u64) as usize;
            if victim < n_producers {
                assert!(next_inc < MAX_INC);
                next_inc += 1;
                let inc = next_inc - 1;
                if reap_first {
                    producers.remove(victim).kill();
                    producers.insert(victim, spawn_producer(&name, &books_name, inc));
                } else {
                    let fresh = spawn_producer(&name, &books_name, inc);
                    std::mem::replace(&mut producers[victim], fresh).kill();
                }
                producer_kills += 1;
            } else {
                let slot = victim - n_producers;
                let mut old = consumers.remove(slot);
                let pid = old.pid;
                assert!(
                    old.wait_timeout(Duration::ZERO).is_none(),
                    "consumer {pid} exited on its own (it panicked)"
                );
                if reap_first {
                    old.kill();
                    consumers.insert(slot, spawn_consumer(&name, &books_name));
                } else {
                    consumers.insert(slot, spawn_consumer(&name, &books_name));
                    old.kill();
                }
                consumer_kills += 1;
            }
        }
        // Stop the producers, let the consumers catch up, then kill them too: the
        // last of the traffic is recovered by this (fresh) process.
        books.stop().store(1, Ordering::SeqCst);
        for p in producers {
            p.join_ok(Duration::from_secs(30));
        }
        std::thread::sleep(Duration::from_millis(20));
        for c in consumers {
            c.kill();
            consumer_kills += 1;
        }
        let killing = started.elapsed();
        let q = q.with_probe_interval(Duration::from_millis(2));
        loop {
            match q.get_timeout(Duration::from_millis(300)) {
                Ok(v) => books.record(v),
                Err(Error::Timeout) => break,
                Err(e) => panic!("drain: {e}"),
            }
        }
        assert_eq!(q.len(), 0, "drained queue still counts values");

        // The accounting rule.
        assert_eq!(
            books.foreign().load(Ordering::SeqCst),
            0,
            "a torn or foreign value arrived"
        );
        let (mut put, mut lost, mut dup, mut in_flight_delivered) = (0u64, 0u64, 0u64, 0u64);
        for inc in 0..next_inc {
            let done = books.done(inc).load(Ordering::SeqCst);
            put += done;
            for seq in 0..PER {
                let n = books.recv(inc, seq).load(Ordering::SeqCst);
                if n > 1 {
                    dup += 1;
                }
                if seq < done && n == 0 {
                    lost += 1;
                }
                if seq == done && n == 1 {
                    // Its producer died after the put returned, before recording it.
                    in_flight_delivered += 1;
                }
                assert!(
                    seq <= done || n == 0,
                    "value {seq} of incarnation {inc} was delivered but never put"
                );
            }
        }
        let stats = q.recovery_stats();
        println!(
            "{KILLS} kills ({producer_kills} producers, {consumer_kills} consumers) in {killing:?}; \
             {put} values put, {lost} lost in a consumer's last instant, {in_flight_delivered} \
             delivered from dying producers; {} tombstones skipped, {} re-delivered, {} leases \
             passed on from dead holders",
            stats.skipped, stats.redelivered, stats.leases_passed
        );
        assert!(put > 1000, "too little traffic to mean anything: {put}");
        assert_eq!(dup, 0, "values were delivered twice");
        // A consumer killed between its get returning and recording the value loses
        // it from the books (not from the queue): at most one per consumer kill (a
        // batch get may hold up to 8).
        assert!(
            lost <= consumer_kills * 8,
            "{lost} values lost with only {consumer_kills} consumer kills"
        );

        // Still works at full capacity.
        let cap = q.capacity() as u64;
        for i in 0..cap {
            q.try_put(i).unwrap();
        }
        assert!(q.is_full());
        assert!(matches!(q.try_put(cap), Err(Error::Full)));
        for i in 0..cap {
            assert_eq!(q.try_get().unwrap(), i);
        }
        assert!(matches!(q.try_get(), Err(Error::Empty)));
        stats
    })
}

/// Large test messages: `BIG` bytes all equal to a per-message counter, so a torn
/// message (parts of two messages, or a half-written one) mixes two values.
const BIG: usize = 1 << 20;

fn intact(buf: &[u8]) -> bool {
    buf.len() == BIG && buf.iter().all(|&b| b == buf[0])
}

/// Tries per [`kill_mid_copy`]: a kill lands mid-copy in about a quarter of them (the
/// rest find the victim waiting for its peers), so 40 fail together about once in
/// 10^5 runs.
const ATTEMPTS: u64 = 40;

/// Runs a child that streams large messages through `q` against this
/// process, kills it after a while, and drains what is left (checking every message
/// is whole) until `done(stats)`; retries up to [`ATTEMPTS`] times, since a kill may
/// land outside the copy.
fn kill_mid_copy(
    prefix: &str,
    victim_produces: bool,
    done: impl Fn(multiproc::raw::queue::RecoveryStats) -> bool,
) {
    for attempt in 0..ATTEMPTS {
        let name = unique(prefix);
        let q = ByteQueue::create(&name, 2, BIG)
            .unwrap()
            .with_probe_interval(Duration::from_millis(2));
        let n2 = name.clone();
        let mut child = fork(move || {
            let q = ByteQueue::open(&n2).unwrap();
            // Three messages filled once, put in turn: the victim spends its time in
            // the copy (not in refilling), and a slot of the 2-slot ring never holds
            // the same one twice in a row, so a torn copy mixes two values.
            let msgs: Vec<Vec<u8>> = (1..=3u8).map(|v| vec![v; BIG]).collect();
            let mut buf = Vec::new();
            let mut k = 0;
            loop {
                if victim_produces {
                    q.put(&msgs[k % 3]).unwrap();
                    k += 1;
                } else {
                    q.get_into_vec(&mut buf).unwrap();
                }
            }
        });
        // The other side: two threads of this process, so that the victim never waits
        // and spends its time copying; until told to stop.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let peers: Vec<_> = (0..2u8)
            .map(|k| {
                let (q2, stop2) = (q.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut msg = vec![k * 128; BIG];
                    let mut buf = Vec::new();
                    while !stop2.load(Ordering::SeqCst) {
                        let next = msg[0].wrapping_add(1);
                        msg.fill(next);
                        if victim_produces {
                            match q2.get_into_vec_timeout(&mut buf, Duration::from_millis(10)) {
                                Ok(_) => assert!(intact(&buf), "a torn message arrived"),
                                Err(Error::Timeout) => {}
                                Err(e) => panic!("{e}"),
                            }
                        } else {
                            let _ = q2.put_timeout(&msg, Duration::from_millis(10));
                        }
                    }
                })
            })
            .collect();
        // Past start-up (slow in a debug build), then at varying points of the traffic.
        std::thread::sleep(Duration::from_millis(150 + 17 * (attempt % 10)));
        assert!(
            child.wait_timeout(Duration::ZERO).is_none(),
            "the child failed"
        );
        child.kill();
        stop.store(true, Ordering::SeqCst);
        for p in peers {
            p.join().unwrap();
        }
        // Drain: everything left is whole, recovered claims included.
        let mut buf = Vec::new();
        let mut drained = 0;
        loop {
            match q.get_into_vec_timeout(&mut buf, Duration::from_millis(150)) {
                Ok(_) => {
                    drained += 1;
                    assert!(intact(&buf), "a torn message arrived")
                }
                Err(Error::Timeout) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(q.is_empty());
        let stats = q.recovery_stats();
        println!("attempt {attempt}: {stats:?}, drained {drained}");
        if done(stats) {
            // The queue works on.
            q.put(b"after").unwrap();
            assert_eq!(q.get().unwrap(), b"after");
            return;
        }
    }
    panic!("no kill landed mid-copy in {ATTEMPTS} attempts");
}

/// A producer killed in the middle of copying a large message in leaves a tombstone
/// that consumers skip; every message delivered is whole.
#[test]
fn producer_killed_mid_copy_leaves_a_skipped_tombstone() {
    watchdog(WATCHDOG, || {
        kill_mid_copy("crash-bq-p", true, |s| s.skipped == 1 && s.redelivered == 0)
    });
}

/// A consumer killed while copying a large message out: the message is re-delivered,
/// whole, to the next consumer.
#[test]
fn consumer_killed_mid_copy_has_its_message_redelivered() {
    watchdog(WATCHDOG, || {
        kill_mid_copy("crash-bq-c", false, |s| {
            s.redelivered == 1 && s.skipped == 0
        })
    });
}

/// With a 10 s probe interval a waiting get's timed probes fall at about 0.6, 1.9, 4.4
/// and 9.4 s into its wait: a claimant that dies 4.5 s in would be found at 9.4 s.
const SLOW_PROBE: Duration = Duration::from_secs(10);

/// A ring of 4 one-word slots over a shared segment: the header, then the slots;
/// with or without leases (a sole consumer holds a lease rather than claims).
fn ring_in(seg: &Segment, leases: bool) -> multiproc::raw::queue::Ring<'_> {
    use multiproc::raw::queue::{region_words, RawQueue, Ring};
    let hdr = std::mem::size_of::<RawQueue>().next_multiple_of(128);
    let n = region_words(4, 1).unwrap();
    assert!(hdr + n * 8 + 8 <= seg.len());
    // SAFETY: the segment is 128-aligned, zero-filled (an empty ring) and long enough
    // for the header and `n` words; it is only used atomically, while `seg` lives.
    let (q, words) = unsafe {
        (
            &*(seg.as_ptr() as *const RawQueue),
            std::slice::from_raw_parts(seg.as_ptr().add(hdr) as *const AtomicU64, n),
        )
    };
    Ring::new(q, words, 4, 1).unwrap().with_leases(leases)
}

/// A word after the ring, for the test's own signals.
fn flag_in(seg: &Segment) -> &AtomicU64 {
    // SAFETY: within the segment (checked in `ring_in`'s sizing), 8-aligned.
    unsafe { &*(seg.as_ptr().add(seg.len() - 8) as *const AtomicU64) }
}

#[test]
fn a_consumer_killed_holding_its_claim_is_redelivered_to_a_long_wait_before_the_next_timed_probe() {
    killed_consumer_is_found_by_a_long_wait(false);
}

/// The same with the victim as the ring's sole consumer, holding its lease: the
/// waiting get's revocation waits for the holder's operation in flight, and the
/// death watcher (watching the holder) ends that wait.
#[test]
fn a_sole_consumer_killed_mid_get_is_found_by_a_long_wait_before_the_next_timed_probe() {
    killed_consumer_is_found_by_a_long_wait(true);
}

fn killed_consumer_is_found_by_a_long_wait(leases: bool) {
    use multiproc::raw::queue::{region_words, RawQueue, TakeWith, WaitPolicy};
    use multiproc::sys::ident::current;
    let len =
        std::mem::size_of::<RawQueue>().next_multiple_of(128) + region_words(4, 1).unwrap() * 8 + 8;
    let seg = Segment::create(&unique("queue-watch"), len).unwrap();
    ring_in(&seg, leases)
        .put(current(), None, &mut WaitPolicy::default(), |p| {
            p[0].store(42, Ordering::Relaxed)
        })
        .unwrap();
    let s2 = seg.clone();
    let mut victim = fork(move || {
        // Claims the message, then stalls inside the copy until killed.
        let mut take = TakeWith(|_: &[AtomicU64]| {
            flag_in(&s2).store(1, Ordering::SeqCst);
            std::thread::sleep(WATCHDOG);
        });
        let _ = ring_in(&s2, leases).get(current(), None, &mut WaitPolicy::default(), &mut take);
        0
    });
    while flag_in(&seg).load(Ordering::SeqCst) == 0 {
        assert!(victim.wait_timeout(Duration::from_millis(1)).is_none());
    }
    let s3 = seg.clone();
    let waiter = std::thread::spawn(move || {
        let mut policy = WaitPolicy::new(64, SLOW_PROBE);
        let mut take = TakeWith(|p: &[AtomicU64]| p[0].load(Ordering::Relaxed));
        ring_in(&s3, leases)
            .get(current(), None, &mut policy, &mut take)
            .ok()
    });
    std::thread::sleep(Duration::from_millis(4500));
    let killed = Instant::now();
    victim.kill();
    let got = watchdog(WATCHDOG, move || waiter.join().unwrap());
    assert_eq!(got, Some(42), "the stranded message is delivered again");
    let took = killed.elapsed();
    // A claimant is found by the scan the watcher triggers; a lease holder by the
    // watch on the holder itself, at once (its naps run to a second and more here).
    let bound = if leases {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(2)
    };
    assert!(
        took < bound,
        "redelivered {took:?} after the kill: not woken by the death watcher"
    );
}
