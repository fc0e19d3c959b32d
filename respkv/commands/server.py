"""Server commands: COMMAND, INFO, CONFIG, TIME, DEBUG, SHUTDOWN, WAIT, LASTSAVE."""

from __future__ import annotations

import asyncio
import os
import time

from respkv.commands import encoding, errors
from respkv.commands.args import parse_float, parse_int
from respkv.commands.context import ServerContext, Session
from respkv.commands.glob import stringmatch
from respkv.commands.subcommands import subcommand
from respkv.commands.table import COMMANDS, Command, Kind, command, lookup
from respkv.config import ConfigError
from respkv.protocol.reply import OK, Reply, RespError, Simple, Verbatim

# -- COMMAND: everything derived from the table ----------------------------


def _visible(table: dict[str, Command]) -> list[Command]:
    return [c for c in table.values() if not c.internal]


def command_info(cmd: Command, parent: str = "") -> list:
    name = f"{parent}|{cmd.name}" if parent else cmd.name
    key_specs = []
    if cmd.first_key > 0:
        key_specs.append({
            "flags": [Simple("RW" if cmd.is_write else "RO")],
            "begin_search": {"type": "index", "spec": {"index": cmd.first_key}},
            "find_keys": {
                "type": "range",
                "spec": {
                    "lastkey": cmd.last_key - cmd.first_key if cmd.last_key >= 0 else cmd.last_key,
                    "keystep": cmd.step,
                    "limit": 0,
                },
            },
        })
    return [
        name,
        cmd.arity,
        [Simple(flag) for flag in cmd.flags],
        cmd.first_key,
        cmd.last_key,
        cmd.step,
        [Simple(category) for category in acl_categories(cmd)],
        [],
        key_specs,
        [command_info(sub, cmd.name) for sub in _visible(cmd.subcommands)],
    ]


_FAMILY_CATEGORY = {"generic": "@keyspace", "string": "@string", "connection": "@connection"}


def acl_categories(cmd: Command) -> list[str]:
    """Redis' ACL categories, derived from the flags and the family."""
    categories = []
    if "readonly" in cmd.flags:
        categories.append("@read")
    if "write" in cmd.flags:
        categories.append("@write")
    if cmd.family in _FAMILY_CATEGORY:
        categories.append(_FAMILY_CATEGORY[cmd.family])
    categories.append("@fast" if "fast" in cmd.flags else "@slow")
    if "admin" in cmd.flags:
        categories += ["@admin", "@dangerous"]
    return categories


def command_docs(cmd: Command) -> dict:
    docs: dict = {"summary": cmd.summary or cmd.name, "since": cmd.since, "group": cmd.family}
    if cmd.subcommands:
        docs["subcommands"] = {
            f"{cmd.name}|{sub.name}": command_docs(sub) for sub in _visible(cmd.subcommands)
        }
    return docs


def _lookup(name: bytes) -> Command | None:
    """A command clients may name (internal ones are not shown)."""
    found = lookup(name)
    return None if found is None or found.internal else found


@command("command", -1, Kind.SERVER, flags=("loading", "stale"), family="server")
def command_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) == 1:
        return [command_info(c) for c in _visible(COMMANDS)]
    return subcommand(server, session, args)


def _command_sub(name: str, arity: int):
    return command(name, arity, Kind.SERVER, family="server", parent="command")


