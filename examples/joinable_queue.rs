//! `JoinableQueue`: consumers call `task_done()` for every item; `join()` returns
//! once every item put has been processed.
//!
//! ```python
//! def worker(q):
//!     while True:
//!         item = q.get()
//!         print(f"worker processed {item}")
//!         q.task_done()
//!
//! q = multiprocessing.JoinableQueue()
//! for _ in range(2):
//!     multiprocessing.Process(target=worker, args=(q,), daemon=True).start()
//! for item in range(10):
//!     q.put(item)
//! q.join()                          # blocks until all 10 items are task_done()
//! print("all tasks done")
//! ```
//!
//! Unlike Python's, this `join` does not hang if a consumer dies holding an item: the
//! item counts as abandoned (see `JoinableQueue::abandoned_tasks`).
use multiproc::{JoinableQueue, ProcessBuilder, Value};
use std::time::Duration;

fn worker(id: u32, q: &JoinableQueue<u32>, done: &Value<u64>) -> multiproc::Result<()> {
    loop {
        let item = q.get()?;
        std::thread::sleep(Duration::from_millis(5));
        println!("worker {id} processed {item}");
        done.fetch_add(1);
        q.task_done()?;
    }
}

fn main() -> multiproc::Result<()> {
    let q: JoinableQueue<u32> = JoinableQueue::anonymous(16)?;
    let done: Value<u64> = Value::anonymous(0)?;
    // Daemons: they loop forever and die with this process.
    let workers: Vec<_> = (1..=2)
        .map(|id| {
            ProcessBuilder::new()
                .daemon(true)
                .fork(|| worker(id, &q, &done))
        })
        .collect::<multiproc::Result<_>>()?;
    for item in 0..10 {
        q.put(item)?;
    }
    q.join();
    println!(
        "all tasks done: {} processed, {} unfinished",
        done.get(),
        q.unfinished_tasks()
    );
    for w in &workers {
        assert!(w.is_alive());
    }
    Ok(())
}
