//! Named shared-memory segments: create, open, validate, own.
//!
//! A segment is a POSIX shared-memory object (`/dev/shm/mp.<name>`) that starts with a
//! [`HEADER_LEN`]-byte header (magic, layout version, object kind, element-type
//! fingerprint, sizes, init state, creator) followed by the object's data.
//!
//! ## Foreign writers
//! Every byte of a segment may be written at any time by another process, buggy or
//! hostile. This module therefore never forms a reference to non-atomic data in a
//! mapping: the header is copied out with `read_volatile` and checked as a value,
//! and the objects built on segments are made only of atomics
//! ([`SharedState`](crate::raw::SharedState)).

mod describe;
mod header;
mod inspect;
mod lifecycle;
mod object;
mod shared_type;

pub use describe::{describe, Description};
pub(crate) use header::{HeaderImage, INITIALISING, READY};
pub use header::{ObjectKind, TypeInfo, HEADER_LEN, LINE};
pub use inspect::{inspect, Inspection};
#[doc(hidden)]
pub use lifecycle::set_attachment_tracking;
pub use lifecycle::{gc, info, list, ObjectInfo, Status, GC_MIN_AGE};
pub(crate) use object::{Object, ObjectSpec};
pub use shared_type::SharedType;

use crate::sys::clock::{deadline_after, Deadline, Instant};
use crate::sys::{ident, shm, sigbus};
use crate::{Error, Result};
use header::{state_word, EMPTY, LAYOUT_VERSION, MAGIC};
use memmap2::{MmapOptions, MmapRaw};
use std::fmt;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest name accepted.
pub const MAX_NAME_LEN: usize = 200;
/// Largest segment accepted (16 TiB): anything larger is a mistake, not a request.
pub const MAX_SEGMENT_LEN: u64 = 1 << 44;
/// How often a wait without a deadline checks that its segment was not truncated
/// (see [`Segment::is_broken`]).
pub const BROKEN_CHECK_EVERY: Duration = Duration::from_millis(200);
/// How long `open` waits for a creator that is still initialising the object.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(2);
const POSIX_PREFIX: &str = "/mp.";

/// Checks `name` against the naming rules: `[A-Za-z0-9._-]`, 1..=200 bytes, no
/// leading dot.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return bad("names must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("names are at most 200 bytes long");
    }
    if name.starts_with('.') {
        return bad("names must not start with '.'");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: format!("{c:?} is not allowed: use only A-Z, a-z, 0-9, '.', '_' and '-'"),
        });
    }
    Ok(())
}

fn posix_name(name: &str) -> String {
    format!("{POSIX_PREFIX}{name}")
}

/// Removes the object named `name`. Processes that have it open keep using it; new
/// `open`s fail with [`Error::NotFound`].
pub fn unlink(name: &str) -> Result<()> {
    validate_name(name)?;
    shm::unlink(&posix_name(name)).map_err(|e| io_error(name, e))
}

fn io_error(name: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            name: name.to_owned(),
        },
        io::ErrorKind::AlreadyExists => Error::AlreadyExists {
            name: name.to_owned(),
        },
        _ => Error::Io(io::Error::new(e.kind(), format!("'{name}': {e}"))),
    }
}

/// How a segment is created and which segments `open` accepts.
///
/// ## Whose segments `open` accepts
/// `/dev/shm` is writable by every user, so anyone can create a name before you do
/// and wait for you to attach to a segment they can truncate or scribble on. Every
/// `open` (and the open half of `open_or_create`) therefore checks the file it got
/// (`fstat`, on the open descriptor: no race with a rename):
///
/// * its **owner** must be the caller's effective uid, a uid passed to
///   [`trust_owner`](Options::trust_owner), or the file's group a gid passed to
///   [`trust_group`](Options::trust_group) (a file gets its creator's group, and
///   only a member of a group can give a file that group); else
///   [`Error::ForeignOwner`], naming the owner. Root is not trusted implicitly:
///   a root process opening a user's segment must say so, as anyone else;
/// * it must be a **regular file** with **one name** (else [`Error::Corrupt`]): a
///   hard link would make another of your objects answer to this name.
///
/// A segment's permission bits are not judged: they are its trusted owner's choice
/// (`mode(0o666)` makes an object every user may write, on purpose).
#[derive(Clone, Debug)]
pub struct Options {
    mode: u32,
    init_timeout: Duration,
    trusted_owners: Vec<u32>,
    trusted_groups: Vec<u32>,
    /// The element type's stable name, instead of Rust's `type_name`.
    type_name: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: 0o600,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            trusted_owners: Vec::new(),
            trusted_groups: Vec::new(),
            type_name: None,
        }
    }
}

