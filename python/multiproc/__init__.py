"""multiproc: Python's ``multiprocessing`` primitives in named shared memory.

Every object lives in a named POSIX shared-memory segment that any process attaches
to by name -- a child made by ``fork`` or ``spawn``, or an unrelated program, Python
or Rust. Objects pickle as their name, so they can be passed to ``spawn`` children
and through queues. Locks held by a process that dies are recovered by the next
acquirer, which is told so (``RuntimeWarning`` and ``lock.recovered``).

    import multiproc as mp
    q = mp.Queue()                 # anonymous: reaches children by fork or pickling
    q = mp.Queue(name="jobs")      # named: any process can mp.Queue.open("jobs")
    q.put({"n": 1}); q.get()

What a queue carries: ``mp.Queue`` holds pickled objects in the crate's ByteQueue
(each pickle at most ``max_message_len`` bytes, 64 KiB by default; a larger one is a
``ValueError`` saying how to raise the limit). ``raw=True`` carries ``bytes`` as they
are (a Rust ``ByteQueue``). ``Queue.open(name)`` of a Rust ``Queue<u64>`` or
``Queue<i64>`` carries ints.

``Lock``, ``RLock`` and ``Condition`` are native classes (acquire, release and
``with`` run in Rust: level with ``multiprocessing.Lock`` uncontended, about 2x it
for ``with lock:``); ``JoinableQueue.join`` sleeps rather than polls and does not
wait for consumers that died; ``Barrier`` takes Python's ``action``. Figures and
the comparison with ``multiprocessing`` and ``faster-fifo``: the README's Python
section (``python/bench.py``).

The creator of an object owns its name: the name is unlinked when the creating
handle is garbage-collected (objects opened by name, or inherited by ``fork``, never
unlink). Keep the creating handle alive while other processes may still open it.
"""

import io as _io
import itertools as _itertools
import operator as _operator
import os as _os
import pickle as _pickle
import queue as _queue
import secrets as _secrets
import threading as _threading
import time as _time
import warnings as _warnings
from multiprocessing import (  # noqa: F401  (re-exported for convenience)
    Process,
    current_process,
    get_context,
    cpu_count,
)

from . import _native as _n

__all__ = [
    "Queue", "JoinableQueue", "SimpleQueue", "Pipe", "Connection", "Lock", "RLock",
    "Semaphore", "BoundedSemaphore", "Event", "Condition", "Barrier", "Value", "Array",
    "Dict", "List",
    "describe", "unlink", "Process", "current_process", "get_context", "cpu_count",
    "DEFAULT_QUEUE_CAPACITY", "DEFAULT_MAX_MESSAGE_LEN",
]

#: Slots of a ``Queue(maxsize=0)``: shared memory is reserved up front, so an
#: "unbounded" queue holds this many items before ``put`` waits.
DEFAULT_QUEUE_CAPACITY = 1024
#: Largest pickled item (bytes) a queue accepts unless created with another
#: ``max_message_len``. Memory reserved: capacity x max_message_len.
DEFAULT_MAX_MESSAGE_LEN = 64 * 1024
#: Bytes of each direction's ring of a ``Pipe`` (messages of any size pass).
DEFAULT_PIPE_CAPACITY = 64 * 1024

_PROTOCOL = _pickle.HIGHEST_PROTOCOL
_counter = _itertools.count()


def _auto_name(kind):
    return "py-%d-%d-%s.%s" % (_os.getpid(), next(_counter), _secrets.token_hex(4), kind)


def describe(name):
    """``(kind, element_type, element_size)`` of the object named ``name``."""
    return _n.describe(name)


def unlink(name):
    """Removes the name ``name`` (``FileNotFoundError`` if there is none)."""
    _n.unlink(name)


def _warn_recovered(what, name):
    _warnings.warn(
        "%s %r was recovered from a holder that died holding it: "
        "the state it protects may be half-updated" % (what, name),
        RuntimeWarning,
        stacklevel=3,
    )


