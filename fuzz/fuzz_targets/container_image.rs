//! Arbitrary bytes over the heap of a real `Dict` or `List` segment (its header,
//! journal, allocator lists, index and records): opening it and operating on it must
//! return values or errors (`Corrupt` at worst) — never crash, hang or touch memory
//! out of bounds.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use multiproc::segment::{read_image, unlink, write_image, HEADER_LEN};
use multiproc::{Dict, List, Options};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static N: AtomicU64 = AtomicU64::new(0);

#[derive(Arbitrary, Debug)]
struct Input {
    list: bool,
    items: u8,
    /// (offset into the first 16 KiB of the data region, bytes written there)
    patches: Vec<(u16, Vec<u8>)>,
    ops: Vec<(u8, u16)>,
}

/// Small: the fuzzer copies the whole image.
const LIMIT: u64 = 256 << 10;

fuzz_target!(|input: Input| {
    let name = format!(
        "fuzz-cimg-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let n = u16::from(input.items % 40);
    let made = if input.list {
        List::<Vec<u8>>::create_with_limit(&name, LIMIT).and_then(|l| {
            l.persist();
            l.extend((0..n).map(|i| vec![i as u8; usize::from(i % 13)]))?;
            l.pop()?;
            read_image(&name)
        })
    } else {
        Dict::<u16, Vec<u8>>::create_with_limit(&name, LIMIT).and_then(|d| {
            d.persist();
            for i in 0..n {
                d.insert(i, vec![i as u8; usize::from(i % 13)])?;
            }
            d.remove(&1)?;
            read_image(&name)
        })
    };
    let Ok(mut img) = made else { return };
    let _ = unlink(&name);
    for (off, bytes) in input.patches.iter().take(16) {
        let start = HEADER_LEN + usize::from(*off) % (16 << 10);
        for (i, b) in bytes.iter().take(64).enumerate() {
            if let Some(x) = img.get_mut(start + i) {
                *x = *b;
            }
        }
    }
    if write_image(&name, &img).is_err() {
        return;
    }
    let opts = Options::new().init_timeout(Duration::from_millis(1));
    if input.list {
        if let Ok(l) = List::<Vec<u8>>::open_with(&name, &opts) {
            let l = l
                .with_probe_interval(Duration::from_micros(100))
                .with_lock_timeout(Duration::from_millis(5));
            for &(op, x) in input.ops.iter().take(32) {
                let i = usize::from(x % 64);
                let _ = match op % 7 {
                    0 => l.push(vec![op; usize::from(x % 300)]),
                    1 => l.pop().map(drop),
                    2 => l.get(i).map(drop),
                    3 => l.set(i, vec![1; usize::from(x % 50)]),
                    4 => l.insert(i, vec![]),
                    5 => l.remove(i).map(drop),
                    _ => l.to_vec().map(drop),
                };
                let _ = l.len();
            }
            let _ = l.check_heap();
        }
    } else if let Ok(d) = Dict::<u16, Vec<u8>>::open_with(&name, &opts) {
        let d = d
            .with_probe_interval(Duration::from_micros(100))
            .with_lock_timeout(Duration::from_millis(5));
        for &(op, x) in input.ops.iter().take(32) {
            let k = x % 64;
            let _ = match op % 6 {
                0 => d.insert(k, vec![op; usize::from(x % 300)]).map(drop),
                1 => d.get(&k).map(drop),
                2 => d.remove(&k).map(drop),
                3 => d.update(k, |v| v.map(|mut v| {
                    v.push(1);
                    v
                })).map(drop),
                4 => d.items().map(drop),
                _ => d.clear(),
            };
            let _ = d.len();
        }
        let _ = d.check_heap();
    }
    let _ = unlink(&name);
});
