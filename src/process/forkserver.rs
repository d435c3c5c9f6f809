//! The fork server (`StartMethod::ForkServer`): a process that forks children on
//! request, so that no child is ever forked from a multi-threaded program.
//!
//! ## Its life
//! * [`start_early`] (from [`init`](super::init), while the program has one thread)
//!   forks it; otherwise the first request *spawns* it (a re-execution of this
//!   binary, single-threaded by construction). Either way it is a clean,
//!   single-threaded image of the program when it forks a child.
//! * It talks to its requester over two one-way [`Pipe`]s: requests
//!   (`Start`, `Signal`) one way, replies (`Started`, `Failed`, `Exited`) the other.
//! * It exits when the requester's end of the request pipe is closed or its process
//!   died (the pipe reports a dead peer within its probe interval): no orphan server.
//!   Its daemon children have `PR_SET_PDEATHSIG` tied to it, so they follow it.
//!
//! ## Its children, seen from the requester
//! They are the server's children: it reaps them (a reaper thread blocked in
//! `waitpid(-1)`) and relays each exit code as `Exited`. Signals go through the
//! server too, which sends them only to children it has not reaped, so a recycled pid
//! is never signalled. `Started` for a child is always sent before its `Exited`: the
//! reply pipe's lock is held from the `fork` until `Started` is sent.
//!
//! The server's reaper thread makes it multi-threaded, but that thread touches only
//! `waitpid`, the reply pipe and a counter — nothing a forked child ever uses.

