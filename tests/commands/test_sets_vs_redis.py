"""Set commands against a real redis-server 7.0, byte for byte in RESP2 and RESP3.

Redis lists a small all-integer set (an intset) ascending, and any other set in its
hashtable's order: the first is compared exactly, the second with ``unordered=True``.
SPOP and SRANDMEMBER pick at random: their replies are checked by their properties
(type and size, membership, distinctness, what remains), and after an SPOP each
redis database is brought back to our contents so the sequence can go on.
"""

from __future__ import annotations

import time

import hiredis
import pytest
from commands_support import BINARY, call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_diff import Differ, RawConnection, parse

from respkv.commands.table import COMMANDS
from respkv.protocol.reply import encode
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue, ListValue, SetValue

SET_COMMANDS = (
    "sadd", "srem", "scard", "sismember", "smismember", "smembers", "spop", "srandmember",
    "smove", "sinter", "sintercard", "sinterstore", "sunion", "sunionstore", "sdiff",
    "sdiffstore", "sscan",
)
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def other_types(differ: Differ) -> None:
    """``str`` holds a string, ``h`` a hash and ``l`` a list on every side (the hash and
    the list written directly: this module tests sets, not those commands)."""
    differ("SET", "str", "v")
    differ.put(b"h", HashValue({b"f": b"v"}), b"HSET", b"h", b"f", b"v")
    differ.put(b"l", ListValue([b"a"]), b"RPUSH", b"l", b"a")


def both_intsets(differ: Differ, key: bytes) -> bool:
    """Whether both redis databases hold ``key`` as an intset (so its order is known)."""
    return all(
        parse(connection.call(b"OBJECT", b"ENCODING", key)) == b"intset"
        for connection in (differ.resp2, differ.resp3)
    )


def contents(differ: Differ, *keys: str | bytes) -> None:
    """Each key's members (in order when Redis' is known), size and existence."""
    for key in keys:
        raw = key if isinstance(key, bytes) else key.encode()
        differ("SMEMBERS", key, unordered=not both_intsets(differ, raw))
        differ("SCARD", key)
        differ("EXISTS", key)


def our_members(differ: Differ, key: bytes) -> list[bytes]:
    value = differ.ours2.data.get(key)
    if type(value) is not SetValue:
        return []
    assert value.members == differ.ours3.data[key].members  # same writes, same order
    return list(value.members)


def random_call(differ: Differ, *args: object) -> list[tuple[object, object]]:
    """Run a command whose reply is random on every side: the reply types must agree
    in each protocol. Returns (our parsed reply, redis' parsed reply) per protocol."""
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    now = int(time.time() * 1000)
    out = []
    for connection, db in ((differ.resp2, differ.ours2), (differ.resp3, differ.ours3)):
        theirs = connection.call(*argv)
        mine = encode(call(db, *argv, now=now), connection.resp3)
        assert mine[:1] == theirs[:1], (argv, mine, theirs)
        if mine[:1] in (b"-", b"_", b":"):
            assert mine == theirs, (argv, mine, theirs)
        out.append((parse(mine), parse(theirs)))
    return out


def spop(differ: Differ, key: str, *count: object) -> None:
    """SPOP everywhere; check each reply against the set before; then make each redis
    database hold what ours holds (both our keyspaces pop the same: same entry)."""
    raw = key.encode()
    before = set(our_members(differ, raw))
    replies = random_call(differ, "SPOP", key, *count)
    after = set(our_members(differ, raw))
    for connection, (mine, theirs) in zip((differ.resp2, differ.resp3), replies, strict=True):
        if isinstance(mine, Exception) or mine is None:
            continue
        if count:
            assert len(mine) == len(theirs) == min(len(before), int(count[0]))  # type: ignore[call-overload]
            assert len(set(mine)) == len(mine) and len(set(theirs)) == len(theirs)
        mine_popped = set(mine) if count else {mine}
        their_popped = set(theirs) if count else {theirs}
        assert mine_popped <= before and their_popped <= before
        assert after == before - mine_popped
        if their_popped - mine_popped:
            connection.call(b"SADD", raw, *sorted(their_popped - mine_popped))
        if mine_popped - their_popped:
            connection.call(b"SREM", raw, *sorted(mine_popped - their_popped))
    contents(differ, key)


