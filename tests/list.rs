//! `List<T>`: the vector operations, sharing by name across processes, random op
//! sequences against a `Vec` model, writers SIGKILLed mid-call, handles passed to
//! Pool tasks, wrong types and corrupt bytes.
#![cfg(all(feature = "std", not(loom)))]
mod common;
#[path = "common/rng.rs"]
mod rng;
use common::*;
use multiproc::{Dict, Error, List, Pool, Value};
use rng::Rng;
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

#[test]
fn handles_are_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<List<String>>();
}

#[test]
fn vector_operations_behave_like_a_vec() {
    let name = unique("list-basic");
    let l: List<String> = List::create(&name).unwrap();
    assert!(l.is_empty());
    assert_eq!(l.pop().unwrap(), None);
    l.push("a".into()).unwrap();
    l.extend(["b".to_string(), "c".to_string()]).unwrap();
    assert_eq!(l.len(), 3);
    assert_eq!(l.get(1).unwrap().as_deref(), Some("b"));
    assert_eq!(l.get(3).unwrap(), None);
    l.set(1, "B".into()).unwrap();
    assert!(matches!(
        l.set(3, "x".into()),
        Err(Error::InvalidArgument { .. })
    ));
    l.insert(0, "first".into()).unwrap();
    l.insert(4, "last".into()).unwrap();
    assert!(matches!(
        l.insert(6, "x".into()),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(l.to_vec().unwrap(), ["first", "a", "B", "c", "last"]);
    assert_eq!(l.remove(1).unwrap(), "a");
    assert!(matches!(l.remove(4), Err(Error::InvalidArgument { .. })));
    assert_eq!(l.pop().unwrap().as_deref(), Some("last"));
    assert_eq!(l.iter().unwrap().collect::<Vec<_>>(), ["first", "B", "c"]);
    l.clear().unwrap();
    assert!(l.is_empty());
    l.push("again".into()).unwrap();
    assert_eq!(l.to_vec().unwrap(), ["again"]);
}

#[test]
fn items_of_zero_one_and_sixteen_mebibytes_round_trip() {
    let zero: List<()> = List::create(&unique("list-sizes")).unwrap();
    zero.extend([(), ()]).unwrap();
    assert_eq!(zero.to_vec().unwrap(), [(), ()]);
    let one: List<u8> = List::create(&unique("list-sizes")).unwrap();
    one.extend(0..=255u8).unwrap();
    assert_eq!(one.to_vec().unwrap(), (0..=255u8).collect::<Vec<_>>());
    let big: List<Vec<u8>> = List::create(&unique("list-sizes")).unwrap();
    let v: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 253) as u8).collect();
    big.push(v.clone()).unwrap();
    assert_eq!(big.get(0).unwrap().as_deref(), Some(&v[..]));
}

