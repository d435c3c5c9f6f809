//! Arbitrary bytes over the state and slots of a real queue segment: opening it and
//! operating on it must return values or errors (`Corrupt` at worst) — never crash,
//! hang or touch memory out of bounds. Optionally the file is truncated to a
//! fuzz-chosen length between two operations (survived, never a `SIGBUS`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use multiproc::segment::{read_image, unlink, write_image, HEADER_LEN};
use multiproc::{ByteQueue, JoinableQueue, Options, Queue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static N: AtomicU64 = AtomicU64::new(0);

#[derive(Arbitrary, Debug)]
struct Input {
    kind: u8,
    cap: u8,
    /// (offset into the data region, bytes written there)
    patches: Vec<(u16, Vec<u8>)>,
    /// Also patch the header (kind-specific parameters and all).
    header: Option<(u8, Vec<u8>)>,
    ops: Vec<u8>,
    /// Truncate the file before operation `.0` (modulo the ops) to `.1` bytes (modulo
    /// its length + 1).
    truncate: Option<(u8, u32)>,
}

const T: Duration = Duration::from_millis(1);

/// Cuts the object's file to `len` bytes, as another process with write access can:
/// the handles must survive it (no `SIGBUS`) and report `Corrupt` at worst.
fn truncate(name: &str, len: u64) {
    if let Ok(f) = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/mp.{name}"))
    {
        let _ = f.set_len(len);
    }
}

fuzz_target!(|input: Input| {
    let name = format!(
        "fuzz-qimg-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let cap = (input.cap as usize % 8) + 1;
    let kind = input.kind % 3;
    // A genuine image to start from (persisted so that dropping the handle keeps it).
    let Ok(mut img) = (match kind {
        0 => Queue::<u64>::create(&name, cap).and_then(|q| {
            q.persist();
            read_image(&name)
        }),
        1 => ByteQueue::create(&name, cap, 24).and_then(|q| {
            q.persist();
            read_image(&name)
        }),
        _ => JoinableQueue::<u32>::create(&name, cap).and_then(|q| {
            q.persist();
            read_image(&name)
        }),
    }) else {
        return;
    };
    let _ = unlink(&name);
    for (off, bytes) in input.patches.iter().take(16) {
        let data = img.len() - HEADER_LEN;
        let start = HEADER_LEN + (*off as usize % data);
        for (i, b) in bytes.iter().take(64).enumerate() {
            if let Some(x) = img.get_mut(start + i) {
                *x = *b;
            }
        }
    }
    if let Some((off, bytes)) = &input.header {
        for (i, b) in bytes.iter().take(32).enumerate() {
            if let Some(x) = img.get_mut(*off as usize % HEADER_LEN + i) {
                *x = *b;
            }
        }
    }
    if write_image(&name, &img).is_err() {
        return;
    }
    let opts = Options::new().init_timeout(Duration::from_millis(1));
    let file_len = img.len() as u64;
    // Before op i: truncate if the input asks for it there.
    let maybe_cut = |i: usize| {
        if let Some((at, len)) = input.truncate {
            if usize::from(at) % input.ops.len().clamp(1, 64) == i {
                truncate(&name, u64::from(len) % (file_len + 1));
            }
        }
    };
    match kind {
        0 => {
            if let Ok(q) = Queue::<u64>::open_with(&name, &opts) {
                let q = q.with_probe_interval(Duration::from_micros(100));
                for (i, op) in input.ops.iter().take(64).enumerate() {
                    maybe_cut(i);
                    match op % 8 {
                        0 => drop(q.try_put(*op as u64)),
                        1 => drop(q.try_get()),
                        2 => drop(q.get_timeout(T)),
                        3 => drop(q.put_timeout(7, T)),
                        4 => drop(q.try_put_many(&[1, 2, 3])),
                        5 => drop(q.try_get_many(&mut [0; 3])),
                        6 => assert!(q.len() <= q.capacity()),
                        _ => q.close(),
                    }
                }
            }
        }
        1 => {
            if let Ok(q) = ByteQueue::open_with(&name, &opts) {
                let q = q.with_probe_interval(Duration::from_micros(100));
                let mut buf = [0u8; 64];
                for (i, op) in input.ops.iter().take(64).enumerate() {
                    maybe_cut(i);
                    match op % 8 {
                        0 => drop(q.try_put(&buf[..(*op as usize % 30)])),
                        1 => drop(q.try_get()),
                        2 => drop(q.get_timeout(T)),
                        3 => drop(q.try_get_into(&mut buf[..(*op as usize % 40)])),
                        4 => drop(q.get_into_timeout(&mut buf, T)),
                        5 => drop(q.try_recv::<(u8, String)>()),
                        6 => assert!(q.len() <= q.capacity()),
                        _ => q.close(),
                    }
                }
            }
        }
        _ => {
            if let Ok(q) = JoinableQueue::<u32>::open_with(&name, &opts) {
                let q = q.with_probe_interval(Duration::from_micros(100));
                for (i, op) in input.ops.iter().take(64).enumerate() {
                    maybe_cut(i);
                    match op % 7 {
                        0 => drop(q.try_put(*op as u32)),
                        1 => drop(q.try_get()),
                        2 => drop(q.get_timeout(T)),
                        3 => drop(q.task_done()),
                        4 => drop(q.join_timeout(T)),
                        5 => drop(q.unfinished_tasks()),
                        _ => q.close(),
                    }
                }
            }
        }
    }
    let _ = unlink(&name);
});
