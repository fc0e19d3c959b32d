"""Sorted set commands against a real redis-server 7.0, byte for byte in RESP2 and RESP3.

A sorted set's order is defined, so replies are compared exactly. ZRANDMEMBER picks at
random unless it returns the whole set: those replies are checked by their properties.
Big sets (over 128 members: a skiplist in Redis) are built with a Lua loop on the
redis side and the same members here, then compared like small ones.
"""

from __future__ import annotations

import time

import pytest
from commands_support import BINARY, call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_diff import Differ, parse

from respkv.protocol.reply import encode
from respkv.state.values import HashValue, ListValue

SCORES = ["1.1", "0.1", "1e300", "1e-310", "-0", "inf", "-inf", "+inf", "Infinity", "0x10",
          "1e16", "1e17", "123456789012345678", "9007199254740993", "4503599627370497.5",
          "-3.25", "2.5e-5", "1e22", "0.30000000000000004", "1E3", ".5", "5.", "-.5e1"]
BAD_SCORES = ["", " 1", "1 ", "nan", "-nan", "1e400", "-1e400", "1e-400", "0x", "1_0", "abc",
              "1\x00", "--1", "(1", "inf1", "0x1p99999", "0x1p1024", "-0x1p1024"]


def other_types(differ: Differ) -> None:
    """``str`` a string, ``h`` a hash, ``l`` a list and ``s`` a set {a, c, x} on every
    side (the hash and list written directly: this module tests sorted sets)."""
    differ("SET", "str", "v")
    differ("SADD", "s", "a", "c", "x")
    differ.put(b"h", HashValue({b"f": b"v"}), b"HSET", b"h", b"f", b"v")
    differ.put(b"l", ListValue([b"a"]), b"RPUSH", b"l", b"a")


def contents(differ: Differ, *keys: str | bytes) -> None:
    for key in keys:
        differ("ZRANGE", key, 0, -1, "WITHSCORES")
        differ("EXISTS", key)
        differ("TYPE", key)


def big(differ: Differ, key: str, pairs: list[tuple[object, str]]) -> None:
    """``key`` gets these (score, member) pairs in one ZADD: over 128 of them make a
    skiplist in Redis from the start."""
    differ("ZADD", key, *(x for pair in pairs for x in pair))


WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


# -- the table -----------------------------------------------------------------------


# -- ZADD, ZINCRBY -------------------------------------------------------------------


@pytest.mark.parametrize("score", SCORES)
def test_zadd_score_formats(differ: Differ, score: str) -> None:
    differ("ZADD", "z", score, "m")
    differ("ZSCORE", "z", "m")
    differ("ZADD", "z", "INCR", score, "n")
    differ("ZINCRBY", "z", score, "o")
    differ("ZMSCORE", "z", "m", "n", "o", "nope")
    contents(differ, "z")
    differ("ZSCAN", "z", 0)


@pytest.mark.parametrize("score", BAD_SCORES)
def test_zadd_bad_scores(differ: Differ, score: str) -> None:
    differ("ZADD", "z", score, "m")
    differ("ZADD", "z", 1, "a", score, "m")
    differ("ZINCRBY", "z", score, "m")
    differ("EXISTS", "z")


OPTION_SETS = [
    [], ["NX"], ["XX"], ["CH"], ["INCR"], ["GT"], ["LT"], ["NX", "CH"], ["XX", "CH"],
    ["GT", "CH"], ["LT", "CH"], ["XX", "GT"], ["XX", "LT", "CH"], ["NX", "INCR"],
    ["XX", "INCR"], ["GT", "INCR"], ["LT", "INCR"], ["GT", "XX", "INCR", "CH"],
    ["NX", "XX"], ["NX", "GT"], ["NX", "LT"], ["GT", "LT"], ["xx", "gt", "lt"],
    ["NX", "XX", "INCR"], ["ch", "ch", "nx", "nx"],
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "-".join(o) or "none")
def test_zadd_options(differ: Differ, options: list[str]) -> None:
    differ("ZADD", "z", 1, "a", 2, "b", 3, "c")
    for pairs in ([2, "a"], [0, "a"], [5, "new"], [3, "c"], [-1, "b", 9, "c", 4, "d"],
                  [1, "a", 2, "a"], ["inf", "a"], ["-inf", "b"]):
        differ("ZADD", "z", *options, *pairs)
        contents(differ, "z")
    differ("ZADD", "missing", *options, 1, "a")
    contents(differ, "missing")


def test_zadd_errors_and_order_of_checks(differ: Differ) -> None:
    other_types(differ)
    differ("ZADD", "z", 1, "a")
    for args in (["NX", "XX", 1, "a", 2], ["NX", "XX", "INCR", 1, "a", 2, "b"],
                 ["GT", "LT", "INCR", "x", "a", 2, "b"], ["INCR", 1, "a", 2, "b"],
                 ["INCR", "x", "a"], ["x", "a"], [1, "a", "x", "b"], [1, "a", 2],
                 ["NX"], ["CH", "CH"], ["1"], ["foo", 1, "a"], ["NX", "XX", 1, "a"]):
        differ("ZADD", "z", *args)
        differ("ZADD", "str", *args)
        differ("ZADD", "nokey", *args)
    for key in ("str", "h", "l", "s"):
        differ("ZADD", key, 1, "a")
        differ("ZADD", key, "XX", 1, "a")
        differ("ZADD", key, "x", "a")
        differ("ZINCRBY", key, 1, "a")
    contents(differ, "z", "nokey")


