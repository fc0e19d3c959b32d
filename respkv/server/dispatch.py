"""From an argument list to a reply: lookup, arity, routing, consistency.

``dispatch`` answers at once with encoded bytes when it can, or says what
the connection must wait for:

- ``("write", future)``: proposed to the log; the future holds the reply.
- ``("blocked", None)``: writes of this connection are still in flight and
  this command must see them: run it again once they are applied.
- ``("wait", future)``: writes in flight on the node (a cross-group write): run the
  command again when it resolves.
- ``("barrier", (future, groups))``: a read barrier on these groups; run the command
  again once it has passed.
- ``("async", awaitable)``: a server command that awaits something.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import TYPE_CHECKING, Any

from respkv.commands import errors
from respkv.commands.table import COMMANDS, Command, Kind
from respkv.protocol.reply import RespError, encode
from respkv.server.router import Blocked

if TYPE_CHECKING:
    from respkv.server.client import Client
    from respkv.server.server import Server

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.stats = server.stats
        self.calls = server.stats.calls
        self.router = server.router
        self.route = server.router.route

    def dispatch(self, client: Client, args: list[bytes]) -> bytes | tuple[str, Any]:
        after = client.after_barrier
        if after is not None:  # this command's read barrier has just resolved
            client.after_barrier = None
            if client.barrier_error is not None:
                error, client.barrier_error = client.barrier_error, None
                return encode(error, client.resp3)
            if after[0] is args and self.router.gate is None:
                return self._execute(client, after[1], after[2], args)  # routed already
        try:
            command = COMMANDS[args[0].decode("latin-1").lower()]
        except KeyError:
            command = None
        if command is None or command.internal:
            return encode(errors.unknown_command(args[0], args[1:]), client.resp3)
        arity, argc = command.arity, len(args)
        if argc != arity if arity >= 0 else argc < -arity:
            return encode(errors.wrong_arity(command.name), client.resp3)
        kind = command.kind
        if kind is Kind.WRITE:
            routed = self.route(command, args)
            if routed.__class__ is RespError:
                return encode(routed, client.resp3)
            if routed.__class__ is Blocked:
                return ("wait", routed.future)
            client.last_command = name = command.name
            self.calls[name] += 1
            return ("write", routed.propose(args))
        if client.inflight:
            return ("blocked", None)
        routed = None
        if kind is Kind.READ:
            routed = self.route(command, args)
            if routed.__class__ is RespError:
                return encode(routed, client.resp3)
            if routed.__class__ is Blocked:
                return ("wait", routed.future)
            if not routed.reads_local and client.needs_barrier(routed.names):
                mode = client.read_consistency or self.server.config.read_consistency
                barrier = routed.read_barrier(mode)
                if barrier is not None:
                    client.after_barrier = (args, command, routed)
                    return ("barrier", (barrier, routed.names))
        return self._execute(client, command, routed, args)

    def _execute(self, client: Client, command: Command, routed: Any,
                 args: list[bytes]) -> bytes | tuple[str, Any]:
        client.last_command = name = command.name
        self.calls[name] += 1
        try:
            if routed is not None:
                reply = command.handler(routed.keyspace, args, int(time.time() * 1000))
            else:
                reply = command.handler(client, args)
                if inspect.isawaitable(reply):
                    return ("async", reply)
        except RespError as error:
            reply = error
        except Exception as error:  # a bug: answer, log, keep serving
            log.exception("command %s failed", command.name)
            reply = RespError(f"ERR internal error: {error.__class__.__name__}")
        return encode(reply, client.resp3)
