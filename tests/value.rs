//! `Value<T>`: sharing one value between processes, lock-free integer ops, seqlock
//! reads of large values, guards, and writers that die.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{Error, Value};
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

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C)]
struct Stats {
    count: u64,
    total: u64,
    max: u32,
    flags: u32,
}

#[test]
fn handles_are_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Value<u64>>();
    check::<Value<Stats>>();
    check::<multiproc::Array<[u8; 3]>>();
}

#[test]
fn get_set_round_trip_for_word_sized_and_larger_types() {
    let a: Value<u8> = Value::create(&unique("v-u8"), 7).unwrap();
    assert_eq!(a.get(), 7);
    a.set(255);
    assert_eq!(a.get(), 255);
    assert!(a.is_lock_free());

    let b: Value<f64> = Value::create(&unique("v-f64"), 1.5).unwrap();
    b.set(-2.25);
    assert_eq!(b.get(), -2.25);

    let c: Value<[u8; 3]> = Value::create(&unique("v-u8x3"), [1, 2, 3]).unwrap();
    assert!(!c.is_lock_free());
    c.set([4, 5, 6]);
    assert_eq!(c.get(), [4, 5, 6]);

    let s0 = Stats {
        count: 1,
        total: 2,
        max: 3,
        flags: 4,
    };
    let d: Value<Stats> = Value::create(&unique("v-stats"), s0).unwrap();
    assert_eq!(d.get(), s0);
    let e: Value<u128> = Value::create(&unique("v-u128"), u128::MAX - 1).unwrap();
    // u128 is no lock-free integer, but `update` is still atomic (under the lock).
    assert_eq!(
        e.update(|x| std::mem::replace(x, x.wrapping_add(1))),
        u128::MAX - 1
    );
    assert_eq!(e.get(), u128::MAX);
}

#[test]
fn integer_operations_return_the_previous_value() {
    let v: Value<i32> = Value::anonymous(10).unwrap();
    assert_eq!(v.fetch_add(5), 10);
    assert_eq!(v.fetch_sub(20), 15);
    assert_eq!(v.get(), -5);
    assert_eq!(v.fetch_max(-7), -5);
    assert_eq!(v.fetch_min(-7), -5);
    assert_eq!(v.get(), -7);
    v.set(0b1100);
    assert_eq!(v.fetch_and(0b0110), 0b1100);
    assert_eq!(v.fetch_or(0b0001), 0b0100);
    assert_eq!(v.fetch_xor(0b0101), 0b0101);
    assert_eq!(v.get(), 0);
    assert_eq!(v.swap(3), 0);
    assert_eq!(v.compare_exchange(3, 4), Ok(3));
    assert_eq!(v.compare_exchange(3, 5), Err(4));

    let w: Value<u64> = Value::anonymous(u64::MAX).unwrap();
    assert_eq!(w.fetch_add(2), u64::MAX);
    assert_eq!(w.get(), 1); // wraps
    assert_eq!(w.fetch_max(9), 1);
    assert_eq!(w.get(), 9);
}

#[test]
fn two_processes_share_a_value() {
    let name = unique("v-share");
    let v: Value<u64> = Value::create(&name, 1).unwrap();
    let child = fork(move || {
        let v: Value<u64> = Value::open(&name).unwrap();
        if v.get() != 1 {
            return 1;
        }
        v.set(42);
        0
    });
    child.join_ok(WATCHDOG);
    assert_eq!(v.get(), 42);
}

