//! `multiproc._native`: the Rust half of the Python package `multiproc`.
//!
//! Each class here is a thin handle on one of the crate's named objects; the Python
//! half (`multiproc/__init__.py`) gives them Python's names, signatures, pickling and
//! exceptions. Two rules hold for every method that may wait:
//!
//! * **The GIL is released** (`allow_threads`) around every wait, so other Python
//!   threads run meanwhile; never is it held while spinning or sleeping.
//! * **Waits are sliced**: at most [`SLICE`] at a time, with `check_signals()` between
//!   slices, so Ctrl-C (KeyboardInterrupt) arrives within about one slice. A fast path
//!   that needs no waiting runs first, under the GIL, without releasing it.

// pyo3 0.22's macros expand `?` on PyErr, which recent clippy calls useless.
#![allow(clippy::useless_conversion)]

use multiproc::segment::{describe as describe_name, ObjectKind};
use multiproc::{
    Array, Barrier, BoundedSemaphore, ByteQueue, Condition, Dict, Error, Event, List, Lock, Pipe,
    Queue, RLock, Semaphore, TryLockError, Value,
};
use pyo3::exceptions::{
    PyEOFError, PyFileExistsError, PyFileNotFoundError, PyIndexError, PyOSError, PyRuntimeError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest single wait with the GIL released before signals are checked.
const SLICE: Duration = Duration::from_millis(5);

/// The Python exception for a crate error.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        Error::AlreadyExists { .. } => PyFileExistsError::new_err(msg),
        Error::WrongKind { .. } | Error::WrongType { .. } => PyTypeError::new_err(msg),
        Error::InvalidName { .. } | Error::InvalidArgument { .. } | Error::TooLarge { .. } => {
            PyValueError::new_err(msg)
        }
        Error::Empty => queue_exc(py, "Empty", "queue is empty"),
        Error::Full => queue_exc(py, "Full", "queue is full"),
        Error::Closed => PyEOFError::new_err(msg),
        Error::NotOwner => {
            PyRuntimeError::new_err("release unlocked lock (or one this thread does not own)")
        }
        Error::Broken => {
            match py
                .import_bound("threading")
                .and_then(|m| m.getattr("BrokenBarrierError"))
            {
                Ok(cls) => PyErr::from_type_bound(cls.downcast_into().unwrap(), msg),
                Err(e) => e,
            }
        }
        Error::Io(_) => PyOSError::new_err(msg),
        _ => PyRuntimeError::new_err(msg),
    }
}

/// `queue.Empty` / `queue.Full`, as Python's own queues raise them.
fn queue_exc(py: Python<'_>, which: &str, msg: &'static str) -> PyErr {
    match py.import_bound("queue").and_then(|m| m.getattr(which)) {
        Ok(cls) => match cls.downcast_into() {
            Ok(t) => PyErr::from_type_bound(t, msg),
            Err(e) => e.into(),
        },
        Err(e) => e,
    }
}

/// One slice of a wait: `Ok(Some(v))` done, `Ok(None)` not yet (try again).
type Step<T> = Result<Option<T>, Error>;

/// Waits for `op` in slices: `op(d)` waits at most `d` with the GIL released; between
/// slices pending signals are handled (KeyboardInterrupt propagates). `timeout`
/// `None` waits forever; `Ok(None)` when it passed.
fn wait_sliced<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    op: impl Fn(Duration) -> Step<T> + Sync,
) -> PyResult<Option<T>> {
    let deadline = match timeout {
        Some(t) if t.is_nan() || t < 0.0 => {
            return Err(PyValueError::new_err(
                "timeout must be a non-negative number",
            ))
        }
        Some(t) => Some(Instant::now() + Duration::from_secs_f64(t.min(1e9))),
        None => None,
    };
    loop {
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                left.min(SLICE)
            }
            None => SLICE,
        };
        match py.allow_threads(|| op(slice)) {
            Ok(Some(v)) => return Ok(Some(v)),
            Ok(None) => py.check_signals()?,
            Err(e) => return Err(to_py(py, e)),
        }
    }
}

/// `Err(Timeout)` / `Err(Empty)` / `Err(Full)` as "not yet".
fn not_yet<T>(r: Result<T, Error>) -> Step<T> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Timeout | Error::Empty | Error::Full) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a name holds: `(kind, element type name, element size)`.
#[pyfunction]
fn describe(py: Python<'_>, name: &str) -> PyResult<(String, String, u32)> {
    let d = describe_name(name).map_err(|e| to_py(py, e))?;
    Ok((d.kind.name().to_owned(), d.type_name, d.type_size))
}

/// Removes a name (`FileNotFoundError` if it does not exist).
#[pyfunction]
fn unlink(py: Python<'_>, name: &str) -> PyResult<()> {
    multiproc::unlink(name).map_err(|e| to_py(py, e))
}

// ---------------------------------------------------------------- queues

/// A queue of byte strings (the crate's `ByteQueue`).
#[pyclass(module = "multiproc._native", frozen)]
struct ByteQ {
    q: ByteQueue,
}

