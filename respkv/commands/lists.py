"""List commands, with Redis 7.0's semantics.

WRITE handlers validate every argument before the first mutation. A list that
becomes empty is deleted, as Redis does. Changes go through ListValue's methods:
pushes and pops at the ends touch one store row each; a change in the middle
(LINSERT, LREM) rewrites the rows between it and the nearer end, or every row
when that is no dearer.

The non-blocking cores of the pops and moves (``pop_from``, ``pop_items``,
``move``, ``mpop``, ``parse_mpop``, ``parse_where``) are plain functions, for the
blocking variants to call once there is data.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from itertools import compress, islice, repeat
from itertools import count as naturals
from operator import eq

from respkv.commands import errors
from respkv.commands.args import parse_int
from respkv.commands.table import Kind, command, numkeys_at
from respkv.commands.typed import read_typed, write_typed
from respkv.protocol.reply import NULL_ARRAY, OK, Reply, RespError
from respkv.state.keyspace import Keyspace, KeyspaceView
from respkv.state.values import ListValue

_INT64_MIN = -(1 << 63)
_BLOCK = 64  # items per block of CPython's deque
_FEW = 32  # up to this many items, indexing each beats walking to the first

INDEX_OUT_OF_RANGE = RespError("ERR index out of range")
NOT_POSITIVE = RespError("ERR value is out of range, must be positive")
RANK_ZERO = RespError(
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
    "or use negative to start from the end of the list"
)
COUNT_NEGATIVE = RespError("ERR COUNT can't be negative")
MAXLEN_NEGATIVE = RespError("ERR MAXLEN can't be negative")
NUMKEYS_NOT_POSITIVE = RespError("ERR numkeys should be greater than 0")
MPOP_COUNT_NOT_POSITIVE = RespError("ERR count should be greater than 0")


# -- lookups and shared pieces ---------------------------------------------------


def read_list(db: KeyspaceView, key: bytes, now: int) -> ListValue | None:
    """A list for a reader, or WRONGTYPE."""
    return read_typed(db, key, now, ListValue)


def write_list(db: Keyspace, key: bytes, now: int) -> ListValue | None:
    """A list for a writer (an expired key is deleted), or WRONGTYPE."""
    return write_typed(db, key, now, ListValue)


def keyword(raw: bytes) -> bytes:
    """An option word as Redis' strcasecmp sees it: upper-cased, cut at a NUL byte."""
    return raw.split(b"\0", 1)[0].upper()


def parse_where(raw: bytes) -> bool:
    """LEFT (True) or RIGHT (False), any case; else a syntax error."""
    where = keyword(raw)
    if where == b"LEFT":
        return True
    if where == b"RIGHT":
        return False
    raise errors.SYNTAX


def _positive(raw: bytes, error: RespError) -> int:
    """A non-negative integer; ``error`` for anything else (getPositiveLong...OrReply)."""
    value = parse_int(raw, error)
    if value < 0:
        raise error
    return value


def _span(start: int, end: int, size: int) -> tuple[int, int]:
    """Redis' inclusive (start, end) with negative indexes, as a half-open [lo, hi)
    within the list; lo == hi when empty."""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    if start > end or start >= size:
        return 0, 0
    return start, min(end, size - 1) + 1


def _slice(items: deque[bytes], lo: int, hi: int) -> list[bytes]:
    """items[lo:hi], walking in from the nearer end only (no copy of the rest)."""
    size = len(items)
    if lo == 0 and hi == size:
        return list(items)
    if hi - lo <= _FEW and min(lo, size - hi) > _BLOCK:
        # A few items far in: indexing walks a block (64 items) a step, islice one item.
        return [items[i] for i in range(lo, hi)]
    if lo <= size - hi:
        return list(islice(items, lo, hi))
    out = list(islice(reversed(items), size - hi, size - lo))
    out.reverse()
    return out


def _splice(lst: ListValue, lo: int, hi: int, middle: list[bytes]) -> None:
    """Make items[lo:hi] be ``middle``: rows between the change and the nearer end are
    popped and pushed back; every row is rewritten when that costs no more."""
    size = len(lst)
    new_size = size - (hi - lo) + len(middle)
    if min(hi, size - lo) >= new_size:
        items = lst.items
        lst.replace([*islice(items, lo), *middle, *islice(items, hi, None)])
    elif hi <= size - lo:
        popped = [lst.pop_left() for _ in range(hi)]
        for item in reversed([*popped[:lo], *middle]):
            lst.push_left(item)
    else:
        popped = [lst.pop_right() for _ in range(size - lo)]  # last item first
        for item in middle:
            lst.push_right(item)
        for item in reversed(popped[: size - hi]):
            lst.push_right(item)