def test_zadd_xx_on_missing_key_creates_nothing(differ: Differ) -> None:
    differ("ZADD", "z", "XX", 1, "a")
    differ("ZADD", "z", "XX", "INCR", 1, "a")
    differ("ZADD", "z", "XX", "CH", 1, "a", 2, "b")
    contents(differ, "z")


def test_zadd_incr_nan_and_infinities(differ: Differ) -> None:
    differ("ZADD", "z", "inf", "a", "-inf", "b")
    differ("ZADD", "z", "INCR", "-inf", "a")
    differ("ZINCRBY", "z", "inf", "b")
    differ("ZINCRBY", "z", "inf", "a")
    differ("ZINCRBY", "z", "-inf", "a")
    differ("ZADD", "z", "NX", "INCR", "-inf", "a")  # NX: no change, so no NaN
    differ("ZADD", "z", "GT", "INCR", "-1", "a")
    contents(differ, "z")


def test_zadd_negative_zero(differ: Differ) -> None:
    differ("ZADD", "z", "-0", "a")
    differ("ZADD", "z", "INCR", "-0", "b")
    differ("ZINCRBY", "z", "-0", "c")
    differ("ZINCRBY", "z", "-0", "a")
    differ("ZADD", "z", "0", "a", "-0.0", "b")
    differ("ZADD", "z", "GT", "CH", "-0", "a")
    contents(differ, "z")


def test_zincrby(differ: Differ) -> None:
    other_types(differ)
    differ("ZINCRBY", "z", "1.5", "a")
    differ("ZINCRBY", "z", "0.1", "a")
    differ("ZINCRBY", "z", "0.2", "a")
    differ("ZINCRBY", "z", "-1e17", "a")
    differ("ZINCRBY", "z", 1, "ch")  # a member named like an option
    differ("ZINCRBY", "z", 1, "nx")
    for odd in (["nx", "a"], ["incr", "a"], ["ch", "1"], ["xx", "gt"], ["x", "a"]):
        differ("ZINCRBY", "z", *odd)
    differ("ZINCRBY", "z", 1)
    differ("ZINCRBY", "z", 1, "a", "b")
    differ("ZINCRBY", "str", 1, "a")
    contents(differ, "z")


# -- ZREM and single-member reads ------------------------------------------------------


def test_zrem_and_reads(differ: Differ) -> None:
    other_types(differ)
    differ("ZADD", "z", 1, "a", 2, "b", 2, "c", 3, BINARY)
    for name in ("ZSCORE", "ZRANK", "ZREVRANK"):
        for member in ("a", "b", "c", BINARY, "nope", ""):
            differ(name, "z", member)
        differ(name, "nokey", "a")
        differ(name, "str", "a")
        differ(name, "s", "a")
        differ(name, "z")
        differ(name, "z", "a", "b")
    differ("ZMSCORE", "z", "a", "nope", BINARY, "a")
    differ("ZMSCORE", "nokey", "a", "b")
    differ("ZMSCORE", "str", "a")
    differ("ZMSCORE", "z")
    for key in ("z", "nokey", "str", "h", "s"):
        differ("ZCARD", key)
    differ("ZCARD")
    differ("ZREM", "z", "nope")
    differ("ZREM", "z", "a", "a", "nope")
    differ("ZREM", "nokey", "a")
    differ("ZREM", "str", "a")
    differ("ZREM", "z")
    contents(differ, "z")
    differ("ZREM", "z", "b", "c", BINARY)
    contents(differ, "z")


# -- counting and ranges ---------------------------------------------------------------

SCORE_BOUNDS = ["-inf", "+inf", "inf", "-Infinity", "1", "(1", "2", "(2", "2.5", "(4",
                "4", "0", "", "(", " 2", "(1\x00zz", "0x2", "1e400", "-1e400", "(inf",
                "(-inf", "2 ", "((1", "nan", "x", "[1", "0x1p99999", "(-0x1p99999",
                "\t2"]
LEX_BOUNDS = ["-", "+", "[a", "(a", "[b", "(b", "[bb", "(c", "[c", "[", "(", "[d", "(z",
              "[\xff", "+\x00a", "-x", "a", "", "+a", "b"]


def scored(differ: Differ, key: str = "z") -> None:
    differ("ZADD", key, "-inf", "n", 1, "a", 2, "b", 2, "bb", 2, "c", 2.5, "d", 4, "e",
           "inf", "f")


def lexed(differ: Differ, key: str = "l0") -> None:
    differ("ZADD", key, 0, "a", 0, "b", 0, "bb", 0, "c", 0, "d", 0, "", 0, "\xff")


def test_zcount(differ: Differ) -> None:
    other_types(differ)
    scored(differ)
    for low in SCORE_BOUNDS:
        for high in ("+inf", "(4", "2", "(2", "", low):
            differ("ZCOUNT", "z", low, high)
    differ("ZCOUNT", "nokey", 1, 2)
    differ("ZCOUNT", "str", 1, 2)
    differ("ZCOUNT", "str", "x", 2)
    differ("ZCOUNT", "nokey", "x", 2)


