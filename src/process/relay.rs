//! A child forked by a fork server, as its requester sees it: the exit status the
//! server relays ([`Relayed`]) and the way to signal it through the server.

use crate::Result;
use std::sync::{Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

/// Sends a signal to a child through the server that forked it, which signals only
/// children it has not reaped (so a recycled pid is never hit).
pub(crate) trait SignalRelay: Send + Sync {
    /// Asks the server to send `sig` to its child `pid`.
    fn signal(&self, pid: u32, sig: i32) -> Result<()>;
}

/// The exit status of a child of the server, as the requester learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Relayed {
    Running,
    Exited(i32),
    /// The server died first: the code is unknown.
    Lost,
}

/// A child of the server: its status, filled in by the requester's reader thread.
pub(crate) struct Relay {
    status: Mutex<Relayed>,
    cond: Condvar,
    server: Weak<dyn SignalRelay>,
}

impl Relay {
    /// A running child of `server`.
    pub(crate) fn new(server: Weak<dyn SignalRelay>) -> Relay {
        Relay {
            status: Mutex::new(Relayed::Running),
            cond: Condvar::new(),
            server,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Relayed> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records how the child ended (the first answer wins).
    pub(crate) fn set(&self, s: Relayed) {
        let mut g = self.lock();
        if *g == Relayed::Running {
            *g = s;
        }
        drop(g);
        self.cond.notify_all();
    }

    /// The status now.
    pub fn status(&self) -> Relayed {
        *self.lock()
    }

    /// Waits until the child is no longer running, at most until `deadline`.
    pub fn wait(&self, deadline: Option<Instant>) -> Relayed {
        let mut g = self.lock();
        while *g == Relayed::Running {
            match deadline {
                None => g = self.cond.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    g = self
                        .cond
                        .wait_timeout(g, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        *g
    }

    /// Asks the server to send `sig` to child `pid` unless it has been reaped.
    pub fn signal(&self, pid: u32, sig: i32) -> Result<()> {
        if self.status() != Relayed::Running {
            return Ok(());
        }
        match self.server.upgrade() {
            Some(server) => server.signal(pid, sig),
            None => Ok(()),
        }
    }
}
