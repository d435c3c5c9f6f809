"""Python multiprocessing reference rows for the sync section.

Prints `key value` lines:
  lock_acquire_release_ns      mp.Lock acquire+release, uncontended
  contended_increments_per_s   2 processes incrementing a shared counter under mp.Lock
  event_rtt_us                 mp.Event ping-pong round trip between 2 processes
"""
import multiprocessing as mp
import time


def uncontended(n=200_000):
    lock = mp.Lock()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            lock.acquire()
            lock.release()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e9


def _incr(lock, counter, start, n):
    start.wait()
    for _ in range(n):
        with lock:
            counter.value += 1


def contended(n=50_000):
    lock = mp.Lock()
    counter = mp.RawValue("q", 0)
    start = mp.Event()
    peer = mp.Process(target=_incr, args=(lock, counter, start, n))
    peer.start()
    time.sleep(0.2)
    t = time.perf_counter()
    start.set()
    _incr(lock, counter, start, n)
    peer.join()
    d = time.perf_counter() - t
    assert counter.value == 2 * n, counter.value
    return 2 * n / d


def _pong(a, b, rounds):
    for _ in range(rounds):
        a.wait()
        a.clear()
        b.set()


def event_rtt(rounds=5_000):
    a, b = mp.Event(), mp.Event()
    peer = mp.Process(target=_pong, args=(a, b, rounds))
    peer.start()
    t = time.perf_counter()
    for _ in range(rounds):
        a.set()
        b.wait()
        b.clear()
    d = time.perf_counter() - t
    peer.join()
    return d / rounds * 1e6


if __name__ == "__main__":
    mp.set_start_method("fork")
    print("lock_acquire_release_ns", uncontended())
    print("contended_increments_per_s", contended())
    print("event_rtt_us", event_rtt())
