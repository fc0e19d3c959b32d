"""The replicated state machine: log entries in, keyspace changes and replies out.

A log entry's data is one client command with the leader's clock in front
(respkv.state.entry). Apply is a pure function of (keyspace, entry): the time
every node uses for expiry is the one in the entry, so every node ends in the
same state. What a command does is not known here: the state machine is given
the function that runs one (``ApplyCommand``), as the command table makes it.

The seam the replication layer uses is small, as hashicorp/raft's FSM: apply,
snapshot, restore; plus persist (write what was applied to the durable store).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from respkv.protocol.reply import Reply, RespError
from respkv.raft.types import Entry, EntryKind
from respkv.state.codec import (
    CodecError,
    all_item_records,
    decode_value,
    encode_header,
    item_record,
    load_items,
)
from respkv.state.entry import BadEntry, decode_command
from respkv.state.keyspace import Keyspace
from respkv.state.values import Collection
from respkv.storage.store import (
    Record,
    StateStore,
    StoreError,
    StoreFormatError,
    read_system,
    scan_file,
)

logger = logging.getLogger(__name__)

# Applied entries are written to the store on a timer (the driver calls
# ``persist``), or at once when this many keys are waiting.
PERSIST_DIRTY_KEYS = 50_000

# Runs one write command against the keyspace at the entry's time; errors are replies.
ApplyCommand = Callable[[Keyspace, list[bytes], int], Reply]


class BadSnapshot(Exception):
    """A snapshot file that is not a whole, well-formed copy of a state store."""


def decode_records(
    records: Iterable[Record],
) -> Iterator[tuple[bytes, tuple[object, int | None]]]:
    """The store's records as (key, (value, expire_at)), a collection with its members
    gathered from their item records; raises CodecError."""
    collections: dict[bytes, tuple[Collection, int | None]] = {}
    items: dict[bytes, list[tuple[bytes, bytes]]] = {}
    for key, item, blob in records:
        if item is not None:
            items.setdefault(key, []).append((item, blob))
            continue
        value, expire_at = decode_value(blob)
        if isinstance(value, Collection):  # its members may still be on their way
            collections[key] = (value, expire_at)
        else:
            yield key, (value, expire_at)
    for key, (value, expire_at) in collections.items():
        load_items(key, value, items.pop(key, ()))
        yield key, (value, expire_at)
    if items:
        raise CodecError(f"members stored for {len(items)} keys that do not exist")


@dataclass(slots=True)
class StoreChanges:
    """What to write to the store to bring it up to the keyspace."""

    upserts: dict[bytes, bytes]  # key -> value record (a collection's header)
    deletes: list[bytes]
    items: dict[tuple[bytes, bytes], bytes | None]  # (key, item) -> item record, None: delete
    cleared: set[bytes]  # keys whose item records all go first
    system: dict[str, bytes]  # the system records, when they changed


def take_changes(keyspace: Keyspace) -> StoreChanges:
    """The changes since the last call, encoded; the keyspace then counts them as stored."""
    system = dict(keyspace.system) if keyspace.system_changed else {}
    keyspace.system_changed = False
    changed, deletes = keyspace.take_dirty()
    cleared = keyspace.take_cleared()
    upserts: dict[bytes, bytes] = {}
    items: dict[tuple[bytes, bytes], bytes | None] = {}
    for key, (value, expire_at) in changed.items():
        upserts[key] = encode_header(value, expire_at)
        if isinstance(value, Collection):
            if value.rewrite:
                cleared.add(key)
                for item, record in all_item_records(key, value):
                    items[key, item] = record
            else:
                for member in value.changed:
                    item, found = item_record(key, value, member)
                    items[key, item] = found
            value.mark_stored()
    return StoreChanges(upserts, deletes, items, cleared, system)


def all_changes(keyspace: Keyspace) -> StoreChanges:
    """The whole keyspace as changes to an empty store."""
    upserts: dict[bytes, bytes] = {}
    items: dict[tuple[bytes, bytes], bytes | None] = {}
    for key, value in keyspace.data.items():
        upserts[key] = encode_header(value, keyspace.expires.get(key))
        if isinstance(value, Collection):
            for item, record in all_item_records(key, value):
                items[key, item] = record
            value.mark_stored()
    keyspace.dirty.clear()
    keyspace.cleared.clear()
    keyspace.system_changed = False
    return StoreChanges(upserts, [], items, set(), dict(keyspace.system))


class StateMachine:
    """The keyspace plus the durable store it is written through, per group."""

    def __init__(self, keyspace: Keyspace, store: StateStore,
                 apply_command: ApplyCommand) -> None:
        self.keyspace = keyspace
        self.store = store
        self.apply_command = apply_command
        applied_index, applied_term, records = store.scan()
        keyspace.load(decode_records(records))
        keyspace.load_system(store.system())
        self.applied_index = applied_index
        self.applied_term = applied_term
        self.persisted_index = applied_index
        self.store_failed = False
        self.paused = False  # set while the store is being replaced by a snapshot

    def apply(self, entries: Sequence[Entry]) -> list[Reply]:
        """Apply committed entries in order, in memory; ``persist`` writes them out.

        The store may lag what is applied: the WAL holds every committed entry
        and a restart replays the ones after the store's applied index.
        """
        replies: list[Reply] = []
        db = self.keyspace
        apply_command = self.apply_command
        for entry in entries:
            if entry.index <= self.applied_index:
                replies.append(None)  # already in the store: replay after a restart
                continue
            if entry.kind is EntryKind.NORMAL and entry.data:
                try:
                    now_ms, args = decode_command(entry.data)
                except BadEntry:  # the same bytes on every node: skipped everywhere
                    logger.error("undecodable log entry", extra={"index": entry.index})
                    replies.append(RespError("ERR undecodable log entry"))
                else:
                    replies.append(apply_command(db, args, now_ms))
            else:
                replies.append(None)
            self.applied_index, self.applied_term = entry.index, entry.term
        if len(db.dirty) >= PERSIST_DIRTY_KEYS:
            self.persist()
        return replies

    def persist(self) -> None:
        """Queue the keys changed since the last call, with the applied index, as
        one store transaction (the store's own thread commits it)."""
        if self.paused or self.store_failed or (
            self.persisted_index == self.applied_index and not self.keyspace.dirty
            and not self.keyspace.system_changed
        ):
            return
        changes = take_changes(self.keyspace)
        try:
            self.store.write_batch(changes.upserts, changes.deletes, self.applied_index,
                                   self.applied_term, changes.items, changes.cleared,
                                   changes.system)
        except StoreError as error:
            # This batch, or an earlier one still in flight, did not make it (a full
            # disk): the store is intact but behind. rebuild_store() catches it up.
            logger.error("state store write failed, will rebuild it: %s", error)
            self.store_failed = True
            return
        self.persisted_index = self.applied_index

    def rebuild_store(self) -> None:
        """Write the whole keyspace to a fresh file and swap it in atomically: after
        a failed write we no longer know which changed keys reached the store."""
        path = self.store.path
        fresh_path = path.with_name(path.name + ".rebuild")
        for leftover in (fresh_path, Path(f"{fresh_path}-wal"), Path(f"{fresh_path}-shm")):
            leftover.unlink(missing_ok=True)
        fresh = StateStore(fresh_path)
        try:
            try:
                changes = all_changes(self.keyspace)
                fresh.write_batch(changes.upserts, (), self.applied_index, self.applied_term,
                                  changes.items, system=changes.system)
                fresh.flush()
            finally:
                fresh.close()
            self.store.restore_from(fresh_path)
        except BaseException:
            # A copy left half-written would keep the space it took (and a full disk full).
            for leftover in (fresh_path, Path(f"{fresh_path}-wal"), Path(f"{fresh_path}-shm")):
                leftover.unlink(missing_ok=True)
            raise
        self.persisted_index = self.applied_index
        self.store_failed = False
        logger.info("state store rebuilt", extra={"applied": self.applied_index})

    # -- snapshots ---------------------------------------------------------

    def snapshot(self, dest: Path) -> tuple[int, int]:
        """Write a durable copy of the persisted state to ``dest``; the (index, term) it
        covers. Runs beside apply (the store copies its committed file): for a worker
        thread, after a ``persist()`` on the loop."""
        return self.store.snapshot_to(dest)

    @staticmethod
    def check_snapshot(path: Path) -> tuple[int, int]:
        """The (index, term) a snapshot file covers, once every record in it has been
        read and decoded; raises BadSnapshot. A snapshot is a file a peer sends:
        nothing replaces the state before it passes."""
        try:
            index, term, records = scan_file(path)
            with closing(records):  # here: its connection belongs to this thread
                for _ in decode_records(records):
                    pass
            read_system(path)
        except (StoreFormatError, CodecError, OSError) as error:
            raise BadSnapshot(f"{path.name}: {error}") from None
        return index, term

    def pause(self) -> None:
        """Stop writing to the store until ``restore``: its file is about to be replaced."""
        self.paused = True

    def flush(self) -> None:
        """Block until everything queued to the store is committed."""
        self.store.flush()

    def restore(self, snapshot: Path) -> None:
        """Replace the whole state by a snapshot's (the file is moved into place)."""
        try:
            self.store.restore_from(snapshot)
            self.applied_index, self.applied_term, records = self.store.scan()
            self.persisted_index = self.applied_index
            self.keyspace.load(decode_records(records))
            self.keyspace.load_system(self.store.system())
        finally:
            self.paused = False

    def close(self, persist: bool = True) -> None:
        """Write out what is applied (unless told not to: a failed group's memory may
        hold half an apply), then close the store (errors are logged: the log holds
        everything the store may lack, and a restart replays it)."""
        try:
            if persist:
                self.persist()
            if not self.store_failed:
                self.store.flush()
        except (OSError, StoreError) as error:
            logger.error("state store not flushed at shutdown: %s", error)
        finally:
            try:
                self.store.close()
            except (OSError, StoreError) as error:
                logger.error("state store not closed cleanly: %s", error)
