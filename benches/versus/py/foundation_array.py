"""Python's side of the seqlock row: reads of an mp.Array('Q', 8) under its lock while
another process rewrites it (under the lock) as fast as it can.

Prints `rate <reads per second>`.
"""
import multiprocessing as mp
import sys
import time


def writer(a, stop):
    k = 1
    while not stop.value:
        with a.get_lock():
            a[:] = [k] * 8
        k += 1


if __name__ == "__main__":
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    a = mp.Array("Q", 8)
    stop = mp.Value("i", 0, lock=False)
    p = mp.Process(target=writer, args=(a, stop))
    p.start()
    while a[0] == 0:
        pass
    reads = 0
    t = time.perf_counter()
    while time.perf_counter() - t < budget:
        for _ in range(256):
            with a.get_lock():
                x = a[:]
            assert x.count(x[0]) == 8
        reads += 256
    dt = time.perf_counter() - t
    stop.value = 1
    p.join()
    print("rate", reads / dt)
