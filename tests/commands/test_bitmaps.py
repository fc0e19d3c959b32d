"""Bitmap commands and LCS: the handlers' contracts (TTLs, what a write leaves, key
positions) and the helpers checked against plain reference versions (chunked bit
scans, the bit-parallel LCS table and its walk)."""

from __future__ import annotations

import pytest
from commands_support import NOW
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.commands import bitmaps
from respkv.commands.strings import lcs_rows, lcs_walk
from respkv.commands.table import COMMANDS, Kind
from respkv.state.values import HashValue

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
BIT_OFFSET = "ERR bit offset is not an integer or out of range"


# -- the table -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind", "family"), [
    ("setbit", Kind.WRITE, "bitmap"), ("getbit", Kind.READ, "bitmap"),
    ("bitcount", Kind.READ, "bitmap"), ("bitpos", Kind.READ, "bitmap"),
    ("bitop", Kind.WRITE, "bitmap"), ("bitfield", Kind.WRITE, "bitmap"),
    ("bitfield_ro", Kind.READ, "bitmap"), ("lcs", Kind.READ, "string"),
])
def test_kinds_and_families(name: str, kind: Kind, family: str) -> None:
    assert COMMANDS[name].kind is kind
    assert COMMANDS[name].family == family


def test_key_positions() -> None:
    bitop = [b"bitop", b"AND", b"dest", b"a", b"b"]
    assert list(COMMANDS["bitop"].keys(bitop)) == [b"dest", b"a", b"b"]
    assert list(COMMANDS["lcs"].keys([b"lcs", b"a", b"b", b"IDX"])) == [b"a", b"b"]
    assert list(COMMANDS["bitfield"].keys([b"bitfield", b"k", b"GET", b"u8", b"0"])) == [b"k"]


# -- SETBIT / GETBIT -------------------------------------------------------------------


def test_setbit_builds_the_value(run, db) -> None:
    assert run("SETBIT", "k", 9, 1) == 0
    assert db.data[b"k"] == b"\x00\x40"
    assert run("SETBIT", "k", 9, 1) == 1
    assert run("SETBIT", "k", 0, 1) == 0
    assert db.data[b"k"] == b"\x80\x40"
    assert run("SETBIT", "k", 0, 0) == 1
    assert run("SETBIT", "k", 23, 0) == 0
    assert db.data[b"k"] == b"\x00\x40\x00"
    assert type(db.data[b"k"]) is bytes


def test_setbit_keeps_ttl(run, db) -> None:
    run("SET", "k", "v", "PX", 10_000)
    run("SETBIT", "k", 100, 1)
    assert db.expires[b"k"] == NOW + 10_000


def test_setbit_unchanged_bit_writes_nothing(run, db) -> None:
    run("SET", "k", b"\x80")
    db.dirty.clear()
    assert run("SETBIT", "k", 0, 1) == 1
    assert run("SETBIT", "k", 3, 0) == 0
    assert not db.dirty


def test_setbit_expired_key_starts_afresh(run, db) -> None:
    run("SET", "k", b"\xff", "PX", 10)
    assert run("SETBIT", "k", 1, 1, now=NOW + 20) == 0
    assert db.data[b"k"] == b"\x40"
    assert b"k" not in db.expires


def test_offset_limit(run, err, db) -> None:
    assert run("GETBIT", "k", 4294967295) == 0
    assert err(run("SETBIT", "k", 4294967296, 1)) == BIT_OFFSET
    assert err(run("BITFIELD", "k", "SET", "u8", "#536870912", 1)) == BIT_OFFSET
    assert b"k" not in db.data


def test_errors_come_before_the_type(run, err, db) -> None:
    db.set(b"h", HashValue({b"f": b"v"}))
    assert err(run("SETBIT", "h", -1, 1)) == BIT_OFFSET
    assert err(run("SETBIT", "h", 0, 2)) == "ERR bit is not an integer or out of range"
    assert err(run("SETBIT", "h", 0, 1)) == WRONGTYPE
    assert err(run("BITFIELD", "h", "GET", "u64", 0)).startswith("ERR Invalid bitfield type")
    assert err(run("BITFIELD_RO", "h", "SET", "u8", 0, 1)) == (
        "ERR BITFIELD_RO only supports the GET subcommand")


# -- BITOP -------------------------------------------------------------------------------


def test_bitop_result_and_ttl(run, db) -> None:
    run("SET", "a", b"\xf0\x0f")
    run("SET", "b", b"\xff")
    run("SET", "d", "x", "PX", 10_000)
    assert run("BITOP", "AND", "d", "a", "b") == 2
    assert db.data[b"d"] == b"\xf0\x00"
    assert b"d" not in db.expires
    assert run("BITOP", "NOT", "d", "b") == 1
    assert db.data[b"d"] == b"\x00"
    assert run("BITOP", "OR", "d", "missing") == 0
    assert b"d" not in db.data


def test_bitop_wrongtype_leaves_destination(run, err, db) -> None:
    db.set(b"h", HashValue({b"f": b"v"}))
    run("SET", "d", "keep")
    assert err(run("BITOP", "OR", "d", "missing", "h")) == WRONGTYPE
    assert db.data[b"d"] == b"keep"


# -- BITFIELD ------------------------------------------------------------------------------


def test_bitfield_failed_write_creates_zeros(run, db) -> None:
    assert run("BITFIELD", "k", "OVERFLOW", "FAIL", "SET", "u8", 8, 1000) == [None]
    assert db.data[b"k"] == b"\x00\x00"


