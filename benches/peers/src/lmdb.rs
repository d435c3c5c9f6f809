//! LMDB (heed) peer for the containers rows of `cargo bench --bench versus`.
//!
//! `lmdb-peer u64 N` and `lmdb-peer str N`: one process inserts N entries (u64 → u64,
//! or a 16-byte String → 100-byte value), one write transaction per insert, then
//! gets each of them, one read transaction per get (each of our `Dict` calls is one
//! atomic, consistent call too). Prints `insert <ops/s>` and `get <ops/s>`.
//!
//! The environment lives in a fresh directory on /dev/shm (memory, like our
//! segments) with `NO_SYNC | NO_META_SYNC | WRITE_MAP` (no msync: our Dict never
//! syncs either; writes go straight to the map), and is removed at exit. Integer
//! keys are big-endian (LMDB's usual choice: sequential keys append in key order,
//! which favours LMDB).

use heed::byteorder::{BigEndian, NativeEndian};
use heed::types::{Bytes, Str, U64};
use heed::{Database, Env, EnvFlags, EnvOpenOptions};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let dir = format!("/dev/shm/mpbench-lmdb-{}", std::process::id());
    let r = std::fs::create_dir(&dir)
        .map_err(Into::into)
        .and_then(|()| run(args.get(1).map(String::as_str), &dir, n));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = r {
        eprintln!("lmdb-peer: {e}");
        std::process::exit(1);
    }
}

fn run(mode: Option<&str>, dir: &str, n: u64) -> Res<()> {
    // SAFETY (heed's contract): the directory is new and private to this process,
    // opened once; NO_SYNC/NO_META_SYNC only give up durability across a crash of
    // the machine, which memory on /dev/shm does not have anyway.
    let env = unsafe {
        EnvOpenOptions::new()
            .map_size(1 << 30)
            .max_dbs(1)
            .flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC | EnvFlags::WRITE_MAP)
            .open(dir)?
    };
    match mode {
        Some("u64") => {
            let db: Database<U64<BigEndian>, U64<NativeEndian>> = create(&env)?;
            rates(
                n,
                |i| {
                    let mut w = env.write_txn()?;
                    db.put(&mut w, &i, &i)?;
                    Ok(w.commit()?)
                },
                |i| {
                    let r = env.read_txn()?;
                    match db.get(&r, &i)? {
                        Some(v) if v == i => Ok(()),
                        v => Err(format!("key {i}: got {v:?}").into()),
                    }
                },
            )
        }
        Some("str") => {
            let db: Database<Str, Bytes> = create(&env)?;
            let key = |i: u64| format!("key-{i:012}"); // 16 bytes
            let val = vec![7u8; 100];
            rates(
                n,
                |i| {
                    let mut w = env.write_txn()?;
                    db.put(&mut w, &key(i), &val)?;
                    Ok(w.commit()?)
                },
                |i| {
                    let r = env.read_txn()?;
                    // Copied out, as our Dict::get returns an owned value.
                    match db.get(&r, &key(i))?.map(<[u8]>::to_vec) {
                        Some(v) if v.len() == 100 => Ok(()),
                        v => Err(format!("key {i}: got {v:?}").into()),
                    }
                },
            )
        }
        _ => Err("usage: lmdb-peer u64|str N".into()),
    }
}

fn create<K: 'static, V: 'static>(env: &Env) -> Res<Database<K, V>> {
    let mut w = env.write_txn()?;
    let db = env.create_database(&mut w, None)?;
    w.commit()?;
    Ok(db)
}

/// Times `insert(i)` then `get(i)` for i in 0..n; prints both rates.
fn rates(
    n: u64,
    mut insert: impl FnMut(u64) -> Res<()>,
    mut get: impl FnMut(u64) -> Res<()>,
) -> Res<()> {
    let t = Instant::now();
    for i in 0..n {
        insert(i)?;
    }
    println!("insert {}", n as f64 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..n {
        get(i)?;
    }
    println!("get {}", n as f64 / t.elapsed().as_secs_f64());
    Ok(())
}
