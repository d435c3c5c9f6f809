"""Python's Pool and Process, for the pool section of benches/versus.

Prints `key value` lines:
  map_chunk1_rate    tasks/s of Pool(2).map(f, range(N), chunksize=1)
  map_default_rate   tasks/s of Pool(2).map(f, range(N)) (default chunking)
  process_start_join seconds per Process(target=empty).start() + join()
  apply_payload      median seconds of Pool(2).apply(echo, (bytes of PAYLOAD,))
"""
import multiprocessing as mp
import sys
import time


def cube(x):
    return x * x * x


def empty():
    pass


def echo(b):
    out = bytearray(b)
    out[0] = (out[0] + 1) % 256
    return bytes(out)


def best_rate(pool, n, chunksize, rounds):
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        if chunksize is None:
            pool.map(cube, range(n))
        else:
            pool.map(cube, range(n), chunksize=chunksize)
        best = max(best, n / (time.perf_counter() - t))
    return best


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    payload = int(sys.argv[2]) if len(sys.argv) > 2 else 8 << 20
    ctx = mp.get_context("fork")  # the same start method as multiproc
    with ctx.Pool(2) as pool:
        pool.map(cube, range(1000), chunksize=1)  # warm up
        print("map_chunk1_rate", best_rate(pool, n, 1, 2))
        print("map_default_rate", best_rate(pool, n, None, 5))
        arg = bytes([7]) * payload
        times = []
        for _ in range(17):
            t = time.perf_counter()
            r = pool.apply(echo, (arg,))
            times.append(time.perf_counter() - t)
            assert len(r) == payload and r[0] == 8
        times = sorted(times[2:])
        print("apply_payload", times[len(times) // 2])
    rounds = 200
    t = time.perf_counter()
    for _ in range(rounds):
        p = ctx.Process(target=empty)
        p.start()
        p.join()
    print("process_start_join", (time.perf_counter() - t) / rounds)


if __name__ == "__main__":
    main()
