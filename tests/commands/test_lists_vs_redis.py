"""List commands against a real redis-server 7.0, byte for byte in RESP2 and RESP3."""

from __future__ import annotations

import itertools

import pytest
from commands_support import BINARY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_diff import Differ

from respkv.state.values import HashValue

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def other_types(differ: Differ) -> None:
    """``s`` holds a string and ``h`` a hash, on every side (the hash written directly:
    this module tests lists, not the hash commands)."""
    differ("SET", "s", "v")
    differ.put(b"h", HashValue({b"f": b"v"}), b"HSET", b"h", b"f", b"v")


def fill(differ: Differ, key: str, *items: object) -> None:
    differ("DEL", key)
    if items:
        differ("RPUSH", key, *items)


def contents(differ: Differ, *keys: str) -> None:
    for key in keys:
        differ("LRANGE", key, 0, -1)
        differ("EXISTS", key)


# -- the table ---------------------------------------------------------------------


# -- pushes ------------------------------------------------------------------------


def test_push(differ: Differ) -> None:
    differ("LPUSH", "l", "a")
    differ("LPUSH", "l", "b", "c", "d")
    differ("RPUSH", "l", "e", "f")
    differ("RPUSH", "r", "x", "y", "z")
    differ("RPUSH", BINARY, BINARY, b"", b"-0", b"007", b"9223372036854775808")
    contents(differ, "l", "r", BINARY)
    differ("LPUSH", "l", "")
    differ("LLEN", "l")


def test_pushx(differ: Differ) -> None:
    differ("LPUSHX", "l", "a")
    differ("RPUSHX", "l", "a", "b")
    differ("EXISTS", "l")
    differ("RPUSH", "l", "m")
    differ("LPUSHX", "l", "a", "b")
    differ("RPUSHX", "l", "y", "z")
    contents(differ, "l")


@pytest.mark.parametrize("name", ["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"])
def test_push_errors(differ: Differ, name: str) -> None:
    other_types(differ)
    differ(name, "s", "a")
    differ(name, "h", "a", "b")
    differ(name, "l")
    differ(name)
    contents(differ, "l")


def test_push_keeps_the_ttl(differ: Differ) -> None:
    differ("RPUSH", "l", "a")
    differ("EXPIRE", "l", 1000)
    differ("LPUSH", "l", "b")
    differ("RPUSHX", "l", "c")
    differ("TTL", "l")


# -- pops --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["LPOP", "RPOP"])
def test_pop(differ: Differ, name: str) -> None:
    differ(name, "l")
    fill(differ, "l", "a", "b", "c", "d", "e")
    differ(name, "l")
    differ(name, "l", 2)
    differ(name, "l", 1)
    contents(differ, "l")
    differ(name, "l", 5)
    contents(differ, "l")
    fill(differ, "l", "a")
    differ(name, "l")
    contents(differ, "l")


@pytest.mark.parametrize("name", ["LPOP", "RPOP"])
@pytest.mark.parametrize("count", ["0", "1", "3", "-1", "x", "", "1.5", "-0", str(INT64_MAX),
                                   str(INT64_MIN), "9223372036854775808"])
def test_pop_count(differ: Differ, name: str, count: str) -> None:
    other_types(differ)
    differ(name, "missing", count)
    differ(name, "s", count)
    differ(name, "h", count)
    fill(differ, "l", "a", "b", "c")
    differ(name, "l", count)
    contents(differ, "l")


@pytest.mark.parametrize("name", ["LPOP", "RPOP"])
def test_pop_errors(differ: Differ, name: str) -> None:
    other_types(differ)
    differ(name, "s")
    differ(name, "h")
    fill(differ, "l", "a")
    differ(name, "l", 1, 2)
    differ(name, "missing", 1, 2)
    differ(name)
    contents(differ, "l")


MOVES = list(itertools.product(["LEFT", "RIGHT", "left", "Right"], repeat=2))


@pytest.mark.parametrize(("wherefrom", "whereto"), MOVES)
def test_lmove(differ: Differ, wherefrom: str, whereto: str) -> None:
    fill(differ, "src", "a", "b", "c")
    differ("LMOVE", "src", "dst", wherefrom, whereto)
    differ("LMOVE", "src", "dst", wherefrom, whereto)
    differ("LMOVE", "src", "src", wherefrom, whereto)
    contents(differ, "src", "dst")
    differ("LMOVE", "src", "dst", wherefrom, whereto)
    contents(differ, "src", "dst")
    differ("LMOVE", "src", "dst", wherefrom, whereto)
    fill(differ, "one", "x")
    differ("EXPIRE", "one", 1000)
    differ("LMOVE", "one", "one", wherefrom, whereto)
    contents(differ, "one")
    differ("TTL", "one")


