//! The Rust side of the Python bindings' interop tests (`python/tests/`): one
//! command per run, on objects a Python process created or will open by name.
//!
//! ```text
//! py_interop create-queue NAME N    Queue<u64> of capacity N holding 0..N, persisted
//! py_interop queue-get NAME N       takes N items from Queue<u64> NAME; prints their sum
//! py_interop queue-put NAME N       puts 0..N into Queue<u64> NAME
//! py_interop create-bytes NAME N    ByteQueue holding "msg-0".."msg-{N-1}", persisted
//! py_interop bytes-get NAME N       takes N messages from ByteQueue NAME; prints each
//! py_interop create-value NAME X    Value<i64> holding X, persisted
//! py_interop value-add NAME N       adds 1 to Value<i64> NAME N times; prints the value
//! py_interop lock-check NAME        acquires and releases Lock NAME; prints "ok"
//! py_interop lock-hold NAME         acquires Lock NAME, prints "held", waits to be killed
//! py_interop describe NAME          prints the kind and element type NAME holds
//! py_interop create-stable-value NAME X   Value<i64> holding X under the stable name
//!                                   of i64 (SharedType), persisted
//! py_interop create-app-queue NAME  Queue<u64> under the stable name "app.Job.v1",
//!                                   persisted
//! py_interop type-of TYPE           prints name, size, align and hash of the Rust
//!                                   primitive TYPE's fingerprint (TypeInfo::of)
//! ```
//!
//! In Python, the same objects are `mp.Queue.open(name)` (ints),
//! `mp.Queue.open(name, raw=True)` (bytes), `mp.Value.open(name, 'q')`, `mp.Lock.open(name)`.

use multiproc::segment::TypeInfo;
use multiproc::{ByteQueue, Lock, Options, Queue, Value};
use std::io::Write;

fn main() -> multiproc::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, name) = match (args.first(), args.get(1)) {
        (Some(c), Some(n)) => (c.as_str(), n.as_str()),
        _ => {
            eprintln!("usage: py_interop COMMAND NAME [N] (see the source for commands)");
            std::process::exit(2);
        }
    };
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    match cmd {
        "create-queue" => {
            let q: Queue<u64> = Queue::create(name, n.max(1) as usize)?;
            for i in 0..n {
                q.put(i)?;
            }
            q.persist();
        }
        "queue-get" => {
            let q: Queue<u64> = Queue::open(name)?;
            let sum: u64 = (0..n).map(|_| q.get()).sum::<multiproc::Result<u64>>()?;
            writeln!(out, "{sum}")?;
        }
        "queue-put" => {
            let q: Queue<u64> = Queue::open(name)?;
            for i in 0..n {
                q.put(i)?;
            }
        }
        "create-bytes" => {
            let q = ByteQueue::create(name, n.max(1) as usize, 64)?;
            for i in 0..n {
                q.put(format!("msg-{i}").as_bytes())?;
            }
            q.persist();
        }
        "bytes-get" => {
            let q = ByteQueue::open(name)?;
            for _ in 0..n {
                writeln!(out, "{}", String::from_utf8_lossy(&q.get()?))?;
            }
        }
        "create-value" => {
            let x: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
            Value::create(name, x)?.persist();
        }
        "value-add" => {
            let v: Value<i64> = Value::open(name)?;
            for _ in 0..n {
                v.fetch_add(1);
            }
            writeln!(out, "{}", v.get())?;
        }
        "lock-check" => {
            let lock = Lock::open(name)?;
            drop(lock.acquire().unwrap_or_else(|died| died.into_inner()));
            writeln!(out, "ok")?;
        }
        "lock-hold" => {
            let lock = Lock::open(name)?;
            let _g = lock.acquire().unwrap_or_else(|died| died.into_inner());
            writeln!(out, "held")?;
            out.flush()?;
            // Held until the test SIGKILLs us; a bounded wait in case it never does.
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        "describe" => {
            let d = multiproc::segment::describe(name)?;
            writeln!(out, "{} {}", d.kind.name(), d.type_name)?;
        }
        "create-stable-value" => {
            let x: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
            Value::create_with(name, x, &Options::new().shared_type::<i64>())?.persist();
        }
        "create-app-queue" => {
            let q: Queue<u64> =
                Queue::create_with(name, 4, &Options::new().type_name("app.Job.v1"))?;
            q.persist();
        }
        "type-of" => {
            let t = match name {
                "i8" => TypeInfo::of::<i8>(),
                "u8" => TypeInfo::of::<u8>(),
                "i16" => TypeInfo::of::<i16>(),
                "u16" => TypeInfo::of::<u16>(),
                "i32" => TypeInfo::of::<i32>(),
                "u32" => TypeInfo::of::<u32>(),
                "i64" => TypeInfo::of::<i64>(),
                "u64" => TypeInfo::of::<u64>(),
                "f32" => TypeInfo::of::<f32>(),
                "f64" => TypeInfo::of::<f64>(),
                other => {
                    eprintln!("py_interop: no primitive {other:?}");
                    std::process::exit(2);
                }
            };
            writeln!(out, "{} {} {} {}", t.name, t.size, t.align, t.hash)?;
        }
        other => {
            eprintln!("py_interop: unknown command {other:?}");
            std::process::exit(2);
        }
    }
    Ok(())
}
