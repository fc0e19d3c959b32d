"""HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG and PFSELFTEST, as Redis 7.0.

A HyperLogLog is a plain string value holding Redis' own representation, byte for
byte (hyperloglog.c): a 16-byte header ("HYLL", the encoding, three unused bytes,
the cached cardinality in little endian whose top bit marks it stale), then either
the sparse run-length opcodes (ZERO 00xxxxxx, XZERO 01xxxxxx yyyyyyyy, VAL 1vvvvvxx)
or 16384 dense 6-bit registers. Elements are hashed with MurmurHash64A: the low 14
bits pick the register, the run of zeros in the other 50 gives its value. The
estimator is Ertl's (hllTau/hllSigma), so counts are exactly Redis' and GET of a key
returns the same bytes as Redis.

The algorithm part (everything above the command handlers) knows nothing of the
keyspace. Registers are handled in bulk as "raw" strings of 16384 bytes, one per
register, converted to and from the dense packing with bytes.translate and big-int
arithmetic rather than per-register Python code.

PFCOUNT of one key stores the cardinality it computes in the value's header, as Redis
does although it calls the command read-only: here PFCOUNT is therefore a WRITE,
applied through the log like any change, so every node keeps the same bytes. With
several keys it merges into a temporary and writes nothing.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right
from collections.abc import Iterator
from functools import cache

from respkv.commands import errors
from respkv.commands.context import ServerContext, Session
from respkv.commands.table import Kind, command
from respkv.protocol.reply import OK, Reply, RespError, Simple
from respkv.state.keyspace import Keyspace

FAMILY = "hyperloglog"

HASH_SEED = 0xADC83B19
HEADER_SIZE = 16
P = 14  # index bits
Q = 64 - P  # bits whose run of zeros is counted
REGISTERS = 1 << P
DENSE_REGISTER_BYTES = REGISTERS * 6 // 8
DENSE_SIZE = HEADER_SIZE + DENSE_REGISTER_BYTES
DENSE, SPARSE = 0, 1
SPARSE_MAX_BYTES = 3000  # hll-sparse-max-bytes' default
SPARSE_VAL_MAX_VALUE = 32
SPARSE_VAL_MAX_LEN = 4
SPARSE_ZERO_MAX_LEN = 64
SPARSE_XZERO_MAX_LEN = 16384
ALPHA_INF = 0.721347520444481703680  # 0.5/ln(2)
MAGIC = b"HYLL"

NOT_HLL = RespError("WRONGTYPE Key is not a valid HyperLogLog string value.")
CORRUPTED = RespError("INVALIDOBJ Corrupted HLL object detected")
NO_KEY = RespError("ERR The specified key does not exist")
NOT_SPARSE = RespError("ERR HLL encoding is not sparse")


class CorruptedHll(Exception):
    """A sparse representation that does not describe exactly 16384 registers."""


# -- hashing -----------------------------------------------------------------

_M = 0xC6A4A7935BD1E995
_MASK64 = (1 << 64) - 1


def murmurhash64a(data: bytes, seed: int = HASH_SEED) -> int:
    """MurmurHash2, 64-bit version, endian-neutral as Redis has it."""
    length = len(data)
    h = (seed ^ (length * _M)) & _MASK64
    blocks = length >> 3
    for k in struct.unpack_from(f"<{blocks}Q", data):
        k = (k * _M) & _MASK64
        k ^= k >> 47
        h ^= (k * _M) & _MASK64
        h = (h * _M) & _MASK64
    if length & 7:
        h ^= int.from_bytes(data[blocks * 8:], "little")
        h = (h * _M) & _MASK64
    h ^= h >> 47
    h = (h * _M) & _MASK64
    return h ^ (h >> 47)


def pattern(element: bytes) -> tuple[int, int]:
    """(register index, length of the 000..1 pattern) for an element (hllPatLen)."""
    h = murmurhash64a(element)
    rest = (h >> P) | (1 << Q)  # the sentinel bit bounds the count at Q+1
    return h & (REGISTERS - 1), (rest & -rest).bit_length()


# -- representations -----------------------------------------------------------


def empty_sparse() -> bytes:
    """A new HLL: sparse, one XZERO covering every register, cached cardinality 0."""
    xzero = SPARSE_XZERO_MAX_LEN - 1
    return MAGIC + bytes((SPARSE, 0, 0, 0)) + bytes(8) + bytes((0x40 | xzero >> 8, xzero & 0xFF))


def is_hll(value: bytes) -> bool:
    """Redis' isHLLObjectOrReply test on a string value."""
    if len(value) < HEADER_SIZE or value[:4] != MAGIC or value[4] > SPARSE:
        return False
    return value[4] == SPARSE or len(value) == DENSE_SIZE


