"""Linearizable reads of one group: read barriers batched into ReadIndex requests.

A leader answers a request at once from its lease while the lease holds (mode
``linearizable``), else with a heartbeat round (always, in mode ``strict``); a
follower forwards it to the leader.

Every read asked for in one loop turn shares one round and one future, per
consistency mode; the round starts from a plain callback at the end of the turn
(waking the loop task would cost more than the round). Once the core answers with
a read index, the future resolves as soon as the state machine has applied it.
A barrier that cannot be served fails with a respkv.replication.outcomes error.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from respkv.config import Config
from respkv.raft.core import NotLeader as CoreNotLeader
from respkv.raft.core import RaftCore, ReadState
from respkv.replication.outcomes import NotLeader, ReadTimedOut, ReplicationError
from respkv.replication.proposals import fail

READ_TIMEOUT = 3.0  # seconds a read waits for its round


@dataclass(slots=True)
class ReadBatch:
    """The reads that wait on one round: one future, however many readers."""

    future: asyncio.Future[None]
    readers: int = 0


class ReadIndexReads:
    def __init__(self, core: RaftCore, node_id: str, start_turn: Callable[[], None],
                 catch_up_ticks: Callable[[], object]) -> None:
        self.core = core
        self.node_id = node_id
        self.start_turn = start_turn  # run at the end of the loop turn that asked
        self.catch_up_ticks = catch_up_ticks  # a lease is only as good as its clock
        self.requests: dict[str, ReadBatch] = {}  # by consistency mode, not yet handed over
        # a batch's round in flight: ctx -> (its future, deadline); then, once the round
        # is done, (read index, future) until the state machine has applied that index
        self.waiting: dict[bytes, tuple[asyncio.Future[None], float]] = {}
        self.ready: list[tuple[int, asyncio.Future[None]]] = []
        self.seq = 0
        self.rounds = 0  # ReadIndex requests made, and the reads they carried
        self.reads = 0
        # A late answer to a read sent before a restart must not match a new read
        # with the same sequence number: read ids are unique per process life.
        self.incarnation = random.SystemRandom().getrandbits(48)

    def barrier(self, mode: str) -> asyncio.Future[None]:
        """A future that resolves once this node's state reflects every write
        acknowledged before the call (``mode``: linearizable, which a leader may
        answer from its lease, or strict, which always runs a round)."""
        batch = self.requests.get(mode)
        if batch is None:  # the reads of one loop turn share a round and a future
            loop = asyncio.get_running_loop()
            batch = self.requests[mode] = ReadBatch(loop.create_future())
            loop.call_soon(self.start_turn)
        batch.readers += 1
        return batch.future

    def hand_over(self) -> None:
        """Ask the core for the read index of each batch waiting."""
        if not self.requests:
            return
        requests, self.requests = self.requests, {}
        if "linearizable" in requests:
            self.catch_up_ticks()
        core = self.core
        for mode, batch in requests.items():
            self.seq += 1
            ctx = f"{self.node_id}:{self.incarnation}:{self.seq}".encode()
            try:
                core.read_index(ctx, lease=mode == "linearizable")
            except CoreNotLeader:
                fail(batch.future, NotLeader(None))
                continue
            self.waiting[ctx] = (batch.future, time.monotonic() + READ_TIMEOUT)
            self.rounds += 1
            self.reads += batch.readers

    def on_ready(self, read_states: list[ReadState], dropped: list[bytes]) -> None:
        """A Ready's answers: read indexes to wait for, and reads the leader dropped."""
        for state in read_states:
            pending = self.waiting.pop(state.ctx, None)
            if pending is not None:
                self.ready.append((state.index, pending[0]))
        for ctx in dropped:
            pending = self.waiting.pop(ctx, None)
            if pending is not None:
                fail(pending[0], NotLeader(None))

    def serve(self, applied: int) -> None:
        """Release the reads whose index the state machine has applied."""
        if not self.ready:
            return
        waiting: list[tuple[int, asyncio.Future[None]]] = []
        for index, future in self.ready:
            if index > applied:
                waiting.append((index, future))
            elif not future.done():
                future.set_result(None)
        self.ready = waiting

    def follow_config(self, config: Config) -> None:
        """The lease settings, which CONFIG SET may change: the margin, and whether the
        reads followers forward here may be answered from the lease (they get this
        node's read-consistency, not the follower's)."""
        cfg = self.core.cfg
        cfg.lease_read = config.read_consistency == "linearizable"
        cfg.lease_margin_ticks = config.lease_margin_ticks()

    def expire(self, now: float) -> None:
        if self.waiting:
            for ctx in [c for c, (_, deadline) in self.waiting.items() if deadline < now]:
                fail(self.waiting.pop(ctx)[0], ReadTimedOut())

    def close(self, error: ReplicationError) -> None:
        for future, _ in self.waiting.values():
            fail(future, error)
        for batch in self.requests.values():
            fail(batch.future, error)
        for _, future in self.ready:
            fail(future, error)
        self.waiting, self.requests, self.ready = {}, {}, []
