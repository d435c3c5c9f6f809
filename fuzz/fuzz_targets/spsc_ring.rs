//! The raw SPSC ring under arbitrary operations, against a `VecDeque` model — and
//! with arbitrary bytes written over its shared state (at the start or mid-run),
//! after which every operation must still return a value or `RingCorrupt`: never
//! crash, hang or touch memory out of bounds.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use multiproc::raw::spsc::{Geometry, RawSpsc, RegionMemory, Stop, CONSUMER_CLOSED, PRODUCER_CLOSED};
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Op {
    Push(u64),
    Pop,
    PushMany(Vec<u64>),
    TakeMany(u8),
    /// Stage without publishing, then publish or drop.
    StageThen(Vec<u64>, bool),
    Refresh,
    /// A wait whose deadline has already passed.
    WaitEmpty,
    WaitFull,
    Close(bool),
    /// A foreign write into the shared state.
    Scribble { offset: u16, value: u64 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    log2_cap: u8,
    /// Arbitrary initial shared state (else a fresh ring).
    image: Option<Vec<u8>>,
    ops: Vec<Op>,
}

fn to_bytes(vs: &[u64]) -> Vec<u8> {
    vs.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

#[repr(C, align(128))]
struct Aligned([u8; core::mem::size_of::<RawSpsc>()]);

fuzz_target!(|input: Input| {
    let cap = 1u64 << (input.log2_cap % 6);
    let geo = Geometry::new(cap, 8).unwrap();
    let mut state = Box::new(Aligned([0; core::mem::size_of::<RawSpsc>()]));
    let mut trusted = true;
    if let Some(img) = &input.image {
        let n = img.len().min(state.0.len());
        state.0[..n].copy_from_slice(&img[..n]);
        trusted = false;
    }
    let base = state.0.as_mut_ptr();
    // SAFETY: aligned, sized, and RawSpsc is valid for any bytes (atomics only).
    let ring = unsafe { &*(base as *const RawSpsc) };
    let mut slots = vec![0u8; geo.bytes()];
    // SAFETY: `slots` outlives the cursors (dropped at the end of this closure).
    let mem = unsafe { RegionMemory::new(slots.as_mut_ptr(), slots.len()) };
    let (mut p, mut c) = match (ring.producer(geo, mem), ring.consumer(geo, mem)) {
        (Ok(p), Ok(c)) => (p, c),
        _ => return,
    };
    let mut model = VecDeque::new();
    let past = Some(multiproc::sync::Instant::now());
    for op in input.ops.iter().take(256) {
        match op {
            Op::Push(v) => match p.try_push(ring, v) {
                Ok(true) => model.push_back(*v),
                Ok(false) => assert!(!trusted || model.len() as u64 == cap),
                Err(_) => assert!(!trusted),
            },
            Op::Pop => match c.try_pop::<u64>(ring) {
                Ok(Some(v)) => {
                    if trusted {
                        assert_eq!(Some(v), model.pop_front());
                    }
                }
                Ok(None) => assert!(!trusted || model.is_empty()),
                Err(_) => assert!(!trusted),
            },
            Op::PushMany(vs) => {
                if p.free_for(ring, vs.len() as u64).is_err() {
                    assert!(!trusted);
                    continue;
                }
                let n = p.stage(&to_bytes(vs)) / 8;
                p.publish(ring);
                if trusted {
                    assert_eq!(n, vs.len().min(cap as usize - model.len()));
                    model.extend(&vs[..n]);
                }
            }
            Op::TakeMany(k) => {
                let mut raw = vec![0u8; *k as usize * 8];
                if c.available_for(ring, *k as u64).is_err() {
                    assert!(!trusted);
                    continue;
                }
                let n = c.take(&mut raw) / 8;
                c.release(ring);
                let out: Vec<u64> = raw
                    .chunks_exact(8)
                    .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
                    .collect();
                if trusted {
                    assert_eq!(n, out.len().min(model.len()));
                    for v in &out[..n] {
                        assert_eq!(Some(*v), model.pop_front());
                    }
                }
            }
            Op::StageThen(vs, publish) => {
                if p.free_for(ring, 1).is_err() {
                    assert!(!trusted);
                    continue;
                }
                let n = p.stage(&to_bytes(vs)) / 8;
                if *publish {
                    p.publish(ring);
                    if trusted {
                        model.extend(&vs[..n]);
                    }
                } else {
                    p.unstage();
                }
            }
            Op::Refresh => {
                let _ = p.refresh(ring);
                let _ = c.refresh(ring);
            }
            Op::WaitEmpty => match c.wait_available(ring, 1, past, Duration::from_millis(1), || true) {
                Ok(n) => assert!(!trusted || (n >= 1 && n as usize <= model.len())),
                Err(Stop::TimedOut | Stop::Gone) => assert!(!trusted || model.is_empty()),
                Err(Stop::Closed) => {}
                Err(Stop::Corrupt(_)) => assert!(!trusted),
            },
            Op::WaitFull => match p.wait_free(ring, 1, past, Duration::from_millis(1), || true) {
                Ok(_) | Err(Stop::Closed) => {}
                Err(Stop::TimedOut | Stop::Gone) => assert!(!trusted || model.len() as u64 == cap),
                Err(Stop::Corrupt(_)) => assert!(!trusted),
            },
            Op::Close(producer) => {
                ring.close(if *producer { PRODUCER_CLOSED } else { CONSUMER_CLOSED });
            }
            Op::Scribble { offset, value } => {
                let off = (*offset as usize) % (state.0.len() - 8) & !7;
                // SAFETY: in bounds and 8-aligned; a foreign process's write, modelled as
                // a volatile store into the atomics' bytes.
                unsafe { std::ptr::write_volatile(base.add(off) as *mut u64, *value) };
                trusted = false;
            }
        }
        if trusted {
            assert_eq!(ring.len(geo) as usize, model.len());
        }
    }
    drop((p, c));
    drop(slots);
});
