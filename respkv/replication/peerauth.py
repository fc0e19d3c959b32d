"""Peer authentication: every node of a cluster holds its secret, and proves it.

The secret (32 random bytes) is made when a node bootstraps a cluster and kept in
``cluster.secret`` in the node's dir (mode 0600). A node that joins gets it from a join
token, ``respkv1.<cluster id>.<secret hex>``, which the bootstrapping node prints and
CLUSTER TOKEN answers; the secret itself never crosses the network. A node may accept
several secrets while the cluster's is rotated (respkv.replication.keyring): it proves
with its current one and takes a proof made with any it accepts.

On the Raft port the dialer sends HELLO with a fresh nonce; the acceptor answers a
CHALLENGE with a nonce of its own and a proof (an HMAC over both nonces, the cluster id
and both node ids) that it holds the secret; the dialer checks it and sends its own
proof, which also covers the HELLO it sent (so the addresses in it cannot be swapped);
only then does the acceptor take frames from it. A recorded handshake cannot be
replayed: the acceptor's nonce is new on every connection. CLUSTER JOIN carries a
proof too, over the joining node's id and addresses.

What this does not do: encrypt, or protect a connection from someone who can rewrite
its packets after the handshake: that is what TLS on the Raft port (tls-cluster) is
for, under this handshake, which stays the same.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time

from respkv.replication.identity import new_cluster_id

SECRET_FILE = "cluster.secret"
TOKEN_PREFIX = "respkv1"
SECRET_BYTES = 32
NONCE_BYTES = 16
JOIN_REFUSED = "ERR join refused"  # a CLUSTER JOIN whose proof is wrong: no point retrying
REFUSALS_EVERY = 10.0  # seconds between two log lines about refusals from one address


class TokenError(ValueError):
    """A join token that is not one."""


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def join_token(cluster_id: str, secret: bytes) -> str:
    return f"{TOKEN_PREFIX}.{cluster_id}.{secret.hex()}"


def new_token() -> str:
    """The token of a cluster yet to be bootstrapped (``--join-token`` on its first
    node too): for a launcher that starts every node itself."""
    return join_token(new_cluster_id(), new_secret())


def parse_token(token: str) -> tuple[str, bytes]:
    """(cluster id, secret) of a join token."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1]:
        raise TokenError("a join token looks like respkv1.<cluster id>.<secret>")
    try:
        secret = bytes.fromhex(parts[2])
    except ValueError:
        raise TokenError("the join token's secret is not hex") from None
    if len(secret) != SECRET_BYTES:
        raise TokenError("the join token's secret has the wrong length")
    return parts[1], secret


def _mac(secret: bytes, label: bytes, *fields: bytes) -> bytes:
    """HMAC-SHA256 over a label and length-prefixed fields (no two inputs collide)."""
    mac = hmac.new(secret, label, hashlib.sha256)
    for item in fields:
        mac.update(len(item).to_bytes(4, "big"))
        mac.update(item)
    return mac.digest()


def acceptor_proof(secret: bytes, cluster_id: str, dialer: str, acceptor: str,
                   dialer_nonce: bytes, acceptor_nonce: bytes) -> bytes:
    return _mac(secret, b"respkv acceptor", cluster_id.encode(), dialer.encode(),
                acceptor.encode(), dialer_nonce, acceptor_nonce)


def dialer_proof(secret: bytes, cluster_id: str, dialer: str, acceptor: str,
                 dialer_nonce: bytes, acceptor_nonce: bytes, hello: bytes) -> bytes:
    return _mac(secret, b"respkv dialer", cluster_id.encode(), dialer.encode(),
                acceptor.encode(), dialer_nonce, acceptor_nonce,
                hashlib.sha256(hello).digest())


def join_proof(secret: bytes, cluster_id: str, node_id: str, raft: str, client: str,
               tls: str = "") -> str:
    """Over the joining node's addresses; its TLS address only when it has one, so the
    proof of a node without TLS is what it always was."""
    fields = [cluster_id.encode(), node_id.encode(), raft.encode(), client.encode()]
    if tls:
        fields.append(tls.encode())
    return _mac(secret, b"respkv join", *fields).hex()


def change_proof(secret: bytes, cluster_id: str, stamp: bytes, change: list[bytes]) -> str:
    """A node's proof that it asks for ``change`` at ``stamp`` (ms since the epoch)."""
    return _mac(secret, b"respkv change", cluster_id.encode(), stamp,
                *(b"%d:%s" % (len(part), part) for part in change)).hex()


def same(expected: bytes | str, given: bytes | str) -> bool:
    if isinstance(expected, str):
        expected = expected.encode()
    if isinstance(given, str):
        given = given.encode()
    return hmac.compare_digest(expected, given)


class RefusalLog:
    """One warning per host per REFUSALS_EVERY seconds, with how many were not logged
    since: a flood of bad connections cannot flood the log."""

    def __init__(self, logger: logging.Logger, every: float = REFUSALS_EVERY,
                 message: str = "refused raft connection") -> None:
        self.logger = logger
        self.message = message
        self.every = every
        self.last: dict[str, float] = {}
        self.quiet: dict[str, int] = {}

    def refused(self, address: str, reason: str, **fields: object) -> None:
        host = address.rsplit(":", 1)[0]  # a new connection is a new port, not a new peer
        now = time.monotonic()
        if now - self.last.get(host, -self.every) < self.every:
            self.quiet[host] = self.quiet.get(host, 0) + 1
            return
        if len(self.last) > 10_000:  # many hosts: forget the old ones
            self.last.clear()
            self.quiet.clear()
        self.last[host] = now
        not_logged = self.quiet.pop(host, 0)
        self.logger.warning(self.message, extra={
            "address": address, "reason": reason, "not_logged_since": not_logged, **fields})