impl Options {
    /// Default options: mode `0600` (private to the user), 2 s init timeout, only the
    /// caller's own segments opened.
    pub fn new() -> Options {
        Options::default()
    }
    /// Permission bits for a created segment (e.g. `0o660` to share with a group),
    /// set exactly: the process umask does not reduce them.
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode & 0o777;
        self
    }
    /// How long `open` waits for a creator still initialising the object.
    pub fn init_timeout(mut self, d: Duration) -> Options {
        self.init_timeout = d;
        self
    }
    /// Also open segments owned by `uid` (see [whose segments `open`
    /// accepts](Options#whose-segments-open-accepts)). May be given several times.
    pub fn trust_owner(mut self, uid: u32) -> Options {
        self.trusted_owners.push(uid);
        self
    }
    /// Also open segments whose file belongs to group `gid` (see [whose segments
    /// `open` accepts](Options#whose-segments-open-accepts)). May be given several
    /// times.
    pub fn trust_group(mut self, gid: u32) -> Options {
        self.trusted_groups.push(gid);
        self
    }

    /// The element type's stable name: `create` records it (with the element's size
    /// and alignment) instead of Rust's `type_name`, and `open` requires it, so
    /// programs that define the element type differently (another struct name,
    /// crate or compiler) agree on it. For `Queue`, `JoinableQueue`, `Value` and
    /// `Array`; other objects have no element type or ignore it. See
    /// [`SharedType`], and
    /// [`shared_type`](Options::shared_type) to take the name from one.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// use multiproc::{Error, Options, Value};
    /// let name = format!("doc-type-name-{}", std::process::id());
    /// let opts = Options::new().type_name("doc.Counter");
    /// let v: Value<u64> = Value::create_with(&name, 7, &opts)?;
    /// assert_eq!(Value::<u64>::open_with(&name, &opts)?.get(), 7);
    /// // Without the name (or with another), it is another type.
    /// assert!(matches!(Value::<u64>::open(&name), Err(Error::WrongType { .. })));
    /// # Ok(()) }
    /// ```
    pub fn type_name(mut self, name: &'static str) -> Options {
        self.type_name = Some(name);
        self
    }
    /// [`type_name`](Options::type_name)`(T::NAME)`.
    pub fn shared_type<T: SharedType>(self) -> Options {
        self.type_name(T::NAME)
    }
    /// The fingerprint of element type `T` under these options.
    pub(crate) fn element_type<T>(&self) -> TypeInfo {
        match self.type_name {
            Some(n) => TypeInfo::named(n, core::mem::size_of::<T>(), core::mem::align_of::<T>()),
            None => TypeInfo::of::<T>(),
        }
    }

    /// Refuses a segment file that is neither the caller's nor trusted, or that is not
    /// a regular file with one name.
    fn check_file(&self, name: &str, file: &File) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata().map_err(|e| io_error(name, e))?;
        let (owner, group, uid) = (m.uid(), m.gid(), shm::effective_uid());
        if owner != uid
            && !self.trusted_owners.contains(&owner)
            && !self.trusted_groups.contains(&group)
        {
            return Err(Error::ForeignOwner {
                name: name.to_owned(),
                owner,
                owner_name: shm::user_name(owner).unwrap_or_default(),
                group,
                uid,
            });
        }
        if !m.file_type().is_file() {
            return Err(Error::corrupt(
                name,
                "not a multiproc object (not a regular file)",
            ));
        }
        if m.nlink() != 1 {
            return Err(Error::corrupt(
                name,
                format!(
                    "its file has {} names (hard links): it may be another object",
                    m.nlink()
                ),
            ));
        }
        Ok(())
    }
}

