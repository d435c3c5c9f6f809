//! `apply_async` (submit now, collect later), `apply` (submit and wait), and the
//! classic "ten jobs on four workers" program.
//!
//! ```python
//! def task(name, delay):
//!     print(f"任务 {name} 开始执行，进程ID: {multiprocessing.current_process().pid}")
//!     time.sleep(delay)
//!     print(f"任务 {name} 执行结束，进程ID: {multiprocessing.current_process().pid}")
//!     return f"任务 {name} 完成"
//!
//! with multiprocessing.Pool(processes=3) as pool:
//!     result1 = pool.apply_async(task, args=("Task-1", 2))
//!     result2 = pool.apply_async(task, args=("Task-2", 3))
//!     result3 = pool.apply_async(task, args=("Task-3", 1))
//!     print(f"任务1结果: {result1.get()}")
//!     print(f"任务2结果: {result2.get()}")
//!     print(f"任务3结果: {result3.get()}")
//! print("所有任务执行完毕")
//!
//! def worker(msg):
//!     print("%s is now running, process id: %s" % (msg, os.getpid()))
//! po = multiprocessing.Pool(4)
//! for i in range(10):
//!     po.apply_async(worker, args=(i,))
//! print("main process starting....")
//! po.close()
//! po.join()
//! print("main process stoping....")
//! ```
use multiproc::{current_process, Pool};
use std::time::Duration;

fn task((name, delay): (String, u64)) -> String {
    let pid = current_process().pid();
    println!("任务 {name} 开始执行，进程ID: {pid}");
    std::thread::sleep(Duration::from_millis(delay * 100));
    println!("任务 {name} 执行结束，进程ID: {pid}");
    format!("任务 {name} 完成")
}

fn worker(msg: u32) {
    println!("{msg} is now running, process id: {}", std::process::id());
}

fn main() -> multiproc::Result<()> {
    {
        let pool = Pool::new(3)?;
        let result1 = pool.apply_async(task, ("Task-1".to_owned(), 2))?;
        let result2 = pool.apply_async(task, ("Task-2".to_owned(), 3))?;
        let result3 = pool.apply_async(task, ("Task-3".to_owned(), 1))?;
        println!("任务1结果: {}", result1.get()?);
        println!("任务2结果: {}", result2.get()?);
        println!("任务3结果: {}", result3.get()?);

        // apply: blocks until the task is done.
        let result = pool.apply(task, ("Task-4".to_owned(), 1))?;
        println!("任务4结果: {result}");
    }
    println!("所有任务执行完毕");

    let po = Pool::new(4)?;
    let pending: Vec<_> = (0..10)
        .map(|i| po.apply_async(worker, i))
        .collect::<multiproc::Result<_>>()?;
    println!("main process starting....");
    po.close();
    po.join()?;
    assert!(pending.iter().all(|r| r.successful() == Some(true)));
    println!("main process stoping....");
    Ok(())
}
