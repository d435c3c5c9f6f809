//! The header at the start of every segment, and what openers check in it.

use crate::sync::atomic::{AtomicU32, AtomicU64};

/// `b"MPROCSEG"` as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"MPROCSEG");
/// Bumped whenever any object's layout changes.
pub(crate) const LAYOUT_VERSION: u32 = 2;
/// Bytes reserved for the header; user data starts here (two 128-byte lines).
pub const HEADER_LEN: usize = 256;
/// Alignment of every data region and of every hot field inside one.
pub const LINE: usize = 128;

/// `state` values. All-zero bytes (a freshly `ftruncate`d file) read as [`EMPTY`].
///
/// | state          | meaning                                                    |
/// |----------------|------------------------------------------------------------|
/// | `EMPTY`        | the creator has not started writing (or died before it)    |
/// | `INITIALISING` | the creator named in `creator_*` is writing the object     |
/// | `READY`        | the header and the object are complete; open may proceed   |
pub(crate) const EMPTY: u32 = 0;
pub(crate) const INITIALISING: u32 = 1;
pub(crate) const READY: u32 = 2;

/// What kind of object a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A raw [`Segment`](crate::Segment) of user bytes.
    Segment = 1,
    /// [`Value<T>`](crate::Value).
    Value = 2,
    /// [`Array<T>`](crate::Array).
    Array = 3,
    /// `Lock`.
    Lock = 4,
    /// `RLock`.
    RLock = 5,
    /// `Semaphore`.
    Semaphore = 6,
    /// `BoundedSemaphore`.
    BoundedSemaphore = 7,
    /// `Event`.
    Event = 8,
    /// `Condition`.
    Condition = 9,
    /// `Barrier`.
    Barrier = 10,
    /// `Queue<T>`.
    Queue = 11,
    /// `JoinableQueue<T>`.
    JoinableQueue = 12,
    /// `ByteQueue`.
    ByteQueue = 13,
    /// `SpscQueue<T>`.
    SpscQueue = 14,
    /// `Pipe`.
    Pipe = 15,
    /// A pool's shared state.
    Pool = 16,
    /// `Dict<K, V>`.
    Dict = 17,
    /// `List<T>`.
    List = 18,
    /// A [`Shared<R>`](crate::Shared): a third party's own state, told apart by the
    /// user's tag (parameter 0) and the type fingerprint.
    User = 19,
    /// [`JoinableByteQueue`](crate::JoinableByteQueue).
    JoinableByteQueue = 20,
}

impl ObjectKind {
    /// The kind's name as users write it.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Segment => "Segment",
            ObjectKind::Value => "Value",
            ObjectKind::Array => "Array",
            ObjectKind::Lock => "Lock",
            ObjectKind::RLock => "RLock",
            ObjectKind::Semaphore => "Semaphore",
            ObjectKind::BoundedSemaphore => "BoundedSemaphore",
            ObjectKind::Event => "Event",
            ObjectKind::Condition => "Condition",
            ObjectKind::Barrier => "Barrier",
            ObjectKind::Queue => "Queue",
            ObjectKind::JoinableQueue => "JoinableQueue",
            ObjectKind::ByteQueue => "ByteQueue",
            ObjectKind::SpscQueue => "SpscQueue",
            ObjectKind::Pipe => "Pipe",
            ObjectKind::Pool => "Pool",
            ObjectKind::Dict => "Dict",
            ObjectKind::List => "List",
            ObjectKind::User => "User",
            ObjectKind::JoinableByteQueue => "JoinableByteQueue",
        }
    }

    /// Decodes a stored kind.
    pub fn from_u32(v: u32) -> Option<ObjectKind> {
        use ObjectKind::*;
        Some(match v {
            1 => Segment,
            2 => Value,
            3 => Array,
            4 => Lock,
            5 => RLock,
            6 => Semaphore,
            7 => BoundedSemaphore,
            8 => Event,
            9 => Condition,
            10 => Barrier,
            11 => Queue,
            12 => JoinableQueue,
            13 => ByteQueue,
            14 => SpscQueue,
            15 => Pipe,
            16 => Pool,
            17 => Dict,
            18 => List,
            19 => User,
            20 => JoinableByteQueue,
            _ => return None,
        })
    }
}

/// The element type an object was created for: size, alignment and a hash of its name.
///
/// Two programs agree on an element type when they agree on all three. The name is
/// Rust's `type_name::<T>()` by default ([`of`](TypeInfo::of)), which is the same in
/// every program for the primitive types (`"u64"`) but not for a struct (it includes
/// the defining crate and module, and Rust does not promise it stays the same across
/// compiler versions). For types shared between unrelated programs, give a stable
/// name: implement [`SharedType`](crate::segment::SharedType) (then
/// [`shared`](TypeInfo::shared)), or pass
/// [`Options::type_name`](crate::Options::type_name) when creating and opening.
/// Element types described at run time (the Python bindings' typecodes) use
/// [`named`](TypeInfo::named) and get the same fingerprint as the Rust type.
///
/// ```
/// use multiproc::segment::{SharedType, TypeInfo};
/// // A run-time description of a 64-bit signed integer is the Rust type's fingerprint.
/// assert_eq!(TypeInfo::named("i64", 8, 8), TypeInfo::of::<i64>());
/// assert_eq!(TypeInfo::shared::<i64>(), TypeInfo::of::<i64>());
/// assert_eq!(<[u8; 4] as SharedType>::NAME, "[u8; 4]");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    /// `size_of::<T>()`.
    pub size: u32,
    /// `align_of::<T>()`.
    pub align: u32,
    /// FNV-1a of the type's name.
    pub hash: u64,
    /// The type's name (stored in the header, shown in messages; the first 88 bytes
    /// are stored, the whole name is hashed).
    pub name: &'static str,
}

