"""DUMP and RESTORE: payload primitives (CRC64, LZF, listpack, intset, ziplist, zipmap)
on hand-made inputs, round trips of every type, and every error.

The builders here (``payload``, ``listpack``, ``intset``...) write the formats from
their descriptions, independently of respkv.commands.dump, so the parsers are checked
against a second reading of the format; test_dump_vs_redis.py uses them too.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable

import pytest
from commands_support import BINARY, NOW

from respkv.commands import dump as rdb
from respkv.commands.table import COMMANDS, Kind
from respkv.protocol.reply import OK, Reply
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue, ListValue, SetValue, ZSetValue

BUSYKEY = "BUSYKEY Target key name already exists."
BAD_CRC = "ERR DUMP payload version or checksum are wrong"
BAD_FORMAT = "ERR Bad data format"
NOT_INTEGER = "ERR value is not an integer or out of range"

# -- builders ------------------------------------------------------------------------


def crc64_bitwise(data: bytes) -> int:
    """Redis' crc64 (Jones polynomial, reflected, no final xor), a bit at a time."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x95AC9329AC4BC9B5 if crc & 1 else crc >> 1
    return crc


def payload(body: bytes, version: int = 10) -> bytes:
    """A DUMP payload around an object's bytes."""
    versioned = body + struct.pack("<H", version)
    return versioned + struct.pack("<Q", crc64_bitwise(versioned))


def rlen(n: int) -> bytes:
    """An RDB length."""
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF])
    return b"\x80" + struct.pack(">I", n)


def rstr(value: bytes) -> bytes:
    """An RDB string, written raw (no int encoding, no LZF)."""
    return rlen(len(value)) + value


