//! Tour section: named segments, `Value<T>` and `Array<T>` across real processes.

use crate::common::{fork, name, section, wait};
use multiproc::{Array, Lock, Queue, Segment, Value};
use std::time::Instant;

pub fn run() -> multiproc::Result<()> {
    section("foundation: named segments, Value<T>, Array<T>");

    // A named segment: a child process attaches by name and reads what we wrote.
    let seg_name = name("seg");
    let seg = Segment::create(&seg_name, 64)?;
    // SAFETY: 5 bytes in bounds; the child starts after this write.
    unsafe { std::ptr::copy_nonoverlapping(b"hello".as_ptr(), seg.as_ptr(), 5) };
    let child = fork(|| {
        let seg = Segment::open(&seg_name).unwrap();
        // SAFETY: 5 bytes in bounds, written before the fork.
        let got = unsafe { std::slice::from_raw_parts(seg.as_ptr(), 5) };
        i32::from(got != b"hello")
    });
    println!(
        "  Segment '{seg_name}' ({} bytes): child read it by name -> exit {}",
        seg.len(),
        wait(child)
    );

    // Value<u64>: four processes count to 4 x 1M with lock-free fetch_add.
    const N: u64 = 1_000_000;
    let hits: Value<u64> = Value::create(&name("hits"), 0)?;
    let t = Instant::now();
    let kids: Vec<_> = (0..4)
        .map(|_| {
            let hits_name = hits.name().to_owned();
            fork(move || {
                let hits: Value<u64> = Value::open(&hits_name).unwrap();
                for _ in 0..N {
                    hits.fetch_add(1);
                }
                0
            })
        })
        .collect();
    let failed = kids.into_iter().map(wait).filter(|&c| c != 0).count();
    let dt = t.elapsed();
    println!(
        "  Value<u64> fetch_add from 4 processes: {} (expected {}, {failed} failures), {:.0} M/s incl. fork",
        hits.get(),
        4 * N,
        (4 * N) as f64 / dt.as_secs_f64() / 1e6
    );

    // Value<[u64; 8]>: a seqlock — readers never see a torn value while a writer runs.
    let block: Value<[u64; 8]> = Value::create(&name("block"), [0; 8])?;
    let stop: Value<u32> = Value::anonymous(0)?;
    let (bw, sw) = (block.clone(), stop.clone());
    let writer = fork(move || {
        let mut k = 1;
        while sw.get() == 0 {
            bw.set([k; 8]);
            k += 1;
        }
        0
    });
    let (mut reads, mut torn) = (0u64, 0u64);
    let t = Instant::now();
    while t.elapsed().as_millis() < 300 {
        let x = block.get();
        torn += u64::from(x.iter().any(|&w| w != x[0]));
        reads += 1;
    }
    let rate = reads as f64 / t.elapsed().as_secs_f64();
    stop.set(1);
    wait(writer);
    println!(
        "  Value<[u64; 8]> read while another process writes: {:.1} M reads/s, {torn} torn",
        rate / 1e6
    );

    // Array<f64>: children fill their own slots; a guard edits the whole array.
    let arr: Array<f64> = Array::create(&name("arr"), 4)?;
    let kids: Vec<_> = (0..4)
        .map(|i| {
            let arr = arr.clone();
            fork(move || {
                arr.set(i, (i as f64).sqrt()).unwrap();
                arr.update(i, |x| *x *= 10.0).unwrap();
                0
            })
        })
        .collect();
    kids.into_iter().for_each(|k| {
        wait(k);
    });
    {
        let mut g = arr.lock(); // a private copy, written back on drop
        g.reverse();
    }
    let shown: Vec<String> = arr.to_vec().iter().map(|x| format!("{x:.2}")).collect();
    println!(
        "  Array<f64> filled by 4 children, reversed under lock(): [{}]",
        shown.join(", ")
    );

    nothing_left_behind()?;
    // Every handle above was created here: dropping them unlinks the names.
    Ok(())
}

/// A creator that crashes leaves its objects behind: `list()` shows them as orphans,
/// `create` of the same name reclaims one (a crashed service restarts), `gc()` removes
/// the rest.
fn nothing_left_behind() -> multiproc::Result<()> {
    let (qn, ln) = (name("crashed-jobs"), name("crashed-lock"));
    let crashed = fork(|| {
        let q: Queue<u64> = Queue::create(&qn, 16).unwrap();
        q.put(1).unwrap();
        let _l = Lock::create(&ln).unwrap();
        // SAFETY: raise has no preconditions; SIGKILL ends us here, no destructor runs.
        unsafe { libc::raise(libc::SIGKILL) };
        0
    });
    println!(
        "  a service created '{qn}' and '{ln}', then was SIGKILLed (exit {})",
        wait(crashed)
    );
    for i in multiproc::list()?
        .iter()
        .filter(|i| i.name == qn || i.name == ln)
    {
        println!(
            "  list(): {:<28} {:<6} creator {} alive={} in_use={} orphan={}",
            i.name,
            i.kind_name(),
            i.creator_pid,
            i.creator_alive,
            i.in_use,
            i.orphan
        );
    }
    let q: Queue<u64> = Queue::create(&qn, 16)?;
    println!(
        "  restarted: Queue::create('{qn}') reclaimed the orphan -> a fresh queue of len {}",
        q.len()
    );
    std::thread::sleep(multiproc::segment::GC_MIN_AGE);
    let removed = multiproc::gc()?;
    println!(
        "  gc() removed '{ln}': {}; the restarted queue is in use and stays: {}",
        removed.contains(&ln),
        !removed.contains(&qn)
    );
    Ok(())
}
