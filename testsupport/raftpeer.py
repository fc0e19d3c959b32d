"""A made-up peer on a node's Raft port, for the tests of its handshake."""

from __future__ import annotations

import json
import socket
import struct

from respkv.replication.peerauth import acceptor_proof, dialer_proof, new_nonce
from respkv.replication.transport import CHALLENGE, HELLO, HELLO_OK, HELLO_REFUSED, PROOF, frame
from testsupport.processes import Node


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """The next frame's kind and body; (-1, b"") once the node closed the connection."""
    data = b""
    while len(data) < 5:
        chunk = sock.recv(5 - len(data))
        if not chunk:
            return -1, b""
        data += chunk
    length, kind = struct.unpack(">IB", data)
    body = b""
    while len(body) < length - 1:
        chunk = sock.recv(length - 1 - len(body))
        if not chunk:
            return -1, b""
        body += chunk
    return kind, body


def _hello(cluster_id: str, node_id: str) -> tuple[bytes, bytes]:
    """A fresh nonce, and the HELLO of made-up peer n9 to ``node_id`` (no addresses:
    the node learns nothing of this peer)."""
    nonce = new_nonce()
    return nonce, json.dumps({"cluster": cluster_id, "from": "n9", "to": node_id,
                              "nonce": nonce.hex()}).encode()


def _challenge(sock: socket.socket, hello: bytes) -> dict:
    """Send ``hello``: the node's CHALLENGE (its nonce and its proof)."""
    sock.sendall(frame(HELLO, hello))
    kind, body = read_frame(sock)
    assert kind == CHALLENGE, (kind, body)
    return json.loads(body)


def raft_handshake(node: Node, node_id: str, cluster_id: str, secret: bytes) -> tuple[bool, bool]:
    """A peer's handshake on ``node``'s Raft port proving with ``secret``: (the node's
    own proof was made with ``secret``, the node took ours)."""
    nonce, hello = _hello(cluster_id, node_id)
    with socket.create_connection(("127.0.0.1", node.raft_port), timeout=5) as sock:
        challenge = _challenge(sock, hello)
        theirs = bytes.fromhex(challenge["nonce"])
        proved = challenge["proof"] == acceptor_proof(secret, cluster_id, "n9", node_id, nonce,
                                                      theirs).hex()
        sock.sendall(frame(PROOF, dialer_proof(secret, cluster_id, "n9", node_id, nonce, theirs,
                                               hello)))
        kind, _ = read_frame(sock)
        assert kind in (HELLO_OK, HELLO_REFUSED)
        return proved, kind == HELLO_OK


def replayed_handshake(node: Node, node_id: str, cluster_id: str, secret: bytes) -> int:
    """A good handshake as made-up peer n9, captured, then its HELLO and PROOF sent
    again on a new connection: the frame kind the node answers the replay with (-1:
    it closed the connection)."""
    nonce, hello = _hello(cluster_id, node_id)
    with socket.create_connection(("127.0.0.1", node.raft_port), timeout=5) as sock:
        theirs = bytes.fromhex(_challenge(sock, hello)["nonce"])
        proof = frame(PROOF, dialer_proof(secret, cluster_id, "n9", node_id, nonce, theirs,
                                          hello))
        sock.sendall(proof)
        assert read_frame(sock)[0] == HELLO_OK  # the capture was good
    with socket.create_connection(("127.0.0.1", node.raft_port), timeout=5) as sock:
        _challenge(sock, hello)  # a new nonce: the old proof does not answer it
        sock.sendall(proof)
        return read_frame(sock)[0]
