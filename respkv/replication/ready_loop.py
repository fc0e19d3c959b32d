"""The Ready loop of one group: the only place its pure Raft core meets the world.

One task runs the loop: take a Ready from the core, send what may go at once,
install a snapshot if one came, append to the WAL and fsync (one fsync for every
group of the node and everything gathered meanwhile: group commit), send the
messages that needed the fsync, apply committed entries in one state-machine
batch, complete the writes and reads waiting on them, then advance. Proposals
and read requests that arrive during an fsync are handed to the core in one
batch at the top of the next turn. A Ready that needs no fsync (a heartbeat's
answer, a read round's end, a commit to apply) is handled at once, in the
callback that produced it. A second task ticks the core and runs the periodic
chores (persisting the store, timeouts, free disk space, learners, snapshots).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from respkv.background import spawn
from respkv.config import Config
from respkv.histogram import Histogram
from respkv.raft.core import RaftCore, Ready, Role
from respkv.raft.messages import Message, MessageType
from respkv.raft.types import Entry, EntryKind
from respkv.replication.disk import DiskGuard
from respkv.replication.membership import Membership
from respkv.replication.proposals import Proposals
from respkv.replication.reads import ReadIndexReads
from respkv.replication.refused import RefusedMessages
from respkv.replication.snapshots import Snapshots
from respkv.state.machine import StateMachine
from respkv.storage.nodelog import GroupLog

if TYPE_CHECKING:
    from respkv.replication.transport import Transport

logger = logging.getLogger(__name__)

DISK_CHECK_TICKS = 4  # free space looked at every 4 ticks (200 ms): statvfs is not free
PERSIST_EVERY_TICKS = 20  # write applied state to the store every 20 ticks (1 s)
UNSYNCED_SYNC_TICKS = 40  # under the early-ack test fault, fsync now and then
WATCH_TICKS = 20  # the watchdog looks at the group's progress every second
# Writes or reads that wait this long while the commit and applied indexes stand
# still: the group is reported stalled (a write gives up after 10 s on its own).
STALL_SECONDS = 4.0


class ReadyLoop:
    def __init__(self, name: str, config: Config, core: RaftCore, wal: GroupLog,
                 machine: StateMachine, proposals: Proposals, reads: ReadIndexReads,
                 snapshots: Snapshots, membership: Membership, disk: DiskGuard,
                 transport: Transport, after_ready: Callable[[], None],
                 on_failure: Callable[[BaseException, str], None]) -> None:
        self.name = name
        self.config = config
        self.core = core
        self.wal = wal
        self.machine = machine
        self.proposals = proposals
        self.reads = reads
        self.snapshots = snapshots
        self.membership = membership
        self.disk = disk
        self.transport = transport
        self.after_ready = after_ready  # the group looks at who waits for it to settle
        self.on_failure = on_failure  # an exception in a task: the group fences itself
        self.wakeup = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False
        # reads need no barrier: a lone voter that leads and has applied its term
        self.reads_local = False
        self.leader_changes = 0
        self.apply_seconds = Histogram()  # each batch of committed entries applied
        self.leader_since = time.monotonic()
        self._last_leader: str | None = None
        self._last_tick = time.monotonic()  # when the core was last ticked
        self._unsynced = False
        self.refused = RefusedMessages(name)
        self.stalled = False  # the watchdog's verdict, and how many stalls it saw
        self.stalls = 0
        self._progress = (-1, -1)  # (commit, applied) last seen to move, and when
        self._progress_at = time.monotonic()
        if config.faults.early_ack:
            self._make_durable = self._leave_unsynced  # type: ignore[method-assign]
        if config.faults.apply_bug:
            self._apply = self._apply_with_bug  # type: ignore[method-assign]

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._run(), name=f"raft-{self.name}"),
                      asyncio.create_task(self._ticker(), name=f"tick-{self.name}")]

    async def stop(self) -> None:
        """Let the loop finish its Ready (an fsync may be running), then return."""
        self.stopping = True
        loop_task, tick_task = self.tasks
        tick_task.cancel()
        self.wakeup.set()
        if not loop_task.done():  # done: halted after a failure
            await asyncio.wait_for(loop_task, 10)

    def halt(self) -> None:
        """Stop both tasks now, from a callback (the group failed): nothing more of
        this group runs here."""
        self.stopping = True
        self.reads_local = False
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    # -- the clock ---------------------------------------------------------------

    def catch_up_ticks(self) -> int:
        """Tick the core once for every tick interval the monotonic clock says has
        passed since the last tick; returns how many ticks that was.

        The core measures time in ticks only: a process that was paused
        (SIGSTOP, swapping, a stalled event loop) must not come back believing
        no time has passed, or a deposed leader would still trust its lease and
        serve stale reads. Capped at two election timeouts: enough for every
        timer (lease, check-quorum, election) to run out. A long gap is handed to
        the core as a pause (``tick_after_pause``): the leases run out, but nobody
        campaigns or steps down before hearing from the others again.
        """
        config = self.config
        interval = config.tick_ms / 1000
        now = time.monotonic()
        due = int((now - self._last_tick) / interval)
        if due <= 0:
            return 0
        limit = 2 * config.election_ticks
        if due > limit:
            due, self._last_tick = limit, now
        else:
            self._last_tick += due * interval
        if due >= max(2, config.election_ticks // 2):
            # a pause, not a late tick: the peers were likely paused as well (a VM,
            # a host under load), and their messages are still unread
            logger.warning("event loop paused %d ms", due * config.tick_ms,
                           extra={"group": self.name})
            self.core.tick_after_pause(due)
        else:
            for _ in range(due):
                self.core.tick()
        return due

    async def _ticker(self) -> None:
        try:
            await self._tick_forever()
        except Exception as error:  # a bug: fence the group, never freeze unseen
            self.on_failure(error, "the ticker")

    async def _tick_forever(self) -> None:
        interval = self.config.tick_ms / 1000
        ticks = 0
        self._last_tick = time.monotonic()
        while not self.stopping:
            await asyncio.sleep(interval)
            ticks += 1
            if ticks % PERSIST_EVERY_TICKS == 0:
                self.machine.persist()
            if self._unsynced and ticks % UNSYNCED_SYNC_TICKS == 0:
                self._unsynced = False
                self.wal.sync()
            self.catch_up_ticks()
            if ticks % DISK_CHECK_TICKS == 0:
                self.disk.check()
            if ticks % WATCH_TICKS == 0:
                self.watch(time.monotonic())
            now = time.monotonic()
            self.proposals.expire(now)
            self.reads.expire(now)
            self.reads.follow_config(self.config)
            self.after_ready()  # expired waiters, a lost lead: wake cross-group writes
            self.membership.promote_learners()
            self.snapshots.maybe_take(self.machine.applied_index)
            self.wakeup.set()

    # -- the watchdog --------------------------------------------------------------

    def watch(self, now: float) -> None:
        """Report a group that does not advance while requests wait on it: a leader
        that cannot commit, a follower that cannot apply. Once per stall."""
        progress = (self.core.log.committed, self.machine.applied_index)
        waiting = len(self.proposals.waiters) + len(self.reads.waiting)
        if not waiting or progress != self._progress:
            if self.stalled:
                logger.warning("group advances again", extra={"group": self.name})
            self.stalled = False
            self._progress, self._progress_at = progress, now
            return
        if self.stalled or now - self._progress_at < STALL_SECONDS:
            return
        self.stalled = True
        self.stalls += 1
        core = self.core
        logger.error("group stalled: %d requests waiting, commit index %d and applied index "
                     "%d unchanged for %.0f s (role %s, leader %s, last log index %d)",
                     waiting, progress[0], progress[1], now - self._progress_at,
                     core.role.name.lower(), core.lead, core.log.last_index(),
                     extra={"group": self.name})

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._run_forever()
        except Exception as error:  # a bug: fence the group, never freeze unseen
            self.on_failure(error, "the Raft loop")

    async def _run_forever(self) -> None:
        core = self.core
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if self.stopping and not core.has_ready():
                return
            self.snapshots.compact_if_due()
            self._hand_over()
            while core.has_ready():
                await self._handle_ready(core.ready())
                self._hand_over()
            self.reads.serve(self.machine.applied_index)
            self._note_leader()
            if self.stopping and not core.has_ready():
                # stop() set the wakeup once and nothing will set it again (the
                # ticker is cancelled, messages are ignored): if this turn used
                # it up, waiting for another one would hang the shutdown.
                return

    def _hand_over(self) -> None:
        self.proposals.hand_over()
        self.reads.hand_over()

    def read_turn(self) -> None:
        """Start the round of the reads asked in this loop turn, from a plain callback:
        waking the loop task costs more than the round itself."""
        if self.stopping:
            self.wakeup.set()
            return
        self.reads.hand_over()
        self.handle_ready_or_wake()

    async def _handle_ready(self, rd: Ready) -> None:
        send = self._send
        for message in rd.eager_messages:
            send(message)
        if rd.snapshot is not None:
            await self.snapshots.install(rd.snapshot)
        self._write_ready(rd)
        if rd.must_sync:  # a commit-index-only change rides along with the next fsync
            await self._make_durable(rd.entries)
        self._finish_ready(rd)

    async def _make_durable(self, entries: list[Entry]) -> None:
        await self.disk.sync(entries, lambda: self.stopping)

    async def _leave_unsynced(self, entries: list[Entry]) -> None:
        """_make_durable under the early-ack test fault: the ticker syncs now and then,
        acknowledgements outrun the disk."""
        self._unsynced = True

    def handle_ready_or_wake(self) -> None:
        """Handle the core's Ready here if it needs no fsync; wake the loop task for
        whatever is left (a Ready that needs one, or a further Ready)."""
        if not self._handle_ready_now() or self.core.has_ready():
            self.wakeup.set()

    def _handle_ready_now(self) -> bool:
        """Handle the core's Ready in this callback when it needs no fsync and the
        loop task holds none: one loop turn less on every read round and commit."""
        core = self.core
        if not core.has_ready() or core.ready_needs_sync():
            return False
        rd = core.ready()
        for message in rd.eager_messages:
            self._send(message)
        self._write_ready(rd)
        self._finish_ready(rd)
        self._note_leader()
        return True

    def _write_ready(self, rd: Ready) -> None:
        """Hand the Ready's entries and hard state to the WAL (in memory until synced)."""
        if rd.entries:
            self.wal.append(rd.entries)
        if rd.hard_state is not None:
            self.wal.set_hard_state(rd.hard_state)

    def _finish_ready(self, rd: Ready) -> None:
        if rd.refused:
            self.refused.note(rd.refused)
        send = self._send
        for message in rd.messages:
            send(message)
        if rd.committed_entries:
            self._apply(rd.committed_entries)
        if rd.read_states or rd.dropped_reads:
            self.reads.on_ready(rd.read_states, rd.dropped_reads)
        self.core.advance(rd)
        self.reads_local = self._reads_are_local()
        self.reads.serve(self.machine.applied_index)
        self.after_ready()

    def _apply(self, entries: list[Entry]) -> None:
        self.snapshots.bytes_since += sum(len(entry.data) for entry in entries)
        applied = self.machine.applied_index
        for entry in entries:
            if entry.kind is EntryKind.CONF_CHANGE and entry.index > applied:
                self.membership.applied(entry)
        started = time.perf_counter()
        replies = self.machine.apply(entries)
        self.apply_seconds.observe(time.perf_counter() - started)  # metrics: per batch
        self.proposals.complete(entries, replies)

    def _apply_with_bug(self, entries: list[Entry]) -> None:
        """_apply under the apply-bug test fault: an entry naming the key raises, after
        the entries before it in the batch are applied (as a bug half-way would)."""
        key = b"\r\n" + self.config.faults.apply_bug + b"\r\n"
        for index, entry in enumerate(entries):
            if key in entry.data:
                ReadyLoop._apply(self, entries[:index])
                raise RuntimeError("apply-bug test fault")
        ReadyLoop._apply(self, entries)

    def _send(self, message: Message) -> None:
        if message.type is MessageType.SNAP:
            spawn(self.snapshots.send(message))
        else:
            self.transport.send(message)

    def _reads_are_local(self) -> bool:
        """A lone voter that leads, has committed in its term and applied it all
        cannot be behind anyone: its state is the linearizable state."""
        core = self.core
        log_ = core.log
        return (
            core.role is Role.LEADER
            and core.conf.voters == (core.id,)
            and log_.term(log_.committed) == core.term
            and self.machine.applied_index >= log_.committed
        )

    def _note_leader(self) -> None:
        lead = self.core.lead
        if lead != self._last_leader:
            self._last_leader = lead
            self.leader_since = time.monotonic()
            self.leader_changes += 1
            logger.info("leader changed", extra={"leader": lead, "term": self.core.term,
                                                 "group": self.name})