def _timeout_arg(block, timeout):
    if timeout is not None and timeout < 0:
        if block:
            return None  # Python's -1: wait forever
        raise ValueError("'timeout' must be a non-negative number")
    return timeout


# ---------------------------------------------------------------- queues

class Queue:
    """A multi-producer multi-consumer queue, as ``multiprocessing.Queue``.

    ``maxsize`` bounds the items held (0: ``DEFAULT_QUEUE_CAPACITY``). ``raw=True``
    carries ``bytes`` unpickled. ``close()`` closes the queue for every process:
    further puts raise ``ValueError``; gets drain what is left, then raise
    ``EOFError`` (Python's queues instead only stop the calling process's puts).
    """

    def __init__(self, maxsize=0, name=None, *, raw=False,
                 max_message_len=DEFAULT_MAX_MESSAGE_LEN):
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        name = name or _auto_name(self._what)
        native = _n.ByteQ.create(name, maxsize or DEFAULT_QUEUE_CAPACITY, max_message_len,
                                 self._joinable)
        self._setup(native, "bytes" if raw else "pickle")

    @classmethod
    def open(cls, name, *, raw=False):
        """Attaches to the queue ``name``: a Rust ``Queue<u64>``/``Queue<i64>``
        carries ints, a ``ByteQueue`` pickles (or ``bytes`` with ``raw=True``)."""
        kind, ty, _size = _n.describe(name)
        if cls._joinable != (kind == "JoinableByteQueue"):
            if kind == "JoinableQueue":
                raise TypeError("%r is a Rust JoinableQueue of %s: Python's JoinableQueue "
                                "is a JoinableByteQueue (of pickles or bytes)" % (name, ty))
            opener = {"Queue": "Queue", "ByteQueue": "Queue",
                      "JoinableByteQueue": "JoinableQueue"}.get(kind, kind)
            raise TypeError("%r is a %s: open it with mp.%s.open" % (name, kind, opener))
        if kind == "JoinableByteQueue":
            native, mode = _n.ByteQ.open(name, True), ("bytes" if raw else "pickle")
        elif kind == "Queue":
            if ty not in ("u64", "i64"):
                raise TypeError(
                    "queue %r holds %s: Python opens queues of u64 or i64 (ints) "
                    "and ByteQueues" % (name, ty))
            native, mode = _n.IntQ.open(name, ty == "i64"), "int"
        elif kind == "ByteQueue":
            native, mode = _n.ByteQ.open(name, False), ("bytes" if raw else "pickle")
        else:
            raise TypeError("%r is a %s, not a Queue: open it with mp.%s.open"
                            % (name, kind, kind))
        self = cls.__new__(cls)
        self._setup(native, mode)
        return self

    @classmethod
    def ints(cls, maxsize=0, name=None, *, signed=False):
        """A queue of 64-bit ints: a Rust ``Queue<u64>`` (``Queue<i64>`` if
        ``signed``), the fastest kind; ``put_many``/``get_many`` move batches."""
        self = cls.__new__(cls)
        name = name or _auto_name("queue")
        self._setup(_n.IntQ.create(name, maxsize or DEFAULT_QUEUE_CAPACITY, signed), "int")
        return self

    def _setup(self, native, mode):
        self._q = native
        self._mode = mode
        self._name = native.name()
        # The native methods themselves: no Python frame per call. They pickle with
        # the highest protocol straight into the ring (and out of a reused buffer),
        # raise ValueError for a closed queue or an item over max_message_len, and
        # take Python's block/timeout arguments.
        if mode == "pickle":
            self.put, self.get = native.put_obj, native.get_obj
        else:
            self.put, self.get = native.put, native.get

    @property
    def name(self):
        return self._name

    @property
    def kind(self):
        """What an item is: "pickle", "bytes" or "int"."""
        return self._mode

    def put_nowait(self, obj):
        return self.put(obj, False)

    def get_nowait(self):
        return self.get(False)

    def put_many(self, items):
        """Puts every item, waiting for room as needed (one call for int queues)."""
        if self._mode == "int":
            self._q.put_many(list(items))
        else:
            for x in items:
                self.put(x)

    def get_many(self, n, block=True, timeout=None):
        """Up to ``n`` items: waits (as ``get``) for the first, then takes what is
        there without waiting."""
        if self._mode == "int":
            return self._q.get_many(n, block, _timeout_arg(block, timeout))
        out = [self.get(block, timeout)]
        while len(out) < n:
            try:
                out.append(self.get(False))
            except _queue.Empty:
                break
        return out

    def qsize(self):
        return self._q.qsize()

    def empty(self):
        return self._q.empty()

    def full(self):
        return self._q.full()

    def close(self):
        self._q.close()

    def join_thread(self):
        """Nothing to join: a put completes in shared memory before it returns."""

    def cancel_join_thread(self):
        """Nothing to cancel: there is no feeder thread."""

    def __reduce__(self):
        return (_reopen_queue, (type(self), self._name, self._mode == "bytes"))

    def __repr__(self):
        return "<multiproc.%s %r (%s)>" % (type(self).__name__, self._name, self._mode)

    _what = "queue"
    _joinable = False


