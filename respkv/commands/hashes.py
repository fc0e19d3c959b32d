"""Hash commands, with Redis 7.0's semantics.

Reply order: Redis 7.0 keeps a small hash (up to hash-max-listpack-entries fields,
none longer than hash-max-listpack-value) as a listpack, which lists fields in
insertion order, an update keeping a field's place. ``HashValue.fields`` is a dict,
whose order is the same; replies list fields in that order.

HSCAN sends a listpack-sized hash whole, as Redis does; a bigger one is walked by
ranges of a stable hash of each field (see ``scan_fields``), so no field present
for the whole iteration is missed, whatever is added or removed meanwhile.

HRANDFIELD is a read: its choices may come from ``random``.
"""

from __future__ import annotations

import random
from fractions import Fraction
from itertools import compress, islice
from zlib import crc32

from respkv.commands import errors
from respkv.commands.args import (
    format_long_double,
    parse_int,
    parse_long_double,
    round_long_double,
)
from respkv.commands.glob import stringmatch
from respkv.commands.keyspace import parse_cursor
from respkv.commands.table import Kind, command
from respkv.commands.typed import read_typed, write_typed
from respkv.protocol.reply import OK, Pairs, Reply, RespError
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
LISTPACK_ENTRIES = 128  # hash-max-listpack-entries' default
LISTPACK_VALUE = 64  # hash-max-listpack-value's default

HASH_NOT_INTEGER = RespError("ERR hash value is not an integer")
HASH_NOT_FLOAT = RespError("ERR hash value is not a float")
INCREMENT_NAN_OR_INFINITY = RespError("ERR value is NaN or Infinity")
OUT_OF_RANGE = RespError("ERR value is out of range")
COUNT_OUT_OF_RANGE = RespError(
    f"ERR value is out of range, value must between {-_INT64_MAX} and {_INT64_MAX}"
)

# HRANDFIELD with a negative count repeats fields: Redis builds any such reply (and
# runs out of memory on a huge one); a count asking for more is refused here.
MAX_REPEATED = 1 << 24

_FAMILY = "hash"


def read_hash(db: Keyspace, key: bytes, now: int) -> HashValue | None:
    """A hash for a reader, or WRONGTYPE."""
    return read_typed(db, key, now, HashValue)


def write_hash(db: Keyspace, key: bytes, now: int) -> HashValue | None:
    """A hash for a writer (an expired key is deleted), or WRONGTYPE."""
    return write_typed(db, key, now, HashValue)


def _put(db: Keyspace, key: bytes, value: HashValue | None, field: bytes,
         data: bytes) -> None:
    """Set one field, creating the hash if it is missing (after every check passed)."""
    if value is None:
        value = HashValue()
        db.set(key, value)
    value.put(field, data)
    db.touch(key)


def listpack_sized(value: HashValue) -> bool:
    """Whether Redis could hold this hash as a listpack (so sends it whole)."""
    if len(value.fields) > LISTPACK_ENTRIES:
        return False
    return all(
        len(field) <= LISTPACK_VALUE and len(data) <= LISTPACK_VALUE
        for field, data in value.fields.items()
    )


def pairs(items: list[tuple[bytes, bytes]]) -> Reply:
    """(field, value) pairs as HRANDFIELD ... WITHVALUES replies."""
    return Pairs(items)


# -- setting and deleting ------------------------------------------------------


def _hset(db: Keyspace, args: list[bytes], now: int, name: str) -> int:
    if len(args) % 2 == 1:
        raise errors.wrong_arity(name)
    key = args[1]
    value = write_hash(db, key, now)
    if value is None:
        value = HashValue()
        db.set(key, value)
    put = value.put
    created = sum(put(field, data) for field, data in zip(args[2::2], args[3::2],
                                                          strict=True))
    db.touch(key)
    return created