#[pymethods]
impl ByteQ {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str, capacity: usize, max_len: usize) -> PyResult<Self> {
        ByteQueue::create(name, capacity, max_len)
            .map(|q| ByteQ { q })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        ByteQueue::open(name)
            .map(|q| ByteQ { q })
            .map_err(|e| to_py(py, e))
    }
    #[pyo3(signature = (msg, block=true, timeout=None))]
    fn put(&self, py: Python<'_>, msg: &[u8], block: bool, timeout: Option<f64>) -> PyResult<()> {
        match self.q.try_put(msg) {
            Err(Error::Full) if block => {}
            r => return r.map_err(|e| to_py(py, e)),
        }
        let q = &self.q;
        wait_sliced(py, timeout, |d| not_yet(q.put_timeout(msg, d)))?
            .ok_or_else(|| to_py(py, Error::Full))
    }
    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyBytes>> {
        let v = match self.q.try_get() {
            Err(Error::Empty) if block => {
                let q = &self.q;
                wait_sliced(py, timeout, |d| not_yet(q.get_timeout(d)))?
                    .ok_or_else(|| to_py(py, Error::Empty))?
            }
            r => r.map_err(|e| to_py(py, e))?,
        };
        Ok(PyBytes::new_bound(py, &v).unbind())
    }
    fn qsize(&self) -> usize {
        self.q.len()
    }
    fn empty(&self) -> bool {
        self.q.is_empty()
    }
    fn full(&self) -> bool {
        self.q.is_full()
    }
    fn capacity(&self) -> usize {
        self.q.capacity()
    }
    fn max_message_len(&self) -> usize {
        self.q.max_message_len()
    }
    fn close(&self) {
        self.q.close()
    }
    fn is_closed(&self) -> bool {
        self.q.is_closed()
    }
    fn name(&self) -> String {
        self.q.name().to_owned()
    }
}

/// A queue of 64-bit integers (the crate's `Queue<u64>` or `Queue<i64>`).
enum IntQueue {
    U(Queue<u64>),
    I(Queue<i64>),
}

macro_rules! intq {
    ($self:expr, $q:ident => $body:expr) => {
        match &$self.q {
            IntQueue::U($q) => $body,
            IntQueue::I($q) => $body,
        }
    };
}

#[pyclass(module = "multiproc._native", frozen)]
struct IntQ {
    q: IntQueue,
}

#[pymethods]
impl IntQ {
    /// `signed`: a `Queue<i64>` rather than `Queue<u64>`.
    #[staticmethod]
    fn create(py: Python<'_>, name: &str, capacity: usize, signed: bool) -> PyResult<Self> {
        let q = if signed {
            Queue::create(name, capacity).map(IntQueue::I)
        } else {
            Queue::create(name, capacity).map(IntQueue::U)
        };
        q.map(|q| IntQ { q }).map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str, signed: bool) -> PyResult<Self> {
        let q = if signed {
            Queue::open(name).map(IntQueue::I)
        } else {
            Queue::open(name).map(IntQueue::U)
        };
        q.map(|q| IntQ { q }).map_err(|e| to_py(py, e))
    }
    fn signed(&self) -> bool {
        matches!(self.q, IntQueue::I(_))
    }
    #[pyo3(signature = (v, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        v: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        intq!(self, q => {
            let v = v.extract()?;
            match q.try_put(v) {
                Err(Error::Full) if block => {}
                r => return r.map_err(|e| to_py(py, e)),
            }
            wait_sliced(py, timeout, |d| not_yet(q.put_timeout(v, d)))?
                .ok_or_else(|| to_py(py, Error::Full))
        })
    }
    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
        intq!(self, q => {
            let v = match q.try_get() {
                Err(Error::Empty) if block => wait_sliced(py, timeout, |d| not_yet(q.get_timeout(d)))?
                    .ok_or_else(|| to_py(py, Error::Empty))?,
                r => r.map_err(|e| to_py(py, e))?,
            };
            Ok(v.into_py(py))
        })
    }
    /// Puts every item of `items` (a list of ints), waiting for room as needed.
    fn put_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<()> {
        intq!(self, q => {
            let v: Vec<_> = items.extract()?;
            let mut at = 0;
            while at < v.len() {
                at += q.try_put_many(&v[at..]).map_err(|e| to_py(py, e))?;
                if at < v.len() {
                    let rest = &v[at..];
                    let n = wait_sliced(py, None, |d| match q.put_many_timeout(rest, d) {
                        Ok(0) => Ok(None),
                        r => not_yet(r),
                    })?;
                    at += n.unwrap_or(0);
                }
            }
            Ok(())
        })
    }
    /// Takes up to `n` items: waits (as `get`) for the first, then takes whatever is
    /// there without waiting.
    #[pyo3(signature = (n, block=true, timeout=None))]
    fn get_many(
        &self,
        py: Python<'_>,
        n: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<PyObject> {
        intq!(self, q => {
            let mut buf = vec![Default::default(); n.max(1)];
            let got = match q.try_get_many(&mut buf) {
                Ok(0) | Err(Error::Empty) if block => {
                    let b = Mutex::new(&mut buf);
                    wait_sliced(py, timeout, |d| match q.get_many_timeout(&mut b.lock().unwrap(), d) {
                        Ok(0) => Ok(None),
                        r => not_yet(r),
                    })?
                    .ok_or_else(|| to_py(py, Error::Empty))?
                }
                Ok(0) => return Err(to_py(py, Error::Empty)),
                r => r.map_err(|e| to_py(py, e))?,
            };
            Ok(PyList::new_bound(py, &buf[..got]).into_any().unbind())
        })
    }
    fn qsize(&self) -> usize {
        intq!(self, q => q.len())
    }
    fn empty(&self) -> bool {
        intq!(self, q => q.is_empty())
    }
    fn full(&self) -> bool {
        intq!(self, q => q.is_full())
    }
    fn capacity(&self) -> usize {
        intq!(self, q => q.capacity())
    }
    fn close(&self) {
        intq!(self, q => q.close())
    }
    fn name(&self) -> String {
        intq!(self, q => q.name().to_owned())
    }
}

// ---------------------------------------------------------------- locks