def test_zlexcount(differ: Differ) -> None:
    other_types(differ)
    lexed(differ)
    for low in LEX_BOUNDS:
        for high in ("+", "[c", "(c", "-", low):
            differ("ZLEXCOUNT", "l0", low, high)
    differ("ZLEXCOUNT", "nokey", "-", "+")
    differ("ZLEXCOUNT", "str", "-", "+")
    differ("ZLEXCOUNT", "str", "x", "+")


RANK_PAIRS = [(0, -1), (0, 0), (1, 3), (-3, -1), (-100, 100), (3, 1), (-1, -3), (5, 100),
              (100, 200), (-1, 0), (0, -100), ("x", 1), (1, "1.5"),
              ("-9223372036854775808", "9223372036854775807")]
RANGE_OPTIONS = [[], ["WITHSCORES"], ["REV"], ["REV", "WITHSCORES"], ["LIMIT", 0, 2],
                 ["LIMIT", 1, -1], ["LIMIT", -1, 2], ["LIMIT", 2, 0], ["LIMIT", 100, 1],
                 ["withscores", "limit", 1, 2], ["LIMIT", 0], ["LIMIT", "x", 1],
                 ["REV", "REV"], ["BYSCORE", "BYLEX"], ["foo"], ["WITHSCORES", "WITHSCORES"],
                 ["LIMIT", 0, 1, "LIMIT", 1, 1]]


def test_zrange_by_rank(differ: Differ) -> None:
    scored(differ)
    for start, stop in RANK_PAIRS:
        for options in RANGE_OPTIONS:
            differ("ZRANGE", "z", start, stop, *options)
        differ("ZREVRANGE", "z", start, stop)
        differ("ZREVRANGE", "z", start, stop, "WITHSCORES")
    differ("ZREVRANGE", "z", 0, 1, "REV")
    differ("ZREVRANGE", "z", 0, 1, "BYSCORE")
    differ("ZREVRANGE", "z", 0, 1, "LIMIT", 0, 1)


@pytest.mark.parametrize("low", SCORE_BOUNDS)
def test_zrange_by_score(differ: Differ, low: str) -> None:
    scored(differ)
    for high in ("+inf", "(4", "2", "(2", "-inf", low):
        for options in RANGE_OPTIONS:
            differ("ZRANGE", "z", low, high, "BYSCORE", *options)
        differ("ZRANGEBYSCORE", "z", low, high)
        differ("ZRANGEBYSCORE", "z", low, high, "WITHSCORES", "LIMIT", 1, 2)
        differ("ZREVRANGEBYSCORE", "z", high, low)
        differ("ZREVRANGEBYSCORE", "z", high, low, "LIMIT", 1, 3, "WITHSCORES")


@pytest.mark.parametrize("low", LEX_BOUNDS)
def test_zrange_by_lex(differ: Differ, low: str) -> None:
    lexed(differ)
    for high in ("+", "[c", "(c", "-", low):
        for options in RANGE_OPTIONS:
            differ("ZRANGE", "l0", low, high, "BYLEX", *options)
        differ("ZRANGEBYLEX", "l0", low, high)
        differ("ZRANGEBYLEX", "l0", low, high, "LIMIT", 1, 2)
        differ("ZREVRANGEBYLEX", "l0", high, low)
        differ("ZREVRANGEBYLEX", "l0", high, low, "LIMIT", 1, 3)


def test_lex_ranges_over_mixed_scores(differ: Differ) -> None:
    """Unspecified in Redis' documentation, but definite for a small (listpack) set."""
    differ("ZADD", "mix", 3, "a", 1, "b", 2, "c", 0, "d", 1.5, "e")
    for low in ("-", "[a", "(b", "[c", "[d", "(e"):
        for high in ("+", "[c", "(d", "[e", "[b"):
            differ("ZRANGEBYLEX", "mix", low, high)
            differ("ZREVRANGEBYLEX", "mix", high, low)
            differ("ZLEXCOUNT", "mix", low, high)
            differ("ZRANGE", "mix", high, low, "BYLEX", "REV", "LIMIT", 1, 2)


def test_range_errors_and_order_of_checks(differ: Differ) -> None:
    other_types(differ)
    scored(differ)
    for key in ("str", "h", "nokey"):
        differ("ZRANGE", key, 0, -1)
        differ("ZRANGE", key, "x", -1)
        differ("ZRANGE", key, 0, -1, "LIMIT", 0, 1)
        differ("ZRANGE", key, 0, -1, "BYLEX", "WITHSCORES")
        differ("ZRANGE", key, "-", "+", "BYLEX")
        differ("ZRANGE", key, "x", "+", "BYLEX")
        differ("ZRANGE", key, "x", 1, "BYSCORE")
        differ("ZRANGE", key, 0, -1, "foo")
        differ("ZRANGEBYSCORE", key, 0, 1, "REV")
        differ("ZRANGEBYSCORE", key, "x", 1)
        differ("ZRANGEBYLEX", key, "-", "+", "WITHSCORES")
        differ("ZRANGEBYLEX", key, "-", "+", "BYSCORE")
        differ("ZREVRANGEBYLEX", key, "+", "-")
        differ("ZREVRANGEBYSCORE", key, 1, 0, "LIMIT", "x", "1")
    differ("ZRANGE", "z", 0)
    differ("ZRANGEBYSCORE", "z", 0)


