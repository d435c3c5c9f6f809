//! The surface every named handle shares, written once: [`named_handle!`] writes a
//! handle's `name`, `persist`, `create`/`open`/`open_or_create` (delegating to their
//! `*_with` forms with default [`Options`](crate::Options)), `with_probe_interval`,
//! `is_broken` and `Debug` as plain inherent methods, each with its docs, so rustdoc
//! shows them on the type as if written by hand.
//!
//! What differs per type stays in the type's file: the docs of `create`, `open` and
//! `open_or_create` (passed in as doc comments), the `*_with` forms of types whose
//! `create` takes parameters, and every operation of the object itself.

use std::time::Duration;

/// The shortest probe interval a handle accepts: probing more often than this
/// costs a syscall per check for no gain.
pub(crate) const MIN_PROBE: Duration = Duration::from_micros(100);

/// A requested probe interval, raised to [`MIN_PROBE`].
#[inline]
pub(crate) fn probe_interval(probe: Duration) -> Duration {
    probe.max(MIN_PROBE)
}

/// Applies `f` to `h`: lets [`named_handle!`]'s `Debug` fields be closures over the
/// handle, whose parameter type is inferred from here.
#[inline]
pub(crate) fn view<H, R>(h: &H, f: impl FnOnce(&H) -> R) -> R {
    f(h)
}