/// A lock in Python's style: acquired in one call, released in another (by any
/// thread, as Python's `Lock` allows).
#[pyclass(module = "multiproc._native", frozen)]
struct NLock {
    lock: Lock,
    /// Whether the last acquire took the lock over from a dead holder.
    recovered: std::sync::atomic::AtomicBool,
}

/// Warns (`RuntimeWarning`) that `what` named `name` was taken over from a dead holder.
fn warn_recovered(py: Python<'_>, what: &str, name: &str) -> PyResult<()> {
    let msg = format!(
        "{what} '{name}' was recovered from a holder that died holding it: \
         the state it protects may be half-updated"
    );
    let warnings = py.import_bound("warnings")?;
    let category = py.get_type_bound::<pyo3::exceptions::PyRuntimeWarning>();
    warnings.call_method1("warn", (msg, category, 1))?;
    Ok(())
}

/// One attempt on a `Lock`: `Ok(Some(recovered))` when taken.
fn lock_step(lock: &Lock, d: Option<Duration>) -> Step<bool> {
    // The word naming this very thread means it holds the lock already (Python's
    // `Lock` is not re-entrant: it waits, for another thread to release it). The
    // crate would take such a hold over as an impossible one, so wait here instead.
    if lock.raw().holder() == Some(multiproc::sys::ident::current().tid) {
        if let Some(d) = d {
            std::thread::sleep(d.min(Duration::from_millis(1)));
        }
        return Ok(None);
    }
    let r = match d {
        None => lock.try_acquire(),
        Some(d) => lock.acquire_timeout(d),
    };
    match r {
        Ok(g) => {
            g.forget();
            Ok(Some(false))
        }
        Err(TryLockError::OwnerDied(g)) => {
            g.into_inner().forget();
            Ok(Some(true))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
    }
}

impl NLock {
    fn new(lock: Lock) -> Self {
        NLock {
            lock,
            recovered: false.into(),
        }
    }
}

#[pymethods]
impl NLock {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str) -> PyResult<Self> {
        Lock::create(name).map(NLock::new).map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        Lock::open(name).map(NLock::new).map_err(|e| to_py(py, e))
    }
    /// `(acquired, recovered)`: recovered means taken over from a holder that died.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<(bool, bool)> {
        if let Some(r) = lock_step(&self.lock, None).map_err(|e| to_py(py, e))? {
            return Ok((true, r));
        }
        if !block {
            return Ok((false, false));
        }
        let lock = &self.lock;
        Ok(wait_sliced(py, timeout, |d| lock_step(lock, Some(d)))?
            .map_or((false, false), |r| (true, r)))
    }
    /// Python's `acquire(block=True, timeout=-1) -> bool`; a lock taken over from a
    /// dead holder warns and sets `recovered`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire_bool(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = match timeout {
            Some(t) if t < 0.0 && block => None,
            Some(t) if t < 0.0 => {
                return Err(PyValueError::new_err(
                    "'timeout' must be a non-negative number",
                ))
            }
            t => t,
        };
        let (ok, rec) = self.acquire(py, block, timeout)?;
        if ok {
            self.recovered
                .store(rec, std::sync::atomic::Ordering::Relaxed);
            if rec {
                warn_recovered(py, "lock", self.lock.name())?;
            }
        }
        Ok(ok)
    }
    fn recovered(&self) -> bool {
        self.recovered.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.release_unowned().map_err(|e| to_py(py, e))
    }
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }
    fn name(&self) -> String {
        self.lock.name().to_owned()
    }
}

/// The re-entrant lock: holds belong to the acquiring thread.
#[pyclass(module = "multiproc._native", frozen)]
struct NRLock {
    lock: RLock,
}

fn rlock_step(lock: &RLock, d: Option<Duration>) -> Step<bool> {
    let r = match d {
        None => lock.try_acquire(),
        Some(d) => lock.acquire_timeout(d),
    };
    match r {
        Ok(g) => {
            g.leak();
            Ok(Some(false))
        }
        Err(TryLockError::OwnerDied(g)) => {
            g.into_inner().leak();
            Ok(Some(true))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
    }
}

#[pymethods]
impl NRLock {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str) -> PyResult<Self> {
        RLock::create(name)
            .map(|lock| NRLock { lock })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        RLock::open(name)
            .map(|lock| NRLock { lock })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open_or_create(py: Python<'_>, name: &str) -> PyResult<Self> {
        RLock::open_or_create(name)
            .map(|lock| NRLock { lock })
            .map_err(|e| to_py(py, e))
    }
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<(bool, bool)> {
        if let Some(r) = rlock_step(&self.lock, None).map_err(|e| to_py(py, e))? {
            return Ok((true, r));
        }
        if !block {
            return Ok((false, false));
        }
        let lock = &self.lock;
        // Holds belong to the OS thread: allow_threads runs the closure on this one.
        Ok(wait_sliced(py, timeout, |d| rlock_step(lock, Some(d)))?
            .map_or((false, false), |r| (true, r)))
    }
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.release().map_err(|e| to_py(py, e))
    }
    fn is_owned(&self) -> bool {
        self.lock.is_owned()
    }
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }
    fn name(&self) -> String {
        self.lock.name().to_owned()
    }
}

/// A condition variable with its own re-entrant lock.
#[pyclass(module = "multiproc._native", frozen)]
struct NCondition {
    c: Condition,
}

