"""A sharded cluster: three nodes, three Raft groups (g0..g2) each owning a third
of the slots, their leaders spread over the nodes. Redis Cluster clients
(redis-benchmark --cluster, redis-py's RedisCluster) see three masters; writes
over several groups work on a node leading all of them; failover, join and
leave act on every group."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hiredis
import pytest
import redis
from cluster_support import RawConnection, Writers, assert_all_present, max_gap
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from respkv.replication.slots import SLOTS, key_slot, slot_ranges
from testsupport.info import agreed_leaders, group_lines, members
from testsupport.processes import Cluster, Node, command, raft_info
from testsupport.waiting import wait_for

SHARDS = 3
GROUPS = [f"g{i}" for i in range(SHARDS)]
RANGES = slot_ranges(SHARDS)
HEX40 = re.compile(r"^[0-9a-f]{40}$")
CROSSSLOT_TEXT = "Keys in request don't hash to the same slot"
NOT_YET = (redis.exceptions.ClusterCrossSlotError, redis.exceptions.MovedError,
           redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Call to '__init__' function with deprecated usage")


# -- helpers ----------------------------------------------------------------------


def group_of(key: str) -> str:
    slot = key_slot(key.encode())
    return next(GROUPS[i] for i, (a, b) in enumerate(RANGES) if a <= slot <= b)


def keys_in(group: str, prefix: str, count: int) -> list[str]:
    """``count`` keys ``<prefix>:<i>`` whose slots are ``group``'s."""
    found = []
    i = 0
    while len(found) < count:
        key = f"{prefix}:{i}"
        if group_of(key) == group:
            found.append(key)
        i += 1
    return found


def group_leaders(cluster: Cluster, nodes: list[Node] | None = None) -> dict[str, str] | None:
    """Group -> leader id, when every given (default: live) node answers and agrees
    and that leader says it leads; else None."""
    wanted = nodes if nodes is not None else cluster.alive()
    infos = cluster.infos(wanted)
    return agreed_leaders(infos) if len(infos) == len(wanted) else None


def wait_spread(cluster: Cluster, timeout: float = 30.0) -> dict[str, str]:
    """Each node leads exactly one group, a different one: group -> leader id."""

    def spread() -> dict[str, str] | None:
        leaders = group_leaders(cluster)
        infos = cluster.infos()
        if leaders is None or len(set(leaders.values())) != SHARDS:
            return None
        for node_id, info in infos.items():
            led = [g for g in info["raft_leads"].split(",") if g]
            if led != [g for g, n in leaders.items() if n == node_id] or len(led) != 1:
                return None
        return leaders

    return wait_for(spread, timeout, "one group led by each node")


def commit_indexes(cluster: Cluster) -> dict[str, int]:
    """Each group's commit index, as its leader reports it."""
    leaders = wait_for(lambda: group_leaders(cluster), 15, "agreed leaders")
    return {g: int(group_lines(raft_info(cluster.node(leader)))[g]["commit_index"])
            for g, leader in leaders.items()}


def wait_groups_applied(cluster: Cluster, node: Node, timeout: float = 30.0) -> None:
    """``node`` has applied, in every group, the commit index its leader has now."""
    wanted = commit_indexes(cluster)

    def applied() -> bool:
        info = raft_info(node)
        return all(int(group_lines(info)[g]["applied_index"]) >= index
                   for g, index in wanted.items())

    wait_for(applied, timeout, f"{node.address} applied {wanted}")


def redis_cluster(cluster: Cluster, **kwargs) -> RedisCluster:
    kwargs.setdefault("socket_timeout", 10)
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in cluster.alive()],
                        **kwargs)


def start_sharded(base: Path, made: list[Cluster]) -> Cluster:
    cluster = Cluster(base, 3, shards=SHARDS)
    made.append(cluster)
    cluster.start()
    cluster.wait_voters(set(cluster.node_ids), timeout=45)
    return cluster


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made: list[Cluster] = []
    try:
        yield start_sharded(tmp_path_factory.mktemp("sharded"), made)
    finally:
        for cluster in made:
            cluster.stop()


@pytest.fixture
def fresh_sharded(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], Cluster]:
    made: list[Cluster] = []

    def stop_all() -> None:
        for cluster in made:
            cluster.stop()

    request.addfinalizer(stop_all)
    return lambda: start_sharded(tmp_path / f"cluster{len(made)}", made)


