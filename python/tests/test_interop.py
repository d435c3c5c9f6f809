"""Python and Rust processes sharing objects by name, both directions, and dead
holders surfacing in Python."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import helpers
import multiproc as mp
from conftest import join_all


def test_rust_queue_u64_is_a_python_queue_of_ints(uname, interop):
    n = uname("q")
    interop("create-queue", n, 20000)
    try:
        q = mp.Queue.open(n)
        assert q.kind == "int"
        assert [q.get(timeout=5) for _ in range(20000)] == list(range(20000))
    finally:
        mp.unlink(n)


def test_python_int_queue_is_read_by_a_rust_process(uname, interop):
    q = mp.Queue.ints(maxsize=50000, name=uname("q"))
    q.put_many(range(20000))
    assert interop("queue-get", q.name, 20000).strip() == str(sum(range(20000)))
    assert q.empty()


def test_rust_process_puts_into_a_python_queue_while_python_gets(uname, interop):
    q = mp.Queue.ints(maxsize=64, name=uname("q"))  # smaller than the traffic: both wait
    rust = subprocess.Popen([interop.exe, "queue-put", q.name, "100000"])
    try:
        got = [q.get(timeout=20) for _ in range(100000)]
    finally:
        rust.wait(60)
    assert rust.returncode == 0
    assert got == list(range(100000))


def test_rust_byte_queue_carries_bytes(uname, interop):
    n = uname("b")
    interop("create-bytes", n, 5)
    try:
        q = mp.Queue.open(n, raw=True)
        assert [q.get(timeout=5) for _ in range(5)] == [b"msg-%d" % i for i in range(5)]
    finally:
        mp.unlink(n)


def test_python_raw_queue_is_a_rust_byte_queue(uname, interop):
    q = mp.Queue(name=uname("b"), raw=True, max_message_len=64)
    for s in [b"alpha", b"beta", b""]:
        q.put(s)
    assert interop("bytes-get", q.name, 3).split("\n")[:3] == ["alpha", "beta", ""]


def test_rust_value_i64_is_value_q(uname, interop):
    n = uname("v")
    interop("create-value", n, -77)
    try:
        v = mp.Value.open(n)
        assert v.typecode == "q" and v.value == -77
        assert mp.Value.open(n, "l").value == -77
        with pytest.raises(TypeError) as e:
            mp.Value.open(n, "I")
        assert "i64" in str(e.value) and "u32" in str(e.value)
    finally:
        mp.unlink(n)


def test_python_value_q_is_incremented_by_a_rust_process(uname, interop):
    v = mp.Value("q", 5, name=uname("v"))
    assert interop("value-add", v.name, 1000).strip() == "1005"
    assert v.value == 1005


def test_python_lock_is_taken_and_released_by_a_rust_process(uname, interop):
    lock = mp.Lock(uname("l"))
    assert interop("lock-check", lock.name).strip() == "ok"
    assert not lock.locked()
    lock.acquire()
    rust = subprocess.Popen([interop.exe, "lock-check", lock.name], stdout=subprocess.PIPE)
    time.sleep(0.1)
    assert rust.poll() is None  # waiting for us
    lock.release()
    assert rust.communicate(timeout=20)[0].strip() == b"ok"


def test_describe_tells_what_a_name_holds(uname, interop):
    q = mp.Queue.ints(name=uname("q"))
    assert mp.describe(q.name) == ("Queue", "u64", 8)
    assert interop("describe", q.name).strip() == "Queue u64"
    lock = mp.Lock(uname("l"))
    assert mp.describe(lock.name) == ("Lock", "-", 0)


def test_sigkilled_rust_lock_holder_is_recovered_and_reported(uname, interop):
    lock = mp.Lock(uname("l"))
    rust = subprocess.Popen([interop.exe, "lock-hold", lock.name], stdout=subprocess.PIPE)
    try:
        assert rust.stdout.readline().strip() == b"held"
        assert not lock.acquire(timeout=0.05)
    finally:
        rust.kill()
        rust.wait(20)
    with pytest.warns(RuntimeWarning, match="died holding it"):
        assert lock.acquire(timeout=10)
    assert lock.recovered
    lock.release()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lock.acquire(timeout=1)
    assert not lock.recovered
    lock.release()


def test_sigkilled_python_lock_holder_is_recovered_and_reported(ctx):
    lock, ready = mp.Lock(), mp.Event()
    p = ctx.Process(target=helpers.hold_lock_forever, args=(lock, ready))
    p.start()
    try:
        assert ready.wait(30)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(20)
    assert p.exitcode == -signal.SIGKILL
    with pytest.warns(RuntimeWarning):
        assert lock.acquire(timeout=10)
    assert lock.recovered
    lock.release()


_BLOCKED_GET = textwrap.dedent("""
    import sys, time
    import multiproc as mp
    q = mp.Queue.open(sys.argv[1])
    try:
        print("ready", flush=True)  # inside the try: a signal after it still counts
        q.get()
    except KeyboardInterrupt:
        print("interrupted %.6f" % time.monotonic(), flush=True)
        sys.exit(0)
    print("got an item?", flush=True)
    sys.exit(1)
""")


def test_keyboard_interrupt_ends_a_blocked_get_promptly(uname):
    q = mp.Queue(name=uname("q"))
    child = subprocess.Popen([sys.executable, "-c", _BLOCKED_GET, q.name],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # well inside the blocking get
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out = child.communicate(timeout=20)[0].split()
    finally:
        child.kill()
    assert child.returncode == 0 and out[0] == "interrupted"
    latency = float(out[1]) - sent
    print("KeyboardInterrupt after %.1f ms" % (latency * 1e3))
    # The wait is sliced at 5 ms; a generous bound that still rules out waiting for
    # an item (there is none) or for a long timeout.
    assert latency < 1.0