def test_big_set_ranges(differ: Differ) -> None:
    big(differ, "big", [(i % 7, f"m{i}") for i in range(1, 301)])
    big(differ, "lex", [(0, f"{i:03d}") for i in range(1, 201)])
    for args in ([0, -1], [10, 20], [-5, -1], [250, 400]):
        differ("ZRANGE", "big", *args, "WITHSCORES")
        differ("ZRANGE", "big", *args, "REV")
    for low, high in (("2", "(4"), ("(0", "1"), ("-inf", "+inf"), ("6", "6")):
        differ("ZRANGE", "big", low, high, "BYSCORE", "WITHSCORES")
        differ("ZRANGE", "big", high, low, "BYSCORE", "REV", "LIMIT", 3, 10)
        differ("ZCOUNT", "big", low, high)
    for low, high in (("[010", "(020"), ("-", "[005"), ("(190", "+"), ("[150", "[150")):
        differ("ZRANGEBYLEX", "lex", low, high)
        differ("ZREVRANGEBYLEX", "lex", high, low, "LIMIT", 2, 5)
        differ("ZLEXCOUNT", "lex", low, high)
    for member in ("m1", "m150", "m300", "m7"):
        differ("ZRANK", "big", member)
        differ("ZREVRANK", "big", member)
    differ("ZREMRANGEBYLEX", "lex", "[050", "(150")
    differ("ZREMRANGEBYSCORE", "big", "(1", "3")
    differ("ZREMRANGEBYRANK", "big", 5, 50)
    contents(differ, "big", "lex")


# -- ZRANGESTORE and the ZREMRANGEs -----------------------------------------------------


def test_zrangestore(differ: Differ) -> None:
    other_types(differ)
    scored(differ)
    lexed(differ)
    differ("ZRANGESTORE", "d", "z", 0, -1)
    contents(differ, "d")
    differ("ZRANGESTORE", "d", "z", 1, 3, "REV")
    contents(differ, "d")
    differ("ZRANGESTORE", "d", "z", "(1", "4", "BYSCORE", "LIMIT", 1, 2)
    contents(differ, "d")
    differ("ZRANGESTORE", "d", "z", "4", "(1", "BYSCORE", "REV")
    contents(differ, "d")
    differ("ZRANGESTORE", "d", "l0", "[b", "+", "BYLEX", "LIMIT", 0, 3)
    contents(differ, "d")
    differ("ZRANGESTORE", "z", "z", 0, 2)  # onto itself
    contents(differ, "z")
    differ("ZRANGESTORE", "str", "z", 0, -1)  # any type is replaced
    contents(differ, "str")
    differ("ZRANGESTORE", "d", "z", 10, 20)  # nothing: the destination goes
    contents(differ, "d")
    differ("SET", "d", "v")
    differ("ZRANGESTORE", "d", "nokey", 0, -1)
    differ("EXISTS", "d")
    for args in (["d", "h", 0, -1], ["d", "z", 0, -1, "WITHSCORES"], ["d", "z", 0],
                 ["d", "z", "x", 1], ["d", "z", 0, 1, "LIMIT", 0, 1],
                 ["d", "z", "-", "+", "BYLEX", "WITHSCORES"], ["h", "l", 0, 1]):
        differ("ZRANGESTORE", *args)
    differ("ZADD", "t", 1, "a")
    differ("PEXPIRE", "t", 100000)
    differ("ZRANGESTORE", "t", "z", 0, 0)  # a STORE drops the TTL
    differ("TTL", "t")


def test_zremrange(differ: Differ) -> None:
    other_types(differ)
    for start, stop in RANK_PAIRS:
        scored(differ)
        differ("ZREMRANGEBYRANK", "z", start, stop)
        contents(differ, "z")
    for low in SCORE_BOUNDS:
        scored(differ)
        differ("ZREMRANGEBYSCORE", "z", low, "(4")
        contents(differ, "z")
    for low in LEX_BOUNDS:
        lexed(differ)
        differ("ZREMRANGEBYLEX", "l0", low, "[c")
        contents(differ, "l0")
    for name, args in (("ZREMRANGEBYRANK", (0, -1)), ("ZREMRANGEBYSCORE", ("-inf", "inf")),
                       ("ZREMRANGEBYLEX", ("-", "+"))):
        for key in ("str", "s", "nokey"):
            differ(name, key, *args)
            differ(name, key, "x", "y")
    differ("ZADD", "mix", 3, "a", 1, "b", 2, "c")
    differ("ZREMRANGEBYLEX", "mix", "[b", "+")
    differ("ZREMRANGEBYLEX", "mix", "-", "[b")
    contents(differ, "mix")
    scored(differ)
    differ("ZREMRANGEBYRANK", "z", 0, -1)
    contents(differ, "z")


# -- pops ------------------------------------------------------------------------------


def test_zpopmin_zpopmax(differ: Differ) -> None:
    other_types(differ)
    for name in ("ZPOPMIN", "ZPOPMAX"):
        scored(differ)
        differ(name, "z")
        differ(name, "z", 1)
        differ(name, "z", 2)
        differ(name, "z", 0)
        for bad in ("-1", "x", "1.5", ""):
            differ(name, "z", bad)
            differ(name, "str", bad)
        differ(name, "z", 1, 2)
        differ(name, "nokey")
        differ(name, "nokey", 3)
        differ(name, "str")
        differ(name, "str", 0)
        differ(name, "s", 1)
        contents(differ, "z")
        differ(name, "z", 100)
        contents(differ, "z")


