"""One group's full-disk policy: refuse writes while the disk is (almost) full, keep
retrying the fsync of what is already in the log, resume once space is back.

Nothing that waits on an fsync (acknowledgements, votes) goes out before it
succeeds, so a full disk delays but never loses anything; the clients whose
writes are stuck are told at once that the outcome is unknown. A state store
that failed to write is rebuilt from memory once there is room again.

The room the log needs comes first. Writes resume as soon as min-free-disk is
free again; the store's rebuild (a whole copy of it) waits until the copy fits
with min-free-disk still free after it, and snapshots (a copy too) are not
taken while they would not fit either: otherwise the copy takes back the space
just freed and writes are refused again. Until then the log keeps everything
the store lacks (it is not compacted without a snapshot).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from respkv.raft.types import Entry
from respkv.replication.proposals import Proposals
from respkv.state.machine import StateMachine
from respkv.storage.nodelog import GroupLog
from respkv.storage.store import NoRoom, StoreError
from respkv.storage.wal import DiskFull

logger = logging.getLogger(__name__)

RETRY = 0.2  # seconds between fsync attempts on a full disk


class DiskGuard:
    def __init__(self, directory: Path, min_free: Callable[[], int], wal: GroupLog,
                 machine: StateMachine, proposals: Proposals) -> None:
        self.directory = directory
        self.min_free = min_free  # bytes; read each time (CONFIG SET may change it)
        self.wal = wal
        self.machine = machine
        self.proposals = proposals
        self.full = False  # writes are refused while set
        self.refused = 0  # writes refused for disk space, here and by the router
        self.rebuild_deferred = False
        self.rebuild_need = 0  # bytes free a rebuild waits for, after one ran out of room
        self.store_peak = 0  # the most the store's files took on disk
        self.snapshot_room = True
        self._releases_seen = 0  # the log's reserve releases this guard has looked at
        machine.store.keep_free = min_free  # snapshots leave the log its room

    async def sync(self, entries: list[Entry], stopping: Callable[[], bool]) -> None:
        """fsync the log (with the node's other groups); on a full disk, refuse new
        writes and retry until there is room."""
        while True:
            try:
                await self.wal.sync_soon()
                if self.wal.reserve_releases != self._releases_seen:
                    # the disk filled under this write: refuse the next ones now, not
                    # at the next look at the free space (the reserve is the log's)
                    self._releases_seen = self.wal.reserve_releases
                    self.check()
                return
            except DiskFull as error:
                if not self.full:
                    logger.error("disk full: refusing writes until space is freed: %s", error)
                self.full = True
                self.refused += self.proposals.not_durable(entries)
                if stopping():
                    raise
                await asyncio.sleep(RETRY)

    def check(self) -> None:
        """Look at the free space: refuse writes below min-free-disk, resume above."""
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return
        # The log's reserve, given up when the disk filled, still counts as taken: the
        # room it gave back is the log's, not new writes'. It is taken back once it
        # fits with min-free-disk still free, and writes resume then.
        reserve = self.wal.reserve_bytes() if self.wal.reserve_missing() else 0
        low = free - reserve < self.min_free()
        if not low and reserve and self.wal.take_back_reserve():
            free -= reserve
        if low != self.full:
            if low:
                logger.error("disk almost full (%d bytes free): refusing writes", free)
            else:
                logger.info("disk space available again: accepting writes")
            self.full = low
        store_bytes = self.machine.store.disk_bytes()
        # a failed store's files may shrink back (SQLite reuses its WAL file): what a
        # copy of it takes is the most its files have held
        self.store_peak = max(self.store_peak, store_bytes)
        if not low and self.machine.store_failed:
            self._rebuild_store()
        self._note_snapshot_room(free, store_bytes)

    def _note_snapshot_room(self, free: int, store_bytes: int) -> None:
        """Log when snapshots stop (and start again) for lack of room for a copy."""
        room = free - store_bytes >= self.min_free()
        if room == self.snapshot_room:
            return
        self.snapshot_room = room
        if room:
            logger.info("room for snapshots again")
        else:
            logger.warning("no room for a snapshot (a copy of the state store) with "
                           "min-free-disk left free: snapshots wait, the log grows")

    def _rebuild_store(self) -> None:
        store = self.machine.store
        # The copy, and its SQLite WAL while it is written, of what the store held and
        # what the log holds beyond it (the whole log: more than enough); at least
        # twice what a rebuild that ran out of room had.
        need = max(2 * (self.store_peak + self.wal.disk_bytes()), self.rebuild_need)
        try:
            free = shutil.disk_usage(store.path.parent).free
            store.check_room(store.path.parent, need)
        except NoRoom as error:
            if not self.rebuild_deferred:
                logger.warning("state store rebuild deferred until there is room for it "
                               "(writes go on; the log keeps what the store lacks): %s", error)
            self.rebuild_deferred = True
            return
        except OSError:
            return
        try:
            self.machine.rebuild_store()
        except (OSError, StoreError) as error:
            # its copy is gone again (rebuild_store cleans up): the space is back
            self.rebuild_need = 2 * free
            logger.error("state store rebuild failed (%d bytes free, %d thought enough), "
                         "will retry with %d bytes free: %s", free, need,
                         self.rebuild_need + self.min_free(), error)
            return
        self.rebuild_deferred = False
        self.rebuild_need = 0
        self.store_peak = store.disk_bytes()
