//! loom models of the SPSC ring: publish/consume ordering (slot bytes live in loom
//! cells, so a missing happens-before is reported as a data race), wraparound of
//! records and of a byte stream split across the ring's end, sleeping and close, and
//! racing role claims.
#![cfg(loom)]
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use multiproc::raw::spsc::{Geometry, RawSpsc, RingMemory, Stop, PRODUCER_CLOSED};
use multiproc::raw::spsc_role::{Claimed, RawRole};
use std::time::Duration;

/// Slot memory made of loom cells: loom checks every byte access for races.
#[derive(Clone)]
struct Cells(Arc<Vec<UnsafeCell<u8>>>);

impl Cells {
    fn new(n: usize) -> Cells {
        Cells(Arc::new((0..n).map(|_| UnsafeCell::new(0)).collect()))
    }
}

// SAFETY: `len` cells exist; loom cells may be shared between loom threads, and
// loom itself reports any access that is not ordered by the ring protocol.
unsafe impl RingMemory for Cells {
    fn len(&self) -> usize {
        self.0.len()
    }
    unsafe fn write(&self, off: usize, src: *const u8, n: usize) {
        for i in 0..n {
            // SAFETY: src is valid for n bytes (caller's contract).
            let b = unsafe { *src.add(i) };
            // SAFETY: exclusive by the ring protocol, which is what loom checks.
            self.0[off + i].with_mut(|p| unsafe { *p = b });
        }
    }
    unsafe fn read(&self, off: usize, dst: *mut u8, n: usize) {
        for i in 0..n {
            // SAFETY: as above.
            let b = self.0[off + i].with(|p| unsafe { *p });
            // SAFETY: dst is valid for n bytes (caller's contract).
            unsafe { *dst.add(i) = b };
        }
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(f);
}

#[test]
fn records_are_published_and_consumed_in_order_across_wraparound() {
    model(|| {
        let ring = Arc::new(RawSpsc::new());
        let geo = Geometry::new(2, 2).unwrap();
        let mem = Cells::new(geo.bytes());
        let mut p = ring.producer(geo, mem.clone()).unwrap();
        let mut c = ring.consumer(geo, mem).unwrap();
        let r2 = ring.clone();
        let t = thread::spawn(move || {
            for v in 1..=3u16 {
                while !p.try_push(&r2, &v).unwrap() {
                    thread::yield_now();
                }
            }
        });
        for want in 1..=3u16 {
            loop {
                if let Some(v) = c.try_pop::<u16>(&ring).unwrap() {
                    assert_eq!(v, want);
                    break;
                }
                thread::yield_now();
            }
        }
        t.join().unwrap();
        assert!(ring.is_empty());
    });
}

#[test]
fn byte_stream_wraps_in_two_pieces() {
    model(|| {
        let ring = Arc::new(RawSpsc::new());
        let geo = Geometry::new(4, 1).unwrap();
        let mem = Cells::new(geo.bytes());
        let mut p = ring.producer(geo, mem.clone()).unwrap();
        let mut c = ring.consumer(geo, mem).unwrap();
        let r2 = ring.clone();
        const MSG: &[u8] = b"abcdef";
        let t = thread::spawn(move || {
            let mut sent = 0;
            while sent < MSG.len() {
                p.free_for(&r2, 1).unwrap();
                sent += p.stage(&MSG[sent..]);
                p.publish(&r2);
                thread::yield_now();
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 3];
        while got.len() < MSG.len() {
            c.available_for(&ring, 1).unwrap();
            let n = c.take(&mut buf);
            got.extend_from_slice(&buf[..n]);
            c.release(&ring);
            thread::yield_now();
        }
        t.join().unwrap();
        assert_eq!(got, MSG);
    });
}

#[test]
fn sleeping_consumer_gets_every_unit_then_closed() {
    model(|| {
        let ring = Arc::new(RawSpsc::new());
        let geo = Geometry::new(1, 1).unwrap();
        let mem = Cells::new(geo.bytes());
        let mut p = ring.producer(geo, mem.clone()).unwrap();
        let mut c = ring.consumer(geo, mem).unwrap();
        let r2 = ring.clone();
        let t = thread::spawn(move || {
            for v in [7u8, 8] {
                p.wait_free(&r2, 1, None, Duration::from_millis(10), || false)
                    .unwrap();
                p.stage(&[v]);
                p.publish(&r2);
            }
            r2.close(PRODUCER_CLOSED);
        });
        let mut got = Vec::new();
        loop {
            match c.wait_available(&ring, 1, None, Duration::from_millis(10), || false) {
                Ok(_) => {
                    let mut b = [0u8];
                    c.take(&mut b);
                    c.release(&ring);
                    got.push(b[0]);
                }
                Err(Stop::Closed) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        t.join().unwrap();
        assert_eq!(got, [7, 8]);
    });
}

#[test]
fn exactly_one_of_two_racing_claimants_gets_a_role() {
    model(|| {
        let role = Arc::new(RawRole::new());
        let r2 = role.clone();
        let t = thread::spawn(move || r2.claim(multiproc::sync::current_identity(), true));
        let mine = role.claim(multiproc::sync::current_identity(), true);
        let theirs = t.join().unwrap();
        assert!(mine.is_ok() != theirs.is_ok(), "{mine:?} {theirs:?}");
    });
}

#[test]
fn a_dead_holders_role_is_taken_over() {
    model(|| {
        let role = Arc::new(RawRole::new());
        let r2 = role.clone();
        thread::spawn(move || {
            assert_eq!(
                r2.claim(multiproc::sync::current_identity(), true),
                Ok(Claimed::Fresh)
            );
            multiproc::sync::loom_declare_dead();
        })
        .join()
        .unwrap();
        let me = multiproc::sync::current_identity();
        assert!(matches!(role.claim(me, true), Ok(Claimed::TakenOver(_))));
        assert!(role.is_held_by(me));
    });
}