def test_zmpop(differ: Differ) -> None:
    other_types(differ)
    scored(differ, "a")
    differ("ZADD", "b", 1, "x", 2, "y")
    for args in ([1, "a", "MIN"], [1, "a", "max", "COUNT", 2], [2, "nokey", "b", "MAX"],
                 [3, "nokey", "a", "b", "MIN", "COUNT", 100], [1, "nokey", "MIN"],
                 [2, "nokey", "str", "MIN"], [2, "str", "a", "MIN"], [2, "a", "str", "MIN"],
                 [0, "a", "MIN"], [-1, "a", "MIN"], ["x", "a", "MIN"], [2, "a", "MIN"],
                 [1, "a", "foo"], [1, "a", "MIN", "COUNT", 0], [1, "a", "MIN", "COUNT", "x"],
                 [1, "a", "MIN", "COUNT", -1], [1, "a", "MIN", "COUNT"],
                 [1, "a", "MIN", "COUNT", 1, "COUNT", 2], [1, "a", "MIN", "foo"],
                 ["9223372036854775807", "a", "MIN"], [1, "a", "b", "MIN"],
                 [1, "b", "MIN", "COUNT", 5]):
        differ("ZMPOP", *args)
        contents(differ, "a", "b")


def test_blocking_pops_when_there_is_something_to_pop(differ: Differ) -> None:
    """What BZPOPMIN/BZPOPMAX/BZMPOP answer without blocking (in MULTI, or with data, or
    after a short timeout on keys that do not exist), and their argument errors."""
    other_types(differ)
    for name in ("BZPOPMIN", "BZPOPMAX"):
        scored(differ, "a")
        differ("ZADD", "b", 1, "x", 2, "y")
        for args in (["a", 0], ["nokey", "b", "0.5"], ["a", "b", 1], ["nokey", "0.01"],
                     ["str", 0], ["nokey", "s", 0], ["a", "x"], ["a", -1], ["a", "1e400"],
                     ["a", "inf"], ["a", ""], ["a", "0x1p1024"]):
            differ(name, *args)
            contents(differ, "a", "b")
    scored(differ, "a")
    for args in ([0, 1, "a", "MIN"], ["0.5", 2, "nokey", "a", "MAX", "COUNT", 2],
                 ["0.01", 1, "nokey", "MIN"], [0, 1, "str", "MIN"], ["x", 1, "a", "MIN"],
                 [-1, 1, "a", "MIN"], [0, 0, "a", "MIN"], [0, 1, "a", "UP"],
                 [0, 1, "a", "MIN", "COUNT", 0], [0, 2, "a", "MIN"]):
        differ("BZMPOP", *args)
        contents(differ, "a")


# -- ZRANDMEMBER -----------------------------------------------------------------------


def random_call(differ: Differ, *args: object) -> list[tuple[object, object]]:
    """A command whose reply is random, on every side: the reply's first byte must agree
    (and errors, nulls and integers in full). (our parsed, redis' parsed) per protocol."""
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    now = int(time.time() * 1000)
    out = []
    for connection, db in ((differ.resp2, differ.ours2), (differ.resp3, differ.ours3)):
        theirs = connection.call(*argv)
        mine = encode(call(db, *argv, now=now), connection.resp3)
        assert mine[:1] == theirs[:1], (argv, mine, theirs)
        if mine[:1] in (b"-", b"_", b":") or b"*0\r\n" in (mine, theirs):
            assert mine == theirs, (argv, mine, theirs)
        out.append((parse(mine), parse(theirs)))
    return out


def check_randmember(differ: Differ, key: str, count: int, withscores: bool) -> None:
    scores = {m: float(s) for m, s in
              zip(*[iter(differ("ZRANGE", key, 0, -1, "WITHSCORES") or [])] * 2, strict=True)}
    extra = ["WITHSCORES"] if withscores else []
    for protocol, (mine, theirs) in zip((2, 3), random_call(differ, "ZRANDMEMBER", key,
                                                            count, *extra), strict=True):
        for reply in (mine, theirs):
            if withscores and protocol == 2:
                reply = [reply[i : i + 2] for i in range(0, len(reply), 2)]
            items = [(r[0], float(r[1])) if withscores else (r, None) for r in reply]
            expected = min(count, len(scores)) if count >= 0 else -count
            assert len(items) == (expected if scores else 0)
            for member, score in items:
                assert member in scores
                assert score is None or score == scores[member]
            if count > 0:
                assert len({m for m, _ in items}) == len(items)