@_command_sub("count", 2)
def command_count(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return len(_visible(COMMANDS))


@_command_sub("info", -2)
def command_info_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    names = args[2:] or [c.name.encode() for c in _visible(COMMANDS)]
    return [command_info(c) if (c := _lookup(n)) else None for n in names]


@_command_sub("docs", -2)
def command_docs_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    found = [_lookup(n) for n in args[2:]] if len(args) > 2 else _visible(COMMANDS)
    return {c.name: command_docs(c) for c in found if c is not None}


@_command_sub("list", -2)
def command_list(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    commands = _visible(COMMANDS)
    if len(args) > 2:
        if len(args) != 5 or args[2].upper() != b"FILTERBY":
            raise errors.SYNTAX
        kind, value = args[3].upper(), args[4].decode("utf-8", "replace")
        if kind == b"PATTERN":
            commands = [c for c in commands if stringmatch(value.lower().encode(), c.name.encode())]
        elif kind == b"ACLCAT":
            category = "@" + value.lower().lstrip("@")
            commands = [c for c in commands if category in acl_categories(c)]
        elif kind == b"MODULE":
            commands = []
        else:
            raise errors.SYNTAX
    return [c.name for c in commands]


@_command_sub("getkeys", -4)  # COMMAND GETKEYS command arg [arg ...]
def command_getkeys(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    target = _lookup(args[2])
    if target is None:
        raise RespError("ERR Invalid command specified")
    call = args[2:]
    if not target.arity_ok(len(call)):
        raise RespError("ERR Invalid number of arguments specified for command")
    keys = list(target.keys(call))
    if not keys:
        raise RespError("ERR The command has no key arguments")
    return keys


@_command_sub("help", 2)
def command_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple(s) for s in ("COMMAND [COUNT|INFO|DOCS|LIST|GETKEYS|HELP]",)]


# -- INFO ------------------------------------------------------------------


@command("info", -1, Kind.SERVER, flags=("loading", "stale"), family="server")
def info(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    wanted = [a.decode("utf-8", "replace").lower() for a in args[1:]]
    return Verbatim(server.info(wanted))


# -- CONFIG ----------------------------------------------------------------


@command("config", -2, Kind.SERVER, flags=("admin", "noscript", "loading", "stale"),
         family="server")
def config_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _config_sub(name: str, arity: int):
    return command(name, arity, Kind.SERVER, family="server", parent="config")


@_config_sub("get", -3)
def config_get(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    config = server.config
    found: dict[str, str] = {}
    for pattern in args[2:]:
        for name in config.names():
            if stringmatch(pattern.lower(), name.encode()):
                found[name] = config.get(name)
    return found


# Settings that only make sense at start-up; CONFIG SET refuses them as Redis does.
_IMMUTABLE = {"node-id", "bind", "port", "raft-port", "dir", "join", "advertise",
              "raft-advertise", "databases", "tick-ms", "shards", "unsafe-test-faults"}


@_config_sub("set", -4)
def config_set(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) % 2:
        raise RespError("ERR wrong number of arguments for 'config|set' command")
    config = server.config
    pairs = [(args[i].decode("utf-8", "replace"), args[i + 1].decode("utf-8", "replace"))
             for i in range(2, len(args), 2)]
    for name, _ in pairs:
        if name.lower() in _IMMUTABLE:
            raise RespError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - "
                            "can't set immutable config")
    backup = {name: config.get(name) for name, _ in pairs if name.lower() in config.names()}
    try:
        for name, value in pairs:
            config.set(name, value)
        config.validate()
    except (ConfigError, AttributeError) as error:
        for name, value in backup.items():
            config.set(name, value)
        if "Unknown option" in str(error):
            raise RespError(f"ERR Unknown option or number of arguments for CONFIG SET - "
                            f"'{pairs[0][0]}'") from None
        raise RespError(f"ERR CONFIG SET failed (possibly related to argument "
                        f"'{pairs[0][0]}') - {error}") from None
    encoding.configure(config)
    return OK


@_config_sub("resetstat", 2)
def config_resetstat(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    server.stats.reset()
    return OK


@_config_sub("rewrite", 2)
def config_rewrite(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    raise RespError("ERR The server is running without a config file")


@_config_sub("help", 2)
def config_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple("CONFIG <GET|SET|RESETSTAT|REWRITE|HELP> ...")]


# -- the rest ----------------------------------------------------------------


@command("time", 1, Kind.SERVER, flags=("loading", "stale", "fast"), family="server")
def time_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    now = time.time_ns() // 1000
    return [str(now // 1_000_000).encode(), str(now % 1_000_000).encode()]


@command("lastsave", 1, Kind.SERVER, flags=("loading", "stale", "fast"), family="server")
def lastsave(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return int(server.stats.started)


@command("wait", 3, Kind.SERVER, family="generic")
def wait(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    parse_int(args[1])
    if parse_int(args[2]) < 0:
        raise RespError("ERR timeout is negative")
    # An acknowledged write is already on a majority: report the replicas in sync.
    return server.cluster.replicas_in_sync()


@command("shutdown", -1, Kind.SERVER, flags=("admin", "noscript", "loading", "stale"),
         family="server")
def shutdown(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    for option in args[1:]:
        if option.upper() not in (b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"):
            raise errors.SYNTAX
    if any(option.upper() == b"ABORT" for option in args[1:]):
        raise RespError("ERR No shutdown in progress.")
    server.request_shutdown()
    session.close_after_replies()
    return OK


@command("debug", -2, Kind.SERVER, flags=("admin", "noscript", "loading", "stale"),
         family="server")
def debug(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    sub = args[1].upper()
    if sub == b"SLEEP" and len(args) == 3:
        return _sleep(parse_float(args[2]))
    if sub == b"PID":
        return os.getpid()
    if sub == b"FSYNC-DELAY" and len(args) == 3:
        # a slow disk, for fault tests: every log fsync takes this much longer
        delay_ms = parse_int(args[2])
        if delay_ms < 0:
            raise RespError("ERR delay must be >= 0")
        server.cluster.slow_disk(delay_ms / 1000)
        return OK
    raise RespError(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                    "Try DEBUG HELP.")


async def _sleep(seconds: float) -> Reply:
    await asyncio.sleep(max(seconds, 0))
    return OK
