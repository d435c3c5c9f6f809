"""Python multiprocessing.Queue peer for the versus bench's queue section.

usage: queue_mp.py N ROUNDS
  rate    ints per second, one producer process -> this process (mp.Queue)
  rtt_ns  round trip of an int over two mp.Queues between two processes
"""
import multiprocessing as mp
import sys
import time


def produce(q, n):
    for i in range(n):
        q.put(i)


def echo(a, b, rounds):
    for _ in range(rounds):
        b.put(a.get())


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    q = mp.Queue(maxsize=4096)
    p = mp.Process(target=produce, args=(q, n))
    t = time.perf_counter()
    p.start()
    total = 0
    for _ in range(n):
        total += q.get()
    dt = time.perf_counter() - t
    p.join()
    assert total == n * (n - 1) // 2
    print("rate", n / dt)

    a, b = mp.Queue(), mp.Queue()
    p = mp.Process(target=echo, args=(a, b, rounds))
    p.start()
    warm = rounds // 10
    for i in range(warm):
        a.put(i)
        b.get()
    t = time.perf_counter()
    for i in range(rounds - warm):
        a.put(i)
        b.get()
    dt = time.perf_counter() - t
    p.join()
    print("rtt_ns", dt / (rounds - warm) * 1e9)


if __name__ == "__main__":
    main()
