//! `Dict<K, V>`: the map operations, sharing by name across processes, growth,
//! random op sequences against a `HashMap` model, writers SIGKILLed mid-call, wrong
//! types and corrupt bytes.
#![cfg(all(feature = "std", not(loom)))]
mod common;
#[path = "common/rng.rs"]
mod rng;
use common::*;
use multiproc::{Dict, Error, Value};
use rng::Rng;
use std::collections::HashMap;
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

type Bytes = Vec<u8>;

#[test]
fn handles_are_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Dict<String, u64>>();
    check::<Dict<Vec<u8>, (u32, String)>>();
}

#[test]
fn map_operations_behave_like_a_hashmap() {
    let name = unique("dict-basic");
    let d: Dict<String, u64> = Dict::create(&name).unwrap();
    assert!(d.is_empty());
    assert_eq!(d.insert("a".into(), 1).unwrap(), None);
    assert_eq!(d.insert("b".into(), 2).unwrap(), None);
    assert_eq!(d.insert("a".into(), 10).unwrap(), Some(1));
    assert_eq!(d.len(), 2);
    assert_eq!(d.get(&"a".into()).unwrap(), Some(10));
    assert_eq!(d.get(&"zz".into()).unwrap(), None);
    assert!(d.contains_key(&"b".into()).unwrap());
    assert!(!d.contains_key(&"c".into()).unwrap());
    assert_eq!(d.remove(&"b".into()).unwrap(), Some(2));
    assert_eq!(d.remove(&"b".into()).unwrap(), None);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d.update("a".into(), |v| v.map(|x| x + 5)).unwrap(),
        Some(15)
    );
    assert_eq!(
        d.update("n".into(), |v| Some(v.unwrap_or(0) + 1)).unwrap(),
        Some(1)
    );
    assert_eq!(d.update("n".into(), |_| None).unwrap(), None);
    assert!(!d.contains_key(&"n".into()).unwrap());
    let mut items = d.items().unwrap();
    items.sort();
    assert_eq!(items, vec![("a".to_string(), 15)]);
    assert_eq!(d.keys().unwrap(), vec!["a".to_string()]);
    assert_eq!(d.values().unwrap(), vec![15]);
    d.clear().unwrap();
    assert!(d.is_empty());
    assert_eq!(d.get(&"a".into()).unwrap(), None);
    d.insert("again".into(), 7).unwrap();
    assert_eq!(d.items().unwrap(), vec![("again".to_string(), 7)]);
}

#[test]
fn values_of_zero_one_and_sixteen_mebibytes_round_trip() {
    let name = unique("dict-sizes");
    let zero: Dict<u64, ()> = Dict::create(&name).unwrap();
    zero.insert(1, ()).unwrap();
    assert_eq!(zero.get(&1).unwrap(), Some(()));
    assert_eq!(zero.get(&2).unwrap(), None);

    let name = unique("dict-sizes");
    let one: Dict<u8, u8> = Dict::create(&name).unwrap();
    for k in 0..=255u8 {
        one.insert(k, k ^ 0x5a).unwrap();
    }
    for k in 0..=255u8 {
        assert_eq!(one.get(&k).unwrap(), Some(k ^ 0x5a));
    }

    let name = unique("dict-sizes");
    let big: Dict<u8, Bytes> = Dict::create(&name).unwrap();
    let v: Bytes = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    big.insert(1, v.clone()).unwrap();
    big.insert(2, vec![7; 10]).unwrap();
    let other: Dict<u8, Bytes> = Dict::open(&name).unwrap();
    assert_eq!(other.get(&1).unwrap().as_deref(), Some(&v[..]));
    // Replacing it frees the 16 MiB block for reuse.
    let used = big.allocated_bytes();
    big.insert(1, vec![1]).unwrap();
    big.insert(3, v.clone()).unwrap();
    // The second 16 MiB value reused the first one's block.
    assert!(
        big.allocated_bytes() < used + (1 << 20),
        "{used} -> {}",
        big.allocated_bytes()
    );
    assert_eq!(other.get(&3).unwrap().map(|b| b.len()), Some(v.len()));
}

