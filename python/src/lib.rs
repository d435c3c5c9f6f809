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

use multiproc::segment::{describe as describe_name, ObjectKind, TypeInfo};
use multiproc::{
    Array, Barrier, BoundedSemaphore, ByteQueue, Condition, Dict, Error, Event, JoinableByteQueue,
    List, Lock, Pipe, Queue, RLock, Semaphore, TryLockError, Value,
};
use pyo3::exceptions::{
    PyEOFError, PyFileExistsError, PyFileNotFoundError, PyIndexError, PyOSError, PyRuntimeError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyList, PyType};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The slices of a wait of Python's `timeout` (seconds; `None`: forever).
struct Slices {
    deadline: Option<Instant>,
}

impl Slices {
    fn new(timeout: Option<f64>) -> PyResult<Slices> {
        let deadline = match timeout {
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(PyValueError::new_err(
                    "timeout must be a non-negative number",
                ))
            }
            Some(t) => Some(Instant::now() + Duration::from_secs_f64(t.min(1e9))),
            None => None,
        };
        Ok(Slices { deadline })
    }

    /// How long the next slice may wait: at most [`SLICE`]; `None` once the
    /// deadline has passed.
    fn next(&self) -> Option<Duration> {
        match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(SLICE))
            }
            None => Some(SLICE),
        }
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
    wait_sliced_with(py, timeout, op, &to_py)
}

