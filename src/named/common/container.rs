//! What [`Dict`](crate::Dict) and [`List`](crate::List) share: a sparse named segment
//! holding a [`RawHeap`], optimistic reads, locked crash-consistent writes, and the
//! mapping of heap errors to [`Error`]s that name the object.

use super::hold::Held;
use crate::raw::heap::{Heap, HeapError, RawHeap, Txn};
use crate::raw::lock::DEFAULT_PROBE;
use crate::segment::{self, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Bytes a container may grow to when created without a limit: 64 GiB of address
/// space per mapping, backed only as the container fills.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;

/// A sparse heap segment.
pub(crate) struct Container {
    obj: Object<RawHeap>,
    /// How often a writer waiting for the lock checks that its holder is alive (set
    /// by the handle's `with_probe_interval`).
    pub(crate) probe: Duration,
    /// How long an operation waits for the writer lock; `None`: as long as it takes.
    lock_timeout: Option<Duration>,
    what: &'static str,
}

impl Clone for Container {
    fn clone(&self) -> Self {
        Container {
            obj: self.obj.clone(),
            probe: self.probe,
            lock_timeout: self.lock_timeout,
            what: self.what,
        }
    }
}

impl Container {
    pub fn create(
        name: &str,
        kind: ObjectKind,
        ty: TypeInfo,
        max_bytes: u64,
        opts: &Options,
    ) -> Result<Container> {
        let what = kind.name();
        let arena = crate::raw::heap::ARENA;
        let span = max_bytes
            .checked_add(arena)
            .filter(|&s| s <= segment::MAX_SEGMENT_LEN / 2)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{what} '{name}': a limit of {max_bytes} bytes is larger than a segment can be"
                ))
            })?;
        let spec = ObjectSpec {
            kind,
            ty,
            params: [max_bytes, 0, 0, 0],
            trailing: (span - arena) as usize,
        };
        let obj = Object::create_sparse(name, opts, spec, |_, _| Ok(()))?;
        Ok(Container {
            obj,
            probe: DEFAULT_PROBE,
            lock_timeout: None,
            what,
        })
    }

    pub fn open(name: &str, kind: ObjectKind, ty: TypeInfo, opts: &Options) -> Result<Container> {
        let what = kind.name();
        let obj = Object::open(name, opts, kind, ty, |img| {
            let max = img.params[0];
            if max > segment::MAX_SEGMENT_LEN {
                return Err(Error::corrupt(name, format!("a byte limit of {max}")));
            }
            Ok(max as usize)
        })?;
        Ok(Container {
            obj,
            probe: DEFAULT_PROBE,
            lock_timeout: None,
            what,
        })
    }

    pub fn name(&self) -> &str {
        self.obj.name()
    }

    pub fn persist(&self) {
        self.obj.persist()
    }

    pub fn segment(&self) -> &segment::Segment {
        self.obj.segment()
    }

    #[inline]
    pub fn heap(&self) -> Heap<'_> {
        let seg = self.obj.segment();
        // SAFETY: the data region is 128-aligned (after the 256-byte header of a
        // page-aligned mapping) and `seg.len()` bytes long; it lives as long as `self`.
        match unsafe { Heap::new(seg.as_ptr(), seg.len()) } {
            Some(h) => h,
            None => unreachable!("the data region holds the heap header (checked at create/open)"),
        }
    }

    /// The byte limit the container was created with.
    pub fn max_bytes(&self) -> u64 {
        self.obj.params()[0]
    }

    /// The error for `e`, naming this object.
    pub fn error(&self, e: HeapError) -> Error {
        let (what, name) = (self.what, self.name());
        match e {
            HeapError::Corrupt(d) => Error::corrupt(name, d),
            HeapError::Full { needed, limit } => Error::invalid(format!(
                "{what} '{name}' is full: it needs {needed} more bytes but its limit is {limit} \
                 bytes; remove items, or create it with a larger limit (create_with_limit)"
            )),
            HeapError::NoMemory { wanted } => Error::NoSpace {
                name: name.to_owned(),
                needed: wanted,
                available: crate::sys::shm::free_space().unwrap_or(0),
            },
            HeapError::JournalFull => Error::invalid(format!(
                "{what} '{name}': one call may change at most {} words; split the call",
                crate::raw::heap::JOURNAL_LEN
            )),
            HeapError::WouldBlock => Error::Timeout,
        }
    }

    /// Takes the writer lock (recovering a dead writer's call), for a guard: blocks
    /// until it is free.
    pub fn lock(&self) -> Held<'_> {
        self.lock_within(None)
            .unwrap_or_else(|_| unreachable!("an untimed acquire ends holding the lock"))
    }

    /// Takes the writer lock for an operation: within the lock timeout if one is set
    /// (`Err(Timeout)` after it), else blocking.
    pub fn lock_op(&self) -> Result<Held<'_>> {
        self.lock_within(self.lock_timeout)
    }

    fn lock_within(&self, timeout: Option<Duration>) -> Result<Held<'_>> {
        let me = crate::sync::current_identity();
        let deadline = timeout.and_then(crate::sys::clock::deadline_after);
        if !self.heap().lock(me, deadline, self.probe).is_held() {
            return Err(Error::Timeout);
        }
        // SAFETY: `me` just acquired the lock.
        Ok(unsafe { Held::new(self.heap().raw_lock(), me) })
    }

    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Runs `f` as a reader: optimistically, else under the lock.
    pub fn read<R>(
        &self,
        mut f: impl FnMut(&Heap<'_>) -> core::result::Result<R, HeapError>,
    ) -> Result<R> {
        let r = self.read_inner(&mut f);
        self.segment().intact(r)
    }

    fn read_inner<R>(
        &self,
        f: &mut impl FnMut(&Heap<'_>) -> core::result::Result<R, HeapError>,
    ) -> Result<R> {
        let heap = self.heap();
        match heap.try_read(&mut *f) {
            Some(r) => r.map_err(|e| self.error(e)),
            None if heap.raw_lock().is_held_by(crate::sync::current_identity()) => {
                // A guard of this thread holds the lock: the state cannot change.
                f(&heap).map_err(|e| self.error(e))
            }
            None => {
                let _held = self.lock_op()?;
                f(&heap).map_err(|e| self.error(e))
            }
        }
    }

    /// Runs `f` as one crash-consistent call while the caller holds the lock: commits
    /// on `Ok`, rolls back on `Err`.
    pub fn txn_locked<R>(
        &self,
        f: impl FnOnce(&mut Txn<'_, '_>) -> core::result::Result<R, HeapError>,
    ) -> Result<R> {
        let heap = self.heap();
        let seg = self.obj.segment();
        let mut grow = |off: u64, len: u64| seg.commit(off as usize, len as usize).is_ok();
        let mut txn = heap.txn(&mut grow);
        let r = match f(&mut txn).and_then(|r| txn.finish().map(|()| r)) {
            Ok(r) => {
                txn.commit();
                Ok(r)
            }
            Err(e) => {
                txn.rollback();
                Err(self.error(e))
            }
        };
        // A truncated segment reads as zeroes here: say so rather than trust them.
        self.segment().intact(r)
    }

    /// Takes the lock, runs [`txn_locked`](Self::txn_locked), releases the lock.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut Txn<'_, '_>) -> core::result::Result<R, HeapError>,
    ) -> Result<R> {
        let _held = self.lock_op()?;
        self.txn_locked(f)
    }

    /// The number of items, as of a consistent moment.
    pub fn len(&self) -> usize {
        self.read(|h| Ok(h.len_word())).unwrap_or(0) as usize
    }

    /// Arena bytes handed out so far (in use or on free lists).
    pub fn allocated_bytes(&self) -> u64 {
        self.read(|h| Ok(h.top_word())).unwrap_or(0)
    }

    /// Checks the allocator's free lists under the lock (tests, fuzzing).
    pub fn check(&self) -> Result<u64> {
        let _held = self.lock_op()?;
        self.heap().check_free_lists().map_err(|e| self.error(e))
    }

    pub fn is_locked(&self) -> bool {
        self.heap().raw_lock().is_locked()
    }
}

