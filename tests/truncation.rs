//! Truncation: another process `ftruncate`s a live segment (to 0, or to a few hundred
//! bytes) while a child uses the object in it. The child must not die of `SIGBUS`;
//! once the truncation is seen, every operation that returns a `Result` returns
//! `Err(Corrupt)` saying the file was truncated, `is_broken()` says so, and dropping
//! the handles works. A `SIGBUS` at an address that is not ours still kills (or
//! reaches the handler installed before ours), and the opt-out restores the default.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::{
    sigbus, Array, Barrier, ByteQueue, Condition, Error, Event, JoinableQueue, Lock, Pipe, Queue,
    RLock, Result, Role, Segment, Semaphore, SpscQueue, Value,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);
/// "A few hundred bytes": inside the 256-byte header's page, past the header.
const SMALL: u64 = 300;

/// What one round of an object's operations showed.
enum Round {
    /// Worked as usual.
    Fine,
    /// Reported the truncation (`Err(Corrupt)`, or for error-less operations the
    /// documented signal plus `is_broken()`).
    Reported,
    /// Anything else: the test fails with this.
    Wrong(String),
}

fn is_truncation(e: &Error) -> bool {
    matches!(e, Error::Corrupt { detail, .. } if detail.contains("truncated"))
}

fn judge<T>(r: Result<T>) -> Round {
    match r {
        Ok(_) => Round::Fine,
        Err(e) if is_truncation(&e) => Round::Reported,
        Err(e) => Round::Wrong(e.to_string()),
    }
}

/// The file behind `name`, cut to `len` bytes, as any process with write access can.
fn truncate(name: &str, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/mp.{name}"))
        .expect("open the segment's file")
        .set_len(len)
        .expect("ftruncate");
}

/// A counter shared with forked children.
struct Shared(Segment);

impl Shared {
    fn new() -> Shared {
        Shared(Segment::anonymous(64).unwrap())
    }
    fn count(&self) -> &AtomicU64 {
        // SAFETY: the segment holds 64 bytes, 128-aligned; only atomics touch them.
        unsafe { &*(self.0.as_ptr() as *const AtomicU64) }
    }
}

/// A child's use of one object: `round` runs its operations once; `broken` is the
/// handle's `is_broken()`.
struct Session {
    round: Box<dyn FnMut() -> Round>,
    broken: Box<dyn Fn() -> bool>,
}

fn session(round: impl FnMut() -> Round + 'static, broken: impl Fn() -> bool + 'static) -> Session {
    Session {
        round: Box::new(round),
        broken: Box::new(broken),
    }
}

/// The child's side: rounds until one reports the truncation, then three more must
/// too, `is_broken()` must agree, and the handles must drop cleanly. With `ask`, each
/// round is followed by `is_broken()` (which compares the file's size), the way a
/// truncation that keeps every page the child touches is noticed.
fn use_until_reported(progress: &AtomicU64, mut s: Session, ask: bool) -> i32 {
    let start = Instant::now();
    loop {
        match (s.round)() {
            Round::Fine => {}
            Round::Reported => break,
            Round::Wrong(e) => {
                eprintln!("before the truncation was reported: {e}");
                return 2;
            }
        }
        progress.fetch_add(1, Ordering::SeqCst);
        if ask {
            let _ = (s.broken)();
        }
        if start.elapsed() > Duration::from_secs(20) {
            eprintln!("the truncation was never reported");
            return 3;
        }
    }
    for i in 0..3 {
        match (s.round)() {
            Round::Reported => {}
            Round::Fine => {
                eprintln!("round {i} after the report worked as if intact");
                return 4;
            }
            Round::Wrong(e) => {
                eprintln!("round {i} after the report: {e}");
                return 4;
            }
        }
    }
    if !(s.broken)() {
        eprintln!("is_broken() is false after the report");
        return 5;
    }
    drop(s);
    0
}

