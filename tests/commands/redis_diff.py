"""Byte-for-byte differential testing against a real redis-server, in RESP2 and RESP3.

``Differ`` keeps two keyspaces of ours and two databases of one redis-server: db 0
talked to in RESP2, db 1 in RESP3 (HELLO 3). ``differ("HSET", "h", "f", "v")`` runs
the command on all four and asserts that our reply, encoded as our server would send
it, is the same bytes as redis-server's, in each protocol. It returns the RESP2 reply
as hiredis parses it (errors as hiredis.ReplyError).

Replies whose order Redis leaves open (SMEMBERS, HGETALL, SPOP...) are compared
with ``unordered=True``: parsed, and arrays (or a map's pairs) compared as sorted.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator

import hiredis
import pytest
from commands_support import call, to_bytes

from respkv.protocol.reply import encode
from respkv.state.keyspace import Keyspace
from respkv.state.values import Collection

SERVER = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(SERVER is None, reason="redis-server is not installed")


_MORE = object()


class RawConnection:
    """One connection to redis-server; ``call`` returns one reply's exact bytes."""

    def __init__(self, port: int, db: int, resp3: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.resp3 = resp3
        if resp3:
            self.call(b"HELLO", b"3")
        self.call(b"SELECT", b"%d" % db)

    def call(self, *args: object) -> bytes:
        self.sock.sendall(hiredis.pack_command(tuple(to_bytes(a) for a in args)))
        # A sentinel for "not enough data": a whole RESP3 reply may be false (#f).
        reader = hiredis.Reader(notEnoughData=_MORE)
        raw = b""
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            raw += chunk
            reader.feed(chunk)
            if reader.gets() is not _MORE:
                return raw

    def close(self) -> None:
        self.sock.close()


def parse(raw: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(raw)
    return reader.gets()


def _sorted_deep(value: object) -> object:
    """Arrays sorted (by repr), maps turned into sorted pairs: order no longer counts."""
    if isinstance(value, dict):
        return sorted(((repr(k), _sorted_deep(v)) for k, v in value.items()), key=repr)
    if isinstance(value, list):
        return sorted((_sorted_deep(item) for item in value), key=repr)
    if isinstance(value, hiredis.ReplyError):
        return ("error", str(value))
    return value


class Differ:
    def __init__(self, port: int) -> None:
        self.resp2 = RawConnection(port, 0, resp3=False)
        self.resp3 = RawConnection(port, 1, resp3=True)
        self.ours2 = Keyspace()
        self.ours3 = Keyspace()

    def put(self, key: bytes, value: object, *command: bytes) -> None:
        """``key`` holds ``value`` on every side without going through the commands
        under test: ``command`` makes it on redis-server, ``value`` is set in ours (a
        copy each: a collection must not be shared by two keyspaces)."""
        for connection in (self.resp2, self.resp3):
            connection.call(*command)
        for ours in (self.ours2, self.ours3):
            ours.set(key, value.copy() if isinstance(value, Collection) else value)

    def flush(self) -> None:
        self.resp2.call(b"FLUSHALL")
        self.ours2 = Keyspace()
        self.ours3 = Keyspace()

    def __call__(self, *args: object, unordered: bool = False,
                 now: int | None = None) -> object:
        argv = [to_bytes(a) for a in args]
        now = int(time.time() * 1000) if now is None else now
        for connection, db in ((self.resp2, self.ours2), (self.resp3, self.ours3)):
            theirs = connection.call(*argv)
            ours = encode(call(db, *argv, now=now), connection.resp3)
            protocol = "RESP3" if connection.resp3 else "RESP2"
            if unordered:
                assert _sorted_deep(parse(ours)) == _sorted_deep(parse(theirs)), \
                    (protocol, argv, ours, theirs)
            else:
                assert ours == theirs, (protocol, argv, ours, theirs)
            if not connection.resp3:
                reply = parse(theirs)
        return reply

    def close(self) -> None:
        self.resp2.close()
        self.resp3.close()


@pytest.fixture
def differ(redis_port: int) -> Iterator[Differ]:
    """A Differ on empty databases."""
    d = Differ(redis_port)
    d.flush()
    try:
        yield d
    finally:
        d.close()
