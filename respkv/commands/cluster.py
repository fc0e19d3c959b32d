"""Redis Cluster's view of a Raft cluster: CLUSTER ..., READONLY, READWRITE, ASKING, ROLE.

Each Raft group owns a range of slots; its leader is their master and the other
members its replicas (CLUSTER SLOTS and SHARDS, one entry per group). CLUSTER
NODES has one line per node, as Redis': a node leading groups is a master with
their slots, one leading none a replica of the first group's leader. Node ids
are the 40-hex ids cluster clients expect, derived from respkv's node ids.

The facts come from the cluster admin (respkv.replication.admin), which also
carries out CLUSTER JOIN and LEAVE on every group's leader; this module only
parses the arguments and shapes the replies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable

from respkv.commands import errors
from respkv.commands.args import parse_int
from respkv.commands.context import ServerContext, Session, ok_when_done
from respkv.commands.subcommands import subcommand
from respkv.commands.table import Kind, command
from respkv.config import ConfigError, read_mode
from respkv.protocol.reply import OK, Reply, RespError, Simple, Verbatim
from respkv.replication.addresses import Addresses, split_address
from respkv.replication.admin import Member, Shard
from respkv.replication.health import Health
from respkv.replication.keyring import KeyringError
from respkv.replication.slots import SLOTS, key_slot


def cluster_node_id(node_id: str) -> str:
    """The 40-hex id Redis Cluster clients expect, derived from our node id."""
    return hashlib.sha1(node_id.encode()).hexdigest()


def _all_members(shards: list[Shard]) -> dict[str, Member]:
    """Every node of any group, by id, sorted."""
    found = {member.node_id: member for shard in shards for member in shard.members}
    return dict(sorted(found.items()))


def _led_ranges(shards: list[Shard], node: str) -> list[tuple[int, int]]:
    """The slot ranges of the groups ``node`` leads, contiguous ones merged."""
    merged: list[tuple[int, int]] = []
    for shard in shards:
        if shard.leader != node:
            continue
        if merged and merged[-1][1] + 1 == shard.first_slot:
            merged[-1] = (merged[-1][0], shard.last_slot)
        else:
            merged.append((shard.first_slot, shard.last_slot))
    return merged


def _client_endpoint(member: Member, tls: bool = False) -> tuple[str, int]:
    """Where a client goes; one on TLS to the node's TLS port, when it has one (as Redis
    shows TLS clients TLS ports)."""
    addresses = member.addresses
    return split_address(addresses.tls if tls and addresses.tls else addresses.client)


@command("cluster", -2, Kind.SERVER, family="cluster", since="3.0.0")
def cluster(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _sub(name: str, arity: int, flags: tuple[str, ...] = ("stale",)):
    return command(name, arity, Kind.SERVER, flags=flags, family="cluster", parent="cluster")


@_sub("myid", 2)
def cluster_myid(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return cluster_node_id(server.config.node_id)


@_sub("keyslot", 3)
def cluster_keyslot(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return key_slot(args[2])


@_sub("countkeysinslot", 3)
def cluster_countkeysinslot(server: ServerContext, session: Session,
                            args: list[bytes]) -> Reply:
    return sum(1 for _ in server.cluster.keys_in_slot(_slot_arg(args[2])))


@_sub("getkeysinslot", 4)
def cluster_getkeysinslot(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    slot = _slot_arg(args[2])
    count = parse_int(args[3])
    if count < 0:
        raise RespError("ERR Invalid number of keys")
    found = []
    for key in server.cluster.keys_in_slot(slot):
        if len(found) >= count:
            break
        found.append(key)
    return found


def _slot_arg(raw: bytes) -> int:
    slot = parse_int(raw, RespError("ERR Invalid slot"))
    if not 0 <= slot < SLOTS:
        raise RespError("ERR Invalid slot")
    return slot


def _health(server: ServerContext, node: str | None) -> Health:
    return server.cluster.peer(node).health if node is not None else Health.FAILED


@_sub("info", 2)
def cluster_info(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """Redis Cluster's fields, as this node sees the cluster: a slot is ok while its
    group's leader is heard, pfail while it is suspected, fail with no leader or a
    failed one; the state is ok with no slot failed and most nodes heard."""
    shards = server.cluster.shards()
    size = {Health.UP: 0, Health.SUSPECT: 0, Health.FAILED: 0}
    for shard in shards:
        size[_health(server, shard.leader)] += shard.last_slot - shard.first_slot + 1
    members = _all_members(shards)
    heard = sum(1 for node in members if server.cluster.peer(node).health is Health.UP)
    majority = heard > len(members) // 2
    leaders = {s.leader for s in shards} - {None}
    me = server.config.node_id
    sent, received = server.cluster.pings()
    fields = {
        "cluster_state": "ok" if size[Health.FAILED] == 0 and majority else "fail",
        "cluster_slots_assigned": SLOTS,
        "cluster_slots_ok": size[Health.UP],
        "cluster_slots_pfail": size[Health.SUSPECT],
        "cluster_slots_fail": size[Health.FAILED],
        "cluster_known_nodes": len(members),
        "cluster_size": len(leaders),
        "cluster_current_epoch": max(s.term for s in shards),
        "cluster_my_epoch": max((s.term for s in shards if s.leader == me), default=0),
        "cluster_stats_messages_ping_sent": sent,
        "cluster_stats_messages_sent": sent,
        "cluster_stats_messages_ping_received": received,
        "cluster_stats_messages_received": received,
        "total_cluster_links_buffer_limit_exceeded": 0,
    }
    return Verbatim("".join(f"{k}:{v}\r\n" for k, v in fields.items()))


@_sub("slots", 2)
def cluster_slots(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """Each group's range: its leader, then its other voters and learners (a failed
    one left out, as Redis leaves out failed replicas).

    A node here can be a master of one range and a replica of others, which Redis
    Cluster never is; cluster clients (redis-py) give a node the role of its first
    appearance in this reply. So a leader that would first appear as another
    range's replica is announced first: the first slot of its range, listing it
    alone, leads the reply, and the rest of that range follows with every replica."""
    # a leader whose address is not known yet cannot be sent to: its range waits
    shards = [s for s in server.cluster.shards() if s.leader_member is not None]
    listed = {shard.name: [m for m in shard.members if m.node_id == shard.leader
                           or server.cluster.peer(m.node_id).health is not Health.FAILED]
              for shard in shards}
    first_role: dict[str, bool] = {}  # node -> first appears as a master
    for shard in shards:
        for member in listed[shard.name]:
            first_role.setdefault(member.node_id, member.node_id == shard.leader)
    announce = {s.leader for s in shards if s.leader and not first_role[s.leader]}
    heads, entries = [], []
    for shard in shards:
        first = shard.first_slot
        if shard.leader in announce:
            announce.discard(shard.leader)
            heads.append([first, first, _slot_node(listed[shard.name][0], session.tls)])
            first += 1
        if first <= shard.last_slot:
            entries.append([first, shard.last_slot,
                            *(_slot_node(m, session.tls) for m in listed[shard.name])])
    return heads + entries


def _slot_node(member: Member, tls: bool) -> list:
    host, port = _client_endpoint(member, tls)
    return [host, port, cluster_node_id(member.node_id), []]


@_sub("shards", 2)
def cluster_shards(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    me = server.config.node_id
    shards = []
    for shard in server.cluster.shards():
        matches = server.cluster.follower_matches(shard)
        nodes = []
        for member in shard.members:
            host, port = _client_endpoint(member)
            health = server.cluster.peer(member.node_id).health
            offset = shard.applied_index if member.node_id == me else matches.get(
                member.node_id, 0)
            node: dict[str, object] = {"id": cluster_node_id(member.node_id)}
            tls = member.addresses.tls
            if member.addresses.client != tls:  # a node with port 0 has no plain port
                node["port"] = port
            if tls:
                node["tls-port"] = split_address(tls)[1]
            nodes.append({
                **node,
                "ip": host,
                "endpoint": host,
                "role": "master" if member.node_id == shard.leader else "replica",
                "replication-offset": offset,
                "health": "online" if health is Health.UP else "failed",
            })
        shards.append({"slots": [shard.first_slot, shard.last_slot], "nodes": nodes})
    return shards


@_sub("nodes", 2)
def cluster_nodes(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return Verbatim("".join(line + "\n" for line in _node_lines(server, session.tls)))


def _node_lines(server: ServerContext, tls: bool = False) -> list[str]:
    """One line per node, Redis Cluster's format. A node is shown as a master of the
    ranges it leads, or (leading none) as a replica of the first group's leader: a
    line has one role, so a leader's place as a replica of the other groups is not
    shown here (CLUSTER SLOTS and SHARDS show it)."""
    shards = server.cluster.shards()
    me = server.config.node_id
    first = shards[0].leader
    first_hex = cluster_node_id(first) if first else "-"
    epoch = max(s.term for s in shards)
    lines = []
    for node, member in _all_members(shards).items():
        host, port = _client_endpoint(member, tls)
        _, raft_port = split_address(member.addresses.raft)
        ranges = _led_ranges(shards, node)
        peer = server.cluster.peer(node)
        flags = ["myself"] if node == me else []
        flags.append("master" if ranges else "slave")
        if peer.health is not Health.UP:
            flags.append(peer.health.value)
        master = "-" if ranges else first_hex
        slots = "".join(f" {a}-{b}" if a != b else f" {a}" for a, b in ranges)
        link = "connected" if peer.link_up else "disconnected"
        lines.append(f"{cluster_node_id(node)} {host}:{port}@{raft_port} {','.join(flags)} "
                     f"{master} 0 {peer.last_heard_ms} {epoch} {link}{slots}")
    return lines


@_sub("replicas", 3, ("admin", "stale"))
def cluster_replicas(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    wanted = args[2].decode("latin-1")
    lines = _node_lines(server, session.tls)
    if not any(line.startswith(wanted + " ") and " master " in line for line in lines):
        raise RespError(f"ERR Unknown node {args[2].decode('utf-8', 'replace')}")
    return [line + "\n" for line in lines if f" slave {wanted} " in line]


@_sub("slaves", 3, ("admin", "stale"))
def cluster_slaves(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return cluster_replicas(server, session, args)


# -- membership: every group changes, each on its leader -------------------------


def _group_option(server: ServerContext, args: list[bytes], fixed: int) -> str | None:
    """The group named by a trailing ``GROUP <name>``, or None without one."""
    if len(args) == fixed:
        return None
    if len(args) != fixed + 2 or args[fixed].upper() != b"GROUP":
        raise errors.SYNTAX
    return _group_name(server, args[fixed + 1])


def _group_name(server: ServerContext, raw: bytes) -> str:
    name = raw.decode("utf-8", "replace")
    if not server.cluster.has_group(name):
        raise RespError(f"ERR unknown group {name}")
    return name


@_sub("join", -6, ("noauth",))  # its proof of the join token is its authentication
def cluster_join(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """CLUSTER JOIN node-id raft-host:port client-host:port proof [TLS host:port]
    [GROUP name]: add the node (with its TLS client address, if it has a tls-port) to
    every group (or to one, on its leader). ``proof`` shows it holds the join token
    (respkv.replication.peerauth.join_proof)."""
    node_id = args[2].decode("utf-8", "replace")
    tls, group = _join_options(server, args[6:])
    addresses = Addresses(args[3].decode("utf-8", "replace"), args[4].decode("utf-8", "replace"),
                          tls)
    for address in (addresses.raft, addresses.client, *([tls] if tls else [])):
        try:
            split_address(address)
        except ValueError:
            raise RespError(f"ERR invalid address '{address}'") from None
    proof = args[5].decode("ascii", "replace")
    return server.cluster.join(node_id, addresses, proof, group)


def _join_options(server: ServerContext, options: list[bytes]) -> tuple[str, str | None]:
    """CLUSTER JOIN's trailing TLS <host:port> and GROUP <name>, each at most once."""
    tls, group = "", None
    if len(options) % 2:
        raise errors.SYNTAX
    for name, value in zip(options[::2], options[1::2], strict=True):
        option = name.upper()
        if option == b"TLS" and not tls:
            tls = value.decode("utf-8", "replace")
        elif option == b"GROUP" and group is None:
            group = _group_name(server, value)
        else:
            raise errors.SYNTAX
    return tls, group


