"""One Raft group on this node: its core, its state machine, and what drives them.

``RaftGroup`` builds the parts and is what the rest of the node talks to: the
router proposes writes and asks for read barriers, the node and the cluster
admin read its leader and members, the transport hands it messages. The parts,
one concern each: the Ready loop (ready_loop), writes in flight (proposals),
read barriers (reads), snapshots, membership effects (membership) and the
full-disk policy (disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from respkv.config import Config
from respkv.protocol.reply import Reply
from respkv.raft.confchange import ConfChange, ConfChangeType, encode_conf_change
from respkv.raft.core import Config as CoreConfig
from respkv.raft.core import RaftCore, Role
from respkv.raft.messages import ConfState, Message, SnapshotMeta
from respkv.raft.refusal import RefusalReason
from respkv.raft.types import Entry, EntryKind, HardState
from respkv.replication.addresses import AddressBook, Addresses
from respkv.replication.disk import DiskGuard
from respkv.replication.identity import NodeRefused
from respkv.replication.membership import Membership
from respkv.replication.outcomes import GroupDown, ShuttingDown
from respkv.replication.proposals import Proposals
from respkv.replication.reads import ReadIndexReads
from respkv.replication.ready_loop import ReadyLoop
from respkv.replication.snapshots import Snapshots, read_meta
from respkv.state.keyspace import Keyspace
from respkv.state.machine import ApplyCommand, StateMachine
from respkv.storage.nodelog import GroupLog
from respkv.storage.store import StateStore
from respkv.storage.wal import DiskFull

if TYPE_CHECKING:
    from respkv.replication.transport import Transport

logger = logging.getLogger(__name__)


class RaftGroup:
    def __init__(self, name: str, config: Config, directory: Path, transport: Transport,
                 book: AddressBook, wal: GroupLog, apply_command: ApplyCommand,
                 on_removed: Callable[[], None], bootstrap: Addresses | None = None,
                 joined_at: int = 0) -> None:
        self.name = name
        self.names = (name,)  # the groups a command routed here touches (a route target)
        self.node_id = config.node_id
        self.config = config
        self.transport = transport
        self.book = book
        self.wal = wal
        self.dir = directory / "raft" / name
        snap_dir = self.dir / "snap"
        snap_dir.mkdir(parents=True, exist_ok=True)
        store_path = directory / "data" / f"{name}.sqlite"
        store_path.parent.mkdir(parents=True, exist_ok=True)
        self.keyspace = Keyspace()
        self.machine = StateMachine(self.keyspace, StateStore(store_path), apply_command)
        if bootstrap is not None:
            self._bootstrap(bootstrap)
        snapshot = self._latest_snapshot(snap_dir)
        self.core = self._make_core(snapshot)
        if config.force_new_cluster and self._force_alone():
            self.core = self._make_core(snapshot)
        self.stopping = False
        # Told of a non-member whose message speaks of a log longer than this one's or a
        # later term (set only on a node that has just bootstrapped its token's cluster);
        # True: the node stops, the message is not for the core
        self.on_stranger: Callable[[str], bool] | None = None
        self.down = ""  # why the group failed and was fenced here; empty: it runs
        self.failures = 0
        self.settle_waiters: list[asyncio.Future[None]] = []  # see when_settled()
        self.proposals = Proposals(self.core, self.leader_client_address,
                                   lambda: config.max_entry_bytes)
        self.reads = ReadIndexReads(self.core, self.node_id, self._read_turn,
                                    self._catch_up_ticks)
        self.membership = Membership(name, self.node_id, joined_at, self.core, book,
                                     transport, self.proposals, on_removed, self._wake)
        self.snapshots = Snapshots(name, snap_dir, self.core, self.machine, wal, transport,
                                   book, config, snapshot.index if snapshot else 0,
                                   self._wake, self.membership.connect_peers, self.on_message)
        self.disk = DiskGuard(self.dir, lambda: config.min_free_disk, wal, self.machine,
                              self.proposals)
        self.loop = ReadyLoop(name, config, self.core, wal, self.machine, self.proposals,
                              self.reads, self.snapshots, self.membership, self.disk,
                              transport, self.check_settled, self.fail)
        if config.faults.stale_reads:
            self.read_barrier = self._no_barrier  # type: ignore[method-assign]
        transport.handlers[name] = self
        self.membership.connect_peers()

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

    def _force_alone(self) -> bool:
        """--force-new-cluster: make this node the group's only member, from its own
        log. Everything in its log counts as committed, and removals of every other
        member follow it, committed too: the core then applies them at start and
        campaigns alone. True if the log changed."""
        conf = self.core.conf
        others = [n for n in (*conf.voters, *conf.learners) if n != self.node_id]
        if self.node_id not in conf.voters:
            raise NodeRefused(f"--force-new-cluster: {self.node_id} is not a voter of "
                              f"{self.name}; start it on the survivor that is one")
        if not others:
            return False
        term = max(self.core.term, self.core.log.last_term())
        index = self.core.log.last_index()
        removals = [Entry(term, index + i, EntryKind.CONF_CHANGE,
                          encode_conf_change(ConfChange(ConfChangeType.REMOVE, node)))
                    for i, node in enumerate(others, start=1)]
        self.wal.append(removals)
        self.wal.set_hard_state(HardState(term=term, vote=self.node_id,
                                          commit=removals[-1].index))
        self.wal.sync()
        logger.warning("--force-new-cluster: this node is now the only member; removed %s",
                       ",".join(others), extra={"group": self.name})
        return True

    def _latest_snapshot(self, snap_dir: Path) -> SnapshotMeta | None:
        snapshot = read_meta(snap_dir)
        snap_index, snap_term = self.wal.snapshot_point()
        if snap_index and (snapshot is None or snapshot.index != snap_index):
            # The WAL was compacted by an installed snapshot whose meta we keep
            # beside it; fall back on what the WAL says if the file is older.
            snapshot = SnapshotMeta(snap_index, snap_term,
                                    snapshot.conf_state if snapshot else ConfState())
        return snapshot

    def _make_core(self, snapshot: SnapshotMeta | None) -> RaftCore:
        state = self.wal.load()
        cfg = self.config
        core_config = CoreConfig(
            node_id=self.node_id,
            group=self.name,
            election_tick=cfg.election_ticks,
            heartbeat_tick=cfg.heartbeat_ticks,
            pre_vote=True,
            check_quorum=True,
            lease_read=cfg.read_consistency == "linearizable",  # for forwarded reads
            lease_margin_ticks=cfg.lease_margin_ticks(),
            applied=max(self.machine.applied_index, snapshot.index if snapshot else 0),
            seed=random.SystemRandom().randrange(1 << 62),
            vote_floor=self.wal.vote_floor(),
        )
        entries = [e for e in state.entries if snapshot is None or e.index > snapshot.index]
        return RaftCore(core_config, state.hard_state, snapshot, entries)

    async def start(self) -> None:
        if self.core.conf.voters == (self.node_id,):
            self.core.campaign()  # alone: no one to wait for, lead at once
        self.loop.start()

    # -- what the node, the router and the admin read ---------------------------

    @property
    def term(self) -> int:
        return self.core.term

    @property
    def commit_index(self) -> int:
        return self.core.log.committed

    @property
    def applied_index(self) -> int:
        return self.machine.applied_index

    @property
    def last_index(self) -> int:
        return self.core.log.last_index()

    @property
    def snapshot_index(self) -> int:
        return self.snapshots.index

    @property
    def role(self) -> str:
        return self.core.role.name.lower()

    @property
    def reads_local(self) -> bool:
        return self.loop.reads_local

    @property
    def stalled(self) -> bool:
        return self.loop.stalled

    @property
    def stalls(self) -> int:
        return self.loop.stalls

    @property
    def disk_full(self) -> bool:
        return self.disk.full

    @property
    def leader_changes(self) -> int:
        return self.loop.leader_changes

    @property
    def refusal_counts(self) -> dict[RefusalReason, int]:
        """Raft messages the core refused since start-up, by reason."""
        return self.core.refusal_counts

    def is_leader(self) -> bool:
        return self.core.role is Role.LEADER

    def leader_id(self) -> str | None:
        return self.core.lead

    def leader_client_address(self) -> str | None:
        """Where a client goes for what only the leader does: None while no leader is
        known, or while the one known has not been heard for an election timeout (it
        is probably gone; an election is on its way)."""
        lead = self.core.lead
        if lead is None:
            return None
        if lead == self.node_id:
            return self.config.client_address
        if not self.transport.health.reachable(lead):
            return None
        addresses = self.book.get(lead)
        return addresses.client if addresses else None

    def members(self) -> ConfState:
        return self.core.conf

    def leader_for(self) -> float:
        """Seconds this node has led the group (0 when it does not lead)."""
        return time.monotonic() - self.loop.leader_since if self.is_leader() else 0.0

    def is_caught_up(self, node: str) -> bool:
        """On the leader: ``node`` is alive and has every entry of the log."""
        progress = self.core.prs.get(node)
        return (progress is not None and progress.recent_active
                and progress.match >= self.last_index)

    def in_sync_followers(self) -> int:
        """On the leader: the followers holding every entry of the log."""
        last = self.last_index
        return sum(1 for node, progress in self.core.prs.items()
                   if node != self.node_id and progress.match >= last)

    @property
    def is_learner(self) -> bool:
        return self.node_id in self.core.conf.learners

    def log_in_memory(self) -> tuple[int, int]:
        """Entries the core holds in memory, and their bytes (a copy of the list is
        summed: the metrics thread reads this while the loop appends)."""
        entries = list(self.core.log.entries)
        return len(entries), sum(len(entry.data) for entry in entries)

    def store_bytes(self) -> int:
        """The state store's files on disk (the SQLite database and its journal)."""
        path = self.machine.store.path
        total = 0
        for name in (path, path.with_name(path.name + "-wal")):
            with contextlib.suppress(OSError):
                total += name.stat().st_size
        return total

    def follower_matches(self) -> dict[str, int]:
        """On the leader: each follower's and learner's highest entry known to match."""
        if not self.is_leader():
            return {}
        # a copy first: the metrics thread calls this while the loop may change prs
        return {node: progress.match for node, progress in list(self.core.prs.items())
                if node != self.node_id}

    def best_transfer_target(self) -> str | None:
        """On the leader: the voter with the most of the log."""
        if not self.is_leader():
            return None
        progress = self.core.prs
        voters = [v for v in self.core.conf.voters if v != self.node_id and v in progress]
        if not voters:
            return None
        return max(voters, key=lambda v: progress[v].match)

    def read_rounds(self) -> tuple[int, int]:
        """ReadIndex rounds made, and the reads they carried."""
        return self.reads.rounds, self.reads.reads

    def lease_and_quorum_reads(self) -> tuple[int, int]:
        """ReadIndex requests this node answered as leader from its lease, and the
        heartbeat rounds it ran for the others."""
        return self.core.lease_reads, self.core.quorum_read_rounds

    # -- writes and reads ------------------------------------------------------------

    def propose(self, args: list[bytes], slot: int = 0,
                at: int | None = None) -> asyncio.Future[Reply]:
        """Append a write command to the log: its reply once applied. ``slot`` is the
        hash slot of its first key, for the redirect if leadership has moved. ``at``:
        the time the entry carries, when the command already ran at that time on a
        draft (a script's effects); otherwise the clock's."""
        if self.stopping:
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            future.set_exception(ShuttingDown())
            return future
        future = self.proposals.submit(args, slot, at)
        self.loop.wakeup.set()
        return future

    def read_barrier(self, mode: str) -> asyncio.Future[None] | None:
        """A future that resolves once this node's state reflects every write
        acknowledged before the call; None when the read may run now."""
        if self.down:  # even a stale read: this copy no longer moves
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(self.down_outcome())
            return failed
        if mode == "stale" or self.loop.reads_local:
            return None
        if mode == "linearizable" and self._lease_read_now():
            return None
        return self.reads.barrier(mode)

    def _lease_read_now(self) -> bool:
        """A leader whose lease holds, with all it has committed applied, reads at once:
        a ReadIndex request would be answered from the lease anyway, a loop turn and a
        future later."""
        if self.core.role is not Role.LEADER:
            return False
        if self.loop.catch_up_ticks():  # a lease is only as good as its clock
            self._wake()  # the ticks may have heartbeats to send
        index = self.core.lease_read_index()
        return index is not None and self.machine.applied_index >= index

    def _no_barrier(self, mode: str) -> None:
        """read_barrier under the stale-reads test fault: every read local."""
        return None

    def settled(self) -> bool:
        """Every write proposed here so far is applied (none queued or in flight)."""
        return self.proposals.settled and self.applied_index >= self.last_index

    def when_settled(self) -> asyncio.Future[None]:
        """Resolves once settled() holds or this node stops leading the group."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.settle_waiters.append(future)
        self.check_settled()
        return future

    def check_settled(self) -> None:
        if self.settle_waiters and (self.settled() or not self.is_leader() or self.stopping):
            waiting, self.settle_waiters = self.settle_waiters, []
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    # -- membership and leadership --------------------------------------------------

    async def change_membership(self, op: ConfChangeType, node_id: str,
                                addresses: Addresses | None) -> int:
        """Propose one membership change and wait until it is applied: its log index."""
        return await self.membership.change(op, node_id, addresses)

    def transfer_leadership(self, target: str) -> None:
        self.core.transfer_leadership(target)
        self._wake()

    # -- transport callbacks -----------------------------------------------------

    def _from_a_running_cluster(self, message: Message) -> bool:
        """A non-member's message that speaks of a log longer than ours, or of a later
        term: a node joining our new cluster knows only our log and our term. The term
        matters when the cluster elected a new leader while this node was down, which
        knows nothing yet of this node's log and sends heartbeats that commit nothing."""
        return (max(message.index, message.commit) > self.core.log.last_index()
                or message.term > self.core.term)

    def on_message(self, message: Message) -> None:
        if self.stopping or self.membership.is_removed_sender(message.from_):
            return
        if self.on_stranger is not None and message.from_ not in self.core.conf \
                and self._from_a_running_cluster(message) and self.on_stranger(message.from_):
            return
        try:
            self.core.step(message)
            if self.loop.reads_local and self.core.role is not Role.LEADER:
                self.loop.reads_local = False
            self.loop.handle_ready_or_wake()
        except Exception as error:  # our bug, not the peer's: fence the group
            self.fail(error, "handling a message")

    def on_snapshot(self, message: Message, path: Path) -> None:
        self.snapshots.receive(message, path)

    def on_removed_notice(self, sender: str, index: int) -> None:
        if not self.stopping:
            self.membership.removal_notice(sender, index)

    def on_unreachable(self, node_id: str) -> None:
        self.core.report_unreachable(node_id)

    # -- the parts' hooks ------------------------------------------------------------

    def _wake(self) -> None:
        self.loop.wakeup.set()

    def _read_turn(self) -> None:
        try:
            self.loop.read_turn()
        except Exception as error:
            self.fail(error, "a read round")

    # -- failure -------------------------------------------------------------------

    def fail(self, error: BaseException, where: str) -> None:
        """An exception escaped this group's code: fence the group on this node. Its
        tasks stop, it ignores its peers (who elect a leader among themselves) and
        claims no lead, everything waiting on it and every later request is answered
        -CLUSTERDOWN with the reason, and its state is not persisted again (an apply
        may have stopped half-way: the log rebuilds it at the next start)."""
        if self.down:
            return
        self.down = f"{where} failed: {error.__class__.__name__}: {error}"
        self.failures += 1
        logger.error("group stopped on this node: %s; the other members go on without "
                     "it, restart the node to bring it back", self.down, exc_info=error,
                     extra={"group": self.name})
        self.stopping = True
        self.loop.halt()
        self.core.step_down()
        outcome = self.down_outcome()
        self.proposals.close(outcome)
        self.reads.close(outcome)
        self.check_settled()

    def down_outcome(self) -> GroupDown:
        return GroupDown(f"group {self.name} is down on this node: {self.down} "
                         "(see the log; a restart brings it back)")

    def _catch_up_ticks(self) -> None:
        self.loop.catch_up_ticks()

    # -- shutdown ------------------------------------------------------------------

    async def stop(self) -> None:
        """Let the loop finish its Ready (an fsync may be running), then close."""
        self.stopping = True
        self.proposals.reject_queued(ShuttingDown())
        try:
            await self.loop.stop()
        except (asyncio.CancelledError, TimeoutError):
            logger.warning("raft loop did not stop in time", extra={"group": self.name})
        except DiskFull as error:
            logger.error("stopping with log records not on disk (disk full): %s", error)
        self.proposals.close(ShuttingDown())
        self.reads.close(ShuttingDown())
        self.check_settled()  # stopping: the cross-group writes waiting give up
        # Close both even if one fails: what is not on disk here is in the other
        # (the store is rebuilt from the log at start-up, the log has every commit).
        if not self.down:  # a failed group's state may be half an apply: not kept
            self.machine.persist()
        await asyncio.to_thread(self.machine.close, not self.down)
        try:
            self.wal.sync()  # the node closes the WAL once every group has stopped
        except (OSError, RuntimeError) as error:
            logger.error("log not synced at shutdown (restart replays what is on disk): %s",
                         error)
