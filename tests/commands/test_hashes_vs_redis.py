"""Hash commands, byte for byte against a real redis-server 7.0, in RESP2 and RESP3.

Small hashes (listpack-sized in Redis) list their fields in insertion order on both
sides, so their replies are compared as they come; bigger ones (a hashtable in
Redis) are compared unordered, and HSCAN by the fields a full iteration returns.
HRANDFIELD's random replies are compared by their properties.
"""

from __future__ import annotations

import pytest
from commands_support import BINARY, call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_diff import parse

from respkv.protocol.reply import encode
from respkv.state.values import ListValue, SetValue


def both(differ, *args: bytes) -> tuple[object, object]:
    """Run a command on each side's RESP2 and RESP3 copy without comparing: returns
    (ours, redis') parsed replies, RESP2's then RESP3's."""
    out = []
    for connection, db in ((differ.resp2, differ.ours2), (differ.resp3, differ.ours3)):
        theirs = parse(connection.call(*args))
        ours = parse(encode(call(db, *args), connection.resp3))
        out.append((ours, theirs))
    return out


def other_types(differ) -> None:
    """A string "s", a list "l" and a set "t" on every side."""
    differ("SET", "s", "x")
    for connection in (differ.resp2, differ.resp3):
        connection.call(b"RPUSH", b"l", b"a")
        connection.call(b"SADD", b"t", b"a")
    for db in (differ.ours2, differ.ours3):
        db.set(b"l", ListValue([b"a"]))
        db.set(b"t", SetValue([b"a"]))


def fill(differ, key: str, count: int, value_size: int = 1) -> None:
    for start in range(0, count, 100):
        flat = []
        for i in range(start, min(count, start + 100)):
            flat += [f"field:{i}", f"{i}".rjust(value_size, "v")]
        differ("HSET", key, *flat)


# -- the table -------------------------------------------------------------------


