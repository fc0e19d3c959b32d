"""A peer that holds the cluster's secret but lies: the Raft core refuses what cannot
be true and what comes from outside the group, the group keeps its leader, term and
data, writes still commit, and INFO counts every refusal."""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Callable

from respkv.raft.codec import encode_message
from respkv.raft.messages import Message, MessageType
from respkv.replication.keyring import load_keyring
from respkv.replication.peerauth import dialer_proof
from respkv.replication.transport import CHALLENGE, HELLO, HELLO_OK, MSG, PROOF, frame
from testsupport.processes import Cluster, Node, raft_info
from testsupport.waiting import wait_for


def _frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    length, kind = struct.unpack(">IB", exactly(5))
    return kind, exactly(length - 1)


def connect_as(node: Node, node_id: str, me: str, cluster_id: str) -> socket.socket:
    """A Raft connection to ``node`` that proves the secret, claiming to be ``me``."""
    keyring = load_keyring(node.dir)
    assert keyring is not None
    secret = keyring.current
    nonce = os.urandom(16)
    hello = json.dumps({"cluster": cluster_id, "from": me, "to": node_id,
                        "nonce": nonce.hex()}).encode()
    sock = socket.create_connection(("127.0.0.1", node.raft_port), timeout=5)
    sock.sendall(frame(HELLO, hello))
    kind, body = _frame(sock)
    assert kind == CHALLENGE, body
    theirs = bytes.fromhex(json.loads(body)["nonce"])
    sock.sendall(frame(PROOF, dialer_proof(secret, cluster_id, me, node_id, nonce, theirs,
                                           hello)))
    assert _frame(sock)[0] == HELLO_OK
    return sock


def test_lies_from_a_peer_with_the_secret_change_nothing(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(size=3)
    leader = cluster.leader()
    leader.client().set("k", "before")
    info = raft_info(leader)
    lead_id, term = info["raft_node_id"], int(info["raft_term"])
    last = int(info["raft_last_log_index"])
    member = next(n for n in cluster.node_ids if n != lead_id)
    cluster_id = cluster.token.split(".")[1]

    def message(typ: MessageType, frm: str, **fields: object) -> bytes:
        return frame(MSG, encode_message(Message(typ, group="g0", to=lead_id, from_=frm,
                                                 **fields)))  # type: ignore[arg-type]

    with connect_as(leader, lead_id, member, cluster_id) as sock:
        sock.sendall(message(MessageType.HEARTBEAT, member, term=2**64 - 1)
                     + message(MessageType.APP, member, term=2**64 - 1, index=1)
                     + message(MessageType.APP_RESP, member, term=term, index=last + 1000)
                     + message(MessageType.APP_RESP, member, term=term, index=last + 2000))
        with connect_as(leader, lead_id, "n9", cluster_id) as stranger:
            stranger.sendall(message(MessageType.HEARTBEAT, "n9", term=term + 1,
                                     commit=last + 5)
                             + message(MessageType.VOTE, "n9", term=term + 1, index=last + 9,
                                       log_term=term + 1))

            def counted() -> dict[str, str] | None:
                now = raft_info(leader)
                return now if (int(now["raft_refused_term_too_high"]) >= 2
                               and int(now["raft_refused_ack_past_end"]) >= 2
                               and int(now["raft_refused_stranger"]) >= 2) else None

            after = wait_for(counted, 10, "the refusals counted in INFO raft")
    assert after["raft_refused_term_too_high"] == "2"
    assert after["raft_refused_ack_past_end"] == "2"
    assert after["raft_refused_stranger"] == "2"
    assert after["raft_refused_bad_index"] == "0"
    assert after["raft_term"] == str(term) and after["raft_role"] == "leader"
    assert leader.client().get("k") == b"before"
    leader.client().set("k", "after")  # the group still commits
    for node in cluster.nodes:
        assert wait_for(lambda n=node: n.client().get("k") == b"after" or None, 10,
                        f"{node.dir.name} applies the write")
    assert raft_info(leader)["raft_term"] == str(term)
    log = leader.log()
    assert "raft message refused" in log and "reason=term_too_high" in log
    assert "peer=n9" in log and "Traceback" not in log
