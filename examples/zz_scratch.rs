//! scratch
use multiproc::Pool;
use std::time::Instant;
fn cube(n: u64) -> u64 {
    n * n * n
}
fn main() {
    let pool = Pool::new(2).unwrap();
    pool.map_chunked(cube, 0..1000u64, 1).unwrap();
    for _ in 0..5 {
        let t = Instant::now();
        let v = pool.map_chunked(cube, 0..100_000u64, 1).unwrap();
        assert_eq!(v.len(), 100_000);
        println!(
            "chunksize 1: {:.0} tasks/s",
            100_000.0 / t.elapsed().as_secs_f64()
        );
    }
}
