"""Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, and the log entry EXEC makes.

Queueing and WATCH live on the connection, in the server's transaction layer
(respkv.commands.context.Transactions). What reaches the log is one entry,
``respkv.exec``, holding every queued data command: apply runs them one after
the other against the keyspace, so every node applies the whole transaction at
once or not at all, and no node ever shows half of it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable

import hiredis

from respkv.commands import errors
from respkv.commands.context import Session, Transactions
from respkv.commands.table import Kind, command, lookup
from respkv.protocol.reply import Reply, RespError
from respkv.state.keyspace import Keyspace

logger = logging.getLogger(__name__)

_FLAGS = ("noscript", "loading", "stale", "fast", "allow_busy")


@command("multi", 1, Kind.TRANSACTION, flags=_FLAGS, family="transactions", since="1.2.0",
         summary="Mark the start of a transaction block")
def multi(transactions: Transactions, session: Session, args: list[bytes]) -> Reply:
    return transactions.multi(session)


@command("exec", 1, Kind.TRANSACTION, flags=("noscript", "loading", "stale", "skip_slowlog"),
         family="transactions", since="1.2.0", summary="Execute all commands issued after MULTI")
def exec_(transactions: Transactions, session: Session,
          args: list[bytes]) -> Reply | Awaitable[Reply]:
    return transactions.exec(session)


@command("discard", 1, Kind.TRANSACTION, flags=_FLAGS, family="transactions",
         since="2.0.0", summary="Discard all commands issued after MULTI")
def discard(transactions: Transactions, session: Session, args: list[bytes]) -> Reply:
    return transactions.discard(session)


@command("watch", -2, Kind.TRANSACTION, flags=_FLAGS, keys=(1, -1, 1), family="transactions",
         since="2.2.0", summary="Watch the given keys to determine execution of the "
         "MULTI/EXEC block")
def watch(transactions: Transactions, session: Session, args: list[bytes]) -> Reply:
    return transactions.watch(session, args[1:])


@command("unwatch", 1, Kind.TRANSACTION, flags=_FLAGS, family="transactions",
         since="2.2.0", summary="Forget about all watched keys")
def unwatch(transactions: Transactions, session: Session, args: list[bytes]) -> Reply:
    return transactions.unwatch(session)


# -- the log entry -----------------------------------------------------------------


def exec_entry(commands: Iterable[list[bytes]]) -> list[bytes]:
    """The arguments of the ``respkv.exec`` entry for these queued commands."""
    return [b"respkv.exec", *(hiredis.pack_command(tuple(argv)) for argv in commands)]


def _unpack(packed: bytes) -> list[bytes]:
    reader = hiredis.Reader()
    reader.feed(packed)
    argv = reader.gets()
    if not isinstance(argv, list) or not argv or reader.has_data():
        raise errors.SYNTAX
    return argv


@command(
    "respkv.exec", -2, Kind.WRITE, flags=("internal",), family="transactions", since="0.1.0",
    summary="The commands of one MULTI/EXEC, applied together (proposed by the leader)",
)
def apply_exec(db: Keyspace, args: list[bytes], now: int) -> Reply:
    """Each argument is one queued command (RESP-encoded); the reply is their replies.
    A command that fails at run time gives its error in its place, and the others run
    (Redis does not roll back)."""
    try:
        commands = [_unpack(packed) for packed in args[1:]]
    except RespError:
        return RespError("ERR respkv.exec: a queued command is not one RESP array")
    replies: list[Reply] = []
    for argv in commands:
        found = lookup(argv[0])
        if found is None or found.kind not in (Kind.READ, Kind.WRITE) or found.internal \
                or not found.arity_ok(len(argv)):
            replies.append(errors.unknown_command(argv[0], argv[1:]))
            continue
        try:
            replies.append(found.handler(db, argv, now))
        except RespError as error:
            replies.append(error)
        except Exception:  # a bug in a handler: the same on every node, so log and go on
            logger.exception("apply failed in a transaction", extra={"command": argv[0][:64]})
            replies.append(RespError("ERR internal error while applying the command"))
    return replies