# -- tests ------------------------------------------------------------------------


def test_leaders_spread_and_cluster_replies(sharded: Cluster) -> None:
    leaders = wait_spread(sharded)
    # group i prefers the i-th voter by sorted node id
    assert leaders == {"g0": "n1", "g1": "n2", "g2": "n3"}, leaders
    hex_ids = {command(n.port, "CLUSTER", "MYID").decode(): sharded.id_of(n)
               for n in sharded.nodes}
    assert len(hex_ids) == 3 and all(HEX40.match(h) for h in hex_ids)
    by_port = {n.port: sharded.id_of(n) for n in sharded.nodes}

    for node in sharded.nodes:
        info = raft_info(node)
        assert info["raft_shards"] == "3"
        assert info["raft_leads"] == next(g for g, n in leaders.items()
                                          if n == sharded.id_of(node))

        lines = command(node.port, "CLUSTER", "NODES").decode().strip().split("\n")
        assert len(lines) == 3, lines
        covered: list[int] = []
        myself = 0
        for line in lines:
            fields = line.split(" ")
            hex_id, address, flags = fields[:3]
            flag_set = set(flags.split(","))
            port = int(address.partition("@")[0].rsplit(":", 1)[1])
            assert hex_ids[hex_id] == by_port[port], line
            myself += "myself" in flag_set
            assert ("myself" in flag_set) == (port == node.port), line
            assert "master" in flag_set and fields[3] == "-", line
            assert fields[7] == "connected", line
            assert len(fields[8:]) == 1, line
            first, _, last = fields[8].partition("-")
            group = GROUPS[RANGES.index((int(first), int(last or first)))]
            assert leaders[group] == by_port[port], line
            covered += range(int(first), int(last or first) + 1)
        assert myself == 1
        assert sorted(covered) == list(range(SLOTS)), "slots not covered exactly once"

        slots = command(node.port, "CLUSTER", "SLOTS")
        in_slots: list[int] = []
        first_role: dict[str, str] = {}
        for start, end, master, *replicas in slots:
            group = next(g for g, (a, b) in zip(GROUPS, RANGES, strict=True)
                         if a <= start and end <= b)
            assert by_port[master[1]] == leaders[group]
            assert hex_ids[master[2].decode()] == leaders[group]
            in_slots += range(start, end + 1)
            first_role.setdefault(leaders[group], "master")
            for replica in replicas:
                first_role.setdefault(by_port[replica[1]], "replica")
            # the group's other voters are its replicas, except in the one-slot entry
            # that announces a master before it shows up as another range's replica
            others = sorted(set(by_port.values()) - {leaders[group]})
            assert sorted(by_port[r[1]] for r in replicas) in ([], others), slots
            assert replicas or start == end, slots
        assert sorted(in_slots) == list(range(SLOTS)), slots
        # redis-py keeps a node's first role: every node must first appear as a master
        assert set(first_role.values()) == {"master"}, slots
        assert sum(len(entry) - 3 for entry in slots) == 2 * 3, "each group has 2 replicas"

        cluster_info = dict(line.split(":", 1) for line in
                            command(node.port, "CLUSTER", "INFO").decode().split("\r\n") if line)
        assert cluster_info["cluster_state"] == "ok", cluster_info
        assert cluster_info["cluster_size"] == "3", cluster_info
        assert cluster_info["cluster_slots_ok"] == "16384", cluster_info
        assert cluster_info["cluster_known_nodes"] == "3", cluster_info


_RPS = re.compile(r"^\s*([A-Z_]+): ([\d.]+) requests per second")


def test_redis_cli_cluster_check(sharded: Cluster) -> None:
    """redis-cli's own cluster checker finds three masters covering every slot."""
    wait_spread(sharded)
    done = subprocess.run(["redis-cli", "--cluster", "check", sharded.nodes[1].address],
                          capture_output=True, timeout=60, check=False)
    out = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, out
    assert "All nodes agree about slots configuration" in out, out
    assert "All 16384 slots covered" in out, out
    assert "in 3 masters" in out, out


