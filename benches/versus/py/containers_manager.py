"""Python's side of the container rows: Manager().dict() and Manager().list(), one
process calling through the manager's proxy (a socket round trip per call).

Prints `dict_set <ops/s>`, `dict_get <ops/s>`, `list_append <ops/s>`, `list_get <ops/s>`.
"""
import multiprocessing as mp
import sys
import time


def rate(n, f):
    t = time.perf_counter()
    f(n)
    return n / (time.perf_counter() - t)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with mp.Manager() as m:
        d = m.dict()
        lst = m.list()

        def dset(n):
            for i in range(n):
                d[i] = i

        def dget(n):
            for i in range(n):
                d[i]

        def lappend(n):
            for i in range(n):
                lst.append(i)

        def lget(n):
            for i in range(n):
                lst[i]

        print("dict_set", rate(n, dset))
        print("dict_get", rate(n, dget))
        print("list_append", rate(n, lappend))
        print("list_get", rate(n, lget))
