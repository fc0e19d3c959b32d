"""Blocking list pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP.

In the log each is its non-blocking self: apply pops if there is something to
pop and answers the null reply otherwise (inside MULTI, as in Redis, they never
block). The waiting is the server's (respkv.server.blocking): on the leader of
the keys' group it proposes the command, and while the reply is null it waits
for a change to one of the keys, then proposes it again, until the timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from respkv.commands.args import parse_float
from respkv.commands.lists import move, mpop, parse_mpop, parse_where, pop_from
from respkv.commands.table import Kind, command, numkeys_at
from respkv.protocol.reply import NULL_ARRAY, Reply, RespError
from respkv.state.keyspace import Keyspace

TIMEOUT_NOT_FLOAT = RespError("ERR timeout is not a float or out of range")
TIMEOUT_NEGATIVE = RespError("ERR timeout is negative")
TIMEOUT_OUT_OF_RANGE = RespError("ERR timeout is out of range")
_MAX_MS = (1 << 63) - 1


def parse_timeout(raw: bytes) -> int:
    """A timeout in seconds (a float; 0 waits for ever) as milliseconds."""
    seconds = parse_float(raw, TIMEOUT_NOT_FLOAT)
    if seconds < 0:
        raise TIMEOUT_NEGATIVE
    ms = seconds * 1000
    if ms > _MAX_MS:
        raise TIMEOUT_OUT_OF_RANGE
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


@command("blmpop", -5, Kind.WRITE, flags=("movablekeys", "noscript", "blocking"),
         family="list", since="7.0.0", find_keys=numkeys_at(2),
         summary="Pop elements from a list, or block until one is available")
def blmpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    keys, left, count = parse_mpop(args, 2)
    parse_timeout(args[1])
    popped = mpop(db, keys, left, count, now)
    return NULL_ARRAY if popped is None else [popped[0], popped[1]]


def _last(args: list[bytes]) -> int:
    return parse_timeout(args[-1])


def _blmpop_timeout(args: list[bytes]) -> int:
    parse_mpop(args, 2)  # its errors come first, as in Redis
    return parse_timeout(args[1])


def _blmove_timeout(args: list[bytes]) -> int:
    parse_where(args[3])
    parse_where(args[4])
    return parse_timeout(args[5])


# How long each blocking command may wait, in ms (0: for ever); raises its errors.
TIMEOUTS: dict[str, Callable[[list[bytes]], int]] = {
    "blpop": _last, "brpop": _last, "brpoplpush": _last,
    "blmove": _blmove_timeout, "blmpop": _blmpop_timeout,
}
