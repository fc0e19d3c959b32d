"""Connection commands: PING, ECHO, HELLO, SELECT, QUIT, RESET, AUTH, CLIENT."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from respkv import REDIS_VERSION
from respkv.commands import errors
from respkv.commands.acl_users import DEFAULT_USER
from respkv.commands.args import parse_int
from respkv.commands.context import ServerContext, Session
from respkv.commands.subcommands import subcommand
from respkv.commands.table import Kind, command
from respkv.protocol.reply import OK, PONG, Reply, RespError, Simple, Verbatim

# AUTH, HELLO, QUIT, RESET: what a connection may send before it authenticates.
_AUTH_FLAGS = ("fast", "noauth", "allow_busy", "loading", "noscript", "stale")


@command("ping", -1, Kind.SERVER, flags=("fast",), family="connection")
def ping(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) > 2:
        raise errors.wrong_arity("ping")
    subs = session.subscriptions
    if not session.resp3 and (subs["channel"] or subs["pattern"] or subs["shard"]):
        return [b"pong", args[1] if len(args) == 2 else b""]  # Redis' subscribed form
    return args[1] if len(args) == 2 else PONG


@command("echo", 2, Kind.SERVER, flags=("fast", "loading", "stale"), family="connection")
def echo(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return args[1]


@command("hello", -1, Kind.SERVER, flags=_AUTH_FLAGS, family="connection",
         since="6.0.0")
def hello(server: ServerContext, session: Session,
          args: list[bytes]) -> Reply | Awaitable[Reply]:
    resp3 = session.resp3
    if len(args) >= 2:
        try:
            version = parse_int(args[1])
        except RespError:
            raise RespError("ERR Protocol version is not an integer or out of range") from None
        if version not in (2, 3):
            raise RespError("NOPROTO unsupported protocol version")
        resp3 = version == 3
    name = None
    credentials = None
    i = 2
    while i < len(args):
        option = args[i].upper()
        if option == b"AUTH" and i + 2 < len(args):
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif option == b"SETNAME" and i + 1 < len(args):
            name = _valid_name(args[i + 1])
            i += 2
        else:
            option_text = args[i].decode("utf-8", "replace")
            raise RespError(f"ERR Syntax error in HELLO option '{option_text}'")
    if credentials is not None:
        if not server.acl.authenticate(session, *credentials, args[0]):
            return _wrongpass(server, session)
    elif not session.authenticated:
        raise HELLO_NOAUTH
    session.resp3 = resp3
    if name is not None:
        session.name = name
    return {
        "server": "redis",
        "version": REDIS_VERSION,
        "proto": 3 if resp3 else 2,
        "id": session.id,
        "mode": "cluster",
        "role": "master" if server.cluster.leads_any() else "replica",
        "modules": [],
    }


@command("select", 2, Kind.SERVER, flags=("fast", "loading", "stale"), family="connection")
def select(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    index = parse_int(args[1], RespError("ERR value is not an integer or out of range"))
    if index != 0:
        raise RespError("ERR SELECT is not allowed in cluster mode")
    return OK


@command("quit", -1, Kind.SERVER, flags=_AUTH_FLAGS, family="connection")
def quit_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    session.close_after_replies()
    return OK


@command("reset", 1, Kind.SERVER, flags=_AUTH_FLAGS, family="connection",
         since="6.2.0")
def reset(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    session.forget_state()
    session.resp3 = False
    session.name = b""
    session.readonly = False
    session.read_consistency = None
    default = server.acl.users()[DEFAULT_USER]  # back to the default user
    session.user = default
    session.authenticated = default.nopass and default.enabled
    return Simple("RESET")


@command("auth", -2, Kind.SERVER, flags=_AUTH_FLAGS, family="connection")
def auth(server: ServerContext, session: Session,
         args: list[bytes]) -> Reply | Awaitable[Reply]:
    """AUTH [username] password."""
    if len(args) > 3:
        raise errors.SYNTAX
    if len(args) == 2:
        if server.acl.users()[DEFAULT_USER].nopass:
            raise NO_PASSWORD_SET
        user, password = DEFAULT_USER.encode(), args[1]
    else:
        user, password = args[1], args[2]
    if server.acl.authenticate(session, user, password, args[0]):
        return OK
    return _wrongpass(server, session)


NO_PASSWORD_SET = RespError(
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?")
WRONGPASS = RespError("WRONGPASS invalid username-password pair or user is disabled.")
HELLO_NOAUTH = RespError(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time")


def _wrongpass(server: ServerContext, session: Session) -> Reply | Awaitable[Reply]:
    """WRONGPASS, held back a while once an address keeps guessing."""
    delay = server.acl.failure_delay(session.addr)
    if delay <= 0:
        raise WRONGPASS
    return _refuse_after(delay)


async def _refuse_after(delay: float) -> Reply:
    await asyncio.sleep(delay)
    raise WRONGPASS


@command("client", -2, Kind.SERVER, family="connection", since="2.4.0")
def client_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _valid_name(name: bytes) -> bytes:
    if any(c < 0x21 or c > 0x7E for c in name):
        raise RespError("ERR Client names cannot contain spaces, newlines or special characters.")
    return name


_CLIENT = ("loading", "noscript", "stale")
_CLIENT_ADMIN = ("admin", *_CLIENT)


def _client_sub(name: str, arity: int, flags: tuple[str, ...] = _CLIENT):
    return command(name, arity, Kind.SERVER, flags=flags, family="connection",
                   parent="client")


@_client_sub("id", 2)
def client_id(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return session.id


@_client_sub("setname", 3)
def client_setname(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    session.name = _valid_name(args[2])
    return OK


@_client_sub("getname", 2)
def client_getname(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return session.name or None


@_client_sub("setinfo", 4, ())
def client_setinfo(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    attr = args[2].upper()
    if attr == b"LIB-NAME":
        session.lib_name = _valid_name(args[3])
    elif attr == b"LIB-VER":
        session.lib_ver = _valid_name(args[3])
    else:
        raise RespError(f"ERR Unrecognized option '{args[2].decode('utf-8', 'replace')}'")
    return OK


@_client_sub("info", 2)
def client_info(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return Verbatim(session.info_line() + "\n")


@_client_sub("list", -2, _CLIENT_ADMIN)
def client_list(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    clients = list(server.sessions())
    i = 2
    while i < len(args):
        option = args[i].upper()
        if option == b"TYPE" and i + 1 < len(args):
            kind = args[i + 1].lower()
            if kind not in (b"normal", b"master", b"replica", b"pubsub"):
                shown = args[i + 1].decode("utf-8", "replace")
                raise RespError(f"ERR Unknown client type '{shown}'")
            if kind != b"normal":
                clients = []
            i += 2
        elif option == b"ID" and i + 1 < len(args):
            ids = {parse_int(a, RespError("ERR Invalid client ID")) for a in args[i + 1 :]}
            clients = [c for c in clients if c.id in ids]
            break
        else:
            raise errors.SYNTAX
    return Verbatim("".join(c.info_line() + "\n" for c in clients))


@_client_sub("unblock", -3, _CLIENT_ADMIN)
def client_unblock(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    if len(args) > 4:
        raise errors.SYNTAX
    client_id = parse_int(args[2])
    with_error = False
    if len(args) == 4:
        mode = args[3].upper()
        if mode not in (b"TIMEOUT", b"ERROR"):
            raise RespError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
        with_error = mode == b"ERROR"
    return int(server.unblock(client_id, with_error))


@_client_sub("kill", -3, _CLIENT_ADMIN)
def client_kill(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    clients = list(server.sessions())
    if len(args) == 3:  # old form: CLIENT KILL ip:port
        victims = [c for c in clients if c.addr.encode() == args[2]]
        if not victims:
            raise RespError("ERR No such client")
        for victim in victims:
            victim.close_after_replies() if victim is session else victim.close()
        return OK
    if len(args) % 2:
        raise errors.SYNTAX
    skipme = True
    filters = []
    for i in range(2, len(args), 2):
        option, value = args[i].upper(), args[i + 1]
        if option == b"ID":
            wanted = parse_int(value, RespError("ERR client-id should be greater than 0"))
            filters.append(lambda c, w=wanted: c.id == w)
        elif option == b"ADDR":
            filters.append(lambda c, v=value: c.addr.encode() == v)
        elif option == b"LADDR":
            filters.append(lambda c, v=value: c.laddr.encode() == v)
        elif option == b"SKIPME":
            if value.lower() not in (b"yes", b"no"):
                raise errors.SYNTAX
            skipme = value.lower() == b"yes"
        elif option in (b"USER", b"TYPE", b"MAXAGE"):
            filters.append(lambda c, o=option, v=value: o != b"USER" or v == b"default")
        else:
            raise errors.SYNTAX
    victims = [c for c in list(clients) if all(f(c) for f in filters)]
    killed = 0
    for victim in victims:
        if victim is session and skipme:
            continue
        victim.close_after_replies() if victim is session else victim.close()
        killed += 1
    return killed


@_client_sub("no-evict", 3, _CLIENT_ADMIN)
def client_no_evict(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return _on_off(args[2])


@_client_sub("no-touch", 3, ())
def client_no_touch(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return _on_off(args[2])


def _on_off(value: bytes) -> Reply:
    if value.lower() not in (b"on", b"off"):
        raise errors.SYNTAX
    return OK


@_client_sub("help", 2, ("loading", "stale"))
def client_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [
        Simple(line)
        for line in (
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ID", "GETNAME", "SETNAME <name>", "SETINFO <LIB-NAME|LIB-VER> <value>",
            "INFO", "LIST [TYPE <type>] [ID <id> ...]", "KILL <ip:port> | <filter> <value> ...",
            "NO-EVICT (ON|OFF)", "NO-TOUCH (ON|OFF)", "HELP",
        )
    ]
