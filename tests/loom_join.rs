//! loom model of a joinable queue's task accounting (`RawJoin`): an entry is freed by
//! its owner's own `task_done` when its count reaches zero, while another thread
//! marks tasks done on its behalf. Identities are fixed here (entries are picked by
//! TID, and a model must make the same choices in every execution).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use multiproc::raw::queue_join::RawJoin;
use multiproc::sync::Identity;

/// RawJoin holds 128 entries of a cache line each: more than the default stack of a
/// loom thread while it is built and moved.
fn big_stack() -> thread::Builder {
    thread::Builder::new().stack_size(1 << 20)
}

#[test]
fn every_raise_is_matched_by_exactly_one_task_done() {
    // Each call scans the 128 entries: many more atomic steps than loom's default
    // branch limit, and too many for an unbounded search; two preemptions cover the
    // races of interest (a helper's decrement between the owner's raise, task_done
    // and freeing of its entry).
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 1_000_000;
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let model = big_stack().spawn(|| {
            let j = Arc::new(RawJoin::new());
            let owner = {
                let j = j.clone();
                big_stack()
                    .spawn(move || {
                        let me = Identity { tid: 1, start: 1 };
                        let mut ok = 0;
                        for _ in 0..2 {
                            // As a get does: find (or claim) this thread's entry and
                            // count the task in it.
                            let h = j.holder(me, 0);
                            j.raise(h);
                            if j.task_done(me, 0).is_ok() {
                                ok += 1;
                            }
                        }
                        ok
                    })
                    .unwrap()
            };
            let helper = {
                let j = j.clone();
                big_stack()
                    .spawn(move || {
                        // TID 129 has the owner's home entry (TID 1, 128 entries): the
                        // two contend for it once the owner frees it.
                        let me = Identity { tid: 129, start: 1 };
                        // A task_done on the owner's behalf (or too early: an error).
                        let mut ok = u32::from(j.task_done(me, 0).is_ok());
                        let h = j.holder(me, 1);
                        j.raise(h);
                        ok += u32::from(j.task_done(me, 1).is_ok());
                        ok
                    })
                    .unwrap()
            };
            let ok = owner.join().unwrap() + helper.join().unwrap();
            // Three tasks were counted: exactly three task_done calls succeeded (none
            // twice for one task), and nothing is left held.
            assert_eq!(ok, 3);
            assert_eq!(j.held(), 0);
        });
        model.unwrap().join().unwrap();
    });
}

#[test]
fn a_handed_over_task_is_finished_exactly_once_and_its_entry_freed() {
    // The owner gets two tasks and hands them over while a helper marks tasks done
    // on anyone's behalf: however they interleave, exactly two task_done calls
    // succeed, nothing stays held, and the handed-over entry is freed (by whichever
    // side saw its count reach zero).
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 1_000_000;
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let model = big_stack().spawn(|| {
            let j = Arc::new(RawJoin::new());
            let me = Identity { tid: 1, start: 1 };
            let h = j.holder(me, 0);
            j.raise(h);
            j.raise(h);
            let helper = {
                let j = j.clone();
                big_stack()
                    .spawn(move || {
                        let other = Identity { tid: 2, start: 1 };
                        u32::from(j.task_done(other, 0).is_ok())
                            + u32::from(j.task_done(other, 0).is_ok())
                    })
                    .unwrap()
            };
            let handed = j.hand_over(me, 0);
            assert!(handed <= 2);
            let ok = helper.join().unwrap();
            assert_eq!(ok, 2, "both tasks were there to finish");
            assert_eq!(j.held(), 0);
            assert_eq!(j.handed(), 0);
            // The entry is free again: a new thread claims the owner's home entry (1).
            let newcomer = Identity { tid: 129, start: 1 };
            assert!(matches!(
                j.holder(newcomer, 0),
                multiproc::raw::queue_join::Holder::Entry(1)
            ));
        });
        model.unwrap().join().unwrap();
    });
}