def test_lmove_errors(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "a", "b")
    for src, dst in itertools.product(["missing", "s", "h", "l"], repeat=2):
        differ("LMOVE", src, dst, "LEFT", "RIGHT")
        differ("RPOPLPUSH", src, dst)
        differ("LMOVE", src, dst, "MIDDLE", "RIGHT")
        differ("LMOVE", src, dst, "LEFT", "UP")
    differ("LMOVE", "l", "d", b"LEFT\x00junk", b"right\x00")  # strcasecmp stops at NUL
    differ("LMOVE", "l", "d", "LEFT")
    differ("RPOPLPUSH", "l")
    contents(differ, "l", "d", "missing")


def test_rpoplpush(differ: Differ) -> None:
    fill(differ, "src", "a", "b", "c")
    differ("RPOPLPUSH", "src", "dst")
    differ("RPOPLPUSH", "src", "src")
    differ("RPOPLPUSH", "src", "dst")
    differ("RPOPLPUSH", "src", "dst")
    differ("RPOPLPUSH", "src", "dst")
    contents(differ, "src", "dst")


def test_lmpop(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "a", "1", "2", "3")
    fill(differ, "b", "4", "5")
    differ("LMPOP", 1, "missing", "LEFT")
    differ("LMPOP", 2, "missing", "a", "LEFT")
    differ("LMPOP", 3, "missing", "a", "b", "RIGHT", "COUNT", 2)
    differ("LMPOP", 2, "a", "b", "left", "count", 10)
    differ("LMPOP", 2, "a", "b", "RIGHT")
    differ("LMPOP", 2, "a", "b", "RIGHT")
    differ("LMPOP", 2, "a", "b", "RIGHT")
    differ("LMPOP", 2, "a", "a", "LEFT", "COUNT", 1)
    contents(differ, "a", "b")


def test_lmpop_errors(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "1", "2")
    for call in [
        (0, "l", "LEFT"), (-1, "l", "LEFT"), ("x", "l", "LEFT"), ("", "l", "LEFT"),
        (INT64_MAX, "l", "LEFT"), (INT64_MIN, "l", "LEFT"), ("9223372036854775808", "l", "LEFT"),
        (2, "l", "LEFT"), (5, "l", "LEFT"), (1, "l", "MIDDLE"), (1, "l", "LEFT", "COUNT"),
        (1, "l", "LEFT", "COUNT", 0), (1, "l", "LEFT", "COUNT", -1), (1, "l", "LEFT", "COUNT", "x"),
        (1, "l", "LEFT", "COUNT", INT64_MAX), (1, "l", "LEFT", "COUNT", INT64_MIN),
        (1, "l", "LEFT", "COUNT", 1, "COUNT", 1), (1, "l", "LEFT", "FOO"),
        (1, "l", "LEFT", "COUNT", 0, "FOO"), (1, "l", "LEFT", "FOO", "COUNT", 0),
        (1, "s", "LEFT"), (2, "missing", "h", "LEFT"), (2, "l", "s", "LEFT", "COUNT", 1),
        (2, "s", "l", "LEFT"), (1, "l", "LEFT", b"count\x00", 1), (1, "l", b"RIGHT\x00x"),
        (1, "l"), (1,),
    ]:
        differ("LMPOP", *call)
    differ("LMPOP")
    contents(differ, "l")


def test_pops_keep_the_ttl(differ: Differ) -> None:
    fill(differ, "l", "a", "b", "c", "d")
    differ("EXPIRE", "l", 1000)
    differ("LPOP", "l")
    differ("RPOP", "l", 1)
    differ("LMPOP", 1, "l", "LEFT")
    differ("TTL", "l")
    differ("RPOPLPUSH", "l", "other")
    differ("TTL", "other")
    differ("EXISTS", "l")


# -- reads -------------------------------------------------------------------------

INDEXES = [INT64_MIN, -9, -6, -5, -3, -1, 0, 1, 2, 4, 5, 6, 100, INT64_MAX]


def test_llen(differ: Differ) -> None:
    other_types(differ)
    differ("LLEN", "missing")
    differ("LLEN", "s")
    differ("LLEN", "h")
    fill(differ, "l", "a", "b")
    differ("LLEN", "l")
    differ("LLEN", "l", "x")
    differ("LLEN")


