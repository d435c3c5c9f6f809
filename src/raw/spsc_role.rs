//! Roles for single-producer single-consumer objects: who may act as a ring's
//! producer or consumer (or as a pipe end), recorded so that a second live claimant
//! is refused and a dead holder is detected. Plus the raw layouts of
//! `SpscQueue` and `Pipe` built from them.
//!
//! A role is held by a *process*, named by an [`Identity`] whose `tid` is the process
//! id and whose `start` is the process start time: a holder's death is judged at the
//! process level — alive while any of its threads is, even after its main thread
//! exited — and tells a reused PID apart unless it was reused within one clock tick
//! (`sys::ident::process_is_dead`; under loom, the model's
//! [`owner_is_dead`](crate::sync::owner_is_dead)). The record is one `u64`
//! (`Identity::info`, plus a [`PROVISIONAL`] bit), claimed with one CAS, so exactly one
//! of several racing
//! claimants wins.
//!
//! Orderings: a claim is an Acquire CAS and a release a Release CAS (`SYNC(role)`), so
//! a new holder sees everything the previous one did before letting go. The closed
//! flag is set with Release and read with Acquire (`SYNC(role-closed)`).

use super::spsc::RawSpsc;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
use crate::sync::owner_is_dead;
use crate::sync::Identity;

/// Holder bit: the role is held on behalf of a process that has not used it yet — the
/// creator of an anonymous object, which forked children inherit. Any process that
/// uses the object first takes a provisional role over, even from a live holder.
pub const PROVISIONAL: u64 = 1 << 63;
/// `state` bit: the holder closed the role for good.
const CLOSED: u32 = 1;

/// Who holds a role right now (a snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleStatus {
    /// Nobody holds it.
    Free,
    /// A process holds it and has not exited (`provisional` as in [`PROVISIONAL`]).
    Held {
        /// The holder.
        holder: Identity,
        /// Held on behalf of a process that has not used it yet.
        provisional: bool,
    },
    /// Its holder exited without letting go.
    Dead(Identity),
    /// Closed for good.
    Closed,
}

/// How a successful claim went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The role was free (or provisionally held for a process that never used it).
    Fresh,
    /// The role was taken over from a holder that died holding it.
    TakenOver(Identity),
}

/// Why a claim failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// A live process (possibly the caller's own) holds the role.
    Busy(Identity),
    /// The holder died and the caller did not ask to take over.
    Dead(Identity),
    /// The role was closed for good.
    Closed,
}

/// A role record: the holding process and a closed flag.
///
/// All-zero bytes are a free, open role.
#[repr(C)]
#[derive(Debug)]
pub struct RawRole {
    /// | bits   | meaning                                                  |
    /// |--------|----------------------------------------------------------|
    /// | 0..63  | `Identity::info` of the holding process; 0 = free        |
    /// | 63     | [`PROVISIONAL`]: held for a process that has not used it |
    holder: AtomicU64,
    /// `CLOSED` once the holder closed the role; never cleared.
    state: AtomicU32,
    _pad: u32,
}

// SAFETY: repr(C) atomics and a u32, all-zero = free and open, no pointers, align 8.
unsafe impl super::SharedState for RawRole {}

impl Default for RawRole {
    fn default() -> Self {
        RawRole::new()
    }
}

/// True when the holding process has exited, every thread of it (see the module docs).
#[inline]
fn holder_is_dead(holder: Identity) -> bool {
    #[cfg(not(loom))]
    {
        crate::sys::ident::process_is_dead(holder)
    }
    #[cfg(loom)]
    {
        owner_is_dead(holder)
    }
}

#[inline]
fn identity(word: u64) -> Identity {
    Identity::from_info(word & !PROVISIONAL)
}

