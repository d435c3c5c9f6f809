//! [`SharedType`]: an element type's name that unrelated programs agree on.

/// A type with a **stable name**: the name (with the size and alignment) that
/// identifies it in a segment's header, so that two programs — built by different
/// compilers, defining the struct in different crates or under different names —
/// agree that they mean the same element type.
///
/// Without it, an object records Rust's `type_name::<T>()`, which for a struct
/// includes its crate and module path (and is not promised to stay the same across
/// compiler versions); opening it from a program that defines the same struct
/// elsewhere is then refused with `Err(WrongType)`.
///
/// Implemented here for the primitive types and arrays of them (lengths 1 to 32 and
/// the powers of two up to 4096), under the names Rust gives them (`"u64"`,
/// `"[u8; 16]"`): objects created before this trait existed keep opening. For your
/// own types pick a name unique to your application (`"myapp.Job.v1"`) and pass it
/// when creating and opening, with [`Options::shared_type`](crate::Options::shared_type)
/// (or [`Options::type_name`](crate::Options::type_name) for any type).
///
/// The name says *what* the bytes mean; keep it and the layout in step (change the
/// name when the layout changes: the size check catches only some changes).
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::{segment::SharedType, Options, Queue};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct Job { id: u32, cost: u32 }
/// impl SharedType for Job { const NAME: &'static str = "doc.Job.v1"; }
///
/// // Another program's definition of the same record, under another name.
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct TheirJob { id: u32, cost: u32 }
/// impl SharedType for TheirJob { const NAME: &'static str = "doc.Job.v1"; }
///
/// let name = format!("doc-shared-type-{}", std::process::id());
/// let q: Queue<Job> = Queue::create_with(&name, 8, &Options::new().shared_type::<Job>())?;
/// q.put(Job { id: 1, cost: 5 })?;
/// let theirs: Queue<TheirJob> = Queue::open_with(&name, &Options::new().shared_type::<TheirJob>())?;
/// assert_eq!(theirs.get()?.cost, 5);
/// # Ok(()) }
/// ```
pub trait SharedType: Sized {
    /// The type's stable name (hashed whole; its first 88 bytes are stored for
    /// messages and `inspect`).
    const NAME: &'static str;
}

/// `SharedType` for primitives under Rust's own names, and arrays of them.
macro_rules! shared_primitives {
    ($($t:ty),*) => {
        $(
            impl SharedType for $t {
                const NAME: &'static str = stringify!($t);
            }
            shared_arrays!($t; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23
                24 25 26 27 28 29 30 31 32 64 128 256 512 1024 2048 4096);
        )*
    };
}

macro_rules! shared_arrays {
    ($t:ty; $($n:literal)*) => {
        $(
            impl SharedType for [$t; $n] {
                const NAME: &'static str = concat!("[", stringify!($t), "; ", stringify!($n), "]");
            }
        )*
    };
}

shared_primitives!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

#[cfg(test)]
mod tests {
    use super::SharedType;
    use crate::segment::TypeInfo;

    fn same_as_rust<T: SharedType>() {
        assert_eq!(T::NAME, core::any::type_name::<T>());
        assert_eq!(TypeInfo::shared::<T>(), TypeInfo::of::<T>());
    }

    #[test]
    fn primitive_names_are_rusts_so_old_objects_keep_opening() {
        same_as_rust::<u8>();
        same_as_rust::<u64>();
        same_as_rust::<i64>();
        same_as_rust::<f64>();
        same_as_rust::<usize>();
        same_as_rust::<i128>();
    }

    #[test]
    fn array_names_are_rusts_so_old_objects_keep_opening() {
        same_as_rust::<[u8; 1]>();
        same_as_rust::<[u8; 16]>();
        same_as_rust::<[f64; 32]>();
        same_as_rust::<[u64; 4096]>();
    }

    #[test]
    fn a_run_time_description_equals_the_rust_types_fingerprint() {
        assert_eq!(TypeInfo::named("u32", 4, 4), TypeInfo::of::<u32>());
        assert_eq!(TypeInfo::named("[u8; 8]", 8, 1), TypeInfo::of::<[u8; 8]>());
        assert_ne!(TypeInfo::named("u32", 4, 4), TypeInfo::of::<i32>());
    }
}
