//! The task accounting of the joinable queues ([`JoinableQueue`](crate::JoinableQueue)
//! and [`JoinableByteQueue`](crate::JoinableByteQueue)): a ring plus a [`RawJoin`],
//! the take that counts a task as held from just before its claim, and
//! `task_done` / `join` over them.

use super::ring::{HasRing, RingHandle};
use crate::raw::queue::{RawQueue, Take};
use crate::raw::queue_join::{Holder, RawJoin, RawJoinableQueue};
use crate::sync::atomic::AtomicU64;
use crate::sync::{current_identity, Identity};
use crate::sys::clock::Deadline;
use crate::{Error, Result};
use std::cell::Cell;

impl HasRing for RawJoinableQueue {
    fn ring_header(&self) -> &RawQueue {
        &self.queue
    }
}

thread_local! {
    /// Where this thread's held-task entry was last found.
    static HINT: Cell<usize> = const { Cell::new(0) };
}

/// Joiners re-check for dead consumers this many probe intervals apart.
const JOIN_PROBE_FACTOR: u32 = 5;

/// A [`Take`] that counts the task as held by the calling thread from just before
/// its claim.
pub(crate) struct Counted<'j, X> {
    inner: X,
    join: &'j RawJoin,
    holder: Holder,
}

impl<X: Take> Take for Counted<'_, X> {
    type Out = X::Out;
    #[inline]
    fn admit(&mut self, p: &[AtomicU64]) -> bool {
        if !self.inner.admit(p) {
            return false;
        }
        self.join.raise(self.holder);
        true
    }
    #[inline]
    fn lost(&mut self) {
        self.join.lower(self.holder);
        self.inner.lost();
    }
    #[inline]
    fn take(&mut self, p: &[AtomicU64]) -> Self::Out {
        self.inner.take(p)
    }
}

/// The task accounting shared by [`JoinableQueue`] and
/// [`JoinableByteQueue`](crate::JoinableByteQueue): both are a ring plus a [`RawJoin`].
pub(crate) struct Tasks<'h>(pub &'h RingHandle<RawJoinableQueue>);

impl Tasks<'_> {
    fn join_state(&self) -> &RawJoin {
        &self.0.raw().join
    }

    fn holder(&self, me: Identity) -> Holder {
        let hint = HINT.with(Cell::get);
        let h = self.join_state().holder(me, hint);
        if let Holder::Entry(i) = h {
            if i != hint {
                HINT.with(|c| c.set(i));
            }
        }
        h
    }

    /// `inner`, counting the value it takes as held by `me` from just before its claim.
    pub fn counted<X: Take>(&self, me: Identity, inner: X) -> Counted<'_, X> {
        Counted {
            inner,
            join: self.join_state(),
            holder: self.holder(me),
        }
    }

    /// See [`JoinableQueue::task_done`].
    pub fn task_done(&self) -> Result<()> {
        let hint = HINT.with(Cell::get);
        let r = self
            .join_state()
            .task_done(current_identity(), hint)
            .map_err(|_| {
                Error::invalid(format!(
                    "task_done() called more times than values were got from '{}'",
                    self.0.name()
                ))
            });
        self.0.intact(r)
    }

    /// See [`JoinableQueue::hand_over`].
    pub fn hand_over(&self) -> u64 {
        self.join_state()
            .hand_over(current_identity(), HINT.with(Cell::get))
    }

    /// A handle's drop: the calling thread lets go of its tasks.
    pub fn let_go(&self) {
        // `try_with`: a handle may drop while thread-locals are being destroyed.
        let hint = HINT.try_with(Cell::get).unwrap_or(0);
        self.join_state().hand_over(current_identity(), hint);
    }

    /// See [`JoinableQueue::join_timeout`].
    pub fn join(&self, deadline: Deadline) -> bool {
        let Ok(ring) = self.0.ring() else {
            return false;
        };
        let probe = self.0.policy().probe.saturating_mul(JOIN_PROBE_FACTOR);
        // Once the segment is broken, join reports false: its tasks are lost.
        self.join_state()
            .join(&ring, deadline, probe)
            .unwrap_or(false)
            && !self.0.is_broken()
    }

    /// See [`JoinableQueue::unfinished_tasks`].
    pub fn unfinished(&self) -> usize {
        self.0.ring().map_or(0, |ring| {
            usize::try_from(self.join_state().unfinished(&ring, false)).unwrap_or(usize::MAX)
        })
    }
}
