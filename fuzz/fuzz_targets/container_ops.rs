//! Op sequences on a `Dict` and a `List` against `HashMap` and `Vec` models: every
//! result and the final contents must match (a mismatch panics: a finding).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use multiproc::{Dict, List};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

static N: AtomicU64 = AtomicU64::new(0);

#[derive(Arbitrary, Debug)]
enum Op {
    Insert(u8, Vec<u8>),
    Remove(u8),
    Append(u8, u8),
    Clear,
    Push(Vec<u8>),
    Pop,
    Set(u8, Vec<u8>),
    InsertAt(u8, Vec<u8>),
    RemoveAt(u8),
    Extend(Vec<Vec<u8>>),
}

fuzz_target!(|ops: Vec<Op>| {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let Ok(d) = Dict::<u8, Vec<u8>>::create_with_limit(&format!("fuzz-cops-d-{pid}-{n}"), 4 << 20)
    else {
        return;
    };
    let Ok(l) = List::<Vec<u8>>::create_with_limit(&format!("fuzz-cops-l-{pid}-{n}"), 4 << 20)
    else {
        return;
    };
    let mut dm: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut lm: Vec<Vec<u8>> = Vec::new();
    for op in ops.into_iter().take(200) {
        match op {
            Op::Insert(k, v) => assert_eq!(d.insert(k, v.clone()).unwrap(), dm.insert(k, v)),
            Op::Remove(k) => assert_eq!(d.remove(&k).unwrap(), dm.remove(&k)),
            Op::Append(k, b) => {
                let got = d
                    .update(k, |v| {
                        let mut v = v.unwrap_or_default();
                        v.push(b);
                        Some(v)
                    })
                    .unwrap();
                let e = dm.entry(k).or_default();
                e.push(b);
                assert_eq!(got.as_ref(), Some(&*e));
            }
            Op::Clear => {
                d.clear().unwrap();
                dm.clear();
            }
            Op::Push(v) => {
                l.push(v.clone()).unwrap();
                lm.push(v);
            }
            Op::Pop => assert_eq!(l.pop().unwrap(), lm.pop()),
            Op::Set(i, v) => {
                let i = usize::from(i);
                assert_eq!(l.set(i, v.clone()).is_ok(), i < lm.len());
                if i < lm.len() {
                    lm[i] = v;
                }
            }
            Op::InsertAt(i, v) => {
                let i = usize::from(i);
                assert_eq!(l.insert(i, v.clone()).is_ok(), i <= lm.len());
                if i <= lm.len() {
                    lm.insert(i, v);
                }
            }
            Op::RemoveAt(i) => {
                let i = usize::from(i);
                let got = l.remove(i).ok();
                assert_eq!(got, (i < lm.len()).then(|| lm.remove(i)));
            }
            Op::Extend(vs) => {
                l.extend(vs.iter().cloned()).unwrap();
                lm.extend(vs);
            }
        }
    }
    let got: HashMap<u8, Vec<u8>> = d.items().unwrap().into_iter().collect();
    assert_eq!(got, dm);
    assert_eq!(d.len(), dm.len());
    assert_eq!(l.to_vec().unwrap(), lm);
    d.check_heap().unwrap();
    l.check_heap().unwrap();
});
