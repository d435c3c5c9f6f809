//! Who holds an object, and what is left behind: attachment locks, orphans, `list`
//! and `gc`.
//!
//! ## Attachment
//! Every handle of a named segment holds an OFD read lock on its file
//! ([`sys::ofd`](crate::sys::ofd)) for as long as it maps the segment: taken right
//! after `shm_open` by `create` and `open` (and so by deserialized handles), shared
//! with children that inherit the descriptor through `fork`, dropped by the kernel
//! when the last descriptor of that open file description closes — at `drop`, at
//! exit, or when the process is killed. An object is **in use** while a write lock
//! on the same range would conflict.
//!
//! ## Orphans
//! An object is an **orphan** when nobody uses it, it was not
//! [`persist`](crate::Segment::persist)ed (a header flag), and its creator is gone:
//! * a complete header (READY, or INITIALISING) names its creating process, which has
//!   exited (judged immune to PID reuse, see [`sys::ident`](crate::sys::ident));
//! * a file whose header was never written (creator killed between `shm_open` and
//!   its first store) is an orphan once it is older than
//!   [`DEFAULT_INIT_TIMEOUT`](super::DEFAULT_INIT_TIMEOUT), the time after which
//!   `open` calls it corrupt anyway.
//!
//! A segment whose header is not ours (bad magic, another layout version, an unknown
//! kind, sizes that disagree with the file) is never an orphan: `gc` removes only
//! what it understands; `multiproc rm` removes the rest on request.
//!
//! ## Reclaiming without racing `open`
//! [`reclaim`] takes the write lock, re-checks the header *under it*, re-checks that
//! the name still names the locked file, then unlinks. `open` takes its read lock and
//! then re-checks that the name still names the file it locked, retrying otherwise.
//! Either `open`'s read lock comes first (the write lock fails: the object is in
//! use and stays), or the write lock does (`open`'s read lock fails until the name is
//! gone, and its re-check then sends it to `shm_open` again, which reports
//! `NotFound` or finds a new object). No opener ever keeps a mapping of a file
//! unlinked by `gc`. `create` takes its read lock at once and re-checks the same way.
//!
//! ## Whose objects
//! [`list`] shows every object in `/dev/shm` (other users' too, as far as their
//! permissions let us read them). [`gc`] and `create`'s reclaim touch only objects
//! owned by the caller's effective uid — root included: cleaning another user's
//! leftovers is an explicit `multiproc rm`. (`/dev/shm` is sticky: only a file's
//! owner or root may unlink it anyway.)
//!
//! One window is left, as in every unlink-by-name: between `reclaim`'s last re-check
//! and its `shm_unlink`, a third process that *explicitly* unlinks the name and
//! creates a new object under it would lose that new object's name.

use super::header::{FLAG_PERSISTED, LAYOUT_VERSION, MAGIC};
use super::{io_error, posix_name, validate_name, HeaderImage, ObjectKind, DEFAULT_INIT_TIMEOUT};
use super::{EMPTY, HEADER_LEN, INITIALISING, READY};
use crate::sys::{ident, ofd, shm};
use crate::{Error, Result};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Where `shm_open` keeps its files (glibc opens `/dev/shm/<name>`).
const SHM_DIR: &str = "/dev/shm";

/// Off only in the benchmark that measures what attachment tracking costs.
static TRACKING: AtomicBool = AtomicBool::new(true);

/// Turns attachment tracking (the read lock and the name re-check of every
/// `create`/`open`) off or on for this process. **For benchmarks only**: objects
/// created or opened while it is off look unused to `gc` and may be reclaimed under
/// their users.
#[doc(hidden)]
pub fn set_attachment_tracking(on: bool) {
    TRACKING.store(on, Ordering::Relaxed);
}

fn tracking() -> bool {
    TRACKING.load(Ordering::Relaxed)
}

