"""What the cluster tells clients stays true when nodes fail: CLUSTER NODES flags a
node its peers cannot hear (``fail?``, then ``fail``, link ``disconnected``) and
clears the flags when it is back; CLUSTER INFO's state and counts follow; a
follower whose leader went silent stops sending writers to it; cluster clients that
read from replicas do read from followers, and still read the latest writes.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import pytest
from cluster_support import RawConnection
from redis.cluster import ClusterNode, RedisCluster

from testsupport.info import parse_info
from testsupport.processes import Cluster, Node, command
from testsupport.waiting import wait_for

ELECTION_TIMEOUT = 0.5  # the default: tick-ms 50 x election-ticks 10


def node_lines(node: Node) -> dict[int, list[str]]:
    """CLUSTER NODES as seen by ``node``: the fields of each line, by client port."""
    lines = command(node.port, "CLUSTER", "NODES").decode().strip().split("\n")
    by_port = {}
    for line in lines:
        fields = line.split(" ")
        by_port[int(fields[1].partition("@")[0].rsplit(":", 1)[1])] = fields
    return by_port


def cluster_info(node: Node) -> dict[str, str]:
    text = command(node.port, "CLUSTER", "INFO").decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if line)


def flags_of(observer: Node, subject: Node) -> set[str]:
    return set(node_lines(observer)[subject.port][2].split(","))


def test_a_killed_node_is_flagged_then_cleared(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(args=["--shards", "3"])
    victim = cluster.nodes[2]
    watchers = [n for n in cluster.nodes if n is not victim]
    for watcher in watchers:
        fields = node_lines(watcher)[victim.port]
        assert not {"fail", "fail?"} & set(fields[2].split(",")), fields
        assert fields[7] == "connected", fields
        assert cluster_info(watcher)["cluster_state"] == "ok"

    victim.kill()
    killed = time.monotonic()
    watcher = watchers[0]
    suspected = wait_for(lambda: "fail?" in flags_of(watcher, victim) or
                         "fail" in flags_of(watcher, victim), 10, "the victim suspected")
    assert suspected
    assert time.monotonic() - killed < 10 * ELECTION_TIMEOUT
    wait_for(lambda: "fail" in flags_of(watcher, victim), 10, "the victim failed")
    for other in watchers:
        wait_for(lambda o=other: node_lines(o)[victim.port][7] == "disconnected", 5,
                 "the victim's link disconnected")

    # the survivors take over its groups: every slot served again, by a heard leader
    def healed() -> dict[str, str] | None:
        info = cluster_info(watcher)
        return info if info["cluster_state"] == "ok" and \
            info["cluster_slots_ok"] == "16384" else None

    info = wait_for(healed, 20, "slots served again")
    fields = node_lines(watcher)[victim.port]
    assert len(fields) == 8, f"a failed node leads nothing once its groups elect: {fields}"
    assert info["cluster_known_nodes"] == "3", info
    assert info["cluster_size"] == "2", info  # masters serving slots
    assert int(info["cluster_stats_messages_received"]) > 0, info

    victim.start()
    wait_for(lambda: not {"fail", "fail?"} & flags_of(watcher, victim), 20, "flags cleared")
    wait_for(lambda: node_lines(watcher)[victim.port][7] == "connected", 20, "link back up")


def test_redis_cli_cluster_check_counts_the_replicas(
        make_cluster: Callable[..., Cluster]) -> None:
    """One group: its leader is the one master, the two other voters its replicas, in
    redis-cli's own checker as in CLUSTER SLOTS. (With several groups every node leads
    one and follows the others, which Redis Cluster's one-role-per-node CLUSTER NODES
    cannot say: see the README's Shards section.)"""
    cluster = make_cluster()
    done = subprocess.run(["redis-cli", "--cluster", "check", cluster.followers()[0].address],
                          capture_output=True, timeout=60, check=False)
    out = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, out
    assert "16384 slots | 2 slaves." in out, out
    assert "in 1 masters" in out and "All 16384 slots covered" in out, out
    slots = command(cluster.leader().port, "CLUSTER", "SLOTS")
    assert isinstance(slots, list) and len(slots) == 1 and len(slots[0]) == 5, slots


def test_cluster_state_fails_on_a_node_cut_off_from_the_majority(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    lone = cluster.followers()[0]
    others = [n for n in cluster.nodes if n is not lone]
    for node in others:
        node.proc.send_signal(signal.SIGSTOP)
    try:
        info = wait_for(lambda: (i := cluster_info(lone))["cluster_state"] == "fail" and i,
                        10, "the lone node's cluster_state fail")
        assert int(info["cluster_slots_ok"]) < 16384, info
    finally:
        for node in others:
            node.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: cluster_info(lone)["cluster_state"] == "ok", 20, "state ok again")


