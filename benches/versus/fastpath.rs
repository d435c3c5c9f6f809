//! Rows for the single-process fast paths, uncontended: what every call pays with
//! no peer in the way. Run it before and after a change to a fast path (the
//! truncation check added one load after each operation) and compare the rows.
use crate::common::{fmt_dur, section, time_per_op, value, Ctx};
use multiproc::{Array, Lock, Queue, Role, SpscQueue, Value};
use std::hint::black_box;
use std::time::Duration;

pub fn run(_ctx: &mut Ctx) {
    section("fastpath: uncontended single-process operations, best of 5");
    let base = format!("bench-fast-{}", std::process::id());

    let v = Value::<u64>::create(&format!("{base}-v"), 0).unwrap();
    row("Value<u64>::fetch_add", || {
        black_box(v.fetch_add(1));
    });

    let a = Array::<u64>::create(&format!("{base}-a"), 64).unwrap();
    let mut i = 0;
    row("Array<u64>::fetch_add(i)", || {
        i = (i + 1) & 63;
        black_box(a.fetch_add(i, 1).unwrap());
    });

    let l = Lock::create(&format!("{base}-l")).unwrap();
    row("Lock acquire + release", || {
        drop(black_box(l.acquire().unwrap()));
    });

    let q = Queue::<u64>::create(&format!("{base}-q"), 1024).unwrap();
    row("Queue<u64> try_put + try_get", || {
        q.try_put(1).unwrap();
        black_box(q.try_get().unwrap());
    });

    row("Queue<u64> put + get (blocking forms)", || {
        q.put(1).unwrap();
        black_box(q.get().unwrap());
    });

    let name = format!("{base}-s");
    let mut p = SpscQueue::<u64>::create(&name, 1024, Role::Producer).unwrap();
    let mut c = SpscQueue::<u64>::open(&name, Role::Consumer).unwrap();
    row("SpscQueue<u64> try_put + try_get", || {
        p.try_put(1).unwrap();
        black_box(c.try_get().unwrap());
    });
}

fn row(label: &str, mut f: impl FnMut()) {
    let best = (0..5)
        .map(|_| time_per_op(Duration::from_millis(100), &mut f))
        .min()
        .unwrap();
    value(label, format!("{:>10}", fmt_dur(best)));
}
