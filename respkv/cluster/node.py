"""A cluster member: identity, joining, the transport and the Raft group(s).

First start on an empty dir without --join: bootstrap a one-node cluster with
a new cluster id. With --join host:port: ask that member to add us
(``CLUSTER JOIN``, following MOVED to the leader), store the cluster id it
answers with, then wait for the leader to send the log or a snapshot.
Any later start reads node.json and comes back as the same node, whatever the
command line says about joining.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

from respkv.cluster.group import RaftGroup
from respkv.cluster.membership import (
    AddressBook,
    Addresses,
    NodeInfo,
    NodeRefused,
    load_node_info,
    new_cluster_id,
    save_node_info,
)
from respkv.cluster.transport import Transport, split_address
from respkv.config import Config

log = logging.getLogger(__name__)

GROUP = "g0"  # the first milestone runs one group owning every slot
JOIN_TIMEOUT = 60.0


class ClusterNode:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dir = Path(config.dir)
        self.info: NodeInfo | None = None
        self.transport: Transport | None = None
        self.group: RaftGroup | None = None
        self.book = AddressBook(self.dir / "peers.json")

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def addresses(self) -> Addresses:
        return Addresses(self.config.raft_address, self.config.client_address)

    async def start(self) -> None:
        info = load_node_info(self.dir)
        bootstrap = None
        joined_at = 0
        if info is None:
            _check_port_free(self.config.bind, self.config.raft_port)
            if self.config.join:
                cluster_id, joined_at = await self._join(self.config.join)
            else:
                cluster_id = new_cluster_id()
                bootstrap = self.addresses
                log.info("bootstrapping a new cluster", extra={"cluster": cluster_id})
            info = NodeInfo(self.node_id, cluster_id, joined_at=joined_at)
            save_node_info(self.dir, info)
        self._check_identity(info)
        self.info = info
        self.book.learn(self.node_id, self.addresses)
        self.transport = Transport(
            self.node_id, info.cluster_id, self.config.bind, self.config.raft_port,
            lambda group: self.dir / "raft" / group / "snap",
            {"raft": self.addresses.raft, "client": self.addresses.client},
            self._on_hello,
        )
        await self.transport.start()
        self.group = RaftGroup(GROUP, self.node_id, self.config, self.dir, self.transport,
                               self.book, bootstrap, info.joined_at)
        self.group.on_removed = self._removed
        await self.group.start()

    def _on_hello(self, node_id: str, fields: dict[str, str]) -> None:
        """A peer dialed us and said where it is: remember it, so we can answer."""
        try:
            addresses = Addresses(str(fields["raft"]), str(fields["client"]))
        except KeyError:
            return
        self.book.learn(node_id, addresses)
        if self.transport is not None:
            self.transport.set_peer(node_id, addresses.raft)

    def _check_identity(self, info: NodeInfo) -> None:
        if info.node_id != self.node_id:
            raise NodeRefused(f"{self.dir} belongs to node {info.node_id!r}, not "
                              f"{self.node_id!r}; start it with --node-id {info.node_id}")
        if info.removed:
            raise NodeRefused(f"node {self.node_id} was removed from cluster {info.cluster_id};"
                              f" clear {self.dir} to join again as a new member")

    def _removed(self) -> None:
        log.warning("this node was removed from the cluster; shutting down")
        if self.info is not None:
            self.info.removed = True
            save_node_info(self.dir, self.info)
        if self.on_removed is not None:
            self.on_removed()

    on_removed = None

    async def _join(self, seed: str) -> tuple[str, int]:
        """Ask the cluster (following MOVED) to add us: its cluster id, and the log
        index of the change that added us."""
        deadline = time.monotonic() + JOIN_TIMEOUT
        target = seed
        me = self.addresses
        delay = 0.1
        while True:
            try:
                reply = await _call(target, [b"CLUSTER", b"JOIN", self.node_id.encode(),
                                             me.raft.encode(), me.client.encode()])
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                reply = f"-ERR cannot reach {target}: {error}".encode()
            if reply.startswith(b"$") or reply.startswith(b"+"):
                answer = reply.split(b"\r\n")[1 if reply.startswith(b"$") else 0]
                words = answer.lstrip(b"+").decode().split()
                cluster_id = words[0]
                joined_at = int(words[1]) if len(words) > 1 else 0
                log.info("joined cluster", extra={"cluster": cluster_id, "via": target,
                                                  "index": joined_at})
                return cluster_id, joined_at
            text = reply.decode(errors="replace").strip()
            if text.startswith("-MOVED"):
                target = text.split()[-1]
                continue
            if time.monotonic() > deadline:
                raise NodeRefused(f"could not join through {seed}: {text}")
            log.info("join not done yet: %s", text)
            target = seed
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def stop(self) -> None:
        if self.group is not None:
            await self.hand_over_leadership()
            await self.group.stop()
        if self.transport is not None:
            await self.transport.stop()

    async def hand_over_leadership(self, timeout: float = 3.0) -> None:
        """A leader that stops first makes an up-to-date follower the leader."""
        group = self.group
        if group is None or not group.is_leader():
            return
        target = group.best_transfer_target()
        if target is None:
            return
        log.info("transferring leadership before shutdown", extra={"to": target})
        try:
            group.transfer_leadership(target)
        except Exception as error:  # best effort: stopping anyway
            log.warning("leadership transfer failed: %s", error)
            return
        deadline = time.monotonic() + timeout
        while group.is_leader() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


def _check_port_free(host: str, port: int) -> None:
    """Fail before joining rather than after, when the raft port is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise NodeRefused(f"raft port {host}:{port} is not available: {error}") from None


async def _call(address: str, args: list[bytes], timeout: float = 10.0) -> bytes:
    """One RESP command to a node; the raw reply line(s)."""
    host, port = split_address(address)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        request = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        writer.write(request)
        line = await asyncio.wait_for(reader.readline(), timeout)
        if line.startswith(b"$") and not line.startswith(b"$-1"):
            line += await asyncio.wait_for(reader.readline(), timeout)
        return line
    finally:
        writer.close()