def _backlen(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    if n < 16383:
        return bytes([n >> 7, (n & 127) | 128])
    return bytes([n >> 14, ((n >> 7) & 127) | 128, (n & 127) | 128])


def lp_entry(item: bytes | int) -> bytes:
    """One listpack entry in the encoding Redis would pick, with its back length."""
    if isinstance(item, int):
        if 0 <= item <= 127:
            head = bytes([item])
        elif -4096 <= item < 4096:
            head = bytes([0xC0 | ((item >> 8) & 0x1F), item & 0xFF])
        else:
            for code, width in ((0xF1, 2), (0xF2, 3), (0xF3, 4), (0xF4, 8)):
                if -(1 << (8 * width - 1)) <= item < 1 << (8 * width - 1):
                    head = bytes([code]) + item.to_bytes(width, "little", signed=True)
                    break
    elif len(item) < 64:
        head = bytes([0x80 | len(item)]) + item
    elif len(item) < 4096:
        head = bytes([0xE0 | len(item) >> 8, len(item) & 0xFF]) + item
    else:
        head = b"\xf0" + struct.pack("<I", len(item)) + item
    return head + _backlen(len(head))


def listpack(items: Iterable[bytes | int], count: int | None = None) -> bytes:
    body = b"".join(lp_entry(item) for item in items)
    items_count = len(list(items)) if count is None else count
    return struct.pack("<IH", 6 + len(body) + 1, items_count) + body + b"\xff"


def intset(values: Iterable[int], width: int) -> bytes:
    values = list(values)
    body = b"".join(v.to_bytes(width, "little", signed=True) for v in values)
    return struct.pack("<II", width, len(values)) + body


def _zl_encoding(item: bytes | int) -> bytes:
    if isinstance(item, int):
        if 0 <= item <= 12:
            return bytes([0xF1 + item])
        for code, width in ((0xFE, 1), (0xC0, 2), (0xF0, 3), (0xD0, 4), (0xE0, 8)):
            if -(1 << (8 * width - 1)) <= item < 1 << (8 * width - 1):
                return bytes([code]) + item.to_bytes(width, "little", signed=True)
    if len(item) < 64:
        return bytes([len(item)]) + item
    if len(item) < 16384:
        return bytes([0x40 | len(item) >> 8, len(item) & 0xFF]) + item
    return b"\x80" + struct.pack(">I", len(item)) + item


def ziplist(items: Iterable[bytes | int]) -> bytes:
    entries, previous, tail, offset = [], 0, 10, 10
    for item in items:
        prev = bytes([previous]) if previous < 254 else b"\xfe" + struct.pack("<I", previous)
        entry = prev + _zl_encoding(item)
        entries.append(entry)
        tail, previous = offset, len(entry)
        offset += len(entry)
    body = b"".join(entries)
    return struct.pack("<IIH", 10 + len(body) + 1, tail, len(entries)) + body + b"\xff"


def zipmap(pairs: Iterable[tuple[bytes, bytes]], free: int = 0) -> bytes:
    pairs = list(pairs)
    out = bytes([len(pairs)])
    for field, value in pairs:
        out += bytes([len(field)]) + field + bytes([len(value), free]) + value + b"\0" * free
    return out + b"\xff"


def binary_double(score: float) -> bytes:
    return struct.pack("<d", score)


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def restore(run: Callable[..., Reply]) -> Callable[..., Reply]:
    """RESTORE key 0 payload [options]."""
    return lambda key, blob, *options, ttl=0: run("RESTORE", key, ttl, blob, *options)


def value_of(db: Keyspace, key: bytes) -> object:
    return db.data.get(key)


# -- CRC64 ---------------------------------------------------------------------------


def test_crc64_check_value() -> None:
    assert rdb.crc64(b"123456789") == 0xE9C6D914C4B8D9CA  # Redis' crc64.c self-test


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 15, 16, 17, 100, 1000])
def test_crc64_matches_the_bitwise_definition(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert rdb.crc64(data) == crc64_bitwise(data)


# -- LZF -----------------------------------------------------------------------------


def test_lzf_decompresses_redis_output() -> None:
    # redis-server's DUMP of "a" * 21 holds: literal "aa", then a 19-byte back reference
    assert rdb.lzf_decompress(bytes.fromhex("016161e00a00"), 21) == b"a" * 21


def test_lzf_compress_gives_liblzf_bytes() -> None:
    assert rdb.lzf_compress(b"a" * 21, 17) == bytes.fromhex("016161e00a00")
    text = b"abcdefghijklmnopqrstuvwxyz" * 2
    assert rdb.lzf_compress(text, len(text) - 4) == bytes.fromhex(
        "1a6162636465666768696a6b6c6d6e6f707172737475767778797a61e00e1901797a")


@pytest.mark.parametrize("seed", range(30))
def test_lzf_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = rng.choice([b"a", b"ab", b"abcd", bytes(range(256))])
    data = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 3000)))
    packed = rdb.lzf_compress(data, len(data) + 100)
    assert packed is not None
    assert rdb.lzf_decompress(packed, len(data)) == data


def test_lzf_compress_says_when_it_does_not_fit() -> None:
    data = random.Random(1).randbytes(200)  # incompressible
    assert rdb.lzf_compress(data, len(data) - 4) is None
    assert rdb.lzf_compress(b"", 10) is None
    assert rdb.lzf_compress(b"abc", 0) is None


def test_lzf_back_reference_may_overlap_its_output() -> None:
    # literal "ab", then 8 bytes copied from 2 back (0xc0: length 6 + 2, offset 1 + 1)
    assert rdb.lzf_decompress(b"\x01ab\xc0\x01", 10) == b"ab" * 5
    # a long reference: 0xe0, then 11 more (7 + 11 + 2 = 20 bytes), offset 2
    assert rdb.lzf_decompress(b"\x01ab\xe0\x0b\x01", 22) == b"ab" * 11


@pytest.mark.parametrize("packed, length", [
    (b"", 0),  # no data at all
    (b"\x05abc", 6),  # literal runs past the input
    (b"\x01ab", 3),  # shorter than said
    (b"\x02abc", 2),  # longer than said
    (b"\x00a\x20", 4),  # reference without its offset byte
    (b"\x00a\xe0", 20),  # long reference without its length byte
    (b"\x00a\xe0\x05", 20),  # long reference without its offset byte
    (b"\x00a\x20\x05", 4),  # reference before the start
])
def test_lzf_decompress_rejects_bad_input(packed: bytes, length: int) -> None:
    with pytest.raises(rdb.BadPayload):
        rdb.lzf_decompress(packed, length)


