"""ACL users are the cluster's: a change made on any node (leader of the users' group or
not) is enforced by every node once applied, survives the loss and restart of nodes,
reaches a node that joins later, and a forwarded change cannot be forged or replayed."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from respkv.replication.peerauth import change_proof, parse_token
from testsupport.processes import Cluster, Node
from testsupport.waiting import wait_for


def acl_list(node: Node) -> list[bytes]:
    return node.client().execute_command("ACL", "LIST")


def same_users_everywhere(cluster: Cluster) -> list[bytes]:
    def agreed() -> list[bytes] | None:
        lists = [acl_list(n) for n in cluster.alive()]
        return lists[0] if all(lst == lists[0] for lst in lists) else None

    return wait_for(agreed, timeout=15, what="every node to list the same users")


def test_a_change_on_any_node_holds_on_every_node(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(3, ["--shards", "3"])
    follower = cluster.followers()[0]
    reply = follower.client().execute_command(
        "ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+@read", "+@write", "-flushall",
        "+cluster|slots", "+cluster|shards", "+command", "+@connection")
    assert reply == b"OK"
    users = same_users_everywhere(cluster)
    assert any(line.startswith(b"user app on #") for line in users)
    for node in cluster.nodes:
        app = node.client(username="app", password="pw")
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.get("other")
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.flushall()
        assert app.get("app:1") is None
    # a write by the restricted user, from a cluster client, on every shard's leader
    app_cluster = redis.RedisCluster(host="127.0.0.1", port=follower.port,
                                     username="app", password="pw")
    for i in range(30):
        app_cluster.set(f"app:{i}", i)
    assert app_cluster.get("app:29") == b"29"
    app_cluster.close()
    # errors of the change come back from wherever it was applied
    with pytest.raises(redis.ResponseError, match="Error in ACL SETUSER modifier '~x y'"):
        follower.client().execute_command("ACL", "SETUSER", "app", "~x y")
    assert follower.client().execute_command("ACL", "DELUSER", "app", "nobody") == 1
    assert all(b"user app" not in b" ".join(acl_list(n)) for n in cluster.nodes)


def test_a_password_set_for_the_cluster_holds_after_restarts(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(3)
    cluster.leader().client().execute_command("ACL", "SETUSER", "default", "resetpass",
                                              ">cluster-pw")
    for node in cluster.nodes:
        node.password = "cluster-pw"
    same_users_everywhere(cluster)
    for node in cluster.nodes:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=node.port).ping()
    cluster.stop()
    for node in cluster.nodes:
        node.start(wait=False)
    for node in cluster.nodes:
        node.wait_ready(30)
    assert all(redis.Redis(port=n.port, password="cluster-pw").ping() for n in cluster.nodes)
    # a node that joins later gets the users with the log or a snapshot
    late = cluster.add("n4", wait=False)
    late.password = "cluster-pw"
    late.wait_ready(30)
    wait_for(lambda: acl_list(late) == acl_list(cluster.nodes[0]), timeout=30,
             what="the new node to have the cluster's users")


def test_a_forwarded_change_needs_a_fresh_proof(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    client = leader.client()
    stamp = str(int(time.time() * 1000))
    forged = ["CLUSTER", "PROPOSE", stamp, "00" * 32, "respkv.acl", "setuser", "evil", "",
              "on", "nopass", "+@all", "~*"]
    with pytest.raises(redis.ResponseError, match="no valid, fresh proof"):
        client.execute_command(*forged)
    with pytest.raises(redis.ResponseError, match="cannot be forwarded"):
        client.execute_command("CLUSTER", "PROPOSE", stamp, "00" * 32, "set", "k", "v")
    assert all(b"evil" not in b" ".join(acl_list(n)) for n in cluster.nodes)
    # made with the secret, it is taken once; the same request again is a replay
    cluster_id, secret = parse_token(cluster.token)
    change = [b"respkv.acl", b"setuser", b"ok", b"", b"on", b"nopass", b"+ping"]
    proof = change_proof(secret, cluster_id, stamp.encode(), change)
    assert client.execute_command("CLUSTER", "PROPOSE", stamp, proof, *change) == b"OK"
    with pytest.raises(redis.ResponseError, match="no valid, fresh proof"):
        client.execute_command("CLUSTER", "PROPOSE", stamp, proof, *change)
    old = str(int(time.time() * 1000) - 120_000)
    stale = change_proof(secret, cluster_id, old.encode(), change)
    with pytest.raises(redis.ResponseError, match="no valid, fresh proof"):
        client.execute_command("CLUSTER", "PROPOSE", old, stale, *change)


def test_leave_is_forwarded_whatever_the_password(make_cluster: Callable[..., Cluster]) -> None:
    """The nodes start with no requirepass and the cluster's default user is given a
    password later: CLUSTER LEAVE still reaches the leaders of the groups this node does
    not lead (it relays the change with a proof, not a password)."""
    cluster = make_cluster(3, ["--shards", "3"])
    cluster.leader().client().execute_command("ACL", "SETUSER", "default", "resetpass",
                                              ">cluster-pw")
    for node in cluster.nodes:
        node.password = "cluster-pw"
    same_users_everywhere(cluster)
    asked, leaving = cluster.nodes[0], cluster.nodes[2]
    leaving_id = cluster.id_of(leaving)
    assert asked.client().execute_command("CLUSTER", "LEAVE", leaving_id) == b"OK"
    assert leaving.proc.wait(15) == 0, leaving.log()
    cluster.wait_voters({cluster.id_of(n) for n in cluster.nodes[:2]})
    # a relay needs a fresh proof made with the secret
    client = cluster.leader().client()  # the first group's
    stamp = str(int(time.time() * 1000))
    with pytest.raises(redis.ResponseError, match="no valid, fresh proof"):
        client.execute_command("CLUSTER", "RELAY", stamp, "00" * 32, "LEAVE",
                               cluster.id_of(cluster.nodes[1]), "GROUP", "g0")
    with pytest.raises(redis.ResponseError, match="cannot be relayed"):
        client.execute_command("CLUSTER", "RELAY", stamp, "00" * 32, "JOIN", "x", "GROUP",
                               "g0")
    cluster.wait_voters({cluster.id_of(n) for n in cluster.nodes[:2]})