@command(
    "hset", -4, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family=_FAMILY,
    summary="Set the string value of a hash field", since="2.0.0",
)
def hset(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _hset(db, args, now, "hset")


@command(
    "hmset", -4, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family=_FAMILY,
    summary="Set multiple hash fields to multiple values", since="2.0.0",
)
def hmset(db: Keyspace, args: list[bytes], now: int) -> Reply:
    _hset(db, args, now, "hmset")
    return OK


@command(
    "hsetnx", 4, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family=_FAMILY,
    summary="Set the value of a hash field, only if the field does not exist",
    since="2.0.0",
)
def hsetnx(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = write_hash(db, args[1], now)
    if value is not None and args[2] in value.fields:
        return 0
    _put(db, args[1], value, args[2], args[3])
    return 1


@command(
    "hdel", -3, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family=_FAMILY,
    summary="Delete one or more hash fields", since="2.0.0",
)
def hdel(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[1]
    value = write_hash(db, key, now)
    if value is None:
        return 0
    deleted = 0
    for field in args[2:]:
        if value.remove(field):
            deleted += 1
            if not value.fields:  # as Redis: the emptied key goes, the rest is moot
                db.delete(key)
                return deleted
    if deleted:
        db.touch(key)
    return deleted


# -- counters --------------------------------------------------------------------


@command(
    "hincrby", 4, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family=_FAMILY,
    summary="Increment the integer value of a hash field by the given number",
    since="2.0.0",
)
def hincrby(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key, field = args[1], args[2]
    delta = parse_int(args[3])
    value = write_hash(db, key, now)
    old = value.fields.get(field) if value is not None else None
    result = (0 if old is None else parse_int(old, HASH_NOT_INTEGER)) + delta
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise errors.OVERFLOW
    _put(db, key, value, field, b"%d" % result)
    return result


@command(
    "hincrbyfloat", 4, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1),
    family=_FAMILY, since="2.6.0",
    summary="Increment the float value of a hash field by the given amount",
)
def hincrbyfloat(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key, field = args[1], args[2]
    delta = parse_long_double(args[3])
    if not isinstance(delta, Fraction):  # Redis refuses an infinite increment up front
        raise INCREMENT_NAN_OR_INFINITY
    value = write_hash(db, key, now)
    old = value.fields.get(field) if value is not None else None
    current = Fraction(0) if old is None else parse_long_double(old, HASH_NOT_FLOAT)
    if not isinstance(current, Fraction):  # a stored inf: the sum is inf too
        raise errors.NAN_OR_INFINITY
    rounded = round_long_double(current + delta)
    if not isinstance(rounded, Fraction):
        raise errors.NAN_OR_INFINITY
    text = format_long_double(rounded)
    _put(db, key, value, field, text)
    return text


# -- single fields ---------------------------------------------------------------


@command(
    "hget", 3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=_FAMILY,
    summary="Get the value of a hash field", since="2.0.0",
)
def hget(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_hash(db, args[1], now)
    return None if value is None else value.fields.get(args[2])


@command(
    "hmget", -3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=_FAMILY,
    summary="Get the values of all the given hash fields", since="2.0.0",
)
def hmget(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_hash(db, args[1], now)
    if value is None:
        return [None] * (len(args) - 2)
    get = value.fields.get
    return [get(field) for field in args[2:]]


@command(
    "hexists", 3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=_FAMILY,
    summary="Determine if a hash field exists", since="2.0.0",
)
def hexists(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_hash(db, args[1], now)
    return int(value is not None and args[2] in value.fields)


@command(
    "hstrlen", 3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=_FAMILY,
    summary="Get the length of the value of a hash field", since="3.2.0",
)
def hstrlen(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_hash(db, args[1], now)
    data = None if value is None else value.fields.get(args[2])
    return 0 if data is None else len(data)


@command(
    "hlen", 2, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=_FAMILY,
    summary="Get the number of fields in a hash", since="2.0.0",
)
def hlen(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_hash(db, args[1], now)
    return 0 if value is None else len(value.fields)


# -- whole hashes ----------------------------------------------------------------


@command(
    "hkeys", 2, Kind.READ, keys=(1, 1, 1), family=_FAMILY,
    summary="Get all the fields in a hash", since="2.0.0",
)
def hkeys(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_hash(db, args[1], now)
    return [] if value is None else list(value.fields)


@command(
    "hvals", 2, Kind.READ, keys=(1, 1, 1), family=_FAMILY,
    summary="Get all the values in a hash", since="2.0.0",
)
def hvals(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_hash(db, args[1], now)
    return [] if value is None else list(value.fields.values())


@command(
    "hgetall", 2, Kind.READ, keys=(1, 1, 1), family=_FAMILY,
    summary="Get all the fields and values in a hash", since="2.0.0",
)
def hgetall(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_hash(db, args[1], now)
    return {} if value is None else dict(value.fields)  # a copy: replies may wait


# -- HRANDFIELD --------------------------------------------------------------------


def _randfield_count(args: list[bytes]) -> tuple[int, bool]:
    """HRANDFIELD's (count, WITHVALUES), checked in Redis' order."""
    count = parse_int(args[2])
    if count == _INT64_MIN:  # Redis reads a long in [-LONG_MAX, LONG_MAX]
        raise COUNT_OUT_OF_RANGE
    if len(args) > 4 or (len(args) == 4 and args[3].lower() != b"withvalues"):
        raise errors.SYNTAX
    withvalues = len(args) == 4
    if withvalues and abs(count) > _INT64_MAX // 2:  # twice the count must fit
        raise OUT_OF_RANGE
    return count, withvalues


def _random_items(fields: dict[bytes, bytes], count: int) -> list[tuple[bytes, bytes]]:
    """``count`` items: distinct if count > 0 (all of them, in order, if it asks as
    many), drawn with repeats if count < 0."""
    if count >= len(fields):
        return list(fields.items())
    if count < 0:
        if -count > MAX_REPEATED:
            raise OUT_OF_RANGE
        return random.choices(list(fields.items()), k=-count)
    if count == 1:
        return [_random_item(fields)]
    return random.sample(list(fields.items()), count)


def _random_item(fields: dict[bytes, bytes]) -> tuple[bytes, bytes]:
    """One item, without copying the whole hash."""
    return next(islice(fields.items(), random.randrange(len(fields)), None))


@command(
    "hrandfield", -2, Kind.READ, keys=(1, 1, 1), family=_FAMILY,
    summary="Get one or multiple random fields from a hash", since="6.2.0",
)
def hrandfield(db: Keyspace, args: list[bytes], now: int) -> Reply:
    if len(args) == 2:
        value = read_hash(db, args[1], now)
        return None if value is None else _random_item(value.fields)[0]
    count, withvalues = _randfield_count(args)
    value = read_hash(db, args[1], now)
    if value is None or count == 0:
        return []
    items = _random_items(value.fields, count)
    return pairs(items) if withvalues else [field for field, _ in items]


# -- HSCAN -------------------------------------------------------------------------

# A page of a big hash covers at least this share of it, whatever COUNT says (a hint
# to Redis too): each call costs O(size), so a whole iteration costs at most this
# many calls' worth.
_MIN_PAGE_SHARE = 64
_SCAN_HASH_END = 1 << 32  # scan hashes are CRC-32s


def _hscan_options(args: list[bytes]) -> tuple[int, bytes | None]:
    """HSCAN's (COUNT, MATCH pattern or None for every field)."""
    count, pattern = 10, None
    i = 3
    while i < len(args):
        option = args[i].lower()
        if option not in (b"count", b"match") or i + 1 >= len(args):
            raise errors.SYNTAX
        if option == b"count":
            count = parse_int(args[i + 1])
            if count < 1:
                raise errors.SYNTAX
        else:
            pattern = None if args[i + 1] == b"*" else args[i + 1]
        i += 2
    return count, pattern


def scan_fields(fields: dict[bytes, bytes], cursor: int, count: int
                ) -> tuple[list[bytes], int]:
    """The fields whose scan hash (a CRC-32: it depends on nothing but the field, so a
    cursor means the same on every node) is in [cursor, next cursor), and the next
    cursor (0: done). The range is sized for about ``count`` fields (or a set share of
    the hash, if more); whatever changes between calls, a field present for the whole
    iteration is in exactly one range, and returned then.
    """
    want = max(count, len(fields) // _MIN_PAGE_SHARE)
    end = min(cursor + max(1, _SCAN_HASH_END * want // len(fields)), _SCAN_HASH_END)
    inside = range(cursor, end).__contains__
    page = list(compress(fields, map(inside, map(crc32, fields))))
    return page, 0 if end == _SCAN_HASH_END else end


@command(
    "hscan", -3, Kind.READ, keys=(1, 1, 1), family=_FAMILY, since="2.8.0",
    summary="Incrementally iterate hash fields and associated values",
)
def hscan(db: Keyspace, args: list[bytes], now: int) -> Reply:
    cursor = parse_cursor(args[2])
    value = read_hash(db, args[1], now)
    if value is None:
        return [b"0", []]
    count, pattern = _hscan_options(args)
    fields = value.fields
    if listpack_sized(value):  # Redis sends a listpack whole, whatever the cursor
        page, next_cursor = list(fields), 0
    elif cursor >= _SCAN_HASH_END:  # past every scan hash
        page, next_cursor = [], 0
    else:
        page, next_cursor = scan_fields(fields, cursor, count)
    if pattern is not None:
        page = [field for field in page if stringmatch(pattern, field)]
    return [b"%d" % next_cursor, [part for field in page for part in (field, fields[field])]]
