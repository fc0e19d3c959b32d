"""A cluster member: identity, joining, the transport and the Raft group(s).

First start on an empty dir without --join: bootstrap a one-node cluster with
a new cluster id and secret (or those of --join-token) and ``shards`` Raft groups.
With --join host:port and --join-token: ask that member to add us to every group
(``CLUSTER JOIN`` with a proof that we hold the token, following MOVED), store the
secret, the cluster id and group count it answers with, then wait for each group's
leader to send the log or a snapshot. Every node is a member of every group; the
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
from respkv.replication.addresses import AddressBook, Addresses, split_address
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
from respkv.replication.keyring import Keyring, create_keyring, key_id, load_keyring
from respkv.replication.peerauth import (
    JOIN_REFUSED,
    SECRET_FILE,
    TokenError,
    join_proof,
    join_token,
    new_secret,
    parse_token,
)
from respkv.replication.rpc import ask
from respkv.replication.slots import group_name, slot_owners
from respkv.replication.transport import Transport
from respkv.state.machine import ApplyCommand
from respkv.storage.nodelog import NodeLog

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 60.0
SETTLE_TIMEOUT = 15.0  # a new member serves clients after this long even if not settled
# A node told of a cluster (its token) but given an empty dir and no --join: a first
# node's first start, or a member whose dir was lost, which must not bootstrap a copy
# of the cluster. Only the operator knows which, so the first needs --bootstrap.
_BOOTSTRAP_OR_JOIN = (
    "{dir} is empty and --join-token names a cluster, without --join or --bootstrap. "
    "If this is the first start of that cluster's first node, add --bootstrap. If node "
    "{node} was a member whose data was lost, do not bootstrap: replace it (CLUSTER LEAVE "
    "{node} on a member, then start it on an empty dir with --join <member> and "
    "--join-token; README: 'Replacing a node that lost its data')")


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
        # the cluster's secrets (respkv.replication.keyring), once started
        self.keyring = Keyring(b"")
        self.on_removed: Callable[[], None] | None = None
        self.bootstrapped_with_token = False
        self.balancer: LeaderBalancer | None = None
        self.wal: NodeLog | None = None  # the WAL all groups share
        # built here, so that a certificate that cannot be loaded fails the start at once
        files = config.tls_files
        self.raft_tls = files.peer_contexts() if config.tls_cluster else None
        self.rpc_tls = files.client_context() if config.tls_replication else None

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def addresses(self) -> Addresses:
        config = self.config
        return Addresses(config.raft_address, config.client_address, config.tls_client_address)

    @property
    def secret(self) -> bytes:
        """The secret this node proves with (its keyring's current one); a proof it is
        given is checked against every secret it accepts (``keyring.proves``)."""
        return self.keyring.current

    def group_of_slot(self, slot: int) -> RaftGroup:
        return self.groups[self.slot_owner[slot]]

    async def start(self) -> None:
        if self.config.bootstrap and self.config.join:
            raise NodeRefused("--bootstrap starts a new cluster and --join joins one: "
                              "give one of them")
        if self.config.faults:
            logger.warning("UNSAFE TEST FAULTS ON: %s", self.config.faults.describe())
        info = load_node_info(self.dir)
        bootstrap = None
        joining = info is None and bool(self.config.join)
        if info is None:
            _check_port_free(self.config.raft_bind, self.config.raft_port)
            token = self._token()
            if self.config.join:
                if token is None:
                    raise NodeRefused("joining needs the cluster's join token: --join-token "
                                      "(CLUSTER TOKEN on any member prints it)")
                cluster_id, shards, joined_at = await self._join(self.config.join, *token)
                secret = token[1]
            else:
                if token is not None and not self.config.bootstrap:
                    raise NodeRefused(_BOOTSTRAP_OR_JOIN.format(dir=self.dir, node=self.node_id))
                cluster_id, secret = token or (new_cluster_id(), new_secret())
                shards, joined_at = self.config.shards, {}
                bootstrap = self.addresses
                # the token names a cluster that may run already: see _on_hello
                self.bootstrapped_with_token = token is not None
                logger.info("bootstrapping a new cluster",
                            extra={"cluster": cluster_id, "shards": shards})
                if token is None:
                    logger.info("new members join with --join-token %s (CLUSTER TOKEN "
                                "prints it again)", join_token(cluster_id, secret))
            create_keyring(self.dir, secret)  # before node.json: a member always has it
            info = NodeInfo(self.node_id, cluster_id, joined_at=joined_at, shards=shards)
            save_node_info(self.dir, info)
        self._check_identity(info)
        _check_log_layout(self.dir)
        self.keyring = self._stored_keyring(info)
        self.info = info
        self.config.shards = info.shards  # the cluster's, whatever this node was told
        self.book.learn(self.node_id, self.addresses)
        self.transport = Transport(
            self.node_id, info.cluster_id, self.keyring, self.config.raft_bind,
            self.config.raft_port,
            lambda group: self.dir / "raft" / group / "snap",
            self.addresses.to_dict(),
            self._on_hello,
            PeerHealth(suspect_after=self.config.tick_ms * self.config.election_ticks / 1000),
            tls=self.raft_tls,
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
        if self.bootstrapped_with_token:
            for group in self.groups:
                group.on_stranger = self._stranger_ahead
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
        """A peer proved itself and said where it listens. The address book learns
        addresses from the log and snapshots only, so that a peer cannot redirect
        traffic or MOVED replies meant for another node by what it says of itself;
        but a node that just joined (a group of it has no members yet: neither log
        nor snapshot has reached it) and has no address for the peer at all dials
        back there, so it can answer the leader that is about to teach it."""
        raft = fields.get("raft")
        if (self.transport is None or not isinstance(raft, str)
                or self.book.get(node_id) is not None or node_id in self.transport.peers):
            return
        if self.groups and all(group.members().voters or group.members().learners
                               for group in self.groups):
            return  # a member of every group: the log names whoever it must talk to
        try:
            split_address(raft)
        except ValueError:
            return
        self.transport.set_peer(node_id, raft)

    def _stranger_ahead(self, peer: str) -> bool:
        """This node bootstrapped its token's cluster on an empty dir, has added no one,
        and a peer it knows nothing of sent a Raft message about a log longer than its
        own: the cluster runs elsewhere, and this node is a copy of one of its members
        on a wiped dir (the old command line of its first node, say). It stops and
        stays stopped, before it takes more writes of its own."""
        for group in self.groups:
            group.on_stranger = None
        if any(group.members().voters != (self.node_id,) or group.members().learners
               for group in self.groups):
            return False  # it has members: a cluster of its own, whoever the stranger is
        logger.error("node %s of cluster %s, whose log is ahead of this node's, sent it a "
                     "message: this node has just bootstrapped that cluster on an empty "
                     "dir, the cluster already runs, and this dir was likely wiped. "
                     "Stopping. Replace the node: CLUSTER LEAVE %s on a member, then start "
                     "it on an empty dir with --join and --join-token", peer,
                     self.info.cluster_id if self.info else "?", self.node_id)
        if self.info is not None:
            self.info.removed = True  # a restart on this dir is refused too
            save_node_info(self.dir, self.info)
        if self.on_removed is not None:
            self.on_removed()
        return True

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

    def _token(self) -> tuple[str, bytes] | None:
        if not self.config.join_token:
            return None
        try:
            return parse_token(self.config.join_token)
        except TokenError as error:
            raise NodeRefused(f"--join-token: {error}") from None

    def _stored_keyring(self, info: NodeInfo) -> Keyring:
        try:
            keyring = load_keyring(self.dir)
        except TokenError as error:
            raise NodeRefused(str(error)) from None
        if keyring is None:
            raise NodeRefused(f"{self.dir} has no {SECRET_FILE} (made by an earlier respkv?): "
                              "start this node on a fresh dir and let it join")
        token = self._token()
        if token is not None and token[0] != info.cluster_id:
            raise NodeRefused("--join-token is not this node's cluster's (CLUSTER TOKEN on "
                              "a member prints the right one)")
        if token is not None and token[1] not in keyring.accepted:
            # the same command line as before a rotation: the dir's keyring wins
            logger.info("--join-token's secret is no longer accepted here (the cluster "
                        "secret was rotated); using the keyring in %s", self.dir,
                        extra={"current": key_id(keyring.current)})
        return keyring

    def join_token(self) -> str:
        assert self.info is not None
        return join_token(self.info.cluster_id, self.secret)

    async def _join(self, seed: str, cluster_id: str,
                    secret: bytes) -> tuple[str, int, dict[str, int]]:
        """Ask the cluster (following MOVED) to add us to every group: its cluster id,
        its number of groups, and per group the log index of the change that added us."""
        deadline = time.monotonic() + JOIN_TIMEOUT
        me = self.addresses
        proof = join_proof(secret, cluster_id, self.node_id, me.raft, me.client, me.tls)
        request = [b"CLUSTER", b"JOIN", self.node_id.encode(), me.raft.encode(),
                   me.client.encode(), proof.encode()]
        if me.tls:
            request += [b"TLS", me.tls.encode()]
        delay = 0.1
        while True:
            reply = await ask(seed, request, tls=self.rpc_tls)
            if not isinstance(reply, RespError):
                words = str(reply if isinstance(reply, str) else reply.decode()).split()
                if words[0] != cluster_id:
                    raise NodeRefused(f"{seed} is in cluster {words[0]}, not the join "
                                      f"token's {cluster_id}")
                shards = int(words[1])
                joined_at = {group_name(i): int(w) for i, w in enumerate(words[2:])}
                logger.info("joined cluster", extra={"cluster": cluster_id, "via": seed,
                                                  "shards": shards, "index": joined_at})
                return cluster_id, shards, joined_at
            if reply.text.startswith(JOIN_REFUSED) or time.monotonic() > deadline:
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
