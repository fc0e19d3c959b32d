"""Sorted set commands, with Redis 7.0's semantics.

A sorted set is a ZSetValue: ``scores`` (member -> score) and ``ordered``, a SortedList
of (score, member). Every range is found by bisection in ``ordered`` and read with
``islice``: O(log n) plus what it returns, as in Redis' skiplist.

Where Redis' answer depends on its encoding, the small one (a listpack: at most 128
members of at most 64 bytes) is followed when it costs nothing more:

- A lexicographic range over members of different scores (which Redis leaves
  unspecified) is found as a listpack finds it, by a walk, in a set of at most 128
  members; in a bigger one by bisection, which is exact when all scores are equal.
- -0 is stored as 0 (a listpack keeps an integral score as an integer); a reply
  computed without storing (ZADD INCR, ZINCRBY, ZUNION...) may still show -0.
- ZSCAN answers a small set whole, with cursor 0 and its scores written as a listpack
  holds them (``listpack_text``); a bigger one page by page (see ``scan_page``).

Writes are pure functions of (db, args, now); the pop core (``pop_extreme``,
``mpop``) is shared with the blocking pops.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from respkv.commands import errors
from respkv.commands.args import parse_float, parse_int
from respkv.commands.glob import stringmatch
from respkv.commands.keyspace import parse_cursor
from respkv.commands.table import Kind, command, numkeys_at
from respkv.commands.typed import read_typed, write_typed
from respkv.protocol.reply import NULL_ARRAY, Pairs, Reply, RespError
from respkv.state.keyspace import Keyspace
from respkv.state.values import SetValue, ZSetValue

FAMILY = "sorted-set"  # COMMAND DOCS' group
LISTPACK_ENTRIES = 128  # zset-max-listpack-entries' default
LISTPACK_VALUE = 64  # zset-max-listpack-value's default
_LONG_MAX = (1 << 63) - 1
_INF = math.inf
_C_SPACE = b" \t\n\v\f\r"  # C's isspace

XX_AND_NX = RespError("ERR XX and NX options at the same time are not compatible")
GT_LT_NX = RespError("ERR GT, LT, and/or NX options at the same time are not compatible")
INCR_PAIR = RespError("ERR INCR option supports a single increment-element pair")
NAN_SCORE = RespError("ERR resulting score is not a number (NaN)")
NOT_FLOAT_RANGE = RespError("ERR min or max is not a float")
NOT_LEX_RANGE = RespError("ERR min or max not valid string range item")
LIMIT_NEEDS_BY = RespError(
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
)
WITHSCORES_BYLEX = RespError(
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
)
NOT_POSITIVE = RespError("ERR value is out of range, must be positive")
NUMKEYS_NOT_POSITIVE = RespError("ERR numkeys should be greater than 0")
COUNT_NOT_POSITIVE = RespError("ERR count should be greater than 0")
LIMIT_NEGATIVE = RespError("ERR LIMIT can't be negative")
WEIGHT_NOT_FLOAT = RespError("ERR weight value is not a float")
OUT_OF_RANGE = RespError("ERR value is out of range")
RANDMEMBER_RANGE = RespError(
    f"ERR value is out of range, value must between {-_LONG_MAX} and {_LONG_MAX}"
)

Scored = list[tuple[bytes, float]]  # (member, score) in reply order


# -- replies -----------------------------------------------------------------


def scored_reply(pairs: Scored) -> Reply:
    """Members with their scores, as ZRANGE ... WITHSCORES answers: flat in RESP2,
    [member, score] pairs in RESP3."""
    return Pairs(pairs)


def score_text(score: float) -> bytes:
    """A score as Redis 7.0 writes it out as a string (%.17g; inf and -inf)."""
    if math.isinf(score):
        return b"inf" if score > 0 else b"-inf"
    return b"%.17g" % score


_LISTPACK_INT = 4611686018427387904.0  # (double)(LLONG_MAX / 2), Redis' double2ll bound


def listpack_text(score: float) -> bytes:
    """A score as a listpack holds it (what ZSCAN shows of a small set): an integral
    score within +-2^62 as an integer (so -0 is 0), any other as ``score_text``."""
    if -_LISTPACK_INT <= score <= _LISTPACK_INT and score == int(score):
        return b"%d" % int(score)
    return score_text(score)


def _stored(score: float) -> float:
    return score + 0.0  # -0.0 + 0.0 is 0.0: a listpack keeps no negative zero


# -- arguments ---------------------------------------------------------------


def parse_score(raw: bytes, error: RespError = errors.NOT_FLOAT) -> float:
    """A double as Redis' string2d reads it: strtod's syntax over the whole string, no
    leading space, no nan, and no overflow to inf or underflow to 0 (ERANGE)."""
    value = _float(raw, error)
    if math.isinf(value) and b"inf" not in raw.lower():
        raise error
    if value == 0 and _nonzero_mantissa(raw):
        raise error
    return value


def _float(raw: bytes, error: RespError) -> float:
    """parse_float, with a hexadecimal number too big for a double as +-inf (strtod's
    HUGE_VAL) rather than Python's OverflowError."""
    try:
        return parse_float(raw, error)
    except OverflowError:
        return -_INF if raw.lstrip(_C_SPACE)[:1] == b"-" else _INF


def _nonzero_mantissa(raw: bytes) -> bool:
    text = raw.lower().lstrip(b"+-")
    if text.startswith(b"0x"):
        return any(c not in b"0." for c in text[2:].partition(b"p")[0])
    return any(c not in b"0." for c in text.partition(b"e")[0])


