//! Rows for the sync section: Lock against a process-shared robust pthread mutex and
//! Python's `mp.Lock`; recovery from a SIGKILLed holder against glibc's robust
//! mutex; Event and Semaphore round trips against the spin floor and a futex-only
//! ping-pong implemented here.
use crate::common::{
    fmt_dur, fmt_rate, fork_peer, py_get, ratio, section, value, Ctx, Goal, SharedMap,
};
use multiproc::sync::Identity;
use multiproc::sys::{futex, ident};
use multiproc::{Barrier, Condition, Event, Lock, RLock, Segment, Semaphore};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn name(what: &str) -> String {
    format!("bench-sync-{what}-{}", std::process::id())
}

/// A `PTHREAD_PROCESS_SHARED` + `PTHREAD_MUTEX_ROBUST` mutex at the start of a
/// named segment: the same kind of mapping our `Lock` lives in.
struct RobustMutex {
    seg: Segment,
}

impl RobustMutex {
    fn new(what: &str) -> RobustMutex {
        let seg = Segment::create(&name(what), 128).expect("segment");
        let m = seg.as_ptr().cast::<libc::pthread_mutex_t>();
        // SAFETY: the segment holds 128 zeroed bytes, 128-aligned, enough for a
        // pthread_mutex_t; the attribute object lives on our stack.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            assert_eq!(
                libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                0
            );
            assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        RobustMutex { seg }
    }
    fn ptr(&self) -> *mut libc::pthread_mutex_t {
        self.seg.as_ptr().cast()
    }
    /// Locks; true if the previous owner died (EOWNERDEAD, made consistent again).
    fn lock(&self) -> bool {
        // SAFETY: initialised in `new`, mapped while `self` lives.
        match unsafe { libc::pthread_mutex_lock(self.ptr()) } {
            0 => false,
            libc::EOWNERDEAD => {
                // SAFETY: we hold it, as EOWNERDEAD says.
                unsafe { libc::pthread_mutex_consistent(self.ptr()) };
                true
            }
            e => panic!("pthread_mutex_lock: {e}"),
        }
    }
    /// Locks with a timeout (`pthread_mutex_timedlock`, CLOCK_REALTIME): 0,
    /// `ETIMEDOUT`, or another error number.
    fn timed_lock(&self, timeout: Duration) -> i32 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        let ns = ts.tv_nsec as u64 + timeout.subsec_nanos() as u64;
        ts.tv_sec += timeout.as_secs() as libc::time_t + (ns / 1_000_000_000) as libc::time_t;
        ts.tv_nsec = (ns % 1_000_000_000) as libc::c_long;
        // SAFETY: initialised in `new`, mapped while `self` lives; `ts` outlives the call.
        unsafe { libc::pthread_mutex_timedlock(self.ptr(), &ts) }
    }
    fn unlock(&self) {
        // SAFETY: held by the calling thread.
        unsafe { libc::pthread_mutex_unlock(self.ptr()) };
    }
}

/// Nanoseconds per call of `f`, best of five runs of 2M calls (the machine is
/// shared: noise only adds time), as a float: these are single-digit ns.
fn ns_per_op(mut f: impl FnMut()) -> f64 {
    const N: u32 = 2_000_000;
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / f64::from(N)
        })
        .fold(f64::MAX, f64::min)
}

/// Two processes each run `crit` `n` times, starting together; returns calls/s and
/// checks the counter they incremented under the lock.
fn two_process_increments(n: u64, crit: impl Fn(&AtomicU64)) -> f64 {
    let map = SharedMap::new(4096);
    let (counter, start) = (map.atomic(0), map.atomic(128));
    let peer = fork_peer(|| {
        while start.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        for _ in 0..n {
            crit(counter);
        }
    });
    let t = Instant::now();
    start.store(1, Ordering::Release);
    for _ in 0..n {
        crit(counter);
    }
    assert!(peer.join(), "peer failed");
    let d = t.elapsed();
    assert_eq!(counter.load(Ordering::Relaxed), 2 * n, "lost increments");
    (2 * n) as f64 / d.as_secs_f64()
}

