"""The HyperLogLog algorithm on its own (no keyspace), checked against outputs captured
from redis-server 7.0.15, and the commands' contract with the keyspace."""

from __future__ import annotations

import hashlib
import random
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.commands import hyperloglog as hll
from respkv.commands.hyperloglog import CorruptedHll, HllBuffer
from respkv.protocol.reply import OK, Simple
from respkv.state.keyspace import Keyspace

HEADER_SPARSE = b"HYLL\x01\x00\x00\x00" + bytes(7) + b"\x80"


def build(items: list[bytes], chunk: int = 1000) -> bytes:
    """An HLL made by PFADDs of ``chunk`` elements at a time, as the captures were."""
    value = hll.empty_sparse()
    for i in range(0, len(items), chunk):
        value, _ = hll.add(value, items[i:i + chunk])
    return value


def numbered(prefix: bytes, n: int) -> list[bytes]:
    return [prefix + b"%d" % i for i in range(n)]


# -- known outputs of redis-server -----------------------------------------------------


@pytest.mark.parametrize(("element", "index", "run"), [
    (b"a", 12711, 2), (b"b", 15780, 1), (b"hello", 9216, 1), (b"", 5938, 2),
    (b"12345678", 10579, 3), (b"123456789abcdefgh", 1958, 3),
])
def test_pattern(element: bytes, index: int, run: int) -> None:
    """From PFDEBUG DECODE of a one-element HLL: Z:index v:run,1 Z:rest."""
    assert hll.pattern(element) == (index, run)
    value, updated = hll.add(hll.empty_sparse(), [element])
    assert updated
    decoded = b"Z:%d v:%d,1 Z:%d" % (index, run, hll.REGISTERS - index - 1)
    assert hll.decode_sparse(value) == decoded


def test_empty_and_small() -> None:
    assert hll.empty_sparse() == b"HYLL\x01" + bytes(11) + b"\x7f\xff"
    assert hll.count(hll.empty_sparse()) == 0
    value, _ = hll.add(hll.empty_sparse(), [b"a", b"b", b"c"])
    assert value.hex() == "48594c4c01000000000000000000008060f38050b1844bfb80425a"
    assert hll.count(value) == 3


@pytest.mark.parametrize(("n", "card", "encoding", "size", "digest"), [
    (10, 10, "sparse", 48, "6a449b9f8f4f73ea34153157833b9e4e3ccf50d6"),
    (100, 100, "sparse", 285, "10284d924957df904fe939f436df8ee09605b6ef"),
    (1000, 1008, "sparse", 1906, "5b90d5bb9790139af3f5b0b6e8ffc2ab1fcc86da"),
    (10000, 9973, "dense", 12304, "bbf1b0a6391cb55921ea3c8bf3d7ee8ea02b7791"),
    (100000, 100853, "dense", 12304, "963e6cee79a81da7857234caac0f76085c89dd79"),
])
def test_known_hlls(n: int, card: int, encoding: str, size: int, digest: str) -> None:
    value = build(numbered(b"e", n))
    assert hll.count(value) == card
    value = hll.with_cardinality(value, card)  # captured after a PFCOUNT
    assert (value[4] == hll.SPARSE) == (encoding == "sparse")
    assert len(value) == size
    assert hashlib.sha1(value).hexdigest() == digest
    assert hll.count(value) == card
    assert hll.count(hll.to_dense(value)) == card


def test_promotion_point() -> None:
    """One element at a time, Redis turned dense at e1683 from a 3000-byte sparse."""
    buffer = HllBuffer(hll.empty_sparse())
    for i in range(1683):
        buffer.add(b"e%d" % i)
    assert not buffer.is_dense and len(buffer.data) == 3000
    buffer.add(b"e1683")
    assert buffer.is_dense and len(buffer.data) == hll.DENSE_SIZE


def test_known_merge() -> None:
    a = build(numbered(b"a", 500))
    b = build(numbered(b"b", 700))
    raw, dense = hll.merge_registers([a, b])
    assert not dense
    merged = hll.merge_into(hll.empty_sparse(), raw, dense)
    assert len(merged) == 2217
    assert hashlib.sha1(merged).hexdigest() == "e5893766fb5020f70a1eb14e4c6c6d1d27c73942"
    assert hll.count(merged) == 1206
    assert hll.estimate(hll.raw_histogram(raw)) == 1206


# -- representations -------------------------------------------------------------------


def test_dense_packing_round_trip() -> None:
    rng = random.Random(3)
    raw = bytes(rng.randrange(64) for _ in range(hll.REGISTERS))
    dense = hll.raw_to_dense(raw)
    assert len(dense) == hll.DENSE_REGISTER_BYTES
    assert hll.dense_to_raw(dense) == raw
    value = hll.HEADER_SIZE * b"\x00" + dense
    assert all(hll.dense_register(value, i) == raw[i] for i in range(hll.REGISTERS))
    packed = rng.randbytes(hll.DENSE_REGISTER_BYTES)
    assert hll.raw_to_dense(hll.dense_to_raw(packed)) == packed


