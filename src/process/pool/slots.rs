//! The workers' shared slots: one cache line per worker, in which a worker says
//! which chunk it runs, how many messages it has sent and whether it is ready. The
//! pool thread reads them to decide, when a worker dies, what it had done.

use crate::sync::atomic::AtomicU64;
use crate::{Error, Result, Segment};

/// What a worker shares with the pool thread (one 128-byte line per worker).
#[repr(C, align(128))]
pub(super) struct WorkerSlot {
    /// Id + 1 of the chunk the worker runs; 0 between chunks.
    pub running: AtomicU64,
    /// Complete messages this incarnation has put into the result queue.
    pub sent: AtomicU64,
    /// 1 once the initializer has returned.
    pub ready: AtomicU64,
    /// Messages the worker has copied out of its task area (see `blob.rs`).
    pub arg_taken: AtomicU64,
    /// Messages the pool has copied out of this incarnation's result area.
    pub res_taken: AtomicU64,
    /// Generation of the result area this incarnation created last (0: none).
    pub res_gen: AtomicU64,
    /// `(sender << 32) | n`: the `n`-th message of incarnation `sender` written into
    /// its result area is no longer held by an outcome (see `wire::HeldArea`); the
    /// worker writes its next message there only then, else into a new generation.
    pub res_free: AtomicU64,
}

/// The [`WorkerSlot::res_free`] word of message `n` of incarnation `sender`.
pub(super) fn free_tag(sender: u32, n: u64) -> u64 {
    (u64::from(sender) << 32) | (n & 0xffff_ffff)
}

/// The workers' slots, in an anonymous shared segment inherited through fork.
#[derive(Clone)]
pub(super) struct Slots {
    seg: Segment,
    n: usize,
}

impl Slots {
    /// Anonymous slots (`name` None: shared through fork) or the named segment `name`.
    pub fn new(n: usize, name: Option<&str>) -> Result<Slots> {
        let len = n * std::mem::size_of::<WorkerSlot>();
        let seg = match name {
            None => Segment::anonymous(len)?,
            Some(name) => Segment::create(name, len)?,
        };
        Ok(Slots { seg, n })
    }

    /// Opens the named slots of a pool of `n` workers (in a spawned worker).
    pub fn open(name: &str, n: usize) -> Result<Slots> {
        let seg = Segment::open(name)?;
        if seg.len() < n * std::mem::size_of::<WorkerSlot>() {
            return Err(Error::corrupt(
                name,
                "too short for the pool's worker slots",
            ));
        }
        Ok(Slots { seg, n })
    }

    /// The segment's name ("" when anonymous).
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    pub fn get(&self, i: usize) -> &WorkerSlot {
        // Unreachable from shared data: `i` is a worker index of the pool's own table.
        assert!(i < self.n, "worker slot {i} out of range");
        // SAFETY: the segment holds `n` slots, is 128-aligned, and WorkerSlot is made
        // of atomics only (valid for any bytes, shared access is sound).
        unsafe { &*self.seg.as_ptr().cast::<WorkerSlot>().add(i) }
    }
}