def srandmember(differ: Differ, key: str, *count: object) -> None:
    members = set(our_members(differ, key.encode()))
    for mine, theirs in random_call(differ, "SRANDMEMBER", key, *count):
        if isinstance(mine, Exception):
            continue
        if not count:
            assert (mine is None) == (theirs is None) == (not members)
            assert mine is None or {mine, theirs} <= members
            continue
        n = int(count[0])
        size = -n if n < 0 else min(n, len(members))
        if not members:
            size = 0
        assert len(mine) == len(theirs) == size
        assert set(mine) <= members and set(theirs) <= members
        if n > 0:
            assert len(set(mine)) == len(mine) and len(set(theirs)) == len(theirs)
    assert set(our_members(differ, key.encode())) == members  # a read


# -- the table -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SET_COMMANDS)
def test_arity(differ: Differ, name: str) -> None:
    arity = COMMANDS[name].arity
    for argc in range(1, abs(arity) + 2):
        if not COMMANDS[name].arity_ok(argc):
            differ(name.upper(), *["1"] * (argc - 1))


# -- one set -------------------------------------------------------------------------


def test_sadd_srem(differ: Differ) -> None:
    differ("SADD", "s", "a", "b", "a")
    differ("SADD", "s", "b", "c")
    differ("SADD", BINARY, BINARY, b"", b"\x00", b"-0", b"007", b"9223372036854775808")
    contents(differ, "s", BINARY)
    differ("SREM", "s", "a", "x", "a")
    differ("SREM", "missing", "a")
    contents(differ, "s")
    differ("SREM", "s", "b", "c")
    contents(differ, "s")
    differ("SREM", BINARY, b"")
    contents(differ, BINARY)


def test_intset_order(differ: Differ) -> None:
    differ("SADD", "i", "5", "-1", "3", "100", "0", "-9223372036854775808",
           "9223372036854775807")
    differ("SMEMBERS", "i")  # exact: an intset lists ascending
    differ("SADD", "i", "42")
    differ("SREM", "i", "3")
    differ("SMEMBERS", "i")
    differ("SADD", "i", "x")  # now a hashtable, for good
    differ("SMEMBERS", "i", unordered=True)
    differ("SREM", "i", "x")
    differ("SMEMBERS", "i", unordered=True)  # all integers again, but still a hashtable


def test_intset_limit(differ: Differ) -> None:
    differ("SADD", "i", *range(512, 0, -1))
    differ("SMEMBERS", "i")  # 512 members: still an intset
    differ("SSCAN", "i", "0")
    differ("SADD", "i", "513")
    differ("SMEMBERS", "i", unordered=True)


def test_membership(differ: Differ) -> None:
    other_types(differ)
    differ("SADD", "s", "a", "", "1")
    for member in ("a", "", "1", "01", "zz"):
        differ("SISMEMBER", "s", member)
        differ("SISMEMBER", "missing", member)
    differ("SMISMEMBER", "s", "a", "zz", "", "a")
    differ("SMISMEMBER", "missing", "a", "b")
    differ("SCARD", "missing")
    differ("SMEMBERS", "missing")


