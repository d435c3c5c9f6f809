//! Which file bytes an address of this process maps, from `/proc/self/maps`.
//!
//! Used on cold paths only (a lock word that names the calling thread): two handles on
//! one object opened separately map it at two addresses, and only the kernel's map
//! says they are the same bytes.

/// Where an address lies in the file it maps: device, inode and byte offset.
type FilePos = (u64, u64, u64);

/// True if `addr` maps the same file bytes as one of `others`; `None` if
/// `/proc/self/maps` cannot be read or does not list `addr`.
pub fn maps_same_bytes(addr: usize, others: &[usize]) -> Option<bool> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let at = |a: usize| maps.lines().find_map(|l| position_in(l, a));
    let target = at(addr)?;
    Some(others.iter().any(|&o| at(o) == Some(target)))
}

/// The file position of `addr` if the `/proc/*/maps` line `line` covers it.
fn position_in(line: &str, addr: usize) -> Option<FilePos> {
    // "start-end perms offset major:minor inode [path]", numbers in hex but the inode.
    let mut f = line.split_ascii_whitespace();
    let (start, end) = f.next()?.split_once('-')?;
    let (start, end) = (hex(start)?, hex(end)?);
    let addr = addr as u64;
    if addr < start || addr >= end {
        return None;
    }
    let offset = hex(f.nth(1)?)?;
    let (major, minor) = f.next()?.split_once(':')?;
    let dev = (hex(major)? << 32) | hex(minor)?;
    let inode = f.next()?.parse::<u64>().ok()?;
    if inode == 0 {
        // Private anonymous memory: no file, never shared with another mapping.
        return None;
    }
    Some((dev, inode, offset.checked_add(addr - start)?))
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maps_line_gives_device_inode_and_file_offset() {
        let l = "7f00a000-7f00c000 rw-s 00001000 00:1a 4242 /dev/shm/mp.x";
        assert_eq!(position_in(l, 0x7f00_a010), Some((0x1a, 4242, 0x1010)));
        assert_eq!(position_in(l, 0x7f00_c000), None);
        let anon = "7f00a000-7f00c000 rw-p 00000000 00:00 0";
        assert_eq!(position_in(anon, 0x7f00_a010), None);
        assert_eq!(position_in("garbage", 1), None);
    }

    #[test]
    fn two_mappings_of_one_file_map_the_same_bytes() {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(std::env::temp_dir().join(format!("mp-maps-{}", std::process::id())))
            .unwrap();
        f.set_len(8192).unwrap();
        let map = || {
            // SAFETY: a fresh shared mapping of our own file, unmapped below.
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    8192,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    f.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            p as usize
        };
        let (a, b) = (map(), map());
        assert_eq!(maps_same_bytes(a + 8, &[b + 8]), Some(true));
        assert_eq!(maps_same_bytes(a + 8, &[b + 16]), Some(false));
        for p in [a, b] {
            // SAFETY: mapped above with this length, no reference into it remains.
            unsafe { libc::munmap(p as *mut libc::c_void, 8192) };
        }
        let _ = std::fs::remove_file(
            std::env::temp_dir().join(format!("mp-maps-{}", std::process::id())),
        );
    }
}