struct Inner {
    name: String,
    /// The mapping's entry in the SIGBUS handler's table. Declared before `map` so it
    /// is dropped (deregistered) before the mapping is unmapped.
    reg: sigbus::Registration,
    map: MmapRaw,
    /// None for anonymous segments (shared through fork only).
    file: Option<File>,
    data_len: usize,
    /// pid of the creating process, or 0 for an opened handle. Only that process
    /// unlinks: a child that inherited the handle through `fork` has another pid.
    owner_pid: u32,
    persisted: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.owner_pid == 0
            || self.persisted.load(Ordering::Relaxed)
            || self.owner_pid != ident::getpid()
        {
            return;
        }
        // Unlink only if the name still refers to our object (it may have been
        // unlinked and re-created by someone else meanwhile).
        let Some(file) = &self.file else { return };
        let posix = posix_name(&self.name);
        if let (Ok(mine), Some(now)) = (shm::identity_of_file(file), shm::identity_of_name(&posix))
        {
            if mine == now {
                let _ = shm::unlink(&posix);
            }
        }
    }
}

/// A named shared-memory segment of user bytes, or the segment behind any named object.
///
/// `Segment::create` owns the name: dropping the last clone of the creating handle
/// unlinks it (unless [`persist`](Segment::persist)ed). Handles from `open` never
/// unlink, and neither does a creating handle inherited by a forked child.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Segment;
/// let name = format!("doc-seg-{}", std::process::id());
/// let seg = Segment::create(&name, 4096)?;
/// unsafe { seg.as_ptr().write(42) };
/// let other = Segment::open(&name)?;          // any process can do this
/// assert_eq!(unsafe { other.as_ptr().read() }, 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Segment {
    inner: Arc<Inner>,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.inner.name)
            .field("len", &self.inner.data_len)
            .field("owner", &(self.inner.owner_pid != 0))
            .finish()
    }
}

/// What `create` writes into the header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub kind: ObjectKind,
    pub ty: TypeInfo,
    pub params: [u64; 4],
    pub data_len: usize,
    /// Sparse objects (Dict, List): only this many data bytes are backed by memory
    /// at create; the rest of `data_len` is a hole committed later by
    /// [`Segment::commit`]. `None`: all of it.
    pub commit: Option<usize>,
}

impl Segment {
    /// Creates a segment of `len` user bytes (zeroed). `Err(AlreadyExists)` if the name
    /// is taken, `Err(InvalidArgument)` for a length of 0 or over 16 TiB.
    ///
    /// A name left behind by a crashed creator (an orphan: creator gone, not
    /// persisted, held by no live process) is reclaimed and created afresh, for every
    /// kind of object: `AlreadyExists` only while the object is in use, persisted,
    /// another user's, or not understood by this build (see [`gc`]).
    pub fn create(name: &str, len: usize) -> Result<Segment> {
        Segment::create_with(name, len, &Options::default())
    }

    /// [`create`](Segment::create) with explicit [`Options`] (permissions, timeouts).
    pub fn create_with(name: &str, len: usize, opts: &Options) -> Result<Segment> {
        if len == 0 {
            return Err(Error::invalid(format!(
                "segment '{name}' needs a length of at least 1 byte"
            )));
        }
        Segment::create_raw(name, opts, raw_layout(len), |_| Ok(()))
    }

    /// An unnamed segment of `len` zeroed bytes, shared only with children forked
    /// after this call (a `memfd` mapped `MAP_SHARED`). [`name`](Segment::name) is "".
    pub fn anonymous(len: usize) -> Result<Segment> {
        if len == 0 {
            return Err(Error::invalid("an anonymous segment needs at least 1 byte"));
        }
        Segment::anonymous_raw(raw_layout(len), |_| Ok(()))
    }