#[test]
fn opening_with_another_item_type_is_wrong_type() {
    let name = unique("list-type");
    let _l: List<u64> = List::create(&name).unwrap();
    match List::<String>::open(&name) {
        Err(Error::WrongType {
            expected, found, ..
        }) => {
            assert!(expected.contains("String"), "{expected}");
            assert!(found.contains("u64"), "{found}");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    assert!(matches!(
        Dict::<u64, u64>::open(&name),
        Err(Error::WrongKind { .. })
    ));
}

#[test]
fn pushes_from_several_processes_all_arrive() {
    let name = unique("list-push");
    let l: List<(u32, u32)> = List::create(&name).unwrap();
    let children: Vec<_> = (0..4u32)
        .map(|p| {
            let name = name.clone();
            fork(move || {
                let l: List<(u32, u32)> = List::open(&name).unwrap();
                for i in 0..300 {
                    l.push((p, i)).unwrap();
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok(WATCHDOG);
    }
    let v = l.to_vec().unwrap();
    assert_eq!(v.len(), 1200);
    for p in 0..4 {
        let mine: Vec<u32> = v.iter().filter(|x| x.0 == p).map(|x| x.1).collect();
        assert_eq!(
            mine,
            (0..300).collect::<Vec<_>>(),
            "process {p}'s pushes in order"
        );
    }
}

// ---- the model ----

#[derive(Clone, Debug)]
enum Op {
    Push(Vec<u8>),
    Pop,
    Set(usize, Vec<u8>),
    Insert(usize, Vec<u8>),
    Remove(usize),
    Extend(Vec<Vec<u8>>),
    Clear,
}

fn item(r: &mut Rng) -> Vec<u8> {
    let len = match r.below(20) {
        0 => 20_000 + r.below(40_000) as usize,
        _ => r.below(50) as usize,
    };
    vec![len as u8; len]
}

fn op_at(seed: u64, i: u64, len: usize) -> Op {
    let mut r = Rng::new(seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let at = |r: &mut Rng| r.below(len.max(1) as u64) as usize;
    match r.below(100) {
        0..=34 => Op::Push(item(&mut r)),
        35..=54 => Op::Pop,
        55..=69 => Op::Set(at(&mut r), item(&mut r)),
        70..=79 => Op::Insert(at(&mut r), item(&mut r)),
        80..=89 => Op::Remove(at(&mut r)),
        90..=98 => Op::Extend((0..r.below(30)).map(|_| item(&mut r)).collect()),
        _ => Op::Clear,
    }
}

/// Applies `op` to the model; ops on indices past the end are no-ops.
fn model_apply(m: &mut Vec<Vec<u8>>, op: &Op) -> Option<Vec<u8>> {
    match op {
        Op::Push(x) => m.push(x.clone()),
        Op::Pop => return m.pop(),
        Op::Set(i, x) if *i < m.len() => m[*i] = x.clone(),
        Op::Insert(i, x) if *i <= m.len() => m.insert(*i, x.clone()),
        Op::Remove(i) if *i < m.len() => return Some(m.remove(*i)),
        Op::Extend(xs) => m.extend(xs.iter().cloned()),
        Op::Clear => m.clear(),
        _ => {}
    }
    None
}

fn list_apply(l: &List<Vec<u8>>, op: &Op) -> Option<Vec<u8>> {
    let len = l.len();
    match op {
        Op::Push(x) => l.push(x.clone()).unwrap(),
        Op::Pop => return l.pop().unwrap(),
        Op::Set(i, x) if *i < len => l.set(*i, x.clone()).unwrap(),
        Op::Insert(i, x) if *i <= len => l.insert(*i, x.clone()).unwrap(),
        Op::Remove(i) if *i < len => return Some(l.remove(*i).unwrap()),
        Op::Extend(xs) => l.extend(xs.iter().cloned()).unwrap(),
        Op::Clear => l.clear().unwrap(),
        _ => {}
    }
    None
}

#[test]
fn random_op_sequences_match_a_vec_model() {
    let name = unique("list-model");
    let l: List<Vec<u8>> = List::create(&name).unwrap();
    let seed = Rng::seed();
    let mut m = Vec::new();
    for i in 0..1500 {
        let op = op_at(seed, i, m.len());
        assert_eq!(
            list_apply(&l, &op),
            model_apply(&mut m, &op),
            "op {i} {op:?}"
        );
        if i % 100 == 0 {
            assert_eq!(l.to_vec().unwrap(), m);
        }
    }
    assert_eq!(l.to_vec().unwrap(), m);
    l.check_heap().unwrap();
}

#[test]
fn writers_killed_mid_call_leave_the_list_as_before_or_after_it() {
    watchdog(WATCHDOG, || {
        let name = unique("list-kill");
        let l: List<Vec<u8>> = List::create(&name).unwrap();
        let progress_name = unique("list-kill-progress");
        let progress: Value<u64> = Value::create(&progress_name, 0).unwrap();
        let seed = Rng::seed();
        let mut timing = Rng::new(seed ^ 0xfeed);
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut start = 0u64;
        let (mut before, mut after) = (0, 0);
        for _ in 0..100 {
            progress.set(start);
            let (n, pn) = (name.clone(), progress_name.clone());
            let child = fork(move || {
                let l: List<Vec<u8>> = List::open(&n).unwrap();
                let progress: Value<u64> = Value::open(&pn).unwrap();
                let mut i = progress.get();
                loop {
                    // Ops depend on the length only through their index, which the
                    // parent's model knows at every step.
                    list_apply(&l, &op_at(seed, i, l.len()));
                    i += 1;
                    progress.set(i);
                }
            });
            // Let it complete one call (so every round makes progress), then kill it
            // at a random moment.
            assert!(
                wait_until(WATCHDOG, || progress.get() > start),
                "the writer made no progress"
            );
            std::thread::sleep(Duration::from_micros(timing.below(1500)));
            child.kill();
            let done = progress.get();
            for i in start..done {
                let op = op_at(seed, i, model.len());
                model_apply(&mut model, &op);
            }
            l.check_heap().unwrap();
            let got = l.to_vec().unwrap();
            if got == model {
                before += 1;
                start = done;
            } else {
                let op = op_at(seed, done, model.len());
                model_apply(&mut model, &op);
                assert_eq!(got, model, "op {done} ({op:?}) half-applied");
                after += 1;
                start = done + 1;
            }
        }
        println!("{before} kills left the state before the op, {after} after it; {start} ops");
        for i in start..start + 200 {
            let op = op_at(seed, i, model.len());
            assert_eq!(list_apply(&l, &op), model_apply(&mut model, &op));
        }
        assert_eq!(l.to_vec().unwrap(), model);
    });
}

#[test]
fn corrupt_bytes_are_reported_as_corrupt_never_a_panic() {
    watchdog(WATCHDOG, || {
        let mut r = Rng::new(Rng::seed());
        let mut corrupt = 0;
        for round in 0..60 {
            let l: List<Vec<u8>> = List::create(&unique("list-corrupt")).unwrap();
            l.extend((0..40u8).map(|i| vec![i; i as usize])).unwrap();
            let base = l.segment().as_ptr().cast::<u64>();
            for _ in 0..1 + round % 8 {
                let at = r.below(4096) as usize;
                let v = match r.below(3) {
                    0 => r.next(),
                    1 => r.below(1 << 16),
                    _ => 0,
                };
                // SAFETY: inside the committed header + first arena chunk.
                unsafe { std::ptr::write_volatile(base.add(at), v) };
            }
            for i in 0..50 {
                let results = [
                    l.get(i).map(drop),
                    l.push(vec![1; i % 7]).map(drop),
                    l.set(i / 2, vec![2]).map(drop),
                    l.pop().map(drop),
                    l.to_vec().map(drop),
                ];
                for res in results {
                    match res {
                        Ok(()) | Err(Error::InvalidArgument { .. }) => {}
                        Err(Error::Corrupt { .. }) => corrupt += 1,
                        Err(e) => panic!("expected Ok or Corrupt, got {e:?}"),
                    }
                }
            }
        }
        println!("{corrupt} operations reported Corrupt");
        assert!(corrupt > 0, "no scribble was ever detected");
    });
}

// ---- handles as task arguments ----

fn record_square(args: (List<u64>, Dict<u64, u64>, u64)) -> u64 {
    let (list, dict, x) = args;
    list.push(x * x).unwrap();
    dict.insert(x, x * x).unwrap();
    x * x
}

#[test]
fn handles_passed_to_pool_tasks_open_the_same_objects() {
    watchdog(WATCHDOG, || {
        let l: List<u64> = List::create(&unique("list-pool")).unwrap();
        let d: Dict<u64, u64> = Dict::create(&unique("dict-pool")).unwrap();
        let pool = Pool::new(2).unwrap();
        let args: Vec<_> = (0..10).map(|x| (l.clone(), d.clone(), x)).collect();
        let r = pool.map(record_square, args).unwrap();
        assert_eq!(r, (0..10).map(|x| x * x).collect::<Vec<_>>());
        let mut got = l.to_vec().unwrap();
        got.sort_unstable();
        assert_eq!(got, r);
        assert_eq!(d.len(), 10);
        assert_eq!(d.get(&7).unwrap(), Some(49));
        pool.close();
        pool.join().unwrap();
        // The workers' deserialized handles did not unlink the objects.
        assert!(List::<u64>::open(l.name()).is_ok());
        assert!(Dict::<u64, u64>::open(d.name()).is_ok());
    });
}

#[test]
fn an_anonymous_handle_does_not_serialize() {
    let v = Value::<u64>::anonymous(1).unwrap();
    assert!(postcard::to_allocvec(&v).is_err());
    let lock = multiproc::Lock::create(&unique("serde-lock")).unwrap();
    let wire = postcard::to_allocvec(&lock).unwrap();
    let again: multiproc::Lock = postcard::from_bytes(&wire).unwrap();
    assert_eq!(again.name(), lock.name());
}
