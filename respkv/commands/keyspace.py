"""Keyspace commands: DEL, EXISTS, TYPE, RENAME, COPY, KEYS, SCAN, FLUSHDB...

Redis 7.0's semantics and error texts; this server has one database (0), so
COPY ... DB n answers as Redis Cluster does.
"""

from __future__ import annotations

import random
import re
from collections.abc import Generator

from respkv.commands import errors
from respkv.commands.args import parse_int
from respkv.commands.encoding import encoding_of, is_int64
from respkv.commands.glob import stringmatch
from respkv.commands.table import Kind, command, lookup, sliced
from respkv.protocol.reply import OK, Reply, RespError, Simple, Sliced
from respkv.state.codec import CodecError, decode_value
from respkv.state.keyspace import BUCKETS, KeyReader, Keyspace, KeyspaceView, type_name

_DB_COUNT = 16  # what Redis' range check on a DB index uses ("databases")


# -- existence and deletion ------------------------------------------------


def _delete(db: Keyspace, args: list[bytes], now: int) -> int:
    deleted = 0
    for key in args[1:]:
        if db.get_for_write(key, now) is not None:  # an expired key is not counted
            db.delete(key)
            deleted += 1
    return deleted


@command(
    "del", -2, Kind.WRITE, keys=(1, -1, 1),
    summary="Delete a key",
)
def del_(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _delete(db, args, now)


@command(
    "unlink", -2, Kind.WRITE, flags=("fast",), keys=(1, -1, 1), since="4.0.0",
    summary="Delete a key asynchronously in another thread. "
    "Otherwise it is just as DEL, but non blocking.",
)
def unlink(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _delete(db, args, now)


def _count_existing(db: Keyspace, args: list[bytes], now: int) -> int:
    return sum(1 for key in args[1:] if db.exists_for_read(key, now))  # repeats count


@command(
    "exists", -2, Kind.READ, flags=("fast",), keys=(1, -1, 1),
    summary="Determine if a key exists",
)
def exists(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _count_existing(db, args, now)


@command(
    "touch", -2, Kind.READ, flags=("fast",), keys=(1, -1, 1), since="3.2.1",
    summary="Alters the last access time of a key(s). "
    "Returns the number of existing keys specified.",
)
def touch(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _count_existing(db, args, now)  # no LRU clock to update here


@command(
    "type", 2, Kind.READ, flags=("fast",), keys=(1, 1, 1),
    summary="Determine the type stored at key",
)
def type_(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = db.get_for_read(args[1], now)
    return Simple("none" if value is None else type_name(value))


# -- rename and copy -------------------------------------------------------


def _rename(db: Keyspace, args: list[bytes], now: int, nx: bool) -> Reply:
    src, dst = args[1], args[2]
    value = db.get_for_write(src, now)
    if value is None:
        raise errors.NO_SUCH_KEY
    if src == dst:
        return 0 if nx else OK
    if nx and db.get_for_write(dst, now) is not None:
        return 0
    expire_at = db.ttl_ms(src)
    db.delete(src)
    db.set(dst, value, expire_at)  # the TTL moves with the value
    return 1 if nx else OK


@command(
    "rename", 3, Kind.WRITE, keys=(1, 2, 1),
    summary="Rename a key",
)
def rename(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _rename(db, args, now, nx=False)


@command(
    "renamenx", 3, Kind.WRITE, flags=("fast",), keys=(1, 2, 1),
    summary="Rename a key, only if the new key does not exist",
)
def renamenx(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _rename(db, args, now, nx=True)


def _copy_options(args: list[bytes]) -> bool:
    """COPY's options; returns REPLACE. Any DB but 0 is refused, as in Redis Cluster."""
    replace = False
    other_db = False
    i = 3
    while i < len(args):
        opt = args[i].lower()
        if opt == b"replace":
            replace = True
        elif opt == b"db" and i + 1 < len(args):
            index = parse_int(args[i + 1])
            if not -(1 << 31) <= index < 1 << 31:  # Redis reads an int
                raise errors.NOT_INTEGER
            if not 0 <= index < _DB_COUNT:
                raise errors.DB_OUT_OF_RANGE
            other_db = index != 0
            i += 1
        else:
            raise errors.SYNTAX
        i += 1
    if other_db:
        raise errors.COPY_OTHER_DB
    return replace


@command(
    "copy", -3, Kind.WRITE, flags=("denyoom",), keys=(1, 2, 1), since="6.2.0",
    summary="Copy a key",
)
def copy(db: Keyspace, args: list[bytes], now: int) -> Reply:
    src, dst = args[1], args[2]
    replace = _copy_options(args)
    if src == dst:
        raise errors.SAME_OBJECT
    value = db.get_for_write(src, now)
    if value is None:
        return 0
    if db.get_for_write(dst, now) is not None and not replace:
        return 0
    if type(value) is not bytes:  # bytes are immutable; collections must not be shared
        value = value.copy()  # type: ignore[attr-defined]
    db.set(dst, value, db.ttl_ms(src))
    return 1


# -- iteration -------------------------------------------------------------


def _matching(pattern: bytes, keys: list[bytes]) -> list[bytes]:
    if pattern == b"*":  # Redis' shortcut: it also lists the empty key
        return keys
    return [key for key in keys if stringmatch(pattern, key)]


@command(
    "keys", 2, Kind.READ,
    summary="Find all keys matching the given pattern",
)
def keys(db: KeyspaceView, args: list[bytes], now: int) -> Reply:
    return _matching(args[1], list(db.live_keys(now)))


_KEYS_AT_ONCE = 10_000  # up to this many keys, KEYS answers in one go (~5 ms)
_SLICE = 2_000  # keys matched and encoded per step of a sliced KEYS


class SlicedKeys(Sliced):
    """KEYS over a big keyspace: the keys of one snapshot, matched and encoded a
    slice at a time, so the reply is the keyspace at one instant while the loop
    (other clients, Raft heartbeats) runs between the slices. Only the encoded
    reply is kept as it grows, never a list of every key."""

    __slots__ = ("pattern", "readers")

    def __init__(self, readers: list[KeyReader], pattern: bytes) -> None:
        self.readers = readers
        self.pattern = pattern

    def steps(self, resp3: bool) -> Generator[None, None, bytes]:
        out = [b""]  # the array's header goes first, once the count is known
        count = 0
        try:
            for reader in self.readers:
                while chunk := reader.read(_SLICE):
                    matched = _matching(self.pattern, chunk)
                    count += len(matched)
                    # an array of bulk strings: RESP2 and RESP3 alike
                    out.append(b"".join([b"$%d\r\n%s\r\n" % (len(key), key) for key in matched]))
                    yield
        finally:
            for reader in self.readers:
                reader.close()
        out[0] = b"*%d\r\n" % count
        return b"".join(out)


@sliced("keys")
def keys_sliced(db: KeyspaceView, args: list[bytes], now: int) -> Reply:
    if len(db) <= _KEYS_AT_ONCE:
        return keys(db, args, now)
    return SlicedKeys(db.key_readers(now), args[1])


_CURSOR = re.compile(rb"([+-]?)(\d*)")
_U64 = 1 << 64


def parse_cursor(raw: bytes) -> int:
    """A cursor as Redis' strtoul reads it: sign allowed, "-1" wraps, b"" is 0."""
    found = _CURSOR.fullmatch(raw)
    if found is None or (found[1] and not found[2]):
        raise errors.INVALID_CURSOR
    digits = found[2].lstrip(b"0") or b"0"
    value = int(digits) if len(digits) <= 20 else _U64
    if value >= _U64:  # strtoul's ERANGE
        raise errors.INVALID_CURSOR
    return (-value) % _U64 if found[1] == b"-" else value


def _scan_options(args: list[bytes]) -> tuple[int, bytes | None, bytes | None]:
    """SCAN's (COUNT, MATCH pattern or None, TYPE name or None)."""
    count, pattern, kind = 10, None, None
    i = 2
    while i < len(args):
        opt = args[i].lower()
        if i + 1 >= len(args) or opt not in (b"count", b"match", b"type"):
            raise errors.SYNTAX
        value = args[i + 1]
        if opt == b"count":
            count = parse_int(value)
            if count < 1:
                raise errors.SYNTAX
        elif opt == b"match":
            pattern = None if value == b"*" else value
        else:
            kind = value.lower()
        i += 2
    return count, pattern, kind


def scan_page(db: KeyspaceView, cursor: int, count: int, now: int) -> tuple[list[bytes], int]:
    """At least ``count`` live keys (whole buckets) from bucket ``cursor`` on, and the
    next cursor (0 once past the last bucket).

    A key stays in one bucket for as long as it exists, and the cursor only goes
    up, so a key present for a whole iteration is returned at least once, whatever
    is added or removed meanwhile. A page costs its own keys, plus skipping empty
    buckets at C speed.
    """
    page: list[bytes] = []
    bucket = cursor
    while len(page) < count:
        bucket = db.next_bucket(bucket)
        if bucket >= BUCKETS:
            return page, 0
        page += db.bucket_keys(bucket, now)
        bucket += 1
    return page, bucket if db.next_bucket(bucket) < BUCKETS else 0


@command(
    "scan", -2, Kind.READ, since="2.8.0",
    summary="Incrementally iterate the keys space",
)
def scan(db: KeyspaceView, args: list[bytes], now: int) -> Reply:
    cursor = parse_cursor(args[1])
    count, pattern, kind = _scan_options(args)
    if cursor >= BUCKETS:  # past every bucket
        return [b"0", []]
    page, next_cursor = scan_page(db, cursor, count, now)
    if pattern is not None:
        page = [key for key in page if stringmatch(pattern, key)]
    if kind is not None:
        page = [key for key in page if type_name(db.get_for_read(key, now)).encode() == kind]
    return [b"%d" % next_cursor, page]


_RANDOM_TRIES = 256  # random buckets tried before RANDOMKEY lists the (sparse) keyspace


@command(
    "randomkey", 1, Kind.READ,
    summary="Return a random key from the keyspace",
)
def randomkey(db: KeyspaceView, args: list[bytes], now: int) -> Reply:
    # A random bucket, then a random key in it: O(1) on a big keyspace. A sparse one
    # (a few thousand keys or fewer, or nearly all expired) is small to list.
    for _ in range(_RANDOM_TRIES):
        found = db.bucket_keys(random.randrange(BUCKETS), now)
        if found:
            return random.choice(found)
    live = list(db.live_keys(now))
    return random.choice(live) if live else None


@command(
    "dbsize", 1, Kind.READ, flags=("fast",), family="server",
    summary="Return the number of keys in the selected database",
)
def dbsize(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return db.live_count(now)


def _flush(db: Keyspace, args: list[bytes]) -> Reply:
    if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"sync", b"async")):
        raise errors.SYNTAX
    db.clear()
    return OK


@command(
    "flushdb", -1, Kind.WRITE, family="server",
    summary="Remove all keys from the current database",
)
def flushdb(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _flush(db, args)


@command(
    "flushall", -1, Kind.WRITE, family="server",
    summary="Remove all keys from all databases",
)
def flushall(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _flush(db, args)


@command(
    "respkv.put", -3, Kind.WRITE, flags=("internal",), keys=(1, -1, 2), since="0.1.0",
    summary="Give keys exact values, or delete them: one group's share of a write over "
    "several groups (proposed by the leader)",
)
def put(db: Keyspace, args: list[bytes], now: int) -> Reply:
    """Pairs (key, value record in the value codec, or b"" to delete the key)."""
    if len(args) % 2 == 0:
        raise errors.wrong_arity("respkv.put")
    changes = []
    for key, record in zip(args[1::2], args[2::2], strict=True):
        try:
            changes.append((key, decode_value(record) if record else None))
        except CodecError as error:  # validated in full before the first change
            raise RespError(f"ERR respkv.put: {error}") from None
    for key, change in changes:
        if change is None:
            db.delete(key)
        else:
            db.set(key, change[0], change[1])
    return OK


@command(
    "respkv.reap", -2, Kind.WRITE, flags=("internal",), keys=(1, -1, 1),
    since="0.1.0", summary="Delete the given keys that have expired (proposed by the leader)",
)
def reap(db: Keyspace, args: list[bytes], now: int) -> Reply:
    """Only keys expired at the entry's time go: a key re-set since the proposal stays."""
    reaped = 0
    for key in args[1:]:
        if db.is_expired(key, now) and db.delete(key):
            reaped += 1
    return reaped


# -- OBJECT ------------------------------------------------------------------


def _object_key(args: list[bytes]) -> range:
    return range(2, 3) if len(args) > 2 else range(0)


@command(
    "object", -2, Kind.READ, family="generic", since="2.2.3", find_keys=_object_key,
    summary="A container for object introspection commands",
)
def object_(db: Keyspace, args: list[bytes], now: int) -> Reply:
    parent = lookup(args[0])
    assert parent is not None
    sub = lookup(args[1], parent.subcommands)
    if sub is None:
        raise errors.unknown_subcommand("object", args[1])
    if not sub.arity_ok(len(args)):
        raise errors.wrong_arity(f"object|{sub.name}")
    return sub.handler(db, args, now)


def _object_sub(name: str, arity: int, since: str, summary: str):
    return command(name, arity, Kind.READ, keys=(2, 2, 1) if arity == 3 else (0, 0, 0),
                   family="generic", since=since, summary=summary, parent="object")


@_object_sub("encoding", 3, "2.2.3", "Inspect the internal encoding of a Redis object")
def object_encoding(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = db.get_for_read(args[2], now)
    return None if value is None else encoding_of(value)


@_object_sub("freq", 3, "4.0.0", "Get the logarithmic access frequency counter of a Redis "
             "object")
def object_freq(db: Keyspace, args: list[bytes], now: int) -> Reply:
    if db.get_for_read(args[2], now) is None:
        return None
    raise RespError(  # respkv does not evict, so it counts no accesses (noeviction)
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please "
        "note that when switching between policies at runtime LRU and LFU data will take "
        "some time to adjust.")


@_object_sub("idletime", 3, "2.2.3", "Get the time since a Redis object was last accessed")
def object_idletime(db: Keyspace, args: list[bytes], now: int) -> Reply:
    # No access times are kept (nothing is evicted): every key counts as just used.
    return None if db.get_for_read(args[2], now) is None else 0


_SHARED_INTEGERS = 10_000  # Redis shares the objects of 0..9999: their refcount is "max"


@_object_sub("refcount", 3, "2.2.3", "Get the number of references to the value of the key")
def object_refcount(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = db.get_for_read(args[2], now)
    if value is None:
        return None
    if type(value) is bytes and is_int64(value) and 0 <= int(value) < _SHARED_INTEGERS:
        return (1 << 31) - 1
    return 1


@_object_sub("help", 2, "6.2.0", "Show helpful text about the different subcommands")
def object_help(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return [Simple(line) for line in (
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    )]