def writes_answered_while_stopped(follower: Node, stopped_nodes: list[Node],
                                  silent: Node, seconds: float) -> list[tuple[float, str]]:
    """SET sent to ``follower`` every 20 ms while ``stopped_nodes`` are paused, until a
    leader other than ``silent`` answers or ``seconds`` pass: (time since the pause,
    reply) for each. A -MOVED to the silent leader fails the test once it has been
    silent for an election timeout (plus scheduling slack)."""
    for node in stopped_nodes:
        node.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    seen: list[tuple[float, str]] = []
    try:
        while time.monotonic() < stopped + seconds:
            sent = time.monotonic()
            text = answer(follower.port, "SET", "k", "v")
            seen.append((round(sent - stopped, 3), text))
            if text.startswith("MOVED") and text.endswith(f":{silent.port}"):
                assert sent - stopped < ELECTION_TIMEOUT + 0.3, seen
            elif text == "OK" or text.startswith("MOVED"):
                break  # a new leader: this node, or another that it can hear
            time.sleep(0.02)
    finally:
        for node in stopped_nodes:
            node.proc.send_signal(signal.SIGCONT)
    return seen


def test_follower_stops_redirecting_to_a_silent_leader(
        make_cluster: Callable[..., Cluster]) -> None:
    """Once the leader has not been heard for an election timeout, a follower tells
    writers the cluster is down (they retry) instead of -MOVED to the silent node.
    The other follower is paused too, so no new leader can end the wait."""
    cluster = make_cluster()
    leader = cluster.leader()
    follower, other = cluster.followers()[:2]
    assert answer(follower.port, "SET", "k", "v").endswith(f" 127.0.0.1:{leader.port}")

    seen = writes_answered_while_stopped(follower, [leader, other], leader,
                                         6 * ELECTION_TIMEOUT)
    assert seen[-1][0] > 5 * ELECTION_TIMEOUT, f"no leader without a majority: {seen}"
    late = [text for at, text in seen if at > ELECTION_TIMEOUT + 0.3]
    assert late and all(text.startswith("CLUSTERDOWN") for text in late), seen


def test_follower_redirects_to_the_new_leader(make_cluster: Callable[..., Cluster]) -> None:
    """With only the leader paused, the follower's answers move from the old leader
    (no later than an election timeout) to a new one, possibly through CLUSTERDOWN."""
    cluster = make_cluster()
    leader = cluster.leader()
    follower = cluster.followers()[0]
    seen = writes_answered_while_stopped(follower, [leader], leader, 15)
    assert seen[-1][1] == "OK" or seen[-1][1].startswith("MOVED"), seen
    assert not seen[-1][1].endswith(f":{leader.port}"), seen


def answer(port: int, *args: str) -> str:
    """The reply's text, an error reply's included (its code first)."""
    connection = RawConnection(port)
    try:
        reply = connection.call(*args)
    finally:
        connection.close()
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def commandstats_gets(node: Node) -> int:
    stats = parse_info(command(node.port, "INFO", "commandstats").decode())
    line = stats.get("cmdstat_get", "calls=0")
    return int(line.split(",")[0].split("=")[1])


# read_from_replicas is what most code written for redis-py still passes
@pytest.mark.filterwarnings("ignore:Call to '__init__' function with deprecated usage")
def test_read_from_replicas_reads_from_followers(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    leader = cluster.leader()
    followers = [n for n in cluster.nodes if n is not leader]
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in cluster.nodes],
                          read_from_replicas=True, socket_timeout=10)
    try:
        before = {n.port: commandstats_gets(n) for n in cluster.nodes}
        for i in range(300):
            # each read right after its write: a follower's read is linearizable,
            # so it sees the write even though the follower may not have applied it
            assert client.set("rr", str(i)) is True
            assert client.get("rr") == str(i).encode()
        after = {n.port: commandstats_gets(n) for n in cluster.nodes}
    finally:
        client.close()
    served = {port: after[port] - before[port] for port in after}
    assert sum(served.values()) >= 300, served
    for follower in followers:
        assert served[follower.port] >= 30, f"a follower served too few reads: {served}"
    roles = {line[1]: line[2] for line in node_lines(leader).values()}
    assert all("master" in flags or "slave" in flags for flags in roles.values()), roles
    # INFO replication on the leader lists both followers as connected replicas
    replication = parse_info(command(leader.port, "INFO", "replication").decode())
    assert replication["role"] == "master", replication
    assert replication["connected_slaves"] == "2", replication
    ports = {int(replication[f"slave{i}"].split("port=")[1].split(",")[0]) for i in range(2)}
    assert ports == {f.port for f in followers}, replication
    for follower in followers:
        info = parse_info(command(follower.port, "INFO", "replication").decode())
        assert info["role"] == "slave" and info["master_port"] == str(leader.port), info
        assert info["master_link_status"] == "up", info
