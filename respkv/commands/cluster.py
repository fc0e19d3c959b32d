"""Redis Cluster's view of a Raft cluster: CLUSTER ..., READONLY, READWRITE, ASKING, ROLE.

The leader of the group that owns the slots is their master; the other voters
and learners are its replicas. Node ids are the 40-hex ids cluster clients
expect, derived from respkv's node ids.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from respkv.cluster.membership import Addresses, cluster_node_id
from respkv.cluster.slots import SLOTS, key_slot
from respkv.cluster.transport import split_address
from respkv.commands.args import parse_int
from respkv.commands.connection import subcommand
from respkv.commands.errors import CLUSTERDOWN
from respkv.commands.table import Kind, command
from respkv.protocol.reply import OK, Reply, RespError, Simple, Verbatim
from respkv.raft.confchange import ConfChangeType

if TYPE_CHECKING:
    from respkv.cluster.group import RaftGroup
    from respkv.server.client import Client



def _group(client: Client) -> RaftGroup:
    return client.server.group


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


@_sub("countkeysinslot", 3)
def cluster_countkeysinslot(client: Client, args: list[bytes]) -> Reply:
    slot = _slot_arg(args[2])
    return sum(1 for key in _group(client).keyspace.data if key_slot(key) == slot)


@_sub("getkeysinslot", 4)
def cluster_getkeysinslot(client: Client, args: list[bytes]) -> Reply:
    slot = _slot_arg(args[2])
    count = parse_int(args[3])
    if count < 0:
        raise RespError("ERR Invalid number of keys")
    found = []
    for key in _group(client).keyspace.data:
        if len(found) >= count:
            break
        if key_slot(key) == slot:
            found.append(key)
    return found


def _slot_arg(raw: bytes) -> int:
    slot = parse_int(raw, RespError("ERR Invalid slot"))
    if not 0 <= slot < SLOTS:
        raise RespError("ERR Invalid slot")
    return slot


@_sub("info", 2)
def cluster_info(client: Client, args: list[bytes]) -> Reply:
    group = _group(client)
    conf = group.members()
    ok = group.leader_id() is not None
    fields = {
        "cluster_state": "ok" if ok else "fail",
        "cluster_slots_assigned": SLOTS,
        "cluster_slots_ok": SLOTS if ok else 0,
        "cluster_slots_pfail": 0,
        "cluster_slots_fail": 0 if ok else SLOTS,
        "cluster_known_nodes": len(conf.voters) + len(conf.learners),
        "cluster_size": 1,
        "cluster_current_epoch": group.term,
        "cluster_my_epoch": group.term,
        "cluster_stats_messages_sent": 0,
        "cluster_stats_messages_received": 0,
        "total_cluster_links_buffer_limit_exceeded": 0,
    }
    return Verbatim("".join(f"{k}:{v}\r\n" for k, v in fields.items()))


@_sub("slots", 2)
def cluster_slots(client: Client, args: list[bytes]) -> Reply:
    group = _group(client)
    if group.leader_id() is None:
        return []
    entry: list = [0, SLOTS - 1]
    for node, host, port, _ in _members(group):
        entry.append([host, port, cluster_node_id(node), []])
    return [entry]


@_sub("shards", 2)
def cluster_shards(client: Client, args: list[bytes]) -> Reply:
    group = _group(client)
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
    return [{"slots": [0, SLOTS - 1], "nodes": nodes}]


@_sub("nodes", 2)
def cluster_nodes(client: Client, args: list[bytes]) -> Reply:
    group = _group(client)
    return Verbatim("".join(line + "\n" for line in _node_lines(group)))


def _node_lines(group: RaftGroup) -> list[str]:
    lead = group.leader_id()
    lead_hex = cluster_node_id(lead) if lead else "-"
    lines = []
    for node, host, port, addresses in _members(group):
        _, raft_port = split_address(addresses.raft)
        flags = ["myself"] if node == group.node_id else []
        flags.append("master" if node == lead else "slave")
        master = "-" if node == lead else lead_hex
        slots = f" 0-{SLOTS - 1}" if node == lead else ""
        lines.append(f"{cluster_node_id(node)} {host}:{port}@{raft_port} {','.join(flags)} "
                     f"{master} 0 {int(time.time() * 1000)} {group.term} connected{slots}")
    return lines


@_sub("replicas", 3)
def cluster_replicas(client: Client, args: list[bytes]) -> Reply:
    group = _group(client)
    lead = group.leader_id()
    if lead is None or args[2].decode("latin-1") != cluster_node_id(lead):
        raise RespError(f"ERR Unknown node {args[2].decode('utf-8', 'replace')}")
    return [line + "\n" for line in _node_lines(group) if " slave " in line]


@_sub("slaves", 3)
def cluster_slaves(client: Client, args: list[bytes]) -> Reply:
    return cluster_replicas(client, args)


@_sub("join", 5)
def cluster_join(client: Client, args: list[bytes]) -> Reply:
    """CLUSTER JOIN node-id raft-host:port client-host:port -> "<cluster-id> <index>",
    the index of the change that added the node (0 when it already was a member)."""
    group = _group(client)
    node_id = args[2].decode("utf-8", "replace")
    addresses = Addresses(args[3].decode(), args[4].decode())
    for address in (addresses.raft, addresses.client):
        try:
            split_address(address)
        except ValueError:
            raise RespError(f"ERR invalid address '{address}'") from None
    redirect = _leader_redirect(group)
    if redirect is not None:
        return redirect
    cluster_id = client.server.node.info.cluster_id.encode()
    conf = group.members()
    if node_id in conf.voters or node_id in conf.learners:
        if group.book.get(node_id) == addresses:
            return cluster_id + b" 0"
        raise RespError(f"ERR node {node_id} is already a member with other addresses")
    return _join(group, node_id, addresses, cluster_id)


async def _join(group: RaftGroup, node_id: str, addresses: Addresses, cluster_id: bytes) -> Reply:
    index = await group.change_membership(ConfChangeType.ADD_LEARNER, node_id, addresses)
    if isinstance(index, RespError):
        return index
    return cluster_id + b" %d" % index  # the joiner ignores older removals of its id


@_sub("leave", 3)
def cluster_leave(client: Client, args: list[bytes]) -> Reply:
    group = _group(client)
    node_id = args[2].decode("utf-8", "replace")
    redirect = _leader_redirect(group)
    if redirect is not None:
        return redirect
    conf = group.members()
    if node_id not in conf.voters and node_id not in conf.learners:
        raise RespError(f"ERR node {node_id} is not a member")
    if node_id == group.node_id:
        return _leave_self(client, group)
    return _leave(group, node_id)


async def _leave(group: RaftGroup, node_id: str) -> Reply:
    index = await group.change_membership(ConfChangeType.REMOVE, node_id, None)
    return index if isinstance(index, RespError) else OK


async def _leave_self(client: Client, group: RaftGroup) -> Reply:
    """The leader leaving: hand over first, then send the client to the new leader."""
    await client.server.node.hand_over_leadership()
    for _ in range(100):
        address = group.leader_client_address()
        if not group.is_leader() and address is not None:
            return RespError(f"MOVED 0 {address}")
        await asyncio.sleep(0.02)
    return RespError("TRYAGAIN could not hand over leadership; retry")


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
        "JOIN <node-id> <raft-host:port> <client-host:port>", "LEAVE <node-id>", "HELP")]


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
    group = _group(client)
    if group.is_leader():
        replicas = []
        for node, host, port, _ in _members(group):
            if node != group.node_id:
                replicas.append([host.encode(), str(port).encode(), b"0"])
        return [b"master", group.applied_index, replicas]
    address = group.leader_client_address()
    host, port = split_address(address) if address else ("?", 0)
    state = b"connected" if address else b"connect"
    return [b"slave", host.encode(), port, state, group.applied_index]


@command("respkv.transfer", 2, Kind.SERVER, flags=("admin",), group="cluster")
def transfer(client: Client, args: list[bytes]) -> Reply:
    """RESPKV.TRANSFER node-id: the leader hands leadership to node-id."""
    group = _group(client)
    redirect = _leader_redirect(group)
    if redirect is not None:
        return redirect
    try:
        group.transfer_leadership(args[1].decode("utf-8", "replace"))
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