/// The state of a segment's header as [`list`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// A complete, valid object.
    Ready,
    /// Its creator is still writing it (or died doing so: see `creator_alive`).
    Initialising,
    /// Not a valid object; `detail` says why.
    Corrupt {
        /// What is wrong with it.
        detail: String,
    },
    /// We may not read it (another user's object).
    Unreadable {
        /// Why.
        detail: String,
    },
}

impl Status {
    /// `"ready"`, `"initialising"`, `"corrupt"` or `"unreadable"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::Initialising => "initialising",
            Status::Corrupt { .. } => "corrupt",
            Status::Unreadable { .. } => "unreadable",
        }
    }
}

/// One object in `/dev/shm`, as [`list`] reports it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's name (as passed to `create`/`open`).
    pub name: String,
    /// Its kind, if the header names a known one.
    pub kind: Option<ObjectKind>,
    /// The element type it was created for (`"-"` for none or unknown).
    pub element_type: String,
    /// Size of its file in bytes (header included).
    pub bytes: u64,
    /// The uid owning its file.
    pub owner_uid: u32,
    /// The creating process (for images from before it was recorded, the creating
    /// thread); 0 when unknown.
    pub creator_pid: u32,
    /// True while the creating process is alive.
    pub creator_alive: bool,
    /// True while some process (this one included) has it open.
    pub in_use: bool,
    /// True if it was `persist()`ed: `gc` keeps it after its creator is gone.
    pub persisted: bool,
    /// True if it is an orphan: creator gone, not persisted, not in use (see
    /// [`gc`]).
    pub orphan: bool,
    /// When it was created (the header's record, else the file's change time).
    pub created_at: Option<SystemTime>,
    /// Whether its header is valid.
    pub status: Status,
    /// A copy of the header, when the file has one.
    pub(crate) header: Option<HeaderImage>,
    /// The file's change time (`st_ctime`): when it was created or last written with
    /// `write`/`ftruncate`/`chmod`.
    pub(crate) changed: Option<SystemTime>,
}

impl ObjectInfo {
    /// The kind's name, or `"?"` when the header names none we know.
    pub fn kind_name(&self) -> &'static str {
        self.kind.map_or("?", ObjectKind::name)
    }

    /// True if [`gc`] would remove it now: an orphan, owned by the caller's effective
    /// uid, whose file is at least [`GC_MIN_AGE`] old.
    pub fn collectable(&self) -> bool {
        self.orphan
            && self.owner_uid == shm::effective_uid()
            && self
                .changed
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age >= GC_MIN_AGE)
    }
}

/// [`gc`] leaves alone files changed less than this long ago, orphans or not: a
/// segment image written by hand a moment ago ([`write_image`](super::write_image),
/// a test, a restore) is not taken before its writer gets to open it. A crashed
/// creator's leftover is collected by the next `gc` after that; `create` over an
/// orphan does not wait.
pub const GC_MIN_AGE: Duration = Duration::from_secs(1);