    /// An anonymous segment holding an object described by `layout`.
    pub(crate) fn anonymous_raw(
        layout: Layout,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<Segment> {
        let total = total_len("an anonymous segment", layout.data_len)?;
        // A memfd mapped MAP_SHARED (memmap2's `map_anon` is MAP_PRIVATE: a forked
        // child would get a copy-on-write copy, not shared memory).
        let file = shm::anonymous()?;
        file.set_len(total)?;
        let map = MmapOptions::new().len(total as usize).map_raw(&file)?;
        let seg = Segment {
            inner: Arc::new(Inner {
                name: String::new(),
                // SAFETY: `map` is ours and outlives `reg` (declared before it in
                // Inner, so dropped first); segments are only accessed through raw
                // pointers and atomics, which zero pages serve as well.
                reg: unsafe { sigbus::register(map.as_mut_ptr(), map.len()) },
                map,
                file: None,
                data_len: layout.data_len,
                owner_pid: 0,
                persisted: AtomicBool::new(false),
            }),
        };
        init(&seg)?;
        Ok(seg)
    }

    /// Opens an existing segment created with [`Segment::create`].
    pub fn open(name: &str) -> Result<Segment> {
        Segment::open_with(name, &Options::default())
    }

    /// [`open`](Segment::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Segment> {
        Segment::open_raw(name, opts, ObjectKind::Segment, TypeInfo::NONE, |_| Ok(()))
    }

    /// Opens `name` if it exists with `len` bytes, or creates it with `len` bytes if
    /// it does not exist. `Err(Mismatch)` if it exists with another length (it is left
    /// alone); `Err(InvalidArgument)` for a length of 0, whether or not it exists.
    pub fn open_or_create(name: &str, len: usize) -> Result<Segment> {
        Segment::open_or_create_with(name, len, &Options::default())
    }

    /// [`open_or_create`](Segment::open_or_create) with explicit [`Options`] (the mode
    /// of a created segment, the owners trusted when opening one).
    pub fn open_or_create_with(name: &str, len: usize, opts: &Options) -> Result<Segment> {
        if len == 0 {
            // As create says, before looking at what exists.
            return Segment::create_with(name, len, opts);
        }
        open_or_create(
            || Segment::create_with(name, len, opts),
            || {
                let seg = Segment::open_with(name, opts)?;
                same_shape(
                    name,
                    ObjectKind::Segment,
                    &[param("length", seg.len(), len)],
                )?;
                Ok(seg)
            },
        )
    }

    /// The name the segment was created or opened with.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Test helper: cuts this segment's shared-memory object to `len` bytes, as any
    /// process with write access to it could; the mapping stays as it was.
    #[cfg(test)]
    pub(crate) fn cut_object(&self, len: u64) {
        crate::sys::shm::open(&posix_name(self.name()))
            .and_then(|f| f.set_len(len))
            .expect("cut the segment's object");
    }

    /// Number of user bytes (the header excluded).
    pub fn len(&self) -> usize {
        self.inner.data_len
    }

    /// Always false: segments hold at least one byte.
    pub fn is_empty(&self) -> bool {
        self.inner.data_len == 0
    }