def cached_cardinality(hll: bytes) -> int | None:
    """The header's cached cardinality, or None when it is marked stale."""
    if hll[15] & 0x80:
        return None
    return int.from_bytes(hll[8:16], "little")


def with_cardinality(hll: bytes, card: int) -> bytes:
    return hll[:8] + card.to_bytes(8, "little") + hll[16:]


def mark_stale(hll: bytes) -> bytes:
    """The value with its cached cardinality marked stale (HLL_INVALIDATE_CACHE)."""
    return hll[:15] + _SINGLE[hll[15] | 0x80] + hll[16:]


def _table(f) -> bytes:
    return bytes(f(b) & 0xFF for b in range(256))


# Dense packing: registers 4k..4k+3 live in bytes 3k..3k+2, from the low bits up.
_LOW6, _SHR6, _SHR4, _SHR2 = (_table(lambda b, s=s: (b >> s) & 63) for s in (0, 6, 4, 2))
_LOW4_SHL2 = _table(lambda b: (b & 15) << 2)
_LOW2_SHL4 = _table(lambda b: (b & 3) << 4)
_LOW2_SHL6 = _table(lambda b: (b & 3) << 6)
_LOW4_SHL4 = _table(lambda b: (b & 15) << 4)
_SHL2 = _table(lambda b: b << 2)
_SINGLE = [bytes((v,)) for v in range(256)]


def _or(a: bytes, b: bytes) -> bytes:
    """Bytewise OR of two equally long strings."""
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")


def dense_to_raw(registers: bytes) -> bytes:
    """The 16384 registers of a dense payload (12288 bytes), one byte each."""
    b0, b1, b2 = registers[0::3], registers[1::3], registers[2::3]
    raw = bytearray(REGISTERS)
    raw[0::4] = b0.translate(_LOW6)
    raw[1::4] = _or(b0.translate(_SHR6), b1.translate(_LOW4_SHL2))
    raw[2::4] = _or(b1.translate(_SHR4), b2.translate(_LOW2_SHL4))
    raw[3::4] = b2.translate(_SHR2)
    return bytes(raw)


def raw_to_dense(raw: bytes) -> bytes:
    """The dense payload of 16384 registers (each below 64)."""
    r0, r1, r2, r3 = raw[0::4], raw[1::4], raw[2::4], raw[3::4]
    packed = bytearray(DENSE_REGISTER_BYTES)
    packed[0::3] = _or(r0, r1.translate(_LOW2_SHL6))
    packed[1::3] = _or(r1.translate(_SHR2), r2.translate(_LOW4_SHL4))
    packed[2::3] = _or(r2.translate(_SHR4), r3.translate(_SHL2))
    return bytes(packed)


_LANE_HIGH = int.from_bytes(b"\x80" * REGISTERS, "little")
_ALL_ONES = (1 << (8 * REGISTERS)) - 1


def raw_max(a: bytes, b: bytes) -> bytes:
    """Register by register maximum of two raw strings (values below 128): each byte
    lane computes 128 + a - b without borrowing from its neighbour, whose top bit
    says a >= b."""
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    mask = ((((x | _LANE_HIGH) - y) & _LANE_HIGH) >> 7) * 0xFF
    return ((x & mask) | (y & (mask ^ _ALL_ONES))).to_bytes(REGISTERS, "little")


def _xzero_len(hll: bytes | bytearray, p: int) -> int:
    low = hll[p + 1] if p + 1 < len(hll) else 0  # past the end C reads the sds NUL
    return ((hll[p] & 0x3F) << 8 | low) + 1


def _sparse_runs(hll: bytes) -> Iterator[tuple[int, int, int]]:
    """(first register, run length, value) of each sparse opcode; CorruptedHll unless
    they cover exactly the 16384 registers (Redis checks every run for overflow)."""
    i, p, end = 0, HEADER_SIZE, len(hll)
    while p < end:
        op = hll[p]
        if op < 0x40:  # ZERO
            run, value = op + 1, 0
            p += 1
        elif op < 0x80:  # XZERO
            run, value = _xzero_len(hll, p), 0
            p += 2
        else:
            run, value = (op & 3) + 1, ((op >> 2) & 0x1F) + 1
            p += 1
        if i + run > REGISTERS:
            raise CorruptedHll
        yield i, run, value
        i += run
    if i != REGISTERS:
        raise CorruptedHll


