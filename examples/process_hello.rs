//! Process hello: start a function in a child process and wait for it.
//!
//! The tutorials' first programs, in Rust. Python (`multiprocessing`):
//!
//! ```python
//! def f(name):
//!     print('hello', name)
//! p = Process(target=f, args=('bob',)); p.start(); p.join()          # hello bob
//!
//! def worker():
//!     print('Worker start', multiprocessing.current_process().name)
//! p = multiprocessing.Process(target=worker, name='worker-A')          # Worker start worker-A
//!
//! def power(base, exp):
//!     print(f'{base}^{exp} = {base**exp}')
//! for pair in [(2, 10), (3, 5)]:
//!     multiprocessing.Process(target=power, args=pair).start()         # 2^10 = 1024 / 3^5 = 243
//!
//! def task(name):
//!     print(f"Task {name} started"); time.sleep(2); print(f"Task {name} completed")
//! process1 = Process(target=task, args=('A',)); process2 = ...('B',)
//! process1.start(); process2.start(); process1.join(); process2.join()
//! print("All tasks completed")
//! ```
//!
//! Arguments need no pickling: the closure is simply there in the forked child.
//! (Sleeps are 10x shorter than the tutorials' throughout these examples.)
use multiproc::{current_process, Process, ProcessBuilder};
use std::time::Duration;

fn f(name: &str) {
    println!("hello {name}");
}

fn worker() {
    println!("Worker start {}", current_process().name());
    std::thread::sleep(Duration::from_millis(100));
}

fn power(base: u64, exp: u32) {
    println!("{base}^{exp} = {}", base.pow(exp));
}

fn task(name: &str) {
    println!("Task {name} started, pid {}", current_process().pid());
    std::thread::sleep(Duration::from_millis(200));
    println!("Task {name} completed");
}

fn main() -> multiproc::Result<()> {
    // Template A: a function with an argument.
    let p = Process::fork(|| f("bob"))?;
    p.join()?;

    // A named process.
    let p = ProcessBuilder::new().name("worker-A").fork(worker)?;
    p.join()?;

    // Template B: several processes with arguments.
    let powers: Vec<Process> = [(2, 10), (3, 5)]
        .into_iter()
        .map(|(base, exp)| Process::fork(move || power(base, exp)))
        .collect::<multiproc::Result<_>>()?;
    for p in &powers {
        p.join()?;
    }

    // Two tasks in parallel.
    let process1 = Process::fork(|| task("A"))?;
    let process2 = Process::fork(|| task("B"))?;
    process1.join()?;
    process2.join()?;
    println!("All tasks completed");
    Ok(())
}
