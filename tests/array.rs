//! `Array<T>`: bounds, sharing between processes, lock-free element operations that
//! never disturb neighbours, consistent bulk reads, guards, and writers that die.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Array, Error, Value};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

/// Polls `cond` until it holds; fails the test after the watchdog limit.
fn wait_for(cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < WATCHDOG,
            "watchdog: condition never became true"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn create_is_zeroed_and_from_slice_copies() {
    let a: Array<f64> = Array::create(&unique("a-zero"), 5).unwrap();
    assert_eq!(a.len(), 5);
    assert!(!a.is_empty());
    assert_eq!(a.to_vec(), [0.0; 5]);
    let b: Array<[u8; 3]> = Array::from_slice(&unique("a-slice"), &[[1, 2, 3], [4, 5, 6]]).unwrap();
    assert_eq!(b.to_vec(), [[1, 2, 3], [4, 5, 6]]);
    assert_eq!(b.get(1), Some([4, 5, 6]));
    assert!(!b.is_lock_free());
}

#[test]
fn out_of_range_indices_are_errors_naming_index_and_length() {
    let name = unique("a-range");
    let a: Array<u32> = Array::create(&name, 3).unwrap();
    assert_eq!(a.get(3), None);
    assert_eq!(a.get(usize::MAX), None);
    let e = a.set(3, 1).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("index 3") && msg.contains("length 3") && msg.contains(&name),
        "{msg}"
    );
    assert!(a.fetch_add(7, 1).is_err());
    assert!(a.update(3, |x| *x += 1).is_err());
    assert!(a.swap(9, 0).is_err());
    assert!(a.compare_exchange(9, 0, 1).is_err());
    assert!(a.copy_from_slice(&[1, 2]).is_err());
    let mut out = [0u32; 4];
    assert!(a.copy_to_slice(&mut out).is_err());
    assert_eq!(a.to_vec(), [0, 0, 0], "failed calls changed nothing");
}

