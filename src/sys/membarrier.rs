//! `membarrier(2)`: a memory barrier run on other processes' CPUs, for asymmetric
//! handshakes across processes (see `docs/design/queue-lease.md`).
//!
//! A fast path that must order its store before a later load (a Dekker handshake)
//! normally pays a full fence or a locked instruction. With `membarrier`, the fast
//! side keeps a compiler fence only, and the rare side calls [`global`], which
//! returns only after every running thread of every *registered* process has
//! executed a full memory barrier (a thread not running gets one from the context
//! switch). A process registers once, with [`register`], before any of its threads
//! relies on the barrier.
//!
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED` needs Linux 4.16; [`available`] says whether
//! this kernel has it (a caller without it keeps its fenced path).

/// `MEMBARRIER_CMD_QUERY` (linux/membarrier.h).
const CMD_QUERY: libc::c_int = 0;
/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED`.
const CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
/// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`.
const CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// True if this kernel offers the expedited global barrier and its registration.
pub fn available() -> bool {
    let q = membarrier(CMD_QUERY);
    let need = libc::c_long::from(CMD_GLOBAL_EXPEDITED | CMD_REGISTER_GLOBAL_EXPEDITED);
    q >= 0 && q & need == need
}

/// Registers the calling process for [`global`] barriers (idempotent; cheap to
/// repeat). False if the kernel refused.
pub fn register() -> bool {
    membarrier(CMD_REGISTER_GLOBAL_EXPEDITED) == 0
}

/// A full memory barrier on every CPU running a thread of a registered process,
/// done before this returns. False if the kernel refused (the caller must not then
/// rely on the barrier).
pub fn global() -> bool {
    membarrier(CMD_GLOBAL_EXPEDITED) == 0
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_expedited_global_barrier_registers_and_runs_where_offered() {
        if !available() {
            eprintln!("membarrier: no expedited global barrier on this kernel");
            return;
        }
        assert!(register());
        assert!(register(), "registering twice is harmless");
        assert!(global());
    }
}
