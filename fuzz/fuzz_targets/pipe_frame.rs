//! The pipe's wire format on its own (`multiproc::raw::frame`): arbitrary header
//! words are parsed without panicking, an accepted frame always fits in its ring, a
//! walk over arbitrary bytes read as a stream of frames never leaves them, and every
//! header the sender can write is read back as written.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use multiproc::raw::frame::{
    decode, frame_len, header, parse, ABORT, MAX_MESSAGE_LEN, OVERHEAD, WHOLE,
};

#[derive(Arbitrary, Debug)]
struct Input {
    /// log2 of the ring's capacity (a pipe's rings are powers of two).
    cap_shift: u8,
    /// A header the sender writes: kind and value.
    kind: u8,
    value: u64,
    /// Ring bytes read as frames.
    ring: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let cap = 1u64 << (6 + input.cap_shift % 20);
    // Written headers read back as written.
    let kind = WHOLE + u64::from(input.kind) % ABORT;
    let value = input.value & MAX_MESSAGE_LEN;
    assert_eq!(decode(header(kind, value)), Some((kind, value)));
    // Arbitrary words: an error, or a frame that fits beside its header.
    if let Ok(f) = parse(input.value, cap) {
        assert!(f.data <= cap - OVERHEAD);
        assert!(frame_len(f.data) <= cap);
    }
    // Arbitrary bytes as a stream of frames, as a receiver walks them.
    let ring = &input.ring;
    let mut at = 0usize;
    while at + 16 <= ring.len() {
        let w = u64::from_le_bytes(ring[at + 8..at + 16].try_into().unwrap());
        let Ok(f) = parse(w, cap) else { break };
        let next = at as u64 + frame_len(f.data);
        if next > ring.len() as u64 {
            break;
        }
        // The frame's data lies inside the bytes.
        let _ = &ring[at + 16..at + 16 + f.data as usize];
        at = next as usize;
    }
});
