"""HyperLogLog commands against a real redis-server 7.0, byte for byte in RESP2 and RESP3.

The values are Redis' own representation, so after every change GET of the key is
compared too: the sparse opcodes, the promotion to dense, the registers and the
cached cardinality (with its stale bit) must be the same bytes as Redis'.
"""

from __future__ import annotations

import random
import struct

import pytest
from commands_support import BINARY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_diff import Differ, RawConnection

from respkv.commands import hyperloglog as hll
from respkv.commands.table import COMMANDS
from respkv.protocol.reply import encode
from respkv.state.values import HashValue, ListValue

HLL_COMMANDS = ("pfadd", "pfcount", "pfmerge", "pfdebug", "pfselftest")
HEADER_SPARSE = b"HYLL\x01\x00\x00\x00" + bytes(7) + b"\x80"
HEADER_DENSE = b"HYLL\x00\x00\x00\x00" + bytes(7) + b"\x80"
FAR_FUTURE = 4_102_444_800  # 2100-01-01, in seconds


def other_types(differ: Differ) -> None:
    """``h`` a hash and ``l`` a list on every side, ``str`` a plain string."""
    differ("SET", "str", "not an hll")
    differ.put(b"h", HashValue({b"f": b"v"}), b"HSET", b"h", b"f", b"v")
    differ.put(b"l", ListValue([b"a"]), b"RPUSH", b"l", b"a")


def state(differ: Differ, *keys: str | bytes) -> None:
    """Each key's bytes, type and encoding."""
    for key in keys:
        differ("GET", key)
        differ("TYPE", key)
        differ("PFDEBUG", "ENCODING", key)
        differ("OBJECT", "ENCODING", key)


def elements(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + n)]


def add_many(differ: Differ, key: str, items: list[str], chunk: int = 500) -> None:
    for i in range(0, len(items), chunk):
        differ("PFADD", key, *items[i:i + chunk])


# -- the table -----------------------------------------------------------------------


@pytest.mark.parametrize("name", HLL_COMMANDS[:4])
def test_arity(differ: Differ, name: str) -> None:
    arity = COMMANDS[name].arity
    for argc in range(1, abs(arity) + 3):
        if not COMMANDS[name].arity_ok(argc):
            differ(name.upper(), *["1"] * (argc - 1))


def test_pfselftest(redis_port: int) -> None:
    for resp3 in (False, True):
        connection = RawConnection(redis_port, 0, resp3=resp3)
        try:
            theirs = connection.call(b"PFSELFTEST")
        finally:
            connection.close()
        ours = COMMANDS["pfselftest"].handler(None, None, [b"PFSELFTEST"])
        assert encode(ours, resp3) == theirs


# -- PFADD / PFCOUNT -------------------------------------------------------------------


def test_pfadd_new_and_existing(differ: Differ) -> None:
    differ("PFADD", "empty")  # created, with its cache marked stale
    state(differ, "empty")
    differ("PFADD", "empty")  # no element, nothing changes
    differ("PFCOUNT", "empty")
    state(differ, "empty")
    differ("PFADD", "h1", "a", "b", "c")
    state(differ, "h1")
    differ("PFADD", "h1", "a", "b")
    differ("PFADD", "h1", "a", "d", "a")
    state(differ, "h1")
    differ("PFADD", BINARY, BINARY, b"", b"\x00", b"x" * 1000, b"12345678", b"1234567")
    state(differ, BINARY)
    differ("PFCOUNT", BINARY)
    differ("STRLEN", "h1")


def test_pfcount_cache(differ: Differ) -> None:
    differ("PFCOUNT", "missing")
    differ("PFCOUNT", "missing", "missing2")
    add_many(differ, "s", elements("e", 300))
    differ("GET", "s")  # stale
    differ("PFCOUNT", "s")
    differ("GET", "s")  # the cardinality written in the header
    differ("PFCOUNT", "s")
    differ("PFADD", "s", "e1", "e2")  # no register changes: the cache stays valid
    differ("GET", "s")
    differ("PFADD", "s", "new element")
    differ("GET", "s")
    differ("PFCOUNT", "s")
    differ("GET", "s")


def test_pfcount_known_sizes(differ: Differ) -> None:
    for n in (1, 10, 100, 1000, 5000, 30000):
        key = f"n{n}"
        add_many(differ, key, elements("v", n), chunk=2000)
        differ("PFCOUNT", key)
        state(differ, key)
    differ("PFCOUNT", "n1", "n10", "n100", "n1000", "n5000", "n30000", "missing")
    differ("PFCOUNT", "n30000", "n30000")
    for key in ("n1", "n30000"):
        differ("GET", key)  # untouched by a PFCOUNT of several keys