def test_redis_benchmark_cluster_mode(sharded: Cluster) -> None:
    wait_spread(sharded)
    node = sharded.nodes[1]
    done = subprocess.run(
        ["redis-benchmark", "--cluster", "-h", "127.0.0.1", "-p", str(node.port),
         "-t", "set,get", "-n", "3000", "-c", "20", "-r", "1000", "-q"],
        capture_output=True, timeout=120, check=False)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    print(out)
    assert done.returncode == 0, out
    lines = [line for line in re.split(r"[\r\n]", out) if line.strip()]
    bad = [line for line in lines if re.search(r"err|invalid", line, re.IGNORECASE)]
    assert not bad, out
    rates = {m.group(1): float(m.group(2)) for line in lines if (m := _RPS.match(line))}
    assert set(rates) == {"SET", "GET"}, out
    assert all(rate > 0 for rate in rates.values()), rates
    assert "3 master nodes" in out, out

    # every group holds some of the benchmark's keys (it uses a hash tag per master)
    held = {}
    for node in sharded.nodes:  # DBSIZE covers the groups the node leads
        held[sharded.id_of(node)] = command(node.port, "DBSIZE")
    assert all(count > 0 for count in held.values()), held
    assert sum(held.values()) <= 3 * 1000, held  # -r 1000: 1000 keys per hash tag at most

    client = redis_cluster(sharded)
    try:
        masters = {client.nodes_manager.slots_cache[first][0].port for first, _ in RANGES}
        assert masters == {n.port for n in sharded.nodes}
        assert sum(client.dbsize(target_nodes=client.get_node(port=p, host="127.0.0.1"))
                   for p in masters) == sum(held.values())
        # A Redis Cluster client sends keyless commands (DBSIZE, KEYS, SCAN, FLUSHALL)
        # to its masters and merges the answers: it must see the three masters.
        primaries = sorted(p.port for p in client.get_primaries())
        total = client.dbsize(target_nodes=RedisCluster.PRIMARIES)
        assert (primaries, total) == (sorted(masters), sum(held.values())), (
            f"RedisCluster primaries {primaries}, masters by slot {sorted(masters)}; "
            f"RedisCluster.dbsize() {total}, keys held by each group's leader {held}")
    finally:
        client.close()


@pytest.mark.parametrize("read_from_replicas", [False, True])
def test_redis_cluster_round_trips_spread_writes(sharded: Cluster,
                                                 read_from_replicas: bool) -> None:
    leaders = wait_spread(sharded)
    before = commit_indexes(sharded)
    client = redis_cluster(sharded, read_from_replicas=read_from_replicas)
    try:
        prefix = f"rt{int(read_from_replicas)}"
        keys = [f"{prefix}:{i}" for i in range(300)]
        per_group = {g: sum(group_of(k) == g for k in keys) for g in GROUPS}
        assert all(count > 50 for count in per_group.values()), per_group
        for i, key in enumerate(keys):
            assert client.set(key, f"value{i}") is True
        for i, key in enumerate(keys):
            assert client.get(key) == f"value{i}".encode()
        after_sets = commit_indexes(sharded)
        # every group committed (at least) one entry per SET of its keys: every
        # node, as the leader of its group, took a third of the writes
        grown = {g: after_sets[g] - before[g] for g in GROUPS}
        assert all(grown[g] >= per_group[g] for g in GROUPS), (grown, per_group, leaders)
        assert group_leaders(sharded) == leaders

        many = {f"{prefix}:m:{i}": f"m{i}" for i in range(60)}
        assert len({group_of(k) for k in many}) == 3
        assert set(client.mset_nonatomic(many)) == {True}  # an MSET per slot
        assert client.mget_nonatomic(list(many)) == [v.encode() for v in many.values()]
        assert client.mget_nonatomic(keys[:30]) == [f"value{i}".encode() for i in range(30)]
        assert client.delete(*keys[:10]) == 10
        assert client.mget_nonatomic(keys[:12]) == [None] * 10 + [b"value10", b"value11"]
        assert client.exists(*keys[10:20]) == 10
    finally:
        client.close()
    # reads anywhere, over every group: each node sees every write (linearizable reads)
    for node in sharded.nodes:
        plain = node.client()
        try:
            assert plain.mget(keys[:12]) == [None] * 10 + [b"value10", b"value11"]
            assert plain.mget(list(many)) == [v.encode() for v in many.values()]
        finally:
            plain.close()


