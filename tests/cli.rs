//! The `multiproc` tool as a real binary: exit codes, `--json` parsed back, every
//! kind inspected, a corrupt segment reported, `rm` refusing objects in use, `gc`.
//! Needs the `cli` feature: `cargo test --features cli --test cli`. As in
//! tests/lifecycle.rs, no other process of the same user may run `gc()` while the
//! orphan test runs: it would collect that orphan first.
#![cfg(all(feature = "cli", not(loom)))]
mod common;
use common::*;
use multiproc::segment::{write_image, GC_MIN_AGE};
use multiproc::{
    Array, Barrier, BoundedSemaphore, ByteQueue, Condition, Dict, Event, JoinableQueue, List, Lock,
    Pipe, Queue, RLock, Role, Segment, Semaphore, SpscQueue, Value,
};
use serde_json::Value as Json;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs the tool with `args`, failing the test if it runs past the watchdog.
fn run(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    watchdog(WATCHDOG, move || {
        Command::new(env!("CARGO_BIN_EXE_multiproc"))
            .args(&args)
            .output()
            .expect("run the multiproc binary")
    })
}

/// Runs the tool and parses its stdout as JSON; asserts exit code `code`.
fn json(args: &[&str], code: i32) -> Json {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn state<'a>(v: &'a Json, field: &str) -> &'a str {
    v["state"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no state field {field} in {v}"))
}

#[test]
fn ls_json_lists_a_live_object_with_its_fields() {
    let name = unique("cli-ls");
    let _q = Queue::<u64>::create(&name, 8).unwrap();
    let all = json(&["ls", "--json"], 0);
    let e = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name.as_str())
        .expect("listed");
    assert_eq!(e["kind"], "Queue");
    assert_eq!(e["element_type"], "u64");
    assert_eq!(e["creator_pid"], std::process::id());
    assert_eq!(e["creator_alive"], true);
    assert_eq!(e["in_use"], true);
    assert_eq!(e["persisted"], false);
    assert_eq!(e["orphan"], false);
    assert_eq!(e["status"], "ready");
    assert!(e["age_secs"].as_f64().unwrap() < 600.0);
    // The table names it too, under the ipcs-like header.
    let out = run(&["ls"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("NAME"), "{text}");
    let row = text.lines().find(|l| l.starts_with(&name)).expect("row");
    assert!(row.contains("Queue") && row.contains("u64"), "{row}");
}

#[test]
fn inspect_shows_the_live_state_of_every_kind() {
    let me = multiproc::sys::ident::gettid().to_string();
    let pid = std::process::id().to_string();
    let n = |k: &str| unique(&format!("cli-{k}"));

    let name = n("lock");
    let lock = Lock::create(&name).unwrap();
    let _g = lock.acquire().unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(state(&v, "locked"), "true");
    assert_eq!(state(&v, "holder"), format!("{me} (alive)"));
    assert_eq!(state(&v, "sleepers"), "false");
    // A thread waiting for the held lock shows as a possible sleeper.
    std::thread::scope(|s| {
        s.spawn(|| lock.acquire_timeout(Duration::from_secs(30)).is_ok());
        assert!(
            wait_until(Duration::from_secs(10), || lock.raw().may_have_sleepers()),
            "the waiter never announced itself"
        );
        let v = json(&["inspect", &name, "--json"], 0);
        assert_eq!(state(&v, "sleepers"), "true", "{v}");
        drop(_g);
    });

    let name = n("rlock");
    let rlock = RLock::create(&name).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "locked"), "false");
    assert_eq!(state(&v, "holder"), "-");
    drop(rlock);

    let name = n("sem");
    let sem = Semaphore::create(&name, 5).unwrap();
    sem.acquire().unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "value"), "4");
    assert_eq!(state(&v, "waiters"), "0");

    let name = n("bsem");
    let _b = BoundedSemaphore::create(&name, 2).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!((state(&v, "value"), state(&v, "bound")), ("2", "2"));

    let name = n("event");
    let ev = Event::create(&name).unwrap();
    ev.set();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "set"), "true");

    let name = n("cond");
    let _c = Condition::create(&name).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!((state(&v, "locked"), state(&v, "waiters")), ("false", "0"));

    let name = n("barrier");
    let bar = Barrier::create(&name, 3).unwrap();
    bar.abort();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "parties"), "3");
    assert_eq!(state(&v, "waiting"), "0");
    assert_eq!(state(&v, "broken"), "true");

    let name = n("queue");
    let q = Queue::<u64>::create(&name, 8).unwrap();
    for x in 0..3 {
        q.put(x).unwrap();
    }
    q.close();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!((state(&v, "len"), state(&v, "capacity")), ("3", "8"));
    assert_eq!(state(&v, "closed"), "true");
    assert_eq!(state(&v, "claimed_slots"), "", "no put or get in progress");
    assert_eq!(v["element_type"], "u64");

    let name = n("jqueue");
    let jq = JoinableQueue::<u32>::create(&name, 4).unwrap();
    jq.put(1).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!((state(&v, "len"), state(&v, "capacity")), ("1", "4"));

    let name = n("bqueue");
    let bq = ByteQueue::create(&name, 4, 64).unwrap();
    bq.put(b"hello").unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "len"), "1");

    let name = n("spsc");
    let mut sq = SpscQueue::<u64>::create(&name, 8, Role::Producer).unwrap();
    sq.put(9).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!((state(&v, "len"), state(&v, "capacity")), ("1", "8"));
    assert_eq!(state(&v, "producer"), format!("pid {pid} (alive)"));
    assert_eq!(state(&v, "consumer"), "free");

    let name = n("pipe");
    let mut a = Pipe::create(&name, 256).unwrap();
    a.send_bytes(b"0123456789").unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "capacity_bytes"), "256");
    assert!(
        state(&v, "bytes_a_to_b").parse::<u64>().unwrap() >= 10,
        "{v}"
    );
    assert_eq!(state(&v, "bytes_b_to_a"), "0");
    assert_eq!(state(&v, "end_a"), format!("pid {pid} (alive)"));
    assert_eq!(state(&v, "end_b"), "free");

    let name = n("value");
    let _val = Value::<u64>::create(&name, 0x0102).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "bytes"), "0201000000000000");

    let name = n("array");
    let _arr = Array::<u16>::from_slice(&name, &[1, 2, 3]).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "len"), "3");
    assert_eq!(state(&v, "bytes"), "010002000300");

    let name = n("dict");
    let dict: Dict<String, u64> = Dict::create(&name).unwrap();
    for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
        dict.insert(k.to_owned(), i as u64).unwrap();
    }
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "len"), "3", "{v}");
    let num = |f: &str| state(&v, f).parse::<u64>().unwrap();
    assert!(num("bytes_used") > 0 && num("bytes_used") <= num("bytes_committed"));

    let name = n("list");
    let list: List<u32> = List::create(&name).unwrap();
    list.extend([7, 8]).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(state(&v, "len"), "2", "{v}");
    drop((dict, list));

    let name = n("segment");
    let seg = Segment::create(&name, 16).unwrap();
    // SAFETY: the segment holds 16 bytes; nobody else writes it.
    unsafe { seg.as_ptr().write(0xAB) };
    let v = json(&["inspect", &name, "--json"], 0);
    assert!(state(&v, "first_bytes").starts_with("ab00"), "{v}");
    assert_eq!(v["header"]["version"], "2");

    // The text form says the same.
    let out = run(&["inspect", &name]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("kind:       Segment") && text.contains("valid:      yes"));
}