impl TypeInfo {
    /// The fingerprint of `T` under Rust's `type_name::<T>()`.
    pub fn of<T>() -> TypeInfo {
        TypeInfo::named(
            core::any::type_name::<T>(),
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
        )
    }

    /// The fingerprint of `T` under its stable [`SharedType::NAME`](crate::segment::SharedType::NAME).
    pub const fn shared<T: super::SharedType>() -> TypeInfo {
        TypeInfo::named(
            T::NAME,
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
        )
    }

    /// The fingerprint of an element type described at run time: its stable `name`,
    /// size and alignment in bytes. `named(N, size_of::<T>(), align_of::<T>())` equals
    /// the fingerprint of a `T` whose name is `N` (sizes beyond `u32::MAX` saturate).
    pub const fn named(name: &'static str, size: usize, align: usize) -> TypeInfo {
        TypeInfo {
            size: if size > u32::MAX as usize {
                u32::MAX
            } else {
                size as u32
            },
            align: if align > u32::MAX as usize {
                u32::MAX
            } else {
                align as u32
            },
            hash: fnv1a(name.as_bytes()),
            name,
        }
    }

    /// No element type (raw segments, locks, ...).
    pub const NONE: TypeInfo = TypeInfo {
        size: 0,
        align: 0,
        hash: 0,
        name: "-",
    };
}

/// FNV-1a, 64 bit: stable across builds and platforms.
pub(crate) const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// The header as stored; read by copying it out (`read_volatile`), never by reference,
/// since another process may be writing it.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Zeroable, bytemuck::Pod)]
pub(crate) struct HeaderImage {
    pub magic: u64,
    pub version: u32,
    pub kind: u32,
    /// EMPTY / INITIALISING / READY; accessed in place as an `AtomicU32`.
    pub state: u32,
    pub creator_tid: u32,
    pub creator_start: u64,
    pub total_len: u64,
    pub data_offset: u64,
    pub data_len: u64,
    pub type_size: u32,
    pub type_align: u32,
    pub type_hash: u64,
    /// Kind-specific parameters (capacity, message size, ...).
    pub params: [u64; 4],
    pub flags: u64,
    pub type_name_len: u64,
    pub type_name: [u8; 88],
    /// The creating *process* (0 in images written before it was recorded: then only
    /// `creator_tid`/`creator_start` name the creator).
    pub creator_pid: u32,
    pub reserved: u32,
    /// Start time of the creating process, in clock ticks since boot.
    pub creator_pstart: u64,
    /// When the object was created, in nanoseconds since the Unix epoch (0: unknown).
    pub created_ns: u64,
}

const _: () = assert!(core::mem::size_of::<HeaderImage>() <= HEADER_LEN);
pub(crate) const STATE_OFFSET: usize = core::mem::offset_of!(HeaderImage, state);
const FLAGS_OFFSET: usize = core::mem::offset_of!(HeaderImage, flags);
const _: () = assert!(FLAGS_OFFSET % 8 == 0);

/// `flags` bit: the object was [`persist`](crate::Segment::persist)ed, so `gc` leaves
/// it alone after its creator is gone. All-zero flags (every image written before the
/// bit existed) mean "not persisted", so the layout version did not change.
pub(crate) const FLAG_PERSISTED: u64 = 1;

impl HeaderImage {
    /// The stored type name (lossy, for messages).
    pub fn type_name(&self) -> &str {
        let n = (self.type_name_len as usize).min(self.type_name.len());
        match core::str::from_utf8(&self.type_name[..n]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.type_name[..e.valid_up_to()]).unwrap_or("?"),
        }
    }
}

/// The header's `flags` word, in place.
///
/// # Safety
/// As for [`state_word`].
pub(crate) unsafe fn flags_word<'a>(base: *mut u8) -> &'a AtomicU64 {
    // SAFETY: in bounds and 8-aligned per the contract (FLAGS_OFFSET % 8 == 0);
    // AtomicU64 has interior mutability, so other processes writing it is fine.
    unsafe { &*(base.add(FLAGS_OFFSET) as *const AtomicU64) }
}

/// The header's `state` word, in place.
///
/// # Safety
/// `base` points at a live mapping of at least [`HEADER_LEN`] bytes, aligned to 8.
pub(crate) unsafe fn state_word<'a>(base: *mut u8) -> &'a AtomicU32 {
    // SAFETY: in bounds and aligned per the contract; AtomicU32 has interior mutability,
    // so other processes writing it is fine.
    unsafe { &*(base.add(STATE_OFFSET) as *const AtomicU32) }
}
