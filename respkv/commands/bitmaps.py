"""Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO,
with Redis 7.0's semantics, argument order and error texts.

A bitmap is a string (``bytes``): bit 0 is the most significant bit of byte 0.
Strings are immutable, so a write builds the new value: SETBIT and BITFIELD cost
O(len), one C-speed copy of the old bytes (joined around the changed bytes), and
BITOP O(total length), with big-int operations on bounded chunks doing the work.
Readers never copy more than a chunk at a time: BITCOUNT counts bits of big ints,
BITPOS skips runs of 0x00/0xff with memcmp (bytes.startswith).

Redis compares option names with strcasecmp, which stops at a NUL byte: ``c_word``
does the same, so "and\\0x" is AND here as there.
"""

from __future__ import annotations

from dataclasses import dataclass

from respkv.commands import errors
from respkv.commands.args import parse_int
from respkv.commands.strings import MAX_STRING, c_word, get_string, write_string
from respkv.commands.table import Kind, command
from respkv.protocol.reply import Reply, RespError
from respkv.state.keyspace import Keyspace

BIT_OFFSET = RespError("ERR bit offset is not an integer or out of range")
BIT_VALUE = RespError("ERR bit is not an integer or out of range")
BIT_ARGUMENT = RespError("ERR The bit argument must be 1 or 0.")
NOT_ONE_KEY = RespError("ERR BITOP NOT must be called with a single source key.")
FIELD_TYPE = RespError(
    "ERR Invalid bitfield type. Use something like i16 u8. "
    "Note that u64 is not supported but i64 is."
)
OVERFLOW_TYPE = RespError("ERR Invalid OVERFLOW type specified")
RO_ONLY_GET = RespError("ERR BITFIELD_RO only supports the GET subcommand")

_CHUNK = 1 << 16  # bytes handled at a time by the scans and BITOP
_UINT64 = (1 << 64) - 1


def _wrap_int64(value: int) -> int:
    """``value`` as C's int64 arithmetic leaves it (two's complement wrap-around)."""
    return ((value + (1 << 63)) & _UINT64) - (1 << 63)


def bit_offset(raw: bytes, field_bits: int = 0) -> int:
    """A bit offset as Redis' getBitOffsetFromArgument reads it: ``#N`` (BITFIELD only,
    ``field_bits`` > 0) means N fields in, multiplied in int64 as C does; the offset
    must address a byte below proto-max-bulk-len (so at most 2**32 - 1)."""
    if field_bits and raw[:1] == b"#":
        offset = _wrap_int64(parse_int(raw[1:], BIT_OFFSET) * field_bits)
    else:
        offset = parse_int(raw, BIT_OFFSET)
    if offset < 0 or (offset >> 3) >= MAX_STRING:
        raise BIT_OFFSET
    return offset


# -- SETBIT / GETBIT ----------------------------------------------------------