fn cond_step(c: &Condition, d: Option<Duration>) -> Step<bool> {
    let r = match d {
        None => c.try_acquire(),
        Some(d) => c.acquire_timeout(d),
    };
    match r {
        Ok(g) => {
            g.leak();
            Ok(Some(false))
        }
        Err(TryLockError::OwnerDied(g)) => {
            g.into_inner().leak();
            Ok(Some(true))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
    }
}

#[pymethods]
impl NCondition {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str) -> PyResult<Self> {
        Condition::create(name)
            .map(|c| NCondition { c })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        Condition::open(name)
            .map(|c| NCondition { c })
            .map_err(|e| to_py(py, e))
    }
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<(bool, bool)> {
        if let Some(r) = cond_step(&self.c, None).map_err(|e| to_py(py, e))? {
            return Ok((true, r));
        }
        if !block {
            return Ok((false, false));
        }
        let c = &self.c;
        Ok(wait_sliced(py, timeout, |d| cond_step(c, Some(d)))?
            .map_or((false, false), |r| (true, r)))
    }
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.c.release().map_err(|e| to_py(py, e))
    }
    fn is_owned(&self) -> bool {
        self.c.is_owned()
    }
    /// One wait of at most `min(timeout, 50 ms)` with the lock released:
    /// `(notified, recovered)`. The caller loops (Python's `wait` may return early,
    /// as its documentation allows: re-check the predicate).
    #[pyo3(signature = (timeout=None))]
    fn wait_once(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(bool, bool)> {
        if !self.c.is_owned() {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let d = Duration::from_secs_f64(timeout.unwrap_or(0.05).clamp(0.0, 0.05));
        let c = &self.c;
        let r = py.allow_threads(|| {
            // One more hold of ours (re-entry, no waiting); the wait gives up every
            // hold and takes them back; dropping the guard gives up the extra one.
            let mut g = match c.acquire() {
                Ok(g) => g,
                Err(e) => e.into_inner(),
            };
            match c.wait_timeout(&mut g, d) {
                Ok(n) => (n, false),
                Err(e) => (e.into_inner(), true),
            }
        });
        py.check_signals()?;
        Ok(r)
    }
    #[pyo3(signature = (n=1))]
    fn notify(&self, n: usize) {
        self.c.notify(n)
    }
    fn notify_all(&self) {
        self.c.notify_all()
    }
    fn name(&self) -> String {
        self.c.name().to_owned()
    }
}

// ---------------------------------------------------------------- semaphores, events, barriers

enum Sem {
    Plain(Semaphore),
    Bounded(BoundedSemaphore),
}

#[pyclass(module = "multiproc._native", frozen)]
struct NSemaphore {
    s: Sem,
}

macro_rules! sem {
    ($self:expr, $s:ident => $body:expr) => {
        match &$self.s {
            Sem::Plain($s) => $body,
            Sem::Bounded($s) => $body,
        }
    };
}

#[pymethods]
impl NSemaphore {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str, value: u32, bounded: bool) -> PyResult<Self> {
        let s = if bounded {
            BoundedSemaphore::create(name, value).map(Sem::Bounded)
        } else {
            Semaphore::create(name, value).map(Sem::Plain)
        };
        s.map(|s| NSemaphore { s }).map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str, bounded: bool) -> PyResult<Self> {
        let s = if bounded {
            BoundedSemaphore::open(name).map(Sem::Bounded)
        } else {
            Semaphore::open(name).map(Sem::Plain)
        };
        s.map(|s| NSemaphore { s }).map_err(|e| to_py(py, e))
    }
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        sem!(self, s => {
            if s.try_acquire() {
                return Ok(true);
            }
            if !block {
                return Ok(false);
            }
            Ok(wait_sliced(py, timeout, |d| Ok(s.acquire_timeout(d).then_some(())))?.is_some())
        })
    }
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        sem!(self, s => s.release().map_err(|e| to_py(py, e)))
    }
    fn get_value(&self) -> u32 {
        sem!(self, s => s.value())
    }
    fn name(&self) -> String {
        sem!(self, s => s.name().to_owned())
    }
}

#[pyclass(module = "multiproc._native", frozen)]
struct NEvent {
    e: Event,
}

#[pymethods]
impl NEvent {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str) -> PyResult<Self> {
        Event::create(name)
            .map(|e| NEvent { e })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        Event::open(name)
            .map(|e| NEvent { e })
            .map_err(|e| to_py(py, e))
    }
    fn set(&self) {
        self.e.set()
    }
    fn clear(&self) {
        self.e.clear()
    }
    fn is_set(&self) -> bool {
        self.e.is_set()
    }
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.e.is_set() {
            return Ok(true);
        }
        let e = &self.e;
        Ok(wait_sliced(py, timeout, |d| Ok(e.wait_timeout(d).then_some(())))?.is_some())
    }
    fn name(&self) -> String {
        self.e.name().to_owned()
    }
}

#[pyclass(module = "multiproc._native", frozen)]
struct NBarrier {
    b: Barrier,
}

#[pymethods]
impl NBarrier {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str, parties: u32) -> PyResult<Self> {
        Barrier::create(name, parties)
            .map(|b| NBarrier { b })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        Barrier::open(name)
            .map(|b| NBarrier { b })
            .map_err(|e| to_py(py, e))
    }
    /// Not sliced: a barrier wait that gives up breaks the barrier (Python's rule),
    /// so it waits in one piece with the GIL released.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let b = &self.b;
        let r = py.allow_threads(|| match timeout {
            None => b.wait(),
            Some(t) => b.wait_timeout(Duration::from_secs_f64(t.max(0.0))),
        });
        r.map_err(|e| to_py(py, e))
    }
    fn abort(&self) {
        self.b.abort()
    }
    fn reset(&self) {
        self.b.reset()
    }
    fn parties(&self) -> u32 {
        self.b.parties()
    }
    fn n_waiting(&self) -> u32 {
        self.b.n_waiting()
    }
    fn broken(&self) -> bool {
        self.b.is_broken()
    }
    fn name(&self) -> String {
        self.b.name().to_owned()
    }
}

