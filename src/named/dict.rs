//! `Dict<K, V>`: Python's `Manager().dict()` in named shared memory, no server.

use super::common::container::{
    container_surface, copy_bytes, decode, encode, Container, DEFAULT_MAX_BYTES,
};
use super::common::{named_handle, Held};
use crate::raw::dict as raw;
use crate::raw::heap::Heap;
use crate::segment::{ObjectKind, Options, TypeInfo};
use crate::Result;
use core::fmt;
use core::marker::PhantomData;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A hash map shared by name between processes, like Python's `Manager().dict()` —
/// without a server process: the entries live in the segment itself.
///
/// * **Any serde types**: keys and values are serialized with postcard. **Keys are
///   compared by their serialized bytes**, so `K` needs no `Hash`/`Eq`, and two keys
///   are the same key exactly when they serialize alike (true for every derived or
///   std impl; a hand-written `Serialize` that is not canonical — say, a set that
///   serializes in iteration order — makes equal values distinct keys).
/// * **It grows**: no capacity to choose. The segment reserves
///   [`DEFAULT_MAX_BYTES`](Dict::DEFAULT_MAX_BYTES) of address space (a sparse file:
///   memory is committed in chunks with `posix_fallocate` as the dict fills, so a full
///   `/dev/shm` is an error, never a SIGBUS), every attached process sees the growth,
///   and the space of removed entries is reused.
///   [`create_with_limit`](Dict::create_with_limit) sets a smaller (or larger) limit.
/// * **Crash-consistent**: a process killed inside any mutating call leaves the dict
///   as before or as after that call; the next writer repairs it transparently.
/// * **Readers never block**: `get`, `keys`, `items`, ... copy out under a seqlock
///   and retry if a writer published meanwhile (falling back to the lock only after
///   many retries, e.g. when a writer died mid-call).
/// * **Several operations at once**: [`lock`](Dict::lock) returns a [`DictGuard`]
///   that excludes other writers (Python's `with lock: d[k] = ...`). Each operation
///   through the guard commits on its own: readers may see the state between them,
///   and a crash keeps the completed ones.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::Dict;
/// let name = format!("doc-dict-{}", std::process::id());
/// let d: Dict<String, u64> = Dict::create(&name)?;
/// d.insert("apples".into(), 3)?;
/// let other: Dict<String, u64> = Dict::open(&name)?; // any process can do this
/// other.update("apples".into(), |n| Some(n.unwrap_or(0) + 1))?;
/// assert_eq!(d.get(&"apples".to_string())?, Some(4));
/// # Ok(()) }
/// ```
pub struct Dict<K, V> {
    c: Container,
    _t: PhantomData<Marker<K, V>>,
}

named_handle! {
    impl[K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned] Dict<K, V>: "dict", c;
    debug[K, V] "Dict" {
        "key" => |_| core::any::type_name::<K>(),
        "value" => |_| core::any::type_name::<V>(),
    };
    /// Opens the dict `name`. `Err(WrongKind)` if it is not a dict, `Err(WrongType)`
    /// if it was created with other key or value types (the message names both).
    open();
    /// Opens `name`, creating it empty if it does not exist.
    open_or_create();
    /// How often a writer waiting for the lock checks that its holder is alive: the
    /// bound on how long a dead writer can delay others (default 10 ms).
    with_probe_interval => c.probe;
}

container_surface! {
    impl[K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned]
    Dict<K, V>: "dict", "entries"
}

impl<K, V> Clone for Dict<K, V> {
    fn clone(&self) -> Self {
        Dict {
            c: self.c.clone(),
            _t: PhantomData,
        }
    }
}

/// The handle's marker: it neither owns nor borrows K or V, so it is Send + Sync
/// whatever they are.
type Marker<K, V> = fn((K, V)) -> (K, V);

/// Stored bytes of one entry.
type RawEntry = (Vec<u8>, Vec<u8>);