/// [`wait_sliced`], turning a crate error into Python's with `on_err`.
fn wait_sliced_with<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    op: impl Fn(Duration) -> Step<T> + Sync,
    on_err: &dyn Fn(Python<'_>, Error) -> PyErr,
) -> PyResult<Option<T>> {
    let slices = Slices::new(timeout)?;
    loop {
        let Some(slice) = slices.next() else {
            return Ok(None);
        };
        match py.allow_threads(|| op(slice)) {
            Ok(Some(v)) => return Ok(Some(v)),
            Ok(None) => py.check_signals()?,
            Err(e) => return Err(on_err(py, e)),
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

/// A queue of byte strings: the crate's `ByteQueue`, or its `JoinableByteQueue`
/// (the same ring, with task accounting: Python's `JoinableQueue`).
enum Bytes {
    Plain(ByteQueue),
    Joinable(JoinableByteQueue),
}

macro_rules! bytes_q {
    ($self:expr, $q:ident => $body:expr) => {
        match &$self.q {
            Bytes::Plain($q) => $body,
            Bytes::Joinable($q) => $body,
        }
    };
}

thread_local! {
    /// Where a get copies a message before Python gets it: no allocation per call.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `f` on this thread's scratch buffer (a fresh one if `f` re-enters, e.g. through an
/// unpickler that gets from a queue).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}

/// `pickle.dumps`, `pickle.loads` and `pickle.HIGHEST_PROTOCOL`, looked up once.
static PICKLE: GILOnceCell<(PyObject, PyObject, u8)> = GILOnceCell::new();

fn pickle(py: Python<'_>) -> PyResult<&(PyObject, PyObject, u8)> {
    PICKLE.get_or_try_init(py, || {
        let m = py.import_bound("pickle")?;
        Ok((
            m.getattr("dumps")?.unbind(),
            m.getattr("loads")?.unbind(),
            m.getattr("HIGHEST_PROTOCOL")?.extract()?,
        ))
    })
}

/// `a()` if `first`, else `b()`: a handle class's choice between two crate types
/// (signed or unsigned ints, bounded or not, joinable or not), errors as Python's.
fn pick<T>(
    py: Python<'_>,
    first: bool,
    a: impl FnOnce() -> Result<T, Error>,
    b: impl FnOnce() -> Result<T, Error>,
) -> PyResult<T> {
    if first { a() } else { b() }.map_err(|e| to_py(py, e))
}

/// Python's `timeout` argument: `None` or negative (with `block`) waits forever; a
/// negative one without `block` is a `ValueError`, as in Python's queues and locks.
fn timeout_arg(block: bool, timeout: Option<f64>) -> PyResult<Option<f64>> {
    match timeout {
        Some(t) if t < 0.0 && block => Ok(None),
        Some(t) if t < 0.0 => Err(PyValueError::new_err(
            "'timeout' must be a non-negative number",
        )),
        t => Ok(t),
    }
}

/// The error of a put on queue `name`: a closed queue is a `ValueError`, as Python's
/// closed queues raise.
fn put_err(py: Python<'_>, name: &str, e: Error) -> PyErr {
    match e {
        Error::Closed => PyValueError::new_err(format!("queue '{name}' is closed")),
        e => to_py(py, e),
    }
}

/// A put in Python's style: one try with the GIL held, then (if `block`) sliced waits.
fn put_with<T: Copy + Send + Sync>(
    py: Python<'_>,
    name: &str,
    v: T,
    block: bool,
    timeout: Option<f64>,
    try_put: impl Fn(T) -> Result<(), Error>,
    put_timeout: impl Fn(T, Duration) -> Result<(), Error> + Sync,
) -> PyResult<()> {
    match try_put(v) {
        Err(Error::Full) if block => {}
        r => return r.map_err(|e| put_err(py, name, e)),
    }
    let timeout = timeout_arg(block, timeout)?;
    wait_sliced_with(py, timeout, |d| not_yet(put_timeout(v, d)), &|py, e| {
        put_err(py, name, e)
    })?
    .ok_or_else(|| to_py(py, Error::Full))
}

impl ByteQ {
    fn put_bytes(&self, py: Python<'_>, msg: &[u8], block: bool, t: Option<f64>) -> PyResult<()> {
        bytes_q!(self, q => put_with(py, q.name(), msg, block, t, |m| q.try_put(m), |m, d| q.put_timeout(m, d)))
    }

    /// Gets one message into the scratch buffer and hands it to `out`.
    fn get_with(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
        out: impl FnOnce(&[u8]) -> PyResult<PyObject>,
    ) -> PyResult<PyObject> {
        with_scratch(|buf| {
            let r = bytes_q!(self, q => q.try_get_into_vec(buf));
            match r {
                Err(Error::Empty) if block => {
                    let timeout = timeout_arg(block, timeout)?;
                    let b = Mutex::new(&mut *buf);
                    wait_sliced(py, timeout, |d| {
                        let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
                        not_yet(bytes_q!(self, q => q.get_into_vec_timeout(&mut b, d)))
                    })?
                    .ok_or_else(|| to_py(py, Error::Empty))?;
                }
                r => {
                    r.map_err(|e| to_py(py, e))?;
                }
            }
            out(buf)
        })
    }

    fn joinable(&self) -> PyResult<&JoinableByteQueue> {
        match &self.q {
            Bytes::Joinable(q) => Ok(q),
            Bytes::Plain(q) => Err(PyTypeError::new_err(format!(
                "queue '{}' is not joinable: create it as a JoinableQueue",
                q.name()
            ))),
        }
    }
}

/// A queue of byte strings or pickles (the crate's `ByteQueue` or
/// `JoinableByteQueue`).
#[pyclass(module = "multiproc._native", frozen)]
struct ByteQ {
    q: Bytes,
}

#[pymethods]
impl ByteQ {
    #[staticmethod]
    fn create(
        py: Python<'_>,
        name: &str,
        capacity: usize,
        max_len: usize,
        joinable: bool,
    ) -> PyResult<Self> {
        pick(
            py,
            joinable,
            || JoinableByteQueue::create(name, capacity, max_len).map(Bytes::Joinable),
            || ByteQueue::create(name, capacity, max_len).map(Bytes::Plain),
        )
        .map(|q| ByteQ { q })
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str, joinable: bool) -> PyResult<Self> {
        pick(
            py,
            joinable,
            || JoinableByteQueue::open(name).map(Bytes::Joinable),
            || ByteQueue::open(name).map(Bytes::Plain),
        )
        .map(|q| ByteQ { q })
    }
    /// Puts the bytes `msg`; `ValueError` once the queue is closed.
    #[pyo3(signature = (msg, block=true, timeout=None))]
    fn put(&self, py: Python<'_>, msg: &[u8], block: bool, timeout: Option<f64>) -> PyResult<()> {
        self.put_bytes(py, msg, block, timeout)
    }
    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
        self.get_with(py, block, timeout, |b| {
            Ok(PyBytes::new_bound(py, b).into_any().unbind())
        })
    }
    /// Pickles `obj` (highest protocol) and puts the pickle; a pickle longer than the
    /// queue's maximum message length is a `ValueError` saying what to do.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put_obj(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let (dumps, _, proto) = pickle(py)?;
        let data = dumps.bind(py).call1((obj, *proto))?;
        let msg = data.downcast::<PyBytes>()?.as_bytes();
        let (max, name) = bytes_q!(self, q => (q.max_message_len(), q.name()));
        if msg.len() > max {
            return Err(PyValueError::new_err(format!(
                "queue '{name}': this item pickles to {} bytes, more than its \
                 max_message_len of {max}: create the queue with \
                 mp.Queue(max_message_len=...) large enough, or send it through an \
                 mp.Pipe (any size)",
                msg.len()
            )));
        }
        self.put_bytes(py, msg, block, timeout)
    }
    /// Gets one pickle and unpickles it.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_obj(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
        let loads = &pickle(py)?.1;
        self.get_with(py, block, timeout, |b| {
            loads.call1(py, (PyBytes::new_bound(py, b),))
        })
    }
    /// Marks one task done (joinable queues); `ValueError` if called more often than
    /// items were got.
    fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        let q = self.joinable()?;
        q.task_done().map_err(|e| match e {
            Error::InvalidArgument { .. } => PyValueError::new_err(format!(
                "task_done() called too many times: more often than items were got from \
                 queue '{}'",
                q.name()
            )),
            e => to_py(py, e),
        })
    }
    /// Waits (sleeping, interruptibly) until every task is done: False on timeout.
    /// Tasks of consumers that died holding them count as done.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let q = self.joinable()?;
        if q.join_timeout(Duration::ZERO) {
            return Ok(true);
        }
        Ok(wait_sliced(py, timeout, |d| Ok(q.join_timeout(d).then_some(())))?.is_some())
    }
    fn unfinished_tasks(&self) -> PyResult<usize> {
        Ok(self.joinable()?.unfinished_tasks())
    }
    fn abandoned_tasks(&self) -> PyResult<u64> {
        Ok(self.joinable()?.abandoned_tasks())
    }
    fn qsize(&self) -> usize {
        bytes_q!(self, q => q.len())
    }
    fn empty(&self) -> bool {
        bytes_q!(self, q => q.is_empty())
    }
    fn full(&self) -> bool {
        bytes_q!(self, q => q.is_full())
    }
    fn capacity(&self) -> usize {
        bytes_q!(self, q => q.capacity())
    }
    fn max_message_len(&self) -> usize {
        bytes_q!(self, q => q.max_message_len())
    }
    fn close(&self) {
        bytes_q!(self, q => q.close())
    }
    fn is_closed(&self) -> bool {
        bytes_q!(self, q => q.is_closed())
    }
    fn name(&self) -> String {
        bytes_q!(self, q => q.name().to_owned())
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
        pick(
            py,
            signed,
            || Queue::create(name, capacity).map(IntQueue::I),
            || Queue::create(name, capacity).map(IntQueue::U),
        )
        .map(|q| IntQ { q })
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str, signed: bool) -> PyResult<Self> {
        pick(
            py,
            signed,
            || Queue::open(name).map(IntQueue::I),
            || Queue::open(name).map(IntQueue::U),
        )
        .map(|q| IntQ { q })
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
            put_with(py, q.name(), v, block, timeout, |v| q.try_put(v), |v, d| q.put_timeout(v, d))
        })
    }
    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
        intq!(self, q => {
            let v = match q.try_get() {
                Err(Error::Empty) if block => wait_sliced(py, timeout_arg(block, timeout)?, |d| not_yet(q.get_timeout(d)))?
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

/// A crate lock guard that the bindings keep held past the call (Python releases in
/// another call): given up without releasing.
trait Keep {
    fn keep(self);
}

impl Keep for multiproc::LockGuard<'_> {
    fn keep(self) {
        self.forget()
    }
}

impl Keep for multiproc::RLockGuard<'_> {
    fn keep(self) {
        self.leak()
    }
}

impl Keep for multiproc::ConditionGuard<'_> {
    fn keep(self) {
        self.leak()
    }
}

