//! [`ChildInner`]: the shared record of one child, held by its [`Process`]
//! handles and by the registry (so that the registry need not know the handles).
//!
//! [`Process`]: super::Process

use super::relay::{Relay, Relayed};
use crate::sys::clock::std_deadline_after;
use crate::sys::process as os;
use crate::Error;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shared record of one child: the pid stays ours until it is reaped, and it is
/// reaped only under `status`'s lock, so signals never reach a recycled pid.
pub(crate) struct ChildInner {
    pub pid: u32,
    pub name: String,
    pub daemon: bool,
    status: Mutex<Status>,
    /// For a child of the fork server: where its exit code arrives (it is not our
    /// child, so we cannot reap it).
    relay: Option<Arc<Relay>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    /// Reaped, with Python's exitcode (`-N` for signal `N`).
    Exited(i32),
    /// Reaped by somebody else (`waitpid(-1)`, `SIGCHLD` ignored): the code is lost.
    Lost,
}

impl ChildInner {
    /// A child forked or spawned by this process.
    pub(crate) fn own(pid: u32, name: String, daemon: bool) -> ChildInner {
        ChildInner {
            pid,
            name,
            daemon,
            status: Mutex::new(Status::Running),
            relay: None,
        }
    }

    /// A child of the fork server.
    pub(crate) fn relayed(pid: u32, name: String, daemon: bool, relay: Arc<Relay>) -> ChildInner {
        ChildInner {
            pid,
            name,
            daemon,
            status: Mutex::new(Status::Running),
            relay: Some(relay),
        }
    }

    fn relayed_status(&self, r: Relayed) -> io::Result<Option<i32>> {
        match r {
            Relayed::Running => Ok(None),
            Relayed::Exited(c) => Ok(Some(c)),
            Relayed::Lost => Err(io::Error::other(format!(
                "process '{}' (pid {}): the fork server that started it died, so its exit \
                 code is lost",
                self.name, self.pid
            ))),
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lost(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "process '{}' (pid {}) was reaped by someone else, so its exit code is lost: \
                 do not call waitpid(-1) or ignore SIGCHLD while multiproc children run",
                self.name, self.pid
            ),
        )
    }

    /// Reaps the child if it has exited: `Ok(Some(exitcode))`, `Ok(None)` while it runs.
    pub fn poll(&self) -> io::Result<Option<i32>> {
        if let Some(r) = &self.relay {
            return self.relayed_status(r.status());
        }
        let mut st = self.status();
        match *st {
            Status::Exited(c) => return Ok(Some(c)),
            Status::Lost => return Err(self.lost()),
            Status::Running => {}
        }
        match os::try_reap(self.pid) {
            Ok(Some(c)) => {
                *st = Status::Exited(c);
                Ok(Some(c))
            }
            Ok(None) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                *st = Status::Lost;
                Err(self.lost())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `sig` unless the child was already reaped (then there is nobody to signal).
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        if let Some(r) = &self.relay {
            return r.signal(self.pid, sig).map_err(|e| match e {
                Error::Io(e) => e,
                e => io::Error::other(e.to_string()),
            });
        }
        let st = self.status();
        if *st == Status::Running {
            os::signal(self.pid, sig)?;
        }
        Ok(())
    }

    /// Blocks until the child exits; reaps it.
    pub fn wait(&self) -> io::Result<i32> {
        if let Some(r) = &self.relay {
            let s = r.wait(None);
            return self.relayed_status(s).map(|c| c.unwrap_or(0));
        }
        loop {
            if let Some(c) = self.poll()? {
                return Ok(c);
            }
            match os::wait_exited(self.pid) {
                // ECHILD: reaped meanwhile by another thread; `poll` tells by whom.
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits at most `timeout` for the child to exit.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<i32>> {
        if let Some(r) = &self.relay {
            let s = r.wait(std_deadline_after(timeout));
            return self.relayed_status(s);
        }
        if let Some(c) = self.poll()? {
            return Ok(Some(c));
        }
        let deadline = std_deadline_after(timeout);
        // A pidfd, opened while the child is certainly unreaped (its pid is ours).
        let pidfd = {
            let st = self.status();
            if *st == Status::Running {
                os::pidfd_open(self.pid).ok()
            } else {
                None
            }
        };
        if let Some(fd) = pidfd {
            os::poll_readable(&fd, timeout)?;
            return self.poll();
        }
        // No pidfd (kernel < 5.3): poll with a growing pause.
        let mut pause = Duration::from_micros(50);
        loop {
            if let Some(c) = self.poll()? {
                return Ok(Some(c));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            std::thread::sleep(deadline.map_or(pause, |d| pause.min(d - now)));
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}