def sparse_to_raw(hll: bytes) -> bytes:
    """The registers of a sparse HLL (hllMerge, hllSparseToDense)."""
    raw = bytearray(REGISTERS)
    for i, run, value in _sparse_runs(hll):
        if value:
            raw[i:i + run] = _SINGLE[value] * run
    return bytes(raw)


def registers_of(hll: bytes) -> bytes:
    """The raw registers of a valid HLL value (CorruptedHll for a bad sparse one)."""
    if hll[4] == DENSE:
        return dense_to_raw(hll[HEADER_SIZE:])
    return sparse_to_raw(hll)


def to_dense(hll: bytes) -> bytes:
    """The dense form of an HLL: same header (cached cardinality included)."""
    if hll[4] == DENSE:
        return hll
    return hll[:4] + b"\x00" + hll[5:HEADER_SIZE] + raw_to_dense(sparse_to_raw(hll))


# -- counting ------------------------------------------------------------------


def raw_histogram(raw: bytes) -> list[int]:
    """How many registers hold each value 0..Q+1 (higher values never count). Values
    are counted from 0 up until every register is accounted for: real HLLs hold few
    distinct, small values, and a value absent is found so by a quick memchr."""
    histogram = [0] * (Q + 2)
    left = len(raw)
    for v in range(Q + 2):
        single = _SINGLE[v]
        if single in raw:
            found = raw.count(single)
            histogram[v] = found
            left -= found
            if not left:
                break
    return histogram


def sparse_histogram(hll: bytes) -> list[int]:
    """hllSparseRegHisto (CorruptedHll for a bad sparse HLL)."""
    histogram = [0] * (Q + 2)
    for _, run, value in _sparse_runs(hll):
        histogram[value] += run
    return histogram


@cache
def _sigma(zeros: int) -> float:
    x = zeros / REGISTERS
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if previous == z:
            return z


@cache
def _tau(full: int) -> float:
    x = (REGISTERS - full) / REGISTERS
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= math.pow(1 - x, 2) * y
        if previous == z:
            return z / 3


def estimate(histogram: list[int]) -> int:
    """Ertl's estimate from a register histogram, as hllCount computes it (an
    unsigned 64-bit result: Redis' llroundl overflow gives 2**63)."""
    m = float(REGISTERS)
    z = m * _tau(histogram[Q + 1])
    for j in range(Q, 0, -1):
        z += histogram[j]
        z *= 0.5
    z += m * _sigma(histogram[0])
    e = ALPHA_INF * m * m / z if z else math.inf
    if not e < 2.0**63:
        return 1 << 63
    whole = math.floor(e)
    return whole + 1 if e - whole >= 0.5 else whole


def count(hll: bytes) -> int:
    """The cardinality of a valid HLL value, ignoring its cache."""
    if hll[4] == DENSE:
        return estimate(raw_histogram(dense_to_raw(hll[HEADER_SIZE:])))
    return estimate(sparse_histogram(hll))


def signed64(value: int) -> int:
    """A uint64 as Redis replies it (addReplyLongLong)."""
    return value - (1 << 64) if value >= 1 << 63 else value


# -- changing registers --------------------------------------------------------


def _val_op(value: int, run: int) -> int:
    return ((value - 1) << 2 | (run - 1) | 0x80) & 0xFF


def _zero_ops(run: int) -> bytes:
    if run > SPARSE_ZERO_MAX_LEN:
        return bytes(((run - 1) >> 8 | 0x40, (run - 1) & 0xFF))
    return _SINGLE[run - 1]


def _split(op: int, index: int, first: int, last: int, new: int, xzero: bool) -> bytearray:
    """The opcodes replacing one ZERO/XZERO/VAL run when register ``index`` gets ``new``."""
    seq = bytearray()
    if op < 0x80 or xzero:
        if index != first:
            seq += _zero_ops(index - first)
        seq.append(_val_op(new, 1))
        if index != last:
            seq += _zero_ops(last - index)
    else:
        current = ((op >> 2) & 0x1F) + 1
        if index != first:
            seq.append(_val_op(current, index - first))
        seq.append(_val_op(new, 1))
        if index != last:
            seq.append(_val_op(current, last - index))
    return seq


