//! Arbitrary bytes as a segment image: opening it as any kind of object must return
//! Ok or Err — never crash, hang or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproc::segment::{unlink, write_image};
use std::sync::atomic::{AtomicU64, Ordering};

static N: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let name = format!(
        "fuzz-open-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    if write_image(&name, data).is_err() {
        return;
    }
    let opts = multiproc::Options::new().init_timeout(std::time::Duration::from_millis(1));
    let _ = multiproc::Segment::open_with(&name, &opts);
    if let Ok(lock) = multiproc::Lock::open_with(&name, &opts) {
        if let Ok(g) = lock.try_acquire() {
            drop(g);
        }
    }
    let _ = unlink(&name);
});
