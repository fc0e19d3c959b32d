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
import signal
import time
from pathlib import Path
from typing import Any

from respkv import commands  # noqa: F401  (registers every command in the table)
from respkv.clock import now_ms
from respkv.commands import encoding
from respkv.commands.context import ServerContext, Session
from respkv.commands.table import apply_write
from respkv.config import RESERVED_FDS, Config, client_capacity
from respkv.gcpolicy import POLICY
from respkv.replication.admin import ClusterAdmin
from respkv.replication.node import ClusterNode
from respkv.server.access import AccessControl
from respkv.server.blocking import BlockedPops
from respkv.server.client import Client
from respkv.server.dispatch import Dispatcher
from respkv.server.info import Info
from respkv.server.loopwatch import watch_loop
from respkv.server.pubsub import PubSubHub
from respkv.server.router import Router
from respkv.server.scripts import ScriptRunner
from respkv.server.stats import Stats
from respkv.server.tlsclient import TlsClient

logger = logging.getLogger(__name__)

REAP_INTERVAL = 0.1  # seconds between sweeps for expired keys
REAP_BATCH = 200  # keys deleted per sweep entry
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds a connection to the TLS port has to finish its handshake
SWEEP_INTERVAL = 0.5  # seconds between looks at idle clients and soft output limits
LIMIT_LOG_INTERVAL = 10.0  # at most one line per limit this often; the rest are counted


