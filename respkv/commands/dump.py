"""DUMP and RESTORE, with Redis 7.0's semantics and payload format.

A payload is Redis' own: one object in RDB serialization, the 2-byte RDB version
(little endian) and the CRC64 (Jones polynomial, reflected, as Redis' crc64.c) of
everything before it. So a payload moves both ways between respkv and redis-server.

DUMP writes the simplest RDB types Redis 7.0 still loads: strings exactly as Redis
writes them (int encoding, LZF compression over 20 bytes, else raw: byte-identical to
redis-server's DUMP up to 256 KiB, written raw past that), lists as RDB_TYPE_LIST, sets
as RDB_TYPE_SET, sorted sets as RDB_TYPE_ZSET_2 and hashes as RDB_TYPE_HASH (their items
as Redis writes strings, without LZF). redis-server turns those back into its compact
encodings on load.

RESTORE reads every type and encoding a Redis up to 7.0 writes (and the 7.2 listpack
set): listpacks, intsets, ziplists, zipmaps and quicklists, each parsed and checked in
full before anything changes, since RESTORE is a WRITE that runs inside apply. What a
payload holds is checked as redis-server does with sanitize-dump-payload yes: duplicate
members, odd pairs or unsorted intsets are refused, where a redis-server that skips the
deep check would load a corrupt value. Streams and module values have no respkv type:
they are refused as Redis refuses what it cannot load ("Bad data format").
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from itertools import pairwise

from respkv.commands import errors
from respkv.commands.args import parse_float, parse_int
from respkv.commands.table import Kind, command
from respkv.protocol.reply import OK, Reply, RespError
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue, ListValue, SetValue, ZSetValue

RDB_VERSION = 10  # what Redis 7.0 writes, and the newest it accepts

_INT64_MAX = (1 << 63) - 1
_INT32 = range(-(1 << 31), 1 << 31)

BUSYKEY = RespError("BUSYKEY Target key name already exists.")
BAD_VERSION_OR_CRC = RespError("ERR DUMP payload version or checksum are wrong")
BAD_FORMAT = RespError("ERR Bad data format")
INVALID_TTL = RespError("ERR Invalid TTL value, must be >= 0")
INVALID_IDLETIME = RespError("ERR Invalid IDLETIME value, must be >= 0")
INVALID_FREQ = RespError("ERR Invalid FREQ value, must be >= 0 and <= 255")


class BadPayload(Exception):
    """The payload's object cannot be loaded (RESTORE answers "Bad data format")."""


# RDB object types (Redis' rdb.h).
TYPE_STRING = 0
TYPE_LIST = 1
TYPE_SET = 2
TYPE_ZSET = 3
TYPE_HASH = 4
TYPE_ZSET_2 = 5
TYPE_HASH_ZIPMAP = 9
TYPE_LIST_ZIPLIST = 10
TYPE_SET_INTSET = 11
TYPE_ZSET_ZIPLIST = 12
TYPE_HASH_ZIPLIST = 13
TYPE_LIST_QUICKLIST = 14
TYPE_HASH_LISTPACK = 16
TYPE_ZSET_LISTPACK = 17
TYPE_LIST_QUICKLIST_2 = 18
TYPE_SET_LISTPACK = 20

_QUICKLIST_PLAIN = 1
_QUICKLIST_PACKED = 2

# Length and string encodings (the two top bits of a length's first byte).
_ENC_INT8, _ENC_INT16, _ENC_INT32, _ENC_LZF = 0, 1, 2, 3


# -- CRC64 (Jones, reflected, as Redis' crc64.c) ---------------------------------


def _crc64_tables() -> list[list[int]]:
    """The byte table, and seven more for slicing by 8: table k advances a byte's
    contribution by k further (zero) bytes."""
    poly = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9, bit-reversed
    first = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        first.append(crc)
    tables = [first]
    for _ in range(7):
        tables.append([(c >> 8) ^ first[c & 0xFF] for c in tables[-1]])
    return tables


_CRC64 = _crc64_tables()


