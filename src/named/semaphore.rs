//! [`Semaphore`] and [`BoundedSemaphore`]: named counting semaphores.

use super::common::named_handle;
use crate::raw::RawSemaphore;
use crate::segment::{self, HeaderImage, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::sys::clock::deadline_after;
use crate::{Error, Result};
use std::time::Duration;

/// What both semaphores share: the object and the value `release` may not pass.
#[derive(Clone)]
struct Sem {
    obj: Object<RawSemaphore>,
    max: u32,
}

impl Sem {
    fn create(
        name: &str,
        opts: &Options,
        kind: ObjectKind,
        initial: u32,
    ) -> Result<Object<RawSemaphore>> {
        let spec = ObjectSpec {
            kind,
            ty: TypeInfo::NONE,
            params: [u64::from(initial), 0, 0, 0],
            trailing: 0,
        };
        Object::create(name, opts, spec, |raw: &RawSemaphore, _| {
            raw.init(initial);
            Ok(())
        })
    }

    fn open(name: &str, opts: &Options, kind: ObjectKind) -> Result<Object<RawSemaphore>> {
        Object::open(name, opts, kind, TypeInfo::NONE, |img: &HeaderImage| {
            if img.params[0] > u64::from(u32::MAX) {
                return Err(Error::corrupt(
                    name,
                    format!("initial value {} does not fit a u32", img.params[0]),
                ));
            }
            Ok(0)
        })
    }

    /// `open_or_create`'s check: the initial value recorded at creation is `initial`.
    fn same_initial(&self, name: &str, kind: ObjectKind, initial: u32) -> Result<()> {
        let existing = self.obj.params()[0];
        segment::same_shape(
            name,
            kind,
            &[segment::param("initial value", existing, initial)],
        )
    }

    fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.obj.raw().acquire(deadline_after(timeout)) && !self.obj.broken()
    }

    /// Waits in slices that check for truncation (see `Segment::sliced`).
    fn acquire(&self) -> Result<()> {
        let got =
            self.obj
                .segment()
                .sliced(None, true, |d| self.obj.raw().acquire(d), |got| !got)?;
        self.obj
            .intact(if got { Ok(()) } else { Err(Error::Timeout) })
    }

    /// Adds a permit unless the value is at `max`; `refused` words the error then.
    #[inline]
    fn release(&self, refused: impl FnOnce(&str, u32) -> String) -> Result<()> {
        // On a broken segment the release went to a private page: intact says so.
        if self.obj.raw().release(self.max) || self.obj.broken() {
            self.obj.intact(Ok(()))
        } else {
            Err(Error::invalid(refused(self.obj.name(), self.max)))
        }
    }
}

/// The operations both semaphores share, with their docs: everything but
/// `release`, whose bound and error differ.
macro_rules! semaphore_ops {
    ($ty:ident) => {
        impl $ty {
            /// Takes a permit, waiting as long as it takes. `Err(Corrupt)` once another
            /// process truncated the semaphore's segment.
            #[inline]
            pub fn acquire(&self) -> Result<()> {
                self.sem.acquire()
            }
            /// Takes a permit if one is available now (never once the segment is broken).
            #[inline]
            pub fn try_acquire(&self) -> bool {
                self.sem.obj.raw().try_acquire() && !self.sem.obj.broken()
            }
            /// Takes a permit, waiting at most `timeout`; false if none came.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.sem.acquire_timeout(timeout)
            }
            /// The permits available now (a snapshot).
            #[inline]
            pub fn value(&self) -> u32 {
                self.sem.obj.raw().value()
            }
            /// The raw semaphore inside the segment.
            pub fn raw(&self) -> &RawSemaphore {
                self.sem.obj.raw()
            }
        }
    };
}

/// A counting semaphore shared by name between processes, as Python's
/// `multiprocessing.Semaphore`.
///
/// `acquire` takes a permit (waiting while there are none), `release` adds one; any
/// process may release, whether or not it acquired. With nobody waiting, both are
/// one CAS and no syscall.
///
/// **A process that dies holding a permit does not give it back** (as POSIX and
/// Python semaphores: permits have no owner). Where that matters, use a [`Lock`]
/// (one holder, recovered when it dies) or release from a supervisor.
///
/// [`Lock`]: crate::Lock
///
/// If another process truncates the semaphore's file, this process survives:
/// `acquire` and `release` return `Err(Corrupt)` (see [`is_broken`](Semaphore::is_broken)).
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Semaphore;
/// let slots = Semaphore::create(&format!("doc-sem-{}", std::process::id()), 2)?;
/// slots.acquire()?;
/// assert!(slots.try_acquire());
/// assert!(!slots.try_acquire()); // both permits taken
/// slots.release()?;
/// assert_eq!(slots.value(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    sem: Sem,
}

named_handle! {
    impl[] Semaphore: "semaphore", sem.obj;
    debug[] "Semaphore" { "value" => |s| s.value() };
    /// Creates a semaphore named `name` holding `initial` permits.
    create(initial: u32);
    /// Opens the semaphore `name`.
    open();
    /// Opens `name` if it exists and was created with `initial` permits, or creates
    /// it with `initial` permits if it does not exist. `Err(Mismatch)` if it was
    /// created with another initial value (it is left alone). Only the initial value
    /// is compared: the current count is state, whatever acquires and releases made it.
    open_or_create(initial: u32);
    /// True once another process truncated the semaphore's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)): `acquire` and `release`
    /// then return `Err(Corrupt)`, `try_acquire` and `acquire_timeout` false.
    is_broken;
}
semaphore_ops!(Semaphore);