def _cross_write(cluster: Cluster, target: Node, groups: list[str],
                 write: Callable[[redis.Redis], object], what: str) -> object:
    """Run ``write`` on ``target`` once it leads ``groups``; move their leadership
    there (RESPKV.TRANSFER to each one's leader) whenever it does not, since the
    balancer hands them back to their preferred nodes after a few seconds. Only
    replies that mean nothing was done (CROSSSLOT, MOVED...) count as "not yet"."""
    target_id = cluster.id_of(target)
    client = target.client()
    last: list[str] = []

    def attempt() -> object:
        leads = raft_info(target)["raft_leads"].split(",")
        missing = [g for g in groups if g not in leads]
        if missing:
            leaders = group_leaders(cluster)
            for group in missing:
                if leaders and leaders[group] != target_id:
                    command(cluster.node(leaders[group]).port, "RESPKV.TRANSFER", target_id,
                                group)
            return None
        try:
            return (write(client),)
        except NOT_YET as error:
            last[:] = [f"{error.__class__.__name__}: {error}"]
            return None

    try:
        return wait_for(attempt, 20, what, interval=0.05)[0]
    finally:
        client.close()
        print(f"{what}: last refusal {last}")


def test_writes_over_several_groups(sharded: Cluster) -> None:
    leaders = wait_spread(sharded)
    a, a2, a3 = keys_in("g0", "cross", 3)
    b, b2, b3 = keys_in("g1", "cross", 3)
    assert leaders["g0"] != leaders["g1"]

    # no node leads both groups: every node refuses, as Redis Cluster would
    for node in sharded.nodes:
        plain = node.client()
        try:
            with pytest.raises(redis.exceptions.ClusterCrossSlotError) as refused:
                plain.mset({a: "1", b: "2"})
            assert CROSSSLOT_TEXT in str(refused.value)
            if sharded.id_of(node) == leaders["g0"]:
                assert plain.set(a, "x") is True
            with pytest.raises(redis.exceptions.ResponseError) as refused:
                plain.rename(a, b2)
            assert CROSSSLOT_TEXT in str(refused.value)
            assert isinstance(refused.value, redis.exceptions.ClusterCrossSlotError)
        finally:
            plain.close()
        raw = RawConnection(node.port)
        reply = raw.call("MSET", a, "1", b, "2")
        raw.close()
        assert isinstance(reply, hiredis.ReplyError), reply
        assert str(reply) == f"CROSSSLOT {CROSSSLOT_TEXT}", reply
    g0_leader = sharded.node(leaders["g0"])
    assert command(g0_leader.port, "MGET", a, b, b2) == [b"x", None, None]  # refused: no effect

    # on the node leading both groups they work
    target = sharded.node(leaders["g0"])
    assert _cross_write(sharded, target, ["g0", "g1"],
                        lambda c: c.mset({a: "1", b: "2"}), "MSET over g0 and g1") is True
    assert _cross_write(sharded, target, ["g0", "g1"],
                        lambda c: c.rename(a, b2), "RENAME from g0 to g1") is True
    assert _cross_write(sharded, target, ["g0", "g1"],
                        lambda c: c.msetnx({a3: "3", b3: "4"}), "MSETNX over g0 and g1") is True
    assert _cross_write(sharded, target, ["g0", "g1"],
                        lambda c: c.msetnx({a2: "5", b3: "6"}), "MSETNX, one key exists") is False

    expected = {a: None, b: b"2", b2: b"1", a3: b"3", b3: b"4", a2: None}
    for node in sharded.nodes:  # linearizable reads, anywhere, over both groups
        plain = node.client()
        try:
            assert dict(zip(expected, plain.mget(list(expected)), strict=True)) == expected, \
                node.address
        finally:
            plain.close()