    /// Pointer to the first user byte, aligned to 128. Valid for [`len`](Segment::len)
    /// bytes while any clone of this handle lives.
    ///
    /// Other processes may write these bytes at any time: access them with atomics or
    /// volatile reads, and never form a `&mut` to them.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: HEADER_LEN < mapping length, checked at create/open.
        unsafe { self.inner.map.as_mut_ptr().add(HEADER_LEN) }
    }

    /// Keeps the name after the creating handle drops; `unlink` removes it later.
    /// Also recorded in the object's header, so that [`gc`] keeps it once its creator
    /// is gone.
    pub fn persist(&self) {
        self.inner.persisted.store(true, Ordering::Relaxed);
        // SAFETY: the mapping holds at least HEADER_LEN bytes and is page-aligned.
        unsafe { lifecycle::mark_persisted(self.inner.map.as_mut_ptr()) };
    }

    /// True if dropping the last clone of this handle will unlink the name.
    pub fn owns_name(&self) -> bool {
        self.inner.owner_pid == ident::getpid() && !self.inner.persisted.load(Ordering::Relaxed)
    }

    /// Backs `len` data bytes at `offset` with memory (`posix_fallocate`), so a full
    /// `/dev/shm` is this error rather than a SIGBUS at first touch. Used by the
    /// sparse objects (Dict, List) as they grow.
    pub(crate) fn commit(&self, offset: usize, len: usize) -> io::Result<()> {
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.inner.data_len);
        if end.is_none() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        match &self.inner.file {
            Some(f) => reserve_range(f, (HEADER_LEN + offset) as u64, len as u64).map(|_| ()),
            None => Ok(()),
        }
    }

    /// True once another process truncated the segment's file under this mapping.
    ///
    /// Set when this process touched a page the truncation took away (the `SIGBUS`
    /// handler of [`crate::sigbus`] then maps zero pages there instead of
    /// letting the process die), or when this call finds the file shorter than the
    /// mapping (it asks the kernel for the file's size: not for a hot loop). A
    /// truncation that keeps every page this process touched is not seen until then.
    /// Once broken, a segment stays broken: the object's operations that return a
    /// `Result` return [`Error::Corrupt`], and its memory is process-private zeroes
    /// no other process sees. Re-create the object to recover.
    pub fn is_broken(&self) -> bool {
        if self.broken() {
            return true;
        }
        let truncated = self
            .inner
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.len() < self.inner.map.len() as u64);
        if truncated {
            self.inner.reg.slot().mark_broken();
        }
        truncated
    }

    /// The broken flag alone: one relaxed load, for fast paths (see [`is_broken`](Segment::is_broken)).
    #[inline]
    pub(crate) fn broken(&self) -> bool {
        self.inner.reg.slot().is_broken()
    }

    /// Where [`broken`](Segment::broken) reads its flag: a handle that keeps it reads
    /// the flag without going through the segment (the slot lives for the process).
    #[inline]
    pub(crate) fn broken_flag(&self) -> &'static crate::sys::sigbus::Slot {
        self.inner.reg.slot()
    }

    /// `r`, unless the segment is broken: then [`Error::Corrupt`] saying so. Operations
    /// pass their result through this, so a broken segment never hands back data read
    /// from its replacement zero pages. A `Corrupt`, `Closed` or `Broken` result also
    /// checks the file's size (those are rare, terminal answers, so the system call
    /// costs nothing that matters): a truncation that kept the pages touched so far
    /// still zeroed the state past the new end, and the error should say so.
    #[inline]
    pub(crate) fn intact<T>(&self, r: Result<T>) -> Result<T> {
        let terminal = matches!(
            r,
            Err(Error::Corrupt { .. } | Error::Closed | Error::Broken)
        );
        if self.broken() || (terminal && self.is_broken()) {
            return Err(truncated_error(&self.inner.name));
        }
        r
    }

    /// [`intact`](Segment::intact) plus the file-size check of
    /// [`is_broken`](Segment::is_broken): for slow paths (between the slices of a
    /// blocking wait).
    pub(crate) fn check_intact(&self) -> Result<()> {
        if self.is_broken() {
            return Err(truncated_error(&self.inner.name));
        }
        Ok(())
    }

    /// Runs `wait` until `deadline`. An unbounded wait (`None`) runs in slices of
    /// [`BROKEN_CHECK_EVERY`], checking between them that the segment was not
    /// truncated: a waiter asleep on a futex word of a lost page is woken by nobody,
    /// so without slices it would sleep forever. `timed_out` tells whether a slice's
    /// result is its running out.
    ///
    /// With `try_first`, the first attempt has a deadline that has already passed:
    /// a call that needs no waiting (the common case for queues) then reads no clock,
    /// so the slices cost nothing on the fast path.
    pub(crate) fn sliced<X>(
        &self,
        deadline: Deadline,
        try_first: bool,
        mut wait: impl FnMut(Deadline) -> X,
        timed_out: impl Fn(&X) -> bool,
    ) -> Result<X> {
        if deadline.is_some() {
            return Ok(wait(deadline));
        }
        if try_first {
            let r = wait(Some(Instant::EPOCH));
            if !timed_out(&r) {
                return Ok(r);
            }
        }
        loop {
            let r = wait(deadline_after(BROKEN_CHECK_EVERY));
            if !timed_out(&r) {
                return Ok(r);
            }
            self.check_intact()?;
        }
    }

    /// A copy of the header (for diagnostics and kind-specific validation).
    #[allow(dead_code)] // kind-specific re-validation
    pub(crate) fn header(&self) -> HeaderImage {
        // SAFETY: the mapping is at least HEADER_LEN bytes and 8-aligned; a volatile
        // read tolerates concurrent foreign writes (the result is validated, not trusted).
        unsafe { read_header(self.inner.map.as_mut_ptr()) }
    }

    /// Creates `name` holding an object described by `layout`; `init` runs on the
    /// zeroed data before any opener can see it.
    pub(crate) fn create_raw(
        name: &str,
        opts: &Options,
        layout: Layout,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<Segment> {
        validate_name(name)?;
        let total = total_len(&format!("'{name}'"), layout.data_len)?;
        let posix = posix_name(name);
        let file = lifecycle::create_attached(name, &posix, opts.mode)?;
        // From here on, failure must unlink what we created.
        let result = (move || {
            let backed = layout
                .commit
                .map_or(total, |c| (HEADER_LEN + c).min(total as usize) as u64);
            let sized = reserve(&file, backed).map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    Error::NoSpace {
                        name: name.to_owned(),
                        needed: backed,
                        available: shm::free_space().unwrap_or(0),
                    }
                } else {
                    io_error(name, e)
                }
            })?;
            if !sized || backed < total {
                file.set_len(total).map_err(|e| io_error(name, e))?;
            }
            let map = MmapOptions::new()
                .len(total as usize)
                .map_raw(&file)
                .map_err(|e| io_error(name, e))?;
            let base = map.as_mut_ptr();
            let me = ident::current();
            let process = ident::current_process();
            let seg = Segment {
                inner: Arc::new(Inner {
                    name: name.to_owned(),
                    // SAFETY: `map` is ours and outlives `reg` (declared before it in
                    // Inner, so dropped first); segments are only accessed through raw
                    // pointers and atomics, which zero pages serve as well.
                    reg: unsafe { sigbus::register(map.as_mut_ptr(), map.len()) },
                    map,
                    file: Some(file),
                    data_len: layout.data_len,
                    owner_pid: ident::getpid(),
                    persisted: AtomicBool::new(false),
                }),
            };
            let mut img = HeaderImage {
                magic: MAGIC,
                version: LAYOUT_VERSION,
                kind: layout.kind as u32,
                state: EMPTY,
                creator_tid: me.tid,
                creator_start: me.start,
                total_len: total,
                data_offset: HEADER_LEN as u64,
                data_len: layout.data_len as u64,
                type_size: layout.ty.size,
                type_align: layout.ty.align,
                type_hash: layout.ty.hash,
                params: layout.params,
                flags: 0,
                type_name_len: 0,
                type_name: [0; 88],
                creator_pid: process.tid,
                reserved: 0,
                creator_pstart: process.start,
                created_ns: lifecycle::now_ns(),
            };
            let tn = layout.ty.name.as_bytes();
            let n = tn.len().min(img.type_name.len());
            img.type_name[..n].copy_from_slice(&tn[..n]);
            img.type_name_len = n as u64;
            // SAFETY: the mapping is `total >= HEADER_LEN` bytes and page-aligned;
            // nobody else can have it open in a valid state yet (state is EMPTY).
            unsafe {
                std::ptr::write_volatile(base.cast::<HeaderImage>(), img);
                // SYNC(seg-init): INITIALISING publishes the creator's identity.
                state_word(base).store(INITIALISING, Ordering::Release);
            }
            init(&seg)?;
            // SAFETY: as above.
            // SYNC(seg-init): READY publishes the header and the initialised object.
            unsafe { state_word(base).store(READY, Ordering::Release) };
            Ok(seg)
        })();
        if result.is_err() {
            let _ = shm::unlink(&posix);
        }
        result
    }

    /// Opens `name`, waiting (bounded) for its creator to finish, and validates the
    /// header against `kind` and `ty` (unless `ty` is [`TypeInfo::NONE`]); `check`
    /// validates the kind-specific parameters.
    pub(crate) fn open_raw(
        name: &str,
        opts: &Options,
        kind: ObjectKind,
        ty: TypeInfo,
        check: impl FnOnce(&HeaderImage) -> Result<()>,
    ) -> Result<Segment> {
        validate_name(name)?;
        let posix = posix_name(name);
        let file = lifecycle::open_attached(name, &posix, opts.init_timeout, |f| {
            opts.check_file(name, f)
        })?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(50);
        let img;
        let (map, reg) = loop {
            let size = file.metadata()?.len();
            if size >= HEADER_LEN as u64 {
                if size > MAX_SEGMENT_LEN {
                    return Err(Error::corrupt(name, format!("file is {size} bytes long")));
                }
                let map = MmapOptions::new()
                    .len(size as usize)
                    .map_raw(&file)
                    .map_err(|e| io_error(name, e))?;
                // Registered before the first read: the file may be truncated already.
                // SAFETY: as in `anonymous_raw`; `reg` is declared after `map`, so it
                // is dropped (deregistered) first.
                let reg = unsafe { sigbus::register(map.as_mut_ptr(), map.len()) };
                let base = map.as_mut_ptr();
                // SAFETY: the mapping holds at least HEADER_LEN bytes.
                let state = unsafe { state_word(base) }.load(Ordering::Acquire);
                // SAFETY: as above; the copy is validated before use.
                let h = unsafe { read_header(base) };
                // While the state is EMPTY the creator may not have written the magic
                // yet (it writes the header, then INITIALISING): judge it only after.
                if state != EMPTY && h.magic != MAGIC {
                    return Err(Error::corrupt(
                        name,
                        "not a multiproc object (bad magic number)",
                    ));
                }
                match state {
                    READY => {
                        img = h;
                        break (map, reg);
                    }
                    INITIALISING => {
                        let creator = ident::Identity {
                            tid: h.creator_tid,
                            start: h.creator_start,
                        };
                        if ident::is_dead(creator) {
                            return Err(Error::corrupt(
                                name,
                                format!(
                                    "its creator (thread {}) died while initialising it",
                                    h.creator_tid
                                ),
                            ));
                        }
                    }
                    EMPTY => {}
                    s => {
                        return Err(Error::corrupt(name, format!("unknown init state {s}")));
                    }
                }
            }
            if started.elapsed() >= opts.init_timeout {
                return Err(Error::corrupt(
                    name,
                    format!(
                        "it was not initialised within {:?}: its creator probably died creating it",
                        opts.init_timeout
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        };
        let size = map.len() as u64;
        if reg.slot().is_broken() {
            return Err(truncated_error(name));
        }
        if img.version != LAYOUT_VERSION {
            return Err(Error::corrupt(
                name,
                format!(
                    "layout version {} (this build of multiproc reads version {LAYOUT_VERSION})",
                    img.version
                ),
            ));
        }
        if img.kind != kind as u32 {
            return Err(Error::WrongKind {
                name: name.to_owned(),
                expected: kind.name().to_owned(),
                found: ObjectKind::from_u32(img.kind).map_or_else(
                    || format!("unknown kind {}", img.kind),
                    |k| k.name().to_owned(),
                ),
            });
        }
        if img.total_len != size
            || img.data_offset != HEADER_LEN as u64
            || img.data_len > size - HEADER_LEN as u64
        {
            return Err(Error::corrupt(
                name,
                format!(
                    "header says {} bytes (data {} at {}) but the file has {size}",
                    img.total_len, img.data_len, img.data_offset
                ),
            ));
        }
        if ty != TypeInfo::NONE
            && (img.type_size != ty.size || img.type_align != ty.align || img.type_hash != ty.hash)
        {
            return Err(Error::WrongType {
                name: name.to_owned(),
                expected: ty.name.to_owned(),
                found: format!(
                    "{} (size {}, align {})",
                    img.type_name(),
                    img.type_size,
                    img.type_align
                ),
            });
        }
        check(&img)?;
        Ok(Segment {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                reg,
                map,
                file: Some(file),
                data_len: img.data_len as usize,
                owner_pid: 0,
                persisted: AtomicBool::new(false),
            }),
        })
    }
}

/// The error every operation on a truncated segment returns.
pub(crate) fn truncated_error(name: &str) -> Error {
    Error::corrupt(
        name,
        "another process truncated its file, so its contents are lost; re-create the object",
    )
}

/// Header plus `data_len`, refused (naming `what`) past [`MAX_SEGMENT_LEN`].
fn total_len(what: &str, data_len: usize) -> Result<u64> {
    (HEADER_LEN as u64)
        .checked_add(data_len as u64)
        .filter(|&t| t <= MAX_SEGMENT_LEN)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{what} would need {data_len} bytes; the limit is {MAX_SEGMENT_LEN}"
            ))
        })
}