def test_lindex(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "a", "b", "c", "d", "e")
    for index in [*INDEXES, "x", "", "1.0", "-0", "9223372036854775808"]:
        differ("LINDEX", "l", index)
        differ("LINDEX", "missing", index)
        differ("LINDEX", "s", index)
        differ("LINDEX", "h", index)
    differ("LINDEX", "l")


def test_lrange(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "a", "b", "c", "d", "e")
    for start, end in itertools.product(INDEXES, repeat=2):
        differ("LRANGE", "l", start, end)
    for key in ["l", "missing", "s", "h"]:
        differ("LRANGE", key, "x", 1)
        differ("LRANGE", key, 0, "1.5")
        differ("LRANGE", key, 0, -1)
    differ("LRANGE", "l", 0)


def test_lpos(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "a", "b", "a", "c", "a", "b", "a")
    ranks = [None, 1, 2, 4, 5, -1, -2, -4, -5, INT64_MAX, -INT64_MAX, INT64_MIN]
    for rank, count, maxlen in itertools.product(ranks, [None, 0, 1, 2, 10], [None, 0, 1, 3, 7]):
        options: list[object] = []
        for name, value in (("RANK", rank), ("COUNT", count), ("MAXLEN", maxlen)):
            if value is not None:
                options += [name, value]
        for element in ("a", "b", "z"):
            differ("LPOS", "l", element, *options)
        differ("LPOS", "missing", "a", *options)
        differ("LPOS", "s", "a", *options)


def test_lpos_errors(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "a", "b")
    for options in [
        ("RANK", 0), ("RANK", "x"), ("RANK", "9223372036854775808"), ("COUNT", -1),
        ("COUNT", "x"), ("MAXLEN", -1), ("MAXLEN", "x"), ("RANK",), ("COUNT",), ("FOO", 1),
        ("RANK", 1, "RANK", 2), ("COUNT", 1, "COUNT", 0), ("RANK", 0, "COUNT", -1),
        ("COUNT", -1, "RANK", 0), ("rank", -1, "count", 0, "maxlen", 0), (b"RANK\x00x", 2),
        ("RANK", 1, "FOO"),
    ]:
        for key in ("l", "missing", "s", "h"):
            differ("LPOS", key, "a", *options)
    differ("LPOS", "l")


# -- changes in place --------------------------------------------------------------


def test_lset(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "a", "b", "c", "d", "e")
    for index in [*INDEXES, "x", "-0"]:
        differ("LSET", "l", index, f"v{index}")
        for key in ("missing", "s", "h"):
            differ("LSET", key, index, "v")
    contents(differ, "l")
    differ("LSET", "l", 0)


def test_ltrim(differ: Differ) -> None:
    other_types(differ)
    for start, end in itertools.product(INDEXES, repeat=2):
        fill(differ, "l", "a", "b", "c", "d", "e")
        differ("LTRIM", "l", start, end)
        contents(differ, "l")
    for key in ("missing", "s", "h", "l"):
        differ("LTRIM", key, 0, 1)
        differ("LTRIM", key, "x", 1)
        differ("LTRIM", key, 0, "")
    fill(differ, "l", "a", "b", "c")
    differ("EXPIRE", "l", 1000)
    differ("LTRIM", "l", 1, -1)
    differ("TTL", "l")
    differ("LTRIM", "l", 0)


def test_linsert(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "a", "b", "c")
    for where, pivot in itertools.product(["BEFORE", "AFTER", "before", "After"], "abcz"):
        differ("LINSERT", "l", where, pivot, f"{where}{pivot}")
        contents(differ, "l")
    for key in ("missing", "s", "h", "l"):
        differ("LINSERT", key, "BEFORE", "a", "x")
        differ("LINSERT", key, "MIDDLE", "a", "x")
        differ("LINSERT", key, b"AFTER\x00x", "a", "x")
    differ("LINSERT", "l", "BEFORE", "a")
    contents(differ, "l", "missing")


@pytest.mark.parametrize("count", [0, 1, 2, 3, 10, -1, -2, -3, -10, INT64_MAX, INT64_MIN])
def test_lrem(differ: Differ, count: int) -> None:
    fill(differ, "l", "a", "b", "a", "c", "a", "b", "a")
    differ("LREM", "l", count, "a")
    contents(differ, "l")
    differ("LREM", "l", count, "z")
    differ("LREM", "l", count, "b")
    differ("LREM", "l", count, "c")
    differ("LREM", "l", count, "a")
    contents(differ, "l")