/// Creates the object with `make` (the parent keeps it), forks a child that opens it
/// with `open` and uses it, truncates the file to `to` once the child is under way,
/// and requires the child to report the truncation and exit cleanly.
fn survives<O>(
    prefix: &str,
    to: u64,
    ask: bool,
    make: impl FnOnce(&str) -> O,
    open: impl FnOnce(&str) -> Session,
) {
    let name = unique(prefix);
    let obj = make(&name);
    let shared = Shared::new();
    let progress = Shared(shared.0.clone());
    let child_name = name.clone();
    let child = fork(move || use_until_reported(progress.count(), open(&child_name), ask));
    assert!(
        wait_until(Duration::from_secs(20), || shared
            .count()
            .load(Ordering::SeqCst)
            >= 50),
        "the child made no progress"
    );
    truncate(&name, to);
    assert_eq!(
        child.join(WATCHDOG),
        Exit::Code(0),
        "the child using the truncated {prefix} must report it and exit cleanly"
    );
    drop(obj);
    let _ = multiproc::unlink(&name);
}

// ---- one session per kind of object ------------------------------------------------

fn queue_session(name: &str) -> Session {
    let q: Queue<u64> = Queue::open(name).unwrap();
    let q2 = q.clone();
    session(
        move || judge(q.put(7).and_then(|_| q.get()).and_then(|_| q.try_get())).or_empty(),
        move || q2.is_broken(),
    )
}

fn joinable_session(name: &str) -> Session {
    let q: JoinableQueue<u64> = JoinableQueue::open(name).unwrap();
    let q2 = q.clone();
    session(
        move || judge(q.put(7).and_then(|_| q.get()).and_then(|_| q.task_done())),
        move || q2.is_broken(),
    )
}

fn byte_queue_session(name: &str) -> Session {
    let q = ByteQueue::open(name).unwrap();
    let q2 = q.clone();
    session(
        move || judge(q.put(b"hello").and_then(|_| q.get())),
        move || q2.is_broken(),
    )
}

fn spsc_session(name: &str) -> Session {
    let p: SpscQueue<u64> = SpscQueue::open(name, Role::Producer).unwrap();
    let c: SpscQueue<u64> = SpscQueue::open(name, Role::Consumer).unwrap();
    let pc = std::rc::Rc::new(std::cell::RefCell::new((p, c)));
    let pc2 = pc.clone();
    session(
        move || {
            let (p, c) = &mut *pc.borrow_mut();
            judge(p.put(7).and_then(|_| c.get()))
        },
        move || pc2.borrow().0.is_broken(),
    )
}

fn pipe_session(name: &str) -> Session {
    // End B; the parent holds end A and never reads, so sends fill the ring and
    // then block: the truncation reaches a sender that waits for room, too.
    let b = std::rc::Rc::new(std::cell::RefCell::new(Pipe::open(name).unwrap()));
    let b2 = b.clone();
    session(
        move || {
            let mut b = b.borrow_mut();
            judge(
                b.send_bytes(b"ping")
                    .and_then(|_| b.poll(Some(Duration::ZERO))),
            )
        },
        move || b2.borrow().is_broken(),
    )
}

fn lock_session(name: &str) -> Session {
    let l = Lock::open(name).unwrap();
    let l2 = l.clone();
    session(
        move || {
            let r = match l.acquire() {
                Ok(_g) => Round::Fine,
                Err(died) if l.is_broken() => {
                    drop(died.into_inner());
                    Round::Reported
                }
                Err(_) => Round::Wrong("OwnerDied on an intact lock".into()),
            };
            // The timed and non-blocking forms say the same. A truncation may land
            // between acquire and try_acquire (Fine, then Reported); once reported,
            // the lock stays broken.
            let t = match (l.try_acquire(), l.acquire_timeout(Duration::from_millis(1))) {
                (Ok(_), _) => Round::Fine,
                (Err(multiproc::TryLockError::OwnerDied(_)), _) if l.is_broken() => Round::Reported,
                (t, a) => Round::Wrong(format!("try_acquire gave {t:?}, acquire_timeout {a:?}")),
            };
            match (r, t) {
                (Round::Fine, t) => t,
                (Round::Reported, Round::Reported) => Round::Reported,
                (Round::Reported, _) => {
                    Round::Wrong("try_acquire disagrees with acquire after the report".into())
                }
                (wrong, _) => wrong,
            }
        },
        move || l2.is_broken(),
    )
}

fn rlock_session(name: &str) -> Session {
    let l = RLock::open(name).unwrap();
    let l2 = l.clone();
    session(
        move || match l.acquire() {
            Ok(g) => {
                g.leak();
                judge(l.release())
            }
            Err(died) => {
                died.into_inner().leak();
                match l.release() {
                    Err(e) if is_truncation(&e) && l.is_broken() => Round::Reported,
                    r => Round::Wrong(format!("OwnerDied, then release gave {r:?}")),
                }
            }
        },
        move || l2.is_broken(),
    )
}

