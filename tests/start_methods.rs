//! Start methods (`Fork`, `Spawn`, `ForkServer`): children started every way behave
//! the same — exit codes, signals, daemon death with the parent, pools — and the two
//! safe methods stay safe in a program whose other threads hold locks.

mod common;

use common::watchdog;
use multiproc::{Error, Pool, ProcessBuilder, StartMethod};
use std::time::Duration;

const SAFE: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::ForkServer];
const ALL: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

fn exit_with(code: i32) -> i32 {
    code
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn start<A, R>(m: StartMethod, f: fn(A) -> R, arg: A) -> multiproc::Process
where
    A: serde::Serialize + serde::de::DeserializeOwned,
    R: multiproc::IntoExitCode,
{
    ProcessBuilder::new()
        .start_method(m)
        .start(f, arg)
        .unwrap_or_else(|e| panic!("{m:?}: start failed: {e}"))
}

#[test]
fn each_method_reports_the_functions_exit_code() {
    watchdog(Duration::from_secs(20), || {
        for m in ALL {
            for code in [0, 3, 77] {
                let p = start(m, exit_with, code);
                assert_eq!(p.join().unwrap(), code, "{m:?}");
                assert_eq!(p.exitcode(), Some(code), "{m:?}");
                assert!(!p.is_alive(), "{m:?}");
            }
        }
    });
}

#[test]
fn each_method_reports_terminate_and_kill_as_minus_the_signal() {
    watchdog(Duration::from_secs(20), || {
        for m in ALL {
            let p = start(m, sleep_ms, 60_000);
            assert!(p.is_alive(), "{m:?}");
            assert_eq!(
                p.join_timeout(Duration::from_millis(20)).unwrap(),
                None,
                "{m:?}"
            );
            p.terminate().unwrap();
            assert_eq!(p.join().unwrap(), -libc::SIGTERM, "{m:?}");
            let q = start(m, sleep_ms, 60_000);
            q.kill().unwrap();
            assert_eq!(q.join().unwrap(), -libc::SIGKILL, "{m:?}");
            assert_eq!(q.exitcode(), Some(-libc::SIGKILL), "{m:?}");
        }
    });
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn a_pool_maps_through_each_method() {
    watchdog(Duration::from_secs(30), || {
        for m in ALL {
            let pool = Pool::builder().workers(2).start_method(m).build().unwrap();
            let want: Vec<u64> = (0..100).map(|x| x * x).collect();
            assert_eq!(
                pool.map_chunked(square, 0..100u64, 1).unwrap(),
                want,
                "{m:?}"
            );
            assert_eq!(pool.apply(square, 12).unwrap(), 144, "{m:?}");
            pool.close();
            pool.join().unwrap();
        }
    });
}