/// Every multiproc object in `/dev/shm`, sorted by name. An object that cannot be
/// read or is corrupt is listed as such ([`ObjectInfo::status`]), never an error for
/// the whole list.
pub fn list() -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    let mut seen = Liveness::default();
    let dir = match std::fs::read_dir(SHM_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(Error::Io(io::Error::new(
                e.kind(),
                format!("{SHM_DIR}: {e}"),
            )))
        }
    };
    for entry in dir {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_prefix("mp.")) else {
            continue;
        };
        if validate_name(name).is_err() {
            continue;
        }
        match info_with(name, &mut seen) {
            Ok(i) => out.push(i),
            Err(Error::NotFound { .. }) => {} // unlinked meanwhile
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What [`list`] says about the one object `name`: `Err(NotFound)` if it does not
/// exist.
pub fn info(name: &str) -> Result<ObjectInfo> {
    info_with(name, &mut Liveness::default())
}

/// Creators already judged during one [`list`]: many objects share a creator, and
/// each judgement reads `/proc`.
#[derive(Default)]
struct Liveness(std::collections::HashMap<ident::Identity, bool>);

impl Liveness {
    fn is_dead(&mut self, who: ident::Identity) -> bool {
        *self.0.entry(who).or_insert_with(|| ident::is_dead(who))
    }
}

fn info_with(name: &str, seen: &mut Liveness) -> Result<ObjectInfo> {
    validate_name(name)?;
    let path = format!("{SHM_DIR}{}", posix_name(name));
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                name: name.to_owned(),
            })
        }
        Err(e) => {
            let m = std::fs::symlink_metadata(&path).map_err(|e| io_error(name, e))?;
            return Ok(ObjectInfo {
                name: name.to_owned(),
                kind: None,
                element_type: "-".to_owned(),
                bytes: m.len(),
                owner_uid: m.uid(),
                creator_pid: 0,
                creator_alive: false,
                in_use: false,
                persisted: false,
                orphan: false,
                created_at: m.created().ok(),
                status: Status::Unreadable {
                    detail: e.to_string(),
                },
                header: None,
                changed: None,
            });
        }
    };
    let in_use = ofd::holder(&file).map_err(|e| io_error(name, e))? != ofd::Holder::Nobody;
    judge(name, &file, in_use, seen)
}

/// Reads `file`'s header and judges it (the `orphan` verdict included); `in_use` is what the caller learnt from the
/// attachment lock.
fn judge(name: &str, file: &File, in_use: bool, seen: &mut Liveness) -> Result<ObjectInfo> {
    let m = file.metadata().map_err(|e| io_error(name, e))?;
    let ctime = SystemTime::UNIX_EPOCH.checked_add(Duration::new(
        m.ctime().max(0) as u64,
        m.ctime_nsec().clamp(0, 999_999_999) as u32,
    ));
    let size = m.len();
    let mut info = ObjectInfo {
        name: name.to_owned(),
        kind: None,
        element_type: "-".to_owned(),
        bytes: size,
        owner_uid: m.uid(),
        creator_pid: 0,
        creator_alive: false,
        in_use,
        persisted: false,
        orphan: false,
        created_at: ctime,
        status: Status::Ready,
        header: None,
        changed: ctime,
    };
    if !m.file_type().is_file() {
        info.status = Status::Corrupt {
            detail: "not a regular file".to_owned(),
        };
        return Ok(info);
    }
    let old = ctime
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= DEFAULT_INIT_TIMEOUT);
    let mut buf = [0u8; HEADER_LEN];
    let img: Option<HeaderImage> = if size >= HEADER_LEN as u64 {
        file.read_exact_at(&mut buf, 0)
            .ok()
            .map(|()| bytemuck::pod_read_unaligned(&buf[..core::mem::size_of::<HeaderImage>()]))
    } else {
        None
    };
    let Some(h) = img.filter(|h| h.state != EMPTY) else {
        // Never initialised: its creator died before writing the header (or is
        // still about to, and then holds its read lock).
        if old {
            info.status = Status::Corrupt {
                detail: "never initialised: its creator died creating it".to_owned(),
            };
            info.orphan = !in_use;
        } else {
            info.status = Status::Initialising;
        }
        info.header = img;
        return Ok(info);
    };
    info.header = Some(h);
    if h.magic != MAGIC {
        info.status = Status::Corrupt {
            detail: "not a multiproc object (bad magic number)".to_owned(),
        };
        return Ok(info);
    }
    if h.version != LAYOUT_VERSION {
        info.status = Status::Corrupt {
            detail: format!(
                "layout version {} (this build reads version {LAYOUT_VERSION})",
                h.version
            ),
        };
        return Ok(info);
    }
    info.kind = ObjectKind::from_u32(h.kind);
    info.element_type = if h.type_size == 0 {
        "-".to_owned()
    } else {
        h.type_name().to_owned()
    };
    info.persisted = h.flags & FLAG_PERSISTED != 0;
    let creator = if h.creator_pid != 0 {
        ident::Identity {
            tid: h.creator_pid,
            start: h.creator_pstart,
        }
    } else {
        ident::Identity {
            tid: h.creator_tid,
            start: h.creator_start,
        }
    };
    info.creator_pid = creator.tid;
    info.creator_alive = !seen.is_dead(creator);
    if h.created_ns != 0 {
        info.created_at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(h.created_ns));
    }
    let problem = if info.kind.is_none() {
        Some(format!("unknown kind {}", h.kind))
    } else if h.total_len != size
        || h.data_offset != HEADER_LEN as u64
        || h.data_len > size - HEADER_LEN as u64
    {
        Some(format!(
            "header says {} bytes (data {} at {}) but the file has {size}",
            h.total_len, h.data_len, h.data_offset
        ))
    } else {
        match h.state {
            READY => None,
            INITIALISING if info.creator_alive => {
                info.status = Status::Initialising;
                None
            }
            INITIALISING => Some("its creator died while initialising it".to_owned()),
            s => Some(format!("unknown init state {s}")),
        }
    };
    // Only a complete header, or one whose creator died writing it, is understood
    // well enough to be removed.
    let understood = problem.is_none()
        || (h.state == INITIALISING
            && !info.creator_alive
            && info.kind.is_some()
            && h.total_len == size
            && h.data_offset == HEADER_LEN as u64);
    if let Some(detail) = problem {
        info.status = Status::Corrupt { detail };
    }
    info.orphan = understood && !in_use && !info.persisted && !info.creator_alive;
    Ok(info)
}

