"""mp.Dict and mp.List: Python's mapping and sequence protocols over the crate's
shared containers of pickles, in one process and across fork, spawn and forkserver
children."""

import pickle

import pytest

import helpers
import multiproc as mp
from conftest import join_all


# ---------------------------------------------------------------- Dict

def test_dict_follows_the_mapping_protocol():
    d = mp.Dict()
    d["a"] = 1
    d[(1, "x")] = [1, 2]
    assert d["a"] == 1 and d[(1, "x")] == [1, 2]
    assert "a" in d and "b" not in d
    assert len(d) == 2
    assert sorted(d, key=repr) == sorted(["a", (1, "x")], key=repr)
    assert sorted(d.keys(), key=repr) == sorted(["a", (1, "x")], key=repr)
    assert sorted(d.values(), key=repr) == sorted([1, [1, 2]], key=repr)
    assert dict(d.items()) == {"a": 1, (1, "x"): [1, 2]}
    d["a"] = 2
    assert d["a"] == 2 and len(d) == 2
    del d["a"]
    assert "a" not in d and len(d) == 1
    d.clear()
    assert len(d) == 0 and list(d) == []


def test_dict_missing_key_raises_key_error_naming_it():
    d = mp.Dict()
    with pytest.raises(KeyError, match="nope"):
        d["nope"]
    with pytest.raises(KeyError):
        del d["nope"]
    with pytest.raises(KeyError):
        d.pop("nope")


def test_dict_get_pop_setdefault_and_update_behave_as_python_dict():
    d = mp.Dict({"x": 1}, y=2)
    assert d == {"x": 1, "y": 2}
    assert d.get("x") == 1 and d.get("z") is None and d.get("z", 7) == 7
    assert d.pop("x") == 1 and d.pop("x", "gone") == "gone"
    assert d.setdefault("y", 99) == 2
    assert d.setdefault("n", [0]) == [0] and d["n"] == [0]
    d.update([("p", 1)], q=2)
    d.update({"r": 3})
    assert d.copy() == {"y": 2, "n": [0], "p": 1, "q": 2, "r": 3}
    with pytest.raises(TypeError):
        d.update({}, {})


def test_dict_keys_are_compared_by_pickle_so_equal_tuples_built_differently_match():
    d = mp.Dict()
    s = "k" * 3
    d[(s, s)] = 1  # one string object twice: pickle memo would share it
    assert d[("kkk", "k" * 3)] == 1
    big = (12345678901234567890, None, True, b"b")
    d[big] = "v"
    assert d[(12345678901234567890, None, True, b"b")] == "v"
    assert 1.0 not in mp.Dict({1: "int"})  # documented: pickles differ, keys differ


def test_dict_opens_by_name_and_pickles_as_its_name(uname):
    name = uname("dict")
    d = mp.Dict(name=name)
    d["k"] = "v"
    assert mp.Dict.open(name)["k"] == "v"
    d2 = pickle.loads(pickle.dumps(d))
    assert d2.name == name and d2["k"] == "v"
    d2["k2"] = 3
    assert d["k2"] == 3


def test_dict_open_of_a_missing_name_is_file_not_found(uname):
    with pytest.raises(FileNotFoundError):
        mp.Dict.open(uname("dict"))


def test_dict_open_of_a_lock_is_a_type_error(uname):
    lock = mp.Lock(name=uname("lock"))
    with pytest.raises(TypeError):
        mp.Dict.open(lock.name)


def test_ten_processes_write_squares_into_a_dict_under_a_lock(ctx):
    lock, d = mp.Lock(), mp.Dict()
    procs = [ctx.Process(target=helpers.square_into_dict, args=(lock, d, i)) for i in range(10)]
    for p in procs:
        p.start()
    join_all(procs, timeout=60)
    assert d.copy() == {i: i * i for i in range(10)}


def test_setdefault_from_many_processes_stores_the_first_value_once(ctx):
    d = mp.Dict()
    procs = [ctx.Process(target=helpers.count_in_dict, args=(d, "k", 200)) for _ in range(3)]
    for p in procs:
        p.start()
    join_all(procs, timeout=60)
    assert d["k"] == 0
    assert len(d) == 1 + len(procs)


# ---------------------------------------------------------------- List

def test_list_follows_the_sequence_protocol():
    l = mp.List([1, 2, 3])
    l.append("four")
    l.extend([5, (6,)])
    assert len(l) == 6 and list(l) == [1, 2, 3, "four", 5, (6,)]
    assert l[0] == 1 and l[-1] == (6,) and l[-6] == 1
    l[1] = "two"
    l[-1] = 6
    assert list(l) == [1, "two", 3, "four", 5, 6]
    del l[0]
    del l[-1]
    assert l == ["two", 3, "four", 5]
    assert "four" in l and 4 not in l


def test_list_index_past_either_end_raises_index_error():
    l = mp.List(["a"])
    for i in (1, -2, 100):
        with pytest.raises(IndexError):
            l[i]
        with pytest.raises(IndexError):
            l[i] = 0
        with pytest.raises(IndexError):
            del l[i]
    with pytest.raises(TypeError):
        l["0"]
    assert list(l) == ["a"]


def test_list_pop_insert_and_clear_behave_as_python_list():
    l, ref = mp.List(range(5)), list(range(5))
    for i, x in ((0, "a"), (-1, "b"), (100, "c"), (-100, "d"), (3, "e")):
        l.insert(i, x)
        ref.insert(i, x)
    assert list(l) == ref
    assert l.pop() == ref.pop() and l.pop(0) == ref.pop(0) and l.pop(-2) == ref.pop(-2)
    assert list(l) == ref
    l.clear()
    assert len(l) == 0
    with pytest.raises(IndexError):
        l.pop()


def test_list_opens_by_name_and_pickles_as_its_name(uname):
    name = uname("list")
    l = mp.List(name=name)
    l.append(1)
    assert list(mp.List.open(name)) == [1]
    l2 = pickle.loads(pickle.dumps(l))
    l2.append(2)
    assert l2.name == name and list(l) == [1, 2]


def test_appends_from_several_processes_are_all_kept(ctx):
    l = mp.List()
    procs = [ctx.Process(target=helpers.append_results, args=(l, 100 * k, 100))
             for k in range(4)]
    for p in procs:
        p.start()
    join_all(procs, timeout=60)
    items = list(l)
    assert len(items) == 400
    assert sorted(i for _, i in items) == list(range(400))
    # Each process's appends keep their order.
    for pid in {pid for pid, _ in items}:
        mine = [i for p, i in items if p == pid]
        assert mine == sorted(mine) and len(mine) == 100
