"""maxmemory on a real node and a real 3-node cluster: CONFIG and the -OOM replies
diffed against redis-server, noeviction refusing writes but not reads or DEL, and
eviction through the log that deletes the same keys on every node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from testsupport.info import parse_info
from testsupport.processes import Cluster, Node, command
from testsupport.waiting import wait_for

POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru",
            "allkeys-lfu", "allkeys-random", "noeviction")


@pytest.fixture
def both(node: Node, redis_port: int) -> Iterator[list[redis.Redis]]:
    """A client on respkv and one on redis-server, emptied; no limit again afterwards."""
    clients = [node.client(), redis.Redis(port=redis_port, socket_timeout=10)]
    for client in clients:
        client.flushall()
    yield clients
    for client in clients:
        client.config_set("maxmemory", "0")
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory-samples", "5")
        client.flushall()
        client.close()


def outcome(conn: redis.Connection | redis.Redis, *args: str) -> object:
    """A reply, or the error as its class and text (redis-py strips OOM, EXECABORT)."""
    try:
        if isinstance(conn, redis.Connection):
            conn.send_command(*args)
            return conn.read_response()
        return conn.execute_command(*args)
    except redis.ResponseError as error:
        return f"{type(error).__name__}: {error}"


def test_config_get_and_set_as_redis(both: list[redis.Redis]) -> None:
    calls = [("CONFIG", "GET", "maxmemory"), ("CONFIG", "GET", "maxmemory-policy"),
             ("CONFIG", "GET", "maxmemory-samples")]
    for value in ("abc", "-1", "1.5mb", "10kb", "2gb", "1m", "0"):
        calls += [("CONFIG", "SET", "maxmemory", value), ("CONFIG", "GET", "maxmemory")]
    for value in ("foo", "ALLKEYS-LRU", *POLICIES):
        calls += [("CONFIG", "SET", "maxmemory-policy", value),
                  ("CONFIG", "GET", "maxmemory-policy")]
    for value in ("0", "x", "64", "1", "5"):
        calls += [("CONFIG", "SET", "maxmemory-samples", value),
                  ("CONFIG", "GET", "maxmemory-samples")]
    ours, theirs = both
    assert [outcome(ours, *c) for c in calls] == [outcome(theirs, *c) for c in calls]


def over_limit(client: redis.Redis) -> None:
    """A key in, then a limit below what is used (redis-server's baseline alone is)."""
    client.set("there", "value")
    client.config_set("maxmemory", "1")


def test_oom_replies_as_redis_under_noeviction(both: list[redis.Redis]) -> None:
    sessions = []
    for client in both:
        over_limit(client)
        conn = client.connection_pool.get_connection()
        sessions.append(conn)
    calls = [("SET", "a", "b"), ("APPEND", "there", "x"), ("LPUSH", "l", "x"), ("GET", "there"),
             ("EXISTS", "there"), ("MULTI",), ("GET", "there"), ("EXEC",), ("MULTI",),
             ("SET", "a", "b"), ("DISCARD",), ("EXPIRE", "there", "100"), ("PERSIST", "there"),
             ("DEL", "there"), ("GET", "there")]
    replies = [[outcome(conn, *c) for c in calls] for conn in sessions]
    assert replies[0] == replies[1]
    assert replies[0][0] == "OutOfMemoryError: command not allowed when used memory > " \
        "'maxmemory'."
    for client, conn in zip(both, sessions, strict=True):
        client.connection_pool.release(conn)


def test_exec_of_a_denyoom_command_queued_before_the_limit_as_redis(
        both: list[redis.Redis]) -> None:
    results = []
    for client in both:
        client.set("there", "value")
        conn = client.connection_pool.get_connection()
        got = [outcome(conn, "MULTI"), outcome(conn, "SET", "a", "b")]
        client.config_set("maxmemory", "1")
        got += [outcome(conn, "EXEC"), outcome(conn, "EXEC")]
        client.connection_pool.release(conn)
        results.append(got)
    assert results[0] == results[1]
    assert results[0][2] == "ExecAbortError: Transaction discarded because of: OOM command " \
        "not allowed when used memory > 'maxmemory'."


def test_noeviction_refuses_writes_until_del_frees_room(node: Node,
                                                        both: list[redis.Redis]) -> None:
    client = both[0]
    client.mset({f"k{i}": "x" * 100 for i in range(100)})
    info = client.info("memory")
    used = info["used_memory"]
    assert used == info["used_memory_dataset"] >= 100 * 100
    assert info["used_memory_rss"] > used
    client.config_set("maxmemory", str(used))
    client.set("more", "x" * 100)  # at the limit, not over it: taken, and now over
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("k0", "y")  # over: refused, even a write that would free room
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.hset("h", "f", "v")
    assert client.get("k1") == b"x" * 100
    assert client.delete("k1", "k2") == 2
    assert client.info("memory")["used_memory"] < used
    assert client.set("k0", "y")
    info = client.info("memory")
    assert info["maxmemory"] == used and info["maxmemory_policy"] == "noeviction"
    assert client.info("stats")["evicted_keys"] == 0


def test_volatile_policy_with_no_ttl_key_refuses_and_allkeys_random_evicts(
        both: list[redis.Redis]) -> None:
    client = both[0]
    client.mset({f"k{i}": "x" * 100 for i in range(200)})
    used = client.info("memory")["used_memory"]
    client.config_set("maxmemory", str(used // 2))
    client.config_set("maxmemory-policy", "volatile-lru")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("more", "x")
    client.config_set("maxmemory-policy", "allkeys-random")
    client.set("more", "x")
    wait_for(lambda: client.info("memory")["used_memory"] <= used // 2, 10, "evictions")
    evicted = client.info("stats")["evicted_keys"]
    assert 90 <= evicted <= 110 and client.dbsize() == 201 - evicted


# -- a 3-node cluster -----------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    built = Cluster(tmp_path, 3, args=["--set", "maxmemory_policy=allkeys-lru",
                                       "--set", "maxmemory_samples=10"])
    try:
        yield built.start()
    finally:
        built.stop()


def test_allkeys_lru_evicts_the_same_keys_on_every_node(cluster: Cluster) -> None:
    leader = cluster.leader()
    client = leader.client()
    value = "v" * 100
    client.mset({f"old{i}": value for i in range(300)})
    hot = [f"old{i}" for i in range(0, 300, 30)]
    assert client.mget(hot) == [value.encode()] * len(hot)  # read: recently used
    per_key = client.info("memory")["used_memory"] // 300
    limit = 400 * per_key
    for node in cluster.nodes:
        node.client().config_set("maxmemory", str(limit))
    terms = {cluster.id_of(n): raft_field(n, "raft_term") for n in cluster.nodes}
    for i in range(200):  # one at a time: each write over the limit makes the leader evict
        client.set(f"new{i}", value)
    commit = cluster.wait_caught_up()
    assert commit > 0

    def settled() -> bool:
        infos = [node.client().info() for node in cluster.nodes]
        return all(i["used_memory"] <= limit for i in infos) \
            and len({i["evicted_keys"] for i in infos}) == 1

    wait_for(settled, 15, "every node under maxmemory, with the same evictions")
    cluster.wait_caught_up()
    keys = [sorted(command(node.port, "KEYS", "*")) for node in cluster.nodes]
    assert keys[0] == keys[1] == keys[2]
    evicted = {node.client().info("stats")["evicted_keys"] for node in cluster.nodes}
    (count,) = evicted
    assert 90 <= count <= 120 and len(keys[0]) == 500 - count
    survivors = set(keys[0])
    assert {key.encode() for key in hot} <= survivors
    assert {f"new{i}".encode() for i in range(190, 200)} <= survivors
    assert {cluster.id_of(n): raft_field(n, "raft_term") for n in cluster.nodes} == terms


def raft_field(node: Node, name: str) -> str:
    return parse_info(command(node.port, "INFO", "raft"))[name]


def test_scripts_over_the_limit_as_redis(both: list[redis.Redis]) -> None:
    scripts = ["return redis.call('set',KEYS[1],'b')", "return 1",
               "return redis.call('get',KEYS[2])",
               "#!lua flags=no-writes\nreturn redis.call('get',KEYS[2])",
               "#!lua\nreturn redis.call('get',KEYS[2])",
               "#!lua flags=allow-oom\nreturn redis.call('set',KEYS[1],'b')",
               "return redis.pcall('set',KEYS[1],'b')['err']",
               "redis.call('del',KEYS[2]); return redis.call('set',KEYS[1],'c')"]
    replies = []
    for client in both:
        client.set("{t}there", "value")
        over_limit(client)
        replies.append([outcome(client, "EVAL", script, "2", "{t}a", "{t}there")
                        for script in scripts])
    assert replies[0] == replies[1]
    assert replies[0][0].startswith("OutOfMemoryError: command not allowed when used memory")


def test_noeviction_on_a_cluster_refuses_on_the_leader_and_moves_elsewhere(
        cluster: Cluster) -> None:
    leader = cluster.leader()
    client = leader.client()
    client.mset({f"k{i}": "v" * 100 for i in range(50)})
    for node in cluster.nodes:
        node.client().config_set("maxmemory-policy", "noeviction")
        node.client().config_set("maxmemory", "1000")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("k0", "x")
    follower = next(n for n in cluster.nodes if n is not leader)
    with pytest.raises(redis.exceptions.MovedError):
        follower.client().set("k0", "x")
    assert client.delete(*[f"k{i}" for i in range(45)]) == 45  # DEL works, and frees room
    cluster.wait_caught_up()
    assert client.set("k0", "x")
    assert all(int(node.client().info("stats")["evicted_keys"]) == 0 for node in cluster.nodes)
