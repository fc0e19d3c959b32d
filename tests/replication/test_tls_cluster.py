"""Clusters with TLS: mutual TLS on the Raft port (tls-cluster) under the HMAC
handshake, writes replicated and a failover through it, a snapshot streamed through
it; a node whose certificate another CA signed kept out; cluster clients on TLS ports
(CLUSTER SLOTS, SHARDS, MOVED, redis-py's RedisCluster); and nodes with no plain
port at all, which join and forward membership changes over TLS (tls-replication)."""

from __future__ import annotations

import signal
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cluster_support import Writers, assert_all_present
from redis.cluster import RedisCluster

from respkv.replication.addresses import AddressBook, Addresses
from respkv.replication.peerauth import REFUSALS_EVERY, join_proof
from respkv.replication.slots import key_slot
from respkv.replication.transport import HELLO, HELLO_REFUSED, frame
from testsupport.info import group_lines, members, parse_info
from testsupport.ports import free_port, free_ports
from testsupport.processes import SNAPSHOT_ARGS, Node, command, local_values, raft_info
from testsupport.tls import Certs, TlsCluster
from testsupport.waiting import wait_for


@pytest.fixture(scope="module")
def mtls_cluster(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[TlsCluster]:
    """Three nodes, one group, mutual TLS on the Raft port, small snapshots."""
    cluster = TlsCluster(tmp_path_factory.mktemp("mtls"), certs, 3, args=SNAPSHOT_ARGS)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def raft_tls_context(certs: Certs) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(certs.ca))
    context.load_cert_chain(str(certs.cert), str(certs.key))
    return context


def read_frame(sock: ssl.SSLSocket) -> tuple[int, bytes]:
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            raise EOFError("closed")
        head += chunk
    length, kind = struct.unpack(">IB", head)
    body = b""
    while len(body) < length - 1:
        body += sock.recv(length - 1 - len(body))
    return kind, body


def test_raft_port_speaks_only_mutual_tls(mtls_cluster: TlsCluster, certs: Certs,
                                          other_ca: Certs) -> None:
    raft_port = mtls_cluster.nodes[0].raft_port
    # plain TCP: the TLS layer takes the HELLO for a bad handshake and closes
    with socket.create_connection(("127.0.0.1", raft_port), timeout=5) as sock:
        sock.sendall(frame(HELLO, b"{}"))
        assert sock.recv(100) == b""
    # TLS without a client certificate, or with one of another CA: refused
    for context in (ssl.create_default_context(cafile=str(certs.ca)),
                    raft_tls_context(other_ca)):
        context.check_hostname = False
        context.load_verify_locations(str(certs.ca))
        with pytest.raises((ssl.SSLError, EOFError, ConnectionResetError)), \
                socket.create_connection(("127.0.0.1", raft_port), timeout=5) as raw, \
                context.wrap_socket(raw) as sock:
            sock.sendall(frame(HELLO, b"{}"))
            read_frame(sock)
    # the right certificate gets through TLS, and then meets the HMAC handshake
    with socket.create_connection(("127.0.0.1", raft_port), timeout=5) as raw, \
            raft_tls_context(certs).wrap_socket(raw) as sock:
        sock.sendall(frame(HELLO, b"{}"))
        assert read_frame(sock) == (HELLO_REFUSED, b"not a hello")
    assert "Traceback" not in mtls_cluster.nodes[0].log()


def test_writes_replicate_and_fail_over_through_mtls(mtls_cluster: TlsCluster) -> None:
    with Writers(mtls_cluster, count=2, prefix="tls") as writers:
        writers.wait_more(100)
        old = mtls_cluster.leader()
        old.stop(signal.SIGKILL)
        mtls_cluster.wait_leader(timeout=20)
        writers.wait_more(writers.count() + 50, what="writes after the failover")
        old.start()
        writers.wait_more(writers.count() + 50, what="writes with the old leader back")
    mtls_cluster.wait_caught_up()
    assert_all_present(mtls_cluster.alive(), writers.acked())
    # enough data that the log behind it is compacted: a new member catches up from a
    # snapshot, streamed in chunks over mTLS
    leader = mtls_cluster.leader()
    expected = dict(writers.acked())
    bulk = {f"tls:bulk:{i}": f"{i}:" + "x" * 1024 for i in range(4096)}
    client = leader.client()
    items = list(bulk.items())
    for start in range(0, len(items), 64):
        pipe = client.pipeline(transaction=False)
        for key, value in items[start : start + 64]:
            pipe.set(key, value)
        assert all(pipe.execute())
    client.close()
    expected.update(bulk)
    wait_for(lambda: int(raft_info(leader)["raft_snapshot_index"]) > 3000, 20,
             "a snapshot covering most of the data")
    newcomer = mtls_cluster.add("n4")
    mtls_cluster.wait_voters({"n1", "n2", "n3", "n4"}, timeout=60)
    mtls_cluster.wait_caught_up(timeout=60)
    assert_all_present([newcomer], expected)
    assert "installing snapshot" in newcomer.log()
    assert any("snapshot sent peer=n4" in node.log() for node in mtls_cluster.nodes)
    for node in mtls_cluster.alive():
        assert "Traceback" not in node.log(), node.log()


