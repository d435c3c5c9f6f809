//! Arbitrary bytes as the shared state of a named pipe (behind a valid header):
//! opening it and sending, receiving and polling must return Ok or Err — never
//! crash, hang or read out of bounds. When bit 1 of the first byte is set, the file
//! is truncated halfway through the operations to a length chosen by the last byte
//! (survived, never a `SIGBUS`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproc::segment::{read_image, unlink, write_image, HEADER_LEN};
use multiproc::{Options, Pipe, Role, SpscQueue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static N: AtomicU64 = AtomicU64::new(0);

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

/// Valid images of a small pipe and queue, to overwrite with fuzz bytes.
fn templates() -> &'static (Vec<u8>, Vec<u8>) {
    static T: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    T.get_or_init(|| {
        let name = format!("fuzz-pipe-tpl-{}", std::process::id());
        let p = Pipe::create(&name, 256).unwrap();
        let pipe = read_image(&name).unwrap();
        drop(p);
        let q = SpscQueue::<u32>::create(&name, 16, Role::Producer).unwrap();
        let queue = read_image(&name).unwrap();
        drop(q);
        (pipe, queue)
    })
}

fuzz_target!(|data: &[u8]| {
    let (pipe_tpl, queue_tpl) = templates();
    let opts = Options::new().init_timeout(Duration::from_millis(1));
    let pick_queue = data.first().is_some_and(|b| b & 1 == 1);
    let tpl = if pick_queue { queue_tpl } else { pipe_tpl };
    let mut img = tpl.clone();
    let body = data.get(1..).unwrap_or(&[]);
    let n = body.len().min(img.len() - HEADER_LEN);
    img[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&body[..n]);
    let name = format!("fuzz-pipe-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    if write_image(&name, &img).is_err() {
        return;
    }
    let cut_to = data
        .first()
        .filter(|b| *b & 2 != 0)
        .map(|_| u64::from(*data.last().unwrap_or(&0)) * img.len() as u64 / 255);
    let cut = || {
        if let Some(len) = cut_to {
            truncate(&name, len);
        }
    };
    if pick_queue {
        for role in [Role::Consumer, Role::Producer] {
            if let Ok(q) = SpscQueue::<u32>::open_with(&name, role, &opts) {
                let mut q = q.with_probe_interval(Duration::from_micros(100));
                let _ = q.try_get();
                let _ = q.try_put(7);
                let _ = q.get_timeout(Duration::ZERO);
                cut();
                let _ = q.put_timeout(8, Duration::ZERO);
                let mut out = [0u32; 4];
                let _ = q.try_get_many(&mut out);
                let _ = q.try_put_many(&[1, 2, 3]);
                let _ = (q.len(), q.is_full(), q.is_empty());
            }
        }
    } else if let Ok(p) = Pipe::open_with(&name, &opts) {
        let mut p = p.with_probe_interval(Duration::from_micros(100));
        let mut buf = Vec::new();
        for _ in 0..4 {
            let _ = p.try_recv_bytes_into(&mut buf);
        }
        let _ = p.recv_bytes_timeout(Duration::ZERO);
        cut();
        let _ = p.poll(Some(Duration::ZERO));
        let _ = p.try_send_bytes(b"hello");
        let _ = p.send_bytes_timeout(&[0u8; 600], Duration::ZERO);
        let _ = p.try_recv::<(u8, String)>();
    }
    let _ = unlink(&name);
});