class RateLimitedLog:
    """One warning per interval; the lines held back are counted in the next one."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -interval
        self.held = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.held += 1
            return
        if self.held:
            message += f" ({self.held} more since the last such line)"
        self.last, self.held = now, 0
        logger.warning(message)


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
        encoding.configure(config)
        self.stats = Stats(config)
        self.clients: dict[int, Client] = {}
        self._client_ids = 0
        self.node = ClusterNode(config, apply_write)
        self.cluster = ClusterAdmin(self.node)
        self.router = Router(self.node)
        self.info = Info(config, self.stats, self.clients, self.node, self.cluster, POLICY)
        self.pubsub = PubSubHub(self._broadcast)
        self.blocked = BlockedPops(self.router, self.stats)
        self.scripts = ScriptRunner(self.router, config)
        self.access = AccessControl(config, self.sessions, self._auth_failed, self.cluster)
        self.context = ServerContext(config, self.stats, self.sessions, self.cluster,
                                     self.info.text, self.request_shutdown, self.pubsub,
                                     self.blocked.unblock, self.scripts, self.access)
        self.scripts.context = self.context
        self.dispatcher = Dispatcher(self.router, self.stats, self.context, self.blocked,
                                     self.scripts, self.access)
        self.listeners: list[asyncio.AbstractServer] = []  # the plain port, the TLS port
        # built here, so that a certificate that cannot be loaded fails the start at once
        self.client_tls = (config.tls_files.server_context(config.tls_auth_clients)
                           if config.tls_port else None)
        self.stopped = asyncio.Event()
        self.shutdown_requested = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.lock_fd: int | None = None
        self.limit_logs = {"query": RateLimitedLog(LIMIT_LOG_INTERVAL),
                           "output": RateLimitedLog(LIMIT_LOG_INTERVAL)}

    # -- lifecycle -------------------------------------------------------------

    def _synced(self, seconds: float) -> None:
        """A loop turn's WAL fsync took this long."""
        self.stats.latency.add("fsync", seconds * 1000)
        self.stats.fsync_seconds.observe(seconds)

    async def start(self) -> None:
        config = self.config
        self.access.seed_from_file()  # a bad ACL file stops the start before anything else
        self._fit_maxclients()
        self.lock_fd = lock_directory(config.data_dir)
        self.node.on_removed = self.request_shutdown
        loop = asyncio.get_running_loop()
        # Bind before joining: a port in use must fail the start, not leave behind a
        # member that the cluster added and that never comes up.
        if config.port:
            self.listeners.append(await loop.create_server(
                self._new_client, config.bind, config.port, reuse_address=True, backlog=1024,
                start_serving=False,
            ))
        if self.client_tls is not None:
            self.listeners.append(await loop.create_server(
                self._new_tls_client, config.bind, config.tls_port, reuse_address=True,
                backlog=1024, start_serving=False, ssl=self.client_tls,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            ))
        await self.node.start()
        assert self.node.transport is not None
        assert self.node.wal is not None
        self.node.wal.after_sync = self._synced
        self.node.transport.on_broadcast = self.pubsub.on_broadcast
        self.router.start()
        self.access.start(self.node.groups[0])
        self.tasks.append(asyncio.create_task(self.access.seed_when_leader(), name="aclfile"))
        for listener in self.listeners:
            await listener.start_serving()
        self.tasks.append(asyncio.create_task(self._reap_expired(), name="reaper"))
        self.tasks.append(asyncio.create_task(self.router.evictor.run(), name="evictor"))
        if config.metrics_port:
            from respkv.server.metrics import ServerCollector, serve_metrics

            serve_metrics(ServerCollector(config, self.stats, self.clients, self.node))
        self.tasks.append(asyncio.create_task(self._sweep_clients(), name="clients"))
        self.tasks.append(asyncio.create_task(watch_loop(self.stats), name="loopwatch"))
        gc.freeze()  # what start-up made lives for good: keep it out of every collection
        logger.info("ready to accept connections", extra={
            "port": config.port, "tls_port": config.tls_port, "dir": config.dir})

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
            logger.info("stopped before start-up finished")
            return
        starting.result()  # start-up errors propagate
        await stop
        await self.shutdown()

    def _on_signal(self) -> None:
        if self.shutdown_requested.is_set():
            logger.warning("second signal: exiting now")
            os._exit(1)
        logger.info("signal received: shutting down")
        self.shutdown_requested.set()

    def _auth_failed(self) -> None:
        self.stats.auth_failures += 1

    def request_shutdown(self) -> None:
        self.shutdown_requested.set()

    async def shutdown(self) -> None:
        for listener in self.listeners:
            listener.close()  # 1. stop accepting, and reading from the clients
        for client in list(self.clients.values()):
            client.drain()
        self.scripts.stop()  # a script still running ends; its writes were never logged
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
        logger.info("shutdown complete")
        self.stopped.set()

    async def _drain_clients(self, deadline: float) -> None:
        end = time.monotonic() + deadline
        while any(c.inflight for c in self.clients.values()) and time.monotonic() < end:
            await asyncio.sleep(0.01)

    # -- clients ---------------------------------------------------------------

    def _new_client(self) -> Client:
        self._client_ids += 1
        return Client(self, self._client_ids)

    def _new_tls_client(self) -> TlsClient:
        """Made when the connection is accepted: it counts as a client (connection_made)
        once its TLS handshake is done; a refused handshake is closed by ssl, silently."""
        self._client_ids += 1
        return TlsClient(self, self._client_ids)

    def tls_address_of(self, client_address: str) -> str | None:
        return self.node.book.tls_of(client_address)

    def _broadcast(self, payload: bytes) -> int:
        transport = self.node.transport
        return 0 if transport is None else transport.broadcast(payload)

    def sessions(self) -> list[Session]:
        return list(self.clients.values())

    def register(self, client: Client) -> bool:
        self.stats.connections_received += 1
        if len(self.clients) >= self.config.maxclients:
            self.stats.rejected_connections += 1
            return False
        self.clients[client.id] = client
        return True

    def unregister(self, client: Client) -> None:
        self.clients.pop(client.id, None)

    def limit_reached(self, client: Client, limit: str, detail: str) -> None:
        who = f"id={client.id} addr={client.addr} laddr={client.laddr} {detail}"
        if limit == "query":
            self.stats.query_limit_disconnections += 1
            self.limit_logs[limit].warning(
                f"Closing client that reached max query buffer length: {who}")
        else:
            self.stats.output_limit_disconnections += 1
            self.limit_logs[limit].warning(
                f"Client {who} scheduled to be closed ASAP for overcoming of output buffer "
                "limits.")  # Redis' words; here it is closed at once

    def _fit_maxclients(self) -> None:
        """As Redis: raise the open-file limit to fit maxclients, else lower maxclients."""
        config = self.config
        wanted = config.maxclients
        allowed = client_capacity(wanted)
        if allowed < wanted:
            logger.warning(
                f"You requested maxclients of {wanted} requiring at least "
                f"{wanted + RESERVED_FDS} max file descriptors. maxclients has been reduced "
                f"to {allowed} to compensate for low ulimit. If you need higher maxclients "
                "increase 'ulimit -n'.")
            config.maxclients = allowed

    # -- background work --------------------------------------------------------

    async def _reap_expired(self) -> None:
        """Each group's leader proposes deletions of expired keys, a batch at a time."""
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            proposals = []
            for group in self.node.groups:
                if group.is_leader():
                    keys = group.keyspace.expired_keys(now_ms(), REAP_BATCH)
                    if keys:
                        proposals.append(group.propose([b"respkv.reap", *keys]))
            # a leader that lost its lead meanwhile, a stopping node: the next sweep retries
            await asyncio.gather(*proposals, return_exceptions=True)

    async def _sweep_clients(self) -> None:
        """Close idle clients (``timeout``) and those that stayed past a soft output
        limit: a client over it that is sent nothing more is not checked on writes."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            limit = self.config.timeout
            cutoff = time.monotonic() - limit
            for client in list(self.clients.values()):
                if client.soft_since is not None and client.check_output():
                    continue
                if limit > 0 and client.last_active < cutoff and not client.idle_exempt:
                    logger.debug("Closing idle client", extra={"client": client.addr})
                    client.abort()
