"""Set commands, with Redis 7.0's semantics.

Reply order: Redis 7.0 keeps a small all-integer set (up to set-max-intset-entries)
as an intset and so lists it ascending; any other set is a hashtable, whose order
is its own. Replies here list an intset-like set ascending too, and any other in
position order (``SetValue.members``).

Writes are pure functions of (db, args, now): SPOP draws from ``entry_random`` and
picks by position, and the *STORE commands build their result in an order that
depends on nothing but the sources' member order, which is the same on every node.

SSCAN walks a set by position, downwards (see ``scan_positions``): O(COUNT) a call,
and no member present for the whole iteration is missed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from respkv.commands import errors
from respkv.commands.args import parse_int
from respkv.commands.glob import stringmatch
from respkv.commands.keyspace import parse_cursor
from respkv.commands.randomness import entry_random
from respkv.commands.table import Kind, command, numkeys_at
from respkv.commands.typed import read_typed, write_typed
from respkv.protocol.reply import Reply, RespError, RSet
from respkv.state.keyspace import Keyspace
from respkv.state.values import SetValue

_LONG_MAX = (1 << 63) - 1
INTSET_MAX = 512  # set-max-intset-entries' default
_INTEGER = re.compile(rb"0|-?[1-9][0-9]{0,18}")  # what Redis' string2ll accepts

MUST_BE_POSITIVE = "value is out of range, must be positive"
NUMKEYS_NOT_POSITIVE = "numkeys should be greater than 0"
LIMIT_NEGATIVE = "LIMIT can't be negative"
TOO_MANY_NUMKEYS = RespError("ERR Number of keys can't be greater than number of args")


# -- helpers -----------------------------------------------------------------


def read_set(db: Keyspace, key: bytes, now: int) -> SetValue | None:
    """A set for a reader, or WRONGTYPE."""
    return read_typed(db, key, now, SetValue)


def write_set(db: Keyspace, key: bytes, now: int) -> SetValue | None:
    """A set for a writer (an expired key is deleted), or WRONGTYPE."""
    return write_typed(db, key, now, SetValue)


def read_sets(db: Keyspace, keys: Sequence[bytes], now: int) -> list[SetValue | None]:
    """Every key's set (None when missing); WRONGTYPE if any key holds something else,
    even after a missing key, as Redis checks them all first."""
    return [read_set(db, key, now) for key in keys]


def int_arg(raw: bytes, message: str | None) -> int:
    """A long, with ``message`` (when given) as the error for anything else."""
    return parse_int(raw, RespError(f"ERR {message}") if message else errors.NOT_INTEGER)


def range_long(raw: bytes, low: int, high: int, message: str | None) -> int:
    """Redis' getRangeLongFromObjectOrReply: ``message`` (when given) is the error for
    a non-integer as well as for a value out of [low, high]."""
    value = int_arg(raw, message)
    if not low <= value <= high:
        raise RespError(
            f"ERR {message}" if message
            else f"ERR value is out of range, value must between {low} and {high}"
        )
    return value


def intset_like(members: Sequence[bytes]) -> bool:
    """Whether Redis could hold these members as an intset."""
    if len(members) > INTSET_MAX:
        return False
    fullmatch = _INTEGER.fullmatch
    return all(
        fullmatch(m) is not None and -(1 << 63) <= int(m) <= _LONG_MAX for m in members
    )


def reply_order(members: Sequence[bytes]) -> list[bytes]:
    """Members as Redis lists them when it can tell: an intset ascending (a copy)."""
    if intset_like(members):
        return sorted(members, key=int)
    return list(members)


def intersection(sets: list[SetValue | None], limit: int = 0) -> list[bytes]:
    """Members of every set, in the smallest set's order; at most ``limit`` if not 0."""
    if not sets or any(s is None for s in sets):
        return []
    smallest, *rest = sorted(sets, key=len)  # type: ignore[arg-type]
    others = [s.index for s in rest]  # type: ignore[union-attr]
    found: list[bytes] = []
    for member in smallest.members:  # type: ignore[union-attr]
        if all(member in other for other in others):
            found.append(member)
            if len(found) == limit:
                break
    return found


def union(sets: list[SetValue | None]) -> list[bytes]:
    """Members of any set, each once, in first-seen order."""
    seen: dict[bytes, None] = {}
    for s in sets:
        if s is not None:
            seen.update(dict.fromkeys(s.members))
    return list(seen)


def difference(sets: list[SetValue | None]) -> list[bytes]:
    """Members of the first set in none of the others, in the first set's order."""
    first = sets[0]
    if first is None:
        return []
    others = [s.index for s in sets[1:] if s is not None and len(s)]
    if not others:
        return list(first.members)
    # As Redis, pick the cheaper way: test each member against every other set, or
    # gather all the others' members once.
    if len(first) * len(others) <= sum(map(len, others)):
        return [m for m in first.members if not any(m in other for other in others)]
    dropped: set[bytes] = set()
    for other in others:
        dropped.update(other)
    return [m for m in first.members if m not in dropped]


