"""Python bindings vs Python's multiprocessing (and faster-fifo for queues).

Run after building the extension (`maturin develop --release` in a venv):

    python python/bench.py            # prints a markdown table
    N_SCALE=0.2 python python/bench.py   # shorter runs

Every figure is operations per second between two processes (a fork child) unless
the row says "1 process"; ratios are multiproc / peer. One run, no statistics: a
comparison, not a measurement of record.
"""

import multiprocessing as std
import os
import sys
import time

import multiproc as mp

try:
    import faster_fifo
except ImportError:  # optional peer
    faster_fifo = None

SCALE = float(os.environ.get("N_SCALE", "1"))
CTX = std.get_context("fork")
MSG100 = b"m" * 100


def n_of(x):
    return max(1000, int(x * SCALE))


def two_process(n, producer, consumer):
    """Items/s of `producer(n)` in this process feeding `consumer(n)` in a child:
    from the first put until the child has taken the last item."""
    ready, end = CTX.Event(), CTX.Value("d", 0.0, lock=False)

    def child():
        ready.set()
        consumer(n)
        end.value = time.monotonic()

    p = CTX.Process(target=child)
    p.start()
    ready.wait(30)
    t0 = time.monotonic()
    producer(n)
    p.join(300)
    assert p.exitcode == 0, "bench child failed"
    return n / (end.value - t0)


def queue_single(q, item, get=None):
    get = get or q.get

    def prod(n):
        put = q.put
        for _ in range(n):
            put(item)

    def cons(n):
        for _ in range(n):
            get()
    return prod, cons


def ff_get(q):
    g = q.get

    def get():
        return g(timeout=30)
    return get