/// What [`reclaim`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reclaim {
    /// It was an orphan and its name is gone.
    Removed,
    /// Some process uses it.
    InUse,
    /// Another process holds the write lock (a `gc` or a `create` reclaiming it).
    Busy,
    /// Not an orphan (creator alive, persisted, not ours, or not understood).
    Kept,
    /// The name no longer exists (or names another file than the one we locked).
    Gone,
}

/// Unlinks `name` if it is an orphan: write lock, re-check under it, unlink (see the
/// [module docs](self)).
pub(crate) fn reclaim(name: &str) -> Result<Reclaim> {
    reclaim_with(name, &mut Liveness::default())
}

/// [`reclaim`], reusing the creators judged so far (only "dead" verdicts decide a
/// removal, and a dead process stays dead, so a cached verdict is as good as a new one).
fn reclaim_with(name: &str, seen: &mut Liveness) -> Result<Reclaim> {
    let posix = posix_name(name);
    let file = match shm::open(&posix) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Reclaim::Gone),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(Reclaim::Kept),
        Err(e) => return Err(io_error(name, e)),
    };
    let m = file.metadata().map_err(|e| io_error(name, e))?;
    if m.uid() != shm::effective_uid() || !m.file_type().is_file() || m.nlink() != 1 {
        return Ok(Reclaim::Kept);
    }
    if !ofd::lock_exclusive(&file).map_err(|e| io_error(name, e))? {
        return Ok(match ofd::holder(&file).map_err(|e| io_error(name, e))? {
            ofd::Holder::Writer => Reclaim::Busy,
            _ => Reclaim::InUse,
        });
    }
    // Under the write lock nobody can attach: judge it now, for good.
    if !judge(name, &file, false, seen)?.orphan {
        return Ok(Reclaim::Kept);
    }
    if shm::identity_of_name(&posix) != Some(shm::identity_of_file(&file)?) {
        return Ok(Reclaim::Gone);
    }
    match shm::unlink(&posix) {
        Ok(()) => Ok(Reclaim::Removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Reclaim::Gone),
        Err(e) => Err(io_error(name, e)),
    }
    // `file` closes here, dropping the write lock.
}

