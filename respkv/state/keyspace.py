"""The in-memory keyspace: the hot read path of the state machine.

Values live in ``data``; absolute expiry times (ms since the epoch) in
``expires``, as Redis keeps them. The durable copy lives in SQLite
(respkv.storage.store): every key a write touches is remembered in ``dirty``,
and the state machine writes those out now and then (``persist``). A collection's
members are stored as rows of their own: ``cleared`` remembers the keys whose stored
members must all go (the collection was deleted or replaced).

SCAN pages through ``buckets``: every key sits in one of ``BUCKETS`` tuples, by a
stable hash of the key, kept up to date by every insert and delete. A SCAN
cursor is a bucket number, so a page costs its buckets' keys, not a pass over
the keyspace. KEYS reads a ``KeySnapshot`` in slices: the keys at one instant,
kept by copy on write.

Memory: ``used`` is an estimate of the bytes the keys take, kept up to date by every
insert, change and delete (a few integer operations each): per key its length, its
string value's length or its collection's ``nbytes``, plus ``KEY_OVERHEAD``. It is
what ``maxmemory`` is compared with (RSS is not: CPython seldom gives memory back).
While an LRU or LFU eviction policy is on, ``access`` holds a logical clock reading
per key, set by the reads this node serves and by every write: the leader's copy
chooses which keys to evict (respkv.state.eviction).

Two ways to look a key up, because expiry is judged against a clock:

- ``get_for_read(key, now)``: local reads. An expired key is absent, but the
  read does not delete it (deletion is a write: only the log may do it).
- ``get_for_write(key, now)``: inside ``apply``, where ``now`` is the leader
  time stored in the entry. An expired key is deleted there, identically on
  every node, so apply stays a pure function of (state, entry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol
from zlib import crc32

from respkv.state.values import Collection, HashValue, ListValue, SetValue, ZSetValue

# Bytes counted per key on top of its own length and its value's: a dict entry, the
# key's and a string value's bytes headers, its share of a SCAN bucket (CPython).
KEY_OVERHEAD = 96


def key_cost(key: bytes, value: object) -> int:
    """What a key counts for in ``used``, as it would be counted now."""
    if type(value) is bytes:
        return KEY_OVERHEAD + len(key) + len(value)
    assert isinstance(value, Collection)
    return KEY_OVERHEAD + len(key) + value.nbytes


def _counted(key: bytes, value: object) -> int:
    """What a key was counted for when last added to ``used``."""
    if type(value) is bytes:
        return KEY_OVERHEAD + len(key) + len(value)
    assert isinstance(value, Collection)
    return KEY_OVERHEAD + len(key) + value.accounted


def _count(key: bytes, value: object) -> int:
    """``key_cost``, remembered on a collection as what was counted."""
    if type(value) is bytes:
        return KEY_OVERHEAD + len(key) + len(value)
    assert isinstance(value, Collection)
    value.accounted = nbytes = value.nbytes
    return KEY_OVERHEAD + len(key) + nbytes

# The Python types a value may have, and the name TYPE reports for each.
TYPE_NAMES: dict[type, str] = {
    bytes: "string", HashValue: "hash", ListValue: "list", SetValue: "set", ZSetValue: "zset",
}


# SCAN's buckets. Fixed, so a cursor (a bucket number) never changes meaning and a
# scan needs no rehashing: 2M keys are ~15 a bucket, and a page is whole buckets.
# A new key's insert copies its bucket (see _index): more buckets would make that
# cheaper and cost more memory per key (a tuple header per bucket).
BUCKETS = 1 << 17
_BUCKET_MASK = BUCKETS - 1


def bucket_of(key: bytes) -> int:
    """A key's SCAN bucket. CRC32, not Python's per-process hash: a cursor stays
    good on another node and after a restart."""
    return crc32(key) & _BUCKET_MASK


class KeyReader(Protocol):
    """Keys to read a slice at a time (KEYS over millions of keys)."""

    def read(self, limit: int) -> list[bytes]:
        """About ``limit`` more keys (or a few more); [] once all were read."""

    def close(self) -> None:
        """Done reading (also when given up early)."""


class KeySnapshot:
    """The live keys of a keyspace at one instant, read later bucket by bucket,
    whatever is written meanwhile: copy on write, not a copy of every key up front
    (2M references copied, and later freed, stall the loop ~150 ms each). Before a
    write changes a key of a bucket not yet read, the keyspace has the snapshot keep
    that bucket's keys as they were; the reader takes the others as they are."""

    __slots__ = ("keyspace", "next", "now", "saved")

    def __init__(self, keyspace: Keyspace, now: int) -> None:
        self.keyspace = keyspace
        self.now = now
        self.next = 0  # the buckets below it are read already
        self.saved: dict[int, list[bytes]] = {}  # unread buckets as they were, by number
        keyspace.snapshots.append(self)

    def save(self, bucket: int) -> None:
        """A write is about to change a key in ``bucket``."""
        if bucket >= self.next and bucket not in self.saved:
            self.saved[bucket] = self.keyspace.bucket_keys(bucket, self.now)

    def save_all(self) -> None:
        """Every key is about to change (FLUSHALL, a snapshot installed)."""
        for bucket in range(self.next, BUCKETS):
            if self.keyspace.occupied[bucket]:
                self.save(bucket)
        self.close()  # everything left to read is in ``saved`` now

    def read(self, limit: int) -> list[bytes]:
        keys: list[bytes] = []
        space = self.keyspace
        saved, occupied, bucket_keys = self.saved, space.occupied, space.bucket_keys
        bucket, now = self.next, self.now
        live = self in space.snapshots  # else every unread bucket was saved
        while bucket < BUCKETS and len(keys) < limit:
            found = saved.pop(bucket, None)
            if found is not None:
                keys += found
            elif live and occupied[bucket]:
                keys += bucket_keys(bucket, now)
            bucket += 1
        self.next = bucket
        return keys

    def close(self) -> None:
        snapshots = self.keyspace.snapshots
        if self in snapshots:
            snapshots.remove(self)