impl RawRole {
    /// A free, open role (the same as all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> RawRole {
        RawRole {
            holder: AtomicU64::new(0),
            state: AtomicU32::new(0),
            _pad: 0,
        }
    }
    /// A free, open role (the same as all-zero bytes).
    #[cfg(loom)]
    pub fn new() -> RawRole {
        RawRole {
            holder: AtomicU64::new(0),
            state: AtomicU32::new(0),
            _pad: 0,
        }
    }

    /// Claims the role for process `me`.
    ///
    /// Succeeds when the role is free, provisionally held (by anyone: see
    /// [`PROVISIONAL`]), or — with `take_over_dead` — held by a process that died.
    /// Fails with [`ClaimError::Busy`] when a live process holds it, the caller's own
    /// process included (one holder per role, even within a process).
    pub fn claim(&self, me: Identity, take_over_dead: bool) -> Result<Claimed, ClaimError> {
        let mine = me.info() & !PROVISIONAL;
        let mut cur = self.holder.load(Ordering::Relaxed);
        loop {
            if self.is_closed() {
                return Err(ClaimError::Closed);
            }
            let outcome = if cur == 0 || cur & PROVISIONAL != 0 {
                Claimed::Fresh
            } else if cur != mine && holder_is_dead(identity(cur)) {
                if !take_over_dead {
                    return Err(ClaimError::Dead(identity(cur)));
                }
                Claimed::TakenOver(identity(cur))
            } else {
                return Err(ClaimError::Busy(identity(cur)));
            };
            // SYNC(role): Acquire pairs with the Release of the previous holder's release.
            match self
                .holder
                .compare_exchange(cur, mine, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(outcome),
                Err(now) => cur = now,
            }
        }
    }

    /// Records `me` as the provisional holder (creating an anonymous object): until
    /// some process uses the role, it counts as alive while `me` is.
    pub fn hold_provisionally(&self, me: Identity) {
        self.holder
            .store(me.info() | PROVISIONAL, Ordering::Relaxed);
    }

    /// Lets go of the role if `me` holds it (so that another process may claim it);
    /// false if it was not ours.
    pub fn release(&self, me: Identity) -> bool {
        let mine = me.info() & !PROVISIONAL;
        // SYNC(role): Release pairs with the next claimant's Acquire CAS.
        self.holder
            .compare_exchange(mine, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// True while `me` holds the role (not provisionally).
    pub fn is_held_by(&self, me: Identity) -> bool {
        self.holder.load(Ordering::Relaxed) == me.info() & !PROVISIONAL
    }

    /// Closes the role for good (the holder's `close`).
    pub fn close(&self) {
        // SYNC(role-closed): Release pairs with the Acquire in is_closed.
        self.state.fetch_or(CLOSED, Ordering::Release);
    }

    /// True once the role was closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // SYNC(role-closed): Acquire pairs with the Release in close.
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Who holds the role (provisionally or not), without judging liveness: a
    /// snapshot, `None` when free or closed.
    pub fn holder(&self) -> Option<Identity> {
        if self.is_closed() {
            return None;
        }
        let cur = self.holder.load(Ordering::Relaxed);
        (cur & !PROVISIONAL != 0).then(|| identity(cur))
    }

    /// Who holds the role, judging liveness (reads `/proc` when held).
    pub fn status(&self) -> RoleStatus {
        if self.is_closed() {
            return RoleStatus::Closed;
        }
        let cur = self.holder.load(Ordering::Relaxed);
        if cur & !PROVISIONAL == 0 {
            return RoleStatus::Free;
        }
        let holder = identity(cur);
        if holder_is_dead(holder) && self.holder.load(Ordering::Relaxed) == cur {
            RoleStatus::Dead(holder)
        } else {
            RoleStatus::Held {
                holder,
                provisional: cur & PROVISIONAL != 0,
            }
        }
    }
}

/// The shared state of an `SpscQueue`: a ring of records plus
/// its two roles. The slots follow in the segment's trailing region.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawSpscQueue {
    /// The ring.
    pub ring: RawSpsc,
    /// Who may put.
    pub producer: RawRole,
    /// Who may get.
    pub consumer: RawRole,
}

// SAFETY: repr(C) composition of SharedState types; all-zero = empty, open, unclaimed.
unsafe impl super::SharedState for RawSpscQueue {}

/// The shared state of a `Pipe`: two byte rings (`rings[0]` carries
/// end A → end B, `rings[1]` end B → end A; a one-way pipe uses only `rings[0]`) and
/// the two ends' roles. The rings' bytes follow in the segment's trailing region.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawPipe {
    /// The byte rings, indexed by sending end.
    pub rings: [RawSpsc; 2],
    /// The ends' roles: `ends[0]` = A, `ends[1]` = B.
    pub ends: [RawRole; 2],
    /// Chosen at creation and never changed: mixed into the frame stamps, so that no
    /// stale bytes in a ring (a previous lap's payload) look like a fresh stamp.
    pub nonce: AtomicU64,
}

// SAFETY: as for RawSpscQueue.
unsafe impl super::SharedState for RawPipe {}
