//! Valid objects with arbitrary bytes patched in (header, lock word, seqlock counter,
//! elements), then opened and driven by an arbitrary sequence of operations: must
//! never crash, hang or read out of bounds. Starting from valid images gets past the
//! header checks that random bytes rarely satisfy. An operation may also truncate the
//! segment's file to a fuzz-chosen length mid-sequence (survived, never a `SIGBUS`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use multiproc::segment::{read_image, unlink, write_image};
use multiproc::{Array, Options, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static N: AtomicU64 = AtomicU64::new(0);

const PROBE: Duration = Duration::from_millis(1);

#[derive(Arbitrary, Debug)]
enum Kind {
    ValueU16,
    ValueBlock,
    ArrayU8 { len: u8 },
    ArrayTriple { len: u8 },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Get(u16),
    Set(u16, u64),
    Add(u16, u64),
    Update(u16, u64),
    ToVec,
    Fill(u64),
    Guard(u16, u64),
    /// Truncates the file to this many bytes (modulo its length + 1).
    Truncate(u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    kind: Kind,
    patches: Vec<(u16, u8)>,
    ops: Vec<Op>,
}

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

fn name() -> String {
    format!(
        "fuzz-obj-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates the object, returns its image, and removes it.
fn image(kind: &Kind) -> Option<Vec<u8>> {
    let n = name();
    let img = match *kind {
        Kind::ValueU16 => Value::<u16>::create(&n, 0x1234).map(|h| read_image(h.name())),
        Kind::ValueBlock => Value::<[u64; 4]>::create(&n, [9; 4]).map(|h| read_image(h.name())),
        Kind::ArrayU8 { len } => Array::<u8>::create(&n, len.into()).map(|h| read_image(h.name())),
        Kind::ArrayTriple { len } => {
            Array::<[u8; 3]>::create(&n, len.into()).map(|h| read_image(h.name()))
        }
    };
    // The creating handle (dropped at the end of each closure) unlinked the name.
    img.ok()?.ok()
}

/// Drives an opened value (a macro: the element bound, `Pod`, lives in bytemuck,
/// which this crate does not depend on).
macro_rules! run_value {
    ($v:expr, $ops:expr, $cut:expr, $make:expr) => {{
        let (v, ops, cut, make) = ($v, $ops, $cut, $make);
        // Free (or recovered): from now on nobody but us can hold the lock. Until then a
        // lock word naming a live thread is a held lock, and anything that may wait for it
        // (multi-word reads fall back to the lock) would rightly wait forever.
        let locked = v.lock_timeout(PROBE).is_some();
        for op in ops {
            match *op {
                Op::Truncate(len) => truncate(v.segment().name(), cut(len)),
                Op::Get(_) | Op::ToVec if locked || v.is_lock_free() => drop(v.get()),
                Op::Set(_, x) | Op::Fill(x) if locked => {
                    v.set(make(x));
                    assert_eq!(v.get(), make(x));
                }
                Op::Add(_, x) | Op::Update(_, x) if locked || v.is_lock_free() => {
                    v.update(|y| *y = make(x))
                }
                Op::Guard(_, x) if locked => {
                    *v.lock() = make(x);
                    assert_eq!(v.get(), make(x));
                }
                _ => {}
            }
        }
    }};
}

/// Drives an opened array.
macro_rules! run_array {
    ($a:expr, $ops:expr, $cut:expr, $make:expr) => {{
        let (a, ops, cut, make) = ($a, $ops, $cut, $make);
        let locked = a.lock_timeout(PROBE).is_some();
        for op in ops {
            match *op {
                Op::Truncate(len) => truncate(a.segment().name(), cut(len)),
                Op::Get(i) if locked || a.is_lock_free() => drop(a.get(i.into())),
                Op::ToVec if locked => assert_eq!(a.to_vec().len(), a.len()),
                Op::Set(i, x) if locked || a.is_lock_free() => {
                    let ok = a.set(i.into(), make(x)).is_ok();
                    // In range: Ok, unless the segment was truncated (Err(Corrupt)).
                    assert!(ok == (usize::from(i) < a.len()) || (!ok && a.is_broken()));
                }
                Op::Add(i, x) | Op::Update(i, x) if locked || a.is_lock_free() => {
                    let _ = a.update(i.into(), |y| *y = make(x));
                }
                Op::Fill(x) if locked => a.fill(make(x)),
                Op::Guard(i, x) if locked => {
                    let mut g = a.lock();
                    if let Some(e) = g.get_mut(usize::from(i)) {
                        *e = make(x);
                    }
                }
                _ => {}
            }
        }
    }};
}

fuzz_target!(|input: Input| {
    let Some(mut img) = image(&input.kind) else {
        return;
    };
    for &(at, byte) in &input.patches {
        let at = usize::from(at) % img.len();
        img[at] = byte;
    }
    let n = name();
    if write_image(&n, &img).is_err() {
        return;
    }
    let opts = Options::new().init_timeout(Duration::from_millis(1));
    let file_len = img.len() as u64;
    let cut = |len: u32| u64::from(len) % (file_len + 1);
    match input.kind {
        Kind::ValueU16 => {
            if let Ok(v) = Value::<u16>::open_with(&n, &opts) {
                v.fetch_add(1);
                run_value!(&v, &input.ops, cut, |x| x as u16);
            }
        }
        Kind::ValueBlock => {
            if let Ok(v) = Value::<[u64; 4]>::open_with(&n, &opts) {
                run_value!(&v, &input.ops, cut, |x| [x; 4]);
            }
        }
        Kind::ArrayU8 { .. } => {
            if let Ok(a) = Array::<u8>::open_with(&n, &opts) {
                run_array!(&a, &input.ops, cut, |x| x as u8);
            }
        }
        Kind::ArrayTriple { .. } => {
            if let Ok(a) = Array::<[u8; 3]>::open_with(&n, &opts) {
                run_array!(&a, &input.ops, cut, |x| [
                    x as u8,
                    (x >> 8) as u8,
                    (x >> 16) as u8
                ]);
            }
        }
    }
    let _ = unlink(&n);
});
