//! Segments: names, sizes, header validation against every corruption, creators that
//! die or never finish, ownership of the name, and races to create.
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::segment::{read_image, write_image, HEADER_LEN};
use multiproc::{unlink, Array, Error, Lock, Options, Queue, Segment, Value};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Header field offsets (see `segment/header.rs`); checked by
/// `header_layout_matches_the_offsets_these_tests_use`.
mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const KIND: usize = 12;
    pub const STATE: usize = 16;
    pub const CREATOR_TID: usize = 20;
    pub const CREATOR_START: usize = 24;
    pub const TOTAL_LEN: usize = 32;
    pub const DATA_LEN: usize = 48;
    pub const TYPE_SIZE: usize = 56;
    pub const PARAMS: usize = 72;
    pub const FLAGS: usize = 104;
    pub const TYPE_NAME_LEN: usize = 112;
    pub const TYPE_NAME: usize = 120;
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Writes `image` under a fresh name, runs `f` on the name, then unlinks it.
fn with_image<R>(image: &[u8], f: impl FnOnce(&str) -> R) -> R {
    let name = unique("img");
    write_image(&name, image).unwrap();
    let r = f(&name);
    let _ = unlink(&name);
    r
}

fn quick() -> Options {
    Options::new().init_timeout(Duration::from_millis(1))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Ok,
    Corrupt,
    WrongKind,
    WrongType,
}

fn outcome<T>(r: multiproc::Result<T>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(Error::Corrupt { .. }) => Outcome::Corrupt,
        Err(Error::WrongKind { .. }) => Outcome::WrongKind,
        Err(Error::WrongType { .. }) => Outcome::WrongType,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// The object kinds these tests open images as.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Segment,
    Lock,
    ValueU64,
    Value64B,
    ArrayU32,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Segment,
        Kind::Lock,
        Kind::ValueU64,
        Kind::Value64B,
        Kind::ArrayU32,
    ];

    fn create(self, name: &str) {
        let opts = Options::new();
        match self {
            Kind::Segment => Segment::create_with(name, 100, &opts).unwrap().persist(),
            Kind::Lock => Lock::create_with(name, &opts).unwrap().persist(),
            Kind::ValueU64 => Value::create_with(name, 7u64, &opts).unwrap().persist(),
            Kind::Value64B => Value::create_with(name, [3u64; 8], &opts)
                .unwrap()
                .persist(),
            Kind::ArrayU32 => Array::from_slice_with(name, &[1u32, 2, 3, 4, 5], &opts)
                .unwrap()
                .persist(),
        }
    }

    fn typed(self) -> bool {
        matches!(self, Kind::ValueU64 | Kind::Value64B | Kind::ArrayU32)
    }

    /// Opens `name` as this kind and, if that works, uses it without blocking.
    fn open_and_use(self, name: &str) -> Outcome {
        let opts = quick();
        match self {
            Kind::Segment => outcome(Segment::open_with(name, &opts).map(|s| {
                if !s.is_empty() {
                    // SAFETY: in bounds (len() bytes); volatile, since others may write.
                    unsafe {
                        let _ = s.as_ptr().read_volatile();
                        let _ = s.as_ptr().add(s.len() - 1).read_volatile();
                    }
                }
            })),
            Kind::Lock => outcome(Lock::open_with(name, &opts).map(|l| drop(l.try_acquire()))),
            Kind::ValueU64 => outcome(Value::<u64>::open_with(name, &opts).map(|v| {
                let x = v.get();
                v.fetch_add(1);
                v.set(x);
                drop(v.try_lock());
            })),
            Kind::Value64B => outcome(Value::<[u64; 8]>::open_with(name, &opts).map(|v| {
                let _ = v.get();
                if let Some(mut g) = v.try_lock() {
                    g[0] += 1;
                }
            })),
            Kind::ArrayU32 => outcome(Array::<u32>::open_with(name, &opts).map(|a| {
                let v = a.to_vec();
                assert_eq!(v.len(), a.len());
                let _ = a.get(a.len().saturating_sub(1));
                let _ = a.fetch_add(0, 1);
                let _ = a.set(a.len(), 0);
                if let Some(mut g) = a.try_lock() {
                    g.reverse();
                }
            })),
        }
    }

    /// What corrupting the header byte at `at` must lead to.
    fn expected(self, at: usize) -> &'static [Outcome] {
        use Outcome::*;
        match at {
            0..=11 => &[Corrupt],    // magic, layout version
            12..=15 => &[WrongKind], // kind
            16..=19 => &[Corrupt],   // init state
            20..=31 => &[Ok],        // creator: only read while initialising
            32..=47 => &[Corrupt],   // total length, data offset
            48..=55 if matches!(self, Kind::Segment) => &[Ok, Corrupt], // a shorter data length is harmless
            48..=55 => &[Corrupt],
            56..=71 if self.typed() => &[WrongType], // element size, align, type hash
            72..=103 if self.typed() => &[Corrupt],  // length / layout parameters
            _ => &[Ok], // unused by this kind, flags, type name (messages only), padding
        }
    }
}

