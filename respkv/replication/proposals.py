"""Writes on their way through one group's log: queued, handed to the Raft core in
one batch per loop turn, then waiting until their entry is applied.

A proposal's future gets the reply of its command once applied, or fails with a
respkv.replication.outcomes error: the leader moved before the batch was handed
over (NotLeader), leadership changed before the entry committed (WriteLost), the
entry did not commit in time (WriteTimedOut), the disk was full (NotDurable).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from respkv.clock import now_ms
from respkv.histogram import Histogram
from respkv.protocol.reply import Reply
from respkv.raft.core import NotLeader as CoreNotLeader
from respkv.raft.core import RaftCore, RaftError
from respkv.raft.types import Entry
from respkv.replication.outcomes import (
    EntryTooBig,
    NotDurable,
    NotLeader,
    ReplicationError,
    Unavailable,
    WriteLost,
    WriteTimedOut,
)
from respkv.state.entry import encode_command

PROPOSAL_TIMEOUT = 10.0  # seconds a client waits for its write to commit


@dataclass(slots=True)
class Waiter:
    term: int  # the term it was proposed in: applied in another, it was lost
    future: asyncio.Future[Reply]
    deadline: float


def fail(future: asyncio.Future, error: ReplicationError) -> None:
    if not future.done():
        future.set_exception(error)


class Proposals:
    def __init__(self, core: RaftCore, leader_address: Callable[[], str | None],
                 max_entry_bytes: Callable[[], int]) -> None:
        self.core = core
        self.leader_address = leader_address  # where NotLeader sends the client
        self.max_entry_bytes = max_entry_bytes  # read per batch: CONFIG SET changes it
        # (args, slot, future, the entry's time or None for the clock's at hand-over)
        self.queue: list[tuple[list[bytes], int, asyncio.Future[Reply], int | None]] = []
        self.waiters: dict[int, Waiter] = {}  # by log index
        # for the metrics: proposal to apply on this leader, and writes lost on the way
        self.commit_seconds = Histogram()
        self.dropped = 0  # failed before reaching the log (not leader, too big, closed)
        self.failed = 0  # failed once in the log (lost, timed out, not durable, closed)

    @property
    def settled(self) -> bool:
        """Nothing queued or in flight."""
        return not self.queue and not self.waiters

    def submit(self, args: list[bytes], slot: int,
               at: int | None = None) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.queue.append((args, slot, future, at))
        return future

    def hand_over(self) -> None:
        """Give the queued writes to the core as one batch of entries."""
        if not self.queue:
            return
        batch, self.queue = self.queue, []
        now = now_ms()
        entries = [encode_command(now if at is None else at, args) for args, _, _, at in batch]
        limit = self.max_entry_bytes()
        if max(map(len, entries)) > limit:
            batch, entries = self._refuse_too_big(batch, entries, limit)
            if not batch:
                return
        try:
            last = self.core.propose_batch(entries)
        except CoreNotLeader:  # leadership moved since the router said "here"
            self.dropped += len(batch)
            leader = self.leader_address()
            for _, slot, future, _ in batch:
                fail(future, NotLeader(leader, slot))
            return
        except RaftError as error:
            self.dropped += len(batch)
            for _, _, future, _ in batch:
                fail(future, Unavailable(str(error)))
            return
        term = self.core.term
        deadline = time.monotonic() + PROPOSAL_TIMEOUT
        first = last - len(batch) + 1
        for offset, (_, _, future, _) in enumerate(batch):
            self.waiters[first + offset] = Waiter(term, future, deadline)

    def _refuse_too_big(self, batch: list, entries: list[bytes],
                        limit: int) -> tuple[list, list[bytes]]:
        """Fail the writes whose entry is over the limit; the others go on."""
        kept = []
        for item, data in zip(batch, entries, strict=True):
            if len(data) > limit:
                self.dropped += 1
                fail(item[2], EntryTooBig(len(data), limit))
            else:
                kept.append((item, data))
        return [item for item, _ in kept], [data for _, data in kept]

    def track(self, index: int, future: asyncio.Future[Reply]) -> None:
        """Wait for an entry proposed outside the batch (a membership change)."""
        self.waiters[index] = Waiter(self.core.term, future,
                                     time.monotonic() + PROPOSAL_TIMEOUT)

    def complete(self, entries: Sequence[Entry], replies: Sequence[Reply]) -> None:
        """The entries are applied: hand each waiting client its reply."""
        waiters = self.waiters
        if not waiters:
            return
        # proposed at deadline - PROPOSAL_TIMEOUT: no clock read per proposal
        since = time.monotonic() + PROPOSAL_TIMEOUT
        observe = self.commit_seconds.observe
        for entry, reply in zip(entries, replies, strict=True):
            waiter = waiters.pop(entry.index, None)
            if waiter is None or waiter.future.done():
                continue
            if entry.term != waiter.term:
                self.failed += 1
                waiter.future.set_exception(WriteLost())
            else:
                observe(since - waiter.deadline)
                waiter.future.set_result(reply)

    def not_durable(self, entries: Sequence[Entry]) -> int:
        """These entries did not reach the disk yet: their writers are told at once.
        How many writers were."""
        told = 0
        for entry in entries:
            waiter = self.waiters.pop(entry.index, None)
            if waiter is not None:
                fail(waiter.future, NotDurable())
                told += 1
        self.failed += told
        return told

    def expire(self, now: float) -> None:
        if not self.waiters:
            return
        for index in [i for i, w in self.waiters.items() if w.deadline < now]:
            self.failed += 1
            fail(self.waiters.pop(index).future, WriteTimedOut())

    def reject_queued(self, error: ReplicationError) -> None:
        """Fail the writes not yet handed to the core."""
        self.dropped += len(self.queue)
        for _, _, future, _ in self.queue:
            fail(future, error)
        self.queue.clear()

    def close(self, error: ReplicationError) -> None:
        """Fail everything queued or in flight."""
        self.reject_queued(error)
        self.failed += len(self.waiters)
        for waiter in self.waiters.values():
            fail(waiter.future, error)
        self.waiters.clear()
