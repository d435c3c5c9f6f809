//! Open-file-description locks (`fcntl(F_OFD_SETLK)`): how the kernel tells us who
//! still has a segment mapped.
//!
//! An OFD lock belongs to the *open file description*, not to a process: it is shared
//! by every descriptor `dup`ed or inherited through `fork` from the one that took it,
//! and the kernel drops it when the last of those descriptors is closed — however its
//! processes end (exit, SIGKILL, OOM killer). Unlike classic POSIX record locks,
//! closing some other descriptor of the same file does not drop it, and locks taken
//! through different descriptions conflict even inside one process.
//!
//! Every segment handle holds a *read* lock on [`ATTACH_RANGE`] of its file while it
//! maps the segment; "somebody uses this object" is then "a write lock on that range
//! would conflict", a question the kernel answers without PIDs, polling or a tracker
//! process. The locks are advisory: they guard nothing but this question.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The byte range `(start, len)` every attachment lock covers: byte 0 of the file.
pub const ATTACH_RANGE: (i64, i64) = (0, 1);

/// Who holds a conflicting lock on [`ATTACH_RANGE`], as [`holder`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No other description holds a lock: a write lock would succeed.
    Nobody,
    /// At least one other description holds a read lock: the object is in use.
    Readers,
    /// Another description holds the write lock: someone is reclaiming the object.
    Writer,
}

fn flock(kind: i32) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value (l_pid must be 0 for
    // OFD locks).
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = ATTACH_RANGE.0 as libc::off_t;
    fl.l_len = ATTACH_RANGE.1 as libc::off_t;
    fl
}

/// Takes (or converts to) a lock of `kind` on [`ATTACH_RANGE`] without blocking.
/// `Ok(false)` when a conflicting lock is held through another description.
fn set(file: &File, kind: i32) -> io::Result<bool> {
    let fl = flock(kind);
    // SAFETY: `file` is an open descriptor; `fl` is a valid flock that outlives the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Takes a read (shared) lock: this description now counts as a user of the file.
/// `Ok(false)` while another description holds the write lock.
pub fn lock_shared(file: &File) -> io::Result<bool> {
    set(file, libc::F_RDLCK)
}

/// Takes the write (exclusive) lock: succeeds only when no other description holds
/// any lock on the range, i.e. nobody uses the file. Needs a descriptor opened for
/// writing.
pub fn lock_exclusive(file: &File) -> io::Result<bool> {
    set(file, libc::F_WRLCK)
}

/// Which lock, if any, another description holds on the range (`F_OFD_GETLK`);
/// works on a read-only descriptor.
pub fn holder(file: &File) -> io::Result<Holder> {
    let mut fl = flock(libc::F_WRLCK);
    // SAFETY: `file` is an open descriptor; `fl` is a valid, writable flock.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(match i32::from(fl.l_type) {
        libc::F_UNLCK => Holder::Nobody,
        libc::F_RDLCK => Holder::Readers,
        _ => Holder::Writer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd() -> File {
        crate::sys::shm::anonymous().unwrap()
    }

    #[test]
    fn readers_share_and_exclude_a_writer() {
        let f = memfd();
        let a = f.try_clone().unwrap(); // same description: shares the lock
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        let other = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap(); // a new description of the same file
        assert_eq!(holder(&other).unwrap(), Holder::Nobody);
        assert!(lock_shared(&f).unwrap());
        assert_eq!(holder(&other).unwrap(), Holder::Readers);
        assert_eq!(
            holder(&a).unwrap(),
            Holder::Nobody,
            "own locks never conflict"
        );
        assert!(!lock_exclusive(&other).unwrap());
        drop(f);
        assert!(!lock_exclusive(&other).unwrap(), "the dup still holds it");
        drop(a);
        assert!(lock_exclusive(&other).unwrap(), "last descriptor closed");
    }

    #[test]
    fn a_writer_excludes_readers() {
        let f = memfd();
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        let other = std::fs::OpenOptions::new().read(true).open(&path).unwrap();
        assert!(lock_exclusive(&f).unwrap());
        assert_eq!(holder(&other).unwrap(), Holder::Writer);
        assert!(!lock_shared(&other).unwrap());
    }
}
