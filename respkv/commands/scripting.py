"""Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT. The Lua engine is
respkv.commands.lua; running a script on the leader against a draft and logging its
effects is the server's (respkv.server.scripts)."""

from __future__ import annotations

from collections.abc import Awaitable

from respkv.commands.args import parse_int
from respkv.commands.context import ServerContext, Session
from respkv.commands.subcommands import subcommand
from respkv.commands.table import Kind, command, numkeys_at
from respkv.protocol.reply import Reply, RespError, Simple

NUMKEYS_GREATER = RespError("ERR Number of keys can't be greater than number of args")
NUMKEYS_NEGATIVE = RespError("ERR Number of keys can't be negative")
_FLAGS = ("noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys")


# The commands that run a script: a transaction holding one runs on a draft (see
# respkv.server.scripts).
SCRIPT_CALLS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro"})


def split_eval(args: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """EVAL's ``numkeys key... arg...``: (keys, argv)."""
    numkeys = parse_int(args[2])
    if numkeys > len(args) - 3:
        raise NUMKEYS_GREATER
    if numkeys < 0:
        raise NUMKEYS_NEGATIVE
    return args[3:3 + numkeys], args[3 + numkeys:]


def _eval(server: ServerContext, session: Session, args: list[bytes], by_sha: bool,
          read_only: bool) -> Reply | Awaitable[Reply]:
    keys, argv = split_eval(args)
    body = args[1]
    source, sha = (None, body) if by_sha else (body, None)
    return server.scripts.eval(source, sha, keys, argv, session, read_only)


@command("eval", -3, Kind.SERVER, flags=_FLAGS, family="scripting", since="2.6.0",
         find_keys=numkeys_at(2), summary="Execute a Lua script server side")
def eval_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return _eval(server, session, args, by_sha=False, read_only=False)


@command("evalsha", -3, Kind.SERVER, flags=_FLAGS, family="scripting", since="2.6.0",
         find_keys=numkeys_at(2), summary="Execute a Lua script server side")
def evalsha(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return _eval(server, session, args, by_sha=True, read_only=False)


@command("eval_ro", -3, Kind.SERVER, flags=("readonly", *_FLAGS), family="scripting",
         since="7.0.0", find_keys=numkeys_at(2),
         summary="Execute a read-only Lua script server side")
def eval_ro(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return _eval(server, session, args, by_sha=False, read_only=True)


@command("evalsha_ro", -3, Kind.SERVER, flags=("readonly", *_FLAGS), family="scripting",
         since="7.0.0", find_keys=numkeys_at(2),
         summary="Execute a read-only Lua script server side")
def evalsha_ro(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return _eval(server, session, args, by_sha=True, read_only=True)


@command("script", -2, Kind.SERVER, family="scripting", since="2.6.0",
         summary="A container for Lua scripts management commands")
def script_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _script_sub(name: str, arity: int, flags: tuple[str, ...] = ("noscript",),
                since: str = "2.6.0"):
    return command(name, arity, Kind.SERVER, flags=flags, family="scripting",
                   parent="script", since=since)


@_script_sub("load", 3, ("noscript", "stale"))
def script_load(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.scripts.load(args[2])


@_script_sub("exists", -3)
def script_exists(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.scripts.exists(args[2:])


@_script_sub("flush", -2)
def script_flush(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise RespError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    if len(args) == 3 and args[2].upper() not in (b"SYNC", b"ASYNC"):
        raise RespError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    return server.scripts.flush()


@_script_sub("kill", 2, ("noscript", "allow_busy"))
def script_kill(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.scripts.kill()


@_script_sub("help", 2, ("loading", "stale"), since="5.0.0")
def script_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple(line) for line in (
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DEBUG (YES|SYNC|NO)",
        "    Set the debug mode for subsequent scripts executed.",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Prints this help.",
    )]