impl<K, V> Dict<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The byte limit of a dict created without one (64 GiB of address space).
    pub const DEFAULT_MAX_BYTES: u64 = DEFAULT_MAX_BYTES;

    fn ty() -> TypeInfo {
        TypeInfo::of::<Dict<K, V>>()
    }

    /// Creates the empty dict `name`. `Err(AlreadyExists)` if the name is taken.
    pub fn create(name: &str) -> Result<Dict<K, V>> {
        Dict::create_with_limit(name, DEFAULT_MAX_BYTES)
    }

    /// Creates the dict `name` that may hold at most about `max_bytes` bytes of
    /// entries (and index); an insert past it fails with `InvalidArgument` and
    /// leaves the dict unchanged.
    pub fn create_with_limit(name: &str, max_bytes: u64) -> Result<Dict<K, V>> {
        Dict::create_with(name, max_bytes, &Options::default())
    }

    /// [`create_with_limit`](Dict::create_with_limit) with explicit segment [`Options`].
    pub fn create_with(name: &str, max_bytes: u64, opts: &Options) -> Result<Dict<K, V>> {
        let c = Container::create(name, ObjectKind::Dict, Self::ty(), max_bytes, opts)?;
        Ok(Dict { c, _t: PhantomData })
    }

    /// [`open`](Dict::open) with explicit [`Options`] (the init timeout).
    pub fn open_with(name: &str, opts: &Options) -> Result<Dict<K, V>> {
        let c = Container::open(name, ObjectKind::Dict, Self::ty(), opts)?;
        Ok(Dict { c, _t: PhantomData })
    }

    fn key_bytes(&self, k: &K) -> Result<(Vec<u8>, u64)> {
        let kb = encode("dict", self.name(), k)?;
        let h = raw::hash_bytes(&kb);
        Ok((kb, h))
    }

    /// Inserts `v` under `k`; returns the value it replaced.
    pub fn insert(&self, k: K, v: V) -> Result<Option<V>> {
        let _held = self.c.lock_op()?;
        self.insert_locked(&k, &v)
    }

    fn insert_locked(&self, k: &K, v: &V) -> Result<Option<V>> {
        let (kb, h) = self.key_bytes(k)?;
        let vb = encode("dict", self.name(), v)?;
        let old = self.c.txn_locked(|txn| {
            let heap = *txn.heap();
            let found = raw::find(&heap, h, &kb)?;
            let old = match found {
                Some((_, r)) => Some(copy_bytes(&heap, r.val_off(), r.vlen)?),
                None => None,
            };
            raw::insert(txn, h, &kb, &vb, found)?;
            Ok(old)
        })?;
        old.map(|b| decode(self.name(), &b)).transpose()
    }

    /// The value under `k`.
    pub fn get(&self, k: &K) -> Result<Option<V>> {
        let (kb, h) = self.key_bytes(k)?;
        let b = self.c.read(|heap| match raw::find(heap, h, &kb)? {
            Some((_, r)) => copy_bytes(heap, r.val_off(), r.vlen).map(Some),
            None => Ok(None),
        })?;
        b.map(|b| decode(self.name(), &b)).transpose()
    }

    /// True if `k` is in the dict.
    pub fn contains_key(&self, k: &K) -> Result<bool> {
        let (kb, h) = self.key_bytes(k)?;
        self.c.read(|heap| Ok(raw::find(heap, h, &kb)?.is_some()))
    }

    /// Removes `k`; returns its value.
    pub fn remove(&self, k: &K) -> Result<Option<V>> {
        let _held = self.c.lock_op()?;
        self.remove_locked(k)
    }

    fn remove_locked(&self, k: &K) -> Result<Option<V>> {
        let (kb, h) = self.key_bytes(k)?;
        let old = self.c.txn_locked(|txn| {
            let heap = *txn.heap();
            match raw::find(&heap, h, &kb)? {
                Some(found) => {
                    let b = copy_bytes(&heap, found.1.val_off(), found.1.vlen)?;
                    raw::remove(txn, found)?;
                    Ok(Some(b))
                }
                None => Ok(None),
            }
        })?;
        old.map(|b| decode(self.name(), &b)).transpose()
    }

    /// Atomic read-modify-write: `f` sees the current value (or `None`) and returns
    /// the new one (`None` removes the key); returns the new value. `f` runs once,
    /// under the dict's lock: other writers wait, readers do not.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// let name = format!("doc-dict-update-{}", std::process::id());
    /// let d: multiproc::Dict<String, u32> = multiproc::Dict::create(&name)?;
    /// for _ in 0..3 {
    ///     d.update("hits".into(), |n| Some(n.unwrap_or(0) + 1))?;
    /// }
    /// assert_eq!(d.get(&"hits".into())?, Some(3));
    /// # Ok(()) }
    /// ```
    pub fn update(&self, k: K, f: impl FnMut(Option<V>) -> Option<V>) -> Result<Option<V>> {
        let _held = self.c.lock_op()?;
        self.update_locked(&k, f)
    }

    fn update_locked(&self, k: &K, mut f: impl FnMut(Option<V>) -> Option<V>) -> Result<Option<V>> {
        let (kb, h) = self.key_bytes(k)?;
        // Read (under the lock: nothing changes meanwhile), run `f` before any change,
        // so a panicking `f` leaves nothing to repair.
        let heap = self.c.heap();
        let cur = raw::find(&heap, h, &kb).map_err(|e| self.c.error(e))?;
        let old = match cur {
            Some((_, r)) => {
                let b = copy_bytes(&heap, r.val_off(), r.vlen).map_err(|e| self.c.error(e))?;
                Some(decode::<V>(self.name(), &b)?)
            }
            None => None,
        };
        let new = f(old);
        let vb = new
            .as_ref()
            .map(|v| encode("dict", self.name(), v))
            .transpose()?;
        self.c.txn_locked(|txn| match (&vb, cur) {
            (Some(vb), found) => raw::insert(txn, h, &kb, vb, found),
            (None, Some(found)) => raw::remove(txn, found),
            (None, None) => Ok(()),
        })?;
        Ok(new)
    }

    fn raw_entries(&self) -> Result<Vec<RawEntry>> {
        self.c.read(entries)
    }

    /// The keys, as one consistent snapshot.
    pub fn keys(&self) -> Result<Vec<K>> {
        let es = self.c.read(|heap| {
            let mut out = Vec::with_capacity(heap.len_word().min(1 << 20) as usize);
            raw::for_each(heap, |r| {
                out.push(copy_bytes(heap, r.key_off(), r.klen)?);
                Ok(())
            })?;
            Ok(out)
        })?;
        es.iter().map(|k| decode(self.name(), k)).collect()
    }

    /// The values, as one consistent snapshot.
    pub fn values(&self) -> Result<Vec<V>> {
        let es = self.c.read(|heap| {
            let mut out = Vec::with_capacity(heap.len_word().min(1 << 20) as usize);
            raw::for_each(heap, |r| {
                out.push(copy_bytes(heap, r.val_off(), r.vlen)?);
                Ok(())
            })?;
            Ok(out)
        })?;
        es.iter().map(|v| decode(self.name(), v)).collect()
    }

    /// The entries, as one consistent snapshot.
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        self.raw_entries()?
            .iter()
            .map(|(k, v)| Ok((decode(self.name(), k)?, decode(self.name(), v)?)))
            .collect()
    }

    /// Takes the dict's writer lock: a guard for several operations with no other
    /// writer in between (Python's `with lock: ...`). A writer that died holding the
    /// lock is recovered first (its interrupted call rolled back), transparently.
    ///
    /// ```
    /// # fn main() -> multiproc::Result<()> {
    /// let name = format!("doc-dict-lock-{}", std::process::id());
    /// let d: multiproc::Dict<u32, u32> = multiproc::Dict::create(&name)?;
    /// {
    ///     let g = d.lock();
    ///     let n = g.get(&1)?.unwrap_or(0);
    ///     g.insert(1, n + 10)?;
    /// }
    /// assert_eq!(d.get(&1)?, Some(10));
    /// # Ok(()) }
    /// ```
    pub fn lock(&self) -> DictGuard<'_, K, V> {
        DictGuard {
            _held: self.c.lock(),
            d: self,
        }
    }

    /// True while some thread holds the dict's writer lock.
    pub fn is_locked(&self) -> bool {
        self.c.is_locked()
    }
}

