"""Keyspaces seen through a lens: several groups' read as one, and a draft of a
write over several groups that keeps its changes aside."""

from __future__ import annotations

import itertools
from collections import ChainMap
from collections.abc import Callable, Iterator

from respkv.state.keyspace import BUCKETS, KeyList, KeyReader, Keyspace, bucket_of
from respkv.state.values import Collection


class KeyspaceUnion:
    """Several groups' keyspaces read as one: multi-key reads whose keys live in
    different groups, and KEYS, SCAN, DBSIZE, RANDOMKEY over a node's groups.
    Read-only: writes always go to one group's keyspace, through its log."""

    __slots__ = ("data", "owner", "parts")

    def __init__(self, parts: list[Keyspace], owner: Callable[[bytes], Keyspace]) -> None:
        self.parts = parts
        self.owner = owner  # the keyspace a key belongs in
        self.data = ChainMap(*(part.data for part in parts))

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def get_for_read(self, key: bytes, now: int) -> object | None:
        return self.owner(key).get_for_read(key, now)

    def exists_for_read(self, key: bytes, now: int) -> bool:
        return self.owner(key).exists_for_read(key, now)

    def ttl_ms(self, key: bytes) -> int | None:
        return self.owner(key).ttl_ms(key)

    def live_count(self, now: int) -> int:
        return sum(part.live_count(now) for part in self.parts)

    def live_keys(self, now: int) -> Iterator[bytes]:
        return itertools.chain.from_iterable(part.live_keys(now) for part in self.parts)

    def key_readers(self, now: int) -> list[KeyReader]:
        return [reader for part in self.parts for reader in part.key_readers(now)]

    def next_bucket(self, start: int) -> int:
        return min(part.next_bucket(start) for part in self.parts)

    def bucket_keys(self, bucket: int, now: int) -> list[bytes]:
        if len(self.parts) == 1:
            return self.parts[0].bucket_keys(bucket, now)
        return [key for part in self.parts for key in part.bucket_keys(bucket, now)]


class KeyspaceDraft:
    """A write over keys of several groups, run ahead of the log on their leader.

    The command's handler runs against this draft: it reads the groups' keyspaces
    and keeps its own changes aside, in ``changes`` (key -> (value, expire_at),
    value None for a deletion). Those exact values are then proposed to each key's
    group (``respkv.put``), so apply stays a pure function of the entry."""

    __slots__ = ("changes", "now", "owner", "parts")

    def __init__(self, owner: Callable[[bytes], Keyspace], now: int,
                 parts: list[Keyspace] | None = None) -> None:
        self.owner = owner
        self.now = now
        self.parts = parts or []  # the keyspaces drafted over, for keyless reads
        self.changes: dict[bytes, tuple[object | None, int | None]] = {}

    def _current(self, key: bytes) -> tuple[object | None, int | None]:
        if key in self.changes:
            return self.changes[key]
        keyspace = self.owner(key)
        value = keyspace.get_for_read(key, self.now)
        return value, keyspace.ttl_ms(key) if value is not None else None

    def get_for_read(self, key: bytes, now: int) -> object | None:
        return self._current(key)[0]

    def get_for_write(self, key: bytes, now: int) -> object | None:
        """The value, a collection copied into the draft first: the command may change
        it in place, and the live one must not change before the log says so."""
        value, expire_at = self._current(key)
        if isinstance(value, Collection) and key not in self.changes:
            value = value.copy()
            self.changes[key] = (value, expire_at)
        return value

    def touch(self, key: bytes) -> None:
        pass  # get_for_write put the changed copy in ``changes`` already

    def exists_for_read(self, key: bytes, now: int) -> bool:
        return self._current(key)[0] is not None

    def is_expired(self, key: bytes, now: int) -> bool:
        return False  # _current already treats an expired key as absent

    def ttl_ms(self, key: bytes) -> int | None:
        return self._current(key)[1]

    def set(self, key: bytes, value: object, expire_at: int | None = None) -> None:
        self.changes[key] = (value, expire_at)

    def set_keep_ttl(self, key: bytes, value: object) -> None:
        self.changes[key] = (value, self._current(key)[1])

    def set_expire(self, key: bytes, expire_at: int | None) -> None:
        value = self._current(key)[0]
        if value is not None:
            self.changes[key] = (value, expire_at)

    def delete(self, key: bytes) -> bool:
        existed = self._current(key)[0] is not None
        self.changes[key] = (None, None)
        return existed

    def live_keys(self, now: int) -> Iterator[bytes]:
        changes = self.changes
        kept = [key for part in self.parts for key in part.live_keys(now)
                if key not in changes]
        added = [key for key, (value, _) in changes.items() if value is not None]
        return iter(kept + added)

    def live_count(self, now: int) -> int:
        return sum(1 for _ in self.live_keys(now))

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts) + len(self.changes)  # about

    def key_readers(self, now: int) -> list[KeyReader]:
        return [KeyList(list(self.live_keys(now)))]

    def next_bucket(self, start: int) -> int:
        added = [b for key, (value, _) in self.changes.items()
                 if value is not None and (b := bucket_of(key)) >= start]
        return min([part.next_bucket(start) for part in self.parts] + added, default=BUCKETS)

    def bucket_keys(self, bucket: int, now: int) -> list[bytes]:
        changes = self.changes
        kept = [key for part in self.parts for key in part.bucket_keys(bucket, now)
                if key not in changes]
        return kept + [key for key, (value, _) in changes.items()
                       if value is not None and bucket_of(key) == bucket]

    def clear(self) -> None:
        for key in list(self.live_keys(self.now)):
            self.changes[key] = (None, None)