def test_node_with_another_ca_cannot_talk_to_the_cluster(mtls_cluster: TlsCluster,
                                                         other_ca: Certs) -> None:
    leader = mtls_cluster.leader()
    client = leader.client()
    client.set("tls:before-stranger", "v")
    client.close()
    # it has the join token, and joins over the plain client port; Raft never opens:
    # the leader cannot dial it (and it would not accept the leader's certificate)
    started = time.monotonic()
    stranger = mtls_cluster.new_node("n9", join=leader, args=other_ca.node_args(cluster=True))
    stranger.start(wait=False)
    refusal = "TLS handshake with peer failed"
    try:
        wait_for(lambda: any(refusal in node.log() and "peer=n9" in node.log()
                             for node in mtls_cluster.alive()), 30,
                 "the cluster to refuse n9's certificate")
        stranger.wait_ready(timeout=30)  # serves once it gives up waiting to catch up
        assert local_values(stranger, ["tls:before-stranger"]) == {"tls:before-stranger": None}
        assert "installing snapshot" not in stranger.log()
        elapsed = time.monotonic() - started
        for node in mtls_cluster.alive():
            log = node.log()
            assert "Traceback" not in log, log
            # one line per REFUSALS_EVERY seconds at most, however often it redials
            assert log.count(refusal) <= elapsed / REFUSALS_EVERY + 1, log
    finally:
        stranger.stop()
        client = leader.client()
        client.execute_command("CLUSTER", "LEAVE", "n9")
        client.close()


# -- cluster clients on TLS ports -------------------------------------------------------


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[TlsCluster]:
    """Three nodes, three groups (leaders spread), TLS ports, mTLS between them."""
    cluster = TlsCluster(tmp_path_factory.mktemp("sharded"), certs, 3, shards=3)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def cluster_client(cluster: TlsCluster, node_id: str = "n1") -> RedisCluster:
    return RedisCluster(host="127.0.0.1", port=cluster.tls_ports[node_id], socket_timeout=10,
                        **cluster.certs.client_kwargs())


def slot_ports(client: redis.Redis) -> set[int]:
    return {node[1] for entry in client.execute_command("CLUSTER", "SLOTS")
            for node in entry[2:]}


def test_cluster_slots_show_tls_ports_to_tls_clients(sharded: TlsCluster) -> None:
    wait_for(lambda: len(_leaders(sharded)) == 3, 30, "a leader on every node")
    plain_ports = {node.port for node in sharded.nodes}
    tls_ports = set(sharded.tls_ports.values())
    for node_id, node in zip(sharded.node_ids, sharded.nodes, strict=True):
        tls = sharded.tls_client(node_id, protocol=2)
        plain = node.client(protocol=2)
        try:
            assert slot_ports(tls) == tls_ports
            assert slot_ports(plain) == plain_ports
            lines = str(tls.execute_command("CLUSTER", "NODES"))
            assert all(f"127.0.0.1:{port}@" in lines for port in tls_ports)
            shards = plain.execute_command("CLUSTER", "SHARDS")
            for shard in shards:
                for fields in (dict(zip(n[::2], n[1::2], strict=True)) for n in shard[3]):
                    assert fields[b"port"] in plain_ports
                    assert fields[b"tls-port"] in tls_ports
        finally:
            tls.close()
            plain.close()


def _leaders(cluster: TlsCluster) -> set[str]:
    lines = group_lines(raft_info(cluster.nodes[0]))
    return {fields.get("leader", "") for fields in lines.values()} - {""}