fn entries(heap: &Heap<'_>) -> core::result::Result<Vec<RawEntry>, crate::raw::HeapError> {
    let mut out = Vec::with_capacity(heap.len_word().min(1 << 20) as usize);
    raw::for_each(heap, |r| {
        out.push((
            copy_bytes(heap, r.key_off(), r.klen)?,
            copy_bytes(heap, r.val_off(), r.vlen)?,
        ));
        Ok(())
    })?;
    Ok(out)
}

/// The dict's writer lock, held: operations through it run with no other writer in
/// between. Each one still commits on its own (crash-consistent per call).
#[must_use = "the lock is released when the guard drops"]
pub struct DictGuard<'a, K, V> {
    d: &'a Dict<K, V>,
    _held: Held<'a>,
}

impl<K, V> fmt::Debug for DictGuard<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DictGuard")
            .field("dict", &self.d.c.name())
            .finish()
    }
}

impl<K, V> DictGuard<'_, K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// As [`Dict::insert`].
    pub fn insert(&self, k: K, v: V) -> Result<Option<V>> {
        self.d.insert_locked(&k, &v)
    }
    /// As [`Dict::get`].
    pub fn get(&self, k: &K) -> Result<Option<V>> {
        self.d.get(k)
    }
    /// As [`Dict::remove`].
    pub fn remove(&self, k: &K) -> Result<Option<V>> {
        self.d.remove_locked(k)
    }
    /// As [`Dict::contains_key`].
    pub fn contains_key(&self, k: &K) -> Result<bool> {
        self.d.contains_key(k)
    }
    /// As [`Dict::update`].
    pub fn update(&self, k: K, f: impl FnMut(Option<V>) -> Option<V>) -> Result<Option<V>> {
        self.d.update_locked(&k, f)
    }
    /// As [`Dict::clear`].
    pub fn clear(&self) -> Result<()> {
        self.d.c.txn_locked(|txn| txn.reset())
    }
    /// As [`Dict::len`].
    pub fn len(&self) -> usize {
        self.d.len()
    }
    /// As [`Dict::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.d.is_empty()
    }
    /// As [`Dict::items`].
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        self.d.items()
    }
}