fn semaphore_session(name: &str) -> Session {
    let s = Semaphore::open(name).unwrap();
    let s2 = s.clone();
    session(
        move || judge(s.acquire().and_then(|_| s.release())),
        move || s2.is_broken(),
    )
}

fn event_session(name: &str) -> Session {
    let e = Event::open(name).unwrap();
    let e2 = e.clone();
    session(
        move || {
            e.set();
            if e.wait_timeout(Duration::ZERO) {
                e.clear();
                Round::Fine
            } else if e.is_broken() {
                e.wait(); // returns: nobody could set it any more
                Round::Reported
            } else {
                Round::Wrong("a set event did not show as set".into())
            }
        },
        move || e2.is_broken(),
    )
}

fn condition_session(name: &str) -> Session {
    let c = Condition::open(name).unwrap();
    let c2 = c.clone();
    session(
        move || match c.acquire() {
            Ok(mut g) => match c.wait_timeout(&mut g, Duration::ZERO) {
                Ok(_) => Round::Fine,
                Err(_) if c.is_broken() => Round::Reported,
                Err(_) => Round::Wrong("wait reported OwnerDied on an intact condition".into()),
            },
            Err(died) if c.is_broken() => {
                let mut g = died.into_inner();
                // An untimed wait must return (nobody can notify it any more).
                match c.wait(&mut g) {
                    Err(_) => Round::Reported,
                    Ok(()) => Round::Wrong("wait on a broken condition returned Ok".into()),
                }
            }
            Err(_) => Round::Wrong("OwnerDied on an intact condition".into()),
        },
        move || c2.is_broken(),
    )
}

fn barrier_session(name: &str) -> Session {
    let b = Barrier::open(name).unwrap();
    let b2 = b.clone();
    session(move || judge(b.wait()), move || b2.is_broken())
}

fn value_session(name: &str) -> Session {
    let v: Value<u64> = Value::open(name).unwrap();
    let v2 = v.clone();
    session(
        move || {
            v.fetch_add(1);
            // Value's operations return no error: is_broken() is how it is seen.
            if v.segment().is_broken() {
                if v.lock().recovered() {
                    Round::Reported
                } else {
                    Round::Wrong("a guard of a broken value does not say recovered".into())
                }
            } else {
                Round::Fine
            }
        },
        move || v2.is_broken(),
    )
}

fn array_session(name: &str) -> Session {
    let a: Array<u64> = Array::open(name).unwrap();
    let a2 = a.clone();
    let mut i = 0usize;
    session(
        move || {
            // Walk every page of the elements.
            i = (i + 509) % a.len();
            let r = judge(a.fetch_add(i, 1).and_then(|_| a.set(i, 5)));
            match (&r, a.get(i)) {
                (Round::Reported, Some(_)) => Round::Wrong("get on a broken array".into()),
                _ => r,
            }
        },
        move || a2.is_broken(),
    )
}

fn segment_session(name: &str) -> Session {
    let s = Segment::open(name).unwrap();
    let s2 = s.clone();
    let mut i = 0usize;
    session(
        move || {
            i = (i + 4096) % s.len();
            // SAFETY: `i + 8 <= len` (len is a multiple of 4096), 8-aligned; atomics only.
            unsafe { (*(s.as_ptr().add(i) as *const AtomicU64)).fetch_add(1, Ordering::SeqCst) };
            // A raw segment has no operations that could report: is_broken() does.
            if s.is_broken() {
                Round::Reported
            } else {
                Round::Fine
            }
        },
        move || s2.is_broken(),
    )
}

trait OrEmpty {
    fn or_empty(self) -> Round;
}
impl OrEmpty for Round {
    /// A concurrent round can find the queue empty; that is not a failure.
    fn or_empty(self) -> Round {
        match self {
            Round::Wrong(e) if e == Error::Empty.to_string() => Round::Fine,
            r => r,
        }
    }
}

/// Runs the survival scenario for one kind with both truncation lengths. `ask` for the
/// small truncation: whether the object lives wholly in the first page (so that only
/// `is_broken()`'s size check can see a truncation that keeps that page).
macro_rules! kind {
    ($zero:ident, $small:ident, $prefix:literal, $small_ask:expr, $make:expr, $open:expr) => {
        #[test]
        fn $zero() {
            survives($prefix, 0, false, $make, $open);
        }
        #[test]
        fn $small() {
            survives($prefix, SMALL, $small_ask, $make, $open);
        }
    };
}

