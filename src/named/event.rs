//! [`Event`]: a named event flag.

use super::common::named_handle;
use crate::raw::RawEvent;
use crate::segment::{Object, ObjectKind};
use crate::sys::clock::deadline_after;
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

named_handle! {
    impl[] Event: "event", obj;
    debug[] "Event" { "set" => |e| e.is_set() };
    /// Creates a new, clear event named `name`.
    plain(ObjectKind::Event) => from_obj;
    /// True once another process truncated the event's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)). `set`, `clear` and
    /// `is_set` then act on a zero page private to this process, which no other
    /// process sees; `wait` returns and `wait_timeout` returns false.
    is_broken;
}

impl Event {
    fn from_obj(obj: Object<RawEvent>) -> Event {
        Event { obj }
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
    /// The raw event inside the segment.
    pub fn raw(&self) -> &RawEvent {
        self.obj.raw()
    }
}