#[test]
fn another_process_sees_entries_by_name() {
    let name = unique("dict-fork");
    let d: Dict<String, Vec<u32>> = Dict::create(&name).unwrap();
    d.insert("from-parent".into(), vec![1, 2, 3]).unwrap();
    let n2 = name.clone();
    fork(move || {
        let d: Dict<String, Vec<u32>> = Dict::open(&n2).unwrap();
        let v = d.get(&"from-parent".into()).unwrap();
        d.insert("from-child".into(), vec![4]).unwrap();
        i32::from(v != Some(vec![1, 2, 3]))
    })
    .join_ok(WATCHDOG);
    assert_eq!(d.get(&"from-child".into()).unwrap(), Some(vec![4]));
}

#[test]
fn an_unrelated_process_attaches_by_name() {
    if role().as_deref() == Some("dict-attacher") {
        let name = std::env::var("DICT_NAME").unwrap();
        let d: Dict<String, u64> = Dict::open(&name).unwrap();
        let v = d.get(&"k".into()).unwrap();
        d.insert("reply".into(), v.unwrap() + 1).unwrap();
        return;
    }
    if role().is_some() {
        return;
    }
    let name = unique("dict-unrelated");
    let d: Dict<String, u64> = Dict::create(&name).unwrap();
    d.insert("k".into(), 41).unwrap();
    std::env::set_var("DICT_NAME", &name);
    let child = spawn_self("an_unrelated_process_attaches_by_name", "dict-attacher");
    let (code, out) = wait_self(child, WATCHDOG);
    assert_eq!(code, 0, "{out}");
    assert_eq!(d.get(&"reply".into()).unwrap(), Some(42));
}