#[test]
fn empty_arrays_are_allowed_and_absurd_lengths_are_refused() {
    let e: Array<u64> = Array::create(&unique("a-empty"), 0).unwrap();
    assert!(e.is_empty());
    assert_eq!(e.to_vec(), Vec::<u64>::new());
    assert_eq!(e.get(0), None);
    {
        let g = e.lock();
        assert!(g.is_empty());
    }
    let f: Array<u64> = Array::from_slice(&unique("a-empty2"), &[]).unwrap();
    assert!(f.is_empty());
    for len in [usize::MAX, usize::MAX / 8 + 1, 1 << 60] {
        assert!(
            matches!(
                Array::<u64>::create(&unique("a-huge"), len),
                Err(Error::InvalidArgument { .. })
            ),
            "{len}"
        );
    }
    assert!(matches!(
        Array::<()>::create(&unique("a-zst"), 3),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Array::<u8>::anonymous(usize::MAX),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn two_processes_share_an_array() {
    let name = unique("a-share");
    let a: Array<u16> = Array::from_slice(&name, &[1, 2, 3, 4]).unwrap();
    let child = fork(move || {
        let a: Array<u16> = Array::open(&name).unwrap();
        if a.to_vec() != [1, 2, 3, 4] {
            return 1;
        }
        a.set(3, 40).unwrap();
        a.fetch_add(0, 10).unwrap();
        0
    });
    child.join_ok(WATCHDOG);
    assert_eq!(a.to_vec(), [11, 2, 3, 40]);
}

#[test]
fn concurrent_fetch_add_on_neighbouring_bytes_never_disturbs_them() {
    // Eight u8 elements share one word: each process hammers its own element, and all
    // of them hammer element 8 (in the next word); every count must be exact.
    const N: u32 = 5_000;
    let a: Array<u8> = Array::anonymous(9).unwrap();
    let kids: Vec<_> = (0..4)
        .map(|k| {
            let a = a.clone();
            fork(move || {
                for _ in 0..N {
                    a.fetch_add(k, 1).unwrap();
                    a.fetch_sub(k + 4, 1).unwrap();
                    a.fetch_add(8, 1).unwrap();
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    let v = a.to_vec();
    let n = (N % 256) as u8;
    assert_eq!(&v[..4], &[n; 4]);
    assert_eq!(&v[4..8], &[0u8.wrapping_sub(n); 4]);
    assert_eq!(v[8], ((4 * N) % 256) as u8);
}

#[test]
fn four_processes_fetch_add_at_one_index_to_an_exact_total() {
    const N: u64 = 10_000;
    let name = unique("a-count");
    let a: Array<u64> = Array::create(&name, 3).unwrap();
    let kids: Vec<_> = (0..4)
        .map(|_| {
            let name = name.clone();
            fork(move || {
                let a: Array<u64> = Array::open(&name).unwrap();
                for _ in 0..N {
                    a.fetch_add(1, 1).unwrap();
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    assert_eq!(a.to_vec(), [0, 4 * N, 0]);
}

#[test]
fn bulk_reads_are_consistent_while_another_process_rewrites_the_array() {
    // The writer stores [k; 100] as one locked write; a reader must never see two
    // different k in one snapshot, nor a torn 12-byte element.
    let a: Array<[u32; 3]> = Array::anonymous(100).unwrap();
    let stop: Value<u32> = Value::anonymous(0).unwrap();
    let (aw, sw) = (a.clone(), stop.clone());
    let writer = fork(move || {
        let mut k = 1u32;
        while sw.get() == 0 {
            aw.copy_from_slice(&[[k; 3]; 100]).unwrap();
            k += 1;
        }
        0
    });
    let start = std::time::Instant::now();
    let mut distinct = std::collections::HashSet::new();
    while distinct.len() < 200 && start.elapsed() < Duration::from_secs(10) {
        let v = a.to_vec();
        assert!(v.iter().all(|e| *e == v[0]), "torn snapshot: {:?}", &v[..4]);
        distinct.insert(v[0][0]);
        let e = a.get(57).unwrap();
        assert!(e[0] == e[1] && e[1] == e[2], "torn element {e:?}");
    }
    stop.set(1);
    writer.join_ok(WATCHDOG);
    assert!(distinct.len() > 1, "the writer never made progress");
}

#[test]
fn guard_writes_back_only_changed_elements() {
    // A guard changes element 0 while another process bumps element 1 lock-free: both
    // effects survive the write-back.
    let a: Array<u32> = Array::anonymous(2).unwrap();
    let phase: Value<u32> = Value::anonymous(0).unwrap();
    let (a2, p2) = (a.clone(), phase.clone());
    let child = fork(move || {
        wait_for(|| p2.get() == 1);
        for _ in 0..100 {
            a2.fetch_add(1, 1).unwrap();
        }
        p2.set(2);
        0
    });
    {
        let mut g = a.lock();
        g[0] = 7;
        phase.set(1);
        wait_for(|| phase.get() == 2);
        assert_eq!(g[1], 0, "the guard holds a private copy");
        assert!(!g.recovered());
    }
    child.join_ok(WATCHDOG);
    assert_eq!(a.to_vec(), [7, 100]);
}

#[test]
fn guard_changes_are_visible_to_other_processes_and_read_only_guards_write_nothing() {
    let name = unique("a-guard");
    let a: Array<i64> = Array::from_slice(&name, &[5, 4, 3, 2, 1]).unwrap();
    let seq = a.raw().seq();
    {
        let g = a.lock();
        assert_eq!(g.iter().sum::<i64>(), 15);
    }
    assert_eq!(a.raw().seq(), seq);
    a.lock().sort();
    let child = fork(move || {
        let a: Array<i64> = Array::open(&name).unwrap();
        i32::from(a.to_vec() != [1, 2, 3, 4, 5])
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn try_lock_and_lock_timeout_give_up_while_another_process_holds_the_lock() {
    let a: Array<u8> = Array::anonymous(4).unwrap();
    let phase: Value<u32> = Value::anonymous(0).unwrap();
    let (a2, p2) = (a.clone(), phase.clone());
    let holder = fork(move || {
        let _g = a2.lock();
        p2.set(1);
        wait_for(|| p2.get() == 2);
        0
    });
    wait_for(|| phase.get() == 1);
    assert!(a.try_lock().is_none());
    assert!(a.lock_timeout(Duration::from_millis(20)).is_none());
    // Lock-free element operations do not wait for the lock.
    a.set(0, 1).unwrap();
    assert_eq!(a.get(0), Some(1));
    phase.set(2);
    holder.join_ok(WATCHDOG);
    assert!(a.try_lock().is_some());
}

#[test]
fn writers_killed_at_random_points_never_wedge_readers() {
    // A process rewrites a large array in a loop and is SIGKILLed at a random moment,
    // most likely mid-write; readers and the next writer must carry on.
    let a: Array<u64> = Array::anonymous(1 << 16).unwrap();
    for round in 0..4u64 {
        let started: Value<u32> = Value::anonymous(0).unwrap();
        let (aw, sw) = (a.clone(), started.clone());
        let child = fork(move || {
            let mut k = 0u64;
            loop {
                aw.fill(k);
                sw.set(1);
                k += 1;
            }
        });
        wait_for(|| started.get() == 1);
        std::thread::sleep(Duration::from_micros(300 * round));
        child.kill();
        if a.raw().seq() % 2 == 1 {
            eprintln!("round {round}: the writer died mid-write");
        }
        let a = a.clone();
        watchdog(WATCHDOG, move || {
            let v = a.to_vec();
            // Each element holds what some fill stored: two consecutive fills at most.
            let (lo, hi) = (v.iter().min().unwrap(), v.iter().max().unwrap());
            assert!(hi - lo <= 1, "elements from fills {lo} and {hi}");
            a.fill(u64::MAX);
            assert!(a.to_vec().iter().all(|&x| x == u64::MAX));
            assert_eq!(a.raw().seq() % 2, 0);
        });
    }
}

#[test]
fn open_or_create_checks_the_length() {
    let name = unique("a-ooc");
    let a: Array<u32> = Array::open_or_create(&name, 4).unwrap();
    let b: Array<u32> = Array::open_or_create(&name, 4).unwrap();
    a.set(2, 9).unwrap();
    assert_eq!(b.get(2), Some(9));
    match Array::<u32>::open_or_create(&name, 5) {
        Err(e @ Error::Mismatch { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("length 4") && msg.contains("length 5"),
                "{msg}"
            );
        }
        r => panic!("expected Mismatch, got {r:?}"),
    }
}

#[test]
fn opening_with_another_element_type_or_kind_fails_clearly() {
    let name = unique("a-type");
    let _a: Array<u32> = Array::create(&name, 4).unwrap();
    match Array::<f32>::open(&name) {
        Err(e @ Error::WrongType { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("u32") && msg.contains("f32"), "{msg}");
        }
        r => panic!("expected WrongType, got {r:?}"),
    }
    assert!(matches!(
        Array::<u64>::open(&name),
        Err(Error::WrongType { .. })
    ));
    let v = unique("a-kind");
    let _v: Value<u32> = Value::create(&v, 0).unwrap();
    assert!(matches!(
        Array::<u32>::open(&v),
        Err(Error::WrongKind { .. })
    ));
}

#[test]
fn integer_operations_at_an_index() {
    let a: Array<i16> = Array::from_slice(&unique("a-int"), &[0, 10, -3]).unwrap();
    assert_eq!(a.fetch_add(1, 5).unwrap(), 10);
    assert_eq!(a.fetch_sub(1, 20).unwrap(), 15);
    assert_eq!(a.fetch_max(2, -4).unwrap(), -3);
    assert_eq!(a.fetch_min(2, -4).unwrap(), -3);
    assert_eq!(a.fetch_or(0, 0b101).unwrap(), 0);
    assert_eq!(a.fetch_and(0, 0b100).unwrap(), 0b101);
    assert_eq!(a.fetch_xor(0, 0b110).unwrap(), 0b100);
    assert_eq!(a.swap(0, 1).unwrap(), 0b010);
    assert_eq!(a.compare_exchange(0, 1, 2).unwrap(), Ok(1));
    assert_eq!(a.compare_exchange(0, 1, 3).unwrap(), Err(2));
    assert_eq!(a.to_vec(), [2, -5, -4]);
    a.fill(9);
    assert_eq!(a.to_vec(), [9, 9, 9]);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Set(usize, u16),
        Add(usize, u16),
        Update(usize, u16),
        Swap(usize, u16),
        Fill(u16),
        Copy(Vec<u16>),
        Guard(usize, u16),
    }

    const LEN: usize = 11; // odd: the last word is padded

    fn op() -> impl Strategy<Value = Op> {
        let i = 0..LEN + 2; // some out of range
        prop_oneof![
            (i.clone(), any::<u16>()).prop_map(|(i, x)| Op::Set(i, x)),
            (i.clone(), any::<u16>()).prop_map(|(i, x)| Op::Add(i, x)),
            (i.clone(), any::<u16>()).prop_map(|(i, x)| Op::Update(i, x)),
            (i.clone(), any::<u16>()).prop_map(|(i, x)| Op::Swap(i, x)),
            any::<u16>().prop_map(Op::Fill),
            proptest::collection::vec(any::<u16>(), LEN - 1..=LEN + 1).prop_map(Op::Copy),
            (i, any::<u16>()).prop_map(|(i, x)| Op::Guard(i, x)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn array_ops_match_a_vec_model(ops in proptest::collection::vec(op(), 1..40)) {
            let a: Array<u16> = Array::anonymous(LEN).unwrap();
            let mut m = vec![0u16; LEN];
            for op in ops {
                match op {
                    Op::Set(i, x) => {
                        prop_assert_eq!(a.set(i, x).is_ok(), i < LEN);
                        if i < LEN { m[i] = x; }
                    }
                    Op::Add(i, x) => {
                        let got = a.fetch_add(i, x).ok();
                        prop_assert_eq!(got, m.get(i).copied());
                        if i < LEN { m[i] = m[i].wrapping_add(x); }
                    }
                    Op::Update(i, x) => {
                        let got = a.update(i, |e| { *e ^= x; *e }).ok();
                        if i < LEN { m[i] ^= x; }
                        prop_assert_eq!(got, m.get(i).copied());
                    }
                    Op::Swap(i, x) => {
                        prop_assert_eq!(a.swap(i, x).ok(), m.get(i).copied());
                        if i < LEN { m[i] = x; }
                    }
                    Op::Fill(x) => { a.fill(x); m.fill(x); }
                    Op::Copy(v) => {
                        prop_assert_eq!(a.copy_from_slice(&v).is_ok(), v.len() == LEN);
                        if v.len() == LEN { m.copy_from_slice(&v); }
                    }
                    Op::Guard(i, x) => {
                        let mut g = a.lock();
                        if let Some(e) = g.get_mut(i) { *e = x; m[i] = x; }
                    }
                }
                prop_assert_eq!(a.to_vec(), m.clone());
                for (i, x) in m.iter().enumerate() {
                    prop_assert_eq!(a.get(i), Some(*x));
                }
            }
        }
    }
}
