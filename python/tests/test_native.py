"""The native fast paths and what came with them: Lock/RLock/Condition context
managers and acquire/release in Rust, Value's native ``.value``, the Barrier's
``action`` and interruptible ``wait``, the JoinableQueue built on the crate's
JoinableByteQueue, and stable element-type identity."""

import functools
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import helpers
import multiproc as mp
from multiproc import _native
from conftest import join_all


# ---------------------------------------------------------------- locks

@pytest.mark.parametrize("cls", [mp.Lock, mp.RLock, mp.Condition])
def test_acquire_release_and_with_are_native_methods(cls):
    for m in ("acquire", "release", "__enter__", "__exit__"):
        assert inspect.ismethoddescriptor(getattr(cls, m)), m
        assert not inspect.isfunction(getattr(cls, m)), m
    assert isinstance(cls(), cls.__mro__[-2])


@pytest.mark.parametrize("cls", [mp.Lock, mp.RLock, mp.Condition])
def test_with_releases_on_an_exception_and_lets_it_propagate(cls):
    lock = cls()
    with pytest.raises(KeyError):
        with lock as entered:
            assert entered is lock
            raise KeyError("inside")
    box = []
    other = threading.Thread(target=lambda: box.append(lock.acquire(timeout=5)))
    other.start()
    other.join(10)
    assert box == [True], "the with-block released the lock"


def test_releasing_an_unlocked_lock_raises_what_multiprocessing_and_threading_raise():
    lock = mp.Lock()
    with pytest.raises(ValueError):
        lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    # What a with-block does after its body released the lock.
    with pytest.raises(ValueError):
        with lock:
            lock.release()


def test_releasing_an_rlock_one_does_not_hold_raises_assertion_and_runtime_error():
    r = mp.RLock()
    with pytest.raises(AssertionError):
        r.release()
    with pytest.raises(RuntimeError):
        r.release()
    assert r.acquire()
    box = []
    t = threading.Thread(target=lambda: box.append(_outcome(r.release)))
    t.start()
    t.join(10)
    assert len(box) == 1 and issubclass(box[0], AssertionError), box
    r.release()


def test_rlock_reentry_counts_and_releases_in_order():
    r = mp.RLock()
    assert r.acquire() and r.acquire(False) and r.acquire(timeout=0.01)
    for left in (2, 1):
        r.release()
        assert r.is_owned(), "still held %d more time(s)" % left
    r.release()
    assert not r.is_owned() and not r.locked()


def test_lock_acquire_arguments_as_python():
    lock = mp.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.acquire(True, 0.01) is False
    assert lock.acquire(block=True, timeout=0) is False
    with pytest.raises(ValueError):
        lock.acquire(False, -5)
    lock.release()
    assert lock.acquire(True, -1) is True  # Python's -1: wait forever (free here)
    lock.release()


def test_lock_subclasses_pickle_as_their_name_and_keep_their_class(uname):
    import pickle
    for cls in (mp.Lock, mp.RLock, mp.Condition):
        obj = cls(name=uname(cls.__name__.lower()))
        back = pickle.loads(pickle.dumps(obj))
        assert type(back) is cls and back.name == obj.name


# ---------------------------------------------------------------- Value

def test_value_property_is_native_and_get_lock_is_the_native_rlock():
    v = mp.Value("q", 5)
    assert type(mp.Value.value).__name__ == "getset_descriptor"  # native, not a property
    lock = v.get_lock()
    assert isinstance(lock, mp.RLock) and lock is v.get_lock()
    with lock:
        v.value += 1
    assert v.value == 6 and not lock.locked()


def test_value_under_get_lock_loses_no_increment_across_processes(ctx):
    v = mp.Value("i", 0)
    procs = [ctx.Process(target=helpers.add_under_lock, args=(v.get_lock(), v, 1000))
             for _ in range(3)]
    for p in procs:
        p.start()
    join_all(procs, timeout=60)
    assert v.value == 3000


# ---------------------------------------------------------------- Barrier

