//! The wire format of `Pipe`: how a message becomes *frames* in a byte
//! ring ([`RawSpsc`](super::RawSpsc) with one-byte units), apart from the handle that
//! speaks it, pure and `no_std` so that it can be tested and fuzzed on its own.
//!
//! ## Frames
//! The sender writes frames at 8-aligned positions: a stamp word, a header word
//! (`MAGIC << 52 | kind << 48 | value`, little-endian) and, for data frames, `value`
//! bytes padded to a multiple of 8:
//!
//! | kind      | value          | meaning                                              |
//! |-----------|----------------|------------------------------------------------------|
//! | [`WHOLE`] | message length | a complete message follows (it fits in the ring)     |
//! | [`START`] | message length | a longer message follows in `PIECE`s                 |
//! | [`PIECE`] | piece length   | the next bytes of the current message follow         |
//! | [`ABORT`] | 0              | the current message was abandoned (a timed-out send) |
//!
//! **Stamps.** A frame's stamp is `position ^ nonce` (the nonce is random per pipe):
//! positions never repeat, so no stale byte of an earlier lap reads as a fresh stamp.
//! The handle stores it last, with Release (`SYNC(spsc-stamp)` in the ring).
//!
//! ## Untrusted memory
//! A header word is read from shared memory: [`parse`] accepts only the four kinds
//! with the magic, and only data lengths that fit in the ring, so a forged header
//! yields an error, never an out-of-bounds read or an overflow.

/// The high 12 bits of every header word.
pub const MAGIC: u64 = 0x5A7;
/// A complete message follows.
pub const WHOLE: u64 = 1;
/// A message longer than the ring follows in [`PIECE`]s.
pub const START: u64 = 2;
/// The next bytes of the current message follow.
pub const PIECE: u64 = 3;
/// The current message was abandoned.
pub const ABORT: u64 = 4;
/// Bits of a header's value.
pub const VALUE_BITS: u32 = 48;
/// Mask of a header's value.
pub const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
/// Bytes of a frame's stamp and header words.
pub const OVERHEAD: u64 = 16;
/// Longest message the format carries: 2^48 - 1 bytes.
pub const MAX_MESSAGE_LEN: u64 = VALUE_MASK;

/// The header word (little-endian in memory) of a frame of `kind` carrying `value`
/// (truncated to [`VALUE_BITS`]).
#[inline]
pub fn header(kind: u64, value: u64) -> u64 {
    ((MAGIC << 52) | (kind << VALUE_BITS) | (value & VALUE_MASK)).to_le()
}

/// `n` rounded up to a multiple of 8.
#[inline]
pub fn padded(n: u64) -> u64 {
    n.wrapping_add(7) & !7
}

/// Ring bytes of a frame carrying `data` bytes.
#[inline]
pub fn frame_len(data: u64) -> u64 {
    OVERHEAD.wrapping_add(padded(data))
}

/// `(kind, value)` of a header word, or `None` if it is not one (no magic, unknown
/// kind).
#[inline]
pub fn decode(w: u64) -> Option<(u64, u64)> {
    let w = u64::from_le(w);
    let kind = (w >> VALUE_BITS) & 0xF;
    if w >> 52 != MAGIC || !(WHOLE..=ABORT).contains(&kind) {
        return None;
    }
    Some((kind, w & VALUE_MASK))
}

/// Bytes of data that follow the header of a frame of `kind` carrying `value`.
#[inline]
pub fn data_len(kind: u64, value: u64) -> u64 {
    match kind {
        WHOLE | PIECE => value,
        _ => 0,
    }
}

/// A checked frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// [`WHOLE`], [`START`], [`PIECE`] or [`ABORT`].
    pub kind: u64,
    /// Its value (see the module's table).
    pub value: u64,
    /// Bytes of data after the header: at most `capacity - OVERHEAD`.
    pub data: u64,
}

/// Checks the header word `w` of a frame in a ring of `capacity` bytes (at least
/// [`OVERHEAD`]): a known kind whose data fits in the ring beside its header, or an
/// error saying what is wrong.
#[inline]
pub fn parse(w: u64, capacity: u64) -> Result<Frame, &'static str> {
    let Some((kind, value)) = decode(w) else {
        return Err("a pipe frame header is garbage");
    };
    let data = data_len(kind, value);
    if data > capacity.saturating_sub(OVERHEAD) {
        return Err("a pipe frame is longer than the ring");
    }
    Ok(Frame { kind, value, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_value_round_trips_through_a_header() {
        for kind in [WHOLE, START, PIECE, ABORT] {
            for value in [0, 1, 7, 8, 4096, MAX_MESSAGE_LEN] {
                assert_eq!(decode(header(kind, value)), Some((kind, value)));
            }
        }
    }

    #[test]
    fn words_without_the_magic_or_with_an_unknown_kind_are_refused() {
        assert_eq!(decode(0), None);
        assert_eq!(decode(u64::MAX), None);
        assert_eq!(decode(header(0, 5)), None);
        assert_eq!(decode(header(5, 5)), None);
        assert_eq!(decode(header(WHOLE, 5) ^ (1u64 << 60).to_le()), None);
    }

    #[test]
    fn a_frame_whose_data_does_not_fit_beside_its_header_is_refused() {
        let cap = 64;
        assert_eq!(
            parse(header(WHOLE, cap - OVERHEAD), cap).map(|f| f.data),
            Ok(cap - OVERHEAD)
        );
        assert!(parse(header(WHOLE, cap - OVERHEAD + 1), cap).is_err());
        assert!(parse(header(PIECE, MAX_MESSAGE_LEN), cap).is_err());
        // START and ABORT carry no data, whatever their value.
        assert_eq!(
            parse(header(START, MAX_MESSAGE_LEN), cap).map(|f| f.data),
            Ok(0)
        );
        // A ring smaller than a header holds no frame with data.
        assert!(parse(header(WHOLE, 1), 8).is_err());
    }

    #[test]
    fn frame_lengths_are_8_aligned_and_include_the_header() {
        assert_eq!(frame_len(0), 16);
        assert_eq!(frame_len(1), 24);
        assert_eq!(frame_len(8), 24);
        assert_eq!(frame_len(9), 32);
        assert_eq!(padded(MAX_MESSAGE_LEN) % 8, 0);
    }
}