#[test]
fn four_processes_fetch_add_to_an_exact_total() {
    const N: u64 = 20_000;
    let name = unique("v-count");
    let v64: Value<u64> = Value::create(&name, 0).unwrap();
    // The CAS-loop path: a 2-byte integer sharing its word with nothing else.
    let v16: Value<u16> = Value::create(&format!("{name}.16"), 0).unwrap();
    let kids: Vec<_> = (0..4)
        .map(|_| {
            let name = name.clone();
            fork(move || {
                let a: Value<u64> = Value::open(&name).unwrap();
                let b: Value<u16> = Value::open(&format!("{name}.16")).unwrap();
                for _ in 0..N {
                    a.fetch_add(1);
                    b.fetch_add(1);
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    assert_eq!(v64.get(), 4 * N);
    assert_eq!(u64::from(v16.get()), (4 * N) % 65536);
}

#[test]
fn update_is_atomic_with_fetch_add_across_processes() {
    const N: u64 = 10_000;
    let v: Value<u64> = Value::anonymous(0).unwrap();
    let v2 = v.clone();
    let child = fork(move || {
        for _ in 0..N {
            v2.update(|x| *x += 3);
        }
        0
    });
    for _ in 0..N {
        v.fetch_add(1);
    }
    child.join_ok(WATCHDOG);
    assert_eq!(v.get(), 4 * N);
}

#[test]
fn locked_updates_of_a_large_value_from_three_processes_are_exact() {
    const N: u64 = 2_000;
    let v: Value<Stats> = Value::anonymous(Stats {
        count: 0,
        total: 0,
        max: 0,
        flags: 0,
    })
    .unwrap();
    let kids: Vec<_> = (0..3)
        .map(|k| {
            let v = v.clone();
            fork(move || {
                for i in 0..N {
                    if i % 2 == 0 {
                        v.update(|s| {
                            s.count += 1;
                            s.total += 2;
                        });
                    } else {
                        let mut g = v.lock();
                        g.count += 1;
                        g.total += 2;
                        g.max = g.max.max(k);
                    }
                }
                0
            })
        })
        .collect();
    for k in kids {
        k.join_ok(WATCHDOG);
    }
    let s = v.get();
    assert_eq!((s.count, s.total, s.max), (3 * N, 6 * N, 2));
}

#[test]
fn seqlock_reads_of_a_64_byte_value_are_never_torn_while_another_process_writes() {
    let v: Value<[u64; 8]> = Value::anonymous([0; 8]).unwrap();
    let stop: Value<u32> = Value::anonymous(0).unwrap();
    let (vw, sw) = (v.clone(), stop.clone());
    let writer = fork(move || {
        let mut k = 1u64;
        while sw.get() == 0 {
            vw.set([k; 8]);
            k += 1;
        }
        0
    });
    let mut distinct = 0;
    let mut last = u64::MAX;
    let mut reads = 0u64;
    let start = std::time::Instant::now();
    while distinct < 1000 && start.elapsed() < Duration::from_secs(10) {
        let x = v.get();
        assert!(x.iter().all(|&w| w == x[0]), "torn read: {x:?}");
        if x[0] != last {
            distinct += 1;
            last = x[0];
        }
        reads += 1;
    }
    stop.set(1);
    writer.join_ok(WATCHDOG);
    assert!(
        distinct > 1,
        "the writer never made progress ({reads} reads)"
    );
    assert_eq!(v.raw().seq() % 2, 0);
}

#[test]
fn unrelated_process_attaches_by_name() {
    const TEST: &str = "unrelated_process_attaches_by_name";
    if let Some(name) = role() {
        let v: Value<[u32; 4]> = Value::open(&name).unwrap();
        assert_eq!(v.get(), [1, 2, 3, 4]);
        v.set([5, 6, 7, 8]);
        let n: Value<i64> = Value::open(&format!("{name}.n")).unwrap();
        n.fetch_add(-10);
        println!("attached ok");
        return;
    }
    let name = unique("v-unrelated");
    let v: Value<[u32; 4]> = Value::create(&name, [1, 2, 3, 4]).unwrap();
    let n: Value<i64> = Value::create(&format!("{name}.n"), 0).unwrap();
    let (code, out) = wait_self(spawn_self(TEST, &name), WATCHDOG);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("attached ok"), "{out}");
    assert_eq!(v.get(), [5, 6, 7, 8]);
    assert_eq!(n.get(), -10);
}

#[test]
fn opening_with_another_element_type_names_both_types() {
    let name = unique("v-type");
    let _v: Value<u32> = Value::create(&name, 1).unwrap();
    match Value::<u64>::open(&name) {
        Err(e @ Error::WrongType { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("u32") && msg.contains("u64"), "{msg}");
            assert!(msg.contains(&name), "{msg}");
        }
        r => panic!("expected WrongType, got {r:?}"),
    }
    // Same size, different type: still refused.
    assert!(matches!(
        Value::<i32>::open(&name),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        Value::<[u8; 4]>::open(&name),
        Err(Error::WrongType { .. })
    ));
}

#[test]
fn opening_another_kind_or_a_missing_name_fails_clearly() {
    let name = unique("v-kind");
    let _a: multiproc::Array<u32> = multiproc::Array::create(&name, 1).unwrap();
    assert!(matches!(
        Value::<u32>::open(&name),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        Value::<u32>::open(&unique("v-missing")),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        Value::<u32>::create(&name, 0),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        Value::<u32>::create("bad/name", 0),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        Value::<()>::create(&unique("v-zst"), ()),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn guard_writes_back_on_drop_and_only_when_changed() {
    let name = unique("v-guard");
    let v: Value<Stats> = Value::create(&name, bytemuck::Zeroable::zeroed()).unwrap();
    let seq0 = v.raw().seq();
    {
        let g = v.lock();
        assert_eq!(g.count, 0);
    }
    assert_eq!(v.raw().seq(), seq0, "a read-only guard must not write back");
    {
        let mut g = v.lock();
        g.count = 5;
        g.flags = 9;
        // Not yet visible: the guard holds a private copy.
        assert_eq!(v.get().count, 0);
        assert!(!g.recovered());
    }
    assert_eq!(v.get().count, 5);
    assert_eq!(v.get().flags, 9);
    let other = Value::<Stats>::open(&name).unwrap();
    assert_eq!(other.get().count, 5);
}

#[test]
fn try_lock_and_lock_timeout_give_up_while_another_process_holds_the_lock() {
    let v: Value<[u64; 2]> = Value::anonymous([0; 2]).unwrap();
    let flag: Value<u32> = Value::anonymous(0).unwrap();
    let (v2, f2) = (v.clone(), flag.clone());
    let holder = fork(move || {
        let _g = v2.lock();
        f2.set(1);
        wait_for(|| f2.get() == 2);
        0
    });
    watchdog(WATCHDOG, move || {
        wait_for(|| flag.get() == 1);
        assert!(v.try_lock().is_none());
        assert!(v.lock_timeout(Duration::from_millis(20)).is_none());
        // Readers are not blocked by a held lock.
        assert_eq!(v.get(), [0; 2]);
        flag.set(2);
        holder.join_ok(WATCHDOG);
        assert!(v.try_lock().is_some());
    });
}

#[test]
fn dead_guard_holder_is_recovered_and_the_value_is_intact() {
    let v: Value<[u64; 4]> = Value::anonymous([7; 4]).unwrap();
    let flag: Value<u32> = Value::anonymous(0).unwrap();
    let (v2, f2) = (v.clone(), flag.clone());
    let child = fork(move || {
        let mut g = v2.lock();
        g[0] = 99; // never written back: the process dies holding the guard
        f2.set(1);
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    wait_for(|| flag.get() == 1);
    child.kill();
    watchdog(WATCHDOG, move || {
        let g = v.lock();
        assert!(g.recovered());
        assert_eq!(*g, [7; 4]);
        drop(g);
        assert!(!v.lock().recovered());
    });
}

#[test]
fn writer_killed_mid_write_is_repaired_and_readers_do_not_hang() {
    let v: Value<[u64; 8]> = Value::anonymous([1; 8]).unwrap();
    let flag: Value<u32> = Value::anonymous(0).unwrap();
    let (v2, f2) = (v.clone(), flag.clone());
    let child = fork(move || {
        // Exactly what a set() does, stopped halfway: lock, odd counter, 3 of 8 words.
        let raw = v2.raw().as_array();
        let me = multiproc::sync::current_identity();
        let _ = raw.lock(me, None, Duration::from_millis(10));
        raw.begin_write();
        for w in &v2.view().as_array().words()[..3] {
            w.store(2, std::sync::atomic::Ordering::Release);
        }
        f2.set(1);
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    wait_for(|| flag.get() == 1);
    assert_eq!(v.raw().seq() % 2, 1, "the writer is mid-write");
    child.kill();
    watchdog(WATCHDOG, move || {
        // The reader gives up on the seqlock, recovers the lock and repairs the counter.
        let x = v.get();
        assert_eq!(x, [2, 2, 2, 1, 1, 1, 1, 1]); // what the dead writer left
        assert_eq!(v.raw().seq() % 2, 0);
        v.set([3; 8]);
        assert_eq!(v.get(), [3; 8]);
    });
}

#[test]
#[should_panic(expected = "already holds the lock")]
fn locking_twice_in_one_thread_panics_instead_of_deadlocking() {
    let v: Value<[u64; 2]> = Value::anonymous([0; 2]).unwrap();
    let _g = v.lock();
    let _h = v.lock();
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let name = unique("v-ooc");
    let a: Value<u32> = Value::open_or_create(&name, 5).unwrap();
    let b: Value<u32> = Value::open_or_create(&name, 9).unwrap();
    assert_eq!(b.get(), 5);
    a.set(6);
    assert_eq!(b.get(), 6);
    assert_eq!(a.name(), name);
    assert!(format!("{a:?}").contains(&name));
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Set(u32),
        Add(u32),
        Sub(u32),
        Max(u32),
        Min(u32),
        Xor(u32),
        Swap(u32),
        Cas(u32, u32),
        Guard(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<u32>().prop_map(Op::Set),
            any::<u32>().prop_map(Op::Add),
            any::<u32>().prop_map(Op::Sub),
            any::<u32>().prop_map(Op::Max),
            any::<u32>().prop_map(Op::Min),
            any::<u32>().prop_map(Op::Xor),
            any::<u32>().prop_map(Op::Swap),
            (0u32..4, 0u32..4).prop_map(|(a, b)| Op::Cas(a, b)),
            any::<u32>().prop_map(Op::Guard),
        ]
    }

    /// Applies `f` to the model, returning the previous value (what `fetch_*` returns).
    fn step(m: &mut u32, f: impl FnOnce(u32) -> u32) -> u32 {
        std::mem::replace(m, f(*m))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn value_ops_match_a_model(ops in proptest::collection::vec(op(), 1..40)) {
            let v: Value<u32> = Value::anonymous(0).unwrap();
            let mut m = 0u32;
            for op in ops {
                let (got, want) = match op {
                    Op::Set(x) => { v.set(x); m = x; (0, 0) }
                    Op::Add(x) => (v.fetch_add(x), step(&mut m, |m| m.wrapping_add(x))),
                    Op::Sub(x) => (v.fetch_sub(x), step(&mut m, |m| m.wrapping_sub(x))),
                    Op::Max(x) => (v.fetch_max(x), step(&mut m, |m| m.max(x))),
                    Op::Min(x) => (v.fetch_min(x), step(&mut m, |m| m.min(x))),
                    Op::Xor(x) => (v.fetch_xor(x), step(&mut m, |m| m ^ x)),
                    Op::Swap(x) => (v.swap(x), step(&mut m, |_| x)),
                    Op::Cas(a, b) => {
                        let got = v.compare_exchange(a, b);
                        let want = if m == a { Ok(step(&mut m, |_| b)) } else { Err(m) };
                        prop_assert_eq!(got, want);
                        (0, 0)
                    }
                    Op::Guard(x) => { *v.lock() = x; m = x; (0, 0) }
                };
                prop_assert_eq!(got, want);
                prop_assert_eq!(v.get(), m);
            }
        }
    }
}
