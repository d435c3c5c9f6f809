//! `Shared<R>`: a named segment holding the caller's own `#[repr(C)]` state.
//!
//! The named objects of this crate are each a validated segment plus a raw struct
//! from [`raw`](crate::raw). `Shared<R>` offers the same to a third party's own
//! struct `R`: any process attaches by name, and `open` checks the kind (a user
//! object), the caller's tag and `R`'s type fingerprint before handing out `&R`.

use super::common::named_handle;
use crate::raw::SharedState;
use crate::segment::{self, HeaderImage, Object, ObjectKind, ObjectSpec, Options, TypeInfo};
use crate::{Error, Result, Segment};
use core::ops::Deref;

/// A named shared-memory object holding the caller's own state `R`.
///
/// `R` is a `#[repr(C)]` struct of atomics and plain integers, declared
/// [`SharedState`] with [`shared_state!`](crate::shared_state). `create` makes a
/// segment whose state is all zeroes (or what `create_init` writes before anyone
/// can open it); `open` in any other process validates the header — kind
/// `User`, the caller's `tag`, and `R`'s fingerprint (size, alignment and a hash
/// of its type name) — and returns `Err(WrongKind)`, `Err(WrongType)` or
/// `Err(Corrupt)` when they differ. The tag tells apart objects of one type used
/// for different purposes (or versions of a protocol): pick one per use.
///
/// Like every named handle: the handle from `create` unlinks the name when it drops
/// unless [`persist`](Shared::persist)ed; clones share the object.
///
/// ```
/// use multiproc::sync::atomic::{AtomicU64, Ordering};
/// use multiproc::Shared;
///
/// #[repr(C)]
/// struct Stats {
///     requests: AtomicU64,
///     errors: AtomicU64,
/// }
/// // SAFETY: repr(C), atomics only, valid when zeroed, no pointers, no Drop.
/// multiproc::shared_state!(unsafe Stats);
///
/// # let name = format!("doc-shared-stats-{}", std::process::id());
/// let stats: Shared<Stats> = Shared::create(&name, 1)?;
/// // ... any other process:
/// let seen: Shared<Stats> = Shared::open(&name, 1)?;
/// seen.requests.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(stats.requests.load(Ordering::Relaxed), 1);
/// # Ok::<(), multiproc::Error>(())
/// ```
///
/// ## Safety
/// Handing out `&R` into memory that other processes write is sound only because
/// `R: SharedState`: it is made of atomics and plain integers, so every bit pattern
/// is a valid `R` and concurrent writes through atomics are not data races. The
/// promise behind that bound is the implementor's (the `unsafe` in
/// `shared_state!(unsafe R)`). What remains is memmap2's caveat, stated for this
/// crate in [Reads that race a foreign
/// writer](crate#reads-that-race-a-foreign-writer): a process that breaks the
/// protocol can write any value into any field at any time, so treat every value
/// read from `R` as untrusted input (bounds-check indices, expect nonsense).
/// Plain (non-atomic) integer fields in `R` are read with ordinary loads: only use
/// them for values no process writes after creation (constants set in
/// `create_init`), and write everything else through atomics.
pub struct Shared<R> {
    obj: Object<R>,
    tag: u32,
}

named_handle! {
    impl[R: SharedState] Shared<R>: "object", obj;
    debug[R: SharedState] "Shared" {
        "tag" => |s| s.tag,
        "type" => |_| core::any::type_name::<R>(),
    };
    /// Opens the object `name`, checking that it is a user object with tag `tag`
    /// holding an `R`: `Err(NotFound)`, `Err(WrongKind)` (another kind, or another
    /// tag), `Err(WrongType)` (another state type) or `Err(Corrupt)`.
    open(tag: u32);
    /// Opens `name`, creating it (all zeroes) if it does not exist.
    open_or_create(tag: u32);
}

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Shared {
            obj: self.obj.clone(),
            tag: self.tag,
        }
    }
}

impl<R: SharedState> Shared<R> {
    /// Creates the object `name` with tag `tag`, its state all zeroes.
    ///
    /// `Err(AlreadyExists)` while the name is in use; a name left behind by a
    /// crashed creator (an orphan) is reclaimed, as for every named object.
    pub fn create(name: &str, tag: u32) -> Result<Shared<R>> {
        Shared::create_with(name, tag, &Options::default(), |_| {})
    }

    /// Creates the object and runs `init` on its (zeroed) state before any other
    /// process can open it.
    pub fn create_init(name: &str, tag: u32, init: impl FnOnce(&R)) -> Result<Shared<R>> {
        Shared::create_with(name, tag, &Options::default(), init)
    }

    /// [`create_init`](Shared::create_init) with explicit segment [`Options`].
    pub fn create_with(
        name: &str,
        tag: u32,
        opts: &Options,
        init: impl FnOnce(&R),
    ) -> Result<Shared<R>> {
        let spec = ObjectSpec {
            kind: ObjectKind::User,
            ty: TypeInfo::of::<R>(),
            params: [u64::from(tag), 0, 0, 0],
            trailing: 0,
        };
        let obj = Object::create(name, opts, spec, |raw, _| {
            init(raw);
            Ok(())
        })?;
        Ok(Shared { obj, tag })
    }

    /// [`open`](Shared::open) with explicit [`Options`] (init timeout, ...).
    pub fn open_with(name: &str, tag: u32, opts: &Options) -> Result<Shared<R>> {
        let obj = Object::open(name, opts, ObjectKind::User, TypeInfo::of::<R>(), |img| {
            check_params(name, tag, img)
        })?;
        Ok(Shared { obj, tag })
    }

    /// [`open_or_create`](Shared::open_or_create) with explicit [`Options`].
    pub fn open_or_create_with(name: &str, tag: u32, opts: &Options) -> Result<Shared<R>> {
        segment::open_or_create(
            || Shared::create_with(name, tag, opts, |_| {}),
            || Shared::open_with(name, tag, opts),
        )
    }

    /// The state. See the type's `## Safety` section for what a shared `&R` means.
    #[inline]
    pub fn get(&self) -> &R {
        self.obj.raw()
    }

    /// The tag the object was created (and validated) with.
    #[inline]
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// The underlying segment (for its length, broken flag, ...).
    #[inline]
    pub fn segment(&self) -> &Segment {
        self.obj.segment()
    }
}

impl<R: SharedState> Deref for Shared<R> {
    type Target = R;
    #[inline]
    fn deref(&self) -> &R {
        self.get()
    }
}

/// Checks the stored tag (and that the unused parameters are zero); a user object
/// has no trailing region.
fn check_params(name: &str, tag: u32, img: &HeaderImage) -> Result<usize> {
    let found = img.params[0];
    if found != u64::from(tag) {
        return Err(Error::WrongKind {
            name: name.to_owned(),
            expected: format!("User (tag {tag})"),
            found: format!("User (tag {found})"),
        });
    }
    if img.params[1..] != [0, 0, 0] {
        return Err(Error::corrupt(
            name,
            format!(
                "a user object's unused parameters are {:?}, not zero",
                &img.params[1..]
            ),
        ));
    }
    Ok(0)
}
