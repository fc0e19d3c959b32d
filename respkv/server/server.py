"""The node's lifecycle: start, serve clients, shut down in a fixed order.

Start: lock the data dir, open the group(s) (log replay), listen.
Shutdown (SIGINT/SIGTERM, SHUTDOWN): stop accepting, let in-flight writes
finish, stop the groups (flush and close log and store), close the clients,
release the lock. A second signal exits at once; the WAL's checksums make a
cut-off tail safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import platform
import resource
import signal
import time
from pathlib import Path
from typing import Any

from respkv import commands  # noqa: F401  (registers every command in the table)
from respkv.commands.connection import VERSION
from respkv.config import Config
from respkv.gcpolicy import POLICY
from respkv.replication.group import RaftGroup, now_ms
from respkv.replication.node import ClusterNode
from respkv.server.client import Client
from respkv.server.dispatch import Dispatcher
from respkv.server.router import Router
from respkv.server.stats import Stats

log = logging.getLogger(__name__)

REAP_INTERVAL = 0.1  # seconds between sweeps for expired keys
REAP_BATCH = 200  # keys deleted per sweep entry


class DirectoryLocked(RuntimeError):
    pass


def lock_directory(directory: Path) -> int:
    """Hold an exclusive lock on ``directory`` for the life of the process."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DirectoryLocked(
            f"{directory} is in use by another respkv process; refusing to start"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self.clients: dict[int, Client] = {}
        self._client_ids = 0
        self.node = ClusterNode(config)
        self.router = Router(self.node)
        self.dispatcher = Dispatcher(self)
        self.groups: list[RaftGroup] = []  # this node's, in slot order
        self.listener: asyncio.AbstractServer | None = None
        self.stopped = asyncio.Event()
        self.shutdown_requested = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.lock_fd: int | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        self.lock_fd = lock_directory(config.data_dir)
        self.node.on_removed = self.request_shutdown
        loop = asyncio.get_running_loop()
        # Bind before joining: a port in use must fail the start, not leave behind a
        # member that the cluster added and that never comes up.
        self.listener = await loop.create_server(
            lambda: Client(self), config.bind, config.port, reuse_address=True, backlog=1024,
            start_serving=False,
        )
        await self.node.start()
        self.groups = self.node.groups
        self.router.start()
        await self.listener.start_serving()
        self.tasks.append(asyncio.create_task(self._reap_expired(), name="reaper"))
        if config.metrics_port:
            from respkv.server.metrics import serve_metrics

            serve_metrics(self)
        self.tasks.append(asyncio.create_task(self._close_idle(), name="idle"))
        gc.freeze()  # what start-up made lives for good: keep it out of every collection
        log.info("ready to accept connections", extra={"port": config.port, "dir": config.dir})

    async def serve(self) -> None:
        """Run until SIGINT/SIGTERM or SHUTDOWN, then shut down in order."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        starting = asyncio.ensure_future(self.start())
        stop = asyncio.ensure_future(self.shutdown_requested.wait())
        await asyncio.wait([starting, stop], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # a signal while joining: give up cleanly
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            log.info("stopped before start-up finished")
            return
        starting.result()  # start-up errors propagate
        await stop
        await self.shutdown()

    def _on_signal(self) -> None:
        if self.shutdown_requested.is_set():
            log.warning("second signal: exiting now")
            os._exit(1)
        log.info("signal received: shutting down")
        self.shutdown_requested.set()

    def request_shutdown(self) -> None:
        self.shutdown_requested.set()

    async def shutdown(self) -> None:
        if self.listener is not None:
            self.listener.close()  # 1. stop accepting, and reading from the clients
        for client in list(self.clients.values()):
            client.drain()
        for task in self.tasks:
            task.cancel()
        await self._drain_clients(deadline=5.0)  # 2. finish in-flight writes
        # 3. hand over leadership, stop Raft, flush and close log and store, transport
        await self.node.stop()
        for client in list(self.clients.values()):  # 4. close the clients
            client.close()
        if self.lock_fd is not None:  # 5. release the directory
            os.close(self.lock_fd)
            self.lock_fd = None
        log.info("shutdown complete")
        self.stopped.set()

    async def _drain_clients(self, deadline: float) -> None:
        end = time.monotonic() + deadline
        while any(c.inflight for c in self.clients.values()) and time.monotonic() < end:
            await asyncio.sleep(0.01)

    # -- clients ---------------------------------------------------------------

    def next_client_id(self) -> int:
        self._client_ids += 1
        return self._client_ids

    def register(self, client: Client) -> bool:
        self.stats.connections_received += 1
        if len(self.clients) >= self.config.maxclients:
            self.stats.rejected_connections += 1
            return False
        self.clients[client.id] = client
        return True

    def unregister(self, client: Client) -> None:
        self.clients.pop(client.id, None)

    # -- cluster state ---------------------------------------------------------

    def led_groups(self) -> list[RaftGroup]:
        return [group for group in self.groups if group.is_leader()]

    def is_leader(self) -> bool:
        """Leads a group: Redis Cluster calls such a node a master."""
        return any(group.is_leader() for group in self.groups)

    def shown_group(self) -> RaftGroup:
        """The group ROLE and INFO replication describe: the first this node leads
        (a master), else the first group (a replica of its leader, as CLUSTER NODES
        shows it)."""
        return next((g for g in self.groups if g.is_leader()), self.groups[0])

    def replicas_in_sync(self) -> int:
        """WAIT's answer: the followers holding every entry of each group led here."""
        counts = []
        for group in self.led_groups():
            progress = group.core.status()["progress"]
            last = group.last_index
            counts.append(sum(1 for node, p in progress.items()
                              if node != self.config.node_id and p["match"] >= last))
        return min(counts, default=0)

    # -- background work --------------------------------------------------------

    async def _reap_expired(self) -> None:
        """Each group's leader proposes deletions of expired keys, a batch at a time."""
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            proposals = []
            for group in self.led_groups():
                keys = group.keyspace.expired_keys(now_ms(), REAP_BATCH)
                if keys:
                    proposals.append(group.propose([b"respkv.reap", *keys]))
            await asyncio.gather(*proposals)

    async def _close_idle(self) -> None:
        while True:
            await asyncio.sleep(1)
            limit = self.config.timeout
            if limit <= 0:
                continue
            cutoff = time.monotonic() - limit
            for client in list(self.clients.values()):
                if client.last_active < cutoff and not client.inflight:
                    client.close()

    # -- INFO ------------------------------------------------------------------

    def info_text(self, wanted: list[str]) -> str:
        sections = self.info_sections()
        default = ["server", "clients", "memory", "persistence", "stats", "replication",
                   "cpu", "cluster", "keyspace", "raft"]
        if not wanted or wanted == ["default"]:
            names = default
        elif any(w in ("all", "everything") for w in wanted):
            names = list(sections)
        else:
            names = [w for w in wanted if w in sections]
        parts = []
        for name in names:
            fields = sections[name]()
            body = "".join(f"{k}:{v}\r\n" for k, v in fields.items())
            parts.append(f"# {name.capitalize()}\r\n{body}")
        return "\r\n".join(parts)

    def info_sections(self) -> dict[str, Any]:
        return {
            "server": self._info_server,
            "clients": self._info_clients,
            "memory": self._info_memory,
            "persistence": self._info_persistence,
            "stats": self._info_stats,
            "replication": self._info_replication,
            "cpu": self._info_cpu,
            "cluster": lambda: {"cluster_enabled": 1},
            "keyspace": self._info_keyspace,
            "raft": self._info_raft,
            "commandstats": self._info_commandstats,
        }

    def _info_server(self) -> dict[str, Any]:
        uptime = int(time.time() - self.stats.started)
        return {
            "redis_version": VERSION,
            "respkv_version": _version(),
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

    def _info_clients(self) -> dict[str, Any]:
        return {"connected_clients": len(self.clients), "maxclients": self.config.maxclients,
                "blocked_clients": 0}

    def _info_memory(self) -> dict[str, Any]:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"used_memory": rss, "used_memory_human": f"{rss / (1 << 20):.2f}M",
                "used_memory_rss": rss, "maxmemory": 0, "maxmemory_policy": "noeviction",
                **POLICY.info()}

    def _info_persistence(self) -> dict[str, Any]:
        return {"loading": 0, "rdb_changes_since_last_save": 0, "aof_enabled": 1,
                "wal_fsync": "always"}

    def _info_stats(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "total_connections_received": stats.connections_received,
            "total_commands_processed": stats.total_commands,
            "rejected_connections": stats.rejected_connections,
            "total_protocol_errors": stats.protocol_errors,
            "expired_keys": 0,
            "keyspace_hits": 0,
            "keyspace_misses": 0,
        }

    def _info_replication(self) -> dict[str, Any]:
        """A node leading a group is a master; one leading none is a replica of the
        first group's leader, as CLUSTER NODES shows it."""
        if not self.groups:
            return {"role": "master"}
        group = self.shown_group()
        fields: dict[str, Any] = {"role": "master" if group.is_leader() else "slave"}
        if group.is_leader():
            members = group.members()
            others = [n for n in (*members.voters, *members.learners) if n != group.node_id]
            fields["connected_slaves"] = len(others)
        else:
            address = group.leader_client_address() or "?:0"
            host, _, port = address.rpartition(":")
            fields.update({"master_host": host, "master_port": port,
                           "master_link_status": "up" if group.leader_id() else "down"})
        fields.update(self._info_raft())
        return fields

    def _info_cpu(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"used_cpu_sys": f"{usage.ru_stime:.6f}", "used_cpu_user": f"{usage.ru_utime:.6f}"}

    def _info_keyspace(self) -> dict[str, Any]:
        keys = sum(len(group.keyspace) for group in self.groups)
        if not keys:
            return {}
        expires = sum(len(group.keyspace.expires) for group in self.groups)
        return {"db0": f"keys={keys},expires={expires},avg_ttl=0"}

    def _info_raft(self) -> dict[str, Any]:
        """The node, the first group (g0) unprefixed, then a line per group."""
        if not self.groups:
            return {}
        fields: dict[str, Any] = {
            "raft_node_id": self.config.node_id,
            "raft_cluster_id": self.node.info.cluster_id if self.node.info else "",
            "raft_shards": len(self.groups),
            "raft_leads": ",".join(group.name for group in self.led_groups()),
            "raft_wal_fsyncs": self.node.log.fsyncs if self.node.log else 0,
        }
        per_group = [_group_fields(group) for group in self.groups]
        for name, value in per_group[0].items():
            fields[f"raft_{name}"] = value
        for group, values in zip(self.groups, per_group, strict=True):
            fields[f"raft_group_{group.name}"] = ",".join(  # member lists: | between ids
                f"{k}={str(v).replace(',', '|')}" for k, v in values.items() if k != "group")
        return fields

    def _info_commandstats(self) -> dict[str, Any]:
        return {f"cmdstat_{name}": f"calls={calls},usec=0,usec_per_call=0.00,"
                "rejected_calls=0,failed_calls=0"
                for name, calls in sorted(self.stats.calls.items())}


def _group_fields(group: RaftGroup) -> dict[str, Any]:
    members = group.members()
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
        "read_rounds": group.read_rounds,
        "reads_in_rounds": group.reads,
    }


def _version() -> str:
    from respkv import __version__

    return __version__


