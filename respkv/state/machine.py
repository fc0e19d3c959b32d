"""The replicated state machine: log entries in, keyspace changes and replies out.

A log entry's data is one client command, RESP-encoded with the leader's clock
in front: ``[now_ms, name, arg...]``. Apply is a pure function of (keyspace,
entry): the time every node uses for expiry is the one in the entry, so every
node ends in the same state (see respkv/commands/table.py for the contract).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import hiredis

from respkv.commands.table import COMMANDS
from respkv.protocol.reply import Reply, RespError
from respkv.raft.types import Entry, EntryKind
from respkv.state.keyspace import Keyspace
from respkv.storage.store import StateStore, StoreError

log = logging.getLogger(__name__)

# Applied batches are written to the store on a timer (the driver calls
# ``persist``), or at once when this many keys are waiting.
PERSIST_DIRTY_KEYS = 50_000


def encode_command(now_ms: int, args: Sequence[bytes]) -> bytes:
    return hiredis.pack_command((now_ms, *args))


_decoder = hiredis.Reader()  # one entry is always one whole frame: the reader ends empty


def decode_command(data: bytes) -> tuple[int, list[bytes]]:
    global _decoder
    _decoder.feed(data)
    try:
        frame = _decoder.gets()
    except hiredis.ProtocolError:
        frame = False
    if frame is False or _decoder.has_data():  # not exactly one frame: start clean
        _decoder = hiredis.Reader()
        raise ValueError("log entry is not one RESP frame")
    return int(frame[0]), frame[1:]


def apply_command(db: Keyspace, args: list[bytes], now_ms: int) -> Reply:
    """Run one write command; errors are replies, never exceptions."""
    command = COMMANDS.get(args[0].decode("latin-1").lower())
    if command is None or not command.is_write:
        return RespError(f"ERR cannot apply {args[0][:64]!r}")
    try:
        return command.handler(db, args, now_ms)
    except RespError as error:
        return error
    except Exception:  # a bug in a handler: same on every node, so log and go on
        log.exception("apply failed", extra={"command": args[0][:64]})
        return RespError("ERR internal error while applying the command")


class StateMachine:
    """The keyspace plus the durable store it is written through, per group."""

    def __init__(self, keyspace: Keyspace, store: StateStore) -> None:
        self.keyspace = keyspace
        self.store = store
        applied_index, applied_term, records = store.load()
        keyspace.load(records)
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
        for entry in entries:
            if entry.index <= self.applied_index:
                replies.append(None)  # already in the store: replay after a restart
                continue
            if entry.kind is EntryKind.NORMAL and entry.data:
                try:
                    now_ms, args = decode_command(entry.data)
                except (ValueError, TypeError, IndexError):  # same bytes on every node
                    log.error("undecodable log entry", extra={"index": entry.index})
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
        ):
            return
        upserts, deletes = self.keyspace.take_dirty()
        try:
            self.store.write_batch(upserts, deletes, self.applied_index, self.applied_term)
        except StoreError as error:
            # This batch, or an earlier one still in flight, did not make it (a full
            # disk): the store is intact but behind. rebuild_store() catches it up.
            log.error("state store write failed, will rebuild it: %s", error)
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
            db = self.keyspace
            records = {key: (value, db.expires.get(key)) for key, value in db.data.items()}
            fresh.write_batch(records, (), self.applied_index, self.applied_term)
            fresh.flush()
        finally:
            fresh.close()
        self.store.restore_from(fresh_path)
        self.keyspace.dirty.clear()
        self.persisted_index = self.applied_index
        self.store_failed = False
        log.info("state store rebuilt", extra={"applied": self.applied_index})

    def reload(self) -> None:
        """Re-read everything from the store (after a snapshot was installed)."""
        self.applied_index, self.applied_term, records = self.store.load()
        self.persisted_index = self.applied_index
        self.keyspace.load(records)
