"""Reply values and their RESP2/RESP3 encodings.

Handlers return plain Python values; the connection encodes them for the
protocol version the client chose with HELLO:

    bytes / str  -> bulk string        int   -> integer
    None         -> null               list  -> array (tuple too)
    Simple("OK") -> simple string      float -> double (RESP3) / bulk (RESP2)
    RespError    -> error              bool  -> boolean (RESP3) / 1 or 0 (RESP2)
    dict         -> map (RESP3) / flat array (RESP2)
    RSet         -> set (RESP3) / array (RESP2)
    Verbatim     -> verbatim string (RESP3) / bulk (RESP2)
    NULL_ARRAY   -> null (RESP3) / *-1 (RESP2)
    Push         -> push (RESP3) / array (RESP2): pub/sub messages
    Frames       -> several replies, one after the other (SUBSCRIBE a b: one per channel)
    Encoded      -> its bytes as they are (a reply encoded ahead, piece by piece)

A ``Sliced`` reply is not encoded here: it is work to do between turns of the
event loop (KEYS over millions of keys), which the server runs in slices.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any


class Simple(str):
    """A simple string (+OK)."""


class Verbatim(str):
    """Text that RESP3 sends as a verbatim string (INFO, CLIENT INFO)."""


class RSet(list):
    """An unordered collection: a set in RESP3, an array in RESP2."""


class Push(list):
    """Out-of-band data (a pub/sub message): a push in RESP3, an array in RESP2."""


class Pairs(list):
    """(a, b) pairs: an array of 2-element arrays in RESP3, one flat array in RESP2
    (HRANDFIELD ... WITHVALUES, ZRANGE ... WITHSCORES)."""


class Frames(list):
    """Several replies sent for one command, each a frame of its own."""


class Encoded:
    """A reply already in wire form."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Sliced:
    """A reply too big to build in one go without stalling the event loop (and the
    Raft heartbeats on it). ``steps(resp3)`` is a generator: each step is a bounded
    piece of the work (a few thousand keys), and it returns the encoded reply."""

    __slots__ = ()

    def steps(self, resp3: bool) -> Generator[None, None, bytes]:
        raise NotImplementedError


def finish(reply: Sliced, resp3: bool) -> bytes:
    """All of a sliced reply's steps at once: its wire bytes."""
    steps = reply.steps(resp3)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


class _NullArray:
    """Redis' null array (*-1 in RESP2), used where Redis sends one."""


NULL_ARRAY = _NullArray()


class RespError(Exception):
    """An error reply. The text starts with its code: 'ERR ...', 'WRONGTYPE ...'."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


OK = Simple("OK")
QUEUED = Simple("QUEUED")
PONG = Simple("PONG")

Reply = Any


def format_double(value: float) -> bytes:
    """Redis 7.0's addReplyDouble: printf("%.17g") (1.1 is 1.1000000000000001), with
    inf/-inf/nan spelled out. (Redis 7.2 moved to the shortest form; 7.0 did not.)"""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if math.isnan(value):
        return b"nan"
    return b"%.17g" % value


def encode(reply: Reply, resp3: bool) -> bytes:
    """The wire bytes of one reply."""
    kind = type(reply)
    if kind is bytes:  # the common cases, without the list
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    if kind is Simple:
        return b"+%s\r\n" % reply.encode()
    if kind is Encoded:
        return reply.data
    if isinstance(reply, Sliced):
        return finish(reply, resp3)
    out: list[bytes] = []
    _encode(reply, resp3, out)
    return b"".join(out)


def _encode(reply: Reply, resp3: bool, out: list[bytes]) -> None:
    kind = type(reply)
    if kind is bytes:
        out.append(b"$%d\r\n%s\r\n" % (len(reply), reply))
    elif kind is Simple:
        out.append(b"+%s\r\n" % reply.encode())
    elif kind is int:
        out.append(b":%d\r\n" % reply)
    elif reply is None:
        out.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif kind is list or kind is tuple:
        out.append(b"*%d\r\n" % len(reply))
        for item in reply:
            _encode(item, resp3, out)
    elif isinstance(reply, RespError):
        # surrogateescape: a byte a client sent, quoted back raw as Redis does
        out.append(b"-%s\r\n" % _one_line(reply.text).encode("utf-8", "surrogateescape"))
    elif kind is str:
        data = reply.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    elif kind is bool:
        if resp3:
            out.append(b"#t\r\n" if reply else b"#f\r\n")
        else:
            out.append(b":1\r\n" if reply else b":0\r\n")
    elif kind is float:
        text = format_double(reply)
        out.append(b",%s\r\n" % text if resp3 else b"$%d\r\n%s\r\n" % (len(text), text))
    elif kind is dict:
        out.append((b"%%%d\r\n" if resp3 else b"*%d\r\n") % (len(reply) * (1 if resp3 else 2)))
        for key, value in reply.items():
            _encode(key, resp3, out)
            _encode(value, resp3, out)
    elif kind is RSet or kind is Push:
        mark = (b"~" if kind is RSet else b">") if resp3 else b"*"
        out.append(b"%s%d\r\n" % (mark, len(reply)))
        for item in reply:
            _encode(item, resp3, out)
    elif kind is Pairs:
        out.append(b"*%d\r\n" % (len(reply) if resp3 else 2 * len(reply)))
        for first, second in reply:
            if resp3:
                out.append(b"*2\r\n")
            _encode(first, resp3, out)
            _encode(second, resp3, out)
    elif kind is Frames:
        for item in reply:
            _encode(item, resp3, out)
    elif kind is Verbatim:
        data = reply.encode()
        if resp3:
            out.append(b"=%d\r\ntxt:%s\r\n" % (len(data) + 4, data))
        else:
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    elif reply is NULL_ARRAY:
        out.append(b"_\r\n" if resp3 else b"*-1\r\n")
    elif isinstance(reply, bytearray | memoryview):
        _encode(bytes(reply), resp3, out)
    else:
        raise TypeError(f"cannot encode reply of type {kind.__name__}")


def _one_line(text: str) -> str:
    """Error replies must not contain newlines (Redis replaces them with spaces)."""
    return text.replace("\r", " ").replace("\n", " ")