def _strtod_whole(raw: bytes) -> float:
    """What zslParseRange's strtod accepts: a C string (it ends at a NUL), leading
    spaces allowed, nothing after the number; an empty string is 0; inf on overflow."""
    text = raw.split(b"\0", 1)[0]
    if not text:
        return 0.0
    stripped = text.lstrip(_C_SPACE)
    if not stripped:
        raise NOT_FLOAT_RANGE
    return _float(stripped, NOT_FLOAT_RANGE)


@dataclass(frozen=True, slots=True)
class ScoreRange:
    low: float
    low_open: bool
    high: float
    high_open: bool


def parse_score_range(low: bytes, high: bytes) -> ScoreRange:
    """``min max`` of ZRANGEBYSCORE and friends: "(" makes a bound exclusive."""
    low_open, high_open = low[:1] == b"(", high[:1] == b"("
    return ScoreRange(
        _strtod_whole(low[1:] if low_open else low), low_open,
        _strtod_whole(high[1:] if high_open else high), high_open,
    )


_MIN, _MAX = -1, 1  # "-" and "+": below and above every string


@dataclass(frozen=True, slots=True)
class LexBound:
    edge: int  # _MIN, _MAX, or 0 for ``value``
    value: bytes
    open: bool


def _lex_bound(raw: bytes) -> LexBound:
    head = raw[:1]
    if head in (b"+", b"-"):
        if len(raw) > 1 and raw[1] != 0:  # Redis reads a C string: "+\0..." is "+"
            raise NOT_LEX_RANGE
        return LexBound(_MAX if head == b"+" else _MIN, b"", True)
    if head in (b"(", b"["):
        return LexBound(0, raw[1:], head == b"(")
    raise NOT_LEX_RANGE


def _compare(a: LexBound, b: LexBound) -> int:
    """Redis' sdscmplex between two bounds."""
    if a.edge == b.edge and a.edge:
        return 0
    if a.edge == _MIN or b.edge == _MAX:
        return -1
    if a.edge == _MAX or b.edge == _MIN:
        return 1
    return (a.value > b.value) - (a.value < b.value)


@dataclass(frozen=True, slots=True)
class LexRange:
    low: LexBound
    high: LexBound

    def empty(self) -> bool:
        cmp = _compare(self.low, self.high)
        return cmp > 0 or (cmp == 0 and (self.low.open or self.high.open))

    def above_low(self, member: bytes) -> bool:
        low = self.low
        if low.edge:
            return low.edge == _MIN
        return member > low.value if low.open else member >= low.value

    def below_high(self, member: bytes) -> bool:
        high = self.high
        if high.edge:
            return high.edge == _MAX
        return member < high.value if high.open else member <= high.value


def parse_lex_range(low: bytes, high: bytes) -> LexRange:
    return LexRange(_lex_bound(low), _lex_bound(high))


def _long_or(raw: bytes, error: RespError, low: int, high: int) -> int:
    """Redis' getRangeLongFromObjectOrReply with a message: ``error`` for anything but
    an integer in [low, high]."""
    value = parse_int(raw, error)
    if not low <= value <= high:
        raise error
    return value


# -- lookups -----------------------------------------------------------------


def read_zset(db: Keyspace, key: bytes, now: int) -> ZSetValue | None:
    """A sorted set for a reader, or WRONGTYPE."""
    return read_typed(db, key, now, ZSetValue)


def write_zset(db: Keyspace, key: bytes, now: int) -> ZSetValue | None:
    """A sorted set for a writer (an expired key is deleted), or WRONGTYPE."""
    return write_typed(db, key, now, ZSetValue)


def is_small(value: ZSetValue) -> bool:
    """Whether Redis would hold this set as a listpack (its first encoding)."""
    return len(value) <= LISTPACK_ENTRIES and all(
        len(member) <= LISTPACK_VALUE for member in value.scores
    )


def _after_removal(db: Keyspace, key: bytes, value: ZSetValue, removed: int) -> None:
    if not value:
        db.delete(key)
    elif removed:
        db.touch(key)


def _store(db: Keyspace, key: bytes, pairs: Iterable[tuple[bytes, float]]) -> int:
    """A *STORE's result replaces ``key`` (and its TTL); an empty one deletes it."""
    scores = {member: _stored(score) for member, score in pairs}
    if scores:
        db.set(key, ZSetValue(scores))
    else:
        db.delete(key)
    return len(scores)


# -- where a range lies in ``ordered`` ---------------------------------------


def _count_below(ordered, score: float) -> int:
    """How many entries score less than ``score``: (score,) sorts before (score, m)."""
    return ordered.bisect_left((score,))


def _count_at_most(ordered, score: float) -> int:
    if score == _INF:
        return len(ordered)
    return ordered.bisect_left((math.nextafter(score, _INF),))


def score_span(ordered, spec: ScoreRange) -> tuple[int, int]:
    """The positions [start, stop) of the entries whose score is in range."""
    low, high = spec.low, spec.high
    start = _count_at_most(ordered, low) if spec.low_open else _count_below(ordered, low)
    stop = _count_below(ordered, high) if spec.high_open else _count_at_most(ordered, high)
    return start, max(start, stop)


def _first_true(ordered, lo: int, hi: int, test: Callable[[bytes], bool]) -> int:
    """The first position in [lo, hi) whose member passes ``test`` (False then True)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if test(ordered[mid][1]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _lex_possible(ordered, spec: LexRange) -> bool:
    """Redis' early test: the last member is above the low bound, the first below the high."""
    return (
        bool(ordered) and not spec.empty()
        and spec.above_low(ordered[-1][1]) and spec.below_high(ordered[0][1])
    )


