//! The pool's view of a [`ByteQueue`]: private (nameless) queues shared with the
//! workers through `fork`, and the few operations the pool needs.

use crate::{ByteQueue, Error, Result};
use std::time::Duration;

/// A private byte queue: anonymous (no name anyone could open), shared with the
/// workers only through `fork`.
#[derive(Clone, Debug)]
pub(super) struct Chan {
    q: ByteQueue,
    max: usize,
}

impl Chan {
    /// An anonymous queue (`name` None), or the named queue `name` for workers
    /// that are not forks of the pool's process.
    pub fn new(capacity: usize, max_message_len: usize, name: Option<&str>) -> Result<Chan> {
        let q = match name {
            None => ByteQueue::anonymous(capacity, max_message_len)?,
            Some(name) => ByteQueue::create(name, capacity, max_message_len)?,
        };
        Ok(Chan {
            q,
            max: max_message_len,
        })
    }

    /// Opens the named queue `name` (in a spawned worker).
    pub fn open(name: &str) -> Result<Chan> {
        let q = ByteQueue::open(name)?;
        let max = q.max_message_len();
        Ok(Chan { q, max })
    }

    /// The queue's name ("" when anonymous).
    pub fn name(&self) -> &str {
        self.q.name()
    }

    /// Sets how many times a blocking call polls before it sleeps.
    pub fn with_spin(self, spin: Option<u32>) -> Chan {
        Chan {
            q: self.q.with_spin_limit(spin),
            max: self.max,
        }
    }

    /// The largest message the queue takes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Puts `b` unless the queue is full: `Ok(false)` when full.
    pub fn try_put(&self, b: &[u8]) -> Result<bool> {
        match self.q.try_put(b) {
            Ok(()) => Ok(true),
            Err(Error::Full) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Puts `b`, waiting for room.
    pub fn put(&self, b: &[u8]) -> Result<()> {
        self.q.put(b)
    }

    /// Takes a message into `buf` if there is one: `Ok(false)` when empty.
    pub fn try_get(&self, buf: &mut Vec<u8>) -> Result<bool> {
        match self.q.try_get_into_vec(buf) {
            Ok(_) => Ok(true),
            Err(Error::Empty) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits at most `d` for a message: `Ok(false)` on timeout.
    pub fn get_timeout(&self, buf: &mut Vec<u8>, d: Duration) -> Result<bool> {
        match self.q.get_into_vec_timeout(buf, d) {
            Ok(_) => Ok(true),
            Err(Error::Timeout) | Err(Error::Empty) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits for a message.
    pub fn get(&self, buf: &mut Vec<u8>) -> Result<()> {
        self.q.get_into_vec(buf)?;
        Ok(())
    }
}
