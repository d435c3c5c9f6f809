//! A postcard deserializer that reads a message *in place* from memory another
//! process can write (a pool area), copying as it goes.
//!
//! `postcard::from_bytes` wants a `&[u8]`, and serde visitors given a borrowed byte
//! string copy it again (`ByteBuf`, `String` and `Vec<u8>` newtypes call `to_vec`): a
//! large argument would be copied out of its area into private memory first and then
//! once more by the visitor. A [`Reader`] instead never hands serde a reference into
//! the area:
//! * scalars, varints and tags are read by copying a few bytes out;
//! * a byte string (`deserialize_bytes` / `deserialize_byte_buf`) is copied once,
//!   straight from the area into a fresh `Vec<u8>` handed over with
//!   `visit_byte_buf`; a string (`deserialize_str` / `deserialize_string`) likewise,
//!   validated as UTF-8 on the private copy and handed over with `visit_string`.
//!
//! Every length read from the message is checked against the bytes left in it
//! *before* anything is allocated: a hostile length is an error, never an
//! out-of-memory abort. The wire format and the errors are postcard's own (1.x), so
//! a message decodes here exactly as `postcard::from_bytes` (1.2) decodes the same
//! bytes (the `pool_de` fuzz target compares them). One difference from 1.1: a
//! `char` whose bytes hold more than one character is refused, as 1.2 refuses it.
//!
//! A segment truncated under the reader reads as zeros (see [`crate::sigbus`]); the
//! caller checks [`Reader::intact`] after decoding and refuses what it got.

use super::blob::Buf;
use crate::Segment;
use core::marker::PhantomData;
use postcard::Error as PcError;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

type PcResult<T> = Result<T, PcError>;

/// A cursor over a message in memory that may be written concurrently by another
/// process: see the module docs.
pub(crate) struct Reader<'a> {
    ptr: *const u8,
    /// The message's length (`ptr..ptr + len` stays mapped for `'a`).
    len: usize,
    pos: usize,
    /// The segment the bytes are in, if any: its broken flag is checked by `intact`.
    seg: Option<&'a Segment>,
    _bytes: PhantomData<&'a [u8]>,
}