/// One attempt's outcome, kept held: `Some(recovered)` when taken.
fn kept<G: Keep>(r: multiproc::TryLockResult<G>) -> Step<bool> {
    match r {
        Ok(g) => {
            g.keep();
            Ok(Some(false))
        }
        Err(TryLockError::OwnerDied(g)) => {
            g.into_inner().keep();
            Ok(Some(true))
        }
        Err(TryLockError::WouldBlock) => Ok(None),
    }
}

/// The acquire/release protocol shared by the native `Lock`, `RLock` and `Condition`.
trait Hold: Sync {
    /// What the kind is called in messages.
    const WHAT: &'static str;
    /// One attempt, waiting at most `d` (`None`: not at all).
    fn step(&self, d: Option<Duration>) -> Step<bool>;
    /// Gives one hold back.
    fn give_back(&self, py: Python<'_>) -> PyResult<()>;
    /// Whether the last acquire took the lock over from a dead holder.
    fn recovered_flag(&self) -> &AtomicBool;
    fn obj_name(&self) -> &str;
}

/// Python's `acquire(block=True, timeout=-1) -> bool`. The first attempt runs with
/// the GIL held and costs no clock read, allocation or syscall; only a lock that is
/// held sends the caller into sliced, interruptible waits without the GIL. A lock
/// taken over from a dead holder sets `recovered` and warns.
fn acquire_hold<L: Hold>(
    py: Python<'_>,
    l: &L,
    block: bool,
    timeout: Option<f64>,
) -> PyResult<bool> {
    let rec = match l.step(None).map_err(|e| to_py(py, e))? {
        Some(rec) => rec,
        None if !block => {
            timeout_arg(block, timeout)?;
            return Ok(false);
        }
        None => match wait_sliced(py, timeout_arg(block, timeout)?, |d| l.step(Some(d)))? {
            Some(rec) => rec,
            None => return Ok(false),
        },
    };
    let flag = l.recovered_flag();
    if rec || flag.load(Ordering::Relaxed) {
        flag.store(rec, Ordering::Relaxed);
    }
    if rec {
        warn_recovered(py, L::WHAT, l.obj_name())?;
    }
    Ok(true)
}

/// The error of releasing a lock the caller may not release: an exception class that
/// is both what `threading` raises (`RuntimeError`) and what `multiprocessing` raises
/// (`ValueError` for a Lock, `AssertionError` for an RLock), so either's handlers
/// catch it.
fn release_err(py: Python<'_>, rlock: bool, msg: String) -> PyErr {
    static CLASSES: GILOnceCell<(Py<PyType>, Py<PyType>)> = GILOnceCell::new();
    let made = CLASSES.get_or_try_init(py, || -> PyResult<_> {
        let m = py.import_bound("multiproc._native")?;
        Ok((
            m.getattr("LockNotHeldError")?
                .downcast_into::<PyType>()?
                .unbind(),
            m.getattr("RLockNotOwnedError")?
                .downcast_into::<PyType>()?
                .unbind(),
        ))
    });
    match made {
        Ok((lock, rl)) => {
            PyErr::from_type_bound(if rlock { rl } else { lock }.bind(py).clone(), msg)
        }
        Err(e) => e,
    }
}

/// [`Hold`] for a class over a re-entrant crate lock (`RLock`, `Condition`): holds
/// belong to the acquiring OS thread (allow_threads runs a wait on the same one),
/// and only it releases.
macro_rules! reentrant_hold {
    ($cls:ident, $what:literal) => {
        impl Hold for $cls {
            const WHAT: &'static str = $what;
            fn step(&self, d: Option<Duration>) -> Step<bool> {
                kept(match d {
                    None => self.lock.try_acquire(),
                    Some(d) => self.lock.acquire_timeout(d),
                })
            }
            fn give_back(&self, py: Python<'_>) -> PyResult<()> {
                self.lock.release().map_err(|_| {
                    release_err(
                        py,
                        true,
                        format!(
                            "cannot release un-acquired lock: {} '{}' is not held by this thread",
                            $what,
                            self.lock.name()
                        ),
                    )
                })
            }
            fn recovered_flag(&self) -> &AtomicBool {
                &self.recovered
            }
            fn obj_name(&self) -> &str {
                self.lock.name()
            }
        }
    };
}

/// The `#[pymethods]` of a native lock class `$cls` (a [`Hold`] over the crate's
/// `$handle`): its constructor, Python's acquire, release, context manager,
/// `recovered` and `name`, plus the class's own `$extra`. (The hot four are replaced
/// at import by [`fastcall`]'s raw functions over the same code.)
macro_rules! native_lock_methods {
    ($cls:ident($handle:ident), $($extra:tt)*) => {
        #[pymethods]
        impl $cls {
            /// `mode`: 0 create `name`, 1 open it, 2 open or create it.
            #[new]
            fn new(py: Python<'_>, name: &str, mode: u8) -> PyResult<Self> {
                let lock = match mode {
                    0 => $handle::create(name),
                    1 => $handle::open(name),
                    _ => $handle::open_or_create(name),
                }
                .map_err(|e| to_py(py, e))?;
                Ok($cls {
                    lock,
                    recovered: false.into(),
                })
            }
            #[pyo3(signature = (block=true, timeout=None))]
            fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
                acquire_hold(py, self, block, timeout)
            }
            fn release(&self, py: Python<'_>) -> PyResult<()> {
                self.give_back(py)
            }
            fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
                acquire_hold(slf.py(), slf.get(), true, None)?;
                Ok(slf.clone().unbind())
            }
            fn __exit__(
                &self,
                py: Python<'_>,
                _t: &Bound<'_, PyAny>,
                _v: &Bound<'_, PyAny>,
                _tb: &Bound<'_, PyAny>,
            ) -> PyResult<bool> {
                self.give_back(py)?;
                Ok(false)
            }
            /// True if the last acquire took the lock over from a holder that died.
            #[getter]
            fn recovered(&self) -> bool {
                self.recovered_flag().load(Ordering::Relaxed)
            }
            #[getter]
            fn name(&self) -> &str {
                self.obj_name()
            }
            $($extra)*
        }
    };
}

