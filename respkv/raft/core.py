"""The Raft core: a pure, deterministic state machine in the style of etcd's raft.

No I/O, no clock, no global randomness: the driver calls ``tick()``, ``step()``,
``propose()``... and carries out each :class:`Ready` before calling ``advance()``.

Ready/advance contract (see also :class:`Ready`):

1. ``if core.has_ready(): rd = core.ready()`` — at most one Ready outstanding;
   ``step``/``tick``/``propose``/``read_index`` may be called before ``advance``.
2. ``rd.eager_messages`` may be sent at once, before or while persisting
   (the leader's appends and heartbeats: the leader counts itself only once
   durable, i.e. at ``advance``).
3. If ``rd.snapshot``: install it (state machine replaced by the snapshot's
   bytes, which came with the MsgSnap), drop all log entries.
   If ``rd.entries``: drop every stored entry with index >= ``rd.entries[0].index``,
   then append ``rd.entries``. If ``rd.hard_state``: store it.
   fsync if ``rd.must_sync`` (a commit-only HardState change needs no fsync).
4. Then send ``rd.messages`` (they promise what step 3 made durable).
5. Apply ``rd.committed_entries`` in order (after step 3: a follower may be handed
   entries in the same Ready that makes them durable); serve ``rd.read_states``
   once applied >= their index; fail ``rd.dropped_reads`` at once.
6. ``core.advance(rd)``.

Snapshots: the core holds metadata only. A MsgSnap to send (in either message
list) means: stream the latest durable snapshot to ``msg.to`` — if it is newer
than ``msg.snapshot``, put its meta in the message instead — then hand the
message to the peer, whose driver keeps the bytes and steps the message into its
core; its ``Ready.snapshot`` then says to install them. Report the outcome on
the sender with ``report_snapshot(peer, ok)``. ``snapshot_meta(i)`` gives the
meta (term and membership at i) for a snapshot the driver takes at applied index
i; ``snapshot_taken(meta)`` lets the core compact its log.

Restart: ``RaftCore(config, hard_state, snapshot, entries)`` with what is on disk
and ``config.applied`` = the state machine's applied index. A brand-new founding
member (no state at all, ``config.voters`` set) bootstraps: its first Ready
carries conf entries 1..k (term 1) naming the initial members; every founding
member writes the same ones. A node joining later starts with no voters and
learns the membership from the log (or a snapshot).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from operator import attrgetter

from respkv.faults import RaftRule
from respkv.raft.confchange import (
    ConfChange,
    ConfChangeType,
    apply_conf_change,
    check_conf_change,
    decode_conf_change,
    encode_conf_change,
)
from respkv.raft.log import ENTRY_OVERHEAD, RaftLog
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.raft.progress import Progress, ProgressState
from respkv.raft.refusal import Refusal, RefusalReason
from respkv.raft.types import Entry, EntryKind, HardState

MT = MessageType
_APP = MT.APP
_NORMAL = EntryKind.NORMAL
_CONF = EntryKind.CONF_CHANGE
_kind = attrgetter("kind")
_term = attrgetter("term")
CAMPAIGN_TRANSFER = b"transfer"
# An empty append that only moves the commit index, to a replicating follower that was
# sent the whole log: accepted, it needs no reply (a refusal still gets one), as the
# follower acks those entries anyway. A third fewer messages in a write round.
_COMMIT_ONLY = b"\x01"
# On a refused append from a node below its vote floor: its log was cut by a repair, so
# it lacks entries it acknowledged; the leader lowers its match (never lowered otherwise).
LOG_CUT = b"log-cut"
_HB_CTX = struct.Struct("<QQ")  # (read round, leader tick) carried by heartbeats
# Term bounds. A real cluster moves its term by one per election, a few per second at
# the very worst: 2**32 elections take over a century even at one a second, so a term
# that far ahead of ours (or past 2**62, which no cluster reaches in the life of the
# universe and which leaves the wire's u64 room to count on) is a forgery or a bug,
# never news. Adopting it would be for good: a node at term 2**64-1 can never campaign
# again (the next term does not fit the wire) and its group is left leaderless.
MAX_TERM = 1 << 62
MAX_TERM_JUMP = 1 << 32
MAX_REFUSALS_PER_READY = 64  # a flood is counted in full but reported in part
_LEADER_MSGS = frozenset((MT.APP, MT.HEARTBEAT, MT.SNAP))
R = RefusalReason


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class RaftError(Exception):
    pass


class NotLeader(RaftError):
    """This node cannot take the request; ``leader_id`` is the leader it knows, or None."""

    def __init__(self, leader_id: str | None) -> None:
        super().__init__(f"not leader (leader: {leader_id})")
        self.leader_id = leader_id


class ProposalDropped(RaftError):
    """The leader refuses proposals for now (a leadership transfer is in progress)."""


class ConfChangePending(RaftError):
    """A membership change is still uncommitted, or this leader has not committed yet."""


@dataclass(slots=True)
class Config:
    node_id: str
    group: str = "g0"
    voters: tuple[str, ...] = ()  # initial membership, used when no snapshot/conf entry says
    learners: tuple[str, ...] = ()
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0  # 0: no byte bound
    max_size_per_msg: int = 1 << 20
    lease_read: bool = False  # needs check_quorum; may be switched per read_index() call
    # A lease runs out this many ticks before the election timeout that started with
    # the quorum's latest heartbeat: the clock drift it allows between two nodes.
    lease_margin_ticks: int = 1
    applied: int = 0  # the state machine's last applied index at start-up
    # Entries kept before a snapshot's index for slow followers: at most this many, and
    # at most this many bytes of them (the rest of the log is on disk and in the
    # snapshot; a tail of big entries would hold their memory until the next one).
    compaction_tail: int = 1000
    compaction_tail_bytes: int = 4 << 20
    seed: int = 0
    # (term, index) the log held before a repair cut it: no vote for a candidate whose
    # log is below it, no campaign while our own is (the cut entries may have counted
    # towards a quorum). None: no floor.
    vote_floor: tuple[int, int] | None = None
    # Test only (the simulator's teeth): rules of respkv.faults.RaftRule to break.
    broken_rules: frozenset[RaftRule] = frozenset()

    def __post_init__(self) -> None:
        if self.lease_read and not self.check_quorum:
            raise ValueError("lease_read needs check_quorum")
        if self.heartbeat_tick <= 0 or self.election_tick <= self.heartbeat_tick:
            raise ValueError("need 0 < heartbeat_tick < election_tick")
        if not 0 < self.lease_margin_ticks < self.election_tick:
            raise ValueError("need 0 < lease_margin_ticks < election_tick")


@dataclass(slots=True)
class ReadState:
    ctx: bytes
    index: int  # serve the read once applied >= index


@dataclass(slots=True)
class Ready:
    hard_state: HardState | None = None  # None: unchanged
    entries: list[Entry] = field(default_factory=list)
    snapshot: SnapshotMeta | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # after persisting
    eager_messages: list[Message] = field(default_factory=list)  # any time
    read_states: list[ReadState] = field(default_factory=list)
    dropped_reads: list[bytes] = field(default_factory=list)  # fail these at once
    must_sync: bool = False
    lead: str | None = None  # soft state at ready() time
    role: Role = Role.FOLLOWER
    refused: list[Refusal] = field(default_factory=list)  # messages dropped, and why


class RaftCore:
    def __init__(
        self,
        config: Config,
        hard_state: HardState | None = None,
        snapshot: SnapshotMeta | None = None,
        entries: list[Entry] | None = None,
    ) -> None:
        self.cfg = config
        self.role = Role.FOLLOWER
        self.id = config.node_id
        self.group = config.group
        self._rand = random.Random(config.seed)
        broken = config.broken_rules
        self._commit_old_terms = RaftRule.COMMIT_OLD_TERM in broken
        self._skip_uptodate_check = RaftRule.VOTE_NO_UPTODATE in broken
        self._lease_forever = RaftRule.LEASE_FOREVER in broken
        self._pause_keeps_lease = RaftRule.PAUSE_KEEPS_LEASE in broken
        self._adopt_any_term = RaftRule.ADOPT_ANY_TERM in broken
        self._ack_past_end = RaftRule.ACK_PAST_END in broken
        self._hear_strangers = RaftRule.HEAR_STRANGERS in broken
        if RaftRule.FORGET_VOTE in broken:
            self._hs_vote = lambda: None  # type: ignore[method-assign]
        hs = hard_state or HardState()
        boot = False
        if snapshot is None and not entries and hs.term == 0 and config.voters:
            # Bootstrap a new cluster: the initial membership becomes conf entries
            # 1..k of term 1, committed, identical on every founding member, so a
            # node that joins later learns it from the log like any other change.
            entries = self.bootstrap_entries(config.voters, config.learners)
            hs = HardState(1, None, len(entries))
            boot = True
        self.term = hs.term
        self.vote = hs.vote
        if snapshot is not None:
            self.log = RaftLog(snapshot.index, snapshot.term)
            self._base_conf = snapshot.conf_state
        else:
            self.log = RaftLog()
            self._base_conf = ConfState()
        self._snapshot = snapshot  # latest durable snapshot meta (sent to slow followers)
        log = self.log
        if entries:
            ents = [e for e in entries if e.index > log.offset]
            if ents and ents[0].index != log.offset + 1:
                raise ValueError(f"entries start at {ents[0].index}, snapshot at {log.offset}")
            log.entries = ents
        log.stable = log.last_index()
        if boot:
            log.stable = 0  # the bootstrap entries go to disk in the first Ready
        commit = max(hs.commit, config.applied, log.offset)
        log.committed = min(commit, log.last_index())
        log.applied = max(min(config.applied, log.committed), log.offset)
        self.conf = self._base_conf
        self._members = frozenset(self.conf.voters + self.conf.learners)
        self._last_conf_index = 0
        self._recompute_conf()

        self.role = Role.FOLLOWER
        self.lead: str | None = None
        self.prs: dict[str, Progress] = {}
        self._votes: dict[str, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        # ticks since a leader's message was last taken (see _stranger_excused)
        self.leaderless_elapsed = 0
        self._randomized_timeout = config.election_tick
        # With CheckQuorum, refuse votes for one election timeout after a restart:
        # this node may have acknowledged a leader's lease before it went down.
        # (Not tied to cfg.lease_read, which a driver may switch per read.)
        # A brand-new node (never in any term, or bootstrapping) promised nothing.
        self._lease_guard = config.check_quorum and hs.term > 0 and not boot
        self._now = 0
        self.lead_transferee: str | None = None
        self._transfer_sent = False  # a TimeoutNow went out this term: no more lease reads
        # ReadIndex state (leader)
        # (ctx, from, lease allowed) until the first commit in the term
        self._ro_wait_commit: list[tuple[bytes, str, bool]] = []
        self._ro_queue: list[tuple[bytes, str, int, int]] = []  # (ctx, from, index, round)
        self._ro_round = 0
        self.elections = 0  # campaigns past the pre-vote: terms this node stood in
        # reads this node led, answered from its lease, and heartbeat rounds it ran
        # for reads (monotonic, for INFO)
        self.lease_reads = 0
        self.quorum_read_rounds = 0
        # (tick, term, configuration) of the lease lease_read_index last found valid
        self._lease_held_at: tuple[int, int, object] | None = None
        self._ro_inflight = False
        self._ro_acks: list[str] = []  # followers that acked the round in flight, in order
        # Followers that acked the last round, first first: the next round asks only
        # as many of them as a quorum needs (the heartbeat of every tick asks all).
        self._ro_fast: list[str] = []
        # outputs
        self._msgs: list[Message] = []
        self._eager: list[Message] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[bytes] = []
        self._refused: list[Refusal] = []
        self.refusal_counts: dict[RefusalReason, int] = {}
        self._pending_snapshot: SnapshotMeta | None = None
        self._prev_hs = HardState(hs.term, hs.vote, hs.commit)
        self._durable_term = hs.term
        if log.stable < log.last_index():
            self._prev_hs = HardState()
            self._durable_term = 0
        self._outstanding = False
        self._reset_timeout()

    @staticmethod
    def bootstrap_entries(voters, learners=()) -> list[Entry]:
        """The log every founding member starts with: one conf entry per member."""
        ccs = [ConfChange(ConfChangeType.ADD_VOTER, v) for v in sorted(voters)]
        ccs += [ConfChange(ConfChangeType.ADD_LEARNER, v) for v in sorted(learners)]
        return [Entry(1, i + 1, _CONF, encode_conf_change(cc)) for i, cc in enumerate(ccs)]

    # ================================================================ API
    def tick(self) -> None:
        self._now += 1
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self.leaderless_elapsed += 1
            self._tick_election()

    def tick_after_pause(self, ticks: int) -> None:
        """The driver was paused for ``ticks`` ticks (a stalled event loop, SIGSTOP, a
        paused VM): the peers may have been paused too, and what they sent meanwhile
        is still unread. Time-based promises run out as if ticked one by one: the
        leader's lease (``_now``), a follower's refusal to vote for a rival while it
        trusts its leader, the restart lease guard, a leadership transfer. But no
        node campaigns or steps down on the strength of the pause alone: a follower
        keeps half an election timeout to hear from its leader, and a leader judges
        CheckQuorum on what it hears from now on, a full election timeout later."""
        if ticks <= 0:
            return
        cfg = self.cfg
        if not self._pause_keeps_lease:
            self._now += ticks
        if self.role == Role.LEADER:
            if ticks >= cfg.election_tick:
                self.lead_transferee = None  # a transfer times out in one election timeout
            self.election_elapsed = 0
            self._forget_recent_activity()
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()  # tell the followers at once that it is still here
            return
        self.leaderless_elapsed += ticks
        elapsed = self.election_elapsed + ticks
        if elapsed >= cfg.election_tick:
            self._lease_guard = False
        # never more than the time that passed: a vote refused for a moment longer
        # is safe for every lease; a campaign at the first tick after the pause is not
        # needed when the leader is alive and about to be heard from
        grace = max(1, cfg.election_tick // 2)
        self.election_elapsed = max(self.election_elapsed,
                                    min(elapsed, self._randomized_timeout - grace))

    def campaign(self) -> None:
        """Start an election now (PreVote first if configured); a no-op on a leader
        or a node that may not campaign (learner, removed, snapshot pending)."""
        if self.role != Role.LEADER:
            self._campaign(pre=self.cfg.pre_vote)

    def propose(self, data: bytes) -> int:
        """Append a client command; returns its log index. Leader only."""
        if self.role != Role.LEADER:
            raise NotLeader(self.lead)
        if self.lead_transferee is not None:
            raise ProposalDropped("leadership transfer in progress")
        return self._append_new(_NORMAL, data)

    def propose_batch(self, datas: list[bytes]) -> int:
        """Append many client commands at once; returns the index of the last."""
        if self.role != Role.LEADER:
            raise NotLeader(self.lead)
        if self.lead_transferee is not None:
            raise ProposalDropped("leadership transfer in progress")
        log = self.log
        i = log.last_index()
        t = self.term
        ents = []
        for d in datas:
            i += 1
            ents.append(Entry(t, i, _NORMAL, d))
        log.entries.extend(ents)
        self._bcast_append(False)
        return i

    def propose_conf_change(
        self, op: ConfChangeType | ConfChange, node_id: str = "", context: bytes = b""
    ) -> int:
        """Propose one membership change; returns its log index.

        Raises NotLeader, ConfChangePending (a change is uncommitted, or this
        leader has no committed entry of its term yet) or ConfChangeError."""
        cc = op if isinstance(op, ConfChange) else ConfChange(ConfChangeType(op), node_id, context)
        if self.role != Role.LEADER:
            raise NotLeader(self.lead)
        if self.lead_transferee is not None:
            raise ProposalDropped("leadership transfer in progress")
        if self._last_conf_index > self.log.committed:
            raise ConfChangePending(f"conf change at {self._last_conf_index} not committed")
        if self.log.term(self.log.committed) != self.term:
            raise ConfChangePending("leader has not committed an entry of its term yet")
        check_conf_change(self.conf, cc)
        return self._append_new(_CONF, encode_conf_change(cc))

    def read_index(self, ctx: bytes, lease: bool | None = None) -> None:
        """Ask for a linearizable read. A ReadState(ctx, index) comes in a later
        Ready; raises NotLeader(None) at once when no leader is known. ``lease``: may
        a leader answer from its lease (default ``cfg.lease_read``, which is also
        what a leader gives the reads its followers forward)? A read
        that a leader drops (it stepped down) comes back in Ready.dropped_reads;
        one lost on the network never comes back: the driver needs a timeout."""
        if self.role == Role.LEADER:
            self._leader_read(ctx, self.id, self.cfg.lease_read if lease is None else lease)
        elif self.lead is None:
            raise NotLeader(None)
        else:
            self._send(Message(MT.READ_INDEX, to=self.lead, context=ctx))

    def lease_read_index(self) -> int | None:
        """The index a read may be served at right now, with no round and no Ready: the
        commit index, on a leader that has committed in its term and whose lease holds
        (or that is its group's only voter); None otherwise (ask ``read_index``). The
        caller serves the read once it has applied that index."""
        log = self.log
        if self.role != Role.LEADER or log.term(log.committed) != self.term:
            return None
        # A lease found valid stays so until the next tick: acknowledgements only
        # lengthen it; what ends it early (a transfer, a new configuration) is checked
        # each time.
        held = self._lease_held_at
        if (held is None or held[0] != self._now or held[1] != self.term
                or held[2] is not self.conf or self._transfer_sent or self.lead_transferee):
            alone = len(self.conf.voters) == 1 and self.id in self.conf.voters
            if not alone and not self._lease_valid():
                return None
            self._lease_held_at = (self._now, self.term, self.conf)
        self.lease_reads += 1
        return log.committed

    def step_down(self) -> None:
        """Stop leading or following (the driver fences a group it can no longer run):
        a follower of nobody at the same term, so nothing here claims the group."""
        self._become_follower(self.term, None)

    def transfer_leadership(self, target: str) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.lead)
        if target not in self.conf.voters:
            raise ValueError(f"{target} is not a voter")
        if target == self.id or self.lead_transferee == target:
            return
        self.lead_transferee = target
        self.election_elapsed = 0  # transfer must finish within one election timeout
        pr = self.prs[target]
        if pr.match == self.log.last_index():
            self._send_timeout_now(target)
        else:
            self._maybe_send_append(target, True)

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """The meta of a snapshot of the state machine at ``index`` (<= applied)."""
        t = self.log.term(index)
        if t is None:
            raise ValueError(f"no term for index {index}")
        return SnapshotMeta(index, t, self._conf_at(index))

    def snapshot_taken(self, meta: SnapshotMeta) -> None:
        """The driver has a durable snapshot up to meta.index: compact the log."""
        if self._snapshot is not None and meta.index <= self._snapshot.index:
            return
        if meta.index > self.log.applied:
            raise ValueError(f"snapshot at {meta.index} beyond applied {self.log.applied}")
        self._snapshot = meta
        c = min(self._tail_start(meta.index), self.log.stable, self.log.applied)
        if c > self.log.offset:
            self._base_conf = self._conf_at(c)
            self.log.compact(c)

    def _tail_start(self, index: int) -> int:
        """The last index to compact behind a snapshot at ``index``. The tail kept holds
        at most ``compaction_tail`` entries, and at most ``compaction_tail_bytes`` of
        their data unless a follower heard from within an election timeout still
        lacks them: one catching up (or installing a snapshot, then needing what
        follows it) would otherwise be sent a snapshot again and again for want of
        a few entries. Only a follower that is down or cut off is left to a
        snapshot for the tail's memory."""
        log, budget = self.log, self.cfg.compaction_tail_bytes
        start = floor = max(index - self.cfg.compaction_tail, log.offset)
        for i in range(index, floor, -1):
            budget -= len(log.entry(i).data) + ENTRY_OVERHEAD
            if budget < 0:
                start = i  # the entries after it fit
                break
        if start > floor and self.role == Role.LEADER:
            needed = min((pr.pending_snapshot if pr.state == ProgressState.SNAPSHOT
                          else pr.match
                          for peer, pr in self.prs.items()
                          if peer != self.id and pr.recent_active), default=start)
            start = max(floor, min(start, needed))
        return start

    def report_snapshot(self, peer: str, ok: bool) -> None:
        pr = self.prs.get(peer)
        if self.role != Role.LEADER or pr is None or pr.state != ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = True  # wait for the append response / next heartbeat

    def report_unreachable(self, peer: str) -> None:
        pr = self.prs.get(peer)
        if self.role == Role.LEADER and pr is not None and pr.state == ProgressState.REPLICATE:
            pr.become_probe()

    # ---------------------------------------------------------------- Ready
    def has_ready(self) -> bool:
        if self._outstanding:
            return False
        log = self.log
        return bool(
            self._msgs
            or self._eager
            or log.stable < log.last_index()
            or self._pending_snapshot is not None
            or log.applied < log.committed
            or self._read_states
            or self._dropped_reads
            or self._refused
            or self._hs_changed()
        )

    def ready_needs_sync(self) -> bool:
        """Whether the next Ready will have must_sync set (entries, a snapshot, a new
        term or vote): a driver may handle a Ready without it at once, inline. The one
        rule for must_sync: ready() takes it from here."""
        log, p = self.log, self._prev_hs
        return (log.stable < log.last_index() or self._pending_snapshot is not None
                or p.term != self.term or p.vote != self._hs_vote())

    def _hs_changed(self) -> bool:
        p = self._prev_hs
        return p.term != self.term or p.commit != self.log.committed or p.vote != self._hs_vote()

    def _hs_vote(self) -> str | None:
        """The vote the HardState records."""
        return self.vote

    def ready(self) -> Ready:
        if self._outstanding:
            raise RuntimeError("ready() called twice without advance()")
        log = self.log
        rd = Ready(lead=self.lead, role=self.role, must_sync=self.ready_needs_sync())
        if self._hs_changed():
            rd.hard_state = HardState(self.term, self._hs_vote(), log.committed)
        if log.stable < log.last_index():
            rd.entries = log.entries[log.stable - log.offset :]
        snap = self._pending_snapshot
        if snap is not None:
            rd.snapshot = snap
        lo = log.applied if snap is None else max(log.applied, snap.index)
        if lo < log.committed:
            rd.committed_entries = log.entries[lo - log.offset : log.committed - log.offset]
        if self._msgs:
            rd.messages = self._msgs
            self._msgs = []
        if self._eager:
            rd.eager_messages = self._eager
            self._eager = []
        if self._read_states:
            rd.read_states = self._read_states
            self._read_states = []
        if self._dropped_reads:
            rd.dropped_reads = self._dropped_reads
            self._dropped_reads = []
        if self._refused:
            rd.refused = self._refused
            self._refused = []
        self._outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        self._outstanding = False
        log = self.log
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
            self._durable_term = rd.hard_state.term
        if rd.snapshot is not None:
            log.applied = max(log.applied, rd.snapshot.index)
            if self._pending_snapshot is rd.snapshot:
                self._pending_snapshot = None
            if self._snapshot is None or self._snapshot.index < rd.snapshot.index:
                self._snapshot = rd.snapshot
        if rd.entries:
            last = rd.entries[-1]
            if last.index > log.stable and log.match_term(last.index, last.term):
                log.stable = last.index
        if rd.committed_entries:
            a = rd.committed_entries[-1].index
            log.applied = max(log.applied, a)
        if self.role == Role.LEADER:
            me = self.prs.get(self.id)
            if me is not None and log.stable > me.match:
                me.match = log.stable
                me.next = max(me.next, log.stable + 1)
                if self._maybe_commit():
                    self._bcast_append(True)

    def status(self) -> dict:
        log = self.log
        return {
            "id": self.id,
            "group": self.group,
            "leader": self.lead,
            "role": self.role.name,
            "term": self.term,
            "vote": self.vote,
            "commit": log.committed,
            "applied": log.applied,
            "first_index": log.first_index(),
            "last_index": log.last_index(),
            "snapshot_index": self._snapshot.index if self._snapshot else 0,
            "lead_transferee": self.lead_transferee,
            "conf": {"voters": list(self.conf.voters), "learners": list(self.conf.learners)},
            "progress": {
                p: {
                    "match": pr.match,
                    "next": pr.next,
                    "state": pr.state.name,
                    "inflight": len(pr.inflights),
                    "recent_active": pr.recent_active,
                }
                for p, pr in self.prs.items()
            }
            if self.role == Role.LEADER
            else {},
        }

    # ============================================================ internals
    def _reset_timeout(self) -> None:
        e = self.cfg.election_tick
        self._randomized_timeout = e + self._rand.randrange(e)

    def _send(self, m: Message) -> None:
        m.group = self.group
        m.from_ = self.id
        if m.term == 0:
            m.term = self.term
        if (
            self.role == Role.LEADER
            and m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP)
            and self._durable_term == self.term
        ):
            self._eager.append(m)
        else:
            self._msgs.append(m)

    def _quorum(self) -> int:
        return len(self.conf.voters) // 2 + 1

    def _promotable(self) -> bool:
        voters = self.conf.voters
        return (self.id in voters and self._pending_snapshot is None
                and (voters == (self.id,)  # alone: no one has the cut entries to wait for
                     or self._at_floor(self.log.last_term(), self.log.last_index())))

    def _at_floor(self, last_term: int, last_index: int) -> bool:
        floor = self.cfg.vote_floor
        return floor is None or (last_term, last_index) >= floor

    # -- configuration -----------------------------------------------------
    def _conf_at(self, index: int) -> ConfState:
        cs = self._base_conf
        log = self.log
        for e in log.entries[: max(0, index - log.offset)]:
            if e.kind == _CONF:
                cs = apply_conf_change(cs, decode_conf_change(e.data))
        return cs

    def _recompute_conf(self) -> None:
        cs = self._base_conf
        last = 0
        for e in self.log.entries:
            if e.kind == _CONF:
                cs = apply_conf_change(cs, decode_conf_change(e.data))
                last = e.index
        self._set_conf(cs)
        self._last_conf_index = last

    def _note_appended(self, ents, truncated: int, old_last: int) -> None:
        """Keep the conf in force in step with the log after an append of ents
        (which may repeat entries we had: only those past old_last or past the
        truncation point are new)."""
        if truncated and truncated <= self._last_conf_index:
            self._recompute_conf()
            return
        start = truncated or old_last + 1
        for e in ents:
            if e.kind == _CONF and e.index >= start:
                self._set_conf(apply_conf_change(self.conf, decode_conf_change(e.data)))
                self._last_conf_index = e.index

    def _set_conf(self, cs: ConfState) -> None:
        old = self.conf
        self.conf = cs
        self._members = frozenset(cs.voters + cs.learners)
        if self.role != Role.LEADER or cs == old:
            return
        nxt = self.log.last_index() + 1
        members = cs.voters + cs.learners
        for p in list(self.prs):
            if p not in members:
                del self.prs[p]
        for p in members:
            if p not in self.prs:
                pr = Progress(nxt)
                if p == self.id:
                    pr.match = self.log.stable
                pr.recent_active = True
                self.prs[p] = pr
        if self.lead_transferee is not None and self.lead_transferee not in cs.voters:
            self.lead_transferee = None
        if self._ro_inflight:
            self._ro_acks = [p for p in self._ro_acks if p in cs.voters]

    # -- role changes ------------------------------------------------------
    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = None
            self._transfer_sent = False
        if self.role == Role.LEADER:
            self._drop_reads()
        self.lead = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_timeout()
        self.lead_transferee = None
        self._votes = {}
        self.prs = {}

    def _drop_reads(self) -> None:
        pend = [(c, f) for c, f, _ in self._ro_wait_commit]
        pend += [(c, f) for c, f, _, _ in self._ro_queue]
        for ctx, frm in pend:
            if frm == self.id:
                self._dropped_reads.append(ctx)
            else:
                self._msgs.append(
                    Message(
                        MT.READ_INDEX_RESP,
                        group=self.group,
                        to=frm,
                        from_=self.id,
                        term=self.term,
                        reject=True,
                        context=ctx,
                    )
                )
        self._ro_wait_commit = []
        self._ro_queue = []
        self._ro_inflight = False
        self._ro_acks = []

    def _become_follower(self, term: int, lead: str | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead

    def _become_pre_candidate(self) -> None:
        if self.role == Role.LEADER:
            self._drop_reads()
        self._votes = {}
        self.prs = {}
        self.lead_transferee = None
        self.role = Role.PRE_CANDIDATE
        self.lead = None

    def _become_candidate(self) -> None:
        self.elections += 1
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        self.leaderless_elapsed = 0
        log = self.log
        nxt = log.last_index() + 1
        for p in self.conf.voters + self.conf.learners:
            pr = Progress(nxt)
            pr.recent_active = True
            if p == self.id:
                pr.match = log.stable
            self.prs[p] = pr
        self._ro_round = 0
        self._ro_fast = []
        self._append_new(EntryKind.NOOP, b"")

    def _campaign(self, transfer: bool = False, pre: bool = False) -> None:
        if not self._promotable():
            return
        if pre:
            self._become_pre_candidate()
            vtype = MT.PRE_VOTE
            term = self.term + 1
        else:
            self._become_candidate()
            vtype = MT.VOTE
            term = self.term
        if self._poll(self.id, True):
            if pre:
                self._campaign(transfer=transfer)
            else:
                self._become_leader()
            return
        li, lt = self.log.last_index(), self.log.last_term()
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for v in self.conf.voters:
            if v != self.id:
                self._send(Message(vtype, to=v, term=term, index=li, log_term=lt, context=ctx))

    def _poll(self, frm: str, granted: bool) -> bool | None:
        """Record a vote; True if won, False if lost, None if undecided."""
        self._votes.setdefault(frm, granted)
        voters = self.conf.voters
        yes = sum(1 for v in voters if self._votes.get(v) is True)
        no = sum(1 for v in voters if self._votes.get(v) is False)
        q = self._quorum()
        if yes >= q:
            return True
        if no > len(voters) - q:
            return False
        return None

    # -- ticks -------------------------------------------------------------
    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self._lease_guard = False
        if self.election_elapsed >= self._randomized_timeout and self._promotable():
            self.election_elapsed = 0
            self._campaign(pre=self.cfg.pre_vote)

    def _forget_recent_activity(self) -> None:
        """Start a new CheckQuorum window: only this node counts as heard from."""
        for p, pr in self.prs.items():
            pr.recent_active = p == self.id

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        cfg = self.cfg
        if self.election_elapsed >= cfg.election_tick:
            self.election_elapsed = 0
            if cfg.check_quorum:
                active = sum(
                    1
                    for v in self.conf.voters
                    if v == self.id or (v in self.prs and self.prs[v].recent_active)
                )
                if active < self._quorum():
                    self._become_follower(self.term, None)
                    return
                self._forget_recent_activity()
            if self.lead_transferee is not None:
                self.lead_transferee = None  # transfer timed out
        if self.heartbeat_elapsed >= cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    # -- replication (leader) ----------------------------------------------
    def _append_new(self, kind: EntryKind, data: bytes) -> int:
        log = self.log
        i = log.last_index() + 1
        e = Entry(self.term, i, kind, data)
        log.entries.append(e)
        if kind == _CONF:
            self._note_appended((e,), 0, i - 1)
        self._bcast_append(False)
        return i

    def _bcast_append(self, send_if_empty: bool) -> None:
        me = self.id
        for p in self.prs:
            if p != me:
                while self._maybe_send_append(p, send_if_empty):
                    if send_if_empty:
                        break

    def _maybe_send_append(self, to: str, send_if_empty: bool) -> bool:
        pr = self.prs[to]
        cfg = self.cfg
        if pr.is_paused(cfg.max_inflight_msgs, cfg.max_inflight_bytes):
            return False
        log = self.log
        last = log.last_index()
        pr.next = min(pr.next, last + 1)
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None:
            return self._send_snapshot(to, pr)
        context = b""
        if pr.next <= last:
            ents = log.slice(pr.next, last + 1, cfg.max_size_per_msg)
        else:
            ents = []
            if not send_if_empty:
                return False
            if pr.state == ProgressState.REPLICATE:
                context = _COMMIT_ONLY  # it was sent the whole log: its acks are on the way
        self._send(Message(_APP, to=to, index=prev, log_term=prev_term, entries=ents,
                           commit=log.committed, context=context))
        if ents and pr.state == ProgressState.REPLICATE:
            li = ents[-1].index
            pr.next = li + 1
            size = 0
            if cfg.max_inflight_bytes:
                size = sum(len(e.data) for e in ents) + ENTRY_OVERHEAD * len(ents)
            pr.inflights.append((li, size))
            pr.inflight_bytes += size
            return True
        if pr.state == ProgressState.PROBE:
            pr.probe_sent = True
        return bool(ents)

    def _send_snapshot(self, to: str, pr: Progress) -> bool:
        snap = self._snapshot
        if snap is None:
            return False
        pr.become_snapshot(snap.index)
        self._send(Message(MT.SNAP, to=to, snapshot=snap))
        return False

    def _bcast_heartbeat(self, targets: Iterable[str] | None = None) -> None:
        rnd = self._ro_round if self._ro_inflight else 0
        ctx = _HB_CTX.pack(rnd, self._now)
        commit = self.log.committed
        prs = self.prs
        for p in prs if targets is None else targets:
            if p != self.id:
                pr = prs[p]
                self._send(Message(MT.HEARTBEAT, to=p, commit=min(pr.match, commit), context=ctx))

    def _maybe_commit(self) -> bool:
        log = self.log
        ms = sorted((self.prs[v].match for v in self.conf.voters if v in self.prs), reverse=True)
        q = self._quorum()
        if len(ms) < q:
            return False
        mci = ms[q - 1]
        if mci <= log.committed:
            return False
        if log.term(mci) != self.term and not self._commit_old_terms:
            return False
        log.commit_to(mci)
        self._after_commit()
        return True

    def _after_commit(self) -> None:
        """Leader: the commit index moved."""
        log = self.log
        if self._ro_wait_commit and log.term(log.committed) == self.term:
            waiting = self._ro_wait_commit
            self._ro_wait_commit = []
            for ctx, frm, lease in waiting:
                self._leader_read(ctx, frm, lease)
        if self._last_conf_index <= log.committed and self.id not in self.conf.voters:
            # removed (or demoted) leader steps down once its removal is committed
            self._become_follower(self.term, None)

    def _send_timeout_now(self, to: str) -> None:
        self._transfer_sent = True
        self._send(Message(MT.TIMEOUT_NOW, to=to))

    # -- reads (leader) ----------------------------------------------------
    def _leader_read(self, ctx: bytes, frm: str, lease: bool) -> None:
        log = self.log
        if log.term(log.committed) != self.term:
            self._ro_wait_commit.append((ctx, frm, lease))
            return
        if len(self.conf.voters) == 1 and self.id in self.conf.voters:
            self._read_done(ctx, frm, log.committed)
            return
        if lease and self._lease_valid():
            self.lease_reads += 1
            self._read_done(ctx, frm, log.committed)
            return
        if frm != self.id and self._follower_read_proves_quorum(frm):
            self._read_done(ctx, frm, log.committed)
            return
        self._ro_queue.append((ctx, frm, log.committed, self._ro_round + 1))
        if not self._ro_inflight:
            self._start_read_round()

    def _follower_read_proves_quorum(self, frm: str) -> bool:
        """A voter's MsgReadIndex in our term is its word that it followed us after its
        reads began (it sends the request only once they have). With this leader, still
        leading that term now, that makes a quorum in a group of 2 or 3 voters: no other
        leader can have committed anything before those reads began, which is all a
        heartbeat round would prove. Larger groups still run the round."""
        voters = self.conf.voters
        return frm in voters and self.id in voters and self._quorum() <= 2

    def _lease_valid(self) -> bool:
        cfg = self.cfg
        if (
            not cfg.check_quorum
            or self._transfer_sent
            or self.lead_transferee is not None
        ):
            return False
        if self.id not in self.conf.voters:
            return False
        if self._lease_forever:
            return True
        ticks = sorted(
            (
                self._now if v == self.id else (self.prs[v].lease_tick if v in self.prs else -1)
                for v in self.conf.voters
            ),
            reverse=True,
        )
        start = ticks[self._quorum() - 1]
        return start >= 0 and self._now < start + cfg.election_tick - cfg.lease_margin_ticks

    def _start_read_round(self) -> None:
        self.quorum_read_rounds += 1
        self._ro_round += 1
        self._ro_inflight = True
        self._ro_acks = []
        self._bcast_heartbeat(self._read_round_targets())

    def _read_round_targets(self) -> list[str] | None:
        """The followers a read round asks: the quorum's worth that answered the last
        round first, or None (all) when too few are known. Halves the round's messages
        in a 3-node group; a target that went quiet is covered by the next tick's
        heartbeat, which carries the round to every follower."""
        voters = self.conf.voters
        need = self._quorum() - (1 if self.id in voters else 0)
        targets = [p for p in self._ro_fast if p in voters and p in self.prs][:need]
        return targets if 0 < len(targets) == need else None

    def _read_ack(self, frm: str, rnd: int) -> None:
        if not self._ro_inflight or rnd != self._ro_round or frm not in self.conf.voters:
            return
        if frm not in self._ro_acks:
            self._ro_acks.append(frm)
        voters = self.conf.voters
        if sum(p in voters for p in (self.id, *self._ro_acks)) < self._quorum():
            return
        self._ro_inflight = False
        self._ro_fast = self._ro_acks
        done = [r for r in self._ro_queue if r[3] <= rnd]
        self._ro_queue = [r for r in self._ro_queue if r[3] > rnd]
        for ctx, f, index, _ in done:
            self._read_done(ctx, f, index)
        if self._ro_queue:
            self._start_read_round()

    def _read_done(self, ctx: bytes, frm: str, index: int) -> None:
        if frm == self.id:
            self._read_states.append(ReadState(ctx, index))
        else:
            self._send(Message(MT.READ_INDEX_RESP, to=frm, index=index, context=ctx))

    # ================================================================ step
    def step(self, m: Message) -> None:
        if m.group != self.group:
            raise ValueError(f"message for group {m.group!r} stepped into {self.group!r}")
        why = self._check_message(m)
        if why is not None:
            self._refuse(why[0], m, why[1])
            return
        t = m.type
        if m.term > self.term:
            if t == MT.VOTE or t == MT.PRE_VOTE:
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.cfg.check_quorum
                    and (self.lead is not None or self._lease_guard)
                    and self.election_elapsed < self.cfg.election_tick
                )
                if in_lease and not force:
                    return
            if t == MT.PRE_VOTE or (t == MT.PRE_VOTE_RESP and not m.reject):
                pass
            elif t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self._become_follower(m.term, m.from_)
            else:
                self._become_follower(m.term, None)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and t in (MT.HEARTBEAT, MT.APP):
                self._send(Message(MT.APP_RESP, to=m.from_))
            elif t == MT.PRE_VOTE:
                self._send(Message(MT.PRE_VOTE_RESP, to=m.from_, reject=True))
            return

        if t == MT.VOTE or t == MT.PRE_VOTE:
            can_vote = (
                self.vote == m.from_
                or (self.vote is None and self.lead is None)
                or (t == MT.PRE_VOTE and m.term > self.term)
            )
            ok = self._skip_uptodate_check or (self.log.is_up_to_date(m.index, m.log_term)
                                               and self._at_floor(m.log_term, m.index))
            rtype = MT.VOTE_RESP if t == MT.VOTE else MT.PRE_VOTE_RESP
            if can_vote and ok:
                self._send(Message(rtype, to=m.from_, term=m.term))
                if t == MT.VOTE:
                    self.election_elapsed = 0
                    self.vote = m.from_
            else:
                self._send(Message(rtype, to=m.from_, reject=True))
            return

        role = self.role
        if role == Role.LEADER:
            self._step_leader(m)
        elif role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # -- refusals -----------------------------------------------------------
    def _refuse(self, reason: RefusalReason, m: Message, detail: str) -> None:
        counts = self.refusal_counts
        counts[reason] = counts.get(reason, 0) + 1
        if len(self._refused) < MAX_REFUSALS_PER_READY:
            self._refused.append(Refusal(reason, m.from_, f"{m.type.name} t{m.term}: {detail}"))

    def _check_message(self, m: Message) -> tuple[RefusalReason, str] | None:
        """Why ``m`` must be dropped unread, or None. Refusing is always safe (it is a
        lost message); each rule here only keeps a message that cannot be true, or
        that comes from outside the group, from changing anything."""
        term = m.term
        too_far = term > self.term + MAX_TERM_JUMP and not self._far_term_excused(m)
        if (term > MAX_TERM or too_far) and not self._adopt_any_term:
            return R.TERM_TOO_HIGH, f"ours {self.term}"
        # every log term a message names is one its sender has seen: never past its term
        if (term < 0 or m.index < 0 or m.commit < 0 or m.reject_hint < 0
                or not 0 <= m.log_term <= term):
            return R.BAD_INDEX, f"index {m.index} log_term {m.log_term} commit {m.commit}"
        t = m.type
        if t == _APP:
            if m.entries:
                why = self._check_entries(m)
                if why is not None:
                    return R.BAD_ENTRIES, why
        elif t == MT.SNAP:
            why = self._check_snapshot(m)
            if why is not None:
                return R.BAD_SNAPSHOT, why
        elif t == MT.APP_RESP and m.reject and m.reject_hint > m.index:
            return R.BAD_INDEX, f"hint {m.reject_hint} past the index refused {m.index}"
        if (m.from_ not in self._members and not self._hear_strangers
                and not self._stranger_excused(m)):
            return R.STRANGER, "not a member"
        return None

    @staticmethod
    def _check_entries(m: Message) -> str | None:
        ents = m.entries
        first, last = ents[0], ents[-1]
        if first.index != m.index + 1 or last.index != m.index + len(ents):
            return f"entries [{first.index}, {last.index}] after {m.index}"
        terms = list(map(_term, ents))
        # a log's terms never go down, start at or after the previous entry's term and
        # never pass the leader's own
        if terms[0] < m.log_term or terms[-1] > m.term or terms != sorted(terms):
            return f"entry terms {terms[0]}..{terms[-1]} after {m.log_term} in term {m.term}"
        if _CONF in map(_kind, ents):
            for e in ents:
                if e.kind == _CONF:
                    try:
                        decode_conf_change(e.data)
                    except (ValueError, struct.error, UnicodeDecodeError):
                        return f"conf change at {e.index} does not decode"
        return None

    @staticmethod
    def _check_snapshot(m: Message) -> str | None:
        meta = m.snapshot
        if meta is None:
            return "no snapshot"
        cs = meta.conf_state
        if meta.index < 1 or not 1 <= meta.term <= m.term:
            return f"snapshot at {meta.index}/{meta.term}"
        voters, learners = set(cs.voters), set(cs.learners)
        if (not voters or len(voters) != len(cs.voters) or len(learners) != len(cs.learners)
                or voters & learners):
            return f"snapshot membership {cs}"
        return None

    def _far_term_excused(self, m: Message) -> bool:
        """A term too far ahead is still heard from a member once no leader has been
        heard for an election timeout. A forged term that a majority adopted (each was
        close enough to it when it came) is the group's term from then on; without
        this, the nodes that were a term behind would refuse the majority for good,
        and with them missing a quorum could be out of reach (seen in the simulator:
        three of six voters at term 2**32+7, the others at 6 and 7)."""
        return (self.role != Role.LEADER and m.from_ in self._members
                and self.leaderless_elapsed >= self.cfg.election_tick)

    def _stranger_excused(self, m: Message) -> bool:
        """Whether a message from a node outside our configuration is still heard.

        Our configuration may be behind the group's (a conf entry not yet received) or
        wrong for a while (a truncated one), so a strict rule would wedge a member that
        lags. A leader's configuration is the group's latest, so a leader is always
        strict. Anyone else hears a stranger only:
        (a) while it knows no configuration at all (a node joining, before the first
            append): the leader messages of whoever is adding it;
        (b) from the leader it follows, for the rest of that leader's term (a removed
            leader leads until its removal commits; a new member may lead before our
            log names it; a joining node follows the leader that adds it);
        (c) once no leader has been heard for an election timeout: it is cut off (left
            behind by a membership change, removed then added again) and must catch
            up from whoever leads now.
        A node that left its own configuration (removed) is not in (a): it has nothing
        to catch up on until it is added again, and then (c) lets it.
        """
        if self.role == Role.LEADER:
            return False
        if m.type in _LEADER_MSGS and not self.conf.voters:
            return True
        if m.from_ == self.lead and m.term == self.term:
            return True
        return self.leaderless_elapsed >= self.cfg.election_tick

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.READ_INDEX:
            self._leader_read(m.context, m.from_, self.cfg.lease_read)  # the default
            return
        pr = self.prs.get(m.from_)
        if pr is None:
            return
        if t == MT.APP_RESP:
            if m.index > self.log.last_index() and not self._ack_past_end:
                # This leader's log never shrinks in its term, and a follower answers
                # only for entries it was sent (or its commit, which this log holds):
                # counting it would let one forged ack and the leader commit an entry
                # no follower has, or leave a follower's progress past the end for good.
                self._refuse(R.ACK_PAST_END, m, f"index {m.index}, last {self.log.last_index()}")
                return
            pr.recent_active = True
            if m.reject:
                hint = m.reject_hint
                if m.log_term > 0:
                    hint, _ = self.log.find_conflict_by_term(hint, m.log_term)
                if m.context == LOG_CUT and hint < pr.match:
                    pr.match = hint  # it lost what it acknowledged: probe from there
                    pr.become_probe()
                    self._maybe_send_append(m.from_, True)
                    return
                if pr.maybe_decr_to(m.index, hint):
                    if pr.state == ProgressState.REPLICATE:
                        pr.become_probe()
                    self._maybe_send_append(m.from_, True)
                return
            was_paused = pr.is_paused(self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes)
            if pr.maybe_update(m.index):
                if pr.state == ProgressState.PROBE:
                    pr.become_replicate()
                elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                    pr.become_probe()
                    pr.become_replicate()
                elif pr.state == ProgressState.REPLICATE:
                    pr.free_le(m.index)
                if self._maybe_commit():
                    if self.role != Role.LEADER:
                        return
                    self._bcast_append(True)
                elif was_paused:
                    self._maybe_send_append(m.from_, True)
                while self._maybe_send_append(m.from_, False):
                    pass
                if m.from_ == self.lead_transferee and pr.match == self.log.last_index():
                    self._send_timeout_now(m.from_)
        elif t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if len(m.context) == _HB_CTX.size:
                rnd, sent = _HB_CTX.unpack(m.context)
                if sent > self._now or rnd > self._ro_round:
                    # from a tick or a read round this leader has not reached: it would
                    # stretch the lease, or answer a read round not yet asked
                    self._refuse(R.BAD_INDEX, m, f"heartbeat context ({rnd}, {sent})")
                    return
                pr.lease_tick = max(pr.lease_tick, sent)
                if rnd:
                    self._read_ack(m.from_, rnd)
            if pr.match < self.log.last_index():
                if (
                    pr.state == ProgressState.REPLICATE
                    and pr.inflights
                    and pr.is_paused(self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes)
                ):
                    # the window may be full of lost messages: let one more through
                    pr.inflight_bytes -= pr.inflights.popleft()[1]
                self._maybe_send_append(m.from_, True)

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            self._become_follower(m.term, m.from_)
            self._step_follower(m)
        elif (t == MT.VOTE_RESP and self.role == Role.CANDIDATE) or (
            t == MT.PRE_VOTE_RESP and self.role == Role.PRE_CANDIDATE
        ):
            r = self._poll(m.from_, not m.reject)
            if r is True:
                if self.role == Role.PRE_CANDIDATE:
                    self._campaign(transfer=False)
                else:
                    self._become_leader()
            elif r is False:
                self._become_follower(self.term, None)
        elif t == MT.READ_INDEX:
            self._send(Message(MT.READ_INDEX_RESP, to=m.from_, reject=True, context=m.context))
        elif t == MT.READ_INDEX_RESP:
            self._read_resp(m)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == _APP:
            self.election_elapsed = 0
            self.leaderless_elapsed = 0
            self.lead = m.from_
            self._lease_guard = False
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.leaderless_elapsed = 0
            self.lead = m.from_
            self._lease_guard = False
            log = self.log
            if m.commit > log.committed:
                log.commit_to(min(m.commit, log.last_index()))
            self._send(Message(MT.HEARTBEAT_RESP, to=m.from_, context=m.context))
        elif t == MT.SNAP:
            self.election_elapsed = 0
            self.leaderless_elapsed = 0
            self.lead = m.from_
            self._handle_snapshot(m)
        elif t == MT.TIMEOUT_NOW:
            self._campaign(transfer=True)
        elif t == MT.READ_INDEX:
            self._send(Message(MT.READ_INDEX_RESP, to=m.from_, reject=True, context=m.context))
        elif t == MT.READ_INDEX_RESP:
            self._read_resp(m)

    def _read_resp(self, m: Message) -> None:
        if m.reject:
            self._dropped_reads.append(m.context)
        else:
            self._read_states.append(ReadState(m.context, m.index))

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(Message(MT.APP_RESP, to=m.from_, index=log.committed))
            return
        old_last = log.last_index()
        r = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if r is not None:
            last_new, truncated = r
            if m.entries and (truncated or self._has_conf(m.entries)):
                self._note_appended(m.entries, truncated, old_last)
            if m.context != _COMMIT_ONLY or m.entries:
                self._send(Message(MT.APP_RESP, to=m.from_, index=last_new))
        else:
            hint, hterm = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
            cut = not self._at_floor(log.last_term(), log.last_index())
            self._send(
                Message(
                    MT.APP_RESP,
                    to=m.from_,
                    index=m.index,
                    reject=True,
                    reject_hint=hint,
                    log_term=hterm,
                    context=LOG_CUT if cut else b"",
                )
            )

    @staticmethod
    def _has_conf(ents) -> bool:
        return _CONF in map(_kind, ents)

    def _handle_snapshot(self, m: Message) -> None:
        meta = m.snapshot
        log = self.log
        if meta is None:
            return
        if meta.index <= log.committed:
            self._send(Message(MT.APP_RESP, to=m.from_, index=log.committed))
            return
        if log.match_term(meta.index, meta.term):
            log.commit_to(meta.index)
            self._send(Message(MT.APP_RESP, to=m.from_, index=log.committed))
            return
        log.restore(meta.index, meta.term)
        self._base_conf = meta.conf_state
        self._recompute_conf()
        self._pending_snapshot = meta
        self._send(Message(MT.APP_RESP, to=m.from_, index=log.last_index()))
