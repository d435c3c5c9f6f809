//! A condition variable: a producer and a consumer share a bounded buffer (at most
//! 5 items), each waiting on the condition until it can go on.
//!
//! ```python
//! condition = multiprocessing.Condition()
//! queue = []
//! MAX_QUEUE_SIZE = 5
//!
//! def producer():
//!     for i in range(10):
//!         with condition:
//!             while len(queue) >= MAX_QUEUE_SIZE:
//!                 print(f"生产者: 队列已满，等待消费者消费")
//!                 condition.wait()
//!             queue.append(i)
//!             print(f"生产者: 生产了数据 {i}，当前队列: {queue}")
//!             condition.notify_all()
//!         time.sleep(0.5)
//!
//! def consumer():
//!     for _ in range(10):
//!         with condition:
//!             while len(queue) == 0:
//!                 print(f"消费者: 队列已空，等待生产者生产")
//!                 condition.wait()
//!             data = queue.pop(0)
//!             print(f"消费者: 消费了数据 {data}，当前队列: {queue}")
//!             condition.notify_all()
//!         time.sleep(1)
//! ...
//! print("所有进程执行完毕")
//! ```
//!
//! (In Python the list `queue` is not shared: each process appends to its own copy,
//! and the consumer waits forever. Here the buffer lives in shared memory — an
//! `Array` for the items and a `Value` for their count — guarded by the condition's
//! own lock.)
use multiproc::{Array, Condition, Process, Value};
use std::time::Duration;

const MAX_QUEUE_SIZE: usize = 5;

/// The shared list: `len` items at the front of `items`.
struct Buffer {
    items: Array<u32>,
    len: Value<u32>,
}

impl Buffer {
    fn len(&self) -> usize {
        self.len.get() as usize
    }
    fn to_vec(&self) -> Vec<u32> {
        self.items.to_vec()[..self.len()].to_vec()
    }
    fn push(&self, x: u32) -> multiproc::Result<()> {
        self.items.set(self.len(), x)?;
        self.len.fetch_add(1);
        Ok(())
    }
    fn pop_front(&self) -> multiproc::Result<u32> {
        let v = self.to_vec();
        for (i, x) in v.iter().skip(1).enumerate() {
            self.items.set(i, *x)?;
        }
        self.len.fetch_sub(1);
        Ok(v[0])
    }
}

fn producer(condition: &Condition, queue: &Buffer) -> multiproc::Result<()> {
    for i in 0..10 {
        {
            let mut g = condition.acquire().unwrap_or_else(|d| d.into_inner());
            while queue.len() >= MAX_QUEUE_SIZE {
                println!("生产者: 队列已满，等待消费者消费");
                let _ = condition.wait(&mut g);
            }
            queue.push(i)?;
            println!("生产者: 生产了数据 {i}，当前队列: {:?}", queue.to_vec());
            condition.notify_all();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn consumer(condition: &Condition, queue: &Buffer) -> multiproc::Result<()> {
    for _ in 0..10 {
        {
            let mut g = condition.acquire().unwrap_or_else(|d| d.into_inner());
            while queue.len() == 0 {
                println!("消费者: 队列已空，等待生产者生产");
                let _ = condition.wait(&mut g);
            }
            let data = queue.pop_front()?;
            println!("消费者: 消费了数据 {data}，当前队列: {:?}", queue.to_vec());
            condition.notify_all();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn main() -> multiproc::Result<()> {
    let condition = Condition::create(&format!("example-cond-{}", std::process::id()))?;
    let queue = Buffer {
        items: Array::anonymous(MAX_QUEUE_SIZE)?,
        len: Value::anonymous(0)?,
    };
    let producer_process = Process::fork(|| producer(&condition, &queue))?;
    let consumer_process = Process::fork(|| consumer(&condition, &queue))?;
    producer_process.join()?;
    consumer_process.join()?;
    println!("所有进程执行完毕");
    Ok(())
}