/// Raw CPython entry points for the hottest calls of the native locks: `acquire`,
/// `release`, `__enter__` and `__exit__`. Through pyo3's generated methods each call
/// pays a type-object lookup, a subtype check and an argument table — together about
/// what the lock itself costs, and half of what `multiprocessing.Lock` pays in all.
/// These are plain `METH_FASTCALL` / `METH_NOARGS` functions installed as method
/// descriptors of the native class (CPython checks the receiver's type when it binds
/// or calls them), which run the same [`acquire_hold`] / [`Hold::give_back`] code.
mod fastcall {
    use super::{acquire_hold, Hold};
    use pyo3::exceptions::PyTypeError;
    use pyo3::ffi;
    use pyo3::panic::PanicException;
    use pyo3::prelude::*;
    use pyo3::PyClass;
    use std::os::raw::c_int;
    use std::ptr::null_mut;

    /// Runs `f` with the GIL the caller holds, turning an error or a panic into a
    /// raised Python exception (a panic must not unwind into CPython).
    ///
    /// # Safety
    /// The calling thread holds the GIL (CPython calls method functions with it).
    unsafe fn guarded(
        f: impl FnOnce(Python<'_>) -> PyResult<*mut ffi::PyObject>,
    ) -> *mut ffi::PyObject {
        // SAFETY: the caller holds the GIL (this function's contract).
        let py = unsafe { Python::assume_gil_acquired() };
        let err = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(py))) {
            Ok(Ok(p)) => return p,
            Ok(Err(e)) => e,
            Err(_) => PanicException::new_err("a multiproc lock call panicked"),
        };
        err.restore(py);
        null_mut()
    }

    /// The Rust lock behind `slf`.
    ///
    /// # Safety
    /// `slf` is a live instance of `L`'s class or a subclass (CPython's method
    /// descriptor checked it), and the GIL is held.
    unsafe fn this<'a, L: PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync>(
        py: Python<'a>,
        slf: &'a *mut ffi::PyObject,
    ) -> &'a L {
        // SAFETY: `slf` is a live object of `L`'s class or a subclass, per the
        // contract, borrowed by the caller for the whole call (which outlives 'a's
        // uses here); frozen classes hand out shared references to their value.
        unsafe {
            let value: *const L = pyo3::Borrowed::from_ptr(py, *slf)
                .downcast_unchecked::<L>()
                .get();
            &*value
        }
    }

    fn py_bool(b: bool) -> *mut ffi::PyObject {
        // SAFETY: the GIL is held by our callers; True/False are immortal singletons
        // (a new reference is handed out).
        unsafe {
            let p = if b { ffi::Py_True() } else { ffi::Py_False() };
            ffi::Py_INCREF(p);
            p
        }
    }

    /// `acquire(block=True, timeout=None)`, with positional or keyword arguments.
    ///
    /// # Safety
    /// Called by CPython as a `METH_FASTCALL | METH_KEYWORDS` method of `L`'s class.
    pub unsafe extern "C" fn acquire<
        L: Hold + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
    >(
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython holds the GIL for the call and passes `nargs` positional
        // arguments followed by one per name in `kwnames`, all live for the call.
        unsafe {
            guarded(|py| {
                let l = this::<L>(py, &slf);
                let (mut block, mut timeout) = (true, None);
                if nargs != 0 || !kwnames.is_null() {
                    let nkw = if kwnames.is_null() {
                        0
                    } else {
                        ffi::PyTuple_GET_SIZE(kwnames)
                    };
                    if nargs > 2 {
                        return Err(PyTypeError::new_err("acquire() takes at most 2 arguments"));
                    }
                    for i in 0..nargs + nkw {
                        let v = pyo3::Borrowed::from_ptr(py, *args.offset(i));
                        let which = if i < nargs {
                            i
                        } else {
                            let k = pyo3::Borrowed::from_ptr(
                                py,
                                ffi::PyTuple_GET_ITEM(kwnames, i - nargs),
                            );
                            match k.extract::<&str>()? {
                                "block" | "blocking" => 0,
                                "timeout" => 1,
                                other => {
                                    return Err(PyTypeError::new_err(format!(
                                        "acquire() got an unexpected keyword argument '{other}'"
                                    )))
                                }
                            }
                        };
                        if which == 0 {
                            block = v.is_truthy()?;
                        } else {
                            timeout = v.extract::<Option<f64>>()?;
                        }
                    }
                }
                acquire_hold(py, l, block, timeout).map(py_bool)
            })
        }
    }

    /// `release()`.
    ///
    /// # Safety
    /// Called by CPython as a `METH_NOARGS` method of `L`'s class.
    pub unsafe extern "C" fn release<
        L: Hold + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
    >(
        slf: *mut ffi::PyObject,
        _noargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython holds the GIL for the call; `slf` is checked by the descriptor.
        unsafe {
            guarded(|py| {
                this::<L>(py, &slf).give_back(py)?;
                let none = ffi::Py_None();
                ffi::Py_INCREF(none);
                Ok(none)
            })
        }
    }

    /// `__enter__()`: acquire (waiting), then the lock itself.
    ///
    /// # Safety
    /// Called by CPython as a `METH_NOARGS` method of `L`'s class.
    pub unsafe extern "C" fn enter<
        L: Hold + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
    >(
        slf: *mut ffi::PyObject,
        _noargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: as for `release`.
        unsafe {
            guarded(|py| {
                acquire_hold(py, this::<L>(py, &slf), true, None)?;
                ffi::Py_INCREF(slf);
                Ok(slf)
            })
        }
    }

    /// `__exit__(*exc)`: release; never swallows the exception (returns False).
    ///
    /// # Safety
    /// Called by CPython as a `METH_FASTCALL` method of `L`'s class.
    pub unsafe extern "C" fn exit<
        L: Hold + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>,
    >(
        slf: *mut ffi::PyObject,
        _args: *mut *mut ffi::PyObject,
        _nargs: ffi::Py_ssize_t,
    ) -> *mut ffi::PyObject {
        // SAFETY: as for `release`.
        unsafe {
            guarded(|py| {
                this::<L>(py, &slf).give_back(py)?;
                Ok(py_bool(false))
            })
        }
    }

    /// Installs the four functions as methods of `L`'s class (replacing pyo3's).
    pub fn install<L: Hold + PyClass<Frozen = pyo3::pyclass::boolean_struct::True>>(
        py: Python<'_>,
    ) -> PyResult<()> {
        let ty = py.get_type_bound::<L>();
        let defs: [(&'static std::ffi::CStr, ffi::PyMethodDefPointer, c_int); 4] = [
            (
                c"acquire",
                ffi::PyMethodDefPointer {
                    _PyCFunctionFastWithKeywords: acquire::<L>,
                },
                ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ),
            (
                c"release",
                ffi::PyMethodDefPointer {
                    PyCFunction: release::<L>,
                },
                ffi::METH_NOARGS,
            ),
            (
                c"__enter__",
                ffi::PyMethodDefPointer {
                    PyCFunction: enter::<L>,
                },
                ffi::METH_NOARGS,
            ),
            (
                c"__exit__",
                ffi::PyMethodDefPointer {
                    _PyCFunctionFast: exit::<L>,
                },
                ffi::METH_FASTCALL,
            ),
        ];
        for (name, meth, flags) in defs {
            // Leaked on purpose: a method definition must outlive its descriptor,
            // which lives as long as the class (the process).
            let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
                ml_name: name.as_ptr(),
                ml_meth: meth,
                ml_flags: flags,
                ml_doc: std::ptr::null(),
            }));
            // SAFETY: `ty` is a live type object; `def` lives forever. The new
            // reference is owned by the Bound made from it.
            let descr = unsafe {
                Bound::from_owned_ptr_or_err(
                    py,
                    ffi::PyDescr_NewMethod(ty.as_ptr().cast::<ffi::PyTypeObject>(), def),
                )?
            };
            ty.setattr(name.to_str().expect("ASCII names"), descr)?;
        }
        Ok(())
    }
}