def crc64(data: bytes, crc: int = 0) -> int:
    """Redis' crc64 of ``data``, eight bytes a step (slicing by 8)."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _CRC64
    whole = len(data) & ~7
    words = array("Q", data[:whole])
    if sys.byteorder == "big":
        words.byteswap()
    for word in words:
        x = crc ^ word
        crc = (t7[x & 0xFF] ^ t6[(x >> 8) & 0xFF] ^ t5[(x >> 16) & 0xFF]
               ^ t4[(x >> 24) & 0xFF] ^ t3[(x >> 32) & 0xFF] ^ t2[(x >> 40) & 0xFF]
               ^ t1[(x >> 48) & 0xFF] ^ t0[x >> 56])
    for byte in data[whole:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _footer(body: bytes | bytearray) -> bytes:
    versioned = bytes(body) + RDB_VERSION.to_bytes(2, "little")
    return versioned + crc64(versioned).to_bytes(8, "little")


def payload_ok(payload: bytes) -> bool:
    """Redis' verifyDumpPayload: a version it knows and a matching checksum."""
    if len(payload) < 10:
        return False
    if int.from_bytes(payload[-10:-8], "little") > RDB_VERSION:
        return False
    return crc64(payload[:-8]) == int.from_bytes(payload[-8:], "little")


# -- LZF (liblzf 3.6, as redis-server 7.0 links it) -------------------------------
#
# The compressor is the reference one step for step (VERY_FAST, HLOG 16), so its output
# and its "does not fit" answer are those of redis-server, byte for byte. Its table
# starts empty: a fresh table and liblzf's uninitialised one give the same output,
# since an entry the current input did not write can never pass the byte comparison.

_LZF_MAX_LIT = 1 << 5
_LZF_MAX_OFF = 1 << 13
_LZF_MAX_REF = (1 << 8) + (1 << 3)


def _lzf_match_length(data: bytes, ref: int, ip: int, maxlen: int) -> int:
    """liblzf's match length loop: the first index from 3 where the bytes differ, within
    its bound (the unrolled part may look 2 bytes past maxlen, as it does in C)."""
    bound = max(19, maxlen) if maxlen > 16 else max(3, maxlen)
    k = 3
    while k + 16 <= bound and data[ref + k:ref + k + 16] == data[ip + k:ip + k + 16]:
        k += 16
    while k < bound and data[ref + k] == data[ip + k]:
        k += 1
    return k


def lzf_compress(data: bytes, out_len: int) -> bytes | None:
    """liblzf's lzf_compress into at most ``out_len`` bytes; None when it does not fit.

    A literal run is not copied byte by byte: it is remembered by where it starts and
    written out whole when it ends, a header byte per 32 bytes as liblzf lays it out.
    ``base`` is liblzf's output pointer at the run's start (its header reserved); the
    pointer's size checks inside a run come down to a limit on the run's length.
    """
    n = len(data)
    if not n or not out_len:
        return None
    htab = [0] * 65536  # 0 reads as "none": position 0 can never be a reference
    pieces: list[bytes] = []
    ip = run_start = 0
    base = 1
    run_limit = _lzf_run_limit(base, out_len)
    last = n - 2
    # the next three bytes, as the low 24 bits of liblzf's hval (the only ones it hashes)
    h = (data[0] << 8) | data[1] if n > 1 else 0
    while ip < last:
        h = ((h << 8) | data[ip + 2]) & 0xFFFFFF
        slot = ((h >> 8) - h * 5) & 0xFFFF
        ref = htab[slot]
        htab[slot] = ip
        off = ip - ref - 1
        if not (ref > 0 and off < _LZF_MAX_OFF and data[ref + 2] == data[ip + 2]
                and data[ref] == data[ip] and data[ref + 1] == data[ip + 1]):
            if ip >= run_limit:
                return None
            ip += 1
            continue
        run = ip - run_start
        lit = run % _LZF_MAX_LIT
        op = base + run + run // _LZF_MAX_LIT
        if op + 4 >= out_len and op - (not lit) + 4 >= out_len:
            return None
        _lzf_literals(pieces, data, run_start, ip)
        op -= not lit
        length = _lzf_match_length(data, ref, ip, min(n - ip - 2, _LZF_MAX_REF)) - 2
        if length < 7:
            pieces.append(bytes(((off >> 8) + (length << 5), off & 0xFF)))
            base = op + 3  # and the next run's header
        else:
            pieces.append(bytes(((off >> 8) + (7 << 5), length - 7, off & 0xFF)))
            base = op + 4
        run_limit = ip + length + 2 + _lzf_run_limit(base, out_len)
        ip = run_start = ip + length + 2
        if ip >= last:
            break
        for i in (ip - 2, ip - 1):
            h = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2]
            htab[((h >> 8) - h * 5) & 0xFFFF] = i
    run = ip - run_start
    if base + run + run // _LZF_MAX_LIT + 3 > out_len:
        return None
    _lzf_literals(pieces, data, run_start, n)
    return b"".join(pieces)


