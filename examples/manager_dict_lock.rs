//! Ten processes write squares into a shared dict under a lock: Python's
//! `Manager().dict()` with `multiprocessing.Lock`, no manager process.
//!
//! ```python
//! def add_to_dict(d, key, lock):
//!     with lock:                # 防止竞态
//!         d[key] = key * key
//!
//! if __name__ == '__main__':
//!     mgr = multiprocessing.Manager()
//!     shared_dict = mgr.dict()
//!     lock = multiprocessing.Lock()
//!     jobs = [multiprocessing.Process(target=add_to_dict, args=(shared_dict, i, lock))
//!             for i in range(10)]
//!     for j in jobs: j.start()
//!     for j in jobs: j.join()
//!     print(shared_dict)        # {0: 0, 1: 1, 2: 4, ..., 9: 81}
//! ```
//!
//! Python prints the dict in insertion order, which depends on which process ran
//! first; this prints it sorted by key. (`Dict::update` would make the lock
//! unnecessary: it is an atomic read-modify-write.)
use multiproc::{Dict, Lock, Process};

fn add_to_dict(d: &Dict<i64, i64>, key: i64, lock: &Lock) -> multiproc::Result<()> {
    let _g = lock.acquire().unwrap_or_else(|died| died.into_inner()); // 防止竞态
    d.insert(key, key * key)?;
    Ok(())
}

/// Python's `repr` of a dict of ints, sorted by key.
fn py_dict(mut items: Vec<(i64, i64)>) -> String {
    items.sort_unstable();
    let body: Vec<String> = items.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

fn main() -> multiproc::Result<()> {
    let pid = std::process::id();
    let shared_dict: Dict<i64, i64> = Dict::create(&format!("example-manager-dict-{pid}"))?;
    let lock = Lock::create(&format!("example-manager-dict-lock-{pid}"))?;
    let jobs: Vec<Process> = (0..10)
        .map(|i| {
            Process::fork(|| match add_to_dict(&shared_dict, i, &lock) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            })
        })
        .collect::<multiproc::Result<_>>()?;
    for j in &jobs {
        j.join()?;
    }
    println!("{}", py_dict(shared_dict.items()?));
    Ok(())
}
