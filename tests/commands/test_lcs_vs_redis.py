"""LCS against a real redis-server 7.0, byte for byte in RESP2 and RESP3 (IDX is a map
in RESP3): the string, LEN, IDX with MINMATCHLEN and WITHMATCHLEN, and the errors."""

from __future__ import annotations

import itertools

import pytest
from commands_support import BINARY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_diff import Differ

from respkv.state.values import HashValue, SetValue

OPTION_SETS = ((), ("LEN",), ("IDX",), ("IDX", "WITHMATCHLEN"), ("IDX", "MINMATCHLEN", "2"),
               ("IDX", "MINMATCHLEN", "3", "WITHMATCHLEN"), ("idx", "minmatchlen", "-5"),
               ("WITHMATCHLEN",), ("MINMATCHLEN", "2"), ("LEN", "WITHMATCHLEN"),
               ("IDX", "MINMATCHLEN", "0", "MINMATCHLEN", "4"), ("len", "len"),
               ("IDX", "MINMATCHLEN", "9223372036854775807"))


def other_types(differ: Differ) -> None:
    differ.put(b"h", HashValue({b"f": b"v"}), b"HSET", b"h", b"f", b"v")
    differ.put(b"s", SetValue([b"a"]), b"SADD", b"s", b"a")


@pytest.mark.parametrize(("a", "b"), [
    (b"ohmytext", b"mynewtext"), (b"", b"abc"), (b"abc", b""), (b"", b""), (b"abc", b"abc"),
    (b"abc", b"xyz"), (b"aaaa", b"aa"), (b"abcbdab", b"bdcaba"), (b"rediscluster", b"cluster"),
    (BINARY, b"\x00\xff" + BINARY), (b"abab" * 10, b"baba" * 9),
    (b"a" * 50 + b"b" * 50, b"b" * 30 + b"a" * 70),
])
def test_lcs_options(differ: Differ, a: bytes, b: bytes) -> None:
    differ("SET", "a", a)
    differ("SET", "b", b)
    for options in OPTION_SETS:
        differ("LCS", "a", "b", *options)
        differ("LCS", "b", "a", *options)
        differ("LCS", "a", "a", *options)


def test_lcs_missing_keys(differ: Differ) -> None:
    differ("SET", "a", "hello")
    for options in OPTION_SETS:
        differ("LCS", "a", "missing", *options)
        differ("LCS", "missing", "a", *options)
        differ("LCS", "missing", "missing2", *options)


def test_lcs_errors(differ: Differ) -> None:
    other_types(differ)
    differ("SET", "a", "hello")
    for options in (("IDX", "LEN"), ("LEN", "IDX"), ("FOO",), ("MINMATCHLEN",),
                    ("IDX", "MINMATCHLEN"), ("MINMATCHLEN", "x"), ("MINMATCHLEN", "1.5"),
                    ("MINMATCHLEN", ""), ("MINMATCHLEN", "9223372036854775808"),
                    ("IDX", "FOO", "LEN"), ("LEN", "MINMATCHLEN", "x", "IDX"),
                    (b"idx\x00x",), (b"len\x00", "WITHMATCHLEN"), ("IDXX",)):
        for first, second in itertools.product(("a", "missing", "h"), ("a", "s")):
            differ("LCS", first, second, *options)


def test_lcs_table_limit(differ: Differ) -> None:
    """Redis refuses when its (len+1)*(len+1) table of 4-byte cells would pass 512 MB."""
    differ("SET", "a", b"x" * 11584)
    differ("SET", "b", b"y" * 11584)
    differ("LCS", "a", "b", "LEN")  # 536,825,... bytes: just fits
    differ("SET", "b", b"y" * 11585)
    differ("LCS", "a", "b", "LEN")
    differ("LCS", "a", "b")
    differ("LCS", "a", "b", "IDX", "LEN")  # the option conflict is reported first
    differ("LCS", "a", "missing")


def test_lcs_larger_strings(differ: Differ) -> None:
    a = bytes((i * 7 + i // 13) % 5 + 97 for i in range(700))
    b = bytes((i * 3 + i // 7) % 6 + 97 for i in range(900))
    differ("SET", "a", a)
    differ("SET", "b", b)
    differ("LCS", "a", "b")
    differ("LCS", "a", "b", "IDX", "WITHMATCHLEN", "MINMATCHLEN", "3")
    differ("LCS", "b", "a", "LEN")


SMALL = st.binary(max_size=14) | st.text("abc", max_size=14).map(str.encode)
OPTIONS = st.lists(st.sampled_from(["LEN", "IDX", "WITHMATCHLEN", "MINMATCHLEN 0",
                                    "MINMATCHLEN 1", "MINMATCHLEN 2", "MINMATCHLEN 3",
                                    "MINMATCHLEN -1"]), max_size=3)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(SMALL, SMALL, OPTIONS), min_size=1, max_size=5))
def test_random_lcs(differ: Differ, cases: list[tuple[bytes, bytes, list[str]]]) -> None:
    for a, b, options in cases:
        differ("SET", "a", a)
        differ("SET", "b", b)
        args = [word for option in options for word in option.split()]
        differ("LCS", "a", "b", *args)
        differ("LCS", "b", "a", *args)
