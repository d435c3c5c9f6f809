//! A reusable process component: Python's `Process` subclass with a `run` method.
//!
//! ```python
//! class TimerProcess(multiprocessing.Process):
//!     def __init__(self, interval):
//!         super().__init__()
//!         self.interval = interval
//!     def run(self):
//!         for i in range(3):
//!             print(f'{self.name}: {i+1}/{3}')
//!             time.sleep(self.interval)
//!
//! TimerProcess(1).start()
//! # TimerProcess-1: 1/3
//! # TimerProcess-1: 2/3
//! # TimerProcess-1: 3/3
//! ```
//!
//! In Rust the component is a plain struct with a `run(self)` method and a `start`
//! that forks a child to run it: the struct's fields travel into the child with the
//! fork, no pickling involved.
use multiproc::{current_process, Process, ProcessBuilder};
use std::time::Duration;

/// The "subclass": state plus the code the child runs.
struct TimerProcess {
    interval: Duration,
}

impl TimerProcess {
    fn new(interval: Duration) -> TimerProcess {
        TimerProcess { interval }
    }

    /// Runs in the child.
    fn run(self) {
        let name = current_process().name().to_owned();
        for i in 0..3 {
            println!("{name}: {}/{}", i + 1, 3);
            std::thread::sleep(self.interval);
        }
    }

    /// Python's `start()`: fork a child named like Python names subclass instances.
    fn start(self, n: u32) -> multiproc::Result<Process> {
        ProcessBuilder::new()
            .name(format!("TimerProcess-{n}"))
            .fork(move || self.run())
    }
}

/// The tutorials' other component: a named process that reports its pid.
struct MyProcess {
    name: &'static str,
    delay: Duration,
}

impl MyProcess {
    fn run(self) {
        let pid = current_process().pid();
        println!("Process {} started, pid: {pid}", self.name);
        std::thread::sleep(self.delay);
        println!("Process {} finished, pid: {pid}", self.name);
    }

    fn start(self) -> multiproc::Result<Process> {
        ProcessBuilder::new()
            .name(self.name)
            .fork(move || self.run())
    }
}

fn main() -> multiproc::Result<()> {
    let timer = TimerProcess::new(Duration::from_millis(100)).start(1)?;
    timer.join()?;

    let process1 = MyProcess {
        name: "Process-1",
        delay: Duration::from_millis(200),
    }
    .start()?;
    let process2 = MyProcess {
        name: "Process-2",
        delay: Duration::from_millis(300),
    }
    .start()?;
    process1.join()?;
    process2.join()?;
    println!("All processes finished");
    Ok(())
}
