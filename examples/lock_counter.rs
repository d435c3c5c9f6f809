//! A lock around a shared counter: 4 processes × 1000 increments = 4000.
//!
//! ```python
//! def increment(lock, counter):
//!     for _ in range(1000):
//!         lock.acquire()
//!         counter.value += 1
//!         lock.release()
//!
//! counter = Value('i', 0)
//! lock = Lock()
//! processes = [Process(target=increment, args=(lock, counter)) for _ in range(4)]
//! for p in processes: p.start()
//! for p in processes: p.join()
//! print(counter.value)                                     # 4000
//!
//! def increment(counter, lock):              # and the tutorial's second version
//!     for _ in range(100000):
//!         with lock:
//!             counter.value += 1
//! def decrement(counter, lock): ...           # -= 1 under the lock
//! print(f"最终结果: {counter.value}")        # 预期输出: 0
//!
//! def fill_array(arr, lock, start, end):     # and the third
//!     with lock:
//!         for i in range(start, end):
//!             arr[i] = i * 2
//! def print_array(arr, lock):
//!     with lock:
//!         for i in range(len(arr)):
//!             print(f"arr[{i}] = {arr[i]}")
//! ```
//!
//! The counter here is read and written as two separate steps on purpose
//! (`get` then `set`): only the lock makes the total exact. A `Lock` is named; the
//! children inherit the handle through `fork` (they could also `Lock::open` it).
use multiproc::{Array, Lock, Process, Value};

fn locked<'a>(lock: &'a Lock) -> multiproc::LockGuard<'a> {
    // A holder that died would hand the lock over with OwnerDied: take it anyway.
    lock.acquire().unwrap_or_else(|died| died.into_inner())
}

fn increment(lock: &Lock, counter: &Value<i32>, times: usize, by: i32) {
    for _ in 0..times {
        let _g = locked(lock);
        let v = counter.get(); // read ...
        counter.set(v + by); // ... then write: safe only under the lock
    }
}

fn fill_array(arr: &Array<i32>, lock: &Lock, start: usize, end: usize) -> multiproc::Result<()> {
    let _g = locked(lock);
    for i in start..end {
        arr.set(i, i as i32 * 2)?;
    }
    Ok(())
}

fn main() -> multiproc::Result<()> {
    let name = format!("example-lock-{}", std::process::id());
    let lock = Lock::create(&name)?;
    let counter: Value<i32> = Value::anonymous(0)?;
    let processes: Vec<Process> = (0..4)
        .map(|_| Process::fork(|| increment(&lock, &counter, 1000, 1)))
        .collect::<multiproc::Result<_>>()?;
    for p in &processes {
        p.join()?;
    }
    println!("{}", counter.get());

    counter.set(0);
    let process1 = Process::fork(|| increment(&lock, &counter, 100_000, 1))?;
    let process2 = Process::fork(|| increment(&lock, &counter, 100_000, -1))?;
    process1.join()?;
    process2.join()?;
    println!("最终结果: {}", counter.get());

    let arr: Array<i32> = Array::anonymous(10)?;
    let process1 = Process::fork(|| fill_array(&arr, &lock, 0, 5))?;
    let process2 = Process::fork(|| fill_array(&arr, &lock, 5, 10))?;
    process1.join()?;
    process2.join()?;
    {
        let _g = locked(&lock);
        for (i, v) in arr.to_vec().iter().enumerate() {
            println!("arr[{i}] = {v}");
        }
    }
    println!("所有进程执行完毕");
    Ok(())
}