class ClusterWriter(threading.Thread):
    """Writes distinct keys through RedisCluster until stopped, remembering the
    acknowledged ones; every error is caught and the next key written."""

    def __init__(self, cluster: Cluster, prefix: str) -> None:
        super().__init__(name=f"cluster-writer-{prefix}", daemon=True)
        self.client = redis_cluster(cluster, socket_timeout=2, socket_connect_timeout=1,
                                    retry=Retry(NoBackoff(), 1),
                                    cluster_error_retry_attempts=3)
        self.prefix = prefix
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.acked: list[tuple[str, str, float]] = []  # key, value, time acknowledged
        self.errors: list[str] = []

    def run(self) -> None:
        i = 0
        while not self.stop_event.is_set():
            key, value = f"{self.prefix}:{i}", f"v{i}"
            i += 1
            try:
                ok = self.client.set(key, value)
            except Exception as error:  # RedisCluster retries itself; move on
                with self.lock:
                    self.errors.append(f"{time.monotonic():.2f} {error!r}")
                self.stop_event.wait(0.05)  # pacing, not a wait on state
                continue
            if ok is True:
                with self.lock:
                    self.acked.append((key, value, time.monotonic()))
        self.client.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(60)
        assert not self.is_alive(), "writer did not stop"

    def acked_since(self, moment: float) -> dict[str, int]:
        """Per group, the writes acknowledged after ``moment``."""
        with self.lock:
            recent = [key for key, _, at in self.acked if at > moment]
        return {g: sum(group_of(k) == g for k in recent) for g in GROUPS}

    def wait_each_group(self, moment: float, count: int, what: str,
                        timeout: float = 30.0) -> None:
        try:
            wait_for(lambda: min(self.acked_since(moment).values()) >= count, timeout, what)
        except TimeoutError as error:
            raise AssertionError(f"{error}: {self.acked_since(moment)}; "
                                 f"last errors {self.errors[-5:]}") from None


def test_kill_group_leader_during_writes(fresh_sharded: Callable[[], Cluster]) -> None:
    cluster = fresh_sharded()
    leaders = wait_spread(cluster)
    victim = cluster.node(leaders["g1"])
    victim_id = cluster.id_of(victim)
    survivors = [n for n in cluster.nodes if n is not victim]
    old_term = int(group_lines(raft_info(survivors[0]))["g1"]["term"])

    writer = ClusterWriter(cluster, "kill")
    writer.start()
    try:
        writer.wait_each_group(0, 30, "writes in every group before the kill")
        victim.kill()  # SIGKILL, by PID
        killed_at = time.monotonic()

        def new_g1_leader() -> str | None:
            found = group_leaders(cluster, survivors)
            return found and found["g1"] != victim_id and found["g1"]

        new_leader = wait_for(new_g1_leader, 15, "a new leader of g1 among the survivors")
        elected_after = time.monotonic() - killed_at
        print(f"g1: new leader {new_leader} {elected_after:.2f}s after kill -9")
        info = raft_info(cluster.node(new_leader))
        assert group_lines(info)["g1"]["role"] == "leader"
        assert int(group_lines(info)["g1"]["term"]) > old_term
        assert "g1" in info["raft_leads"].split(",")
        for group in ("g0", "g2"):  # the other groups keep their leaders
            assert group_lines(info)[group]["leader"] == leaders[group]
        seen = time.monotonic()
        writer.wait_each_group(seen, 30, "writes in every group after the election")

        victim.start()
        restarted = time.monotonic()
        writer.wait_each_group(restarted, 30, "writes in every group after the restart")
    finally:
        writer.stop()
    acked = {key: value for key, value, _ in writer.acked}
    print(f"{len(acked)} writes acknowledged, {len(writer.errors)} errors; "
          f"last errors: {writer.errors[-3:]}")
    assert acked

    wait_groups_applied(cluster, victim)
    info = raft_info(victim)
    for group in GROUPS:
        fields = group_lines(info)[group]
        assert victim_id in members(fields["voters"])
        assert fields["leader"], (group, fields)
    assert_all_present(cluster.nodes, acked)  # every node's own copy
    # the restarted node, caught up, gets its group back from the balancer
    assert wait_spread(cluster) == leaders
    client = redis_cluster(cluster)
    try:  # and through the cluster client, linearizable
        keys = sorted(acked)
        assert client.mget_nonatomic(keys) == [acked[k].encode() for k in keys]
    finally:
        client.close()