// ---------------------------------------------------------------- values and arrays

/// Python's typecodes and the Rust element types they stand for.
macro_rules! typed {
    ($m:ident) => {
        $m! {
            I8 i8 "b" int, U8 u8 "B" int, I16 i16 "h" int, U16 u16 "H" int,
            I32 i32 "i" int, U32 u32 "I" int, I64 i64 "q" int, U64 u64 "Q" int,
            F32 f32 "f" float, F64 f64 "d" float
        }
    };
}

macro_rules! define_typed {
    ($($v:ident $t:ident $code:literal $class:ident),*) => {
        enum AnyValue { $($v(Value<$t>)),* }
        enum AnyArray { $($v(Array<$t>)),* }

        /// The Rust element type name of a (canonical) typecode.
        fn rust_type(code: &str) -> Option<&'static str> {
            match code { $($code => Some(stringify!($t)),)* _ => None }
        }
        /// The canonical typecode of a Rust element type name.
        fn typecode_of(rust: &str) -> Option<&'static str> {
            match rust { $(stringify!($t) => Some($code),)* _ => None }
        }
        impl AnyValue {
            fn create(code: &str, name: &str, init: &Bound<'_, PyAny>) -> PyResult<Result<Self, Error>> {
                Ok(match code {
                    $($code => Value::<$t>::create(name, init.extract()?).map(AnyValue::$v),)*
                    _ => return Err(bad_code(code)),
                })
            }
            fn open(code: &str, name: &str) -> PyResult<Result<Self, Error>> {
                Ok(match code {
                    $($code => Value::<$t>::open(name).map(AnyValue::$v),)*
                    _ => return Err(bad_code(code)),
                })
            }
            fn get(&self, py: Python<'_>) -> PyObject {
                match self { $(AnyValue::$v(v) => v.get().into_py(py),)* }
            }
            fn set(&self, x: &Bound<'_, PyAny>) -> PyResult<()> {
                match self { $(AnyValue::$v(v) => v.set(x.extract()?),)* }
                Ok(())
            }
            fn name(&self) -> &str {
                match self { $(AnyValue::$v(v) => v.name(),)* }
            }
        }
        impl AnyArray {
            fn create(code: &str, name: &str, init: &Bound<'_, PyAny>) -> PyResult<Result<Self, Error>> {
                Ok(match code {
                    $($code => {
                        if let Ok(n) = init.extract::<usize>() {
                            Array::<$t>::create(name, n).map(AnyArray::$v)
                        } else {
                            let items: Vec<$t> = init.extract()?;
                            Array::<$t>::from_slice(name, &items).map(AnyArray::$v)
                        }
                    })*
                    _ => return Err(bad_code(code)),
                })
            }
            fn open(code: &str, name: &str) -> PyResult<Result<Self, Error>> {
                Ok(match code {
                    $($code => Array::<$t>::open(name).map(AnyArray::$v),)*
                    _ => return Err(bad_code(code)),
                })
            }
            fn len(&self) -> usize {
                match self { $(AnyArray::$v(a) => a.len(),)* }
            }
            fn get(&self, py: Python<'_>, i: usize) -> Option<PyObject> {
                match self { $(AnyArray::$v(a) => a.get(i).map(|x| x.into_py(py)),)* }
            }
            fn set(&self, i: usize, x: &Bound<'_, PyAny>) -> PyResult<Result<(), Error>> {
                Ok(match self { $(AnyArray::$v(a) => a.set(i, x.extract()?),)* })
            }
            fn to_list(&self, py: Python<'_>) -> PyObject {
                match self { $(AnyArray::$v(a) => PyList::new_bound(py, a.to_vec()).into_any().unbind(),)* }
            }
            fn name(&self) -> &str {
                match self { $(AnyArray::$v(a) => a.name(),)* }
            }
        }
    };
}
typed!(define_typed);

macro_rules! int_ops {
    ($self:expr, $x:expr, $op:ident, $py:expr) => {
        match &$self.v {
            AnyValue::I8(v) => Ok(v.$op($x.extract()?).into_py($py)),
            AnyValue::U8(v) => Ok(v.$op($x.extract()?).into_py($py)),
            AnyValue::I16(v) => Ok(v.$op($x.extract()?).into_py($py)),
            AnyValue::U16(v) => Ok(v.$op($x.extract()?).into_py($py)),
            AnyValue::I32(v) => Ok(v.$op($x.extract()?).into_py($py)),
            AnyValue::U32(v) => Ok(v.$op($x.extract()?).into_py($py)),
            AnyValue::I64(v) => Ok(v.$op($x.extract()?).into_py($py)),
            AnyValue::U64(v) => Ok(v.$op($x.extract()?).into_py($py)),
            AnyValue::F32(_) | AnyValue::F64(_) => Err(PyTypeError::new_err(
                "fetch_add needs an integer Value; for floats use `with v.get_lock(): v.value += x`",
            )),
        }
    };
}

fn bad_code(code: &str) -> PyErr {
    PyValueError::new_err(format!(
        "unknown typecode {code:?}: use one of 'b','B','h','H','i','I','l','L','q','Q','f','d','c'"
    ))
}

/// The Rust element type name for a typecode (`None` for an unknown one).
#[pyfunction(name = "rust_type")]
fn py_rust_type(code: &str) -> Option<&'static str> {
    rust_type(code)
}