def lex_span(ordered, spec: LexRange) -> tuple[int, int]:
    """The positions [start, stop) of the lexicographic range, walked upwards."""
    if not _lex_possible(ordered, spec):
        return 0, 0
    n = len(ordered)
    if n <= LISTPACK_ENTRIES:
        members = [member for _, member in ordered]
        start = next((i for i, m in enumerate(members) if spec.above_low(m)), n)
        stop = start
        while stop < n and spec.below_high(members[stop]):
            stop += 1
        return start, stop
    start = _first_true(ordered, 0, n, spec.above_low)
    stop = _first_true(ordered, start, n, lambda m: not spec.below_high(m))
    return start, stop


def lex_span_downwards(ordered, spec: LexRange) -> tuple[int, int]:
    """The positions [start, stop) of the lexicographic range, walked downwards (as
    ZREVRANGEBYLEX finds it: from the last member below the high bound)."""
    if not _lex_possible(ordered, spec):
        return 0, 0
    n = len(ordered)
    if n <= LISTPACK_ENTRIES:
        members = [member for _, member in ordered]
        last = next((i for i in range(n - 1, -1, -1) if spec.below_high(members[i])), -1)
        start = last + 1
        while start > 0 and spec.above_low(members[start - 1]):
            start -= 1
        return start, last + 1
    stop = _first_true(ordered, 0, n, lambda m: not spec.below_high(m))
    start = _first_true(ordered, 0, stop, spec.above_low)
    return start, stop


def rank_span(size: int, start: int, end: int) -> tuple[int, int]:
    """Redis' rank range (negative from the end, clamped) as positions [start, stop)."""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    if start > end or start >= size:
        return 0, 0
    return start, min(end, size - 1) + 1


def _window(span: tuple[int, int], offset: int, limit: int, reverse: bool) -> tuple[int, int]:
    """LIMIT offset count within a span (a negative offset skips everything, a negative
    count takes all the rest), counted from the top when ``reverse``."""
    start, stop = span
    if offset < 0:
        return 0, 0
    if reverse:
        stop = max(start, stop - offset)
        if limit >= 0:
            start = max(start, stop - limit)
    else:
        start = min(stop, start + offset)
        if limit >= 0:
            stop = min(stop, start + limit)
    return start, stop


def _entries(ordered, span: tuple[int, int], reverse: bool) -> Iterator[tuple[float, bytes]]:
    start, stop = span
    if start >= stop:
        return iter(())
    return ordered.islice(start, stop, reverse=reverse)


# -- ZADD, ZINCRBY, ZREM -----------------------------------------------------

_ZADD_OPTIONS = (b"NX", b"XX", b"CH", b"INCR", b"GT", b"LT")


@dataclass(slots=True)
class ZaddOptions:
    nx: bool
    xx: bool
    gt: bool
    lt: bool
    ch: bool
    incr: bool


def parse_zadd_options(args: list[bytes], incr: bool) -> tuple[ZaddOptions, int]:
    """ZADD's (and ZINCRBY's: Redis shares the code) options from ``args[2]`` on, and
    where the score-member pairs start; the option errors in Redis' order."""
    seen: set[bytes] = set()
    at = 2
    while at < len(args) and (opt := args[at].upper()) in _ZADD_OPTIONS:
        seen.add(opt)
        at += 1
    pairs = len(args) - at
    if pairs % 2 or not pairs:
        raise errors.SYNTAX
    nx, xx, gt, lt, ch = (o in seen for o in (b"NX", b"XX", b"GT", b"LT", b"CH"))
    options = ZaddOptions(nx, xx, gt, lt, ch, incr or b"INCR" in seen)
    if nx and xx:
        raise XX_AND_NX
    if (gt or lt) and (nx or (gt and lt)):
        raise GT_LT_NX
    if options.incr and pairs > 2:
        raise INCR_PAIR
    return options, at


def _zadd(db: Keyspace, args: list[bytes], now: int, incr: bool) -> Reply:
    """ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]."""
    options, at = parse_zadd_options(args, incr)
    scores = [parse_score(raw) for raw in args[at::2]]
    members = args[at + 1 :: 2]
    key = args[1]
    value = write_zset(db, key, now)
    if value is None and options.xx:
        return None if options.incr else 0
    fresh = value is None
    value = ZSetValue() if value is None else value
    if options.incr:  # the one failure after parsing: checked before any change
        old = value.scores.get(members[0])
        if old is not None and not options.nx and math.isnan(old + scores[0]):
            raise NAN_SCORE
    added, updated, last = _apply_zadd(value, members, scores, options)
    if fresh:
        db.set(key, value)
    elif added or updated:
        db.touch(key)
    if options.incr:
        return last
    return added + updated if options.ch else added


def _apply_zadd(value: ZSetValue, members: list[bytes], scores: list[float],
                options: ZaddOptions) -> tuple[int, int, float | None]:
    """Add or re-score each member in turn: (added, updated, the last score set or kept
    by a member not skipped, None if every one was)."""
    added = updated = 0
    last: float | None = None
    for member, score in zip(members, scores, strict=True):
        old = value.scores.get(member)
        if old is None:
            if options.xx:
                continue
            value.add(member, _stored(score))
            added += 1
        else:
            if options.nx:
                continue
            if options.incr:
                score += old
            if (options.lt and score >= old) or (options.gt and score <= old):
                continue
            if score != old:
                value.add(member, _stored(score))
                updated += 1
        last = score
    return added, updated, last


