//! The hash table behind `Dict`: byte-string keys and values in a
//! [`RawHeap`](super::heap::RawHeap), crash-consistent through its journal.
//!
//! ## Layout
//! * The heap's root is the **table**: a block `[cap][slot; cap]`, `cap` a power of
//!   two; a slot is [`EMPTY`], [`TOMB`] (a removed entry: probing continues past it)
//!   or the payload offset of a record tagged with the top 16 bits of its key's hash.
//!   Linear probing from `hash & (cap - 1)`.
//! * A **record** is a block `[hash][key len][value len][key, padded to 8][value]`,
//!   written once, before it is linked, and never changed: replacing a value links a
//!   new record and frees the old one.
//! * The heap's `len` counts entries, its `aux` tombstones. The table is rebuilt
//!   (copy-on-write: a fresh table, then one journaled root store) when entries plus
//!   tombstones would pass 3/4 of it, at twice the entries.
//!
//! Every writer function here runs inside a [`Txn`] the caller commits; every reader
//! function works on an untrusted, possibly torn image and reports
//! [`HeapError::Corrupt`] on anything impossible (the caller retries if the version
//! moved).

use super::heap::{Heap, HeapError, Txn};

/// A never-used slot: probing stops here.
pub const EMPTY: u64 = 0;
/// A removed entry: probing continues past it; inserts may reuse it.
pub const TOMB: u64 = 1;

/// A slot holding a record: its payload offset in the low 48 bits, the top 16 bits
/// of the key's hash above them — so a probe skips records of other keys without
/// touching them (a cache miss each).
const OFF_MASK: u64 = (1 << 48) - 1;

#[inline]
fn tagged(off: u64, hash: u64) -> u64 {
    off | (hash & !OFF_MASK)
}
#[inline]
fn tag_matches(slot: u64, hash: u64) -> bool {
    (slot ^ hash) & !OFF_MASK == 0
}
#[inline]
fn slot_rec(slot: u64) -> u64 {
    slot & OFF_MASK
}

const REC_HEAD: u64 = 24;

/// A hash of key bytes (stable across builds: it is stored in the segment).
pub fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = K ^ (b.len() as u64);
    for c in b.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 32)
}

#[inline]
fn pad8(n: u64) -> u64 {
    n.div_ceil(8).saturating_mul(8)
}

/// A record, located and bounds-checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec {
    /// Payload offset of the record block.
    pub off: u64,
    /// The key's hash as stored.
    pub hash: u64,
    /// Key length in bytes.
    pub klen: u64,
    /// Value length in bytes.
    pub vlen: u64,
}

impl Rec {
    /// Offset of the key bytes.
    pub fn key_off(&self) -> u64 {
        self.off + REC_HEAD
    }
    /// Offset of the value bytes.
    pub fn val_off(&self) -> u64 {
        self.off + REC_HEAD + pad8(self.klen)
    }
}

/// Reads and bounds-checks the record at `off`.
pub fn record(h: &Heap<'_>, off: u64) -> Result<Rec, HeapError> {
    let hash = h.load(off)?;
    let klen = h.load(off + 8)?;
    let vlen = h.load(off + 16)?;
    let body = pad8(klen)
        .checked_add(pad8(vlen))
        .and_then(|b| b.checked_add(REC_HEAD))
        .ok_or(HeapError::Corrupt("a record length overflows"))?;
    h.check_range(off, body)?;
    Ok(Rec {
        off,
        hash,
        klen,
        vlen,
    })
}

/// The table's payload offset and capacity, `None` before the first insert.
pub fn table(h: &Heap<'_>) -> Result<Option<(u64, u64)>, HeapError> {
    let t = h.root_word();
    if t == 0 {
        return Ok(None);
    }
    let cap = h.load(t)?;
    if !cap.is_power_of_two() || cap < 8 {
        return Err(HeapError::Corrupt(
            "the hash table has an impossible capacity",
        ));
    }
    let bytes = cap
        .checked_mul(8)
        .ok_or(HeapError::Corrupt("the hash table is too large"))?;
    h.check_range(t + 8, bytes)?;
    Ok(Some((t, cap)))
}

#[inline]
fn slot_off(t: u64, i: u64) -> u64 {
    t + 8 + i * 8
}

/// Finds `key` (with hash `hash`): the slot's offset and the record.
pub fn find(h: &Heap<'_>, hash: u64, key: &[u8]) -> Result<Option<(u64, Rec)>, HeapError> {
    let Some((t, cap)) = table(h)? else {
        return Ok(None);
    };
    let mut i = hash & (cap - 1);
    for _ in 0..cap {
        let s = h.load(slot_off(t, i))?;
        if s == EMPTY {
            return Ok(None);
        }
        if s != TOMB && tag_matches(s, hash) {
            let r = record(h, slot_rec(s))?;
            if r.hash == hash && r.klen == key.len() as u64 && h.bytes_eq(r.key_off(), key)? {
                return Ok(Some((slot_off(t, i), r)));
            }
        }
        i = (i + 1) & (cap - 1);
    }
    Ok(None)
}

