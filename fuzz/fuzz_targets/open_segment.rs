//! Arbitrary bytes as a segment image: opening it as any kind of object must return
//! Ok or Err — never crash, hang or read out of bounds — and when it opens, using it
//! must not either.
//!
//! Only non-blocking or bounded operations run until the lock is known to be free:
//! a lock word naming a live thread is a held lock, and what may wait for it (locked
//! writes, and multi-word reads, which fall back to the lock when the seqlock counter
//! stays odd) would rightly wait forever — correct behaviour, not a hang bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproc::segment::{unlink, write_image};
use multiproc::{Array, Lock, Options, Segment, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static N: AtomicU64 = AtomicU64::new(0);

/// A bounded wait for the lock: if it is free (or its holder dead) within this, the
/// blocking operations that follow cannot block on anyone but us.
const PROBE: Duration = Duration::from_millis(1);

fn use_segment(s: &Segment) {
    let n = s.len();
    if n > 0 {
        // SAFETY: `len()` bytes are mapped; volatile reads tolerate foreign writers.
        unsafe {
            let _ = s.as_ptr().read_volatile();
            let _ = s.as_ptr().add(n - 1).read_volatile();
        }
    }
}

fn use_value_u64(v: &Value<u64>) {
    let x = v.get();
    v.fetch_add(3);
    v.fetch_max(x);
    let _ = v.compare_exchange(x, x ^ 1);
    v.update(|y| *y = y.wrapping_mul(3));
    v.set(x);
    if let Some(mut g) = v.lock_timeout(PROBE) {
        *g += 1;
        drop(g);
        // The lock is ours to take now.
        *v.lock() -= 1;
    }
}

fn use_value_block(v: &Value<[u64; 8]>) {
    if let Some(mut g) = v.lock_timeout(PROBE) {
        g[7] = g[0];
        drop(g);
        let x = v.get();
        v.set(x);
        v.update(|y| y[1] = y[2]);
        let _ = v.swap(x);
        let _ = v.get();
    }
}

fn use_array(a: &Array<u32>) {
    let n = a.len();
    // u32 elements: lock-free, whatever the lock word says.
    for i in [0, n / 2, n.saturating_sub(1), n, usize::MAX] {
        let _ = a.get(i);
        let _ = a.set(i, 7);
        let _ = a.fetch_add(i, 1);
        let _ = a.update(i, |x| *x ^= 5);
    }
    if let Some(mut g) = a.lock_timeout(PROBE) {
        // Bulk reads allocate len elements: the file (bounded by libFuzzer's max_len)
        // holds them, so this is small.
        let v = a.to_vec();
        assert_eq!(v.len(), n);
        g.reverse();
        drop(g);
        a.fill(1);
        let _ = a.copy_from_slice(&v);
        assert_eq!(a.to_vec(), v);
    }
}

fuzz_target!(|data: &[u8]| {
    let name = format!(
        "fuzz-open-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    if write_image(&name, data).is_err() {
        return;
    }
    let opts = Options::new().init_timeout(Duration::from_millis(1));
    if let Ok(s) = Segment::open_with(&name, &opts) {
        use_segment(&s);
    }
    if let Ok(lock) = Lock::open_with(&name, &opts) {
        if let Ok(g) = lock.try_acquire() {
            drop(g);
        }
        drop(lock.acquire_timeout(PROBE));
    }
    if let Ok(v) = Value::<u64>::open_with(&name, &opts) {
        use_value_u64(&v);
    }
    if let Ok(v) = Value::<[u64; 8]>::open_with(&name, &opts) {
        use_value_block(&v);
    }
    if let Ok(a) = Array::<u32>::open_with(&name, &opts) {
        use_array(&a);
    }
    let _ = unlink(&name);
});
