//! Pool tasks append to a shared list: Python's `Manager().list()` passed to
//! `Pool.apply`, with no manager process — the list lives in shared memory and the
//! handle travels to the worker as its name.
//!
//! ```python
//! def f(list, x):
//!     print(list, x)
//!     list.append(x)
//!
//! if __name__ == '__main__':
//!      manager = multiprocessing.Manager()
//!      mag_list = manager.list([])
//!      with multiprocessing.Pool(4) as p:
//!          for item in [1, 2, 3]:
//!             p.apply(f, args=(mag_list, item))
//!          p.close()
//!      print(mag_list)
//! # [] 1
//! # [1] 2
//! # [1, 2] 3
//! # [1, 2, 3]
//! ```
use multiproc::{List, Pool};

fn f((list, x): (List<i64>, i64)) {
    // A task that panics comes back as Err(TaskFailed) from `apply`.
    println!("{:?} {x}", list.to_vec().expect("read the shared list"));
    list.push(x).expect("append to the shared list");
}

fn main() -> multiproc::Result<()> {
    let name = format!("example-manager-list-{}", std::process::id());
    let mag_list: List<i64> = List::create(&name)?;
    {
        let p = Pool::new(4)?;
        for item in [1, 2, 3] {
            p.apply(f, (mag_list.clone(), item))?;
        }
        p.close();
        p.join()?;
    }
    println!("{:?}", mag_list.to_vec()?);
    Ok(())
}
