//! A barrier of 3: each task waits there until all three have arrived.
//!
//! ```python
//! barrier = multiprocessing.Barrier(3)
//!
//! def task(name, delay):
//!     print(f"任务 {name} 开始执行")
//!     time.sleep(delay)
//!     print(f"任务 {name} 到达栅栏")
//!     barrier.wait()  # 等待所有进程到达栅栏
//!     print(f"任务 {name} 继续执行")
//!
//! process1 = multiprocessing.Process(target=task, args=("Task-1", 1))
//! process2 = multiprocessing.Process(target=task, args=("Task-2", 2))
//! process3 = multiprocessing.Process(target=task, args=("Task-3", 3))
//! ...
//! print("所有任务执行完毕")
//! ```
//!
//! `wait` returns each party's arrival index (0..3); a party that dies or times out
//! breaks the barrier (`Err(Broken)`) instead of leaving the others waiting forever.
use multiproc::{Barrier, Process};
use std::time::Duration;

fn task(barrier: &Barrier, name: &str, delay: u64) -> multiproc::Result<()> {
    println!("任务 {name} 开始执行");
    std::thread::sleep(Duration::from_millis(delay * 100));
    println!("任务 {name} 到达栅栏");
    let index = barrier.wait()?;
    println!("任务 {name} 继续执行 (arrival index {index})");
    Ok(())
}

fn main() -> multiproc::Result<()> {
    let barrier = Barrier::create(&format!("example-barrier-{}", std::process::id()), 3)?;
    let processes: Vec<Process> = [("Task-1", 1), ("Task-2", 2), ("Task-3", 3)]
        .into_iter()
        .map(|(name, delay)| Process::fork(|| task(&barrier, name, delay)))
        .collect::<multiproc::Result<_>>()?;
    for p in &processes {
        p.join()?;
    }
    println!("所有任务执行完毕");
    Ok(())
}
