"""Every object across processes (fork, spawn and forkserver children of Python's
multiprocessing), and the Python-side behaviour of each."""

import pickle
import queue
import threading
import time

import pytest

import helpers
import multiproc as mp
from conftest import join_all


def test_queue_carries_pickled_objects_between_processes_in_order(ctx):
    q = mp.Queue()
    p = ctx.Process(target=helpers.produce, args=(q, 2000))
    p.start()
    got = [q.get(timeout=20) for _ in range(2000)]
    join_all([p])
    assert got == [{"i": i, "s": "x" * (i % 7)} for i in range(2000)]


def test_queue_delivers_each_item_exactly_once_to_competing_consumers(ctx):
    q, out = mp.Queue(), mp.Queue()
    consumers = [ctx.Process(target=helpers.consume_sum, args=(q, 500, out)) for _ in range(2)]
    for p in consumers:
        p.start()
    helpers.produce(q, 1000)
    sums = [out.get(timeout=30) for _ in consumers]
    join_all(consumers)
    assert sum(sums) == sum(range(1000))
    assert q.empty()


def test_queue_raises_python_queue_empty_and_full():
    q = mp.Queue(maxsize=2)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    assert [q.get(), q.get()] == [1, 2]


def test_queue_item_larger_than_max_message_len_is_a_value_error_saying_what_to_do():
    q = mp.Queue(max_message_len=128)
    with pytest.raises(ValueError, match="max_message_len"):
        q.put(b"x" * 1000)
    q.put(b"small")
    assert q.get() == b"small"


def test_closed_queue_refuses_puts_with_value_error_and_drains_then_raises_eof():
    q = mp.Queue()
    q.put("last")
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put("more")
    assert q.get() == "last"
    with pytest.raises(EOFError):
        q.get(timeout=1)


def test_int_queue_moves_batches():
    q = mp.Queue.ints(maxsize=64)
    q.put_many(range(50))
    assert q.get_many(100) == list(range(50))
    with pytest.raises(OverflowError):
        q.put(-1)


def test_joinable_queue_join_waits_for_every_task_done(ctx):
    q = mp.JoinableQueue()
    workers = [ctx.Process(target=helpers.worker_joinable, args=(q,)) for _ in range(2)]
    for p in workers:
        p.start()
    for i in range(50):
        q.put(i)
    assert q.join(timeout=30)
    for _ in workers:
        q.put(None)
    assert q.join(timeout=30)
    join_all(workers)
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()


def test_simple_queue_puts_and_gets():
    q = mp.SimpleQueue()
    assert q.empty()
    q.put([1, 2])
    assert q.get() == [1, 2]


def test_pipe_carries_objects_both_ways_and_raises_eof_after_close(ctx):
    a, b = mp.Pipe()
    p = ctx.Process(target=helpers.echo_until_close, args=(b,))
    p.start()
    big = b"z" * 300_000  # larger than the pipe's ring: streamed in pieces
    for msg in [1, "two", {"three": 3}, big, "bye"]:
        a.send(msg)
        assert a.recv() == ("echo", msg)
    with pytest.raises(EOFError):
        a.recv()
    join_all([p])


def test_pipe_bytes_and_poll():
    a, b = mp.Pipe()
    assert not b.poll()
    a.send_bytes(b"abcdef", 1, 3)
    assert b.poll(1.0)
    assert b.recv_bytes() == b"bcd"
    b.send_bytes(b"")
    assert a.recv_bytes() == b""


def test_one_way_pipe_receives_on_the_first_and_sends_on_the_second():
    r, w = mp.Pipe(duplex=False)
    w.send("x")
    assert r.recv() == "x"
    with pytest.raises(OSError):
        r.send("no")
    with pytest.raises(OSError):
        w.recv()


def test_lock_gives_mutual_exclusion_across_processes(ctx):
    lock, v = mp.Lock(), mp.Value("q", 0, lock=False)
    procs = [ctx.Process(target=helpers.add_under_lock, args=(lock, v, 2000)) for _ in range(3)]
    for p in procs:
        p.start()
    join_all(procs, timeout=60)
    assert v.value == 6000


def test_lock_is_python_style_non_reentrant_and_released_by_any_thread():
    lock = mp.Lock()
    assert lock.acquire()
    assert not lock.acquire(False)
    assert not lock.acquire(timeout=0.02)
    t = threading.Thread(target=lock.release)
    t.start()
    t.join(10)
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


def test_rlock_is_reentrant_and_only_its_owner_releases_it(ctx):
    r, out = mp.RLock(), mp.Queue()
    p = ctx.Process(target=helpers.rlock_nested, args=(r, out))
    p.start()
    assert out.get(timeout=20) is True
    join_all([p])
    with r:
        with r:
            assert r._is_owned()
        t = threading.Thread(target=lambda: out.put(r.acquire(timeout=0.05)))
        t.start()
        t.join(10)
        assert out.get(timeout=5) is False
    with pytest.raises(RuntimeError):
        r.release()


def test_semaphore_counts_releases_from_another_process(ctx):
    s = mp.Semaphore(0)
    p = ctx.Process(target=helpers.release_sem, args=(s, 3))
    p.start()
    assert all(s.acquire(timeout=20) for _ in range(3))
    join_all([p])
    assert not s.acquire(False)
    assert s.get_value() == 0


def test_bounded_semaphore_refuses_release_past_its_initial_value():
    s = mp.BoundedSemaphore(1)
    with s:
        pass
    with pytest.raises(ValueError):
        s.release()


