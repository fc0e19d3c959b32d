"""SAVE and BGSAVE: a snapshot of every group this node holds, taken now.

A node's data is durable as it is written (the log is fsync'd before a write is
acknowledged), so saving is never needed for safety. What it does is take each
group's snapshot at once and compact the log behind it, which gives back the
memory and disk the log held; each group also takes one by itself once enough
log has been applied since the last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from respkv.background import spawn
from respkv.protocol.reply import RespError
from respkv.replication.group import RaftGroup

logger = logging.getLogger(__name__)


class Saving:
    def __init__(self, groups: Callable[[], list[RaftGroup]]) -> None:
        self.groups = groups
        self.task: asyncio.Task[None] | None = None
        self.last_status = "ok"  # of the latest BGSAVE (INFO persistence)
        self.scheduled = False  # BGSAVE SCHEDULE during a save: one more after it
        self.started = time.time()

    @property
    def in_progress(self) -> bool:
        return self.task is not None and not self.task.done()

    async def save(self) -> None:
        """Snapshot every group that runs here, one after the other."""
        for group in self.groups():
            if group.down:
                continue  # fenced: its state is not to be trusted, nor saved
            snapshots = group.snapshots
            before = snapshots.saved_at
            await snapshots.take()
            if snapshots.saved_at == before:
                raise RespError(f"ERR the snapshot of group {group.name} failed (see the log)")

    def start(self, schedule: bool = False) -> bool:
        """BGSAVE: False if a save is running already (then, with ``schedule``, one
        more is run after it)."""
        if self.in_progress:
            self.scheduled = self.scheduled or schedule
            return False
        self.task = spawn(self._in_background(), name="bgsave")
        return True

    async def _in_background(self) -> None:
        again = True
        while again:
            try:
                await self.save()
                self.last_status = "ok"
            except RespError as error:
                self.last_status = "err"
                logger.error("BGSAVE: %s", error.text)
            again, self.scheduled = self.scheduled, False

    def last_save(self) -> int:
        """LASTSAVE: when the latest snapshot of any group was taken (server start if
        none was yet)."""
        return int(max((g.snapshots.saved_at for g in self.groups()), default=0.0)
                   or self.started)
