"""A hand-driven in-memory cluster for scenario tests and benchmarks.

Unlike the simulator nothing here is random: a test says which messages go
where, and when. It follows the driver contract of :mod:`respkv.raft.core`
exactly (persist, then send, then apply, then advance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from respkv.raft.core import Config, RaftCore, Role
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.raft.types import Entry, EntryKind, HardState


@dataclass
class MemStorage:
    hs: HardState = field(default_factory=HardState)
    snap: SnapshotMeta | None = None
    snap_data: list = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    def persist(self, rd) -> None:
        if rd.snapshot is not None:
            self.snap = rd.snapshot
            self.entries = []
        if rd.entries:
            first = rd.entries[0].index
            base = self.entries[0].index if self.entries else first
            del self.entries[max(0, first - base) :]
            self.entries.extend(rd.entries)
        if rd.hard_state is not None:
            self.hs = rd.hard_state


class Cluster:
    def __init__(self, ids, *, voters=None, **cfg) -> None:
        self.ids = list(ids)
        self.voters = tuple(voters if voters is not None else self.ids)
        self.cfg = cfg
        self.storage: dict[str, MemStorage] = {}
        self.cores: dict[str, RaftCore] = {}
        self.applied: dict[str, list[Entry]] = {}
        self.reads: dict[str, list] = {}
        self.dropped_reads: dict[str, list] = {}
        self.queue: list[Message] = []
        self.cut: set[tuple[str, str]] = set()
        self.down: set[str] = set()
        self.dropped: list[Message] = []
        for i, nid in enumerate(self.ids):
            self.storage[nid] = MemStorage()
            self.applied[nid] = []
            self.reads[nid] = []
            self.dropped_reads[nid] = []
            self._start(nid, seed=i)

    @classmethod
    def from_logs(
        cls, logs: dict[str, list[int]], terms: dict[str, int] | None = None, **cfg
    ) -> Cluster:
        """A cluster restarted from given logs: ``{"n1": [1, 1, 4]}`` gives n1 the
        entries 1/1 2/1 3/4 (NORMAL entries, data b"i/t"). The membership (all of
        the ids, as voters) comes from a snapshot meta at index 0. ``terms`` sets
        the persisted current term (default: the last entry's term)."""
        c = cls.__new__(cls)
        c.ids = list(logs)
        c.voters = tuple(logs)
        c.cfg = cfg
        c.storage, c.cores, c.applied, c.reads, c.dropped_reads = {}, {}, {}, {}, {}
        c.queue, c.cut, c.down, c.dropped = [], set(), set(), []
        base = SnapshotMeta(0, 0, ConfState(tuple(sorted(logs)), ()))
        for i, (nid, ts) in enumerate(logs.items()):
            ents = [
                Entry(t, k + 1, EntryKind.NORMAL, b"%d/%d" % (k + 1, t)) for k, t in enumerate(ts)
            ]
            term = (terms or {}).get(nid, ts[-1] if ts else 0)
            c.storage[nid] = MemStorage(HardState(term, None, 0), base, [], ents)
            c.applied[nid] = []
            c.reads[nid] = []
            c.dropped_reads[nid] = []
            c._start(nid, seed=i)
        for core in c.cores.values():
            core._lease_guard = False  # as if down for longer than an election timeout
        return c

    def add_node(self, nid: str) -> None:
        """A new, empty node (it learns the membership from the log)."""
        self.ids.append(nid)
        self.storage[nid] = MemStorage()
        self.applied[nid] = []
        self.reads[nid] = []
        self.dropped_reads[nid] = []
        self._start(nid, seed=len(self.ids), voters=())

    def _start(self, nid: str, seed: int = 0, voters=None) -> None:
        st = self.storage[nid]
        cfg = {"election_tick": 10, "heartbeat_tick": 1}
        cfg.update(self.cfg)
        v = self.voters if voters is None else voters
        if nid in self.cores:
            v = self.cores[nid].cfg.voters
        c = Config(node_id=nid, voters=v, seed=seed, applied=len(self.applied[nid]), **cfg)
        self.cores[nid] = RaftCore(c, st.hs, st.snap, list(st.entries))

    def __getitem__(self, nid: str) -> RaftCore:
        return self.cores[nid]

    # -- faults --------------------------------------------------------------
    def isolate(self, nid: str) -> None:
        for o in self.ids:
            if o != nid:
                self.cut.add((nid, o))
                self.cut.add((o, nid))

    def partition(self, *groups) -> None:
        self.cut.clear()
        for g in groups:
            for h in groups:
                if g is not h:
                    for a in g:
                        for b in h:
                            self.cut.add((a, b))

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, nid: str) -> None:
        """Stop a node: everything not persisted by a finished Ready is lost."""
        self.down.add(nid)
        self.queue = [m for m in self.queue if m.to != nid]

    def restart(self, nid: str) -> None:
        self.down.discard(nid)
        self._start(nid, seed=self.ids.index(nid) + 100)

    # -- driving -------------------------------------------------------------
    def tick(self, nid: str | None = None, n: int = 1) -> None:
        for _ in range(n):
            for x in [nid] if nid else self.ids:
                if x not in self.down:
                    self.cores[x].tick()

    def run(self, ticks: int) -> None:
        """Tick every live node, then stabilize; ``ticks`` times."""
        for _ in range(ticks):
            self.tick()
            self.stabilize()

    def campaign(self, nid: str) -> None:
        self.cores[nid].campaign()

    def process(self, nid: str) -> bool:
        """Carry out one Ready of nid, if any: persist, send, apply, advance."""
        core = self.cores[nid]
        if nid in self.down or not core.has_ready():
            return False
        rd = core.ready()
        self.storage[nid].persist(rd)
        if rd.snapshot is not None:
            self.applied[nid] = [None] * rd.snapshot.index
        self.queue.extend(rd.eager_messages)
        self.queue.extend(rd.messages)
        self.applied[nid].extend(rd.committed_entries)
        self.reads[nid].extend(rd.read_states)
        self.dropped_reads[nid].extend(rd.dropped_reads)
        core.advance(rd)
        return True

    def deliver(self, pred: Callable[[Message], bool] | None = None) -> int:
        """Deliver queued messages (those matching pred); returns how many."""
        keep, go = [], []
        for m in self.queue:
            (go if pred is None or pred(m) else keep).append(m)
        self.queue = keep
        n = 0
        for m in go:
            if m.to in self.down or (m.from_, m.to) in self.cut or m.to not in self.cores:
                self.dropped.append(m)
                continue
            self.cores[m.to].step(m)
            if m.type == MessageType.SNAP:
                self.cores[m.from_].report_snapshot(m.to, True)
            n += 1
        return n

    def stabilize(self, limit: int = 10000) -> None:
        """Process and deliver until nothing moves."""
        for _ in range(limit):
            moved = False
            for nid in self.ids:
                moved |= self.process(nid)
            moved |= self.deliver() > 0
            if not moved:
                return
        raise RuntimeError("cluster does not stabilize")

    # -- views ---------------------------------------------------------------
    def leader(self) -> str | None:
        best = None
        for nid in self.ids:
            c = self.cores[nid]
            if (
                nid not in self.down
                and c.role == Role.LEADER
                and (best is None or c.term > self.cores[best].term)
            ):
                best = nid
        return best

    def log_text(self, nid: str) -> str:
        """'n1 t3 [2]1/1 2/1 3/2 c2' : term, (first index,) entries index/term, commit."""
        c = self.cores[nid]
        lg = c.log
        ents = " ".join(f"{e.index}/{e.term}" for e in lg.entries)
        snap = f"snap{lg.offset}/{lg.offset_term} " if lg.offset else ""
        role = c.role.name.lower()
        return f"{nid} {role} t{c.term}: {snap}{ents} | commit {lg.committed}"

    def show(self) -> str:
        return "\n".join(self.log_text(n) for n in self.ids)
