"""Server commands: COMMAND, INFO, CONFIG, TIME, DEBUG, SHUTDOWN, WAIT, LASTSAVE."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Mapping

from respkv.commands import docs, encoding, errors
from respkv.commands.args import parse_float, parse_int
from respkv.commands.catalog import acl_categories, key_specs, reported_flags
from respkv.commands.context import ServerContext, Session, ok_when_done
from respkv.commands.glob import stringmatch
from respkv.commands.subcommands import subcommand
from respkv.commands.table import COMMANDS, Command, Kind, command, lookup
from respkv.config import ConfigError
from respkv.protocol.reply import OK, Reply, RespError, Simple, Verbatim
from respkv.replication.addresses import is_loopback

# -- COMMAND: the table, documented by respkv.commands.docs -------------------------
#
# What a command is (name, arity, flags, key positions, family, subcommands) is the
# table's; its arguments, complexity, history, tips and key specs are the
# documentation data's: Redis 7.0's own for the commands Redis has, respkv.json's for
# the others. Summary and since are the table's where it gives them.


def _visible(table: dict[str, Command]) -> list[Command]:
    return [c for c in table.values() if not c.internal]


def command_info(cmd: Command, parent: str = "") -> list:
    name = f"{parent}|{cmd.name}" if parent else cmd.name
    ref = docs.reference(name)
    return docs.info_reply(
        name, cmd.arity, reported_flags(cmd), (cmd.first_key, cmd.last_key, cmd.step),
        acl_categories(cmd, name), ref.tips if ref is not None else (), key_specs(cmd, name),
        [command_info(sub, name) for sub in _visible(cmd.subcommands)]
        if cmd.subcommands else None,
    )


def command_docs(cmd: Command, parent: str = "") -> dict:
    name = f"{parent}|{cmd.name}" if parent else cmd.name
    ref = docs.reference(name)
    documented = ref.docs if ref is not None else {}
    fields: dict = {}
    # Redis leaves out a summary it does not have; so does respkv.
    summary = cmd.summary or documented.get("summary")
    if summary:
        fields["summary"] = summary
    fields["since"] = cmd.since if cmd.since_given else documented.get("since", cmd.since)
    fields["group"] = cmd.family
    fields.update((k, v) for k, v in documented.items() if k not in ("summary", "since", "group"))
    reply = docs.docs_reply(fields)
    if cmd.subcommands:
        reply["subcommands"] = {f"{name}|{sub.name}": command_docs(sub, name)
                                for sub in _visible(cmd.subcommands)}
    return reply


def _find(name: bytes) -> tuple[Command, str] | None:
    """A command, or a subcommand named "parent|sub" as Redis 7 allows, that clients may
    name (internal ones are not shown), with its parent's name ("" for a command)."""
    parent_name, bar, sub_name = name.partition(b"|")
    found = lookup(parent_name)
    if found is None or found.internal:
        return None
    if not bar:
        return found, ""
    sub = lookup(sub_name, found.subcommands)
    return None if sub is None or sub.internal else (sub, found.name)


def _lookup(name: bytes) -> Command | None:
    """A command clients may name (internal ones are not shown)."""
    found = lookup(name)
    return None if found is None or found.internal else found


@command("command", -1, Kind.SERVER, flags=("loading", "stale"), family="server",
         since="2.8.13")
def command_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) == 1:
        return [command_info(c) for c in _visible(COMMANDS)]
    return subcommand(server, session, args)


def _command_sub(name: str, arity: int):
    return command(name, arity, Kind.SERVER, flags=("loading", "stale"), family="server",
                   parent="command")


@_command_sub("count", 2)
def command_count(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return len(_visible(COMMANDS))


@_command_sub("info", -2)
def command_info_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) == 2:
        return [command_info(c) for c in _visible(COMMANDS)]
    return [command_info(*found) if (found := _find(n)) else None for n in args[2:]]


@_command_sub("docs", -2)
def command_docs_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) == 2:
        return {c.name: command_docs(c) for c in _visible(COMMANDS)}
    # A name asked for twice is answered once: a map's keys are unique here (Redis
    # repeats the pair).
    reply = {}
    for name in args[2:]:
        found = _find(name)
        if found is not None:
            cmd, parent = found
            reply[f"{parent}|{cmd.name}" if parent else cmd.name] = command_docs(cmd, parent)
    return reply


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
    call = args[2:]
    target, name = _lookup(call[0]), ""
    # A container's keys are its subcommand's (OBJECT ENCODING key), as Redis looks it up.
    if target is not None and target.subcommands and len(call) > 1:
        name = target.name
        sub = lookup(call[1], target.subcommands)
        target = None if sub is None or sub.internal else sub
    if target is None:
        raise RespError("ERR Invalid command specified")
    name = f"{name}|{target.name}" if name else target.name
    # Shard channels (SSUBSCRIBE, SPUBLISH) are placed like keys by the table, but Redis'
    # key specs mark them not_key: not keys to GETKEYS.
    specs = key_specs(target, name)
    channels_only = bool(specs) and all("not_key" in spec["flags"] for spec in specs)
    if (target.first_key <= 0 and target.find_keys is None) or channels_only:
        raise RespError("ERR The command has no key arguments")
    if not target.arity_ok(len(call)):
        raise RespError("ERR Invalid number of arguments specified for command")
    keys = list(target.keys(call))
    # Keys counted by an argument that counts none, or more than there are: an error
    # even where the table still finds a fixed key (ZUNIONSTORE's destination).
    if not keys or not all(_counted_keys_fit(spec, call) for spec in specs):
        raise RespError("ERR Invalid arguments specified for command")
    return keys


