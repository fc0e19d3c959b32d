"""String commands: GET, SET and friends, with Redis 7.0's semantics.

WRITE handlers validate every argument before the first mutation: a raised
RespError is the reply, and whatever was already changed would stay applied.
(Deleting an expired key in ``get_for_write`` is no such change: readers
already see it absent.)
"""

from __future__ import annotations

from fractions import Fraction

from respkv.commands import errors
from respkv.commands.args import (
    format_long_double,
    parse_int,
    parse_long_double,
    round_long_double,
)
from respkv.commands.table import Kind, command
from respkv.commands.typed import read_typed, write_typed
from respkv.protocol.reply import OK, Reply, RespError
from respkv.state.keyspace import Keyspace

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
MAX_STRING = 512 * 1024 * 1024  # proto-max-bulk-len's default
_UNITS = (b"EX", b"PX", b"EXAT", b"PXAT")


def get_string(db: Keyspace, key: bytes, now: int) -> bytes | None:
    """A string value for a reader, or WRONGTYPE."""
    return read_typed(db, key, now, bytes)


def write_string(db: Keyspace, key: bytes, now: int) -> bytes | None:
    """A string value for a writer (an expired key is deleted), or WRONGTYPE."""
    return write_typed(db, key, now, bytes)


def expire_time(unit: bytes, raw: bytes, now: int, name: str) -> int:
    """An absolute expiry in ms from EX/PX/EXAT/PXAT and its argument."""
    amount = parse_int(raw)
    if amount <= 0 or (unit in (b"EX", b"EXAT") and amount > _INT64_MAX // 1000):
        raise errors.invalid_expire(name)
    if unit in (b"EX", b"EXAT"):
        amount *= 1000
    at = now + amount if unit in (b"EX", b"PX") else amount
    if at > _INT64_MAX:  # Redis' signed overflow makes it negative: same error
        raise errors.invalid_expire(name)
    return at


def _store(db: Keyspace, key: bytes, value: bytes, expire_at: int | None, now: int) -> None:
    """Set with a TTL; a time already past leaves the key absent, as readers would see it."""
    if expire_at is not None and expire_at <= now:
        db.delete(key)
    else:
        db.set(key, value, expire_at)


# -- GET / SET family --------------------------------------------------------


@command(
    "get", 2, Kind.READ, flags=("fast",), keys=(1, 1, 1), family="string",
    summary="Get the value of a key",
)
def get(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return get_string(db, args[1], now)


def parse_set_options(
    args: list[bytes], start: int, is_set: bool
) -> tuple[set[bytes], bytes | None, bytes | None]:
    """SET's and GETEX's options (Redis' parseExtendedStringArgumentsOrReply).

    Returns (flags among NX XX GET KEEPTTL PERSIST, expiry unit, raw expiry).
    Repeating an option is allowed, as in Redis ("EX 1 EX 2": the last wins).
    """
    flags: set[bytes] = set()
    unit = raw = None
    i = start
    while i < len(args):
        opt = args[i].upper()
        if _flag_allowed(opt, flags, unit, is_set):
            flags.add(opt)
        elif (
            opt in _UNITS
            and unit in (None, opt)
            and not flags & {b"KEEPTTL", b"PERSIST"}
            and i + 1 < len(args)
        ):
            unit, raw = opt, args[i + 1]
            i += 1
        else:
            raise errors.SYNTAX
        i += 1
    return flags, unit, raw


def _flag_allowed(opt: bytes, flags: set[bytes], unit: bytes | None, is_set: bool) -> bool:
    """Whether a flag option may join those already given (Redis' exclusions)."""
    if not is_set:
        return opt == b"PERSIST" and unit is None
    if opt in (b"NX", b"XX"):
        return (b"XX" if opt == b"NX" else b"NX") not in flags
    return opt == b"GET" or (opt == b"KEEPTTL" and unit is None)


@command(
    "set", -3, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="string",
    summary="Set the string value of a key",
)
def set_(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key, value = args[1], args[2]
    if len(args) == 3:  # the hot path: no options, no old value needed
        db.set(key, value)
        return OK
    flags, unit, raw = parse_set_options(args, 3, is_set=True)
    expire_at = expire_time(unit, raw, now, "set") if unit and raw is not None else None
    want_old = b"GET" in flags
    old = db.get_for_write(key, now)
    if want_old and old is not None and type(old) is not bytes:
        raise errors.WRONGTYPE
    if (b"NX" in flags and old is not None) or (b"XX" in flags and old is None):
        return old if want_old else None
    if b"KEEPTTL" in flags:
        db.set_keep_ttl(key, value)
    else:
        _store(db, key, value, expire_at, now)
    return old if want_old else OK


@command(
    "setnx", 3, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family="string",
    summary="Set the value of a key, only if the key does not exist",
)
def setnx(db: Keyspace, args: list[bytes], now: int) -> Reply:
    if db.get_for_write(args[1], now) is not None:
        return 0
    db.set(args[1], args[2])
    return 1


def _setex(db: Keyspace, args: list[bytes], now: int, unit: bytes, name: str) -> Reply:
    expire_at = expire_time(unit, args[2], now, name)
    db.get_for_write(args[1], now)
    _store(db, args[1], args[3], expire_at, now)
    return OK


@command(
    "setex", 4, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="string",
    summary="Set the value and expiration of a key", since="2.0.0",
)
def setex(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _setex(db, args, now, b"EX", "setex")


@command(
    "psetex", 4, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="string",
    summary="Set the value and expiration in milliseconds of a key", since="2.6.0",
)
def psetex(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _setex(db, args, now, b"PX", "psetex")


@command(
    "getset", 3, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family="string",
    summary="Set the string value of a key and return its old value",
)
def getset(db: Keyspace, args: list[bytes], now: int) -> Reply:
    old = write_string(db, args[1], now)
    db.set(args[1], args[2])
    return old


@command(
    "getdel", 2, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family="string",
    summary="Get the value of a key and delete the key", since="6.2.0",
)
def getdel(db: Keyspace, args: list[bytes], now: int) -> Reply:
    old = write_string(db, args[1], now)
    if old is not None:
        db.delete(args[1])
    return old


@command(
    "getex", -2, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family="string",
    summary="Get the value of a key and optionally set its expiration", since="6.2.0",
)
def getex(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[1]
    flags, unit, raw = parse_set_options(args, 2, is_set=False)
    value = write_string(db, key, now)
    if value is None:
        return None  # Redis answers before looking at the expiry's value
    if unit and raw is not None:
        expire_at = expire_time(unit, raw, now, "getex")
        if expire_at <= now:
            db.delete(key)
        else:
            db.set_expire(key, expire_at)
    elif b"PERSIST" in flags and db.ttl_ms(key) is not None:
        db.set_expire(key, None)
    return value


# -- several keys ------------------------------------------------------------


@command(
    "mget", -2, Kind.READ, flags=("fast",), keys=(1, -1, 1), family="string",
    summary="Get the values of all the given keys",
)
def mget(db: Keyspace, args: list[bytes], now: int) -> Reply:
    out: list[bytes | None] = []
    for key in args[1:]:
        value = db.get_for_read(key, now)
        out.append(value if type(value) is bytes else None)
    return out


def _pairs(args: list[bytes], name: str) -> list[tuple[bytes, bytes]]:
    if len(args) % 2 == 0:
        raise errors.wrong_arity(name)
    return list(zip(args[1::2], args[2::2], strict=True))


@command(
    "mset", -3, Kind.WRITE, flags=("denyoom",), keys=(1, -1, 2), family="string",
    summary="Set multiple keys to multiple values", since="1.0.1",
)
def mset(db: Keyspace, args: list[bytes], now: int) -> Reply:
    for key, value in _pairs(args, "mset"):
        db.set(key, value)
    return OK


@command(
    "msetnx", -3, Kind.WRITE, flags=("denyoom",), keys=(1, -1, 2), family="string",
    summary="Set multiple keys to multiple values, only if none of the keys exist",
    since="1.0.1",
)
def msetnx(db: Keyspace, args: list[bytes], now: int) -> Reply:
    pairs = _pairs(args, "msetnx")
    if any(db.get_for_write(key, now) is not None for key, _ in pairs):
        return 0
    for key, value in pairs:
        db.set(key, value)
    return 1


# -- counters ----------------------------------------------------------------


def _incr_by(db: Keyspace, key: bytes, delta: int, now: int) -> Reply:
    old = write_string(db, key, now)
    result = (0 if old is None else parse_int(old)) + delta
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise errors.OVERFLOW
    db.set_keep_ttl(key, b"%d" % result)  # Redis keeps the TTL of a counter
    return result


_COUNTER_FLAGS = ("denyoom", "fast")


@command(
    "incr", 2, Kind.WRITE, flags=_COUNTER_FLAGS, keys=(1, 1, 1), family="string",
    summary="Increment the integer value of a key by one",
)
def incr(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _incr_by(db, args[1], 1, now)


@command(
    "decr", 2, Kind.WRITE, flags=_COUNTER_FLAGS, keys=(1, 1, 1), family="string",
    summary="Decrement the integer value of a key by one",
)
def decr(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _incr_by(db, args[1], -1, now)


@command(
    "incrby", 3, Kind.WRITE, flags=_COUNTER_FLAGS, keys=(1, 1, 1), family="string",
    summary="Increment the integer value of a key by the given amount",
)
def incrby(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _incr_by(db, args[1], parse_int(args[2]), now)


@command(
    "decrby", 3, Kind.WRITE, flags=_COUNTER_FLAGS, keys=(1, 1, 1), family="string",
    summary="Decrement the integer value of a key by the given number",
)
def decrby(db: Keyspace, args: list[bytes], now: int) -> Reply:
    delta = parse_int(args[2])
    if delta == _INT64_MIN:  # its negation does not fit
        raise errors.DECREMENT_OVERFLOW
    return _incr_by(db, args[1], -delta, now)


@command(
    "incrbyfloat", 3, Kind.WRITE, flags=_COUNTER_FLAGS, keys=(1, 1, 1), family="string",
    summary="Increment the float value of a key by the given amount", since="2.6.0",
)
def incrbyfloat(db: Keyspace, args: list[bytes], now: int) -> Reply:
    old = write_string(db, args[1], now)
    # Both parsed before adding, the key's value first (Redis' error order).
    value = Fraction(0) if old is None else parse_long_double(old)
    delta = parse_long_double(args[2])
    if not (isinstance(value, Fraction) and isinstance(delta, Fraction)):
        raise errors.NAN_OR_INFINITY  # an operand is +-inf: so is the sum, or nan
    rounded = round_long_double(value + delta)
    if not isinstance(rounded, Fraction):
        raise errors.NAN_OR_INFINITY
    text = format_long_double(rounded)
    db.set_keep_ttl(args[1], text)
    return text


# -- byte ranges -------------------------------------------------------------


@command(
    "append", 3, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family="string",
    summary="Append a value to a key", since="2.0.0",
)
def append(db: Keyspace, args: list[bytes], now: int) -> Reply:
    old = write_string(db, args[1], now)
    if old is None:
        db.set(args[1], args[2])
        return len(args[2])
    if len(old) + len(args[2]) > MAX_STRING:
        raise errors.STRING_TOO_LONG
    value = old + args[2]
    db.set_keep_ttl(args[1], value)
    return len(value)


@command(
    "strlen", 2, Kind.READ, flags=("fast",), keys=(1, 1, 1), family="string",
    summary="Get the length of the value stored in a key", since="2.2.0",
)
def strlen(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = get_string(db, args[1], now)
    return 0 if value is None else len(value)


def _getrange(db: Keyspace, args: list[bytes], now: int) -> Reply:
    start, end = parse_int(args[2]), parse_int(args[3])
    value = get_string(db, args[1], now) or b""
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    start = max(start + size if start < 0 else start, 0)
    end = min(max(end + size if end < 0 else end, 0), size - 1)
    return value[start : end + 1] if start <= end else b""


@command(
    "getrange", 4, Kind.READ, keys=(1, 1, 1), family="string",
    summary="Get a substring of the string stored at a key", since="2.4.0",
)
def getrange(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _getrange(db, args, now)


@command(
    "substr", 4, Kind.READ, keys=(1, 1, 1), family="string",
    summary="Get a substring of the string stored at a key",
)
def substr(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _getrange(db, args, now)


@command(
    "setrange", 4, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="string",
    summary="Overwrite part of a string at key starting at the specified offset",
    since="2.2.0",
)
def setrange(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key, patch = args[1], args[3]
    offset = parse_int(args[2])
    if offset < 0:
        raise errors.OUT_OF_RANGE
    old = write_string(db, key, now)
    if not patch:
        return 0 if old is None else len(old)
    if offset + len(patch) > MAX_STRING:
        raise errors.STRING_TOO_LONG
    base = old or b""
    if len(base) < offset:
        base += bytes(offset - len(base))
    value = base[:offset] + patch + base[offset + len(patch) :]
    db.set_keep_ttl(key, value)
    return len(value)


# -- LCS ---------------------------------------------------------------------


def c_word(raw: bytes) -> bytes:
    """An option name as Redis' strcasecmp sees it: upper-cased, up to any NUL byte."""
    return raw.split(b"\0", 1)[0].upper()


LCS_WRONGTYPE = RespError("ERR The specified keys must contain string values")
LCS_LEN_AND_IDX = RespError("ERR If you want both the length and indexes, please just use IDX.")
LCS_TOO_BIG = RespError(
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
)


def _lcs_options(args: list[bytes]) -> tuple[bool, bool, bool, int]:
    """(LEN, IDX, WITHMATCHLEN, MINMATCHLEN) from LCS' options."""
    want_len = want_idx = with_len = False
    min_len = 0
    i = 3
    while i < len(args):
        option = c_word(args[i])
        if option == b"IDX":
            want_idx = True
        elif option == b"LEN":
            want_len = True
        elif option == b"WITHMATCHLEN":
            with_len = True
        elif option == b"MINMATCHLEN" and i + 1 < len(args):
            min_len = max(parse_int(args[i + 1]), 0)
            i += 1
        else:
            raise errors.SYNTAX
        i += 1
    if want_len and want_idx:
        raise LCS_LEN_AND_IDX
    return want_len, want_idx, with_len, min_len


def lcs_rows(a: bytes, b: bytes, keep: bool = True) -> list[int]:
    """The LCS table of a and b, one int per row (bit-parallel, Hyyro's recurrence).

    Row i stands for LCS(a[:i], b[:j]) for every j: bit j-1 of it is 0 exactly when
    LCS(i, j) = LCS(i, j-1) + 1. So LCS(i, j) counts the zero bits below bit j, and
    a row costs a few big-int operations of len(b) bits instead of len(b) steps.
    Without ``keep``, only the last row is returned.
    """
    full = (1 << len(b)) - 1
    reversed_b = b[::-1]
    masks = {  # bit k set where b[k] == char, made at C speed
        char: int(reversed_b.translate(bytes(49 if x == char else 48 for x in range(256))), 2)
        for char in set(a) & set(b)
    }
    row = full
    rows = [row]
    for char in a:
        match = row & masks.get(char, 0)
        row = ((row + match) | (row - match)) & full
        if keep:
            rows.append(row)
    return rows if keep else [row]


def lcs_walk(
    a: bytes, b: bytes, rows: list[int], min_len: int, with_len: bool
) -> tuple[bytes, list[list[object]]]:
    """The LCS and its matching ranges, walked back from the end as Redis does (same
    tie-breaks, so the same string and ranges)."""
    i, j = len(a), len(b)
    chars = bytearray()
    ranges: list[list[object]] = []
    a_start = a_end = b_start = b_end = -1  # -1: no range open
    row_i, row_bytes = -1, b""
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            chars.append(a[i - 1])
            if a_start < 0:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            else:  # a match right after one always extends the range backward
                a_start, b_start = a_start - 1, b_start - 1
            emit = a_start == 0 or b_start == 0
            i, j = i - 1, j - 1
        else:
            if row_i != i:
                row_i, row_bytes = i, rows[i].to_bytes((len(b) + 7) // 8, "little")
            # LCS(i, j-1) < LCS(i, j) (bit j-1 is 0) means LCS(i-1, j) is the larger.
            if not row_bytes[(j - 1) >> 3] >> ((j - 1) & 7) & 1:
                i -= 1
            else:
                j -= 1
            emit = a_start >= 0
        if emit:
            length = a_end - a_start + 1
            if length >= min_len:
                match: list[object] = [[a_start, a_end], [b_start, b_end]]
                ranges.append([*match, length] if with_len else match)
            a_start = -1
    chars.reverse()
    return bytes(chars), ranges


@command(
    "lcs", -3, Kind.READ, keys=(1, 2, 1), family="string",
    summary="Find longest common substring", since="7.0.0",
)
def lcs(db: Keyspace, args: list[bytes], now: int) -> Reply:
    a, b = db.get_for_read(args[1], now), db.get_for_read(args[2], now)
    if (a is not None and type(a) is not bytes) or (b is not None and type(b) is not bytes):
        raise LCS_WRONGTYPE
    a, b = a or b"", b or b""
    assert isinstance(a, bytes) and isinstance(b, bytes)
    want_len, want_idx, with_len, min_len = _lcs_options(args)
    if (len(a) + 1) * (len(b) + 1) * 4 > MAX_STRING:  # Redis' table would be too big
        raise LCS_TOO_BIG
    rows = lcs_rows(a, b, keep=not want_len)
    length = len(b) - rows[-1].bit_count()
    if want_len:
        return length
    common, ranges = lcs_walk(a, b, rows, min_len, with_len)
    if want_idx:
        return {b"matches": ranges, b"len": length}
    return common