use super::registry::ForkLocal;
use super::relay::{Relay, Relayed, SignalRelay};
use super::start::{self, Job};
use crate::sys::ident::getpid;
use crate::sys::process as os;
use crate::{Error, Pipe, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Ring size of each of the server's pipes.
const PIPE_CAPACITY: usize = 64 << 10;
/// How long a requester waits for the server to answer a start request.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
enum Request {
    Start { id: u64, job: Job },
    Signal { pid: u32, sig: i32 },
}

#[derive(Serialize, Deserialize)]
enum Reply {
    /// The server's first message: who it is.
    Hello {
        pid: u32,
    },
    Started {
        id: u64,
        pid: u32,
    },
    Failed {
        id: u64,
        message: String,
    },
    Exited {
        pid: u32,
        code: i32,
    },
}

/// The requester's connection to its fork server.
pub(crate) struct Client {
    /// The process this connection belongs to (a forked child must not use it).
    owner: u32,
    server_pid: u32,
    tx: Mutex<Pipe>,
    state: Mutex<ClientState>,
    cond: Condvar,
}

impl SignalRelay for Client {
    fn signal(&self, pid: u32, sig: i32) -> Result<()> {
        self.send(&Request::Signal { pid, sig })
    }
}

#[derive(Default)]
struct ClientState {
    next_id: u64,
    answers: HashMap<u64, std::result::Result<(u32, Arc<Relay>), String>>,
    children: HashMap<u32, Arc<Relay>>,
    /// The server is gone (its reply pipe closed).
    dead: bool,
}

impl Client {
    fn lock(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, r: &Request) -> Result<()> {
        let bytes = postcard::to_allocvec(r)
            .map_err(|e| Error::invalid(format!("could not encode a fork-server request: {e}")))?;
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.send_bytes(&bytes).map_err(|e| match e {
            Error::Closed => Error::Io(std::io::Error::other(format!(
                "the fork server (pid {}) has exited",
                self.server_pid
            ))),
            e => e,
        })
    }

    /// Asks the server to fork a child running `job`: its pid and relay.
    fn start(self: &Arc<Self>, job: Job) -> Result<(u32, Arc<Relay>)> {
        let id = {
            let mut s = self.lock();
            s.next_id += 1;
            s.next_id
        };
        self.send(&Request::Start { id, job })?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut s = self.lock();
        loop {
            if let Some(a) = s.answers.remove(&id) {
                return match a {
                    Ok(started) => Ok(started),
                    Err(m) => Err(Error::Io(std::io::Error::other(format!(
                        "the fork server could not fork: {m}"
                    )))),
                };
            }
            if s.dead {
                return Err(Error::Io(std::io::Error::other(format!(
                    "the fork server (pid {}) died before starting the child",
                    self.server_pid
                ))));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            s = self
                .cond
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The requester's reader thread: applies the server's replies until it is gone.
    fn read_replies(self: Arc<Self>, mut rx: Pipe) {
        let mut buf = Vec::new();
        loop {
            let reply = match rx.recv_bytes_into(&mut buf) {
                Ok(_) => postcard::from_bytes::<Reply>(&buf).ok(),
                Err(_) => None,
            };
            let Some(reply) = reply else { break };
            let mut s = self.lock();
            match reply {
                Reply::Started { id, pid } => {
                    let server: Weak<dyn SignalRelay> = Arc::downgrade(&self) as Weak<Client>;
                    let relay = Arc::new(Relay::new(server));
                    s.children.insert(pid, relay.clone());
                    s.answers.insert(id, Ok((pid, relay)));
                }
                Reply::Hello { .. } => {}
                Reply::Failed { id, message } => {
                    s.answers.insert(id, Err(message));
                }
                Reply::Exited { pid, code } => {
                    if let Some(r) = s.children.remove(&pid) {
                        r.set(Relayed::Exited(code));
                    }
                }
            }
            drop(s);
            self.cond.notify_all();
        }
        let mut s = self.lock();
        s.dead = true;
        for (_, r) in s.children.drain() {
            r.set(Relayed::Lost);
        }
        drop(s);
        self.cond.notify_all();
    }
}

/// This process's connection. Fork-local: a child forked while another thread held
/// this lock starts from its own, unlocked, empty slot (and its own server).
static CLIENT: ForkLocal<Option<Arc<Client>>> = ForkLocal::new();

fn client_slot() -> MutexGuard<'static, Option<Arc<Client>>> {
    CLIENT.get().lock().unwrap_or_else(|e| e.into_inner())
}

/// The pid of this process's fork server, if one runs.
pub fn forkserver_pid() -> Option<u32> {
    let g = client_slot();
    g.as_ref()
        .filter(|c| c.owner == getpid() && !c.lock().dead)
        .map(|c| c.server_pid)
}

fn install(server_pid: u32, tx: Pipe, rx: Pipe) -> Result<Arc<Client>> {
    let c = Arc::new(Client {
        owner: getpid(),
        server_pid,
        tx: Mutex::new(tx),
        state: Mutex::new(ClientState::default()),
        cond: Condvar::new(),
    });
    let reader = c.clone();
    std::thread::Builder::new()
        .name("multiproc-forkserver".into())
        .spawn(move || reader.read_replies(rx))
        .map_err(Error::Io)?;
    Ok(c)
}

/// Forks the server now, if this process has none yet (called by `init` while the
/// program is single-threaded).
pub(crate) fn start_early() {
    let mut g = client_slot();
    if g.as_ref()
        .is_some_and(|c| c.owner == getpid() && !c.lock().dead)
    {
        return;
    }
    let Ok((req_rx, req_tx)) = Pipe::one_way(PIPE_CAPACITY) else {
        return;
    };
    let Ok((rep_rx, rep_tx)) = Pipe::one_way(PIPE_CAPACITY) else {
        return;
    };
    // Buffered output would otherwise be printed again by every child of the server.
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
    // SAFETY: called while this process has one thread (checked by `init`); the
    // child only forks the server and `_exit`s.
    match unsafe { os::fork() } {
        // The ends each side does not use are forgotten, not dropped: closing an
        // unused end of an anonymous pair may close it for everyone.
        Ok(os::Forked::Child) => {
            std::mem::forget((req_tx, rep_rx));
            detach_and_serve(req_rx, rep_tx)
        }
        Ok(os::Forked::Parent(pid)) => {
            std::mem::forget((req_rx, rep_tx));
            if let Ok(c) = connect(pid, req_tx, rep_rx) {
                *g = Some(c);
            }
        }
        Err(_) => {}
    }
}

/// In the (single-threaded) first child: forks the server and exits, so that the
/// server is not the requester's child (no zombie, not among its children).
fn detach_and_serve(req: Pipe, rep: Pipe) -> ! {
    // SAFETY: this process has one thread; the child runs `serve`, which ends in
    // `_exit`, and this one `_exit`s at once.
    match unsafe { os::fork() } {
        Ok(os::Forked::Child) => serve(req, rep),
        Ok(os::Forked::Parent(_)) => os::exit_now(0),
        Err(_) => os::exit_now(2),
    }
}

/// Reaps the intermediate child `via`, reads the server's `Hello` and starts the
/// reader thread.
fn connect(via: u32, tx: Pipe, mut rx: Pipe) -> Result<Arc<Client>> {
    let hello = rx.recv_bytes_timeout(START_TIMEOUT);
    let _ = os::wait_exited(via);
    let _ = os::try_reap(via);
    let server_pid = match hello.map(|b| postcard::from_bytes::<Reply>(&b)) {
        Ok(Ok(Reply::Hello { pid })) => pid,
        Ok(_) => {
            return Err(Error::corrupt(
                "",
                "the fork server's first message is not Hello",
            ));
        }
        Err(e) => {
            return Err(Error::Io(std::io::Error::other(format!(
                "the fork server did not start: {e}"
            ))))
        }
    };
    install(server_pid, tx, rx)
}

/// The names a spawned server opens: requests (it receives), replies (it creates).
#[derive(Serialize, Deserialize)]
struct Names {
    requests: String,
    replies: String,
}

/// Entry of a spawned server: forks the server proper (so that it is not the
/// requester's child) and exits; the server claims the pipe ends itself.
fn spawned_server(names: Names) -> i32 {
    // SAFETY: a freshly spawned process running its job has one thread; the child
    // ends in `_exit` (via `serve`), this process returns and exits at once.
    match unsafe { os::fork() } {
        Ok(os::Forked::Child) => {}
        Ok(os::Forked::Parent(_)) => return 0,
        Err(_) => return 2,
    }
    let Ok(req) = Pipe::open(&names.requests) else {
        os::exit_now(2);
    };
    let Ok(rep) = Pipe::create_one_way(&names.replies, PIPE_CAPACITY) else {
        os::exit_now(2);
    };
    // The requester unlinks both names once it has opened the replies.
    rep.persist();
    serve(req, rep)
}

/// Spawns a server (the caller has threads, so forking one is not safe).
fn start_spawned() -> Result<Arc<Client>> {
    let base = format!(
        "multiproc-fs-{}-{:x}",
        getpid(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    );
    let names = Names {
        requests: format!("{base}-req"),
        replies: format!("{base}-rep"),
    };
    let tx = Pipe::create_one_way(&names.requests, PIPE_CAPACITY)?;
    let job = Job::new(
        spawned_server,
        &names,
        "ForkServer".into(),
        Vec::new(),
        false,
    )?;
    let pid = start::spawn(&job, None)?;
    // The server is not registered as our child: it must outlive our at-exit wait
    // for children, and it exits by itself when we are gone.
    let deadline = Instant::now() + START_TIMEOUT;
    let rx = loop {
        match Pipe::open(&names.replies) {
            Ok(p) => break p,
            // The server (the grandchild `pid` forks) creates it in a moment.
            Err(Error::NotFound { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => {
                let _ = os::wait_exited(pid);
                let _ = os::try_reap(pid);
                return Err(e);
            }
        }
    };
    // Both ends are claimed: the names are no longer needed (nobody else may attach).
    let _ = crate::unlink(&names.requests);
    let _ = crate::unlink(&names.replies);
    connect(pid, tx, rx)
}

/// Starts `job` as a child of this process's fork server (starting the server
/// first if needed).
pub(crate) fn start_child(job: Job) -> Result<(u32, Arc<Relay>)> {
    let client = {
        let mut g = client_slot();
        match g.as_ref() {
            Some(c) if c.owner == getpid() && !c.lock().dead => c.clone(),
            _ => {
                let c = start_spawned()?;
                *g = Some(c.clone());
                c
            }
        }
    };
    client.start(job)
}

/// The server's life: fork children on request, relay their exits, until the
/// requester is gone.
fn serve(mut req: Pipe, mut rep: Pipe) -> ! {
    let me = getpid();
    if send(&mut rep, &Reply::Hello { pid: me }).is_err() {
        os::exit_now(2);
    }
    let rep = Arc::new(Mutex::new(rep));
    // Children forked and not yet reaped: only these may be signalled.
    let live: Arc<Live> = Arc::new((Mutex::new(HashSet::new()), Condvar::new()));
    {
        let (rep, live) = (rep.clone(), live.clone());
        let _ = std::thread::Builder::new()
            .name("multiproc-fs-reaper".into())
            .spawn(move || reap_loop(&rep, &live));
    }
    let mut buf = Vec::new();
    loop {
        if req.recv_bytes_into(&mut buf).is_err() {
            break;
        }
        let Ok(r) = postcard::from_bytes::<Request>(&buf) else {
            break;
        };
        match r {
            Request::Start { id, mut job } => {
                // A daemon child checks that its parent — this server — still lives.
                job.parent = me;
                let mut out = rep.lock().unwrap_or_else(|e| e.into_inner());
                // SAFETY: the child runs `run_job`, which ends in `_exit`; the only
                // other thread (the reaper) holds nothing the child uses.
                let reply = match unsafe { os::fork() } {
                    Ok(os::Forked::Child) => {
                        std::mem::forget(out);
                        start::run_job(job, None)
                    }
                    Ok(os::Forked::Parent(pid)) => {
                        lock_live(&live).insert(pid);
                        live.1.notify_one();
                        Reply::Started { id, pid }
                    }
                    Err(e) => Reply::Failed {
                        id,
                        message: e.to_string(),
                    },
                };
                if send(&mut out, &reply).is_err() {
                    break;
                }
            }
            Request::Signal { pid, sig } => {
                // The reaper removes a pid from `live` before reaping it, under the
                // same lock: a pid found here is still our unreaped child.
                let l = lock_live(&live);
                if l.contains(&pid) {
                    let _ = os::signal(pid, sig);
                }
            }
        }
    }
    // The requester is gone: daemon children follow us (PR_SET_PDEATHSIG).
    os::exit_now(0)
}

fn send(p: &mut Pipe, r: &Reply) -> Result<()> {
    let bytes = postcard::to_allocvec(r).map_err(|e| Error::invalid(e.to_string()))?;
    p.send_bytes(&bytes)
}

type Live = (Mutex<HashSet<u32>>, Condvar);

fn lock_live(l: &Live) -> MutexGuard<'_, HashSet<u32>> {
    l.0.lock().unwrap_or_else(|e| e.into_inner())
}

fn reap_loop(rep: &Mutex<Pipe>, live: &Live) {
    loop {
        {
            let mut l = lock_live(live);
            while l.is_empty() {
                l = live.1.wait(l).unwrap_or_else(|e| e.into_inner());
            }
        }
        let Ok(pid) = os::wait_any_exited() else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let code = {
            let mut l = lock_live(live);
            l.remove(&pid);
            match os::try_reap(pid) {
                Ok(Some(c)) => c,
                _ => continue,
            }
        };
        let mut out = rep.lock().unwrap_or_else(|e| e.into_inner());
        if send(&mut out, &Reply::Exited { pid, code }).is_err() {
            os::exit_now(0);
        }
    }
}