# -- strings as Redis writes them ------------------------------------------------------


@pytest.mark.parametrize("value, encoded", [
    (b"0", "c000"), (b"1", "c001"), (b"-5", "c0fb"), (b"127", "c07f"), (b"-128", "c080"),
    (b"128", "c18000"), (b"12345", "c13930"), (b"32768", "c200800000"),
    (b"-2147483648", "c200000080"), (b"100000", "c2a0860100"),
    (b"2147483648", "0a32313437343833363438"), (b"-0", "022d30"), (b"01", "023031"),
    (b"+1", "022b31"), (b" 1", "022031"), (b"", "00"), (b"abc", "03616263"),
    (b"a" * 20, "14" + "61" * 20), (b"a" * 21, "c30615016161e00a00"),
])
def test_string_encoding_like_redis(value: bytes, encoded: str) -> None:
    assert rdb.encode_string(value).hex() == encoded


def test_long_string_lengths() -> None:
    value = random.Random(2).randbytes(70000)  # incompressible: written raw, 32-bit length
    assert rdb.encode_string(value) == b"\x80" + struct.pack(">I", 70000) + value
    assert rdb.encode_string(b"x" * 100, compress=False) == b"\x40\x64" + b"x" * 100


def test_huge_strings_are_written_uncompressed() -> None:
    value = b"z" * (rdb._LZF_LIMIT + 1)
    assert rdb.encode_string(value)[:1] == b"\x80"
    assert rdb.load_object(rdb.dump_payload(value)) == value


# -- listpack --------------------------------------------------------------------------


def test_listpack_every_encoding() -> None:
    items = [0, 127, 128, -1, -4096, 4095, 4096, -32768, 32767, 8388607, -8388608,
             2147483647, -2147483648, 2147483648, -(1 << 63), (1 << 63) - 1,
             b"", b"a", b"x" * 63, b"y" * 64, b"z" * 4095, b"w" * 4096, BINARY]
    expected = [b"%d" % i if isinstance(i, int) else i for i in items]
    assert rdb.parse_listpack(listpack(items)) == expected


def test_listpack_with_unknown_count() -> None:
    assert rdb.parse_listpack(listpack([b"a", 1], count=0xFFFF)) == [b"a", b"1"]


def test_listpack_hand_made_bytes() -> None:
    # redis-server's DUMP of RPUSH l a b 1: a listpack of "a", "b" and the int 1
    blob = bytes.fromhex("0f00000003008161028162020101ff")
    assert rdb.parse_listpack(blob) == [b"a", b"b", b"1"]
    # 13-bit -2 is 0xdffe; 16-bit int 1000 is f1 e8 03
    blob = bytes.fromhex("0e0000000200dffe02f1e80303ff")
    assert rdb.parse_listpack(blob) == [b"-2", b"1000"]


@pytest.mark.parametrize("blob", [
    b"",
    bytes.fromhex("0f00000003008161028162020101"),  # no terminator
    bytes.fromhex("1000000003008161028162020101ff"),  # total bytes wrong
    bytes.fromhex("0f00000004008161028162020101ff"),  # count wrong
    bytes.fromhex("0f00000003008161038162020101ff"),  # back length wrong
    bytes.fromhex("0b0000000100f5000000ff"),  # unknown encoding
    bytes.fromhex("0a000000010085616102ff"),  # string runs past the end
    bytes.fromhex("0900000001007f02ff"),  # back length past the end
])
def test_listpack_rejects_bad_input(blob: bytes) -> None:
    with pytest.raises(rdb.BadPayload):
        rdb.parse_listpack(blob)


# -- intset ----------------------------------------------------------------------------


@pytest.mark.parametrize("width, values", [
    (2, [-32768, -1, 0, 5, 32767]), (4, [-(1 << 31), 70000]), (8, [-(1 << 63), (1 << 63) - 1]),
])
def test_intset_widths(width: int, values: list[int]) -> None:
    assert rdb.parse_intset(intset(values, width)) == [b"%d" % v for v in values]


