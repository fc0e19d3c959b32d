"""A replication group: the log, the state machine and the waiters for replies.

Every write goes through ``Group.propose``: it is appended to the group's WAL,
made durable with one fsync per batch of concurrent writes (group commit),
applied in log order, and only then is the client answered. This module is
the single-node driver; the Raft driver (respkv/cluster) keeps the same
interface: ``propose``, ``read_barrier``, ``keyspace``, ``start``, ``stop``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from respkv.keyspace import Keyspace
from respkv.protocol.reply import Reply, RespError
from respkv.raft.types import Entry, EntryKind, HardState
from respkv.statemachine import StateMachine, encode_command
from respkv.storage.store import StateStore
from respkv.storage.wal import WAL

log = logging.getLogger(__name__)

SHUTTING_DOWN = RespError("ERR server is shutting down")


def now_ms() -> int:
    return int(time.time() * 1000)


class SoloGroup:
    """One node, one group: the log is committed as soon as it is on disk."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.wal = WAL.open(directory / "raft" / name / "wal")
        store_path = directory / "data" / f"{name}.sqlite"
        store_path.parent.mkdir(parents=True, exist_ok=True)
        self.keyspace = Keyspace()
        self.state_machine = StateMachine(self.keyspace, StateStore(store_path))
        self.term = 1
        self.pending: list[tuple[Entry, asyncio.Future[Reply]]] = []
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.commit_index = 0
        self._recover()

    # -- what the server calls -----------------------------------------------

    @property
    def last_index(self) -> int:
        return self.wal.last_index()

    @property
    def applied_index(self) -> int:
        return self.state_machine.applied_index

    def is_leader(self) -> bool:
        return True

    def propose(self, args: list[bytes]) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self.stopping:
            future.set_result(SHUTTING_DOWN)
            return future
        self.last_assigned += 1
        index = self.last_assigned
        entry = Entry(self.term, index, EntryKind.NORMAL, encode_command(now_ms(), args))
        self.pending.append((entry, future))
        self.wakeup.set()
        return future

    def read_barrier(self, mode: str) -> asyncio.Future[None] | None:
        """None: every acknowledged write is already applied, read now."""
        return None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"group-{self.name}")

    async def stop(self) -> None:
        """Finish what was proposed, then close the log and the store."""
        self.stopping = True
        self.wakeup.set()
        if self.task is not None:
            await self.task
        self.state_machine.store.flush()
        self.state_machine.store.close()
        self.wal.close()

    # -- the loop ------------------------------------------------------------

    def _recover(self) -> None:
        state = self.wal.load()
        self.term = max(state.hard_state.term, 1)
        if state.hard_state.term < 1:
            self.wal.set_hard_state(HardState(term=1, vote=None, commit=0))
        applied = self.state_machine.applied_index
        replay = [e for e in state.entries if e.index > applied]
        if replay:
            log.info("replaying %d log entries after index %d", len(replay), applied)
            self.state_machine.apply(replay)
        self.last_assigned = max(self.wal.last_index(), applied)
        self.commit_index = self.last_assigned

    async def _run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if not self.pending:
                if self.stopping:
                    return
                continue
            batch, self.pending = self.pending, []
            entries = [entry for entry, _ in batch]
            try:
                self.wal.append(entries)
                await asyncio.to_thread(self.wal.sync)
            except OSError as error:
                log.error("log write failed: %s", error)
                self._fail(batch, RespError(f"ERR log write failed: {error.strerror}"))
                continue
            self.commit_index = entries[-1].index
            replies = self.state_machine.apply(entries)
            for (_, future), reply in zip(batch, replies, strict=True):
                if not future.done():
                    future.set_result(reply)

    def _fail(self, batch: list[tuple[Entry, asyncio.Future[Reply]]], error: RespError) -> None:
        for _, future in batch:
            if not future.done():
                future.set_result(error)
