//! [`ByteQueue`]: a named MPMC queue of variable-length byte messages (up to a
//! maximum set at creation), plus typed messages through serde + postcard.
//!
//! It is the same crash-consistent ring as [`Queue<T>`](crate::Queue), with slots of
//! one length word plus `max_message_len` bytes.

use super::common::bytes::{byte_puts, byte_spec, check_max, IntoSlice, IntoVec};
use super::common::{deadline, named_handle, ring_surface, RingHandle};
use crate::raw::queue::{words_for, QueueError, RawQueue};
use crate::segment::{self, ObjectKind, Options, TypeInfo};
use crate::sync::current_identity;
use crate::sys::clock::Deadline;
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::time::Duration;

/// A bounded multi-producer multi-consumer queue of byte messages in shared memory,
/// shared by name between processes.
///
/// Every message is between 0 and [`max_message_len`](ByteQueue::max_message_len)
/// bytes (set at creation; longer puts fail with `TooLarge`), and occupies one slot of
/// `max_message_len` rounded up to 8, plus 16 bytes. Same guarantees as
/// [`Queue<T>`](crate::Queue): lock-free, no syscall unless someone sleeps, FIFO per
/// producer, crash-consistent (a message whose `put` returned is delivered exactly
/// once, or re-delivered if its consumer died mid-`get`; never torn).
///
/// Typed messages: [`send`](ByteQueue::send) serialises any `T: Serialize` with
/// [postcard](https://docs.rs/postcard) and [`recv`](ByteQueue::recv) decodes it;
/// bytes that do not decode as the requested type give `Err(Corrupt)` naming the
/// type, never a panic.
///
/// ```
/// # fn main() -> multiproc::Result<()> {
/// use multiproc::ByteQueue;
/// let name = format!("doc-bq-{}", std::process::id());
/// let q = ByteQueue::create(&name, 64, 1024)?;     // 64 messages of up to 1 KiB
/// q.put(b"hello")?;
/// let mut buf = [0u8; 1024];
/// let n = ByteQueue::open(&name)?.get_into(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
///
/// q.send(&("job", 42u32))?;
/// let (what, n): (String, u32) = q.recv()?;
/// assert_eq!((what.as_str(), n), ("job", 42));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ByteQueue {
    h: RingHandle<RawQueue>,
    max: usize,
}

named_handle! {
    impl[] ByteQueue: "queue" (anonymous), h;
    /// Creates an empty queue named `name` of at most `capacity` messages (exactly as
    /// many as asked, as [`Queue`](crate::Queue)) of up to `max_message_len` bytes each.
    /// `Err(InvalidArgument)` for a capacity of 0 or over 2^30, a maximum length of 0
    /// or over 1 GiB, or a total that does not fit in memory.
    create(capacity: usize, max_message_len: usize);
    /// Opens the byte queue `name`.
    open();
    /// Opens `name` if it exists with exactly this capacity and maximum message
    /// length, or creates it if it does not exist.
    /// `Err(Mismatch)` naming both if it exists with another capacity or maximum
    /// length (it is left alone); `Err(InvalidArgument)` for arguments `create`
    /// refuses, whether or not it exists.
    open_or_create(capacity: usize, max_message_len: usize);
    /// How often a blocked `get` checks that a producer stalled mid-`put` is alive
    /// (default 10 ms).
    with_probe_interval => h.probe;
}

ring_surface! {
    impl[] ByteQueue: "messages", close: "Wakes every sleeper. Cannot be undone.",
    debug: "ByteQueue" [] ["max_message_len" => |q| q.max]
}