def test_zrandmember(differ: Differ) -> None:
    other_types(differ)
    scored(differ)
    differ("ZADD", "one", 1.5, "only")
    for args in ([], [0], [1], [-1], [3], [-3], [8], [100], [-20]):
        differ("ZRANDMEMBER", "one", *args)
        if args:
            differ("ZRANDMEMBER", "one", *args, "WITHSCORES")
        differ("ZRANDMEMBER", "nokey", *args)
        differ("ZRANDMEMBER", "str", *args)
    for count in (8, 9, 100):  # the whole set: Redis lists it from the top
        differ("ZRANDMEMBER", "z", count)
        differ("ZRANDMEMBER", "z", count, "WITHSCORES")
    for count in (1, 2, 3, 5, 7, -1, -5, -30):
        check_randmember(differ, "z", count, withscores=False)
        check_randmember(differ, "z", count, withscores=True)
    for args in (["x"], [1, "foo"], [1, "WITHSCORES", "x"], ["-9223372036854775808"],
                 ["9223372036854775807", "WITHSCORES"], ["-4611686018427387904", "WITHSCORES"],
                 ["4611686018427387903", "withscores"]):
        differ("ZRANDMEMBER", "nokey", *args)
        differ("ZRANDMEMBER", "str", *args)
    for _ in range(10):
        random_call(differ, "ZRANDMEMBER", "z")
    contents(differ, "z")


# -- ZUNION, ZINTER, ZDIFF -------------------------------------------------------------


def combos(differ: Differ) -> None:
    other_types(differ)
    differ("ZADD", "a", 1, "a", 2, "b", 3, "c", "inf", "i")
    differ("ZADD", "b", 10, "b", 20, "c", 30, "d", "-inf", "i", 0, "z")
    differ("ZADD", "c", 0.1, "x", 0.2, "c")
    differ("ZADD", "d", 0.2, "x", 0.3, "c", 5, "a")


COMBINE_ARGS = [
    [1, "a"], [2, "a", "b"], [2, "b", "a"], [3, "a", "b", "c"], [3, "c", "d", "a"],
    [2, "a", "s"], [2, "s", "a"], [1, "s"], [2, "a", "a"], [2, "a", "nokey"],
    [2, "nokey", "a"], [1, "nokey"], [4, "a", "b", "c", "d"], [4, "d", "c", "b", "a"],
    [2, "a", "b", "WEIGHTS", 2, 3], [2, "a", "b", "WEIGHTS", 0, "-1"],
    [2, "a", "b", "WEIGHTS", "inf", 1], [2, "a", "b", "WEIGHTS", 0, 0],
    [2, "a", "b", "AGGREGATE", "MIN"], [2, "a", "b", "aggregate", "max"],
    [2, "a", "b", "AGGREGATE", "SUM", "WEIGHTS", 1, "-inf"],
    [2, "a", "b", "WEIGHTS", 1, 2, "WEIGHTS", 3, 4], [2, "a", "s", "WEIGHTS", "0.5", "1.1"],
    [2, "a", "b", "WEIGHTS", 1], [2, "a", "b", "WEIGHTS", 1, "x"],
    [2, "a", "b", "WEIGHTS", 1, "nan"],
    [2, "a", "b", "WEIGHTS", 1, "1e400"], [2, "a", "b", "AGGREGATE", "foo"],
    [2, "a", "b", "AGGREGATE"], [2, "a", "b", "foo"], [0, "a"], [-1, "a"], ["x", "a"],
    [3, "a", "b"], [2, "a", "str"], [2, "str", "a", "WEIGHTS", "x"], [2, "a", "h"],
    [2, "l", "nokey"], [3, "c", "c", "d", "WEIGHTS", 1, 2, 3],
]


@pytest.mark.parametrize("name", ["ZUNION", "ZINTER", "ZDIFF"])
def test_combine(differ: Differ, name: str) -> None:
    combos(differ)
    for args in COMBINE_ARGS:
        differ(name, *args)
        differ(name, *args, "WITHSCORES")
    differ(name, 1, "a", "WITHSCORES", "WITHSCORES")
    differ(name, 1, "a", "LIMIT", 1)


@pytest.mark.parametrize("name", ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])
def test_combine_store(differ: Differ, name: str) -> None:
    combos(differ)
    for args in COMBINE_ARGS:
        differ(name, "dst", *args)
        contents(differ, "dst")
        differ(name, "dst", *args, "WITHSCORES")
    differ(name, "a", 2, "a", "b")  # onto a source
    contents(differ, "a")
    differ(name, "str", 1, "c")  # any type is replaced
    contents(differ, "str")
    differ("SET", "gone", "v")
    differ(name, "gone", 2, "nokey", "c")  # an empty result deletes the destination
    differ("EXISTS", "gone")
    differ("ZADD", "t", 1, "a")
    differ("PEXPIRE", "t", 100000)
    differ(name, "t", 1, "c")
    differ("TTL", "t")


def test_combine_negative_zero(differ: Differ) -> None:
    differ("ZADD", "a", 0, "x", 1, "y")
    differ("ZUNION", 1, "a", "WEIGHTS", "-1", "WITHSCORES")
    differ("ZINTER", 2, "a", "a", "WEIGHTS", "-1", "1", "WITHSCORES")
    differ("ZUNIONSTORE", "d", 1, "a", "WEIGHTS", "-1")
    contents(differ, "d")


