//! A pool inside a multi-threaded program: one thread holds a `Mutex`, another
//! prints in a loop, and the main thread runs a `Pool` — whose workers must not
//! inherit those locks held.
//!
//! ```python
//! import multiprocessing as mp, threading, time
//!
//! def work(n):
//!     with state_lock:                 # a fresh lock in each worker
//!         return n * n
//!
//! if __name__ == "__main__":
//!     mp.set_start_method("forkserver")   # Python 3.14's default on Linux
//!     threading.Thread(target=hold_the_lock, daemon=True).start()
//!     threading.Thread(target=print_forever, daemon=True).start()
//!     with mp.Pool(2) as pool:
//!         print(pool.map(work, range(8)))
//! ```
//!
//! `multiproc::init()` on the first line of `main` starts the fork server while the
//! program still has one thread. Once other threads run, the default start method
//! is `ForkServer` (`Fork` only while the process is single-threaded), so the
//! workers come from that clean server, never from a fork of this process: the held
//! `Mutex` and stdout's lock do not exist in them. Try
//! `.start_method(StartMethod::Fork)`: a worker would block on `STATE` forever.
use multiproc::{Pool, StartMethod};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

static STATE: Mutex<u64> = Mutex::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

fn work(n: u64) -> u64 {
    // In a worker this is the worker's own, unlocked copy of STATE.
    let mut s = STATE.lock().unwrap();
    *s += 1;
    println!("worker {} squares {n}", multiproc::current_process().pid());
    n * n
}

fn main() -> multiproc::Result<()> {
    multiproc::init();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let _g = STATE.lock().unwrap();
        held_tx.send(()).unwrap();
        while !STOP.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let printer = std::thread::spawn(|| {
        let mut ticks = 0u64;
        while !STOP.load(Ordering::Relaxed) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "tick {ticks}");
            ticks += 1;
            drop(out);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    held_rx.recv().unwrap();
    let method = multiproc::get_start_method();
    assert_eq!(
        method,
        StartMethod::ForkServer,
        "threads run: the default is safe"
    );
    println!("start method: {method:?}");
    let pool = Pool::builder().workers(2).build()?;
    let squares = pool.map(work, 0..8)?;
    pool.close();
    pool.join()?;
    STOP.store(true, Ordering::Relaxed);
    holder.join().unwrap();
    printer.join().unwrap();
    println!("squares: {squares:?}");
    Ok(())
}
