"""Clients against a three-node cluster: redis-cli, redis-cli -c, redis-py's
RedisCluster, and the CLUSTER replies cluster-aware clients are built on."""

from __future__ import annotations

import re
import subprocess

import pytest
import redis
from redis.cluster import RedisCluster

from testsupport.processes import Cluster, Node, command

HEX40 = re.compile(r"^[0-9a-f]{40}$")


def redis_cli(node: Node, *args: str, cluster_mode: bool = False) -> str:
    command = ["redis-cli", "-h", "127.0.0.1", "-p", str(node.port)]
    if cluster_mode:
        command.append("-c")
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def key_slot(node: Node, key: str) -> int:
    return int(command(node.port, "CLUSTER", "KEYSLOT", key))


def test_demo_write_on_leader_read_on_follower(shared_cluster: Cluster) -> None:
    """The seed's demo: plain redis-cli writes to the leader, reads on a follower."""
    leader = shared_cluster.leader()
    assert redis_cli(leader, "SET", "demo:greeting", "hello from the leader") == "OK"
    for follower in shared_cluster.followers():
        # linearizable by default: no wait needed, the follower's read sees the write
        assert redis_cli(follower, "GET", "demo:greeting") == "hello from the leader"


def test_follower_answers_moved_and_redis_cli_c_follows_it(shared_cluster: Cluster) -> None:
    leader = shared_cluster.leader()
    follower = shared_cluster.followers()[0]
    key = "moved:key"
    slot = key_slot(follower, key)

    with pytest.raises(redis.exceptions.MovedError) as moved:
        follower.client().set(key, "x")
    assert moved.value.slot_id == slot
    assert moved.value.node_addr == ("127.0.0.1", leader.port)

    reply = redis_cli(follower, "SET", key, "x")
    assert reply == f"MOVED {slot} 127.0.0.1:{leader.port}"

    assert redis_cli(follower, "SET", key, "followed", cluster_mode=True) == "OK"
    assert redis_cli(follower, "GET", key, cluster_mode=True) == "followed"
    assert leader.client().get(key) == b"followed"


@pytest.mark.filterwarnings("ignore:Call to '__init__' function with deprecated usage")
@pytest.mark.parametrize("read_from_replicas", [False, True])
def test_redis_cluster_client_round_trips(shared_cluster: Cluster,
                                          read_from_replicas: bool) -> None:
    seed = shared_cluster.followers()[-1]  # discovery must work from any node
    client = RedisCluster(host="127.0.0.1", port=seed.port,
                          read_from_replicas=read_from_replicas, socket_timeout=10)
    try:
        prefix = f"rc{int(read_from_replicas)}"
        keys = [f"{prefix}:{i}" for i in range(200)]  # spread over many slots
        assert len({key_slot(seed, k) for k in keys[:20]}) > 1
        for i, key in enumerate(keys):
            assert client.set(key, f"value{i}") is True
        for i, key in enumerate(keys):  # from replicas too: linearizable, sees every write
            assert client.get(key) == f"value{i}".encode()
        assert client.mget_nonatomic(keys) == [f"value{i}".encode() for i in range(len(keys))]
        # keys sharing a hash tag: multi-key commands in one slot
        tagged = {f"{{{prefix}}}:a": "1", f"{{{prefix}}}:b": "2"}
        assert client.mset(tagged) is True
        assert client.mget(list(tagged)) == [b"1", b"2"]
        assert client.incr(f"{prefix}:counter") == 1
        assert client.incr(f"{prefix}:counter") == 2
        assert client.delete(keys[0]) == 1
        assert client.get(keys[0]) is None
        pipe = client.pipeline()
        for key in keys[1:11]:
            pipe.get(key)
        assert pipe.execute() == [f"value{i}".encode() for i in range(1, 11)]
        nodes = client.get_nodes()
        assert {n.port for n in nodes} == {n.port for n in shared_cluster.nodes}
        assert [n.port for n in client.get_primaries()] == [shared_cluster.leader().port]
    finally:
        client.close()


