//! Shared memory: a `Value` and an `Array` changed by two processes at once.
//!
//! ```python
//! def increment(counter, array):
//!     for i in range(1000000):
//!         counter.value += 1
//!         array[i % len(array)] += 1
//! def decrement(counter, array):
//!     for i in range(1000000):
//!         counter.value -= 1
//!         array[i % len(array)] -= 1
//!
//! counter = multiprocessing.Value('i', 0)
//! array = multiprocessing.Array('i', [0] * 10)
//! process1 = multiprocessing.Process(target=increment, args=(counter, array))
//! process2 = multiprocessing.Process(target=decrement, args=(counter, array))
//! ...
//! print(f"Final counter value: {counter.value}")          # expected 0
//! print(f"Final array values: {list(array)}")             # expected [0, ..., 0]
//!
//! v = multiprocessing.Value('d', 10, lock=True)
//! with v.get_lock():   # lock before changing the value
//!     v.value += 1
//! ```
//!
//! Python's `counter.value += 1` is a read and a write: without `get_lock()` the
//! two processes lose updates and the result is rarely 0. `fetch_add`/`fetch_sub`
//! are single atomic instructions on integer values, so here it is always 0. For
//! several fields at once (or non-integer types), `lock()` gives a guard, like
//! `get_lock()`.
use multiproc::{Array, Process, Value};

const N: usize = 100_000;

fn increment(counter: &Value<i32>, array: &Array<i32>) -> multiproc::Result<()> {
    for i in 0..N {
        counter.fetch_add(1);
        array.fetch_add(i % array.len(), 1)?;
    }
    Ok(())
}

fn decrement(counter: &Value<i32>, array: &Array<i32>) -> multiproc::Result<()> {
    for i in 0..N {
        counter.fetch_sub(1);
        array.fetch_sub(i % array.len(), 1)?;
    }
    Ok(())
}

fn main() -> multiproc::Result<()> {
    let counter: Value<i32> = Value::anonymous(0)?;
    let array: Array<i32> = Array::anonymous(10)?;
    let process1 = Process::fork(|| increment(&counter, &array))?;
    let process2 = Process::fork(|| decrement(&counter, &array))?;
    process1.join()?;
    process2.join()?;
    println!("Final counter value: {}", counter.get());
    println!("Final array values: {:?}", array.to_vec());

    // `with v.get_lock(): v.value += 1` on a float.
    let v: Value<f64> = Value::anonymous(10.0)?;
    let p = Process::fork(|| {
        let mut g = v.lock();
        *g += 1.0;
    })?;
    p.join()?;
    println!("v.value = {}", v.get());
    Ok(())
}