def _lzf_run_limit(base: int, out_len: int) -> int:
    """How many literals a run starting at output ``base`` takes before liblzf's check
    (the pointer, which also passes a header every 32, reaching ``out_len``) fails."""
    room = out_len - base
    if room <= 0:
        return 0
    full, rest = divmod(room - 1, _LZF_MAX_LIT + 1)
    return full * _LZF_MAX_LIT + min(rest, _LZF_MAX_LIT - 1) + 1


def _lzf_literals(pieces: list[bytes], data: bytes, start: int, end: int) -> None:
    """A literal run: up to 32 bytes after each header byte (their count less one)."""
    for at in range(start, end, _LZF_MAX_LIT):
        chunk = data[at:min(at + _LZF_MAX_LIT, end)]
        pieces.append(bytes((len(chunk) - 1,)))
        pieces.append(chunk)


def lzf_decompress(data: bytes, length: int) -> bytes:
    """liblzf's lzf_decompress, which must give exactly ``length`` bytes."""
    out = bytearray()
    ip, n = 0, len(data)
    if not n:
        raise BadPayload("empty LZF data")
    while ip < n:
        ctrl = data[ip]
        ip += 1
        if ctrl < _LZF_MAX_LIT:  # a literal run of ctrl + 1 bytes
            ctrl += 1
            if len(out) + ctrl > length or ip + ctrl > n:
                raise BadPayload("LZF literal overruns")
            out += data[ip:ip + ctrl]
            ip += ctrl
            continue
        count = ctrl >> 5
        if ip >= n:
            raise BadPayload("LZF reference cut short")
        if count == 7:
            count += data[ip]
            ip += 1
            if ip >= n:
                raise BadPayload("LZF reference cut short")
        back = ((ctrl & 0x1F) << 8) + data[ip] + 1
        ip += 1
        count += 2
        start = len(out) - back
        if len(out) + count > length or start < 0:
            raise BadPayload("LZF reference out of range")
        if back >= count:
            out += out[start:start + count]
        else:  # the copy overlaps what it writes: the last ``back`` bytes repeat
            out += (out[start:] * (count // back + 1))[:count]
    if len(out) != length:
        raise BadPayload("LZF length mismatch")
    return bytes(out)


# -- writing (DUMP) ----------------------------------------------------------------

_CANONICAL_INT = re.compile(rb"-?[1-9][0-9]{0,9}|0")
# Longer strings are written uncompressed (a valid payload, but not Redis' bytes): LZF in
# Python costs about a second a megabyte, too long to hold the event loop.
_LZF_LIMIT = 256 << 10


def encode_length(n: int) -> bytes:
    if n < 1 << 6:
        return bytes((n,))
    if n < 1 << 14:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def _encode_int(value: int) -> bytes:
    if -128 <= value <= 127:
        return bytes((0xC0 | _ENC_INT8,)) + value.to_bytes(1, "little", signed=True)
    if -32768 <= value <= 32767:
        return bytes((0xC0 | _ENC_INT16,)) + value.to_bytes(2, "little", signed=True)
    return bytes((0xC0 | _ENC_INT32,)) + value.to_bytes(4, "little", signed=True)


def encode_string(value: bytes, compress: bool = True) -> bytes:
    """Redis' rdbSaveRawString: a canonical 32-bit integer as such, else (over 20 bytes,
    when ``compress``) LZF if it saves 4 bytes or more, else length and bytes."""
    n = len(value)
    if n <= 11 and _CANONICAL_INT.fullmatch(value) and int(value) in _INT32:
        return _encode_int(int(value))
    if compress and 20 < n <= _LZF_LIMIT:
        packed = lzf_compress(value, n - 4)
        if packed is not None:
            return b"\xc3" + encode_length(len(packed)) + encode_length(n) + packed
    return encode_length(n) + value


def _encode_strings(out: bytearray, items: Iterable[bytes]) -> None:
    for item in items:
        out += encode_string(item, compress=False)


def encode_object(value: object) -> bytes:
    """The RDB type byte and serialization of a value (no footer)."""
    out = bytearray()
    if type(value) is bytes:
        out.append(TYPE_STRING)
        out += encode_string(value)
    elif isinstance(value, ListValue):
        out.append(TYPE_LIST)
        out += encode_length(len(value))
        _encode_strings(out, value.items)
    elif isinstance(value, SetValue):
        out.append(TYPE_SET)
        out += encode_length(len(value))
        _encode_strings(out, value.members)
    elif isinstance(value, ZSetValue):
        out.append(TYPE_ZSET_2)
        out += encode_length(len(value))
        for score, member in reversed(value.ordered):  # Redis writes from the tail too
            out += encode_string(member, compress=False)
            out += struct.pack("<d", score)
    elif isinstance(value, HashValue):
        out.append(TYPE_HASH)
        out += encode_length(len(value))
        for field, item in value.fields.items():
            out += encode_string(field, compress=False)
            out += encode_string(item, compress=False)
    else:
        raise TypeError(f"cannot serialize {type(value).__name__}")
    return bytes(out)


def dump_payload(value: object) -> bytes:
    return _footer(encode_object(value))


# -- reading (RESTORE) -------------------------------------------------------------


class _Reader:
    """The RDB primitives over a payload, as Redis' rio over its buffer (which may read
    into the footer: Redis does not stop at the object's end either)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise BadPayload("payload cut short")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def length_or_encoding(self) -> tuple[int, bool]:
        """Redis' rdbLoadLenByRef: (length, False), or (string encoding, True)."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return int.from_bytes(self.take(4), "big"), False
        if first == 0x81:
            return int.from_bytes(self.take(8), "big"), False
        raise BadPayload("unknown length encoding")

    def length(self) -> int:
        return self.length_or_encoding()[0]  # an encoded one reads as its low bits, as Redis

    def string(self) -> bytes:
        n, encoded = self.length_or_encoding()
        if not encoded:
            return self.take(n)
        if n == _ENC_INT8:
            return b"%d" % int.from_bytes(self.take(1), "little", signed=True)
        if n == _ENC_INT16:
            return b"%d" % int.from_bytes(self.take(2), "little", signed=True)
        if n == _ENC_INT32:
            return b"%d" % int.from_bytes(self.take(4), "little", signed=True)
        if n == _ENC_LZF:
            packed_len = self.length()
            length = self.length()
            packed = self.take(packed_len)
            # liblzf "fails" with 0 bytes, which is what Redis asked for: an empty string
            return lzf_decompress(packed, length) if length else b""
        raise BadPayload("unknown string encoding")

    def binary_double(self) -> float:
        return struct.unpack("<d", self.take(8))[0]

    def text_double(self) -> float:
        """Redis' rdbLoadDoubleValue (RDB_TYPE_ZSET): a length byte, with 253..255 for
        nan, inf and -inf, then the text."""
        n = self.byte()
        if n == 253:
            return float("nan")
        if n == 254:
            return float("inf")
        if n == 255:
            return float("-inf")
        return _parse_score(self.take(n))


def _parse_score(raw: bytes) -> float:
    try:
        return parse_float(raw)
    except RespError as error:
        raise BadPayload("bad score") from error


# -- listpack, intset, ziplist, zipmap ---------------------------------------------


def _backlen_size(length: int) -> int:
    if length <= 127:
        return 1
    if length < 16383:
        return 2
    if length < 2097151:
        return 3
    if length < 268435455:
        return 4
    return 5


def _backlen(length: int) -> bytes:
    """lpEncodeBacklen: the entry's length, 7 bits a byte, readable from the right."""
    size = _backlen_size(length)
    out = [(length >> (7 * (size - 1 - i))) & 0x7F for i in range(size)]
    return bytes([out[0]] + [b | 0x80 for b in out[1:]])


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _listpack_entry(blob: bytes, pos: int) -> tuple[bytes, int]:
    """One listpack entry at ``pos``: (its value, the length of encoding and data)."""
    first = blob[pos]
    if first < 0x80:  # 7-bit unsigned int
        return b"%d" % first, 1
    if first < 0xC0:  # string, 6-bit length
        n = first & 0x3F
        return blob[pos + 1:pos + 1 + n], 1 + n
    if first < 0xE0:  # 13-bit signed int
        raw = ((first & 0x1F) << 8) | blob[pos + 1]
        return b"%d" % _signed(raw, 13), 2
    if first < 0xF0:  # string, 12-bit length
        n = ((first & 0x0F) << 8) | blob[pos + 1]
        return blob[pos + 2:pos + 2 + n], 2 + n
    if first == 0xF0:  # string, 32-bit length
        n = int.from_bytes(blob[pos + 1:pos + 5], "little")
        return blob[pos + 5:pos + 5 + n], 5 + n
    width = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}.get(first)
    if width is None:
        raise BadPayload("bad listpack encoding")
    raw = int.from_bytes(blob[pos + 1:pos + 1 + width], "little", signed=True)
    return b"%d" % raw, 1 + width


def parse_listpack(blob: bytes) -> list[bytes]:
    """Every entry of a listpack, checked as Redis' deep lpValidateIntegrity does."""
    if len(blob) < 7 or int.from_bytes(blob[:4], "little") != len(blob) or blob[-1] != 0xFF:
        raise BadPayload("bad listpack header")
    declared = int.from_bytes(blob[4:6], "little")
    entries: list[bytes] = []
    pos, end = 6, len(blob) - 1
    try:
        while pos < end:
            value, size = _listpack_entry(blob, pos)
            back = _backlen(size)
            if pos + size + len(back) > end or blob[pos + size:pos + size + len(back)] != back:
                raise BadPayload("bad listpack entry")
            entries.append(value)
            pos += size + len(back)
    except IndexError as error:
        raise BadPayload("listpack entry cut short") from error
    if declared != 0xFFFF and declared != len(entries):
        raise BadPayload("listpack count mismatch")
    return entries


def parse_intset(blob: bytes) -> list[bytes]:
    """An intset's members (ascending), checked as Redis' intsetValidateIntegrity."""
    if len(blob) < 8:
        raise BadPayload("intset cut short")
    width = int.from_bytes(blob[:4], "little")
    count = int.from_bytes(blob[4:8], "little")
    if width not in (2, 4, 8) or count == 0 or 8 + width * count != len(blob):
        raise BadPayload("bad intset header")
    values = [int.from_bytes(blob[i:i + width], "little", signed=True)
              for i in range(8, len(blob), width)]
    if any(a >= b for a, b in pairwise(values)):
        raise BadPayload("intset not ascending")
    return [b"%d" % v for v in values]


_ZIPLIST_INTS = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}


