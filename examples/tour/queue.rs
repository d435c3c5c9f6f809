//! Tour section: queue — `Queue<T>`, `JoinableQueue<T>`, `ByteQueue`, across processes,
//! including producers and consumers that are SIGKILLed.

use crate::common::{fork, name, section, wait};
use multiproc::{ByteQueue, Error, JoinableQueue, Queue};
use std::time::{Duration, Instant};

pub fn run() -> multiproc::Result<()> {
    section("queue: Queue<T>, JoinableQueue<T>, ByteQueue");
    mpmc()?;
    crash()?;
    joinable()?;
    bytes()?;
    Ok(())
}

/// Two producer and two consumer processes, every value accounted for.
fn mpmc() -> multiproc::Result<()> {
    let qn = name("q");
    let q: Queue<u64> = Queue::create(&qn, 1000)?;
    let sums: Queue<u64> = Queue::create(&name("q-sums"), 4)?;
    const N: u64 = 1_000_000;
    let start = Instant::now();
    let mut kids: Vec<_> = (0..2)
        .map(|p| {
            let qn = qn.clone();
            fork(move || {
                let q: Queue<u64> = Queue::open(&qn).unwrap();
                (p..N).step_by(2).for_each(|i| q.put(i).unwrap());
                0
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, sums) = (q.clone(), sums.clone());
            fork(move || {
                let mut s = 0u64;
                while let Ok(v) = q.get() {
                    s += v;
                }
                sums.put(s).unwrap();
                0
            })
        })
        .collect();
    for k in kids.drain(..) {
        wait(k);
    }
    q.close(); // consumers drain what is left, then get Err(Closed)
    let total: u64 = (0..2).map(|_| sums.get().unwrap()).sum();
    for k in consumers {
        wait(k);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  Queue<u64> '{qn}' (capacity {}): 2 producer + 2 consumer processes moved {N} values \
         in {:.0} ms ({:.1} M/s); sum exact: {}",
        q.capacity(),
        secs * 1e3,
        N as f64 / secs / 1e6,
        total == N * (N - 1) / 2
    );
    Ok(())
}

/// A consumer SIGKILLed while traffic flows: nothing is lost or duplicated.
fn crash() -> multiproc::Result<()> {
    let q: Queue<u64> = Queue::create(&name("q-crash"), 64)?;
    let victim = fork({
        let q = q.clone();
        move || loop {
            let v = q.get().unwrap();
            q.put(v).unwrap(); // takes values and puts them back, forever
        }
    });
    for i in 0..64 {
        q.put(i)?;
    }
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: our own child.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    wait(victim);
    let q = q.with_probe_interval(Duration::from_millis(2));
    let mut seen = vec![0u32; 64];
    loop {
        match q.get_timeout(Duration::from_millis(100)) {
            Ok(v) => seen[v as usize] += 1,
            Err(Error::Timeout) => break,
            Err(e) => return Err(e),
        }
    }
    let once = seen.iter().filter(|&&n| n == 1).count();
    let dup = seen.iter().any(|&n| n > 1);
    println!(
        "  consumer SIGKILLed mid-traffic: {once}/64 values back exactly once{} \
         (missing ones were in the dead process's hands after its get returned); \
         recovery: {:?}",
        if dup { ", DUPLICATES!" } else { ", none twice" },
        q.recovery_stats()
    );
    for i in 0..q.capacity() as u64 {
        q.try_put(i)?;
    }
    println!(
        "  ...and the queue still fills to capacity: len {} / {}",
        q.len(),
        q.capacity()
    );
    Ok(())
}

/// Workers call task_done; join waits — and does not hang on a worker that died.
fn joinable() -> multiproc::Result<()> {
    let jn = name("jq");
    let q: JoinableQueue<u32> = JoinableQueue::create(&jn, 64)?;
    for job in 0..20 {
        q.put(job)?;
    }
    let worker = |die: bool| {
        let jn = jn.clone();
        fork(move || {
            let q: JoinableQueue<u32> = JoinableQueue::open(&jn).unwrap();
            while let Ok(_job) = q.get_timeout(Duration::from_millis(200)) {
                if die {
                    // SAFETY: ends this process abruptly, holding one task.
                    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                }
                std::thread::sleep(Duration::from_millis(1));
                q.task_done().unwrap();
            }
            0
        })
    };
    let kids = [worker(true), worker(false), worker(false)];
    let t = Instant::now();
    let joined = q.join_timeout(Duration::from_secs(10));
    println!(
        "  JoinableQueue: 20 tasks, 3 workers, one SIGKILLed holding a task: join() -> {joined} \
         after {:.0} ms; abandoned tasks: {}",
        t.elapsed().as_secs_f64() * 1e3,
        q.abandoned_tasks()
    );
    for k in kids {
        wait(k);
    }
    Ok(())
}

/// Variable-length and typed messages.
fn bytes() -> multiproc::Result<()> {
    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    struct Job {
        id: u32,
        path: String,
    }
    let (req, rep) = (name("bq-req"), name("bq-rep"));
    let q = ByteQueue::create(&req, 16, 4096)?;
    let answers = ByteQueue::create(&rep, 16, 4096)?;
    let child = fork({
        let (req, rep) = (req.clone(), rep.clone());
        move || {
            let (q, answers) = (
                ByteQueue::open(&req).unwrap(),
                ByteQueue::open(&rep).unwrap(),
            );
            let job: Job = q.recv().unwrap();
            let reply = format!("done {} ({})", job.id, job.path);
            answers.put(reply.as_bytes()).unwrap();
            0
        }
    });
    q.send(&Job {
        id: 7,
        path: "/tmp/in.png".into(),
    })?;
    let mut buf = [0u8; 4096];
    let n = answers.get_into_timeout(&mut buf, Duration::from_secs(5))?;
    wait(child);
    println!(
        "  ByteQueue: typed send/recv (postcard) to a child, reply via get_into: {:?}; \
         5000-byte put -> {}",
        String::from_utf8_lossy(&buf[..n]),
        match q.put(&[0; 5000]) {
            Err(Error::TooLarge { len, max }) => format!("TooLarge {{ len: {len}, max: {max} }}"),
            other => format!("{other:?}"),
        }
    );
    Ok(())
}