#[test]
fn header_layout_matches_the_offsets_these_tests_use() {
    let name = unique("layout");
    let _v: Value<u32> = Value::create(&name, 5).unwrap();
    let img = read_image(&name).unwrap();
    assert_eq!(&img[off::MAGIC..off::MAGIC + 8], b"MPROCSEG");
    assert_eq!(u32_at(&img, off::VERSION), 2); // 2: queue leases
    assert_eq!(u32_at(&img, off::KIND), 2); // ObjectKind::Value
    assert_eq!(u32_at(&img, off::STATE), 2); // READY
    assert_eq!(
        u32_at(&img, off::CREATOR_TID),
        multiproc::sys::ident::gettid()
    );
    assert_eq!(u64_at(&img, off::TOTAL_LEN), img.len() as u64);
    assert_eq!(u64_at(&img, off::DATA_LEN) as usize + HEADER_LEN, img.len());
    assert_eq!(u32_at(&img, off::TYPE_SIZE), 4);
    assert_eq!(u64_at(&img, off::PARAMS), 1); // one element
    assert_eq!(u64_at(&img, off::FLAGS), 0);
    let n = u64_at(&img, off::TYPE_NAME_LEN) as usize;
    assert_eq!(&img[off::TYPE_NAME..off::TYPE_NAME + n], b"u32");
}

#[test]
fn every_corrupted_header_byte_is_refused_or_harmless() {
    for kind in Kind::ALL {
        let name = unique("corrupt-src");
        kind.create(&name);
        let good = read_image(&name).unwrap();
        unlink(&name).unwrap();
        assert_eq!(with_image(&good, |n| kind.open_and_use(n)), Outcome::Ok);
        for at in 0..HEADER_LEN {
            for pattern in [0xFFu8, 0x01, 0x80] {
                let mut img = good.clone();
                img[at] ^= pattern;
                let got = with_image(&img, |n| kind.open_and_use(n));
                assert!(
                    kind.expected(at).contains(&got),
                    "{kind:?}: byte {at} ^ {pattern:#x} gave {got:?}, expected {:?}",
                    kind.expected(at)
                );
            }
        }
    }
}

#[test]
fn corrupted_data_bytes_never_panic_or_block_lock_free_operations() {
    // The raw state (lock word, owner, seqlock counter) and the elements: any one byte
    // may be garbage. Opening succeeds; operations return without panicking.
    for kind in [Kind::ValueU64, Kind::Value64B, Kind::ArrayU32, Kind::Lock] {
        let name = unique("corrupt-data");
        kind.create(&name);
        let good = read_image(&name).unwrap();
        unlink(&name).unwrap();
        for at in HEADER_LEN..good.len() {
            let mut img = good.clone();
            img[at] ^= 0xA5;
            let got = watchdog(WATCHDOG, move || with_image(&img, |n| kind.open_and_use(n)));
            assert_eq!(got, Outcome::Ok, "{kind:?}: data byte {at}");
        }
    }
}

#[test]
fn truncated_or_extended_images_are_corrupt() {
    let name = unique("trunc-src");
    Kind::ArrayU32.create(&name);
    let good = read_image(&name).unwrap();
    unlink(&name).unwrap();
    for len in [0, 1, 8, 100, HEADER_LEN - 1, HEADER_LEN, good.len() - 8] {
        let got = with_image(&good[..len], |n| Kind::ArrayU32.open_and_use(n));
        assert_eq!(got, Outcome::Corrupt, "image cut to {len} bytes");
    }
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 4096]);
    assert_eq!(
        with_image(&longer, |n| Kind::ArrayU32.open_and_use(n)),
        Outcome::Corrupt
    );
}