@pytest.mark.parametrize("key", ["str", "h", "l"])
def test_wrongtype(differ: Differ, key: str) -> None:
    other_types(differ)
    differ("SADD", "s", "a")
    for args in (
        ("SADD", key, "a"), ("SREM", key, "a"), ("SCARD", key), ("SISMEMBER", key, "a"),
        ("SMISMEMBER", key, "a", "b"), ("SMEMBERS", key), ("SPOP", key), ("SPOP", key, 0),
        ("SPOP", key, 2), ("SRANDMEMBER", key), ("SRANDMEMBER", key, 0),
        ("SRANDMEMBER", key, -3), ("SMOVE", key, "s", "a"), ("SMOVE", "s", key, "a"),
        ("SINTER", key), ("SINTER", "missing", key), ("SINTER", "s", key),
        ("SINTERCARD", 2, "missing", key), ("SINTERCARD", 1, key, "LIMIT", 1),
        ("SINTERSTORE", "d", "missing", key), ("SUNION", "s", key),
        ("SUNIONSTORE", "d", key, "missing"), ("SDIFF", "missing", key), ("SDIFF", "s", key),
        ("SDIFFSTORE", "d", "s", key), ("SSCAN", key, 0), ("SSCAN", key, 0, "bogus"),
    ):
        reply = differ(*args)
        assert isinstance(reply, hiredis.ReplyError) and str(reply) == WRONGTYPE, args
    differ("SINTERSTORE", key, "s")  # a destination of any type is replaced
    contents(differ, key)
    differ("SMOVE", "missing", "str", "a")  # a missing source answers 0 before any check
    differ("TYPE", "d")


def test_smove(differ: Differ) -> None:
    differ("SADD", "src", "a", "b", "1")
    differ("SMOVE", "src", "dst", "x")
    differ("SMOVE", "src", "dst", "a")
    contents(differ, "src", "dst")
    differ("SADD", "dst", "b")
    differ("SMOVE", "src", "dst", "b")
    differ("SMOVE", "src", "src", "1")
    differ("SMOVE", "src", "src", "zz")
    differ("SMOVE", "src", "dst", "1")
    contents(differ, "src", "dst")
    differ("SMOVE", "missing", "dst", "a")
    differ("SMOVE", "dst", "dst", "a")
    differ("SADD", "n", "1", "2")
    differ("SMOVE", "n", "m", "2")  # a new set created from an integer: an intset
    contents(differ, "n", "m")


# -- SPOP / SRANDMEMBER ------------------------------------------------------------------


def test_spop_errors_and_edges(differ: Differ) -> None:
    other_types(differ)
    differ("SADD", "s", "a", "b", "c")
    for count in ("-1", "x", "1.5", "", "9223372036854775808", "-9223372036854775808"):
        differ("SPOP", "s", count)
        differ("SPOP", "missing", count)
        differ("SPOP", "str", count)  # the count is read before the key
    differ("SPOP", "s", "1", "2")
    differ("SPOP", "str", "1", "2")
    differ("SPOP", "s", "x", "2")
    differ("SPOP", "missing")
    differ("SPOP", "missing", "0")
    differ("SPOP", "missing", "5")
    differ("SPOP", "s", "0")
    differ("SPOP", "str", "0")
    contents(differ, "s")


def test_spop_everything(differ: Differ) -> None:
    differ("SADD", "i", "30", "-2", "7")
    differ("SPOP", "i", "3")  # the whole intset, ascending
    contents(differ, "i")
    differ("SADD", "i", "30", "-2", "7")
    differ("SPOP", "i", "9223372036854775807")
    differ("SADD", "s", "a", "b", "c")
    differ("SPOP", "s", "10", unordered=True)
    contents(differ, "s")


def test_spop_random(differ: Differ) -> None:
    differ("SADD", "s", *(f"m{i}" for i in range(40)))
    spop(differ, "s")
    spop(differ, "s", 1)
    spop(differ, "s", 5)
    spop(differ, "s", 30)  # more than the rest: Redis builds the remainder instead
    spop(differ, "s", 3)
    spop(differ, "s", 3)
    differ("SADD", "i", *range(100))
    spop(differ, "i", 10)
    spop(differ, "i", 85)
    spop(differ, "i")
    differ("SADD", "one", "x")
    spop(differ, "one")
    contents(differ, "one")


