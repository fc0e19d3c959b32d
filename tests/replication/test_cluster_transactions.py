"""Transactions and blocking pops on a real cluster: no node ever shows half of a
MULTI/EXEC, across a kill -9 of the leader; optimistic locking through RedisCluster
loses no update; a client blocked on a node that stops leading is told where to go."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from testsupport.processes import Cluster, Node, command
from testsupport.waiting import wait_for

KEYS = ("{t}a", "{t}b", "{t}c")


def local_reader(node: Node) -> redis.Redis:
    """A connection that reads this node's own copy (no barrier, no leader)."""
    client = node.client(socket_timeout=2, retry=Retry(NoBackoff(), 0))
    client.execute_command("RESPKV.CONSISTENCY", "stale")
    return client


class Writer(threading.Thread):
    """MULTI / SET a i / SET b i / SET c i / EXEC, on whichever node leads."""

    def __init__(self, cluster: Cluster, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop_event = stop
        self.acked = 0

    def run(self) -> None:
        value = 0
        while not self.stop_event.is_set():
            for node in self.cluster.alive():
                if self.stop_event.is_set():
                    return
                try:
                    client = node.client(socket_timeout=2, retry=Retry(NoBackoff(), 0))
                    with client.pipeline() as pipe:
                        value += 1
                        for key in KEYS:
                            pipe.set(key, value)
                        pipe.execute()
                    self.acked = value
                    client.close()
                    break
                except (redis.RedisError, OSError):
                    continue  # a follower (MOVED), a dying leader, an election


def halves_seen(cluster: Cluster, stop: threading.Event, seen: list[tuple[str, list]],
                rounds: Callable[[], bool]) -> None:
    """Read every node's own copy of the keys, again and again; remember any read
    where they differ."""
    while not stop.is_set() and rounds():
        for node in cluster.alive():
            try:
                client = local_reader(node)
                values = client.mget(*KEYS)
                client.close()
            except (redis.RedisError, OSError):
                continue
            if len(set(values)) != 1:
                seen.append((node.address, values))


def test_no_node_shows_half_a_transaction_across_a_leader_kill(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(args=["--shards", "1"])
    stop = threading.Event()
    writer = Writer(cluster, stop)
    seen: list[tuple[str, list]] = []
    checker = threading.Thread(target=halves_seen, args=(cluster, stop, seen, lambda: True),
                               daemon=True)
    writer.start()
    checker.start()
    try:
        wait_for(lambda: writer.acked >= 50, 20, "transactions before the kill")
        leader = cluster.leader()
        leader.kill()
        acked_at_kill = writer.acked
        wait_for(lambda: writer.acked >= acked_at_kill + 50, 30, "transactions after the kill")
        leader.start()
        wait_for(lambda: writer.acked >= acked_at_kill + 100, 30, "transactions after restart")
    finally:
        stop.set()
        writer.join(10)
        checker.join(10)
    assert not seen, f"half a transaction was visible: {seen[:5]}"
    cluster.wait_caught_up()
    for node in cluster.nodes:
        values = local_reader(node).mget(*KEYS)
        assert len(set(values)) == 1 and int(values[0]) >= writer.acked, (node.address, values)


def test_optimistic_increments_through_redis_cluster(shared_cluster: Cluster) -> None:
    """Clients on different nodes increment one counter with WATCH/GET/MULTI/SET/EXEC
    (RedisCluster sends them to the key's leader): no increment is lost."""
    seed = shared_cluster.nodes[0]
    redis.Redis(port=seed.port).execute_command("CLUSTER", "INFO")  # the cluster answers
    start_client = redis.RedisCluster(host="127.0.0.1", port=seed.port)
    start_client.set("{c}counter", 0)
    per_client = 25

    def worker(port: int) -> None:
        client = redis.RedisCluster(host="127.0.0.1", port=port)
        done = 0
        while done < per_client:
            with client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch("{c}counter")
                    value = int(pipe.get("{c}counter"))
                    pipe.multi()
                    pipe.set("{c}counter", value + 1)
                    pipe.execute()
                    done += 1
                except redis.WatchError:
                    continue  # someone else won: read again
        client.close()

    threads = [threading.Thread(target=worker, args=(node.port,))
               for node in shared_cluster.nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert int(start_client.get("{c}counter")) == per_client * len(shared_cluster.nodes)
    start_client.close()


@pytest.mark.parametrize("how", ["transfer", "kill"])
def test_a_blocked_client_is_not_left_hanging(make_cluster: Callable[..., Cluster],
                                              how: str) -> None:
    cluster = make_cluster(args=["--shards", "1"])
    leader = cluster.leader()
    outcome: list[object] = []

    def blocked() -> None:
        client = leader.client(socket_timeout=20, retry=Retry(NoBackoff(), 0))
        started = time.monotonic()
        try:
            outcome.append(client.blpop(["{q}jobs"], 0))
        except (redis.RedisError, OSError) as error:
            outcome.append(error)
        outcome.append(time.monotonic() - started)

    thread = threading.Thread(target=blocked, daemon=True)
    thread.start()
    wait_for(lambda: leader.client().info("clients")["blocked_clients"] == 1, 10,
             "the client blocked")
    if how == "transfer":
        target = cluster.id_of(cluster.followers()[0])
        assert command(leader.port, "RESPKV.TRANSFER", target) == b"OK"
    else:
        leader.kill()
    thread.join(15)
    assert not thread.is_alive(), "the blocked client hung"
    error, waited = outcome
    if how == "transfer":
        assert isinstance(error, redis.exceptions.MovedError), error
        assert waited < 5, waited
    else:
        assert isinstance(error, redis.ConnectionError), error