/// The canonical typecode for a Rust element type name (`None` if there is none).
#[pyfunction(name = "typecode_of")]
fn py_typecode_of(rust: &str) -> Option<&'static str> {
    typecode_of(rust)
}

#[pyclass(module = "multiproc._native", frozen)]
struct NValue {
    v: AnyValue,
}

#[pymethods]
impl NValue {
    #[staticmethod]
    fn create(py: Python<'_>, code: &str, name: &str, init: &Bound<'_, PyAny>) -> PyResult<Self> {
        AnyValue::create(code, name, init)?
            .map(|v| NValue { v })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, code: &str, name: &str) -> PyResult<Self> {
        AnyValue::open(code, name)?
            .map(|v| NValue { v })
            .map_err(|e| to_py(py, e))
    }
    fn get(&self, py: Python<'_>) -> PyObject {
        self.v.get(py)
    }
    fn set(&self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        self.v.set(x)
    }
    /// Adds `x` atomically (wrapping), returning the previous value.
    fn fetch_add(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        int_ops!(self, x, fetch_add, py)
    }
    /// Subtracts `x` atomically (wrapping), returning the previous value.
    fn fetch_sub(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        int_ops!(self, x, fetch_sub, py)
    }
    fn name(&self) -> String {
        self.v.name().to_owned()
    }
}

#[pyclass(module = "multiproc._native", frozen)]
struct NArray {
    a: AnyArray,
}

#[pymethods]
impl NArray {
    #[staticmethod]
    fn create(py: Python<'_>, code: &str, name: &str, init: &Bound<'_, PyAny>) -> PyResult<Self> {
        AnyArray::create(code, name, init)?
            .map(|a| NArray { a })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, code: &str, name: &str) -> PyResult<Self> {
        AnyArray::open(code, name)?
            .map(|a| NArray { a })
            .map_err(|e| to_py(py, e))
    }
    fn __len__(&self) -> usize {
        self.a.len()
    }
    fn get(&self, py: Python<'_>, i: usize) -> PyResult<PyObject> {
        self.a
            .get(py, i)
            .ok_or_else(|| PyIndexError::new_err("array index out of range"))
    }
    fn set(&self, py: Python<'_>, i: usize, x: &Bound<'_, PyAny>) -> PyResult<()> {
        if i >= self.a.len() {
            return Err(PyIndexError::new_err("array assignment index out of range"));
        }
        self.a.set(i, x)?.map_err(|e| to_py(py, e))
    }
    fn to_list(&self, py: Python<'_>) -> PyObject {
        self.a.to_list(py)
    }
    fn name(&self) -> String {
        self.a.name().to_owned()
    }
}

// ---------------------------------------------------------------- pipes

/// One end of a named pipe; end B is opened on first use (so an end made in one
/// process and used only in a child is claimed by that child).
#[pyclass(module = "multiproc._native", frozen)]
struct NConn {
    name: String,
    /// 'A' or 'B'.
    end: char,
    pipe: Mutex<Option<Pipe>>,
    closed: std::sync::atomic::AtomicBool,
}

impl NConn {
    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PyOSError::new_err("handle is closed"));
        }
        Ok(())
    }

    /// Runs `f` on this end without waiting for its lock, with the GIL held: the
    /// fast path. `Ok(None)` if another thread is using the end (or it is not open
    /// yet): take the slow path, [`nogil`](Self::nogil).
    fn fast<T>(&self, f: impl FnOnce(&mut Pipe) -> T) -> PyResult<Option<T>> {
        self.check_open()?;
        Ok(match self.pipe.try_lock() {
            Ok(mut g) => g.as_mut().map(f),
            Err(_) => None,
        })
    }

    /// Runs `f` on this end with the GIL released, opening end B first if needed.
    /// The end's lock is taken and given up without the GIL, so a thread waiting
    /// in one never holds up a thread that holds the GIL (nor the reverse).
    fn nogil<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Pipe) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        self.check_open()?;
        let closed = &self.closed;
        let r = py.allow_threads(|| {
            let mut g = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
            if closed.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(None);
            }
            if g.is_none() {
                *g = Some(Pipe::open(&self.name).map_err(Some)?);
            }
            f(g.as_mut().expect("opened above")).map_err(Some)
        });
        match r {
            Ok(v) => Ok(v),
            Err(Some(e)) => Err(to_py(py, e)),
            Err(None) => Err(PyOSError::new_err("handle is closed")),
        }
    }

    /// Waits in slices as [`wait_sliced`] does, each slice in [`nogil`](Self::nogil),
    /// so another thread may send on this end between (and during) slices.
    fn sliced<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        op: impl Fn(&mut Pipe, Duration) -> Step<T> + Sync,
    ) -> PyResult<Option<T>> {
        let deadline = match timeout {
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(PyValueError::new_err(
                    "timeout must be a non-negative number",
                ))
            }
            Some(t) => Some(Instant::now() + Duration::from_secs_f64(t.min(1e9))),
            None => None,
        };
        loop {
            let slice = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left.min(SLICE)
                }
                None => SLICE,
            };
            match self.nogil(py, |p| op(p, slice))? {
                Some(v) => return Ok(Some(v)),
                None => py.check_signals()?,
            }
        }
    }
}