# How C's atoi reads a number: what Redis' key finders read a key count with (for a
# count its key specs refuse, "+1", Redis falls back to them).
_ATOI = re.compile(rb"\s*([-+]?[0-9]+)")


def _counted_keys_fit(spec: Mapping, call: list[bytes]) -> bool:
    """A "keynum" key spec's count is at least one, and that many keys follow it."""
    begin, find = spec["begin_search"], spec["find_keys"]
    if find["type"] != "keynum" or begin["type"] != "index":
        return True
    first = begin["spec"]["index"]
    at = first + find["spec"]["keynumidx"]
    number = _ATOI.match(call[at]) if at < len(call) else None
    count = int(number.group(1)) if number else 0
    last = first + find["spec"]["firstkey"] + (count - 1) * find["spec"]["keystep"]
    return count >= 1 and last < len(call)


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
         family="server", since="2.0.0")
def config_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _config_sub(name: str, arity: int,
                flags: tuple[str, ...] = ("admin", "noscript", "loading", "stale")):
    return command(name, arity, Kind.SERVER, flags=flags, family="server", parent="config")


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
_IMMUTABLE = {"node-id", "bind", "port", "raft-port", "raft-bind", "dir", "join", "join-token",
              "force-new-cluster",
              "advertise", "raft-advertise", "databases", "tick-ms", "shards",
              "unsafe-test-faults", "enable-debug-command", "aclfile", "tls-port",
              "tls-cert-file", "tls-key-file", "tls-ca-cert-file", "tls-ca-cert-dir",
              "tls-auth-clients", "tls-cluster", "tls-replication", "tls-protocols",
              "tls-ciphers"}


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
            config.set(name, value, runtime=True)
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


@_config_sub("help", 2, ("loading", "stale"))
def config_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple("CONFIG <GET|SET|RESETSTAT|REWRITE|HELP> ...")]


# -- the rest ----------------------------------------------------------------


@command("time", 1, Kind.SERVER, flags=("loading", "stale", "fast"), family="server",
         since="2.6.0")
def time_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    now = time.time_ns() // 1000
    return [str(now // 1_000_000).encode(), str(now % 1_000_000).encode()]


@command("lastsave", 1, Kind.SERVER, flags=("loading", "stale", "fast"), family="server")
def lastsave(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.cluster.saving.last_save()


_SAVING = RespError("ERR Background save already in progress")


@command("save", 1, Kind.SERVER, flags=("admin", "noscript", "no_async_loading", "no_multi"),
         family="server")
def save(server: ServerContext, session: Session, args: list[bytes]) -> Awaitable[Reply]:
    """A snapshot of every group this node holds, now; each compacts its log."""
    saving = server.cluster.saving
    if saving.in_progress:
        raise _SAVING
    return ok_when_done(saving.save())


@command("bgsave", -1, Kind.SERVER, flags=("admin", "noscript", "no_async_loading"),
         family="server")
def bgsave(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    schedule = len(args) == 2 and args[1].upper() == b"SCHEDULE"
    if len(args) > 2 or (len(args) == 2 and not schedule):
        raise errors.SYNTAX
    if server.cluster.saving.start(schedule):
        return Simple("Background saving started")
    if schedule:
        return Simple("Background saving scheduled")
    raise _SAVING


@command("wait", 3, Kind.SERVER, flags=("noscript",), family="generic", since="3.0.0")
def wait(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    parse_int(args[1])
    if parse_int(args[2]) < 0:
        raise RespError("ERR timeout is negative")
    # An acknowledged write is already on a majority: report the replicas in sync.
    return server.cluster.replicas_in_sync()


@command("shutdown", -1, Kind.SERVER,
         flags=("admin", "noscript", "loading", "stale", "no_multi", "allow_busy"),
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
    allowed = server.config.enable_debug_command
    if allowed == "no" or (allowed == "local" and not is_loopback(session.addr.rpartition(":")[0])):
        raise DEBUG_REFUSED
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


DEBUG_REFUSED = RespError(
    "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", "
    "you can run it from a local connection, otherwise you need to set this option in the "
    "configuration file, and then restart the server.")


async def _sleep(seconds: float) -> Reply:
    await asyncio.sleep(max(seconds, 0))
    return OK