def test_zintercard(differ: Differ) -> None:
    combos(differ)
    for args in ([1, "a"], [2, "a", "b"], [2, "a", "s"], [3, "a", "b", "d"], [2, "a", "a"],
                 [2, "a", "nokey"], [2, "a", "b", "LIMIT", 0], [2, "a", "b", "LIMIT", 1],
                 [2, "a", "b", "LIMIT", 100], [1, "a", "LIMIT", -1], [1, "a", "LIMIT", "x"],
                 [1, "a", "LIMIT"], [1, "a", "WITHSCORES"], [1, "a", "WEIGHTS", 1],
                 [1, "a", "AGGREGATE", "SUM"], [0, "a"], ["x", "a"], [3, "a"],
                 [2, "a", "str"], [2, "str", "a", "LIMIT", "x"],
                 [1, "a", "LIMIT", 1, "LIMIT", 2]):
        differ("ZINTERCARD", *args)


def test_big_combine(differ: Differ) -> None:
    big(differ, "x", [(i / 4, f"m{i}") for i in range(1, 201)])
    big(differ, "y", [(i * 3, f"m{i * 2}") for i in range(1, 151)])
    for name in ("ZUNION", "ZINTER", "ZDIFF"):
        differ(name, 2, "x", "y", "WITHSCORES")
        differ(name, 2, "y", "x")
    differ("ZUNIONSTORE", "u", 2, "x", "y", "WEIGHTS", "0.1", "0.7")
    differ("ZINTERSTORE", "i", 2, "x", "y", "AGGREGATE", "MAX")
    differ("ZDIFFSTORE", "d", 2, "x", "y")
    differ("ZINTERCARD", 2, "x", "y", "LIMIT", 10)
    contents(differ, "u", "i", "d")


# -- ZSCAN -----------------------------------------------------------------------------


def test_zscan_small(differ: Differ) -> None:
    other_types(differ)
    scored(differ)
    differ("ZADD", "z", "1.1", "fl", 1e300, "huge")
    for args in ([0], [5, "COUNT", 1], [0, "MATCH", "b*"], [0, "MATCH", "*"],
                 [0, "match", "?", "count", 100], ["-1"], ["18446744073709551615"],
                 ["18446744073709551616"], ["x"], ["1.5"], [0, "COUNT", 0], [0, "COUNT", "x"],
                 [0, "TYPE", "zset"], [0, "MATCH"], [0, "NOVALUES"], [0, "foo", "bar"]):
        differ("ZSCAN", "z", *args)
        differ("ZSCAN", "nokey", *args)
        differ("ZSCAN", "str", *args)
        differ("ZSCAN", "s", *args)
    differ("ZADD", "long", 1, "x" * 65)  # a long member: a skiplist in Redis
    assert scan_all(differ, "long") == {b"x" * 65: b"1"}


def scan_all(differ: Differ, key: str, *options: object) -> dict[bytes, bytes]:
    """A full ZSCAN iteration on each side: the same members (and scores) everywhere."""
    found = []
    for protocol in (2, 3):
        for side in ("ours", "theirs"):
            found.append(_iterate(differ, key, protocol, side, options))
    assert all(f == found[0] for f in found), found
    return found[0]


def _iterate(differ: Differ, key: str, protocol: int, side: str,
             options: tuple[object, ...]) -> dict[bytes, bytes]:
    cursor = b"0"
    seen: dict[bytes, bytes] = {}
    for _ in range(10_000):
        argv = [b"ZSCAN", key.encode(), cursor, *(str(o).encode() for o in options)]
        if side == "ours":
            db = differ.ours2 if protocol == 2 else differ.ours3
            raw = encode(call(db, *argv), protocol == 3)
        else:
            raw = (differ.resp2 if protocol == 2 else differ.resp3).call(*argv)
        cursor, items = parse(raw)
        seen.update(zip(items[::2], items[1::2], strict=True))
        if cursor == b"0":
            return seen
    raise AssertionError("ZSCAN did not end")


def test_zscan_big(differ: Differ) -> None:
    big(differ, "big", [(f"{i / 3!r}", f"m{i}") for i in range(1, 1001)])
    assert len(scan_all(differ, "big")) == 1000
    assert len(scan_all(differ, "big", "COUNT", 1)) == 1000
    assert len(scan_all(differ, "big", "COUNT", 500, "MATCH", "m1*")) == 112
    big(differ, "flat", [(0, f"m{i}") for i in range(1, 301)])  # one score: one page here
    assert len(scan_all(differ, "flat", "COUNT", 7)) == 300


# -- random sequences ------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
SOME_KEYS = st.lists(st.sampled_from(["a", "b", "c", "s", "nokey"]), min_size=1, max_size=3)
MEMBERS = st.sampled_from(["m", "n", "o", "p", "q", "", "mm", "nn"])
SCORE_ARGS = st.sampled_from(["0", "1", "2", "-1", "1.5", "0.1", "0.2", "1e17", "inf", "-inf",
                              "-0", "3.3", "x"])
SCORE_BOUND = st.sampled_from(["-inf", "+inf", "0", "(0", "1", "(1.5", "2", "(inf", "x"])
LEX_BOUND = st.sampled_from(["-", "+", "[m", "(m", "[n", "(nn", "[o", "[", "x"])
PAIRS = st.lists(st.tuples(SCORE_ARGS, MEMBERS), min_size=1, max_size=4).map(
    lambda pairs: [x for pair in pairs for x in pair])