#[pymethods]
impl NConn {
    /// Creates the pipe `name` and returns its end A (`duplex=False`: A only sends).
    #[staticmethod]
    fn create(py: Python<'_>, name: &str, capacity: usize, duplex: bool) -> PyResult<Self> {
        let p = if duplex {
            Pipe::create(name, capacity)
        } else {
            Pipe::create_one_way(name, capacity)
        };
        let p = p.map_err(|e| to_py(py, e))?;
        Ok(NConn {
            name: name.to_owned(),
            end: 'A',
            pipe: Mutex::new(Some(p)),
            closed: false.into(),
        })
    }
    /// End B of `name`, claimed on first use.
    #[staticmethod]
    fn end_b(name: &str) -> Self {
        NConn {
            name: name.to_owned(),
            end: 'B',
            pipe: Mutex::new(None),
            closed: false.into(),
        }
    }
    fn end(&self) -> char {
        self.end
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    /// Sends one message (any length). Not sliced: a send that gave up part-way
    /// would abandon the message; it waits for room with the GIL released.
    fn send_bytes(&self, py: Python<'_>, msg: &[u8]) -> PyResult<()> {
        match self.fast(|p| p.try_send_bytes(msg))? {
            // No room yet, or longer than the ring (streamed in pieces), or busy.
            Some(Err(Error::Full | Error::TooLarge { .. })) | None => {}
            Some(r) => return r.map_err(|e| to_py(py, e)),
        }
        self.nogil(py, |p| p.send_bytes(msg))
    }
    #[pyo3(signature = (timeout=None))]
    fn recv_bytes(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyBytes>> {
        let v = match self.fast(|p| p.try_recv_bytes())? {
            Some(Err(Error::Empty)) | None => self
                .sliced(py, timeout, |p, d| not_yet(p.recv_bytes_timeout(d)))?
                .ok_or_else(|| PyTimeoutErr::new_err("recv_bytes timed out"))?,
            Some(r) => r.map_err(|e| to_py(py, e))?,
        };
        Ok(PyBytes::new_bound(py, &v).unbind())
    }
    /// True if a message (or EOF) is there, waiting at most `timeout` (0: no wait,
    /// None: forever).
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let ready = |p: &mut Pipe, d: Duration| match p.poll(Some(d)) {
            Ok(true) | Err(Error::Closed) => Ok(Some(())),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        if timeout == Some(0.0) {
            return Ok(self.nogil(py, |p| ready(p, Duration::ZERO))?.is_some());
        }
        Ok(self.sliced(py, timeout, ready)?.is_some())
    }
    fn close(&self, py: Python<'_>) {
        if !self.closed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            // Without the GIL: a receiving thread may hold the end for one slice.
            py.allow_threads(|| {
                let mut g = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = g.as_mut() {
                    p.close();
                }
                *g = None;
            })
        }
    }
    fn closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------- containers

/// Bytes handed to Python.
fn bytes_out(py: Python<'_>, b: Vec<u8>) -> Py<PyBytes> {
    PyBytes::new_bound(py, &b).unbind()
}

/// A crate `Dict<Vec<u8>, Vec<u8>>` of pickles: the Python half pickles keys and
/// values, so equal keys must pickle to equal bytes (ints, strs, bytes and tuples of
/// them do). Every call takes the dict's robust lock, so it runs without the GIL.
#[pyclass(module = "multiproc._native", frozen)]
struct NDict {
    d: Dict<Vec<u8>, Vec<u8>>,
}

#[pymethods]
impl NDict {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str) -> PyResult<Self> {
        py.allow_threads(|| Dict::create(name))
            .map(|d| NDict { d })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        py.allow_threads(|| Dict::open(name))
            .map(|d| NDict { d })
            .map_err(|e| to_py(py, e))
    }
    fn get(&self, py: Python<'_>, k: &[u8]) -> PyResult<Option<Py<PyBytes>>> {
        let r = py
            .allow_threads(|| self.d.get(&k.to_vec()))
            .map_err(|e| to_py(py, e))?;
        Ok(r.map(|b| bytes_out(py, b)))
    }
    /// The previous value's pickle, if any.
    fn insert(&self, py: Python<'_>, k: &[u8], v: &[u8]) -> PyResult<Option<Py<PyBytes>>> {
        let r = py
            .allow_threads(|| self.d.insert(k.to_vec(), v.to_vec()))
            .map_err(|e| to_py(py, e))?;
        Ok(r.map(|b| bytes_out(py, b)))
    }
    fn remove(&self, py: Python<'_>, k: &[u8]) -> PyResult<Option<Py<PyBytes>>> {
        let r = py
            .allow_threads(|| self.d.remove(&k.to_vec()))
            .map_err(|e| to_py(py, e))?;
        Ok(r.map(|b| bytes_out(py, b)))
    }
    fn contains(&self, py: Python<'_>, k: &[u8]) -> PyResult<bool> {
        py.allow_threads(|| self.d.contains_key(&k.to_vec()))
            .map_err(|e| to_py(py, e))
    }
    /// Atomically: the value of `k`, storing `v` first if `k` is absent.
    fn setdefault(&self, py: Python<'_>, k: &[u8], v: &[u8]) -> PyResult<Py<PyBytes>> {
        let mut v = Some(v.to_vec());
        let r = py
            .allow_threads(|| self.d.update(k.to_vec(), |old| old.or_else(|| v.take())))
            .map_err(|e| to_py(py, e))?;
        // The closure never returns None, so the key is present afterwards.
        Ok(bytes_out(py, r.unwrap_or_default()))
    }
    fn __len__(&self) -> usize {
        self.d.len()
    }
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.d.clear())
            .map_err(|e| to_py(py, e))
    }
    /// A snapshot of every `(key, value)` pickle pair.
    fn items(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyBytes>, Py<PyBytes>)>> {
        let r = py
            .allow_threads(|| self.d.items())
            .map_err(|e| to_py(py, e))?;
        Ok(r.into_iter()
            .map(|(k, v)| (bytes_out(py, k), bytes_out(py, v)))
            .collect())
    }
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<Py<PyBytes>>> {
        let r = py
            .allow_threads(|| self.d.keys())
            .map_err(|e| to_py(py, e))?;
        Ok(r.into_iter().map(|k| bytes_out(py, k)).collect())
    }
    fn values(&self, py: Python<'_>) -> PyResult<Vec<Py<PyBytes>>> {
        let r = py
            .allow_threads(|| self.d.values())
            .map_err(|e| to_py(py, e))?;
        Ok(r.into_iter().map(|v| bytes_out(py, v)).collect())
    }
    fn name(&self) -> String {
        self.d.name().to_owned()
    }
}

