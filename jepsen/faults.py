"""The nemesis: faults on a seeded schedule, each recorded with its start and end.

Fault kinds (``--faults``, comma separated):

- ``kill``: kill -9 then restart; the target is drawn from one node, the
  leader, a majority, all at once (``kill-one``, ``kill-leader``,
  ``kill-majority``, ``kill-all`` pick one of them only);
- ``pause``: SIGSTOP then SIGCONT, of the leader (mostly) or any node
  (``pause-leader`` only the leader);
- ``partition``: through the raft proxies, isolate the leader from the
  majority (mostly) or a random minority; clients still reach every node
  (``partition-leader`` only the leader);
- ``delay``: delay the raft links of a random node by 50-300 ms;
- ``drop``: drop 20-60% of the raft messages on every link;
- ``transfer``: ``RESPKV.TRANSFER <follower>`` sent to the leader;
- ``member``: ``CLUSTER LEAVE`` of a follower, then it is wiped and joins again;
- ``wipe``: kill -9 of a follower and its dir wiped, as a lost disk; restarted as
  itself it must be refused (it would vote with an empty log), then it is replaced
  as the README says: ``CLUSTER LEAVE``, and a join on the empty dir;
- ``disk-full``: a follower's disk filled to the last block (each node's dir is
  then a tmpfs of its own, see ``DISK_SIZE``) for the fault's length, the
  groups it leads handed to others (again while it still leads any); what the
  log gives back from its reserve is taken again at once. Then the space is freed, and the node must
  apply, within ``CATCH_UP_TIMEOUT``, what the leaders had committed by then,
  in every group: a node that does not fails the run (no recovery);
- ``big-value``: writes of values near the leader's ``max-entry-bytes`` (which
  must replicate) and just over it (which must be refused up front), beside the
  workload's keys, each read back from every node.

The schedule (which fault, which target, how long) is drawn from a
``random.Random(seed)``; what the leader is at that moment is not seeded.
With ``schedule="cycle"`` the kinds come in the order given, round and
round (targets and lengths still drawn): a short run with ``kill,pause``
then surely has both.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from jepsen.history import History
from jepsen.nodes import JCluster, JNode
from jepsen.proxy import Rule
from respkv.replication.slots import key_slot, slot_ranges
from testsupport.disks import fill
from testsupport.info import group_lines, parse_info
from testsupport.processes import command
from testsupport.waiting import wait_for

KINDS = ("kill", "kill-one", "kill-leader", "kill-majority", "kill-all", "pause",
         "pause-leader", "partition", "partition-leader", "delay", "drop", "transfer", "member",
         "slow-disk", "wipe", "big-value", "disk-full")
WIPED_REFUSAL = "is still a voter of"  # what a wiped voter's log says when it is refused
BIG_VALUE_KEY = "jepsen-big"  # outside every workload's keys
# Replies that say where the leader went, or that there is none for now.
MOVED_ON = (redis.exceptions.MovedError, redis.exceptions.ClusterDownError,
            redis.exceptions.TryAgainError)
SCHEDULES = ("random", "cycle")
# disk-full: each node's own tmpfs; room for a short run's log segments (they grow to
# 64 MiB before the next is started) and its snapshots
DISK_SIZE = "128m"
FILLER = "jepsen-filler"  # the files that take the disk, in the node's dir
CATCH_UP_TIMEOUT = 30.0  # seconds a node whose disk was full has to catch up


def disk_size(kinds: list[str]) -> str:
    """The size of each node's own filesystem for a run with ``kinds`` ("": none)."""
    return DISK_SIZE if "disk-full" in kinds else ""


@dataclass
class FaultEvent:
    kind: str
    start: int  # history time (ns)
    end: int = 0
    targets: list[str] = field(default_factory=list)
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)  # what the fault saw, for checks

    def summary(self) -> dict[str, Any]:
        summary = {"kind": self.kind, "start_s": round(self.start / 1e9, 3),
                   "end_s": round(self.end / 1e9, 3), "targets": self.targets,
                   "detail": self.detail}
        if self.facts:
            summary["facts"] = self.facts
        return summary


