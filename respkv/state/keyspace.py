"""The in-memory keyspace: the hot read path of the state machine.

Values live in ``data``; absolute expiry times (ms since the epoch) in
``expires``, as Redis keeps them. The durable copy lives in SQLite
(respkv.storage.store): every key a write touches is remembered in ``dirty``
and written out once per applied batch.

Two ways to look a key up, because expiry is judged against a clock:

- ``get_for_read(key, now)``: local reads. An expired key is absent, but the
  read does not delete it (deletion is a write: only the log may do it).
- ``get_for_write(key, now)``: inside ``apply``, where ``now`` is the leader
  time stored in the entry. An expired key is deleted there, identically on
  every node, so apply stays a pure function of (state, entry).
"""

from __future__ import annotations

import itertools
from collections import ChainMap
from collections.abc import Callable, Iterator

# The Python types a value may have, and the name TYPE reports for each.
TYPE_NAMES: dict[type, str] = {bytes: "string"}


class Keyspace:
    __slots__ = ("data", "dirty", "expires")

    def __init__(self) -> None:
        self.data: dict[bytes, object] = {}
        self.expires: dict[bytes, int] = {}
        self.dirty: set[bytes] = set()

    def __len__(self) -> int:
        return len(self.data)

    # -- lookups ---------------------------------------------------------

    def is_expired(self, key: bytes, now: int) -> bool:
        at = self.expires.get(key)
        return at is not None and at <= now

    def get_for_read(self, key: bytes, now: int) -> object | None:
        value = self.data.get(key)
        if value is not None and self.expires and self.is_expired(key, now):
            return None
        return value

    def get_for_write(self, key: bytes, now: int) -> object | None:
        value = self.data.get(key)
        if value is not None and self.expires and self.is_expired(key, now):
            self.delete(key)
            return None
        return value

    def exists_for_read(self, key: bytes, now: int) -> bool:
        return self.get_for_read(key, now) is not None

    def live_count(self, now: int) -> int:
        """How many keys are not yet expired at ``now``."""
        if not self.expires:
            return len(self.data)
        return len(self.data) - sum(1 for at in self.expires.values() if at <= now)

    def ttl_ms(self, key: bytes) -> int | None:
        return self.expires.get(key)

    def live_keys(self, now: int) -> Iterator[bytes]:
        """Keys not yet expired at ``now`` (a snapshot: safe to mutate meanwhile)."""
        if not self.expires:
            return iter(list(self.data))
        expires = self.expires
        return iter([k for k in self.data if (at := expires.get(k)) is None or at > now])

    def expired_keys(self, now: int, limit: int) -> list[bytes]:
        """Up to ``limit`` keys whose time has passed: candidates for reclaiming."""
        found = []
        for key, at in self.expires.items():
            if at <= now:
                found.append(key)
                if len(found) >= limit:
                    break
        return found

    # -- mutations (only from StateMachine.apply) ------------------------

    def set(self, key: bytes, value: object, expire_at: int | None = None) -> None:
        """Store a value; drops any TTL unless ``expire_at`` is given."""
        self.data[key] = value
        if expire_at is None:
            self.expires.pop(key, None)
        else:
            self.expires[key] = expire_at
        self.dirty.add(key)

    def set_keep_ttl(self, key: bytes, value: object) -> None:
        self.data[key] = value
        self.dirty.add(key)

    def set_expire(self, key: bytes, expire_at: int | None) -> None:
        if expire_at is None:
            self.expires.pop(key, None)
        else:
            self.expires[key] = expire_at
        self.dirty.add(key)

    def delete(self, key: bytes) -> bool:
        if self.data.pop(key, None) is None:
            return False
        self.expires.pop(key, None)
        self.dirty.add(key)
        return True

    def clear(self) -> None:
        self.dirty.update(self.data)
        self.data.clear()
        self.expires.clear()

    # -- durable copy ----------------------------------------------------

    def take_dirty(self) -> tuple[dict[bytes, object], list[bytes]]:
        """What changed since the last call: (upserts as (value, expire_at), deletes)."""
        upserts: dict[bytes, object] = {}
        deletes: list[bytes] = []
        for key in self.dirty:
            value = self.data.get(key)
            if value is None:
                deletes.append(key)
            else:
                upserts[key] = (value, self.expires.get(key))
        self.dirty.clear()
        return upserts, deletes

    def load(self, records: dict[bytes, object]) -> None:
        """Fill from the durable store's (value, expire_at) records."""
        self.data.clear()
        self.expires.clear()
        self.dirty.clear()
        for key, (value, expire_at) in records.items():  # type: ignore[misc]
            self.data[key] = value
            if expire_at is not None:
                self.expires[key] = expire_at


def type_name(value: object) -> str:
    return TYPE_NAMES.get(type(value), "none")


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


class KeyspaceDraft:
    """A write over keys of several groups, run ahead of the log on their leader.

    The command's handler runs against this draft: it reads the groups' keyspaces
    and keeps its own changes aside, in ``changes`` (key -> (value, expire_at),
    value None for a deletion). Those exact values are then proposed to each key's
    group (``respkv.put``), so apply stays a pure function of the entry."""

    __slots__ = ("changes", "now", "owner")

    def __init__(self, owner: Callable[[bytes], Keyspace], now: int) -> None:
        self.owner = owner
        self.now = now
        self.changes: dict[bytes, tuple[object | None, int | None]] = {}

    def _current(self, key: bytes) -> tuple[object | None, int | None]:
        if key in self.changes:
            return self.changes[key]
        keyspace = self.owner(key)
        value = keyspace.get_for_read(key, self.now)
        return value, keyspace.ttl_ms(key) if value is not None else None

    def get_for_write(self, key: bytes, now: int) -> object | None:
        return self._current(key)[0]

    get_for_read = get_for_write

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
