"""Expiry commands: EXPIRE and friends, TTL, PERSIST, EXPIRETIME (Redis 7.0).

Times are absolute ms since the epoch, judged against ``now``: the leader's
clock carried in the log entry for writes, the local clock for reads.
"""

from __future__ import annotations

from respkv.commands import errors
from respkv.commands.args import parse_int
from respkv.commands.table import Kind, command
from respkv.protocol.reply import Reply
from respkv.state.keyspace import Keyspace

_INT64_MAX = (1 << 63) - 1
_SECONDS_LIMIT = _INT64_MAX // 1000  # C's LLONG_MAX / 1000 (and -, truncated)


def _expire_flags(args: list[bytes]) -> set[bytes]:
    """NX XX GT LT after the time, with Redis' compatibility rules."""
    flags: set[bytes] = set()
    for raw in args[3:]:
        opt = raw.upper()
        if opt not in (b"NX", b"XX", b"GT", b"LT"):
            raise errors.unsupported_option(raw)
        flags.add(opt)
    if b"NX" in flags and len(flags) > 1:
        raise errors.EXPIRE_NX_CONFLICT
    if {b"GT", b"LT"} <= flags:
        raise errors.EXPIRE_GT_LT_CONFLICT
    return flags


def _refused(flags: set[bytes], current: int | None, when: int) -> bool:
    """Whether NX/XX/GT/LT veto the new time; no TTL counts as infinite."""
    if b"NX" in flags and current is not None:
        return True
    if b"XX" in flags and current is None:
        return True
    if b"GT" in flags and (current is None or when <= current):
        return True
    return b"LT" in flags and current is not None and when >= current


def _expire(
    db: Keyspace, args: list[bytes], now: int, *, seconds: bool, relative: bool, name: str
) -> Reply:
    key = args[1]
    flags = _expire_flags(args)  # Redis checks options before the time
    when = parse_int(args[2])
    if seconds:
        if not -_SECONDS_LIMIT <= when <= _SECONDS_LIMIT:
            raise errors.invalid_expire(name)
        when *= 1000
    base = now if relative else 0
    if when > _INT64_MAX - base:
        raise errors.invalid_expire(name)
    when += base
    if db.get_for_write(key, now) is None:
        return 0
    if flags and _refused(flags, db.ttl_ms(key), when):
        return 0
    if when <= now:  # already past: Redis deletes the key and still answers 1
        db.delete(key)
    else:
        db.set_expire(key, when)
    return 1


_FLAGS = ("fast",)


@command(
    "expire", -3, Kind.WRITE, flags=_FLAGS, keys=(1, 1, 1),
    summary="Set a key's time to live in seconds",
)
def expire(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _expire(db, args, now, seconds=True, relative=True, name="expire")


@command(
    "pexpire", -3, Kind.WRITE, flags=_FLAGS, keys=(1, 1, 1), since="2.6.0",
    summary="Set a key's time to live in milliseconds",
)
def pexpire(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _expire(db, args, now, seconds=False, relative=True, name="pexpire")


@command(
    "expireat", -3, Kind.WRITE, flags=_FLAGS, keys=(1, 1, 1), since="1.2.0",
    summary="Set the expiration for a key as a UNIX timestamp",
)
def expireat(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _expire(db, args, now, seconds=True, relative=False, name="expireat")


@command(
    "pexpireat", -3, Kind.WRITE, flags=_FLAGS, keys=(1, 1, 1), since="2.6.0",
    summary="Set the expiration for a key as a UNIX timestamp specified in milliseconds",
)
def pexpireat(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _expire(db, args, now, seconds=False, relative=False, name="pexpireat")


def _ttl(db: Keyspace, key: bytes, now: int, *, ms: bool, absolute: bool) -> int:
    """-2 missing, -1 no expiry, else the (remaining or absolute) time."""
    if db.get_for_read(key, now) is None:
        return -2
    at = db.ttl_ms(key)
    if at is None:
        return -1
    left = max(at if absolute else at - now, 0)
    return left if ms else (left + 500) // 1000  # Redis rounds to the nearest second


@command(
    "ttl", 2, Kind.READ, flags=_FLAGS, keys=(1, 1, 1),
    summary="Get the time to live for a key in seconds",
)
def ttl(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _ttl(db, args[1], now, ms=False, absolute=False)


@command(
    "pttl", 2, Kind.READ, flags=_FLAGS, keys=(1, 1, 1), since="2.6.0",
    summary="Get the time to live for a key in milliseconds",
)
def pttl(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _ttl(db, args[1], now, ms=True, absolute=False)


@command(
    "expiretime", 2, Kind.READ, flags=_FLAGS, keys=(1, 1, 1), since="7.0.0",
    summary="Get the expiration Unix timestamp for a key",
)
def expiretime(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _ttl(db, args[1], now, ms=False, absolute=True)


@command(
    "pexpiretime", 2, Kind.READ, flags=_FLAGS, keys=(1, 1, 1), since="7.0.0",
    summary="Get the expiration Unix timestamp for a key in milliseconds",
)
def pexpiretime(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _ttl(db, args[1], now, ms=True, absolute=True)


@command(
    "persist", 2, Kind.WRITE, flags=_FLAGS, keys=(1, 1, 1), since="2.2.0",
    summary="Remove the expiration from a key",
)
def persist(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[1]
    if db.get_for_write(key, now) is None or db.ttl_ms(key) is None:
        return 0
    db.set_expire(key, None)
    return 1