/// A lock in Python's style: acquired in one call, released in another (by any
/// thread, as Python's `Lock` allows). A context manager; subclassed by
/// `multiproc.Lock`.
#[pyclass(module = "multiproc._native", frozen, subclass)]
struct NLock {
    lock: Lock,
    recovered: AtomicBool,
}

impl Hold for NLock {
    const WHAT: &'static str = "lock";
    fn step(&self, d: Option<Duration>) -> Step<bool> {
        // The fast path: one CAS, no guard to make and forget (Python releases in
        // another call, with `release_unowned`).
        if let Some(recovered) = self.lock.try_acquire_unowned() {
            return Ok(Some(recovered));
        }
        let raw = self.lock.raw();
        let me = multiproc::sync::current_identity();
        // The word naming this very thread means it holds the lock already (Python's
        // `Lock` is not re-entrant: it waits, for another thread to release it). The
        // crate would take such a hold over as an impossible one, so wait here instead.
        if raw.holder() == Some(me.tid) {
            if let Some(d) = d {
                std::thread::sleep(d.min(Duration::from_millis(1)));
            }
            return Ok(None);
        }
        kept(match d {
            None => self.lock.try_acquire(),
            Some(d) => self.lock.acquire_timeout(d),
        })
    }
    fn give_back(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.release_unowned().map_err(|_| {
            release_err(
                py,
                false,
                format!("release unlocked lock '{}'", self.lock.name()),
            )
        })
    }
    fn recovered_flag(&self) -> &AtomicBool {
        &self.recovered
    }
    fn obj_name(&self) -> &str {
        self.lock.name()
    }
}

