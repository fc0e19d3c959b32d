"""Blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.

In the log each is its non-blocking self: apply pops if there is something to
pop and answers the null reply otherwise (inside MULTI, as in Redis, they never
block). The waiting is the server's (respkv.server.blocking): on the leader of
the keys' group it proposes the command, and while the reply is null it waits
for a change to one of the keys, then proposes it again, until the timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from respkv.commands import zsets
from respkv.commands.args import parse_float
from respkv.commands.lists import move, mpop, parse_mpop, parse_where, pop_from
from respkv.commands.table import Kind, command, numkeys_at
from respkv.protocol.reply import NULL_ARRAY, Reply, RespError
from respkv.state.keyspace import Keyspace

TIMEOUT_NOT_FLOAT = RespError("ERR timeout is not a float or out of range")
TIMEOUT_NEGATIVE = RespError("ERR timeout is negative")
_MAX_MS = (1 << 63) - 1


def parse_timeout(raw: bytes) -> int:
    """A timeout in seconds (a float; 0 waits for ever) as milliseconds."""
    seconds = parse_float(raw, TIMEOUT_NOT_FLOAT)
    ms = seconds * 1000
    # Redis casts to a long long: past its range that is negative on x86, so "negative".
    if ms < 0 or ms > _MAX_MS:
        raise TIMEOUT_NEGATIVE
    return int(ms)


def _pop_first(db: Keyspace, args: list[bytes], now: int, left: bool) -> Reply:
    parse_timeout(args[-1])
    for key in args[1:-1]:
        popped = pop_from(db, key, left, 1, now)
        if popped:
            return [key, popped[0]]
    return NULL_ARRAY


@command("blpop", -3, Kind.WRITE, flags=("noscript", "blocking"), keys=(1, -2, 1),
         family="list", since="2.0.0",
         summary="Remove and get the first element in a list, or block until one is available")
def blpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _pop_first(db, args, now, left=True)


@command("brpop", -3, Kind.WRITE, flags=("noscript", "blocking"), keys=(1, -2, 1),
         family="list", since="2.0.0",
         summary="Remove and get the last element in a list, or block until one is available")
def brpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _pop_first(db, args, now, left=False)


@command("blmove", 6, Kind.WRITE, flags=("denyoom", "noscript", "blocking"), keys=(1, 2, 1),
         family="list", since="6.2.0",
         summary="Pop an element from a list, push it to another list and return it; "
         "or block until one is available")
def blmove(db: Keyspace, args: list[bytes], now: int) -> Reply:
    from_left, to_left = parse_where(args[3]), parse_where(args[4])
    parse_timeout(args[5])
    return move(db, args[1], args[2], from_left, to_left, now)


@command("brpoplpush", 4, Kind.WRITE, flags=("denyoom", "noscript", "blocking"),
         keys=(1, 2, 1), family="list", since="2.2.0",
         summary="Pop an element from a list, push it to another list and return it; "
         "or block until one is available")
def brpoplpush(db: Keyspace, args: list[bytes], now: int) -> Reply:
    parse_timeout(args[3])
    return move(db, args[1], args[2], False, True, now)


@command("blmpop", -5, Kind.WRITE, flags=("blocking", "movablekeys"),
         family="list", since="7.0.0", find_keys=numkeys_at(2),
         summary="Pop elements from a list, or block until one is available")
def blmpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    keys, left, count = parse_mpop(args, 2)
    parse_timeout(args[1])
    popped = mpop(db, keys, left, count, now)
    return NULL_ARRAY if popped is None else [popped[0], popped[1]]


# -- sorted sets -------------------------------------------------------------


def _bzpop(db: Keyspace, args: list[bytes], now: int, highest: bool) -> Reply:
    parse_timeout(args[-1])
    popped = zsets.mpop(db, args[1:-1], 1, highest, now)
    if popped is None:
        return NULL_ARRAY
    key, [(member, score)] = popped
    return [key, member, score]


@command("bzpopmin", -3, Kind.WRITE, flags=("noscript", "blocking", "fast"),
         keys=(1, -2, 1), family=zsets.FAMILY, since="5.0.0",
         summary="Remove and return the member with the lowest score from one or more "
         "sorted sets, or block until one is available")
def bzpopmin(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _bzpop(db, args, now, highest=False)


@command("bzpopmax", -3, Kind.WRITE, flags=("noscript", "blocking", "fast"),
         keys=(1, -2, 1), family=zsets.FAMILY, since="5.0.0",
         summary="Remove and return the member with the highest score from one or more "
         "sorted sets, or block until one is available")
def bzpopmax(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _bzpop(db, args, now, highest=True)


@command("bzmpop", -5, Kind.WRITE, flags=("blocking", "movablekeys"), family=zsets.FAMILY,
         since="7.0.0", find_keys=numkeys_at(2),
         summary="Remove and return members with scores in a sorted set or block until "
         "one is available")
def bzmpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    keys, highest, count = zsets.parse_mpop(args, 2)
    parse_timeout(args[1])
    return zsets.mpop_reply(zsets.mpop(db, keys, count, highest, now))


def _last(args: list[bytes]) -> int:
    return parse_timeout(args[-1])


def _blmpop_timeout(args: list[bytes]) -> int:
    parse_mpop(args, 2)  # its errors come first, as in Redis
    return parse_timeout(args[1])


def _bzmpop_timeout(args: list[bytes]) -> int:
    zsets.parse_mpop(args, 2)
    return parse_timeout(args[1])


def _blmove_timeout(args: list[bytes]) -> int:
    parse_where(args[3])
    parse_where(args[4])
    return parse_timeout(args[5])


# How long each blocking command may wait, in ms (0: for ever); raises its errors.
TIMEOUTS: dict[str, Callable[[list[bytes]], int]] = {
    "blpop": _last, "brpop": _last, "brpoplpush": _last,
    "blmove": _blmove_timeout, "blmpop": _blmpop_timeout,
    "bzpopmin": _last, "bzpopmax": _last, "bzmpop": _bzmpop_timeout,
}
