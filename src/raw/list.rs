//! The vector behind `List`: byte-string items in a
//! [`RawHeap`](super::heap::RawHeap), crash-consistent through its journal.
//!
//! ## Layout
//! * The heap's root is the **vector**: a block `[cap][slot; cap]` whose first `len`
//!   slots hold the payload offsets of the items' records (slots past `len` are
//!   garbage, so appending writes them without journaling, then publishes `len`).
//! * A **record** is a block `[len][bytes, padded to 8]`, written once before it is
//!   linked; `set` links a new record and frees the old one.
//! * Growing, inserting and removing in the middle build a new vector
//!   (copy-on-write) and switch the root with one journaled store.

use super::heap::{Heap, HeapError, Txn};

#[inline]
fn pad8(n: u64) -> u64 {
    n.div_ceil(8).saturating_mul(8)
}

#[inline]
fn slot_off(v: u64, i: u64) -> u64 {
    v + 8 + i * 8
}

/// The vector's payload offset and capacity (`None` before the first push), checked
/// to hold `len` slots.
pub fn vector(h: &Heap<'_>) -> Result<Option<(u64, u64)>, HeapError> {
    let v = h.root_word();
    if v == 0 {
        return if h.len_word() == 0 {
            Ok(None)
        } else {
            Err(HeapError::Corrupt("a non-empty list has no vector"))
        };
    }
    let cap = h.load(v)?;
    if cap < h.len_word() {
        return Err(HeapError::Corrupt("the list is longer than its vector"));
    }
    let bytes = cap
        .checked_mul(8)
        .ok_or(HeapError::Corrupt("the list vector is too large"))?;
    h.check_range(v + 8, bytes)?;
    Ok(Some((v, cap)))
}

/// The bytes of item `i`: `(offset, len)`, `None` past the end.
pub fn item(h: &Heap<'_>, i: u64) -> Result<Option<(u64, u64)>, HeapError> {
    if i >= h.len_word() {
        return Ok(None);
    }
    let Some((v, _)) = vector(h)? else {
        return Ok(None);
    };
    let r = h.load(slot_off(v, i))?;
    let n = h.load(r)?;
    h.check_range(r + 8, pad8(n))?;
    Ok(Some((r + 8, n)))
}

fn new_record(txn: &mut Txn<'_, '_>, bytes: &[u8]) -> Result<u64, HeapError> {
    let n = bytes.len() as u64;
    let off = txn.alloc(8 + pad8(n))?;
    txn.set_fresh(off, n)?;
    txn.write_fresh(off + 8, bytes)?;
    Ok(off)
}

/// Builds a vector of capacity `cap` (at least `len_after`) from the current one,
/// leaving a gap of `gap` slots at `at` (or dropping slot `at` if `drop_at`), and
/// links it (journaled); returns it. The old vector is freed.
fn rebuild(
    txn: &mut Txn<'_, '_>,
    len_after: u64,
    at: u64,
    gap: u64,
    drop_at: bool,
) -> Result<(u64, u64), HeapError> {
    let h = *txn.heap();
    let len = h.len_word();
    // Every element takes a vector word and a block of at least 16 bytes: a larger
    // count was written over (see `dict::ensure_room`).
    if len > h.capacity() / 16 {
        return Err(HeapError::Corrupt("the list length is impossible"));
    }
    let old = vector(&h)?;
    let mut cap = 4u64;
    while cap < len_after {
        cap = cap
            .checked_mul(2)
            .ok_or(HeapError::Corrupt("the list length is impossible"))?;
    }
    let bytes = cap
        .checked_mul(8)
        .and_then(|b| b.checked_add(8))
        .ok_or(HeapError::Corrupt("the list length is impossible"))?;
    let v2 = txn.alloc(bytes)?;
    txn.set_fresh(v2, cap)?;
    if let Some((v, _)) = old {
        let mut j = 0u64;
        for i in 0..len {
            if i == at {
                if drop_at {
                    continue;
                }
                j += gap;
            }
            txn.set_fresh(slot_off(v2, j), h.load(slot_off(v, i))?)?;
            j += 1;
        }
    }
    txn.publish();
    txn.set_root(v2)?;
    if let Some((v, _)) = old {
        txn.free(v)?;
    }
    Ok((v2, cap))
}

/// Appends `items` (all or nothing).
pub fn extend<'i>(
    txn: &mut Txn<'_, '_>,
    items: impl ExactSizeIterator<Item = &'i [u8]>,
) -> Result<(), HeapError> {
    let h = *txn.heap();
    let len = h.len_word();
    let n = items.len() as u64;
    let need = len
        .checked_add(n)
        .ok_or(HeapError::Corrupt("the list length is impossible"))?;
    let (v, _) = match vector(&h)? {
        Some((v, cap)) if cap >= need => (v, cap),
        _ => rebuild(txn, need, u64::MAX, 0, false)?,
    };
    for (k, bytes) in items.enumerate() {
        let r = new_record(txn, bytes)?;
        // Slots past `len` are not part of the list yet: no journal needed.
        txn.set_fresh(slot_off(v, len + k as u64), r)?;
    }
    txn.publish();
    txn.set_len(need)
}

/// Replaces item `i` (which exists).
pub fn set(txn: &mut Txn<'_, '_>, i: u64, bytes: &[u8]) -> Result<(), HeapError> {
    let h = *txn.heap();
    let (v, _) = vector(&h)?.ok_or(HeapError::Corrupt("the list has no vector"))?;
    let old = h.load(slot_off(v, i))?;
    let r = new_record(txn, bytes)?;
    txn.publish();
    txn.jset(slot_off(v, i), r)?;
    txn.free(old)
}

/// Inserts before item `i` (`i <= len`).
pub fn insert(txn: &mut Txn<'_, '_>, i: u64, bytes: &[u8]) -> Result<(), HeapError> {
    let h = *txn.heap();
    let len = h.len_word();
    let len_after = len
        .checked_add(1)
        .ok_or(HeapError::Corrupt("the list length is impossible"))?;
    let r = new_record(txn, bytes)?;
    let (v, _) = rebuild(txn, len_after, i, 1, false)?;
    txn.set_fresh(slot_off(v, i), r)?;
    txn.set_len(len_after)
}

/// Removes item `i` (which exists).
pub fn remove(txn: &mut Txn<'_, '_>, i: u64) -> Result<(), HeapError> {
    let h = *txn.heap();
    let len = h.len_word();
    let (v, _) = vector(&h)?.ok_or(HeapError::Corrupt("the list has no vector"))?;
    let old = h.load(slot_off(v, i))?;
    let len_after = len.saturating_sub(1);
    if i.saturating_add(1) == len {
        txn.publish();
    } else {
        rebuild(txn, len_after, i, 0, true)?;
    }
    txn.set_len(len_after)?;
    txn.free(old)
}
