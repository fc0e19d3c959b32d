"""Redis Cluster's view of a Raft cluster: CLUSTER ..., READONLY, READWRITE, ASKING, ROLE.

Each Raft group owns a range of slots; its leader is their master and the other
members its replicas (CLUSTER SLOTS and SHARDS, one entry per group). CLUSTER
NODES has one line per node, as Redis': a node leading groups is a master with
their slots, one leading none a replica of the first group's leader. Node ids
are the 40-hex ids cluster clients expect, derived from respkv's node ids.

CLUSTER JOIN and LEAVE change every group: this node proposes the change in
the groups it leads and forwards it (``... GROUP <name>``) to the others' leaders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from respkv.commands import errors
from respkv.commands.args import parse_int
from respkv.commands.connection import subcommand
from respkv.commands.errors import CLUSTERDOWN
from respkv.commands.table import Kind, command
from respkv.protocol.reply import OK, Reply, RespError, Simple, Verbatim
from respkv.raft.confchange import ConfChangeType
from respkv.replication.membership import Addresses, cluster_node_id
from respkv.replication.rpc import ask
from respkv.replication.slots import SLOTS, key_slot, slot_ranges
from respkv.replication.transport import split_address

if TYPE_CHECKING:
    from respkv.replication.group import RaftGroup
    from respkv.server.client import Client

FORWARD_ATTEMPTS = 5  # a forwarded change follows MOVED, or waits out an election


def _groups(client: Client) -> list[RaftGroup]:
    return client.server.groups


def _members(group: RaftGroup) -> list[tuple[str, str, int, Addresses]]:
    """(node id, client host, client port, addresses) of every member whose
    addresses are known, the leader first."""
    conf = group.members()
    nodes = [*conf.voters, *conf.learners]
    lead = group.leader_id()
    nodes.sort(key=lambda n: (n != lead, n))
    members = []
    for node in nodes:
        addresses = group.book.get(node)
        if addresses is not None:
            members.append((node, *split_address(addresses.client), addresses))
    return members


def _all_members(groups: list[RaftGroup]) -> dict[str, tuple[str, int, Addresses]]:
    """Every node of any group: id -> (client host, client port, addresses), sorted."""
    found = {}
    for group in groups:
        for node, host, port, addresses in _members(group):
            found[node] = (host, port, addresses)
    return dict(sorted(found.items()))


def _led_ranges(groups: list[RaftGroup], node: str) -> list[tuple[int, int]]:
    """The slot ranges of the groups ``node`` leads, contiguous ones merged."""
    merged: list[tuple[int, int]] = []
    for group, (first, last) in zip(groups, slot_ranges(len(groups)), strict=True):
        if group.leader_id() != node:
            continue
        if merged and merged[-1][1] + 1 == first:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def _first_leader(groups: list[RaftGroup]) -> str | None:
    return next((g.leader_id() for g in groups if g.leader_id()), None)


def _max_term(groups: list[RaftGroup]) -> int:
    return max(group.term for group in groups)


@command("cluster", -2, Kind.SERVER, group="cluster", since="3.0.0")
def cluster(client: Client, args: list[bytes]) -> Reply:
    return subcommand(client, args)


def _sub(name: str, arity: int):
    return command(name, arity, Kind.SERVER, group="cluster", parent="cluster")


@_sub("myid", 2)
def cluster_myid(client: Client, args: list[bytes]) -> Reply:
    return cluster_node_id(client.server.config.node_id)


@_sub("keyslot", 3)
def cluster_keyslot(client: Client, args: list[bytes]) -> Reply:
    return key_slot(args[2])


def _slot_keys(client: Client, slot: int):
    group = client.server.node.group_of_slot(slot)
    return (key for key in group.keyspace.data if key_slot(key) == slot)


@_sub("countkeysinslot", 3)
def cluster_countkeysinslot(client: Client, args: list[bytes]) -> Reply:
    return sum(1 for _ in _slot_keys(client, _slot_arg(args[2])))


@_sub("getkeysinslot", 4)
def cluster_getkeysinslot(client: Client, args: list[bytes]) -> Reply:
    slot = _slot_arg(args[2])
    count = parse_int(args[3])
    if count < 0:
        raise RespError("ERR Invalid number of keys")
    found = []
    for key in _slot_keys(client, slot):
        if len(found) >= count:
            break
        found.append(key)
    return found


def _slot_arg(raw: bytes) -> int:
    slot = parse_int(raw, RespError("ERR Invalid slot"))
    if not 0 <= slot < SLOTS:
        raise RespError("ERR Invalid slot")
    return slot


@_sub("info", 2)
def cluster_info(client: Client, args: list[bytes]) -> Reply:
    groups = _groups(client)
    ranges = slot_ranges(len(groups))
    slots_ok = sum(last - first + 1 for group, (first, last) in zip(groups, ranges, strict=True)
                   if group.leader_id() is not None)
    leaders = {group.leader_id() for group in groups} - {None}
    me = client.server.config.node_id
    fields = {
        "cluster_state": "ok" if slots_ok == SLOTS else "fail",
        "cluster_slots_assigned": SLOTS,
        "cluster_slots_ok": slots_ok,
        "cluster_slots_pfail": 0,
        "cluster_slots_fail": SLOTS - slots_ok,
        "cluster_known_nodes": len(_all_members(groups)),
        "cluster_size": len(leaders),
        "cluster_current_epoch": _max_term(groups),
        "cluster_my_epoch": max((g.term for g in groups if g.leader_id() == me), default=0),
        "cluster_stats_messages_sent": 0,
        "cluster_stats_messages_received": 0,
        "total_cluster_links_buffer_limit_exceeded": 0,
    }
    return Verbatim("".join(f"{k}:{v}\r\n" for k, v in fields.items()))


@_sub("slots", 2)
def cluster_slots(client: Client, args: list[bytes]) -> Reply:
    """One entry per group: its leader, then its members that lead no group. A node
    is a master or a replica, as in Redis Cluster: cluster clients (redis-py) give
    a node the role of its first appearance, so a master listed as another range's
    replica would lose its master role there."""
    groups = _groups(client)
    leaders = {group.leader_id() for group in groups}
    entries = []
    for group, (first, last) in zip(groups, slot_ranges(len(groups)), strict=True):
        lead = group.leader_id()
        if lead is None:
            continue
        entry: list = [first, last]
        for node, host, port, _ in _members(group):
            if node == lead or node not in leaders:
                entry.append([host, port, cluster_node_id(node), []])
        entries.append(entry)
    return entries


@_sub("shards", 2)
def cluster_shards(client: Client, args: list[bytes]) -> Reply:
    groups = _groups(client)
    shards = []
    for group, (first, last) in zip(groups, slot_ranges(len(groups)), strict=True):
        lead = group.leader_id()
        nodes = []
        for node, host, port, _ in _members(group):
            nodes.append({
                "id": cluster_node_id(node),
                "port": port,
                "ip": host,
                "endpoint": host,
                "role": "master" if node == lead else "replica",
                "replication-offset": group.applied_index if node == group.node_id else 0,
                "health": "online",
            })
        shards.append({"slots": [first, last], "nodes": nodes})
    return shards


@_sub("nodes", 2)
def cluster_nodes(client: Client, args: list[bytes]) -> Reply:
    return Verbatim("".join(line + "\n" for line in _node_lines(client)))


def _node_lines(client: Client) -> list[str]:
    groups = _groups(client)
    me = client.server.config.node_id
    first = _first_leader(groups)
    first_hex = cluster_node_id(first) if first else "-"
    epoch = _max_term(groups)
    now = int(time.time() * 1000)
    lines = []
    for node, (host, port, addresses) in _all_members(groups).items():
        _, raft_port = split_address(addresses.raft)
        ranges = _led_ranges(groups, node)
        flags = ["myself"] if node == me else []
        flags.append("master" if ranges else "slave")
        master = "-" if ranges else first_hex
        slots = "".join(f" {a}-{b}" if a != b else f" {a}" for a, b in ranges)
        lines.append(f"{cluster_node_id(node)} {host}:{port}@{raft_port} {','.join(flags)} "
                     f"{master} 0 {now} {epoch} connected{slots}")
    return lines


@_sub("replicas", 3)
def cluster_replicas(client: Client, args: list[bytes]) -> Reply:
    wanted = args[2].decode("latin-1")
    lines = _node_lines(client)
    if not any(line.startswith(wanted + " ") and " master " in line for line in lines):
        raise RespError(f"ERR Unknown node {args[2].decode('utf-8', 'replace')}")
    return [line + "\n" for line in lines if f" slave {wanted} " in line]


@_sub("slaves", 3)
def cluster_slaves(client: Client, args: list[bytes]) -> Reply:
    return cluster_replicas(client, args)


# -- membership: every group changes, each on its leader -------------------------


def _group_option(client: Client, args: list[bytes], fixed: int) -> RaftGroup | None:
    """The group named by a trailing ``GROUP <name>``, or None without one."""
    if len(args) == fixed:
        return None
    if len(args) != fixed + 2 or args[fixed].upper() != b"GROUP":
        raise errors.SYNTAX
    return _group_named(client, args[fixed + 1])


def _group_named(client: Client, raw: bytes) -> RaftGroup:
    name = raw.decode("utf-8", "replace")
    for group in _groups(client):
        if group.name == name:
            return group
    raise RespError(f"ERR unknown group {name}")


async def _on_leader(group: RaftGroup, local: Callable[[], Awaitable[Reply]],
                     forward: list[bytes]) -> Reply:
    """Run ``local`` if this node leads ``group``, else send ``forward`` to the leader;
    follow MOVED (also from ``local``: a leader that handed over) and wait out
    elections, a few times; the last reply."""
    reply: Reply = CLUSTERDOWN
    for _ in range(FORWARD_ATTEMPTS):
        if group.is_leader():
            reply = await local()
            if isinstance(reply, RespError) and reply.text.startswith("MOVED"):
                reply = await ask(reply.text.split()[-1], forward)
        else:
            target = group.leader_client_address()
            if target is not None:
                reply = await ask(target, forward)
        if not isinstance(reply, RespError):
            return reply
        await asyncio.sleep(0.2)
    return reply


@_sub("join", -5)
def cluster_join(client: Client, args: list[bytes]) -> Reply:
    """CLUSTER JOIN node-id raft-host:port client-host:port -> "<cluster-id> <shards>
    <index>...", per group the log index of the change that added the node (0 when
    it already was a member). With GROUP <name>: that group only, on its leader,
    answering "<cluster-id> <index>"."""
    node_id = args[2].decode("utf-8", "replace")
    addresses = Addresses(args[3].decode(), args[4].decode())
    for address in (addresses.raft, addresses.client):
        try:
            split_address(address)
        except ValueError:
            raise RespError(f"ERR invalid address '{address}'") from None
    cluster_id = client.server.node.info.cluster_id.encode()
    only = _group_option(client, args, 5)
    if only is not None:
        redirect = _leader_redirect(only)
        return redirect or _add_learner(only, node_id, addresses, cluster_id)
    return _join_every_group(client, args[:5], node_id, addresses, cluster_id)


async def _join_every_group(client: Client, args: list[bytes], node_id: str,
                            addresses: Addresses, cluster_id: bytes) -> Reply:
    groups = _groups(client)
    indexes = []
    for group in groups:
        reply = await _on_leader(
            group, lambda g=group: _add_learner(g, node_id, addresses, cluster_id),
            [*args, b"GROUP", group.name.encode()])
        if isinstance(reply, RespError):
            return reply
        indexes.append(bytes(reply).split()[-1])
    return b" ".join([cluster_id, b"%d" % len(groups), *indexes])


async def _add_learner(group: RaftGroup, node_id: str, addresses: Addresses,
                       cluster_id: bytes) -> Reply:
    if node_id in group.members():
        if group.book.get(node_id) == addresses:
            return cluster_id + b" 0"
        return RespError(f"ERR node {node_id} is already a member with other addresses")
    index = await group.change_membership(ConfChangeType.ADD_LEARNER, node_id, addresses)
    if isinstance(index, RespError):
        return index
    return cluster_id + b" %d" % index  # the joiner ignores older removals of its id


@_sub("leave", -3)
def cluster_leave(client: Client, args: list[bytes]) -> Reply:
    """CLUSTER LEAVE node-id: out of every group. With GROUP <name>: that group only,
    on its leader (a leader leaving hands over first and answers MOVED)."""
    node_id = args[2].decode("utf-8", "replace")
    only = _group_option(client, args, 3)
    if only is not None:
        redirect = _leader_redirect(only)
        return redirect or _remove(client, only, node_id)
    groups = _groups(client)
    if not any(node_id in g.members() for g in groups):
        raise RespError(f"ERR node {node_id} is not a member")
    return _leave_every_group(client, args[:3], node_id)


async def _leave_every_group(client: Client, args: list[bytes], node_id: str) -> Reply:
    for group in _groups(client):
        reply = await _on_leader(group, lambda g=group: _remove(client, g, node_id),
                                 [*args, b"GROUP", group.name.encode()])
        if isinstance(reply, RespError):
            return reply
    return OK


async def _remove(client: Client, group: RaftGroup, node_id: str) -> Reply:
    if node_id not in group.members():
        return OK  # already out of this group
    if node_id == group.node_id:  # the leader leaving: hand over, send the caller on
        await client.server.node.hand_over_leadership(group, "before leaving")
        for _ in range(100):
            address = group.leader_client_address()
            if not group.is_leader() and address is not None:
                return RespError(f"MOVED 0 {address}")
            await asyncio.sleep(0.02)
        return RespError("TRYAGAIN could not hand over leadership; retry")
    index = await group.change_membership(ConfChangeType.REMOVE, node_id, None)
    return index if isinstance(index, RespError) else OK


def _leader_redirect(group: RaftGroup) -> RespError | None:
    if group.is_leader():
        return None
    address = group.leader_client_address()
    return RespError(f"MOVED 0 {address}") if address else CLUSTERDOWN


@_sub("help", 2)
def cluster_help(client: Client, args: list[bytes]) -> Reply:
    return [Simple(s) for s in (
        "CLUSTER <subcommand> [<arg> ...]. Subcommands are:",
        "INFO", "MYID", "NODES", "SLOTS", "SHARDS", "REPLICAS <node-id>", "KEYSLOT <key>",
        "COUNTKEYSINSLOT <slot>", "GETKEYSINSLOT <slot> <count>",
        "JOIN <node-id> <raft-host:port> <client-host:port> [GROUP <group>]",
        "LEAVE <node-id> [GROUP <group>]", "HELP")]


@command("readonly", 1, Kind.SERVER, flags=("fast", "loading", "stale"), group="cluster")
def readonly(client: Client, args: list[bytes]) -> Reply:
    client.readonly = True
    return OK


@command("readwrite", 1, Kind.SERVER, flags=("fast", "loading", "stale"), group="cluster")
def readwrite(client: Client, args: list[bytes]) -> Reply:
    client.readonly = False
    return OK


@command("asking", 1, Kind.SERVER, flags=("fast",), group="cluster")
def asking(client: Client, args: list[bytes]) -> Reply:
    return OK


@command("role", 1, Kind.SERVER, flags=("noscript", "loading", "stale", "fast"),
         group="server")
def role(client: Client, args: list[bytes]) -> Reply:
    """A master when it leads a group (its replicas: that group's other members),
    else a replica of the first group's leader."""
    group = client.server.shown_group()
    if group.is_leader():
        replicas = [[host.encode(), str(port).encode(), b"0"]
                    for node, host, port, _ in _members(group) if node != group.node_id]
        return [b"master", group.applied_index, replicas]
    address = group.leader_client_address()
    host, port = split_address(address) if address else ("?", 0)
    state = b"connected" if address else b"connect"
    return [b"slave", host.encode(), port, state, group.applied_index]


@command("respkv.transfer", -2, Kind.SERVER, flags=("admin",), group="cluster")
def transfer(client: Client, args: list[bytes]) -> Reply:
    """RESPKV.TRANSFER node-id [group]: hand leadership of the group (default: every
    group this node leads) to node-id."""
    if len(args) > 3:
        raise errors.SYNTAX
    target = args[1].decode("utf-8", "replace")
    if len(args) == 3:
        groups = [_group_named(client, args[2])]
        redirect = _leader_redirect(groups[0])
    else:
        groups = client.server.led_groups()
        redirect = None if groups else _leader_redirect(_groups(client)[0])
    if redirect is not None:
        return redirect
    for group in groups:
        try:
            group.transfer_leadership(target)
        except ValueError as error:
            raise RespError(f"ERR {error}") from None
    return OK


@command("respkv.consistency", -1, Kind.SERVER, flags=("fast",), group="connection")
def consistency(client: Client, args: list[bytes]) -> Reply:
    """RESPKV.CONSISTENCY [linearizable|lease|stale|default]: this connection's reads."""
    if len(args) == 1:
        return (client.read_consistency or client.server.config.read_consistency).encode()
    if len(args) > 2:
        raise RespError("ERR wrong number of arguments for 'respkv.consistency' command")
    mode = args[1].decode("utf-8", "replace").lower()
    if mode not in ("linearizable", "lease", "stale", "default"):
        raise RespError("ERR read consistency must be linearizable, lease, stale or default")
    client.read_consistency = None if mode == "default" else mode
    return OK