def store(db: Keyspace, key: bytes, members: list[bytes]) -> int:
    """A *STORE result: a new set at ``key`` (its TTL dropped), or no key if empty."""
    if members:
        db.set(key, SetValue(members))
    else:
        db.delete(key)
    return len(members)


# -- one set -------------------------------------------------------------------


@command(
    "sadd", -3, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family="set",
    summary="Add one or more members to a set",
)
def sadd(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[1]
    value = write_set(db, key, now)
    if value is None:
        value = SetValue(args[2:])
        db.set(key, value)
        return len(value)
    added = 0
    for member in args[2:]:
        added += value.add(member)
    if added:
        db.touch(key)
    return added


def remove_members(db: Keyspace, key: bytes, value: SetValue, members: list[bytes]) -> int:
    """Remove members from the set at ``key``; the key goes when the set is empty."""
    removed = 0
    for member in members:
        removed += value.remove(member)
    if not value:
        db.delete(key)
    elif removed:
        db.touch(key)
    return removed


@command(
    "srem", -3, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family="set",
    summary="Remove one or more members from a set",
)
def srem(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = write_set(db, args[1], now)
    if value is None:
        return 0
    return remove_members(db, args[1], value, args[2:])


@command(
    "scard", 2, Kind.READ, flags=("fast",), keys=(1, 1, 1), family="set",
    summary="Get the number of members in a set",
)
def scard(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_set(db, args[1], now)
    return 0 if value is None else len(value)


@command(
    "sismember", 3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family="set",
    summary="Determine if a given value is a member of a set",
)
def sismember(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_set(db, args[1], now)
    return int(value is not None and args[2] in value.index)


@command(
    "smismember", -3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family="set",
    summary="Returns the membership associated with the given elements for a set",
    since="6.2.0",
)
def smismember(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_set(db, args[1], now)
    if value is None:
        return [0] * (len(args) - 2)
    index = value.index
    return [int(member in index) for member in args[2:]]


@command(
    "smembers", 2, Kind.READ, keys=(1, 1, 1), family="set",
    summary="Get all the members in a set",
)
def smembers(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_set(db, args[1], now)
    return RSet() if value is None else RSet(reply_order(value.members))


@command(
    "smove", 4, Kind.WRITE, flags=("fast",), keys=(1, 2, 1), family="set",
    summary="Move a member from one set to another",
)
def smove(db: Keyspace, args: list[bytes], now: int) -> Reply:
    source_key, target_key, member = args[1], args[2], args[3]
    source = db.get_for_write(source_key, now)
    if source is None:  # before any type check, as Redis
        return 0
    target = db.get_for_write(target_key, now)
    if type(source) is not SetValue or (target is not None and type(target) is not SetValue):
        raise errors.WRONGTYPE
    if source_key == target_key:
        return int(member in source.index)
    if not remove_members(db, source_key, source, [member]):
        return 0
    if target is None:
        db.set(target_key, SetValue([member]))
    elif target.add(member):
        db.touch(target_key)
    return 1


# -- random members ------------------------------------------------------------


def _count_arg(args: list[bytes], low: int, message: str | None) -> int | None:
    """The optional count of SPOP/SRANDMEMBER; more arguments are a syntax error."""
    if len(args) > 3:
        raise errors.SYNTAX
    return range_long(args[2], low, _LONG_MAX, message) if len(args) == 3 else None


@command(
    "spop", -2, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family="set",
    summary="Remove and return one or multiple random members from a set",
)
def spop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    count = _count_arg(args, 0, MUST_BE_POSITIVE)
    key = args[1]
    value = write_set(db, key, now)
    if value is None:
        return None if count is None else RSet()
    if count is None:
        member = value.members[entry_random(args, now).randrange(len(value))]
        remove_members(db, key, value, [member])
        return member
    if count == 0:
        return RSet()
    if count >= len(value):
        everything = RSet(reply_order(value.members))
        db.delete(key)
        return everything
    # One pick by position per member: O(count), and the same picks on every node.
    rng = entry_random(args, now)
    members = value.members
    popped = RSet()
    for _ in range(count):
        member = members[rng.randrange(len(members))]
        value.remove(member)
        popped.append(member)
    db.touch(key)
    return popped


@command(
    "srandmember", -2, Kind.READ, keys=(1, 1, 1), family="set",
    summary="Get one or multiple random members from a set",
)
def srandmember(db: Keyspace, args: list[bytes], now: int) -> Reply:
    count = _count_arg(args, -_LONG_MAX, None)
    value = read_set(db, args[1], now)
    if count is None:
        return None if value is None else random.choice(value.members)
    if value is None or count == 0:
        return []
    members = value.members
    if count < 0:  # with repetitions
        return random.choices(members, k=-count)
    if count >= len(members):
        return reply_order(members)
    return [members[i] for i in random.sample(range(len(members)), count)]


# -- several sets --------------------------------------------------------------


@command(
    "sinter", -2, Kind.READ, keys=(1, -1, 1), family="set",
    summary="Intersect multiple sets",
)
def sinter(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return RSet(reply_order(intersection(read_sets(db, args[1:], now))))


@command(
    "sintercard", -3, Kind.READ, flags=("movablekeys",), family="set",
    summary="Intersect multiple sets and return the cardinality of the result",
    since="7.0.0",
    find_keys=numkeys_at(1),
)
def sintercard(db: Keyspace, args: list[bytes], now: int) -> Reply:
    numkeys = range_long(args[1], 1, _LONG_MAX, NUMKEYS_NOT_POSITIVE)
    if numkeys > len(args) - 2:
        raise TOO_MANY_NUMKEYS
    limit = 0
    i = 2 + numkeys
    while i < len(args):
        if args[i].upper() != b"LIMIT" or i + 1 >= len(args):
            raise errors.SYNTAX
        limit = range_long(args[i + 1], 0, _LONG_MAX, LIMIT_NEGATIVE)
        i += 2
    return len(intersection(read_sets(db, args[2 : 2 + numkeys], now), limit))


@command(
    "sinterstore", -3, Kind.WRITE, flags=("denyoom",), keys=(1, -1, 1), family="set",
    summary="Intersect multiple sets and store the resulting set in a key",
)
def sinterstore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return store(db, args[1], intersection(read_sets(db, args[2:], now)))


@command(
    "sunion", -2, Kind.READ, keys=(1, -1, 1), family="set",
    summary="Add multiple sets",
)
def sunion(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return RSet(reply_order(union(read_sets(db, args[1:], now))))


@command(
    "sunionstore", -3, Kind.WRITE, flags=("denyoom",), keys=(1, -1, 1), family="set",
    summary="Add multiple sets and store the resulting set in a key",
)
def sunionstore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return store(db, args[1], union(read_sets(db, args[2:], now)))


@command(
    "sdiff", -2, Kind.READ, keys=(1, -1, 1), family="set",
    summary="Subtract multiple sets",
)
def sdiff(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return RSet(reply_order(difference(read_sets(db, args[1:], now))))


@command(
    "sdiffstore", -3, Kind.WRITE, flags=("denyoom",), keys=(1, -1, 1), family="set",
    summary="Subtract multiple sets and store the resulting set in a key",
)
def sdiffstore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return store(db, args[1], difference(read_sets(db, args[2:], now)))


# -- SSCAN ---------------------------------------------------------------------


def _sscan_options(args: list[bytes]) -> tuple[int, bytes | None]:
    """SSCAN's (COUNT, MATCH pattern or None for every member)."""
    count, pattern = 10, None
    i = 3
    while i < len(args):
        option = args[i].lower()
        if option not in (b"count", b"match") or i + 1 >= len(args):
            raise errors.SYNTAX
        if option == b"count":
            count = int_arg(args[i + 1], None)
            if count < 1:
                raise errors.SYNTAX
        else:
            pattern = None if args[i + 1] == b"*" else args[i + 1]
        i += 2
    return count, pattern


def scan_positions(members: list[bytes], cursor: int, count: int) -> tuple[list[bytes], int]:
    """Up to ``count`` members, by position downwards, and the next cursor.

    A cursor c > 0 means "positions below c are still to visit" (0 starts). Members
    only ever move down (a removal moves the last member into the hole) and new ones
    come at the end, so a member present for the whole iteration stays below the
    cursor until it is returned: each call costs O(count), and none is missed.
    """
    top = len(members) if cursor == 0 else min(cursor, len(members))
    low = max(0, top - count)
    return members[low:top][::-1], low


@command(
    "sscan", -3, Kind.READ, keys=(1, 1, 1), family="set", since="2.8.0",
    summary="Incrementally iterate Set elements",
)
def sscan(db: Keyspace, args: list[bytes], now: int) -> Reply:
    cursor = parse_cursor(args[2])
    value = read_set(db, args[1], now)
    if value is None:
        return [b"0", []]
    count, pattern = _sscan_options(args)
    if intset_like(value.members):  # Redis sends a whole intset at once, whatever the cursor
        page, next_cursor = sorted(value.members, key=int), 0
    else:
        page, next_cursor = scan_positions(value.members, cursor, count)
    if pattern is not None:
        page = [member for member in page if stringmatch(pattern, member)]
    return [b"%d" % next_cursor, page]