def _changed(db: Keyspace, key: bytes, lst: ListValue) -> None:
    """After an in-place change: written out, or deleted when empty."""
    if lst.items:
        db.touch(key)
    else:
        db.delete(key)


# -- pushes --------------------------------------------------------------------


def _push(db: Keyspace, args: list[bytes], now: int, left: bool, only_existing: bool) -> int:
    key, elements = args[1], args[2:]
    lst = write_list(db, key, now)
    if lst is None:
        if only_existing:
            return 0
        db.set(key, ListValue(reversed(elements) if left else elements))
        return len(elements)
    push = lst.push_left if left else lst.push_right
    for element in elements:
        push(element)
    db.touch(key)
    return len(lst)


_PUSH_FLAGS = ("denyoom", "fast")


@command(
    "lpush", -3, Kind.WRITE, flags=_PUSH_FLAGS, keys=(1, 1, 1), family="list",
    summary="Prepend one or multiple elements to a list",
)
def lpush(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _push(db, args, now, left=True, only_existing=False)


@command(
    "rpush", -3, Kind.WRITE, flags=_PUSH_FLAGS, keys=(1, 1, 1), family="list",
    summary="Append one or multiple elements to a list",
)
def rpush(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _push(db, args, now, left=False, only_existing=False)


@command(
    "lpushx", -3, Kind.WRITE, flags=_PUSH_FLAGS, keys=(1, 1, 1), family="list",
    summary="Prepend an element to a list, only if the list exists", since="2.2.0",
)
def lpushx(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _push(db, args, now, left=True, only_existing=True)


@command(
    "rpushx", -3, Kind.WRITE, flags=_PUSH_FLAGS, keys=(1, 1, 1), family="list",
    summary="Append an element to a list, only if the list exists", since="2.2.0",
)
def rpushx(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _push(db, args, now, left=False, only_existing=True)


# -- pops and moves: the cores the blocking variants share ------------------------


def pop_items(db: Keyspace, key: bytes, lst: ListValue, left: bool, count: int) -> list[bytes]:
    """Pop up to ``count`` (>= 1) items of the list at ``key``, in popping order;
    the key is deleted if that empties it."""
    if count >= len(lst):
        popped = list(lst.items) if left else list(reversed(lst.items))
        db.delete(key)
        return popped
    pop = lst.pop_left if left else lst.pop_right
    popped = [pop() for _ in range(count)]
    db.touch(key)
    return popped


def pop_from(db: Keyspace, key: bytes, left: bool, count: int, now: int) -> list[bytes] | None:
    """LPOP/RPOP's core: up to ``count`` (>= 1) items popped, None if there is no
    such key; WRONGTYPE (raised before any change) if it is not a list."""
    lst = write_list(db, key, now)
    return None if lst is None else pop_items(db, key, lst, left, count)


def move(
    db: Keyspace, src: bytes, dst: bytes, from_left: bool, to_left: bool, now: int
) -> bytes | None:
    """LMOVE's core: the item moved, or None if ``src`` does not exist. WRONGTYPE for
    ``src``, then for ``dst``, is raised before any change."""
    source = write_list(db, src, now)
    if source is None:
        return None
    target = write_list(db, dst, now)
    item = source.pop_left() if from_left else source.pop_right()
    if target is None:  # so dst != src: src still exists
        db.set(dst, ListValue((item,)))
    else:
        if to_left:
            target.push_left(item)
        else:
            target.push_right(item)
        db.touch(dst)
    _changed(db, src, source)  # after the push: when dst is src it never empties
    return item


def parse_mpop(args: list[bytes], numkeys_at: int) -> tuple[list[bytes], bool, int]:
    """[B]LMPOP's ``numkeys key... LEFT|RIGHT [COUNT count]`` from ``args[numkeys_at]``:
    (keys, left, count). Raises what Redis replies, in its order of checks."""
    numkeys = parse_int(args[numkeys_at], NUMKEYS_NOT_POSITIVE)
    if numkeys < 1:
        raise NUMKEYS_NOT_POSITIVE
    where_at = numkeys_at + numkeys + 1
    if where_at >= len(args):
        raise errors.SYNTAX
    left = parse_where(args[where_at])
    count = None
    i = where_at + 1
    while i < len(args):
        if count is None and keyword(args[i]) == b"COUNT" and i + 1 < len(args):
            count = parse_int(args[i + 1], MPOP_COUNT_NOT_POSITIVE)
            if count < 1:
                raise MPOP_COUNT_NOT_POSITIVE
            i += 2
        else:
            raise errors.SYNTAX
    return args[numkeys_at + 1 : where_at], left, 1 if count is None else count


def mpop(
    db: Keyspace, keys: list[bytes], left: bool, count: int, now: int
) -> tuple[bytes, list[bytes]] | None:
    """LMPOP's core: (key, items popped) from the first of ``keys`` that holds a list,
    or None if none does. WRONGTYPE if a key before that one holds another type."""
    for key in keys:
        lst = write_list(db, key, now)
        if lst is not None:
            return key, pop_items(db, key, lst, left, count)
    return None


def _pop_command(db: Keyspace, args: list[bytes], now: int, left: bool) -> Reply:
    if len(args) > 3:
        raise errors.wrong_arity("lpop" if left else "rpop")
    key = args[1]
    if len(args) == 2:
        popped = pop_from(db, key, left, 1, now)
        return None if popped is None else popped[0]
    count = _positive(args[2], NOT_POSITIVE)
    lst = write_list(db, key, now)
    if lst is None:
        return NULL_ARRAY
    return pop_items(db, key, lst, left, count) if count else []


@command(
    "lpop", -2, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family="list",
    summary="Remove and get the first elements in a list",
)
def lpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _pop_command(db, args, now, left=True)


@command(
    "rpop", -2, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family="list",
    summary="Remove and get the last elements in a list",
)
def rpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _pop_command(db, args, now, left=False)


@command(
    "lmove", 5, Kind.WRITE, flags=("denyoom",), keys=(1, 2, 1), family="list",
    summary="Pop an element from a list, push it to another list and return it",
    since="6.2.0",
)
def lmove(db: Keyspace, args: list[bytes], now: int) -> Reply:
    from_left, to_left = parse_where(args[3]), parse_where(args[4])
    return move(db, args[1], args[2], from_left, to_left, now)


@command(
    "rpoplpush", 3, Kind.WRITE, flags=("denyoom",), keys=(1, 2, 1), family="list",
    summary="Remove the last element in a list, prepend it to another list and return it",
    since="1.2.0",
)
def rpoplpush(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return move(db, args[1], args[2], False, True, now)


@command(
    "lmpop", -4, Kind.WRITE, flags=("movablekeys",), family="list",
    summary="Pop elements from a list", since="7.0.0",
    find_keys=numkeys_at(1),
)
def lmpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    keys, left, count = parse_mpop(args, 1)
    popped = mpop(db, keys, left, count, now)
    return NULL_ARRAY if popped is None else [popped[0], popped[1]]


# -- reads ---------------------------------------------------------------------


@command(
    "llen", 2, Kind.READ, flags=("fast",), keys=(1, 1, 1), family="list",
    summary="Get the length of a list",
)
def llen(db: KeyspaceView, args: list[bytes], now: int) -> Reply:
    lst = read_list(db, args[1], now)
    return 0 if lst is None else len(lst)


@command(
    "lindex", 3, Kind.READ, keys=(1, 1, 1), family="list",
    summary="Get an element from a list by its index",
)
def lindex(db: KeyspaceView, args: list[bytes], now: int) -> Reply:
    lst = read_list(db, args[1], now)
    if lst is None:
        return None  # Redis answers before reading the index
    index = parse_int(args[2])
    if index < 0:
        index += len(lst)
    # A deque walks to an index from the nearer end.
    return lst.items[index] if 0 <= index < len(lst) else None


@command(
    "lrange", 4, Kind.READ, keys=(1, 1, 1), family="list",
    summary="Get a range of elements from a list",
)
def lrange(db: KeyspaceView, args: list[bytes], now: int) -> Reply:
    start, end = parse_int(args[2]), parse_int(args[3])
    lst = read_list(db, args[1], now)
    if lst is None:
        return []
    lo, hi = _span(start, end, len(lst))
    return _slice(lst.items, lo, hi) if lo < hi else []


def _matches(items: deque[bytes], element: bytes, from_head: bool,
             scan: int | None) -> Iterator[int]:
    """Indexes (as LINDEX counts them) of ``element`` in the first ``scan`` items from
    the head or the tail (all items for None), nearest first. The comparing and
    counting run in C: no Python code per item."""
    seen: Iterable[bytes] = items if from_head else reversed(items)
    if scan is not None:
        seen = islice(seen, scan)
    found = compress(naturals(), map(eq, seen, repeat(element)))
    return found if from_head else map((len(items) - 1).__sub__, found)


def _parse_lpos(args: list[bytes]) -> tuple[int, int | None, int]:
    """LPOS's options: (rank, count or None when not given, maxlen)."""
    rank, count, maxlen = 1, None, 0
    i = 3
    while i < len(args):
        option = keyword(args[i])
        if i + 1 >= len(args) or option not in (b"RANK", b"COUNT", b"MAXLEN"):
            raise errors.SYNTAX
        raw = args[i + 1]
        if option == b"RANK":
            rank = parse_int(raw)
            if rank == 0:
                raise RANK_ZERO
        elif option == b"COUNT":
            count = _positive(raw, COUNT_NEGATIVE)
        else:
            maxlen = _positive(raw, MAXLEN_NEGATIVE)
        i += 2
    return rank, count, maxlen


@command(
    "lpos", -3, Kind.READ, keys=(1, 1, 1), family="list",
    summary="Return the index of matching elements on a list", since="6.0.6",
)
def lpos(db: KeyspaceView, args: list[bytes], now: int) -> Reply:
    rank, count, maxlen = _parse_lpos(args)
    lst = read_list(db, args[1], now)
    if lst is None:
        return None if count is None else []
    if rank == _INT64_MIN:
        # Redis negates the rank in a C long: it stays negative, so every match from
        # the tail counts as reached and COUNT never stops the scan.
        rank, count = -1, None if count is None else 0
    found = _matches(lst.items, args[2], rank > 0, maxlen or None)
    found = islice(found, abs(rank) - 1, None)
    if count is None:
        return next(found, None)
    return list(found if count == 0 else islice(found, count))


# -- changes in place ---------------------------------------------------------------


@command(
    "lset", 4, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="list",
    summary="Set the value of an element in a list by its index",
)
def lset(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[1]
    lst = write_list(db, key, now)
    if lst is None:
        raise errors.NO_SUCH_KEY
    index = parse_int(args[2])
    if index < 0:
        index += len(lst)
    if not 0 <= index < len(lst):
        raise INDEX_OUT_OF_RANGE
    lst.set_at(index, args[3])
    db.touch(key)
    return OK


@command(
    "ltrim", 4, Kind.WRITE, keys=(1, 1, 1), family="list",
    summary="Trim a list to the specified range",
)
def ltrim(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key = args[1]
    start, end = parse_int(args[2]), parse_int(args[3])
    lst = write_list(db, key, now)
    if lst is None:
        return OK
    lo, hi = _span(start, end, len(lst))
    if lo == hi:
        db.delete(key)
    elif hi - lo < len(lst):
        lst.trim(lo, hi)
        db.touch(key)
    return OK


@command(
    "linsert", 5, Kind.WRITE, flags=("denyoom",), keys=(1, 1, 1), family="list",
    summary="Insert an element before or after another element in a list", since="2.2.0",
)
def linsert(db: Keyspace, args: list[bytes], now: int) -> Reply:
    where = keyword(args[2])
    if where not in (b"BEFORE", b"AFTER"):
        raise errors.SYNTAX
    key = args[1]
    lst = write_list(db, key, now)
    if lst is None:
        return 0
    try:
        at = lst.items.index(args[3])
    except ValueError:
        return -1
    if where == b"AFTER":
        at += 1
    _splice(lst, at, at, [args[4]])
    db.touch(key)
    return len(lst)


def _removals(items: deque[bytes], element: bytes, count: int) -> list[int]:
    """Ascending indexes of the items LREM removes: the first ``count`` matches from
    the head (count > 0), from the tail (count < 0), or all (0)."""
    limit = None if count in (0, _INT64_MIN) else abs(count)  # Redis' -LONG_MIN stays < 0
    found = list(islice(_matches(items, element, count >= 0, None), limit))
    if count < 0:
        found.reverse()
    return found


@command(
    "lrem", 4, Kind.WRITE, keys=(1, 1, 1), family="list",
    summary="Remove elements from a list",
)
def lrem(db: Keyspace, args: list[bytes], now: int) -> Reply:
    key, element = args[1], args[3]
    count = parse_int(args[2])
    lst = write_list(db, key, now)
    if lst is None:
        return 0
    removed = _removals(lst.items, element, count)
    if not removed:
        return 0
    if len(removed) == len(lst):
        db.delete(key)
        return len(removed)
    lo, hi = removed[0], removed[-1] + 1
    gone = set(removed)
    kept = [item for i, item in enumerate(_slice(lst.items, lo, hi), lo) if i not in gone]
    _splice(lst, lo, hi, kept)
    db.touch(key)
    return len(removed)
