//! `Shared<R>`: a third party's own `#[repr(C)]` state in a named segment, shared by
//! name between processes, and the checks `open` makes (kind, tag, type).
#![cfg(all(feature = "std", not(loom)))]
mod common;
use common::*;
use multiproc::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use multiproc::{Error, Lock, Shared};
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);
const TAG: u32 = 0x5eed;

#[repr(C)]
struct Counters {
    /// Set once by the creator before anyone can open the object.
    version: AtomicU32,
    /// Set by the child when it has done its share.
    child_done: AtomicU32,
    hits: AtomicU64,
}
// SAFETY: repr(C), atomics only, valid when zeroed, no pointers, no Drop.
multiproc::shared_state!(unsafe Counters);

#[repr(C)]
struct Other {
    words: [AtomicU64; 3],
}
// SAFETY: as above.
multiproc::shared_state!(unsafe Other);

#[test]
fn handles_are_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Shared<Counters>>();
    let name = unique("shared-debug");
    let s: Shared<Counters> = Shared::create(&name, TAG).unwrap();
    let text = format!("{s:?}");
    assert!(text.contains(&name) && text.contains("Counters"), "{text}");
}

#[test]
fn two_processes_share_a_user_struct_of_atomics_by_name() {
    const EACH: u64 = 20_000;
    let name = unique("shared-two");
    let mine: Shared<Counters> = Shared::create_init(&name, TAG, |c: &Counters| {
        c.version.store(7, Ordering::Relaxed);
    })
    .unwrap();
    let child_name = name.clone();
    let child = fork(move || {
        // An unrelated attach by name, not the handle inherited through fork.
        let theirs: Shared<Counters> = match Shared::open(&child_name, TAG) {
            Ok(s) => s,
            Err(_) => return 2,
        };
        if theirs.version.load(Ordering::Relaxed) != 7 {
            return 3;
        }
        for _ in 0..EACH {
            theirs.hits.fetch_add(1, Ordering::Relaxed);
        }
        theirs.child_done.store(1, Ordering::Release);
        0
    });
    for _ in 0..EACH {
        mine.hits.fetch_add(1, Ordering::Relaxed);
    }
    child.join_ok(WATCHDOG);
    assert_eq!(mine.child_done.load(Ordering::Acquire), 1);
    assert_eq!(mine.get().hits.load(Ordering::Relaxed), 2 * EACH);
}

#[test]
fn open_with_another_tag_is_wrong_kind() {
    let name = unique("shared-tag");
    let _s: Shared<Counters> = Shared::create(&name, TAG).unwrap();
    match Shared::<Counters>::open(&name, TAG + 1) {
        Err(Error::WrongKind {
            name: n,
            expected,
            found,
        }) => {
            assert_eq!(n, name);
            assert!(expected.contains(&(TAG + 1).to_string()), "{expected}");
            assert!(found.contains(&TAG.to_string()), "{found}");
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
}

#[test]
fn open_as_another_type_is_wrong_type() {
    let name = unique("shared-type");
    let _s: Shared<Counters> = Shared::create(&name, TAG).unwrap();
    match Shared::<Other>::open(&name, TAG) {
        Err(Error::WrongType { found, .. }) => assert!(found.contains("Counters"), "{found}"),
        other => panic!("expected WrongType, got {other:?}"),
    }
}

#[test]
fn another_kind_of_object_is_wrong_kind_both_ways() {
    let lock_name = unique("shared-lock");
    let _lock = Lock::create(&lock_name).unwrap();
    assert!(matches!(
        Shared::<Counters>::open(&lock_name, TAG),
        Err(Error::WrongKind { .. })
    ));
    let name = unique("shared-notlock");
    let _s: Shared<Counters> = Shared::create(&name, TAG).unwrap();
    assert!(matches!(Lock::open(&name), Err(Error::WrongKind { .. })));
}

#[test]
fn create_over_a_name_in_use_is_already_exists() {
    let name = unique("shared-exists");
    let _s: Shared<Counters> = Shared::create(&name, TAG).unwrap();
    assert!(matches!(
        Shared::<Counters>::create(&name, TAG),
        Err(Error::AlreadyExists { .. })
    ));
}

#[test]
fn open_or_create_attaches_to_the_existing_state() {
    let name = unique("shared-ooc");
    let first: Shared<Counters> = Shared::open_or_create(&name, TAG).unwrap();
    first.hits.store(5, Ordering::Relaxed);
    let second: Shared<Counters> = Shared::open_or_create(&name, TAG).unwrap();
    assert_eq!(second.hits.load(Ordering::Relaxed), 5);
    assert_eq!((second.name(), second.tag()), (name.as_str(), TAG));
}

#[test]
fn opening_a_missing_name_is_not_found() {
    let name = unique("shared-missing");
    assert!(matches!(
        Shared::<Counters>::open(&name, TAG),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn the_creators_drop_unlinks_the_name_unless_persisted() {
    let name = unique("shared-drop");
    drop(Shared::<Counters>::create(&name, TAG).unwrap());
    assert!(matches!(
        Shared::<Counters>::open(&name, TAG),
        Err(Error::NotFound { .. })
    ));
    let kept: Shared<Counters> = Shared::create(&name, TAG).unwrap();
    kept.persist();
    drop(kept);
    let again: Shared<Counters> = Shared::open(&name, TAG).unwrap();
    drop(again);
    multiproc::unlink(&name).unwrap();
}

#[test]
fn nonzero_unused_parameters_are_corrupt() {
    let name = unique("shared-params");
    let s: Shared<Counters> = Shared::create(&name, TAG).unwrap();
    s.persist();
    let mut image = multiproc::segment::read_image(&name).unwrap();
    drop(s);
    multiproc::unlink(&name).unwrap();
    // The header's `params` start at byte 72 (magic..type_hash before them).
    const PARAMS: usize = 72;
    assert_eq!(
        image[PARAMS..PARAMS + 8],
        u64::from(TAG).to_ne_bytes(),
        "params[0] holds the tag"
    );
    image[PARAMS + 8] = 1;
    multiproc::segment::write_image(&name, &image).unwrap();
    let r = Shared::<Counters>::open(&name, TAG);
    multiproc::unlink(&name).unwrap();
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
}
