//! A semaphore limiting concurrency: at most 3 of 10 processes "connected" at once.
//!
//! ```python
//! max_connections = 3
//! semaphore = multiprocessing.Semaphore(value=max_connections)
//!
//! def connect(name):
//!     print(f"{name} 等待连接...")
//!     with semaphore:
//!         print(f"{name} 获得连接")
//!         time.sleep(2)  # 模拟连接使用
//!         print(f"{name} 释放连接")
//!
//! processes = [multiprocessing.Process(target=connect, args=(f"Process-{i+1}",))
//!              for i in range(10)]
//! for process in processes: process.start()
//! for process in processes: process.join()
//! print("所有连接完成")
//! ```
//!
//! A shared `Value` records how many hold a connection at once, to show the limit holds.
use multiproc::{Process, Semaphore, Value};
use std::time::Duration;

fn connect(
    name: &str,
    semaphore: &Semaphore,
    now: &Value<u32>,
    peak: &Value<u32>,
) -> multiproc::Result<()> {
    println!("{name} 等待连接...");
    semaphore.acquire()?;
    let holding = now.fetch_add(1) + 1;
    peak.fetch_max(holding);
    println!("{name} 获得连接");
    std::thread::sleep(Duration::from_millis(100));
    println!("{name} 释放连接");
    now.fetch_sub(1);
    semaphore.release()
}

fn main() -> multiproc::Result<()> {
    let max_connections = 3;
    let semaphore = Semaphore::create(
        &format!("example-sem-{}", std::process::id()),
        max_connections,
    )?;
    let now: Value<u32> = Value::anonymous(0)?;
    let peak: Value<u32> = Value::anonymous(0)?;
    let processes: Vec<Process> = (0..10)
        .map(|i| Process::fork(|| connect(&format!("Process-{}", i + 1), &semaphore, &now, &peak)))
        .collect::<multiproc::Result<_>>()?;
    for process in &processes {
        process.join()?;
    }
    println!("所有连接完成");
    println!(
        "at most {} connections were held at once (limit {max_connections})",
        peak.get()
    );
    Ok(())
}
