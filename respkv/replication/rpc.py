"""One RESP command to another node's client port: joining, and membership
changes forwarded to a group's leader, following -MOVED; and the operator's
commands (``command``: any reply, as hiredis reads it). Replies are read as
far as those need: a line, or a bulk string. Over TLS (tls-replication) to a TLS
port, whose MOVED replies name TLS ports too."""

from __future__ import annotations

import asyncio
import ssl

import hiredis

from respkv.protocol.reply import Reply, RespError, Simple
from respkv.replication.addresses import split_address


def _pack(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def call(address: str, args: list[bytes], timeout: float = 10.0,
               password: str = "", tls: ssl.SSLContext | None = None) -> bytes:
    """One RESP command to a node's client port (after AUTH with ``password``, if
    given; over TLS with ``tls``); the raw reply line(s)."""
    host, port = split_address(address)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=tls),
                                            timeout)
    try:
        if password:
            writer.write(_pack([b"AUTH", password.encode()]))
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line.startswith(b"+"):
                return line  # the refusal is the answer
        writer.write(_pack(args))
        line = await asyncio.wait_for(reader.readline(), timeout)
        if line.startswith(b"$") and not line.startswith(b"$-1"):
            line += await asyncio.wait_for(reader.readline(), timeout)
        return line
    finally:
        writer.close()


def parse_reply(raw: bytes) -> Reply:
    line, _, rest = raw.partition(b"\r\n")
    kind, body = line[:1], line[1:].decode("utf-8", "replace")
    if kind == b"-":
        return RespError(body)
    if kind == b"+":
        return Simple(body)
    if kind == b":":
        return int(body)
    if kind == b"$" and body != "-1":
        return rest.partition(b"\r\n")[0]
    return RespError(f"ERR unexpected reply {raw[:40]!r}")


async def ask(address: str, args: list[bytes], hops: int = 5, password: str = "",
              tls: ssl.SSLContext | None = None) -> Reply:
    """Send a command to a node and follow -MOVED to the node it names, at most
    ``hops`` times; the last reply. A node that cannot be reached is a -TRYAGAIN."""
    reply: Reply = RespError("TRYAGAIN no node asked")
    for _ in range(hops):
        try:
            reply = parse_reply(await call(address, args, password=password, tls=tls))
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            return RespError(f"TRYAGAIN cannot reach {address}: {error}")
        if not (isinstance(reply, RespError) and reply.text.startswith("MOVED")):
            return reply
        address = reply.text.split()[-1]
    return reply


async def command(address: str, args: list[bytes], password: str = "",
                  timeout: float = 10.0) -> object:
    """One command on a fresh connection to a node's client port (after AUTH, given a
    password): the reply as hiredis reads it, an error reply as a hiredis.ReplyError
    (returned, not raised). OSError or TimeoutError when the node cannot be reached."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host.strip("[]"), int(port)), timeout)
    parser = hiredis.Reader()
    try:
        calls = ([[b"AUTH", password.encode()]] if password else []) + [args]
        writer.write(b"".join(hiredis.pack_command(tuple(call)) for call in calls))
        replies: list[object] = []
        while len(replies) < len(calls):
            reply = parser.gets()
            if reply is not False:
                replies.append(reply)
                continue
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                raise ConnectionError("connection closed without a reply")
            parser.feed(data)
        if password and isinstance(replies[0], hiredis.ReplyError):
            return replies[0]
        return replies[-1]
    finally:
        writer.close()
