"""Bitmap commands against a real redis-server 7.0, byte for byte in RESP2 and RESP3:
SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO, their argument
checks in Redis' order, and random sequences of them mixed with SET/APPEND/GET."""

from __future__ import annotations

import itertools

import pytest
from commands_support import BINARY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_diff import Differ

from respkv.commands.table import COMMANDS
from respkv.state.values import HashValue, ListValue

BITMAP_COMMANDS = ("setbit", "getbit", "bitcount", "bitpos", "bitop", "bitfield", "bitfield_ro")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def other_types(differ: Differ) -> None:
    """``h`` holds a hash and ``l`` a list on every side (written directly: this module
    tests bitmaps, not those commands)."""
    differ.put(b"h", HashValue({b"f": b"v"}), b"HSET", b"h", b"f", b"v")
    differ.put(b"l", ListValue([b"a"]), b"RPUSH", b"l", b"a")


def contents(differ: Differ, *keys: str | bytes) -> None:
    for key in keys:
        differ("GET", key)
        differ("EXISTS", key)


# -- the table -----------------------------------------------------------------------


@pytest.mark.parametrize("name", (*BITMAP_COMMANDS, "lcs"))
def test_arity(differ: Differ, name: str) -> None:
    arity = COMMANDS[name].arity
    for argc in range(1, abs(arity) + 2):
        if not COMMANDS[name].arity_ok(argc):
            differ(name.upper(), *["1"] * (argc - 1))


# -- SETBIT / GETBIT ---------------------------------------------------------------------


def test_setbit_getbit(differ: Differ) -> None:
    for offset in (0, 7, 8, 1, 100, 7, 0, 63):
        differ("SETBIT", "k", offset, 1)
        differ("GET", "k")
    for offset in (0, 1, 6, 7, 8, 9, 63, 64, 99, 100, 101, 1000, 4294967295):
        differ("GETBIT", "k", offset)
    differ("SETBIT", "k", 7, 0)
    differ("SETBIT", "k", 7, 0)  # already clear
    differ("SETBIT", "k", 200, 0)  # clearing past the end still grows the string
    contents(differ, "k")
    differ("GETBIT", "missing", 3)
    differ("SETBIT", BINARY, 5, 1)
    differ("GETBIT", BINARY, 5)
    contents(differ, BINARY)


def test_setbit_on_existing_strings(differ: Differ) -> None:
    differ("SET", "n", "123")  # an int-encoded string in Redis: the same bytes
    differ("SETBIT", "n", 0, 1)
    differ("SETBIT", "n", 30, 1)
    differ("GETBIT", "n", 2)
    differ("SET", "e", "")
    differ("GETBIT", "e", 0)
    differ("SETBIT", "e", 9, 1)
    differ("SET", "b", b"\xff\x00" + BINARY)
    for offset in range(0, 60, 3):
        differ("SETBIT", "b", offset, offset % 2)
    contents(differ, "n", "e", "b")


def test_setbit_keeps_ttl(differ: Differ) -> None:
    differ("SET", "k", "v", "EX", 1000)
    differ("SETBIT", "k", 3, 1)
    differ("SETBIT", "k", 100, 1)
    differ("TTL", "k")
    differ("BITFIELD", "k", "SET", "u8", 0, 7)
    differ("TTL", "k")


@pytest.mark.parametrize("offset", [
    "-1", "x", "", "1.0", " 1", "+1", "01", "-0", "#1", "4294967296", "4294967295x",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
])
def test_bad_offsets(differ: Differ, offset: str) -> None:
    other_types(differ)
    differ("SETBIT", "k", offset, 1)
    differ("GETBIT", "k", offset)
    differ("SETBIT", "h", offset, 1)  # the offset is checked before the type
    differ("GETBIT", "h", offset)
    differ("EXISTS", "k")


@pytest.mark.parametrize("bit", ["2", "-1", "x", "", "1.0", "01", "-0", " 1",
                                 "9223372036854775808", "3"])