def test_promotion_to_dense(differ: Differ) -> None:
    """Sparse until the next change would pass hll-sparse-max-bytes (3000)."""
    add_many(differ, "p", elements("e", 1600), chunk=400)
    state(differ, "p")
    for i in range(1600, 1700):  # e1683 promotes it, one element at a time
        differ("PFADD", "p", f"e{i}")
        differ("GET", "p")
    differ("PFDEBUG", "ENCODING", "p")
    differ("PFCOUNT", "p")
    differ("PFADD", "p", *elements("f", 50))
    state(differ, "p")


def test_dense_updates(differ: Differ) -> None:
    add_many(differ, "d", elements("x", 20000), chunk=5000)
    state(differ, "d")
    differ("PFCOUNT", "d")
    differ("PFADD", "d", "x1")
    differ("GET", "d")
    for i in range(30):
        differ("PFADD", "d", f"y{i}")
        differ("GET", "d")
    differ("PFCOUNT", "d")
    differ("GET", "d")


def test_ttl_kept(differ: Differ) -> None:
    differ("PFADD", "t", "a")
    differ("EXPIREAT", "t", FAR_FUTURE)
    differ("PFADD", "t", "b")
    differ("PFCOUNT", "t")
    differ("PFMERGE", "t", "t")
    differ("PFDEBUG", "TODENSE", "t")
    differ("EXPIRETIME", "t")
    differ("GET", "t")


# -- PFMERGE ---------------------------------------------------------------------------


def test_pfmerge_sparse(differ: Differ) -> None:
    differ("PFMERGE", "m")  # a new empty HLL, cache stale
    state(differ, "m")
    differ("PFMERGE", "m2", "missing1", "missing2")
    state(differ, "m2")
    add_many(differ, "a", elements("a", 300))
    add_many(differ, "b", elements("b", 200))
    differ("PFMERGE", "ab", "a", "b")
    state(differ, "ab")
    differ("PFCOUNT", "ab")
    differ("PFMERGE", "ab", "a")  # into an existing sparse destination
    state(differ, "ab")
    differ("PFCOUNT", "a")
    differ("PFMERGE", "a")  # only the destination: its cache is marked stale
    state(differ, "a")
    differ("PFMERGE", "b", "b", "b")
    state(differ, "b")


def test_pfmerge_promotes_midway(differ: Differ) -> None:
    add_many(differ, "a", elements("a", 1200))
    add_many(differ, "b", elements("b", 1200))
    state(differ, "a", "b")
    differ("PFMERGE", "c", "a", "b")  # two sparse HLLs whose union does not fit
    state(differ, "c")
    differ("PFCOUNT", "c")
    differ("PFCOUNT", "a", "b")
    differ("PFMERGE", "a", "b")  # into a sparse destination that promotes
    state(differ, "a")


def test_pfmerge_dense(differ: Differ) -> None:
    add_many(differ, "d", elements("d", 8000), chunk=4000)
    add_many(differ, "s", elements("s", 100))
    differ("PFCOUNT", "s")
    differ("PFMERGE", "s", "d")  # a sparse destination with a dense source turns dense
    state(differ, "s")
    differ("PFCOUNT", "s")
    differ("PFMERGE", "d", "missing", "s")
    state(differ, "d")
    add_many(differ, "s2", elements("t", 100))
    differ("PFMERGE", "new", "s2", "d", "s2")
    state(differ, "new")
    differ("PFCOUNT", "new", "s2", "d")


# -- PFDEBUG ---------------------------------------------------------------------------


def test_pfdebug(differ: Differ) -> None:
    differ("PFDEBUG", "ENCODING", "missing")
    differ("PFDEBUG", "nosuch", "missing")
    differ("PFADD", "h", "a", "b", "c", "d")
    differ("PFDEBUG", "DECODE", "h")
    differ("PFDEBUG", "decode", "h")
    differ("PFDEBUG", "Encoding", "h")
    differ("PFDEBUG", "nosuch", "h")
    differ("PFDEBUG", b"bad\x00sub", "h")
    differ("PFDEBUG", "GETREG", "h")  # turns it dense
    state(differ, "h")
    differ("PFDEBUG", "DECODE", "h")
    differ("PFDEBUG", "GETREG", "h")
    differ("PFADD", "h2", "x")
    differ("PFDEBUG", "TODENSE", "h2")
    differ("PFDEBUG", "TODENSE", "h2")
    state(differ, "h2")
    differ("PFADD", "h3")
    differ("PFDEBUG", "DECODE", "h3")
    differ("SET", "bare", b"HYLL\x01" + bytes(11))  # sparse, no opcodes at all
    differ("PFDEBUG", "DECODE", "bare")
    differ("PFDEBUG", "GETREG", "bare")


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    ("PFADD", "{key}", "a"), ("PFADD", "{key}"), ("PFCOUNT", "{key}"),
    ("PFCOUNT", "missing", "{key}"), ("PFMERGE", "{key}", "missing"),
    ("PFMERGE", "missing", "{key}"), ("PFDEBUG", "ENCODING", "{key}"),
    ("PFDEBUG", "nosuch", "{key}"), ("PFDEBUG", "GETREG", "{key}"),
])
@pytest.mark.parametrize("key", ["str", "h", "l", "short", "badenc", "longdense", "shortdense",
                                 "num", "magic"])
