"""Pub/Sub across a cluster: a message published on any node reaches subscribers on
every node (over the cluster's own connections), channels, patterns and shard
channels alike; redis-py's RedisCluster pubsub works unchanged."""

from __future__ import annotations

import time

import redis

from testsupport.processes import Cluster
from testsupport.waiting import wait_for


def listener(port: int, *, channels: tuple[str, ...] = (), patterns: tuple[str, ...] = (),
             shard: tuple[str, ...] = ()) -> redis.client.PubSub:
    subscriber = redis.Redis(port=port, socket_timeout=10).pubsub(
        ignore_subscribe_messages=True)
    if channels:
        subscriber.subscribe(*channels)
    if patterns:
        subscriber.psubscribe(*patterns)
    if shard:
        subscriber.ssubscribe(*shard)
    for _ in range(len(channels) + len(patterns) + len(shard)):  # the confirmations
        subscriber.get_message(timeout=5)
    return subscriber


def drain(*subscribers: redis.client.PubSub) -> None:
    """Read away the probes sent while waiting for the links."""
    for subscriber in subscribers:
        while next_message(subscriber, 0.3) is not None:
            pass


def next_message(subscriber: redis.client.PubSub, timeout: float = 5) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = subscriber.get_message(timeout=0.2)
        if message is not None:
            return message
    return None


def test_messages_reach_every_node(shared_cluster: Cluster) -> None:
    a, b, c = shared_cluster.nodes
    on_a = listener(a.port, channels=("alerts",))
    on_c = listener(c.port, patterns=("al*",))
    publisher = redis.Redis(port=b.port)

    def delivered() -> bool:  # peers' links may still be coming up
        publisher.publish("alerts", "probe")
        return next_message(on_a, 0.3) is not None

    wait_for(delivered, 10, "a message from another node")
    drain(on_a, on_c)
    assert publisher.publish("alerts", "fire") == 0  # nobody on b itself
    message = next_message(on_a)
    assert message is not None and message["type"] == "message"
    assert message["channel"] == b"alerts" and message["data"] == b"fire"
    pattern = next_message(on_c)
    assert pattern is not None and pattern["type"] == "pmessage"
    assert pattern["pattern"] == b"al*" and pattern["data"] == b"fire"
    for subscriber in (on_a, on_c):
        subscriber.close()
    publisher.close()


def test_shard_channels_reach_every_node(shared_cluster: Cluster) -> None:
    a, b, _ = shared_cluster.nodes
    on_a = listener(a.port, shard=("{orders}new",))
    publisher = redis.Redis(port=b.port)

    def delivered() -> bool:
        publisher.execute_command("SPUBLISH", "{orders}new", "probe")
        return next_message(on_a, 0.3) is not None

    wait_for(delivered, 10, "a shard message from another node")
    drain(on_a)
    publisher.execute_command("SPUBLISH", "{orders}new", "order-1")
    message = next_message(on_a)
    assert message is not None and message["type"] == "smessage"
    assert message["data"] == b"order-1"
    on_a.close()
    publisher.close()


def test_redis_cluster_client_pubsub(shared_cluster: Cluster) -> None:
    client = redis.RedisCluster(host="127.0.0.1", port=shared_cluster.nodes[0].port)
    subscriber = client.pubsub()
    subscriber.subscribe("cluster-news")
    wait_for(lambda: subscriber.get_message(timeout=0.5) is not None, 10, "the confirmation")
    other = redis.Redis(port=shared_cluster.nodes[2].port)

    def delivered() -> bool:
        other.publish("cluster-news", "hello")
        message = subscriber.get_message(timeout=0.5)
        return message is not None and message["data"] == b"hello"

    wait_for(delivered, 10, "a message through RedisCluster's pubsub")  # any one will do
    subscriber.close()
    other.close()
    client.close()