class Nemesis(threading.Thread):
    def __init__(self, cluster: JCluster, history: History, kinds: list[str], seed: int,
                 stop: threading.Event, quiet: tuple[float, float] = (1.0, 3.0),
                 length: tuple[float, float] = (1.5, 4.0), rejoin_same_id: bool = False,
                 names: dict[int, str] | None = None, schedule: str = "random") -> None:
        super().__init__(name="nemesis", daemon=True)
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)} (known: {KINDS})")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r} (known: {SCHEDULES})")
        self.schedule = schedule
        self.injected = 0
        self.cluster = cluster
        self.history = history
        self.kinds = kinds
        self.random = random.Random(seed)
        self.stop_event = stop
        self.quiet = quiet
        self.length = length
        self.events: list[FaultEvent] = []
        self.errors: list[str] = []
        self.not_caught_up: list[str] = []  # nodes that did not catch up after a fault
        # A removed node comes back under a new id (n1 -> n1.2) unless this is set:
        # see the report on rejoining under the same id.
        self.rejoin_same_id = rejoin_same_id
        self.names = names if names is not None else {}  # client port -> current node id

    @property
    def network(self):
        return self.cluster.network

    def run(self) -> None:
        while not self.stop_event.is_set():
            if self.stop_event.wait(self.random.uniform(*self.quiet)):
                break
            if not self.kinds:
                continue
            if self.schedule == "cycle":
                kind = self.kinds[self.injected % len(self.kinds)]
            else:
                kind = self.random.choice(self.kinds)
            self.injected += 1
            try:
                self.inject(kind, self.random.uniform(*self.length))
            except Exception as error:  # a fault that could not be applied is logged
                self.errors.append(f"{kind}: {error!r}")
                self.heal_all()

    def sleep(self, seconds: float) -> None:
        """Faults last their full length even when the run is told to stop."""
        time.sleep(seconds)

    def some_group(self) -> str:
        """A group to aim a leader fault at: the leaders are spread over the nodes."""
        return self.random.choice(self.cluster.group_names())

    def leader_or_any(self) -> JNode:
        leader = self.cluster.leader(self.some_group())
        if leader is not None:
            return leader
        live = [n for n in self.cluster.nodes if n.alive()]
        return self.random.choice(live or self.cluster.nodes)

    def record(self, kind: str, targets: list[JNode], detail: str = "") -> FaultEvent:
        event = FaultEvent(kind, self.history.now(), targets=[n.node_id for n in targets],
                           detail=detail)
        self.events.append(event)
        return event

    def inject(self, kind: str, length: float) -> None:
        nodes = self.cluster.nodes
        rng = self.random
        if kind == "kill":
            kind = rng.choice(["kill-one", "kill-leader", "kill-majority", "kill-all"])
        if kind == "pause":
            kind = rng.choice(["pause-leader", "pause-leader", "pause-one"])
        if kind == "partition":
            kind = rng.choice(["partition-leader", "partition-leader", "partition-random"])
        if kind.startswith("kill"):
            if kind == "kill-one":
                targets = [rng.choice(nodes)]
            elif kind == "kill-leader":
                targets = [self.leader_or_any()]
            elif kind == "kill-majority":
                leader = self.leader_or_any()
                others = [n for n in nodes if n is not leader]
                targets = [leader, *rng.sample(others, len(nodes) // 2)]
            else:
                targets = list(nodes)
            event = self.record(kind, targets)
            for node in targets:
                node.kill()
            self.sleep(min(length, rng.uniform(0.3, 2.5)))
            for node in targets:
                node.start()
        elif kind.startswith("pause"):
            target = self.leader_or_any() if kind == "pause-leader" else rng.choice(nodes)
            event = self.record(kind, [target])
            target.pause()
            self.sleep(length)
            target.resume()
        elif kind.startswith("partition"):
            if kind == "partition-leader":
                alone = [self.leader_or_any()]
            else:
                alone = rng.sample(nodes, rng.randrange(1, (len(nodes) + 1) // 2))
            rest = [n for n in nodes if n not in alone]
            event = self.record(kind, alone, detail=f"{[n.node_id for n in alone]} | "
                                                    f"{[n.node_id for n in rest]}")
            self.network.partition([n.node_id for n in alone], [n.node_id for n in rest])
            self.sleep(length)
            self.network.heal()
        elif kind == "delay":
            target = rng.choice(nodes)
            delay = rng.uniform(0.05, 0.3)
            event = self.record(kind, [target], detail=f"{delay * 1000:.0f} ms")
            for other in nodes:
                if other is not target:
                    self.network.set_rule(target.node_id, other.node_id, Rule(delay=delay))
                    self.network.set_rule(other.node_id, target.node_id, Rule(delay=delay))
            self.sleep(length)
            self.network.heal()
        elif kind == "drop":
            rate = rng.uniform(0.2, 0.6)
            event = self.record(kind, list(nodes), detail=f"{rate:.0%} of messages")
            for a in nodes:
                for b in nodes:
                    if a is not b:
                        self.network.set_rule(a.node_id, b.node_id, Rule(drop=rate))
            self.sleep(length)
            self.network.heal()
        elif kind == "transfer":
            group = self.some_group()
            leader = self.cluster.leader(group)
            followers = [n for n in nodes if n is not leader and n.alive()]
            if leader is None or not followers:
                return
            target = rng.choice(followers)
            event = self.record(kind, [target], detail=f"{group} from {leader.node_id}")
            try:
                command(leader.port, "RESPKV.TRANSFER", target.node_id, group, timeout=2,
                        password=leader.password)
            except (redis.RedisError, OSError) as error:
                event.detail += f": {error}"
        elif kind == "slow-disk":
            target = self.leader_or_any() if rng.random() < 0.5 else rng.choice(nodes)
            delay_ms = rng.choice([20, 100, 400])
            event = self.record(kind, [target], detail=f"fsync +{delay_ms} ms")
            self.set_fsync_delay(target, delay_ms)
            self.sleep(length)
            self.set_fsync_delay(target, 0)
        elif kind == "member":
            event = self.membership(length)
            if event is None:
                return
        elif kind == "wipe":
            event = self.wipe_and_replace(length)
            if event is None:
                return
        elif kind == "big-value":
            event = self.big_values()
            if event is None:
                return
        elif kind == "disk-full":
            event = self.disk_full(length)
            if event is None:
                return
        else:
            raise ValueError(kind)
        event.end = event.end or self.history.now()

    def membership(self, length: float) -> FaultEvent | None:
        """Remove a node that does not lead the chosen group (it may lead others: it
        hands them over), wipe it, let it join again (as a learner, then voter)."""
        picked = self.leader_and_follower()
        if picked is None:
            return None
        leader, target = picked
        event = self.record("member", [target], detail="leave, wipe, join")
        try:
            command(leader.port, "CLUSTER", "LEAVE", target.node_id, timeout=5,
                    password=leader.password)
        except (redis.RedisError, OSError) as error:
            event.detail += f"; leave failed: {error}"
            return event
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not target.alive(), 10, "the removed node to exit")
        target.kill()
        self.sleep(min(length, 1.0))
        shutil.rmtree(target.dir, ignore_errors=True)
        self.join_elsewhere(target, leader)
        self.next_identity(target)
        target.start()
        event.detail += f"; rejoined as {target.node_id} through {target.join}"
        return event

    def leader_and_follower(self) -> tuple[JNode, JNode] | None:
        """The leader of a group drawn, and a live node that does not lead it."""
        leader = self.cluster.leader(self.some_group())
        followers = [n for n in self.cluster.nodes if n is not leader and n.alive()]
        if leader is None or not followers:
            return None
        return leader, self.random.choice(followers)

    def join_elsewhere(self, target: JNode, fallback: JNode) -> None:
        """``target`` joins, when restarted, through another live node."""
        others = [n for n in self.cluster.nodes if n is not target and n.alive()]
        target.join = (others[0] if others else fallback).address

    def next_identity(self, target: JNode) -> None:
        """A removed node comes back as n1.2, n1.3... unless told to keep its id."""
        if not self.rejoin_same_id:
            base, _, generation = target.node_id.partition(".")
            target.node_id = f"{base}.{int(generation or 1) + 1}"
            self.names[target.port] = target.node_id

    def wipe_and_replace(self, length: float) -> FaultEvent | None:
        """A follower loses its disk: killed, wiped, restarted under its own id and
        refused; then removed and joined again on the empty dir."""
        picked = self.leader_and_follower()
        if picked is None:
            return None
        leader, target = picked
        event = self.record("wipe", [target], detail="kill -9, wipe, restart")
        target.kill()
        shutil.rmtree(target.dir, ignore_errors=True)
        self.join_elsewhere(target, leader)
        target.start()
        try:
            wait_for(lambda: not target.alive(), 30, "the wiped node to be refused")
        except TimeoutError:
            self.errors.append(f"wipe: {target.node_id} was taken back with an empty dir")
            event.detail += "; NOT refused"
            return event
        log = (target.dir.parent / f"{target.node_id}.log").read_text(errors="replace")
        if WIPED_REFUSAL not in log.rsplit("--- start", 1)[-1]:
            self.errors.append(f"wipe: {target.node_id} exited without the refusal")
        self.sleep(min(length, 1.0))
        leader = self.cluster.leader(self.some_group()) or leader
        try:
            command(leader.port, "CLUSTER", "LEAVE", target.node_id, timeout=5,
                    password=leader.password)
        except (redis.RedisError, OSError) as error:
            event.detail += f"; leave failed: {error}"
            return event
        shutil.rmtree(target.dir, ignore_errors=True)
        self.next_identity(target)
        target.start()
        event.detail += f"; refused, removed, rejoined as {target.node_id}"
        return event

    def big_values(self) -> FaultEvent | None:
        """Values near max-entry-bytes go through the log; one just over is refused
        up front. Either way the cluster keeps its leaders."""
        group = self.cluster.group_names()[0]
        leader = self.cluster.leader(group)
        if leader is None:
            return None
        event = self.record("big-value", [leader])
        try:
            client = redis.Redis(port=leader.port, password=leader.password or None,
                                 socket_timeout=30)
            limit = int(client.config_get("max-entry-bytes")["max-entry-bytes"])
            size = limit - self.random.randrange(1024, 65536)
            key = self.key_of_first_group(f"{BIG_VALUE_KEY}-{self.injected}")
            client.set(key, b"v" * size)
            event.detail = f"{size} bytes written"
            for node in self.cluster.nodes:
                if node.alive() and not node.paused:
                    try:
                        wait_for(lambda n=node: self.length_on(n, key) == size, 30,
                                 f"the big value on {node.node_id}")
                    except TimeoutError as error:
                        self.errors.append(f"big-value: acknowledged, then {error}")
            try:
                client.set(f"{key}-over", b"v" * (limit + 1))
            except MOVED_ON as error:  # the leader moved meanwhile: nothing to judge
                event.detail += f"; the write over the limit met {error!r}"
            except redis.ResponseError as error:
                if "too big to replicate" not in str(error):
                    self.errors.append(f"big-value: over the limit: {error}")
            else:
                self.errors.append("big-value: a write over max-entry-bytes was taken")
        except redis.ResponseError as error:  # MOVED meanwhile, an election: not a fault
            event.detail = f"not written: {error}"
        except (redis.RedisError, OSError) as error:
            event.detail = f"not written: {error}"
        return event

    def disk_full(self, length: float) -> FaultEvent | None:
        """Fill a follower's disk, hold it full while the load goes on, free it, and
        wait for the node to catch up."""
        picked = self.leader_and_follower()
        if picked is None:
            return None
        _, target = picked
        event = self.record("disk-full", [target])
        fillers = 0
        fill(target.dir / f"{FILLER}-{fillers}")
        event.detail = f"filled, {self.free_bytes(target)} bytes left"
        others = [n for n in self.cluster.nodes if n is not target]
        seen_full = led = looks = 0
        deadline = time.monotonic() + length
        while time.monotonic() < deadline:
            if self.free_bytes(target):  # the log's reserve, given up to the full disk
                fillers += 1
                fill(target.dir / f"{FILLER}-{fillers}")
            seen_full += self.persistence(target).get("disk_full") == "1"
            if any(f.get("role") == "leader"
                   for f in group_lines(target.info() or {}).values()):
                led += 1
                if led % 5 == 1:  # a transfer fails when its transferee lags: again
                    self.hand_over(target, others[led // 5 % len(others)])
            looks += 1
            time.sleep(0.1)  # the pace of the looks, not a wait on anything
        event.detail += (f"; disk_full=1 seen {seen_full} of {looks} looks, leading a "
                         f"group at {led} of them, {fillers} top-ups")
        commits: dict[str, int] = {}
        self.applied_all(target, commits)
        behind = {group: index - applied for group, index in commits.items()
                  if (applied := self.applied(target).get(group)) is not None}
        event.detail += f"; behind the leaders by {behind} entries"
        event.facts.update(looks=looks, disk_full_seen=seen_full, leading_seen=led,
                           behind=behind)
        self.free_disk(target)
        event.end = self.history.now()
        started = time.monotonic()
        commits.clear()
        try:
            wait_for(lambda: self.applied_all(target, commits), CATCH_UP_TIMEOUT,
                     "the node to catch up")
        except TimeoutError:
            applied = self.applied(target)
            message = (f"disk-full: {target.node_id} did not apply the leaders' commit "
                       f"indexes {commits} within {CATCH_UP_TIMEOUT:.0f} s of the space "
                       f"being freed (applied: {applied or 'no answer'})")
            self.errors.append(message)
            self.not_caught_up.append(message)
            event.detail += "; freed, NOT caught up"
            return event
        took = time.monotonic() - started
        event.detail += f"; freed, caught up with {commits} in {took:.1f} s"
        event.facts.update(caught_up_with=commits, caught_up_seconds=round(took, 2))
        return event

    @staticmethod
    def hand_over(leader: JNode, to: JNode) -> None:
        """Every group ``leader`` leads to ``to``: a leader with a full disk stays the
        leader and refuses writes, and the fault is to be a follower's."""
        with contextlib.suppress(redis.RedisError, OSError):
            command(leader.port, "RESPKV.TRANSFER", to.node_id, timeout=5,
                    password=leader.password)

    def applied_all(self, node: JNode, commits: dict[str, int]) -> bool:
        """``node`` has applied, in every group, what the group's leader had committed
        when first asked (noted in ``commits``, group -> index)."""
        for group in self.cluster.group_names():
            if group not in commits:
                leader = self.cluster.leader(group)
                fields = group_lines((leader.info() if leader else None) or {}).get(group)
                if fields is None:
                    return False
                commits[group] = int(fields["commit_index"])
        mine = self.applied(node)
        return all(mine.get(group, -1) >= index for group, index in commits.items())

    @staticmethod
    def applied(node: JNode) -> dict[str, int]:
        """Group -> the node's applied index ({} when it does not answer)."""
        return {group: int(fields.get("applied_index", -1))
                for group, fields in group_lines(node.info() or {}).items()}

    @staticmethod
    def free_bytes(node: JNode) -> int:
        return shutil.disk_usage(node.dir).free

    @staticmethod
    def persistence(node: JNode) -> dict[str, str]:
        with contextlib.suppress(redis.RedisError, OSError):
            return parse_info(command(node.port, "INFO", "persistence", timeout=1,
                                      password=node.password))
        return {}

    @staticmethod
    def free_disk(node: JNode) -> None:
        for filler in node.dir.glob(f"{FILLER}-*"):
            filler.unlink(missing_ok=True)

    def key_of_first_group(self, prefix: str) -> str:
        """A hash tag (``{prefix-counter}``, so that keys made from it share its slot)
        whose slot the first group serves."""
        last = slot_ranges(len(self.cluster.group_names()))[0][1]
        return next(key for key in (f"{{{prefix}-{i}}}" for i in range(10_000))
                    if key_slot(key.encode()) <= last)

    @staticmethod
    def length_on(node: JNode, key: str) -> int:
        with contextlib.suppress(redis.RedisError, OSError):
            return int(command(node.port, "STRLEN", key, timeout=5, password=node.password))
        return -1

    def set_fsync_delay(self, node: JNode, delay_ms: int) -> None:
        """Slow the node's disk down (or back to normal) with DEBUG FSYNC-DELAY."""
        # the node may be down or paused: a restart brings the normal disk back
        with contextlib.suppress(redis.RedisError, OSError):
            command(node.port, "DEBUG", "FSYNC-DELAY", str(delay_ms), timeout=5,
                    password=node.password)

    def heal_all(self) -> None:
        self.network.heal()
        for node in self.cluster.nodes:
            self.free_disk(node)
        for node in self.cluster.nodes:
            if node.alive():
                self.set_fsync_delay(node, 0)
        for node in self.cluster.nodes:
            if node.paused:
                node.resume()
            if not node.alive():
                node.start()
