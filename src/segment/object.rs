//! `Object<R>`: a segment plus a reference to the raw state struct at its start.
//!
//! Every named primitive is an `Object<RawSomething>` (plus, for queues and arrays,
//! a trailing region of slots). The raw struct sits at the start of the data region;
//! the trailing region starts at the next [`LINE`] boundary after it.

use super::{HeaderImage, Layout, ObjectKind, Options, Segment, TypeInfo, LINE};
use crate::raw::SharedState;
use crate::{Error, Result};
use core::marker::PhantomData;
use core::mem::size_of;
use std::fmt;

/// What a named object's segment holds besides its raw struct.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ObjectSpec {
    pub kind: ObjectKind,
    pub ty: TypeInfo,
    /// Kind-specific parameters, stored in the header and checked on open.
    pub params: [u64; 4],
    /// Bytes after the raw struct (slots, elements).
    pub trailing: usize,
}

/// Offset of the trailing region inside the data region.
pub(crate) const fn trailing_offset<R>() -> usize {
    size_of::<R>().div_ceil(LINE) * LINE
}

/// A named object: its segment and its raw state `R`.
pub(crate) struct Object<R> {
    seg: Segment,
    params: [u64; 4],
    _raw: PhantomData<R>,
}

impl<R> Clone for Object<R> {
    fn clone(&self) -> Self {
        Object {
            seg: self.seg.clone(),
            params: self.params,
            _raw: PhantomData,
        }
    }
}

impl<R> fmt::Debug for Object<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("name", &self.seg.name())
            .finish_non_exhaustive()
    }
}

// SAFETY: `R: SharedState` is made of atomics and plain integers that every process
// may touch concurrently; the segment handle itself is Send + Sync.
unsafe impl<R: SharedState> Send for Object<R> {}
// SAFETY: as above.
unsafe impl<R: SharedState> Sync for Object<R> {}

#[allow(dead_code)] // each named object uses a different subset
impl<R: SharedState> Object<R> {
    /// Creates the object; `init` sees the zeroed raw struct and the trailing region
    /// before any opener can.
    pub fn create(
        name: &str,
        opts: &Options,
        spec: ObjectSpec,
        init: impl FnOnce(&R, *mut u8) -> Result<()>,
    ) -> Result<Self> {
        Self::build(spec, init, |layout, init| {
            Segment::create_raw(name, opts, layout, init)
        })
    }

    /// Creates a sparse object: its trailing region is reserved but only the raw
    /// struct is backed by memory; the object commits the rest with
    /// [`Segment::commit`] as it grows.
    pub fn create_sparse(
        name: &str,
        opts: &Options,
        spec: ObjectSpec,
        init: impl FnOnce(&R, *mut u8) -> Result<()>,
    ) -> Result<Self> {
        Self::build(spec, init, |mut layout, init| {
            layout.commit = Some(trailing_offset::<R>());
            Segment::create_raw(name, opts, layout, init)
        })
    }

    /// An unnamed object shared with children forked after this call.
    pub fn anonymous(
        spec: ObjectSpec,
        init: impl FnOnce(&R, *mut u8) -> Result<()>,
    ) -> Result<Self> {
        Self::build(spec, init, |layout, init| {
            Segment::anonymous_raw(layout, init)
        })
    }

    /// Creates an object of `kind` that has no element type, no parameters and no
    /// trailing region (locks, events, conditions), its raw state all zeroes.
    pub fn create_plain(name: &str, opts: &Options, kind: ObjectKind) -> Result<Self> {
        let spec = ObjectSpec {
            kind,
            ty: TypeInfo::NONE,
            params: [0; 4],
            trailing: 0,
        };
        Self::create(name, opts, spec, |_, _| Ok(()))
    }

    /// Opens an object made by [`create_plain`](Self::create_plain).
    pub fn open_plain(name: &str, opts: &Options, kind: ObjectKind) -> Result<Self> {
        Self::open(name, opts, kind, TypeInfo::NONE, |_| Ok(0))
    }

