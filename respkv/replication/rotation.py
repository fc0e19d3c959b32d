"""Rotating the cluster secret of a running cluster (``respkv rotate-secret``), over
the nodes' client ports, as shared keys are rotated: add, switch, drop.

1. every node accepts a new secret (``CLUSTER SECRET ADD``);
2. every node proves with it (``CLUSTER SECRET USE``);
3. every node stops accepting the old one (``CLUSTER SECRET DROP``).

Each round ends on every node before the next begins, so at any moment any two nodes
share a secret that one proves with and the other accepts: no connection between
them is refused, and Raft goes on throughout. Nothing is changed before every node
has answered: a node that cannot be reached, or a cluster whose nodes do not agree on
their current secret (an earlier rotation left half done), stops the rotation before
its first round. A node that fails in a round stops it there, with what the cluster
then is and how to go on (RotationFailed). The new secret is never printed: a
rotation stopped in its first round is run again (with another secret), and the
later rounds name secrets by their ids only.
"""

from __future__ import annotations

from collections.abc import Callable

import hiredis

from respkv.replication.keyring import key_id
from respkv.replication.peerauth import new_secret
from respkv.replication.rpc import command

TIMEOUT = 10.0  # seconds for a node to answer one command


class RotationFailed(RuntimeError):
    """The rotation stopped; the message says where, in what state and what next."""


def node_addresses(nodes_reply: bytes) -> list[str]:
    """The client addresses (host:port) in a CLUSTER NODES reply, in its order."""
    found = []
    for line in nodes_reply.decode("utf-8", "replace").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            found.append(fields[1].split("@", 1)[0])
    return found


class Rotation:
    """One rotation: the nodes, the secret going and the one coming."""

    def __init__(self, via: str, password: str = "", report: Callable[[str], None] = print,
                 after_round: Callable[[str], None] | None = None) -> None:
        self.via = via
        self.password = password
        self.report = report
        # called with the round's name once it is done on every node: a test restarts
        # a node between two rounds with it
        self.after_round = after_round
        self.nodes: list[str] = []
        self.old_id = ""
        self.secret = new_secret()
        self.new_id = key_id(self.secret)

    async def run(self) -> str:
        """Rotate; the new secret's id. RotationFailed if it stops."""
        await self._survey()
        self.report(f"{len(self.nodes)} nodes: {' '.join(self.nodes)}; "
                    f"current secret {self.old_id}, new secret {self.new_id}")
        await self._round("add", [b"ADD", self.secret.hex().encode()], self._add_failed)
        await self._round("use", [b"USE", self.new_id.encode()], self._use_failed)
        await self._round("drop", [b"DROP", self.old_id.encode()], self._drop_failed)
        await self._check_done()
        self.report(f"done: every node proves with {self.new_id} and accepts no other "
                    "secret; CLUSTER TOKEN prints the new join token")
        return self.new_id

    async def _call(self, address: str, args: list[bytes]) -> object:
        try:
            reply = await command(address, args, self.password)
        except (OSError, TimeoutError, ValueError) as error:
            return hiredis.ReplyError(f"cannot reach it: {error or error.__class__.__name__}")
        return reply

    async def _status(self, address: str) -> list[str] | str:
        """A node's CLUSTER SECRET STATUS lines, or why it has none."""
        reply = await self._call(address, [b"CLUSTER", b"SECRET", b"STATUS"])
        if isinstance(reply, hiredis.ReplyError):
            return str(reply)
        if not isinstance(reply, list):
            return f"unexpected reply {reply!r:.60}"
        return [line.decode() if isinstance(line, bytes) else str(line) for line in reply]

    async def _survey(self) -> None:
        """Every node, from the CLUSTER NODES of the one given; each must answer and
        all must have the same current secret, or nothing is changed."""
        reply = await self._call(self.via, [b"CLUSTER", b"NODES"])
        if isinstance(reply, hiredis.ReplyError) or not isinstance(reply, bytes):
            raise RotationFailed(f"nothing changed: CLUSTER NODES on {self.via}: {reply}")
        self.nodes = node_addresses(reply)
        if not self.nodes:
            raise RotationFailed(f"nothing changed: {self.via} lists no nodes")
        currents: dict[str, str] = {}
        for address in self.nodes:
            status = await self._status(address)
            if isinstance(status, str):
                raise RotationFailed(
                    f"nothing changed: {address} does not answer CLUSTER SECRET STATUS "
                    f"({status}); every node must, before a rotation begins")
            current = [line.split()[0] for line in status if line.endswith(" current")]
            currents[address] = current[0] if current else "?"
        if len(set(currents.values())) != 1:
            listed = ", ".join(f"{a}: {c}" for a, c in currents.items())
            raise RotationFailed(
                "nothing changed: the nodes do not prove with the same secret "
                f"({listed}); an earlier rotation stopped half way: finish it first "
                "(CLUSTER SECRET USE on the nodes behind, then DROP the old secret)")
        self.old_id = next(iter(currents.values()))

    async def _round(self, name: str, action: list[bytes],
                     failed: Callable[[str, str, list[str]], str]) -> None:
        done: list[str] = []
        for address in self.nodes:
            reply = await self._call(address, [b"CLUSTER", b"SECRET", *action])
            if isinstance(reply, hiredis.ReplyError):
                raise RotationFailed(f"stopped at {name.upper()} on {address}: {reply}\n"
                                     + failed(address, str(reply), done))
            done.append(address)
        self.report(f"{name}: done on every node")
        if self.after_round is not None:
            self.after_round(name)

    def _rest(self, address: str) -> str:
        return " ".join(self.nodes[self.nodes.index(address):])

    def _add_failed(self, address: str, error: str, done: list[str]) -> str:
        have = " ".join(done) or "none"
        return (f"The cluster still proves with {self.old_id} everywhere and works as "
                f"before; nodes that also accept the new secret {self.new_id}: {have}. "
                f"Fix {address} and run rotate-secret again (it makes another secret); "
                f"then CLUSTER SECRET DROP {self.new_id} on those nodes, or leave it: it "
                "is never used.")

    def _use_failed(self, address: str, error: str, done: list[str]) -> str:
        have = " ".join(done) or "none"
        return (f"Every node accepts both {self.old_id} and {self.new_id}, so every node "
                f"still talks to every other; nodes proving with {self.new_id}: {have}. "
                f"To go on: CLUSTER SECRET USE {self.new_id} on {self._rest(address)}, "
                f"then CLUSTER SECRET DROP {self.old_id} on every node. To go back: "
                f"CLUSTER SECRET USE {self.old_id} on {have}.")

    def _drop_failed(self, address: str, error: str, done: list[str]) -> str:
        have = " ".join(done) or "none"
        return (f"Every node proves with {self.new_id}; {self.old_id} is no longer "
                f"accepted by: {have}. To finish: CLUSTER SECRET DROP {self.old_id} on "
                f"{self._rest(address)}.")

    async def _check_done(self) -> None:
        for address in self.nodes:
            status = await self._status(address)
            if status != [f"{self.new_id} current"]:
                raise RotationFailed(
                    f"every round was answered, but {address} now reports {status}: "
                    f"check CLUSTER SECRET STATUS on it (it should list {self.new_id} "
                    "alone)")