def test_event_set_in_parent_wakes_waiter_in_child(ctx):
    ev, out = mp.Event(), mp.Queue()
    p = ctx.Process(target=helpers.wait_event, args=(ev, out))
    p.start()
    time.sleep(0.05)
    ev.set()
    assert out.get(timeout=20) is True
    join_all([p])
    ev.clear()
    assert not ev.wait(0.01)


def test_condition_notify_wakes_a_waiter_in_a_child(ctx):
    cond, v, out = mp.Condition(), mp.Value("q", 0), mp.Queue()
    p = ctx.Process(target=helpers.wait_condition, args=(cond, v, out))
    p.start()
    time.sleep(0.05)
    with cond:
        v.value = 1
        cond.notify_all()
    assert out.get(timeout=20) is True
    join_all([p])
    with pytest.raises(RuntimeError):
        cond.notify()


def test_barrier_releases_all_parties_with_distinct_indices(ctx):
    b, out = mp.Barrier(3), mp.Queue()
    procs = [ctx.Process(target=helpers.barrier_party, args=(b, out)) for _ in range(2)]
    for p in procs:
        p.start()
    mine = b.wait(20)
    got = sorted([mine] + [out.get(timeout=20) for _ in procs])
    join_all(procs)
    assert got == [0, 1, 2]


def test_barrier_timeout_breaks_it():
    b = mp.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.05)
    assert b.broken
    b.reset()
    assert not b.broken


def test_array_written_by_a_child_is_seen_by_the_parent(ctx):
    a = mp.Array("i", 10)
    p = ctx.Process(target=helpers.fill_squares, args=(a,))
    p.start()
    join_all([p])
    assert a[:] == [i * i for i in range(10)]
    assert list(a) == a.tolist() and len(a) == 10 and a[-1] == 81
    a[2:4] = [0, 0]
    assert a[1:5] == [1, 0, 0, 16]
    with pytest.raises(IndexError):
        a[10]


def test_value_fetch_add_loses_no_increment_across_processes(ctx):
    v = mp.Value("Q", 0)
    procs = [ctx.Process(target=helpers.fetch_add_many, args=(v, 5000)) for _ in range(2)]
    for p in procs:
        p.start()
    join_all(procs)
    assert v.value == 10000


def test_value_typecodes_behave_as_pythons():
    assert mp.Value("d", 1.5).value == 1.5
    assert mp.Value("c", b"x").value == b"x"
    assert mp.Value("l", -3).value == -3
    with pytest.raises(OverflowError):
        mp.Value("b", 200)
    v = mp.Value("i", 7)
    with v.get_lock():
        v.value += 1
    assert v.value == 8
    with pytest.raises(ValueError, match="typecode"):
        mp.Value("z", 0)


def test_wrong_typecode_is_a_type_error_naming_both_types(uname):
    v = mp.Value("q", 1, name=uname("v"))
    with pytest.raises(TypeError) as e:
        mp.Value.open(v.name, "d")
    assert "i64" in str(e.value) and "f64" in str(e.value)
    a = mp.Array("f", 3, name=uname("a"))
    with pytest.raises(TypeError) as e:
        mp.Array.open(a.name, "i")
    assert "f32" in str(e.value) and "i32" in str(e.value)
    with pytest.raises(TypeError, match="not a Queue"):
        mp.Queue.open(v.name)


def test_every_handle_pickled_to_a_spawn_child_opens_the_same_object():
    ctx = pytest.importorskip("multiprocessing").get_context("spawn")
    lock, v, q, ev = mp.Lock(), mp.Value("q", 1), mp.Queue(), mp.Event()
    a, sem = mp.Array("d", 2), mp.Semaphore(0)
    p = ctx.Process(target=helpers.use_every_handle, args=(lock, v, q, ev, a, sem))
    p.start()
    assert ev.wait(30)
    join_all([p])
    assert v.value == 42 and a[0] == 7.5 and sem.get_value() == 1
    assert q.get(timeout=5) == ("from", p.pid)


def test_objects_pickle_as_their_name(uname):
    for obj in [mp.Queue(name=uname()), mp.Lock(uname()), mp.Value("d", 2.0, name=uname()),
                mp.Event(uname()), mp.Semaphore(2, name=uname())]:
        copy = pickle.loads(pickle.dumps(obj))
        assert type(copy) is type(obj) and copy.name == obj.name
        assert len(pickle.dumps(obj)) < 300


def test_open_by_name_reaches_the_same_object(uname):
    n = uname("q")
    q = mp.Queue(name=n)
    mp.Queue.open(n).put("hello")
    assert q.get(timeout=1) == "hello"
    lock = mp.Lock(uname("l"))
    assert mp.Lock.open(lock.name).acquire()
    assert lock.locked()
    with pytest.raises(FileNotFoundError):
        mp.Event.open(uname("missing"))
    with pytest.raises(FileExistsError):
        mp.Queue(name=n)


def test_a_wait_releases_the_gil():
    q = mp.Queue()
    done = []
    t = threading.Thread(target=lambda: done.append(q.get(timeout=10)))
    t.start()
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 0.2:
        n += 1  # runs only while the blocked get lets go of the GIL
    q.put("wake")
    t.join(10)
    assert done == ["wake"] and n > 1000


def test_a_connection_sends_from_one_thread_while_another_waits_to_receive(ctx):
    a, b = mp.Pipe()
    p = ctx.Process(target=helpers.echo_until_close, args=(b,))
    p.start()
    got = []
    t = threading.Thread(target=lambda: got.append(a.recv()))
    t.start()
    time.sleep(0.05)  # the receiver is waiting now
    a.send("ping")    # must not wait for the receiver's wait to end
    t.join(20)
    assert not t.is_alive() and got == [("echo", "ping")]
    a.send("bye")
    assert a.recv() == ("echo", "bye")
    join_all([p])