@command(
    "setbit", 4, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="bitmap",
    summary="Sets or clears the bit at offset in the string value stored at key",
    since="2.2.0",
)
def setbit(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[1]
    offset = bit_offset(args[2])
    on = parse_int(args[3], BIT_VALUE)
    if on not in (0, 1):
        raise BIT_VALUE
    old = write_string(db, key, now) or b""
    byte, mask = offset >> 3, 0x80 >> (offset & 7)
    current = old[byte] if byte < len(old) else 0
    was = 1 if current & mask else 0
    if byte < len(old) and was == on:
        return was  # nothing changes: Redis does not even touch the key
    new = bytes((current | mask if on else current & ~mask,))
    view = memoryview(old)
    if byte < len(old):
        value = b"".join((view[:byte], new, view[byte + 1 :]))  # the one copy
    else:
        value = b"".join((view, bytes(byte - len(old)), new))
    db.set_keep_ttl(key, value)  # SETBIT keeps the key's TTL
    return was


@command(
    "getbit", 3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family="bitmap",
    summary="Returns the bit value at offset in the string value stored at key",
    since="2.2.0",
)
def getbit(db: Keyspace, args: list[bytes], now: int) -> Reply:
    offset = bit_offset(args[2])
    value = get_string(db, args[1], now)
    byte = offset >> 3
    if value is None or byte >= len(value):
        return 0
    return 1 if value[byte] & (0x80 >> (offset & 7)) else 0


# -- BITCOUNT / BITPOS ----------------------------------------------------------


def _is_bit_unit(raw: bytes) -> bool:
    """BIT or BYTE (case-insensitive), else a syntax error."""
    unit = c_word(raw)
    if unit == b"BIT":
        return True
    if unit == b"BYTE":
        return False
    raise errors.SYNTAX


def _clamp(start: int, end: int, total: int) -> tuple[int, int]:
    """Redis' index normalisation: negatives count from the end, then clamp."""
    if start < 0:
        start += total
    if end < 0:
        end += total
    return max(start, 0), min(max(end, 0), total - 1)


def _popcount(value: bytes, first_byte: int, last_byte: int) -> int:
    view = memoryview(value)
    return sum(
        int.from_bytes(view[low : min(low + _CHUNK, last_byte + 1)], "little").bit_count()
        for low in range(first_byte, last_byte + 1, _CHUNK)
    )


def count_bits(value: bytes, first: int, last: int) -> int:
    """How many bits are set in bits first..last (0 <= first <= last < 8*len): the
    whole bytes' count, less the edge bits outside the range (as Redis counts)."""
    first_byte, last_byte = first >> 3, last >> 3
    total = _popcount(value, first_byte, last_byte)
    total -= (value[first_byte] >> (8 - (first & 7))).bit_count()
    return total - (value[last_byte] & ((0x80 >> (last & 7)) - 1)).bit_count()


def _in_byte(byte: int, low: int, high: int, target: int) -> int:
    """The first bit among bits low..high of one byte (0 = its top bit) equal to
    ``target``, or -1."""
    if not target:
        byte ^= 0xFF
    byte &= (0x100 >> low) - 1  # drop the bits before low
    byte >>= 7 - high  # and those after high
    return -1 if not byte else high - (byte.bit_length() - 1)


def _first_byte_not(value: bytes, start: int, end: int, skip: int) -> int:
    """The first index in start..end-1 whose byte is not ``skip``, or -1. Runs of
    ``skip`` are passed over a chunk at a time by startswith (a memcmp)."""
    run = bytes((skip,)) * min(_CHUNK, max(end - start, 0))
    for low in range(start, end, _CHUNK):
        high = min(low + _CHUNK, end)
        if value.startswith(run if high - low == len(run) else run[: high - low], low):
            continue
        chunk = value[low:high]
        return low + len(chunk) - len(chunk.lstrip(bytes((skip,))))
    return -1


def first_bit(value: bytes, first: int, last: int, target: int) -> int:
    """The first bit equal to ``target`` in bits first..last, or -1 if there is none."""
    first_byte, last_byte = first >> 3, last >> 3
    if first_byte == last_byte:
        found = _in_byte(value[first_byte], first & 7, last & 7, target)
        return -1 if found < 0 else 8 * first_byte + found
    found = _in_byte(value[first_byte], first & 7, 7, target)
    if found >= 0:
        return 8 * first_byte + found
    index = _first_byte_not(value, first_byte + 1, last_byte, 0 if target else 0xFF)
    if index >= 0:
        return 8 * index + _in_byte(value[index], 0, 7, target)
    found = _in_byte(value[last_byte], 0, last & 7, target)
    return -1 if found < 0 else 8 * last_byte + found


@command(
    "bitcount", -2, Kind.READ, keys=(1, 1, 1), family="bitmap",
    summary="Count set bits in a string", since="2.6.0",
)
def bitcount(db: Keyspace, args: list[bytes], now: int) -> Reply:
    # Redis 7.0 looks the key up before reading any argument: a missing key is 0
    # whatever follows it.
    value = get_string(db, args[1], now)
    if value is None:
        return 0
    if len(args) == 2:
        return count_bits(value, 0, 8 * len(value) - 1) if value else 0
    if len(args) > 5 or len(args) == 3:
        raise errors.SYNTAX
    start, end = parse_int(args[2]), parse_int(args[3])
    if start < 0 and end < 0 and start > end:
        return 0
    in_bits = len(args) == 5 and _is_bit_unit(args[4])
    start, end = _clamp(start, end, len(value) * (8 if in_bits else 1))
    if start > end:
        return 0
    if in_bits:
        return count_bits(value, start, end)
    return count_bits(value, 8 * start, 8 * end + 7)


@command(
    "bitpos", -3, Kind.READ, keys=(1, 1, 1), family="bitmap",
    summary="Find first bit set or clear in a string", since="2.8.7",
)
def bitpos(db: Keyspace, args: list[bytes], now: int) -> Reply:
    target = parse_int(args[2])
    if target not in (0, 1):
        raise BIT_ARGUMENT
    value = get_string(db, args[1], now)
    if value is None:  # an endless run of zeros, whatever the range says
        return -1 if target else 0
    if len(args) > 6:
        raise errors.SYNTAX
    size = len(value)
    start, end, in_bits = 0, size - 1, False
    if len(args) >= 4:
        start = parse_int(args[3])
        in_bits = len(args) == 6 and _is_bit_unit(args[5])  # Redis reads it before END
        if len(args) >= 5:
            end = parse_int(args[4])
        start, end = _clamp(start, end, size * (8 if in_bits else 1))
    if start > end:
        return -1
    if not in_bits:
        start, end = 8 * start, 8 * end + 7
    found = first_bit(value, start, end, target)
    if found < 0 and not target and len(args) < 5:
        return end + 1  # no END given: the string goes on with zeros past its end
    return found


# -- BITOP ------------------------------------------------------------------------

_BITOPS = (b"AND", b"OR", b"XOR", b"NOT")


@command(
    "bitop", -4, Kind.WRITE, flags=("denyoom",), keys=(2, -1, 1), family="bitmap",
    summary="Perform bitwise operations between strings", since="2.6.0",
)
def bitop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    op = c_word(args[1])
    if op not in _BITOPS:
        raise errors.SYNTAX
    if op == b"NOT" and len(args) != 4:
        raise NOT_ONE_KEY
    sources = [write_string(db, key, now) or b"" for key in args[3:]]
    size = max(map(len, sources))
    if not size:
        db.delete(args[2])
        return 0
    if op == b"NOT":
        result = sources[0].translate(_INVERTED)
    else:
        result = b"".join(_combine(op, sources, low, min(low + _CHUNK, size))
                          for low in range(0, size, _CHUNK))
    db.set(args[2], result)  # a new value: the TTL goes
    return size


_INVERTED = bytes(255 - byte for byte in range(256))


def _combine(op: bytes, sources: list[bytes], low: int, high: int) -> bytes:
    """Bytes low..high-1 of AND/OR/XOR over the sources, each one big int (a source
    that ends early is zero-padded on the right, as Redis reads it)."""
    width = high - low
    pieces = (source[low:high] for source in sources)
    words = [int.from_bytes(piece, "big") << (8 * (width - len(piece))) for piece in pieces]
    result = words[0]
    for word in words[1:]:
        if op == b"AND":
            result &= word
        elif op == b"OR":
            result |= word
        else:
            result ^= word
    return result.to_bytes(width, "big")


# -- BITFIELD -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class FieldOp:
    kind: bytes  # GET, SET or INCRBY
    signed: bool
    bits: int
    offset: int
    value: int  # SET's value or INCRBY's increment
    overflow: bytes  # WRAP, SAT or FAIL, as in force where the op was given


def _field_type(raw: bytes) -> tuple[bool, int]:
    """(signed, bits) from i1..i64 or u1..u63 (the digits read up to a NUL, as C does)."""
    sign = raw[:1]
    if sign not in (b"i", b"u"):
        raise FIELD_TYPE
    bits = parse_int(raw[1:].split(b"\0", 1)[0], FIELD_TYPE)
    if bits < 1 or bits > (64 if sign == b"i" else 63):
        raise FIELD_TYPE
    return sign == b"i", bits


_FIELD_ARGS = {b"GET": 2, b"SET": 3, b"INCRBY": 3}


def parse_field_ops(args: list[bytes]) -> list[FieldOp]:
    """BITFIELD's operations, every argument checked in Redis' order."""
    ops: list[FieldOp] = []
    overflow = b"WRAP"
    i = 2
    while i < len(args):
        name = c_word(args[i])
        remaining = len(args) - i - 1
        if name == b"OVERFLOW" and remaining >= 1:
            overflow = c_word(args[i + 1])
            if overflow not in (b"WRAP", b"SAT", b"FAIL"):
                raise OVERFLOW_TYPE
            i += 2
            continue
        needed = _FIELD_ARGS.get(name)
        if needed is None or remaining < needed:
            raise errors.SYNTAX
        signed, bits = _field_type(args[i + 1])
        offset = bit_offset(args[i + 2], bits)
        value = parse_int(args[i + 3]) if name != b"GET" else 0
        ops.append(FieldOp(name, signed, bits, offset, value, overflow))
        i += needed + 1
    return ops


def read_field(data: bytes | bytearray, offset: int, bits: int, signed: bool) -> int:
    """The field at ``offset``; bits past the end of ``data`` read as zeros."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    size = last - first + 1
    word = int.from_bytes(data[first : last + 1].ljust(size, b"\0"), "big")
    field = (word >> (8 * size - (offset & 7) - bits)) & ((1 << bits) - 1)
    if signed and field >> (bits - 1):
        field -= 1 << bits
    return field


def write_field(data: bytearray, offset: int, bits: int, field: int) -> None:
    """Store ``field`` (taken modulo 2**bits) at ``offset``; ``data`` is long enough."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    size = last - first + 1
    shift = 8 * size - (offset & 7) - bits
    mask = ((1 << bits) - 1) << shift
    word = int.from_bytes(data[first : last + 1], "big")
    word = (word & ~mask) | ((field << shift) & mask)
    data[first : last + 1] = word.to_bytes(size, "big")


class Draft:
    """A string BITFIELD works on: the old bytes, zero-padded to ``size``, under the
    bytes written so far. The new value is built once at the end (one copy, however
    many fields were written)."""

    __slots__ = ("base", "size", "written")

    def __init__(self, base: bytes, size: int) -> None:
        self.base = base
        self.size = max(size, len(base))
        self.written: dict[int, int] = {}

    def window(self, first: int, count: int) -> bytearray:
        """Bytes first..first+count-1 as they stand now."""
        out = bytearray(self.base[first : first + count].ljust(count, b"\0"))
        if self.written:
            for index in range(first, first + count):
                if index in self.written:
                    out[index - first] = self.written[index]
        return out

    def put(self, first: int, data: bytearray) -> None:
        for index, byte in enumerate(data, first):
            self.written[index] = byte

    def changed(self) -> bool:
        base = self.base
        return self.size > len(base) or any(base[i] != b for i, b in self.written.items())

    def value(self) -> bytes:
        parts: list[bytes | memoryview] = []
        done = 0
        for index in sorted(self.written):
            parts += self._span(done, index)
            parts.append(bytes((self.written[index],)))
            done = index + 1
        parts += self._span(done, self.size)
        return b"".join(parts)

    def _span(self, start: int, end: int) -> list[bytes | memoryview]:
        """Old bytes start..end-1, then zeros for the part past the old end."""
        kept = memoryview(self.base)[start:end]
        return [kept, bytes(max(end - max(start, len(self.base)), 0))]


def fit_field(value: int, op: FieldOp) -> int | None:
    """``value`` made to fit the field as OVERFLOW says: None if it fails."""
    if op.signed:
        low, high = -(1 << (op.bits - 1)), (1 << (op.bits - 1)) - 1
    else:
        low, high = 0, (1 << op.bits) - 1
    if low <= value <= high:
        return value
    if op.overflow == b"FAIL":
        return None
    if op.overflow == b"SAT":
        # Redis tests a signed SET with "0 > max - value" in int64: for a value far
        # below the minimum, max - value wraps negative and reads as an overflow.
        quirk = op.signed and op.kind == b"SET" and _wrap_int64(high - value) < 0
        return high if value > high or quirk else low
    wrapped = value & ((1 << op.bits) - 1)
    return wrapped - (1 << op.bits) if op.signed and wrapped > high else wrapped


def run_field_op(draft: Draft, op: FieldOp) -> int | None:
    """One operation's reply; a SET or INCRBY writes into the draft."""
    first = op.offset >> 3
    count = ((op.offset + op.bits - 1) >> 3) - first + 1
    window = draft.window(first, count)
    relative = op.offset & 7
    old = read_field(window, relative, op.bits, op.signed)
    if op.kind == b"GET":
        return old
    if op.kind == b"SET":
        # C stores SET's value in the field's own C type: for a uint64, a negative
        # value is huge, so it saturates to the maximum.
        wanted = op.value if op.signed else op.value & _UINT64
    else:
        wanted = old + op.value
    new = fit_field(wanted, op)
    if new is None:
        return None
    write_field(window, relative, op.bits, new)
    draft.put(first, window)
    return old if op.kind == b"SET" else new


@command(
    "bitfield", -2, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="bitmap",
    summary="Perform arbitrary bitfield integer operations on strings", since="3.2.0",
)
def bitfield(db: Keyspace, args: list[bytes], now: int) -> Reply:
    ops = parse_field_ops(args)
    key = args[1]
    old = write_string(db, key, now)
    writes = [op for op in ops if op.kind != b"GET"]
    # Redis first makes the string long enough for the farthest write, even when every
    # write then fails: the key may be created or grown by a BITFIELD that sets nothing.
    needed = (max(op.offset + op.bits - 1 for op in writes) >> 3) + 1 if writes else 0
    draft = Draft(old or b"", needed)
    replies = [run_field_op(draft, op) for op in ops]
    if writes and (old is None or draft.changed()):
        db.set_keep_ttl(key, draft.value())
    return replies


@command(
    "bitfield_ro", -2, Kind.READ, flags=("fast",), keys=(1, 1, 1), family="bitmap",
    summary="Perform arbitrary bitfield integer operations on strings. "
    "Read-only variant of BITFIELD",
    since="6.0.0",
)
def bitfield_ro(db: Keyspace, args: list[bytes], now: int) -> Reply:
    ops = parse_field_ops(args)
    if any(op.kind != b"GET" for op in ops):
        raise RO_ONLY_GET
    draft = Draft(get_string(db, args[1], now) or b"", 0)
    return [run_field_op(draft, op) for op in ops]