#[test]
fn array_length_beyond_the_file_is_corrupt_and_names_both_sizes() {
    // The header of a 1000-element array over the bytes of a 5-element one.
    let (big, small) = (unique("len-big"), unique("len-small"));
    let _b: Array<u32> = Array::create(&big, 1000).unwrap();
    let _s: Array<u32> = Array::create(&small, 5).unwrap();
    let big_img = read_image(&big).unwrap();
    let mut img = read_image(&small).unwrap();
    img[..HEADER_LEN].copy_from_slice(&big_img[..HEADER_LEN]);
    let e = with_image(&img, |n| Array::<u32>::open_with(n, &quick()).unwrap_err());
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains(&img.len().to_string()), "{e}");
    // ... and with the sizes fixed up to match the file, the parameters still disagree.
    let data = (img.len() - HEADER_LEN) as u64;
    let total = img.len() as u64;
    put_u64(&mut img, off::TOTAL_LEN, total);
    put_u64(&mut img, off::DATA_LEN, data);
    let e = with_image(&img, |n| Array::<u32>::open_with(n, &quick()).unwrap_err());
    let msg = e.to_string();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(
        msg.contains(&data.to_string()) && msg.contains("1000"),
        "{msg}"
    );
}

#[test]
fn creator_that_died_while_initialising_is_detected_without_waiting_out_the_timeout() {
    let name = unique("dead-init-src");
    Kind::ValueU64.create(&name);
    let mut img = read_image(&name).unwrap();
    unlink(&name).unwrap();
    // A real process that has exited: its TID is gone.
    let dead = fork(|| 0);
    let pid = dead.pid as u32;
    dead.join_ok(WATCHDOG);
    put_u32(&mut img, off::STATE, 1); // INITIALISING
    put_u32(&mut img, off::CREATOR_TID, pid);
    put_u64(&mut img, off::CREATOR_START, 1);
    let e = watchdog(Duration::from_secs(20), move || {
        with_image(&img, |n| {
            // An init timeout far beyond the watchdog: only liveness detection can end
            // this open in time.
            let opts = Options::new().init_timeout(Duration::from_secs(3600));
            Value::<u64>::open_with(n, &opts).unwrap_err()
        })
    });
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("died"), "{e}");
}

#[test]
fn never_initialised_object_is_corrupt_after_the_init_timeout() {
    let name = unique("empty-src");
    Kind::ArrayU32.create(&name);
    let mut img = read_image(&name).unwrap();
    unlink(&name).unwrap();
    put_u32(&mut img, off::STATE, 0); // EMPTY
    let opts = Options::new().init_timeout(Duration::from_millis(30));
    let e = with_image(&img, |n| Array::<u32>::open_with(n, &opts).unwrap_err());
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("not initialised"), "{e}");
    // An all-zero file (created, never written) likewise.
    let zeros = vec![0u8; img.len()];
    let e = with_image(&zeros, |n| Array::<u32>::open_with(n, &opts).unwrap_err());
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
}

#[test]
fn opener_waits_for_a_live_creator_to_finish_initialising() {
    let name = unique("slow-init-src");
    Kind::ValueU64.create(&name);
    let mut img = read_image(&name).unwrap();
    unlink(&name).unwrap();
    let me = multiproc::sys::ident::current();
    put_u32(&mut img, off::STATE, 1); // INITIALISING, by this (live) thread
    put_u32(&mut img, off::CREATOR_TID, me.tid);
    put_u64(&mut img, off::CREATOR_START, me.start);
    let target = unique("slow-init");
    write_image(&target, &img).unwrap();
    let path = format!("/dev/shm/mp.{target}");
    let finisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(&2u32.to_le_bytes(), off::STATE as u64)
            .unwrap();
    });
    let opts = Options::new().init_timeout(Duration::from_secs(30));
    let v = watchdog(WATCHDOG, {
        let target = target.clone();
        move || Value::<u64>::open_with(&target, &opts)
    })
    .unwrap();
    assert_eq!(v.get(), 7);
    finisher.join().unwrap();
    unlink(&target).unwrap();
}

