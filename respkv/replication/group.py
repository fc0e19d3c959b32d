"""The Raft driver of one group: the only place the pure core meets the world.

One task runs the loop: take a Ready from the core, send what may go at once,
append to the WAL and fsync (one fsync for everything gathered while the
previous one ran: group commit), install a snapshot if one came, send the
messages that needed the fsync, apply committed entries in one state-machine
batch, complete the clients waiting on those log indexes and the reads waiting
on a read index, then advance. Proposals and read requests that arrive during
an fsync are handed to the core in one batch at the top of the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from respkv.background import spawn
from respkv.commands.errors import CLUSTERDOWN, SHUTTING_DOWN
from respkv.commands.table import COMMANDS, Command
from respkv.faults import CrashPoint
from respkv.protocol.reply import Reply, RespError
from respkv.raft.confchange import (
    ConfChange,
    ConfChangeError,
    ConfChangeType,
    decode_conf_change,
    encode_conf_change,
)
from respkv.raft.core import (
    ConfChangePending,
    NotLeader,
    RaftCore,
    RaftError,
    Ready,
    Role,
)
from respkv.raft.core import (
    Config as CoreConfig,
)
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.raft.types import Entry, EntryKind, HardState
from respkv.replication.membership import AddressBook, Addresses, write_json_atomically
from respkv.replication.slots import key_slot
from respkv.state.keyspace import Keyspace
from respkv.state.machine import StateMachine, encode_command
from respkv.storage.nodelog import GroupLog
from respkv.storage.store import StateStore, StoreError
from respkv.storage.wal import DiskFull

if TYPE_CHECKING:
    from respkv.config import Config
    from respkv.replication.transport import Transport

log = logging.getLogger(__name__)

LOST = RespError("ERR write lost: leadership changed before it was committed, retry")
TIMED_OUT = RespError("TRYAGAIN write not committed in time; it may or may not have been applied")
READ_TIMED_OUT = RespError("TRYAGAIN read not confirmed by a quorum in time")
PROPOSAL_TIMEOUT = 10.0  # seconds a client waits for its write to commit
READ_TIMEOUT = 3.0
NOT_DURABLE = RespError("TRYAGAIN No space left on device: the write is not on disk yet and "
                        "may or may not be applied once space is freed")
DISK_RETRY = 0.2  # seconds between fsync attempts on a full disk
DISK_CHECK_TICKS = 4  # free space looked at every 4 ticks (200 ms): statvfs is not free
PERSIST_EVERY_TICKS = 20  # write applied state to the store every 20 ticks (1 s)

def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class ReadBatch:
    """The reads that wait on one read round: one future, however many readers."""

    future: asyncio.Future[None]
    readers: int = 0


@dataclass(slots=True)
class Waiter:
    term: int
    future: asyncio.Future[Reply]
    deadline: float


class RaftGroup:
    def __init__(self, name: str, node_id: str, config: Config, directory: Path,
                 transport: Transport, book: AddressBook, wal: GroupLog,
                 bootstrap: Addresses | None, joined_at: int = 0) -> None:
        self.name = name
        self.names = (name,)  # the groups a command routed here touches (see router.Span)
        # reads need no barrier: _reads_are_local(), kept up to date by the loop
        self.reads_local = False
        self.joined_at = joined_at  # log index of the change that added this node
        self.node_id = node_id
        self.config = config
        self.transport = transport
        self.book = book
        self.dir = directory / "raft" / name
        self.snap_dir = self.dir / "snap"
        self.snap_dir.mkdir(parents=True, exist_ok=True)
        self.wal = wal
        store_path = directory / "data" / f"{name}.sqlite"
        store_path.parent.mkdir(parents=True, exist_ok=True)
        self.keyspace = Keyspace()
        self.state_machine = StateMachine(self.keyspace, StateStore(store_path))
        if bootstrap is not None:
            self._bootstrap(bootstrap)
        self.core = self._make_core()
        self.waiters: dict[int, Waiter] = {}
        self.proposals: list[tuple[list[bytes], asyncio.Future[Reply]]] = []
        self.read_requests: dict[str, ReadBatch] = {}  # by consistency mode
        self.settle_waiters: list[asyncio.Future[None]] = []  # see when_settled()
        # a batch's round in flight: ctx -> (its future, deadline); then, once the round
        # is done, (read index, future) until the state machine has applied that index
        self.read_waiting: dict[bytes, tuple[asyncio.Future[None], float]] = {}
        self.read_ready: list[tuple[int, asyncio.Future[None]]] = []
        self.read_seq = 0
        self.read_rounds = 0  # ReadIndex requests made, and the reads they carried
        self.reads = 0
        # A late answer to a read sent before a restart must not match a new read
        # with the same sequence number: read ids are unique per process life.
        self.incarnation = random.SystemRandom().getrandbits(48)
        self.conf_waiters: dict[int, asyncio.Future[Reply]] = {}
        self.wakeup = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False
        self.snapshotting = False
        self.incoming_snapshots: dict[int, Path] = {}
        self.pending_compaction: tuple[int, int] | None = None
        self.store_lock = asyncio.Lock()  # snapshot taking and installing, one at a time
        self.bytes_since_snapshot = 0  # log bytes applied since: snapshots bound memory too
        self.on_removed = None  # set by the server: called when this node is removed
        self.leader_changes = 0
        self.disk_full = False  # writes are refused while set
        self.faults = config.faults
        if self.faults.stale_reads:
            self.read_barrier = self._no_barrier  # type: ignore[method-assign]
        if self.faults.early_ack:
            self._make_durable = self._leave_unsynced  # type: ignore[method-assign]
        self._unsynced = False
        self._last_leader: str | None = None
        self._leader_since = time.monotonic()
        self._last_tick = time.monotonic()  # when the core was last ticked
        # members whose removal this node applied (since it started), and when
        # each was last told so: see _notify_removed
        self.removed_members: dict[str, float] = {}
        self.removed_at: dict[str, int] = {}  # the log index of each of those removals
        transport.handlers[name] = self
        self._connect_peers()

    # -- start-up ------------------------------------------------------------

    def _bootstrap(self, me: Addresses) -> None:
        """A brand-new one-node cluster: the log starts with 'add me as voter'."""
        if self.wal.last_index() or self.wal.snapshot_point()[0]:
            return
        change = ConfChange(ConfChangeType.ADD_VOTER, self.node_id, me.to_bytes())
        self.wal.append([Entry(1, 1, EntryKind.CONF_CHANGE, encode_conf_change(change))])
        self.wal.set_hard_state(HardState(term=1, vote=None, commit=1))
        self.wal.sync()
        self.book.learn(self.node_id, me)

    def _latest_snapshot_meta(self) -> SnapshotMeta | None:
        path = self.snap_dir / "meta.json"
        if not path.exists():
            return None
        fields = json.loads(path.read_text())
        conf = ConfState(tuple(fields["voters"]), tuple(fields["learners"]))
        return SnapshotMeta(fields["index"], fields["term"], conf)

    def _make_core(self) -> RaftCore:
        state = self.wal.load()
        snapshot = self._latest_snapshot_meta()
        snap_index, snap_term = self.wal.snapshot_point()
        if snap_index and (snapshot is None or snapshot.index != snap_index):
            # The WAL was compacted by an installed snapshot whose meta we keep
            # beside it; fall back on what the WAL says if the file is older.
            snapshot = SnapshotMeta(snap_index, snap_term,
                                    snapshot.conf_state if snapshot else ConfState())
        cfg = self.config
        core_config = CoreConfig(
            node_id=self.node_id,
            group=self.name,
            election_tick=cfg.election_ticks,
            heartbeat_tick=cfg.heartbeat_ticks,
            pre_vote=True,
            check_quorum=True,
            lease_read=False,
            applied=max(self.state_machine.applied_index, snapshot.index if snapshot else 0),
            seed=random.SystemRandom().randrange(1 << 62),
        )
        entries = [e for e in state.entries if snapshot is None or e.index > snapshot.index]
        self.snapshot_index = snapshot.index if snapshot else 0
        return RaftCore(core_config, state.hard_state, snapshot, entries)

    def _connect_peers(self) -> None:
        conf = self.core.conf
        for node in (*conf.voters, *conf.learners):
            addresses = self.book.get(node)
            if addresses is not None:
                self.transport.set_peer(node, addresses.raft)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.core.conf.voters == (self.node_id,):
            self.core.campaign()  # alone: no one to wait for, lead at once
        loop_task = asyncio.create_task(self._run(), name=f"raft-{self.name}")
        tick_task = asyncio.create_task(self._ticker(), name=f"tick-{self.name}")
        self.tasks += [loop_task, tick_task]

    # -- what the server calls -------------------------------------------------

    @property
    def term(self) -> int:
        return self.core.term

    @property
    def commit_index(self) -> int:
        return self.core.log.committed

    @property
    def applied_index(self) -> int:
        return self.state_machine.applied_index

    @property
    def last_index(self) -> int:
        return self.core.log.last_index()

    @property
    def role(self) -> str:
        return self.core.role.name.lower()

    def is_leader(self) -> bool:
        return self.core.role is Role.LEADER

    def leader_id(self) -> str | None:
        return self.core.lead

    def leader_client_address(self) -> str | None:
        lead = self.core.lead
        if lead is None:
            return None
        if lead == self.node_id:
            return self.config.client_address
        addresses = self.book.get(lead)
        return addresses.client if addresses else None

    def members(self) -> ConfState:
        return self.core.conf

    def propose(self, args: list[bytes]) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = self.loop.create_future()
        if self.stopping:
            future.set_result(SHUTTING_DOWN)
        else:
            self.proposals.append((args, future))
            self.wakeup.set()
        return future

    def settled(self) -> bool:
        """Every write proposed here so far is applied (none queued or in flight)."""
        return not self.proposals and not self.waiters and self.applied_index >= self.last_index

    def when_settled(self) -> asyncio.Future[None]:
        """Resolves once settled() holds or this node stops leading the group."""
        future: asyncio.Future[None] = self.loop.create_future()
        self.settle_waiters.append(future)
        self._check_settled()
        return future

    def _check_settled(self) -> None:
        if self.settle_waiters and (self.settled() or not self.is_leader() or self.stopping):
            waiting, self.settle_waiters = self.settle_waiters, []
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    def read_barrier(self, mode: str) -> asyncio.Future[None] | None:
        """A future that resolves once this node's state reflects every write
        acknowledged before the call; None when the read may run now."""
        if mode == "stale" or self.reads_local:
            return None
        batch = self.read_requests.get(mode)
        if batch is None:  # the reads of one loop turn share a round and a future
            batch = self.read_requests[mode] = ReadBatch(self.loop.create_future())
            self.loop.call_soon(self._read_turn)
        batch.readers += 1
        return batch.future

    def _no_barrier(self, mode: str) -> None:
        """read_barrier under the stale-reads test fault: every read local."""
        return None

    def _reads_are_local(self) -> bool:
        """A lone voter that leads, has committed in its term and applied it all
        cannot be behind anyone: its state is the linearizable state."""
        core = self.core
        log_ = core.log
        return (
            core.role is Role.LEADER
            and core.conf.voters == (self.node_id,)
            and log_.term(log_.committed) == core.term
            and self.state_machine.applied_index >= log_.committed
        )

    async def change_membership(self, op: ConfChangeType, node_id: str,
                                addresses: Addresses | None) -> Reply:
        """Propose one membership change and wait until it is applied: its log index,
        or the error to reply."""
        context = addresses.to_bytes() if addresses else b""
        try:
            index = self.core.propose_conf_change(ConfChange(op, node_id, context))
        except NotLeader:
            return CLUSTERDOWN
        except ConfChangePending as error:
            return RespError(f"TRYAGAIN membership change in progress: {error}")
        except ConfChangeError as error:
            return RespError(f"ERR {error}")
        except RaftError as error:
            return RespError(f"TRYAGAIN {error}")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.conf_waiters[index] = future
        self.waiters[index] = Waiter(self.core.term, future, time.monotonic() + PROPOSAL_TIMEOUT)
        self.wakeup.set()
        reply = await future
        return reply if isinstance(reply, RespError) else index

    def transfer_leadership(self, target: str) -> None:
        self.core.transfer_leadership(target)
        self.wakeup.set()

    def leader_for(self) -> float:
        """Seconds this node has led the group (0 when it does not lead)."""
        return time.monotonic() - self._leader_since if self.is_leader() else 0.0

    def is_caught_up(self, node: str) -> bool:
        """On the leader: ``node`` is alive and has every entry of the log."""
        progress = self.core.prs.get(node)
        return (progress is not None and progress.recent_active
                and progress.match >= self.last_index)

    def best_transfer_target(self) -> str | None:
        status = self.core.status()
        progress = status["progress"]
        voters = [v for v in self.core.conf.voters if v != self.node_id and v in progress]
        if not voters:
            return None
        return max(voters, key=lambda v: progress[v]["match"])

    # -- transport callbacks -----------------------------------------------------

    def on_message(self, message: Message) -> None:
        if self.stopping:
            return
        if message.from_ in self.removed_members and message.from_ not in self.core.conf:
            # a removed node that missed the news (it was down, say) still
            # talks to us: tell it again, at most once a second
            self._notify_removed(message.from_, self.removed_at.get(message.from_, 0))
            return
        self.core.step(message)
        if self.reads_local and self.core.role is not Role.LEADER:
            self.reads_local = False
        self._handle_ready_or_wake()

    def on_removed_notice(self, sender: str, index: int) -> None:
        """A member applied our removal (committed at ``index``): stop serving."""
        if self.stopping or index <= self.joined_at:
            return  # a removal from before this node joined (again)
        log.warning("removed from the cluster", extra={"told_by": sender, "index": index,
                                                       "group": self.name})
        if self.on_removed is not None:
            asyncio.get_running_loop().call_soon(self.on_removed)

    def _notify_removed(self, node_id: str, index: int) -> None:
        now = time.monotonic()
        if now - self.removed_members.get(node_id, 0.0) < 1.0:
            return
        self.removed_members[node_id] = now
        addresses = self.book.get(node_id)
        if addresses is not None:
            self.transport.notify_removed(node_id, addresses.raft, self.name, index)

    def on_snapshot(self, message: Message, path: Path) -> None:
        if message.context:
            self.book.merge(AddressBook.parse(message.context))
            self._connect_peers()
        self.incoming_snapshots[message.snapshot.index] = path
        self.on_message(message)

    def on_unreachable(self, node_id: str) -> None:
        self.core.report_unreachable(node_id)

    # -- the loop ----------------------------------------------------------------

    def _catch_up_ticks(self) -> int:
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
        interval = self.config.tick_ms / 1000
        now = time.monotonic()
        due = int((now - self._last_tick) / interval)
        if due <= 0:
            return 0
        limit = 2 * self.config.election_ticks
        if due > limit:
            due, self._last_tick = limit, now
        else:
            self._last_tick += due * interval
        if due >= max(2, self.config.election_ticks // 2):
            # a pause, not a late tick: the peers were likely paused as well (a VM,
            # a host under load), and their messages are still unread
            log.warning("event loop paused %d ms", due * self.config.tick_ms,
                        extra={"group": self.name})
            self.core.tick_after_pause(due)
        else:
            for _ in range(due):
                self.core.tick()
        return due

    async def _ticker(self) -> None:
        interval = self.config.tick_ms / 1000
        ticks = 0
        self._last_tick = time.monotonic()
        while not self.stopping:
            await asyncio.sleep(interval)
            ticks += 1
            if ticks % PERSIST_EVERY_TICKS == 0:
                self.state_machine.persist()
            if self._unsynced and ticks % 40 == 0:
                self._unsynced = False
                self.wal.sync()
            self._catch_up_ticks()
            if ticks % DISK_CHECK_TICKS == 0:
                self._check_disk()
            self._expire_waiters()
            self._check_settled()  # waiters expired, leadership lost: wake cross-group writes
            self._maybe_promote_learners()
            self._maybe_snapshot()
            self.wakeup.set()

    async def _run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if self.stopping and not self.core.has_ready():
                return
            if self.pending_compaction is not None:
                # The WAL is not thread-safe: compact here, between two Readies.
                index, term = self.pending_compaction
                self.pending_compaction = None
                try:
                    self.faults.crash_point(CrashPoint.COMPACT_BEFORE)
                    self.wal.compact(index, term)  # on the loop: other groups share the WAL
                    self.faults.crash_point(CrashPoint.COMPACT_AFTER)
                except DiskFull as error:
                    log.error("log compaction postponed: %s", error)
                    self.pending_compaction = (index, term)
            self._hand_over_proposals()
            self._hand_over_reads()
            while self.core.has_ready():
                await self._handle_ready(self.core.ready())
                self._hand_over_proposals()
                self._hand_over_reads()
            self._serve_ready_reads()
            self._note_leader()
            if self.stopping and not self.core.has_ready():
                # stop() set the wakeup once and nothing will set it again (the
                # ticker is cancelled, messages are ignored): if this turn used
                # it up, waiting for another one would hang the shutdown.
                return

    def _hand_over_proposals(self) -> None:
        if not self.proposals:
            return
        batch, self.proposals = self.proposals, []
        now = now_ms()
        try:
            last = self.core.propose_batch([encode_command(now, args) for args, _ in batch])
        except NotLeader:
            for args, future in batch:  # leadership moved since route() said "here"
                command = COMMANDS.get(args[0].decode("latin-1").lower())
                future.set_result(self.redirect(command, args))
            return
        except RaftError as error:
            for _, future in batch:
                future.set_result(RespError(f"TRYAGAIN {error}"))
            return
        term = self.core.term
        deadline = time.monotonic() + PROPOSAL_TIMEOUT
        first = last - len(batch) + 1
        for offset, (_, future) in enumerate(batch):
            self.waiters[first + offset] = Waiter(term, future, deadline)

    def redirect(self, command: Command | None, args: list[bytes]) -> RespError:
        """Where a write that this node cannot take goes: -MOVED with the slot of its
        first key to the leader, as a Redis Cluster replica answers, or -CLUSTERDOWN."""
        address = self.leader_client_address()
        if address is None:
            return CLUSTERDOWN
        keys = command.key_indexes(len(args)) if command is not None else range(0)
        slot = key_slot(args[keys[0]]) if keys else 0
        return RespError(f"MOVED {slot} {address}")

    def _read_turn(self) -> None:
        """Start the round of the reads asked in this loop turn, from a plain callback:
        waking the loop task costs more than the round itself."""
        if self.stopping:
            self.wakeup.set()
            return
        self._hand_over_reads()
        self._handle_ready_or_wake()

    def _hand_over_reads(self) -> None:
        if not self.read_requests:
            return
        requests, self.read_requests = self.read_requests, {}
        if "lease" in requests:
            self._catch_up_ticks()  # a lease is only as good as the clock it is read on
        for mode, batch in requests.items():
            self.read_seq += 1
            ctx = f"{self.node_id}:{self.incarnation}:{self.read_seq}".encode()
            self.core.cfg.lease_read = mode == "lease"
            try:
                self.core.read_index(ctx)
            except NotLeader:
                _fail(batch.future, CLUSTERDOWN)
                continue
            finally:
                self.core.cfg.lease_read = False
            self.read_waiting[ctx] = (batch.future, time.monotonic() + READ_TIMEOUT)
            self.read_rounds += 1
            self.reads += batch.readers

    async def _handle_ready(self, rd: Ready) -> None:
        send = self._send
        for message in rd.eager_messages:
            send(message)
        if rd.snapshot is not None:
            await self._install_snapshot(rd.snapshot)
        self._write_ready(rd)
        if rd.must_sync:  # a commit-index-only change rides along with the next fsync
            await self._make_durable(rd.entries)
        self._finish_ready(rd)

    async def _make_durable(self, entries: list[Entry]) -> None:
        await self._sync_wal(entries)

    async def _leave_unsynced(self, entries: list[Entry]) -> None:
        """_make_durable under the early-ack test fault: the ticker syncs now and then,
        acknowledgements outrun the disk."""
        self._unsynced = True

    def _handle_ready_or_wake(self) -> None:
        """Handle the core's Ready here if it needs no fsync; wake the loop task for
        whatever is left (a Ready that needs one, or a further Ready)."""
        if not self._handle_ready_now() or self.core.has_ready():
            self.wakeup.set()

    def _handle_ready_now(self) -> bool:
        """Handle the core's Ready in this callback when it needs no fsync and the
        loop task holds none (a heartbeat's answer, a read round's end, a commit to
        apply): one loop turn less on every read round and every commit."""
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
        send = self._send
        for message in rd.messages:
            send(message)
        if rd.committed_entries:
            self._apply(rd.committed_entries)
        for state in rd.read_states:
            pending = self.read_waiting.pop(state.ctx, None)
            if pending is not None:
                self.read_ready.append((state.index, pending[0]))
        for ctx in rd.dropped_reads:
            pending = self.read_waiting.pop(ctx, None)
            if pending is not None:
                _fail(pending[0], CLUSTERDOWN)
        self.core.advance(rd)
        self.reads_local = self._reads_are_local()
        self._serve_ready_reads()
        self._check_settled()

    async def _sync_wal(self, entries: list[Entry]) -> None:
        """fsync the log; on a full disk, refuse new writes and retry until there is room.

        Nothing that waits on this Ready (acknowledgements, votes) goes out before the
        fsync succeeds, so a full disk delays but never loses anything. The clients
        whose writes are stuck here are told at once that the outcome is unknown.
        The fsync is shared with the node's other groups (storage.nodelog)."""
        while True:
            try:
                await self.wal.sync_soon()
                return
            except DiskFull as error:
                if not self.disk_full:
                    log.error("disk full: refusing writes until space is freed: %s", error)
                self.disk_full = True
                for entry in entries:
                    waiter = self.waiters.pop(entry.index, None)
                    if waiter is not None and not waiter.future.done():
                        waiter.future.set_result(NOT_DURABLE)
                if self.stopping:
                    raise
                await asyncio.sleep(DISK_RETRY)

    def _check_disk(self) -> None:
        """Refuse writes while free space is below min-free-disk; resume when it is back."""
        try:
            free = shutil.disk_usage(self.dir).free
        except OSError:
            return
        low = free < self.config.min_free_disk
        if low != self.disk_full:
            if low:
                log.error("disk almost full (%d bytes free): refusing writes", free)
            else:
                log.info("disk space available again: accepting writes")
            self.disk_full = low
        if not low and self.state_machine.store_failed:
            try:
                self.state_machine.rebuild_store()
            except (OSError, StoreError) as error:
                log.error("state store rebuild failed, will retry: %s", error)

    def _send(self, message: Message) -> None:
        if message.type is MessageType.SNAP:
            spawn(self._send_snapshot(message))
        else:
            self.transport.send(message)

    def _apply(self, entries: list[Entry]) -> None:
        self.bytes_since_snapshot += sum(len(entry.data) for entry in entries)
        for entry in entries:
            if entry.kind is EntryKind.CONF_CHANGE and entry.index > self.applied_index:
                self._on_conf_change(entry)
        replies = self.state_machine.apply(entries)
        waiters = self.waiters
        for entry, reply in zip(entries, replies, strict=True):
            waiter = waiters.pop(entry.index, None)
            if waiter is None or waiter.future.done():
                continue
            if entry.term != waiter.term:
                waiter.future.set_result(LOST)
            elif entry.kind is EntryKind.CONF_CHANGE:
                waiter.future.set_result(b"OK")
            else:
                waiter.future.set_result(reply)

    def _on_conf_change(self, entry: Entry) -> None:
        change = decode_conf_change(entry.data)
        addresses = Addresses.from_bytes(change.context) if change.context else None
        if addresses is not None:
            self.book.learn(change.node_id, addresses)
        if change.op is ConfChangeType.REMOVE:
            log.info("member removed", extra={"member": change.node_id, "index": entry.index})
            if change.node_id == self.node_id:
                if entry.index <= self.joined_at:
                    # an earlier membership of this node id, before it left and joined
                    # again: history, not news
                    log.info("ignoring an earlier removal of this node id",
                             extra={"index": entry.index, "joined_at": self.joined_at})
                elif self.on_removed is not None:
                    asyncio.get_running_loop().call_soon(self.on_removed)
            else:
                self.transport.drop_peer(change.node_id)
                # The removed node cannot learn this from the log (the leader
                # stopped replicating to it when the change was appended):
                # every member that applies the removal tells it directly.
                self.removed_members.setdefault(change.node_id, 0.0)
                self.removed_at[change.node_id] = entry.index
                if change.node_id not in self.core.conf:  # the latest: not re-added since?
                    self._notify_removed(change.node_id, entry.index)
        else:
            log.info("member added", extra={"member": change.node_id, "op": change.op.name,
                                            "index": entry.index})
            self.removed_members.pop(change.node_id, None)
            self.removed_at.pop(change.node_id, None)
            if addresses is not None:
                self.transport.set_peer(change.node_id, addresses.raft)

    def _serve_ready_reads(self) -> None:
        if not self.read_ready:
            return
        applied = self.state_machine.applied_index
        waiting: list[tuple[int, asyncio.Future[None]]] = []
        for index, future in self.read_ready:
            if index > applied:
                waiting.append((index, future))
            elif not future.done():
                future.set_result(None)
        self.read_ready = waiting

    def _note_leader(self) -> None:
        lead = self.core.lead
        if lead != self._last_leader:
            self._last_leader = lead
            self._leader_since = time.monotonic()
            self.leader_changes += 1
            log.info("leader changed", extra={"leader": lead, "term": self.core.term,
                                              "group": self.name})

    def _expire_waiters(self) -> None:
        now = time.monotonic()
        if self.waiters:
            expired = [i for i, w in self.waiters.items() if w.deadline < now]
            for index in expired:
                waiter = self.waiters.pop(index)
                if not waiter.future.done():
                    waiter.future.set_result(TIMED_OUT)
        if self.read_waiting:
            for ctx in [c for c, (_, d) in self.read_waiting.items() if d < now]:
                future, _ = self.read_waiting.pop(ctx)
                _fail(future, READ_TIMED_OUT)

    # -- membership: learners become voters once caught up --------------------

    def _maybe_promote_learners(self) -> None:
        core = self.core
        if core.role is not Role.LEADER or not core.conf.learners:
            return
        committed = core.log.committed
        for learner in core.conf.learners:
            progress = core.prs.get(learner)
            if (progress is None or progress.match == 0 or not progress.recent_active
                    or committed - progress.match > 64):
                continue  # not caught up yet: a voter that lags would hurt the quorum
            addresses = self.book.get(learner)
            try:
                core.propose_conf_change(ConfChange(
                    ConfChangeType.ADD_VOTER, learner,
                    addresses.to_bytes() if addresses else b""))
            except (RaftError, ConfChangeError):
                return
            log.info("promoting learner", extra={"member": learner})
            return

    # -- snapshots ---------------------------------------------------------------

    def _snapshot_path(self, index: int) -> Path:
        return self.snap_dir / f"snap-{index:020d}.sqlite"

    def _maybe_snapshot(self) -> None:
        if self.snapshotting or self.stopping:
            return
        entries = self.applied_index - self.snapshot_index
        if (entries < self.config.snapshot_entries
                and self.bytes_since_snapshot < self.config.snapshot_bytes
                and not (entries and self.wal.holds_oldest_segment())):
            return
        self.snapshotting = True
        spawn(self.take_snapshot())

    async def take_snapshot(self) -> SnapshotMeta | None:
        """Copy the state machine to a snapshot file and compact the log behind it."""
        try:
            tmp = self.snap_dir / "taking.sqlite.tmp"
            tmp.unlink(missing_ok=True)
            async with self.store_lock:  # never beside a snapshot install
                self.state_machine.persist()
                index, _term = await asyncio.to_thread(self.state_machine.store.snapshot_to, tmp)
            if index <= self.snapshot_index:
                tmp.unlink(missing_ok=True)
                return None
            meta = self.core.snapshot_meta(index)
            self.faults.crash_point(CrashPoint.SNAPSHOT_TAKEN_BEFORE_RENAME)
            tmp.replace(self._snapshot_path(index))
            self.faults.crash_point(CrashPoint.SNAPSHOT_TAKEN_BEFORE_META)
            self._write_snapshot_meta(meta)
            self.core.snapshot_taken(meta)
            self._delete_old_snapshots(index)
            self.snapshot_index = index
            self.bytes_since_snapshot = 0
            self.pending_compaction = (meta.index, meta.term)
            self.wakeup.set()
            log.info("snapshot taken", extra={"index": index, "group": self.name})
            return meta
        except Exception:
            log.exception("snapshot failed")
            return None
        finally:
            self.snapshotting = False

    def _write_snapshot_meta(self, meta: SnapshotMeta) -> None:
        write_json_atomically(self.snap_dir / "meta.json", {
            "index": meta.index, "term": meta.term,
            "voters": list(meta.conf_state.voters), "learners": list(meta.conf_state.learners),
        })

    def _delete_old_snapshots(self, keep: int) -> None:
        for path in self.snap_dir.glob("snap-*.sqlite"):
            if path != self._snapshot_path(keep):
                path.unlink(missing_ok=True)

    async def _send_snapshot(self, message: Message) -> None:
        meta = message.snapshot
        path = self._snapshot_path(meta.index)
        ok = False
        try:
            if not path.exists():
                log.info("no snapshot file at %d; taking a new one", meta.index)
                if not self.snapshotting:
                    self.snapshotting = True
                    await self.take_snapshot()
                return
            message.context = self.book.to_bytes()
            log.info("sending snapshot", extra={"peer": message.to, "index": meta.index})
            await self.transport.send_snapshot(message, path, self.config.snapshot_chunk_bytes)
            ok = True
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError, KeyError) as e:
            log.warning("snapshot to %s failed: %s", message.to, e)
        finally:
            self.core.report_snapshot(message.to, ok)
            self.wakeup.set()

    async def _install_snapshot(self, meta: SnapshotMeta) -> None:
        path = self.incoming_snapshots.pop(meta.index, None)
        if path is None:
            raise RuntimeError(f"snapshot {meta.index} to install was not received")
        log.info("installing snapshot", extra={"index": meta.index, "group": self.name})
        store = self.state_machine.store
        async with self.store_lock:
            # The ticker's persist() must not write the old keyspace into the new
            # file: nothing may run between restore_from and reload, and no batch
            # may be queued while we wait for the copies.
            self.state_machine.paused = True
            try:
                await asyncio.to_thread(store.flush)
                # keep a copy to serve to others if we lead one day
                await asyncio.to_thread(_copy, path, self._snapshot_path(meta.index))
                self.faults.crash_point(CrashPoint.INSTALL_BEFORE_RESTORE)
                store.restore_from(path)
                self.state_machine.reload()
                self.faults.crash_point(CrashPoint.INSTALL_AFTER_RESTORE)
            finally:
                self.state_machine.paused = False
        self._write_snapshot_meta(meta)
        self._delete_old_snapshots(meta.index)
        self.snapshot_index = meta.index
        self.bytes_since_snapshot = 0
        self.faults.crash_point(CrashPoint.INSTALL_BEFORE_COMPACT)
        self.wal.compact(meta.index, meta.term)
        for old in self.incoming_snapshots.values():
            old.unlink(missing_ok=True)
        self.incoming_snapshots.clear()

    # -- shutdown ------------------------------------------------------------------

    async def stop(self) -> None:
        """Let the loop finish its Ready (an fsync may be running), then close."""
        self.stopping = True
        for _, future in self.proposals:
            if not future.done():
                future.set_result(SHUTTING_DOWN)
        self.proposals.clear()
        loop_task, tick_task = self.tasks
        tick_task.cancel()
        self.wakeup.set()
        try:
            await asyncio.wait_for(loop_task, 10)
        except (asyncio.CancelledError, TimeoutError):
            log.warning("raft loop did not stop in time")
        except DiskFull as error:
            log.error("stopping with log records not on disk (disk full): %s", error)
        for waiter in self.waiters.values():
            if not waiter.future.done():
                waiter.future.set_result(SHUTTING_DOWN)
        for future, _ in self.read_waiting.values():
            _fail(future, SHUTTING_DOWN)
        for batch in self.read_requests.values():
            _fail(batch.future, SHUTTING_DOWN)
        self.read_requests = {}
        # Close both even if one fails: what is not on disk here is in the other
        # (the store is rebuilt from the log at start-up, the log has every commit).
        store = self.state_machine.store
        try:
            self.state_machine.persist()
            if not self.state_machine.store_failed:
                await asyncio.to_thread(store.flush)
        except (OSError, StoreError) as error:
            log.error("state store not flushed at shutdown: %s", error)
        finally:
            with contextlib.suppress(OSError, StoreError):
                store.close()
        try:
            self.wal.sync()  # the node closes the WAL once every group has stopped
        except (OSError, RuntimeError) as error:
            log.error("log not synced at shutdown (restart replays what is on disk): %s", error)


def _fail(future: asyncio.Future[None], error: RespError) -> None:
    if not future.done():
        future.set_exception(error)


def _copy(src: Path, dest: Path) -> None:
    tmp = dest.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
