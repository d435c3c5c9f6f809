//! `List<T>`: Python's `Manager().list()` in named shared memory, no server.

use super::common::container::{
    container_surface, copy_bytes, decode, encode, Container, DEFAULT_MAX_BYTES,
};
use super::common::{named_handle, Held};
use crate::raw::heap::HeapError;
use crate::raw::list as raw;
use crate::segment::{ObjectKind, Options, TypeInfo};
use crate::{Error, Result};
use core::fmt;
use core::marker::PhantomData;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A vector shared by name between processes, like Python's `Manager().list()` —
/// without a server process: the items live in the segment itself.
///
/// Items are any serde type (serialized with postcard). Like [`Dict`](crate::Dict),
/// a list grows as needed (a sparse reservation of
/// [`DEFAULT_MAX_BYTES`](List::DEFAULT_MAX_BYTES), committed in chunks), reuses the
/// space of removed items, is crash-consistent (a process killed inside any
/// mutating call leaves it as before or as after that call), and its readers never
/// block. [`lock`](List::lock) gives a guard for several operations with no other
/// writer in between.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::List;
/// let name = format!("doc-list-{}", std::process::id());
/// let l: List<String> = List::create(&name)?;
/// l.push("a".into())?;
/// l.extend(["b".to_string(), "c".to_string()])?;
/// let other: List<String> = List::open(&name)?; // any process can do this
/// assert_eq!(other.to_vec()?, ["a", "b", "c"]);
/// assert_eq!(other.pop()?, Some("c".to_string()));
/// # Ok(()) }
/// ```
pub struct List<T> {
    c: Container,
    _t: PhantomData<fn(T) -> T>,
}

named_handle! {
    impl[T: Serialize + DeserializeOwned] List<T>: "list", c;
    debug[T] "List" { "type" => |_| core::any::type_name::<T>() };
    /// Opens the list `name`. `Err(WrongKind)` if it is not a list, `Err(WrongType)`
    /// if it holds another item type (the message names both).
    open();
    /// Opens `name`, creating it empty if it does not exist.
    open_or_create();
    /// How often a writer waiting for the lock checks that its holder is alive
    /// (default 10 ms).
    with_probe_interval => c.probe;
}