#[test]
fn inspect_of_a_corrupt_segment_reports_it_and_does_not_crash() {
    let name = unique("cli-garbage");
    write_image(&name, &[0x5A; 1000]).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(v["valid"], false);
    assert_eq!(v["status"], "corrupt");
    assert!(v["error"].as_str().unwrap().contains("magic"), "{v}");
    assert_eq!(v["kind"], Json::Null);
    multiproc::unlink(&name).unwrap();

    // A valid Lock header whose file was cut short: open refuses it, inspect says why.
    let src = unique("cli-cut-src");
    let l = Lock::create(&src).unwrap();
    let mut img = multiproc::segment::read_image(&src).unwrap();
    drop(l);
    img.truncate(img.len() - 64);
    let name = unique("cli-cut");
    write_image(&name, &img).unwrap();
    let v = json(&["inspect", &name, "--json"], 0);
    assert_eq!(v["valid"], false);
    assert_eq!(v["kind"], "Lock");
    assert!(v["error"].as_str().unwrap().contains("bytes"), "{v}");
    assert_eq!(v["header"]["kind"], "4");
    multiproc::unlink(&name).unwrap();
}

#[test]
fn rm_refuses_an_object_in_use_unless_forced() {
    let name = unique("cli-rm");
    let ev = Event::create(&name).unwrap();
    let out = run(&["rm", &name]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use") && err.contains("--force"), "{err}");
    assert!(Event::open(&name).is_ok(), "not removed");
    let v = json(&["rm", "--force", &name, "--json"], 0);
    assert_eq!(v["removed"][0], name.as_str());
    assert!(matches!(
        Event::open(&name),
        Err(multiproc::Error::NotFound { .. })
    ));
    ev.set(); // its user keeps working
    assert!(ev.is_set());
}

#[test]
fn rm_of_a_missing_name_fails_naming_it_and_removes_the_others() {
    let there = unique("cli-rm-there");
    let missing = unique("cli-rm-missing");
    let l = Lock::create(&there).unwrap();
    l.persist();
    drop(l);
    let v = json(&["rm", "--json", &missing, &there], 1);
    assert_eq!(v["removed"], serde_json::json!([there]));
    assert_eq!(v["errors"][0]["name"], missing.as_str());
    assert!(v["errors"][0]["error"].as_str().unwrap().contains(&missing));
}

#[test]
fn gc_removes_a_killed_creators_orphan_and_dry_run_only_names_it() {
    let name = unique("cli-orphan");
    let n = name.clone();
    let child = fork(move || {
        let _e = Event::create(&n).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let start = Instant::now();
    while !multiproc::segment::info(&name).is_ok_and(|i| i.in_use) {
        assert!(start.elapsed() < WATCHDOG, "watchdog: child creates");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill();
    std::thread::sleep(GC_MIN_AGE + Duration::from_millis(100));
    let v = json(&["gc", "--dry-run", "--json"], 0);
    assert_eq!(v["dry_run"], true);
    assert!(v["removed"]
        .as_array()
        .unwrap()
        .contains(&Json::from(name.as_str())));
    assert!(
        multiproc::segment::info(&name).is_ok(),
        "dry run removed it"
    );
    let v = json(&["gc", "--json"], 0);
    assert!(v["removed"]
        .as_array()
        .unwrap()
        .contains(&Json::from(name.as_str())));
    assert!(multiproc::segment::info(&name).is_err());
}

#[test]
fn usage_errors_exit_2_and_missing_objects_exit_1() {
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["rm"]).status.code(), Some(2));
    let out = run(&["inspect", &unique("cli-nothing")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cli-nothing"));
    assert!(out.stdout.is_empty());
}
