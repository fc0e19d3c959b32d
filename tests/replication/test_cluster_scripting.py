"""Scripts on a real cluster: a script's writes reach every node as one entry, a
follower answers -MOVED, RedisCluster runs scripts and redis-py's Lock, and a script
that runs for seconds costs no election (it runs beside the node's event loop)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from redis.cluster import RedisCluster

from testsupport.processes import Cluster, command, raft_info
from testsupport.waiting import wait_for


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    return make_cluster(args=["--shards", "1"])


def test_writes_reach_every_node_and_followers_redirect(cluster: Cluster) -> None:
    leader = cluster.leader()
    script = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCRBY', KEYS[2], 5)"
    assert command(leader.port, "EVAL", script, 2, "a", "n", "v") == 5
    index = int(raft_info(leader)["raft_commit_index"])
    cluster.wait_applied(index)
    for node in cluster.nodes:
        reader = node.client()
        reader.execute_command("RESPKV.CONSISTENCY", "stale")
        assert reader.mget("a", "n") == [b"v", b"5"]
        reader.close()
    follower = cluster.followers()[0]
    with pytest.raises(redis.exceptions.MovedError, match=f"127.0.0.1:{leader.port}"):
        command(follower.port, "EVAL", script, 2, "a", "n", "v")


def test_a_long_script_costs_no_election(cluster: Cluster) -> None:
    leader = cluster.leader()
    before = raft_info(leader)
    started = time.monotonic()
    spin = "local t = redis.call('TIME')[1] while redis.call('TIME')[1] - t < 3 do end " \
           "return redis.call('INCR', KEYS[1])"
    assert command(leader.port, "EVAL", spin, 1, "spins", timeout=10) == 1
    assert time.monotonic() - started >= 2
    after = raft_info(leader)
    assert after["raft_role"] == "leader"
    assert after["raft_term"] == before["raft_term"]


def test_redis_cluster_client_runs_scripts_and_locks(cluster: Cluster) -> None:
    seed = cluster.nodes[0]
    client = RedisCluster(host="127.0.0.1", port=seed.port)
    try:
        counter = client.register_script(
            "return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert counter(keys=["{c}n"], args=[2]) == 2
        assert counter(keys=["{c}n"], args=[3]) == 5
        lock = client.lock("{c}lock", timeout=5)
        assert lock.acquire(blocking=False)
        assert lock.extend(5)
        lock.release()
        wait_for(lambda: client.exists("{c}lock") == 0, 5, "the lock released")
    finally:
        client.close()