def test_bad_bit_values(differ: Differ, bit: str) -> None:
    other_types(differ)
    differ("SETBIT", "k", 0, bit)
    differ("SETBIT", "h", 0, bit)  # before the type
    differ("SETBIT", "h", "x", bit)  # the offset first
    differ("EXISTS", "k")


def test_setbit_getbit_wrongtype(differ: Differ) -> None:
    other_types(differ)
    for key in ("h", "l"):
        differ("SETBIT", key, 0, 1)
        differ("GETBIT", key, 0)


# -- BITCOUNT -------------------------------------------------------------------------------

BITCOUNT_INDEXES = (0, 1, 2, 3, 5, 7, 8, 15, 16, 23, 40, 47, 48, 100, -1, -2, -3, -8,
                    -9, -17, -47, -48, -49, -100, INT64_MAX, INT64_MIN)


@pytest.mark.parametrize("value", [b"foobar", b"\xff\x00\x81\x7e\x01\x80", b"\x00", b"",
                                   b"\xff"])
def test_bitcount_ranges(differ: Differ, value: bytes) -> None:
    differ("SET", "k", value)
    differ("BITCOUNT", "k")
    for start, end in itertools.product(BITCOUNT_INDEXES, repeat=2):
        differ("BITCOUNT", "k", start, end)
        differ("BITCOUNT", "k", start, end, "BIT")
    for start, end in itertools.product(BITCOUNT_INDEXES[::3], repeat=2):
        differ("BITCOUNT", "k", start, end, "byte")


def test_bitcount_arguments(differ: Differ) -> None:
    other_types(differ)
    differ("SET", "k", "foobar")
    for args in (
        ("1",), ("1", "2", "BIT", "x"), ("x", "1"), ("1", "x"), ("x", "y", "BIT"),
        ("1", "2", "bits"), ("1", "2", "BYTES"), ("1", "2", "bit"), ("1", "2", "BiT"),
        ("-1", "-2", "nonsense"),  # an empty negative range answers before the unit
        ("0", "-1", "nonsense"), ("1", "2", b"bit\x00x"), ("1.5", "2"), ("", "2"),
        ("9223372036854775808", "1"),
    ):
        differ("BITCOUNT", "k", *args)
        differ("BITCOUNT", "missing", *args)  # 7.0: a missing key is 0 whatever follows
        differ("BITCOUNT", "h", *args)  # and the type is checked before the arguments
    differ("BITCOUNT", "l")


# -- BITPOS -----------------------------------------------------------------------------------

BITPOS_INDEXES = (0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 100, -1, -2, -3, -8, -9, -16,
                  -17, -24, -25, -100, INT64_MAX, INT64_MIN)


@pytest.mark.parametrize("value", [
    b"\xff\xf0\x00", b"\x00\x00\x01", b"\xff\xff\xff", b"\x00\x00\x00", b"\x00\xff\x00",
    b"\x0f\xf7", b"\x80", b"",
])
def test_bitpos_ranges(differ: Differ, value: bytes) -> None:
    differ("SET", "k", value)
    for bit in (0, 1):
        differ("BITPOS", "k", bit)
        for start in BITPOS_INDEXES:
            differ("BITPOS", "k", bit, start)
        for start, end in itertools.product(BITPOS_INDEXES, repeat=2):
            differ("BITPOS", "k", bit, start, end)
            differ("BITPOS", "k", bit, start, end, "BIT")
        for start, end in itertools.product(BITPOS_INDEXES[::4], repeat=2):
            differ("BITPOS", "k", bit, start, end, "byte")


def test_bitpos_long_runs(differ: Differ) -> None:
    differ("SET", "z", b"\x00" * 300 + b"\x10" + b"\x00" * 50)
    differ("SET", "o", b"\xff" * 300 + b"\xfe" + b"\xff" * 50)
    for start, end in ((0, -1), (3, -1), (2400, 2410), (2412, -1), (8, 2404)):
        differ("BITPOS", "z", 1, start, end, "BIT")
        differ("BITPOS", "o", 0, start, end, "BIT")
        differ("BITPOS", "z", 0, start, end, "BIT")
        differ("BITPOS", "o", 1, start, end, "BIT")
    differ("BITPOS", "z", 1)
    differ("BITPOS", "o", 0)
    differ("BITPOS", "o", 0, 301)
    differ("BITPOS", "o", 0, 301, -1)