class KeyList:
    """Keys listed up front: a KeyReader over a small or drafted keyspace."""

    __slots__ = ("keys",)

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys

    def read(self, limit: int) -> list[bytes]:
        keys, self.keys = self.keys[:limit], self.keys[limit:]
        return keys

    def close(self) -> None:
        self.keys = []


class KeyspaceView(Protocol):
    """What a read command may do with a keyspace: a group's (Keyspace), several
    groups' (KeyspaceUnion), or a draft of a write over several (KeyspaceDraft)."""

    def get_for_read(self, key: bytes, now: int) -> object | None: ...

    def exists_for_read(self, key: bytes, now: int) -> bool: ...

    def ttl_ms(self, key: bytes) -> int | None: ...

    def live_count(self, now: int) -> int: ...

    def live_keys(self, now: int) -> Iterator[bytes]: ...

    def __len__(self) -> int:
        """How many keys, expired ones included (a size, for choosing how to list them)."""

    def key_readers(self, now: int) -> list[KeyReader]:
        """The live keys at ``now``, to read in slices while writes go on."""

    def next_bucket(self, start: int) -> int:
        """The first SCAN bucket from ``start`` on that holds a key; BUCKETS if none."""

    def bucket_keys(self, bucket: int, now: int) -> list[bytes]:
        """The live keys in one SCAN bucket."""


class WritableKeyspace(KeyspaceView, Protocol):
    """What a write command may do: the above, and change keys (inside apply)."""

    def get_for_write(self, key: bytes, now: int) -> object | None: ...

    def is_expired(self, key: bytes, now: int) -> bool: ...

    def set(self, key: bytes, value: object, expire_at: int | None = None) -> None: ...

    def set_keep_ttl(self, key: bytes, value: object) -> None: ...

    def set_expire(self, key: bytes, expire_at: int | None) -> None: ...

    def touch(self, key: bytes) -> None:
        """The collection at ``key`` was changed in place, through its own methods."""

    def delete(self, key: bytes) -> bool: ...

    def clear(self) -> None: ...


class Watch:
    """A key watched by a connection (WATCH, or a blocked pop waiting for data):
    ``touched`` once any change reaches the key, and ``wake`` called then."""

    __slots__ = ("key", "touched", "wake")

    def __init__(self, key: bytes, wake: Callable[[], None] | None = None) -> None:
        self.key = key
        self.touched = False
        self.wake = wake


