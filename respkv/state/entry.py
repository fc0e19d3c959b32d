"""A log entry's data: one command, RESP-encoded with the leader's clock in front,
``[now_ms, name, arg...]``. Every node applies it with that time, so expiry is
judged identically everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import hiredis


class BadEntry(ValueError):
    """The bytes are not one entry (the same on every node: skip it everywhere)."""


def encode_command(now_ms: int, args: Sequence[bytes]) -> bytes:
    return hiredis.pack_command((now_ms, *args))


_decoder = hiredis.Reader()  # one entry is always one whole frame: the reader ends empty


def decode_command(data: bytes) -> tuple[int, list[bytes]]:
    global _decoder
    _decoder.feed(data)
    try:
        frame = _decoder.gets()
    except hiredis.ProtocolError:
        frame = False
    if frame is False or _decoder.has_data():  # not exactly one frame: start clean
        _decoder = hiredis.Reader()
        raise BadEntry("log entry is not one RESP frame")
    try:
        return int(frame[0]), frame[1:]
    except (ValueError, TypeError, IndexError):
        raise BadEntry("log entry does not start with a time") from None
