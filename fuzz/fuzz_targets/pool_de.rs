//! The pool's copy-on-read postcard deserializer
//! (`multiproc::process::pool_from_bytes_copying`, which workers use to read
//! arguments in place from shared memory): arbitrary bytes decode into a few types
//! exactly as `postcard::from_bytes` decodes them — the same value, or both errors —
//! and never panic or allocate from a hostile length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiproc::process::pool_from_bytes_copying as ours;
use serde::Deserialize;
use std::fmt::Debug;

/// A byte string read with `deserialize_byte_buf` (`serde_bytes`).
#[derive(Debug, PartialEq, Deserialize)]
struct ByteBuf(#[serde(with = "serde_bytes")] Vec<u8>);


#[derive(Debug, PartialEq, Deserialize)]
enum Shape {
    Empty,
    Newtype(u32),
    Tuple(i16, Vec<u8>),
    Struct { name: String, bytes: ByteBuf, c: char },
    Wide(u128, i64, f64, Option<bool>),
}

fn check<T: serde::de::DeserializeOwned + PartialEq + Debug>(b: &[u8]) {
    let got = ours::<T>(b);
    let want = postcard::from_bytes::<T>(b);
    match (got, want) {
        (Ok(g), Ok(w)) => assert!(
            g == w || format!("{g:?}") == format!("{w:?}"), // NaN != NaN
            "{g:?} != {w:?}"
        ),
        (Err(_), Err(_)) => {}
        (g, w) => panic!("ours {g:?}, postcard {w:?}"),
    }
}

fuzz_target!(|b: &[u8]| {
    check::<Vec<u8>>(b);
    check::<ByteBuf>(b);
    check::<String>(b);
    check::<(u32, Vec<String>)>(b);
    check::<Shape>(b);
    check::<Vec<Shape>>(b);
});
