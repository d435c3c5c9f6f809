//! The crate's one error type.

use core::fmt;

/// Everything that can go wrong in this crate.
///
/// Messages name the object and say what to do about it, e.g.
/// `queue 'jobs' holds u32 but was opened as Queue<u64>`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No object of that name exists (nobody created it, or it was unlinked).
    NotFound {
        /// The name that was looked up.
        name: String,
    },
    /// `create` found the name taken; use `open`, `open_or_create`, or `unlink` it first.
    AlreadyExists {
        /// The name that was taken.
        name: String,
    },
    /// The name breaks the naming rules (`[A-Za-z0-9._-]`, 1..=200 bytes, no leading dot).
    InvalidName {
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The name holds another kind of object (e.g. a `Lock` opened as a `Queue`).
    WrongKind {
        /// The object's name.
        name: String,
        /// The kind the caller asked for.
        expected: String,
        /// The kind the segment holds.
        found: String,
    },
    /// The object holds another element type than the one asked for.
    WrongType {
        /// The object's name.
        name: String,
        /// The type the caller asked for.
        expected: String,
        /// The type the segment was created with.
        found: String,
    },
    /// The segment's bytes are not a valid object (bad header, out-of-range index, a
    /// creator that died while initialising it, ...).
    Corrupt {
        /// The object's name (empty for an anonymous region).
        name: String,
        /// What was wrong.
        detail: String,
    },
    /// A timed wait ran out.
    Timeout,
    /// A non-blocking get found nothing.
    Empty,
    /// A non-blocking put found no room.
    Full,
    /// The object was closed (a queue after `close`, a pipe whose peer is gone).
    Closed,
    /// A barrier was broken (by `abort`, a timeout, or a party that died).
    Broken,
    /// The caller does not own what it tried to release.
    NotOwner,
    /// A message is longer than the object allows.
    TooLarge {
        /// The message length.
        len: usize,
        /// The largest length allowed.
        max: usize,
    },
    /// An argument is out of range (a size of 0, an absurd capacity, ...).
    InvalidArgument {
        /// What was wrong.
        detail: String,
    },
    /// A pool task panicked or returned an error.
    TaskFailed {
        /// The panic message.
        message: String,
    },
    /// A worker process died while running a task.
    WorkerDied {
        /// The dead worker's pid.
        pid: u32,
    },
    /// An operating-system call failed.
    Io(std::io::Error),
    /// The object belongs to another user, whom the caller did not trust: someone
    /// may have created the name first to make us attach to a segment they can
    /// write. Trust that user with
    /// [`Options::trust_owner`](crate::Options::trust_owner) (or the file's group with
    /// [`Options::trust_group`](crate::Options::trust_group)) and an `open_with`.
    ForeignOwner {
        /// The object's name.
        name: String,
        /// The uid that owns the segment file.
        owner: u32,
        /// That uid's user name ("" if it has none).
        owner_name: String,
        /// The file's group id.
        group: u32,
        /// The caller's effective uid.
        uid: u32,
    },
    /// `/dev/shm` has no room for the object being created (nothing was left behind).
    NoSpace {
        /// The object's name.
        name: String,
        /// Bytes the object needs (its header included).
        needed: u64,
        /// Bytes free in `/dev/shm` just after the attempt (0 if they could not be read).
        available: u64,
    },
    /// `open_or_create` found the name holding an object created with other parameters
    /// (capacity, parties, length, ...) than it was asked for. The existing object is
    /// left alone: `open` it to use it as it is, or unlink it to create it anew.
    Mismatch {
        /// The object's name.
        name: String,
        /// Its kind (`Queue`, `Barrier`, ...).
        kind: String,
        /// The parameters that differ, as the existing object has them
        /// (e.g. `capacity 8`).
        existing: String,
        /// The same parameters as they were asked for (e.g. `capacity 1024`).
        requested: String,
    },
    /// A part of an object that one process may hold at a time (a pipe end, an
    /// `SpscQueue` role) is held by another live process.
    Busy {
        /// The object's name (empty for an anonymous object).
        name: String,
        /// The process id of the live holder.
        holder: u32,
    },
}