def test_srandmember(differ: Differ) -> None:
    other_types(differ)
    differ("SADD", "s", *(f"m{i}" for i in range(20)))
    differ("SADD", "i", "9", "-4", "17")
    for count in ("x", "1.5", "", "9223372036854775808", "-9223372036854775808", "1 "):
        differ("SRANDMEMBER", "s", count)
        differ("SRANDMEMBER", "str", count)
    differ("SRANDMEMBER", "s", "1", "2")
    differ("SRANDMEMBER", "s", "x", "2")
    differ("SRANDMEMBER", "missing")
    for count in (0, 3, -3, -9223372036854775807):
        differ("SRANDMEMBER", "missing", count)
    differ("SRANDMEMBER", "s", 0)
    differ("SRANDMEMBER", "str", 0)
    differ("SRANDMEMBER", "i", 3)  # the whole intset, ascending
    differ("SRANDMEMBER", "i", 100)
    differ("SRANDMEMBER", "s", 20, unordered=True)
    differ("SRANDMEMBER", "s", 21, unordered=True)
    for key in ("s", "i"):
        srandmember(differ, key)
        for count in (1, 2, 5, 19, -1, -2, -50):
            srandmember(differ, key, count)
    differ("SADD", "one", "x")
    differ("SRANDMEMBER", "one", -5)
    differ("SRANDMEMBER", "one")


# -- several sets ------------------------------------------------------------------------


@pytest.fixture
def sets(differ: Differ) -> Differ:
    other_types(differ)
    differ("SADD", "a", "1", "2", "3", "x")
    differ("SADD", "b", "2", "3", "4", "x", "y")
    differ("SADD", "c", "3", "x", "z")
    differ("SADD", "i", "3", "1", "2")
    differ("SADD", "j", "4", "2", "3", "1", "0")
    differ("SADD", "e", "a", "b")
    return differ


@pytest.mark.parametrize("keys", [
    ("a",), ("a", "b"), ("a", "b", "c"), ("b", "a", "c"), ("a", "missing"), ("missing", "a"),
    ("a", "a"), ("i", "j"), ("j", "i"), ("i", "a"), ("e", "a"), ("missing",),
    ("i", "missing", "j"),
])
def test_algebra(sets: Differ, keys: tuple[str, ...]) -> None:
    differ = sets
    ints = all(k in ("i", "j", "missing") for k in keys)
    for name in ("SINTER", "SUNION", "SDIFF"):
        differ(name, *keys, unordered=not ints)
        differ(name + "STORE", "dest", *keys)
        contents(differ, "dest")
    for limit in ("0", "1", "2", "100"):
        differ("SINTERCARD", len(keys), *keys, "LIMIT", limit)
    differ("SINTERCARD", len(keys), *keys)


def test_intset_results_in_order(sets: Differ) -> None:
    differ = sets
    differ("SINTER", "i", "a")  # the smallest, an intset, leads: ascending
    differ("SINTER", "i", "b", "a")
    differ("SUNION", "i", "j")
    differ("SDIFF", "j", "i")
    differ("SDIFF", "j", "a", "b")
    differ("SUNIONSTORE", "u", "j", "i")
    contents(differ, "u")


def test_store_replaces_and_drops_ttl(sets: Differ) -> None:
    differ = sets
    for name in ("SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"):
        differ("SADD", "d", "old")
        differ("EXPIRE", "d", 1000)
        differ(name, "d", "a", "b")
        differ("TTL", "d")
        contents(differ, "d")
        differ("EXPIRE", "d", 1000)
        differ(name, "d", "missing", "a")  # sometimes empty: the destination goes
        differ("TTL", "d")
        contents(differ, "d")
        differ(name, "str", "a")  # another type is replaced
        differ("TYPE", "str")
        differ("SET", "str", "v")
    differ("SUNIONSTORE", "a", "a", "c")  # a source may be the destination
    contents(differ, "a")
    differ("SINTERSTORE", "a", "a", "b")
    contents(differ, "a")
    differ("SDIFFSTORE", "a", "a", "a")
    contents(differ, "a")


