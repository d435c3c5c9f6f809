//! loom models of the `RawArray`/`RawValue` algorithms: seqlock reads are never torn,
//! lock-free word operations never lose an update (also of a neighbour sharing the
//! word), and a writer that dies mid-write is repaired by the next lock acquirer.
#![cfg(loom)]

use loom::sync::atomic::AtomicU64;
use loom::sync::Arc;
use loom::thread;
use multiproc::raw::{RawArray, RawValue};

/// A header plus its element words, built as Rust values (loom atomics are not
/// layout-compatible with a mapping).
struct Shared<H> {
    header: H,
    words: Vec<AtomicU64>,
}

fn shared<H>(header: H, words: usize) -> Arc<Shared<H>> {
    Arc::new(Shared {
        header,
        words: (0..words).map(|_| AtomicU64::new(0)).collect(),
    })
}

#[test]
fn seqlock_read_of_a_two_word_value_is_never_torn() {
    loom::model(|| {
        let s = shared(RawValue::new(), 2);
        let w = s.clone();
        let writer = thread::spawn(move || {
            w.header.view::<[u64; 2]>(&w.words).unwrap().set([1, 1]);
        });
        let x = s.header.view::<[u64; 2]>(&s.words).unwrap().get();
        assert!(x == [0, 0] || x == [1, 1], "torn read {x:?}");
        writer.join().unwrap();
        assert_eq!(s.header.view::<[u64; 2]>(&s.words).unwrap().get(), [1, 1]);
        assert_eq!(s.header.seq() % 2, 0);
    });
}

#[test]
fn fetch_add_on_neighbouring_bytes_of_one_word_loses_nothing() {
    loom::model(|| {
        let s = shared(RawArray::new(), 1);
        let t: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                thread::spawn(move || {
                    let a = s.header.view::<u8>(&s.words, 8).unwrap();
                    a.fetch_add(i, 1);
                    a.fetch_add(7, 1);
                })
            })
            .collect();
        for t in t {
            t.join().unwrap();
        }
        let a = s.header.view::<u8>(&s.words, 8).unwrap();
        assert_eq!((a.get(0), a.get(1), a.get(7)), (Some(1), Some(1), Some(2)));
    });
}

#[test]
fn update_is_atomic_with_fetch_add() {
    loom::model(|| {
        let s = shared(RawValue::new(), 1);
        let w = s.clone();
        let t = thread::spawn(move || {
            w.header.view::<u64>(&w.words).unwrap().update(|x| *x *= 3);
        });
        s.header.view::<u64>(&s.words).unwrap().fetch_add(1);
        t.join().unwrap();
        let v = s.header.view::<u64>(&s.words).unwrap().get();
        // (0 * 3) + 1 or (0 + 1) * 3: never a lost update.
        assert!(v == 1 || v == 3, "{v}");
    });
}

#[test]
fn writer_dead_mid_write_is_repaired_by_the_next_acquirer() {
    loom::model(|| {
        let s = shared(RawValue::new(), 2);
        let w = s.clone();
        let dying = thread::spawn(move || {
            let me = multiproc::sync::current_identity();
            let raw = w.header.as_array();
            let _ = raw.lock(me, None, core::time::Duration::from_millis(1));
            raw.begin_write();
            w.words[0].store(5, loom::sync::atomic::Ordering::Release);
            multiproc::sync::loom_declare_dead(); // killed here: never unlocks
        });
        dying.join().unwrap();
        let v = s.header.view::<[u64; 2]>(&s.words).unwrap();
        // The reader gives up on the odd counter, recovers the lock, repairs it.
        assert_eq!(v.get(), [5, 0]);
        assert_eq!(s.header.seq() % 2, 0);
        assert!(!s.header.raw_lock().is_locked());
        v.set([6, 6]);
        assert_eq!(v.get(), [6, 6]);
    });
}
