//! A daemon process: a background heartbeat that dies with its parent.
//!
//! ```python
//! def heartbeat():
//!     while True:
//!         print('heartbeat', time.strftime('%H:%M:%S'))
//!         time.sleep(1)
//!
//! if __name__ == '__main__':
//!     d = multiprocessing.Process(target=heartbeat, daemon=True)
//!     d.start()
//!     time.sleep(3)      # the main process exits after 3 s; the daemon is killed with it
//! ```
//!
//! A daemon child is SIGKILLed when its parent exits normally (an `atexit` hook)
//! and, unlike Python's, also when the parent is killed (`PR_SET_PDEATHSIG`).
use multiproc::ProcessBuilder;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `time.strftime('%H:%M:%S')` (UTC, to stay dependency-free).
fn now_hms() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

fn heartbeat() {
    loop {
        println!("heartbeat {}", now_hms());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() -> multiproc::Result<()> {
    let d = ProcessBuilder::new().daemon(true).fork(heartbeat)?;
    println!("main process started, daemon pid {}", d.pid());
    std::thread::sleep(Duration::from_millis(250));
    println!("main process exiting; the daemon dies with it");
    Ok(())
}