/// `Result<T, multiproc::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { name } => write!(
                f,
                "no object named '{name}' exists: create it first (or check the name)"
            ),
            Error::AlreadyExists { name } => write!(
                f,
                "an object named '{name}' already exists: open it, use open_or_create, or unlink it first"
            ),
            Error::InvalidName { name, reason } => {
                write!(f, "invalid object name {name:?}: {reason}")
            }
            Error::WrongKind {
                name,
                expected,
                found,
            } => write!(
                f,
                "'{name}' is {} {found}, not {} {expected}: open it with the matching type",
                article(found),
                article(expected)
            ),
            Error::WrongType {
                name,
                expected,
                found,
            } => write!(
                f,
                "'{name}' holds {found} but was opened as {expected}: open it with the element type it was created with"
            ),
            Error::Corrupt { name, detail } if name.is_empty() => {
                write!(f, "shared region is corrupt: {detail}")
            }
            Error::Corrupt { name, detail } => write!(
                f,
                "'{name}' is corrupt: {detail}; unlink it and create it again"
            ),
            Error::Timeout => f.write_str("timed out"),
            Error::Empty => f.write_str("empty"),
            Error::Full => f.write_str("full"),
            Error::Closed => f.write_str("closed"),
            Error::Broken => f.write_str("barrier is broken: reset() it before reuse"),
            Error::NotOwner => f.write_str("the caller does not own this lock"),
            Error::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the maximum of {max} bytes")
            }
            Error::InvalidArgument { detail } => write!(f, "invalid argument: {detail}"),
            Error::TaskFailed { message } => write!(f, "task failed: {message}"),
            Error::WorkerDied { pid } => {
                write!(f, "worker process {pid} died while running the task")
            }
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::ForeignOwner {
                name,
                owner,
                owner_name,
                group,
                uid,
            } => {
                write!(f, "'{name}' belongs to uid {owner}")?;
                if !owner_name.is_empty() {
                    write!(f, " ({owner_name})")?;
                }
                write!(
                    f,
                    ", not to you (uid {uid}); pass Options::trust_owner({owner}) (or \
                     trust_group({group})) to open it anyway, or unlink it if you did not \
                     expect it"
                )
            }
            Error::NoSpace {
                name,
                needed,
                available,
            } => write!(
                f,
                "'{name}' needs {needed} bytes but /dev/shm has only {available} bytes free: \
                 unlink objects no longer needed or enlarge /dev/shm"
            ),
            Error::Mismatch {
                name,
                kind,
                existing,
                requested,
            } => write!(
                f,
                "{kind} '{name}' already exists with {existing}, not {requested} as asked: \
                 open it to use it as it is, or unlink it and create it anew"
            ),
            Error::Busy { name, holder } => {
                if name.is_empty() {
                    f.write_str("an anonymous pipe or queue is busy")?;
                } else {
                    write!(f, "'{name}' is busy")?;
                }
                write!(
                    f,
                    ": the pipe end or queue role asked for is held by live process {holder}, and \
                     one process holds it at a time; it passes on when that process exits (a \
                     queue role also when its handle drops)"
                )
            }
        }
    }
}

/// The article a kind name takes: "an" before a vowel and before the names read
/// letter by letter (an RLock, an SpscQueue), else "a": `'x' is an Event, not a Lock`.
fn article(word: &str) -> &'static str {
    let spelled = word.starts_with("RLock") || word.starts_with("Spsc");
    match word.as_bytes().first() {
        Some(c) if spelled || b"AEIOUaeiou".contains(c) => "an",
        _ => "a",
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl Error {
    pub(crate) fn corrupt(name: &str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            name: name.into(),
            detail: detail.into(),
        }
    }
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            detail: detail.into(),
        }
    }
}
