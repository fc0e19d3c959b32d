"""The cluster as its operators and cluster commands see it: who leads which slots,
who the members are, and the changes that span every group (join, leave,
leadership transfer), each carried out on the group's leader.

A change to every group is proposed here for the groups this node leads, and
forwarded on the client port, following MOVED, to the leaders of the others: a join
as ``CLUSTER JOIN ... GROUP <name>`` (its proof of the join token authenticates it),
a leave as ``CLUSTER RELAY stamp proof LEAVE <node> GROUP <name>`` (a proof made
with the cluster secret), so neither depends on the users and passwords of the
moment. Failures are respkv.replication.outcomes errors; a peer's refusal is a
PeerRefused carrying its reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from respkv.protocol.reply import Reply, RespError
from respkv.raft.confchange import ConfChangeType
from respkv.replication.addresses import Addresses
from respkv.replication.balancer import hand_over_leadership
from respkv.replication.group import RaftGroup
from respkv.replication.health import Health
from respkv.replication.keyring import key_id, parse_secret
from respkv.replication.node import ClusterNode
from respkv.replication.outcomes import (
    MembershipRefused,
    NotLeader,
    PeerRefused,
    ReplicationError,
    Unavailable,
)
from respkv.replication.peerauth import JOIN_REFUSED, change_proof, join_proof
from respkv.replication.rpc import ask
from respkv.replication.saving import Saving
from respkv.replication.slots import key_slot, slot_ranges

logger = logging.getLogger(__name__)

FORWARD_ATTEMPTS = 5  # a forwarded change follows MOVED, or waits out an election
RETRY_PAUSE = 0.2
HAND_OVER_WAIT = 2.0  # seconds a leaving leader waits for its successor to be known
# A forwarded change (CLUSTER PROPOSE) is taken this long after it was made, and once.
PROPOSE_WINDOW_MS = 60_000
# The entries another node may forward to this one to propose: the cluster's users.
FORWARDABLE = frozenset({b"respkv.acl"})
# What CLUSTER RELAY carries: CLUSTER LEAVE of one group (node, GROUP, name).
RELAYED = b"LEAVE"


@dataclass(frozen=True, slots=True)
class Member:
    node_id: str
    addresses: Addresses


@dataclass(frozen=True, slots=True)
class Shard:
    """One group as cluster clients see it: a slot range and its nodes."""

    name: str
    first_slot: int
    last_slot: int
    leader: str | None
    term: int
    applied_index: int  # this node's
    members: tuple[Member, ...]  # those whose addresses are known, the leader first

    @property
    def leader_member(self) -> Member | None:
        """The leader, when it is known and so is its address."""
        first = self.members[0] if self.members else None
        return first if first is not None and first.node_id == self.leader else None


@dataclass(frozen=True, slots=True)
class PeerView:
    """What this node knows of another node's liveness (itself: always up)."""

    health: Health
    link_up: bool  # this node's connection to it is open and it is heard
    last_heard_ms: int  # Unix milliseconds; 0 = never
    silent_for: float | None  # seconds since it was last heard; None = never