def test_dense_set_matches_packing() -> None:
    rng = random.Random(4)
    data = bytearray(b"HYLL" + bytes(12) + bytes(hll.DENSE_REGISTER_BYTES))
    expected = bytearray(hll.REGISTERS)
    for _ in range(3000):
        index, value = rng.randrange(hll.REGISTERS), rng.randrange(1, 64)
        grew = hll._dense_set(data, index, value)
        assert grew == (value > expected[index])
        expected[index] = max(expected[index], value)
    for index in (0, 1, 2, 3, hll.REGISTERS - 1):
        hll._dense_set(data, index, 63)
        expected[index] = 63
    assert hll.dense_to_raw(bytes(data[hll.HEADER_SIZE:])) == bytes(expected)


@pytest.mark.parametrize("seed", range(5))
def test_raw_max(seed: int) -> None:
    rng = random.Random(seed)
    a = bytes(rng.randrange(64) for _ in range(hll.REGISTERS))
    b = bytes(rng.choice((0, 1, 2, 63, rng.randrange(64))) for _ in range(hll.REGISTERS))
    assert hll.raw_max(a, b) == bytes(map(max, a, b))
    assert hll.raw_max(b, a) == bytes(map(max, a, b))
    assert hll.raw_max(a, a) == a


def test_is_hll() -> None:
    assert hll.is_hll(hll.empty_sparse())
    assert hll.is_hll(HEADER_SPARSE)  # no opcodes: valid here, corrupted for the rest
    assert hll.is_hll(b"HYLL\x00" + bytes(11) + bytes(hll.DENSE_REGISTER_BYTES))
    for bad in (b"", b"HYLL\x01", b"HYLX\x01" + bytes(11), b"HYLL\x02" + bytes(11),
                b"HYLL\x00" + bytes(11) + bytes(hll.DENSE_REGISTER_BYTES - 1)):
        assert not hll.is_hll(bad)


@pytest.mark.parametrize("payload", [b"", b"\x7f\xfe", b"\x7f\xff\x00", b"\x7f\xff\x80",
                                     b"\x3f" * 300])
def test_corrupted_sparse(payload: bytes) -> None:
    value = HEADER_SPARSE + payload
    with pytest.raises(CorruptedHll):
        hll.sparse_to_raw(value)
    with pytest.raises(CorruptedHll):
        hll.count(value)
    with pytest.raises(CorruptedHll):
        hll.to_dense(value)


def test_promotion_by_value() -> None:
    """A value above 32 has no VAL opcode: the whole HLL turns dense first."""
    sparse, _ = hll.add(hll.empty_sparse(), [b"a", b"b"])
    sparse = hll.with_cardinality(sparse, 2)
    buffer = HllBuffer(sparse)
    assert buffer.set(100, 40) == 1
    assert buffer.is_dense
    value = buffer.value()
    assert value[:16] == sparse[:4] + b"\x00" + sparse[5:16]  # header, cache included
    raw = bytearray(hll.sparse_to_raw(sparse))
    raw[100] = 40
    assert hll.dense_to_raw(value[16:]) == bytes(raw)


SETS = st.lists(st.tuples(st.integers(0, hll.REGISTERS - 1), st.integers(1, 32)),
                max_size=400)


@given(SETS, st.booleans())
@settings(max_examples=60, deadline=None)
def test_remembered_opcodes_change_nothing(sets: list[tuple[int, int]], ordered: bool) -> None:
    """Updates through one buffer (which skips the opcodes it already walked) give the
    bytes of updates each made from scratch."""
    if ordered:
        sets.sort()
    kept = HllBuffer(hll.empty_sparse())
    value = hll.empty_sparse()
    for index, run in sets:
        fresh = HllBuffer(value)
        assert kept.set(index, run) == fresh.set(index, run)
        value = fresh.value()
        assert kept.value() == value


def test_estimate_edges() -> None:
    assert hll.estimate([hll.REGISTERS] + [0] * (hll.Q + 1)) == 0
    assert hll.estimate([0] * (hll.Q + 2)) == 1 << 63  # registers all above Q+1
    full = [0] * (hll.Q + 2)
    full[hll.Q + 1] = hll.REGISTERS
    assert hll.estimate(full) == 1 << 63
    assert hll.signed64(1 << 63) == -(1 << 63)
    assert hll.signed64(5) == 5


def test_self_test() -> None:
    assert hll.self_test() is None
    assert hll.pfselftest(None, None, [b"PFSELFTEST"]) == OK