def test_wrong_type(differ: Differ, call: tuple[str, ...], key: str) -> None:
    other_types(differ)
    differ("SET", "short", "HYLL\x01")
    differ("SET", "badenc", b"HYLL\x02" + bytes(11))
    differ("SET", "longdense", HEADER_DENSE + bytes(12289))
    differ("SET", "shortdense", HEADER_DENSE + bytes(12287))
    differ("SET", "num", "1234567890123456")
    differ("SET", "magic", b"HYLX\x01" + bytes(11) + b"\x7f\xff")
    differ(*[part.format(key=key) for part in call])
    differ("GET", "missing")
    differ("EXISTS", key)


def test_error_order(differ: Differ) -> None:
    """Keys are checked in order: the first bad one gives the error."""
    other_types(differ)
    differ("SET", "corrupt", HEADER_SPARSE + b"\x7f\xfe")  # 16383 registers
    differ("PFADD", "ok", "a")
    differ("PFCOUNT", "ok", "corrupt", "h")
    differ("PFCOUNT", "ok", "h", "corrupt")
    differ("PFCOUNT", "ok", "str", "corrupt")
    differ("PFMERGE", "ok", "corrupt", "l")
    differ("PFMERGE", "ok", "l", "corrupt")
    differ("PFMERGE", "h", "ok")
    differ("PFMERGE", "str", "ok")
    state(differ, "ok")


def _pattern_index(predicate) -> str:
    for i in range(100_000):
        if predicate(*hll.pattern(b"k%d" % i)):
            return f"k{i}"
    raise AssertionError("no such element")


def test_corrupted_sparse(differ: Differ) -> None:
    short = HEADER_SPARSE + b"\x7f\xfe"  # covers registers 0..16382 only
    differ("SET", "c", short)
    inside = _pattern_index(lambda index, run: index < 16383 and run == 1)
    outside = _pattern_index(lambda index, run: index == 16383)
    differ("PFCOUNT", "c")
    differ("PFCOUNT", "c", "c")
    differ("PFMERGE", "dest", "c")
    differ("EXISTS", "dest")
    differ("PFDEBUG", "GETREG", "c")
    differ("PFDEBUG", "TODENSE", "c")
    differ("PFDEBUG", "DECODE", "c")
    differ("PFDEBUG", "ENCODING", "c")
    differ("PFADD", "c", outside)  # no opcode covers it
    differ("SET", "c", short)
    differ("PFADD", "c", inside)  # one does: Redis updates it all the same
    differ("GET", "c")
    differ("PFCOUNT", "c")
    long = HEADER_SPARSE + b"\x7f\xff\x00"  # 16385 registers
    differ("SET", "l", long)
    differ("PFCOUNT", "l")
    differ("PFCOUNT", "l", "l")
    differ("PFADD", "l", inside)
    differ("GET", "l")
    differ("PFDEBUG", "TODENSE", "l")
    trailing = HEADER_SPARSE + b"\x7f\xff\x80"  # a VAL after the last register
    differ("SET", "t", trailing)
    differ("PFCOUNT", "t")  # the histogram counts it: corrupted
    differ("PFCOUNT", "t", "missing")  # a merge stops before it: fine
    differ("PFMERGE", "t2", "t")
    differ("GET", "t2")
    differ("PFDEBUG", "TODENSE", "t")
    differ("GET", "t")


def test_truncated_xzero(differ: Differ) -> None:
    """An XZERO cut short at the end reads a NUL as its low byte (the sds terminator),
    here covering the registers up to 16384 exactly; updates split it in place."""
    differ("SET", "x", HEADER_SPARSE + b"\x40\xfe\x7f")
    for element in ("k1", "k2", "k3"):
        differ("PFADD", "x", element)
        differ("GET", "x")
    differ("PFCOUNT", "x")
    differ("SET", "y", HEADER_SPARSE + b"\x7f")
    differ("PFADD", "y", "k1")
    differ("GET", "y")
    differ("PFCOUNT", "y")


