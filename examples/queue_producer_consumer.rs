//! Queues between processes: squares through a queue, producer/consumer, and the
//! poison pill (`None`) that tells the consumer to stop.
//!
//! ```python
//! def square(numbers, q):
//!     for n in numbers:
//!         q.put(n * n)
//! q = Queue(); p = Process(target=square, args=([1, 2, 3, 4], q)); p.start(); p.join()
//! while not q.empty():
//!     print(q.get())                                  # 1 4 9 16
//!
//! def producer(q):
//!     for i in range(5):
//!         q.put(random.randint(1, 100))
//!         time.sleep(0.2)
//! def consumer(q):
//!     while True:
//!         item = q.get()
//!         if item is None:          # 毒丸 (poison pill)
//!             break
//!         print('Consumed', item)
//! q = multiprocessing.Queue()
//! p = multiprocessing.Process(target=producer, args=(q,))
//! c = multiprocessing.Process(target=consumer, args=(q,))
//! p.start(); c.start()
//! p.join()
//! q.put(None)                  # 发毒丸 (send the pill)
//! c.join()
//! ```
//!
//! `Queue<T>` carries fixed-size values (`T: Pod`); a `ByteQueue` carries anything
//! serde can encode, such as Python's `None`-or-number (`Option<u32>`).
use multiproc::{ByteQueue, Process, Queue};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `random.randint(1, 100)`, dependency-free.
fn randint(state: &mut u64) -> u32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    1 + ((*state >> 33) % 100) as u32
}

fn square(numbers: &[u64], q: &Queue<u64>) -> multiproc::Result<()> {
    for n in numbers {
        q.put(n * n)?;
    }
    Ok(())
}

fn producer(q: &ByteQueue) -> multiproc::Result<()> {
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    for _ in 0..5 {
        let item = randint(&mut seed);
        q.send(&Some(item))?;
        println!("Produced {item}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn consumer(q: &ByteQueue) -> multiproc::Result<()> {
    loop {
        let item: Option<u32> = q.recv()?;
        let Some(item) = item else { break };
        println!("Consumed {item}");
    }
    println!("Consumer got the poison pill");
    Ok(())
}

fn main() -> multiproc::Result<()> {
    let numbers = [1, 2, 3, 4];
    let q: Queue<u64> = Queue::anonymous(16)?;
    let p = Process::fork(|| square(&numbers, &q))?;
    p.join()?;
    while !q.is_empty() {
        println!("{}", q.get()?);
    }

    let q = ByteQueue::anonymous(16, 64)?;
    let p = Process::fork(|| producer(&q))?;
    let c = Process::fork(|| consumer(&q))?;
    p.join()?;
    q.send(&None::<u32>)?; // the poison pill
    c.join()?;
    println!(
        "exit codes: producer {:?}, consumer {:?}",
        p.exitcode(),
        c.exitcode()
    );
    Ok(())
}