class ClusterAdmin:
    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self._proofs_seen: dict[str, int] = {}  # CLUSTER PROPOSE proofs taken, and when
        self.saving = Saving(lambda: self.node.groups)  # SAVE, BGSAVE, LASTSAVE

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @property
    def cluster_id(self) -> str:
        return self.node.info.cluster_id if self.node.info else ""

    @property
    def groups(self) -> list[RaftGroup]:
        return self.node.groups

    # -- the view --------------------------------------------------------------

    def shards(self) -> list[Shard]:
        groups = self.node.groups
        return [self._shard(group, first, last)
                for group, (first, last) in zip(groups, slot_ranges(len(groups)), strict=True)]

    def _shard(self, group: RaftGroup, first: int, last: int) -> Shard:
        conf = group.members()
        lead = group.leader_id()
        nodes = sorted((*conf.voters, *conf.learners), key=lambda n: (n != lead, n))
        book = self.node.book
        members = tuple(Member(node, addresses) for node in nodes
                        if (addresses := book.get(node)) is not None)
        return Shard(group.name, first, last, lead, group.term, group.applied_index, members)

    def peer(self, node_id: str) -> PeerView:
        transport = self.node.transport
        if node_id == self.node_id or transport is None:
            return PeerView(Health.UP, True, int(time.time() * 1000), 0.0)
        health = transport.health
        heard = node_id in health.heard
        return PeerView(health.of(node_id), transport.link_up(node_id),
                        health.last_heard_unix_ms(node_id),
                        health.silent_for(node_id) if heard else None)

    def pings(self) -> tuple[int, int]:
        """Liveness pings sent to and received from peers since this node started."""
        transport = self.node.transport
        if transport is None:
            return 0, 0
        return transport.health.pings_sent, transport.health.pings_received

    def follower_matches(self, shard: Shard) -> dict[str, int]:
        """On the group's leader: each other member's highest matching log index."""
        return self._group(shard.name).follower_matches()

    def connected_replicas(self, shard: Shard) -> list[tuple[Member, int, PeerView]]:
        """On the group's leader: its other members that are heard, each with its
        matching log index (the replication offset ROLE and INFO report)."""
        matches = self.follower_matches(shard)
        found = []
        for member in shard.members:
            if member.node_id == self.node_id:
                continue
            peer = self.peer(member.node_id)
            if peer.health is Health.UP:  # Redis lists the replicas connected to it
                found.append((member, matches.get(member.node_id, 0), peer))
        return found

    def leads_any(self) -> bool:
        """Leads a group: Redis Cluster calls such a node a master."""
        return any(group.is_leader() for group in self.node.groups)

    def shown_shard(self) -> Shard:
        """The group ROLE and INFO replication describe: the first this node leads
        (a master), else the first group (a replica of its leader)."""
        shards = self.shards()
        return next((s for s in shards if s.leader == self.node_id), shards[0])

    def leader_address(self, shard: Shard) -> str | None:
        group = self._group(shard.name)
        return group.leader_client_address()

    def keys_in_slot(self, slot: int) -> Iterator[bytes]:
        group = self.node.group_of_slot(slot)
        return (key for key in group.keyspace.data if key_slot(key) == slot)

    def replicas_in_sync(self) -> int:
        """WAIT's answer: the followers holding every entry of each group led here."""
        return min((group.in_sync_followers() for group in self.node.groups
                    if group.is_leader()), default=0)

    def has_group(self, name: str) -> bool:
        return any(group.name == name for group in self.node.groups)

    def slow_disk(self, seconds: float) -> None:
        """Every fsync of the log takes this much longer (DEBUG FSYNC-DELAY)."""
        if self.node.wal is not None:
            self.node.wal.slow_down(seconds)

    def _group(self, name: str) -> RaftGroup:
        for group in self.node.groups:
            if group.name == name:
                return group
        raise MembershipRefused(f"unknown group {name}")

    # -- leadership ------------------------------------------------------------------

    def transfer(self, target: str, group_name: str | None = None) -> None:
        """Hand leadership of a group (default: of every group led here) to ``target``."""
        if group_name is not None:
            groups = [self._group(group_name)]
            self._must_lead(groups[0])
        else:
            groups = [g for g in self.node.groups if g.is_leader()]
            if not groups:
                self._must_lead(self.node.groups[0])
        for group in groups:
            try:
                group.transfer_leadership(target)
            except ValueError as error:
                raise MembershipRefused(str(error)) from None

    @staticmethod
    def _must_lead(group: RaftGroup) -> None:
        if not group.is_leader():
            raise NotLeader(group.leader_client_address())

    # -- joining ---------------------------------------------------------------------

    def join_token(self) -> str:
        """CLUSTER TOKEN: what a new member needs to join (it holds the secret)."""
        return self.node.join_token()

    async def join(self, node_id: str, addresses: Addresses, proof: str,
                   group_name: str | None = None) -> bytes:
        """Add a node as a learner of every group (or of one, on its leader):
        ``<cluster-id> <shards> <index>...`` with per group the log index of the
        change that added it (0 when it already was a member); for one group,
        ``<cluster-id> <index>``. ``proof`` shows the node holds the join token."""
        if not self.node.keyring.proves(lambda secret: join_proof(
                secret, self.cluster_id, node_id, addresses.raft, addresses.client,
                addresses.tls), proof):
            logger.warning("refused a join without the cluster's token",
                           extra={"node": node_id, "raft": addresses.raft})
            raise MembershipRefused(
                f"{JOIN_REFUSED[4:]}: the join token is not this cluster's, or its secret "
                "is no longer accepted (the cluster secret was rotated): start the node "
                "with the --join-token CLUSTER TOKEN prints now")
        if group_name is not None:
            group = self._group(group_name)
            self._must_lead(group)
            return await self._add_learner(group, node_id, addresses)
        request = [b"CLUSTER", b"JOIN", node_id.encode(), addresses.raft.encode(),
                   addresses.client.encode(), proof.encode()]
        if addresses.tls:
            request += [b"TLS", addresses.tls.encode()]
        indexes = []
        for group in self.node.groups:
            reply = await self._on_leader(
                group, lambda g=group: self._add_learner(g, node_id, addresses),
                [*request, b"GROUP", group.name.encode()])
            indexes.append(bytes(reply).split()[-1])
        return b" ".join([self.cluster_id.encode(), b"%d" % len(self.node.groups), *indexes])

    async def _add_learner(self, group: RaftGroup, node_id: str, addresses: Addresses) -> bytes:
        cluster_id = self.cluster_id.encode()
        members = group.members()
        if node_id in members.voters:
            # Only a node that lost its data asks to join as a voter it still is: taken
            # back, it would vote with an empty log and could elect a leader missing
            # writes a quorum acknowledged through it.
            logger.warning("refused a join under a voter's id", extra={"node": node_id,
                                                                      "group": group.name})
            raise MembershipRefused(  # a join refused: the joiner stops, it does not retry
                f"{JOIN_REFUSED[4:]}: node {node_id} is still a voter of {group.name}: a "
                "member that lost its "
                f"data cannot rejoin as itself. Replace it: CLUSTER LEAVE {node_id} on any "
                "member, then start it again on an empty dir with --join")
        if node_id in members.learners:  # a join retried before the node kept its state
            if self.node.book.get(node_id) == addresses:
                return cluster_id + b" 0"
            raise MembershipRefused(f"node {node_id} is already a member with other addresses")
        index = await group.change_membership(ConfChangeType.ADD_LEARNER, node_id, addresses)
        return cluster_id + b" %d" % index  # the joiner ignores older removals of its id

    # -- the cluster secret: this node's keyring (respkv.replication.keyring) --------

    def secret_add(self, hex_secret: str) -> str:
        """CLUSTER SECRET ADD: accept this secret too; its id. KeyringError if refused."""
        secret = parse_secret(hex_secret)
        self.node.keyring.add(secret)
        logger.info("cluster secret added", extra={"id": key_id(secret)})
        return key_id(secret)

    def secret_use(self, wanted: str) -> None:
        """CLUSTER SECRET USE: prove with this accepted secret from now on."""
        self.node.keyring.use(wanted)
        logger.info("cluster secret in use", extra={"id": self.node.keyring.current_id})

    def secret_drop(self, wanted: str) -> None:
        """CLUSTER SECRET DROP: stop accepting it (never the current one)."""
        self.node.keyring.drop(wanted)
        logger.info("cluster secret dropped", extra={"id": wanted.lower()})

    def secret_status(self) -> list[tuple[str, bool]]:
        """(id, is current) of every secret this node accepts, the current one first."""
        return self.node.keyring.status()

    # -- leaving -------------------------------------------------------------------

    async def leave(self, node_id: str, group_name: str | None = None) -> None:
        """Remove a node from every group (or from one, on its leader; a leader that
        leaves hands over first and sends the caller to its successor)."""
        if group_name is not None:
            group = self._group(group_name)
            self._must_lead(group)
            await self._remove(group, node_id)
            return
        if not any(node_id in g.members() for g in self.node.groups):
            raise MembershipRefused(f"node {node_id} is not a member")
        for group in self.node.groups:
            await self._on_leader(group, lambda g=group: self._remove(g, node_id),
                                  [b"CLUSTER", b"LEAVE", node_id.encode(), b"GROUP",
                                   group.name.encode()])

    async def _remove(self, group: RaftGroup, node_id: str) -> bytes:
        if node_id not in group.members():
            return b"OK"  # already out of this group
        if node_id == self.node_id:  # the leader leaving: hand over, send the caller on
            await hand_over_leadership(group, "before leaving")
            deadline = asyncio.get_running_loop().time() + HAND_OVER_WAIT
            while asyncio.get_running_loop().time() < deadline:
                address = group.leader_client_address()
                if not group.is_leader() and address is not None:
                    raise NotLeader(address)
                await asyncio.sleep(0.02)
            raise Unavailable("could not hand over leadership; retry")
        await group.change_membership(ConfChangeType.REMOVE, node_id, None)
        return b"OK"

    # -- what every node enforces --------------------------------------------------

    async def propose_everywhere(self, change: list[bytes]) -> Reply:
        """An entry that concerns the whole cluster (its users), proposed to the first
        group: here if this node leads it, else sent to its leader (CLUSTER PROPOSE,
        following MOVED) with a proof made with the cluster secret. Its applied reply,
        or the leader's refusal as a RespError."""
        group = self.node.groups[0]
        last: ReplicationError = NotLeader(None)
        for _ in range(FORWARD_ATTEMPTS):
            try:
                if group.is_leader():
                    return await group.propose(change)
                target = group.leader_client_address()
                if target is not None:
                    stamp = b"%d" % int(time.time() * 1000)
                    proof = change_proof(self.node.secret, self.cluster_id, stamp, change)
                    return await self._ask(target, [b"CLUSTER", b"PROPOSE", stamp,
                                                    proof.encode(), *change])
            except ReplicationError as error:  # lost the lead meanwhile, an election
                last = error
            await asyncio.sleep(RETRY_PAUSE)
        raise last

    async def propose_forwarded(self, stamp: bytes, proof: bytes,
                                change: list[bytes]) -> Reply:
        """CLUSTER PROPOSE: a change another node forwards, taken if its proof holds,
        it is recent and new, and this node leads the first group."""
        if not change or change[0] not in FORWARDABLE:
            raise MembershipRefused("this change cannot be forwarded")
        group = self.node.groups[0]
        self._must_lead(group)
        self._take_proof(stamp, proof, change)
        return await group.propose(change)

    async def relay(self, stamp: bytes, proof: bytes, request: list[bytes]) -> Reply:
        """CLUSTER RELAY: a CLUSTER LEAVE of one group another node sends on to this
        group's leader, taken if its proof is valid, recent and new."""
        if len(request) != 4 or request[0].upper() != RELAYED or request[2].upper() != b"GROUP":
            raise MembershipRefused("this request cannot be relayed")
        node_id, name = request[1].decode("utf-8", "replace"), request[3].decode("utf-8",
                                                                              "replace")
        group = self._group(name)
        self._must_lead(group)
        self._take_proof(stamp, proof, request)
        await self._remove(group, node_id)
        return b"OK"

    def _take_proof(self, stamp: bytes, proof: bytes, change: list[bytes]) -> None:
        """Refuse (MembershipRefused) unless ``proof`` is this cluster's for ``change``
        at ``stamp``, the stamp is within the window and the proof was never taken."""
        try:
            made = int(stamp)
        except ValueError:
            raise MembershipRefused("bad time stamp") from None
        now = int(time.time() * 1000)
        given = proof.decode("ascii", "replace")
        seen = self._proofs_seen
        for old in [p for p, at in seen.items() if at < now - 2 * PROPOSE_WINDOW_MS]:
            del seen[old]
        if not self.node.keyring.proves(
                lambda secret: change_proof(secret, self.cluster_id, stamp, change), given) \
                or abs(now - made) > PROPOSE_WINDOW_MS or given in seen:
            logger.warning("refused a forwarded change without a fresh proof")
            raise MembershipRefused("forwarded change refused: no valid, fresh proof")
        seen[given] = now

    # -- on each group's leader -------------------------------------------------------

    async def _on_leader(self, group: RaftGroup, local: Callable[[], Awaitable[Reply]],
                         forward: list[bytes]) -> Reply:
        """Run ``local`` if this node leads ``group``, else send ``forward`` to the
        leader; follow a hand-over and wait out elections, a few times."""
        last: ReplicationError = NotLeader(None)
        for _ in range(FORWARD_ATTEMPTS):
            try:
                if group.is_leader():
                    return await local()
                target = group.leader_client_address()
                if target is not None:
                    return await self._forward(target, forward)
            except NotLeader as moved:  # this node handed over meanwhile
                last = moved
                if moved.leader is not None:
                    try:
                        return await self._forward(moved.leader, forward)
                    except ReplicationError as error:
                        last = error
            except ReplicationError as error:
                last = error
            await asyncio.sleep(RETRY_PAUSE)
        raise last

    async def _ask(self, address: str, args: list[bytes]) -> Reply:
        """``args`` on the node whose client address is ``address``: on its TLS port,
        over TLS, under tls-replication."""
        tls = self.node.rpc_tls
        if tls is not None:
            address = self.node.book.tls_of(address) or address
        return await ask(address, args, tls=tls)

    async def _forward(self, address: str, args: list[bytes]) -> bytes:
        """``args`` on that node: a CLUSTER JOIN as it is, a CLUSTER LEAVE as a CLUSTER
        RELAY signed now (a proof is taken once: each attempt makes its own)."""
        if args[1] == b"LEAVE":
            stamp = b"%d" % int(time.time() * 1000)
            body = args[1:]
            args = [b"CLUSTER", b"RELAY", stamp,
                    change_proof(self.node.secret, self.cluster_id, stamp, body).encode(),
                    *body]
        reply = await self._ask(address, args)
        if isinstance(reply, RespError):
            raise PeerRefused(reply.text)
        return reply if isinstance(reply, bytes) else str(reply).encode()
