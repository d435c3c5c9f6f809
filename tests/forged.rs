//! Forged lock owners: a process with write access to a segment stores an identity
//! into a lock word and its owner record that cannot be a real holder — the victim
//! thread itself (without a guard of its own), or a kernel thread. The victim must
//! neither panic nor wait for ever: it takes the lock over, as from a dead holder.
//! A real double lock by one thread (a live guard) stays a caller bug that panics.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::raw::RawLock;
use multiproc::sys::ident::{current, Identity};
use multiproc::{Array, Condition, Lock, TryLockError, Value};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(30);

/// Writes `who` into `raw`'s lock word and owner record, as a hostile process can.
/// `RawLock` is `#[repr(C)]`: the 32-bit word at offset 0, the owner record at 8.
fn forge(raw: &RawLock, who: Identity) {
    let p = std::ptr::from_ref(raw).cast::<u8>();
    // SAFETY: both offsets lie inside the RawLock, at atomics of these widths; atomic
    // stores into shared memory are what every other process does too.
    unsafe {
        (*p.cast::<AtomicU32>()).store(who.tid, Ordering::SeqCst);
        (*p.add(8).cast::<AtomicU64>()).store(who.info(), Ordering::SeqCst);
    }
}

/// A kernel thread's identity with its real start time (kthreadd, pid 2, when this
/// PID namespace shows it; else any kernel thread `/proc` lists), or `None` when no
/// kernel thread is visible here.
fn kernel_thread() -> Option<Identity> {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let stat_of = |pid: u32| -> Option<Identity> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
        // f[0] is field 3 (state): field 9 is f[6], field 22 is f[19].
        let flags: u64 = f.get(6)?.parse().ok()?;
        let start: u64 = f.get(19)?.parse().ok()?;
        (flags & PF_KTHREAD != 0).then_some(Identity { tid: pid, start })
    };
    stat_of(2).or_else(|| {
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find_map(stat_of)
    })
}

/// The kernel thread to forge, or a note on stderr that this environment has none.
fn kernel_thread_or_skip(test: &str) -> Option<Identity> {
    let k = kernel_thread();
    if k.is_none() {
        eprintln!("{test}: skipped, no kernel thread is visible in this PID namespace");
    }
    k
}

// ---- Lock ----

#[test]
fn lock_word_naming_the_acquirer_itself_is_taken_over_with_owner_died() {
    let lock = Lock::create(&unique("forged-self")).unwrap();
    watchdog(WATCHDOG, move || {
        forge(lock.raw(), current());
        let g = match lock.acquire() {
            Err(died) => died.into_inner(),
            Ok(_) => panic!("a forged self-owner must be reported as OwnerDied"),
        };
        drop(g);
        assert!(!lock.is_locked());
        assert!(
            lock.acquire().is_ok(),
            "clean again after the recovering guard"
        );
    });
}

#[test]
fn try_acquire_takes_over_a_word_naming_the_caller_itself() {
    let lock = Lock::create(&unique("forged-self-try")).unwrap();
    forge(lock.raw(), current());
    match lock.try_acquire() {
        Err(TryLockError::OwnerDied(died)) => drop(died.into_inner()),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(!lock.is_locked());
}

#[test]
fn lock_word_naming_a_kernel_thread_is_taken_over_with_owner_died() {
    let Some(kthread) = kernel_thread_or_skip("lock kernel thread") else {
        return;
    };
    let lock = Lock::create(&unique("forged-kthread")).unwrap();
    watchdog(WATCHDOG, move || {
        forge(lock.raw(), kthread);
        assert!(lock.acquire().is_err(), "a kernel thread is no holder");
        assert!(!lock.is_locked());
        forge(lock.raw(), kthread);
        assert!(matches!(
            lock.try_acquire(),
            Err(TryLockError::OwnerDied(_))
        ));
    });
}

#[test]
fn acquiring_a_lock_this_thread_holds_panics_instead_of_deadlocking() {
    let lock = Lock::create(&unique("lock-twice")).unwrap();
    let l2 = lock.clone();
    let r = watchdog(WATCHDOG, move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = l2.acquire().unwrap();
            let _h = l2.acquire();
        }))
    });
    let msg = r.expect_err("a second acquire by the holder must panic");
    let msg = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("already holds this lock"), "{msg}");
    assert!(
        !lock.is_locked(),
        "the first guard released it while unwinding"
    );
}