def test_bitpos_arguments(differ: Differ) -> None:
    other_types(differ)
    differ("SET", "k", b"\xff\x00")
    for bit in ("0", "1", "2", "-1", "x", "", "01", "1.0"):
        for args in ((), ("1",), ("0", "1"), ("x",), ("0", "x"), ("x", "0", "BIT"),
                     ("0", "x", "BIT"), ("0", "x", "foo"), ("0", "1", "foo"),
                     ("0", "1", "bit"), ("0", "1", "BYTE", "x"), ("0", "1", b"byte\x00!")):
            differ("BITPOS", "k", bit, *args)
            differ("BITPOS", "missing", bit, *args)
            differ("BITPOS", "h", bit, *args)


# -- BITOP --------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["AND", "OR", "XOR", "NOT", "and", "Or", "xOr", "not"])
def test_bitop_operations(differ: Differ, op: str) -> None:
    differ("SET", "a", b"\xf0\x0f\xaa\x55\x01")
    differ("SET", "b", b"\xff\x01")
    differ("SET", "c", b"\x00\xff\x00")
    differ("SET", "e", "")
    sources_list = [("a",), ("b",), ("e",), ("missing",)]
    if op.upper() != "NOT":
        sources_list += [("a", "b"), ("b", "a", "c"), ("a", "missing"), ("missing", "a"),
                         ("e", "b"), ("a", "a", "a"), ("missing", "missing2")]
    for sources in sources_list:
        differ("BITOP", op, "dest", *sources)
        contents(differ, "dest")
    differ("BITOP", op, "a", "a", *(["b"] if op.upper() != "NOT" else []))  # in place
    contents(differ, "a")


def test_bitop_destination(differ: Differ) -> None:
    other_types(differ)
    differ("SET", "a", "abc")
    differ("SET", "d", "x", "EX", 1000)
    differ("BITOP", "OR", "d", "a")
    differ("TTL", "d")  # a new value: the TTL is gone
    differ("BITOP", "AND", "h", "a")  # any type is replaced
    differ("TYPE", "h")
    differ("BITOP", "OR", "l", "missing")  # an empty result deletes the destination
    differ("EXISTS", "l")
    differ("SET", "d", "x")
    differ("BITOP", "XOR", "d", "missing", "missing2")
    differ("EXISTS", "d")
    differ("BITOP", "XOR", "d", "missing", "a")
    contents(differ, "d")


def test_bitop_errors(differ: Differ) -> None:
    other_types(differ)
    differ("SET", "a", "abc")
    differ("SET", "d", "keep")
    for args in (
        ("NAND", "d", "a"), ("", "d", "a"), ("NOT", "d", "a", "a"), ("NOT", "d", "h", "a"),
        ("AND", "d", "a", "h"), ("OR", "d", "missing", "l"), ("XOR", "d", "h", "missing"),
        ("NOT", "d", "h"), ("NAND", "d", "h"), (b"and\x00x", "d", "a"), ("ANDx", "d", "a"),
    ):
        differ("BITOP", *args)
        contents(differ, "d")


# -- BITFIELD ---------------------------------------------------------------------------------

FIELD_TYPES = ("u1", "u2", "u7", "u8", "u9", "u31", "u32", "u63", "i1", "i2", "i7", "i8",
               "i9", "i32", "i63", "i64")


@pytest.mark.parametrize("kind", FIELD_TYPES)
def test_bitfield_set_get(differ: Differ, kind: str) -> None:
    bits = int(kind[1:])
    values = sorted({0, 1, -1, 2, 5, 100, 127, 128, 255, 256, -128, -129, (1 << bits) - 1,
                     1 << bits, 1 << (bits - 1), (1 << (bits - 1)) - 1, -(1 << (bits - 1)),
                     -(1 << (bits - 1)) - 1, INT64_MAX, INT64_MIN} - {1 << 64, 1 << 63})
    values = [v for v in values if INT64_MIN <= v <= INT64_MAX]
    for overflow in ("WRAP", "SAT", "FAIL"):
        for offset in (0, 3, 13):
            for value in values:
                differ("BITFIELD", "k", "OVERFLOW", overflow, "SET", kind, offset, value,
                       "GET", kind, offset, "GET", "u8", 0)
        differ("GET", "k")