/// Serializes `x` for storage (postcard).
pub(crate) fn encode<T: Serialize + ?Sized>(what: &str, name: &str, x: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(x).map_err(|e| {
        Error::invalid(format!(
            "{what} '{name}': a {} does not serialize: {e}",
            core::any::type_name::<T>()
        ))
    })
}

/// Deserializes stored bytes; a failure means the segment holds something else.
pub(crate) fn decode<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| {
        Error::corrupt(
            name,
            format!(
                "stored bytes do not decode as {}: {e}",
                core::any::type_name::<T>()
            ),
        )
    })
}

/// Copies `len` bytes at `off` out of the heap (bounds-checked first).
pub(crate) fn copy_bytes(
    h: &Heap<'_>,
    off: u64,
    len: u64,
) -> core::result::Result<Vec<u8>, HeapError> {
    h.check_range(off, len.div_ceil(8).saturating_mul(8))?;
    let mut v = vec![0u8; len as usize];
    h.copy_out(off, &mut v)?;
    Ok(v)
}

/// Writes what [`Dict`](crate::Dict) and [`List`](crate::List) share over their
/// `c: Container` field, with docs: `open_or_create_with`, `with_lock_timeout`,
/// `segment`, `allocated_bytes`, `check_heap`, `max_bytes`, `len`, `is_empty` and
/// `clear`. `$what` names the container ("dict", "list"), `$items` what it holds.
macro_rules! container_surface {
    (impl[$($g:tt)*] $ty:ident<$($p:ident),+> : $what:literal, $items:literal) => {
        impl<$($g)*> $ty<$($p),+> {
            #[doc = concat!("Number of ", $items, ".")]
            pub fn len(&self) -> usize {
                self.c.len()
            }

            #[doc = concat!("True if the ", $what, " has no ", $items, ".")]
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            #[doc = concat!("Removes all ", $items, " (one atomic call: all or nothing).")]
            pub fn clear(&self) -> $crate::Result<()> {
                self.c.write(|txn| txn.reset())
            }

            /// [`open_or_create`](Self::open_or_create) with explicit segment
            /// [`Options`](crate::Options).
            pub fn open_or_create_with(
                name: &str,
                opts: &$crate::Options,
            ) -> $crate::Result<$ty<$($p),+>> {
                $crate::segment::open_or_create(
                    || $ty::create_with(name, DEFAULT_MAX_BYTES, opts),
                    || $ty::open_with(name, opts),
                )
            }

            /// How long an operation waits for the writer lock before it returns
            /// `Err(Timeout)` (default: as long as it takes, like every plain-named
            /// call). A dead holder is recovered within the probe interval either way;
            /// the timeout bounds the wait for a live one (or a forged one: shared
            /// memory is untrusted).
            pub fn with_lock_timeout(mut self, timeout: std::time::Duration) -> $ty<$($p),+> {
                self.c = self.c.with_lock_timeout(timeout);
                self
            }

            #[doc = concat!("The segment holding the ", $what, ".")]
            pub fn segment(&self) -> &$crate::Segment {
                self.c.segment()
            }

            #[doc = concat!(
                "Bytes of the segment handed out to entries and index so far (including ",
                "freed\nblocks waiting for reuse): what the ", $what, " occupies in ",
                "`/dev/shm`, roughly."
            )]
            pub fn allocated_bytes(&self) -> u64 {
                self.c.allocated_bytes()
            }

            /// Checks the allocator's internal lists under the lock; returns the bytes on
            /// them (for tests and fuzzing: `Err(Corrupt)` if they are broken).
            #[doc(hidden)]
            pub fn check_heap(&self) -> $crate::Result<u64> {
                self.c.check()
            }

            #[doc = concat!("The byte limit the ", $what, " was created with.")]
            pub fn max_bytes(&self) -> u64 {
                self.c.max_bytes()
            }
        }
    };
}
pub(crate) use container_surface;
