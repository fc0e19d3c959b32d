"""INFO: the sections Redis clients read, and respkv's own (raft)."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable, Mapping
from typing import Any

from respkv import REDIS_VERSION, __version__
from respkv.config import Config
from respkv.gcpolicy import GcPolicy
from respkv.raft.refusal import RefusalReason
from respkv.replication.admin import ClusterAdmin, Shard
from respkv.replication.group import RaftGroup
from respkv.replication.node import ClusterNode
from respkv.server.stats import Stats
from respkv.server.timing import PERCENTILES

DEFAULT_SECTIONS = ["server", "clients", "memory", "persistence", "stats", "replication",
                    "cpu", "errorstats", "cluster", "keyspace", "raft"]


class Info:
    def __init__(self, config: Config, stats: Stats, clients: Mapping[int, object],
                 node: ClusterNode, cluster: ClusterAdmin, gc: GcPolicy) -> None:
        self.config = config
        self.stats = stats
        self.clients = clients
        self.node = node
        self.cluster = cluster
        self.gc = gc
        self.sections: dict[str, Callable[[], dict[str, Any]]] = {
            "server": self._server,
            "clients": self._clients,
            "memory": self._memory,
            "persistence": self._persistence,
            "stats": self._stats,
            "replication": self._replication,
            "cpu": self._cpu,
            "cluster": lambda: {"cluster_enabled": 1},
            "keyspace": self._keyspace,
            "raft": self._raft,
            "commandstats": self._commandstats,
            "errorstats": self._errorstats,
            "latencystats": self._latencystats,
        }

    def text(self, wanted: list[str]) -> str:
        if not wanted or wanted == ["default"]:
            names = DEFAULT_SECTIONS
        elif any(w in ("all", "everything") for w in wanted):
            names = list(self.sections)
        else:
            names = [w for w in wanted if w in self.sections]
        parts = []
        for name in names:
            body = "".join(f"{k}:{v}\r\n" for k, v in self.sections[name]().items())
            parts.append(f"# {name.capitalize()}\r\n{body}")
        return "\r\n".join(parts)

    @property
    def groups(self) -> list[RaftGroup]:
        return self.node.groups

    def _server(self) -> dict[str, Any]:
        uptime = int(time.time() - self.stats.started)
        return {
            "redis_version": REDIS_VERSION,
            "respkv_version": __version__,
            "redis_mode": "cluster",
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "arch_bits": 64,
            "process_id": os.getpid(),
            "run_id": self.config.node_id,
            "tcp_port": self.config.port,
            "uptime_in_seconds": uptime,
            "uptime_in_days": uptime // 86400,
            "executable": "respkv",
        }

    def _clients(self) -> dict[str, Any]:
        return {"connected_clients": len(self.clients), "maxclients": self.config.maxclients,
                "blocked_clients": self.stats.blocked_clients}

    def _memory(self) -> dict[str, Any]:
        """used_memory is the dataset's estimate (what maxmemory limits, and what goes
        down when keys go), not the process': CPython seldom returns freed memory."""
        used = sum(group.keyspace.used for group in self.groups)
        config = self.config
        return {"used_memory": used, "used_memory_human": human_bytes(used),
                "used_memory_rss": rss_bytes(), "used_memory_dataset": used,
                "maxmemory": config.maxmemory, "maxmemory_human": human_bytes(config.maxmemory),
                "maxmemory_policy": config.maxmemory_policy, **self.gc.info()}

    def _persistence(self) -> dict[str, Any]:
        groups = self.groups
        saving = self.cluster.saving
        return {"loading": 0, "rdb_changes_since_last_save": 0,
                "rdb_bgsave_in_progress": int(saving.in_progress),
                "rdb_last_save_time": saving.last_save(),
                "rdb_last_bgsave_status": saving.last_status, "aof_enabled": 1,
                "wal_fsync": "always",
                # writes are refused while set (min-free-disk), and how many were
                "disk_full": int(any(g.disk_full for g in groups)),
                "disk_full_refused_writes": sum(g.disk.refused for g in groups),
                "store_rebuild_deferred": int(any(g.disk.rebuild_deferred for g in groups))}

    def _stats(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "total_connections_received": stats.connections_received,
            "total_commands_processed": stats.total_commands,
            "rejected_connections": stats.rejected_connections,
            "total_protocol_errors": stats.protocol_errors,
            "total_error_replies": stats.commands.error_replies,
            "acl_access_denied_auth": stats.auth_failures,
            # Redis 7.2's names (7.0 has no such counters)
            "client_query_buffer_limit_disconnections": stats.query_limit_disconnections,
            "client_output_buffer_limit_disconnections": stats.output_limit_disconnections,
            "expired_keys": 0,
            "evicted_keys": sum(group.keyspace.evicted for group in self.groups),
            "keyspace_hits": 0,
            "keyspace_misses": 0,
            "max_loop_pause_ms": round(stats.max_loop_pause_ms),
        }

    def _replication(self) -> dict[str, Any]:
        """A node leading a group is a master, its replicas that group's other members;
        one leading none is a replica of the first group's leader, as ROLE and CLUSTER
        NODES show it."""
        if not self.groups:
            return {"role": "master"}
        cluster = self.cluster
        shard = cluster.shown_shard()
        me = self.config.node_id
        if shard.leader == me:
            fields = self._master_fields(shard)
        else:
            leader = shard.leader_member
            host, _, port = leader.addresses.client.rpartition(":") if leader else ("?", "", "0")
            silent = cluster.peer(leader.node_id).silent_for if leader else None
            up = cluster.leader_address(shard) is not None
            fields = {"role": "slave", "master_host": host, "master_port": port,
                      "master_link_status": "up" if up else "down",
                      "master_last_io_seconds_ago": int(silent) if silent is not None else -1,
                      "master_sync_in_progress": 0,
                      "slave_repl_offset": shard.applied_index,
                      "slave_read_only": 1}
        fields["master_repl_offset"] = shard.applied_index
        fields.update(self._raft())
        return fields

    def _master_fields(self, shard: Shard) -> dict[str, Any]:
        replicas = self.cluster.connected_replicas(shard)
        fields: dict[str, Any] = {"role": "master", "connected_slaves": len(replicas)}
        for index, (member, offset, peer) in enumerate(replicas):
            host, _, port = member.addresses.client.rpartition(":")
            fields[f"slave{index}"] = (f"ip={host},port={port},state=online,offset={offset},"
                                       f"lag={int(peer.silent_for or 0)}")
        return fields

    def _cpu(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"used_cpu_sys": f"{usage.ru_stime:.6f}", "used_cpu_user": f"{usage.ru_utime:.6f}"}

    def _keyspace(self) -> dict[str, Any]:
        keys = sum(len(group.keyspace) for group in self.groups)
        if not keys:
            return {}
        expires = sum(len(group.keyspace.expires) for group in self.groups)
        return {"db0": f"keys={keys},expires={expires},avg_ttl=0"}

    def _raft(self) -> dict[str, Any]:
        """The node, the first group (g0) unprefixed, then a line per group."""
        if not self.groups:
            return {}
        fields: dict[str, Any] = {
            "raft_node_id": self.config.node_id,
            "raft_cluster_id": self.cluster.cluster_id,
            "raft_shards": len(self.groups),
            "raft_leads": ",".join(g.name for g in self.groups if g.is_leader()),
            "raft_wal_fsyncs": self.node.wal.fsyncs if self.node.wal else 0,
        }
        fields["raft_groups_down"] = ",".join(g.name for g in self.groups if g.down)
        fields["raft_failures"] = sum(g.failures for g in self.groups)
        fields["raft_stalls"] = sum(g.stalls for g in self.groups)
        for reason in RefusalReason:  # messages refused by the groups' cores, summed
            fields[f"raft_refused_{reason}"] = sum(g.refusal_counts.get(reason, 0)
                                                   for g in self.groups)
        per_group = [group_fields(group) for group in self.groups]
        for name, value in per_group[0].items():
            fields[f"raft_{name}"] = value
        for group, values in zip(self.groups, per_group, strict=True):
            fields[f"raft_group_{group.name}"] = ",".join(  # member lists: | between ids
                f"{k}={str(v).replace(',', '|')}" for k, v in values.items() if k != "group")
        return fields

    def _commandstats(self) -> dict[str, Any]:
        """usec: from dispatch until the reply is ready (a write waits for its entry
        to be applied), summed over the calls (respkv.server.timing)."""
        fields = {}
        for name, record in self.stats.commands.ran():
            usec = record.ns // 1000
            per_call = usec / record.calls if record.calls else 0.0
            fields[f"cmdstat_{name}"] = (
                f"calls={record.calls},usec={usec},usec_per_call={per_call:.2f},"
                f"rejected_calls={record.rejected},failed_calls={record.failed}")
        return fields

    def _errorstats(self) -> dict[str, Any]:
        errors = self.stats.commands.errors
        return {f"errorstat_{prefix}": f"count={errors[prefix]}" for prefix in sorted(errors)}

    def _latencystats(self) -> dict[str, Any]:
        fields = {}
        for name, record in self.stats.commands.ran():
            if record.calls:
                fields[f"latency_percentiles_usec_{name}"] = ",".join(
                    f"p{wanted:g}={record.percentile(wanted):.3f}" for wanted in PERCENTILES)
        return fields


def human_bytes(count: int) -> str:
    """Redis' bytesToHuman: 1B, 10.00K, 1.50M, 2.00G."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if count >= size:
            return f"{count / size:.2f}{unit}"
    return f"{count}B"


def rss_bytes() -> int:
    """The process' resident set now (Linux /proc), or its peak where that is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def group_fields(group: RaftGroup) -> dict[str, Any]:
    members = group.members()
    rounds, reads = group.read_rounds()
    lease_reads, quorum_rounds = group.lease_and_quorum_reads()
    return {
        "group": group.name,
        "role": group.role,
        "term": group.term,
        "leader": group.leader_id() or "",
        "commit_index": group.commit_index,
        "applied_index": group.applied_index,
        "last_log_index": group.last_index,
        "snapshot_index": group.snapshot_index,
        "voters": ",".join(members.voters),
        "learners": ",".join(members.learners),
        "leader_changes": group.leader_changes,
        "read_rounds": rounds,
        "reads_in_rounds": reads,
        "lease_reads": lease_reads,
        "quorum_read_rounds": quorum_rounds,
    }
