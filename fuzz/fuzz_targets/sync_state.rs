//! Arbitrary bytes as the shared state of a sync object behind a valid header: every
//! non-blocking operation (and every wait with a zero timeout) must return — never
//! crash, panic, hang or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproc::segment::{read_image, unlink, write_image, HEADER_LEN};
use multiproc::{Barrier, BoundedSemaphore, Condition, Event, Lock, Options, RLock, Semaphore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static N: AtomicU64 = AtomicU64::new(0);
const ZERO: Duration = Duration::ZERO;

/// Creates a valid object of kind `kind` named `name`, then overwrites its state
/// (the bytes after the header) with `state`.
fn forge(name: &str, kind: u8, state: &[u8]) -> bool {
    let created = match kind {
        0 => Lock::create(name).map(|o| o.persist()),
        1 => RLock::create(name).map(|o| o.persist()),
        2 => Semaphore::create(name, 2).map(|o| o.persist()),
        3 => BoundedSemaphore::create(name, 2).map(|o| o.persist()),
        4 => Event::create(name).map(|o| o.persist()),
        5 => Condition::create(name).map(|o| o.persist()),
        _ => Barrier::create(name, 1 + u32::from(kind % 4)).map(|o| o.persist()),
    };
    if created.is_err() {
        return false;
    }
    let Ok(mut image) = read_image(name) else {
        return false;
    };
    for (dst, src) in image[HEADER_LEN..].iter_mut().zip(state) {
        *dst = *src;
    }
    let _ = unlink(name);
    write_image(name, &image).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, state)) = data.split_first() else {
        return;
    };
    let kind = kind % 10;
    let name = format!(
        "fuzz-sync-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    if !forge(&name, kind, state) {
        let _ = unlink(&name);
        return;
    }
    let opts = Options::new().init_timeout(Duration::from_millis(1));
    match kind {
        0 => {
            if let Ok(l) = Lock::open_with(&name, &opts) {
                drop(l.try_acquire());
                drop(l.acquire_timeout(ZERO));
                let _ = l.is_locked();
            }
        }
        1 => {
            if let Ok(l) = RLock::open_with(&name, &opts) {
                let a = l.try_acquire();
                let b = l.acquire_timeout(ZERO);
                let _ = (l.depth(), l.release());
                drop((a, b));
                let _ = l.release();
            }
        }
        2 => {
            if let Ok(s) = Semaphore::open_with(&name, &opts) {
                let _ = (
                    s.try_acquire(),
                    s.acquire_timeout(ZERO),
                    s.release(),
                    s.value(),
                );
            }
        }
        3 => {
            if let Ok(s) = BoundedSemaphore::open_with(&name, &opts) {
                let _ = (
                    s.release(),
                    s.try_acquire(),
                    s.acquire_timeout(ZERO),
                    s.value(),
                );
            }
        }
        4 => {
            if let Ok(e) = Event::open_with(&name, &opts) {
                let _ = (e.is_set(), e.wait_timeout(ZERO));
                e.set();
                e.clear();
            }
        }
        5 => {
            if let Ok(c) = Condition::open_with(&name, &opts) {
                let _ = (c.n_waiting(), c.is_locked());
                // notify takes no lock, so a forged lock word cannot make it wait.
                c.notify(1);
                let g = match c.try_acquire() {
                    Ok(g) => Some(g),
                    Err(multiproc::TryLockError::OwnerDied(d)) => Some(d.into_inner()),
                    Err(_) => None,
                };
                if let Some(mut g) = g {
                    c.notify(1);
                    let _ = c.wait_timeout(&mut g, ZERO);
                    c.notify_all();
                }
            }
        }
        _ => {
            if let Ok(b) = Barrier::open_with(&name, &opts) {
                let _ = (b.n_waiting(), b.is_broken(), b.parties());
                let _ = b.wait_timeout(ZERO);
                b.abort();
                b.reset();
                let _ = b.wait_timeout(ZERO);
            }
        }
    }
    let _ = unlink(&name);
});
