"""List commands: what the differential tests cannot see (how many store rows a change
writes, how much of a list a read walks, expiry, the cores the blocking variants call).
That the rows written rebuild the list is checked by ``call`` after every write."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import pytest
from commands_support import NOW, call, to_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.commands import errors
from respkv.commands.lists import (
    _splice,
    move,
    mpop,
    parse_mpop,
    parse_where,
    pop_from,
)
from respkv.commands.table import COMMANDS
from respkv.protocol.reply import NULL_ARRAY, RespError
from respkv.state.keyspace import Keyspace
from respkv.state.values import ListValue

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def stored_list(db: Keyspace, key: bytes, size: int) -> ListValue:
    """A list of ``size`` items as if just loaded from the store: nothing pending."""
    lst = ListValue(b"i%d" % i for i in range(size))
    db.set(key, lst)
    lst.mark_stored()
    db.dirty.clear()
    return lst


def apply(db: Keyspace, *args: object) -> object:
    """The handler alone: the changes it recorded are left for the test to look at
    (``call`` hands them to its own store of rows)."""
    argv = [to_bytes(a) for a in args]
    try:
        return COMMANDS[argv[0].decode().lower()].handler(db, argv, NOW)
    except RespError as error:
        return error


def rows(lst: ListValue) -> dict[int, bytes]:
    return dict(lst.positions())


def write_out(stored: dict[int, bytes], lst: ListValue) -> dict[int, bytes]:
    """What the store holds after writing out the changes ``lst`` recorded."""
    if lst.rewrite:
        stored = rows(lst)
    else:
        stored = dict(stored)
        for position in lst.changed:
            at = position - lst.head
            if 0 <= at < len(lst.items):
                stored[position] = lst.items[at]
            else:
                stored.pop(position, None)
    lst.mark_stored()
    return stored


# -- rows written ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "most_rows"),
    [
        (("LPUSH", "l", "x"), 1),
        (("RPUSH", "l", "x", "y"), 2),
        (("LPUSHX", "l", "x"), 1),
        (("LPOP", "l"), 1),
        (("RPOP", "l", 3), 3),
        (("LSET", "l", 50_000, "x"), 1),
        (("LSET", "l", -1, "x"), 1),
        (("LTRIM", "l", 2, -3), 4),
        (("LINSERT", "l", "BEFORE", "i3", "x"), 5),
        (("LINSERT", "l", "AFTER", "i99997", "x"), 4),
        (("LREM", "l", 1, "i2"), 3),
        (("LREM", "l", -1, "i99998"), 2),
        (("LMOVE", "l", "l", "LEFT", "RIGHT"), 2),
        (("RPOPLPUSH", "l", "other"), 1),
        (("LMPOP", 1, "l", "RIGHT", "COUNT", 2), 2),
    ],
)
def test_a_change_near_an_end_writes_few_rows(db, args, most_rows) -> None:
    lst = stored_list(db, b"l", 100_000)
    before = rows(lst)
    reply = apply(db, *args)
    assert not isinstance(reply, RespError), reply
    assert not lst.rewrite
    assert 0 < len(lst.changed) <= most_rows
    assert write_out(before, lst) == rows(lst)
    assert db.dirty >= {b"l"}


def test_a_change_in_the_middle_writes_what_it_moves(db) -> None:
    lst = stored_list(db, b"l", 1000)
    before = rows(lst)
    assert apply(db, "LINSERT", "l", "AFTER", "i600", "x") == 1001
    assert len(lst.changed) <= 401
    before = write_out(before, lst)
    assert before == rows(lst)
    assert apply(db, "LREM", "l", 0, "i500") == 1
    assert write_out(before, lst) == rows(lst)


SPLICES = st.integers(0, 12).flatmap(
    lambda size: st.tuples(
        st.just(size),
        st.integers(0, size).flatmap(lambda lo: st.tuples(st.just(lo), st.integers(lo, size))),
        st.lists(st.binary(max_size=2), max_size=4),
    )
)


@settings(max_examples=300, deadline=None)
@given(SPLICES)
def test_splice(case) -> None:
    size, (lo, hi), middle = case
    items = [b"%d" % i for i in range(size)]
    lst = ListValue(items, head=-3)
    lst.mark_stored()
    before = rows(lst)
    _splice(lst, lo, hi, middle)
    assert list(lst.items) == items[:lo] + middle + items[hi:]
    assert write_out(before, lst) == rows(lst)


# -- reads walk only what they return --------------------------------------------


class CountingDeque(deque):
    """Counts the items iterated out of it, either way."""

    walked = 0

    def __iter__(self) -> Iterator[bytes]:
        for item in super().__iter__():
            CountingDeque.walked += 1
            yield item

    def __reversed__(self) -> Iterator[bytes]:
        for item in super().__reversed__():
            CountingDeque.walked += 1
            yield item


@pytest.mark.parametrize(
    ("start", "end", "most"),
    [(0, 2, 3), (-3, -1, 3), (-1, -1, 1), (5, 9, 10), (-10, -6, 10), (99_990, 100_005, 10)],
)
def test_lrange_near_an_end_walks_little(db, start, end, most) -> None:
    lst = ListValue(b"%d" % i for i in range(100_000))
    lst.items = CountingDeque(lst.items)  # test-only: the instrumented container
    db.set(b"l", lst)
    CountingDeque.walked = 0
    reply = COMMANDS["lrange"].handler(db, [b"LRANGE", b"l", b"%d" % start, b"%d" % end], NOW)
    assert CountingDeque.walked <= most
    assert reply == list(lst.items)[start : end + 1 if end != -1 else None]


def test_lindex_and_lrange(run) -> None:
    run("RPUSH", "l", *range(10))
    assert run("LINDEX", "l", -1) == b"9"
    assert run("LINDEX", "l", 10) is None
    assert run("LRANGE", "l", 7, 100) == [b"7", b"8", b"9"]
    assert run("LRANGE", "l", -100, 1) == [b"0", b"1"]
    assert run("LRANGE", "l", 5, 4) == []


# -- expiry ---------------------------------------------------------------------


def test_an_expired_list_is_absent(run, db) -> None:
    run("RPUSH", "l", "a", "b")
    run("PEXPIRE", "l", 100)
    later = NOW + 100
    assert run("LLEN", "l", now=later) == 0
    assert run("LRANGE", "l", 0, -1, now=later) == []
    assert run("LINDEX", "l", 0, now=later) is None
    assert run("LPOS", "l", "a", now=later) is None
    assert run("LPUSHX", "l", "x", now=later) == 0
    assert b"l" not in db.data
    assert run("LPUSH", "l", "c", now=later) == 1
    assert db.expires.get(b"l") is None
    assert run("LRANGE", "l", 0, -1, now=later) == [b"c"]


def test_lmove_onto_an_expired_destination(run, db) -> None:
    run("RPUSH", "src", "a")
    run("SET", "dst", "string", "PX", 10)
    assert run("LMOVE", "src", "dst", "LEFT", "LEFT", now=NOW + 10) == b"a"
    assert run("LRANGE", "dst", 0, -1, now=NOW + 10) == [b"a"]
    assert b"src" not in db.data


def test_a_failed_move_changes_nothing(run, db, err) -> None:
    run("RPUSH", "src", "a")
    run("SET", "dst", "v")
    assert err(run("LMOVE", "src", "dst", "LEFT", "LEFT")) == WRONGTYPE
    assert err(run("LMPOP", 2, "dst", "src", "LEFT")) == WRONGTYPE
    assert run("LRANGE", "src", 0, -1) == [b"a"]


def test_empty_lists_are_deleted(run, db) -> None:
    run("RPUSH", "l", "a", "b", "a")
    assert run("LREM", "l", 0, "a") == 2
    assert run("LTRIM", "l", 1, 0) == "OK"
    assert b"l" not in db.data
    run("RPUSH", "l", "a")
    assert run("RPOPLPUSH", "l", "m") == b"a"
    assert b"l" not in db.data


def test_pop_replies(run) -> None:
    assert run("LPOP", "l") is None
    assert run("LPOP", "l", 2) is NULL_ARRAY
    assert run("LMPOP", 1, "l", "LEFT") is NULL_ARRAY
    run("RPUSH", "l", "a", "b", "c")
    assert run("LPOP", "l", 0) == []
    assert run("RPOP", "l", 2) == [b"c", b"b"]
    assert run("LMPOP", 1, "l", "LEFT", "COUNT", 5) == [b"l", [b"a"]]


# -- the cores of the blocking variants -------------------------------------------


def test_pop_from(db) -> None:
    assert pop_from(db, b"l", True, 1, NOW) is None
    call(db, "RPUSH", "l", "a", "b", "c")
    assert pop_from(db, b"l", False, 2, NOW) == [b"c", b"b"]
    assert pop_from(db, b"l", True, 5, NOW) == [b"a"]
    assert b"l" not in db.data
    db.set(b"s", b"v")
    with pytest.raises(RespError) as raised:
        pop_from(db, b"s", True, 1, NOW)
    assert raised.value is errors.WRONGTYPE


def test_move(db) -> None:
    assert move(db, b"a", b"b", True, True, NOW) is None
    call(db, "RPUSH", "a", "1", "2")
    assert move(db, b"a", b"b", True, False, NOW) == b"1"
    assert move(db, b"a", b"a", True, False, NOW) == b"2"
    assert move(db, b"a", b"b", False, True, NOW) == b"2"
    assert b"a" not in db.data
    assert list(db.data[b"b"].items) == [b"2", b"1"]


def test_mpop(db) -> None:
    assert mpop(db, [b"x", b"y"], True, 1, NOW) is None
    call(db, "RPUSH", "y", "1", "2", "3")
    assert mpop(db, [b"x", b"y"], False, 2, NOW) == (b"y", [b"3", b"2"])
    db.set(b"s", b"v")
    with pytest.raises(RespError):
        mpop(db, [b"s", b"y"], True, 1, NOW)
    assert mpop(db, [b"y", b"s"], True, 1, NOW) == (b"y", [b"1"])


def test_parse_mpop() -> None:
    args = [b"BLMPOP", b"0", b"2", b"a", b"b", b"right", b"COUNT", b"3"]
    assert parse_mpop(args, 2) == ([b"a", b"b"], False, 3)
    assert parse_mpop([b"LMPOP", b"1", b"a", b"LEFT"], 1) == ([b"a"], True, 1)
    with pytest.raises(RespError) as raised:
        parse_mpop([b"LMPOP", b"3", b"a", b"LEFT"], 1)
    assert raised.value is errors.SYNTAX
    assert parse_where(b"left\x00anything") is True
