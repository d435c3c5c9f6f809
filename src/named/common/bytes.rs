//! What the byte queues ([`ByteQueue`](crate::ByteQueue) and
//! [`JoinableByteQueue`](crate::JoinableByteQueue)) share: the ring of messages of at
//! most a maximum length, their checked puts, the takes that copy a message out, and
//! the public put surface, written once ([`byte_puts!`]).

use super::ring::{check_capacity, HasRing, RingHandle, RingSpec};
use crate::raw::queue::{load_bytes, slot_payload_words, store_bytes, words_for, QueueError, Take};
use crate::segment::{ObjectKind, TypeInfo};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::current_identity;
use crate::sys::clock::Deadline;
use crate::{Error, Result};

/// Largest `max_message_len` accepted (1 GiB per slot).
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// Writes a byte queue's public puts (`put`, `try_put`, `put_timeout`) and
/// `max_message_len` over its `h: RingHandle` and `max` fields, through [`Puts`].
/// `$put_doc` is what `put` says first ("Puts `msg`").
macro_rules! byte_puts {
    ($ty:ty, $put_doc:literal) => {
        impl $ty {
            /// The longest message accepted, in bytes.
            pub fn max_message_len(&self) -> usize {
                self.max
            }

            #[doc = concat!(
                $put_doc, ", waiting for room. `Err(TooLarge)` beyond the maximum length,\n",
                "`Err(Closed)` once closed."
            )]
            pub fn put(&self, msg: &[u8]) -> $crate::Result<()> {
                $crate::named::common::bytes::Puts(&self.h, self.max).put(msg, None)
            }
            /// Puts `msg` if there is room now: `Err(Full)` otherwise.
            pub fn try_put(&self, msg: &[u8]) -> $crate::Result<()> {
                $crate::named::common::bytes::Puts(&self.h, self.max).try_put(msg)
            }
            /// Puts `msg`, waiting at most `timeout` for room: `Err(Timeout)` after that.
            pub fn put_timeout(
                &self,
                msg: &[u8],
                timeout: std::time::Duration,
            ) -> $crate::Result<()> {
                $crate::named::common::bytes::Puts(&self.h, self.max)
                    .put(msg, $crate::named::common::deadline(timeout))
            }
        }
    };
}
pub(crate) use byte_puts;

/// The ring of a byte queue of `kind` (ByteQueue or JoinableByteQueue).
pub(crate) fn byte_spec(
    kind: ObjectKind,
    what: &str,
    capacity: usize,
    max_message_len: usize,
) -> Result<RingSpec> {
    if max_message_len == 0 || max_message_len > MAX_MESSAGE_LEN {
        return Err(Error::invalid(format!(
            "{what}: a maximum message length of {max_message_len} bytes is not in 1..={MAX_MESSAGE_LEN}"
        )));
    }
    Ok(RingSpec {
        kind,
        ty: TypeInfo::NONE,
        cap: check_capacity(what, capacity)?,
        payload_words: slot_payload_words(1 + words_for(max_message_len)),
        extra: max_message_len as u64,
    })
}

/// A stored maximum message length, checked.
pub(crate) fn check_max(name: &str, m: u64) -> Result<usize> {
    if m == 0 || m > MAX_MESSAGE_LEN as u64 {
        return Err(Error::corrupt(
            name,
            format!("a maximum message length of {m} bytes is impossible"),
        ));
    }
    Ok(m as usize)
}

/// The length word of a payload, checked against `max`.
#[inline]
fn message_len(p: &[AtomicU64], max: usize) -> core::result::Result<usize, QueueError> {
    let len = p[0].load(Ordering::Relaxed);
    if len > max as u64 {
        return Err(QueueError::Corrupt(
            "a message's length word exceeds the queue's maximum message length",
        ));
    }
    Ok(len as usize)
}

/// The puts of a byte ring (ByteQueue's and JoinableByteQueue's): messages of at
/// most the given length, checked before anything is claimed.
pub(crate) struct Puts<'h, R>(pub &'h RingHandle<R>, pub usize);

impl<R: HasRing> Puts<'_, R> {
    fn check_len(&self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.1 {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.1,
            });
        }
        Ok(())
    }

    /// Puts `msg` if there is room now: `Err(Full)` otherwise.
    pub fn try_put(&self, msg: &[u8]) -> Result<()> {
        self.check_len(msg)?;
        let ring = self.0.ring()?;
        ring.try_put(current_identity(), write_msg(msg))
            .map_or_else(|e| self.0.done(Err(e)), |x| self.0.done(Ok(x)))
    }

    /// Puts `msg`, waiting for room until `deadline`.
    pub fn put(&self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.check_len(msg)?;
        let me = current_identity();
        self.0.blocking(deadline, |ring, policy, d| {
            ring.put(me, d, policy, write_msg(msg))
        })
    }
}

/// Writes a length word and the bytes.
#[inline]
pub(crate) fn write_msg(msg: &[u8]) -> impl FnMut(&[AtomicU64]) + '_ {
    move |p| {
        p[0].store(msg.len() as u64, Ordering::Relaxed);
        store_bytes(&p[1..], msg);
    }
}

/// Copies a message into a caller's slice; leaves it queued if it does not fit.
pub(crate) struct IntoSlice<'b> {
    pub buf: &'b mut [u8],
    pub max: usize,
}

impl Take for IntoSlice<'_> {
    type Out = core::result::Result<usize, QueueError>;
    #[inline]
    fn admit(&mut self, p: &[AtomicU64]) -> bool {
        p[0].load(Ordering::Relaxed) <= self.buf.len() as u64
    }
    #[inline]
    fn take(&mut self, p: &[AtomicU64]) -> Self::Out {
        let len = message_len(p, self.max)?;
        let dst = self
            .buf
            .get_mut(..len)
            .ok_or(QueueError::WontFit(len as u64))?;
        load_bytes(&p[1..], dst);
        Ok(len)
    }
}

/// Copies a message into a caller's vector, reusing its allocation.
pub(crate) struct IntoVec<'b> {
    pub buf: &'b mut Vec<u8>,
    pub max: usize,
}

impl Take for IntoVec<'_> {
    type Out = core::result::Result<usize, QueueError>;
    #[inline]
    fn take(&mut self, p: &[AtomicU64]) -> Self::Out {
        let len = message_len(p, self.max)?;
        self.buf.clear();
        self.buf.resize(len, 0);
        load_bytes(&p[1..], self.buf);
        Ok(len)
    }
}