/// Median and 90th percentile of a set of latencies.
#[derive(Clone, Copy)]
pub struct Latency {
    pub median: Duration,
    pub p90: Duration,
}

impl Latency {
    pub fn of(mut v: Vec<Duration>) -> Latency {
        v.sort();
        let p90 = (v.len() * 9 / 10).min(v.len() - 1);
        Latency {
            median: v[v.len() / 2],
            p90: v[p90],
        }
    }
}

/// Time from SIGKILLing a holder to the waiting acquirer holding the lock, over
/// `trials`. `hold` runs in the doomed child (it takes the lock and keeps it); `take`
/// runs in the parent and must report that it recovered the lock from a dead owner.
pub fn recovery_latency(trials: u32, hold: impl Fn(), take: impl Fn() -> bool) -> Latency {
    recovery_latency_with(
        trials,
        |holding| {
            hold();
            holding.store(1, Ordering::SeqCst);
        },
        take,
    )
}

/// [`recovery_latency`] for a `hold` that reports holding itself (stores 1 into its
/// argument), e.g. from inside a call that never returns.
pub fn recovery_latency_with(
    trials: u32,
    hold: impl Fn(&AtomicU64),
    take: impl Fn() -> bool,
) -> Latency {
    let map = SharedMap::new(4096);
    let holding = map.atomic(0);
    let mut lat = Vec::new();
    for trial in 0..trials {
        holding.store(0, Ordering::SeqCst);
        let holder = fork_peer(|| {
            hold(holding);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        while holding.load(Ordering::SeqCst) == 0 {
            std::hint::spin_loop();
        }
        // Kill at a varying moment 20..40 ms into the wait, so that the waiter is at
        // a random point of its probe interval (not just after it started waiting).
        let delay = Duration::from_millis(20 + u64::from(trial * 7 % 20));
        let pid = holder.pid();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let t0 = Instant::now();
            // SAFETY: `pid` is our live child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            t0
        });
        assert!(take(), "the acquirer did not see the owner die");
        let t1 = Instant::now();
        lat.push(t1 - killer.join().unwrap());
        drop(holder); // reaps it
    }
    Latency::of(lat)
}

/// Goal for the median time from a holder's death to the waiter's recovery.
const RECOVERY_GOAL: Duration = Duration::from_millis(1);

/// Prints a kind's recovery rows: median and p90, the median against the goal and
/// against glibc's robust mutex.
pub fn recovery_rows(kind: &str, ours: Latency, glibc: Latency) {
    value(
        &format!("{kind}: SIGKILL -> recovered, median / p90"),
        format!("{} / {}", fmt_dur(ours.median), fmt_dur(ours.p90)),
    );
    ratio(
        &format!("{kind} recovery median / 1 ms goal"),
        ours.median.as_secs_f64(),
        RECOVERY_GOAL.as_secs_f64(),
        Goal::AtMost(1.0),
    );
    ratio(
        &format!("{kind} recovery median / glibc robust mutex"),
        ours.median.as_secs_f64(),
        glibc.median.as_secs_f64(),
        Goal::None,
    );
}

/// glibc's robust mutex recovery latency (the kernel's robust list), the reference
/// every recovery row is set against.
pub fn glibc_recovery(trials: u32) -> Latency {
    let pdead = RobustMutex::new(&format!("pthread-dead-{trials}"));
    recovery_latency(
        trials,
        || assert!(!pdead.lock()),
        || {
            let died = pdead.lock();
            pdead.unlock();
            died
        },
    )
}