def _ziplist_entry(blob: bytes, pos: int) -> tuple[bytes, int]:
    """One ziplist entry's value from its encoding at ``pos``: (value, encoding + data)."""
    first = blob[pos]
    kind = first >> 6
    if kind == 0:
        n = first & 0x3F
        return blob[pos + 1:pos + 1 + n], 1 + n
    if kind == 1:
        n = ((first & 0x3F) << 8) | blob[pos + 1]
        return blob[pos + 2:pos + 2 + n], 2 + n
    if kind == 2:
        n = int.from_bytes(blob[pos + 1:pos + 5], "big")
        return blob[pos + 5:pos + 5 + n], 5 + n
    if 0xF1 <= first <= 0xFD:  # an immediate 0..12
        return b"%d" % ((first & 0x0F) - 1), 1
    width = _ZIPLIST_INTS.get(first)
    if width is None:
        raise BadPayload("bad ziplist encoding")
    raw = int.from_bytes(blob[pos + 1:pos + 1 + width], "little", signed=True)
    return b"%d" % raw, 1 + width


def parse_ziplist(blob: bytes) -> list[bytes]:
    """Every entry of a ziplist (Redis before 7.0), each previous-length checked."""
    if len(blob) < 11 or int.from_bytes(blob[:4], "little") != len(blob) or blob[-1] != 0xFF:
        raise BadPayload("bad ziplist header")
    declared = int.from_bytes(blob[8:10], "little")
    entries: list[bytes] = []
    pos, end, previous, last = 10, len(blob) - 1, 0, 10
    try:
        while pos < end:
            if blob[pos] < 254:
                prevlen, head = blob[pos], 1
            elif blob[pos] == 254:
                prevlen, head = int.from_bytes(blob[pos + 1:pos + 5], "little"), 5
            else:
                raise BadPayload("bad ziplist entry")
            value, size = _ziplist_entry(blob, pos + head)
            if prevlen != previous or pos + head + size > end:
                raise BadPayload("bad ziplist entry")
            entries.append(value)
            last, previous = pos, head + size
            pos += previous
    except IndexError as error:
        raise BadPayload("ziplist entry cut short") from error
    if int.from_bytes(blob[4:8], "little") != last:
        raise BadPayload("bad ziplist tail")
    if declared != 0xFFFF and declared != len(entries):
        raise BadPayload("ziplist count mismatch")
    return entries


