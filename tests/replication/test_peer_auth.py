"""Peer authentication with real processes: a node needs the cluster's join token to
join; a connection to the Raft port that cannot prove it holds the cluster's secret
changes nothing (no term, no data) and costs one rate-limited log line; the secret is
kept readable by the node's user only."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Callable

from respkv.raft.codec import encode_message
from respkv.raft.messages import Message, MessageType
from respkv.replication.peerauth import SECRET_FILE, new_token, parse_token
from respkv.replication.transport import CHALLENGE, HELLO, HELLO_REFUSED, MSG, PROOF, frame
from testsupport.processes import Cluster, command, exits_with_message, raft_info
from testsupport.raftpeer import read_frame, replayed_handshake
from testsupport.waiting import wait_for

FOREVER = 1 << 62


def test_joining_needs_the_clusters_token(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(size=1)
    seed = cluster.nodes[0]
    assert command(seed.port, "CLUSTER", "TOKEN").decode() == cluster.token
    secret = seed.dir / SECRET_FILE
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    no_token = cluster.new_node("n2", join=seed)
    no_token.args.remove("--join-token")
    no_token.args.remove(cluster.token)
    exits_with_message(no_token, "joining needs the cluster's join token")
    other = cluster.new_node("n3", join=seed, dir_name="n3-other")
    other.args[other.args.index(cluster.token)] = new_token()  # another cluster's
    exits_with_message(other, "join refused")
    forged = cluster.new_node("n4", join=seed, dir_name="n4-forged")
    cluster_id = cluster.token.split(".")[1]
    forged.args[forged.args.index(cluster.token)] = f"respkv1.{cluster_id}.{'00' * 32}"
    exits_with_message(forged, "join refused")
    assert "refused a join without the cluster's token" in seed.log()
    assert raft_info(seed)["raft_voters"] == "n1"
    good = cluster.add("n5")
    assert good.client().ping()


def test_a_forger_changes_nothing(make_cluster: Callable[..., Cluster]) -> None:
    """The right cluster id and node ids but no secret: a HELLO, a made-up proof, then
    a heartbeat with a huge term and an append. All refused: the term and the data stay
    as they were, and 50 such connections write a handful of log lines, no traceback."""
    cluster = make_cluster(size=1)
    node = cluster.nodes[0]
    node.client().set("k", "before")
    term = raft_info(node)["raft_term"]
    cluster_id = cluster.token.split(".")[1]
    hello = json.dumps({"cluster": cluster_id, "from": "n2", "to": "n1",
                        "nonce": "00" * 16, "addresses": {"raft": "127.0.0.1:1"}}).encode()
    bump = Message(MessageType.HEARTBEAT, group="g0", to="n1", from_="n2", term=FOREVER)
    append = Message(MessageType.APP, group="g0", to="n1", from_="n2", term=FOREVER,
                     index=1)
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", node.raft_port), timeout=5) as sock:
            sock.sendall(frame(HELLO, hello))
            assert read_frame(sock)[0] == CHALLENGE
            sock.sendall(frame(PROOF, b"\x00" * 32) + frame(MSG, encode_message(bump)) +
                         frame(MSG, encode_message(append)))
            assert read_frame(sock)[0] == HELLO_REFUSED
            assert read_frame(sock)[0] == -1  # closed
    info = raft_info(node)
    assert info["raft_term"] == term and info["raft_role"] == "leader"
    assert node.client().get("k") == b"before"
    log = node.log()
    assert 1 <= log.count("refused raft connection") <= 3
    assert "Traceback" not in log


def test_a_captured_handshake_replayed_is_refused(make_cluster: Callable[..., Cluster]) -> None:
    """The HELLO and PROOF of a good handshake, sent again: the node's challenge has a
    new nonce each time, so the old proof is refused and the connection closed."""
    cluster = make_cluster(size=1)
    node = cluster.nodes[0]
    cluster_id, secret = parse_token(cluster.token)
    assert replayed_handshake(node, "n1", cluster_id, secret) in (HELLO_REFUSED, -1)
    wait_for(lambda: "wrong proof" in node.log(), timeout=5, what="the refusal in the log")
    assert node.client().ping()
