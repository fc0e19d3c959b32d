"""MULTI/EXEC and WATCH on the client port, with Redis' semantics.

Between MULTI and EXEC a connection's commands are checked (name, arity, where
their keys live) and queued. EXEC sends the queued data commands to the log as
one ``respkv.exec`` entry of their group, so the transaction is applied whole on
every node. Its keys must all live in one group (Redis Cluster asks for one slot;
one group is enough here, since one entry is atomic either way), which this node
must lead; otherwise the command gets -CROSSSLOT or -MOVED and EXEC then fails
with EXECABORT, as in Redis Cluster. Connection and server commands queued in a
transaction run at EXEC on this node, their replies in their places. A transaction
that holds a script (EVAL, EVALSHA) runs on a draft instead, as a script does (see
respkv.server.scripts): its writes still reach the log as one entry.

WATCH marks keys in the group's keyspace; any change applied to one of them (or
its expiry passing) makes the EXEC answer a null array. The check and the
proposal must see the same state: EXEC with watched keys holds the node's gate
(no other write is proposed meanwhile), waits until every write already proposed
to the group is applied, checks, proposes, and opens the gate again.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from respkv.clock import now_ms
from respkv.commands import errors
from respkv.commands.context import ServerContext, Session
from respkv.commands.scripting import SCRIPT_CALLS
from respkv.commands.table import Command, Kind
from respkv.commands.transactions import exec_entry
from respkv.protocol.reply import NULL_ARRAY, OK, QUEUED, Reply, RespError
from respkv.replication.group import RaftGroup
from respkv.replication.slots import key_slot
from respkv.server.futures import settle
from respkv.server.refusals import moved
from respkv.server.router import Router
from respkv.server.scripts import ScriptRunner
from respkv.state.keyspace import Keyspace, Watch

SETTLE_TIMEOUT = 10.0  # seconds an EXEC with WATCH waits for the group's earlier writes
EXECABORT = RespError("EXECABORT Transaction discarded because of previous errors.")
MOVED_AWAY = RespError("TRYAGAIN leadership moved during EXEC; retry")
NESTED = RespError("ERR MULTI calls can not be nested")
WATCH_IN_MULTI = RespError("ERR WATCH inside MULTI is not allowed")
NOT_IN_MULTI = RespError("ERR Command not allowed inside a transaction")


@dataclass(slots=True)
class Queued:
    command: Command
    args: list[bytes]


@dataclass(slots=True)
class Transaction:
    queued: list[Queued] = field(default_factory=list)
    failed: bool = False  # a command was refused: EXEC answers EXECABORT
    group: RaftGroup | None = None  # where its keys live
    slot: int = 0


@dataclass(slots=True)
class Watching:
    keyspace: Keyspace
    watch: Watch
    live: bool  # the key existed, unexpired, when watched: its expiry aborts EXEC


class TransactionSession(Session, Protocol):
    transaction: Transaction | None
    watching: list[Watching]


def _runs_on_data(command: Command) -> bool:
    """A data command or a script: placed by its keys, run in the group's order."""
    return command.kind in (Kind.READ, Kind.WRITE) or command.name in SCRIPT_CALLS