def test_intset_hand_made_bytes() -> None:
    # redis-server's DUMP of SADD s 1 2 3
    blob = bytes.fromhex("0200000003000000010002000300")
    assert rdb.parse_intset(blob) == [b"1", b"2", b"3"]


@pytest.mark.parametrize("blob", [
    b"", intset([], 2), intset([2, 1], 2), intset([1, 1], 2), intset([1, 2], 2)[:-1],
    intset([1, 2], 2) + b"\0", struct.pack("<II", 3, 1) + b"\0\0\0", b"\x02\0\0",
])
def test_intset_rejects_bad_input(blob: bytes) -> None:
    with pytest.raises(rdb.BadPayload):
        rdb.parse_intset(blob)


# -- ziplist and zipmap ----------------------------------------------------------------


def test_ziplist_every_encoding() -> None:
    items = [0, 12, 13, -1, 127, -128, 128, 32767, -32768, 8388607, 2147483647,
             -2147483648, 1 << 40, b"", b"a", b"x" * 63, b"y" * 64, b"z" * 16384, b"w" * 300]
    expected = [b"%d" % i if isinstance(i, int) else i for i in items]
    assert rdb.parse_ziplist(ziplist(items)) == expected  # the 300 byte entry: 5-byte prevlen


@pytest.mark.parametrize("mangle", [
    lambda z: z[:-1],  # no terminator
    lambda z: z[:4] + b"\x00\x00\x00\x00" + z[8:],  # tail offset wrong
    lambda z: z[:8] + b"\x09\x00" + z[10:],  # count wrong
    lambda z: z[:10] + b"\x05" + z[11:],  # first entry's previous length wrong
    lambda z: struct.pack("<I", len(z) + 1) + z[4:] + b"\xff",  # size wrong
    lambda z: z[:11] + b"\xc5" + z[12:],  # unknown encoding
])
def test_ziplist_rejects_bad_input(mangle: Callable[[bytes], bytes]) -> None:
    with pytest.raises(rdb.BadPayload):
        rdb.parse_ziplist(mangle(ziplist([b"a", 1, b"bcd"])))


def test_zipmap() -> None:
    assert rdb.parse_zipmap(zipmap([(b"f", b"v"), (b"g", b"")], free=2)) == \
        [b"f", b"v", b"g", b""]
    for bad in (b"\x01\x01f\xff", b"\x01\x01f\x01\x00", zipmap([(b"f", b"v")])[:-1],
                b"\x02" + zipmap([(b"f", b"v")])[1:]):
        with pytest.raises(rdb.BadPayload):
            rdb.parse_zipmap(bad)


# -- the command table -------------------------------------------------------------------


def test_table_entries() -> None:
    dump_entry, restore_entry = COMMANDS["dump"], COMMANDS["restore"]
    assert (dump_entry.arity, dump_entry.kind, sorted(dump_entry.flags)) == \
        (2, Kind.READ, ["readonly"])
    assert (restore_entry.arity, restore_entry.kind, sorted(restore_entry.flags)) == \
        (-4, Kind.WRITE, ["denyoom", "write"])
    for entry in (dump_entry, restore_entry):
        assert (entry.first_key, entry.last_key, entry.step) == (1, 1, 1)
        assert (entry.family, entry.since) == ("generic", "2.6.0")
        assert entry.summary


# -- round trips through DUMP and RESTORE ------------------------------------------------


