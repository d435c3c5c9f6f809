//! `imap` (results in task order, as they arrive) and `imap_unordered` (results in
//! completion order).
//!
//! ```python
//! def task(item):
//!     name, delay = item
//!     print(f"任务 {name} 开始执行")
//!     time.sleep(delay)
//!     print(f"任务 {name} 执行结束")
//!     return f"任务 {name} 完成"
//!
//! tasks = [("Task-1", 2), ("Task-2", 3), ("Task-3", 1), ("Task-4", 2)]
//! with multiprocessing.Pool(processes=3) as pool:
//!     print("=== 使用imap方法 ===")
//!     for result in pool.imap(task, tasks):
//!         print(f"结果: {result}")
//!     print("\n=== 使用imap_unordered方法 ===")
//!     for result in pool.imap_unordered(task, tasks):
//!         print(f"结果: {result}")
//! print("所有任务执行完毕")
//! ```
//!
//! `imap` here also reads its input lazily: it can walk an endless iterator.
use multiproc::Pool;
use std::time::Duration;

fn task((name, delay): (String, u64)) -> String {
    println!("任务 {name} 开始执行");
    std::thread::sleep(Duration::from_millis(delay * 100));
    println!("任务 {name} 执行结束");
    format!("任务 {name} 完成")
}

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> multiproc::Result<()> {
    let tasks: Vec<(String, u64)> = [("Task-1", 2), ("Task-2", 3), ("Task-3", 1), ("Task-4", 2)]
        .map(|(n, d)| (n.to_owned(), d))
        .to_vec();
    {
        let pool = Pool::new(3)?;
        println!("=== 使用imap方法 ===");
        for result in pool.imap(task, tasks.clone())? {
            println!("结果: {}", result?);
        }
        println!("\n=== 使用imap_unordered方法 ===");
        for result in pool.imap_unordered(task, tasks)? {
            println!("结果: {}", result?);
        }

        // Lazy input: the first squares of an endless sequence.
        let first: Vec<u64> = pool
            .imap(square, 1u64..)?
            .take(5)
            .collect::<multiproc::Result<_>>()?;
        println!("first squares of an endless input: {first:?}");
    }
    println!("所有任务执行完毕");
    Ok(())
}
