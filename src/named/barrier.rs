//! [`Barrier`]: a named, reusable barrier that breaks when a party dies.

use super::common::named_handle;
use crate::raw::barrier::{BarrierError, MAX_PARTIES};
use crate::raw::lock::DEFAULT_PROBE;
use crate::raw::RawBarrier;
use crate::segment::{self, HeaderImage, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::sync::current_identity;
use crate::sys::clock::{deadline_after, Deadline};
use crate::{Error, Result};
use std::sync::Arc;
use std::time::Duration;

/// A barrier action: run by the last party to arrive, before the others go on.
type Action = Arc<dyn Fn() + Send + Sync>;

/// A barrier shared by name between processes, as Python's
/// `multiprocessing.Barrier`: [`wait`](Barrier::wait) blocks until `parties`
/// threads (in any processes) have called it, then releases them all, and the
/// barrier is ready for the next round.
///
/// `wait` returns the caller's arrival index, `0..parties` (the last to arrive gets
/// `parties - 1`), so that exactly one party can be picked for some work. The
/// barrier *breaks* — every waiter, and every later `wait` until
/// [`reset`](Barrier::reset), gets `Err(Broken)` — when:
/// * someone calls [`abort`](Barrier::abort);
/// * a [`wait_timeout`](Barrier::wait_timeout) runs out (the caller whose timeout
///   ran out gets `Err(Broken)` too, as in Python);
/// * **a party dies while it waits**: waiters find it within about one probe
///   interval (10 ms by default, see [`with_probe_interval`](Barrier::with_probe_interval)).
///
/// A party that dies *before* it calls `wait` cannot be told from a slow one; use
/// `wait_timeout` to bound that case. A barrier has at most
/// [`Barrier::MAX_PARTIES`] (64) parties.
///
/// **Python's `Barrier(parties, action, timeout)`**: [`with_action`](Barrier::with_action)
/// and [`with_timeout`](Barrier::with_timeout) set both on a handle. The action is
/// code, so it is local to each process: it is part of the handle (clones and
/// forked children share it; a process that opens the barrier sets its own, usually
/// the same). "Runs in one party" means: in the thread of the *last* party to
/// arrive (the one whose `wait` returns `parties - 1`), if its handle has an action,
/// before any party is released — the others see everything it wrote. If it panics,
/// the barrier breaks: that `wait` returns `Err(Broken)` (the panic is caught), and
/// so does every other party's, until [`reset`](Barrier::reset). If the last
/// party's process dies in the action, the waiters break the barrier within the
/// probe interval; a waiter's timeout that runs out during the action breaks it too
/// (in Python the action holds the lock, so timeouts wait for it).
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Barrier;
/// let b = Barrier::create(&format!("doc-barrier-{}", std::process::id()), 2)?;
/// let b2 = b.clone();
/// let t = std::thread::spawn(move || b2.wait());
/// let mine = b.wait()?;
/// let theirs = t.join().unwrap()?;
/// assert_eq!(mine + theirs, 1); // indices 0 and 1
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Barrier {
    obj: Object<RawBarrier>,
    parties: u32,
    probe: Duration,
    /// Run by this handle's caller when it is the last to arrive.
    action: Option<Action>,
    /// Used by [`wait`](Barrier::wait) (Python's `timeout=`); None: no limit.
    timeout: Option<Duration>,
}

named_handle! {
    impl[] Barrier: "barrier", obj;
    debug[] "Barrier" {
        "parties" => |b| b.parties,
        "n_waiting" => |b| b.n_waiting(),
        "broken" => |b| b.is_broken(),
        "action" => |b| b.action.is_some(),
        "timeout" => |b| b.timeout,
    };
    /// Creates a barrier named `name` for `parties` parties (`1..=64`, else
    /// `Err(InvalidArgument)`).
    create(parties: u32);
    /// Opens the barrier `name` (with the party count it was created with).
    open();
    /// Opens `name` if it exists for `parties` parties, or creates it for `parties`
    /// if it does not exist. `Err(Mismatch)` if it exists for another number of
    /// parties (it is left alone); `Err(InvalidArgument)` for a count `create`
    /// refuses, whether or not it exists.
    open_or_create(parties: u32);
    /// How often waiters check that the other waiting parties are alive: the bound
    /// on how long a dead party can go unnoticed (default 10 ms, at least 100 µs).
    with_probe_interval => probe;
}

fn check_parties(parties: u64) -> core::result::Result<u32, String> {
    if (1..=u64::from(MAX_PARTIES)).contains(&parties) {
        Ok(parties as u32)
    } else {
        Err(format!(
            "a barrier needs 1 to {MAX_PARTIES} parties, not {parties}"
        ))
    }
}

impl Barrier {
    /// The most parties a barrier may have.
    pub const MAX_PARTIES: u32 = MAX_PARTIES;

    /// [`create`](Barrier::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, parties: u32, opts: &Options) -> Result<Barrier> {
        let parties = check_parties(u64::from(parties))
            .map_err(|e| Error::invalid(format!("barrier '{name}': {e}")))?;
        let spec = ObjectSpec {
            kind: ObjectKind::Barrier,
            ty: TypeInfo::NONE,
            params: [u64::from(parties), 0, 0, 0],
            trailing: 0,
        };
        let obj = Object::create(name, opts, spec, |_, _| Ok(()))?;
        Ok(Barrier::from_obj(obj))
    }
    /// [`open`](Barrier::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Barrier> {
        let obj = Object::open(
            name,
            opts,
            ObjectKind::Barrier,
            TypeInfo::NONE,
            |img: &HeaderImage| {
                check_parties(img.params[0]).map_err(|e| Error::corrupt(name, e))?;
                Ok(0)
            },
        )?;
        Ok(Barrier::from_obj(obj))
    }
    /// [`open_or_create`](Barrier::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, parties: u32, opts: &Options) -> Result<Barrier> {
        check_parties(u64::from(parties))
            .map_err(|e| Error::invalid(format!("barrier '{name}': {e}")))?;
        segment::open_or_create(
            || Barrier::create_with(name, parties, opts),
            || {
                let b = Barrier::open_with(name, opts)?;
                segment::same_shape(
                    name,
                    ObjectKind::Barrier,
                    &[segment::param("parties", b.parties(), parties)],
                )?;
                Ok(b)
            },
        )
    }
    fn from_obj(obj: Object<RawBarrier>) -> Barrier {
        // Validated on create/open; read from the private copy of the parameters.
        let parties = obj.params()[0] as u32;
        Barrier {
            obj,
            parties,
            probe: DEFAULT_PROBE,
            action: None,
            timeout: None,
        }
    }

    /// Python's `action=`: `action` runs in the last party to arrive at each round
    /// (if that party waits through this handle or a clone of it), before any party is
    /// released. A panic in it breaks the barrier. See the type's docs for what this
    /// means across processes.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// use multiproc::Barrier;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// let rounds = Arc::new(AtomicU32::new(0));
    /// let r = rounds.clone();
    /// let b = Barrier::create(&format!("doc-barrier-action-{}", std::process::id()), 2)?
    ///     .with_action(move || {
    ///         r.fetch_add(1, Ordering::SeqCst);
    ///     });
    /// let b2 = b.clone();
    /// let t = std::thread::spawn(move || b2.wait());
    /// b.wait()?;
    /// t.join().unwrap()?;
    /// assert_eq!(rounds.load(Ordering::SeqCst), 1); // once per round, by the last party
    /// # Ok(()) }
    /// ```
    pub fn with_action(mut self, action: impl Fn() + Send + Sync + 'static) -> Barrier {
        self.action = Some(Arc::new(action));
        self
    }

    /// Python's `timeout=`: the default timeout of [`wait`](Barrier::wait) on this
    /// handle (and its clones); [`wait_timeout`](Barrier::wait_timeout) overrides it.
    /// As with `wait_timeout`, running out breaks the barrier.
    pub fn with_timeout(mut self, timeout: Duration) -> Barrier {
        self.timeout = Some(timeout);
        self
    }

    /// The default timeout of [`wait`](Barrier::wait), if one was set.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn wait_until(&self, deadline: Deadline) -> Result<u32> {
        self.wait_until_unless(deadline, &|| false)
    }

    /// `wait_until`, also giving up when `interrupt` says so at a probe.
    fn wait_until_unless(&self, deadline: Deadline, interrupt: &dyn Fn() -> bool) -> Result<u32> {
        let raw = self.obj.raw();
        let me = current_identity();
        // A probe also checks for truncation: a waiter on a lost page is woken by
        // nobody, and its zero-page replacement never sees the round end.
        let interrupted = core::cell::Cell::new(false);
        let stop = || {
            self.obj.is_broken() || {
                interrupted.set(interrupt());
                interrupted.get()
            }
        };
        let r = match &self.action {
            None => raw.wait_unless(me, self.parties, deadline, self.probe, None, &stop),
            Some(action) => {
                let mut run =
                    || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| action())).is_ok();
                raw.wait_unless(
                    me,
                    self.parties,
                    deadline,
                    self.probe,
                    Some(&mut run),
                    &stop,
                )
            }
        };
        if interrupted.get() && r.is_err() {
            // The caller gave up while counted in: the round can never complete
            // without it, so it breaks, as if the caller had died.
            self.abort();
            return Err(Error::Broken);
        }
        self.obj.intact(r.map_err(|e| match e {
            BarrierError::Broken | BarrierError::Releasing => Error::Broken,
            BarrierError::Corrupt => Error::corrupt(
                self.name(),
                format!(
                    "its arrival count is not below its {} parties",
                    self.parties
                ),
            ),
        }))
    }

    /// Waits until all parties have arrived; returns the caller's arrival index
    /// (`0..parties`). `Err(Broken)` if the barrier is or gets broken. With a
    /// default timeout ([`with_timeout`](Barrier::with_timeout)), as
    /// [`wait_timeout`](Barrier::wait_timeout) with it.
    pub fn wait(&self) -> Result<u32> {
        self.wait_until(self.timeout.and_then(deadline_after))
    }

    /// As [`wait`](Barrier::wait) for at most `timeout`; when it runs out the barrier
    /// breaks, for the caller (`Err(Broken)`) and every other waiter alike.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_until(deadline_after(timeout))
    }

    /// As [`wait`](Barrier::wait) (with `timeout`, or the default timeout if `None`),
    /// calling `interrupt` at every probe (see
    /// [`with_probe_interval`](Barrier::with_probe_interval)) while it waits: when it
    /// returns true the caller gives up and the barrier breaks for every party (as when
    /// a party dies: the round cannot complete without it); the result is then
    /// `Err(Broken)`. For callers that must react to something else while they wait —
    /// the Python bindings check for Ctrl-C.
    pub fn wait_interruptible(
        &self,
        timeout: Option<Duration>,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<u32> {
        let deadline = timeout.or(self.timeout).and_then(deadline_after);
        self.wait_until_unless(deadline, interrupt)
    }

    /// Breaks the barrier: current and later waiters get `Err(Broken)` until
    /// [`reset`](Barrier::reset).
    pub fn abort(&self) {
        self.obj.raw().abort()
    }

    /// Returns the barrier to its initial state; parties still waiting get
    /// `Err(Broken)`.
    pub fn reset(&self) {
        self.obj.raw().reset()
    }

    /// How many parties must call `wait` to release it.
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// Parties waiting in the current round (0 while broken).
    pub fn n_waiting(&self) -> u32 {
        self.obj.raw().n_waiting()
    }

    /// True while the barrier is broken, and for good once another process
    /// truncated its segment (see [`Segment::is_broken`](crate::Segment::is_broken)):
    /// `wait` then returns `Err(Corrupt)`.
    pub fn is_broken(&self) -> bool {
        self.obj.raw().is_broken() || self.obj.is_broken()
    }

    /// The raw barrier inside the segment.
    pub fn raw(&self) -> &RawBarrier {
        self.obj.raw()
    }
}