def _reopen_queue(cls, name, raw):
    return cls.open(name, raw=raw)


class SimpleQueue(Queue):
    """``multiprocessing.SimpleQueue``: ``put``, ``get``, ``empty``, ``close``."""
    _what = "squeue"


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: a Queue whose ``join()`` waits until every
    item put has been marked ``task_done()``, by any process.

    Built on the crate's ``JoinableByteQueue``: the count of unfinished tasks is kept
    with the ring, ``join`` sleeps on a futex (interruptible by Ctrl-C, GIL released)
    rather than polling, and a **consumer that dies** holding tasks (got, not yet
    marked done: killed, crashed, or exited without letting go of the queue) has them
    *abandoned*: ``join`` stops waiting for them within about 50 ms and
    ``abandoned_tasks()`` counts them -- where Python's ``join`` would wait forever. A
    value it was still taking is re-delivered to another consumer."""
    _what = "jqueue"
    _joinable = True

    def task_done(self):
        """Marks one task done; ``ValueError`` if called more often than items were
        got."""
        self._q.task_done()

    def join(self, timeout=None):
        """Waits until every item put has been marked done (or was held by a
        consumer that died); with ``timeout``, False if it passed first."""
        return self._q.join(timeout)

    def unfinished_tasks(self):
        """Tasks put and not yet marked done (a snapshot)."""
        return self._q.unfinished_tasks()

    def abandoned_tasks(self):
        """Tasks that consumers which died were holding (never marked done)."""
        return self._q.abandoned_tasks()


# ---------------------------------------------------------------- locks

class _NativeLock:
    """Python's constructor, ``open``, pickling and repr for the native lock classes
    (``acquire``, ``release``, ``with``, ``recovered`` and ``name`` are native)."""
    __slots__ = ()
    _what = "lock"

    def __new__(cls, name=None):
        return super().__new__(cls, name or _auto_name(cls._what), 0)

    @classmethod
    def open(cls, name):
        """Attaches to the object ``name`` (made by this or any other process)."""
        return super().__new__(cls, name, 1)

    def __reduce__(self):
        return (type(self).open, (self.name,))

    def __repr__(self):
        return "<multiproc.%s %r>" % (type(self).__name__, self.name)


class Lock(_NativeLock, _n.NLock):
    """A non-recursive lock, as ``multiprocessing.Lock``: any thread or process may
    release it. ``acquire(block=True, timeout=None)``, ``release()`` and ``with`` are
    native. A lock taken over from a holder that died sets ``recovered`` and warns
    (``RuntimeWarning``). Releasing it while unlocked raises ``LockNotHeldError``, a
    ``ValueError`` (as ``multiprocessing``) and a ``RuntimeError`` (as ``threading``)."""
    __slots__ = ()
    _what = "lock"


class RLock(_NativeLock, _n.NRLock):
    """A re-entrant lock, as ``multiprocessing.RLock``: only its holder releases it
    (else ``RLockNotOwnedError``, an ``AssertionError`` as ``multiprocessing`` and a
    ``RuntimeError`` as ``threading``)."""
    __slots__ = ()
    _what = "rlock"

    @classmethod
    def _open_or_create(cls, name):
        return super().__new__(cls, name, 2)

    def _is_owned(self):
        return self.is_owned()


class Condition(_NativeLock, _n.NCondition):
    """A condition variable with its own re-entrant lock, as
    ``multiprocessing.Condition`` (which may share another lock: this one may not).

    ``wait`` may return early (after at most 50 ms), as Python's documentation
    allows: loop on the predicate, or use ``wait_for``."""
    __slots__ = ()
    _what = "condition"

    def __new__(cls, lock=None, name=None):
        if lock is not None:
            raise ValueError("a multiproc Condition owns its lock: pass lock=None")
        return super().__new__(cls, name)

    def wait(self, timeout=None):
        notified, rec = self.wait_once(timeout)
        if rec:
            _warn_recovered(self._what, self.name)
        if notified:
            return True
        return timeout is None or timeout > 0.05

    def wait_for(self, predicate, timeout=None):
        deadline = None if timeout is None else _time.monotonic() + timeout
        result = predicate()
        while not result:
            if deadline is not None:
                left = deadline - _time.monotonic()
                if left <= 0:
                    break
                self.wait(left)
            else:
                self.wait()
            result = predicate()
        return result

    def notify(self, n=1):
        if not self.is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        super().notify(n)

    def notify_all(self):
        if not self.is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        super().notify_all()


class _Named:
    """``open(name)``, ``name`` and pickling as the name, for a class whose native
    handle is ``self._h`` (made by ``cls._native.create``/``open``)."""
    _native = None

    def _attach(self, native):
        self._h = native
        self._name = native.name()

    @classmethod
    def _open_native(cls, name, *args):
        return cls._native.open(name, *args)

    @classmethod
    def open(cls, name, *args):
        """Attaches to the object ``name`` (made by this or any other process)."""
        self = cls.__new__(cls)
        self._attach(cls._open_native(name, *args))
        return self

    @property
    def name(self):
        return self._name

    def __reduce__(self):
        return (type(self).open, (self._name,))


class Semaphore(_Named):
    """A counting semaphore, as ``multiprocessing.Semaphore``."""
    _bounded = False
    _native = _n.NSemaphore

    def __init__(self, value=1, name=None):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._attach(_n.NSemaphore.create(name or _auto_name("sem"), value, self._bounded))

    @classmethod
    def _open_native(cls, name):
        return _n.NSemaphore.open(name, cls._bounded)

    def acquire(self, block=True, timeout=None):
        return self._h.acquire(block, _timeout_arg(block, timeout))

    def release(self):
        self._h.release()

    def get_value(self):
        return self._h.get_value()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return "<multiproc.%s %r value=%d>" % (type(self).__name__, self._name, self.get_value())


class BoundedSemaphore(Semaphore):
    """A semaphore whose ``release`` past its initial value raises ``ValueError``."""
    _bounded = True


class Event(_Named):
    """As ``multiprocessing.Event``."""
    _native = _n.NEvent

    def __init__(self, name=None):
        self._attach(_n.NEvent.create(name or _auto_name("event")))

    def is_set(self):
        return self._h.is_set()

    def set(self):
        self._h.set()

    def clear(self):
        self._h.clear()

    def wait(self, timeout=None):
        return self._h.wait(None if timeout is None else max(timeout, 0.0))

    def __repr__(self):
        return "<multiproc.Event %r set=%s>" % (self._name, self.is_set())


class Barrier(_Named):
    """As ``multiprocessing.Barrier(parties, action=None, timeout=None)``.

    ``action`` (a callable, or None) runs once per round, in the last party to
    arrive, before any party is released; every process's handle carries it (it is
    pickled with the barrier, so it must be picklable to reach a spawn child). An
    exception in it is raised in that party and breaks the barrier for the others.
    A party that dies, a timeout or ``abort()`` breaks it:
    ``threading.BrokenBarrierError``. ``wait`` releases the GIL and Ctrl-C interrupts
    it within a few milliseconds; the interrupted party gives up and, as a dead
    party would, breaks the barrier for the others (Python's own leaves the round
    instead)."""
    _native = _n.NBarrier

    def __init__(self, parties, action=None, timeout=None, name=None):
        if action is not None and not callable(action):
            raise TypeError("action must be callable or None")
        self._attach(_n.NBarrier.create(name or _auto_name("barrier"), parties, action))
        self._action, self._timeout = action, timeout

    @classmethod
    def open(cls, name, timeout=None, action=None):
        self = cls.__new__(cls)
        self._attach(_n.NBarrier.open(name, action))
        self._action, self._timeout = action, timeout
        return self

    def wait(self, timeout=None):
        return self._h.wait(self._timeout if timeout is None else timeout)

    def abort(self):
        self._h.abort()

    def reset(self):
        self._h.reset()

    @property
    def parties(self):
        return self._h.parties()

    @property
    def n_waiting(self):
        return self._h.n_waiting()

    @property
    def broken(self):
        return self._h.broken()

    @property
    def action(self):
        return self._action

    def __reduce__(self):
        return (_open_barrier, (self._name, self._timeout, self._action))


def _open_barrier(name, timeout, action):
    return Barrier.open(name, timeout, action)


# ---------------------------------------------------------------- values and arrays

# Python's typecodes -> the typecode of the stored Rust type ('l'/'L' are 64-bit on
# Linux; 'c' is one byte, read and written as a bytes object of length 1).
_CANONICAL = {"b": "b", "B": "B", "h": "h", "H": "H", "i": "i", "I": "I",
              "l": "q", "L": "Q", "q": "q", "Q": "Q", "f": "f", "d": "d", "c": "B"}
_CTYPES = None


def _typecode(tc):
    if not isinstance(tc, str):
        global _CTYPES
        if _CTYPES is None:
            import ctypes as c
            _CTYPES = {c.c_byte: "b", c.c_ubyte: "B", c.c_short: "h", c.c_ushort: "H",
                       c.c_int: "i", c.c_uint: "I", c.c_long: "l", c.c_ulong: "L",
                       c.c_longlong: "q", c.c_ulonglong: "Q", c.c_float: "f",
                       c.c_double: "d", c.c_char: "c"}
        if tc not in _CTYPES:
            raise TypeError("unsupported ctypes type %r" % (tc,))
        tc = _CTYPES[tc]
    if tc not in _CANONICAL:
        raise ValueError("unknown typecode %r: use one of %s" % (tc, "".join(_CANONICAL)))
    return tc


def _open_typed(cls, kind, name, typecode):
    k, ty, _size = _n.describe(name)
    if k != kind:
        raise TypeError("%r is a %s, not a%s %s: open it with mp.%s.open"
                        % (name, k, "n" if kind[0] in "AEIOU" else "", kind, k))
    stored = _n.typecode_of(ty)
    if typecode is None:
        if stored is None:
            raise TypeError("%s %r holds the Rust type %s, which has no Python typecode"
                            % (kind, name, ty))
        typecode = stored
    typecode = _typecode(typecode)
    want = _n.rust_type(_CANONICAL[typecode])
    if want != ty:
        raise TypeError(
            "%s %r holds %s (typecode %r) but was opened as typecode %r (%s): open it "
            "with the typecode it was created with"
            % (kind, name, ty, stored or "?", typecode, want))
    return typecode


class _Shared:
    """``get_lock()`` for Value and Array."""
    __slots__ = ()

    def get_lock(self):
        """The lock guarding this object for read-modify-write sequences: the native
        ``RLock`` named ``<name>.lock`` (made by whoever asks first if the creator
        made none)."""
        if self._lock is None:
            self._lock = RLock._open_or_create(self.name + ".lock")
        return self._lock


class Value(_Shared, _n.NValue):
    """A shared number, as ``multiprocessing.Value(typecode, value)``: ``.value``
    reads and writes it atomically (a native property); ``fetch_add`` increments
    without a lock; ``get_lock()`` guards longer read-modify-write sequences."""
    __slots__ = ("_lock",)

    def __new__(cls, typecode_or_type, *args, lock=True, name=None):
        tc = _typecode(typecode_or_type)
        init = args[0] if args else (b"\0" if tc == "c" else 0)
        name = name or _auto_name("value")
        self = super().__new__(cls, _CANONICAL[tc], name, init, tc, False)
        self._lock = RLock(name + ".lock") if lock else None
        return self

    @classmethod
    def open(cls, name, typecode=None):
        """Attaches to the Value ``name``; ``TypeError`` naming both types if it
        holds another type than ``typecode`` says."""
        tc = _open_typed(cls, "Value", name, typecode)
        self = _n.NValue.__new__(cls, _CANONICAL[tc], name, 0, tc, True)
        self._lock = None
        return self

    def __reduce__(self):
        return (Value.open, (self.name, self.typecode))

    def __repr__(self):
        return "<multiproc.Value %r %r value=%r>" % (self.name, self.typecode, self.value)


def _char_in(x):
    if isinstance(x, (bytes, bytearray)) and len(x) == 1:
        return x[0]
    if isinstance(x, int):
        return x
    raise TypeError("a 'c' value is one byte (bytes of length 1)")


class Array(_Shared):
    """A shared fixed-length array, as ``multiprocessing.Array(typecode,
    size_or_initializer)``: indexing, slicing, ``len``, iteration, ``get_lock()``."""

    def __init__(self, typecode_or_type, size_or_initializer, *, lock=True, name=None):
        tc = _typecode(typecode_or_type)
        init = size_or_initializer
        if not isinstance(init, int):
            init = [_char_in(x) for x in init] if tc == "c" else list(init)
        name = name or _auto_name("array")
        self._a = _n.NArray.create(_CANONICAL[tc], name, init)
        self._name, self._tc = name, tc
        self._lock = RLock(name + ".lock") if lock else None

    @classmethod
    def open(cls, name, typecode=None):
        tc = _open_typed(cls, "Array", name, typecode)
        self = cls.__new__(cls)
        self._a = _n.NArray.open(_CANONICAL[tc], name)
        self._name, self._tc, self._lock = name, tc, None
        return self

    def __len__(self):
        return len(self._a)

    def _out(self, v):
        return bytes((v,)) if self._tc == "c" else v

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._out(v) for v in self._a.to_list()[i]]
        n = len(self._a)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("array index out of range")
        return self._out(self._a.get(i))

    def __setitem__(self, i, x):
        if isinstance(i, slice):
            idx = range(*i.indices(len(self._a)))
            xs = list(x)
            if len(xs) != len(idx):
                raise ValueError("can only assign %d items to this slice" % len(idx))
            for j, v in zip(idx, xs):
                self._a.set(j, _char_in(v) if self._tc == "c" else v)
            return
        n = len(self._a)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("array assignment index out of range")
        self._a.set(i, _char_in(x) if self._tc == "c" else x)

    def __iter__(self):
        return iter(self[:])

    def tolist(self):
        return self[:]

    def __reduce__(self):
        return (Array.open, (self._name, self._tc))

    @property
    def name(self):
        return self._name

    @property
    def typecode(self):
        return self._tc

    def __repr__(self):
        return "<multiproc.Array %r %r %r>" % (self._name, self._tc, self[:])


# ---------------------------------------------------------------- pipes

class Connection:
    """One end of a ``Pipe``, as ``multiprocessing.connection.Connection``.
    ``recv`` raises ``EOFError`` once the other end is closed (or its process died)
    and everything sent was received."""

    def __init__(self, native, readable=True, writable=True):
        self._c = native
        self._name = native.name()
        self.readable, self.writable = readable, writable

    @property
    def name(self):
        return self._name

    @property
    def closed(self):
        return self._c.closed()

    def send_bytes(self, buf, offset=0, size=None):
        if not self.writable:
            raise OSError("connection is read-only")
        if offset == 0 and size is None and type(buf) is bytes:
            return self._c.send_bytes(buf)
        m = memoryview(buf).cast("B")
        end = len(m) if size is None else offset + size
        if offset < 0 or end > len(m) or end < offset:
            raise ValueError("buffer offset/size out of range")
        self._c.send_bytes(bytes(m[offset:end]))

    def recv_bytes(self, maxlength=None):
        if not self.readable:
            raise OSError("connection is write-only")
        data = self._c.recv_bytes(None)
        if maxlength is not None and len(data) > maxlength:
            raise OSError("bad message length")
        return data

    def send(self, obj):
        if not self.writable:
            raise OSError("connection is read-only")
        self._c.send_bytes(_pickle.dumps(obj, _PROTOCOL))

    def recv(self):
        if not self.readable:
            raise OSError("connection is write-only")
        return _pickle.loads(self._c.recv_bytes(None))

    def poll(self, timeout=0.0):
        return self._c.poll(timeout)

    def close(self):
        self._c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        if self._c.end() == "A":
            raise TypeError(
                "end A of pipe %r (the first of Pipe()'s pair, the sending end of a "
                "one-way pipe) stays in the process that made it (or its fork "
                "children): pass the other end to a spawn child" % self._name)
        return (_open_end_b, (self._name, self.readable, self.writable))

    def __repr__(self):
        return "<multiproc.Connection %r end %s>" % (self._name, self._c.end())


def _open_end_b(name, readable, writable):
    return Connection(_n.NConn.end_b(name), readable, writable)


def Pipe(duplex=True, name=None, capacity=DEFAULT_PIPE_CAPACITY):
    """Returns ``(conn1, conn2)``, as ``multiprocessing.Pipe``: duplex, or with
    ``duplex=False`` ``conn1`` only receives and ``conn2`` only sends. The second
    end of a duplex pair (the first of a one-way pair) is claimed by the first
    process that uses it: pass that one to a spawn child."""
    name = name or _auto_name("pipe")
    a = _n.NConn.create(name, capacity, duplex)
    b = _n.NConn.end_b(name)
    if duplex:
        return Connection(a), Connection(b)
    return Connection(b, True, False), Connection(a, False, True)


# ---------------------------------------------------------------- containers

#: Keys are pickled with this fixed protocol, so two Python versions agree on them.
_KEY_PROTOCOL = 4
_MISSING = object()


def _key(k):
    """The stored bytes of key ``k``: a pickle without memo references, so equal
    keys built differently (``("a", "a")`` from one string object or from two)
    pickle alike."""
    buf = _io.BytesIO()
    p = _pickle.Pickler(buf, protocol=_KEY_PROTOCOL)
    p.fast = True
    p.dump(k)
    return buf.getvalue()


def _dumps(x):
    return _pickle.dumps(x, _PROTOCOL)


_loads = _pickle.loads


class Dict(_Named):
    """A shared dict, as ``Manager().dict()`` without a server process: keys and
    values are pickled into the crate's ``Dict`` in shared memory, and every call is
    all-or-nothing even if the process is killed in the middle of it.

    Keys are compared by their pickled bytes, not by ``==``: equal keys must pickle
    alike. ``int``, ``str``, ``bytes``, ``None``, ``bool`` and tuples of them do;
    but ``1``, ``1.0`` and ``True`` are three different keys here, and objects whose
    pickle depends on history (sets, dicts with another insertion order) make poor
    keys. Views (``keys()``, ``values()``, ``items()``) are snapshots (lists)."""

    def __init__(self, *args, name=None, **kwargs):
        self._attach(_n.NDict.create(name or _auto_name("dict")))
        if args or kwargs:
            self.update(*args, **kwargs)

    _native = _n.NDict

    def __getitem__(self, k):
        v = self._h.get(_key(k))
        if v is None:
            raise KeyError(k)
        return _loads(v)

    def get(self, k, default=None):
        v = self._h.get(_key(k))
        return default if v is None else _loads(v)

    def __setitem__(self, k, v):
        self._h.insert(_key(k), _dumps(v))

    def __delitem__(self, k):
        if self._h.remove(_key(k)) is None:
            raise KeyError(k)

    def __contains__(self, k):
        return self._h.contains(_key(k))

    def __len__(self):
        return len(self._h)

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        return [_loads(k) for k in self._h.keys()]

    def values(self):
        return [_loads(v) for v in self._h.values()]

    def items(self):
        return [(_loads(k), _loads(v)) for k, v in self._h.items()]

    def pop(self, k, default=_MISSING):
        v = self._h.remove(_key(k))
        if v is None:
            if default is _MISSING:
                raise KeyError(k)
            return default
        return _loads(v)

    def setdefault(self, k, default=None):
        """Atomically: ``self[k]``, storing ``default`` first if ``k`` is absent."""
        return _loads(self._h.setdefault(_key(k), _dumps(default)))

    def update(self, *args, **kwargs):
        if len(args) > 1:
            raise TypeError("update expected at most 1 argument, got %d" % len(args))
        if args:
            other = args[0]
            pairs = other.items() if hasattr(other, "keys") else other
            for k, v in pairs:
                self[k] = v
        for k, v in kwargs.items():
            self[k] = v

    def clear(self):
        self._h.clear()

    def copy(self):
        """A plain ``dict`` snapshot."""
        return dict(self.items())

    def __eq__(self, other):
        if isinstance(other, (Dict, dict)):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return "<multiproc.Dict %r %r>" % (self._name, dict(self.items()))


class List(_Named):
    """A shared list, as ``Manager().list()`` without a server process: items are
    pickled into the crate's ``List`` in shared memory; every call is all-or-nothing
    even if the process is killed in the middle of it. Iteration and ``list(l)`` take
    a snapshot. Slices are not supported (index one item at a time)."""

    def __init__(self, iterable=(), name=None):
        self._attach(_n.NList.create(name or _auto_name("list")))
        if iterable:
            self.extend(iterable)

    _native = _n.NList

    def _index(self, i):
        i = _operator.index(i)
        if i < 0:
            i += len(self._h)
            if i < 0:
                raise IndexError("list %r index out of range" % self._name)
        return i

    def __getitem__(self, i):
        return _loads(self._h.get(self._index(i)))

    def __setitem__(self, i, x):
        self._h.set(self._index(i), _dumps(x))

    def __delitem__(self, i):
        self._h.pop(self._index(i))

    def __len__(self):
        return len(self._h)

    def __iter__(self):
        return iter(self._snapshot())

    def __contains__(self, x):
        return x in self._snapshot()

    def _snapshot(self):
        return [_loads(b) for b in self._h.to_list()]

    def append(self, x):
        self._h.append(_dumps(x))

    def extend(self, iterable):
        """Appends every item in one all-or-nothing call."""
        self._h.extend([_dumps(x) for x in iterable])

    def insert(self, i, x):
        """Inserts ``x`` before item ``i``, clamped to the list as Python does."""
        i = _operator.index(i)
        n = len(self._h)
        if i < 0:
            i = max(i + n, 0)
        self._h.insert(min(i, n), _dumps(x))

    def pop(self, i=None):
        """Removes and returns item ``i`` (the last by default); IndexError if none."""
        return _loads(self._h.pop(None if i is None else self._index(i)))

    def clear(self):
        self._h.clear()

    def __eq__(self, other):
        if isinstance(other, (List, list)):
            return self._snapshot() == list(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return "<multiproc.List %r %r>" % (self._name, self._snapshot())