def _as_text(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return value


# -- writes ----------------------------------------------------------------------


def test_hset_hmset_hsetnx(differ):
    differ("HSET", "h", "a", "1", "b", "2")
    differ("HSET", "h", "a", "3", "c", "4", "c", "5")
    differ("HMSET", "h", "d", "6", "a", "7")
    differ("HSETNX", "h", "a", "x")
    differ("HSETNX", "h", "e", "x")
    differ("HSETNX", "new", "f", "")
    differ("HSET", BINARY, BINARY, BINARY, "", "")
    for key in ("h", "new", BINARY):
        differ("HGETALL", key)
    for args in (("h",), ("h", "a"), ("h", "a", "1", "b")):
        differ("HSET", *args)
        differ("HMSET", *args)
    differ("HSETNX", "h", "a")
    differ("HSETNX", "h", "a", "b", "c")
    differ("HGETALL", "h")


def test_hdel(differ):
    differ("HSET", "h", "a", "1", "b", "2", "c", "3")
    differ("HDEL", "h", "a", "x", "a")
    differ("HDEL", "nope", "a")
    differ("HDEL", "h")
    differ("HGETALL", "h")
    differ("HDEL", "h", "b", "c", "d")
    differ("EXISTS", "h")
    differ("HSET", "h", "a", "1", "b", "2", "c", "3")
    differ("HDEL", "h", "a")
    differ("HSET", "h", "a", "4")
    differ("HGETALL", "h")  # a re-added field goes last


def test_hincrby(differ):
    differ("HINCRBY", "h", "n", "5")
    differ("HINCRBY", "h", "n", "-7")
    differ("HSET", "h", "max", "9223372036854775807", "min", "-9223372036854775808",
           "x", "1.5", "z", "012", "sp", " 1", "e", "", "plus", "+1", "neg0", "-0")
    for field, delta in [("max", "1"), ("max", "-9223372036854775808"), ("min", "-1"),
                         ("min", "9223372036854775807"), ("x", "1"), ("z", "1"),
                         ("sp", "1"), ("e", "1"), ("plus", "1"), ("neg0", "1"),
                         ("n", "1.0"), ("n", "x"), ("n", ""), ("n", "01"), ("n", "+1"),
                         ("n", "9223372036854775808"), ("n", "0"), ("new", "-0")]:
        differ("HINCRBY", "h", field, delta)
    differ("HINCRBY", "nope", "n", "x")
    differ("HINCRBY", "h", "n")
    differ("HGETALL", "h")
    differ("EXISTS", "nope")


def test_hincrbyfloat(differ):
    differ("HINCRBYFLOAT", "h", "f", "10.5")
    differ("HSET", "h", "int", "12", "big", "1e4932", "inf", "inf", "ninf", "-inf",
           "word", "abc", "sp", " 1", "hex", "0x1p3", "exp", "1.0e2", "e", "")
    cases = [("f", "0.1"), ("f", "-10.6"), ("f", "5.0e3"), ("f", "0x10"), ("f", "1e-20"),
             ("f", "3.0000000000000000000001"), ("f", "-0.0"), ("f", ".5"), ("f", "5."),
             ("f", "1e4932"), ("f", "-1e4932"), ("big", "1e4932"), ("int", "0.25"),
             ("inf", "1"), ("ninf", "1"), ("word", "1"), ("sp", "1"), ("hex", "0"),
             ("exp", "1"), ("e", "1"), ("tiny", "1e-4950"), ("f", "nan"), ("f", "inf"),
             ("f", "-inf"), ("f", "1e5000"), ("f", "abc"), ("f", ""), ("f", " 1"),
             ("f", "1 "), ("f", "0x"), ("new", "-Infinity"), ("f", "1e-5000")]
    for field, delta in cases:
        differ("HINCRBYFLOAT", "h", field, delta)
    differ("HINCRBYFLOAT", "nope", "f", "inf")
    differ("HGETALL", "h", unordered=True)  # a 4933-digit value made it a hashtable
    differ("EXISTS", "nope")


def test_counters_then_reads(differ):
    differ("HINCRBY", "h", "a", "41")
    differ("HINCRBYFLOAT", "h", "a", "1")
    differ("HINCRBY", "h", "a", "1")
    differ("HINCRBYFLOAT", "h", "a", "0.5")
    differ("HINCRBY", "h", "a", "1")
    differ("HSTRLEN", "h", "a")
    differ("HGETALL", "h")


# -- reads -----------------------------------------------------------------------


def test_reads(differ):
    differ("HSET", "h", "a", "1", "b", "22", "c", "", "", "empty", "n", "-12345")
    for field in ("a", "b", "c", "", "n", "zz"):
        differ("HGET", "h", field)
        differ("HEXISTS", "h", field)
        differ("HSTRLEN", "h", field)
    differ("HMGET", "h", "c", "x", "a", "a", "")
    for command in ("HLEN", "HKEYS", "HVALS", "HGETALL"):
        differ(command, "h")
        differ(command, "nope")
        differ(command)
        differ(command, "h", "extra")
    differ("HGET", "nope", "a")
    differ("HMGET", "nope", "a", "b")
    differ("HMGET", "h")
    differ("HGET", "h")
    differ("HSTRLEN", "h")
    differ("HEXISTS", "h", "a", "b")


@pytest.mark.parametrize("key", ["s", "l", "t"])
def test_wrongtype(differ, key):
    other_types(differ)
    for args in [("HSET", key, "a", "1"), ("HMSET", key, "a", "1"), ("HSETNX", key, "a", "1"),
                 ("HDEL", key, "a"), ("HINCRBY", key, "a", "1"), ("HINCRBY", key, "a", "x"),
                 ("HINCRBYFLOAT", key, "a", "1"), ("HINCRBYFLOAT", key, "a", "inf"),
                 ("HINCRBYFLOAT", key, "a", "x"), ("HGET", key, "a"), ("HMGET", key, "a"),
                 ("HEXISTS", key, "a"), ("HSTRLEN", key, "a"), ("HLEN", key),
                 ("HKEYS", key), ("HVALS", key), ("HGETALL", key), ("HRANDFIELD", key),
                 ("HRANDFIELD", key, "0"), ("HRANDFIELD", key, "-3", "WITHVALUES"),
                 ("HRANDFIELD", key, "x"), ("HRANDFIELD", key, "1", "x"),
                 ("HSCAN", key, "0"), ("HSCAN", key, "x"), ("HSCAN", key, "0", "COUNT", "0"),
                 ("HSET", key, "a"), ("HSET", key, "a", "1", "b"), ("HMSET", key, "a", "1", "b")]:
        differ(*args)
    differ("TYPE", key)


def test_big_hash_reads(differ):
    fill(differ, "h", 300)
    fill(differ, "long", 10, value_size=70)  # one long value: a hashtable in Redis
    for key in ("h", "long"):
        differ("HLEN", key)
        for command in ("HKEYS", "HVALS", "HGETALL"):
            differ(command, key, unordered=True)
        differ("HMGET", key, "field:0", "field:299", "nope", "field:7")
    differ("HDEL", "h", *[f"field:{i}" for i in range(0, 300, 2)])
    differ("HGETALL", "h", unordered=True)
    differ("HINCRBY", "h", "field:1", "10")
    differ("HGET", "h", "field:1")


# -- HRANDFIELD ------------------------------------------------------------------


def test_hrandfield_deterministic_cases(differ):
    differ("HSET", "h", "a", "1", "b", "2", "c", "3")
    differ("HSET", "one", "f", "v")
    for args in [("h", "0"), ("h", "3"), ("h", "100"), ("h", "9223372036854775807"),
                 ("h", "3", "WITHVALUES"), ("h", "4611686018427387903", "withvalues"),
                 ("h", "0", "WITHVALUES"), ("one",), ("one", "1"), ("one", "-3"),
                 ("one", "-2", "WITHVALUES"), ("one", "1", "withvalues"), ("nope",),
                 ("nope", "5"), ("nope", "-5", "WITHVALUES"), ("nope", "0"),
                 ("h", "x"), ("h", "1.5"), ("h", ""), ("h", "1", "WITHVALUE"),
                 ("h", "1", "WITHVALUES", "x"), ("nope", "1", "x"),
                 ("h", "-9223372036854775808"), ("nope", "-9223372036854775808", "x"),
                 ("h", "4611686018427387904", "WITHVALUES"),
                 ("h", "-4611686018427387904", "WITHVALUES"),
                 ("nope", "4611686018427387904", "WITHVALUES"),
                 ("h", "9223372036854775808"), ()]:
        differ("HRANDFIELD", *args)
    fill(differ, "big", 300)
    differ("HRANDFIELD", "big", "300", unordered=True)
    differ("HRANDFIELD", "big", "1000", "WITHVALUES", unordered=True)


def _check_random(fields: dict[bytes, bytes], ours: object, theirs: object, count: int,
                  withvalues: bool, resp3: bool) -> None:
    """Our random reply has the shape of Redis' and holds what it may hold."""
    assert isinstance(ours, list) and isinstance(theirs, list)
    assert len(ours) == len(theirs)
    if withvalues:
        items = [tuple(p) for p in ours] if resp3 else list(zip(ours[::2], ours[1::2],
                                                                 strict=True))
        assert all(isinstance(p, list) and len(p) == 2 for p in ours) == resp3
        assert all(fields.get(f) == v for f, v in items)
        picked = [f for f, _ in items]
    else:
        picked = ours
        assert all(f in fields for f in picked)
    if count > 0:
        assert len(set(picked)) == len(picked) == min(count, len(fields))


@pytest.mark.parametrize("size", [5, 300])
def test_hrandfield_random_cases(differ, size):
    fill(differ, "h", size)
    fields = {f"field:{i}".encode(): f"{i}".encode() for i in range(size)}
    for _ in range(20):
        (ours, theirs), _ = both(differ, b"HRANDFIELD", b"h")
        assert ours in fields and theirs in fields
    for count in (1, 2, 4, -1, -3, -20, size - 1, -size * 3):
        for withvalues in (False, True):
            args = [b"HRANDFIELD", b"h", b"%d" % count] + [b"WITHVALUES"] * withvalues
            for resp3, (ours, theirs) in zip((False, True), both(differ, *args),
                                             strict=True):
                _check_random(fields, ours, theirs, count, withvalues, resp3)


def test_hrandfield_is_random(differ):
    fill(differ, "h", 10)
    seen = {call(differ.ours2, "HRANDFIELD", "h") for _ in range(300)}
    assert len(seen) == 10
    draws = call(differ.ours2, "HRANDFIELD", "h", "-1000")
    assert len(set(draws)) == 10


# -- HSCAN -----------------------------------------------------------------------


def test_hscan_small(differ):
    differ("HSET", "h", "a", "1", "b", "2", "", "e", "ab", "3", "x" * 64, "y" * 64)
    for args in [("0",), ("12345", "COUNT", "1"), ("0", "MATCH", "a*"), ("0", "MATCH", "*"),
                 ("0", "MATCH", "**"), ("0", "MATCH", ""), ("0", "match", "?"),
                 ("0", "COUNT", "1", "MATCH", "b"), ("0", "MATCH", "a*", "MATCH", "b*"),
                 ("-1",), ("18446744073709551615",), ("+5",), ("",), ("007",),
                 ("18446744073709551616",), ("x",), ("-",), ("1.5",), ("0", "COUNT", "0"),
                 ("0", "COUNT", "-1"), ("0", "COUNT", "x"), ("0", "COUNT"),
                 ("0", "MATCH"), ("0", "NOVALUES"), ("0", "TYPE", "hash"),
                 ("0", "COUNT", "9223372036854775807"), ("0", "COUNT", "1", "bogus"),
                 ("0", "COUNT", "9223372036854775808")]:
        differ("HSCAN", "h", *args)
        differ("HSCAN", "nope", *args)
    differ("HSCAN", "h")


def _scan_all(scan, count: int, pattern: bytes | None = None) -> list[tuple[bytes, bytes]]:
    found: list[tuple[bytes, bytes]] = []
    cursor = b"0"
    for _ in range(100_000):
        args = [b"HSCAN", b"h", cursor, b"COUNT", b"%d" % count]
        if pattern is not None:
            args += [b"MATCH", pattern]
        cursor, flat = scan(args)
        found += zip(flat[::2], flat[1::2], strict=True)
        if cursor == b"0":
            return found
    raise AssertionError("HSCAN never ended")


@pytest.mark.parametrize(("size", "value_size"), [(129, 1), (1000, 1), (20, 65)])
def test_hscan_big_full_iteration(differ, size, value_size):
    fill(differ, "h", size, value_size)
    for count, pattern in [(1, None), (10, None), (100, None), (5000, None),
                           (7, b"field:1*"), (10, b"nothing")]:
        theirs = _scan_all(lambda args: parse(differ.resp2.call(*args)), count, pattern)
        for db in (differ.ours2, differ.ours3):
            ours = _scan_all(lambda args, db=db: call(db, *args), count, pattern)
            assert len(ours) == len(set(ours))  # nothing changed: no repeats
            assert set(ours) == set(theirs)


# -- random sequences ------------------------------------------------------------

KEYS = [b"h", b"g", BINARY]
FIELDS = [b"a", b"b", b"c", b"", b"12", b"\x00\xff"]
# Nothing here makes a value longer than hash-max-listpack-value (64): every hash stays
# a listpack in Redis, whose order (insertion order) the replies are compared in.
VALUES = [b"v", b"", b"7", b"-3", b"1.5", b"0x10", b"9223372036854775807", b"1e20",
          b"inf", b" 1", b"012", b"x" * 64]
INTS = [b"0", b"1", b"-1", b"5", b"-9223372036854775808", b"9223372036854775807", b"x",
        b"01", b"3", b"-4"]
FLOATS = [b"1.5", b"-0.25", b"1e30", b"inf", b"nan", b"abc", b"0x1p-3", b"3", b"1e-20"]

key_st = st.sampled_from(KEYS)
field_st = st.sampled_from(FIELDS)
value_st = st.sampled_from(VALUES)


def _pairs_st():
    return st.lists(st.tuples(field_st, value_st), min_size=0, max_size=4).map(
        lambda items: [x for item in items for x in item])


command_st = st.one_of(
    st.tuples(st.sampled_from([b"HSET", b"HMSET"]), key_st).flatmap(
        lambda head: _pairs_st().map(lambda rest: [*head, *rest])),
    st.tuples(st.just(b"HSETNX"), key_st, field_st, value_st).map(list),
    st.tuples(st.just(b"HDEL"), key_st, st.lists(field_st, max_size=3)).map(
        lambda t: [t[0], t[1], *t[2]]),
    st.tuples(st.just(b"HINCRBY"), key_st, field_st, st.sampled_from(INTS)).map(list),
    st.tuples(st.just(b"HINCRBYFLOAT"), key_st, field_st, st.sampled_from(FLOATS)).map(list),
    st.tuples(st.sampled_from([b"HGET", b"HEXISTS", b"HSTRLEN"]), key_st, field_st).map(list),
    st.tuples(st.just(b"HMGET"), key_st, st.lists(field_st, min_size=1, max_size=3)).map(
        lambda t: [t[0], t[1], *t[2]]),
    st.tuples(st.sampled_from([b"HLEN", b"HKEYS", b"HVALS", b"HGETALL", b"TYPE"]),
              key_st).map(list),
    st.tuples(st.just(b"HRANDFIELD"), key_st, st.sampled_from([b"0", b"6", b"100", b"x"]),
              st.sampled_from([[], [b"WITHVALUES"]])).map(lambda t: [*t[:3], *t[3]]),
    st.tuples(st.just(b"HSCAN"), key_st, st.sampled_from([b"0", b"5", b"x"]),
              st.sampled_from([[], [b"COUNT", b"1"], [b"MATCH", b"?"], [b"MATCH", b"*"],
                               [b"COUNT", b"0"]])).map(lambda t: [*t[:3], *t[3]]),
    st.tuples(st.sampled_from([b"SET", b"DEL"]), key_st).map(
        lambda t: [*t, b"x"] if t[0] == b"SET" else list(t)),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(command_st, min_size=1, max_size=25))
def test_random_sequences(differ, commands):
    differ.flush()
    for args in commands:
        differ(*args)