def test_crafted_dense(differ: Differ) -> None:
    """Dense payloads Redis never writes itself: registers above Q+1, all at the maximum
    (the estimate overflows), random bytes; and caches set by hand."""
    rng = random.Random(7)
    payloads = [b"\xff" * 12288, bytes(12288), hll.raw_to_dense(bytes([51] * 16384)),
                hll.raw_to_dense(bytes([50] * 16384)), hll.raw_to_dense(bytes([1] * 16384))]
    payloads += [rng.randbytes(12288) for _ in range(5)]
    payloads += [hll.raw_to_dense(bytes(rng.choice((0, 1, 2, 3, 52)) for _ in range(16384)))]
    for i, payload in enumerate(payloads):
        key = f"d{i}"
        differ("SET", key, HEADER_DENSE + payload)
        differ("PFCOUNT", key)
        differ("GET", key)
        differ("PFCOUNT", key, "missing")
        differ("PFCOUNT", key)
    differ("SET", "cached", b"HYLL\x01\x00\x00\x00" + struct.pack("<Q", 12345) + b"\x7f\xff")
    differ("PFCOUNT", "cached")
    differ("PFADD", "cached", "a")
    differ("GET", "cached")
    differ("SET", "odd", b"HYLL\x01\xaa\xbb\xcc" + bytes(8) + b"\x7f\xff")  # unused bytes set
    differ("PFADD", "odd", *elements("o", 3000))
    state(differ, "odd")
    differ("PFMERGE", "odd2", "odd")
    differ("GET", "odd2")


def test_sparse_opcode_shapes(differ: Differ) -> None:
    """Hand-made sparse HLLs: ZERO, XZERO and VAL runs of every length, then updates that
    split or fuse them."""
    ops = bytearray()
    ops += b"\x00"  # ZERO 1
    ops += b"\x3f"  # ZERO 64
    ops += bytes((0x80 | 0 << 2 | 3,))  # VAL 1 x4
    ops += bytes((0x80 | 1 << 2 | 0,))  # VAL 2 x1
    ops += bytes((0x80 | 1 << 2 | 2,))  # VAL 2 x3
    ops += b"\x40\x40"  # XZERO 65
    ops += b"\x00"
    used = 1 + 64 + 4 + 1 + 3 + 65 + 1
    rest = 16384 - used
    ops += bytes((0x40 | (rest - 1) >> 8, (rest - 1) & 0xFF))
    differ("SET", "s", HEADER_SPARSE + bytes(ops))
    differ("PFCOUNT", "s")
    differ("PFDEBUG", "DECODE", "s")
    for i in range(400):
        differ("PFADD", "s", f"z{i}")
        differ("GET", "s")
    differ("PFDEBUG", "DECODE", "s")
    differ("PFMERGE", "s2", "s")
    differ("GET", "s2")


# -- random sequences -----------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
ELEMENT = st.one_of(st.integers(0, 40).map(lambda i: f"e{i}"), st.binary(max_size=12))
BULK = st.tuples(st.integers(0, 3000), st.integers(1, 1800))  # (start, count) of "n" elements


def _bulk(key: str, span: tuple[int, int]) -> tuple[object, ...]:
    start, n = span
    return ("PFADD", key, *elements("n", n, start))


CALLS = st.one_of(
    st.builds(lambda k, items: ("PFADD", k, *items), KEYS, st.lists(ELEMENT, max_size=6)),
    st.builds(_bulk, KEYS, BULK),
    st.builds(lambda k: ("PFCOUNT", k), KEYS),
    st.builds(lambda ks: ("PFCOUNT", *ks), st.lists(KEYS, min_size=2, max_size=3)),
    st.builds(lambda k, ks: ("PFMERGE", k, *ks), KEYS, st.lists(KEYS, max_size=3)),
    st.builds(lambda k: ("GET", k), KEYS),
    st.builds(lambda k, sub: ("PFDEBUG", sub, k), KEYS,
              st.sampled_from(["ENCODING", "DECODE", "TODENSE"])),
)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(CALLS, min_size=1, max_size=12))
def test_random_sequences(differ: Differ, calls: list[tuple[object, ...]]) -> None:
    differ.flush()
    for args in calls:
        differ(*args)
        if args[0] != "GET":
            for key in ("a", "b", "c"):
                differ("GET", key)