/// Calls `f` on every record, in table order; `Corrupt` if more records than `len`
/// are found.
pub fn for_each(
    h: &Heap<'_>,
    mut f: impl FnMut(&Rec) -> Result<(), HeapError>,
) -> Result<(), HeapError> {
    let Some((t, cap)) = table(h)? else {
        return Ok(());
    };
    let len = h.len_word();
    let mut seen = 0u64;
    for i in 0..cap {
        let s = h.load(slot_off(t, i))?;
        if s == EMPTY || s == TOMB {
            continue;
        }
        seen += 1;
        if seen > len {
            return Err(HeapError::Corrupt(
                "the table holds more entries than its length",
            ));
        }
        f(&record(h, slot_rec(s))?)?;
    }
    Ok(())
}

/// Allocates and fills a record.
fn new_record(txn: &mut Txn<'_, '_>, hash: u64, key: &[u8], val: &[u8]) -> Result<u64, HeapError> {
    let (kl, vl) = (key.len() as u64, val.len() as u64);
    let size = REC_HEAD + pad8(kl) + pad8(vl);
    let off = txn.alloc(size)?;
    txn.set_fresh(off, hash)?;
    txn.set_fresh(off + 8, kl)?;
    txn.set_fresh(off + 16, vl)?;
    txn.write_fresh(off + REC_HEAD, key)?;
    txn.write_fresh(off + REC_HEAD + pad8(kl), val)?;
    Ok(off)
}

/// Inserts or replaces: `found` is what [`find`] returned for this key in this
/// transaction.
pub fn insert(
    txn: &mut Txn<'_, '_>,
    hash: u64,
    key: &[u8],
    val: &[u8],
    found: Option<(u64, Rec)>,
) -> Result<(), HeapError> {
    let rec = new_record(txn, hash, key, val)?;
    let rec = tagged(rec, hash);
    if let Some((slot, old)) = found {
        txn.publish();
        txn.jset(slot, rec)?;
        return txn.free(old.off);
    }
    let (t, cap) = ensure_room(txn)?;
    let h = *txn.heap();
    let mut i = hash & (cap - 1);
    for _ in 0..cap {
        let s = h.load(slot_off(t, i))?;
        if s == EMPTY || s == TOMB {
            txn.publish();
            txn.jset(slot_off(t, i), rec)?;
            if s == TOMB {
                txn.set_aux(h.aux_word().saturating_sub(1))?;
            }
            return txn.set_len(h.len_word().saturating_add(1));
        }
        i = (i + 1) & (cap - 1);
    }
    Err(HeapError::Corrupt("the hash table has no free slot"))
}

/// Removes the entry `found` (from [`find`]).
pub fn remove(txn: &mut Txn<'_, '_>, found: (u64, Rec)) -> Result<(), HeapError> {
    let h = *txn.heap();
    txn.publish();
    txn.jset(found.0, TOMB)?;
    txn.set_len(h.len_word().saturating_sub(1))?;
    txn.set_aux(h.aux_word().saturating_add(1))?;
    txn.free(found.1.off)
}

/// The table, rebuilt first if one more entry would fill it past 3/4.
fn ensure_room(txn: &mut Txn<'_, '_>) -> Result<(u64, u64), HeapError> {
    let h = *txn.heap();
    let (len, tombs) = (h.len_word(), h.aux_word());
    // Every entry takes a block of at least 16 bytes: a larger count was written
    // over (it would otherwise ask for a table of exabytes, and read as "full").
    if len > h.capacity() / 16 {
        return Err(HeapError::Corrupt("the dict length is impossible"));
    }
    let cur = table(&h)?;
    if let Some((t, cap)) = cur {
        if len
            .saturating_add(tombs)
            .saturating_add(1)
            .saturating_mul(4)
            <= cap.saturating_mul(3)
        {
            return Ok((t, cap));
        }
    }
    let mut new_cap = 8u64;
    while len.saturating_add(1).saturating_mul(2) > new_cap {
        new_cap = new_cap
            .checked_mul(2)
            .ok_or(HeapError::Corrupt("the dict length is impossible"))?;
    }
    let bytes = new_cap
        .checked_mul(8)
        .and_then(|b| b.checked_add(8))
        .ok_or(HeapError::Corrupt("the dict length is impossible"))?;
    let t2 = txn.alloc(bytes)?;
    txn.set_fresh(t2, new_cap)?;
    for i in 0..new_cap {
        txn.set_fresh(slot_off(t2, i), EMPTY)?;
    }
    if let Some((t, cap)) = cur {
        let mut moved = 0u64;
        for i in 0..cap {
            let s = h.load(slot_off(t, i))?;
            if s == EMPTY || s == TOMB {
                continue;
            }
            moved += 1;
            if moved > len {
                return Err(HeapError::Corrupt(
                    "the table holds more entries than its length",
                ));
            }
            let r = record(&h, slot_rec(s))?;
            let mut j = r.hash & (new_cap - 1);
            while h.load(slot_off(t2, j))? != EMPTY {
                j = (j + 1) & (new_cap - 1);
            }
            txn.set_fresh(slot_off(t2, j), s)?;
        }
    }
    txn.publish();
    txn.set_root(t2)?;
    txn.set_aux(0)?;
    if let Some((t, _)) = cur {
        txn.free(t)?;
    }
    Ok((t2, new_cap))
}