@pytest.mark.parametrize("kind", FIELD_TYPES)
def test_bitfield_incrby(differ: Differ, kind: str) -> None:
    bits = int(kind[1:])
    steps = [1, -1, 7, -7, 100, -100, (1 << (bits - 1)), -(1 << (bits - 1)),
             (1 << bits) - 1, INT64_MAX, INT64_MIN, 3 << (bits - 2) if bits > 1 else 1]
    steps = [s for s in steps if INT64_MIN <= s <= INT64_MAX]
    for overflow in ("WRAP", "SAT", "FAIL"):
        for start in (0, 1, -1, (1 << (bits - 1)) - 1, -(1 << (bits - 1)), (1 << bits) - 1):
            for step in steps:
                differ("BITFIELD", "k", "SET", kind, 5, start, "OVERFLOW", overflow,
                       "INCRBY", kind, 5, step, "INCRBY", kind, 5, step, "GET", kind, 5)
        differ("GET", "k")


def test_bitfield_overflow_applies_onwards(differ: Differ) -> None:
    differ("BITFIELD", "k", "SET", "u8", 0, 250, "INCRBY", "u8", 0, 10,
           "OVERFLOW", "SAT", "INCRBY", "u8", 0, 10, "INCRBY", "u8", 0, 10,
           "OVERFLOW", "fail", "INCRBY", "u8", 0, 10, "INCRBY", "u8", 0, -300,
           "overflow", "wrap", "INCRBY", "u8", 0, -300)
    contents(differ, "k")


