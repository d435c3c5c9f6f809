//! Ending a child: `terminate()`, `join()` and Python's `exitcode`.
//!
//! ```python
//! def slow():
//!     time.sleep(5)
//!
//! if __name__ == '__main__':
//!     p = multiprocessing.Process(target=slow)
//!     p.start()
//!     time.sleep(1)
//!     p.terminate()          # SIGTERM to the child
//!     p.join()               # reap it
//!     print('exitcode:', p.exitcode)   # -15: killed by signal 15
//! ```
//!
//! Then the tutorial's `stress_cpu(2)`: two busy-looping children, terminated.
use multiproc::Process;
use std::time::Duration;

fn slow() {
    std::thread::sleep(Duration::from_secs(5));
}

fn cpu_heavy_task() {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn stress_cpu(num_cores: usize) -> multiproc::Result<()> {
    let processes: Vec<Process> = (0..num_cores)
        .map(|_| Process::fork(cpu_heavy_task))
        .collect::<multiproc::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(200));
    // The tutorial waits for Ctrl-C; here the "interrupt" comes after 200 ms.
    for process in &processes {
        process.terminate()?;
    }
    for process in &processes {
        println!("busy child {} exitcode: {}", process.pid(), process.join()?);
    }
    Ok(())
}

fn main() -> multiproc::Result<()> {
    let p = Process::fork(slow)?;
    std::thread::sleep(Duration::from_millis(100));
    println!("exitcode while running: {:?}", p.exitcode());
    p.terminate()?;
    p.join()?;
    println!("exitcode: {}", p.exitcode().unwrap_or(0));

    let k = Process::fork(slow)?;
    k.kill()?;
    println!("exitcode after kill: {}", k.join()?);

    let ok = Process::fork(|| 0)?;
    let three = Process::fork(|| 3)?;
    let panics = Process::fork(|| -> i32 { panic!("an uncaught error in the child") })?;
    println!("exitcode of a normal exit: {}", ok.join()?);
    println!("exitcode of exit(3): {}", three.join()?);
    println!("exitcode of a panic: {}", panics.join()?);

    stress_cpu(2)
}