kind!(
    queue_user_survives_truncation_to_zero,
    queue_user_survives_truncation_to_a_few_hundred_bytes,
    "tq",
    false,
    |n| Queue::<u64>::create(n, 4096).unwrap(),
    queue_session
);
kind!(
    joinable_queue_user_survives_truncation_to_zero,
    joinable_queue_user_survives_truncation_to_a_few_hundred_bytes,
    "tjq",
    false,
    |n| JoinableQueue::<u64>::create(n, 4096).unwrap(),
    joinable_session
);
kind!(
    byte_queue_user_survives_truncation_to_zero,
    byte_queue_user_survives_truncation_to_a_few_hundred_bytes,
    "tbq",
    false,
    |n| ByteQueue::create(n, 1024, 64).unwrap(),
    byte_queue_session
);
kind!(
    spsc_queue_user_survives_truncation_to_zero,
    spsc_queue_user_survives_truncation_to_a_few_hundred_bytes,
    "tsq",
    false,
    |n| {
        // The creating handle holds the producer role: persist the name, let go.
        SpscQueue::<u64>::create(n, 4096, Role::Producer)
            .unwrap()
            .persist()
    },
    spsc_session
);
kind!(
    pipe_user_survives_truncation_to_zero,
    pipe_user_survives_truncation_to_a_few_hundred_bytes,
    "tp",
    false,
    |n| Pipe::create(n, 1 << 16).unwrap(),
    pipe_session
);
kind!(
    lock_user_survives_truncation_to_zero,
    lock_user_survives_truncation_to_a_few_hundred_bytes,
    "tl",
    true,
    |n| Lock::create(n).unwrap(),
    lock_session
);
kind!(
    rlock_user_survives_truncation_to_zero,
    rlock_user_survives_truncation_to_a_few_hundred_bytes,
    "trl",
    true,
    |n| RLock::create(n).unwrap(),
    rlock_session
);
kind!(
    semaphore_user_survives_truncation_to_zero,
    semaphore_user_survives_truncation_to_a_few_hundred_bytes,
    "ts",
    true,
    |n| Semaphore::create(n, 1).unwrap(),
    semaphore_session
);
kind!(
    event_user_survives_truncation_to_zero,
    event_user_survives_truncation_to_a_few_hundred_bytes,
    "te",
    true,
    |n| Event::create(n).unwrap(),
    event_session
);
kind!(
    condition_user_survives_truncation_to_zero,
    condition_user_survives_truncation_to_a_few_hundred_bytes,
    "tc",
    true,
    |n| Condition::create(n).unwrap(),
    condition_session
);
kind!(
    barrier_user_survives_truncation_to_zero,
    barrier_user_survives_truncation_to_a_few_hundred_bytes,
    "tb",
    true,
    |n| Barrier::create(n, 1).unwrap(),
    barrier_session
);
kind!(
    value_user_survives_truncation_to_zero,
    value_user_survives_truncation_to_a_few_hundred_bytes,
    "tv",
    true,
    |n| Value::<u64>::create(n, 0).unwrap(),
    value_session
);
kind!(
    array_user_survives_truncation_to_zero,
    array_user_survives_truncation_to_a_few_hundred_bytes,
    "ta",
    false,
    |n| Array::<u64>::create(n, 4096).unwrap(),
    array_session
);
kind!(
    segment_user_survives_truncation_to_zero,
    segment_user_survives_truncation_to_a_few_hundred_bytes,
    "tseg",
    false,
    |n| Segment::create(n, 8 * 4096).unwrap(),
    segment_session
);

// ---- waiters asleep when the file is cut -------------------------------------------