fn raw_layout(len: usize) -> Layout {
    Layout {
        kind: ObjectKind::Segment,
        ty: TypeInfo::NONE,
        params: [0; 4],
        data_len: len,
        commit: None,
    }
}

/// Reserves the file's pages now, so that a full `/dev/shm` is an error here rather
/// than a SIGBUS at first touch. `Ok(true)`: the file now has `len` bytes (fallocate
/// extends it: no separate `ftruncate` needed); `Ok(false)`: the filesystem cannot
/// preallocate, and the caller must set the length itself.
fn reserve(file: &File, len: u64) -> io::Result<bool> {
    reserve_range(file, 0, len)
}

/// [`reserve`] for the `len` bytes at `offset`.
fn reserve_range(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `file` is an open descriptor; posix_fallocate only touches its extent.
    let r = unsafe {
        libc::posix_fallocate(file.as_raw_fd(), offset as libc::off_t, len as libc::off_t)
    };
    match r {
        0 => Ok(true),
        // Some filesystems cannot preallocate; the mapping still works.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(false),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Copies the header out of a mapping.
///
/// # Safety
/// `base` points at a live mapping of at least [`HEADER_LEN`] bytes, 8-aligned.
unsafe fn read_header(base: *mut u8) -> HeaderImage {
    // SAFETY: per the contract; HeaderImage is Pod, so any bytes form a valid value.
    unsafe { std::ptr::read_volatile(base.cast::<HeaderImage>()) }
}

/// One creation parameter as `open_or_create` compares it: what it is, the existing
/// object's value and the requested one, ready for a message.
#[derive(Debug)]
pub(crate) struct Param {
    what: &'static str,
    existing: String,
    requested: String,
}

/// A [`Param`] named `what`.
pub(crate) fn param(
    what: &'static str,
    existing: impl fmt::Display,
    requested: impl fmt::Display,
) -> Param {
    Param {
        what,
        existing: existing.to_string(),
        requested: requested.to_string(),
    }
}

/// The rule of every `open_or_create`: an existing object is returned only when its
/// creation parameters are the ones asked for (after the rounding `create` applies),
/// so that a caller never gets, silently, a queue of 8 slots when it asked for 1024.
/// Otherwise `Err(Mismatch)` naming each parameter that differs, both ways. State is
/// not a parameter (a `Value`'s initial value, a semaphore's current count).
pub(crate) fn same_shape(name: &str, kind: ObjectKind, params: &[Param]) -> Result<()> {
    let differ: Vec<&Param> = params
        .iter()
        .filter(|p| p.existing != p.requested)
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    let list = |value: fn(&Param) -> &str| {
        differ
            .iter()
            .map(|p| format!("{} {}", p.what, value(p)))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    Err(Error::Mismatch {
        name: name.to_owned(),
        kind: kind.name().to_owned(),
        existing: list(|p| &p.existing),
        requested: list(|p| &p.requested),
    })
}

/// `open`, else `create`, else `open` again: the shared logic of every `open_or_create`.
/// `open` checks the parameters of what it finds with [`same_shape`].
pub(crate) fn open_or_create<T>(
    create: impl Fn() -> Result<T>,
    open: impl Fn() -> Result<T>,
) -> Result<T> {
    for _ in 0..100 {
        match open() {
            Err(Error::NotFound { .. }) => {}
            r => return r,
        }
        match create() {
            Err(Error::AlreadyExists { .. }) => {}
            r => return r,
        }
    }
    Err(Error::Io(io::Error::other(
        "open_or_create kept racing with another process creating and unlinking the name",
    )))
}

/// Copies the raw bytes (header included) of the object named `name`: for tests,
/// fuzzing and forensics.
pub fn read_image(name: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    validate_name(name)?;
    let mut f = shm::open(&posix_name(name)).map_err(|e| io_error(name, e))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Creates `name` holding exactly `bytes` (header included), with no validation: for
/// tests and fuzzing, to see what `open` makes of arbitrary images.
pub fn write_image(name: &str, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    validate_name(name)?;
    let mut f = shm::create(&posix_name(name), 0o600).map_err(|e| io_error(name, e))?;
    f.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_name("jobs.queue-1_a").is_ok());
        for bad in ["", ".hidden", "a/b", "sp ace", "ü", &"x".repeat(201)] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"x".repeat(200)).is_ok());
    }
}