def _key_led_elsewhere(cluster: TlsCluster, node_id: str) -> str:
    """A key whose group ``node_id`` does not lead."""
    tls = cluster.tls_client(node_id, protocol=2)
    try:
        for entry in tls.execute_command("CLUSTER", "SLOTS"):
            if entry[2][1] != cluster.tls_ports[node_id]:
                first, last = entry[0], entry[1]
                break
        else:
            raise AssertionError(f"{node_id} leads every group")
    finally:
        tls.close()
    return next(k for k in (f"key{i}" for i in range(100_000)) if first <= key_slot(k.encode())
                <= last)


def test_moved_names_a_tls_port_to_a_tls_client(sharded: TlsCluster) -> None:
    wait_for(lambda: len(_leaders(sharded)) == 3, 30, "a leader on every node")
    key = _key_led_elsewhere(sharded, "n1")
    tls = sharded.tls_client("n1", protocol=2)
    plain = sharded.nodes[0].client(protocol=2)
    try:
        with pytest.raises(redis.exceptions.MovedError) as moved:
            tls.set(key, "v")
        assert moved.value.port in set(sharded.tls_ports.values())
        with pytest.raises(redis.exceptions.MovedError) as moved:
            plain.set(key, "v")
        assert moved.value.port in {node.port for node in sharded.nodes}
    finally:
        tls.close()
        plain.close()


def test_redis_cluster_over_tls_follows_moved(sharded: TlsCluster) -> None:
    client = cluster_client(sharded)
    try:
        values = {f"rc:{i}": f"v{i}" for i in range(200)}
        for key, value in values.items():
            assert client.set(key, value) is True
        assert {k: client.get(k) for k in values} == {k: v.encode() for k, v in values.items()}
        # move a group's leadership after the client learnt the slots: it gets MOVED to a
        # TLS port, follows it, and the write lands
        key = "rc:moved"
        slot = key_slot(key.encode())
        owner = client.nodes_manager.get_node_from_slot(slot)
        leader_id = next(node_id for node_id, port in sharded.tls_ports.items()
                         if port == owner.port)
        target = next(n for n in sharded.node_ids if n != leader_id)
        group = f"g{_group_of_slot(sharded, slot)}"
        leader = sharded.tls_client(leader_id)
        try:
            leader.execute_command("RESPKV.TRANSFER", target, group)
        finally:
            leader.close()
        wait_for(lambda: _group_leader(sharded, group) == target, 20, f"{target} to lead")
        assert client.set(key, "after") is True
        assert client.get(key) == b"after"
        assert client.nodes_manager.get_node_from_slot(slot).port == sharded.tls_ports[target]
    finally:
        client.close()


def _group_of_slot(cluster: TlsCluster, slot: int) -> int:
    for index, shard in enumerate(command(cluster.nodes[0].port, "CLUSTER", "SHARDS")):
        first, last = shard[1]
        if first <= slot <= last:
            return index
    raise AssertionError(f"no shard has slot {slot}")


def _group_leader(cluster: TlsCluster, group: str) -> str:
    return group_lines(raft_info(cluster.nodes[0])).get(group, {}).get("leader", "")


# -- only TLS ports: joining and forwarding over TLS (tls-replication) -----------------------


class TlsOnly:
    """Nodes with port 0: clients, joins and forwarded changes all go over TLS."""

    def __init__(self, base: Path, certs: Certs) -> None:
        self.base = base
        self.certs = certs
        self.token = TlsCluster(base, certs).token
        self.nodes: dict[str, Node] = {}
        self.tls_ports: dict[str, int] = {}

    def start_node(self, node_id: str, join: str = "") -> Node:
        port, tls_port = free_port(), free_ports(1)[0]
        args = ["--node-id", node_id, "--port", "0", "--tls-port", str(tls_port),
                "--raft-port", str(port + 10000), "--shards", "3", "--join-token", self.token,
                "--set", "tls-replication=yes", *self.certs.node_args(cluster=True)]
        args += ["--join", f"127.0.0.1:{self.tls_ports[join]}"] if join else ["--bootstrap"]
        node = Node(port, self.base / node_id, args)
        self.nodes[node_id] = node
        self.tls_ports[node_id] = tls_port
        node.start(wait=False)
        return node

    def info(self, node_id: str) -> dict[str, str] | None:
        conn = redis.SSLConnection(host="127.0.0.1", port=self.tls_ports[node_id],
                                   socket_timeout=1, **self.certs.ssl_kwargs())
        try:  # the reply as sent, without redis-py's INFO parsing
            conn.send_command("INFO", "raft")
            return parse_info(conn.read_response())
        except (redis.RedisError, OSError):
            node = self.nodes[node_id]
            assert node.proc is not None and node.proc.poll() is None, node.log()
            return None
        finally:
            conn.disconnect()

    def voters_are(self, voters: set[str], on: list[str]) -> bool:
        infos = [self.info(node_id) for node_id in on]
        return all(info is not None and all(members(g["voters"]) == voters
                                            for g in group_lines(info).values())
                   for info in infos)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


