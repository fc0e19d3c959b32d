"""From an argument list to a reply: lookup, arity, routing, consistency.

``dispatch`` answers at once with encoded bytes when it can, or with one of the
outcomes below, which say what the connection must wait for.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Protocol

from respkv.clock import now_ms
from respkv.commands import errors
from respkv.commands.blocking import TIMEOUTS
from respkv.commands.context import ServerContext
from respkv.commands.table import Command, Kind, lookup
from respkv.protocol.reply import Reply, RespError, Sliced, encode
from respkv.replication.outcomes import ReplicationError
from respkv.server.access import AccessControl
from respkv.server.blocking import BlockedPops
from respkv.server.refusals import reply_for
from respkv.server.router import ReadTarget, Router
from respkv.server.scripts import BUSY, ScriptRunner
from respkv.server.slicing import run_sliced
from respkv.server.stats import Stats
from respkv.server.transactions import TransactionLayer, TransactionSession

logger = logging.getLogger(__name__)


class Proposed:
    """Proposed to the log: the future holds the reply once applied. The connection
    hands the rest back to ``Dispatcher.wrote`` then, which times the command."""

    __slots__ = ("args", "command", "future", "start")

    def __init__(self, future: asyncio.Future[Reply], command: Command, args: list[bytes],
                 start: int) -> None:
        self.future = future
        self.command = command
        self.args = args
        self.start = start  # perf_counter_ns at dispatch


class AfterWrites:
    """Writes of this connection are in flight and this command must see them:
    run it again once they are applied."""

    __slots__ = ()


AFTER_WRITES = AfterWrites()


class Gated:
    """A write over several groups holds the node: run the command again after."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


class Barrier:
    """A read barrier on these groups: run the command again once it has passed."""

    __slots__ = ("future", "groups")

    def __init__(self, future: asyncio.Future[None], groups: tuple[str, ...]) -> None:
        self.future = future
        self.groups = groups