class Keyspace:
    __slots__ = ("access", "buckets", "cleared", "clock", "data", "dirty", "evicted", "expires",
                 "occupied", "snapshots", "system", "system_changed", "system_version", "used",
                 "watched")

    def __init__(self) -> None:
        self.data: dict[bytes, object] = {}
        self.expires: dict[bytes, int] = {}
        self.dirty: set[bytes] = set()
        self.cleared: set[bytes] = set()
        self.watched: dict[bytes, list[Watch]] = {}  # WATCHes of this node's connections
        # Replicated records beside the keys, which no key command sees (the ACL users):
        # name -> bytes, written and snapshotted with the data. The version counts every
        # change (a write or a load), so readers notice one with a single comparison.
        self.system: dict[str, bytes] = {}
        self.system_changed = False  # not yet in the store
        self.system_version = 0
        self.snapshots: list[KeySnapshot] = []  # KEYS being read in slices
        self.used = 0  # the memory estimate of the keys (see the module's docstring)
        self.evicted = 0  # keys deleted by eviction entries applied here
        self.access: dict[bytes, int] | None = None  # key -> clock at its last use (LRU)
        self.clock = 0
        self._clear_buckets()

    def __len__(self) -> int:
        return len(self.data)

    # -- lookups ---------------------------------------------------------

    def is_expired(self, key: bytes, now: int) -> bool:
        at = self.expires.get(key)
        return at is not None and at <= now

    def get_for_read(self, key: bytes, now: int) -> object | None:
        value = self.data.get(key)
        if value is not None:
            if self.expires and self.is_expired(key, now):
                return None
            if self.access is not None:
                self.clock += 1
                self.access[key] = self.clock
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
        return len(self.data) - sum(map(now.__ge__, self.expires.values()))  # C speed

    def ttl_ms(self, key: bytes) -> int | None:
        return self.expires.get(key)

    def live_keys(self, now: int) -> Iterator[bytes]:
        """Keys not yet expired at ``now`` (a snapshot: safe to mutate meanwhile)."""
        if not self.expires:
            return iter(list(self.data))
        expires = self.expires
        return iter([k for k in self.data if (at := expires.get(k)) is None or at > now])

    def key_readers(self, now: int) -> list[KeyReader]:
        return [KeySnapshot(self, now)]

    def next_bucket(self, start: int) -> int:
        found = self.occupied.find(1, start) if start < BUCKETS else -1
        return BUCKETS if found < 0 else found

    def bucket_keys(self, bucket: int, now: int) -> list[bytes]:
        keys = self.buckets[bucket]
        if keys is None:
            return []
        if not self.expires:
            return list(keys)  # a list: callers add to it
        expires = self.expires
        return [k for k in keys if (at := expires.get(k)) is None or at > now]

    def track_access(self, on: bool) -> None:
        """Keep (or stop keeping) ``access``: while an LRU/LFU policy is on. Keys not
        used since count as the least recently used."""
        if not on:
            self.access = None
        elif self.access is None:
            self.access = {}

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
        self._store(key, value)
        if expire_at is None:
            self.expires.pop(key, None)
        else:
            self.expires[key] = expire_at

    def set_keep_ttl(self, key: bytes, value: object) -> None:
        self._store(key, value)

    def _store(self, key: bytes, value: object) -> None:
        """``value`` at ``key``, with its accounting, its SCAN bucket and its watches."""
        if self.snapshots:
            self._save(key)
        if isinstance(value, Collection):
            value.mark_rewrite()  # new to this key: none of its rows are stored under it
        old = self.data.get(key)
        # inlined for strings: this is every SET's path
        cost = KEY_OVERHEAD + len(value) if type(value) is bytes else _count(key, value) - len(key)
        if old is not None:
            if type(old) is bytes:
                cost -= KEY_OVERHEAD + len(old)
            else:
                cost -= _counted(key, old) - len(key)
                if old is not value:
                    self.cleared.add(key)
        else:
            cost += len(key)
            self._index(key)
        self.used += cost
        if self.access is not None:
            self.clock += 1
            self.access[key] = self.clock
        if self.watched:
            self._touch_watches(key)
        self.data[key] = value
        self.dirty.add(key)

    def touch(self, key: bytes) -> None:
        value = self.data.get(key)
        if isinstance(value, Collection) and value.nbytes != value.accounted:
            self.used += value.nbytes - value.accounted
            value.accounted = value.nbytes
        if self.access is not None and value is not None:
            self.clock += 1
            self.access[key] = self.clock
        if self.watched:
            self._touch_watches(key)
        self.dirty.add(key)

    def set_expire(self, key: bytes, expire_at: int | None) -> None:
        if self.snapshots:
            self._save(key)
        if self.watched:
            self._touch_watches(key)
        if expire_at is None:
            self.expires.pop(key, None)
        else:
            self.expires[key] = expire_at
        self.dirty.add(key)

    def delete(self, key: bytes) -> bool:
        if self.snapshots:
            self._save(key)
        value = self.data.pop(key, None)
        if value is None:
            return False
        self.used -= _counted(key, value)
        if self.access is not None:
            self.access.pop(key, None)
        self._unindex(key)
        if type(value) is not bytes:
            self.cleared.add(key)
        if self.watched:
            self._touch_watches(key)
        self.expires.pop(key, None)
        self.dirty.add(key)
        return True

    def clear(self) -> None:
        for snapshot in list(self.snapshots):
            snapshot.save_all()
        self._touch_all_watches()
        self.dirty.update(self.data)
        self.cleared.update(key for key, value in self.data.items() if type(value) is not bytes)
        self.data.clear()
        self.expires.clear()
        self.used = 0
        if self.access is not None:
            self.access = {}
        self._clear_buckets()

    # -- SCAN's buckets ------------------------------------------------------

    def _clear_buckets(self) -> None:
        # Tuples, not lists: a tuple of bytes is untracked by the cyclic GC after its
        # first collection, while lists holding 2M keys add 250-400 ms to every full
        # collection that walks them (the GC policy's periodic one); no spare slots.
        self.buckets: list[tuple[bytes, ...] | None] = [None] * BUCKETS
        self.occupied = bytearray(BUCKETS)  # 1 where a bucket holds keys: skipped at C speed

    def _save(self, key: bytes) -> None:
        """Before ``key`` changes: the KEYS snapshots not past its bucket keep it as it is."""
        bucket = crc32(key) & _BUCKET_MASK
        for snapshot in self.snapshots:
            snapshot.save(bucket)

    def _index(self, key: bytes) -> None:
        """A key new to ``data``. ~11 bytes a key at 2M keys (a slot, a share of a
        tuple header and of ``buckets``); the bucket's keys are copied into its new
        tuple: ~2 us at 2M keys (15 keys a bucket), rising with keys per bucket."""
        at = crc32(key) & _BUCKET_MASK
        bucket = self.buckets[at]
        if bucket is None:
            self.buckets[at] = (key,)
            self.occupied[at] = 1
        else:
            self.buckets[at] = (*bucket, key)

    def _unindex(self, key: bytes) -> None:
        at = crc32(key) & _BUCKET_MASK
        bucket = self.buckets[at]
        assert bucket is not None, "a key missing from its SCAN bucket"
        if len(bucket) == 1:
            self.buckets[at] = None
            self.occupied[at] = 0
        else:
            i = bucket.index(key)
            self.buckets[at] = bucket[:i] + bucket[i + 1:]

    # -- WATCH -------------------------------------------------------------

    def watch(self, key: bytes, wake: Callable[[], None] | None = None) -> Watch:
        watch = Watch(key, wake)
        self.watched.setdefault(key, []).append(watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        watches = self.watched.get(watch.key)
        if watches is not None and watch in watches:
            watches.remove(watch)
            if not watches:
                del self.watched[watch.key]

    def _touch_watches(self, key: bytes) -> None:
        for watch in self.watched.get(key, ()):
            watch.touched = True
            if watch.wake is not None:
                watch.wake()

    def _touch_all_watches(self) -> None:
        for watches in self.watched.values():
            for watch in watches:
                watch.touched = True
                if watch.wake is not None:
                    watch.wake()

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

    def take_cleared(self) -> set[bytes]:
        """Keys whose stored members must all go, since the last call."""
        cleared, self.cleared = self.cleared, set()
        return cleared

    def set_system(self, name: str, value: bytes) -> None:
        """Inside apply: replace one system record."""
        self.system[name] = value
        self.system_changed = True
        self.system_version += 1

    def load_system(self, records: dict[str, bytes]) -> None:
        """The system records as stored (start-up, a snapshot installed)."""
        self.system = dict(records)
        self.system_changed = False
        self.system_version += 1

    def load(self, records: Iterable[tuple[bytes, tuple[object, int | None]]]) -> None:
        """Fill from the durable store's (key, (value, expire_at)) records."""
        for snapshot in list(self.snapshots):
            snapshot.save_all()
        self.data.clear()
        self.expires.clear()
        self.dirty.clear()
        self.cleared.clear()
        self._touch_all_watches()  # a snapshot replaced everything
        data, expires = self.data, self.expires
        used = 0
        for key, (value, expire_at) in records:
            data[key] = value
            used += _count(key, value)
            if expire_at is not None:
                expires[key] = expire_at
        self.used = used
        if self.access is not None:
            self.access = {}
        self._clear_buckets()
        grouped: dict[int, list[bytes]] = {}
        for key in data:
            grouped.setdefault(crc32(key) & _BUCKET_MASK, []).append(key)
        for at, keys in grouped.items():
            self.buckets[at] = tuple(keys)
            self.occupied[at] = 1


def type_name(value: object) -> str:
    return TYPE_NAMES.get(type(value), "none")
