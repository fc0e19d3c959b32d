"""SLOWLOG and LATENCY: where a node's time went, as Redis 7.0 answers them."""

from __future__ import annotations

from respkv.commands.context import ServerContext, Session
from respkv.commands.subcommands import subcommand
from respkv.commands.table import Kind, command
from respkv.protocol.reply import OK, Reply, RespError, Simple

_ADMIN = ("admin", "loading", "stale")


# -- SLOWLOG -----------------------------------------------------------------


@command("slowlog", -2, Kind.SERVER, flags=_ADMIN, family="server", since="2.2.12")
def slowlog(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _slowlog_sub(name: str, arity: int, flags: tuple[str, ...] = _ADMIN):
    return command(name, arity, Kind.SERVER, flags=flags, family="server", parent="slowlog")


_COUNT = RespError("ERR count should be greater than or equal to -1")


@_slowlog_sub("get", -2)
def slowlog_get(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) > 3:  # Redis' own parser answers this, not the arity check
        raise RespError("ERR unknown subcommand or wrong number of arguments for "
                        f"'{args[1].decode('utf-8', 'replace')}'. Try SLOWLOG HELP.")
    count = 10
    if len(args) == 3:
        try:
            count = int(args[2])
        except ValueError:
            raise _COUNT from None
        if count < -1:
            raise _COUNT
    return server.stats.slowlog.newest(count)


@_slowlog_sub("len", 2)
def slowlog_len(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return len(server.stats.slowlog)


@_slowlog_sub("reset", 2)
def slowlog_reset(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    server.stats.slowlog.reset()
    return OK


_SLOWLOG_HELP = (
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
)


@_slowlog_sub("help", 2, ("loading", "stale"))
def slowlog_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple(line) for line in _SLOWLOG_HELP]


# -- LATENCY -----------------------------------------------------------------


@command("latency", -2, Kind.SERVER, flags=("admin", "noscript", "loading", "stale"),
         family="server", since="2.8.13")
def latency(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _latency_sub(name: str, arity: int,
                 flags: tuple[str, ...] = ("admin", "noscript", "loading", "stale")):
    return command(name, arity, Kind.SERVER, flags=flags, family="server", parent="latency")


@_latency_sub("latest", 2)
def latency_latest(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.stats.latency.latest()


@_latency_sub("history", 3)
def latency_history(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.stats.latency.history(args[2].decode("utf-8", "replace"))


@_latency_sub("reset", -2)
def latency_reset(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.stats.latency.reset([a.decode("utf-8", "replace") for a in args[2:]])


# Redis' text, less DOCTOR, GRAPH and HISTOGRAM, which respkv does not have.
_LATENCY_HELP = (
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HELP",
    "    Prints this help.",
)


@_latency_sub("help", 2, ("loading", "stale"))
def latency_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple(line) for line in _LATENCY_HELP]