impl<'a> Reader<'a> {
    /// A reader over private bytes.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            pos: 0,
            seg: None,
            _bytes: PhantomData,
        }
    }

    /// A reader over the first `len` bytes of `seg`'s mapping; `None` if the segment
    /// is shorter.
    pub fn in_segment(seg: &'a Segment, len: usize) -> Option<Reader<'a>> {
        (len <= seg.len()).then_some(Reader {
            ptr: seg.as_ptr(),
            len,
            pos: 0,
            seg: Some(seg),
            _bytes: PhantomData,
        })
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.len - self.pos
    }

    /// False if the segment under the reader was truncated under a page this
    /// process touched (what was read may be zeros standing in for lost bytes). One
    /// relaxed load: the `SIGBUS` handler sets the flag before it maps a zero page.
    pub fn intact(&self) -> bool {
        self.seg.map_or(true, |s| !s.broken())
    }

    /// A reader over the next `n` bytes (this one skips them); `None` if fewer are left.
    pub fn split(&mut self, n: usize) -> Option<Reader<'a>> {
        if n > self.remaining() {
            return None;
        }
        let r = Reader {
            // SAFETY: `pos + n <= len`: in bounds of the mapping.
            ptr: unsafe { self.ptr.add(self.pos) },
            len: n,
            pos: 0,
            seg: self.seg,
            _bytes: PhantomData,
        };
        self.pos += n;
        Some(r)
    }

    /// Copies the next `dst.len()` bytes into `dst`.
    #[inline]
    pub fn read_into(&mut self, dst: &mut [u8]) -> PcResult<()> {
        if dst.len() > self.remaining() {
            return Err(PcError::DeserializeUnexpectedEnd);
        }
        // SAFETY: `pos + dst.len() <= len`, mapped for `'a`; `dst` is private memory.
        // The source may be written by another process meanwhile: we copy bytes out
        // and never form a reference to them (the crate's stance on reads racing a
        // foreign writer); whatever we copy is parsed as untrusted input.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.add(self.pos), dst.as_mut_ptr(), dst.len())
        };
        self.pos += dst.len();
        Ok(())
    }

    /// The next byte.
    #[inline]
    pub fn byte(&mut self) -> PcResult<u8> {
        if self.pos >= self.len {
            return Err(PcError::DeserializeUnexpectedEnd);
        }
        // SAFETY: `pos < len`: in bounds; a plain byte copy (as in `read`).
        let b = unsafe { self.ptr.add(self.pos).read() };
        self.pos += 1;
        Ok(b)
    }

    /// The next `N` bytes.
    #[inline]
    pub fn array<const N: usize>(&mut self) -> PcResult<[u8; N]> {
        let mut a = [0; N];
        self.read_into(&mut a)?;
        Ok(a)
    }

    /// The next `n` bytes, copied once into a new buffer (after checking that the
    /// message holds them, so a hostile `n` allocates nothing). A large one comes from
    /// the stock of spare buffers whose pages are faulted in.
    pub fn owned(&mut self, n: usize) -> PcResult<Vec<u8>> {
        if n > self.remaining() {
            return Err(PcError::DeserializeUnexpectedEnd);
        }
        let mut v = Vec::new();
        Buf::reserve(&mut v, n);
        // SAFETY: `pos + n <= len` (checked above), `v` has room for `n` bytes; a
        // plain copy out (as in `read`).
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.add(self.pos), v.as_mut_ptr(), n);
            v.set_len(n);
        }
        self.pos += n;
        Ok(v)
    }

    /// A little-endian postcard varint of a `BITS`-bit integer, decoded in `T`
    /// arithmetic (`u64` for every integer but `u128`/`i128`: shifting 128-bit
    /// values is twice as slow): at most `ceil(BITS / 7)` bytes, the last of which
    /// carries only the bits left (postcard's checks, so the same inputs are
    /// refused).
    #[inline]
    fn varint<T, const BITS: u32>(&mut self) -> PcResult<T>
    where
        T: From<u8> + core::ops::Shl<u32, Output = T> + core::ops::BitOrAssign,
    {
        const { assert!(BITS as usize <= 8 * core::mem::size_of::<T>()) };
        let max_bytes = BITS.div_ceil(7);
        let last_max = ((1u16 << (BITS - 7 * (max_bytes - 1))) - 1) as u8;
        // The common case first: one byte.
        let b = self.byte()?;
        if b & 0x80 == 0 {
            return Ok(T::from(b));
        }
        let mut out = T::from(b & 0x7f);
        for i in 1..max_bytes {
            let b = self.byte()?;
            // `7 * i < BITS`; bits shifted out only when `b > last_max` (refused).
            out |= T::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == max_bytes - 1 && b > last_max {
                    return Err(PcError::DeserializeBadVarint);
                }
                return Ok(out);
            }
        }
        Err(PcError::DeserializeBadVarint)
    }

    #[inline]
    fn u16v(&mut self) -> PcResult<u16> {
        Ok(self.varint::<u64, 16>()? as u16)
    }
    #[inline]
    fn u32v(&mut self) -> PcResult<u32> {
        Ok(self.varint::<u64, 32>()? as u32)
    }
    #[inline]
    fn u64v(&mut self) -> PcResult<u64> {
        self.varint::<u64, 64>()
    }
    #[inline]
    fn usizev(&mut self) -> PcResult<usize> {
        let v = self.varint::<u64, { usize::BITS }>()?;
        usize::try_from(v).map_err(|_| PcError::DeserializeBadVarint)
    }

    /// A length prefix, checked against the bytes left when each element takes at
    /// least one byte (strings, byte strings).
    fn byte_len(&mut self) -> PcResult<usize> {
        let n = self.usizev()?;
        if n > self.remaining() {
            return Err(PcError::DeserializeUnexpectedEnd);
        }
        Ok(n)
    }

    fn string(&mut self) -> PcResult<String> {
        let n = self.byte_len()?;
        String::from_utf8(self.owned(n)?).map_err(|_| PcError::DeserializeBadUtf8)
    }
}

/// Decodes a `T` from the start of `r` (trailing bytes are left unread, as
/// `postcard::from_bytes` leaves them).
pub(crate) fn from_reader<T: de::DeserializeOwned>(r: &mut Reader<'_>) -> PcResult<T> {
    T::deserialize(r)
}

