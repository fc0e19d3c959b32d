"""ACL: users, their rules and the security log, as Redis 7.0's ACL command has them.

The users are the cluster's: SETUSER, DELUSER and LOAD are proposed to the log as
``respkv.acl`` entries (respkv.commands.acl_store), so every node enforces the same
users once they are applied; the others read this node's copy. A password given in
clear (``>secret``) is hashed before it is proposed: the log holds only its SHA-256.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable
from pathlib import Path

from respkv.commands import acl_store, errors
from respkv.commands.acl_users import (
    CATEGORIES,
    DEFAULT_USER,
    REASONS,
    AclError,
    Selector,
    User,
    applied,
    category_members,
    entry_for,
    hash_password,
    merge_selectors,
    new_user,
)
from respkv.commands.args import parse_int
from respkv.commands.context import ServerContext, Session
from respkv.commands.subcommands import subcommand
from respkv.commands.table import Kind, command, lookup
from respkv.protocol.reply import OK, Reply, RespError, RSet, Simple
from respkv.state.keyspace import Keyspace

_READ_FLAGS = ("noscript", "loading", "stale")
_ADMIN_FLAGS = ("admin", *_READ_FLAGS)
NO_ACLFILE = RespError(
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify "
    "users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have "
    "a Redis configuration file set) in order to store users in the Redis configuration.")


@command("acl", -2, Kind.SERVER, family="server", since="6.0.0")
def acl(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _sub(name: str, arity: int, flags: tuple[str, ...] = _ADMIN_FLAGS):
    return command(name, arity, Kind.SERVER, flags=flags, family="server", parent="acl")


def _text(value: bytes) -> str:
    return value.decode("latin-1")


@_sub("setuser", -3)
def acl_setuser(server: ServerContext, session: Session,
                args: list[bytes]) -> Reply | Awaitable[Reply]:
    name = _text(args[2])
    if any(c.isspace() or c == "\0" for c in name):
        raise RespError("ERR Usernames can't contain spaces or null characters")
    ops = merge_selectors([_text(a) for a in args[3:]])
    if isinstance(ops, int):
        raise RespError("ERR Unmatched parenthesis in acl selector starting at "
                        f"'{_text(args[3 + ops])}'.")
    current = server.acl.users().get(name)
    starting = b""  # what a user not yet defined starts from, carried in the entry
    if current is None:
        current = new_user(name)
        if server.config.acl_pubsub_default == "allchannels":
            current.apply("allchannels")
            starting = b"allchannels"
    elif name == DEFAULT_USER and not server.acl.defines(DEFAULT_USER):
        starting = current.describe().encode("latin-1")  # this node's requirepass user
    try:  # refused here with Redis' message, before anything is proposed
        applied(current, ops)
    except AclError as error:
        raise RespError(f"ERR {error}") from None
    return server.acl.change([b"setuser", args[2], starting,
                              *(_hashed(op).encode("latin-1") for op in ops)])


def _hashed(op: str) -> str:
    """A clear password rule as its hash, so that the log never holds the password."""
    if op[:1] == ">":
        return "#" + hash_password(op[1:].encode("latin-1"))
    if op[:1] == "<":
        return "!" + hash_password(op[1:].encode("latin-1"))
    return op


@_sub("deluser", -3)
def acl_deluser(server: ServerContext, session: Session,
                args: list[bytes]) -> Reply | Awaitable[Reply]:
    if any(a == DEFAULT_USER.encode() for a in args[2:]):
        raise RespError("ERR The 'default' user cannot be removed")
    return server.acl.change([b"deluser", *args[2:]])


@_sub("getuser", 3)
def acl_getuser(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    user = server.acl.users().get(_text(args[2]))
    if user is None:
        return None
    reply: dict[str, Reply] = {
        "flags": _flag_set(user),
        "passwords": list(user.passwords),
        **_selector_fields(user.root),
        "selectors": [_selector_fields(s) for s in user.selectors],
    }
    return reply


def _flag_set(user: User) -> Reply:
    return RSet(user.flags())


def _selector_fields(selector: Selector) -> dict[str, Reply]:
    return {"commands": selector.describe_commands(), "keys": selector.describe_keys(),
            "channels": selector.describe_channels()}


@_sub("list", 2)
def acl_list(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    users = server.acl.users()
    return [f"user {name} {users[name].describe()}" for name in sorted(users)]


@_sub("users", 2)
def acl_users(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return sorted(server.acl.users())


@_sub("whoami", 2, _READ_FLAGS)
def acl_whoami(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return session.user.name


@_sub("cat", -2, _READ_FLAGS)
def acl_cat(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise errors.wrong_arity("acl|cat")
    if len(args) == 2:
        return list(CATEGORIES)
    category = _text(args[2]).lower()
    if category not in CATEGORIES:
        raise RespError(f"ERR Unknown category '{_text(args[2])[:128]}'")
    return list(category_members(category))


@_sub("genpass", -2, _READ_FLAGS)
def acl_genpass(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise errors.wrong_arity("acl|genpass")
    bits = parse_int(args[2]) if len(args) == 3 else 256
    if not 0 < bits <= 4096:
        raise RespError("ERR ACL GENPASS argument must be the number of bits for the output "
                        "password, a positive number up to 4096")
    chars = (bits + 3) // 4
    return secrets.token_hex((chars + 1) // 2)[:chars]


@_sub("log", -2)
def acl_log(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) > 3:
        raise errors.wrong_arity("acl|log")
    count = 10
    if len(args) == 3:
        if args[2].lower() == b"reset":
            server.acl.reset_log()
            return OK
        count = max(parse_int(args[2]), 0)
    return server.acl.log_entries(count)


@_sub("dryrun", -4)
def acl_dryrun(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    user = server.acl.users().get(_text(args[2]))
    if user is None:
        raise RespError(f"ERR User '{_text(args[2])}' not found")
    call = args[3:]
    found = lookup(call[0])
    entry = entry_for(found, call) if found is not None and not found.internal else None
    if found is None or entry is None:
        raise RespError(f"ERR Command '{_text(args[3])}' not found")
    if not entry.command.arity_ok(len(call)):
        raise errors.wrong_arity(entry.full_name)
    reason, index = user.check(entry, call)
    if not reason:
        return OK
    if REASONS[reason] == "command":
        return f"This user has no permissions to run the '{entry.full_name}' command"
    return (f"This user has no permissions to access the '{_text(call[index])}' "
            f"{REASONS[reason]}")


@_sub("load", 2)
def acl_load(server: ServerContext, session: Session,
             args: list[bytes]) -> Reply | Awaitable[Reply]:
    path = server.config.aclfile
    if not path:
        raise NO_ACLFILE
    try:
        text = Path(path).read_text(encoding="latin-1")
    except OSError as error:
        raise RespError(f"ERR Error loading ACLs, opening file '{path}': "
                        f"{os.strerror(error.errno or 0)}") from None
    text = acl_store.with_pubsub_default(text, server.config.acl_pubsub_default)
    try:
        acl_store.parse_users(text, path)
    except acl_store.AclFileError as error:
        raise RespError(f"ERR {error}") from None
    return server.acl.change([b"load", text.encode("latin-1")])


@_sub("save", 2)
def acl_save(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    path = server.config.aclfile
    if not path:
        raise NO_ACLFILE
    target = Path(path)
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(acl_store.users_text(server.acl.users()), encoding="latin-1")
        os.replace(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise RespError("ERR There was an error trying to save the ACLs. Please check the "
                        "server logs for more information") from None
    return OK


_HELP = (
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the "
    "command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Print this help.",
)


@_sub("help", 2, ("loading", "stale"))
def acl_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple(line) for line in _HELP]


# -- the log entry ---------------------------------------------------------------------


@command("respkv.acl", -2, Kind.WRITE, flags=("internal",), family="server")
def respkv_acl(db: Keyspace, args: list[bytes], now_ms: int) -> Reply:
    """A change to the cluster's users, applied on every node in log order."""
    record, reply = acl_store.apply_change(db.system.get(acl_store.RECORD), args[1:])
    if not isinstance(reply, RespError):
        db.set_system(acl_store.RECORD, record)
    return OK if reply is None else reply  # type: ignore[return-value]