VALUES = [
    b"", b"0", b"-1", b"12345", b"2147483648", b"-0", b"a" * 21, b"ab" * 500, BINARY,
    random.Random(3).randbytes(3000),
    ListValue([b"a"]), ListValue([b"1", b"", b"x" * 100, BINARY, b"-7"]),
    ListValue([b"%d" % i for i in range(2000)]),
    SetValue([b"3", b"1", b"2"]), SetValue([b"a", b"1", BINARY]),
    SetValue([b"m%d" % i for i in range(1000)]),
    ZSetValue({b"a": 1.0, b"b": -2.5, b"c": float("inf"), b"d": float("-inf"), b"e": -0.0,
               b"f": 5e-324, BINARY: 1e308}),
    ZSetValue({b"m%d" % i: i / 7 for i in range(500)}),
    HashValue({b"f": b"v", b"": b"", b"n": b"1", BINARY: b"x" * 300}),
    HashValue({b"f%d" % i: b"%d" % i for i in range(1000)}),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip(value: object, run: Callable[..., Reply], db: Keyspace) -> None:
    db.set(b"src", value.copy() if hasattr(value, "copy") else value)
    blob = run("DUMP", "src")
    assert isinstance(blob, bytes)
    assert run("RESTORE", "dst", 0, blob) == OK
    restored = value_of(db, b"dst")
    assert restored == value
    if not isinstance(value, bytes):
        assert restored is not value_of(db, b"src")
    if isinstance(value, SetValue):
        assert restored.members == value.members  # order kept too
    if isinstance(value, HashValue):
        assert list(restored.fields.items()) == list(value.fields.items())
    if isinstance(value, ZSetValue):
        assert [struct.pack("<d", s) for s in restored.scores.values()] == \
            [struct.pack("<d", value.scores[m]) for m in restored.scores]  # -0.0 stays
    assert db.ttl_ms(b"dst") is None


def test_dump_of_a_missing_or_expired_key(run: Callable[..., Reply], db: Keyspace) -> None:
    assert run("DUMP", "nope") is None
    db.set(b"gone", b"v", NOW - 1)
    assert run("DUMP", "gone") is None


def test_dump_payload_shape(run: Callable[..., Reply]) -> None:
    run("SET", "k", "1")
    blob = run("DUMP", "k")
    assert blob == payload(b"\x00\xc0\x01")  # type, int8 1, version 10, CRC
    assert blob.hex() == "00c0010a002678e7b6d10111fc"  # as redis-server 7.0 writes it


# -- RESTORE: TTL and options ------------------------------------------------------------


STRING = payload(b"\x00" + rstr(b"hello"))


def test_restore_ttl(restore: Callable[..., Reply], db: Keyspace) -> None:
    assert restore("k", STRING, ttl=5000) == OK
    assert (db.data[b"k"], db.ttl_ms(b"k")) == (b"hello", NOW + 5000)
    assert restore("a", STRING, "ABSTTL", ttl=NOW + 10) == OK
    assert db.ttl_ms(b"a") == NOW + 10


def test_restore_past_ttl_creates_nothing(restore: Callable[..., Reply],
                                          db: Keyspace) -> None:
    assert restore("k", STRING, "ABSTTL", ttl=NOW) == OK
    assert b"k" not in db.data
    assert restore("k", STRING, "ABSTTL", ttl=1) == OK
    assert b"k" not in db.data
    # a relative TTL past the 64-bit range wraps in Redis: already expired, nothing made
    assert restore("k", STRING, ttl=(1 << 63) - 1) == OK
    assert b"k" not in db.data


def test_restore_past_ttl_with_replace_deletes(restore: Callable[..., Reply],
                                               db: Keyspace) -> None:
    db.set(b"k", b"old")
    assert restore("k", STRING, "REPLACE", "ABSTTL", ttl=5) == OK
    assert b"k" not in db.data


def test_restore_busykey_and_replace(restore: Callable[..., Reply], db: Keyspace,
                                     err: Callable[[Reply], str]) -> None:
    db.set(b"k", SetValue([b"x"]), NOW + 100)
    assert err(restore("k", STRING)) == BUSYKEY
    assert restore("k", STRING, "replace") == OK
    assert (db.data[b"k"], db.ttl_ms(b"k")) == (b"hello", None)


def test_restore_over_an_expired_key(restore: Callable[..., Reply], db: Keyspace) -> None:
    db.set(b"k", b"old", NOW - 1)
    assert restore("k", STRING) == OK
    assert db.data[b"k"] == b"hello"


def test_restore_option_errors(restore: Callable[..., Reply], err: Callable[[Reply], str],
                               db: Keyspace) -> None:
    assert err(restore("k", STRING, ttl=-1)) == "ERR Invalid TTL value, must be >= 0"
    assert err(restore("k", STRING, ttl="x")) == NOT_INTEGER
    assert err(restore("k", STRING, ttl="1.5")) == NOT_INTEGER
    assert err(restore("k", STRING, "IDLETIME", -1)) == \
        "ERR Invalid IDLETIME value, must be >= 0"
    assert err(restore("k", STRING, "IDLETIME", "x")) == NOT_INTEGER
    assert err(restore("k", STRING, "FREQ", 256)) == \
        "ERR Invalid FREQ value, must be >= 0 and <= 255"
    assert err(restore("k", STRING, "FREQ", -1)) == \
        "ERR Invalid FREQ value, must be >= 0 and <= 255"
    for options in (("IDLETIME", 1, "FREQ", 1), ("FREQ", 1, "IDLETIME", 1), ("IDLETIME",),
                    ("FREQ",), ("BOGUS",), ("REPLACE", "x")):
        assert err(restore("k", STRING, *options)) == "ERR syntax error"
    assert not db.data


def test_restore_idletime_and_freq_are_accepted(restore: Callable[..., Reply]) -> None:
    assert restore("a", STRING, "IDLETIME", 0, "IDLETIME", 100) == OK
    assert restore("b", STRING, "FREQ", 0, "freq", 255, "REPLACE", "ABSTTL") == OK


def test_restore_order_of_checks(restore: Callable[..., Reply], db: Keyspace,
                                 err: Callable[[Reply], str]) -> None:
    db.set(b"k", b"v")
    assert err(restore("k", b"garbage", "BOGUS")) == "ERR syntax error"  # options first
    assert err(restore("k", b"garbage", ttl=-1)) == BUSYKEY  # then the key
    assert err(restore("n", b"garbage", ttl=-1)) == "ERR Invalid TTL value, must be >= 0"
    assert err(restore("n", b"garbage")) == BAD_CRC  # then the payload


def test_restore_arity(run: Callable[..., Reply], err: Callable[[Reply], str]) -> None:
    assert err(run("RESTORE", "k", 0)) == "ERR wrong number of arguments for 'restore' command"
    assert err(run("DUMP")) == "ERR wrong number of arguments for 'dump' command"
    assert err(run("DUMP", "a", "b")) == "ERR wrong number of arguments for 'dump' command"


# -- RESTORE: payload checks ---------------------------------------------------------------


def test_restore_checks_version_and_crc(restore: Callable[..., Reply],
                                        err: Callable[[Reply], str]) -> None:
    body = b"\x00" + rstr(b"v")
    assert restore("a", payload(body, version=9)) == OK  # older versions load
    good = payload(body)
    for blob in (payload(body, version=11), good[:-1] + bytes([good[-1] ^ 1]), b"", b"x" * 9,
                 good[:1] + b"\x02" + good[2:]):
        assert err(restore("k", blob)) == BAD_CRC


@pytest.mark.parametrize("body", [
    b"",  # no object at all (the footer's bytes are read as its start, as Redis does)
    b"\x08",  # unknown types
    b"\x16",
    b"\x0f" + rstr(b"x"),  # a stream: respkv has no such type
    b"\x13" + rstr(b"x"),
    b"\x15" + rstr(b"x"),
    b"\x07" + rlen(1) + rlen(2),  # a module value
    b"\x06" + rlen(1),
    b"\x00\xc4",  # unknown string encoding
    b"\x00\xc3\x05\x03\x01ab",  # LZF data cut short
    b"\x00\xc3\x04\x05\x01abc",  # LZF length mismatch
    b"\x00\xff",  # unknown length encoding
    b"\x00\x80\x00\x01\x00\x00",  # a string longer than the payload
    b"\x01\x00",  # empty collections
    b"\x02\x00",
    b"\x04\x00",
    b"\x05\x00",
    b"\x11" + rstr(listpack([])),
    b"\x10" + rstr(listpack([])),
    b"\x12\x00",
    b"\x12\x01\x02" + rstr(listpack([])),  # a quicklist whose only node is empty
    b"\x02\x02" + rstr(b"a") + rstr(b"a"),  # duplicates
    b"\x04\x02" + rstr(b"f") + rstr(b"1") + rstr(b"f") + rstr(b"2"),
    b"\x05\x02" + rstr(b"m") + binary_double(1) + rstr(b"m") + binary_double(2),
    b"\x10" + rstr(listpack([b"f", b"1", b"f", b"2"])),
    b"\x11" + rstr(listpack([b"m", 1, b"m", 2])),
    b"\x14" + rstr(listpack([b"a", b"a"])),
    b"\x05\x01" + rstr(b"m") + binary_double(float("nan")),  # NaN scores
    b"\x03\x01" + rstr(b"m") + b"\xfd",
    b"\x11" + rstr(listpack([b"m", b"nan"])),
    b"\x11" + rstr(listpack([b"m", b"abc"])),  # a score that is no number
    b"\x11" + rstr(listpack([b"m", 1, b"n"])),  # odd entries
    b"\x10" + rstr(listpack([b"f"])),
    b"\x12\x01\x03" + rstr(listpack([b"a"])),  # bad quicklist container
    b"\x12\x01\x02" + rstr(b"not a listpack"),
    b"\x0b" + rstr(intset([2, 1], 2)),
    b"\x0b" + rstr(b"\x02\0\0\0"),
    b"\x0a" + rstr(b"not a ziplist"),
    b"\x0d" + rstr(ziplist([b"f"])),
    b"\x09" + rstr(b"\x01\x01f\xff"),
    b"\x02\x02" + rstr(b"a"),  # fewer members than said
])
def test_restore_rejects_bad_data(body: bytes, restore: Callable[..., Reply],
                                  err: Callable[[Reply], str], db: Keyspace) -> None:
    db.set(b"k", b"old")
    assert err(restore("k", payload(body), "REPLACE")) == BAD_FORMAT
    assert db.data[b"k"] == b"old"  # nothing changed


def test_restore_reads_past_the_object_as_redis(restore: Callable[..., Reply],
                                                db: Keyspace) -> None:
    # Redis reads the object from the whole payload: bytes after it are ignored, and an
    # empty body reads its type and length from the footer (version 0: an empty string)
    assert restore("a", payload(b"\x00" + rstr(b"v") + b"junk")) == OK
    assert db.data[b"a"] == b"v"
    assert restore("b", b"\0" * 10) == OK
    assert db.data[b"b"] == b""
    # an LZF string said to be 0 bytes long is empty, whatever its data (liblzf's 0)
    assert restore("c", payload(b"\x00\xc3\x01\x00\x00")) == OK
    assert restore("d", payload(b"\x00\xc3\x00\x00")) == OK
    assert db.data[b"c"] == db.data[b"d"] == b""


# -- RESTORE: every encoding, from hand-made payloads ---------------------------------------


def restored(restore: Callable[..., Reply], db: Keyspace, body: bytes) -> object:
    db.delete(b"k")
    assert restore("k", payload(body)) == OK
    return db.data[b"k"]


def test_restore_strings(restore: Callable[..., Reply], db: Keyspace) -> None:
    for body, value in [
        (b"\x00\xc0\xfb", b"-5"), (b"\x00\xc1\x39\x30", b"12345"),
        (b"\x00\xc2\x00\x00\x00\x80", b"-2147483648"), (b"\x00" + rstr(BINARY), BINARY),
        (b"\x00\xc3\x06\x15\x01\x61\x61\xe0\x0a\x00", b"a" * 21),
        (b"\x00\x40\x64" + b"x" * 100, b"x" * 100),
        (b"\x00\x81" + struct.pack(">Q", 3) + b"abc", b"abc"),
    ]:
        assert restored(restore, db, body) == value


def test_restore_lists(restore: Callable[..., Reply], db: Keyspace) -> None:
    items = [b"a", b"1", b"-300", BINARY]
    want = ListValue(items)
    assert restored(restore, db, b"\x01\x04" + b"".join(map(rstr, items))) == want
    assert restored(restore, db, b"\x0a" + rstr(ziplist([b"a", 1, -300, BINARY]))) == want
    quicklist = b"\x0e\x02" + rstr(ziplist([b"a", 1])) + rstr(ziplist([-300, BINARY]))
    assert restored(restore, db, quicklist) == want
    quicklist_2 = (b"\x12\x04\x02" + rstr(listpack([b"a"])) + b"\x01" + rstr(b"1")
                   + b"\x02" + rstr(listpack([])) + b"\x02" + rstr(listpack([-300, BINARY])))
    assert restored(restore, db, quicklist_2) == want  # plain node, empty node skipped
    packed = listpack([b"a", 1, -300, BINARY])
    lzf = rdb.lzf_compress(packed, len(packed) + 10)
    assert lzf is not None
    compressed = b"\x12\x01\x02\xc3" + rlen(len(lzf)) + rlen(len(packed)) + lzf
    assert restored(restore, db, compressed) == want


def test_restore_sets(restore: Callable[..., Reply], db: Keyspace) -> None:
    value = restored(restore, db, b"\x0b" + rstr(intset([-5, 1, 70000], 4)))
    assert value.members == [b"-5", b"1", b"70000"]
    value = restored(restore, db, b"\x02\x02" + rstr(b"b") + b"\xc0\x07")
    assert value.members == [b"b", b"7"]
    value = restored(restore, db, b"\x14" + rstr(listpack([b"x", 5, BINARY])))
    assert value.members == [b"x", b"5", BINARY]


def test_restore_zsets(restore: Callable[..., Reply], db: Keyspace) -> None:
    want = ZSetValue({b"a": 1.0, b"b": 2.5, b"c": float("-inf"), b"d": float("inf")})
    text = b"".join(rstr(m) + bytes([len(s)]) + s for m, s in
                    ((b"a", b"1"), (b"b", b"2.5"))) + rstr(b"c") + b"\xff" + rstr(b"d") + b"\xfe"
    assert restored(restore, db, b"\x03\x04" + text) == want
    binary = b"".join(rstr(m) + binary_double(s) for m, s in want.scores.items())
    assert restored(restore, db, b"\x05\x04" + binary) == want
    items = [b"a", 1, b"b", b"2.5", b"c", b"-inf", b"d", b"inf"]
    assert restored(restore, db, b"\x11" + rstr(listpack(items))) == want
    assert restored(restore, db, b"\x0c" + rstr(ziplist(items))) == want
    value = restored(restore, db, b"\x11" + rstr(listpack([b"z", b"-0"])))
    assert struct.pack("<d", value.scores[b"z"]) == struct.pack("<d", -0.0)


def test_restore_hashes(restore: Callable[..., Reply], db: Keyspace) -> None:
    want = HashValue({b"f": b"v", b"n": b"1", BINARY: b""})
    pairs = [b"f", b"v", b"n", 1, BINARY, b""]
    assert restored(restore, db, b"\x10" + rstr(listpack(pairs))) == want
    assert restored(restore, db, b"\x0d" + rstr(ziplist(pairs))) == want
    flat = b"".join(rstr(x) for x in (b"f", b"v", b"n", b"1", BINARY, b""))
    assert restored(restore, db, b"\x04\x03" + flat) == want
    zm = zipmap([(b"f", b"v"), (b"n", b"1"), (BINARY, b"")], free=1)
    assert restored(restore, db, b"\x09" + rstr(zm)) == want
    value = restored(restore, db, b"\x10" + rstr(listpack(pairs)))
    assert list(value.fields) == [b"f", b"n", BINARY]


def test_restore_leaves_other_keys_and_rows_consistent(restore: Callable[..., Reply],
                                                       run: Callable[..., Reply],
                                                       db: Keyspace) -> None:
    db.set(b"other", b"x")
    run("SADD", "k", "a", "b")
    blob = payload(b"\x02\x01" + rstr(b"z"))
    assert restore("k", blob, "REPLACE") == OK  # call() checks the store rows rebuild it
    assert db.data[b"k"] == SetValue([b"z"])
    assert db.data[b"other"] == b"x"