# -- the commands and the keyspace --------------------------------------------------------


def test_pfcount_writes_the_cache(run, db: Keyspace) -> None:
    assert run("PFADD", "h", "a", "b", "c") == 1
    assert db.data[b"h"][15] & 0x80
    assert run("PFCOUNT", "h") == 3
    assert hll.cached_cardinality(db.data[b"h"]) == 3
    assert run("PFADD", "h", "a") == 0
    assert hll.cached_cardinality(db.data[b"h"]) == 3
    before = dict(db.data)
    db.dirty.clear()
    assert run("PFCOUNT", "h", "missing") == 3  # several keys: nothing written
    assert db.data == before and not db.dirty


def test_ttl_kept(run, db: Keyspace) -> None:
    run("PFADD", "h", "a")
    db.set_expire(b"h", 10**15)
    run("PFADD", "h", "b")
    run("PFCOUNT", "h")
    run("PFMERGE", "h", "h")
    run("PFDEBUG", "TODENSE", "h")
    assert db.ttl_ms(b"h") == 10**15
    run("PFMERGE", "new", "h")
    assert db.ttl_ms(b"new") is None


def test_failed_pfadd_changes_nothing(run, err, db: Keyspace) -> None:
    """Redis keeps the registers it set before meeting the corruption; here a failed
    write changes nothing (apply must not half-do a command)."""
    run("SET", "c", HEADER_SPARSE + b"\x7f\xfe")
    inside = next(b"k%d" % i for i in range(10**5) if hll.pattern(b"k%d" % i)[0] < 16383)
    outside = next(b"k%d" % i for i in range(10**5) if hll.pattern(b"k%d" % i)[0] == 16383)
    before = db.data[b"c"]
    assert err(run("PFADD", "c", inside, outside)) == "INVALIDOBJ Corrupted HLL object detected"
    assert db.data[b"c"] == before


def test_errors(run, err) -> None:
    run("SET", "s", "plain")
    run("RPUSH", "l", "a")
    not_hll = "WRONGTYPE Key is not a valid HyperLogLog string value."
    assert err(run("PFADD", "s", "a")) == not_hll
    assert err(run("PFCOUNT", "l")).startswith("WRONGTYPE Operation against")
    assert err(run("PFMERGE", "d", "s")) == not_hll
    assert err(run("PFDEBUG", "GETREG", "missing")) == "ERR The specified key does not exist"
    run("PFADD", "h", "a")
    assert err(run("PFDEBUG", "what", "h")) == "ERR Unknown PFDEBUG subcommand 'what'"
    assert run("PFDEBUG", "ENCODING", "h") == Simple("sparse")
    assert run("PFDEBUG", "TODENSE", "h") == 1
    assert err(run("PFDEBUG", "DECODE", "h")) == "ERR HLL encoding is not sparse"
    assert len(run("PFDEBUG", "GETREG", "h")) == hll.REGISTERS


def test_pfcount_overflowing_estimate(run) -> None:
    """All registers at 63 make Redis' llroundl overflow: it answers INT64_MIN, and the
    stored cardinality keeps the stale bit set."""
    run("SET", "d", b"HYLL\x00" + bytes(10) + b"\x80" + b"\xff" * hll.DENSE_REGISTER_BYTES)
    assert run("PFCOUNT", "d") == -(1 << 63)
    assert run("GET", "d")[8:16] == struct.pack("<Q", 1 << 63)


# -- costs -------------------------------------------------------------------------------


def test_costs() -> None:
    """PFADD on a dense HLL touches two bytes, not its 16384 registers; PFCOUNT and
    PFMERGE work on whole strings at C speed."""
    db = Keyspace()
    hll.pfadd(db, [b"pfadd", b"d", *numbered(b"x", 20000)], 0)
    assert db.data[b"d"][4] == hll.DENSE
    start = time.perf_counter()
    for i in range(2000):
        hll.pfadd(db, [b"pfadd", b"d", b"y%d" % i], 0)
    assert (time.perf_counter() - start) / 2000 < 200e-6
    start = time.perf_counter()
    for _ in range(20):
        db.data[b"d"] = hll.mark_stale(db.data[b"d"])
        hll.pfcount(db, [b"pfcount", b"d"], 0)
    assert (time.perf_counter() - start) / 20 < 10e-3
    hll.pfadd(db, [b"pfadd", b"a", *numbered(b"a", 1200)], 0)
    hll.pfadd(db, [b"pfadd", b"b", *numbered(b"b", 1200)], 0)
    start = time.perf_counter()
    hll.pfmerge(db, [b"pfmerge", b"m", b"a", b"b"], 0)
    hll.pfcount(db, [b"pfcount", b"a", b"b", b"d"], 0)
    assert time.perf_counter() - start < 0.5
