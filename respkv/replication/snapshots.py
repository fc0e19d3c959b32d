"""Snapshots of one group: taken to bound the log, sent to followers it no longer
reaches, installed when one arrives.

The state machine makes and restores them (its snapshot/restore seam); this
module decides when, names the files, keeps their meta (index, term and
membership) beside them in ``meta.json``, and compacts the log behind them.

On disk, in the group's ``snap/``: ``snap-<index>.sqlite`` (the latest only),
``meta.json``, and snapshots being received (``incoming-*``, ``received-*``: left
over after a crash, they are deleted at start).

A snapshot sent names the addresses of its members in its manifest; a snapshot
received teaches the address book those, for its members only.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from respkv.background import spawn
from respkv.config import Config
from respkv.faults import CrashPoint, Faults
from respkv.memtrim import give_back_free_memory
from respkv.raft.core import RaftCore
from respkv.raft.messages import ConfState, Message, SnapshotMeta
from respkv.replication.addresses import AddressBook
from respkv.replication.peerauth import RefusalLog
from respkv.state.machine import BadSnapshot, StateMachine
from respkv.storage.files import CorruptFileError, read_json, write_json_atomically
from respkv.storage.nodelog import GroupLog
from respkv.storage.store import NoRoom, StoreError
from respkv.storage.wal import DiskFull

if TYPE_CHECKING:
    from respkv.replication.transport import Transport

logger = logging.getLogger(__name__)


def read_meta(snap_dir: Path) -> SnapshotMeta | None:
    """The meta of the latest snapshot taken or installed, if any."""
    path = snap_dir / "meta.json"
    if not path.exists():
        return None
    fields = read_json(path)
    if not isinstance(fields, dict):
        raise CorruptFileError(path, "not a JSON object")
    try:
        conf = ConfState(tuple(fields["voters"]), tuple(fields["learners"]))
        return SnapshotMeta(fields["index"], fields["term"], conf)
    except (KeyError, TypeError) as error:
        raise CorruptFileError(path, f"missing or wrong field {error}") from None


class Snapshots:
    def __init__(self, name: str, snap_dir: Path, core: RaftCore, machine: StateMachine,
                 wal: GroupLog, transport: Transport, book: AddressBook, config: Config,
                 snapshot_index: int, wake: Callable[[], None],
                 learn_peers: Callable[[], None], step: Callable[[Message], None]) -> None:
        self.name = name
        self.dir = snap_dir
        self.core = core
        self.machine = machine
        self.wal = wal
        self.transport = transport
        self.book = book
        self.config = config
        self.faults: Faults = config.faults
        self.index = snapshot_index  # of the latest snapshot
        self.wake = wake  # the loop has work (a compaction, a snapshot report)
        self.learn_peers = learn_peers  # connect to the members a snapshot's book names
        self.step = step  # hand a message to the core
        self.taking = False
        self.saved_at = 0.0  # wall-clock time of the latest snapshot taken (LASTSAVE)
        self.bytes_since = 0  # log bytes applied since the latest: snapshots bound memory too
        self.incoming: dict[int, Path] = {}  # received, by index, until installed
        self.pending_compaction: tuple[int, int] | None = None
        self.store_lock = asyncio.Lock()  # taking and installing, one at a time
        self.refusals = RefusalLog(logger, message="refused a snapshot")
        for stale in (*snap_dir.glob("incoming-*"), *snap_dir.glob("received-*")):
            stale.unlink(missing_ok=True)  # a reception a crash cut short: never stepped

    def path(self, index: int) -> Path:
        return self.dir / f"snap-{index:020d}.sqlite"

    # -- taking ----------------------------------------------------------------

    def maybe_take(self, applied_index: int) -> None:
        """Take one when the log since the last has grown past the configured bounds,
        or when this group's old entries keep the shared WAL from shrinking."""
        if self.taking or self.machine.store_failed:
            return  # a failed store cannot be copied: its rebuild (DiskGuard) comes first
        entries = applied_index - self.index
        if (entries < self.config.snapshot_entries
                and self.bytes_since < self.config.snapshot_bytes
                and not (entries and self.wal.holds_oldest_segment())):
            return
        self.taking = True
        spawn(self.take())

    async def take(self) -> SnapshotMeta | None:
        """Copy the state machine to a snapshot file and compact the log behind it."""
        self.taking = True
        try:
            tmp = self.dir / "taking.sqlite.tmp"
            tmp.unlink(missing_ok=True)
            async with self.store_lock:  # never beside an install
                self.machine.persist()
                if self.machine.store_failed:  # that write found the store failed
                    return None
                index, _term = await asyncio.to_thread(self.machine.snapshot, tmp)
            if index <= self.index:  # nothing applied since the latest: it is up to date
                tmp.unlink(missing_ok=True)
                self.saved_at = time.time()
                return None
            meta = self.core.snapshot_meta(index)
            self.faults.crash_point(CrashPoint.SNAPSHOT_TAKEN_BEFORE_RENAME)
            tmp.replace(self.path(index))
            self.faults.crash_point(CrashPoint.SNAPSHOT_TAKEN_BEFORE_META)
            self._now_latest(meta)
            self.core.snapshot_taken(meta)
            give_back_free_memory()  # the log's compacted entries
            self.pending_compaction = (meta.index, meta.term)
            self.saved_at = time.time()
            self.wake()
            logger.info("snapshot taken", extra={"index": index, "group": self.name})
            return meta
        except NoRoom:
            return None  # retried at a later tick; DiskGuard logs the lack of room
        except Exception:
            logger.exception("snapshot failed", extra={"group": self.name})
            return None
        finally:
            self.taking = False

    def _now_latest(self, meta: SnapshotMeta) -> None:
        write_json_atomically(self.dir / "meta.json", {
            "index": meta.index, "term": meta.term,
            "voters": list(meta.conf_state.voters), "learners": list(meta.conf_state.learners),
        })
        keep = self.path(meta.index)
        for path in self.dir.glob("snap-*.sqlite"):
            if path != keep:
                path.unlink(missing_ok=True)
        self.index = meta.index
        self.bytes_since = 0

    def compact_if_due(self) -> None:
        """Compact the log behind the latest snapshot; called by the loop between two
        Readies (the WAL is shared and not thread-safe)."""
        if self.pending_compaction is None:
            return
        index, term = self.pending_compaction
        self.pending_compaction = None
        try:
            self.faults.crash_point(CrashPoint.COMPACT_BEFORE)
            self.wal.compact(index, term)
            self.faults.crash_point(CrashPoint.COMPACT_AFTER)
        except DiskFull as error:
            logger.error("log compaction postponed: %s", error)
            self.pending_compaction = (index, term)

    # -- sending -----------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Stream the snapshot a MsgSnap names to its follower, then the message."""
        meta = message.snapshot
        assert meta is not None
        path = self.path(meta.index)
        ok = False
        try:
            if not path.exists():
                logger.info("no snapshot file at %d; taking a new one", meta.index)
                if not self.taking:
                    await self.take()
                return
            members = {node: addresses.to_dict() for node in meta.conf_state.voters
                       + meta.conf_state.learners
                       if (addresses := self.book.get(node)) is not None}
            logger.info("sending snapshot", extra={"peer": message.to, "index": meta.index})
            await self.transport.send_snapshot(message, path, self.config.snapshot_chunk_bytes,
                                               members)
            ok = True
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError,
                KeyError) as error:
            logger.warning("snapshot to %s failed: %s", message.to, error)
        finally:
            self.core.report_snapshot(message.to, ok)
            self.wake()

    # -- receiving and installing --------------------------------------------------

    def receive(self, message: Message, path: Path) -> None:
        """A snapshot file arrived with its MsgSnap: check it, keep it, step the message."""
        spawn(self._accept(message, path))

    async def _accept(self, message: Message, path: Path) -> None:
        meta = message.snapshot
        assert meta is not None
        try:
            covered = await asyncio.to_thread(self.machine.check_snapshot, path)
            if covered != (meta.index, meta.term):
                raise BadSnapshot(f"it covers {covered}, its message claims "
                                  f"{(meta.index, meta.term)}")
        except BadSnapshot as error:
            # Not stepped: the core never hears of it, and the leader sends again.
            self.refusals.refused(message.from_, str(error), peer=message.from_,
                                  group=self.name)
            path.unlink(missing_ok=True)
            return
        # the manifest's addresses (the transport put them in the context), of the
        # snapshot's members only, and never this node's own
        members = meta.conf_state
        learnt = {node: addresses for node, addresses in
                  AddressBook.parse(message.context).items()
                  if node in members and node != self.core.id}
        if learnt:
            self.book.merge(learnt)
            self.learn_peers()
        self.incoming[meta.index] = path
        self.step(message)

    async def install(self, meta: SnapshotMeta) -> None:
        """Replace the state machine by the received snapshot the core asks for."""
        path = self.incoming.pop(meta.index, None)
        if path is None:
            if self.machine.applied_index >= meta.index:
                return  # the same snapshot sent again and stepped twice: installed once
            raise RuntimeError(f"snapshot {meta.index} to install was not received")
        logger.info("installing snapshot", extra={"index": meta.index, "group": self.name})
        machine = self.machine
        async with self.store_lock:
            # The ticker's persist() must not write the old keyspace into the new
            # file: nothing may run between the restore and the reload, and no batch
            # may be queued while we wait for the copies.
            machine.pause()
            try:
                try:
                    await asyncio.to_thread(machine.flush)
                except StoreError as error:
                    # failed on a full disk, and not yet rebuilt: the snapshot replaces
                    # it whole, so what it lacks does not matter
                    logger.warning("state store failed, replaced by the snapshot: %s", error,
                                   extra={"group": self.name})
                # keep a copy to serve to others if we lead one day
                await asyncio.to_thread(_copy, path, self.path(meta.index))
                self.faults.crash_point(CrashPoint.INSTALL_BEFORE_RESTORE)
                machine.restore(path)
                self.faults.crash_point(CrashPoint.INSTALL_AFTER_RESTORE)
            finally:
                machine.paused = False
        self._now_latest(meta)
        self.faults.crash_point(CrashPoint.INSTALL_BEFORE_COMPACT)
        self.wal.compact(meta.index, meta.term)
        for old in self.incoming.values():
            old.unlink(missing_ok=True)
        self.incoming.clear()


def _copy(src: Path, dest: Path) -> None:
    tmp = dest.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