@_sub("propose", -5, ("noauth",))  # its proof made with the cluster secret authenticates it
def cluster_propose(server: ServerContext, session: Session,
                    args: list[bytes]) -> Awaitable[Reply]:
    """CLUSTER PROPOSE stamp proof entry...: a change of what every node enforces (the
    users), forwarded by another node to the first group's leader."""
    return server.cluster.propose_forwarded(args[2], args[3], args[4:])


@_sub("relay", 8, ("noauth",))  # its proof made with the cluster secret authenticates it
def cluster_relay(server: ServerContext, session: Session,
                  args: list[bytes]) -> Awaitable[Reply]:
    """CLUSTER RELAY stamp proof LEAVE node GROUP name: a CLUSTER LEAVE of one group,
    sent on by another node to the group's leader."""
    return server.cluster.relay(args[2], args[3], args[4:])


@_sub("token", 2, ("admin",))
def cluster_token(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """CLUSTER TOKEN: the join token a new member is started with (--join-token)."""
    return server.cluster.join_token().encode()


# Each action and the arguments it takes, the action's name included.
_SECRET_ACTIONS = {b"ADD": 4, b"USE": 4, b"DROP": 4, b"STATUS": 3}


@_sub("secret", -3, ("admin", "noscript", "stale"))
def cluster_secret(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """CLUSTER SECRET ADD <secret-hex> | USE <id> | DROP <id> | STATUS: this node's
    cluster secrets (respkv.replication.keyring). Node-local: a rotation runs each step
    on every node before the next (``respkv rotate-secret`` does). Secrets are named by
    their ids, never shown."""
    action = args[2].upper()
    wanted = _SECRET_ACTIONS.get(action)
    if wanted is None:
        raise RespError(f"ERR unknown CLUSTER SECRET action '{_printable(args[2])}'. "
                        "Try CLUSTER HELP.")
    if len(args) != wanted:
        raise errors.wrong_arity("cluster|secret")
    if action == b"STATUS":
        return [f"{key} {'current' if current else 'accepted'}".encode()
                for key, current in server.cluster.secret_status()]
    argument = args[3].decode("utf-8", "replace")
    try:
        if action == b"ADD":
            return server.cluster.secret_add(argument).encode()
        if action == b"USE":
            server.cluster.secret_use(argument)
        else:
            server.cluster.secret_drop(argument)
    except KeyringError as error:
        raise RespError(f"ERR {error}") from None
    return OK


def _printable(raw: bytes) -> str:
    return raw[:64].decode("utf-8", "replace")


@_sub("leave", -3, ("admin",))
def cluster_leave(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """CLUSTER LEAVE node-id [GROUP name]: out of every group (or of one, on its
    leader; a leader leaving hands over first and answers MOVED)."""
    node_id = args[2].decode("utf-8", "replace")
    return ok_when_done(server.cluster.leave(node_id, _group_option(server, args, 3)))


@_sub("help", 2, ("loading", "stale"))
def cluster_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple(s) for s in (
        "CLUSTER <subcommand> [<arg> ...]. Subcommands are:",
        "INFO", "MYID", "NODES", "SLOTS", "SHARDS", "REPLICAS <node-id>", "KEYSLOT <key>",
        "COUNTKEYSINSLOT <slot>", "GETKEYSINSLOT <slot> <count>",
        "JOIN <node-id> <raft-host:port> <client-host:port> <proof> [TLS <host:port>] "
        "[GROUP <group>]",
        "TOKEN",
        "SECRET ADD <secret-hex> | USE <id> | DROP <id> | STATUS",
        "LEAVE <node-id> [GROUP <group>]", "HELP")]


@command("readonly", 1, Kind.SERVER, flags=("fast", "loading", "stale"), family="cluster",
         since="3.0.0")
def readonly(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    session.readonly = True
    return OK


@command("readwrite", 1, Kind.SERVER, flags=("fast", "loading", "stale"), family="cluster",
         since="3.0.0")
def readwrite(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    session.readonly = False
    return OK


@command("asking", 1, Kind.SERVER, flags=("fast",), family="cluster", since="3.0.0")
def asking(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return OK


@command("role", 1, Kind.SERVER, flags=("noscript", "loading", "stale", "fast"),
         family="server", since="2.8.12")
def role(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """A master when it leads a group (its replicas: that group's other members),
    else a replica of the first group's leader."""
    shard = server.cluster.shown_shard()
    me = server.config.node_id
    if shard.leader == me:
        replicas = []
        for member, offset, _peer in server.cluster.connected_replicas(shard):
            host, port = _client_endpoint(member)
            replicas.append([host.encode(), str(port).encode(), str(offset).encode()])
        return [b"master", shard.applied_index, replicas]
    leader = shard.leader_member
    host, port = _client_endpoint(leader) if leader else ("?", 0)
    state = b"connected" if server.cluster.leader_address(shard) else b"connect"
    return [b"slave", host.encode(), port, state, shard.applied_index]


@command("respkv.transfer", -2, Kind.SERVER, flags=("admin",), family="cluster")
def transfer(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """RESPKV.TRANSFER node-id [group]: hand leadership of the group (default: every
    group this node leads) to node-id."""
    if len(args) > 3:
        raise errors.SYNTAX
    target = args[1].decode("utf-8", "replace")
    group = _group_name(server, args[2]) if len(args) == 3 else None
    server.cluster.transfer(target, group)
    return OK


@command("respkv.consistency", -1, Kind.SERVER, flags=("fast",), family="connection")
def consistency(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    """RESPKV.CONSISTENCY [linearizable|strict|stale|default]: this connection's reads
    (``lease``, of older versions, is linearizable)."""
    if len(args) == 1:
        return (session.read_consistency or server.config.read_consistency).encode()
    if len(args) > 2:
        raise RespError("ERR wrong number of arguments for 'respkv.consistency' command")
    mode = args[1].decode("utf-8", "replace").lower()
    if mode != "default":
        try:
            mode = read_mode(mode)
        except ConfigError:
            raise RespError("ERR read consistency must be linearizable, strict, stale or "
                            "default") from None
    session.read_consistency = None if mode == "default" else mode
    return OK
