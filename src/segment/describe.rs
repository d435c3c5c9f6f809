//! What a name holds, without knowing its type in advance: the kind and element type
//! recorded in the header, for tools and bindings that open objects generically
//! (Python's `mp.Queue.open(name)` decides between ints and bytes from it).

use super::header::{HeaderImage, LAYOUT_VERSION, MAGIC, READY};
use super::{io_error, posix_name, validate_name, ObjectKind, HEADER_LEN};
use crate::sys::shm;
use crate::{Error, Result};

/// What [`describe`] found in a segment's header: a snapshot, for choosing how to open
/// the object (opening it validates everything again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// The object's kind.
    pub kind: ObjectKind,
    /// The element type's name as the creator recorded it (`"u64"`, `"i64"`, `"f64"`
    /// for Rust's primitive types; `"-"` for objects without an element type, such as
    /// locks and byte queues).
    pub type_name: String,
    /// Size of one element in bytes (0: no element type).
    pub type_size: u32,
    /// Alignment of one element in bytes (0: no element type).
    pub type_align: u32,
}

/// Reads the header of the object named `name` and says what it holds.
///
/// `Err(NotFound)` if nothing has that name, `Err(Corrupt)` if it is not a complete
/// multiproc object of this layout version (still initialising counts as not complete:
/// try again, or open it with its type, which waits).
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::{segment::{describe, ObjectKind}, Queue};
/// let name = format!("doc-describe-{}", std::process::id());
/// let _q: Queue<u64> = Queue::create(&name, 8)?;
/// let d = describe(&name)?;
/// assert_eq!((d.kind, d.type_name.as_str(), d.type_size), (ObjectKind::Queue, "u64", 8));
/// # Ok(()) }
/// ```
pub fn describe(name: &str) -> Result<Description> {
    use std::os::unix::fs::FileExt;
    validate_name(name)?;
    let file = shm::open(&posix_name(name)).map_err(|e| io_error(name, e))?;
    let mut bytes = [0u8; core::mem::size_of::<HeaderImage>()];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                Error::corrupt(name, format!("shorter than the {HEADER_LEN}-byte header"))
            }
            _ => io_error(name, e),
        })?;
    // HeaderImage is Pod: any bytes form a value, checked below before use.
    let h: HeaderImage = bytemuck::pod_read_unaligned(&bytes);
    if h.magic != MAGIC || h.version != LAYOUT_VERSION || h.state != READY {
        return Err(Error::corrupt(
            name,
            "not a complete multiproc object of this version (bad magic, layout version \
             or init state): open it with its type for a precise diagnosis",
        ));
    }
    let kind = ObjectKind::from_u32(h.kind)
        .ok_or_else(|| Error::corrupt(name, format!("unknown object kind {}", h.kind)))?;
    Ok(Description {
        kind,
        type_name: h.type_name().to_owned(),
        type_size: h.type_size,
        type_align: h.type_align,
    })
}