container_surface!(impl[T: Serialize + DeserializeOwned] List<T>: "list", "items");

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        List {
            c: self.c.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> List<T> {
    /// The byte limit of a list created without one (64 GiB of address space).
    pub const DEFAULT_MAX_BYTES: u64 = DEFAULT_MAX_BYTES;

    fn ty() -> TypeInfo {
        TypeInfo::of::<List<T>>()
    }

    /// Creates the empty list `name`. `Err(AlreadyExists)` if the name is taken.
    pub fn create(name: &str) -> Result<List<T>> {
        List::create_with_limit(name, DEFAULT_MAX_BYTES)
    }

    /// Creates the list `name` that may hold at most about `max_bytes` bytes of items
    /// (and index); a push past it fails with `InvalidArgument`, list unchanged.
    pub fn create_with_limit(name: &str, max_bytes: u64) -> Result<List<T>> {
        List::create_with(name, max_bytes, &Options::default())
    }

    /// [`create_with_limit`](List::create_with_limit) with explicit segment [`Options`].
    pub fn create_with(name: &str, max_bytes: u64, opts: &Options) -> Result<List<T>> {
        let c = Container::create(name, ObjectKind::List, Self::ty(), max_bytes, opts)?;
        Ok(List { c, _t: PhantomData })
    }

    /// [`open`](List::open) with explicit [`Options`] (the init timeout).
    pub fn open_with(name: &str, opts: &Options) -> Result<List<T>> {
        let c = Container::open(name, ObjectKind::List, Self::ty(), opts)?;
        Ok(List { c, _t: PhantomData })
    }

    fn enc(&self, x: &T) -> Result<Vec<u8>> {
        encode("list", self.name(), x)
    }

    fn past_end(&self, i: usize, len: u64) -> Error {
        Error::invalid(format!(
            "list '{}' has {len} items: index {i} is past the end",
            self.name()
        ))
    }

    /// Appends `x`.
    pub fn push(&self, x: T) -> Result<()> {
        let b = self.enc(&x)?;
        self.c
            .write(|txn| raw::extend(txn, core::iter::once(b.as_slice())))
    }

    /// Appends every item of `items`, all or nothing.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<()> {
        let bs = items
            .into_iter()
            .map(|x| self.enc(&x))
            .collect::<Result<Vec<_>>>()?;
        let _held = self.c.lock_op()?;
        self.extend_locked(&bs)
    }

    fn extend_locked(&self, bs: &[Vec<u8>]) -> Result<()> {
        // One call journals each allocator word once, so any number of items fits.
        self.c
            .txn_locked(|txn| raw::extend(txn, bs.iter().map(Vec::as_slice)))
    }

    /// Removes and returns the last item.
    pub fn pop(&self) -> Result<Option<T>> {
        let _held = self.c.lock_op()?;
        self.remove_at_locked(None)
    }

    /// Removes item `i` (`Err(InvalidArgument)` past the end) and returns it.
    pub fn remove(&self, i: usize) -> Result<T> {
        let _held = self.c.lock_op()?;
        self.remove_at_locked(Some(i))?
            .ok_or_else(|| self.past_end(i, self.c.heap().len_word()))
    }

    fn remove_at_locked(&self, i: Option<usize>) -> Result<Option<T>> {
        let b = self.c.txn_locked(|txn| {
            let heap = *txn.heap();
            let len = heap.len_word();
            let i = match i {
                Some(i) => i as u64,
                None if len == 0 => return Ok(None),
                None => len - 1,
            };
            let Some((off, n)) = raw::item(&heap, i)? else {
                return Ok(None);
            };
            let b = copy_bytes(&heap, off, n)?;
            raw::remove(txn, i)?;
            Ok(Some(b))
        })?;
        b.map(|b| decode(self.name(), &b)).transpose()
    }

    /// Item `i`, `None` past the end.
    pub fn get(&self, i: usize) -> Result<Option<T>> {
        let b = self.c.read(|heap| match raw::item(heap, i as u64)? {
            Some((off, n)) => copy_bytes(heap, off, n).map(Some),
            None => Ok(None),
        })?;
        b.map(|b| decode(self.name(), &b)).transpose()
    }

    /// Replaces item `i`; `Err(InvalidArgument)` past the end.
    pub fn set(&self, i: usize, x: T) -> Result<()> {
        let b = self.enc(&x)?;
        let _held = self.c.lock_op()?;
        self.set_locked(i, &b)
    }

    fn set_locked(&self, i: usize, b: &[u8]) -> Result<()> {
        let len = self.c.heap().len_word();
        if i as u64 >= len {
            return Err(self.past_end(i, len));
        }
        self.c.txn_locked(|txn| raw::set(txn, i as u64, b))
    }

    /// Inserts `x` before item `i` (`i == len` appends); `Err(InvalidArgument)` past
    /// the end.
    pub fn insert(&self, i: usize, x: T) -> Result<()> {
        let b = self.enc(&x)?;
        let _held = self.c.lock_op()?;
        let len = self.c.heap().len_word();
        if i as u64 > len {
            return Err(self.past_end(i, len));
        }
        self.c.txn_locked(|txn| raw::insert(txn, i as u64, &b))
    }

    /// All items, as one consistent snapshot.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let bs = self.c.read(|heap| {
            let len = heap.len_word();
            let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
            for i in 0..len {
                let (off, n) =
                    raw::item(heap, i)?.ok_or(HeapError::Corrupt("a list item is missing"))?;
                out.push(copy_bytes(heap, off, n)?);
            }
            Ok(out)
        })?;
        bs.iter().map(|b| decode(self.name(), b)).collect()
    }

    /// An iterator over a snapshot of the items ([`to_vec`](List::to_vec)).
    pub fn iter(&self) -> Result<std::vec::IntoIter<T>> {
        Ok(self.to_vec()?.into_iter())
    }

    /// Takes the list's writer lock: a guard for several operations with no other
    /// writer in between. A writer that died holding it is recovered first.
    pub fn lock(&self) -> ListGuard<'_, T> {
        ListGuard {
            _held: self.c.lock(),
            l: self,
        }
    }

    /// True while some thread holds the list's writer lock.
    pub fn is_locked(&self) -> bool {
        self.c.is_locked()
    }
}

/// The list's writer lock, held: operations through it run with no other writer in
/// between; each one commits on its own.
#[must_use = "the lock is released when the guard drops"]
pub struct ListGuard<'a, T> {
    l: &'a List<T>,
    _held: Held<'a>,
}

impl<T> fmt::Debug for ListGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListGuard")
            .field("list", &self.l.c.name())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> ListGuard<'_, T> {
    /// As [`List::push`].
    pub fn push(&self, x: T) -> Result<()> {
        let b = self.l.enc(&x)?;
        self.l.extend_locked(&[b])
    }
    /// As [`List::pop`].
    pub fn pop(&self) -> Result<Option<T>> {
        self.l.remove_at_locked(None)
    }
    /// As [`List::get`].
    pub fn get(&self, i: usize) -> Result<Option<T>> {
        self.l.get(i)
    }
    /// As [`List::set`].
    pub fn set(&self, i: usize, x: T) -> Result<()> {
        let b = self.l.enc(&x)?;
        self.l.set_locked(i, &b)
    }
    /// As [`List::len`].
    pub fn len(&self) -> usize {
        self.l.len()
    }
    /// As [`List::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.l.is_empty()
    }
    /// As [`List::to_vec`].
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.l.to_vec()
    }
}