/// A child blocks in `wait` (an untimed wait that nothing will end) on the object
/// `make` created; the parent truncates the file to 0 while it sleeps. `wait` must
/// return, reporting the truncation (true), within a few seconds.
fn sleeper_wakes(
    prefix: &str,
    make: impl FnOnce(&str) -> Box<dyn std::any::Any>,
    wait: impl FnOnce(&str) -> bool,
) {
    let name = unique(prefix);
    let obj = make(&name);
    let shared = Shared::new();
    let started = Shared(shared.0.clone());
    let child_name = name.clone();
    let child = fork(move || {
        let t = Instant::now();
        started.count().store(1, Ordering::SeqCst);
        let reported = wait(&child_name);
        if !reported {
            eprintln!("the wait ended without reporting the truncation");
            return 2;
        }
        if t.elapsed() > Duration::from_secs(10) {
            eprintln!("the wait took {:?} to notice", t.elapsed());
            return 3;
        }
        0
    });
    assert!(wait_until(Duration::from_secs(20), || shared
        .count()
        .load(Ordering::SeqCst)
        == 1));
    // Let it fall asleep in the kernel.
    std::thread::sleep(Duration::from_millis(300));
    truncate(&name, 0);
    assert_eq!(child.join(WATCHDOG), Exit::Code(0));
    drop(obj);
    let _ = multiproc::unlink(&name);
}

#[test]
fn queue_get_asleep_on_an_empty_queue_returns_corrupt_after_truncation() {
    sleeper_wakes(
        "wq",
        |n| Box::new(Queue::<u64>::create(n, 8).unwrap()),
        |n| matches!(Queue::<u64>::open(n).unwrap().get(), Err(e) if is_truncation(&e)),
    );
}

#[test]
fn byte_queue_get_asleep_returns_corrupt_after_truncation() {
    sleeper_wakes(
        "wbq",
        |n| Box::new(ByteQueue::create(n, 8, 64).unwrap()),
        |n| matches!(ByteQueue::open(n).unwrap().get(), Err(e) if is_truncation(&e)),
    );
}

#[test]
fn spsc_get_asleep_returns_corrupt_after_truncation() {
    sleeper_wakes(
        "wsq",
        |n| Box::new(SpscQueue::<u64>::create(n, 8, Role::Producer).unwrap()),
        |n| {
            let mut c = SpscQueue::<u64>::open(n, Role::Consumer).unwrap();
            matches!(c.get(), Err(e) if is_truncation(&e))
        },
    );
}

#[test]
fn pipe_recv_asleep_returns_corrupt_after_truncation() {
    sleeper_wakes(
        "wp",
        |n| Box::new(Pipe::create(n, 4096).unwrap()),
        |n| {
            let mut b = Pipe::open(n).unwrap();
            matches!(b.recv_bytes(), Err(e) if is_truncation(&e))
        },
    );
}

#[test]
fn semaphore_acquire_asleep_returns_corrupt_after_truncation() {
    sleeper_wakes(
        "ws",
        |n| Box::new(Semaphore::create(n, 0).unwrap()),
        |n| matches!(Semaphore::open(n).unwrap().acquire(), Err(e) if is_truncation(&e)),
    );
}

#[test]
fn event_wait_asleep_returns_after_truncation() {
    sleeper_wakes(
        "we",
        |n| Box::new(Event::create(n).unwrap()),
        |n| {
            let e = Event::open(n).unwrap();
            e.wait();
            e.is_broken()
        },
    );
}

#[test]
fn condition_wait_asleep_returns_after_truncation() {
    sleeper_wakes(
        "wc",
        |n| Box::new(Condition::create(n).unwrap()),
        |n| {
            let c = Condition::open(n).unwrap();
            let mut g = c.acquire().unwrap_or_else(|d| d.into_inner());
            c.wait(&mut g).is_err() && c.is_broken()
        },
    );
}

#[test]
fn barrier_wait_asleep_returns_corrupt_after_truncation() {
    sleeper_wakes(
        "wb",
        |n| Box::new(Barrier::create(n, 2).unwrap()),
        |n| matches!(Barrier::open(n).unwrap().wait(), Err(e) if is_truncation(&e)),
    );
}

#[test]
fn lock_acquire_asleep_behind_a_holder_returns_owner_died_after_truncation() {
    // The parent holds the lock (and never lets go); the child waits for it.
    let name = unique("wl");
    let lock = Lock::create(&name).unwrap();
    let g = lock.acquire().unwrap();
    let child_name = name.clone();
    let child = fork(move || {
        let l = Lock::open(&child_name).unwrap();
        let code = match l.acquire() {
            Err(_) if l.is_broken() => 0,
            Err(_) => 2,
            Ok(_) => 3,
        };
        code
    });
    std::thread::sleep(Duration::from_millis(300));
    truncate(&name, 0);
    assert_eq!(child.join(WATCHDOG), Exit::Code(0));
    // The parent's own release touches the lost page too, and survives.
    drop(g);
    assert!(lock.is_broken());
}