def test_join_and_leave_every_group(sharded: Cluster) -> None:
    wait_spread(sharded)
    originals = set(sharded.node_ids[:3])
    g0_leader = sharded.node(group_leaders(sharded)["g0"])
    via = next(n for n in sharded.nodes[:3] if n is not g0_leader)
    data = {f"join:{i}": f"j{i}" for i in range(30)}
    assert len({group_of(k) for k in data}) == 3
    client = redis_cluster(sharded)
    try:
        assert all(reply is True for reply in client.mset_nonatomic(data))
    finally:
        client.close()
    newcomer = sharded.add("n4", via=via)
    sharded.wait_voters(originals | {"n4"}, timeout=60)
    wait_groups_applied(sharded, newcomer)

    # the newcomer reads every group's data, and is a replica in CLUSTER SLOTS
    assert_all_present([newcomer], data)
    assert command(newcomer.port, "MGET", *data) == [v.encode() for v in data.values()]
    for start, end, _master, *replicas in command(newcomer.port, "CLUSTER", "SLOTS"):
        if start != end:  # a one-slot entry announces a master alone
            assert newcomer.port in {r[1] for r in replicas}, (start, end)

    # the newcomer leads g1 when it leaves: it hands g1 over after leaving g0, and
    # the others must still talk to it in g1 (one connection serves every group)
    g1_leader = sharded.node(group_leaders(sharded)["g1"])
    assert command(g1_leader.port, "RESPKV.TRANSFER", "n4", "g1") == b"OK"
    wait_for(lambda: "g1" in raft_info(newcomer)["raft_leads"].split(","), 10, "n4 leads g1")
    leave_via = next(n for n in sharded.nodes[:3] if n is not via)
    assert command(leave_via.port, "CLUSTER", "LEAVE", "n4", timeout=30) == b"OK"
    assert newcomer.proc.wait(30) == 0, newcomer.log()  # out of every group: it stops
    log = newcomer.log()
    assert "this node was removed from the cluster" in log
    handed = log[log.index("transferring leadership before leaving"):]
    handed = handed[:handed.index("removed from a group group=g1")]
    # it hears from g1's new leader before it is removed from g1: the others did
    # not close their connection to it when it left g0
    assert re.search(r"leader changed leader=n\d term=\d+ group=g1", handed), handed[:2000]
    sharded.wait_voters(originals, timeout=45)
    wait_spread(sharded)


def group_terms(cluster: Cluster) -> dict[str, int]:
    leaders = wait_for(lambda: group_leaders(cluster), 15, "agreed leaders")
    return {g: int(group_lines(raft_info(cluster.node(leader)))[g]["term"])
            for g, leader in leaders.items()}


def test_rolling_restart_of_a_sharded_cluster(fresh_sharded: Callable[[], Cluster]) -> None:
    """SIGTERM each node in turn under writes to every group: the groups it leads
    are handed over first (about one election each, no timeout), nothing
    acknowledged is lost, and the leaders spread again once it is back."""
    cluster = fresh_sharded()
    wait_spread(cluster)
    gaps = []
    with Writers(cluster, count=3) as writers:
        writers.wait_more(100)
        for node in list(cluster.nodes):
            terms = group_terms(cluster)
            before = time.monotonic()
            assert node.stop(signal.SIGTERM) == 0, node.log()
            assert "transferring leadership before shutdown" in node.log()
            node.start()
            wait_groups_applied(cluster, node)
            count = writers.count()
            writers.wait_more(count + 50, what=f"writes after restarting {cluster.id_of(node)}")
            gaps.append(max_gap(writers.ack_times(), before, time.monotonic()))
            after = group_terms(cluster)
            # the group this node led: a hand-over, and later the balancer giving it
            # back; the others: no election at all
            assert all(after[g] - terms[g] <= 2 for g in GROUPS), (terms, after)
            wait_spread(cluster)
    acked = writers.acked()
    for node in cluster.nodes:
        wait_groups_applied(cluster, node)
    assert_all_present(cluster.nodes, acked)
    assert max(gaps) < 3.0, f"writes stalled for {max(gaps):.2f}s during a restart"


def test_a_joined_node_answers_once_the_leaders_are_spread(tmp_path: Path,
                                                           request: pytest.FixtureRequest
                                                           ) -> None:
    """As soon as the joining nodes answer PING, the cluster shows three masters:
    a script that starts three nodes and runs redis-benchmark --cluster at once works."""
    cluster = Cluster(tmp_path / "c", 3, shards=SHARDS)
    request.addfinalizer(cluster.stop)
    first = cluster.new_node("n1").start()
    cluster.wait_leader()
    others = [cluster.new_node(f"n{i}", join=first) for i in (2, 3)]
    for node in others:
        node.start(wait=False)
    for node in others:
        node.wait_ready(30)
    lines = command(first.port, "CLUSTER", "NODES").decode().splitlines()
    assert sum(" master " in f" {line.split()[2].replace(',', ' ')} " for line in lines) == 3, lines
    done = subprocess.run(["redis-benchmark", "--cluster", "-h", "127.0.0.1", "-p",
                           str(first.port), "-t", "set", "-n", "300", "-q"],
                          capture_output=True, timeout=60, check=False)
    out = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0 and "Invalid cluster" not in out, out