def _merge_vals(data: bytearray, p: int) -> None:
    """Step 4 of hllSparseSet: fuse adjacent equal VALs among 5 opcodes from ``p``."""
    end = len(data)
    scan = 5
    while p < end and scan:
        scan -= 1
        op = data[p]
        if op & 0xC0 == 0x40:
            p += 2
            continue
        if op & 0xC0 == 0:
            p += 1
            continue
        if p + 1 < end and data[p + 1] & 0x80:
            nxt = data[p + 1]
            value = ((op >> 2) & 0x1F) + 1
            run = (op & 3) + (nxt & 3) + 2
            if value == ((nxt >> 2) & 0x1F) + 1 and run <= SPARSE_VAL_MAX_LEN:
                data[p + 1] = _val_op(value, run)
                del data[p]
                end -= 1
                continue
        p += 1


class HllBuffer:
    """An HLL value being changed, in a bytearray, with Redis' update rules
    (hllDenseSet, hllSparseSet and its promotion to dense).

    For the sparse form it remembers where the opcodes it has walked start (and their
    first register): those before the last change stay valid, so a later update
    need not walk from the beginning again (PFMERGE sets registers in order)."""

    __slots__ = ("_firsts", "_starts", "data")

    def __init__(self, hll: bytes) -> None:
        self.data = bytearray(hll)
        self._starts = [HEADER_SIZE]
        self._firsts = [0]

    @property
    def is_dense(self) -> bool:
        return self.data[4] == DENSE

    def value(self) -> bytes:
        return bytes(self.data)

    def invalidate_cache(self) -> None:
        self.data[15] |= 0x80

    def add(self, element: bytes) -> int:
        """1 if a register grew, else 0; CorruptedHll for a bad sparse HLL."""
        index, run = pattern(element)
        return self.set(index, run)

    def set(self, index: int, value: int) -> int:
        if self.data[4] == DENSE:
            return _dense_set(self.data, index, value)
        return self._sparse_set(index, value)

    def set_all_dense(self, raw: bytes) -> None:
        """Registers replaced by ``raw`` (for a dense HLL whose registers are all <= raw)."""
        self.data[HEADER_SIZE:] = raw_to_dense(raw)

    def _promote(self, index: int, value: int) -> int:
        self.data = bytearray(to_dense(bytes(self.data)))
        _dense_set(self.data, index, value)
        return 1

    def _locate(self, index: int) -> tuple[int, int, int, int | None]:
        """(position, first register, span) of the opcode covering ``index`` and the
        position of the opcode before it; span 0 when none does."""
        data, starts, firsts = self.data, self._starts, self._firsts
        k = bisect_right(firsts, index) - 1
        p, first = starts[k], firsts[k]
        prev = starts[k - 1] if k else None
        end, known = len(data), len(starts) - 1
        span = 0
        while p < end:
            op = data[p]
            if op < 0x40:
                span, size = op + 1, 1
            elif op & 0x80:
                span, size = (op & 3) + 1, 1
            else:
                span, size = _xzero_len(data, p), 2
            if index <= first + span - 1:
                return p, first, span, prev
            prev = p
            p += size
            first += span
            k += 1
            if k > known:
                starts.append(p)
                firsts.append(first)
        return p, first, 0, prev

    def _sparse_set(self, index: int, value: int) -> int:
        if value > SPARSE_VAL_MAX_VALUE:
            return self._promote(index, value)
        data = self.data
        end = len(data)
        p, first, span, prev = self._locate(index)
        if span == 0 or p >= end:
            raise CorruptedHll
        op = data[p]
        xzero = op & 0xC0 == 0x40
        if op & 0x80:
            if ((op >> 2) & 0x1F) + 1 >= value:
                return 0
            if op & 3 == 0:
                data[p] = _val_op(value, 1)
                return self._updated(prev)
        elif not xzero and op == 0:
            data[p] = _val_op(value, 1)
            return self._updated(prev)
        seq = _split(op, index, first, first + span - 1, value, xzero)
        old = 2 if xzero else 1
        delta = len(seq) - old
        if delta > 0 and end + delta > SPARSE_MAX_BYTES:
            return self._promote(index, value)
        if p + old < end:
            data[p:p + old] = seq
        else:  # the last opcode: C writes the sequence and sets the length to end+delta
            data[p:] = seq
            del data[end + delta:]
        return self._updated(prev)

    def _updated(self, prev: int | None) -> int:
        _merge_vals(self.data, HEADER_SIZE if prev is None else prev)
        keep = bisect_right(self._starts, HEADER_SIZE if prev is None else prev)
        del self._starts[keep:]
        del self._firsts[keep:]
        self.invalidate_cache()
        return 1


