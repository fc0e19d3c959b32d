"""Commands with subcommands (CLIENT, CONFIG, COMMAND, CLUSTER): ``PARENT SUB ...``
runs through the parent's own table, with Redis' errors for an unknown one or a
wrong number of arguments."""

from __future__ import annotations

from respkv.commands import errors
from respkv.commands.context import ServerContext, Session
from respkv.commands.table import lookup
from respkv.protocol.reply import Reply


def subcommand(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    parent = lookup(args[0])
    assert parent is not None  # dispatched here by its own name
    sub = lookup(args[1], parent.subcommands)
    if sub is None:
        raise errors.unknown_subcommand(parent.name, args[1])
    if not sub.arity_ok(len(args)):  # Redis 7's text names the pair: 'config|get'
        raise errors.wrong_arity(f"{parent.name}|{sub.name}")
    return sub.handler(server, session, args)
