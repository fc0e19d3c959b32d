"""The node's WAL shared by its Raft groups: one fsync per loop iteration for all.

Each group's driver appends to its own ``GroupLog`` view and awaits ``sync_soon()``.
The first request of an event-loop iteration schedules one ``WAL.sync`` at the end
of the callbacks already queued, so every group whose turn runs in the same
iteration rides on the same write and fsync. The sync runs on the loop, as Redis'
appendfsync always does: a thread hop costs more CPU than the fsync, and while a
thread holds the disk, no group may append (the WAL has no lock).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from respkv.raft.types import Entry, HardState
from respkv.storage.wal import WAL, WalState

logger = logging.getLogger(__name__)


# Disk the log keeps for itself (WAL.keep_reserve): a few loop turns of records.
RESERVE_BYTES = 1 << 20


class NodeLog:
    def __init__(self, directory: Path, reserve: int = RESERVE_BYTES) -> None:
        self.wal = WAL.open(directory)
        self.reserve = reserve
        if not self.wal.keep_reserve(reserve):
            logger.warning("WAL %s: no room for the log's reserve (%d bytes)", directory,
                           reserve)
        self.fsync_delay = 0.0  # seconds added to every fsync: see slow_down
        self.fsyncs = 0
        self._waiters: list[asyncio.Future[None]] = []
        # called right before each fsync, which blocks the loop (the node sends the
        # Raft frames already queued: see Transport.flush)
        self.before_sync: Callable[[], None] | None = None
        # told each loop-turn fsync's duration in seconds (LATENCY, metrics): the layer
        # above listens without this one knowing it
        self.after_sync: Callable[[float], None] | None = None

    def view(self, group: int) -> GroupLog:
        return GroupLog(self, group)

    def sync_soon(self) -> asyncio.Future[None]:
        """Resolves once everything appended so far, by any group, is on disk."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._waiters:
            loop.call_soon(self._sync)
        self._waiters.append(future)
        return future

    def sync(self) -> None:
        if self.wal.sync():
            self.fsyncs += 1

    def slow_down(self, delay: float) -> None:
        """Add ``delay`` seconds to every fsync, to play a slow disk (DEBUG FSYNC-DELAY);
        0 restores the plain sync, so the normal path carries no check."""
        self.fsync_delay = delay
        if delay:
            self.sync = self._slow_sync  # type: ignore[method-assign]
        else:
            self.__dict__.pop("sync", None)

    def _slow_sync(self) -> None:
        time.sleep(self.fsync_delay)
        NodeLog.sync(self)

    def _sync(self) -> None:
        waiters, self._waiters = self._waiters, []
        if self.before_sync is not None:
            try:
                self.before_sync()
            except Exception:  # sending is best effort; the fsync must happen
                logger.exception("before_sync hook failed")
        started = time.perf_counter()
        try:
            self.sync()
        except BaseException as error:  # DiskFull: each group retries on its own
            for future in waiters:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        if self.after_sync is not None:
            self.after_sync(time.perf_counter() - started)
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        self.wal.close()


class GroupLog:
    """One group's log in the node's WAL."""

    __slots__ = ("group", "node_log", "wal")

    def __init__(self, node_log: NodeLog, group: int) -> None:
        self.node_log = node_log
        self.wal = node_log.wal
        self.group = group

    def append(self, entries: list[Entry]) -> None:
        self.wal.append(entries, self.group)

    def set_hard_state(self, hs: HardState) -> None:
        self.wal.set_hard_state(hs, self.group)

    def load(self) -> WalState:
        return self.wal.load(self.group)

    def last_index(self) -> int:
        return self.wal.last_index(self.group)

    def snapshot_point(self) -> tuple[int, int]:
        return self.wal.snapshot_point(self.group)

    def vote_floor(self) -> tuple[int, int] | None:
        return self.wal.vote_floor(self.group)

    def disk_bytes(self) -> int:
        """The whole node's log (every group's) on disk."""
        return self.wal.disk_bytes()

    def reserve_bytes(self) -> int:
        return self.node_log.reserve

    @property
    def reserve_releases(self) -> int:
        return self.wal.reserve_releases

    def reserve_missing(self) -> bool:
        return bool(self.node_log.reserve) and not self.wal.has_reserve()

    def take_back_reserve(self) -> bool:
        """After a full disk: hold the log's reserve again; False while there is no room."""
        return self.wal.keep_reserve(self.node_log.reserve)

    def compact(self, snapshot_index: int, snapshot_term: int) -> None:
        self.wal.compact(snapshot_index, snapshot_term, self.group)

    def holds_oldest_segment(self) -> bool:
        return self.wal.holds_oldest_segment(self.group)

    def sync(self) -> None:
        self.node_log.sync()

    def sync_soon(self) -> asyncio.Future[None]:
        return self.node_log.sync_soon()