/// Writes the common surface of a named handle type.
///
/// ```text
/// named_handle! {
///     impl[T: Pod] Array<T>: "array" (anonymous), obj;  // generics, type, noun, field
///     debug[T] "Array" { "len" => |a| a.len };          // optional: Debug's fields
///     /// Creates ... (the type's own docs)
///     create(len: usize);              // -> create_with(name, len, &default)
///     /// Opens ...
///     open();                          // -> open_with(name, &default)
///     /// Opens or creates ...
///     open_or_create(len: usize);      // -> open_or_create_with(name, len, &default)
///     /// How often ...
///     with_probe_interval => probe;    // sets that field, at least MIN_PROBE
///     /// True once ...
///     is_broken;                       // the field's is_broken()
/// }
/// ```
///
/// The field (`obj` above) is what holds the object: an `Object<R>`, a ring handle or
/// a container, anything with `name()`, `persist()` and `is_broken()`; `name` and
/// `persist` are always written, `Debug` (the name, then the fields listed) when a
/// `debug` line follows the first. A type with no creation parameters writes
/// `plain(ObjectKind::Lock) => from_obj;` instead of `create`/`open`/`open_or_create`:
/// that also writes the three `*_with` forms over `Object::create_plain` /
/// `Object::open_plain` and `from_obj`. Every entry is optional.
macro_rules! named_handle {
    (
        impl[$($g:tt)*] $ty:ty : $what:literal $(($anon:ident))?, $($inner:ident).+;
        debug[$($dg:tt)*] $dname:literal { $($dl:literal => $dv:expr),* $(,)? };
        $($rest:tt)*
    ) => {
        impl<$($dg)*> core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct($dname)
                    .field("name", &self.$($inner).+.name())
                    $(.field($dl, &$crate::named::common::skeleton::view(self, $dv)))*
                    .finish()
            }
        }

        $crate::named::common::named_handle! {
            impl[$($g)*] $ty: $what $(($anon))?, $($inner).+;
            $($rest)*
        }
    };

    (
        impl[$($g:tt)*] $ty:ty : $what:literal $(($anon:ident))?, $($inner:ident).+;
        $($rest:tt)*
    ) => {
        impl<$($g)*> $ty {
            #[doc = concat!(
                "The ", $what, "'s name",
                $(" (\"\" for an ", stringify!($anon), " one)",)?
                "."
            )]
            #[inline]
            pub fn name(&self) -> &str {
                self.$($inner).+.name()
            }

            /// Keeps the name after this (creating) handle drops;
            /// [`unlink`](crate::unlink) removes it.
            pub fn persist(&self) {
                self.$($inner).+.persist()
            }

            $crate::named::common::named_handle!(@items [$ty] [$what] [$($inner).+] $($rest)*);
        }
    };

    (@items [$ty:ty] [$what:literal] [$($inner:ident).+]) => {};

    (@items [$ty:ty] [$what:literal] [$($inner:ident).+]
        $(#[$d:meta])* create($($p:ident: $pt:ty),* $(,)?); $($rest:tt)*
    ) => {
        $(#[$d])*
        ///
        /// A name left behind by a crashed creator (an orphan: creator gone, not
        /// persisted, held by no live process) is reclaimed and created afresh, so a
        /// restarted service just creates; see [`gc`](crate::gc).
        pub fn create(name: &str $(, $p: $pt)*) -> $crate::Result<$ty> {
            Self::create_with(name, $($p,)* &$crate::Options::default())
        }
        $crate::named::common::named_handle!(@items [$ty] [$what] [$($inner).+] $($rest)*);
    };

    (@items [$ty:ty] [$what:literal] [$($inner:ident).+]
        $(#[$d:meta])* open($($p:ident: $pt:ty),* $(,)?); $($rest:tt)*
    ) => {
        $(#[$d])*
        pub fn open(name: &str $(, $p: $pt)*) -> $crate::Result<$ty> {
            Self::open_with(name, $($p,)* &$crate::Options::default())
        }
        $crate::named::common::named_handle!(@items [$ty] [$what] [$($inner).+] $($rest)*);
    };

    (@items [$ty:ty] [$what:literal] [$($inner:ident).+]
        $(#[$d:meta])* open_or_create($($p:ident: $pt:ty),* $(,)?); $($rest:tt)*
    ) => {
        $(#[$d])*
        pub fn open_or_create(name: &str $(, $p: $pt)*) -> $crate::Result<$ty> {
            Self::open_or_create_with(name, $($p,)* &$crate::Options::default())
        }
        $crate::named::common::named_handle!(@items [$ty] [$what] [$($inner).+] $($rest)*);
    };

    (@items [$ty:ty] [$what:literal] [$($inner:ident).+]
        $(#[$d:meta])* plain($kind:expr) => $from:ident; $($rest:tt)*
    ) => {
        $crate::named::common::named_handle!(@items [$ty] [$what] [$($inner).+]
            $(#[$d])*
            create();
            #[doc = concat!("Opens the ", $what, " `name`.")]
            open();
            #[doc = concat!(
                "Opens `name`, creating it if it does not exist. This kind of object has ",
                "no\ncreation parameters, so any existing ", $what, " of that name is ",
                "returned, in\nwhatever state it is; `Err(WrongKind)` if the name holds ",
                "another kind of object."
            )]
            open_or_create();
        );

        /// [`create`](Self::create) with explicit segment [`Options`](crate::Options).
        pub fn create_with(name: &str, opts: &$crate::Options) -> $crate::Result<$ty> {
            let obj = $crate::segment::Object::create_plain(name, opts, $kind)?;
            Ok(Self::$from(obj))
        }

        /// [`open`](Self::open) with explicit [`Options`](crate::Options) (init timeout,
        /// trusted owners).
        pub fn open_with(name: &str, opts: &$crate::Options) -> $crate::Result<$ty> {
            let obj = $crate::segment::Object::open_plain(name, opts, $kind)?;
            Ok(Self::$from(obj))
        }

        /// [`open_or_create`](Self::open_or_create) with explicit segment
        /// [`Options`](crate::Options).
        pub fn open_or_create_with(name: &str, opts: &$crate::Options) -> $crate::Result<$ty> {
            $crate::segment::open_or_create(
                || Self::create_with(name, opts),
                || Self::open_with(name, opts),
            )
        }
        $crate::named::common::named_handle!(@items [$ty] [$what] [$($inner).+] $($rest)*);
    };

    (@items [$ty:ty] [$what:literal] [$($inner:ident).+]
        $(#[$d:meta])* with_probe_interval => $($probe:ident).+; $($rest:tt)*
    ) => {
        $(#[$d])*
        pub fn with_probe_interval(mut self, probe: std::time::Duration) -> $ty {
            self.$($probe).+ = $crate::named::common::skeleton::probe_interval(probe);
            self
        }
        $crate::named::common::named_handle!(@items [$ty] [$what] [$($inner).+] $($rest)*);
    };

    (@items [$ty:ty] [$what:literal] [$($inner:ident).+]
        $(#[$d:meta])* is_broken; $($rest:tt)*
    ) => {
        $(#[$d])*
        pub fn is_broken(&self) -> bool {
            self.$($inner).+.is_broken()
        }
        $crate::named::common::named_handle!(@items [$ty] [$what] [$($inner).+] $($rest)*);
    };
}
pub(crate) use named_handle;
