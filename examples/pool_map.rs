//! `Pool.map`: apply a function to every item in parallel.
//!
//! ```python
//! def cube(n):
//!     return n * n * n
//!
//! if __name__ == "__main__":
//!     numbers = [1, 2, 3, 4]
//!     with Pool() as pool:
//!         result = pool.map(cube, numbers)
//!         print(result)                        # [1, 8, 27, 64]
//!
//! def square(x):
//!     return x * x
//! with multiprocessing.Pool(processes=os.cpu_count()) as pool:
//!     print(pool.map(square, range(10)))       # [0, 1, 4, 9, ... 81]
//!
//! def task(item):
//!     name, delay = item
//!     print(f"任务 {name} 开始执行，进程ID: {multiprocessing.current_process().pid}")
//!     time.sleep(delay)
//!     print(f"任务 {name} 执行结束，进程ID: {multiprocessing.current_process().pid}")
//!     return f"任务 {name} 完成"
//! tasks = [("Task-1", 2), ("Task-2", 3), ("Task-3", 1), ("Task-4", 2)]
//! with multiprocessing.Pool(processes=3) as pool:
//!     results = pool.map(task, tasks)
//!     for result in results:
//!         print(result)
//! print("所有任务执行完毕")
//! ```
//!
//! The function is a plain `fn`; arguments and results travel through the pool's
//! shared-memory queues as postcard bytes. `starmap` unpacks argument tuples.
use multiproc::{cpu_count, current_process, Pool};
use std::time::Duration;

fn cube(n: u64) -> u64 {
    n * n * n
}

fn square(x: u64) -> u64 {
    x * x
}

fn power(base: u64, exp: u32) -> u64 {
    base.pow(exp)
}

fn task((name, delay): (String, u64)) -> String {
    let pid = current_process().pid();
    println!("任务 {name} 开始执行，进程ID: {pid}");
    std::thread::sleep(Duration::from_millis(delay * 100));
    println!("任务 {name} 执行结束，进程ID: {pid}");
    format!("任务 {name} 完成")
}

fn main() -> multiproc::Result<()> {
    let numbers = vec![1, 2, 3, 4];
    {
        let pool = Pool::new(0)?; // Pool(): one worker per CPU
        let result = pool.map(cube, numbers)?;
        println!("{result:?}");
    }

    let pool = Pool::new(cpu_count())?;
    println!("{:?}", pool.map(square, 0..10)?);
    println!("{:?}", pool.starmap(power, [(2, 10), (3, 5)])?);
    drop(pool);

    let tasks = [("Task-1", 2), ("Task-2", 3), ("Task-3", 1), ("Task-4", 2)]
        .map(|(n, d)| (n.to_owned(), d));
    {
        let pool = Pool::new(3)?;
        let results = pool.map(task, tasks)?;
        for result in results {
            println!("{result}");
        }
    }
    println!("所有任务执行完毕");
    Ok(())
}
