"""Python's side of the Segment row: SharedMemory(create=True) + attach + unlink.

Prints `cycle_s <seconds per cycle>`.
"""
import os
import sys
import time
from multiprocessing import shared_memory

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
base = f"bench-pyshm-{os.getpid()}"
# Warm up: the first SharedMemory starts Python's resource tracker process.
s = shared_memory.SharedMemory(name=base, create=True, size=4096)
s.close()
s.unlink()
t = time.perf_counter()
for i in range(n):
    name = f"{base}-{i}"
    s = shared_memory.SharedMemory(name=name, create=True, size=4096)
    a = shared_memory.SharedMemory(name=name)
    a.close()
    s.close()
    s.unlink()
dt = time.perf_counter() - t
print("cycle_s", dt / n)
