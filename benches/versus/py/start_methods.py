"""Python's three start methods, for the start section of benches/versus.

Prints `key value` lines, for M in fork, spawn, forkserver:
  M_start_join   seconds per Process(target=empty).start() + join()
  M_map1_rate    tasks/s of Pool(2).map(f, range(N), chunksize=1)
"""
import multiprocessing as mp
import sys
import time


def cube(x):
    return x * x * x


def empty():
    pass


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    for method, rounds in (("fork", 100), ("spawn", 10), ("forkserver", 100)):
        ctx = mp.get_context(method)
        # The first start of a method pays its set-up (the fork server starts).
        p = ctx.Process(target=empty)
        p.start()
        p.join()
        t = time.perf_counter()
        for _ in range(rounds):
            p = ctx.Process(target=empty)
            p.start()
            p.join()
        print(f"{method}_start_join", (time.perf_counter() - t) / rounds)
        with ctx.Pool(2) as pool:
            pool.map(cube, range(1000), chunksize=1)  # warm up
            best = 0.0
            for _ in range(2):
                t = time.perf_counter()
                pool.map(cube, range(n), chunksize=1)
                best = max(best, n / (time.perf_counter() - t))
            print(f"{method}_map1_rate", best)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