@pytest.fixture
def tls_only(tmp_path: Path, certs: Certs) -> Iterator[TlsOnly]:
    cluster = TlsOnly(tmp_path, certs)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_nodes_with_only_tls_ports_join_and_forward_over_tls(tls_only: TlsOnly) -> None:
    tls_only.start_node("n1")
    wait_for(lambda: tls_only.voters_are({"n1"}, ["n1"]), 30, "n1 to bootstrap")
    tls_only.start_node("n2", join="n1")
    wait_for(lambda: tls_only.voters_are({"n1", "n2"}, ["n1", "n2"]), 30, "n2 to join")
    tls_only.start_node("n3", join="n1")
    everyone = ["n1", "n2", "n3"]
    wait_for(lambda: tls_only.voters_are(set(everyone), everyone), 30, "n3 to join")

    def spread() -> bool:
        info = tls_only.info("n1")
        return info is not None and len(
            {g.get("leader") for g in group_lines(info).values()}) == 3

    wait_for(spread, 30, "the three groups' leaders spread")  # n1 must forward some
    client = RedisCluster(host="127.0.0.1", port=tls_only.tls_ports["n2"], socket_timeout=10,
                          **tls_only.certs.client_kwargs())
    try:
        for i in range(50):
            assert client.set(f"only-tls:{i}", i) is True
    finally:
        client.close()
    n1 = tls_only.certs.client(tls_only.tls_ports["n1"])
    try:  # to the leaders of the groups n1 does not lead: over TLS, to their TLS ports
        assert n1.execute_command("CLUSTER", "LEAVE", "n3") in (b"OK", "OK", True)
    finally:
        n1.close()
    wait_for(lambda: tls_only.voters_are({"n1", "n2"}, ["n1", "n2"]), 30, "n3 to be out")
    for node in tls_only.nodes.values():
        assert "Traceback" not in node.log(), node.log()


# -- the TLS address in the address book and the join proof -------------------------------


def test_addresses_carry_the_tls_address_and_read_older_entries() -> None:
    with_tls = Addresses("127.0.0.1:17001", "127.0.0.1:7001", "127.0.0.1:7401")
    assert Addresses.from_bytes(with_tls.to_bytes()) == with_tls
    plain = Addresses("127.0.0.1:17002", "127.0.0.1:7002")
    assert plain.to_dict() == {"raft": "127.0.0.1:17002", "client": "127.0.0.1:7002"}
    assert Addresses.from_bytes(b'{"raft": "a:1", "client": "b:2"}') == Addresses("a:1", "b:2")
    assert Addresses.from_bytes(b'["not", "addresses"]') is None


def test_address_book_maps_client_addresses_to_tls(tmp_path: Path) -> None:
    book = AddressBook(tmp_path / "peers.json")
    book.learn("n1", Addresses("h:17001", "h:7001", "h:7401"))
    book.learn("n2", Addresses("h:17002", "h:7002"))
    assert book.tls_of("h:7001") == "h:7401"
    assert book.tls_of("h:7002") is None and book.tls_of("h:9999") is None
    assert AddressBook(tmp_path / "peers.json").get("n1") == book.get("n1")  # kept on disk
    assert AddressBook.parse(book.to_bytes()) == book.entries


def test_join_proof_covers_the_tls_address_only_when_there_is_one() -> None:
    secret = b"s" * 32
    plain = join_proof(secret, "c", "n4", "h:17004", "h:7004")
    assert join_proof(secret, "c", "n4", "h:17004", "h:7004", "") == plain
    with_tls = join_proof(secret, "c", "n4", "h:17004", "h:7004", "h:7404")
    assert with_tls != plain
    assert with_tls != join_proof(secret, "c", "n4", "h:17004", "h:7004", "evil:7404")
