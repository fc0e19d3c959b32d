"""One RESP command to another node's client port: joining, and membership
changes forwarded to a group's leader. Replies are read as far as those need:
a line, or a bulk string."""

from __future__ import annotations

import asyncio

from respkv.cluster.transport import split_address
from respkv.protocol.reply import Reply, RespError, Simple


async def call(address: str, args: list[bytes], timeout: float = 10.0) -> bytes:
    """One RESP command to a node's client port; the raw reply line(s)."""
    host, port = split_address(address)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        request = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        writer.write(request)
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