    /// Lays out `spec`, makes the segment with `make` and runs `init` on the raw
    /// struct inside it.
    fn build<I, M>(spec: ObjectSpec, init: I, make: M) -> Result<Self>
    where
        I: FnOnce(&R, *mut u8) -> Result<()>,
        M: FnOnce(Layout, &mut dyn FnMut(&Segment) -> Result<()>) -> Result<Segment>,
    {
        let data_len = trailing_offset::<R>()
            .checked_add(spec.trailing)
            .ok_or_else(|| Error::invalid("the object is too large"))?;
        let layout = Layout {
            kind: spec.kind,
            ty: spec.ty,
            params: spec.params,
            data_len,
            commit: None,
        };
        let mut init = Some(init);
        let seg = make(layout, &mut |seg: &Segment| {
            let init = init
                .take()
                .ok_or_else(|| Error::invalid("object initialised twice"))?;
            // SAFETY: the data region holds `data_len >= size_of::<R>()` bytes, aligned
            // to LINE, and R is valid for all-zero bytes (SharedState).
            let raw = unsafe { &*seg.as_ptr().cast::<R>() };
            // SAFETY: trailing_offset <= data_len.
            init(raw, unsafe { seg.as_ptr().add(trailing_offset::<R>()) })
        })?;
        Ok(Object {
            seg,
            params: spec.params,
            _raw: PhantomData,
        })
    }

    /// Opens the object, checking kind, element type and (through `check`) the
    /// kind-specific parameters. `check` returns the trailing length those
    /// parameters imply, which must match the file.
    pub fn open(
        name: &str,
        opts: &Options,
        kind: ObjectKind,
        ty: TypeInfo,
        check: impl FnOnce(&HeaderImage) -> Result<usize>,
    ) -> Result<Self> {
        let mut params = [0; 4];
        let seg = Segment::open_raw(name, opts, kind, ty, |img| {
            let trailing = check(img)?;
            let want = trailing_offset::<R>().checked_add(trailing);
            if want != Some(img.data_len as usize) {
                return Err(Error::corrupt(
                    name,
                    format!(
                        "{} data bytes recorded, but its parameters {:?} need {}",
                        img.data_len,
                        img.params,
                        want.map_or_else(|| "an impossible size".to_owned(), |w| w.to_string())
                    ),
                ));
            }
            params = img.params;
            Ok(())
        })?;
        Ok(Object {
            seg,
            params,
            _raw: PhantomData,
        })
    }

    /// The raw state.
    #[inline]
    pub fn raw(&self) -> &R {
        // SAFETY: the data region starts LINE-aligned and holds at least size_of::<R>()
        // bytes (checked on create/open); R is SharedState, so shared references are
        // sound even while other processes write it.
        unsafe { &*self.seg.as_ptr().cast::<R>() }
    }

    /// The trailing region (LINE-aligned), valid for [`trailing_len`](Self::trailing_len) bytes.
    #[inline]
    pub fn trailing(&self) -> *mut u8 {
        // SAFETY: trailing_offset <= data_len, checked on create/open.
        unsafe { self.seg.as_ptr().add(trailing_offset::<R>()) }
    }

    /// Length of the trailing region.
    #[inline]
    pub fn trailing_len(&self) -> usize {
        self.seg.len() - trailing_offset::<R>()
    }

    /// The parameters validated at create/open (a private copy: later foreign writes
    /// to the header do not change them).
    #[inline]
    pub fn params(&self) -> [u64; 4] {
        self.params
    }

    /// The underlying segment.
    #[inline]
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The object's name.
    #[inline]
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Keeps the name after the creator's handle drops.
    pub fn persist(&self) {
        self.seg.persist()
    }

    /// See [`Segment::is_broken`].
    pub fn is_broken(&self) -> bool {
        self.seg.is_broken()
    }

    /// The broken flag alone (one load): see [`Segment::is_broken`].
    #[inline]
    pub fn broken(&self) -> bool {
        self.seg.broken()
    }

    /// `r`, or `Err(Corrupt)` if the segment is broken: see [`Segment::intact`].
    #[inline]
    pub fn intact<T>(&self, r: Result<T>) -> Result<T> {
        self.seg.intact(r)
    }
}