/// Unlinks every orphan owned by the caller's effective uid and returns their names,
/// sorted. An orphan is an object whose creator is gone, that was not
/// [`persist`](crate::Segment::persist)ed, and that no live process holds open; an
/// object in use is never removed, and an `open` racing with `gc` either gets the
/// object (and keeps it alive) or `Err(NotFound)`. Objects of other users, segments
/// whose header this build does not understand, and files changed less than
/// [`GC_MIN_AGE`] ago are left alone (see [`list`] and the `multiproc rm` command).
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// for name in multiproc::gc()? {
///     println!("removed the orphan {name}");
/// }
/// # Ok(()) }
/// ```
pub fn gc() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut seen = Liveness::default();
    for info in list()? {
        if info.collectable() && reclaim_with(&info.name, &mut seen)? == Reclaim::Removed {
            removed.push(info.name);
        }
    }
    Ok(removed)
}

/// Takes the attachment (read) lock on a freshly opened or created `file` and checks
/// that `posix` still names it. `Ok(false)`: the name was unlinked (by `gc`, or
/// explicitly) before we attached — the caller must look the name up again.
pub(crate) fn attach(name: &str, posix: &str, file: &File, timeout: Duration) -> Result<bool> {
    if !tracking() {
        return Ok(true);
    }
    let started = Instant::now();
    let mut pause = Duration::from_micros(20);
    // A write lock is held only while a reclaimer re-checks and unlinks: brief.
    while !ofd::lock_shared(file).map_err(|e| io_error(name, e))? {
        if started.elapsed() >= timeout {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "'{name}': another process has held its reclaim lock for {timeout:?} \
                     (a stopped `gc`?); try again, or find it with `fuser /dev/shm{posix}`"
                ),
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    Ok(shm::identity_of_name(posix) == Some(shm::identity_of_file(file)?))
}

/// Creates `posix` exclusively, attached; reclaims an orphan of that name first (a
/// crashed creator's leftover). `Err(AlreadyExists)` while the name is in use,
/// persisted, another user's or not understood.
pub(crate) fn create_attached(name: &str, posix: &str, mode: u32) -> Result<File> {
    for _ in 0..1000 {
        match shm::create(posix, mode) {
            Ok(file) => {
                if attach(name, posix, &file, DEFAULT_INIT_TIMEOUT)? {
                    return Ok(file);
                }
                // Unlinked under us before we attached: create afresh.
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tracking() => {
                match reclaim(name)? {
                    Reclaim::Removed | Reclaim::Gone => {}
                    Reclaim::Busy => std::thread::sleep(Duration::from_micros(200)),
                    Reclaim::InUse | Reclaim::Kept => {
                        return Err(Error::AlreadyExists {
                            name: name.to_owned(),
                        })
                    }
                }
            }
            Err(e) => return Err(io_error(name, e)),
        }
    }
    Err(Error::Io(io::Error::other(format!(
        "creating '{name}' kept racing with other processes creating and removing it"
    ))))
}

/// Opens `posix` attached (see [`attach`]), then has `check` judge the file.
pub(crate) fn open_attached(
    name: &str,
    posix: &str,
    timeout: Duration,
    check: impl Fn(&File) -> Result<()>,
) -> Result<File> {
    for _ in 0..1000 {
        let file = shm::open(posix).map_err(|e| io_error(name, e))?;
        // Attach before judging the file: until we hold the read lock a `gc` may
        // unlink it, and `check` would then see a file with no name (a hard-link
        // count of 0) and call it corrupt.
        if attach(name, posix, &file, timeout)? {
            check(&file)?;
            return Ok(file);
        }
    }
    Err(Error::Io(io::Error::other(format!(
        "opening '{name}' kept racing with other processes creating and removing it"
    ))))
}

/// Records `persist()` in the header, so that `gc` keeps the object once its creator
/// is gone.
///
/// # Safety
/// `base` points at a live mapping of at least [`HEADER_LEN`] bytes, 8-aligned.
pub(crate) unsafe fn mark_persisted(base: *mut u8) {
    // SAFETY: per the contract.
    unsafe { super::header::flags_word(base) }.fetch_or(FLAG_PERSISTED, Ordering::Relaxed);
}

/// `SystemTime::now()` in nanoseconds since the epoch (0 if the clock is before it).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