#[test]
fn a_real_holder_tries_and_times_out_as_another_thread_would() {
    let lock = Lock::create(&unique("lock-twice-try")).unwrap();
    watchdog(WATCHDOG, move || {
        let _g = lock.acquire().unwrap();
        assert!(matches!(lock.try_acquire(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            lock.acquire_timeout(Duration::from_millis(20)),
            Err(TryLockError::WouldBlock)
        ));
        assert!(lock.is_locked());
    });
}

// ---- Condition: its own lock is a Lock like any other ----

#[test]
fn condition_lock_naming_the_acquirer_itself_is_taken_over() {
    let cond = Condition::create(&unique("forged-cond")).unwrap();
    watchdog(WATCHDOG, move || {
        forge(cond.raw().lock(), current());
        assert!(cond.acquire().is_err(), "OwnerDied");
        forge(cond.raw().lock(), current());
        assert!(matches!(
            cond.try_acquire(),
            Err(TryLockError::OwnerDied(_))
        ));
        assert!(!cond.is_locked());
    });
}

/// A Condition's lock is re-entrant (issue 12, Python's default `RLock`): its real
/// holder's `try_acquire` is one more hold — told from a forged word naming it (above)
/// by this thread's own record of its holds.
#[test]
fn condition_try_acquire_by_its_holder_reenters() {
    let cond = Condition::create(&unique("cond-twice-try")).unwrap();
    let g = cond.acquire().unwrap();
    let again = cond.try_acquire().unwrap();
    assert_eq!(cond.depth(), 2);
    drop(again);
    drop(g);
    assert!(!cond.is_locked());
}

// ---- Value<[u64; 8]>: written under its lock ----

#[test]
fn value_set_survives_the_victims_identity_forged_by_another_process() {
    let name = unique("forged-value");
    let v: Value<[u64; 8]> = Value::create(&name, [1; 8]).unwrap();
    watchdog(WATCHDOG, move || {
        // The forger is another process that learnt the victim thread's identity (it
        // can read /proc) and has write access to the segment.
        let victim = current();
        let child = fork(move || {
            let v: Value<[u64; 8]> = Value::open(&name).unwrap();
            forge(v.raw().raw_lock(), victim);
            0
        });
        child.join_ok(WATCHDOG);
        assert!(v.is_locked(), "the forgery is in place");
        v.set([2; 8]);
        assert_eq!(v.get(), [2; 8]);
        assert!(!v.is_locked());
    });
}

#[test]
fn value_update_swap_and_compare_exchange_take_over_a_forged_self_owner() {
    let v: Value<[u64; 8]> = Value::create(&unique("forged-value-rmw"), [0; 8]).unwrap();
    watchdog(WATCHDOG, move || {
        forge(v.raw().raw_lock(), current());
        assert_eq!(v.update(|x| std::mem::replace(&mut x[0], 5)), 0);
        forge(v.raw().raw_lock(), current());
        assert_eq!(v.swap([6; 8])[0], 5);
        forge(v.raw().raw_lock(), current());
        assert_eq!(v.compare_exchange([6; 8], [7; 8]), Ok([6; 8]));
        assert_eq!(v.get(), [7; 8]);
        assert!(!v.is_locked());
    });
}

#[test]
fn value_lock_takes_over_a_forged_self_owner_and_says_recovered() {
    let v: Value<[u64; 8]> = Value::create(&unique("forged-value-lock"), [0; 8]).unwrap();
    watchdog(WATCHDOG, move || {
        forge(v.raw().raw_lock(), current());
        {
            let mut g = v.lock();
            assert!(g.recovered());
            g[3] = 9;
        }
        assert_eq!(v.get()[3], 9);
        forge(v.raw().raw_lock(), current());
        assert!(v.try_lock().expect("taken over").recovered());
        forge(v.raw().raw_lock(), current());
        let g = v.lock_timeout(Duration::from_secs(5)).expect("taken over");
        assert!(g.recovered());
        drop(g);
        assert!(!v.is_locked());
    });
}

#[test]
fn value_lock_naming_a_kernel_thread_is_taken_over() {
    let Some(kthread) = kernel_thread_or_skip("value kernel thread") else {
        return;
    };
    let v: Value<[u64; 8]> = Value::create(&unique("forged-value-kt"), [0; 8]).unwrap();
    watchdog(WATCHDOG, move || {
        forge(v.raw().raw_lock(), kthread);
        assert!(v.lock().recovered());
        forge(v.raw().raw_lock(), kthread);
        v.set([4; 8]);
        assert_eq!(v.get(), [4; 8]);
        assert!(!v.is_locked());
    });
}

#[test]
#[should_panic(expected = "already holds the lock")]
fn a_guard_through_another_handle_still_refuses_a_nested_set() {
    // Two opens map the segment twice: the guard's lock and the second handle's lock
    // are the same bytes at two addresses.
    let name = unique("value-two-maps");
    let v: Value<[u64; 8]> = Value::create(&name, [0; 8]).unwrap();
    let w: Value<[u64; 8]> = Value::open(&name).unwrap();
    let _g = v.lock();
    w.set([1; 8]);
}

#[test]
#[should_panic(expected = "already holds the lock")]
fn a_nested_set_inside_update_of_a_multi_word_value_panics() {
    let v: Value<[u64; 8]> = Value::anonymous([0; 8]).unwrap();
    v.update(|_| v.set([1; 8]));
}

// ---- Array<[u64; 4]> ----

#[test]
fn array_set_survives_the_victims_identity_forged_by_another_process() {
    let name = unique("forged-array");
    let a: Array<[u64; 4]> = Array::create(&name, 3).unwrap();
    watchdog(WATCHDOG, move || {
        let victim = current();
        let child = fork(move || {
            let a: Array<[u64; 4]> = Array::open(&name).unwrap();
            forge(a.raw().raw_lock(), victim);
            0
        });
        child.join_ok(WATCHDOG);
        assert!(a.is_locked(), "the forgery is in place");
        a.set(1, [5; 4]).unwrap();
        assert_eq!(a.get(1), Some([5; 4]));
        assert!(!a.is_locked());
    });
}

#[test]
fn array_lock_update_and_bulk_writes_take_over_a_forged_self_owner() {
    let a: Array<[u64; 4]> = Array::create(&unique("forged-array-ops"), 2).unwrap();
    watchdog(WATCHDOG, move || {
        forge(a.raw().raw_lock(), current());
        {
            let mut g = a.lock();
            assert!(g.recovered());
            g[0] = [1; 4];
        }
        forge(a.raw().raw_lock(), current());
        assert_eq!(
            a.update(1, |x| std::mem::replace(x, [2; 4])).unwrap(),
            [0; 4]
        );
        forge(a.raw().raw_lock(), current());
        a.fill([3; 4]);
        forge(a.raw().raw_lock(), current());
        a.copy_from_slice(&[[4; 4], [5; 4]]).unwrap();
        forge(a.raw().raw_lock(), current());
        assert!(a.try_lock().expect("taken over").recovered());
        assert_eq!(a.to_vec(), [[4; 4], [5; 4]]);
        assert!(!a.is_locked());
    });
}

#[test]
fn array_lock_naming_a_kernel_thread_is_taken_over() {
    let Some(kthread) = kernel_thread_or_skip("array kernel thread") else {
        return;
    };
    let a: Array<[u64; 4]> = Array::create(&unique("forged-array-kt"), 2).unwrap();
    watchdog(WATCHDOG, move || {
        forge(a.raw().raw_lock(), kthread);
        assert!(a.lock().recovered());
        forge(a.raw().raw_lock(), kthread);
        a.set(0, [8; 4]).unwrap();
        assert_eq!(a.get(0), Some([8; 4]));
        assert!(!a.is_locked());
    });
}

#[test]
fn lock_word_naming_a_live_unrelated_process_is_waited_for_not_taken_over() {
    // Process 1 lives as long as this PID namespace: a real (if unlikely) holder. The
    // waiter's watch on it never fires and its probes find it alive, so the wait ends
    // at its deadline, from its first probe to its last.
    let lock = Lock::create(&unique("forged-init"))
        .unwrap()
        .with_probe_interval(Duration::from_millis(20));
    forge(lock.raw(), Identity { tid: 1, start: 0 });
    watchdog(WATCHDOG, move || {
        assert!(matches!(
            lock.acquire_timeout(Duration::from_millis(300)),
            Err(TryLockError::WouldBlock)
        ));
    });
}
