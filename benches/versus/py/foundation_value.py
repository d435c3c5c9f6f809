"""Python's side of the fetch_add row: two processes increment one mp.Value under
its lock (`with v.get_lock(): v.value += 1`), the documented way to count safely.

Prints `rate <increments per second>` over both processes.
"""
import multiprocessing as mp
import sys
import time


def work(v, go, ends, k, n):
    while go.value == 0:
        pass
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    ends[k] = time.perf_counter()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    v = mp.Value("Q", 0)
    go = mp.Value("i", 0, lock=False)
    ends = mp.Array("d", 2, lock=False)
    ps = [mp.Process(target=work, args=(v, go, ends, k, n)) for k in range(2)]
    for p in ps:
        p.start()
    time.sleep(0.3)
    t = time.perf_counter()
    go.value = 1
    for p in ps:
        p.join()
    assert v.value == 2 * n, v.value
    print("rate", 2 * n / (max(ends) - t))