native_lock_methods! {
    NLock(Lock),
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }
}

/// The re-entrant lock: holds belong to the acquiring thread. A context manager;
/// subclassed by `multiproc.RLock`.
#[pyclass(module = "multiproc._native", frozen, subclass)]
struct NRLock {
    lock: RLock,
    recovered: AtomicBool,
}

reentrant_hold!(NRLock, "rlock");

native_lock_methods! {
    NRLock(RLock),
    fn is_owned(&self) -> bool {
        self.lock.is_owned()
    }
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }
}

/// A condition variable with its own re-entrant lock. A context manager;
/// subclassed by `multiproc.Condition`.
#[pyclass(module = "multiproc._native", frozen, subclass)]
struct NCondition {
    lock: Condition,
    recovered: AtomicBool,
}

reentrant_hold!(NCondition, "condition");

native_lock_methods! {
    NCondition(Condition),
    fn is_owned(&self) -> bool {
        self.lock.is_owned()
    }
    /// One wait of at most `min(timeout, 50 ms)` with the lock released:
    /// `(notified, recovered)`. The caller loops (Python's `wait` may return early,
    /// as its documentation allows: re-check the predicate).
    #[pyo3(signature = (timeout=None))]
    fn wait_once(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(bool, bool)> {
        if !self.lock.is_owned() {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let d = Duration::from_secs_f64(timeout.unwrap_or(0.05).clamp(0.0, 0.05));
        let c = &self.lock;
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
        self.lock.notify(n)
    }
    fn notify_all(&self) {
        self.lock.notify_all()
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
        pick(
            py,
            bounded,
            || BoundedSemaphore::create(name, value).map(Sem::Bounded),
            || Semaphore::create(name, value).map(Sem::Plain),
        )
        .map(|s| NSemaphore { s })
    }
    #[staticmethod]
    fn open(py: Python<'_>, name: &str, bounded: bool) -> PyResult<Self> {
        pick(
            py,
            bounded,
            || BoundedSemaphore::open(name).map(Sem::Bounded),
            || Semaphore::open(name).map(Sem::Plain),
        )
        .map(|s| NSemaphore { s })
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

/// A barrier with Python's `action` (run by the last party to arrive, before any
/// party is released) and a `wait` that Ctrl-C interrupts.
#[pyclass(module = "multiproc._native", frozen)]
struct NBarrier {
    b: Barrier,
}

thread_local! {
    /// The exception this thread's barrier action raised (the action runs in the
    /// waiting thread, inside the crate's wait).
    static ACTION_ERR: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// How often a barrier wait checks for Ctrl-C (and dead parties).
const BARRIER_PROBE: Duration = Duration::from_millis(5);

impl NBarrier {
    fn new(b: Barrier, action: Option<PyObject>) -> Self {
        let b = b.with_probe_interval(BARRIER_PROBE);
        let b = match action {
            None => b,
            Some(action) => b.with_action(move || {
                Python::with_gil(|py| {
                    if let Err(e) = action.call0(py) {
                        ACTION_ERR.with(|c| *c.borrow_mut() = Some(e));
                        // Tells the crate the action failed (it breaks the barrier);
                        // resume_unwind runs no panic hook, so nothing is printed.
                        std::panic::resume_unwind(Box::new(()));
                    }
                })
            }),
        };
        NBarrier { b }
    }
}

#[pymethods]
impl NBarrier {
    #[staticmethod]
    #[pyo3(signature = (name, parties, action=None))]
    fn create(
        py: Python<'_>,
        name: &str,
        parties: u32,
        action: Option<PyObject>,
    ) -> PyResult<Self> {
        Barrier::create(name, parties)
            .map(|b| NBarrier::new(b, action))
            .map_err(|e| to_py(py, e))
    }
    #[staticmethod]
    #[pyo3(signature = (name, action=None))]
    fn open(py: Python<'_>, name: &str, action: Option<PyObject>) -> PyResult<Self> {
        Barrier::open(name)
            .map(|b| NBarrier::new(b, action))
            .map_err(|e| to_py(py, e))
    }
    /// Waits for every party with the GIL released; the arrival index. Ctrl-C
    /// interrupts within a few ms: the interrupted party gives up and the barrier
    /// breaks (as when a party dies: the round cannot complete without it), so the
    /// others get `BrokenBarrierError`. An exception in the action is raised in the
    /// party that ran it, and breaks the barrier for the others.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let timeout = match timeout {
            Some(t) if t.is_nan() => {
                return Err(PyValueError::new_err("timeout must be a number"));
            }
            Some(t) => Some(Duration::from_secs_f64(t.clamp(0.0, 1e9))),
            None => None,
        };
        let signal: Mutex<Option<PyErr>> = Mutex::new(None);
        let b = &self.b;
        let r = py.allow_threads(|| {
            b.wait_interruptible(timeout, &|| {
                Python::with_gil(|py| match py.check_signals() {
                    Ok(()) => false,
                    Err(e) => {
                        *signal.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        true
                    }
                })
            })
        });
        if let Some(e) = signal.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        if let Some(e) = ACTION_ERR.with(|c| c.borrow_mut().take()) {
            return Err(e);
        }
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
        /// The Rust element type of a (canonical) typecode: its name and size (the
        /// size is also its alignment: every typecode is a primitive).
        fn elem_type(code: &str) -> Option<(&'static str, usize)> {
            match code { $($code => Some((stringify!($t), core::mem::size_of::<$t>())),)* _ => None }
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

/// The element-type fingerprint a typecode stands for, described at run time
/// (`TypeInfo::named`): `(name, size, align, hash)`, the same as the Rust type's.
#[pyfunction]
fn type_info(code: &str) -> PyResult<(&'static str, u32, u32, u64)> {
    let (name, size) = elem_type(code).ok_or_else(|| bad_code(code))?;
    let t = TypeInfo::named(name, size, size);
    Ok((t.name, t.size, t.align, t.hash))
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

/// A shared number; subclassed by `multiproc.Value`, whose `.value` is this class's
/// native property (no Python frame, no allocation beyond the int itself).
#[pyclass(module = "multiproc._native", frozen, subclass)]
struct NValue {
    v: AnyValue,
    /// Python's typecode (`'c'`: one byte, read and written as a bytes object of
    /// length 1).
    tc: String,
}

/// A `'c'` value written from Python: one byte, or its int.
fn char_in<'py>(x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(b) = x.downcast::<PyBytes>() {
        if let [c] = b.as_bytes() {
            return Ok(c.into_py(x.py()).into_bound(x.py()));
        }
    }
    if x.extract::<u8>().is_ok() {
        return Ok(x.clone());
    }
    Err(PyTypeError::new_err(
        "a 'c' value is one byte (bytes of length 1)",
    ))
}

#[pymethods]
impl NValue {
    /// `code`: the stored type's canonical typecode; `tc`: the typecode as given;
    /// `open`: attach to `name` rather than create it (`init` unused).
    #[new]
    fn new(
        py: Python<'_>,
        code: &str,
        name: &str,
        init: &Bound<'_, PyAny>,
        tc: String,
        open: bool,
    ) -> PyResult<Self> {
        let v = if open {
            AnyValue::open(code, name)?
        } else if tc == "c" {
            AnyValue::create(code, name, &char_in(init)?)?
        } else {
            AnyValue::create(code, name, init)?
        };
        v.map(|v| NValue { v, tc }).map_err(|e| to_py(py, e))
    }
    #[getter]
    fn value(&self, py: Python<'_>) -> PyObject {
        let v = self.v.get(py);
        if self.tc == "c" {
            if let Ok(b) = v.extract::<u8>(py) {
                return PyBytes::new_bound(py, &[b]).into_any().unbind();
            }
        }
        v
    }
    #[setter]
    fn set_value(&self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.tc == "c" {
            return self.v.set(&char_in(x)?);
        }
        self.v.set(x)
    }
    /// Adds `x` (default 1) atomically (wrapping), returning the previous value.
    #[pyo3(signature = (x=None))]
    fn fetch_add(&self, py: Python<'_>, x: Option<&Bound<'_, PyAny>>) -> PyResult<PyObject> {
        let one = 1u8.into_py(py).into_bound(py);
        int_ops!(self, x.unwrap_or(&one), fetch_add, py)
    }
    /// Subtracts `x` (default 1) atomically (wrapping), returning the previous value.
    #[pyo3(signature = (x=None))]
    fn fetch_sub(&self, py: Python<'_>, x: Option<&Bound<'_, PyAny>>) -> PyResult<PyObject> {
        let one = 1u8.into_py(py).into_bound(py);
        int_ops!(self, x.unwrap_or(&one), fetch_sub, py)
    }
    #[getter]
    fn name(&self) -> &str {
        self.v.name()
    }
    #[getter]
    fn typecode(&self) -> &str {
        &self.tc
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
        let slices = Slices::new(timeout)?;
        loop {
            let Some(slice) = slices.next() else {
                return Ok(None);
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
        ObjectKind::JoinableByteQueue,
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
    m.add_function(wrap_pyfunction!(type_info, m)?)?;
    // Releasing a lock one may not release: what threading raises (RuntimeError) and
    // what multiprocessing raises (ValueError for Lock, AssertionError for RLock).
    let py = m.py();
    let ty = py.get_type_bound::<PyType>();
    for (name, base) in [
        (
            "LockNotHeldError",
            py.get_type_bound::<pyo3::exceptions::PyValueError>(),
        ),
        (
            "RLockNotOwnedError",
            py.get_type_bound::<pyo3::exceptions::PyAssertionError>(),
        ),
    ] {
        let bases = (py.get_type_bound::<PyRuntimeError>(), base);
        let ns = pyo3::types::PyDict::new_bound(py);
        ns.set_item("__module__", "multiproc")?;
        m.add(name, ty.call1((name, bases, ns))?)?;
    }
    m.add_class::<ByteQ>()?;
    m.add_class::<IntQ>()?;
    m.add_class::<NLock>()?;
    m.add_class::<NRLock>()?;
    m.add_class::<NCondition>()?;
    fastcall::install::<NLock>(py)?;
    fastcall::install::<NRLock>(py)?;
    fastcall::install::<NCondition>(py)?;
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
