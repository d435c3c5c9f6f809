//! Parallel computation: the same sums on a pool and one after another, with the
//! speedup printed.
//!
//! ```python
//! def compute(n):
//!     """计算1到n的和"""
//!     total = 0
//!     for i in range(1, n+1):
//!         total += i
//!     return total
//!
//! tasks = [100000000, 200000000, 300000000, 400000000]
//! start_time = time.time()
//! with ProcessPoolExecutor(max_workers=4) as executor:
//!     results = list(executor.map(compute, tasks))
//! end_time = time.time()
//! print(f"Results: {results}")
//! print(f"Time taken: {end_time - start_time:.2f} seconds")
//!
//! start_time = time.time()
//! results_seq = [compute(n) for n in tasks]
//! end_time = time.time()
//! print(f"Sequential results: {results_seq}")
//! print(f"Sequential time taken: {end_time - start_time:.2f} seconds")
//! ```
//!
//! The tasks are 100x smaller than the tutorial's (Rust loops are that much faster),
//! and `black_box` keeps the compiler from replacing the loop by `n(n+1)/2`.
use multiproc::Pool;
use std::hint::black_box;
use std::time::Instant;

fn compute(n: u64) -> u64 {
    let mut total: u64 = 0;
    for i in 1..=n {
        total = black_box(total + i);
    }
    total
}

fn main() -> multiproc::Result<()> {
    let tasks = vec![1_000_000, 2_000_000, 3_000_000, 4_000_000];

    let start = Instant::now();
    let results = {
        let executor = Pool::new(4)?;
        executor.map(compute, tasks.clone())?
    };
    let parallel = start.elapsed();
    println!("Results: {results:?}");
    println!("Time taken: {:.2} seconds", parallel.as_secs_f64());

    let start = Instant::now();
    let results_seq: Vec<u64> = tasks.iter().map(|&n| compute(n)).collect();
    let sequential = start.elapsed();
    println!("Sequential results: {results_seq:?}");
    println!(
        "Sequential time taken: {:.2} seconds",
        sequential.as_secs_f64()
    );

    assert_eq!(results, results_seq);
    println!(
        "Speedup: {:.2}x on {} CPUs",
        sequential.as_secs_f64() / parallel.as_secs_f64(),
        multiproc::cpu_count()
    );
    Ok(())
}