@command(
    "zadd", -4, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family=FAMILY,
    summary="Add one or more members to a sorted set, or update its score if it already "
    "exists", since="1.2.0",
)
def zadd(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _zadd(db, args, now, incr=False)


@command(
    "zincrby", 4, Kind.WRITE, flags=("denyoom", "fast"), keys=(1, 1, 1), family=FAMILY,
    summary="Increment the score of a member in a sorted set", since="1.2.0",
)
def zincrby(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _zadd(db, args, now, incr=True)


@command(
    "zrem", -3, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Remove one or more members from a sorted set", since="1.2.0",
)
def zrem(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = write_zset(db, args[1], now)
    if value is None:
        return 0
    removed = sum(1 for member in args[2:] if value.remove(member))
    _after_removal(db, args[1], value, removed)
    return removed


# -- single-member reads -----------------------------------------------------


@command(
    "zcard", 2, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Get the number of members in a sorted set", since="1.2.0",
)
def zcard(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_zset(db, args[1], now)
    return 0 if value is None else len(value)


@command(
    "zscore", 3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Get the score associated with the given member in a sorted set",
    since="1.2.0",
)
def zscore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_zset(db, args[1], now)
    return None if value is None else value.scores.get(args[2])


@command(
    "zmscore", -3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Get the score associated with the given members in a sorted set",
    since="6.2.0",
)
def zmscore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    value = read_zset(db, args[1], now)
    scores = {} if value is None else value.scores
    return [scores.get(member) for member in args[2:]]


def _rank(db: Keyspace, args: list[bytes], now: int, reverse: bool) -> Reply:
    value = read_zset(db, args[1], now)
    rank = None if value is None else value.rank(args[2])
    if rank is None or not reverse:
        return rank
    return len(value) - 1 - rank  # type: ignore[arg-type]


@command(
    "zrank", 3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Determine the index of a member in a sorted set", since="2.0.0",
)
def zrank(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _rank(db, args, now, reverse=False)


@command(
    "zrevrank", 3, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Determine the index of a member in a sorted set, with scores ordered from "
    "high to low", since="2.0.0",
)
def zrevrank(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _rank(db, args, now, reverse=True)


@command(
    "zcount", 4, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Count the members in a sorted set with scores within the given values",
    since="2.0.0",
)
def zcount(db: Keyspace, args: list[bytes], now: int) -> Reply:
    spec = parse_score_range(args[2], args[3])
    value = read_zset(db, args[1], now)
    if value is None:
        return 0
    start, stop = score_span(value.ordered, spec)
    return stop - start


@command(
    "zlexcount", 4, Kind.READ, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Count the number of members in a sorted set between a given "
    "lexicographical range", since="2.8.9",
)
def zlexcount(db: Keyspace, args: list[bytes], now: int) -> Reply:
    spec = parse_lex_range(args[2], args[3])
    value = read_zset(db, args[1], now)
    if value is None:
        return 0
    start, stop = lex_span(value.ordered, spec)
    return stop - start


# -- ranges ------------------------------------------------------------------


@dataclass(slots=True)
class RangeQuery:
    """A parsed ZRANGE (or one of its older forms): by rank, score or lex."""

    by: str  # "rank", "score" or "lex"
    reverse: bool
    withscores: bool
    offset: int
    limit: int  # -1: no LIMIT
    start: int = 0
    end: int = 0
    scores: ScoreRange | None = None
    lex: LexRange | None = None


def parse_range(args: list[bytes], src: int, by: str | None, reverse: bool | None,
                store: bool) -> RangeQuery:
    """``src min max [options]`` from ``args[src]`` on. ``by``/``reverse`` are fixed by
    the older commands (ZRANGEBYSCORE...) and then not accepted as options."""
    withscores = False
    offset, limit = 0, -1
    j = src + 3
    while j < len(args):
        opt = args[j].upper()
        if not store and opt == b"WITHSCORES":
            withscores = True
        elif opt == b"LIMIT" and len(args) - j - 1 >= 2:
            offset, limit = parse_int(args[j + 1]), parse_int(args[j + 2])
            j += 2
        elif reverse is None and opt == b"REV":
            reverse = True
        elif by is None and opt in (b"BYLEX", b"BYSCORE"):
            by = "lex" if opt == b"BYLEX" else "score"
        else:
            raise errors.SYNTAX
        j += 1
    by = by or "rank"
    reverse = bool(reverse)
    if limit != -1 and by == "rank":
        raise LIMIT_NEEDS_BY
    if withscores and by == "lex":
        raise WITHSCORES_BYLEX
    low, high = args[src + 1], args[src + 2]
    if reverse and by != "rank":
        low, high = high, low  # given as max min
    query = RangeQuery(by, reverse, withscores, offset, limit)
    if by == "rank":
        query.start, query.end = parse_int(low), parse_int(high)
    elif by == "score":
        query.scores = parse_score_range(low, high)
    else:
        query.lex = parse_lex_range(low, high)
    return query


def range_entries(value: ZSetValue, query: RangeQuery) -> Iterator[tuple[float, bytes]]:
    """The (score, member) entries a range query selects, in reply order."""
    ordered = value.ordered
    if query.by == "rank":
        start, stop = rank_span(len(ordered), query.start, query.end)
        if query.reverse:  # ranks count from the top
            start, stop = len(ordered) - stop, len(ordered) - start
        return _entries(ordered, (start, stop), query.reverse)
    if query.by == "score":
        span = score_span(ordered, query.scores)  # type: ignore[arg-type]
    elif query.reverse:
        span = lex_span_downwards(ordered, query.lex)  # type: ignore[arg-type]
    else:
        span = lex_span(ordered, query.lex)  # type: ignore[arg-type]
    window = _window(span, query.offset, query.limit, query.reverse)
    return _entries(ordered, window, query.reverse)


def _range_reply(db: Keyspace, args: list[bytes], now: int, by: str | None,
                 reverse: bool | None) -> Reply:
    query = parse_range(args, 1, by, reverse, store=False)
    value = read_zset(db, args[1], now)
    if value is None:
        return []
    entries = range_entries(value, query)
    if query.withscores:
        return scored_reply([(member, score) for score, member in entries])
    return [member for _, member in entries]


@command(
    "zrange", -4, Kind.READ, keys=(1, 1, 1), family=FAMILY,
    summary="Return a range of members in a sorted set", since="1.2.0",
)
def zrange(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _range_reply(db, args, now, None, None)


@command(
    "zrevrange", -4, Kind.READ, keys=(1, 1, 1), family=FAMILY,
    summary="Return a range of members in a sorted set, by index, with scores ordered "
    "from high to low", since="1.2.0",
)
def zrevrange(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _range_reply(db, args, now, "rank", True)


@command(
    "zrangebyscore", -4, Kind.READ, keys=(1, 1, 1), family=FAMILY,
    summary="Return a range of members in a sorted set, by score", since="1.0.5",
)
def zrangebyscore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _range_reply(db, args, now, "score", False)


@command(
    "zrevrangebyscore", -4, Kind.READ, keys=(1, 1, 1), family=FAMILY,
    summary="Return a range of members in a sorted set, by score, with scores ordered "
    "from high to low", since="2.2.0",
)
def zrevrangebyscore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _range_reply(db, args, now, "score", True)


@command(
    "zrangebylex", -4, Kind.READ, keys=(1, 1, 1), family=FAMILY,
    summary="Return a range of members in a sorted set, by lexicographical range",
    since="2.8.9",
)
def zrangebylex(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _range_reply(db, args, now, "lex", False)


@command(
    "zrevrangebylex", -4, Kind.READ, keys=(1, 1, 1), family=FAMILY,
    summary="Return a range of members in a sorted set, by lexicographical range, "
    "ordered from higher to lower strings.", since="2.8.9",
)
def zrevrangebylex(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _range_reply(db, args, now, "lex", True)


@command(
    "zrangestore", -5, Kind.WRITE, flags=("denyoom",), keys=(1, 2, 1), family=FAMILY,
    summary="Store a range of members from sorted set into another key", since="6.2.0",
)
def zrangestore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    query = parse_range(args, 2, None, None, store=True)
    value = read_zset(db, args[2], now)
    entries = () if value is None else range_entries(value, query)
    return _store(db, args[1], ((member, score) for score, member in list(entries)))


# -- removing ranges ---------------------------------------------------------


def _remove_span(db: Keyspace, key: bytes, value: ZSetValue, span: tuple[int, int]) -> int:
    doomed = [member for _, member in _entries(value.ordered, span, False)]
    for member in doomed:
        value.remove(member)
    _after_removal(db, key, value, len(doomed))
    return len(doomed)


@command(
    "zremrangebyrank", 4, Kind.WRITE, keys=(1, 1, 1), family=FAMILY,
    summary="Remove all members in a sorted set within the given indexes", since="2.0.0",
)
def zremrangebyrank(db: Keyspace, args: list[bytes], now: int) -> Reply:
    start, end = parse_int(args[2]), parse_int(args[3])
    value = write_zset(db, args[1], now)
    if value is None:
        return 0
    return _remove_span(db, args[1], value, rank_span(len(value), start, end))


@command(
    "zremrangebyscore", 4, Kind.WRITE, keys=(1, 1, 1), family=FAMILY,
    summary="Remove all members in a sorted set within the given scores", since="1.2.0",
)
def zremrangebyscore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    spec = parse_score_range(args[2], args[3])
    value = write_zset(db, args[1], now)
    if value is None:
        return 0
    return _remove_span(db, args[1], value, score_span(value.ordered, spec))


@command(
    "zremrangebylex", 4, Kind.WRITE, keys=(1, 1, 1), family=FAMILY,
    summary="Remove all members in a sorted set between the given lexicographical range",
    since="2.8.9",
)
def zremrangebylex(db: Keyspace, args: list[bytes], now: int) -> Reply:
    spec = parse_lex_range(args[2], args[3])
    value = write_zset(db, args[1], now)
    if value is None:
        return 0
    return _remove_span(db, args[1], value, lex_span(value.ordered, spec))


# -- pops --------------------------------------------------------------------


def _pop(db: Keyspace, key: bytes, value: ZSetValue, count: int, highest: bool) -> Scored:
    size = len(value)
    taken = min(count, size)
    span = (size - taken, size) if highest else (0, taken)
    popped = [(member, score) for score, member in _entries(value.ordered, span, highest)]
    for member, _ in popped:
        value.remove(member)
    _after_removal(db, key, value, len(popped))
    return popped


def pop_extreme(db: Keyspace, key: bytes, count: int, highest: bool, now: int) -> Scored | None:
    """Pop up to ``count`` members (0 pops none) from the low end of ``key`` (the high
    end if ``highest``), in pop order; None if there is no such key; WRONGTYPE."""
    value = write_zset(db, key, now)
    if value is None:
        return None
    return _pop(db, key, value, count, highest)


def mpop(db: Keyspace, keys: Sequence[bytes], count: int, highest: bool,
         now: int) -> tuple[bytes, Scored] | None:
    """ZMPOP's core: pop up to ``count`` members from the first of ``keys`` that exists
    (a sorted set is never empty); None if none does. WRONGTYPE if the first key that
    exists holds another type. BZPOPMIN/BZPOPMAX are ``mpop(db, keys, 1, ...)``."""
    for key in keys:
        value = write_zset(db, key, now)
        if value is not None:
            return key, _pop(db, key, value, count, highest)
    return None


def parse_mpop(args: list[bytes], at: int) -> tuple[list[bytes], bool, int]:
    """[B]ZMPOP's ``numkeys key [key ...] MIN|MAX [COUNT count]`` from ``args[at]``:
    (keys, highest, count)."""
    numkeys = _long_or(args[at], NUMKEYS_NOT_POSITIVE, 1, _LONG_MAX)
    where_at = at + numkeys + 1
    if where_at >= len(args):
        raise errors.SYNTAX
    where = args[where_at].upper()
    if where not in (b"MIN", b"MAX"):
        raise errors.SYNTAX
    count = None
    j = where_at + 1
    while j < len(args):
        if count is None and args[j].upper() == b"COUNT" and j + 1 < len(args):
            count = _long_or(args[j + 1], COUNT_NOT_POSITIVE, 1, _LONG_MAX)
            j += 2
        else:
            raise errors.SYNTAX
    return args[at + 1 : where_at], where == b"MAX", 1 if count is None else count


def mpop_reply(popped: tuple[bytes, Scored] | None) -> Reply:
    """[key, [[member, score], ...]] in both protocols, or a null array."""
    if popped is None:
        return NULL_ARRAY
    key, pairs = popped
    return [key, [[member, score] for member, score in pairs]]


def _zpop(db: Keyspace, args: list[bytes], now: int, highest: bool) -> Reply:
    if len(args) > 3:
        raise errors.SYNTAX
    count = _long_or(args[2], NOT_POSITIVE, 0, _LONG_MAX) if len(args) == 3 else None
    popped = pop_extreme(db, args[1], 1 if count is None else count, highest, now) or []
    if count is None:
        return [x for pair in popped for x in pair]
    return scored_reply(popped)


@command(
    "zpopmin", -2, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Remove and return members with the lowest scores in a sorted set",
    since="5.0.0",
)
def zpopmin(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _zpop(db, args, now, highest=False)


@command(
    "zpopmax", -2, Kind.WRITE, flags=("fast",), keys=(1, 1, 1), family=FAMILY,
    summary="Remove and return members with the highest scores in a sorted set",
    since="5.0.0",
)
def zpopmax(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _zpop(db, args, now, highest=True)


@command(
    "zmpop", -4, Kind.WRITE, flags=("movablekeys",), family=FAMILY,
    summary="Remove and return members with scores in a sorted set", since="7.0.0",
    find_keys=numkeys_at(1),
)
def zmpop(db: Keyspace, args: list[bytes], now: int) -> Reply:
    keys, highest, count = parse_mpop(args, 1)
    return mpop_reply(mpop(db, keys, count, highest, now))


# -- ZRANDMEMBER -------------------------------------------------------------


def _random_entries(value: ZSetValue, count: int, unique: bool) -> list[tuple[float, bytes]]:
    """As Redis picks: with repeats (a negative count, or one), the whole set from the
    top when it has no more than asked, else ``count`` distinct members."""
    ordered = value.ordered
    size = len(ordered)
    if not unique or count == 1:
        return [ordered[random.randrange(size)] for _ in range(count)]
    if count >= size:
        return list(ordered.islice(0, size, reverse=True))
    return [ordered[i] for i in random.sample(range(size), count)]


@command(
    "zrandmember", -2, Kind.READ, keys=(1, 1, 1), family=FAMILY,
    summary="Get one or multiple random elements from a sorted set", since="6.2.0",
)
def zrandmember(db: Keyspace, args: list[bytes], now: int) -> Reply:
    if len(args) == 2:
        value = read_zset(db, args[1], now)
        if value is None:
            return None
        return value.ordered[random.randrange(len(value))][1]
    count = parse_int(args[2])
    if count < -_LONG_MAX:
        raise RANDMEMBER_RANGE
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHSCORES"):
        raise errors.SYNTAX
    withscores = len(args) == 4
    if withscores and not -(_LONG_MAX // 2) <= count <= _LONG_MAX // 2:
        raise OUT_OF_RANGE
    value = read_zset(db, args[1], now)
    if value is None or count == 0:
        return []
    entries = _random_entries(value, abs(count), unique=count > 0)
    if withscores:
        return scored_reply([(member, score) for score, member in entries])
    return [member for _, member in entries]


# -- ZUNION, ZINTER, ZDIFF and their STORE forms -----------------------------

Source = ZSetValue | SetValue | None


def _size(source: Source) -> int:
    return 0 if source is None else len(source)


def _scored_members(source: Source) -> Iterable[tuple[bytes, float]]:
    """A source's (member, score): a plain set's members all score 1."""
    if source is None:
        return ()
    if type(source) is SetValue:
        return ((member, 1.0) for member in source.members)
    return source.scores.items()  # type: ignore[union-attr]


def _score_in(source: Source, member: bytes) -> float | None:
    if type(source) is SetValue:
        return 1.0 if member in source.index else None
    return source.scores.get(member)  # type: ignore[union-attr]


def _sum(total: float, value: float) -> float:
    total += value
    return 0.0 if math.isnan(total) else total  # inf + -inf counts as 0


_AGGREGATES: dict[bytes, Callable[[float, float], float]] = {
    b"SUM": _sum,
    b"MIN": lambda total, value: value if value < total else total,
    b"MAX": lambda total, value: value if value > total else total,
}


@dataclass(slots=True)
class SetOperation:
    sources: list[Source]
    weights: list[float]
    aggregate: Callable[[float, float], float]
    withscores: bool = False
    limit: int = 0  # ZINTERCARD's LIMIT; 0: none


def parse_set_operation(db: Keyspace, args: list[bytes], at: int, now: int, *,
                        weighted: bool, store: bool, card: bool) -> SetOperation:
    """``numkeys key [key ...] [options]`` from ``args[at]``. Redis looks every source
    up (WRONGTYPE) before it reads the options."""
    numkeys = parse_int(args[at])
    if numkeys < 1:
        name = args[0].decode("latin-1").lower()
        raise RespError(f"ERR at least 1 input key is needed for '{name}' command")
    if numkeys > len(args) - at - 1:
        raise errors.SYNTAX
    sources: list[Source] = []
    for key in args[at + 1 : at + 1 + numkeys]:
        value = db.get_for_read(key, now)
        if value is not None and type(value) not in (ZSetValue, SetValue):
            raise errors.WRONGTYPE
        sources.append(value)  # type: ignore[arg-type]
    operation = SetOperation(sources, [1.0] * numkeys, _sum)
    j = at + 1 + numkeys
    while j < len(args):
        opt, left = args[j].upper(), len(args) - j
        if weighted and not card and opt == b"WEIGHTS" and left > numkeys:
            operation.weights = [parse_score(w, WEIGHT_NOT_FLOAT)
                                 for w in args[j + 1 : j + 1 + numkeys]]
            j += numkeys + 1
        elif weighted and not card and opt == b"AGGREGATE" and left >= 2:
            if (aggregate := _AGGREGATES.get(args[j + 1].upper())) is None:
                raise errors.SYNTAX
            operation.aggregate = aggregate
            j += 2
        elif not store and not card and opt == b"WITHSCORES":
            operation.withscores = True
            j += 1
        elif card and opt == b"LIMIT" and left >= 2:
            operation.limit = _long_or(args[j + 1], LIMIT_NEGATIVE, 0, _LONG_MAX)
            j += 2
        else:
            raise errors.SYNTAX
    return operation


def _by_size(operation: SetOperation) -> list[int]:
    """Source positions smallest first, ties in argument order (Redis sorts them so,
    and a sum's rounding depends on the order it adds in)."""
    return sorted(range(len(operation.sources)), key=lambda i: _size(operation.sources[i]))


def _weighted(weight: float, score: float) -> float:
    value = weight * score
    return 0.0 if math.isnan(value) else value  # 0 * inf counts as 0


def union(operation: SetOperation) -> dict[bytes, float]:
    result: dict[bytes, float] = {}
    aggregate = operation.aggregate
    for i in _by_size(operation):
        weight = operation.weights[i]
        for member, score in _scored_members(operation.sources[i]):
            value = _weighted(weight, score)
            old = result.get(member)
            result[member] = value if old is None else aggregate(old, value)
    return result


def intersection(operation: SetOperation) -> Iterator[tuple[bytes, float]]:
    """Members of every source with their aggregated scores, smallest source first."""
    first, *rest = _by_size(operation)
    sources, weights, aggregate = operation.sources, operation.weights, operation.aggregate
    smallest = sources[first]
    if not smallest:
        return
    others = [(sources[i], weights[i]) for i in rest]
    for member, score in _scored_members(smallest):
        total = _weighted(weights[first], score)
        for source, weight in others:
            found = score if source is smallest else _score_in(source, member)
            if found is None:
                break
            total = aggregate(total, found * weight)
        else:
            yield member, total


def difference(operation: SetOperation) -> dict[bytes, float]:
    first, *rest = operation.sources
    others = [source for source in rest if source]
    return {
        member: score for member, score in _scored_members(first)
        if not any(_score_in(source, member) is not None for source in others)
    }


_OPERATIONS: dict[str, Callable[[SetOperation], Iterable[tuple[bytes, float]]]] = {
    "union": lambda op: union(op).items(),
    "inter": intersection,
    "diff": lambda op: difference(op).items(),
}


def _combine_reply(db: Keyspace, args: list[bytes], now: int, kind: str) -> Reply:
    operation = parse_set_operation(db, args, 1, now, weighted=kind != "diff",
                                    store=False, card=False)
    result = sorted(_OPERATIONS[kind](operation), key=lambda pair: (pair[1], pair[0]))
    if operation.withscores:
        return scored_reply(result)
    return [member for member, _ in result]


def _combine_store(db: Keyspace, args: list[bytes], now: int, kind: str) -> Reply:
    operation = parse_set_operation(db, args, 2, now, weighted=kind != "diff",
                                    store=True, card=False)
    return _store(db, args[1], list(_OPERATIONS[kind](operation)))


_READ_FLAGS = ("movablekeys",)
_STORE_FLAGS = ("denyoom", "movablekeys")


@command(
    "zunion", -3, Kind.READ, flags=_READ_FLAGS, family=FAMILY,
    summary="Add multiple sorted sets", since="6.2.0", find_keys=numkeys_at(1),
)
def zunion(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _combine_reply(db, args, now, "union")


@command(
    "zinter", -3, Kind.READ, flags=_READ_FLAGS, family=FAMILY,
    summary="Intersect multiple sorted sets", since="6.2.0", find_keys=numkeys_at(1),
)
def zinter(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _combine_reply(db, args, now, "inter")


@command(
    "zdiff", -3, Kind.READ, flags=_READ_FLAGS, family=FAMILY,
    summary="Subtract multiple sorted sets", since="6.2.0", find_keys=numkeys_at(1),
)
def zdiff(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _combine_reply(db, args, now, "diff")


@command(
    "zunionstore", -4, Kind.WRITE, flags=_STORE_FLAGS, keys=(1, 1, 1), family=FAMILY,
    summary="Add multiple sorted sets and store the resulting sorted set in a new key",
    since="2.0.0", find_keys=numkeys_at(2, also=(1,)),
)
def zunionstore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _combine_store(db, args, now, "union")


@command(
    "zinterstore", -4, Kind.WRITE, flags=_STORE_FLAGS, keys=(1, 1, 1), family=FAMILY,
    summary="Intersect multiple sorted sets and store the resulting sorted set in a new "
    "key", since="2.0.0", find_keys=numkeys_at(2, also=(1,)),
)
def zinterstore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _combine_store(db, args, now, "inter")


@command(
    "zdiffstore", -4, Kind.WRITE, flags=_STORE_FLAGS, keys=(1, 1, 1), family=FAMILY,
    summary="Subtract multiple sorted sets and store the resulting sorted set in a new "
    "key", since="6.2.0", find_keys=numkeys_at(2, also=(1,)),
)
def zdiffstore(db: Keyspace, args: list[bytes], now: int) -> Reply:
    return _combine_store(db, args, now, "diff")


@command(
    "zintercard", -3, Kind.READ, flags=_READ_FLAGS, family=FAMILY,
    summary="Intersect multiple sorted sets and return the cardinality of the result",
    since="7.0.0", find_keys=numkeys_at(1),
)
def zintercard(db: Keyspace, args: list[bytes], now: int) -> Reply:
    operation = parse_set_operation(db, args, 1, now, weighted=False, store=False, card=True)
    count = 0
    for _ in intersection(operation):
        count += 1
        if count == operation.limit:
            break
    return count


# -- ZSCAN -------------------------------------------------------------------

_SIGN = 1 << 63
_ALL_BITS = (1 << 64) - 1


def score_cursor(score: float) -> int:
    """A score as an unsigned 64-bit number in the same order (never 0)."""
    bits = struct.unpack(">Q", struct.pack(">d", score))[0]
    return bits ^ _ALL_BITS if bits & _SIGN else bits | _SIGN


def _cursor_score(cursor: int) -> float:
    """The score a cursor stands for (-inf below every score's, inf above)."""
    if cursor < score_cursor(-_INF):
        return -_INF
    if cursor > score_cursor(_INF):
        return _INF
    bits = cursor ^ _SIGN if cursor & _SIGN else cursor ^ _ALL_BITS
    return struct.unpack(">d", struct.pack(">Q", bits))[0]


def scan_page(value: ZSetValue, cursor: int, count: int) -> tuple[list[tuple[float, bytes]], int]:
    """Up to about ``count`` entries from ``cursor`` on, and the next cursor.

    A cursor is a score: a page takes the entries scoring at least that much, at least
    ``count`` of them and every one sharing the last one's score, so the next page
    starts at a greater score and no entry present for the whole iteration is missed,
    whatever is added or removed meanwhile. O(log n + page)."""
    ordered = value.ordered
    if cursor > score_cursor(_INF):
        return [], 0
    start = 0 if cursor == 0 else _count_below(ordered, _cursor_score(cursor))
    stop = min(start + count, len(ordered))
    if stop < len(ordered):
        stop = _count_at_most(ordered, ordered[stop - 1][0])
    page = list(_entries(ordered, (start, stop), False))
    return page, score_cursor(ordered[stop][0]) if stop < len(ordered) else 0


def _scan_options(args: list[bytes]) -> tuple[int, bytes | None]:
    count, pattern = 10, None
    j = 3
    while j < len(args):
        opt = args[j].upper()
        if opt == b"COUNT" and j + 1 < len(args):
            count = parse_int(args[j + 1])
            if count < 1:
                raise errors.SYNTAX
        elif opt == b"MATCH" and j + 1 < len(args):
            pattern = None if args[j + 1] == b"*" else args[j + 1]
        else:
            raise errors.SYNTAX
        j += 2
    return count, pattern


@command(
    "zscan", -3, Kind.READ, keys=(1, 1, 1), family=FAMILY,
    summary="Incrementally iterate sorted sets elements and associated scores",
    since="2.8.0",
)
def zscan(db: Keyspace, args: list[bytes], now: int) -> Reply:
    cursor = parse_cursor(args[2])
    value = read_zset(db, args[1], now)
    if value is None:
        return [b"0", []]
    count, pattern = _scan_options(args)
    small = is_small(value)
    if small:
        entries, next_cursor = list(value.ordered), 0
    else:
        entries, next_cursor = scan_page(value, cursor, count)
    text = listpack_text if small else score_text
    out: list[bytes] = []
    for score, member in entries:
        if pattern is None or stringmatch(pattern, member):
            out += (member, text(score))
    return [b"%d" % next_cursor, out]
