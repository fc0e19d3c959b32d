"""The value codec: how a key's value (and its expiry) is written down, in the state
store, in snapshots (files a peer sends) and in log entries that carry values.

No general object serializer: decoding a blob builds plain values of the types
below and nothing else, and any blob that is not one well-formed record is refused.

A record::

    version u8 (1) | type u8 | flags u8 | [expire_at i64, if flags & 1] | payload | crc32 u32

little endian; the crc (zlib.crc32) covers everything before it. Types:

    1  string    payload: the bytes as they are
"""

from __future__ import annotations

import struct
import zlib

VERSION = 1
STRING = 1
_HAS_EXPIRY = 1
_FLAGS = _HAS_EXPIRY

_HEAD = struct.Struct("<BBB")
_EXPIRY = struct.Struct("<q")
_CRC = struct.Struct("<I")
_NO_EXPIRY_HEAD = _HEAD.pack(VERSION, STRING, 0)


class CodecError(ValueError):
    """Not a value this codec wrote: damaged, forged, or of an unknown version."""


def encode_value(value: object, expire_at: int | None = None) -> bytes:
    if type(value) is not bytes:
        raise CodecError(f"cannot encode a value of type {type(value).__name__}")
    if expire_at is None:
        body = _NO_EXPIRY_HEAD + value
    else:
        body = _HEAD.pack(VERSION, STRING, _HAS_EXPIRY) + _EXPIRY.pack(expire_at) + value
    return body + _CRC.pack(zlib.crc32(body))


def decode_value(blob: bytes) -> tuple[object, int | None]:
    """(value, expire_at) from a record; raises CodecError for anything else."""
    if len(blob) < _HEAD.size + _CRC.size:
        raise CodecError("value record too short")
    body, (crc,) = blob[:-_CRC.size], _CRC.unpack_from(blob, len(blob) - _CRC.size)
    if zlib.crc32(body) != crc:
        raise CodecError("value record checksum mismatch")
    version, kind, flags = _HEAD.unpack_from(body)
    if version != VERSION:
        raise CodecError(f"value record of unknown version {version}")
    if flags & ~_FLAGS:
        raise CodecError(f"value record with unknown flags {flags:#x}")
    offset = _HEAD.size
    expire_at = None
    if flags & _HAS_EXPIRY:
        if len(body) < offset + _EXPIRY.size:
            raise CodecError("value record too short for its expiry")
        (expire_at,) = _EXPIRY.unpack_from(body, offset)
        offset += _EXPIRY.size
    if kind != STRING:
        raise CodecError(f"value record of unknown type {kind}")
    return body[offset:], expire_at