def test_barrier_action_runs_exactly_once_per_round_before_anyone_is_released(ctx):
    counter = mp.Value("q", 0)
    b = mp.Barrier(3, action=functools.partial(helpers.bump, counter))
    out = mp.Queue()
    procs = [ctx.Process(target=helpers.barrier_rounds, args=(b, counter, 5, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    helpers.barrier_rounds(b, counter, 5, out)
    assert [out.get(timeout=30) for _ in range(3)] == [True] * 3
    join_all(procs)
    assert counter.value == 5


def test_an_exception_in_the_action_is_raised_in_its_party_and_breaks_the_barrier():
    def fail():
        raise ZeroDivisionError("action failed")
    b = mp.Barrier(2, action=fail)
    got = []
    t = threading.Thread(target=lambda: got.append(_outcome(b.wait, 30)))
    t.start()
    got.append(_outcome(b.wait, 30))
    t.join(30)
    assert sorted(got, key=str) == sorted([ZeroDivisionError, threading.BrokenBarrierError],
                                          key=str)
    assert b.broken


def _outcome(f, *a):
    try:
        f(*a)
    except Exception as e:  # noqa: BLE001 - the test inspects the type
        return type(e)
    return None


def test_barrier_action_must_be_callable():
    with pytest.raises(TypeError):
        mp.Barrier(2, action=3)


def _blocked(open_it, wait):
    """A script that opens an object by the name in argv[1] (`open_it`), prints
    "ready", blocks in `wait`, and prints "interrupted <monotonic time>" on
    KeyboardInterrupt."""
    return textwrap.dedent("""
        import sys, time
        import multiproc as mp
        x = %s(sys.argv[1])
        print("ready", flush=True)
        try:
            x.%s
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
            sys.exit(0)
        print("it returned?", flush=True)
        sys.exit(1)
    """) % (open_it, wait)


_BLOCKED_BARRIER = _blocked("mp.Barrier.open", "wait()")



def _interrupt_latency(script, name, ready=lambda: True):
    """Runs `script` (which prints "ready", blocks, and prints "interrupted <time>"
    on KeyboardInterrupt) on the object `name`, sends it SIGINT once `ready()` and
    a little more have passed, and returns how long the interrupt took (s)."""
    child = subprocess.Popen([sys.executable, "-c", script, name],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ready()
        time.sleep(0.1)  # well inside the wait
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out = child.communicate(timeout=20)[0].split()
    finally:
        child.kill()
    assert child.returncode == 0 and out[0] == "interrupted", out
    return float(out[1]) - sent


def test_keyboard_interrupt_ends_a_barrier_wait_promptly_and_breaks_it(uname):
    b = mp.Barrier(2, name=uname("barrier"))
    latency = _interrupt_latency(_BLOCKED_BARRIER, b.name, lambda: b.n_waiting == 1)
    print("KeyboardInterrupt in Barrier.wait after %.1f ms" % (latency * 1e3))
    assert latency < 1.0
    assert b.broken, "the interrupted party breaks the round for the others"
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(5)


def test_a_barrier_wait_releases_the_gil():
    b = mp.Barrier(2)
    ticks = []
    t = threading.Thread(target=lambda: [ticks.append(time.sleep(0.001)) for _ in range(50)])
    start = time.monotonic()
    t.start()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.3)
    t.join(10)
    assert len(ticks) == 50 and time.monotonic() - start < 10


# ---------------------------------------------------------------- JoinableQueue

def test_joinable_queue_is_the_crates_joinable_byte_queue(uname):
    q = mp.JoinableQueue(name=uname("jq"))
    assert mp.describe(q.name)[0] == "JoinableByteQueue"
    q.put({"job": 1})
    other = mp.JoinableQueue.open(q.name)
    assert other.get(timeout=5) == {"job": 1}
    assert q.unfinished_tasks() == 1
    other.task_done()
    assert q.join(timeout=5)
    with pytest.raises(TypeError):
        mp.Queue.open(q.name)
    plain = mp.Queue(name=uname("q"))
    with pytest.raises(TypeError):
        mp.JoinableQueue.open(plain.name)


def test_task_done_too_often_is_a_value_error():
    q = mp.JoinableQueue()
    q.put(1)
    q.get()
    q.task_done()
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()


def test_join_waits_for_task_done_in_other_processes(ctx):
    q = mp.JoinableQueue(raw=True)
    for i in range(40):
        q.put(b"%d" % i)
    procs = [ctx.Process(target=helpers.get_then_done, args=(q, 20)) for _ in range(2)]
    for p in procs:
        p.start()
    assert q.join(timeout=30)
    assert q.unfinished_tasks() == 0 and q.abandoned_tasks() == 0
    join_all(procs)


def test_join_returns_when_a_consumer_dies_holding_tasks(ctx):
    q, holding = mp.JoinableQueue(), mp.Event()
    for i in range(3):
        q.put(i)
    p = ctx.Process(target=helpers.take_and_hold, args=(q, 3, holding))
    p.start()
    try:
        assert holding.wait(30)
        assert not q.join(timeout=0.1), "the child holds 3 tasks"
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        start = time.monotonic()
        assert q.join(timeout=20), "join does not wait for a dead consumer's tasks"
        print("join returned %.0f ms after the consumer died"
              % ((time.monotonic() - start) * 1e3))
    finally:
        if p.is_alive():
            p.kill()
            p.join(5)
    assert q.abandoned_tasks() == 3
    q.put("more")
    assert q.get(timeout=5) == "more"
    q.task_done()
    assert q.join(timeout=5)


_BLOCKED_JOIN = _blocked("mp.JoinableQueue.open", "join()")


def test_keyboard_interrupt_ends_an_untimed_join(uname):
    q = mp.JoinableQueue(name=uname("jq"))
    q.put("unfinished")
    latency = _interrupt_latency(_BLOCKED_JOIN, q.name)
    print("KeyboardInterrupt in JoinableQueue.join after %.1f ms" % (latency * 1e3))
    assert latency < 1.0


# ---------------------------------------------------------------- type identity

def _fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


@pytest.mark.parametrize("code,rust", [("b", "i8"), ("B", "u8"), ("h", "i16"), ("H", "u16"),
                                       ("i", "i32"), ("I", "u32"), ("q", "i64"),
                                       ("Q", "u64"), ("f", "f32"), ("d", "f64")])
def test_a_typecode_described_at_run_time_is_the_rust_types_fingerprint(code, rust, interop):
    name, size, align, h = _native.type_info(code)
    assert (name, h) == (rust, _fnv1a(rust.encode()))
    assert interop("type-of", rust).split() == [name, str(size), str(align), str(h)]


def test_a_rust_value_made_under_the_stable_name_of_i64_is_value_q(uname, interop):
    n = uname("v")
    interop("create-stable-value", n, 41)
    v = mp.Value.open(n)
    assert v.typecode == "q" and v.value == 41


def test_an_application_type_name_is_refused_by_name(uname, interop):
    n = uname("q")
    interop("create-app-queue", n)
    with pytest.raises(TypeError, match="app.Job.v1"):
        mp.Queue.open(n)