#[test]
fn opening_with_other_types_is_wrong_type_naming_both() {
    let name = unique("dict-type");
    let _d: Dict<String, u64> = Dict::create(&name).unwrap();
    match Dict::<String, u32>::open(&name) {
        Err(Error::WrongType {
            expected, found, ..
        }) => {
            assert!(expected.contains("u32"), "{expected}");
            assert!(found.contains("u64"), "{found}");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    assert!(matches!(
        multiproc::List::<u64>::open(&name),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        Dict::<String, u64>::open(&unique("dict-none")),
        Err(Error::NotFound { .. })
    ));
    let again = Dict::<String, u64>::open_or_create(&name).unwrap();
    assert_eq!(again.name(), name);
}

#[test]
fn a_byte_limit_is_a_clear_error_and_leaves_the_dict_unchanged() {
    let name = unique("dict-limit");
    let d: Dict<u32, Bytes> = Dict::create_with_limit(&name, 256 << 10).unwrap();
    let mut n = 0;
    let err = loop {
        match d.insert(n, vec![n as u8; 1000]) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 10_000, "the limit was never reached");
    };
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(d.len(), n as usize);
    for k in 0..n {
        assert_eq!(d.get(&k).unwrap().map(|v| v[0]), Some(k as u8));
    }
    assert_eq!(d.get(&n).unwrap(), None);
    // Removing makes room again.
    d.remove(&0).unwrap();
    d.insert(n, vec![1; 1000]).unwrap();
}

#[test]
fn a_guard_excludes_other_writers_across_processes() {
    let name = unique("dict-guard");
    let d: Dict<String, u64> = Dict::create(&name).unwrap();
    d.insert("n".into(), 0).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            let name = name.clone();
            fork(move || {
                let d: Dict<String, u64> = Dict::open(&name).unwrap();
                for _ in 0..200 {
                    let g = d.lock();
                    let n = g.get(&"n".into()).unwrap().unwrap();
                    g.insert("n".into(), n + 1).unwrap();
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok(WATCHDOG);
    }
    assert_eq!(d.get(&"n".into()).unwrap(), Some(800));
}

#[test]
fn concurrent_updates_from_processes_lose_nothing() {
    let name = unique("dict-update");
    let d: Dict<u32, u64> = Dict::create(&name).unwrap();
    let seed = Rng::seed();
    const PROCS: u64 = 4;
    const OPS: u64 = 500;
    let children: Vec<_> = (0..PROCS)
        .map(|p| {
            let name = name.clone();
            fork(move || {
                let d: Dict<u32, u64> = Dict::open(&name).unwrap();
                let mut r = Rng::new(seed + p);
                for _ in 0..OPS {
                    let k = r.below(16) as u32;
                    d.update(k, |v| Some(v.unwrap_or(0) + 1)).unwrap();
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok(WATCHDOG);
    }
    let mut want = HashMap::new();
    for p in 0..PROCS {
        let mut r = Rng::new(seed + p);
        for _ in 0..OPS {
            *want.entry(r.below(16) as u32).or_insert(0u64) += 1;
        }
    }
    let got: HashMap<u32, u64> = d.items().unwrap().into_iter().collect();
    assert_eq!(got, want);
}

// ---- the model ----

#[derive(Clone, Debug)]
enum Op {
    Insert(u32, Bytes),
    Remove(u32),
    Append(u32, u8),
    Drop(u32),
    Clear,
}

/// A value whose bytes say which key and length it was made for (so a torn or
/// misplaced value is recognisable).
fn value_for(k: u32, len: usize) -> Bytes {
    vec![(k as u8) ^ (len as u8); len]
}

/// Op number `i` of the sequence `seed` over keys `base..base + keys`.
fn op_at(seed: u64, i: u64, base: u32, keys: u64, clears: bool) -> Op {
    let mut r = Rng::new(seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let k = base + r.below(keys) as u32;
    match r.below(100) {
        0..=44 => {
            let len = match r.below(20) {
                0 => 20_000 + r.below(60_000) as usize,
                1..=3 => r.below(2000) as usize,
                _ => r.below(40) as usize,
            };
            Op::Insert(k, value_for(k, len))
        }
        45..=69 => Op::Remove(k),
        70..=84 => Op::Append(k, r.next() as u8),
        85..=97 => Op::Drop(k),
        _ if clears => Op::Clear,
        _ => Op::Remove(k),
    }
}

fn model_apply(m: &mut HashMap<u32, Bytes>, op: &Op) -> Option<Bytes> {
    match op {
        Op::Insert(k, v) => m.insert(*k, v.clone()),
        Op::Remove(k) => m.remove(k),
        Op::Append(k, b) => {
            let v = m.entry(*k).or_default();
            v.push(*b);
            Some(v.clone())
        }
        Op::Drop(k) => {
            m.remove(k);
            None
        }
        Op::Clear => {
            m.clear();
            None
        }
    }
}

fn dict_apply(d: &Dict<u32, Bytes>, op: &Op) -> Option<Bytes> {
    match op {
        Op::Insert(k, v) => d.insert(*k, v.clone()).unwrap(),
        Op::Remove(k) => d.remove(k).unwrap(),
        Op::Append(k, b) => d
            .update(*k, |v| {
                let mut v = v.unwrap_or_default();
                v.push(*b);
                Some(v)
            })
            .unwrap(),
        Op::Drop(k) => d.update(*k, |_| None).unwrap(),
        Op::Clear => {
            d.clear().unwrap();
            None
        }
    }
}

fn snapshot(d: &Dict<u32, Bytes>) -> HashMap<u32, Bytes> {
    let items = d.items().unwrap();
    let n = items.len();
    let m: HashMap<u32, Bytes> = items.into_iter().collect();
    assert_eq!(m.len(), n, "items() returned a key twice");
    m
}

#[test]
fn random_op_sequences_from_several_processes_match_a_hashmap_model() {
    let name = unique("dict-model");
    let d: Dict<u32, Bytes> = Dict::create(&name).unwrap();
    let seed = Rng::seed();
    const PROCS: u32 = 4;
    const OPS: u64 = 600;
    let children: Vec<_> = (0..PROCS)
        .map(|p| {
            let name = name.clone();
            fork(move || {
                let d: Dict<u32, Bytes> = Dict::open(&name).unwrap();
                let mut m = HashMap::new();
                for i in 0..OPS {
                    let op = op_at(seed + u64::from(p), i, p * 1000, 48, false);
                    let want = model_apply(&mut m, &op);
                    let got = dict_apply(&d, &op);
                    if got != want {
                        eprintln!("process {p} op {i} {op:?}: got {got:?}, want {want:?}");
                        return 1;
                    }
                    if i % 50 == 0 {
                        // Another process's keys never show up under ours.
                        for k in p * 1000..p * 1000 + 48 {
                            if d.get(&k).unwrap() != m.get(&k).cloned() {
                                eprintln!("process {p}: key {k} differs from the model");
                                return 2;
                            }
                        }
                    }
                }
                0
            })
        })
        .collect();
    for c in children {
        c.join_ok(WATCHDOG);
    }
    let mut want = HashMap::new();
    for p in 0..PROCS {
        for i in 0..OPS {
            model_apply(
                &mut want,
                &op_at(seed + u64::from(p), i, p * 1000, 48, false),
            );
        }
    }
    assert_eq!(snapshot(&d), want);
    assert_eq!(d.len(), want.len());
}

#[test]
fn writers_killed_mid_call_leave_the_dict_as_before_or_after_it() {
    watchdog(WATCHDOG, || {
        let name = unique("dict-kill");
        let d: Dict<u32, Bytes> = Dict::create(&name).unwrap();
        let progress_name = unique("dict-kill-progress");
        let progress: Value<u64> = Value::create(&progress_name, 0).unwrap();
        let seed = Rng::seed();
        let mut timing = Rng::new(seed ^ 0xfeed);
        let op = |i| op_at(seed, i, 0, 40, true);
        let mut model = HashMap::new();
        let mut start = 0u64;
        let (mut before, mut after) = (0, 0);
        for _ in 0..120 {
            progress.set(start);
            let (n, pn) = (name.clone(), progress_name.clone());
            let child = fork(move || {
                let d: Dict<u32, Bytes> = Dict::open(&n).unwrap();
                let progress: Value<u64> = Value::open(&pn).unwrap();
                let mut i = progress.get();
                loop {
                    dict_apply(&d, &op_at(seed, i, 0, 40, true));
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
                model_apply(&mut model, &op(i));
            }
            d.check_heap().unwrap();
            let got = snapshot(&d);
            if got == model {
                before += 1;
                start = done;
            } else {
                model_apply(&mut model, &op(done));
                assert_eq!(got, model, "op {done} ({:?}) half-applied", op(done));
                after += 1;
                start = done + 1;
            }
        }
        println!("{before} kills left the state before the op, {after} after it; {start} ops");
        // The dict keeps working for a new writer.
        for i in start..start + 200 {
            let o = op(i);
            assert_eq!(dict_apply(&d, &o), model_apply(&mut model, &o));
        }
        assert_eq!(snapshot(&d), model);
    });
}

#[test]
fn corrupt_bytes_are_reported_as_corrupt_never_a_panic() {
    watchdog(WATCHDOG, || {
        let seed = Rng::seed();
        let mut r = Rng::new(seed);
        let mut corrupt = 0;
        for round in 0..60 {
            let name = unique("dict-corrupt");
            let d: Dict<u32, Bytes> = Dict::create(&name).unwrap();
            for k in 0..50 {
                d.insert(k, value_for(k, (k * 7) as usize)).unwrap();
            }
            d.remove(&3).unwrap();
            // Scribble random words over the header and the first arena bytes.
            let base = d.segment().as_ptr().cast::<u64>();
            let words = 4096;
            for _ in 0..1 + round % 8 {
                let at = r.below(words) as usize;
                let v = match r.below(4) {
                    0 => r.next(),
                    1 => r.below(1 << 20),
                    2 => 0,
                    _ => r.below(64) * 8 + 4096,
                };
                // SAFETY: inside the committed header + first arena chunk.
                unsafe { std::ptr::write_volatile(base.add(at), v) };
            }
            for k in 0..60 {
                let results = [
                    d.get(&k).map(drop),
                    d.insert(k, vec![1; (k % 5) as usize]).map(drop),
                    d.remove(&(k + 1)).map(drop),
                    d.items().map(drop),
                ];
                for res in results {
                    match res {
                        Ok(()) => {}
                        Err(Error::Corrupt { .. }) => corrupt += 1,
                        Err(e) => panic!("expected Ok or Corrupt, got {e:?}"),
                    }
                }
            }
            let _ = d.len();
        }
        println!("{corrupt} operations reported Corrupt");
        assert!(corrupt > 0, "no scribble was ever detected");
    });
}

#[test]
fn the_dict_grows_to_a_million_entries_across_processes() {
    watchdog(Duration::from_secs(120), || {
        let name = unique("dict-grow");
        let d: Dict<u64, u64> = Dict::create(&name).unwrap();
        const PROCS: u64 = 2;
        const PER: u64 = 500_000;
        let children: Vec<_> = (0..PROCS)
            .map(|p| {
                let name = name.clone();
                fork(move || {
                    let d: Dict<u64, u64> = Dict::open(&name).unwrap();
                    for i in p * PER..(p + 1) * PER {
                        d.insert(i, i * 3).unwrap();
                    }
                    0
                })
            })
            .collect();
        for c in children {
            c.join_ok(Duration::from_secs(120));
        }
        assert_eq!(d.len(), (PROCS * PER) as usize);
        for i in (0..PROCS * PER).step_by(997) {
            assert_eq!(d.get(&i).unwrap(), Some(i * 3));
        }
        // Removing entries and inserting as many again reuses their space.
        let used = d.allocated_bytes();
        for i in 0..100_000 {
            d.remove(&i).unwrap();
        }
        for i in 0..100_000 {
            d.insert(i + PROCS * PER, i).unwrap();
        }
        assert_eq!(d.allocated_bytes(), used);
    });
}

/// ≥ 1 GiB of values from two processes (ignored by the debug `cargo test`, where it
/// is too slow; `.ci/run` runs it with `cargo test --release --test dict -- --ignored`).
#[test]
#[ignore]
fn the_dict_grows_past_a_gibibyte_of_values_across_processes() {
    watchdog(Duration::from_secs(600), || {
        let name = unique("dict-gib");
        let d: Dict<u32, Bytes> = Dict::create(&name).unwrap();
        const PER: u32 = 520;
        const MIB: usize = 1 << 20;
        let children: Vec<_> = (0..2u32)
            .map(|p| {
                let name = name.clone();
                fork(move || {
                    let d: Dict<u32, Bytes> = Dict::open(&name).unwrap();
                    for k in p * PER..(p + 1) * PER {
                        d.insert(k, vec![k as u8; MIB]).unwrap();
                    }
                    0
                })
            })
            .collect();
        for c in children {
            c.join_ok(Duration::from_secs(600));
        }
        assert_eq!(d.len(), 2 * PER as usize);
        assert!(d.allocated_bytes() >= 1 << 30, "{}", d.allocated_bytes());
        for k in (0..2 * PER).step_by(37) {
            let v = d.get(&k).unwrap().unwrap();
            assert!(v.len() == MIB && v.iter().all(|&b| b == k as u8), "key {k}");
        }
        println!(
            "{} entries, {} bytes allocated",
            d.len(),
            d.allocated_bytes()
        );
        d.clear().unwrap();
    });
}

#[test]
fn a_lock_timeout_bounds_the_wait_for_a_live_holder() {
    let name = unique("dict-timeout");
    let d: Dict<u32, u32> = Dict::create(&name).unwrap();
    d.insert(1, 1).unwrap();
    let holding = Value::<u32>::create(&unique("dict-timeout-flag"), 0).unwrap();
    let (n, flag) = (name.clone(), holding.clone());
    let child = fork(move || {
        let d: Dict<u32, u32> = Dict::open(&n).unwrap();
        let _g = d.lock();
        flag.set(1);
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    assert!(wait_until(WATCHDOG, || holding.get() == 1));
    let d = d.with_lock_timeout(Duration::from_millis(50));
    assert!(matches!(d.insert(2, 2), Err(Error::Timeout)));
    // Readers do not need the lock.
    assert_eq!(d.get(&1).unwrap(), Some(1));
    child.kill();
    // The dead holder is recovered within the probe interval.
    assert_eq!(d.insert(2, 2).unwrap(), None);
    assert_eq!(d.len(), 2);
}

#[test]
fn a_truncated_dict_reports_corrupt_and_never_kills_the_process() {
    for len in [0u64, 300, 8192] {
        let name = unique("dict-trunc");
        let d: Dict<u32, Bytes> = Dict::create(&name).unwrap();
        for k in 0..100 {
            d.insert(k, vec![k as u8; 500]).unwrap();
        }
        // Another writer of the file shrinks it under our mapping.
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/mp.{name}"))
            .unwrap()
            .set_len(len)
            .unwrap();
        // A call that touches only pages the truncation kept (zeroed past the new
        // end) may still answer from them; once one sees the loss, every call says
        // Corrupt (see Segment::is_broken).
        let mut seen = false;
        for k in 0..100 {
            for r in [
                d.get(&k).map(drop),
                d.insert(k + 1000, vec![1; 10]).map(drop),
                d.items().map(drop),
            ] {
                match r {
                    Err(Error::Corrupt { .. }) => seen = true,
                    Ok(()) if !seen => {}
                    r => panic!("truncated to {len}: {r:?} (after a Corrupt: {seen})"),
                }
            }
        }
        assert!(seen, "truncated to {len}: the loss was never reported");
        assert!(d.segment().is_broken());
    }
}
