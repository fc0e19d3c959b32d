"""The in-memory Raft log of one core: entries after the last compaction point.

``offset`` is the index of the last compacted entry (the snapshot point, or 0),
``offset_term`` its term; ``entries[k]`` has index ``offset + 1 + k``.
``stable`` is the highest index known durable on this node's disk; entries after
it are handed to the driver in the next Ready.
"""

from __future__ import annotations

from operator import attrgetter

from respkv.raft.types import Entry

ENTRY_OVERHEAD = 16  # bytes counted per entry besides its data, for size limits
_data = attrgetter("data")


class LogError(RuntimeError):
    pass


class RaftLog:
    __slots__ = ("applied", "committed", "entries", "offset", "offset_term", "stable")

    def __init__(self, offset: int = 0, offset_term: int = 0) -> None:
        self.offset = offset
        self.offset_term = offset_term
        self.entries: list[Entry] = []
        self.committed = offset
        self.applied = offset
        self.stable = offset

    # -- queries -----------------------------------------------------------
    def first_index(self) -> int:
        return self.offset + 1

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, i: int) -> int | None:
        """Term of entry i, or None if compacted away or beyond the end."""
        off = self.offset
        if i == off:
            return self.offset_term
        if i < off:
            return None
        k = i - off - 1
        if k < len(self.entries):
            return self.entries[k].term
        return None

    def match_term(self, i: int, term: int) -> bool:
        t = self.term(i)
        return t is not None and t == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        lt = self.last_term()
        return last_term > lt or (last_term == lt and last_index >= self.last_index())

    def entry(self, i: int) -> Entry:
        return self.entries[i - self.offset - 1]

    def slice(self, lo: int, hi: int, max_bytes: int = 0) -> list[Entry]:
        """Entries [lo, hi); at least one if any, at most max_bytes (0: no limit)."""
        off = self.offset
        if lo <= off:
            raise LogError(f"slice from {lo} but log compacted to {off}")
        ents = self.entries[lo - off - 1 : hi - off - 1]
        n = len(ents)
        if max_bytes and n > 1:
            if sum(map(len, map(_data, ents))) + ENTRY_OVERHEAD * n <= max_bytes:
                return ents
            size = 0
            for k, e in enumerate(ents):
                size += len(e.data) + ENTRY_OVERHEAD
                if size > max_bytes and k > 0:
                    return ents[:k]
        return ents

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest i <= index whose term is <= term (or whose term is unknown)."""
        last = self.last_index()
        index = min(index, last)
        while index > self.offset:
            t = self.entries[index - self.offset - 1].term
            if t <= term:
                return index, t
            index -= 1
        return index, (self.offset_term if index == self.offset else 0)

    # -- changes -----------------------------------------------------------
    def append(self, ents: list[Entry]) -> int:
        """Append ents, truncating any suffix from ents[0].index. Returns the
        truncation point (first index replaced) or 0 if nothing was truncated."""
        if not ents:
            return 0
        first = ents[0].index
        last = self.last_index()
        if first <= self.committed:
            raise LogError(f"truncating committed entries at {first} (commit {self.committed})")
        if first == last + 1:
            self.entries.extend(ents)
            return 0
        if first > last + 1 or first <= self.offset:
            raise LogError(f"append at {first} to a log [{self.offset + 1}, {last}]")
        del self.entries[first - self.offset - 1 :]
        if self.stable >= first:
            self.stable = first - 1
        self.entries.extend(ents)
        return first

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, ents: list[Entry]
    ) -> tuple[int, int] | None:
        """Follower side of AppendEntries. Returns (last new index, truncation
        point or 0), or None if (prev_index, prev_term) does not match."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(ents)
        truncated = 0
        if ents:
            last = self.last_index()
            if ents[0].index > last:
                truncated = self.append(ents)
            else:
                # skip the entries we already have (same index and term)
                off = self.offset
                mine = self.entries
                k = 0
                n = len(ents)
                while k < n:
                    e = ents[k]
                    if e.index > last or mine[e.index - off - 1].term != e.term:
                        break
                    k += 1
                if k < n:
                    truncated = self.append(list(ents[k:]))
        if commit > self.committed:
            self.committed = min(commit, last_new)
        return last_new, truncated

    def commit_to(self, i: int) -> bool:
        if i > self.committed:
            if i > self.last_index():
                raise LogError(f"commit {i} beyond last index {self.last_index()}")
            self.committed = i
            return True
        return False

    def compact(self, i: int) -> None:
        """Drop entries up to and including i (i <= stable, applied)."""
        if i <= self.offset:
            return
        if i > self.last_index():
            raise LogError(f"compact to {i} beyond last {self.last_index()}")
        t = self.entries[i - self.offset - 1].term
        del self.entries[: i - self.offset]
        self.offset = i
        self.offset_term = t

    def restore(self, index: int, term: int) -> None:
        """Reset to an empty log after a snapshot at (index, term)."""
        self.entries = []
        self.offset = index
        self.offset_term = term
        self.committed = index
        self.stable = index