class TransactionLayer:
    """The Transactions the MULTI family's handlers are given."""

    def __init__(self, router: Router, context: ServerContext, scripts: ScriptRunner) -> None:
        self.router = router
        self.context = context
        self.scripts = scripts  # runs a transaction that holds a script

    # -- MULTI ... EXEC --------------------------------------------------------

    def multi(self, session: TransactionSession) -> Reply:  # type: ignore[override]
        if session.transaction is not None:
            return NESTED
        session.transaction = Transaction()
        return OK

    def queue(self, session: TransactionSession, command: Command, args: list[bytes]) -> Reply:
        """A command sent inside MULTI: QUEUED, or the reason it cannot be (the EXEC
        will then fail)."""
        transaction = session.transaction
        assert transaction is not None
        try:
            if "no_multi" in command.flags:
                raise NOT_IN_MULTI
            if _runs_on_data(command):
                self._place(transaction, command, args)
        except RespError as error:
            transaction.failed = True
            return error
        transaction.queued.append(Queued(command, args))
        return QUEUED

    def refuse(self, session: TransactionSession, error: RespError) -> RespError:
        """A command refused before it could be queued (unknown, wrong arity)."""
        if session.transaction is not None:
            session.transaction.failed = True
        return error

    def _place(self, transaction: Transaction, command: Command, args: list[bytes]) -> None:
        router = self.router
        for index in command.key_positions(args):
            slot = key_slot(args[index])
            group = router.groups[router.owner[slot]]
            if transaction.group is None:
                transaction.group, transaction.slot = group, slot
            elif group is not transaction.group:
                raise errors.CROSSSLOT
        group = transaction.group
        if group is not None and not group.is_leader():
            raise moved(transaction.slot, group.leader_client_address())

    def discard(self, session: TransactionSession) -> Reply:  # type: ignore[override]
        if session.transaction is None:
            return RespError("ERR DISCARD without MULTI")
        session.transaction = None
        self.forget(session)
        return OK

    def exec(self, session: TransactionSession) -> Reply | Awaitable[Reply]:  # type: ignore[override]
        transaction = session.transaction
        if transaction is None:
            return RespError("ERR EXEC without MULTI")
        session.transaction = None
        watching, session.watching = session.watching, []
        if transaction.failed:
            self._unwatch(watching)
            return EXECABORT
        data = [q for q in transaction.queued if _runs_on_data(q.command)]
        if not data:
            aborted = self._watch_broken(watching, now_ms())
            self._unwatch(watching)
            return NULL_ARRAY if aborted else self._server_replies(session, transaction, [])
        group = transaction.group or self._keyless_group()
        if not group.is_leader():
            self._unwatch(watching)
            return moved(transaction.slot, group.leader_client_address())
        if any(q.command.name in SCRIPT_CALLS for q in data):
            return self._run_scripted(session, transaction, group, data, watching)
        if not watching:
            return self._run(session, transaction, group, data, [])
        return self._run_watched(session, transaction, group, data, watching)

    def _keyless_group(self) -> RaftGroup:
        groups = self.router.groups
        return next((g for g in groups if g.is_leader()), groups[0])

    async def _run(self, session: TransactionSession, transaction: Transaction,
                   group: RaftGroup, data: list[Queued], watching: list[Watching]) -> Reply:
        future = group.propose(exec_entry(q.args for q in data), transaction.slot)
        replies = await future
        return self._server_replies(session, transaction, list(replies))

    async def _run_watched(self, session: TransactionSession, transaction: Transaction,
                           group: RaftGroup, data: list[Queued],
                           watching: list[Watching]) -> Reply:
        router = self.router
        while router.gate is not None:  # another EXEC or cross-group write holds the node
            await asyncio.shield(router.gate)
        router.gate = gate = asyncio.get_running_loop().create_future()
        try:
            if not await settle([group], SETTLE_TIMEOUT):
                return MOVED_AWAY
            if self._watch_broken(watching, now_ms()):
                return NULL_ARRAY
            future = group.propose(exec_entry(q.args for q in data), transaction.slot)
        finally:
            self._unwatch(watching)
            router.gate = None
            gate.set_result(None)
        return self._server_replies(session, transaction, list(await future))

    async def _run_scripted(self, session: TransactionSession, transaction: Transaction,
                            group: RaftGroup, data: list[Queued],
                            watching: list[Watching]) -> Reply:
        try:
            replies = await self.scripts.run_transaction(
                group, transaction.slot, [(q.command, q.args) for q in data], session,
                aborted=lambda now: self._watch_broken(watching, now))
        finally:
            self._unwatch(watching)
        if not isinstance(replies, list):
            return replies  # aborted by a watched key (a null array), or an error
        return self._server_replies(session, transaction, replies)

    def _server_replies(self, session: TransactionSession, transaction: Transaction,
                        data_replies: list[Reply]) -> Reply:
        """EXEC's reply: the data commands' replies (from the log), the others run here."""
        replies: list[Reply] = []
        pending = iter(data_replies)
        for queued in transaction.queued:
            if _runs_on_data(queued.command):
                replies.append(next(pending))
                continue
            try:
                reply = queued.command.handler(self.context, session, queued.args)
                if inspect.isawaitable(reply):
                    reply.close()  # type: ignore[union-attr]
                    reply = RespError("ERR Command not allowed inside a transaction")
            except RespError as error:
                reply = error
            replies.append(reply)
        return replies

    # -- WATCH -------------------------------------------------------------------

    def watch(self, session: TransactionSession, keys: list[bytes]) -> Reply:  # type: ignore[override]
        if session.transaction is not None:
            return WATCH_IN_MULTI
        router = self.router
        now = now_ms()
        for key in keys:
            slot = key_slot(key)
            group = router.groups[router.owner[slot]]
            if not group.is_leader():
                return moved(slot, group.leader_client_address())
        for key in keys:
            keyspace = router.group_of(key).keyspace
            if any(w.keyspace is keyspace and w.watch.key == key for w in session.watching):
                continue
            live = keyspace.exists_for_read(key, now)
            session.watching.append(Watching(keyspace, keyspace.watch(key), live))
        return OK

    def unwatch(self, session: TransactionSession) -> Reply:  # type: ignore[override]
        self.forget(session)
        return OK

    def forget(self, session: TransactionSession) -> None:
        """Drop the session's watches (UNWATCH, DISCARD, a closed connection)."""
        watching, session.watching = session.watching, []
        self._unwatch(watching)

    @staticmethod
    def _unwatch(watching: list[Watching]) -> None:
        for w in watching:
            w.keyspace.unwatch(w.watch)

    @staticmethod
    def _watch_broken(watching: list[Watching], now: int) -> bool:
        return any(w.watch.touched or (w.live and not w.keyspace.exists_for_read(w.watch.key, now))
                   for w in watching)