thread_local! {
    /// Scratch buffer for typed send/recv: no allocation per message once warm.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

byte_puts!(ByteQueue, "Puts `msg`");

impl ByteQueue {
    /// [`create`](ByteQueue::create) with explicit segment [`Options`].
    pub fn create_with(
        name: &str,
        capacity: usize,
        max_message_len: usize,
        opts: &Options,
    ) -> Result<ByteQueue> {
        let spec = byte_spec(
            ObjectKind::ByteQueue,
            &format!("byte queue '{name}'"),
            capacity,
            max_message_len,
        )?;
        Ok(ByteQueue {
            h: RingHandle::create(name, opts, spec)?,
            max: max_message_len,
        })
    }
    /// An unnamed queue shared only with children forked after this call.
    pub fn anonymous(capacity: usize, max_message_len: usize) -> Result<ByteQueue> {
        let spec = byte_spec(
            ObjectKind::ByteQueue,
            "anonymous byte queue",
            capacity,
            max_message_len,
        )?;
        Ok(ByteQueue {
            h: RingHandle::anonymous(spec)?,
            max: max_message_len,
        })
    }
    /// [`open`](ByteQueue::open) with explicit [`Options`] (init timeout, trusted owners).
    pub fn open_with(name: &str, opts: &Options) -> Result<ByteQueue> {
        let mut max = 0;
        let h = RingHandle::open(name, opts, ObjectKind::ByteQueue, TypeInfo::NONE, |m| {
            max = check_max(name, m)?;
            Ok(1 + words_for(max))
        })?;
        Ok(ByteQueue { h, max })
    }
    /// [`open_or_create`](ByteQueue::open_or_create) with explicit segment [`Options`].
    pub fn open_or_create_with(
        name: &str,
        capacity: usize,
        max_message_len: usize,
        opts: &Options,
    ) -> Result<ByteQueue> {
        let want = byte_spec(
            ObjectKind::ByteQueue,
            &format!("byte queue '{name}'"),
            capacity,
            max_message_len,
        )?;
        segment::open_or_create(
            || ByteQueue::create_with(name, capacity, max_message_len, opts),
            || {
                let q = ByteQueue::open_with(name, opts)?;
                segment::same_shape(
                    name,
                    ObjectKind::ByteQueue,
                    &[
                        segment::param("capacity", q.capacity(), want.cap),
                        segment::param("max message length", q.max, max_message_len),
                    ],
                )?;
                Ok(q)
            },
        )
    }

    /// Takes the oldest message, waiting for one. `Err(Closed)` once closed and
    /// drained.
    pub fn get(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.get_vec_deadline(&mut v, None)?;
        Ok(v)
    }
    /// Takes the oldest message if there is one now: `Err(Empty)` otherwise.
    pub fn try_get(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.try_get_into_vec(&mut v)?;
        Ok(v)
    }
    /// Takes the oldest message, waiting at most `timeout`: `Err(Timeout)` after that.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.get_vec_deadline(&mut v, deadline(timeout))?;
        Ok(v)
    }

    /// Takes the oldest message into `buf` without allocating, waiting for one;
    /// returns its length. If it is longer than `buf`, it stays queued and the result
    /// is `Err(TooLarge { len, max: buf.len() })`.
    pub fn get_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.get_into_deadline(buf, None)
    }
    /// [`get_into`](ByteQueue::get_into) without waiting: `Err(Empty)` if there is no
    /// message now.
    pub fn try_get_into(&self, buf: &mut [u8]) -> Result<usize> {
        let me = current_identity();
        let cap = buf.len();
        let max = self.max;
        let r = self
            .h
            .ring()?
            .try_get(me, false, &mut IntoSlice { buf, max });
        let r = match r {
            Err(QueueError::Empty) if self.h.probe_due() => {
                self.h
                    .ring()?
                    .try_get(me, true, &mut IntoSlice { buf, max })
            }
            r => r,
        };
        self.flatten(r, cap)
    }
    /// [`get_into`](ByteQueue::get_into), waiting at most `timeout`.
    pub fn get_into_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.get_into_deadline(buf, deadline(timeout))
    }
    fn get_into_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let me = current_identity();
        let cap = buf.len();
        let max = self.max;
        let r = self.h.blocking_raw(deadline, |ring, policy, d| {
            ring.get(me, d, policy, &mut IntoSlice { buf, max })
        })?;
        self.flatten(r, cap)
    }

    /// Takes the oldest message into `buf` (replacing its contents, reusing its
    /// allocation), waiting for one; returns its length.
    pub fn get_into_vec(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.get_vec_deadline(buf, None)
    }
    /// [`get_into_vec`](ByteQueue::get_into_vec) without waiting.
    pub fn try_get_into_vec(&self, buf: &mut Vec<u8>) -> Result<usize> {
        let me = current_identity();
        let max = self.max;
        let r = self.h.ring()?.try_get(me, false, &mut IntoVec { buf, max });
        let r = match r {
            Err(QueueError::Empty) if self.h.probe_due() => {
                self.h.ring()?.try_get(me, true, &mut IntoVec { buf, max })
            }
            r => r,
        };
        self.flatten(r, usize::MAX)
    }
    /// [`get_into_vec`](ByteQueue::get_into_vec), waiting at most `timeout`.
    pub fn get_into_vec_timeout(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.get_vec_deadline(buf, deadline(timeout))
    }
    fn get_vec_deadline(&self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<usize> {
        let me = current_identity();
        let max = self.max;
        let r = self.h.blocking_raw(deadline, |ring, policy, d| {
            ring.get(me, d, policy, &mut IntoVec { buf, max })
        })?;
        self.flatten(r, usize::MAX)
    }

    fn flatten(
        &self,
        r: core::result::Result<core::result::Result<usize, QueueError>, QueueError>,
        buf_len: usize,
    ) -> Result<usize> {
        match r {
            Ok(Ok(n)) => self.h.done(Ok(n)),
            Ok(Err(QueueError::WontFit(len))) | Err(QueueError::WontFit(len)) => {
                self.h.intact(Err(Error::TooLarge {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    max: buf_len,
                }))
            }
            Ok(Err(e)) | Err(e) => self.h.done(Err(e)),
        }
    }

    // ---- typed messages ------------------------------------------------------------

    /// Serialises `value` with postcard and puts it, waiting for room.
    /// `Err(TooLarge)` if its encoding exceeds the maximum message length.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.with_encoded(value, |msg| self.put(msg))
    }
    /// [`send`](ByteQueue::send) without waiting: `Err(Full)` if there is no room.
    pub fn try_send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.with_encoded(value, |msg| self.try_put(msg))
    }
    /// [`send`](ByteQueue::send), waiting at most `timeout` for room.
    pub fn send_timeout<T: Serialize + ?Sized>(&self, value: &T, timeout: Duration) -> Result<()> {
        self.with_encoded(value, |msg| self.put_timeout(msg, timeout))
    }
    /// Takes the oldest message and decodes it as a `T`, waiting for one.
    /// `Err(Corrupt)` if the bytes are not a valid `T` (the message is consumed).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.with_scratch(|buf| {
            self.get_into_vec(buf)?;
            self.decode(buf)
        })
    }
    /// [`recv`](ByteQueue::recv) without waiting: `Err(Empty)` if there is no message.
    pub fn try_recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.with_scratch(|buf| {
            self.try_get_into_vec(buf)?;
            self.decode(buf)
        })
    }
    /// [`recv`](ByteQueue::recv), waiting at most `timeout`.
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<T> {
        self.with_scratch(|buf| {
            self.get_into_vec_timeout(buf, timeout)?;
            self.decode(buf)
        })
    }

    fn with_scratch<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => f(&mut buf),
            // Re-entered from a Serialize/Deserialize impl: use a fresh buffer.
            Err(_) => f(&mut Vec::new()),
        })
    }

    fn with_encoded<T: Serialize + ?Sized>(
        &self,
        value: &T,
        put: impl FnOnce(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.with_scratch(|buf| {
            buf.clear();
            let v = postcard::to_extend(value, core::mem::take(buf)).map_err(|e| {
                Error::invalid(format!(
                    "cannot encode {} for '{}': {e}",
                    core::any::type_name::<T>(),
                    self.name()
                ))
            })?;
            *buf = v;
            put(buf)
        })
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let bad = |why: String| {
            Error::corrupt(
                self.name(),
                format!(
                    "a message of {} bytes is not a valid {} ({why}); was it sent as another type?",
                    bytes.len(),
                    core::any::type_name::<T>()
                ),
            )
        };
        match postcard::take_from_bytes::<T>(bytes) {
            Ok((v, [])) => Ok(v),
            Ok((_, rest)) => Err(bad(format!("{} bytes left over", rest.len()))),
            Err(e) => Err(bad(e.to_string())),
        }
    }
}