def batched(put_many, get_many, batch=256):
    def prod(n):
        chunk = list(range(batch))
        for _ in range(n // batch):
            put_many(chunk)

    def cons(n):
        left = (n // batch) * batch
        while left:
            left -= len(get_many(batch))
    return prod, cons


def one_process(n, body):
    t0 = time.perf_counter()
    body(n)
    return n / (time.perf_counter() - t0)


def value_incr_ours(v):
    def body(n):
        add = v.fetch_add
        for _ in range(n):
            add(1)
    return body


def value_incr_locked(v):
    def body(n):
        lock = v.get_lock()
        for _ in range(n):
            with lock:
                v.value += 1
    return body


def lock_body(lock):
    def body(n):
        acq, rel = lock.acquire, lock.release
        for _ in range(n):
            acq()
            rel()
    return body


def contended(n, body):
    """Total ops/s of `body(n)` run at once in this process and a fork child."""
    ready, go = CTX.Event(), CTX.Event()

    def child():
        ready.set()
        go.wait(30)
        body(n)

    p = CTX.Process(target=child)
    p.start()
    ready.wait(30)
    t0 = time.monotonic()
    go.set()
    body(n)
    p.join(300)
    assert p.exitcode == 0, "bench child failed"
    return 2 * n / (time.monotonic() - t0)


def pipe_roundtrip(make_pipe, n):
    """Round trips/s: this process sends a 100-byte message, the child receives it
    and sends it back, this process receives the echo -- one round trip, counted
    once (two messages). Every echo is checked, and the child must have echoed
    exactly `n` messages (its exit code says so), so a broken echo cannot pass for
    speed."""
    a, b = make_pipe()
    ready = CTX.Event()

    def child():
        ready.set()
        echoed = 0
        for _ in range(n):
            b.send_bytes(b.recv_bytes())
            echoed += 1
        os._exit(0 if echoed == n else 3)

    p = CTX.Process(target=child)
    p.start()
    ready.wait(30)
    t0 = time.monotonic()
    for _ in range(n):
        a.send_bytes(MSG100)
        if a.recv_bytes() != MSG100:
            raise AssertionError("the echo differs from the message sent")
    dt = time.monotonic() - t0
    p.join(60)
    assert p.exitcode == 0, "pipe bench child failed (exit code %r)" % p.exitcode
    return n / dt


def main():
    rows = []

    def row(name, ours, std_rate, ff_rate=None):
        rows.append((name, ours, std_rate, ff_rate))
        print("  %-44s %12.0f %12.0f %12s" % (name, ours, std_rate,
              "-" if ff_rate is None else "%.0f" % ff_rate), file=sys.stderr)

    def ff_queue():
        return faster_fifo.Queue(max_size_bytes=16 * 1024 * 1024)

    # Queue put/get, one item per call (ints).
    n = n_of(300_000)
    ours = two_process(n, *queue_single(mp.Queue.ints(), 7))
    ours_p = two_process(n, *queue_single(mp.Queue(), 7))
    nn = n_of(60_000)
    theirs = two_process(nn, *queue_single(std.Queue(), 7))
    ff = None
    if faster_fifo:
        q = ff_queue()
        ff = two_process(nn, *queue_single(q, 7, ff_get(q)))
    row("Queue put/get, int (Queue.ints)", ours, theirs, ff)
    row("Queue put/get, int pickled (Queue())", ours_p, theirs, ff)

    # Batched: put_many/get_many of 256 ints (multiprocessing has no batch call).
    n = n_of(3_000_000)
    q = mp.Queue.ints(maxsize=4096)
    ours = two_process(n, *batched(q.put_many, lambda k: q.get_many(k, timeout=30)))
    ff = None
    if faster_fifo:
        q2 = ff_queue()
        ff = two_process(nn * 4, *batched(q2.put_many,
                                          lambda k: q2.get_many(max_messages_to_get=k, timeout=30)))
    row("Queue batched x256, int", ours, theirs, ff)

    # 100-byte bytes messages.
    n = n_of(300_000)
    ours = two_process(n, *queue_single(mp.Queue(raw=True, max_message_len=128), MSG100))
    theirs = two_process(nn, *queue_single(std.Queue(), MSG100))
    ff = None
    if faster_fifo:
        q = ff_queue()
        ff = two_process(nn, *queue_single(q, MSG100, ff_get(q)))
    row("Queue put/get, 100-byte bytes (raw=True)", ours, theirs, ff)

    # Value increments, 1 process: fetch_add vs `with v.get_lock(): v.value += 1`.
    n = n_of(2_000_000)
    ours = one_process(n, value_incr_ours(mp.Value("q", 0)))
    ours_l = one_process(n_of(300_000), value_incr_locked(mp.Value("q", 0)))
    theirs = one_process(n_of(300_000), value_incr_locked(std.Value("q", 0)))
    row("Value += 1, 1 process (fetch_add)", ours, theirs)
    row("Value += 1, 1 process (under get_lock)", ours_l, theirs)
    n = n_of(300_000)
    theirs = contended(n_of(100_000), value_incr_locked(std.Value("q", 0)))
    row("Value += 1, 2 processes (fetch_add)", contended(n, value_incr_ours(mp.Value("q", 0))), theirs)
    row("Value += 1, 2 processes (under get_lock)",
        contended(n_of(100_000), value_incr_locked(mp.Value("q", 0))), theirs)

    # Lock acquire/release, uncontended, 1 process.
    n = n_of(2_000_000)
    row("Lock acquire+release, 1 process", one_process(n, lock_body(mp.Lock())),
        one_process(n, lock_body(std.Lock())))
    n = n_of(200_000)
    row("Lock acquire+release, 2 processes", contended(n, lock_body(mp.Lock())),
        contended(n, lock_body(std.Lock())))

    # Pipe round trip of 100 bytes (send, echo, receive: one round trip).
    n = n_of(50_000)
    row("Pipe round trip, 100 bytes",
        pipe_roundtrip(mp.Pipe, n), pipe_roundtrip(std.Pipe, n_of(20_000)))

    print("| benchmark (ops/s) | multiproc | multiprocessing | ratio | faster-fifo | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ours, theirs, ff in rows:
        print("| %s | %s | %s | %.1f× | %s | %s |" % (
            name, fmt(ours), fmt(theirs), ours / theirs,
            "-" if ff is None else fmt(ff), "-" if ff is None else "%.1f×" % (ours / ff)))


def fmt(x):
    return "%.2f M" % (x / 1e6) if x >= 1e6 else "%.0f k" % (x / 1e3)


if __name__ == "__main__":
    main()
