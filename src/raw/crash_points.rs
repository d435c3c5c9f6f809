//! Crash points: every dict and list call stopped after any one of its journaled
//! stores (a writer killed there) is rolled back by recovery to exactly the state
//! before it, with the allocator's lists intact. Exhaustive over the stores of each
//! call, for random call sequences — the deterministic twin of the SIGKILL tests.

use super::dict::{find, for_each, hash_bytes, insert, remove};
use super::heap::{Heap, HeapError, ARENA};
use super::list;
extern crate std;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::vec::Vec;

struct Buf(*mut u8, Layout);
impl Buf {
    fn new(len: usize) -> Buf {
        let l = Layout::from_size_align(len, 128).unwrap();
        // SAFETY: a non-zero size.
        Buf(unsafe { alloc_zeroed(l) }, l)
    }
    fn copy_of(other: &Buf) -> Buf {
        let b = Buf::new(other.1.size());
        // SAFETY: both buffers are that long and distinct.
        unsafe { core::ptr::copy_nonoverlapping(other.0, b.0, other.1.size()) };
        b
    }
    fn heap(&self) -> Heap<'_> {
        // SAFETY: 128-aligned, `len` bytes, alive as long as `self`.
        unsafe { Heap::new(self.0, self.1.size()) }.unwrap()
    }
}
impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { dealloc(self.0, self.1) }
    }
}

fn contents(h: &Heap<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v = Vec::new();
    for_each(h, |r| {
        let mut k = std::vec![0; r.klen as usize];
        let mut x = std::vec![0; r.vlen as usize];
        h.copy_out(r.key_off(), &mut k)?;
        h.copy_out(r.val_off(), &mut x)?;
        v.push((k, x));
        Ok(())
    })
    .unwrap();
    v.sort();
    v
}

#[test]
fn a_call_stopped_after_any_store_rolls_back_to_the_state_before_it() {
    let mut base = Buf::new(ARENA as usize + (512 << 10));
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut crashes = 0;
    for _ in 0..400 {
        let key = std::vec![(next() % 40) as u8];
        let val = std::vec![7u8; (next() % 300) as usize];
        let op = next() % 10;
        let before = contents(&base.heap());
        for k in 0.. {
            let trial = Buf::copy_of(&base);
            let h = trial.heap();
            let mut grow = |_: u64, _: u64| true;
            let mut txn = h.txn(&mut grow);
            txn.stop_after = Some(k);
            let hash = hash_bytes(&key);
            let r = find(&h, hash, &key).and_then(|found| match (op, found) {
                (0, _) => txn.reset(),
                (1..=3, Some(f)) => remove(&mut txn, f),
                (_, found) => insert(&mut txn, hash, &key, &val, found),
            });
            match r.and_then(|()| txn.finish()) {
                Ok(()) => {
                    txn.commit();
                    h.check_free_lists().unwrap();
                    base = trial;
                    break;
                }
                Err(e) => {
                    assert_eq!(e, HeapError::Corrupt("simulated crash"));
                    crashes += 1;
                    // The writer "dies" here (its transaction is abandoned, neither
                    // committed nor rolled back); the next one recovers.
                    let _ = txn;
                    h.recover();
                    assert_eq!(contents(&h), before, "stopped after {k} stores");
                    h.check_free_lists().unwrap();
                }
            }
        }
    }
    assert!(crashes > 1000, "{crashes} crash points");
}

fn list_contents(h: &Heap<'_>) -> Vec<Vec<u8>> {
    (0..h.len_word())
        .map(|i| {
            let (off, n) = list::item(h, i).unwrap().unwrap();
            let mut v = std::vec![0; n as usize];
            h.copy_out(off, &mut v).unwrap();
            v
        })
        .collect()
}

#[test]
fn a_list_call_stopped_after_any_store_rolls_back_to_the_state_before_it() {
    let mut base = Buf::new(ARENA as usize + (512 << 10));
    let mut seed = 0x0fed_cba9_8765_4321u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut crashes = 0;
    for _ in 0..300 {
        let item = std::vec![3u8; (next() % 200) as usize];
        let items: Vec<Vec<u8>> = (0..next() % 12)
            .map(|n| std::vec![n as u8; n as usize])
            .collect();
        let op = next() % 12;
        let before = list_contents(&base.heap());
        let len = before.len() as u64;
        let at = next() % (len + 1);
        for k in 0.. {
            let trial = Buf::copy_of(&base);
            let h = trial.heap();
            let mut grow = |_: u64, _: u64| true;
            let mut txn = h.txn(&mut grow);
            txn.stop_after = Some(k);
            let r = match op {
                0 => txn.reset(),
                1..=3 if at < len => list::remove(&mut txn, at),
                4 | 5 if at < len => list::set(&mut txn, at, &item),
                6 | 7 => list::insert(&mut txn, at, &item),
                8 => list::extend(&mut txn, items.iter().map(Vec::as_slice)),
                _ => list::extend(&mut txn, core::iter::once(item.as_slice())),
            };
            match r.and_then(|()| txn.finish()) {
                Ok(()) => {
                    txn.commit();
                    h.check_free_lists().unwrap();
                    base = trial;
                    break;
                }
                Err(e) => {
                    assert_eq!(e, HeapError::Corrupt("simulated crash"));
                    crashes += 1;
                    let _ = txn;
                    h.recover();
                    assert_eq!(list_contents(&h), before, "stopped after {k} stores");
                    h.check_free_lists().unwrap();
                }
            }
        }
    }
    assert!(crashes > 1000, "{crashes} crash points");
}
