"""Deterministic cluster simulator: many seeded Raft clusters, safety checked every step.

    python -m raftsim --seeds 1000 --nodes 5 --faults all
    python -m raftsim --seed 1234 --nodes 5      # replay one seed, with a trace

Each seed builds a cluster of RaftCores joined by a simulated network (drops,
delays, reordering, duplicates, partitions) and simulated storage (a crash loses
whatever Ready was not yet persisted), drives it with a seeded random schedule
(proposals, ReadIndex reads, membership changes, leadership transfers,
snapshots, crashes and restarts, pauses of one node's driver or of every node at
once, after which the core is told with ``tick_after_pause``), forged messages
from a peer that holds the secret but lies (terms far ahead, acknowledgements past
the end of a leader's log, impossible indexes, a leader's messages from a node
that is no member), and checks after every step:

* at most one leader per term;
* log matching: an (index, term) pair names one entry, with one predecessor term;
* leader completeness: a new leader holds every entry committed in earlier terms;
* every applied sequence is a prefix of one committed history;
* commit (per incarnation) and applied (across restarts) never go back;
* an acknowledged proposal stays at its index for good;
* a ReadIndex (or lease) read's index covers every entry committed before the read began;
* no term sent past what the wire's u64 carries.

After the faults heal, a leader must emerge and a new proposal must commit within a
bound (liveness). The last line printed is ``N seeds, V violations``.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from respkv.faults import RaftRule
from respkv.raft.confchange import ConfChange, ConfChangeError, ConfChangeType
from respkv.raft.core import (
    Config,
    NotLeader,
    ProposalDropped,
    RaftCore,
    RaftError,
    Ready,
    Role,
)
from respkv.raft.messages import Message, MessageType, SnapshotMeta
from respkv.raft.types import Entry, EntryKind, HardState

DEFAULT_KNOBS = {
    "check_quorum": 0.85,  # probability that a seed runs with CheckQuorum (and leases)
    "pre_vote": 0.85,
    "lease_read": 0.5,  # probability, among the CheckQuorum seeds, of lease reads
    "drop": 0.05,  # per message
    "dup": 0.03,
    "delay": 0.2,  # probability of 1..11 extra rounds (3 rounds per step)
    "long_delay": 0.02,  # probability of 12..59 extra rounds
    "crash": 0.02,  # per step: a random node
    "leader_crash": 0.01,  # per step: the leader
    "crash_in_ready": 0.003,  # per Ready: before or after the eager sends, before persisting
    "leader_crash_in_ready": 0.0,  # added for leaders
    "crash_after_vote": 0.02,  # a node that just granted a vote (downtime 1..3 steps)
    "crash_new_leader": 0.05,  # a new leader, 0..3 steps into its term
    "partition": 0.02,  # per step, when healed: a random split (healed 5..59 steps later)
    "isolate_leader": 0.01,  # per step, when healed: the leader alone on one side
    "pause": 0.01,  # per step: a node's driver stands still (SIGSTOP), 1..30 steps
    "pause_all": 0.005,  # per step: every node stands still at once (a paused VM)
    "max_size": 0,  # max_size_per_msg; 0: chosen per seed among 64, 256, 1 MiB
    "max_inflight": 0,  # max_inflight_msgs; 0: chosen per seed among 1, 2, 4, 64
    "forge": 0.05,  # per step: a forged message (its own random stream: see _forge)
    "down_min": 1,  # steps a crashed node stays down
    "down_max": 40,
}

ALL_FAULTS = ("drop", "delay", "reorder", "dup", "partition", "crash", "pause", "forge")
GROUP = "g0"
WIRE_TERM_LIMIT = 1 << 64  # the codec carries terms as u64
STRANGERS = ("x1", "x2")  # forged senders that are never members (nodes are n<k>)


class Violation(Exception):
    pass


@dataclass
class Storage:
    hs: HardState = field(default_factory=HardState)
    snap: SnapshotMeta | None = None
    snap_data: list = field(default_factory=list)  # the state machine at snap.index
    entries: list[Entry] = field(default_factory=list)


@dataclass
class SimNode:
    id: str
    cfg_voters: tuple[str, ...]
    storage: Storage = field(default_factory=Storage)
    core: RaftCore | None = None
    alive: bool = True
    incarnation: int = 0
    restart_at: int = -1
    sm: list = field(default_factory=list)  # applied (term, data), index k+1 at sm[k]
    pending: Ready | None = None
    pending_prev_term: int = 0
    incoming_snaps: dict = field(default_factory=dict)
    seen_commit: int = 0
    proposed: dict = field(default_factory=dict)  # index -> data
    leader_terms: set = field(default_factory=set)
    crash_at: tuple | None = None
    paused: int = 0  # steps this node's driver has stood still (0: running)
    resume_at: int = -1


class Sim:
    def __init__(
        self,
        seed: int,
        nodes: int = 5,
        steps: int = 200,
        faults: tuple[str, ...] = ALL_FAULTS,
        trace: bool = False,
        membership: bool = True,
        knobs: dict | None = None,
        broken_rules: frozenset[RaftRule] = frozenset(),
    ) -> None:
        self.broken_rules = broken_rules  # test hook: rules every core breaks
        self.k = k = dict(DEFAULT_KNOBS)
        if knobs:
            unknown = set(knobs) - set(k)
            if unknown:
                raise ValueError(f"unknown knobs {unknown}")
            k.update(knobs)
        self.seed = seed
        self.rng = random.Random(seed)
        r = self.rng
        self.steps = steps
        self.faults = set(faults)
        self.tracing = trace
        self.trace: deque = deque(maxlen=400)
        self.membership = membership
        self.check_quorum = r.random() < k["check_quorum"]
        self.pre_vote = r.random() < k["pre_vote"]
        self.lease_read = self.check_quorum and r.random() < k["lease_read"]
        self.max_inflight = r.choice((1, 2, 4, 64))
        self.max_size = r.choice((64, 256, 1 << 20))
        if k["max_inflight"]:
            self.max_inflight = k["max_inflight"]
        if k["max_size"]:
            self.max_size = k["max_size"]
        self.tail = r.choice((0, 2, 10))
        self.max_inflight_bytes = r.choice((0, 0, 300, 2000))
        self.election_tick = 10
        self.heartbeat_tick = r.choice((1, 2, 3))
        self.ids = [f"n{i + 1}" for i in range(nodes)]
        self.next_id = nodes + 1
        self.max_nodes = nodes + 3
        self.nodes: dict[str, SimNode] = {}
        self.net: list = []  # (deliver_at_round, seq, msg, payload, src_incarnation)
        self.seq = 0
        self.round = 0
        self.step_no = 0
        self.partition: dict[str, int] | None = None
        self.heal_at = -1
        self.history: list[tuple[int, int, bytes]] = []  # (term, kind, data), index k+1
        self.leaders: dict[int, str] = {}
        self.seen: dict[tuple[int, int], tuple] = {}
        self.acked: dict[int, bytes] = {}
        self.reads: dict[bytes, tuple[str, int]] = {}
        self.prop_no = 0
        self.read_no = 0
        # Forgeries draw from a stream of their own and reach the cores outside the
        # simulated network (no drops, no reordering draws), so switching them on
        # leaves the rest of a seed's schedule much as it was.
        self.forge_rng = random.Random(seed * 1_000_003 + 77)
        self.forged: list[tuple[int, Message]] = []  # (deliver at round, message)
        self.stats = {
            "acked": 0,
            "reads": 0,
            "crashes": 0,
            "pauses": 0,
            "snaps_sent": 0,
            "conf": 0,
            "transfers": 0,
            "leaders": 0,
            "forged": 0,
        }
        for nid in self.ids:
            self.nodes[nid] = SimNode(nid, tuple(self.ids))
            self._start(self.nodes[nid])

    # ------------------------------------------------------------ plumbing
    def log(self, *what) -> None:
        if self.tracing:
            self.trace.append((self.step_no, self.round, what))

    def fail(self, text: str) -> None:
        raise Violation(f"seed {self.seed} step {self.step_no}: {text}")

    def _start(self, n: SimNode) -> None:
        st = n.storage
        cfg = Config(
            node_id=n.id,
            group=GROUP,
            voters=n.cfg_voters,
            election_tick=self.election_tick,
            heartbeat_tick=self.heartbeat_tick,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
            # the default, which followers' forwarded reads get; local reads choose
            lease_read=self.lease_read,
            max_inflight_msgs=self.max_inflight,
            max_inflight_bytes=self.max_inflight_bytes,
            max_size_per_msg=self.max_size,
            compaction_tail=self.tail,
            applied=len(n.sm),
            seed=self.rng.randrange(1 << 30),
            broken_rules=self.broken_rules,
        )
        n.core = RaftCore(cfg, st.hs, st.snap, list(st.entries))
        n.alive = True
        n.incarnation += 1
        n.pending = None
        n.incoming_snaps = {}
        n.seen_commit = n.core.log.committed
        n.proposed = {}
        self.log(
            "start",
            n.id,
            f"hs={st.hs} snap={st.snap and st.snap.index}",
            f"entries={len(st.entries)} applied={len(n.sm)}",
        )

    def _downtime(self) -> int:
        return self.rng.randrange(self.k["down_min"], self.k["down_max"])

    def _crash(self, n: SimNode, down_for: int) -> None:
        self.log("crash", n.id, "pending" if n.pending else "")
        n.alive = False
        n.core = None
        n.pending = None
        n.paused, n.resume_at = 0, -1
        n.restart_at = self.step_no + down_for
        self.stats["crashes"] += 1

    def _connected(self, a: str, b: str) -> bool:
        p = self.partition
        return p is None or p.get(a, 0) == p.get(b, 0)

    def _send(self, src: SimNode, msgs: list[Message]) -> None:
        r = self.rng
        f = self.faults
        for m in msgs:
            if m.term >= WIRE_TERM_LIMIT:
                self.fail(f"{src.id} sends term {m.term}, past what the wire carries: {m}")
            payload = None
            if m.type == MessageType.SNAP:
                st = src.storage
                if st.snap is None or st.snap.index < m.snapshot.index:
                    self.fail(f"{src.id} sends snapshot {m.snapshot} but has {st.snap}")
                if st.snap != m.snapshot:
                    # a newer snapshot was taken since: the driver sends that one
                    m = dataclasses.replace(m, snapshot=st.snap)
                payload = (st.snap, list(st.snap_data))
                self.stats["snaps_sent"] += 1
            copies = 1
            if "dup" in f and r.random() < self.k["dup"]:
                copies = 2
            for _ in range(copies):
                delay = 1
                if "delay" in f:
                    x = r.random()
                    if x < self.k["delay"]:
                        delay += r.randrange(1, 12)
                    elif x < self.k["delay"] + self.k["long_delay"]:
                        delay += r.randrange(12, 60)
                self.seq += 1
                self.net.append((self.round + delay, self.seq, m, payload, src.incarnation))

    def _deliver_forged(self) -> None:
        if not self.forged:
            return
        due = [m for at, m in self.forged if at <= self.round]
        self.forged = [x for x in self.forged if x[0] > self.round]
        for m in due:
            dst = self.nodes.get(m.to)
            if dst is not None and dst.alive and not dst.paused:
                self.log("forged", m)
                dst.core.step(m)

    def _forge(self) -> None:
        """Queue a forged message or two, as a peer that holds the secret but lies."""
        fr = self.forge_rng
        if fr.random() >= self.k["forge"]:
            return
        live = [n for n in self.nodes.values() if n.alive and not n.paused]
        if not live:
            return
        kind = fr.randrange(5)
        leaders = [x for x in live if x.core.role == Role.LEADER]
        n = fr.choice(leaders) if kind in (1, 2) and leaders else fr.choice(live)
        core = n.core
        log = core.log
        peers = [p for p in core.conf.voters + core.conf.learners if p != n.id] or ["n1"]
        peer = fr.choice(peers)
        out: list[Message] = []
        mk = Message
        if kind == 0:  # a term from far ahead: the largest the wire carries, or just too far
            term = fr.choice((WIRE_TERM_LIMIT - 1, core.term + (1 << 32) + 1, (1 << 62) + 1))
            typ = fr.choice((MessageType.HEARTBEAT, MessageType.APP, MessageType.VOTE,
                             MessageType.PRE_VOTE, MessageType.APP_RESP))
            out.append(mk(typ, GROUP, n.id, peer, term))
        elif kind == 1 and core.role == Role.LEADER:  # acks past the end, a quorum's worth
            others = [v for v in core.conf.voters if v != n.id and v in core.prs]
            fr.shuffle(others)
            for v in others[: max(1, len(core.conf.voters) // 2)]:
                out.append(mk(MessageType.APP_RESP, GROUP, n.id, v, core.term,
                              index=log.last_index() + fr.randrange(1, 1000)))
        elif kind == 2 and core.role == Role.LEADER:  # a stranger claims a newer term
            typ = fr.choice((MessageType.HEARTBEAT, MessageType.APP))
            out.append(mk(typ, GROUP, n.id, fr.choice(STRANGERS), core.term + 1,
                          index=log.last_index(), log_term=log.last_term(),
                          commit=log.last_index()))
        elif kind == 3:  # a stranger asks for a vote (harmless to a node cut off)
            out.append(mk(MessageType.VOTE, GROUP, n.id, fr.choice(STRANGERS), core.term + 1,
                          index=log.last_index() + 100, log_term=core.term + 1))
        else:  # indexes that cannot be
            x = fr.randrange(4)
            if x == 0:
                out.append(mk(MessageType.APP, GROUP, n.id, peer, core.term, index=-1,
                              commit=log.last_index() + 5))
            elif x == 1:  # entries that do not follow the previous index
                i = log.last_index()
                out.append(mk(MessageType.APP, GROUP, n.id, peer, core.term, index=i,
                              log_term=log.last_term(), commit=i + 3,
                              entries=[Entry(core.term, i + 3, EntryKind.NORMAL, b"forged")]))
            elif x == 2:  # a snapshot from a term not yet reached
                out.append(mk(MessageType.SNAP, GROUP, n.id, peer, core.term,
                              snapshot=SnapshotMeta(log.last_index() + 10, core.term + 1,
                                                    core.conf)))
            else:  # a heartbeat answer from a tick not yet reached: a lease for ever
                out.append(mk(MessageType.HEARTBEAT_RESP, GROUP, n.id, peer, core.term,
                              context=(1 << 40).to_bytes(8, "little") * 2))
        # lies to a leader reach it in the next round, while it still leads (a node
        # that no longer does may be cut off, and then hears strangers on purpose)
        delay = 1 if kind in (1, 2) else fr.randrange(1, 4)
        for m in out:
            self.stats["forged"] += 1
            self.forged.append((self.round + delay, m))

    def _deliver(self) -> None:
        self._deliver_forged()
        due = [x for x in self.net if x[0] <= self.round]
        if not due:
            return
        self.net = [x for x in self.net if x[0] > self.round]
        if "reorder" in self.faults:
            self.rng.shuffle(due)
        else:
            due.sort(key=lambda x: (x[0], x[1]))
        r = self.rng
        for item in due:
            _, _, m, payload, _inc = item
            dst = self.nodes.get(m.to)
            src = self.nodes.get(m.from_)
            if dst is not None and dst.alive and dst.paused:
                self.net.append(item)  # unread in its socket until it wakes up
                continue
            dropped = (
                dst is None
                or not dst.alive
                or not self._connected(m.from_, m.to)
                or ("drop" in self.faults and r.random() < self.k["drop"])
            )
            if dropped:
                self.log("drop", m)
                if m.type == MessageType.SNAP and src is not None and src.alive:
                    src.core.report_snapshot(m.to, False)
                elif (
                    src is not None
                    and src.alive
                    and not self._connected(m.from_, m.to)
                    and r.random() < 0.3
                ):
                    src.core.report_unreachable(m.to)
                continue
            self.log("recv", m)
            if payload is not None:
                dst.incoming_snaps[payload[0].index] = payload
            dst.core.step(m)
            if m.type == MessageType.SNAP and src is not None and src.alive:
                src.core.report_snapshot(m.to, True)

    # -------------------------------------------------------------- driver
    def _ready_round(self) -> None:
        for nid in list(self.nodes):
            n = self.nodes[nid]
            if not n.alive or n.paused:
                continue
            if n.pending is not None:
                self._finish(n)
                continue
            core = n.core
            if not core.has_ready():
                continue
            rd = core.ready()
            for refusal in rd.refused:
                key = f"refused_{refusal.reason}"
                self.stats[key] = self.stats.get(key, 0) + 1
            if rd.entries:
                n.pending_prev_term = core.log.term(rd.entries[0].index - 1)
            if "crash" in self.faults:
                p = self.k["crash_in_ready"]
                if core.role == Role.LEADER:
                    p += self.k["leader_crash_in_ready"]
                x = self.rng.random()
                if x < p / 2:  # before anything is sent
                    self._crash(n, self._downtime())
                    continue
                self._send(n, rd.eager_messages)
                if x < p:  # after the eager sends, before persisting
                    self._crash(n, self._downtime())
                    continue
            else:
                self._send(n, rd.eager_messages)
            n.pending = rd
            if self.rng.random() < 0.7:
                self._finish(n)

    def _finish(self, n: SimNode) -> None:
        rd = n.pending
        n.pending = None
        st = n.storage
        core = n.core
        if rd.snapshot is not None:
            payload = n.incoming_snaps.pop(rd.snapshot.index, None)
            if payload is None or payload[0] != rd.snapshot:
                self.fail(f"{n.id}: no bytes for snapshot {rd.snapshot}")
            meta, data = payload
            if len(data) != meta.index:
                self.fail(f"snapshot data {len(data)} != index {meta.index}")
            for k in range(min(len(data), len(self.history))):
                if data[k] != self.history[k]:
                    self.fail(f"snapshot at {meta.index} differs from history at {k + 1}")
            if meta.index < len(n.sm):
                self.fail(f"{n.id}: snapshot {meta.index} behind applied {len(n.sm)}")
            st.snap = meta
            st.snap_data = list(data)
            st.entries = []
            n.sm = list(data)
            self.log("install", n.id, meta)
        if rd.entries:
            first = rd.entries[0].index
            self._check_matching(n, rd.entries, n.pending_prev_term)
            base = st.snap.index if st.snap else 0
            if st.entries:
                base = st.entries[0].index - 1
            k = first - base - 1
            if k < 0 or k > len(st.entries):
                self.fail(
                    f"{n.id}: ready entries from {first}, storage [{base + 1}, "
                    f"{base + len(st.entries)}]"
                )
            del st.entries[k:]
            st.entries.extend(rd.entries)
        if rd.hard_state is not None:
            st.hs = rd.hard_state
        self._send(n, rd.messages)
        if (
            "crash" in self.faults
            and self.k["crash_after_vote"]
            and any(m.type == MessageType.VOTE_RESP and not m.reject for m in rd.messages)
            and self.rng.random() < self.k["crash_after_vote"]
        ):
            self._crash(n, self.rng.randrange(1, 4))
            return
        for e in rd.committed_entries:
            self._apply(n, e)
        for rs in rd.read_states:
            start = self.reads.pop(rs.ctx, None)
            if start is None:
                continue
            if start[0] != n.id:
                self.fail(f"read {rs.ctx!r} of {start[0]} came back on {n.id}")
            if rs.index < start[1]:
                self.fail(
                    f"stale read {rs.ctx!r} on {n.id}: index {rs.index} but "
                    f"{start[1]} was committed when it began"
                )
            self.stats["reads"] += 1
        for ctx in rd.dropped_reads:
            self.reads.pop(ctx, None)
        core.advance(rd)

    def _check_matching(self, n: SimNode, ents: list[Entry], prev_term: int) -> None:
        seen = self.seen
        for e in ents:
            key = (e.index, e.term)
            val = (e.kind, e.data, prev_term)
            old = seen.get(key)
            if old is None:
                seen[key] = val
            elif old != val:
                self.fail(f"log matching: {n.id} has ({e.index},{e.term}) = {val}, seen {old}")
            prev_term = e.term

    def _apply(self, n: SimNode, e: Entry) -> None:
        if e.index != len(n.sm) + 1:
            self.fail(f"{n.id} applies {e.index} after {len(n.sm)}")
        rec = (e.term, int(e.kind), e.data)
        self._record(e.index, rec, n.id)
        n.sm.append(rec)
        want = n.proposed.pop(e.index, None)
        if want is not None and want == e.data and e.kind == EntryKind.NORMAL:
            self.acked[e.index] = e.data
            self.stats["acked"] += 1

    def _record(self, index: int, rec: tuple, who: str) -> None:
        h = self.history
        if index <= len(h):
            if h[index - 1] != rec:
                self.fail(f"{who}: committed entry {index} is {rec}, history has {h[index - 1]}")
        elif index == len(h) + 1:
            h.append(rec)
        else:
            self.fail(f"{who}: committed {index} with history only up to {len(h)}")

    # -------------------------------------------------------------- checks
    def _check(self) -> None:
        for n in self.nodes.values():
            if not n.alive:
                continue
            core = n.core
            log = core.log
            if log.committed < n.seen_commit:
                self.fail(f"{n.id} commit went back {n.seen_commit} -> {log.committed}")
            for i in range(max(n.seen_commit + 1, log.offset + 1), log.committed + 1):
                e = log.entry(i)
                self._record(i, (e.term, int(e.kind), e.data), n.id)
            n.seen_commit = log.committed
            if log.applied != len(n.sm) and n.pending is None:
                self.fail(f"{n.id}: core applied {log.applied}, state machine {len(n.sm)}")
            if core.role == Role.LEADER:
                t = core.term
                other = self.leaders.setdefault(t, n.id)
                if other != n.id:
                    self.fail(f"two leaders in term {t}: {other} and {n.id}")
                if t not in n.leader_terms:
                    n.leader_terms.add(t)
                    self.stats["leaders"] += 1
                    self.log("leader", n.id, t)
                    if "crash" in self.faults and self.rng.random() < self.k["crash_new_leader"]:
                        n.crash_at = (n.incarnation, self.step_no + self.rng.randrange(0, 4))
                    # every entry committed in an earlier term must be in its log
                    # (a late leader of an old term need not have a newer term's)
                    h = self.history
                    k = len(h)
                    while k > 0 and h[k - 1][0] >= t:
                        k -= 1
                    if log.last_index() < k:
                        self.fail(f"leader {n.id} t{t} last {log.last_index()} < commit {k}")
                    for i in range(log.offset + 1, k + 1):
                        if log.term(i) != h[i - 1][0]:
                            self.fail(f"leader completeness: {n.id} t{t} entry {i}")
        for i, d in self.acked.items():
            if i > len(self.history) or self.history[i - 1][2] != d:
                self.fail(f"acknowledged proposal {i} lost")

    # ----------------------------------------------------------- schedule
    def _leader(self) -> SimNode | None:
        best = None
        for n in self.nodes.values():
            if (
                n.alive
                and not n.paused
                and n.core.role == Role.LEADER
                and (best is None or n.core.term > best.core.term)
            ):
                best = n
        return best

    def _alive(self) -> list[SimNode]:
        """The nodes whose driver runs: up and not paused."""
        return [n for n in self.nodes.values() if n.alive and not n.paused]

    def _pause(self, nodes: list[SimNode], steps: int) -> None:
        for n in nodes:
            n.paused, n.resume_at = 1, self.step_no + steps
            self.stats["pauses"] += 1
            self.log("pause", n.id, steps)

    def _resume_due(self, everyone: bool = False) -> None:
        """A paused driver wakes up and tells its core how long it stood still."""
        for n in self.nodes.values():
            if n.alive and n.paused and (everyone or n.resume_at <= self.step_no):
                self.log("resume", n.id, n.paused)
                n.core.tick_after_pause(n.paused)
                n.paused, n.resume_at = 0, -1

    def _propose(self, n: SimNode, k: int) -> bool:
        datas = []
        for _ in range(k):
            self.prop_no += 1
            datas.append(b"p%d" % self.prop_no)
        try:
            last = n.core.propose_batch(datas) if k > 1 else n.core.propose(datas[0])
        except (NotLeader, ProposalDropped):
            return False
        for j, d in enumerate(datas):
            n.proposed[last - k + 1 + j] = d
        self.log("propose", n.id, last, k)
        return True

    def _ops(self) -> None:
        r = self.rng
        f = self.faults
        alive = self._alive()
        if alive and r.random() < 0.5:
            n = r.choice(alive)
            if n.core.role != Role.LEADER and r.random() < 0.7:
                n = self._leader() or n
            self._propose(n, r.choice((1, 1, 2, 5)))
        readers = []
        if alive and r.random() < 0.3:
            readers.append(r.choice(alive))
        if r.random() < 0.3:  # every node that thinks it leads, stale ones included
            readers.extend(n for n in alive if n.core.role == Role.LEADER)
        for n in readers:
            self.read_no += 1
            ctx = b"r%d" % self.read_no
            lease = self.lease_read and r.random() < 0.7
            if lease and r.random() < 0.5:  # the driver's shortcut: no round, no Ready
                index = n.core.lease_read_index()
                if index is not None:
                    self.log("read", n.id, ctx, len(self.history), "at once")
                    if index < len(self.history):
                        self.fail(f"stale read {ctx!r} on {n.id} at once: index {index} "
                                  f"but {len(self.history)} was committed when it began")
                    self.stats["reads"] += 1
                    continue
            try:
                n.core.read_index(ctx, lease=lease)
                self.reads[ctx] = (n.id, len(self.history))
                self.log("read", n.id, ctx, len(self.history), "lease" if lease else "")
            except NotLeader:
                pass
        if alive and r.random() < 0.03:
            n = r.choice(alive)
            a = n.core.log.applied
            snap = n.storage.snap
            if (
                a > (snap.index if snap else 0)
                and len(n.sm) == a
                and n.pending is None
                and a >= n.core.log.offset  # not while a received snapshot is installing
            ):
                meta = n.core.snapshot_meta(a)
                n.storage.snap = meta
                n.storage.snap_data = list(n.sm[:a])
                keep = a - self.tail
                n.storage.entries = [e for e in n.storage.entries if e.index > keep]
                n.core.snapshot_taken(meta)
                self.log("snapshot", n.id, meta)
        if self.membership and r.random() < 0.03:
            self._conf_change()
        if r.random() < 0.02:
            ld = self._leader()
            if ld is not None:
                voters = [v for v in ld.core.conf.voters if v != ld.id]
                if voters:
                    t = r.choice(voters)
                    try:
                        ld.core.transfer_leadership(t)
                        self.stats["transfers"] += 1
                        self.log("transfer", ld.id, t)
                    except (RaftError, ValueError):
                        pass
        self._resume_due()
        if "pause" in f and r.random() < self.k["pause"]:
            up = self._alive()
            if up:
                self._pause([r.choice(up)], r.randrange(1, 3 * self.election_tick))
        if "pause" in f and r.random() < self.k["pause_all"]:
            self._pause(self._alive(), r.randrange(1, 3 * self.election_tick))
        if "crash" in f and r.random() < self.k["crash"]:
            up = self._alive()
            if len(up) > 1:
                self._crash(r.choice(up), self._downtime())
        if "crash" in f and r.random() < self.k["leader_crash"]:
            ld = self._leader()
            if ld is not None:
                self._crash(ld, self._downtime())
        x = r.random()
        if (
            "partition" in f
            and self.partition is None
            and (x < self.k["partition"] + self.k["isolate_leader"])
        ):
            ids = list(self.nodes)
            r.shuffle(ids)
            cut = r.randrange(1, len(ids))
            ld = self._leader()
            if x >= self.k["partition"] and ld is not None:  # the leader alone
                ids.remove(ld.id)
                ids.insert(0, ld.id)
                cut = 1
            self.partition = {x: (0 if k < cut else 1) for k, x in enumerate(ids)}
            self.heal_at = self.step_no + r.randrange(5, 60)
            self.log("partition", sorted(ids[:cut]), sorted(ids[cut:]))
        if self.partition is not None and self.step_no >= self.heal_at:
            self.partition = None
            self.log("heal")
        for n in self.nodes.values():
            if not n.alive and n.restart_at <= self.step_no:
                self._start(n)
            elif (
                n.alive
                and n.crash_at
                and n.crash_at[0] == n.incarnation
                and n.crash_at[1] <= self.step_no
            ):
                n.crash_at = None
                self._crash(n, self._downtime())

    def _conf_change(self) -> None:
        ld = self._leader()
        if ld is None:
            return
        r = self.rng
        cs = ld.core.conf
        cc = None
        outside = [x for x in self.nodes if x not in cs.voters and x not in cs.learners]
        x = r.random()
        if cs.learners and x < 0.6:
            op = ConfChangeType.ADD_VOTER if x < 0.5 else ConfChangeType.REMOVE
            cc = ConfChange(op, r.choice(cs.learners))
        elif len(cs.voters) > 3 and x < 0.8:
            cc = ConfChange(ConfChangeType.REMOVE, r.choice(cs.voters))
        elif outside and r.random() < 0.5:  # a removed node comes back, log and all
            op = ConfChangeType.ADD_LEARNER if r.random() < 0.8 else ConfChangeType.ADD_VOTER
            cc = ConfChange(op, r.choice(outside))
        elif len(self.nodes) < self.max_nodes:
            nid = f"n{self.next_id}"
            cc = ConfChange(ConfChangeType.ADD_LEARNER, nid)
        if cc is None:
            return
        try:
            idx = ld.core.propose_conf_change(cc)
        except (RaftError, ConfChangeError):
            return
        self.stats["conf"] += 1
        self.log("conf", ld.id, idx, cc)
        if cc.node_id not in self.nodes:
            self.next_id += 1
            n = SimNode(cc.node_id, ())
            self.nodes[n.id] = n
            self._start(n)

    def _tick(self) -> None:
        for n in self.nodes.values():
            if n.alive and n.paused:
                n.paused += 1  # the clock goes on; the driver does not see it
            elif n.alive:
                n.core.tick()

    def _step(self, ops: bool = True) -> None:
        self.step_no += 1
        if ops:
            self._ops()
            if "forge" in self.faults:
                self._forge()
        for _ in range(3):
            self.round += 1
            self._deliver()
            self._ready_round()
        self._tick()
        self._check()

    # ---------------------------------------------------------------- run
    def run(self) -> None:
        for _ in range(self.steps):
            self._step()
        self._heal_and_check_liveness()

    def _heal_and_check_liveness(self) -> None:
        self.log("heal all")
        self.faults = set()
        self.partition = None
        self._resume_due(everyone=True)
        for n in self.nodes.values():
            if not n.alive:
                self._start(n)
        self.net = [x for x in self.net if x[3] is None or True]
        bound = 40 * self.election_tick
        want: tuple[str, int] | None = None
        for _ in range(bound):
            self._step(ops=False)
            ld = self._leader()
            if ld is None:
                continue
            if want is not None and want[0] == ld.id:
                i = want[1]
                if len(ld.sm) >= i:
                    if self.acked.get(i) is not None:
                        return
                    want = None  # overwritten: propose again
            if (
                (want is None or want[0] != ld.id)
                and ld.core.lead_transferee is None
                and self._propose(ld, 1)
            ):
                want = (ld.id, ld.core.log.last_index())
        desc = "; ".join(
            f"{n.id}:{n.core.role.name[:4]} t{n.core.term} c{n.core.log.committed}"
            f" a{n.core.log.applied} last{n.core.log.last_index()} lead={n.core.lead}"
            f" voters={','.join(n.core.conf.voters)}"
            for n in self.nodes.values()
        )
        self.fail(f"liveness: no commit within {bound} steps after healing: {desc}")

    def format_trace(self) -> str:
        lines = []
        for step, rnd, what in self.trace:
            lines.append(f"  [{step}.{rnd}] " + " ".join(str(w) for w in what))
        return "\n".join(lines)


def run_seed(
    seed: int, nodes: int, steps: int, faults, trace: bool = False, stats: dict | None = None,
    broken_rules: frozenset[RaftRule] = frozenset(), knobs: dict | None = None,
) -> str | None:
    """Run one seed; the violation text (with a trace if asked), or None."""
    sim = Sim(seed, nodes=nodes, steps=steps, faults=faults, trace=trace,
              broken_rules=broken_rules, knobs=knobs)
    try:
        sim.run()
    except Violation as v:
        if trace:
            return f"{v}\ntrace (last {len(sim.trace)} events):\n{sim.format_trace()}"
        return str(v)
    except Exception as exc:  # the core raised: as bad as a broken property
        import traceback

        text = f"seed {seed} step {sim.step_no}: exception {exc!r}"
        if trace:
            text += "\n" + traceback.format_exc()
            text += f"trace (last {len(sim.trace)} events):\n{sim.format_trace()}"
        return text
    finally:
        if stats is not None:
            for k, x in sim.stats.items():
                stats[k] = stats.get(k, 0) + x
    return None


def _worker(args) -> tuple[int, str | None, dict]:
    seed, nodes, steps, faults = args
    st: dict = {}
    return seed, run_seed(seed, nodes, steps, faults, stats=st), st


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m raftsim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--seed", type=int, default=None, help="replay this one seed, with a trace")
    ap.add_argument("--nodes", type=int, default=5, choices=(3, 5))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument(
        "--faults",
        default="all",
        help="comma list of " + ",".join(ALL_FAULTS) + ", or all, or none",
    )
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument(
        "--bug",
        action="append",
        default=[],
        choices=[rule.value for rule in RaftRule],
        help="switch on a deliberately broken rule (test hook)",
    )
    a = ap.parse_args(argv)
    if a.faults == "all":
        faults = ALL_FAULTS
    elif a.faults in ("", "none"):
        faults = ()
    else:
        faults = tuple(x.strip() for x in a.faults.split(",") if x.strip())
        bad = [x for x in faults if x not in ALL_FAULTS]
        if bad:
            ap.error(f"unknown faults {bad}")
    broken = frozenset(RaftRule(bug) for bug in a.bug)
    t0 = time.perf_counter()
    if a.seed is not None:
        seeds = [a.seed]
    else:
        seeds = list(range(a.start, a.start + a.seeds))
    violations = 0
    stats: dict = {}
    bugs = "".join(f" --bug {b}" for b in a.bug)

    def report(seed: int, err: str) -> None:
        if a.seed is None:  # batch run: replay the seed with tracing for a short trace
            traced = run_seed(seed, a.nodes, a.steps, faults, trace=True,
                              broken_rules=broken) or err
            head, _, tr = traced.partition("trace (last")
            tail = tr.splitlines()[-30:]
            err = head.rstrip() + ("\n  last events:\n" + "\n".join(tail) if tail else "")
        print(
            f"VIOLATION {err}\n  replay: python -m raftsim --seed {seed} "
            f"--nodes {a.nodes} --steps {a.steps} --faults {a.faults}{bugs}",
            flush=True,
        )

    if a.jobs > 1 and a.seed is None and not a.bug:
        import multiprocessing as mp

        with mp.Pool(a.jobs) as pool:
            work = [(s, a.nodes, a.steps, faults) for s in seeds]
            for done, (seed, err, st) in enumerate(
                pool.imap_unordered(_worker, work, chunksize=16), 1
            ):
                for k, x in st.items():
                    stats[k] = stats.get(k, 0) + x
                if done % 10000 == 0:
                    dt = time.perf_counter() - t0
                    print(f"  {done} seeds, {violations} violations ({dt:.0f}s)", file=sys.stderr)
                if err:
                    violations += 1
                    report(seed, err)
    else:
        for s in seeds:
            err = run_seed(s, a.nodes, a.steps, faults, trace=a.seed is not None, stats=stats,
                           broken_rules=broken)
            if err:
                violations += 1
                report(s, err)
    dt = time.perf_counter() - t0
    print(f"({dt:.1f}s; totals: {stats})", file=sys.stderr)
    print(f"{len(seeds)} seeds, {violations} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
