//! Lifecycle: who holds an object (OFD attachment locks), orphans left by crashed
//! creators, `list`, `gc`, and `create` over an orphan.
//!
//! Other test binaries may run at the same time and create objects of their own;
//! every assertion here is about this file's names only (a `gc` here may reclaim
//! another test's orphans, never its objects in use). The converse is a constraint:
//! these tests make orphans on purpose and then watch them, so no *other* process of
//! the same user may run `gc()` meanwhile (another checkout's test run, say) — it
//! would collect them first, as `gc` is meant to. `cargo test` runs test binaries
//! one at a time, and this file's tests take turns (`serial`).
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::segment::{info, read_image, write_image, Status, GC_MIN_AGE};
use multiproc::{
    gc, list, unlink, Array, Barrier, BoundedSemaphore, ByteQueue, Condition, Error, Event,
    JoinableQueue, Lock, Pipe, Queue, RLock, Role, Segment, Semaphore, SpscQueue, Value,
};
use std::any::Any;
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Tests in this file that leave orphans or call `gc` take turns: one test's `gc`
/// would otherwise collect another's orphans before it looks at them.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates an object under a name and returns its handle, to be kept alive.
type Make = fn(&str) -> Box<dyn Any>;

/// Every kind of named object, with how to create it.
const KINDS: &[(&str, Make)] = &[
    ("Segment", |n| Box::new(Segment::create(n, 100).unwrap())),
    ("Value", |n| Box::new(Value::<u64>::create(n, 7).unwrap())),
    ("Array", |n| Box::new(Array::<u32>::create(n, 4).unwrap())),
    ("Lock", |n| Box::new(Lock::create(n).unwrap())),
    ("RLock", |n| Box::new(RLock::create(n).unwrap())),
    ("Semaphore", |n| Box::new(Semaphore::create(n, 2).unwrap())),
    ("BoundedSemaphore", |n| {
        Box::new(BoundedSemaphore::create(n, 2).unwrap())
    }),
    ("Event", |n| Box::new(Event::create(n).unwrap())),
    ("Condition", |n| Box::new(Condition::create(n).unwrap())),
    ("Barrier", |n| Box::new(Barrier::create(n, 3).unwrap())),
    ("Queue", |n| Box::new(Queue::<u64>::create(n, 8).unwrap())),
    ("JoinableQueue", |n| {
        Box::new(JoinableQueue::<u64>::create(n, 8).unwrap())
    }),
    ("ByteQueue", |n| {
        Box::new(ByteQueue::create(n, 4, 64).unwrap())
    }),
    ("SpscQueue", |n| {
        Box::new(SpscQueue::<u64>::create(n, 8, Role::Producer).unwrap())
    }),
    ("Pipe", |n| Box::new(Pipe::create(n, 256).unwrap())),
];

/// Polls `cond` until it holds, failing the test after the watchdog.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WATCHDOG, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// True once `name` exists, is initialised and someone holds it.
fn ready_and_held(name: &str) -> bool {
    info(name).is_ok_and(|i| i.status == Status::Ready && i.in_use)
}