/// CPU time (user + system, every thread) of the calling process so far.
fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is writable.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU share (in %) of a forked waiter process while `wait` waits about 1 s for a
/// lock that a live holder (forked, running `hold`) keeps all along. Every thread
/// of the waiter counts (the death watcher's too).
fn waiter_cpu(hold: impl Fn(&AtomicU64), wait: impl Fn(&AtomicU64)) -> f64 {
    let map = SharedMap::new(4096);
    let (holding, info, out) = (map.atomic(0), map.atomic(128), map.atomic(256));
    let holder = fork_peer(|| {
        hold(info);
        holding.store(1, Ordering::SeqCst);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    while holding.load(Ordering::SeqCst) == 0 {
        std::hint::spin_loop();
    }
    let waiter = fork_peer(|| {
        let (c0, t0) = (cpu_time(), Instant::now());
        wait(info);
        let (cpu, wall) = (cpu_time() - c0, t0.elapsed());
        out.store(
            (cpu.as_secs_f64() / wall.as_secs_f64() * 1e9) as u64,
            Ordering::SeqCst,
        );
    });
    assert!(waiter.join(), "waiter failed");
    drop(holder);
    out.load(Ordering::SeqCst) as f64 / 1e7
}

/// The probe-only waiter as it was before the death watcher: futex sleeps on a word
/// nobody changes, a `/proc` liveness probe after 1.25 ms, then at doubling intervals
/// up to 10 ms (the default probe interval), for `total`.
fn probe_only_wait(holder: Identity, total: Duration) {
    let word = AtomicU32::new(1);
    let end = Instant::now() + total;
    let mut interval = Duration::from_micros(1250);
    while Instant::now() < end {
        let next = multiproc::sys::clock::Instant::now().add(interval);
        futex::wait(&word, 1, Some(next));
        assert!(!ident::is_dead(holder), "the live holder was judged dead");
        interval = (interval * 2).min(Duration::from_millis(10));
    }
}

/// Recovery from a dead holder, per kind, against glibc's robust mutex; and the CPU a
/// waiter burns while a live holder keeps the lock.
fn owner_death() {
    const TRIALS: u32 = 20;
    let glibc = glibc_recovery(TRIALS);
    value(
        "glibc robust mutex: SIGKILL -> EOWNERDEAD, median / p90",
        format!("{} / {}", fmt_dur(glibc.median), fmt_dur(glibc.p90)),
    );

    let dead = Lock::create(&name("dead")).expect("lock");
    let ours = recovery_latency(
        TRIALS,
        || std::mem::forget(dead.acquire()),
        || match dead.acquire() {
            Err(died) => {
                drop(died.into_inner());
                true
            }
            Ok(_) => false,
        },
    );
    recovery_rows("Lock", ours, glibc);

    let rdead = RLock::create(&name("rdead")).expect("rlock");
    let ours = recovery_latency(
        TRIALS,
        || std::mem::forget(rdead.acquire()),
        || match rdead.acquire() {
            Err(died) => {
                drop(died.into_inner());
                true
            }
            Ok(_) => false,
        },
    );
    recovery_rows("RLock", ours, glibc);

    let cdead = Condition::create(&name("cdead")).expect("condition");
    let ours = recovery_latency(
        TRIALS,
        || std::mem::forget(cdead.acquire()),
        || match cdead.acquire() {
            Err(died) => {
                drop(died.into_inner());
                true
            }
            Ok(_) => false,
        },
    );
    recovery_rows("Condition's lock", ours, glibc);

    // A party waits (a thread of the doomed child), the parent joins it; 3 parties,
    // so nobody is released before the kill breaks the barrier.
    let bdead = Barrier::create(&name("bdead"), 3).expect("barrier");
    let ours = recovery_latency(
        TRIALS,
        || {
            let b = bdead.clone();
            std::thread::spawn(move || {
                let _ = b.wait();
            });
            while bdead.n_waiting() == 0 {
                std::hint::spin_loop();
            }
        },
        || {
            let broken = matches!(bdead.wait(), Err(multiproc::Error::Broken));
            bdead.reset();
            broken
        },
    );
    recovery_rows("Barrier party (waiting)", ours, glibc);

    // ---- waiter CPU while a live holder keeps the lock
    const WAIT: Duration = Duration::from_secs(1);
    let live = Lock::create(&name("live")).expect("lock");
    let ours = waiter_cpu(
        |_| std::mem::forget(live.acquire()),
        |_| assert!(live.acquire_timeout(WAIT).is_err(), "the live holder lost"),
    );
    let before = waiter_cpu(
        |info| info.store(ident::current().info(), Ordering::SeqCst),
        |info| probe_only_wait(Identity::from_info(info.load(Ordering::SeqCst)), WAIT),
    );
    let plive = RobustMutex::new("pthread-live");
    let glibc_cpu = waiter_cpu(
        |_| assert!(!plive.lock()),
        |_| assert_eq!(plive.timed_lock(WAIT), libc::ETIMEDOUT),
    );
    value(
        "Lock waiter CPU over 1 s while a live holder keeps it",
        format!("{ours:.3} %"),
    );
    value(
        "  same, probe-only waiter on the pre-watcher schedule",
        format!("{before:.3} %"),
    );
    value(
        "  same, glibc robust mutex (pthread_mutex_timedlock)",
        format!("{glibc_cpu:.3} %"),
    );
    ratio(
        "Lock waiter CPU / probe-only waiter (goal: no higher)",
        ours,
        before,
        Goal::AtMost(1.0),
    );
}

/// Round trips of a ping-pong between this process and a forked peer, for about
/// `budget`. `ping(i)` serves the ball and waits for it to come back; the peer runs
/// `pong(i)` for every round `i`, up to the last one the parent announces.
fn ping_pong(budget: Duration, ping: impl Fn(u64), pong: impl Fn(u64)) -> Duration {
    let map = SharedMap::new(4096);
    let last = map.atomic(0);
    last.store(u64::MAX, Ordering::SeqCst);
    let peer = fork_peer(|| {
        let mut i = 0;
        loop {
            pong(i);
            if last.load(Ordering::SeqCst) == i {
                return;
            }
            i += 1;
        }
    });
    // Warm up (both sides running), then time.
    for i in 0..100 {
        ping(i);
    }
    let mut rounds = 100;
    let t = Instant::now();
    while t.elapsed() < budget {
        for _ in 0..128 {
            ping(rounds);
            rounds += 1;
        }
    }
    let d = t.elapsed();
    last.store(rounds, Ordering::SeqCst);
    ping(rounds);
    assert!(peer.join(), "ping-pong peer failed");
    d / (rounds - 100) as u32
}

pub fn run(ctx: &mut Ctx) {
    section("sync: Lock, Event, Semaphore (robust, futex-based, across processes)");
    let py = ctx.python("sync_lock.py", &[]);

    // ---- uncontended
    let lock = Lock::create(&name("lock")).expect("lock");
    let pm = RobustMutex::new("pthread");
    let ours = ns_per_op(|| drop(lock.acquire()));
    let theirs = ns_per_op(|| {
        pm.lock();
        pm.unlock();
    });
    value("Lock acquire+release, uncontended", format!("{ours:.1} ns"));
    value(
        "pthread robust pshared mutex lock+unlock, uncontended",
        format!("{theirs:.1} ns"),
    );
    ratio(
        "Lock / pthread robust mutex (time)",
        ours,
        theirs,
        Goal::AtMost(0.8),
    );
    if let Some(ns) = py_get(&py, "lock_acquire_release_ns") {
        value(
            "Python mp.Lock acquire+release, uncontended",
            fmt_dur(Duration::from_nanos(ns as u64)),
        );
        ratio("Lock / Python mp.Lock (time)", ours, ns, Goal::None);
    }

    // ---- contended
    const N: u64 = 1_000_000;
    let ours = two_process_increments(N, |c| {
        let _g = lock.acquire();
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    });
    let theirs = two_process_increments(N, |c| {
        pm.lock();
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        pm.unlock();
    });
    value(
        "Lock, 2 processes incrementing one counter",
        format!("{}/s", fmt_rate(ours)),
    );
    value(
        "pthread robust mutex, same",
        format!("{}/s", fmt_rate(theirs)),
    );
    ratio(
        "Lock / pthread robust mutex (increments/s)",
        ours,
        theirs,
        Goal::AtLeast(1.0),
    );
    if let Some(rate) = py_get(&py, "contended_increments_per_s") {
        value("Python mp.Lock, same", format!("{}/s", fmt_rate(rate)));
    }

    owner_death();

    // ---- wake-up round trips
    let budget = Duration::from_millis(700);
    let map = SharedMap::new(4096);
    // SAFETY: offset 0 of a live shared mapping, aligned, only used atomically.
    let ball = unsafe { &*(map.ptr() as *const AtomicU32) };
    let futex_rtt = ping_pong(
        budget,
        |i| {
            let (serve, back) = ((2 * i + 1) as u32, (2 * i + 2) as u32);
            ball.store(serve, Ordering::SeqCst);
            futex::wake(ball, 1);
            while ball.load(Ordering::SeqCst) != back {
                futex::wait(ball, serve, None);
            }
        },
        |i| {
            let (serve, back) = ((2 * i + 1) as u32, (2 * i + 2) as u32);
            loop {
                let v = ball.load(Ordering::SeqCst);
                if v == serve {
                    break;
                }
                futex::wait(ball, v, None);
            }
            ball.store(back, Ordering::SeqCst);
            futex::wake(ball, 1);
        },
    );
    value(
        "futex-only ping-pong (wait/wake, no spinning), round trip",
        fmt_dur(futex_rtt),
    );

    let (a, b) = (
        Event::create(&name("ev-a")).expect("event"),
        Event::create(&name("ev-b")).expect("event"),
    );
    let event_rtt = ping_pong(
        budget,
        |_| {
            a.set();
            b.wait();
            b.clear();
        },
        |_| {
            a.wait();
            a.clear();
            b.set();
        },
    );
    value(
        "Event set -> waiter running, ping-pong round trip",
        fmt_dur(event_rtt),
    );
    ratio(
        "Event round trip / raw spin floor",
        event_rtt.as_secs_f64(),
        ctx.floor_rtt.as_secs_f64(),
        Goal::None,
    );
    ratio(
        "Event round trip / futex-only ping-pong",
        event_rtt.as_secs_f64(),
        futex_rtt.as_secs_f64(),
        Goal::AtMost(1.0),
    );

    let (s1, s2) = (
        Semaphore::create(&name("sem-1"), 0).expect("semaphore"),
        Semaphore::create(&name("sem-2"), 0).expect("semaphore"),
    );
    let sem_rtt = ping_pong(
        budget,
        |_| {
            s1.release().unwrap();
            s2.acquire().unwrap();
        },
        |_| {
            s1.acquire().unwrap();
            s2.release().unwrap();
        },
    );
    value(
        "Semaphore release -> acquire, ping-pong round trip",
        fmt_dur(sem_rtt),
    );
    ratio(
        "Semaphore round trip / raw spin floor",
        sem_rtt.as_secs_f64(),
        ctx.floor_rtt.as_secs_f64(),
        Goal::None,
    );
    ratio(
        "Semaphore round trip / futex-only ping-pong",
        sem_rtt.as_secs_f64(),
        futex_rtt.as_secs_f64(),
        Goal::AtMost(1.0),
    );
    if let Some(us) = py_get(&py, "event_rtt_us") {
        value(
            "Python mp.Event ping-pong round trip",
            fmt_dur(Duration::from_nanos((us * 1e3) as u64)),
        );
    }
}