def test_lrem_errors(differ: Differ) -> None:
    other_types(differ)
    fill(differ, "l", "a")
    for key in ("missing", "s", "h", "l"):
        differ("LREM", key, "x", "a")
        differ("LREM", key, "9223372036854775808", "a")
        differ("LREM", key, 0, "b")
    differ("LREM", "l", 0)
    differ("EXPIRE", "l", 1000)
    differ("RPUSH", "l", "b")
    differ("LREM", "l", 0, "b")
    differ("TTL", "l")


def test_long_list(differ: Differ) -> None:
    """Beyond a listpack, and changes near either end or in the middle."""
    differ("RPUSH", "l", *(f"i{i % 97}" for i in range(1000)))
    for start, end in [(0, 2), (-3, -1), (400, 600), (990, 2000), (-1000, 5), (0, -1)]:
        differ("LRANGE", "l", start, end)
    for index in (0, 1, 500, -2, -1, 999):
        differ("LINDEX", "l", index)
        differ("LSET", "l", index, f"set{index}")
    differ("LINSERT", "l", "BEFORE", "i1", "near-head")
    differ("LINSERT", "l", "AFTER", "i96", "near-tail")
    differ("LINSERT", "l", "AFTER", "set500", "middle")
    differ("LREM", "l", 3, "i5")
    differ("LREM", "l", -3, "i7")
    differ("LREM", "l", 0, "i50")
    differ("LPOS", "l", "i9", "RANK", -2, "COUNT", 0)
    differ("LTRIM", "l", 10, -10)
    differ("LPOP", "l", 30)
    differ("RPOP", "l", 30)
    differ("LMPOP", 1, "l", "RIGHT", "COUNT", 7)
    contents(differ, "l")


# -- random sequences ----------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "s"])
ITEMS = st.sampled_from(["x", "y", "z", "1", ""])
INDEX = st.integers(-6, 6)
SIDE = st.sampled_from(["LEFT", "RIGHT"])

COMMAND_CALLS = st.one_of(
    st.tuples(st.sampled_from(["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), KEYS,
              st.lists(ITEMS, min_size=1, max_size=4)).map(lambda t: (t[0], t[1], *t[2])),
    st.tuples(st.sampled_from(["LPOP", "RPOP"]), KEYS),
    st.tuples(st.sampled_from(["LPOP", "RPOP"]), KEYS, st.integers(-1, 4)),
    st.tuples(st.just("LLEN"), KEYS),
    st.tuples(st.just("LINDEX"), KEYS, INDEX),
    st.tuples(st.just("LSET"), KEYS, INDEX, ITEMS),
    st.tuples(st.just("LRANGE"), KEYS, INDEX, INDEX),
    st.tuples(st.just("LTRIM"), KEYS, INDEX, INDEX),
    st.tuples(st.just("LINSERT"), KEYS, st.sampled_from(["BEFORE", "AFTER"]), ITEMS, ITEMS),
    st.tuples(st.just("LREM"), KEYS, st.integers(-3, 3), ITEMS),
    st.tuples(st.just("LPOS"), KEYS, ITEMS, st.sampled_from(["RANK", "COUNT", "MAXLEN"]),
              st.integers(-3, 3)),
    st.tuples(st.just("LPOS"), KEYS, ITEMS, st.just("RANK"), st.sampled_from([-2, -1, 1, 2]),
              st.just("COUNT"), st.integers(0, 3), st.just("MAXLEN"), st.integers(0, 5)),
    st.tuples(st.just("LMOVE"), KEYS, KEYS, SIDE, SIDE),
    st.tuples(st.just("RPOPLPUSH"), KEYS, KEYS),
    st.tuples(st.just("LMPOP"), st.just(2), KEYS, KEYS, SIDE),
    st.tuples(st.just("LMPOP"), st.just(1), KEYS, SIDE, st.just("COUNT"), st.integers(0, 4)),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ITEMS, max_size=40), st.lists(COMMAND_CALLS, min_size=1, max_size=30))
def test_random_sequences(differ: Differ, start: list[str],
                          calls: list[tuple[object, ...]]) -> None:
    differ.flush()
    differ("SET", "s", "string")
    if start:
        differ("RPUSH", "a", *start)
    for call in calls:
        differ(*call)
    for key in ("a", "b"):
        differ("LRANGE", key, 0, -1)
        differ("EXISTS", key)