impl Semaphore {
    /// [`create`](Semaphore::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, initial: u32, opts: &Options) -> Result<Semaphore> {
        let obj = Sem::create(name, opts, ObjectKind::Semaphore, initial)?;
        Ok(Semaphore::from_obj(obj))
    }
    /// [`open`](Semaphore::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<Semaphore> {
        Ok(Semaphore::from_obj(Sem::open(
            name,
            opts,
            ObjectKind::Semaphore,
        )?))
    }
    /// [`open_or_create`](Semaphore::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(name: &str, initial: u32, opts: &Options) -> Result<Semaphore> {
        segment::open_or_create(
            || Semaphore::create_with(name, initial, opts),
            || {
                let s = Semaphore::open_with(name, opts)?;
                s.sem.same_initial(name, ObjectKind::Semaphore, initial)?;
                Ok(s)
            },
        )
    }
    fn from_obj(obj: Object<RawSemaphore>) -> Semaphore {
        Semaphore {
            sem: Sem { obj, max: u32::MAX },
        }
    }

    /// Adds a permit, waking one waiter. `Err(InvalidArgument)` only if the value
    /// would pass `u32::MAX`.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.sem.release(|name, max| {
            format!("semaphore '{name}' is at its largest value {max}: release would overflow it")
        })
    }
}

/// A [`Semaphore`] that refuses to be released past its initial value, as Python's
/// `multiprocessing.BoundedSemaphore`: a release without a matching acquire is
/// caught as `Err(InvalidArgument)` instead of silently adding a permit.
///
/// As with [`Semaphore`], a process that dies holding a permit does not give it back.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::BoundedSemaphore;
/// let pool = BoundedSemaphore::create(&format!("doc-bsem-{}", std::process::id()), 1)?;
/// pool.acquire()?;
/// pool.release()?;
/// assert!(matches!(pool.release(), Err(multiproc::Error::InvalidArgument { .. })));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    sem: Sem,
}

named_handle! {
    impl[] BoundedSemaphore: "semaphore", sem.obj;
    debug[] "BoundedSemaphore" {
        "value" => |s| s.value(),
        "max" => |s| s.sem.max,
    };
    /// Creates a bounded semaphore named `name` holding `initial` permits, which is
    /// also the most it will ever hold.
    create(initial: u32);
    /// Opens the bounded semaphore `name` (its bound is the one it was created with).
    open();
    /// Opens `name` if it exists and was created with `initial` permits (its bound),
    /// or creates it with `initial` permits if it does not exist. `Err(Mismatch)` if
    /// it was created with another bound (it is left alone); the current count is
    /// state and not compared.
    open_or_create(initial: u32);
    /// True once another process truncated the semaphore's segment (see
    /// [`Segment::is_broken`](crate::Segment::is_broken)): `acquire` and `release`
    /// then return `Err(Corrupt)`, `try_acquire` and `acquire_timeout` false.
    is_broken;
}
semaphore_ops!(BoundedSemaphore);

impl BoundedSemaphore {
    /// [`create`](BoundedSemaphore::create) with explicit segment [`Options`].
    pub fn create_with(name: &str, initial: u32, opts: &Options) -> Result<BoundedSemaphore> {
        let obj = Sem::create(name, opts, ObjectKind::BoundedSemaphore, initial)?;
        Ok(BoundedSemaphore::from_obj(obj))
    }
    /// [`open`](BoundedSemaphore::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore::from_obj(Sem::open(
            name,
            opts,
            ObjectKind::BoundedSemaphore,
        )?))
    }
    /// [`open_or_create`](BoundedSemaphore::open_or_create) with explicit segment
    /// [`Options`].
    pub fn open_or_create_with(
        name: &str,
        initial: u32,
        opts: &Options,
    ) -> Result<BoundedSemaphore> {
        segment::open_or_create(
            || BoundedSemaphore::create_with(name, initial, opts),
            || {
                let s = BoundedSemaphore::open_with(name, opts)?;
                s.sem
                    .same_initial(name, ObjectKind::BoundedSemaphore, initial)?;
                Ok(s)
            },
        )
    }
    fn from_obj(obj: Object<RawSemaphore>) -> BoundedSemaphore {
        // The bound comes from the validated private copy of the header parameters.
        let max = obj.params()[0] as u32;
        BoundedSemaphore {
            sem: Sem { obj, max },
        }
    }

    /// Adds a permit, waking one waiter; `Err(InvalidArgument)` (and no change) if
    /// the value is already at its initial value.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.sem.release(|name, max| {
            format!(
                "bounded semaphore '{name}' already holds its initial {max} permits: release \
                 without a matching acquire"
            )
        })
    }
    /// The initial value: the most permits it may hold.
    pub fn max_value(&self) -> u32 {
        self.sem.max
    }
}