/// Decodes a `T` from private bytes through a [`Reader`]: the same answer as
/// `postcard::from_bytes` (the fuzz target checks it).
#[doc(hidden)]
pub fn from_bytes_copying<T: de::DeserializeOwned>(b: &[u8]) -> postcard::Result<T> {
    from_reader(&mut Reader::new(b))
}

fn zigzag(n: u128) -> i128 {
    ((n >> 1) as i128) ^ -((n & 1) as i128)
}

impl<'de> de::Deserializer<'de> for &mut Reader<'_> {
    type Error = PcError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> PcResult<V::Value> {
        Err(PcError::WontImplement)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        match self.byte()? {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            _ => Err(PcError::DeserializeBadBool),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_i8(self.byte()? as i8)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let n = self.u16v()?;
        v.visit_i16(zigzag(n.into()) as i16)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let n = self.u32v()?;
        v.visit_i32(zigzag(n.into()) as i32)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let n = self.u64v()?;
        v.visit_i64(zigzag(n.into()) as i64)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let n = self.varint::<u128, 128>()?;
        v.visit_i128(zigzag(n))
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_u8(self.byte()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_u16(self.u16v()?)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_u32(self.u32v()?)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_u64(self.u64v()?)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_u128(self.varint::<u128, 128>()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_f32(f32::from_le_bytes(self.array()?))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_f64(f64::from_le_bytes(self.array()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let n = self.usizev()?;
        if n > 4 {
            return Err(PcError::DeserializeBadChar);
        }
        let mut b = [0u8; 4];
        self.read_into(&mut b[..n])?;
        let mut chars = core::str::from_utf8(&b[..n])
            .map_err(|_| PcError::DeserializeBadChar)?
            .chars();
        // Exactly one char (postcard 1.2 checks this too; 1.1 ignored the rest).
        match (chars.next(), chars.next()) {
            (Some(c), None) => v.visit_char(c),
            _ => Err(PcError::DeserializeBadChar),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_string(self.string()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_string(self.string()?)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let n = self.byte_len()?;
        v.visit_byte_buf(self.owned(n)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let n = self.byte_len()?;
        v.visit_byte_buf(self.owned(n)?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        match self.byte()? {
            0 => v.visit_none(),
            1 => v.visit_some(self),
            _ => Err(PcError::DeserializeBadOption),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> PcResult<V::Value> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> PcResult<V::Value> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let len = self.usizev()?;
        v.visit_seq(Seq::new(self, len))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> PcResult<V::Value> {
        v.visit_seq(Seq::new(self, len))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        v: V,
    ) -> PcResult<V::Value> {
        v.visit_seq(Seq::new(self, len))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> PcResult<V::Value> {
        let len = self.usizev()?;
        v.visit_map(Map {
            entry_start: self.remaining(),
            r: self,
            len,
            empty: 0,
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> PcResult<V::Value> {
        v.visit_seq(Seq::new(self, fields.len()))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> PcResult<V::Value> {
        v.visit_enum(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _v: V) -> PcResult<V::Value> {
        Err(PcError::WontImplement)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _v: V) -> PcResult<V::Value> {
        Err(PcError::WontImplement)
    }
}

/// Most elements in a row that read no byte (zero-sized ones, such as `()`): a
/// sequence's length comes from the writer, and one of `u64::MAX` units would
/// otherwise keep a reader busy for ever. Refused as a bad encoding beyond it.
const MAX_EMPTY_RUN: usize = 1 << 24;

/// Counts an element that read no byte; `Err` past [`MAX_EMPTY_RUN`] of them in a row.
fn count_empty(empty: &mut usize, before: usize, after: usize) -> PcResult<()> {
    if before != after {
        *empty = 0;
        return Ok(());
    }
    *empty += 1;
    if *empty > MAX_EMPTY_RUN {
        return Err(PcError::DeserializeBadEncoding);
    }
    Ok(())
}

/// The elements of a sequence, tuple or struct.
struct Seq<'r, 'a> {
    r: &'r mut Reader<'a>,
    len: usize,
    /// Elements in a row that read no byte (see [`MAX_EMPTY_RUN`]).
    empty: usize,
}

impl<'r, 'a> Seq<'r, 'a> {
    fn new(r: &'r mut Reader<'a>, len: usize) -> Self {
        Seq { r, len, empty: 0 }
    }
}

impl<'de> de::SeqAccess<'de> for Seq<'_, '_> {
    type Error = PcError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> PcResult<Option<T::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        let before = self.r.remaining();
        let v = seed.deserialize(&mut *self.r)?;
        count_empty(&mut self.empty, before, self.r.remaining())?;
        Ok(Some(v))
    }

    /// The length, unless it exceeds the bytes left (as postcard does): a hostile
    /// length gives no hint, so nothing is preallocated from it.
    fn size_hint(&self) -> Option<usize> {
        (self.len <= self.r.remaining()).then_some(self.len)
    }
}

/// The entries of a map.
struct Map<'r, 'a> {
    r: &'r mut Reader<'a>,
    len: usize,
    /// Entries in a row that read no byte (see [`MAX_EMPTY_RUN`]).
    empty: usize,
    /// Bytes left when the current entry's key began.
    entry_start: usize,
}

impl<'de> de::MapAccess<'de> for Map<'_, '_> {
    type Error = PcError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> PcResult<Option<K::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        self.entry_start = self.r.remaining();
        seed.deserialize(&mut *self.r).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> PcResult<V::Value> {
        let v = seed.deserialize(&mut *self.r)?;
        // A key and its value are one entry.
        count_empty(&mut self.empty, self.entry_start, self.r.remaining())?;
        Ok(v)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'_> {
    type Error = PcError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> PcResult<(V::Value, Self)> {
        let i = self.u32v()?;
        let v = seed.deserialize(i.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'_> {
    type Error = PcError;

    fn unit_variant(self) -> PcResult<()> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> PcResult<T::Value> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> PcResult<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> PcResult<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    /// A byte string (serialized with `serialize_bytes`, read with `visit_byte_buf`:
    /// `serde_bytes`).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ByteBuf(#[serde(with = "serde_bytes")] Vec<u8>);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Newtype(i64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct TupleStruct(u8, String, Option<char>);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        id: u128,
        neg: i128,
        ratio: f32,
        big: f64,
        tags: Vec<String>,
        map: BTreeMap<u16, Option<bool>>,
        nested: Option<Box<Record>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        Newtype(u32),
        Tuple(i16, Vec<u8>),
        Struct { name: String, bytes: ByteBuf },
    }

    /// `v` decodes through a `Reader` exactly as postcard decodes its bytes.
    fn same<T>(v: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + Debug,
    {
        let b = postcard::to_allocvec(v).unwrap();
        let ours: T = from_bytes_copying(&b).unwrap();
        let theirs: T = postcard::from_bytes(&b).unwrap();
        assert_eq!(&ours, v);
        assert_eq!(ours, theirs);
        // And every truncation of it fails, as it does for postcard.
        for cut in 0..b.len().min(64) {
            let ours = from_bytes_copying::<T>(&b[..cut]);
            let theirs = postcard::from_bytes::<T>(&b[..cut]);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{cut} bytes of {v:?}");
        }
    }

    #[test]
    fn every_type_of_the_data_model_decodes_as_postcard_decodes_it() {
        same(&true);
        same(&false);
        for x in [i8::MIN, -1, 0, 1, i8::MAX] {
            same(&x);
        }
        for x in [i16::MIN, -300, 0, 300, i16::MAX] {
            same(&x);
        }
        for x in [i32::MIN, -70_000, 0, 70_000, i32::MAX] {
            same(&x);
        }
        for x in [i64::MIN, -1, 0, 1 << 40, i64::MAX] {
            same(&x);
        }
        for x in [i128::MIN, -1, 0, 1 << 100, i128::MAX] {
            same(&x);
        }
        for x in [0u8, 127, 128, 255] {
            same(&x);
        }
        for x in [0u16, 127, 128, 16_384, u16::MAX] {
            same(&x);
        }
        for x in [0u32, 1 << 21, u32::MAX] {
            same(&x);
        }
        for x in [0u64, 1 << 35, u64::MAX] {
            same(&x);
        }
        for x in [0u128, 1 << 70, u128::MAX] {
            same(&x);
        }
        same(&usize::MAX);
        same(&isize::MIN);
        same(&1.5f32);
        same(&f64::MIN_POSITIVE);
        for c in ['a', 'é', '€', '🦀'] {
            same(&c);
        }
        same(&String::new());
        same(&"héllo wörld".to_owned());
        same(&vec![1u8, 2, 3]);
        same(&ByteBuf(vec![7; 100_000]));
        same(&ByteBuf(Vec::new()));
        same(&Some(3u8));
        same(&None::<u8>);
        same(&());
        same(&Unit);
        same(&Newtype(-5));
        same(&(1u8, -2i32, "three".to_owned(), [4u16; 3]));
        same(&TupleStruct(9, "x".into(), Some('y')));
        same(&vec!["a".to_owned(), String::new(), "ccc".into()]);
        same(&vec![(); 5]);
        let mut map = BTreeMap::new();
        map.insert(1u16, Some(true));
        map.insert(500, None);
        let inner = Record {
            id: 1,
            neg: -1,
            ratio: 0.25,
            big: 1e300,
            tags: vec![],
            map: BTreeMap::new(),
            nested: None,
        };
        same(&Record {
            id: u128::MAX,
            neg: i128::MIN,
            ratio: -0.0,
            big: f64::MAX,
            tags: vec!["t".into(); 3],
            map,
            nested: Some(Box::new(inner)),
        });
        same(&Shape::Empty);
        same(&Shape::Newtype(u32::MAX));
        same(&Shape::Tuple(-7, vec![1, 2]));
        same(&Shape::Struct {
            name: "n".into(),
            bytes: ByteBuf(vec![0, 255]),
        });
        same(&vec![Shape::Empty, Shape::Newtype(1)]);
    }

    /// Whether we refuse `b` as `T`, and whether postcard does.
    fn refused<T: de::DeserializeOwned>(b: &[u8]) -> (bool, bool) {
        (
            from_bytes_copying::<T>(b).is_err(),
            postcard::from_bytes::<T>(b).is_err(),
        )
    }

    #[test]
    fn malformed_scalars_are_refused_as_postcard_refuses_them() {
        assert_eq!(refused::<bool>(&[2]), (true, true));
        assert_eq!(refused::<Option<u8>>(&[2]), (true, true));
        // A u16 varint whose third byte carries more than 2 bits.
        assert_eq!(refused::<u16>(&[0xff, 0xff, 0x04]), (true, true));
        // A u64 varint of 11 bytes.
        assert_eq!(refused::<u64>(&[0x80; 11]), (true, true));
        // A char of 5 bytes; one that is not UTF-8; one whose bytes hold two chars
        // (postcard 1.1 ignores the second; 1.2 refuses it, as we do).
        assert_eq!(
            refused::<char>(&[5, b'a', b'b', b'c', b'd', b'e']),
            (true, true)
        );
        assert_eq!(refused::<char>(&[1, 0xff]), (true, true));
        assert!(refused::<char>(&[2, b'a', b'b']).0);
        // A string that is not UTF-8.
        assert_eq!(refused::<String>(&[2, 0xc3, 0x28]), (true, true));
        assert_eq!(
            from_bytes_copying::<String>(&[2, 0xc3, 0x28]).unwrap_err(),
            PcError::DeserializeBadUtf8
        );
        // An enum variant index past the last one.
        assert_eq!(refused::<Shape>(&[9]), (true, true));
        // What postcard does not support, neither do we.
        assert_eq!(
            from_bytes_copying::<de::IgnoredAny>(&[0]).unwrap_err(),
            PcError::WontImplement
        );
    }

    /// The varint of `n`.
    fn varint(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn a_hostile_length_is_refused_before_anything_is_allocated() {
        // Lengths up to usize::MAX in front of a few bytes: an error each time (an
        // allocation of that size would abort the test process instead).
        for n in [5, 1 << 20, 1 << 40, u64::MAX] {
            let mut b = varint(n);
            b.extend_from_slice(b"abc");
            assert_eq!(
                from_bytes_copying::<ByteBuf>(&b).unwrap_err(),
                PcError::DeserializeUnexpectedEnd,
                "{n}"
            );
            assert_eq!(
                from_bytes_copying::<String>(&b).unwrap_err(),
                PcError::DeserializeUnexpectedEnd,
                "{n}"
            );
            assert!(from_bytes_copying::<Vec<u64>>(&b).is_err(), "{n}");
            assert!(from_bytes_copying::<Vec<String>>(&b).is_err(), "{n}");
            assert!(from_bytes_copying::<BTreeMap<u8, u8>>(&b).is_err(), "{n}");
            assert!(from_bytes_copying::<(u32, Vec<String>)>(&b).is_err(), "{n}");
        }
    }

    #[test]
    fn a_hostile_length_of_zero_sized_elements_is_refused_not_looped_through() {
        // Units read no byte: only the run limit stops a length of u64::MAX.
        let b = varint(u64::MAX);
        let t = std::time::Instant::now();
        assert_eq!(
            from_bytes_copying::<Vec<()>>(&b).unwrap_err(),
            PcError::DeserializeBadEncoding
        );
        let mut m = varint(u64::MAX);
        m.push(0); // one key byte, then only zero-sized entries
        assert!(from_bytes_copying::<Vec<((), ())>>(&m).is_err());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "{:?}",
            t.elapsed()
        );
        // Shorter runs decode as postcard decodes them, also between real bytes.
        for n in [0u64, 1, 1000, MAX_EMPTY_RUN as u64] {
            let b = postcard::to_allocvec(&vec![(); n as usize]).unwrap();
            assert_eq!(from_bytes_copying::<Vec<()>>(&b).unwrap().len(), n as usize);
        }
        let mut map = BTreeMap::new();
        for k in 0..300u16 {
            map.insert(k, ());
        }
        let b = postcard::to_allocvec(&map).unwrap();
        assert_eq!(from_bytes_copying::<BTreeMap<u16, ()>>(&b).unwrap(), map);
    }

    #[test]
    fn a_reader_never_reads_past_its_split() {
        let b = postcard::to_allocvec(&("abcdef".to_owned(), 7u8)).unwrap();
        let mut r = Reader::new(&b);
        // The string's length and 3 of its 6 bytes: the rest is out of reach.
        let mut part = r.split(4).unwrap();
        assert_eq!(
            from_reader::<String>(&mut part).unwrap_err(),
            PcError::DeserializeUnexpectedEnd
        );
        assert_eq!(r.remaining(), b.len() - 4);
        assert!(r.split(b.len()).is_none());
        assert!(r.split(b.len() - 4).is_some());
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn a_segment_truncated_under_the_reader_is_reported_not_a_crash() {
        let name = format!("mp-test-de-trunc-{}", std::process::id());
        let seg = Segment::create(&name, 1 << 20).unwrap();
        let v = ByteBuf(vec![0x5a; 900_000]);
        let b = postcard::to_allocvec(&v).unwrap();
        // SAFETY: the segment maps 1 MiB, more than `b`; nobody else knows it.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), seg.as_ptr(), b.len()) };
        // Cut to one page, as any process with write access could.
        seg.cut_object(4096);
        let mut r = Reader::in_segment(&seg, b.len()).unwrap();
        // The bytes past the cut read as zeros (no SIGBUS death) and say so.
        let got = from_reader::<ByteBuf>(&mut r);
        assert!(!r.intact());
        assert_ne!(got.ok(), Some(v));
        drop(seg);
        let _ = crate::segment::unlink(&name);
    }

    #[test]
    fn a_byte_string_in_a_segment_is_copied_once_into_the_value() {
        let name = format!("mp-test-de-{}", std::process::id());
        let seg = Segment::create(&name, 1 << 20).unwrap();
        let v = (
            ByteBuf((0..200_000u32).map(|i| i as u8).collect()),
            "tail".to_owned(),
        );
        let b = postcard::to_allocvec(&v).unwrap();
        // SAFETY: the segment maps 1 MiB, more than `b`; nobody else knows it.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), seg.as_ptr(), b.len()) };
        let mut r = Reader::in_segment(&seg, b.len()).unwrap();
        let got: (ByteBuf, String) = from_reader(&mut r).unwrap();
        assert!(r.intact());
        assert_eq!(got, v);
        // The value owns its bytes: the segment's bytes changing later leaves it be.
        // SAFETY: as above.
        unsafe { seg.as_ptr().add(10).write(0xAB) };
        assert_eq!(got, v);
        assert!(Reader::in_segment(&seg, (1 << 20) + 1).is_none());
        drop(seg);
        let _ = crate::segment::unlink(&name);
    }
}