def test_bitfield_reads_create_nothing(run, db) -> None:
    assert run("BITFIELD", "k", "GET", "u8", 0, "GET", "i64", 100) == [0, 0]
    assert b"k" not in db.data


def test_bitfield_keeps_ttl(run, db) -> None:
    run("SET", "k", "v", "PX", 10_000)
    assert run("BITFIELD", "k", "INCRBY", "u8", 0, 1) == [ord("v") + 1]
    assert db.expires[b"k"] == NOW + 10_000


@given(st.binary(max_size=12), st.integers(0, 120), st.integers(1, 64), st.booleans())
def test_read_field_like_bit_by_bit(data: bytes, offset: int, bits: int, signed: bool) -> None:
    expected = 0
    for k in range(offset, offset + bits):
        bit = data[k >> 3] >> (7 - (k & 7)) & 1 if k >> 3 < len(data) else 0
        expected = expected << 1 | bit
    if signed and expected >> (bits - 1):
        expected -= 1 << bits
    assert bitmaps.read_field(data, offset, bits, signed) == expected


@given(st.binary(min_size=10, max_size=12), st.integers(0, 16), st.integers(1, 64),
       st.integers(0, (1 << 64) - 1))
def test_write_field_round_trip(data: bytes, offset: int, bits: int, value: int) -> None:
    buffer = bytearray(data)
    bitmaps.write_field(buffer, offset, bits, value)
    assert bitmaps.read_field(buffer, offset, bits, False) == value % (1 << bits)
    for k in (*range(offset), *range(offset + bits, 8 * len(data))):  # the rest untouched
        assert buffer[k >> 3] >> (7 - (k & 7)) & 1 == data[k >> 3] >> (7 - (k & 7)) & 1


# -- bit scans across chunks ----------------------------------------------------------------


def _bits(data: bytes) -> list[int]:
    return [byte >> (7 - k) & 1 for byte in data for k in range(8)]


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=20), st.data())
def test_scans_across_chunks(data: bytes, draw) -> None:
    first = draw.draw(st.integers(0, 8 * len(data) - 1))
    last = draw.draw(st.integers(first, 8 * len(data) - 1))
    bits = _bits(data)[first : last + 1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bitmaps, "_CHUNK", 3)  # so that short strings cross several
        assert bitmaps.count_bits(data, first, last) == sum(bits)
        for target in (0, 1):
            expected = bits.index(target) + first if target in bits else -1
            assert bitmaps.first_bit(data, first, last, target) == expected


# -- LCS ---------------------------------------------------------------------------------------


def reference_lcs(a: bytes, b: bytes, min_len: int, with_len: bool):
    """Redis' lcsCommand, transcribed: the full table, then the walk back."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = (table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1]
                           else max(table[i - 1][j], table[i][j - 1]))
    unset = len(a)
    a_start, a_end, b_start, b_end = unset, 0, 0, 0
    chars, ranges = bytearray(), []
    i, j = len(a), len(b)
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            chars.append(a[i - 1])
            if a_start == unset:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start, b_start = a_start - 1, b_start - 1
            else:
                emit = True
            emit = emit or a_start == 0 or b_start == 0
            i, j = i - 1, j - 1
        else:
            if table[i - 1][j] > table[i][j - 1]:
                i -= 1
            else:
                j -= 1
            emit = a_start != unset
        if emit:
            length = a_end - a_start + 1
            if min_len == 0 or length >= min_len:
                ranges.append([[a_start, a_end], [b_start, b_end], *([length] if with_len else [])])
            a_start = unset
    return bytes(reversed(chars)), ranges, table[len(a)][len(b)]


@settings(max_examples=500)
@given(st.binary(max_size=20) | st.text("ab", max_size=30).map(str.encode),
       st.binary(max_size=20) | st.text("abc", max_size=30).map(str.encode),
       st.integers(0, 4), st.booleans())
def test_lcs_like_redis_table(a: bytes, b: bytes, min_len: int, with_len: bool) -> None:
    common, ranges, length = reference_lcs(a, b, min_len, with_len)
    rows = lcs_rows(a, b)
    assert len(b) - rows[-1].bit_count() == length
    assert lcs_rows(a, b, keep=False)[-1] == rows[-1]
    assert lcs_walk(a, b, rows, min_len, with_len) == (common, ranges)


def test_lcs_replies(run, err, db) -> None:
    run("SET", "a", "ohmytext")
    run("SET", "b", "mynewtext")
    assert run("LCS", "a", "b") == b"mytext"
    assert run("LCS", "a", "b", "LEN") == 6
    assert run("LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN") == {
        b"matches": [[[4, 7], [5, 8], 4]], b"len": 6}
    db.set(b"h", HashValue({b"f": b"v"}))
    assert err(run("LCS", "a", "h")) == "ERR The specified keys must contain string values"


def test_lcs_big_strings_are_quick(run) -> None:
    """The largest strings Redis accepts: the bit-parallel table makes them cheap."""
    a = bytes((i * 31 + i // 7) % 251 for i in range(11584))
    b = bytes((i * 17 + i // 5) % 253 for i in range(11584))
    run("SET", "a", a)
    run("SET", "b", b)
    common = run("LCS", "a", "b")
    assert run("LCS", "a", "b", "LEN") == len(common)