class Pending:
    """A command that awaits something (a server command, a blocking pop, a reply
    built in slices): its reply comes later."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Reply]) -> None:
        self.awaitable = awaitable


Outcome = bytes | Proposed | AfterWrites | Gated | Barrier | Pending


class Caller(TransactionSession, Protocol):
    """The connection dispatch runs a command for: a session, and what dispatch
    reads and keeps on it."""

    resp3: bool
    inflight: int  # writes proposed and not yet applied
    read_consistency: str | None
    last_command: str
    addr: str  # for SLOWLOG
    name: bytes
    # set by dispatch when a read waits on its barrier: (args, command, target)
    after_barrier: tuple[list[bytes], Command, ReadTarget] | None
    barrier_error: RespError | None  # a failed barrier, for the read waiting on it

    def needs_barrier(self, groups: tuple[str, ...]) -> bool: ...

    def barrier_passed_now(self, groups: tuple[str, ...]) -> None:
        """A read on these groups may run now (a leader's lease): the commands received
        so far are covered, as a barrier passed now would cover them."""

    @property
    def subscribed(self) -> bool:
        """Subscribed to any channel, pattern or shard channel."""


# What a RESP2 connection may send while it is subscribed (RESP3 may send anything).
_WHILE_SUBSCRIBED = frozenset({"subscribe", "unsubscribe", "psubscribe", "punsubscribe",
                               "ssubscribe", "sunsubscribe", "ping", "quit", "reset"})


NOAUTH = RespError("NOAUTH Authentication required.")


class Dispatcher:
    def __init__(self, router: Router, stats: Stats, context: ServerContext,
                 blocked: BlockedPops, scripts: ScriptRunner, access: AccessControl) -> None:
        self.router = router
        self.access = access
        self.times = stats.commands
        self.context = context
        self.config = context.config
        self.transactions = TransactionLayer(router, context, scripts)
        self.blocked = blocked
        self.scripts = scripts

    def dispatch(self, client: Caller, args: list[bytes]) -> Outcome:
        start = perf_counter_ns()
        after = client.after_barrier
        if after is not None:  # this command's read barrier has just resolved
            client.after_barrier = None
            if client.barrier_error is not None:
                error, client.barrier_error = client.barrier_error, None
                return encode(error, client.resp3)
            if after[0] is args and self.router.gate is None:
                return self._execute(client, after[1], after[2], args, start)  # routed already
        command = lookup(args[0])
        if command is None or command.internal:
            return self._refuse(client, errors.unknown_command(args[0], args[1:]))
        if not command.arity_ok(len(args)):
            return self._refuse(client, errors.wrong_arity(command.name), command)
        kind = command.kind
        router = self.router
        if not client.authenticated and not command.flagged(args, "noauth"):
            return self._refuse(client, NOAUTH, command)
        access = self.access
        if access.keyspace.system_version != access.version \
                or access.requirepass is not self.config.requirepass:
            access.refresh()  # the users changed: sessions now have their new rules
        if not client.user.unrestricted:
            client.last_command = command.call_name(args)  # the ACL log shows the call
            refusal = access.check(client, command, args,
                                   "multi" if client.transaction is not None else "toplevel")
            if refusal is not None:
                return self._refuse(client, refusal, command)
        if router.gate is not None and self.scripts.busy() \
                and not command.flagged(args, "allow_busy"):
            return self._refuse(client, BUSY, command)
        if client.subscribed and not client.resp3 and command.name not in _WHILE_SUBSCRIBED:
            return encode(RespError(
                f"ERR Can't execute '{command.name}': only (P|S)SUBSCRIBE / "
                "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"), False)
        if client.transaction is not None and kind is not Kind.TRANSACTION:
            # as Redis: over maxmemory with nothing to evict, a transaction queues nothing
            if self.config.maxmemory and command.name not in ("quit", "reset") \
                    and not router.evictor.admit():
                return self._refuse(client, errors.OOM, command)
            return encode(self.transactions.queue(client, command, args), client.resp3)
        if kind is Kind.TRANSACTION:
            return self._transaction(client, command, args, start)
        if kind is Kind.WRITE:
            if router.gate is not None:
                return Gated(router.gate)
            timeout = TIMEOUTS.get(command.name)
            if timeout is not None:
                return self._blocking(client, command, args, timeout, start)
            try:
                future = router.write(command, args)
            except RespError as error:  # not ours (MOVED), no leader, too big...
                self.times.rejected(command.name)
                return encode(error, client.resp3)
            client.last_command = command.name
            return Proposed(future, command, args, start)
        if client.inflight:
            return AFTER_WRITES
        target = None
        if kind is Kind.READ:
            if router.gate is not None:
                return Gated(router.gate)
            target = router.read_target(command, args)
            if not target.reads_local and client.needs_barrier(target.names):
                mode = client.read_consistency or self.config.read_consistency
                barrier = target.read_barrier(mode)
                if barrier is not None:
                    client.after_barrier = (args, command, target)
                    return Barrier(barrier, target.names)
                client.barrier_passed_now(target.names)
        return self._execute(client, command, target, args, start)

    def wrote(self, client: Caller, proposed: Proposed) -> None:
        """A write's reply is ready (applied, or failed): time it from its dispatch."""
        future = proposed.future
        failed = future.cancelled() or future.exception() is not None \
            or future.result().__class__ is RespError
        command = proposed.command
        self.times.finished(command.name, command, proposed.start, failed, client,
                            proposed.args)

    def _blocking(self, client: Caller, command: Command, args: list[bytes],
                  timeout: Callable[[list[bytes]], int], start: int) -> Outcome:
        if client.inflight:
            return AFTER_WRITES  # block only once this connection's writes are in
        try:
            timeout_ms = timeout(args)
        except RespError as error:
            self.times.finished(command.name, command, start, True, client, args)
            return encode(error, client.resp3)
        client.last_command = command.name
        # timed without the wait for data, as Redis times a blocked command
        self.times.finished(command.name, command, start, False, client, args)
        return Pending(self.blocked.run(client.id, command, args, timeout_ms))

    async def _timed(self, client: Caller, command: Command, name: str, args: list[bytes],
                     start: int, awaitable: Awaitable[Reply]) -> Reply:
        """A command that awaits, timed until its reply is ready."""
        failed = True
        try:
            reply = await awaitable
            failed = reply.__class__ is RespError
            return reply
        finally:
            self.times.finished(name, command, start, failed, client, args)

    def _denied_oom(self, client: Caller) -> bool:
        """An EXEC holding a denyoom command, over maxmemory with nothing to evict."""
        transaction = client.transaction
        return (transaction is not None
                and any("denyoom" in queued.command.flags for queued in transaction.queued)
                and not self.router.evictor.admit())

    def _refuse(self, client: Caller, error: RespError, command: Command | None = None) -> bytes:
        if command is not None:
            self.times.rejected(command.name)
        return encode(self.transactions.refuse(client, error), client.resp3)

    def _transaction(self, client: Caller, command: Command, args: list[bytes],
                     start: int) -> Outcome:
        """MULTI, EXEC, DISCARD, WATCH, UNWATCH."""
        name = command.name
        if name in ("exec", "watch"):
            if self.router.gate is not None:
                return Gated(self.router.gate)
            if client.inflight and name == "watch":
                return AFTER_WRITES  # WATCH after this connection's own writes, as Redis
            if name == "exec" and self.config.maxmemory and self._denied_oom(client):
                self.transactions.discard(client)
                return encode(errors.EXECABORT_OOM, client.resp3)
        client.last_command = name
        try:
            reply = command.handler(self.transactions, client, args)
        except RespError as error:
            reply = error
        except ReplicationError as error:
            reply = reply_for(error)
        if inspect.isawaitable(reply):
            return Pending(self._timed(client, command, name, args, start, reply))
        self.times.finished(name, command, start, reply.__class__ is RespError, client, args)
        return encode(reply, client.resp3)

    def _execute(self, client: Caller, command: Command, target: ReadTarget | None,
                 args: list[bytes], start: int) -> Outcome:
        name = command.call_name(args) if command.subcommands else command.name
        client.last_command = name
        try:
            if target is not None:
                reply = (command.sliced or command.handler)(target.keyspace, args, now_ms())
                if isinstance(reply, Sliced):  # a big KEYS: built between loop turns
                    return Pending(self._timed(client, command, name, args, start,
                                               run_sliced(reply, client.resp3)))
            else:
                reply = command.handler(self.context, client, args)
                if inspect.isawaitable(reply):
                    return Pending(self._timed(client, command, name, args, start, reply))
        except RespError as error:
            reply = error
        except ReplicationError as error:
            reply = reply_for(error)
        except Exception as error:  # a bug: answer, log, keep serving
            logger.exception("command %s failed", command.name)
            reply = RespError(f"ERR internal error: {error.__class__.__name__}")
        data = encode(reply, client.resp3)
        if command.subcommands and "|" not in name and len(args) > 1:
            return data  # an unknown subcommand: as in Redis, no command's call
        self.times.finished(name, command, start, isinstance(reply, RespError), client, args)
        return data
