"""Child-process bodies (module level, so spawn children can import them)."""

import os
import time

import multiproc as mp


def produce(q, n):
    for i in range(n):
        q.put({"i": i, "s": "x" * (i % 7)})


def consume_sum(q, n, out):
    out.put(sum(q.get(timeout=20)["i"] for _ in range(n)))


def worker_joinable(q):
    while True:
        item = q.get(timeout=20)
        if item is None:
            q.task_done()
            return
        time.sleep(0.001)
        q.task_done()


def echo_until_close(conn):
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        conn.send(("echo", msg))
        if msg == "bye":
            conn.close()
            return


def add_under_lock(lock, v, n):
    for _ in range(n):
        with lock:
            x = v.value
            v.value = x + 1


def rlock_nested(rlock, out):
    with rlock:
        with rlock:
            out.put(rlock._is_owned())


def release_sem(sem, n):
    for _ in range(n):
        sem.release()


def wait_event(ev, out):
    out.put(ev.wait(20))


def wait_condition(cond, v, out):
    with cond:
        out.put(cond.wait_for(lambda: v.value == 1, timeout=20))


def barrier_party(b, out):
    out.put(b.wait(20))


def fill_squares(a):
    for i in range(len(a)):
        a[i] = i * i


def fetch_add_many(v, n):
    for _ in range(n):
        v.fetch_add(1)


def hold_lock_forever(lock, ready):
    lock.acquire()
    ready.set()
    time.sleep(60)


def use_every_handle(lock, v, q, ev, a, sem):
    with lock:
        v.value += 41
    a[0] = 7.5
    sem.release()
    q.put(("from", os.getpid()))
    ev.set()


def square_into_dict(lock, d, i):
    with lock:
        d[i] = i * i


def append_results(l, start, n):
    for i in range(start, start + n):
        l.append((os.getpid(), i))


def count_in_dict(d, key, n):
    for _ in range(n):
        d.setdefault(key, 0)
        d[("seen", os.getpid())] = True


def bump(counter):
    """A barrier action: counts the rounds it ran in."""
    counter.fetch_add(1)


def barrier_rounds(b, counter, rounds, out):
    """Waits `rounds` times; after each, the action has run for that round."""
    seen = []
    for r in range(1, rounds + 1):
        b.wait(30)
        seen.append(counter.value >= r)
    out.put(all(seen))


def take_and_hold(q, n, holding):
    """Gets `n` items, never marks them done, and waits to be killed."""
    for _ in range(n):
        q.get(timeout=20)
    holding.set()
    time.sleep(60)


def get_then_done(q, n):
    for _ in range(n):
        q.get(timeout=20)
        q.task_done()