/// A crate `List<Vec<u8>>` of pickles. Indices here are non-negative; the Python
/// half resolves negative ones. An index past the end is an `IndexError`.
#[pyclass(module = "multiproc._native", frozen)]
struct NList {
    l: List<Vec<u8>>,
}

/// `IndexError` for an index past the end of list `name`, else the usual mapping.
fn list_err(py: Python<'_>, name: &str, e: Error) -> PyErr {
    match e {
        Error::InvalidArgument { .. } => {
            PyIndexError::new_err(format!("list '{name}' index out of range"))
        }
        e => to_py(py, e),
    }
}

#[pymethods]
impl NList {
    #[staticmethod]
    fn create(py: Python<'_>, name: &str) -> PyResult<Self> {
        py.allow_threads(|| List::create(name))
            .map(|l| NList { l })
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        py.allow_threads(|| List::open(name))
            .map(|l| NList { l })
            .map_err(|e| to_py(py, e))
    }
    fn append(&self, py: Python<'_>, x: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.l.push(x.to_vec()))
            .map_err(|e| to_py(py, e))
    }
    /// Appends every pickle in one all-or-nothing call.
    fn extend(&self, py: Python<'_>, xs: Vec<Bound<'_, PyBytes>>) -> PyResult<()> {
        let xs: Vec<Vec<u8>> = xs.iter().map(|x| x.as_bytes().to_vec()).collect();
        py.allow_threads(|| self.l.extend(xs))
            .map_err(|e| to_py(py, e))
    }
    fn get(&self, py: Python<'_>, i: usize) -> PyResult<Py<PyBytes>> {
        match py.allow_threads(|| self.l.get(i)) {
            Ok(Some(b)) => Ok(bytes_out(py, b)),
            Ok(None) => Err(list_err(
                py,
                self.l.name(),
                Error::InvalidArgument {
                    detail: String::new(),
                },
            )),
            Err(e) => Err(to_py(py, e)),
        }
    }
    fn set(&self, py: Python<'_>, i: usize, x: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.l.set(i, x.to_vec()))
            .map_err(|e| list_err(py, self.l.name(), e))
    }
    fn insert(&self, py: Python<'_>, i: usize, x: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.l.insert(i, x.to_vec()))
            .map_err(|e| list_err(py, self.l.name(), e))
    }
    /// Removes and returns item `i`, or the last item when `i` is `None`.
    #[pyo3(signature = (i=None))]
    fn pop(&self, py: Python<'_>, i: Option<usize>) -> PyResult<Py<PyBytes>> {
        let r = match i {
            Some(i) => py.allow_threads(|| self.l.remove(i).map(Some)),
            None => py.allow_threads(|| self.l.pop()),
        };
        match r.map_err(|e| list_err(py, self.l.name(), e))? {
            Some(b) => Ok(bytes_out(py, b)),
            None => Err(PyIndexError::new_err(format!(
                "pop from empty list '{}'",
                self.l.name()
            ))),
        }
    }
    fn __len__(&self) -> usize {
        self.l.len()
    }
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.l.clear())
            .map_err(|e| to_py(py, e))
    }
    /// A snapshot of every item's pickle.
    fn to_list(&self, py: Python<'_>) -> PyResult<Vec<Py<PyBytes>>> {
        let r = py
            .allow_threads(|| self.l.to_vec())
            .map_err(|e| to_py(py, e))?;
        Ok(r.into_iter().map(|b| bytes_out(py, b)).collect())
    }
    fn name(&self) -> String {
        self.l.name().to_owned()
    }
}

use pyo3::exceptions::PyTimeoutError as PyTimeoutErr;

/// The kinds `describe` may name that the Python classes open generically.
#[pyfunction]
fn kinds() -> Vec<&'static str> {
    [
        ObjectKind::Queue,
        ObjectKind::ByteQueue,
        ObjectKind::Lock,
        ObjectKind::RLock,
        ObjectKind::Value,
        ObjectKind::Array,
        ObjectKind::Dict,
        ObjectKind::List,
    ]
    .iter()
    .map(|k| k.name())
    .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(describe, m)?)?;
    m.add_function(wrap_pyfunction!(unlink, m)?)?;
    m.add_function(wrap_pyfunction!(py_rust_type, m)?)?;
    m.add_function(wrap_pyfunction!(py_typecode_of, m)?)?;
    m.add_function(wrap_pyfunction!(kinds, m)?)?;
    m.add_class::<ByteQ>()?;
    m.add_class::<IntQ>()?;
    m.add_class::<NLock>()?;
    m.add_class::<NRLock>()?;
    m.add_class::<NCondition>()?;
    m.add_class::<NSemaphore>()?;
    m.add_class::<NEvent>()?;
    m.add_class::<NBarrier>()?;
    m.add_class::<NValue>()?;
    m.add_class::<NArray>()?;
    m.add_class::<NConn>()?;
    m.add_class::<NDict>()?;
    m.add_class::<NList>()?;
    Ok(())
}
