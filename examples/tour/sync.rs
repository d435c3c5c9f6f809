//! Tour section: sync — robust Lock and RLock, Semaphore, BoundedSemaphore, Event,
//! Condition and Barrier, each across real processes.

use crate::common::{fork, name, section, wait};
use multiproc::{
    Barrier, BoundedSemaphore, Condition, Error, Event, Lock, RLock, Segment, Semaphore,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The `i`-th u64 of a shared segment.
fn cell(seg: &Segment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len());
    // SAFETY: in bounds, 8-aligned (segments are 128-aligned), only used atomically.
    unsafe { &*(seg.as_ptr().add(i * 8) as *const AtomicU64) }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn run() -> multiproc::Result<()> {
    section("sync: robust Lock/RLock, Semaphore, Event, Condition, Barrier");
    let seg = Segment::create(&name("sync-cells"), 64 * 8)?;

    // Lock: the tutorial counter.
    let lock = Lock::create(&name("lock"))?;
    let kids: Vec<_> = (0..4)
        .map(|_| {
            let (lock, seg) = (lock.clone(), seg.clone());
            fork(move || {
                for _ in 0..1000 {
                    let _g = lock.acquire().unwrap_or_else(|d| d.into_inner());
                    let n = cell(&seg, 0);
                    n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
                0
            })
        })
        .collect();
    let ok = kids.into_iter().all(|k| wait(k) == 0);
    println!(
        "  Lock: 4 processes x 1000 increments under the lock -> {} ({})",
        cell(&seg, 0).load(Ordering::Relaxed),
        if ok { "exact" } else { "a child failed" }
    );

    // Lock: the holder is SIGKILLed while a waiter sleeps.
    let holder = {
        let lock = lock.clone();
        fork(move || {
            std::mem::forget(lock.acquire());
            std::thread::sleep(Duration::from_secs(60));
            0
        })
    };
    while !lock.is_locked() {
        std::thread::sleep(Duration::from_micros(100));
    }
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(25));
        let t = Instant::now();
        // SAFETY: `holder` is our child.
        unsafe { libc::kill(holder, libc::SIGKILL) };
        t
    });
    let died = lock.acquire().is_err();
    let latency = killer.join().expect("killer thread").elapsed();
    wait(holder);
    println!(
        "  Lock: holder SIGKILLed -> waiter got {} after {} (probe 10 ms); clean again: {}",
        if died { "Err(OwnerDied)" } else { "Ok?!" },
        ms(latency),
        lock.try_acquire().is_ok()
    );

    // RLock: re-entrant for its thread; other threads cannot release it.
    let rlock = RLock::create(&name("rlock"))?;
    let (a, b, c) = (rlock.acquire(), rlock.acquire(), rlock.acquire());
    let depth = rlock.depth();
    let r2 = rlock.clone();
    let stranger = std::thread::spawn(move || matches!(r2.release(), Err(Error::NotOwner)));
    let refused = stranger.join().expect("thread");
    drop((a, b, c));
    println!(
        "  RLock: one thread holds it {depth} deep; release from another thread -> {}",
        if refused {
            "Err(NotOwner)"
        } else {
            "accepted?!"
        }
    );

    // Semaphore(3): never a 4th inside.
    let sem = Semaphore::create(&name("sem"), 3)?;
    let kids: Vec<_> = (0..6)
        .map(|_| {
            let (sem, seg) = (sem.clone(), seg.clone());
            fork(move || {
                for _ in 0..100 {
                    let _ = sem.acquire();
                    let inside = cell(&seg, 1).fetch_add(1, Ordering::SeqCst) + 1;
                    cell(&seg, 2).fetch_max(inside, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(50));
                    cell(&seg, 1).fetch_sub(1, Ordering::SeqCst);
                    let _ = sem.release();
                }
                0
            })
        })
        .collect();
    kids.into_iter().for_each(|k| {
        wait(k);
    });
    let bounded = BoundedSemaphore::create(&name("bsem"), 1)?;
    println!(
        "  Semaphore(3): 6 processes x 100 entries, most inside at once: {} (never 4)",
        cell(&seg, 2).load(Ordering::SeqCst)
    );
    let extra = matches!(bounded.release(), Err(Error::InvalidArgument { .. }));
    println!(
        "  BoundedSemaphore(1): a release past the initial value -> {}",
        if extra {
            "Err(InvalidArgument)"
        } else {
            "accepted?!"
        }
    );

    // Event: ping-pong between two processes, and a pulse.
    let (ping, pong) = (Event::create(&name("ping"))?, Event::create(&name("pong"))?);
    const ROUNDS: u32 = 2000;
    let peer = {
        let (ping, pong) = (ping.clone(), pong.clone());
        fork(move || {
            for _ in 0..ROUNDS {
                ping.wait();
                ping.clear();
                pong.set();
            }
            0
        })
    };
    let t = Instant::now();
    for _ in 0..ROUNDS {
        ping.set();
        pong.wait();
        pong.clear();
    }
    let rtt = t.elapsed() / ROUNDS;
    wait(peer);
    println!(
        "  Event: set -> waiter in another process running and answering: {:.1} us round trip",
        rtt.as_secs_f64() * 1e6
    );

    // Condition: producer/consumers over a bounded list in shared memory
    // (cells 8.. : [8] head, [9] tail, [10..14] slots, [14] consumed, [15] sum).
    let cond = Condition::create(&name("cond"))?;
    const ITEMS: u64 = 1000;
    let len =
        |seg: &Segment| cell(seg, 9).load(Ordering::Relaxed) - cell(seg, 8).load(Ordering::Relaxed);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (cond, seg) = (cond.clone(), seg.clone());
            fork(move || loop {
                let mut g = cond.acquire().unwrap_or_else(|d| d.into_inner());
                let _ = cond.wait_while(&mut g, |_| len(&seg) == 0);
                let h = cell(&seg, 8).load(Ordering::Relaxed);
                let v = cell(&seg, 10 + (h % 4) as usize).load(Ordering::Relaxed);
                cell(&seg, 8).store(h + 1, Ordering::Relaxed);
                cond.notify_all();
                drop(g);
                if v == 0 {
                    return 0;
                }
                cell(&seg, 14).fetch_add(1, Ordering::SeqCst);
                cell(&seg, 15).fetch_add(v, Ordering::SeqCst);
            })
        })
        .collect();
    for v in (1..=ITEMS).chain([0, 0]) {
        let mut g = cond.acquire().unwrap_or_else(|d| d.into_inner());
        let _ = cond.wait_while(&mut g, |_| len(&seg) == 4);
        let t = cell(&seg, 9).load(Ordering::Relaxed);
        cell(&seg, 10 + (t % 4) as usize).store(v, Ordering::Relaxed);
        cell(&seg, 9).store(t + 1, Ordering::Relaxed);
        cond.notify_all();
    }
    consumers.into_iter().for_each(|k| {
        wait(k);
    });
    println!(
        "  Condition: 1 producer -> 2 consumer processes through a 4-slot list: {} items, sum {}",
        cell(&seg, 14).load(Ordering::SeqCst),
        if cell(&seg, 15).load(Ordering::SeqCst) == ITEMS * (ITEMS + 1) / 2 {
            "exact"
        } else {
            "WRONG"
        }
    );

    // Barrier(3): rounds, then a party dies while the others wait.
    let barrier = Barrier::create(&name("barrier"), 3)?;
    let kids: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            fork(move || {
                for _ in 0..10 {
                    if barrier.wait().is_err() {
                        return 1;
                    }
                }
                0
            })
        })
        .collect();
    let mut sum = 0;
    for _ in 0..10 {
        sum += barrier.wait()?;
    }
    let ok = kids.into_iter().all(|k| wait(k) == 0);
    println!(
        "  Barrier(3): 3 processes x 10 rounds ({}), my arrival indices summed to {sum}",
        if ok { "all released" } else { "a party failed" }
    );
    let victim = {
        let barrier = barrier.clone();
        fork(move || {
            let _ = barrier.wait();
            0
        })
    };
    while barrier.n_waiting() < 1 {
        std::thread::sleep(Duration::from_micros(100));
    }
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(25));
        let t = Instant::now();
        // SAFETY: `victim` is our child.
        unsafe { libc::kill(victim, libc::SIGKILL) };
        t
    });
    let broken = matches!(barrier.wait(), Err(Error::Broken));
    let latency = killer.join().expect("killer thread").elapsed();
    wait(victim);
    println!(
        "  Barrier(3): a waiting party SIGKILLed -> the others got {} after {}",
        if broken { "Err(Broken)" } else { "Ok?!" },
        ms(latency)
    );
    Ok(())
}
