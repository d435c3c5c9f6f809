//! Stable element-type names: two programs that define the same record under
//! different Rust names agree on it through `SharedType` / `Options::type_name`.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::segment::{describe, SharedType, TypeInfo};
use multiproc::{Array, Error, JoinableQueue, Options, Queue, Value};
use std::time::Duration;

/// "Program A"'s definition of a job record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct JobA {
    id: u32,
    cost: u32,
}
impl SharedType for JobA {
    const NAME: &'static str = "test.Job.v1";
}

/// "Program B"'s definition of the same record: another Rust name and field names.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct JobB {
    key: u32,
    weight: u32,
}
impl SharedType for JobB {
    const NAME: &'static str = "test.Job.v1";
}

/// A different record of the same size.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Point {
    x: u32,
    y: u32,
}
impl SharedType for Point {
    const NAME: &'static str = "test.Point";
}

#[test]
fn two_structs_with_the_same_stable_name_share_a_queue_across_processes() {
    let name = unique("ty-queue");
    let q: Queue<JobA> =
        Queue::create_with(&name, 8, &Options::new().shared_type::<JobA>()).unwrap();
    q.put(JobA { id: 7, cost: 40 }).unwrap();
    let n = name.clone();
    let child = fork(move || {
        let q: Queue<JobB> = Queue::open_with(&n, &Options::new().shared_type::<JobB>()).unwrap();
        let j = q.get().unwrap();
        q.put(JobB {
            key: j.key + 1,
            weight: j.weight * 2,
        })
        .unwrap();
        i32::from(j != JobB { key: 7, weight: 40 })
    });
    child.join_ok(Duration::from_secs(60));
    assert_eq!(q.get().unwrap(), JobA { id: 8, cost: 80 });
    assert_eq!(describe(&name).unwrap().type_name, "test.Job.v1");
}

#[test]
fn rust_type_names_of_two_structs_differ_so_open_without_a_stable_name_is_refused() {
    let name = unique("ty-rustname");
    let _q: Queue<JobA> = Queue::create(&name, 8).unwrap();
    match Queue::<JobB>::open(&name) {
        Err(Error::WrongType {
            expected, found, ..
        }) => {
            assert!(expected.ends_with("JobB"), "{expected}");
            assert!(found.contains("JobA"), "{found}");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
}

#[test]
fn a_different_stable_name_is_refused_with_both_names() {
    let name = unique("ty-other");
    let _q: Queue<JobA> =
        Queue::create_with(&name, 8, &Options::new().shared_type::<JobA>()).unwrap();
    let e = Queue::<Point>::open_with(&name, &Options::new().shared_type::<Point>()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::WrongType { .. }), "{e:?}");
    assert!(
        msg.contains("test.Point") && msg.contains("test.Job.v1"),
        "{msg}"
    );
}

#[test]
fn the_stable_name_covers_value_array_and_joinable_queue() {
    let opts = Options::new().type_name("test.Counter");
    let v = unique("ty-value");
    let _v: Value<u64> = Value::create_with(&v, 3, &opts).unwrap();
    assert_eq!(Value::<u64>::open_with(&v, &opts).unwrap().get(), 3);
    assert!(matches!(
        Value::<u64>::open(&v),
        Err(Error::WrongType { .. })
    ));
    let a = unique("ty-array");
    let _a: Array<u32> = Array::create_with(&a, 4, &opts).unwrap();
    assert_eq!(Array::<u32>::open_with(&a, &opts).unwrap().len(), 4);
    assert!(matches!(
        Array::<u32>::open(&a),
        Err(Error::WrongType { .. })
    ));
    let j = unique("ty-jq");
    let _j: JoinableQueue<JobA> =
        JoinableQueue::create_with(&j, 4, &Options::new().shared_type::<JobA>()).unwrap();
    assert!(JoinableQueue::<JobB>::open_with(&j, &Options::new().shared_type::<JobB>()).is_ok());
}

#[test]
fn a_stable_name_with_another_size_is_refused() {
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct BigJob {
        id: u64,
        cost: u64,
    }
    impl SharedType for BigJob {
        const NAME: &'static str = "test.Job.v1";
    }
    let name = unique("ty-size");
    let _q: Queue<JobA> =
        Queue::create_with(&name, 8, &Options::new().shared_type::<JobA>()).unwrap();
    assert!(matches!(
        Queue::<BigJob>::open_with(&name, &Options::new().shared_type::<BigJob>()),
        Err(Error::WrongType { .. })
    ));
}

#[test]
fn objects_made_without_a_stable_name_open_with_the_primitives_stable_name() {
    // What older builds wrote for a Queue<u64> (Rust's type_name "u64") is exactly
    // the stable name of u64, so both ways of opening agree.
    let name = unique("ty-old");
    let q: Queue<u64> = Queue::create(&name, 8).unwrap();
    q.put(5).unwrap();
    let opened: Queue<u64> = Queue::open_with(&name, &Options::new().shared_type::<u64>()).unwrap();
    assert_eq!(opened.get().unwrap(), 5);
    assert_eq!(TypeInfo::named("u64", 8, 8), TypeInfo::of::<u64>());
    assert_eq!(TypeInfo::shared::<[i32; 3]>(), TypeInfo::of::<[i32; 3]>());
}
