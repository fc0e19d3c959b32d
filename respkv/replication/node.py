"""A cluster member: identity, joining, the transport and the Raft group(s).

First start on an empty dir without --join: bootstrap a one-node cluster with
a new cluster id and ``shards`` Raft groups. With --join host:port: ask that
member to add us to every group (``CLUSTER JOIN``, following MOVED), store the
cluster id and group count it answers with, then wait for each group's leader
to send the log or a snapshot. Every node is a member of every group; the
leaders are spread (group i prefers the i-th voter).
Any later start reads node.json and comes back as the same node, whatever the
command line says about joining.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

from respkv.config import Config
from respkv.protocol.reply import RespError
from respkv.replication.addresses import AddressBook, Addresses
from respkv.replication.balancer import LeaderBalancer, hand_over_leadership, preferred_leader
from respkv.replication.group import RaftGroup
from respkv.replication.health import PeerHealth
from respkv.replication.identity import (
    NodeInfo,
    NodeRefused,
    load_node_info,
    new_cluster_id,
    save_node_info,
)
from respkv.replication.rpc import ask
from respkv.replication.slots import group_name, slot_owners
from respkv.replication.transport import Transport
from respkv.state.machine import ApplyCommand
from respkv.storage.nodelog import NodeLog

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 60.0
SETTLE_TIMEOUT = 15.0  # a new member serves clients after this long even if not settled


class ClusterNode:
    def __init__(self, config: Config, apply_command: ApplyCommand) -> None:
        self.config = config
        self.apply_command = apply_command  # what each group's state machine applies with
        self.dir = Path(config.dir)
        self.info: NodeInfo | None = None
        self.transport: Transport | None = None
        self.groups: list[RaftGroup] = []
        self.slot_owner: list[int] = []  # slot -> index in groups
        self.book = AddressBook(self.dir / "peers.json")
        self.removed_from: set[str] = set()
        self.on_removed: Callable[[], None] | None = None
        self.balancer: LeaderBalancer | None = None
        self.wal: NodeLog | None = None  # the WAL all groups share

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def addresses(self) -> Addresses:
        return Addresses(self.config.raft_address, self.config.client_address)

    def group_of_slot(self, slot: int) -> RaftGroup:
        return self.groups[self.slot_owner[slot]]

    async def start(self) -> None:
        if self.config.faults:
            logger.warning("UNSAFE TEST FAULTS ON: %s", self.config.faults.describe())
        info = load_node_info(self.dir)
        bootstrap = None
        joining = info is None and bool(self.config.join)
        if info is None:
            _check_port_free(self.config.bind, self.config.raft_port)
            if self.config.join:
                cluster_id, shards, joined_at = await self._join(self.config.join)
            else:
                cluster_id, shards, joined_at = new_cluster_id(), self.config.shards, {}
                bootstrap = self.addresses
                logger.info("bootstrapping a new cluster",
                         extra={"cluster": cluster_id, "shards": shards})
            info = NodeInfo(self.node_id, cluster_id, joined_at=joined_at, shards=shards)
            save_node_info(self.dir, info)
        self._check_identity(info)
        _check_log_layout(self.dir)
        self.info = info
        self.config.shards = info.shards  # the cluster's, whatever this node was told
        self.book.learn(self.node_id, self.addresses)
        self.transport = Transport(
            self.node_id, info.cluster_id, self.config.bind, self.config.raft_port,
            lambda group: self.dir / "raft" / group / "snap",
            {"raft": self.addresses.raft, "client": self.addresses.client},
            self._on_hello,
            PeerHealth(suspect_after=self.config.tick_ms * self.config.election_ticks / 1000),
        )
        self.transport.peer_in_use = self._is_member
        await self.transport.start()
        self.slot_owner = slot_owners(info.shards)
        self.wal = NodeLog(self.dir / "raft" / "wal")
        self.wal.before_sync = self.transport.flush
        for index in range(info.shards):
            name = group_name(index)
            self.groups.append(RaftGroup(
                name, self.config, self.dir, self.transport, self.book, self.wal.view(index),
                self.apply_command, functools.partial(self._removed, name), bootstrap,
                info.joined_at.get(name, 0)))
        for group in self.groups:
            await group.start()
        self.balancer = LeaderBalancer(self.node_id, self.groups, self.config)
        self.balancer.start()
        if joining:
            await self._settle_after_join()

    async def _settle_after_join(self) -> None:
        """A node that just joined serves clients once it is a caught-up voter of
        every group and leads the groups that prefer it: a cluster client that
        sees its port open sees the leaders spread (redis-benchmark --cluster
        wants two masters or more), and its reads do not wait for a catch-up."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            if all(self._settled(index, group) for index, group in enumerate(self.groups)):
                logger.info("caught up in every group")
                return
            await asyncio.sleep(0.05)
        logger.warning("serving before being a caught-up voter of every group "
                    "(still catching up, or the leaders are busy)")

    def _settled(self, index: int, group: RaftGroup) -> bool:
        if self.node_id not in group.members().voters or group.leader_id() is None:
            return False
        if group.applied_index < group.commit_index:
            return False
        return (group.is_leader()
                or preferred_leader(index, group, len(self.groups), self.config) != self.node_id)

    def _is_member(self, node_id: str) -> bool:
        """A member of any of this node's groups (as far as each group knows)."""
        return any(node_id in group.members() for group in self.groups)

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

    def _removed(self, group: str) -> None:
        """Removed from one group; once out of every group, the node is gone."""
        self.removed_from.add(group)
        if len(self.removed_from) < len(self.groups):
            logger.warning("this node was removed from a group", extra={"group": group})
            return
        logger.warning("this node was removed from the cluster; shutting down")
        if self.info is not None:
            self.info.removed = True
            save_node_info(self.dir, self.info)
        if self.on_removed is not None:
            self.on_removed()

    async def _join(self, seed: str) -> tuple[str, int, dict[str, int]]:
        """Ask the cluster (following MOVED) to add us to every group: its cluster id,
        its number of groups, and per group the log index of the change that added us."""
        deadline = time.monotonic() + JOIN_TIMEOUT
        me = self.addresses
        request = [b"CLUSTER", b"JOIN", self.node_id.encode(), me.raft.encode(),
                   me.client.encode()]
        delay = 0.1
        while True:
            reply = await ask(seed, request)
            if not isinstance(reply, RespError):
                words = str(reply if isinstance(reply, str) else reply.decode()).split()
                cluster_id, shards = words[0], int(words[1])
                joined_at = {group_name(i): int(w) for i, w in enumerate(words[2:])}
                logger.info("joined cluster", extra={"cluster": cluster_id, "via": seed,
                                                  "shards": shards, "index": joined_at})
                return cluster_id, shards, joined_at
            if time.monotonic() > deadline:
                raise NodeRefused(f"could not join through {seed}: {reply.text}")
            logger.info("join not done yet: %s", reply.text)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        await asyncio.gather(*(hand_over_leadership(group, "before shutdown")
                               for group in self.groups))
        for group in self.groups:
            await group.stop()
        if self.wal is not None:
            try:
                self.wal.close()
            except (OSError, RuntimeError) as error:
                logger.error("log not closed cleanly (restart replays what is on disk): %s",
                             error)
        if self.transport is not None:
            await self.transport.stop()


def _check_log_layout(directory: Path) -> None:
    """Refuse a dir whose groups each kept their own WAL (raft/<group>/wal, before
    the node's groups shared one): starting without those logs would lose data."""
    old = sorted((directory / "raft").glob("*/wal/*.wal"))
    if old:
        raise NodeRefused(f"{directory} holds a per-group Raft log ({old[0].parent}) from an "
                          "older respkv; this version keeps one log per node in raft/wal. "
                          "Start this node on a fresh dir and let it join, or use the older "
                          "version")


def _check_port_free(host: str, port: int) -> None:
    """Fail before joining rather than after, when the raft port is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise NodeRefused(f"raft port {host}:{port} is not available: {error}") from None
