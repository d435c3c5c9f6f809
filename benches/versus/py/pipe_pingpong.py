"""8-byte ping-pong over multiprocessing.Pipe: prints `rtt_ns <mean round trip>`."""
import multiprocessing as mp
import sys
import time


def echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    warm = n // 10
    a, b = mp.Pipe()
    p = mp.Process(target=echo, args=(b, warm + n))
    p.start()
    msg = b"12345678"
    for _ in range(warm):
        a.send_bytes(msg)
        a.recv_bytes()
    t = time.perf_counter()
    for _ in range(n):
        a.send_bytes(msg)
        a.recv_bytes()
    dt = time.perf_counter() - t
    p.join()
    print("rtt_ns", dt / n * 1e9)