def test_sintercard_errors(sets: Differ) -> None:
    differ = sets
    for numkeys in ("0", "-1", "x", "", "9223372036854775808", "3", "4"):
        differ("SINTERCARD", numkeys, "a", "b")
    for limit in ("-1", "x", "", "9223372036854775808", "1.0"):
        differ("SINTERCARD", 1, "a", "LIMIT", limit)
        differ("SINTERCARD", 1, "str", "LIMIT", limit)  # LIMIT is read before the keys
    for extra in (("LIMIT",), ("foo",), ("b", "LIMIT", "1"), ("LIMIT", "1", "x"),
                  ("limit", "1", "LIMIT", "2"), ("LIMIT", "0", "LIMIT")):
        differ("SINTERCARD", 1, "a", *extra)
    differ("SINTERCARD", 1, "missing", "str")
    differ("SINTERCARD", 2, "a", "b", "LIMIT", "2", "LIMIT", "0")


def test_large_sets(differ: Differ) -> None:
    differ("SADD", "big", *range(2000))
    differ("SADD", "odd", *range(1, 2000, 2))
    differ("SADD", "words", *(f"w{i}" for i in range(700)), *range(0, 1400, 7))
    differ("SINTER", "big", "odd", "words", unordered=True)
    differ("SINTERCARD", 3, "big", "odd", "words", "LIMIT", 10)
    differ("SINTERCARD", 2, "big", "odd")
    differ("SDIFF", "big", "odd", unordered=True)
    differ("SDIFF", "big", "odd", "words", unordered=True)
    differ("SDIFF", "words", "big", unordered=True)
    differ("SUNION", "odd", "words", unordered=True)
    differ("SDIFFSTORE", "d", "odd", "big")
    differ("SDIFFSTORE", "d", "big", "odd", "words")
    differ("SCARD", "d")
    differ("SMEMBERS", "d", unordered=True)


# -- SSCAN -----------------------------------------------------------------------------


def full_scan_ours(db: Keyspace, key: bytes, *options: bytes) -> set[bytes]:
    cursor, seen = b"0", set()
    while True:
        cursor, page = call(db, b"SSCAN", key, cursor, *options)
        seen.update(page)
        if cursor == b"0":
            return seen


def full_scan_redis(connection: RawConnection, key: bytes, *options: bytes) -> set[bytes]:
    cursor, seen = b"0", set()
    while True:
        cursor, page = parse(connection.call(b"SSCAN", key, cursor, *options))
        seen.update(page)
        if cursor == b"0":
            return seen


def test_sscan_small(differ: Differ) -> None:
    other_types(differ)
    differ("SADD", "i", "10", "-3", "7", "100")
    differ("SADD", "s", "a", "b", "c", "", "1")
    for cursor in ("0", "5", "18446744073709551615", "-1", "+3", "007"):
        differ("SSCAN", "i", cursor)  # an intset comes whole, whatever the cursor
    for options in ((), ("MATCH", "1*"), ("MATCH", "*"), ("MATCH", "[-]*"), ("MATCH", "?"),
                    ("match", "1*", "count", "100")):
        differ("SSCAN", "i", "0", *options)
        # Fewer members than COUNT: Redis' hashtable scan ends in one call too.
        differ("SSCAN", "s", "0", *options, unordered=True)
    differ("SSCAN", "i", "0", "COUNT", "1")
    differ("SSCAN", "i", "0", "COUNT", "2", "MATCH", "*0")
    differ("SSCAN", "s", "0", "MATCH", "", unordered=True)
    differ("SSCAN", "s", "0", "COUNT", "100", unordered=True)


def test_sscan_errors(differ: Differ) -> None:
    other_types(differ)
    differ("SADD", "s", "a", "1")
    for cursor in ("x", " 1", "1 ", "18446744073709551616", "1.0", "--1", "-"):
        differ("SSCAN", "s", cursor)
        differ("SSCAN", "missing", cursor)
        differ("SSCAN", "str", cursor)
    differ("SSCAN", "missing", "0", "bogus")  # a missing key: options never read
    differ("SSCAN", "str", "0", "bogus")
    for options in (("bogus",), ("COUNT",), ("COUNT", "0"), ("COUNT", "-1"), ("COUNT", "x"),
                    ("TYPE", "set"), ("MATCH",), ("MATCH", "*", "COUNT"),
                    ("COUNT", "9223372036854775808")):
        differ("SSCAN", "s", "0", *options)