def test_bitfield_offsets(differ: Differ) -> None:
    differ("SET", "k", b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x11")
    for kind in ("u8", "i8", "u4", "i64", "u63", "i3", "u1"):
        for offset in ("0", "1", "7", "#0", "#1", "#2", "#10", "60", "71", "72", "#100",
                       "4294967295", "#2305843009213693952"):
            differ("BITFIELD", "k", "GET", kind, offset)
            differ("BITFIELD_RO", "k", "GET", kind, offset)
    differ("BITFIELD", "k", "SET", "u8", "#1", 255, "SET", "i4", "#5", -3, "GET", "u32", 0)
    differ("BITFIELD", "k", "INCRBY", "u2", "#9", 1, "GET", "u2", "#9")
    contents(differ, "k")


@pytest.mark.parametrize("offset", [
    "-1", "x", "", "#", "#-1", "#x", "##1", "4294967296", "#2305843009213693951",
    "#9223372036854775807", "#-9223372036854775808", "1.0", "+1", " 1",
])
def test_bitfield_bad_offsets(differ: Differ, offset: str) -> None:
    for kind in ("u8", "i64", "u1", "i2"):
        differ("BITFIELD", "k", "GET", kind, offset)
        differ("BITFIELD", "k", "SET", kind, offset, 1)
        differ("BITFIELD_RO", "k", "GET", kind, offset)
    differ("EXISTS", "k")


@pytest.mark.parametrize(("kind", "offset"), [
    ("i64", "#67108864"), ("i64", "#67108863"), ("u8", "#536870912"), ("u8", "#536870911"),
    ("u1", "#4294967296"), ("u1", "#4294967295"), ("i3", "#1431655765"),
    ("i3", "#1431655766"),
])
def test_bitfield_offset_limit(differ: Differ, kind: str, offset: str) -> None:
    """#N counts fields: the limit is on N times the width (reads only: a write there
    would make a 512 MB string)."""
    differ("SET", "k", "abc")
    differ("BITFIELD", "k", "GET", kind, offset)
    differ("BITFIELD_RO", "k", "GET", kind, offset)


@pytest.mark.parametrize("kind", [
    "u64", "i65", "u0", "i0", "i", "u", "", "x8", "I8", "U8", "u-1", "i08", "u+8",
    "i9223372036854775808", "u 8", b"u8\x00x", b"i\x008", "i8x", "i1.0",
])
def test_bitfield_bad_types(differ: Differ, kind: str | bytes) -> None:
    differ("BITFIELD", "k", "GET", kind, 0)
    differ("BITFIELD", "k", "SET", kind, 0, 1)
    differ("BITFIELD", "k", "GET", "u8", 0, "INCRBY", kind, 0, 1)
    differ("BITFIELD_RO", "k", "GET", kind, 0)
    differ("EXISTS", "k")


def test_bitfield_syntax(differ: Differ) -> None:
    other_types(differ)
    differ("SET", "k", "abc")
    for ops in (
        (), ("GET",), ("GET", "u8"), ("SET", "u8", 0), ("INCRBY", "u8", 0), ("OVERFLOW",),
        ("OVERFLOW", "foo"), ("OVERFLOW", "SATURATE"), ("GET", "u8", 0, "GET"),
        ("FOO", "u8", 0), ("get", "u8", 0, "set", "u8", 0), ("SET", "u8", 0, "x"),
        ("INCRBY", "u8", 0, "1.5"), ("SET", "u8", 0, "9223372036854775808"),
        ("INCRBY", "u8", 0, ""), ("OVERFLOW", "WRAP", "GET", "u8", 0, "OVERFLOW"),
        (b"get\x00zz", "u8", 0), ("OVERFLOW", b"sat\x00", "INCRBY", "u8", 0, 300),
        ("GET", "u8", "x", "SET", "u99", 0, 1), ("SET", "u99", 0, 1, "GET", "u8", "x"),
        ("OVERFLOW", "FAIL", "SET", "i8", 0, 1000, "OVERFLOW", "bad"),
        ("SET", "u8", "x", "x"), ("SET", "u8", 0, "x", "OVERFLOW", "bad"),
    ):
        for key in ("k", "missing", "h"):
            differ("BITFIELD", key, *ops)
            differ("BITFIELD_RO", key, *ops)
    contents(differ, "k", "missing")


def test_bitfield_wrongtype(differ: Differ) -> None:
    other_types(differ)
    for key in ("h", "l"):
        differ("BITFIELD", key)
        differ("BITFIELD", key, "GET", "u8", 0)
        differ("BITFIELD", key, "SET", "u8", 0, 1)
        differ("BITFIELD", key, "OVERFLOW", "FAIL", "INCRBY", "u8", 0, 1000)
        differ("BITFIELD_RO", key, "GET", "u8", 0)
        differ("BITFIELD_RO", key, "INCRBY", "u8", 0, 1)  # the GET-only rule comes first
        differ("BITFIELD_RO", key)


def test_bitfield_failed_writes_still_grow(differ: Differ) -> None:
    differ("BITFIELD", "k", "OVERFLOW", "FAIL", "SET", "u8", 0, 1000)
    contents(differ, "k")  # created, one zero byte
    differ("BITFIELD", "k", "OVERFLOW", "FAIL", "SET", "u8", 40, 1000, "INCRBY", "u4", 0, 3)
    contents(differ, "k")
    differ("BITFIELD", "missing", "GET", "u8", 100)  # a read creates nothing
    differ("BITFIELD_RO", "missing", "GET", "i64", 1000)
    contents(differ, "missing")


def test_bitfield_read_only_variant(differ: Differ) -> None:
    differ("SET", "k", b"\x80\x01\xff")
    differ("BITFIELD_RO", "k", "GET", "i8", 0, "GET", "u16", 8, "get", "i1", "#16")
    differ("BITFIELD_RO", "k")
    differ("BITFIELD_RO", "k", "GET", "u8", 0, "SET", "u8", 0, 1)
    differ("BITFIELD_RO", "k", "OVERFLOW", "SAT", "GET", "u8", 0)
    differ("BITFIELD_RO", "k", "INCRBY", "u8", 0, 1)
    contents(differ, "k")


# -- random sequences --------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "a", "b", "b", "c", "h"])  # h: a hash
SMALL_VALUES = st.binary(max_size=6) | st.sampled_from(
    [b"\xff\xff", b"\xff" * 5, b"\x00", b"\x00" * 4, b"123", b"foobar", b"\x80\x00\x01",
     b"\x7f\xff\xfe"])
INDEXES = st.integers(-20, 20).map(str) | st.sampled_from(["9223372036854775807", "-100"])
UNITS = st.sampled_from(["BIT", "BYTE", "bit", "byte", "bits"])
BIT_OFFSETS = st.integers(0, 60).map(str) | st.sampled_from(["-1", "4294967296"])
FIELD_KINDS = st.builds(lambda s, n: f"{s}{n}", st.sampled_from("iu"), st.integers(1, 64))
FIELD_OFFSETS = st.integers(0, 50).map(str) | st.integers(0, 6).map(lambda n: f"#{n}")
FIELD_VALUES = (st.integers(-300, 300) | st.integers(INT64_MIN, INT64_MAX) | st.sampled_from(
    [INT64_MIN, INT64_MIN + 1, INT64_MIN + 100, INT64_MAX, INT64_MAX - 1, 1 << 62, -(1 << 62),
     (1 << 32) - 1, 1 << 32, -(1 << 31) - 1])).map(str)
FIELD_OPS = st.one_of(
    st.tuples(st.just("GET"), FIELD_KINDS, FIELD_OFFSETS),
    st.tuples(st.sampled_from(["SET", "INCRBY"]), FIELD_KINDS, FIELD_OFFSETS, FIELD_VALUES),
    st.tuples(st.just("OVERFLOW"), st.sampled_from(["WRAP", "SAT", "FAIL"])),
)

COMMAND_CALLS = st.one_of(
    st.tuples(st.just("SETBIT"), KEYS, BIT_OFFSETS, st.sampled_from(["0", "1", "1", "2"])),
    st.tuples(st.just("GETBIT"), KEYS, BIT_OFFSETS),
    st.tuples(st.just("BITCOUNT"), KEYS),
    st.tuples(st.just("BITCOUNT"), KEYS, INDEXES, INDEXES),
    st.tuples(st.just("BITCOUNT"), KEYS, INDEXES, INDEXES, UNITS),
    st.tuples(st.just("BITPOS"), KEYS, st.sampled_from(["0", "1"])),
    st.tuples(st.just("BITPOS"), KEYS, st.sampled_from(["0", "1"]), INDEXES),
    st.tuples(st.just("BITPOS"), KEYS, st.sampled_from(["0", "1"]), INDEXES, INDEXES),
    st.tuples(st.just("BITPOS"), KEYS, st.sampled_from(["0", "1"]), INDEXES, INDEXES, UNITS),
    st.builds(lambda op, dest, srcs: ("BITOP", op, dest, *srcs),
              st.sampled_from(["AND", "OR", "XOR"]), KEYS, st.lists(KEYS, min_size=1,
                                                                     max_size=3)),
    st.tuples(st.just("BITOP"), st.just("NOT"), KEYS, KEYS),
    st.builds(lambda key, ops: ("BITFIELD", key, *itertools.chain(*ops)), KEYS,
              st.lists(FIELD_OPS, max_size=4)),
    st.builds(lambda key, ops: ("BITFIELD_RO", key, *itertools.chain(*ops)), KEYS,
              st.lists(st.tuples(st.just("GET"), FIELD_KINDS, FIELD_OFFSETS), max_size=3)),
    st.tuples(st.just("SET"), KEYS, SMALL_VALUES),
    st.tuples(st.just("APPEND"), KEYS, SMALL_VALUES),
    st.tuples(st.just("GET"), KEYS),
)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(SMALL_VALUES, min_size=3, max_size=3),
       st.lists(COMMAND_CALLS, min_size=3, max_size=25))
def test_random_sequences(differ: Differ, values: list[bytes],
                          calls: list[tuple[object, ...]]) -> None:
    differ.flush()
    other_types(differ)
    for key, value in zip("abc", values, strict=True):
        differ("SET", key, value)
    for args in calls:
        differ(*args)
    contents(differ, "a", "b", "c", "h")
