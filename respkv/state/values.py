"""The value types a key may hold besides a string (``bytes``): hashes, lists, sets and
sorted sets, each shaped for its access pattern.

Commands read a collection's contents freely (``fields``, ``items``, ``members``,
``scores``/``ordered``) but change it only through its methods, which remember what
changed: the state store keeps each member in a row of its own, and writing out a
change must cost what the change costs, not what the collection holds. After changing
a collection in place, a command calls ``keyspace.touch(key)``.

``rewrite`` means "write every member again" (a new collection, or a change that moved
everything, as LINSERT in a list); otherwise ``changed`` names the members (for a list,
the positions) whose rows are to be written or deleted.

Each collection keeps ``nbytes``, an estimate of the memory its members take (their
lengths plus a fixed overhead each, roughly what CPython spends on a member of that
type), kept up to date by the same methods at a few integer operations a change:
the keyspace adds these up for ``maxmemory``. ``accounted`` is the figure the keyspace
last counted for it, so it can add the difference after an in-place change.

Order is part of the state: SPOP picks a member by position in ``members``, so that
position must be the same on every node, whatever each node's history of restarts.
The row of a set member stores its position, and a list's rows are keyed by position.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

# Bytes counted per member on top of its own lengths: the objects and slots CPython
# spends on one (measured roughly on 64-bit CPython 3.11: bytes headers, a dict entry,
# a deque or list slot, a float and a tuple for a sorted set's pair).
HASH_FIELD_OVERHEAD = 96
LIST_ITEM_OVERHEAD = 48
SET_MEMBER_OVERHEAD = 96
ZSET_MEMBER_OVERHEAD = 144


class Collection:
    """What the four collection types share: change tracking for the store, and the
    memory estimate."""

    __slots__ = ("accounted", "changed", "nbytes", "rewrite")

    def __init__(self) -> None:
        self.changed: set = set()
        self.rewrite = True  # new: nothing of it is in the store yet
        self.nbytes = 0
        self.accounted = 0

    def recount(self) -> None:
        """Compute ``nbytes`` from scratch (after a bulk load)."""
        raise NotImplementedError

    def _note(self, member: object) -> None:
        if not self.rewrite:
            self.changed.add(member)

    def mark_rewrite(self) -> None:
        self.rewrite = True
        self.changed.clear()

    def mark_stored(self) -> None:
        """Everything up to now is in the store."""
        self.rewrite = False
        self.changed.clear()

    def __len__(self) -> int:
        raise NotImplementedError


class HashValue(Collection):
    __slots__ = ("fields",)

    def __init__(self, fields: dict[bytes, bytes] | None = None) -> None:
        super().__init__()
        self.fields: dict[bytes, bytes] = {} if fields is None else fields
        if self.fields:
            self.recount()

    def __len__(self) -> int:
        return len(self.fields)

    def recount(self) -> None:
        self.nbytes = sum(HASH_FIELD_OVERHEAD + len(f) + len(v) for f, v in self.fields.items())

    def __eq__(self, other: object) -> bool:
        return type(other) is HashValue and other.fields == self.fields

    __hash__ = None  # type: ignore[assignment]

    def get(self, field: bytes) -> bytes | None:
        return self.fields.get(field)

    def put(self, field: bytes, value: bytes) -> bool:
        """Set a field; True if it is new."""
        old = self.fields.get(field)
        self.fields[field] = value
        self._note(field)
        if old is None:
            self.nbytes += HASH_FIELD_OVERHEAD + len(field) + len(value)
            return True
        self.nbytes += len(value) - len(old)
        return False

    def remove(self, field: bytes) -> bool:
        old = self.fields.pop(field, None)
        if old is None:
            return False
        self.nbytes -= HASH_FIELD_OVERHEAD + len(field) + len(old)
        self._note(field)
        return True

    def copy(self) -> HashValue:
        return HashValue(dict(self.fields))


class ListValue(Collection):
    """A deque of items; ``head`` is the store position of items[0], so a push or pop at
    either end changes one row."""

    __slots__ = ("head", "items")

    def __init__(self, items: Iterable[bytes] = (), head: int = 0) -> None:
        super().__init__()
        self.items: deque[bytes] = deque(items)
        self.head = head
        if self.items:
            self.recount()

    def __len__(self) -> int:
        return len(self.items)

    def recount(self) -> None:
        self.nbytes = LIST_ITEM_OVERHEAD * len(self.items) + sum(map(len, self.items))

    def __eq__(self, other: object) -> bool:
        return type(other) is ListValue and other.items == self.items

    __hash__ = None  # type: ignore[assignment]

    def push_left(self, item: bytes) -> None:
        self.head -= 1
        self.items.appendleft(item)
        self.nbytes += LIST_ITEM_OVERHEAD + len(item)
        self._note(self.head)

    def push_right(self, item: bytes) -> None:
        self.items.append(item)
        self.nbytes += LIST_ITEM_OVERHEAD + len(item)
        self._note(self.head + len(self.items) - 1)

    def pop_left(self) -> bytes:
        item = self.items.popleft()
        self.nbytes -= LIST_ITEM_OVERHEAD + len(item)
        self._note(self.head)
        self.head += 1
        return item

    def pop_right(self) -> bytes:
        item = self.items.pop()
        self.nbytes -= LIST_ITEM_OVERHEAD + len(item)
        self._note(self.head + len(self.items))
        return item

    def set_at(self, index: int, item: bytes) -> None:
        """Replace the item at ``index`` (0 <= index < len)."""
        self.nbytes += len(item) - len(self.items[index])
        self.items[index] = item
        self._note(self.head + index)

    def trim(self, start: int, stop: int) -> None:
        """Keep items[start:stop] (0 <= start <= stop <= len), popping from both ends."""
        for _ in range(len(self.items) - stop):
            self.pop_right()
        for _ in range(start):
            self.pop_left()

    def replace(self, items: Iterable[bytes]) -> None:
        """New contents in one go (LINSERT, LREM...): every row is written again."""
        self.items = deque(items)
        self.recount()  # O(n), as the replacement itself
        self.mark_rewrite()

    def positions(self) -> Iterator[tuple[int, bytes]]:
        return enumerate(self.items, self.head)

    def copy(self) -> ListValue:
        return ListValue(self.items, self.head)


class SetValue(Collection):
    """Members in a list (random picks by position in O(1)) and their positions in a dict.
    Removing swaps the last member into the hole: two rows change."""

    __slots__ = ("index", "members")

    def __init__(self, members: Iterable[bytes] = ()) -> None:
        super().__init__()
        self.members: list[bytes] = []
        self.index: dict[bytes, int] = {}
        for member in members:
            self.add(member)

    def __len__(self) -> int:
        return len(self.members)

    def recount(self) -> None:
        self.nbytes = SET_MEMBER_OVERHEAD * len(self.members) + sum(map(len, self.members))

    def __contains__(self, member: object) -> bool:
        return member in self.index

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.members)

    def __eq__(self, other: object) -> bool:
        return type(other) is SetValue and other.index.keys() == self.index.keys()

    __hash__ = None  # type: ignore[assignment]

    def add(self, member: bytes) -> bool:
        if member in self.index:
            return False
        self.index[member] = len(self.members)
        self.members.append(member)
        self.nbytes += SET_MEMBER_OVERHEAD + len(member)
        self._note(member)
        return True

    def remove(self, member: bytes) -> bool:
        position = self.index.pop(member, None)
        if position is None:
            return False
        last = self.members.pop()
        self.nbytes -= SET_MEMBER_OVERHEAD + len(member)
        if last != member:
            self.members[position] = last
            self.index[last] = position
            self._note(last)
        self._note(member)
        return True

    def copy(self) -> SetValue:
        return SetValue(self.members)


class ZSetValue(Collection):
    """Scores by member, and (score, member) pairs in order: ZADD, ZRANK and a range
    cost O(log n) plus what they return. Ties order by member bytes, as Redis."""

    __slots__ = ("ordered", "scores")

    def __init__(self, scores: dict[bytes, float] | None = None) -> None:
        super().__init__()
        self.scores: dict[bytes, float] = {} if scores is None else scores
        self.ordered: SortedList = SortedList((s, m) for m, s in self.scores.items())
        if self.scores:
            self.recount()

    def __len__(self) -> int:
        return len(self.scores)

    def recount(self) -> None:
        self.nbytes = ZSET_MEMBER_OVERHEAD * len(self.scores) + sum(map(len, self.scores))

    def __eq__(self, other: object) -> bool:
        return type(other) is ZSetValue and other.scores == self.scores

    __hash__ = None  # type: ignore[assignment]

    def score(self, member: bytes) -> float | None:
        return self.scores.get(member)

    def add(self, member: bytes, score: float) -> bool:
        """Insert or re-score a member; True if it is new. ``score`` is never NaN."""
        old = self.scores.get(member)
        if old is not None:
            if old == score and str(old) == str(score):  # -0.0 and 0.0 differ in replies
                return False
            self.ordered.remove((old, member))
        else:
            self.nbytes += ZSET_MEMBER_OVERHEAD + len(member)
        self.scores[member] = score
        self.ordered.add((score, member))
        self._note(member)
        return old is None

    def remove(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        self.ordered.remove((old, member))
        self.nbytes -= ZSET_MEMBER_OVERHEAD + len(member)
        self._note(member)
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        return None if score is None else self.ordered.index((score, member))

    def copy(self) -> ZSetValue:
        return ZSetValue(dict(self.scores))


COLLECTION_TYPES = (HashValue, ListValue, SetValue, ZSetValue)
