//! Named POSIX shared memory: `shm_open`, `ftruncate`, `fstat`, `shm_unlink`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;

fn c_name(posix_name: &str) -> io::Result<CString> {
    CString::new(posix_name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Creates `posix_name` exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`) with `mode`.
pub fn create(posix_name: &str, mode: u32) -> io::Result<File> {
    open_flags(
        posix_name,
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        mode,
    )
}

/// Opens an existing `posix_name` read-write (`O_NOFOLLOW`).
pub fn open(posix_name: &str) -> io::Result<File> {
    open_flags(
        posix_name,
        libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
}

fn open_flags(posix_name: &str, flags: i32, mode: u32) -> io::Result<File> {
    let name = c_name(posix_name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::shm_open(name.as_ptr(), flags, mode as libc::mode_t) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// An anonymous file (`memfd_create`) to back an unnamed segment: mapped
/// `MAP_SHARED`, it is shared with children forked after the mapping.
pub fn anonymous() -> io::Result<File> {
    // SAFETY: the name is a NUL-terminated literal; the flags are valid.
    let fd = unsafe { libc::memfd_create(c"multiproc-anon".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Removes `posix_name`; mappings that exist stay valid.
pub fn unlink(posix_name: &str) -> io::Result<()> {
    let name = c_name(posix_name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    if unsafe { libc::shm_unlink(name.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `(device, inode)` of the object currently behind `posix_name`, if any: lets a
/// creator check that the name still refers to *its* object before unlinking it.
pub fn identity_of_name(posix_name: &str) -> Option<(u64, u64)> {
    let f = open_flags(
        posix_name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .ok()?;
    identity_of_file(&f).ok()
}

/// `(device, inode)` of an open file.
pub fn identity_of_file(f: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}
