//! A re-entrant lock: the holder may take it again (here: recursively, 5 deep).
//!
//! ```python
//! rlock = multiprocessing.RLock()
//! count = 0
//!
//! def nested_increment(n):
//!     global count
//!     if n == 0:
//!         return
//!     with rlock:
//!         count += 1
//!         nested_increment(n - 1)
//!
//! def nested_decrement(n): ...               # the same with count -= 1
//!
//! process1 = multiprocessing.Process(target=nested_increment, args=(5,))
//! process2 = multiprocessing.Process(target=nested_decrement, args=(5,))
//! ...
//! print(f"最终结果: {count}")  # 预期输出: 0
//! ```
//!
//! (Python's `count` is a global, so each process changes its own copy and the
//! parent prints 0 whatever happens. Here the count is a shared `Value`, changed with
//! a plain read-then-write under the RLock, 1000 times 5 deep in each process, so
//! the 0 is earned.)
use multiproc::{current_process, Process, RLock, Value};

fn nested(rlock: &RLock, count: &Value<i64>, n: u32, by: i64, show: bool) {
    if n == 0 {
        return;
    }
    let _g = rlock.acquire().unwrap_or_else(|died| died.into_inner());
    count.set(count.get() + by); // read, then write: safe only under the lock
    if show {
        println!(
            "{} holds the rlock {} deep",
            current_process().name(),
            rlock.depth()
        );
    }
    nested(rlock, count, n - 1, by, show);
}

fn main() -> multiproc::Result<()> {
    let rlock = RLock::create(&format!("example-rlock-{}", std::process::id()))?;
    let count: Value<i64> = Value::anonymous(0)?;
    let process1 = Process::fork(|| {
        for round in 0..1000 {
            nested(&rlock, &count, 5, 1, round == 0);
        }
    })?;
    let process2 = Process::fork(|| {
        for round in 0..1000 {
            nested(&rlock, &count, 5, -1, round == 0);
        }
    })?;
    process1.join()?;
    process2.join()?;
    println!("最终结果: {}", count.get());
    Ok(())
}
