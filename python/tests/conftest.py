"""Fixtures for the multiproc Python tests: unique names, /dev/shm cleanup, the
Rust interop binary, and process contexts (fork and spawn)."""

import gc
import glob
import itertools
import multiprocessing
import os
import re
import subprocess

import pytest

import multiproc as mp

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_n = itertools.count()


@pytest.fixture
def uname(request):
    """A function returning fresh object names unique to this process and test."""
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60]
    prefix = "pt%d-%s" % (os.getpid(), test)

    def make(tag="o"):
        return "%s-%d.%s" % (prefix, next(_n), tag)

    yield make
    gc.collect()
    for path in glob.glob("/dev/shm/mp.%s-*" % prefix):
        try:
            mp.unlink(os.path.basename(path)[3:])
        except FileNotFoundError:
            pass


@pytest.fixture(autouse=True)
def no_anonymous_leftovers():
    """Objects made without a name are unlinked when their creating handle goes."""
    yield
    gc.collect()
    for path in glob.glob("/dev/shm/mp.py-%d-*" % os.getpid()):
        try:
            mp.unlink(os.path.basename(path)[3:])
        except FileNotFoundError:
            pass


@pytest.fixture(params=["fork", "spawn", "forkserver"])
def ctx(request):
    return multiprocessing.get_context(request.param)


@pytest.fixture(scope="session")
def interop():
    """Runs examples/py_interop (built once, release) and returns its stdout."""
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--example", "py_interop"],
        cwd=REPO, check=True, timeout=900,
    )
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    exe = os.path.join(target, "release", "examples", "py_interop")
    assert os.path.exists(exe), exe

    def run(*args, **kw):
        r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                           timeout=kw.pop("timeout", 60), **kw)
        assert r.returncode == 0, "py_interop %s failed: %s" % (args, r.stderr)
        return r.stdout

    run.exe = exe
    return run


def join_all(procs, timeout=30):
    """Watchdog join: every process must exit 0 within `timeout` seconds."""
    for p in procs:
        p.join(timeout)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join(5)
    assert not alive, "watchdog: %d child(ren) still running after %ss" % (len(alive), timeout)
    assert [p.exitcode for p in procs] == [0] * len(procs)