def _dense_set(data: bytearray, index: int, value: int) -> int:
    """hllDenseSet on a whole dense value: 1 if the register grew."""
    bit = index * 6
    at = HEADER_SIZE + (bit >> 3)
    shift = bit & 7
    has_next = at + 1 < len(data)  # the last register's next byte is the sds NUL
    b0 = data[at]
    b1 = data[at + 1] if has_next else 0
    if value <= ((b0 >> shift) | (b1 << (8 - shift))) & 63:
        return 0
    data[at] = (b0 & ~(63 << shift) | value << shift) & 0xFF
    if has_next:
        data[at + 1] = (b1 & ~(63 >> (8 - shift)) | value >> (8 - shift)) & 0xFF
    return 1


def dense_register(hll: bytes, index: int) -> int:
    bit = index * 6
    at = HEADER_SIZE + (bit >> 3)
    pair = hll[at] | (hll[at + 1] << 8 if at + 1 < len(hll) else 0)
    return (pair >> (bit & 7)) & 63


def add(hll: bytes, elements: list[bytes]) -> tuple[bytes, bool]:
    """PFADD's change: (new value, whether any register grew); the cache is marked
    stale when one did. CorruptedHll for a bad sparse HLL."""
    buffer = HllBuffer(hll)
    updated = 0
    for element in elements:
        updated |= buffer.add(element)
    if updated:
        buffer.invalidate_cache()
    return buffer.value(), bool(updated)


def merge_registers(hlls: list[bytes]) -> tuple[bytes, bool]:
    """The register maximum of valid HLL values and whether any is dense."""
    raw = bytes(REGISTERS)
    dense = False
    for hll in hlls:
        dense = dense or hll[4] == DENSE
        raw = raw_max(raw, registers_of(hll))
    return raw, dense


def merge_into(dest: bytes, raw: bytes, dense: bool) -> bytes:
    """PFMERGE's write of the merged registers ``raw`` (which include dest's own) into
    ``dest``: dense when any input was, otherwise register by register through the
    sparse updates (which may promote it); the cache is marked stale."""
    buffer = HllBuffer(to_dense(dest) if dense else dest)
    if not buffer.is_dense:
        for index, value in enumerate(raw):
            if value:
                buffer.set(index, value)
                if buffer.is_dense:
                    break
    if buffer.is_dense:
        buffer.set_all_dense(raw)  # every register left is raised to raw's, no further
    buffer.invalidate_cache()
    return buffer.value()


def decode_sparse(hll: bytes) -> bytes:
    """PFDEBUG DECODE's listing of the sparse opcodes."""
    parts = []
    p, end = HEADER_SIZE, len(hll)
    while p < end:
        op = hll[p]
        if op < 0x40:
            parts.append(b"z:%d" % (op + 1))
            p += 1
        elif op < 0x80:
            parts.append(b"Z:%d" % _xzero_len(hll, p))
            p += 2
        else:
            parts.append(b"v:%d,%d" % (((op >> 2) & 0x1F) + 1, (op & 3) + 1))
            p += 1
    return b" ".join(parts)


# -- commands --------------------------------------------------------------------


def _hll_or_none(value: object) -> bytes | None:
    """A stored value checked as an HLL: WRONGTYPE for another type or a string that
    is not one."""
    if value is None:
        return None
    if type(value) is not bytes:
        raise errors.WRONGTYPE
    if not is_hll(value):
        raise NOT_HLL
    return value


