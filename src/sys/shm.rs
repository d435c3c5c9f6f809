//! Named POSIX shared memory: `shm_open`, `ftruncate`, `fstat`, `shm_unlink`, and
//! what judging a segment file needs (`fchmod`, `statvfs`, the caller's uid, user names).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;

fn c_name(posix_name: &str) -> io::Result<CString> {
    CString::new(posix_name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Creates `posix_name` exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`) with exactly
/// `mode`: `shm_open` applies the umask, so the bits are set again with `fchmod`.
/// Until then the file has `mode & !umask`, never more than asked.
pub fn create(posix_name: &str, mode: u32) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let f = open_flags(
        posix_name,
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        mode,
    )?;
    // SAFETY: `f` is an open descriptor we own.
    if unsafe { libc::fchmod(f.as_raw_fd(), mode as libc::mode_t) } != 0 {
        let e = io::Error::last_os_error();
        let _ = unlink(posix_name);
        return Err(e);
    }
    Ok(f)
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

/// An unnamed shared-memory file (`memfd_create`): mapped `MAP_SHARED`, it is shared
/// with children forked after the mapping, and with nobody else.
pub fn anonymous() -> io::Result<File> {
    // SAFETY: the name is a NUL-terminated literal.
    let fd = unsafe { libc::memfd_create(c"multiproc-anon".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Faults in `len` bytes of a shared mapping at `ptr` for writing (`write`) or
/// reading, in one call (`MADV_POPULATE_WRITE`/`_READ`, Linux 5.14+), instead of one
/// page fault per page at first touch. `Err` if the pages cannot be backed (e.g. the
/// shared-memory filesystem is full) or the kernel is too old to say.
///
/// # Safety
/// `ptr..ptr + len` must lie in a mapping of this process (populating never changes
/// its contents).
pub unsafe fn populate(ptr: *mut u8, len: usize, write: bool) -> io::Result<()> {
    let advice = if write {
        libc::MADV_POPULATE_WRITE
    } else {
        libc::MADV_POPULATE_READ
    };
    // madvise wants a page-aligned start: round down (the page is part of the mapping).
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    let start = (ptr as usize) & !(page - 1);
    let len = len + (ptr as usize - start);
    // SAFETY: per the contract the range lies in our mapping; the advice only faults
    // pages in.
    if unsafe { libc::madvise(start as *mut libc::c_void, len, advice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    use std::os::unix::fs::MetadataExt;
    // glibc's shm_open opens "/dev/shm/<name>": one lstat instead of open+fstat+close.
    if let Ok(m) = std::fs::symlink_metadata(format!("/dev/shm{posix_name}")) {
        return Some((m.dev(), m.ino()));
    }
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

/// Bytes free for unprivileged users in the filesystem behind `shm_open` (`/dev/shm`),
/// or `None` if `statvfs` fails.
pub fn free_space() -> Option<u64> {
    let mut st = core::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: the path is a NUL-terminated literal; `st` is writable and statvfs fills
    // it completely when it returns 0.
    if unsafe { libc::statvfs(c"/dev/shm".as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    // fsblkcnt_t and c_ulong are u32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

/// The caller's effective uid: whose objects it may trust without being told.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The user name of `uid` from the password database, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut pw = core::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0u8; 1024];
    loop {
        let mut found: *mut libc::passwd = core::ptr::null_mut();
        // SAFETY: `pw`, `buf` and `found` are writable for the sizes given; getpwuid_r
        // writes only into them.
        let r = unsafe {
            libc::getpwuid_r(
                uid,
                pw.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if r == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if r != 0 || found.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so `pw` is initialised and its `pw_name` points
        // at a NUL-terminated string inside `buf`, which is still alive.
        let name = unsafe { core::ffi::CStr::from_ptr(pw.assume_init_ref().pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}
