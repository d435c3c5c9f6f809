//! Every named handle is `Serialize + Deserialize` **as its name**: serializing
//! writes the name, deserializing opens the object by that name (so a handle can be
//! a [`Pool`](crate::Pool) task argument or a message, the way Python pickles
//! proxies). A handle made by deserializing is an opened handle: it never unlinks.
//!
//! Anonymous objects have no name to send: serializing one is an error (share them
//! through `fork` instead). `SpscQueue` and `Pipe` ends are not serializable: an end
//! is a role (producer or consumer, end A or B) that `open` must be told, not just a
//! name.
//!
//! ```
//! # fn main() -> multiproc::Result<()> {
//! use multiproc::Dict;
//! let name = format!("doc-serde-{}", std::process::id());
//! let d: Dict<String, u32> = Dict::create(&name)?;
//! let wire = postcard::to_allocvec(&d).unwrap();          // just the name
//! let d2: Dict<String, u32> = postcard::from_bytes(&wire).unwrap(); // opens it
//! d2.insert("x".into(), 1)?;
//! assert_eq!(d.get(&"x".into())?, Some(1));
//! # Ok(()) }
//! ```

use crate::{
    Array, Barrier, BoundedSemaphore, ByteQueue, Condition, Dict, Event, JoinableQueue, List, Lock,
    Queue, RLock, Semaphore, Value,
};
use bytemuck::Pod;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::ser::{Error as _, Serializer};
use serde::{Deserialize, Serialize};

/// Writes `name`, refusing an anonymous object.
fn ser_name<S: Serializer>(kind: &str, name: &str, s: S) -> Result<S::Ok, S::Error> {
    if name.is_empty() {
        return Err(S::Error::custom(format!(
            "an anonymous {kind} has no name to serialize: create it with a name, or share it through fork"
        )));
    }
    s.serialize_str(name)
}

/// Implements Serialize/Deserialize as the name for `$ty` (with generics `$g`
/// bounded by `$bound`), opening with `$ty::open`.
macro_rules! by_name {
    ($kind:literal, $ty:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ser_name($kind, self.name(), s)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                $ty::open(&name).map_err(D::Error::custom)
            }
        }
    };
    ($kind:literal, $ty:ident < $($g:ident),+ > where $($bound:tt)+) => {
        impl<$($g),+> Serialize for $ty<$($g),+> where $($bound)+ {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ser_name($kind, self.name(), s)
            }
        }
        impl<'de, $($g),+> Deserialize<'de> for $ty<$($g),+> where $($bound)+ {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                $ty::open(&name).map_err(D::Error::custom)
            }
        }
    };
}

by_name!("Lock", Lock);
by_name!("RLock", RLock);
by_name!("Semaphore", Semaphore);
by_name!("BoundedSemaphore", BoundedSemaphore);
by_name!("Event", Event);
by_name!("Condition", Condition);
by_name!("Barrier", Barrier);
by_name!("ByteQueue", ByteQueue);
by_name!("Queue", Queue<T> where T: Pod);
by_name!("JoinableQueue", JoinableQueue<T> where T: Pod);
by_name!("Value", Value<T> where T: Pod);
by_name!("Array", Array<T> where T: Pod);
by_name!("Dict", Dict<K, V> where K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned);
by_name!("List", List<T> where T: Serialize + DeserializeOwned);