ZADD_OPTIONS = st.lists(st.sampled_from(["NX", "XX", "GT", "LT", "CH", "INCR"]), max_size=2)
RANGE_OPTS = st.lists(st.sampled_from(
    [("WITHSCORES",), ("REV",), ("LIMIT", "1", "2"), ("LIMIT", "0", "-1")]), max_size=2).map(
    lambda opts: [x for o in opts for x in o])
COMBINE_OPTS = st.lists(st.sampled_from(
    [("AGGREGATE", "MIN"), ("AGGREGATE", "MAX"), ("WITHSCORES",)]), max_size=2).map(
    lambda opts: [x for o in opts for x in o])


def _flat(*parts: object) -> tuple[object, ...]:
    out: list[object] = []
    for part in parts:
        out.extend(part if isinstance(part, list) else [part])
    return tuple(out)


def _combine(name: str, keys: list[str], weights: bool, options: list[str],
             dest: str | None) -> tuple[object, ...]:
    head = [name] + ([dest] if dest else []) + [len(keys), *keys]
    tail = ["WEIGHTS", *(str(i + 0.5) for i in range(len(keys)))] if weights else []
    if name.startswith("ZDIFF"):
        tail, options = [], [o for o in options if o == "WITHSCORES"]
    if dest:
        options = [o for o in options if o != "WITHSCORES"]
    return tuple(head + tail + options)


COMMAND_CALLS = st.one_of(
    st.builds(_flat, st.just("ZADD"), KEYS, ZADD_OPTIONS, PAIRS),
    st.builds(_flat, st.just("ZINCRBY"), KEYS, SCORE_ARGS, MEMBERS),
    st.builds(_flat, st.sampled_from(["ZREM", "ZMSCORE"]), KEYS, st.lists(MEMBERS, min_size=1,
                                                                          max_size=3)),
    st.builds(_flat, st.sampled_from(["ZSCORE", "ZRANK", "ZREVRANK"]), KEYS, MEMBERS),
    st.builds(_flat, st.just("ZCARD"), KEYS),
    st.builds(_flat, st.sampled_from(["ZCOUNT", "ZREMRANGEBYSCORE"]), KEYS, SCORE_BOUND,
              SCORE_BOUND),
    st.builds(_flat, st.sampled_from(["ZLEXCOUNT", "ZREMRANGEBYLEX", "ZRANGEBYLEX",
                                      "ZREVRANGEBYLEX"]), KEYS, LEX_BOUND, LEX_BOUND),
    st.builds(_flat, st.sampled_from(["ZREMRANGEBYRANK", "ZREVRANGE"]), KEYS,
              st.integers(-4, 4), st.integers(-4, 4)),
    st.builds(_flat, st.just("ZRANGE"), KEYS, st.integers(-4, 4), st.integers(-4, 4),
              RANGE_OPTS),
    st.builds(_flat, st.just("ZRANGE"), KEYS, SCORE_BOUND, SCORE_BOUND, st.just("BYSCORE"),
              RANGE_OPTS),
    st.builds(_flat, st.just("ZRANGE"), KEYS, LEX_BOUND, LEX_BOUND, st.just("BYLEX"),
              RANGE_OPTS.map(lambda o: [x for x in o if x != "WITHSCORES"])),
    st.builds(_flat, st.sampled_from(["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]), KEYS,
              SCORE_BOUND, SCORE_BOUND, RANGE_OPTS.map(lambda o: [x for x in o if x != "REV"])),
    st.builds(_flat, st.just("ZRANGESTORE"), KEYS, KEYS, st.integers(-3, 3),
              st.integers(-3, 3)),
    st.builds(_flat, st.sampled_from(["ZPOPMIN", "ZPOPMAX"]), KEYS,
              st.one_of(st.just([]), st.integers(0, 4).map(lambda n: [n]))),
    st.builds(lambda keys, where, count: _flat("ZMPOP", len(keys), keys, where, count),
              SOME_KEYS, st.sampled_from(["MIN", "MAX"]),
              st.one_of(st.just([]), st.integers(1, 4).map(lambda n: ["COUNT", n]))),
    st.builds(_flat, st.just("ZRANDMEMBER"), KEYS, st.just(50),
              st.sampled_from([[], ["WITHSCORES"]])),
    st.builds(_combine, st.sampled_from(["ZUNION", "ZINTER", "ZDIFF"]), SOME_KEYS,
              st.booleans(), COMBINE_OPTS, st.none()),
    st.builds(_combine, st.sampled_from(["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]),
              SOME_KEYS, st.booleans(), COMBINE_OPTS, KEYS),
    st.builds(lambda keys, limit: _flat("ZINTERCARD", len(keys), keys, limit), SOME_KEYS,
              st.one_of(st.just([]), st.integers(0, 3).map(lambda n: ["LIMIT", n]))),
    st.builds(_flat, st.just("ZSCAN"), KEYS, st.just(0),
              st.sampled_from([[], ["MATCH", "m*"], ["COUNT", "1"]])),
    st.builds(_flat, st.just("SADD"), st.just("s"), st.lists(MEMBERS, min_size=1, max_size=3)),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(COMMAND_CALLS, min_size=1, max_size=25))
def test_random_sequences(differ: Differ, calls: list[tuple[object, ...]]) -> None:
    differ.flush()
    differ("SET", "str", "string")
    for args in calls:
        differ(*args)
    contents(differ, "a", "b", "c")
