"""Rotating the cluster secret of a running cluster, with real processes: CLUSTER SECRET
on one node, and ``respkv rotate-secret`` on three while writes go on and a node is
restarted half way; afterwards the nodes talk on new connections, a peer with the
old secret and a node with the old join token are refused."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest
import redis
from cluster_support import Writers, assert_all_present

from respkv.replication.keyring import key_id
from respkv.replication.peerauth import SECRET_FILE
from respkv.replication.rotation import Rotation, RotationFailed
from testsupport.processes import ROOT, Cluster, Node, command, exits_with_message
from testsupport.raftpeer import raft_handshake
from testsupport.waiting import wait_for

SECRET_A = "ab" * 32


def secret_command(node: Node, *args: str) -> object:
    return command(node.port, "CLUSTER", "SECRET", *args)


def token_secret(token: str) -> bytes:
    return bytes.fromhex(token.split(".")[2])


def test_cluster_secret_commands(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(size=1)
    node = cluster.nodes[0]
    old = key_id(token_secret(cluster.token))
    assert secret_command(node, "STATUS") == [f"{old} current".encode()]
    new = key_id(bytes.fromhex(SECRET_A))
    assert secret_command(node, "ADD", SECRET_A) == new.encode()
    assert secret_command(node, "add", SECRET_A) == new.encode()  # again: the same
    assert secret_command(node, "STATUS") == [f"{old} current".encode(),
                                             f"{new} accepted".encode()]
    refusals = [
        (("ADD", "xyz"), "ERR a secret is 64 hex digits"),
        (("ADD", "ab" * 16), "ERR a secret is 64 hex digits"),
        (("USE", "000000000000"), "ERR no accepted secret has id 000000000000: "
                                  "CLUSTER SECRET ADD it first"),
        (("DROP", old), f"ERR {old} is the current secret: CLUSTER SECRET USE another "
                        "one first"),
        (("DROP", "nope"), "ERR no accepted secret has id nope"),
        (("STATUS", "extra"), "ERR wrong number of arguments for 'cluster|secret' command"),
        (("USE",), "ERR wrong number of arguments for 'cluster|secret' command"),
        (("ROTATE", "x"), "ERR unknown CLUSTER SECRET action 'ROTATE'. Try CLUSTER HELP."),
    ]
    for args, error in refusals:
        with pytest.raises(redis.ResponseError) as raised:
            secret_command(node, *args)
        assert str(raised.value) == error.removeprefix("ERR "), args  # redis-py drops it
    with pytest.raises(redis.ResponseError, match=re.escape(
            "wrong number of arguments for 'cluster|secret'")):
        command(node.port, "CLUSTER", "SECRET")
    assert secret_command(node, "USE", new.upper()) == b"OK"
    assert secret_command(node, "DROP", old) == b"OK"
    assert secret_command(node, "STATUS") == [f"{new} current".encode()]
    cluster_id = cluster.token.split(".")[1]
    assert command(node.port, "CLUSTER", "TOKEN").decode() == f"respkv1.{cluster_id}.{SECRET_A}"
    assert SECRET_A not in node.log() and SECRET_A not in repr(secret_command(node, "STATUS"))
    # the table's flags: an admin command, not for scripts
    info = command(node.port, "COMMAND", "INFO", "cluster|secret")[0]
    assert info[1] == -3 and {b"admin", b"noscript"} <= set(info[2])
    assert {b"@admin", b"@dangerous"} <= set(info[6])
    client = node.client()
    client.execute_command("ACL", "SETUSER", "app", "on", ">pw", "+@all", "-@dangerous")
    app = node.client(username="app", password="pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.execute_command("CLUSTER", "SECRET", "STATUS")
    # the restart reads the keyring back (and the old token on the command line is no
    # reason to refuse: it names this cluster)
    node.stop()
    node.start()
    assert secret_command(node, "STATUS") == [f"{new} current".encode()]
    stored = json.loads((node.dir / SECRET_FILE).read_text())
    assert stored == {"current": SECRET_A, "accepted": [SECRET_A]}
    assert oct(os.stat(node.dir / SECRET_FILE).st_mode & 0o777) == "0o600"


def test_rotate_a_running_cluster(make_cluster: Callable[..., Cluster]) -> None:
    """rotate-secret on three nodes under writes, n2 restarted after the ADD round
    (it comes back from its keyring on disk). Then: new connections everywhere (n3
    restarted, the leader killed and a new one elected, the old leader back), the old
    secret refused on the Raft port, the old join token refused, the new one taken."""
    cluster = make_cluster(size=3)
    cluster_id = cluster.token.split(".")[1]
    old_secret = token_secret(cluster.token)
    n1, n2, n3 = cluster.nodes
    lines: list[str] = []

    with Writers(cluster, count=2) as writers:
        writers.wait_more(20)

        def between(round_name: str) -> None:
            if round_name == "add":
                for node in cluster.nodes:  # every node accepts both, proves with the old
                    assert len(secret_command(node, "STATUS")) == 2
                n2.stop()
                n2.start()
                cluster.wait_voters(set(cluster.node_ids))
                writers.wait_more(writers.count(), what="writes after n2's restart")
            if round_name == "use":  # the old secret is still accepted
                assert raft_handshake(n1, "n1", cluster_id, old_secret) == (False, True)

        rotation = Rotation(n1.address, report=lines.append, after_round=between)
        new_id = asyncio.run(rotation.run())
        writers.wait_more(writers.count(), what="writes after the rotation")
    cluster.wait_caught_up()  # n2, restarted, may not have applied every entry yet
    assert_all_present(cluster.nodes, writers.acked())
    assert lines[-1].startswith(f"done: every node proves with {new_id}")
    assert [line.split(":")[0] for line in lines[1:4]] == ["add", "use", "drop"]
    new_token = f"respkv1.{cluster_id}.{rotation.secret.hex()}"
    for node in cluster.nodes:
        assert secret_command(node, "STATUS") == [f"{new_id} current".encode()]
        assert command(node.port, "CLUSTER", "TOKEN").decode() == new_token
        assert rotation.secret.hex() not in node.log()

    # the nodes talk on connections made with the new secret only
    n3.stop()
    n3.start()
    leader = cluster.wait_leader()
    with Writers(cluster, count=2, prefix="after") as writers:
        writers.wait_more(20)
        leader.kill()
        rest = [n for n in cluster.nodes if n is not leader]
        successor = cluster.wait_leader(among=rest)
        assert successor is not leader
        writers.wait_more(writers.count(), what="writes after the election")
        leader.start()
        cluster.wait_voters(set(cluster.node_ids))
        writers.wait_more(writers.count(), what="writes with the old leader back")
    cluster.wait_caught_up()
    assert_all_present(cluster.nodes, writers.acked())

    # a peer proving with the dropped secret is refused; the node proves with the new one
    assert raft_handshake(n2, "n2", cluster_id, old_secret) == (False, False)
    assert raft_handshake(n2, "n2", cluster_id, rotation.secret) == (True, True)
    assert "wrong proof" in n2.log()

    old = cluster.new_node("n4", join=n1, dir_name="n4-old-token")
    exits_with_message(old, "the join token is not this cluster's, or its secret is no "
                            "longer accepted (the cluster secret was rotated)")
    cluster.nodes.remove(old)
    cluster.node_ids.remove("n4")
    good = cluster.new_node("n4", join=n1)
    good.args[good.args.index(cluster.token)] = new_token
    good.start()
    cluster.wait_voters({"n1", "n2", "n3", "n4"})
    assert cluster.leader().client().set("joined", "yes")
    assert good.client().get("joined") == b"yes"  # a linearizable read through the leader
    assert secret_command(good, "STATUS") == [f"{new_id} current".encode()]


def test_rotate_secret_command(make_cluster: Callable[..., Cluster]) -> None:
    """The click command end to end, and a rotation that cannot begin changes nothing."""
    cluster = make_cluster(size=2)
    cluster.leader().client().execute_command("ACL", "SETUSER", "default", "resetpass", ">pw")
    for node in cluster.nodes:
        node.password = "pw"
        wait_for(lambda node=node: node.client().ping(), what="the password on every node")
    n1, n2 = cluster.nodes
    before = [command(n.port, "CLUSTER", "SECRET", "STATUS", password="pw")
              for n in cluster.nodes]
    run = subprocess.run([sys.executable, "-m", "respkv.cli", "rotate-secret", "--via",
                          n2.address, "--password", "pw"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "done: every node proves with" in run.stdout
    after = [command(n.port, "CLUSTER", "SECRET", "STATUS", password="pw")
             for n in cluster.nodes]
    assert after[0] == after[1] and len(after[0]) == 1 and after[0] != before[0]

    wrong = subprocess.run([sys.executable, "-m", "respkv.cli", "rotate-secret", "--via",
                            n1.address, "--password", "nope"], capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
    assert wrong.returncode == 1 and "nothing changed" in wrong.stderr, wrong.stderr

    # a node lost in the middle: the rotation stops, and its instructions finish it
    def lose_n2(round_name: str) -> None:
        if round_name == "add":
            n2.stop(signal.SIGKILL)

    halted = Rotation(n1.address, "pw", report=lambda line: None, after_round=lose_n2)
    with pytest.raises(RotationFailed) as stopped:
        asyncio.run(halted.run())
    message = str(stopped.value)
    assert message.startswith(f"stopped at USE on {n2.address}: cannot reach it"), message
    old_id, new_id = halted.old_id, halted.new_id
    assert f"Every node accepts both {old_id} and {new_id}" in message
    assert f"To go on: CLUSTER SECRET USE {new_id} on {n2.address}, then CLUSTER SECRET " \
           f"DROP {old_id} on every node" in message
    n2.start()
    cluster.wait_caught_up()  # until it has applied the log again it may lack the users
    assert command(n2.port, "CLUSTER", "SECRET", "USE", new_id, password="pw") == b"OK"
    for node in cluster.nodes:
        assert command(node.port, "CLUSTER", "SECRET", "DROP", old_id, password="pw") == b"OK"
        assert command(node.port, "CLUSTER", "SECRET", "STATUS", password="pw") == [
            f"{new_id} current".encode()]
    assert cluster.leader().client().set("after", "rotation")  # two nodes: both must talk
    after = [command(n.port, "CLUSTER", "SECRET", "STATUS", password="pw")
             for n in cluster.nodes]

    n2.stop(signal.SIGKILL)
    with pytest.raises(RotationFailed, match=re.escape(
            f"nothing changed: {n2.address} does not answer")):
        asyncio.run(Rotation(n1.address, "pw", report=lambda line: None).run())
    assert command(n1.port, "CLUSTER", "SECRET", "STATUS", password="pw") == after[0]