// ---- addresses that are not ours, and the opt-out ----------------------------------

/// Maps a file of one page of our own (not a segment), truncates it and touches it.
fn touch_foreign_truncated_mapping() {
    let path = format!("/dev/shm/t-foreign-{}", std::process::id());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.set_len(4096).unwrap();
    let _ = std::fs::remove_file(&path);
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of a 4096-byte file we own.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    f.set_len(0).unwrap();
    println!("touching");
    // SAFETY: the mapping is live; the access faults (the point of the test).
    unsafe { std::ptr::write_volatile(p.cast::<u8>(), 1) };
    println!("survived a foreign SIGBUS");
}

/// Creates a segment, truncates it and touches it: survives with the handler.
fn touch_own_truncated_segment() -> bool {
    let name = unique("own");
    let s = Segment::create(&name, 4096).unwrap();
    truncate(&name, 0);
    multiproc::unlink(&name).unwrap(); // the mapping stays; a killed child leaves nothing
                                       // SAFETY: the mapping is live; the access faults and the handler replaces the page.
    unsafe { std::ptr::write_volatile(s.as_ptr(), 1) };
    s.is_broken()
}

#[test]
fn sigbus_at_a_foreign_address_still_kills_with_sigbus() {
    let child = fork(|| {
        assert!(
            touch_own_truncated_segment(),
            "our own segment first: survived"
        );
        assert!(sigbus::handler_installed());
        touch_foreign_truncated_mapping();
        0
    });
    assert_eq!(child.join(WATCHDOG), Exit::Signal(libc::SIGBUS));
}

static PREVIOUS_HANDLER_RAN: AtomicU64 = AtomicU64::new(0);

extern "C" fn previous_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    PREVIOUS_HANDLER_RAN.store(1, Ordering::SeqCst);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42) };
}

fn install_previous_handler() {
    // SAFETY: all-zero is a valid sigaction; fields set as the kernel expects.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = previous_handler as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: a valid action for SIGBUS.
    let r = unsafe { libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) };
    assert_eq!(r, 0);
}

#[test]
fn a_handler_installed_before_ours_gets_the_foreign_faults_and_not_ours() {
    // As libFuzzer does: a handler is there before the first segment is mapped. A
    // fresh process, so that this mapping is its first.
    if role().as_deref() == Some("chain") {
        install_previous_handler();
        assert!(touch_own_truncated_segment());
        assert_eq!(PREVIOUS_HANDLER_RAN.load(Ordering::SeqCst), 0);
        println!("survived our own");
        touch_foreign_truncated_mapping();
        std::process::exit(7); // not reached: the previous handler exits with 42
    }
    let child = spawn_self(
        "a_handler_installed_before_ours_gets_the_foreign_faults_and_not_ours",
        "chain",
    );
    let (code, out) = wait_self(child, WATCHDOG);
    assert!(out.contains("survived our own"), "{out}");
    assert!(!out.contains("survived a foreign"), "{out}");
    assert_eq!(
        code, 42,
        "the previous handler must get the foreign fault: {out}"
    );
}

#[test]
fn opting_out_leaves_truncation_fatal() {
    let child = fork(|| {
        sigbus::set_handler_enabled(false);
        assert!(!sigbus::handler_installed());
        touch_own_truncated_segment();
        0
    });
    assert_eq!(child.join(WATCHDOG), Exit::Signal(libc::SIGBUS));
}

#[test]
fn the_environment_variable_opts_out_before_the_first_mapping() {
    if role().as_deref() == Some("env-off") {
        std::env::set_var(sigbus::ENV_VAR, "off");
        let name = unique("env");
        let s = Segment::create(&name, 4096).unwrap();
        println!("installed={}", sigbus::handler_installed());
        truncate(&name, 0);
        multiproc::unlink(&name).unwrap();
        println!("touching");
        // SAFETY: the mapping is live; the access faults and, opted out, kills.
        unsafe { std::ptr::write_volatile(s.as_ptr(), 1) };
        println!("survived");
        std::process::exit(0);
    }
    let child = spawn_self(
        "the_environment_variable_opts_out_before_the_first_mapping",
        "env-off",
    );
    let (code, out) = wait_self(child, WATCHDOG);
    assert!(out.contains("installed=false"), "{out}");
    assert!(
        out.contains("touching") && !out.contains("survived"),
        "{out}"
    );
    assert_eq!(code, -1, "killed by a signal: {out}");
}
