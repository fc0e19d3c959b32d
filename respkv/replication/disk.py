"""One group's full-disk policy: refuse writes while the disk is (almost) full, keep
retrying the fsync of what is already in the log, resume once space is back.

Nothing that waits on an fsync (acknowledgements, votes) goes out before it
succeeds, so a full disk delays but never loses anything; the clients whose
writes are stuck are told at once that the outcome is unknown. A state store
that failed to write is rebuilt from memory once there is room again.
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
from respkv.storage.store import StoreError
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

    async def sync(self, entries: list[Entry], stopping: Callable[[], bool]) -> None:
        """fsync the log (with the node's other groups); on a full disk, refuse new
        writes and retry until there is room."""
        while True:
            try:
                await self.wal.sync_soon()
                return
            except DiskFull as error:
                if not self.full:
                    logger.error("disk full: refusing writes until space is freed: %s", error)
                self.full = True
                self.proposals.not_durable(entries)
                if stopping():
                    raise
                await asyncio.sleep(RETRY)

    def check(self) -> None:
        """Look at the free space: refuse writes below min-free-disk, resume above."""
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return
        low = free < self.min_free()
        if low != self.full:
            if low:
                logger.error("disk almost full (%d bytes free): refusing writes", free)
            else:
                logger.info("disk space available again: accepting writes")
            self.full = low
        if not low and self.machine.store_failed:
            try:
                self.machine.rebuild_store()
            except (OSError, StoreError) as error:
                logger.error("state store rebuild failed, will retry: %s", error)