def _zipmap_length(blob: bytes, pos: int) -> tuple[int, int]:
    if blob[pos] < 254:
        return blob[pos], 1
    if blob[pos] == 254:
        return int.from_bytes(blob[pos + 1:pos + 5], "little"), 5
    raise BadPayload("bad zipmap length")


def parse_zipmap(blob: bytes) -> list[bytes]:
    """A zipmap's fields and values, alternating (Redis before 2.6): each a length (one
    byte, or 254 and four), a value's free-byte count, the bytes; 255 at the end."""
    items: list[bytes] = []
    pos, end = 1, len(blob) - 1
    try:
        while blob[pos] != 0xFF:
            for is_value in (False, True):
                n, head = _zipmap_length(blob, pos)
                pos += head
                free = 0
                if is_value:
                    free = blob[pos]
                    pos += 1
                if pos + n > end:
                    raise BadPayload("zipmap entry overruns")
                items.append(blob[pos:pos + n])
                pos += n + free
    except IndexError as error:
        raise BadPayload("zipmap cut short") from error
    if pos != end or (blob[0] < 254 and blob[0] != len(items) // 2):
        raise BadPayload("bad zipmap end or count")
    return items


# -- building values ---------------------------------------------------------------


def _pairs(items: list[bytes]) -> Iterator[tuple[bytes, bytes]]:
    if not items or len(items) % 2:
        raise BadPayload("odd number of entries")
    return zip(items[::2], items[1::2], strict=True)


def _build_list(items: list[bytes]) -> ListValue:
    if not items:
        raise BadPayload("empty list")
    return ListValue(items)


def _build_set(members: list[bytes]) -> SetValue:
    value = SetValue(members)
    if not members or len(value) != len(members):
        raise BadPayload("empty set or duplicate members")
    return value


def _build_hash(pairs: Iterable[tuple[bytes, bytes]]) -> HashValue:
    fields: dict[bytes, bytes] = {}
    count = 0
    for field, item in pairs:
        fields[field] = item
        count += 1
    if not fields or len(fields) != count:
        raise BadPayload("empty hash or duplicate fields")
    return HashValue(fields)


def _build_zset(pairs: Iterable[tuple[bytes, float]]) -> ZSetValue:
    scores: dict[bytes, float] = {}
    count = 0
    for member, score in pairs:
        if score != score:
            raise BadPayload("NaN score")
        scores[member] = score
        count += 1
    if not scores or len(scores) != count:
        raise BadPayload("empty zset or duplicate members")
    return ZSetValue(scores)


def _packed_zset(items: list[bytes]) -> ZSetValue:
    return _build_zset((member, _parse_score(score)) for member, score in _pairs(items))


def _load_quicklist(reader: _Reader, version_2: bool) -> ListValue:
    items: list[bytes] = []
    for _ in range(reader.length()):
        container = reader.length() if version_2 else _QUICKLIST_PACKED
        if container not in (_QUICKLIST_PLAIN, _QUICKLIST_PACKED):
            raise BadPayload("bad quicklist container")
        blob = reader.string()
        if container == _QUICKLIST_PLAIN:
            items.append(blob)
        else:
            items += parse_listpack(blob) if version_2 else parse_ziplist(blob)
    return _build_list(items)


def _load_set(reader: _Reader) -> SetValue:
    return _build_set([reader.string() for _ in range(reader.length())])


def _load_hash(reader: _Reader) -> HashValue:
    count = reader.length()
    return _build_hash((reader.string(), reader.string()) for _ in range(count))


def _load_zset(reader: _Reader, binary: bool) -> ZSetValue:
    count = reader.length()
    score = reader.binary_double if binary else reader.text_double
    return _build_zset((reader.string(), score()) for _ in range(count))


def _load_list(reader: _Reader) -> ListValue:
    return _build_list([reader.string() for _ in range(reader.length())])


_LOADERS = {
    TYPE_STRING: lambda r: r.string(),
    TYPE_LIST: _load_list,
    TYPE_SET: _load_set,
    TYPE_ZSET: lambda r: _load_zset(r, binary=False),
    TYPE_HASH: _load_hash,
    TYPE_ZSET_2: lambda r: _load_zset(r, binary=True),
    TYPE_HASH_ZIPMAP: lambda r: _build_hash(_pairs(parse_zipmap(r.string()))),
    TYPE_LIST_ZIPLIST: lambda r: _build_list(parse_ziplist(r.string())),
    TYPE_SET_INTSET: lambda r: _build_set(parse_intset(r.string())),
    TYPE_ZSET_ZIPLIST: lambda r: _packed_zset(parse_ziplist(r.string())),
    TYPE_HASH_ZIPLIST: lambda r: _build_hash(_pairs(parse_ziplist(r.string()))),
    TYPE_LIST_QUICKLIST: lambda r: _load_quicklist(r, version_2=False),
    TYPE_HASH_LISTPACK: lambda r: _build_hash(_pairs(parse_listpack(r.string()))),
    TYPE_ZSET_LISTPACK: lambda r: _packed_zset(parse_listpack(r.string())),
    TYPE_LIST_QUICKLIST_2: lambda r: _load_quicklist(r, version_2=True),
    TYPE_SET_LISTPACK: lambda r: _build_set(parse_listpack(r.string())),
}


def load_object(payload: bytes) -> object:
    """The value a (verified) payload holds, or BadPayload. Module values (types 6, 7)
    and streams (15, 19, 21) are refused: respkv holds neither."""
    reader = _Reader(payload)
    loader = _LOADERS.get(reader.byte())
    if loader is None:
        raise BadPayload("unsupported object type")
    return loader(reader)


# -- the commands ------------------------------------------------------------------


@command(
    "dump", 2, Kind.READ, keys=(1, 1, 1), family="generic", since="2.6.0",
    summary="Return a serialized version of the value stored at the specified key.",
)
def dump(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = db.get_for_read(args[1], now)
    return None if value is None else dump_payload(value)


def _restore_options(args: list[bytes]) -> tuple[bool, bool]:
    """RESTORE's options after the payload, in Redis' order of checks: (REPLACE, ABSTTL).
    IDLETIME and FREQ (one or the other) are checked, then ignored: respkv keeps no
    access statistics."""
    replace = absolute = False
    idle = freq = None
    i = 4
    while i < len(args):
        option = args[i].upper()
        more = i + 1 < len(args)
        if option == b"REPLACE":
            replace = True
        elif option == b"ABSTTL":
            absolute = True
        elif option == b"IDLETIME" and more and freq is None:
            idle = parse_int(args[i + 1])
            if idle < 0:
                raise INVALID_IDLETIME
            i += 1
        elif option == b"FREQ" and more and idle is None:
            freq = parse_int(args[i + 1])
            if not 0 <= freq <= 255:
                raise INVALID_FREQ
            i += 1
        else:
            raise errors.SYNTAX
        i += 1
    return replace, absolute


@command(
    "restore", -4, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="generic",
    since="2.6.0",
    summary="Create a key using the provided serialized value, previously obtained using "
            "DUMP.",
)
def restore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key, payload = args[1], args[3]
    replace, absolute = _restore_options(args)
    if not replace and db.get_for_write(key, now) is not None:
        raise BUSYKEY
    ttl = parse_int(args[2])
    if ttl < 0:
        raise INVALID_TTL
    if not payload_ok(payload):
        raise BAD_VERSION_OR_CRC
    try:
        value = load_object(payload)
    except BadPayload as error:
        raise BAD_FORMAT from error
    expire_at = None
    if ttl:
        expire_at = ttl if absolute else now + ttl
        if expire_at > _INT64_MAX or expire_at <= now:  # Redis' overflow wraps: expired too
            db.delete(key)
            return OK
    db.set(key, value, expire_at)
    return OK

