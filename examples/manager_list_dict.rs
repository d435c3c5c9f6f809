//! Two processes, a shared list and a shared dict, each updated under a lock and
//! printed at the end: Python's `Manager().list()` / `.dict()`, no manager process.
//!
//! ```python
//! def add_to_list(shared_list, lock, items):
//!     with lock:
//!         for item in items:
//!             shared_list.append(item)
//!             print(f"添加了元素 {item}，当前列表: {shared_list}")
//!             time.sleep(0.5)
//!
//! def update_dict(shared_dict, lock, updates):
//!     with lock:
//!         for key, value in updates.items():
//!             shared_dict[key] = value
//!             print(f"更新了字典 {key}: {value}，当前字典: {shared_dict}")
//!             time.sleep(0.5)
//!
//! manager = multiprocessing.Manager()
//! shared_list = manager.list()
//! shared_dict = manager.dict()
//! lock = multiprocessing.Lock()
//! process1 = multiprocessing.Process(target=add_to_list, args=(shared_list, lock, [1, 2, 3, 4, 5]))
//! process2 = multiprocessing.Process(target=update_dict, args=(shared_dict, lock, {"a": 1, "b": 2, "c": 3}))
//! process1.start(); process2.start()
//! process1.join(); process2.join()
//! print(f"最终列表: {shared_list}")
//! print(f"最终字典: {shared_dict}")
//! print("所有进程执行完毕")
//! ```
//!
//! The sleeps are 50 ms here instead of 0.5 s.
use multiproc::{Dict, List, Lock, Process};
use std::time::Duration;

/// Python's `repr` of a dict of str → int, sorted by key (insertion order here).
fn py_dict(mut items: Vec<(String, i64)>) -> String {
    items.sort();
    let body: Vec<String> = items.iter().map(|(k, v)| format!("'{k}': {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

fn add_to_list(shared_list: &List<i64>, lock: &Lock, items: &[i64]) -> multiproc::Result<()> {
    let _g = lock.acquire().unwrap_or_else(|died| died.into_inner());
    for &item in items {
        shared_list.push(item)?;
        println!("添加了元素 {item}，当前列表: {:?}", shared_list.to_vec()?);
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn update_dict(
    shared_dict: &Dict<String, i64>,
    lock: &Lock,
    updates: &[(&str, i64)],
) -> multiproc::Result<()> {
    let _g = lock.acquire().unwrap_or_else(|died| died.into_inner());
    for &(key, value) in updates {
        shared_dict.insert(key.to_owned(), value)?;
        println!(
            "更新了字典 {key}: {value}，当前字典: {}",
            py_dict(shared_dict.items()?)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn exit_code(r: multiproc::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn main() -> multiproc::Result<()> {
    let pid = std::process::id();
    let shared_list: List<i64> = List::create(&format!("example-manager-list-{pid}"))?;
    let shared_dict: Dict<String, i64> = Dict::create(&format!("example-manager-dict-{pid}"))?;
    let lock = Lock::create(&format!("example-manager-lock-{pid}"))?;

    let process1 = Process::fork(|| exit_code(add_to_list(&shared_list, &lock, &[1, 2, 3, 4, 5])))?;
    let process2 = Process::fork(|| {
        exit_code(update_dict(
            &shared_dict,
            &lock,
            &[("a", 1), ("b", 2), ("c", 3)],
        ))
    })?;
    process1.join()?;
    process2.join()?;

    println!("最终列表: {:?}", shared_list.to_vec()?);
    println!("最终字典: {}", py_dict(shared_dict.items()?));
    println!("所有进程执行完毕");
    Ok(())
}