/// Forks a child that creates `name` with `make` and then waits to be killed.
fn creator(name: &str, make: Make) -> Child {
    let n = name.to_owned();
    let child = fork(move || {
        let _keep = make(&n);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    wait_until(&format!("child creates {name}"), || ready_and_held(name));
    child
}

/// Forks a child that opens `name` as a Segment-agnostic Lock/Value/... user: any kind
/// is attached through `open` of its own type, so this uses `Value<u64>`.
fn value_user(name: &str) -> Child {
    let n = name.to_owned();
    fork(move || {
        let _keep = Value::<u64>::open(&n).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}

/// Sleeps until files created now are old enough for `gc`.
fn let_gc_see_them() {
    std::thread::sleep(GC_MIN_AGE + Duration::from_millis(100));
}

fn exists(name: &str) -> bool {
    match info(name) {
        Ok(_) => true,
        Err(Error::NotFound { .. }) => false,
        Err(e) => panic!("info({name}): {e}"),
    }
}

#[test]
fn a_killed_creator_of_each_kind_leaves_an_orphan_that_gc_removes_and_nothing_else() {
    let _serial = serial();
    let names: Vec<String> = KINDS
        .iter()
        .map(|(k, _)| unique(&format!("orph-{k}")))
        .collect();
    let children: Vec<Child> = KINDS
        .iter()
        .zip(&names)
        .map(|((_, make), n)| creator(n, *make))
        .collect();
    // Objects of this process (alive creator) and a persisted one must stay.
    let live = unique("orph-live");
    let live_lock = Lock::create(&live).unwrap();
    let kept = unique("orph-persisted");
    // Persisted, so nothing else removes it: unlinked even if an assertion fails.
    let _unlink_kept = UnlinkOnDrop(kept.clone());
    let c = fork({
        let kept = kept.clone();
        move || {
            Event::create(&kept).unwrap().persist();
            0
        }
    });
    c.join_ok(WATCHDOG);
    let pids: Vec<u32> = children.iter().map(|c| c.pid as u32).collect();
    for c in children {
        c.kill();
    }
    let_gc_see_them();

    let all = list().unwrap();
    for (((kind, _), n), pid) in KINDS.iter().zip(&names).zip(&pids) {
        let i = all.iter().find(|i| &i.name == n).expect("listed");
        assert_eq!(i.kind_name(), *kind, "{n}");
        assert_eq!(i.creator_pid, *pid, "{n}: the creating process");
        assert_eq!(i.status, Status::Ready, "{n}");
        assert!(!i.creator_alive && !i.in_use && !i.persisted, "{i:?}");
        assert!(i.orphan && i.collectable(), "{i:?}");
    }
    let l = all.iter().find(|i| i.name == live).unwrap();
    assert!(l.creator_alive && l.in_use && !l.orphan, "{l:?}");
    assert_eq!(l.creator_pid, std::process::id());
    let p = all.iter().find(|i| i.name == kept).unwrap();
    assert!(
        p.persisted && !p.creator_alive && !p.in_use && !p.orphan,
        "{p:?}"
    );

    let removed = gc().unwrap();
    for n in &names {
        assert!(removed.contains(n), "{n} not collected: {removed:?}");
        assert!(!exists(n), "{n} still exists");
    }
    assert!(!removed.contains(&live) && !removed.contains(&kept));
    assert!(live_lock.try_acquire().is_ok(), "the live lock still works");
    assert!(exists(&live) && exists(&kept));
    unlink(&kept).unwrap();
}

#[test]
fn create_after_a_crashed_creator_succeeds_with_a_fresh_object() {
    let _serial = serial();
    let name = unique("restart");
    let n = name.clone();
    let child = fork(move || {
        let q = Queue::<u64>::create(&n, 8).unwrap();
        q.put(41).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    wait_until("child creates its queue", || {
        ready_and_held(&name) && Queue::<u64>::open(&name).is_ok_and(|q| q.len() == 1)
    });
    child.kill();
    // No gc, no waiting: a restarted service just creates.
    let q = Queue::<u64>::create(&name, 8).unwrap();
    assert_eq!(q.len(), 0, "a fresh queue, not the dead one's");
    q.put(1).unwrap();
    assert_eq!(Queue::<u64>::open(&name).unwrap().get().unwrap(), 1);
}

#[test]
fn create_over_an_object_in_use_or_persisted_is_already_exists() {
    let _serial = serial();
    let name = unique("taken");
    let child = creator(&name, |n| Box::new(Value::<u64>::create(n, 5).unwrap()));
    assert!(matches!(
        Value::<u64>::create(&name, 0),
        Err(Error::AlreadyExists { .. })
    ));
    // The creator dies, but a user holds it: still taken.
    let user = value_user(&name);
    wait_until("user attaches", || holders(&name) >= 2);
    child.kill();
    assert!(matches!(
        Value::<u64>::create(&name, 0),
        Err(Error::AlreadyExists { .. })
    ));
    // Persisted and unused: taken too.
    Value::<u64>::open(&name).unwrap().persist();
    user.kill();
    let i = info(&name).unwrap();
    assert!(i.persisted && !i.in_use && !i.orphan, "{i:?}");
    assert!(matches!(
        Value::<u64>::create(&name, 0),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(Value::<u64>::open(&name).unwrap().get(), 5);
    unlink(&name).unwrap();
}

#[test]
fn an_object_opened_by_a_live_process_survives_gc_until_that_process_dies() {
    let _serial = serial();
    let name = unique("held");
    let creator = creator(&name, |n| Box::new(Value::<u64>::create(n, 9).unwrap()));
    let user = value_user(&name);
    // The user attached once it has been counted: wait for its lock to show.
    wait_until("user attaches", || holders(&name) >= 2);
    creator.kill();
    let_gc_see_them();
    let i = info(&name).unwrap();
    assert!(!i.creator_alive && i.in_use && !i.orphan, "{i:?}");
    assert!(!gc().unwrap().contains(&name));
    assert_eq!(Value::<u64>::open(&name).unwrap().get(), 9);
    user.kill();
    assert!(info(&name).unwrap().orphan);
    assert!(gc().unwrap().contains(&name));
    assert!(!exists(&name));
}

/// How many OFD locks `/proc/locks` shows on `name`'s file.
fn holders(name: &str) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(format!("/dev/shm/mp.{name}")) else {
        return 0;
    };
    let ino = format!(":{} ", m.ino());
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("OFDLCK") && l.contains(&ino))
        .count()
}

/// SIGKILLs a process that is not our child (a grandchild) when dropped, so that a
/// failing test leaves nothing running.
/// Unlinks a name when dropped (also when the test fails before its end).
struct UnlinkOnDrop(String);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

struct KillOnDrop(libc::pid_t);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: signalling a pid; it is our grandchild, kept from reuse until reaped
        // by init after this kill.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

#[test]
fn a_forked_child_keeps_an_inherited_handle_alive_after_its_parent_is_killed() {
    let _serial = serial();
    let name = unique("inherit");
    let grandchild_pid = Value::<u32>::create(&unique("inherit-pid"), 0).unwrap();
    let gp = grandchild_pid.clone();
    let n = name.clone();
    let parent = fork(move || {
        let v = Value::<u64>::create(&n, 3).unwrap();
        let inherited = v.clone(); // the parent keeps `v`: its drop would unlink
        let g = fork(move || {
            let _inherited = inherited;
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        gp.set(g.pid as u32);
        std::mem::forget(g); // killed by the test
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    wait_until("grandchild forked", || grandchild_pid.get() != 0);
    let grandchild = KillOnDrop(grandchild_pid.get() as libc::pid_t);
    parent.kill();
    let_gc_see_them();
    let i = info(&name).unwrap();
    assert!(!i.creator_alive && i.in_use && !i.orphan, "{i:?}");
    assert!(!gc().unwrap().contains(&name));
    assert_eq!(Value::<u64>::open(&name).unwrap().get(), 3);
    drop(grandchild);
    wait_until("grandchild dies and lets go", || {
        info(&name).is_ok_and(|i| !i.in_use)
    });
    assert!(gc().unwrap().contains(&name));
}

#[test]
fn a_corrupt_segment_is_listed_as_corrupt_and_never_collected() {
    let _serial = serial();
    let name = unique("garbage");
    write_image(&name, &[0xA5; 4096]).unwrap();
    let_gc_see_them();
    let i = list()
        .unwrap()
        .into_iter()
        .find(|i| i.name == name)
        .expect("listed");
    assert!(
        matches!(&i.status, Status::Corrupt { detail } if detail.contains("magic")),
        "{i:?}"
    );
    assert!(!i.orphan && i.kind.is_none(), "{i:?}");
    assert!(!gc().unwrap().contains(&name));
    assert!(matches!(
        Lock::create(&name),
        Err(Error::AlreadyExists { .. })
    ));
    unlink(&name).unwrap();
}

#[test]
fn a_never_initialised_leftover_is_collected_after_the_init_timeout() {
    let _serial = serial();
    let name = unique("empty");
    write_image(&name, &[]).unwrap();
    let i = info(&name).unwrap();
    assert!(i.status == Status::Initialising && !i.orphan, "{i:?}");
    assert!(!gc().unwrap().contains(&name));
    std::thread::sleep(multiproc::segment::DEFAULT_INIT_TIMEOUT + Duration::from_millis(100));
    let i = info(&name).unwrap();
    assert!(
        matches!(i.status, Status::Corrupt { .. }) && i.orphan,
        "{i:?}"
    );
    assert!(gc().unwrap().contains(&name));
}

#[test]
fn a_freshly_written_image_is_not_collected_before_gc_min_age() {
    let _serial = serial();
    // An orphan by its header (a killed creator's image), copied a moment ago.
    let src = unique("young-src");
    let c = creator(&src, |n| Box::new(Value::<u64>::create(n, 1).unwrap()));
    c.kill();
    let img = read_image(&src).unwrap();
    let name = unique("young");
    write_image(&name, &img).unwrap();
    let i = info(&name).unwrap();
    assert!(i.orphan && !i.collectable(), "{i:?}");
    assert!(!gc().unwrap().contains(&name));
    let_gc_see_them();
    let removed = gc().unwrap();
    assert!(
        removed.contains(&name) && removed.contains(&src),
        "{removed:?}"
    );
}

/// An `open` racing with `gc` over an orphan either gets the object — and `gc` leaves
/// it — or `NotFound`; never a handle on a file unlinked under it.
#[test]
fn open_racing_gc_either_keeps_the_object_or_is_not_found() {
    let _serial = serial();
    const ROUNDS: usize = 400;
    watchdog(Duration::from_secs(120), || {
        let src = unique("race-src");
        let c = creator(&src, |n| Box::new(Value::<u64>::create(n, 0).unwrap()));
        c.kill();
        let img = read_image(&src).unwrap();
        unlink(&src).unwrap();
        // Orphans by their header (dead creator), each held by this process until its
        // round so that no earlier round's gc takes it; aged once for all.
        let names: Vec<String> = (0..ROUNDS).map(|_| unique("race")).collect();
        let mut holds: Vec<Option<Value<u64>>> = names
            .iter()
            .map(|n| {
                write_image(n, &img).unwrap();
                Some(Value::<u64>::open(n).unwrap())
            })
            .collect();
        let_gc_see_them();
        let (mut kept, mut collected) = (0, 0);
        for (round, name) in names.iter().enumerate() {
            let mark = round as u64 + 1;
            holds[round] = None; // now an orphan
            let start = std::sync::Arc::new(std::sync::Barrier::new(2));
            let s = start.clone();
            let n = name.clone();
            let opener = std::thread::spawn(move || {
                s.wait();
                let r = Value::<u64>::open(&n);
                if let Ok(v) = &r {
                    v.set(mark);
                }
                r
            });
            start.wait();
            let removed = gc().unwrap().contains(name);
            match opener.join().unwrap() {
                Ok(v) => {
                    assert!(!removed, "round {round}: gc removed an object just opened");
                    // The name still names the very object the opener holds.
                    assert_eq!(Value::<u64>::open(name).unwrap().get(), mark);
                    assert_eq!(v.get(), mark);
                    kept += 1;
                    drop(v);
                    unlink(name).unwrap();
                }
                Err(Error::NotFound { .. }) => {
                    assert!(removed, "round {round}: NotFound, yet gc kept it");
                    collected += 1;
                }
                Err(e) => panic!("round {round}: open failed with {e}"),
            }
        }
        eprintln!("open won {kept} times, gc won {collected} times");
    });
}

/// A tiny xorshift generator: the soak needs randomness, not quality.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `open`'s documented verdict on an object whose creator was killed creating it.
fn creator_died_creating(e: &Error) -> bool {
    matches!(e, Error::Corrupt { detail, .. }
        if detail.contains("died while initialising") || detail.contains("not initialised"))
}

/// One soak worker: takes objects from `names` (creating or opening), checks that each
/// held object still answers to its name, drops some, and exits after a while. Every
/// call must succeed or fail only as documented. Exit code 0, or 2 with a message.
fn soak_worker(names: &[String]) -> i32 {
    let mut rng = Rng::seeded();
    let mut held: Vec<(String, Value<u64>, u64)> = Vec::new();
    for _ in 0..20 + rng.below(200) {
        let name = &names[rng.below(names.len() as u64) as usize];
        let token = rng.next() | 1;
        let got = match Value::<u64>::create(name, token) {
            Ok(v) => Some((v, token, true)),
            Err(Error::AlreadyExists { .. }) => match Value::<u64>::open(name) {
                Ok(v) => {
                    let t = v.get();
                    Some((v, t, false))
                }
                Err(Error::NotFound { .. }) => None,
                Err(e) if creator_died_creating(&e) => None,
                Err(e) => {
                    eprintln!("open {name}: {e}");
                    return 2;
                }
            },
            Err(e) => {
                eprintln!("create {name}: {e}");
                return 2;
            }
        };
        if let Some((v, t, created)) = got {
            if created {
                // A creator's drop unlinks its name by design; only gc may remove
                // these, and only once nobody holds them.
                std::mem::forget(v.clone());
            }
            held.push((name.clone(), v, t));
        }
        // Every object held still answers to its name.
        for (n, v, t) in &held {
            if v.get() != *t {
                eprintln!("{n}: value changed under its holder");
                return 2;
            }
            match Value::<u64>::open(n) {
                Ok(again) if again.get() == *t => {}
                Ok(again) => {
                    eprintln!("{n}: now names another object ({} != {t})", again.get());
                    return 2;
                }
                Err(e) => {
                    eprintln!("{n} lost while held: {e}");
                    return 2;
                }
            }
        }
        if held.len() > 3 || rng.below(3) == 0 {
            let i = rng.below(held.len().max(1) as u64) as usize;
            if i < held.len() {
                held.swap_remove(i);
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
    }
    0
}

/// Workers create, open, use and drop objects and are SIGKILLed at random while
/// another process runs `gc` in a loop: no live holder ever loses its object, and at
/// the end nothing of the test's is left in /dev/shm. `MULTIPROC_SOAK_SECS` sets the
/// duration (default 30).
#[test]
fn soak_gc_against_random_kills_never_takes_a_held_object_and_leaves_nothing() {
    let _serial = serial();
    let secs: u64 = std::env::var("MULTIPROC_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let prefix = unique("soak");
    let names: Vec<String> = (0..16).map(|k| format!("{prefix}-{k}")).collect();
    let stop = Event::create(&unique("soak-stop")).unwrap();
    let stop_name = stop.name().to_owned();
    // [gc passes, objects it removed]
    let gcs = Array::<u64>::create(&unique("soak-gcs"), 2).unwrap();
    let gcs_name = gcs.name().to_owned();
    let collector = fork(move || {
        let stop = Event::open(&stop_name).unwrap();
        let count = Array::<u64>::open(&gcs_name).unwrap();
        while !stop.is_set() {
            match gc() {
                Ok(removed) => {
                    let mut c = count.lock();
                    c[0] += 1;
                    c[1] += removed.len() as u64;
                }
                Err(e) => {
                    eprintln!("gc: {e}");
                    return 2;
                }
            }
        }
        0
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = Rng::seeded();
    let spawn = |names: &Vec<String>| {
        let names = names.clone();
        fork(move || soak_worker(&names))
    };
    let mut workers: Vec<Child> = (0..4).map(|_| spawn(&names)).collect();
    let (mut kills, mut exits) = (0u64, 0u64);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        for w in workers.iter_mut() {
            if let Some(exit) = w.wait_timeout(Duration::ZERO) {
                assert_eq!(exit, Exit::Code(0), "a worker failed (see its stderr)");
                exits += 1;
                *w = spawn(&names);
            }
        }
        let i = rng.below(workers.len() as u64) as usize;
        let victim = std::mem::replace(&mut workers[i], spawn(&names));
        victim.kill();
        kills += 1;
    }
    for w in workers {
        w.kill();
    }
    stop.set();
    collector.join_ok(WATCHDOG);
    eprintln!(
        "soak: {secs} s, {kills} workers killed, {exits} exited, {} gc passes removed {} orphans",
        gcs.get(0).unwrap(),
        gcs.get(1).unwrap()
    );
    // Everything left is an orphan now; a leftover never initialised needs the init
    // timeout to pass before it counts as one.
    std::thread::sleep(multiproc::segment::DEFAULT_INIT_TIMEOUT.max(GC_MIN_AGE));
    gc().unwrap();
    let left: Vec<String> = list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