#[test]
fn bad_names_are_refused_with_the_reason() {
    let long = "x".repeat(201);
    for bad in [
        "",
        ".hidden",
        "a/b",
        "sp ace",
        "ü",
        "a\0b",
        "..",
        long.as_str(),
    ] {
        let checks: [multiproc::Result<()>; 8] = [
            Segment::create(bad, 8).map(drop),
            Segment::open(bad).map(drop),
            Lock::create(bad).map(drop),
            Value::create(bad, 0u8).map(drop),
            Value::<u8>::open(bad).map(drop),
            Array::<u8>::create(bad, 1).map(drop),
            Array::<u8>::open(bad).map(drop),
            unlink(bad),
        ];
        for r in checks {
            match r {
                Err(Error::InvalidName { name, reason }) => {
                    assert_eq!(name, bad);
                    assert!(!reason.is_empty());
                }
                r => panic!("{bad:?}: expected InvalidName, got {r:?}"),
            }
        }
    }
    assert!(Segment::create(&"y".repeat(200), 1).is_ok());
}

#[test]
fn missing_objects_are_not_found() {
    let name = unique("missing");
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
    assert!(matches!(Lock::open(&name), Err(Error::NotFound { .. })));
    assert!(matches!(
        Value::<u8>::open(&name),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        Array::<u8>::open(&name),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(unlink(&name), Err(Error::NotFound { .. })));
}

#[test]
fn wrong_kinds_are_refused_naming_both() {
    let name = unique("kinds");
    let _l = Lock::create(&name).unwrap();
    for r in [
        Segment::open(&name).map(drop),
        Value::<u64>::open(&name).map(drop),
        Array::<u64>::open(&name).map(drop),
    ] {
        match r {
            Err(e @ Error::WrongKind { .. }) => assert!(e.to_string().contains("Lock"), "{e}"),
            r => panic!("expected WrongKind, got {r:?}"),
        }
    }
}

#[test]
fn sizes_of_zero_or_absurd_are_invalid_arguments() {
    for r in [
        Segment::create(&unique("size0"), 0),
        Segment::create(&unique("sizemax"), usize::MAX),
        Segment::create(&unique("size-huge"), 1 << 50),
        Segment::anonymous(0),
    ] {
        assert!(
            matches!(r, Err(Error::InvalidArgument { .. })),
            "expected InvalidArgument, got {r:?}"
        );
    }
}

#[test]
fn creator_drop_unlinks_unless_persisted() {
    let name = unique("own-drop");
    let v: Value<u8> = Value::create(&name, 1).unwrap();
    let clone = v.clone();
    drop(v);
    assert!(Value::<u8>::open(&name).is_ok(), "a clone still owns it");
    drop(clone);
    assert!(matches!(
        Value::<u8>::open(&name),
        Err(Error::NotFound { .. })
    ));

    let kept = unique("own-persist");
    let a: Array<u8> = Array::create(&kept, 2).unwrap();
    a.persist();
    drop(a);
    assert_eq!(Array::<u8>::open(&kept).unwrap().len(), 2);
    unlink(&kept).unwrap();
}

#[test]
fn opened_handles_never_unlink() {
    let name = unique("own-open");
    let creator = Segment::create(&name, 8).unwrap();
    assert!(creator.owns_name());
    let opened = Segment::open(&name).unwrap();
    assert!(!opened.owns_name());
    drop(opened);
    assert!(Segment::open(&name).is_ok());
    drop(creator);
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
}

#[test]
fn forked_child_dropping_an_inherited_creating_handle_does_not_unlink() {
    let name = unique("own-fork");
    let v: Value<u32> = Value::create(&name, 3).unwrap();
    let inherited = v.clone();
    let child = fork(move || {
        inherited.set(4);
        drop(inherited); // the last handle in this process
        0
    });
    child.join_ok(WATCHDOG);
    let again: Value<u32> = Value::open(&name).unwrap();
    assert_eq!(again.get(), 4);
}

#[test]
fn creator_drop_never_unlinks_a_newer_object_of_the_same_name() {
    let name = unique("own-reuse");
    let old = Segment::create(&name, 8).unwrap();
    unlink(&name).unwrap();
    let newer = Segment::create(&name, 16).unwrap();
    newer.persist();
    drop(old);
    assert_eq!(Segment::open(&name).unwrap().len(), 16);
    unlink(&name).unwrap();
}

#[test]
fn unlinked_objects_keep_working_for_those_who_have_them() {
    let name = unique("unlinked");
    let a: Array<u64> = Array::create(&name, 2).unwrap();
    let b: Array<u64> = Array::open(&name).unwrap();
    unlink(&name).unwrap();
    a.set(1, 9).unwrap();
    assert_eq!(b.get(1), Some(9));
    assert!(matches!(
        Array::<u64>::open(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn mode_is_private_by_default_and_can_be_chosen() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |n: &str| {
        std::fs::metadata(format!("/dev/shm/mp.{n}"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    let a = unique("mode-default");
    let _s = Segment::create(&a, 8).unwrap();
    assert_eq!(mode(&a), 0o600);
    let b = unique("mode-group");
    let _v = Value::create_with(&b, 0u8, &Options::new().mode(0o640)).unwrap();
    assert_eq!(mode(&b), 0o640);
}

/// The permission bits of the object `name`, read from its file.
fn mode_of(name: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(format!("/dev/shm/mp.{name}"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(u32::MAX)
}

#[test]
fn mode_is_set_exactly_under_umask_022() {
    let name = unique("mode-umask");
    // umask is process-wide: set it in a forked child, never in the test process.
    let child = fork(move || {
        // SAFETY: umask has no preconditions; this child is single-threaded.
        unsafe { libc::umask(0o022) };
        let mut bad = 0;
        for (i, mode) in [0o660, 0o666, 0o604, 0o600].into_iter().enumerate() {
            let n = format!("{name}-{i}");
            let _s = Segment::create_with(&n, 8, &Options::new().mode(mode)).unwrap();
            if mode_of(&n) != mode {
                eprintln!("asked {mode:o}, got {:o}", mode_of(&n));
                bad += 1;
            }
        }
        bad
    });
    child.join_ok(WATCHDOG);
}

/// Removes the object `name` when dropped, whether the test passed or not.
struct UnlinkOnDrop(String);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid the squatting tests create objects as: `nobody`.
const OTHER_UID: u32 = 65534;
const OTHER_GID: u32 = 65534;

/// In a forked child running as [`OTHER_UID`], creates the world-writable segment
/// `name` of 64 bytes, writes 7 into its first byte, creates the world-writable
/// `Queue<u64>` `name.q` of capacity 4 holding 9, and persists both.
fn create_as_other_user(name: &str) {
    let n = name.to_owned();
    let child = fork(move || {
        // SAFETY: a single-threaded forked child drops its privileges: groups first,
        // then the uid (after which it could not change them any more).
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(OTHER_GID, OTHER_GID, OTHER_GID) == 0
                && libc::setresuid(OTHER_UID, OTHER_UID, OTHER_UID) == 0
        };
        if !dropped {
            return 2;
        }
        let opts = Options::new().mode(0o666);
        let s = Segment::create_with(&n, 64, &opts).unwrap();
        // SAFETY: 64 bytes in bounds; nobody else has the segment yet.
        unsafe { s.as_ptr().write(7) };
        s.persist();
        let q: Queue<u64> = Queue::create_with(&format!("{n}.q"), 4, &opts).unwrap();
        q.put(9).unwrap();
        q.persist();
        0
    });
    child.join_ok(WATCHDOG);
}

#[test]
fn a_segment_another_user_created_is_refused_naming_its_owner() {
    if !is_root() {
        println!("skipped: creating a segment as another user needs root (setuid)");
        return;
    }
    let name = unique("squat");
    let queue = format!("{name}.q");
    let _cleanup = (UnlinkOnDrop(name.clone()), UnlinkOnDrop(queue.clone()));
    create_as_other_user(&name);
    assert_eq!(mode_of(&name), 0o666);
    for (r, name) in [
        (Segment::open(&name).map(drop), &name),
        (Segment::open_or_create(&name, 64).map(drop), &name),
        (
            Segment::open_with(&name, &Options::new().trust_owner(1234).trust_group(1234))
                .map(drop),
            &name,
        ),
        (Queue::<u64>::open(&queue).map(drop), &queue),
        (Queue::<u64>::open_or_create(&queue, 4).map(drop), &queue),
    ] {
        match r {
            Err(e @ Error::ForeignOwner { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!(
                        "'{name}' belongs to uid {OTHER_UID} (nobody), not to you (uid 0); \
                         pass Options::trust_owner({OTHER_UID})"
                    )),
                    "{msg}"
                );
                assert!(
                    matches!(
                        e,
                        Error::ForeignOwner {
                            owner: OTHER_UID,
                            group: OTHER_GID,
                            uid: 0,
                            ..
                        }
                    ),
                    "{e:?}"
                );
            }
            r => panic!("expected ForeignOwner, got {r:?}"),
        }
    }
}

#[test]
fn a_segment_of_a_trusted_owner_or_group_is_opened() {
    if !is_root() {
        println!("skipped: creating a segment as another user needs root (setuid)");
        return;
    }
    let name = unique("squat-trusted");
    let queue = format!("{name}.q");
    let _cleanup = (UnlinkOnDrop(name.clone()), UnlinkOnDrop(queue.clone()));
    create_as_other_user(&name);
    let by_owner = Options::new().trust_owner(OTHER_UID);
    let by_group = Options::new().trust_group(OTHER_GID);
    for seg in [
        Segment::open_with(&name, &by_owner).unwrap(),
        Segment::open_with(&name, &by_group).unwrap(),
        Segment::open_or_create_with(&name, 64, &by_owner).unwrap(),
        Segment::open_or_create_with(&name, 64, &by_group).unwrap(),
    ] {
        // SAFETY: 64 bytes in bounds; the creator has exited.
        assert_eq!(unsafe { seg.as_ptr().read() }, 7);
        assert!(!seg.owns_name());
    }
    let q = Queue::<u64>::open_or_create_with(&queue, 4, &by_group).unwrap();
    assert_eq!(q.get().unwrap(), 9);
    q.put(10).unwrap();
    assert_eq!(
        Queue::<u64>::open_with(&queue, &by_owner)
            .unwrap()
            .get()
            .unwrap(),
        10
    );
}

#[test]
fn a_name_that_is_not_a_regular_file_is_refused_at_once() {
    let name = unique("fifo");
    let _cleanup = UnlinkOnDrop(name.clone());
    let path = std::ffi::CString::new(format!("/dev/shm/mp.{name}")).unwrap();
    // SAFETY: `path` is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let r = watchdog(WATCHDOG, move || Segment::open(&name).map(drop));
    match r {
        Err(e @ Error::Corrupt { .. }) => {
            assert!(e.to_string().contains("not a regular file"), "{e}")
        }
        r => panic!("expected Corrupt, got {r:?}"),
    }
}

#[test]
fn a_hard_link_to_another_object_is_refused() {
    let real = unique("linked");
    let alias = unique("alias");
    let _cleanup = UnlinkOnDrop(alias.clone());
    let _s = Segment::create(&real, 64).unwrap();
    std::fs::hard_link(
        format!("/dev/shm/mp.{real}"),
        format!("/dev/shm/mp.{alias}"),
    )
    .unwrap();
    match Segment::open(&alias) {
        Err(e @ Error::Corrupt { .. }) => assert!(e.to_string().contains("hard links"), "{e}"),
        r => panic!("expected Corrupt, got {r:?}"),
    }
}

/// What a child reports when it could not set up a private /dev/shm.
const NO_NAMESPACE: i32 = 77;

#[test]
fn a_full_dev_shm_is_no_space_naming_both_sizes_and_leaves_nothing_behind() {
    if !is_root() {
        println!("skipped: mounting a small /dev/shm needs root");
        return;
    }
    let name = unique("nospace");
    let child = fork(move || {
        // SAFETY: a single-threaded forked child; every pointer is a NUL-terminated
        // literal or null where mount(2) allows it. The tmpfs is mounted only after
        // the namespace is private, so it never shows outside this child.
        let ready = unsafe {
            libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/dev/shm".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    c"size=1m".as_ptr().cast(),
                ) == 0
        };
        if !ready {
            return NO_NAMESPACE;
        }
        let len = 2 << 20;
        let needed = (len + HEADER_LEN) as u64;
        match Segment::create(&name, len) {
            Err(e @ Error::NoSpace { .. }) => {
                let msg = e.to_string();
                let Error::NoSpace {
                    needed: n,
                    available,
                    ..
                } = e
                else {
                    unreachable!()
                };
                let text = format!(
                    "'{name}' needs {needed} bytes but /dev/shm has only {available} bytes free"
                );
                if n != needed || available > 1 << 20 || !msg.contains(&text) {
                    eprintln!("{msg}");
                    return 1;
                }
            }
            r => {
                eprintln!("expected NoSpace, got {r:?}");
                return 1;
            }
        }
        if std::path::Path::new(&format!("/dev/shm/mp.{name}")).exists() {
            eprintln!("the failed create left its file behind");
            return 1;
        }
        // The name is free again, and what fits is created.
        match Segment::create(&name, 4096) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        }
    });
    match child.join(WATCHDOG) {
        Exit::Code(NO_NAMESPACE) => {
            println!("skipped: this system refused a private mount namespace")
        }
        e => assert_eq!(e, Exit::Code(0)),
    }
}

#[test]
fn a_segment_larger_than_dev_shm_is_no_space_and_leaves_nothing_behind() {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: the path is NUL-terminated; `st` is writable.
    let r = unsafe { libc::statvfs(c"/dev/shm".as_ptr(), st.as_mut_ptr()) };
    assert_eq!(r, 0);
    // SAFETY: statvfs returned 0.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::useless_conversion)] // u32 fields on 32-bit targets
    let size = u64::from(st.f_blocks) * u64::from(st.f_frsize);
    if size == 0 {
        println!("skipped: /dev/shm has no size limit");
        return;
    }
    // Larger than the whole filesystem: tmpfs refuses it before allocating a page.
    let len = (size + (1 << 20)) as usize;
    let name = unique("nospace-big");
    match Segment::create(&name, len) {
        Err(Error::NoSpace {
            needed, available, ..
        }) => {
            assert_eq!(needed, (len + HEADER_LEN) as u64);
            assert!(available < needed, "{available} >= {needed}");
        }
        r => panic!("expected NoSpace, got {r:?}"),
    }
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
}

#[test]
fn open_or_create_racing_from_several_processes_yields_one_object() {
    /// Unlinks the racers' names even when an assertion fails.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = unlink(&self.0);
            let _ = unlink(&format!("{}.s", self.0));
        }
    }
    for round in 0..3 {
        let name = unique("race");
        let _cleanup = Cleanup(name.clone());
        let go: Value<u32> = Value::anonymous(0).unwrap();
        let arrived: Value<u32> = Value::anonymous(0).unwrap();
        let release: Value<u32> = Value::anonymous(0).unwrap();
        let kids: Vec<_> = (0..4)
            .map(|_| {
                let (name, go, arrived, release) =
                    (name.clone(), go.clone(), arrived.clone(), release.clone());
                fork(move || {
                    while go.get() == 0 {
                        std::hint::spin_loop();
                    }
                    let v: Value<u64> = match round {
                        0 => Value::open_or_create(&name, 0).unwrap(),
                        _ => {
                            let s = Segment::open_or_create(&format!("{name}.s"), 64).unwrap();
                            // SAFETY: 8-aligned, in bounds, accessed atomically only.
                            let n =
                                unsafe { &*(s.as_ptr() as *const std::sync::atomic::AtomicU64) };
                            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let v = Value::open_or_create(&name, 0).unwrap();
                            std::mem::forget(s); // keep the segment's name alive
                            v
                        }
                    };
                    v.fetch_add(1);
                    arrived.fetch_add(1);
                    // Keep the handles (and so the name) alive until the parent looked.
                    let start = Instant::now();
                    while release.get() == 0 && start.elapsed() < WATCHDOG {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    0
                })
            })
            .collect();
        let mut kids = kids;
        go.set(1);
        let start = Instant::now();
        while arrived.get() < 4 {
            assert!(start.elapsed() < WATCHDOG, "watchdog: racers never arrived");
            for k in &mut kids {
                if let Some(exit) = k.wait_timeout(Duration::ZERO) {
                    panic!("round {round}: a racer failed: {exit:?}");
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let v: Value<u64> = Value::open(&name).unwrap();
        assert_eq!(v.get(), 4, "every racer incremented the same object");
        if round > 0 {
            let s = Segment::open(&format!("{name}.s")).unwrap();
            // SAFETY: as in the children.
            let n = unsafe { &*(s.as_ptr() as *const std::sync::atomic::AtomicU64) };
            assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 4);
        }
        release.set(1);
        for k in kids {
            k.join_ok(WATCHDOG);
        }
    }
}

#[test]
fn unrelated_process_attaches_to_segment_value_and_array_by_name() {
    const TEST: &str = "unrelated_process_attaches_to_segment_value_and_array_by_name";
    if let Some(name) = role() {
        let s = Segment::open(&name).unwrap();
        // SAFETY: 16 bytes in bounds; nobody else writes them now.
        let bytes = unsafe { std::slice::from_raw_parts(s.as_ptr(), 16) };
        assert_eq!(bytes, b"hello, stranger!");
        let v: Value<u64> = Value::open(&format!("{name}.v")).unwrap();
        v.fetch_add(1);
        let a: Array<u16> = Array::open(&format!("{name}.a")).unwrap();
        a.set(2, a.get(0).unwrap() + a.get(1).unwrap()).unwrap();
        println!("attached ok");
        return;
    }
    let name = unique("stranger");
    let s = Segment::create(&name, 16).unwrap();
    // SAFETY: 16 bytes in bounds; the other process starts after this.
    unsafe { std::ptr::copy_nonoverlapping(b"hello, stranger!".as_ptr(), s.as_ptr(), 16) };
    let v: Value<u64> = Value::create(&format!("{name}.v"), 41).unwrap();
    let a: Array<u16> = Array::from_slice(&format!("{name}.a"), &[20, 22, 0]).unwrap();
    let (code, out) = wait_self(spawn_self(TEST, &name), WATCHDOG);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("attached ok"), "{out}");
    assert_eq!(v.get(), 42);
    assert_eq!(a.get(2), Some(42));
}

#[test]
fn describe_names_the_kind_and_element_type_a_name_holds() {
    use multiproc::segment::{describe, ObjectKind};
    use multiproc::{ByteQueue, Lock, Queue, Value};
    let base = format!("t-describe-{}", std::process::id());
    let q: Queue<u64> = Queue::create(&format!("{base}.q"), 4).unwrap();
    let v: Value<i64> = Value::create(&format!("{base}.v"), 0).unwrap();
    let b = ByteQueue::create(&format!("{base}.b"), 4, 16).unwrap();
    let l = Lock::create(&format!("{base}.l")).unwrap();
    let d = describe(q.name()).unwrap();
    assert_eq!(
        (d.kind, d.type_name.as_str(), d.type_size, d.type_align),
        (ObjectKind::Queue, "u64", 8, 8)
    );
    let d = describe(v.name()).unwrap();
    assert_eq!(
        (d.kind, d.type_name.as_str(), d.type_size),
        (ObjectKind::Value, "i64", 8)
    );
    assert_eq!(describe(b.name()).unwrap().kind, ObjectKind::ByteQueue);
    let d = describe(l.name()).unwrap();
    assert_eq!((d.kind, d.type_size), (ObjectKind::Lock, 0));
}

#[test]
fn describe_reports_missing_and_garbage_names_as_errors() {
    use multiproc::segment::{describe, write_image};
    use multiproc::Error;
    let base = format!("t-describe-bad-{}", std::process::id());
    assert!(matches!(
        describe(&format!("{base}.none")),
        Err(Error::NotFound { .. })
    ));
    let short = format!("{base}.short");
    write_image(&short, &[7u8; 10]).unwrap();
    assert!(matches!(describe(&short), Err(Error::Corrupt { .. })));
    let junk = format!("{base}.junk");
    write_image(&junk, &[0xAB; 512]).unwrap();
    assert!(matches!(describe(&junk), Err(Error::Corrupt { .. })));
    multiproc::unlink(&short).unwrap();
    multiproc::unlink(&junk).unwrap();
}