@pytest.mark.parametrize("options", [(), (b"COUNT", b"7"), (b"COUNT", b"1000"),
                                     (b"MATCH", b"*1*", b"COUNT", b"50")])
def test_sscan_full_iteration(differ: Differ, options: tuple[bytes, ...]) -> None:
    differ("SADD", "big", *(f"m{i}" for i in range(1500)))
    differ("SADD", "ints", *range(600))  # too many for an intset: scanned in pages
    for key in (b"big", b"ints"):
        mine = full_scan_ours(differ.ours2, key, *options)
        assert mine == full_scan_ours(differ.ours3, key, *options)
        assert mine == full_scan_redis(differ.resp2, key, *options)
        assert mine == full_scan_redis(differ.resp3, key, *options)


# -- random sequences ------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "str"])
MEMBERS = st.sampled_from(["1", "2", "10", "-1", "x", "y", ""])
SOME_MEMBERS = st.lists(MEMBERS, min_size=1, max_size=5)
SOME_KEYS = st.lists(KEYS, min_size=1, max_size=3)


def _flat(name: str, *parts: object) -> tuple[object, ...]:
    out: list[object] = [name]
    for part in parts:
        out += part if isinstance(part, list) else [part]
    return tuple(out)


COMMAND_CALLS = st.one_of(
    st.builds(_flat, st.sampled_from(["SADD", "SREM", "SMISMEMBER"]), KEYS, SOME_MEMBERS),
    st.builds(_flat, st.sampled_from(["SCARD", "SMEMBERS"]), KEYS),
    st.builds(_flat, st.just("SISMEMBER"), KEYS, MEMBERS),
    st.builds(_flat, st.just("SMOVE"), KEYS, KEYS, MEMBERS),
    st.builds(_flat, st.sampled_from(["SINTER", "SUNION", "SDIFF"]), SOME_KEYS),
    st.builds(_flat, st.sampled_from(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), KEYS,
              SOME_KEYS),
    st.builds(lambda keys, limit: _flat("SINTERCARD", len(keys), keys, *limit), SOME_KEYS,
              st.one_of(st.just(()), st.tuples(st.just("LIMIT"), st.integers(-1, 4)))),
    st.builds(_flat, st.just("SSCAN"), KEYS, st.just(0),
              st.sampled_from([[], ["MATCH", "1*"], ["MATCH", "?"], ["COUNT", "20"]])),
    st.builds(_flat, st.just("SPOP"), KEYS,
              st.one_of(st.just([]), st.integers(-1, 8).map(lambda n: [n]))),
    st.builds(_flat, st.just("SRANDMEMBER"), KEYS,
              st.one_of(st.just([]), st.integers(-8, 8).map(lambda n: [n]))),
)
ORDERLESS = {"SMEMBERS", "SINTER", "SUNION", "SDIFF", "SSCAN"}


def _run(differ: Differ, args: tuple[object, ...]) -> None:
    name = args[0]
    if name in ("SPOP", "SRANDMEMBER"):
        (spop if name == "SPOP" else srandmember)(differ, *args[1:])  # type: ignore[arg-type]
        return
    if name in ("SMEMBERS", "SSCAN") and both_intsets(differ, str(args[1]).encode()):
        differ(*args)  # an intset: the order is Redis' too
        return
    differ(*args, unordered=name in ORDERLESS)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(COMMAND_CALLS, min_size=1, max_size=25))
def test_random_sequences(differ: Differ, calls: list[tuple[object, ...]]) -> None:
    differ.flush()
    differ("SET", "str", "string")
    for args in calls:
        _run(differ, args)
    contents(differ, "a", "b", "c")