def test_cluster_replies_are_well_formed(shared_cluster: Cluster) -> None:
    leader = shared_cluster.leader()
    ports = {n.port for n in shared_cluster.nodes}
    ids_by_port: dict[int, str] = {}
    for node in shared_cluster.nodes:
        myid = command(node.port, "CLUSTER", "MYID").decode()
        assert HEX40.match(myid), myid
        ids_by_port[node.port] = myid
    assert len(set(ids_by_port.values())) == 3
    leader_id = ids_by_port[leader.port]

    for node in shared_cluster.nodes:
        # CLUSTER SLOTS: one range, the leader first (master), the others replicas
        slots = command(node.port, "CLUSTER", "SLOTS")
        assert len(slots) == 1
        start, end, master, *replicas = slots[0]
        assert (start, end) == (0, 16383)
        assert master[:3] == [b"127.0.0.1", leader.port, leader_id.encode()]
        assert sorted(r[1] for r in replicas) == sorted(ports - {leader.port})
        for host, port, node_id, *_ in [master, *replicas]:
            assert host == b"127.0.0.1"
            assert node_id.decode() == ids_by_port[port]

        # CLUSTER SHARDS: one shard with every slot, the leader its master
        shards = command(node.port, "CLUSTER", "SHARDS")
        assert len(shards) == 1
        shards3 = command(node.port, "CLUSTER", "SHARDS", protocol=3)  # RESP3: maps
        assert [_pairs(n)[b"id"] for n in shards3[0][b"nodes"]] == \
            [_pairs(n)[b"id"] for n in _pairs(shards[0])[b"nodes"]]
        shard = _pairs(shards[0])
        assert shard[b"slots"] == [0, 16383]
        shard_nodes = [_pairs(n) for n in shard[b"nodes"]]
        assert {n[b"port"] for n in shard_nodes} == ports
        roles = {n[b"port"]: n[b"role"] for n in shard_nodes}
        assert roles.pop(leader.port) == b"master"
        assert set(roles.values()) == {b"replica"}
        for entry in shard_nodes:
            assert entry[b"id"].decode() == ids_by_port[entry[b"port"]]

        # CLUSTER NODES: id addr@busport flags master ping pong epoch state slots
        lines = command(node.port, "CLUSTER", "NODES").decode().strip().split("\n")
        assert len(lines) == 3
        masters = 0
        for line in lines:
            fields = line.split(" ")
            node_id, address, flags, master_id = fields[:4]
            assert HEX40.match(node_id), line
            host_port, _, bus_port = address.partition("@")
            port = int(host_port.rsplit(":", 1)[1])
            assert ids_by_port[port] == node_id
            assert int(bus_port) == port + 10000
            flag_set = set(flags.split(","))
            assert ("myself" in flag_set) == (port == node.port), line
            assert fields[7] == "connected"
            if "master" in flag_set:
                masters += 1
                assert node_id == leader_id and master_id == "-"
                assert fields[8:] == ["0-16383"]
            else:
                assert "slave" in flag_set and master_id == leader_id, line
                assert fields[8:] == []
        assert masters == 1

        info = dict(line.split(":", 1) for line in
                    command(node.port, "CLUSTER", "INFO").decode().split("\r\n") if line)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == "16384"
        assert info["cluster_slots_ok"] == "16384"
        assert info["cluster_known_nodes"] == "3"
        assert info["cluster_size"] == "1"

        # CLUSTER KEYSLOT: Redis Cluster's CRC16, hash tags included
        assert command(node.port, "CLUSTER", "KEYSLOT", "foo") == 12182
        assert command(node.port, "CLUSTER", "KEYSLOT", "bar") == 5061
        assert command(node.port, "CLUSTER", "KEYSLOT", "{user1000}.following") == \
            command(node.port, "CLUSTER", "KEYSLOT", "{user1000}.followers") == 3443
        assert command(node.port, "CLUSTER", "KEYSLOT", "") == 0

        role = command(node.port, "ROLE")
        if node is leader:
            assert role[0] == b"master"
            assert sorted(int(r[1]) for r in role[2]) == sorted(ports - {leader.port})
        else:
            assert role[0] == b"slave"
            assert role[1:3] == [b"127.0.0.1", leader.port]


def _pairs(flat: list | dict) -> dict:
    """A RESP2 map (flat key, value list) or a RESP3 one as a dict."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))