@command(
    "pfadd", -2, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family=FAMILY,
    summary="Adds the specified elements to the specified HyperLogLog.", since="2.8.9",
)
def pfadd(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[1]
    old = _hll_or_none(db.get_for_write(key, now))
    try:
        value, updated = add(empty_sparse() if old is None else old, args[2:])
    except CorruptedHll:
        raise CORRUPTED from None
    if old is None:  # a creation counts as an update, even with no element
        db.set(key, value if updated else mark_stale(value))
        return 1
    if updated:
        db.set_keep_ttl(key, value)
    return int(updated)


@command(
    "pfcount", -2, Kind.WRITE, keys=(1, -1, 1), family=FAMILY,
    summary="Return the approximated cardinality of the set(s) observed by the "
            "HyperLogLog at key(s).", since="2.8.9",
)
def pfcount(db: Keyspace, args: list[bytes], now: int) -> Reply:
    if len(args) > 2:
        return _count_union(db, args[1:], now)
    key = args[1]
    hll = _hll_or_none(db.get_for_read(key, now))
    if hll is None:
        return 0
    card = cached_cardinality(hll)
    if card is not None:
        return card
    try:
        card = count(hll)
    except CorruptedHll:
        raise CORRUPTED from None
    db.set_keep_ttl(key, with_cardinality(hll, card))
    return signed64(card)


def _count_union(db: Keyspace, keys: list[bytes], now: int) -> int:
    raw, _ = _merged(db, keys, now)
    return signed64(estimate(raw_histogram(raw)))


def _merged(db: Keyspace, keys: list[bytes], now: int) -> tuple[bytes, bool]:
    """The register maximum of the HLLs at keys (a missing key is an empty HLL) and
    whether any is dense. Keys are checked one by one, as Redis: the first bad one
    gives the error."""
    raw = bytes(REGISTERS)
    dense = False
    for key in keys:
        hll = _hll_or_none(db.get_for_read(key, now))
        if hll is None:
            continue
        dense = dense or hll[4] == DENSE
        try:
            raw = raw_max(raw, registers_of(hll))
        except CorruptedHll:
            raise CORRUPTED from None
    return raw, dense


@command(
    "pfmerge", -2, Kind.WRITE, flags=("denyoom",), keys=(1, -1, 1), family=FAMILY,
    summary="Merge N different HyperLogLogs into a single one.", since="2.8.9",
)
def pfmerge(db: Keyspace, args: list[bytes], now: int) -> Reply:
    raw, dense = _merged(db, args[1:], now)  # the destination's registers count too
    dest = _hll_or_none(db.get_for_write(args[1], now))
    if dest is None:
        db.set(args[1], merge_into(empty_sparse(), raw, dense))
    else:  # changed in place, as Redis: the TTL stays
        db.set_keep_ttl(args[1], merge_into(dest, raw, dense))
    return OK


@command(
    "pfdebug", 3, Kind.WRITE, flags=("denyoom", "admin"), keys=(2, 2, 1), family=FAMILY,
    summary="Internal commands for debugging HyperLogLog values", since="2.8.9",
)
def pfdebug(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[2]
    hll = _hll_or_none(db.get_for_write(key, now))
    if hll is None:
        raise NO_KEY
    sub = args[1].lower()
    if sub == b"getreg":
        dense = _dense_stored(db, key, hll)
        return list(dense_to_raw(dense[HEADER_SIZE:]))
    if sub == b"decode":
        if hll[4] != SPARSE:
            raise NOT_SPARSE
        return decode_sparse(hll)
    if sub == b"encoding":
        return Simple("dense" if hll[4] == DENSE else "sparse")
    if sub == b"todense":
        converted = hll[4] == SPARSE
        _dense_stored(db, key, hll)
        return int(converted)
    name = args[1].split(b"\x00", 1)[0]  # Redis prints it as a C string
    raise RespError(f"ERR Unknown PFDEBUG subcommand '{name.decode('utf-8', 'replace')}'")


def _dense_stored(db: Keyspace, key: bytes, hll: bytes) -> bytes:
    """The dense form of the HLL at key, stored there if it was sparse."""
    if hll[4] == DENSE:
        return hll
    try:
        dense = to_dense(hll)
    except CorruptedHll:
        raise CORRUPTED from None
    db.set_keep_ttl(key, dense)
    return dense


@command(
    "pfselftest", 1, Kind.SERVER, flags=("admin",), family=FAMILY,
    summary="An internal command for testing HyperLogLog values", since="2.8.9",
)
def pfselftest(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    failure = self_test()
    if failure:
        raise RespError(f"TESTFAILED {failure}")
    return OK


def self_test() -> str | None:
    """Quick checks of the register packing and of the sparse and dense paths agreeing;
    a description of the first failure, or None."""
    raw = bytes((i * 7 + i // 5) % 64 for i in range(REGISTERS))
    dense = raw_to_dense(raw)
    if dense_to_raw(dense) != raw:
        return "Register error: packing round trip"
    for index in (0, 1, 2, 3, 4097, REGISTERS - 1):
        if dense_register(b"\x00" * HEADER_SIZE + dense, index) != raw[index]:
            return f"Register error at {index}"
    sparse = HllBuffer(empty_sparse())
    for i in range(500):
        sparse.add(b"%d" % i)
    if sparse.is_dense:
        return "Sparse HLL promoted too early"
    promoted = HllBuffer(to_dense(sparse.value()))
    if count(sparse.value()) != count(promoted.value()):
        return "Sparse and dense counts differ"
    if abs(count(sparse.value()) - 500) > 25:
        return "Cardinality estimate out of range"
    return None
