//! [`Event`]: a named event flag.

use crate::raw::RawEvent;
use crate::segment::{self, Object, ObjectKind, Options};
use crate::sys::clock::deadline_after;
use crate::Result;
use core::fmt;
use std::time::Duration;

/// A flag shared by name between processes, as Python's `multiprocessing.Event`:
/// [`wait`](Event::wait) blocks until some process [`set`](Event::set)s it.
///
/// `set` wakes every waiter, and a waiter returns even if the flag was cleared again
/// right after (a set-then-clear pulse is never missed). `set` with nobody waiting,
/// `clear` and `is_set` are single atomic operations; a waiter spins briefly before
/// it sleeps. A process that dies never leaves waiters hung: they wait for the next
/// `set`, and their timeouts hold.
///
/// If another process truncates the event's file, this process survives (see
/// [`is_broken`](Event::is_broken)): `wait` then returns and `wait_timeout` is false.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Event;
/// use std::time::Duration;
/// let go = Event::create(&format!("doc-event-{}", std::process::id()))?;
/// assert!(!go.wait_timeout(Duration::from_millis(1)));
/// go.set();
/// go.wait(); // returns at once
/// assert!(go.is_set());
/// go.clear();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Event {
    obj: Object<RawEvent>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// Creates a new, clear event named `name`.
    ///
    /// A name left behind by a crashed creator (an orphan: creator gone, not
    /// persisted, held by no live process) is reclaimed and created afresh, so a
    /// restarted service just creates; see [`gc`](crate::gc).
    pub fn create(name: &str) -> Result<Event> {
        Event::create_with(name, &Options::default())
    }
    /// [`create`](Event::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, opts: &Options) -> Result<Event> {
        let obj = Object::create_plain(name, opts, ObjectKind::Event)?;
        Ok(Event { obj })
    }
    /// Opens the event `name`.
    pub fn open(name: &str) -> Result<Event> {
        Event::open_with(name, &Options::default())
    }
    /// [`open`](Event::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Event> {
        let obj = Object::open_plain(name, opts, ObjectKind::Event)?;
        Ok(Event { obj })
    }
    /// Opens `name`, creating it (clear) if it does not exist. An Event has no
    /// creation parameters, so any existing Event of that name is returned, in
    /// whatever state it is; `Err(WrongKind)` if the name holds another kind of object.
    pub fn open_or_create(name: &str) -> Result<Event> {
        Event::open_or_create_with(name, &Options::default())
    }

    /// [`open_or_create`](Event::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, opts: &Options) -> Result<Event> {
        segment::open_or_create(
            || Event::create_with(name, opts),
            || Event::open_with(name, opts),
        )
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        self.obj.name()
    }
    /// Keeps the name after this (creating) handle drops.
    pub fn persist(&self) {
        self.obj.persist()
    }

    /// Sets the flag and wakes every waiter.
    #[inline]
    pub fn set(&self) {
        self.obj.raw().set()
    }
    /// Clears the flag.
    #[inline]
    pub fn clear(&self) {
        self.obj.raw().clear()
    }
    /// True while the flag is set (a snapshot).
    #[inline]
    pub fn is_set(&self) -> bool {
        self.obj.raw().is_set()
    }
    /// Blocks until the flag is set (or was set since the call began).
    ///
    /// Also returns once another process truncated the event's segment
    /// ([`is_broken`](Event::is_broken)): nobody could set it any more.
    #[inline]
    pub fn wait(&self) {
        let _ = self
            .obj
            .segment()
            .sliced(None, true, |d| self.obj.raw().wait(d), |set| !set);
    }
    /// As [`wait`](Event::wait) for at most `timeout`: true if the flag was set,
    /// false if the time ran out. Always false once the segment is broken.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let set = self.obj.raw().wait(deadline_after(timeout));
        set && !self.obj.broken()
    }
    /// True once another process truncated the event's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)). `set`, `clear` and
    /// `is_set` then act on a zero page private to this process, which no other
    /// process sees; `wait` returns and `wait_timeout` returns false.
    pub fn is_broken(&self) -> bool {
        self.obj.is_broken()
    }
    /// The raw event inside the segment.
    pub fn raw(&self) -> &RawEvent {
        self.obj.raw()
    }
}
