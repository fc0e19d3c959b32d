"""The value codec: how a key's value (and its expiry) is written down, in the state
store, in snapshots (files a peer sends) and in log entries that carry values.

No general object serializer: decoding a blob builds plain values of the types
below and nothing else, and any blob that is not one well-formed record is refused.

A value record::

    version u8 (1) | type u8 | flags u8 | [expire_at i64, if flags & 1] | payload | crc32 u32

little endian; the crc (zlib.crc32) covers everything before it. Types and payloads:

    1  string    the bytes as they are
    2  hash      count u32, then (field, value) pairs
    3  list      count u32, then the items in order
    4  set       count u32, then the members in order (the order SPOP picks from)
    5  zset      count u32, then (member, score f64) pairs

where each byte string is its length u32 and its bytes. With flags & 2 a collection's
payload is empty and its members are stored apart, one item record each (the state
store's layout: changing one member rewrites one row). An item record is the
member's payload and a crc32 over (key, item, payload), so a row cannot be moved to
another key or member unnoticed::

    hash  item: the field       payload: the value
    list  item: position (u64 big-endian, offset by 2**63, so rows sort in order)
                                payload: the element
    set   item: the member      payload: its position in the member order, u64
    zset  item: the member      payload: the score, f64
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator

from respkv.state.values import (
    Collection,
    HashValue,
    ListValue,
    SetValue,
    ZSetValue,
)

VERSION = 1
STRING, HASH, LIST, SET, ZSET = 1, 2, 3, 4, 5
_HAS_EXPIRY = 1
_ITEMS_APART = 2
_FLAGS = _HAS_EXPIRY | _ITEMS_APART

_HEAD = struct.Struct("<BBB")
_EXPIRY = struct.Struct("<q")
_CRC = struct.Struct("<I")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_POSITION = struct.Struct(">Q")
_POSITION_OFFSET = 1 << 63
_NO_EXPIRY_HEAD = _HEAD.pack(VERSION, STRING, 0)

_TYPE_OF: dict[type, int] = {
    bytes: STRING, HashValue: HASH, ListValue: LIST, SetValue: SET, ZSetValue: ZSET,
}


class CodecError(ValueError):
    """Not a value this codec wrote: damaged, forged, or of an unknown version."""


# -- value records -----------------------------------------------------------------


def encode_value(value: object, expire_at: int | None = None) -> bytes:
    """A whole value, members included (log entries, and strings in the store)."""
    if type(value) is bytes:
        if expire_at is None:
            body = _NO_EXPIRY_HEAD + value
        else:
            body = _HEAD.pack(VERSION, STRING, _HAS_EXPIRY) + _EXPIRY.pack(expire_at) + value
        return body + _CRC.pack(zlib.crc32(body))
    if type(value) not in _TYPE_OF:
        raise CodecError(f"cannot encode a value of type {type(value).__name__}")
    return _record(value, expire_at, 0, _payload(value))


def encode_header(value: object, expire_at: int | None = None) -> bytes:
    """What the state store keeps under the key: a string whole, a collection's type and
    expiry only (its members go in item records)."""
    if type(value) is bytes:
        return encode_value(value, expire_at)
    return _record(value, expire_at, _ITEMS_APART, b"")


def _record(value: object, expire_at: int | None, flags: int, payload: bytes) -> bytes:
    kind = _TYPE_OF.get(type(value))
    if kind is None:
        raise CodecError(f"cannot encode a value of type {type(value).__name__}")
    if expire_at is None:
        body = _HEAD.pack(VERSION, kind, flags) + payload
    else:
        body = _HEAD.pack(VERSION, kind, flags | _HAS_EXPIRY) + _EXPIRY.pack(expire_at) + payload
    return body + _CRC.pack(zlib.crc32(body))


def _payload(value: object) -> bytes:
    parts: list[bytes] = [_U32.pack(len(value))]  # type: ignore[arg-type]
    if type(value) is HashValue:
        for field, item in value.fields.items():
            parts += (_U32.pack(len(field)), field, _U32.pack(len(item)), item)
    elif type(value) is ListValue or type(value) is SetValue:
        for item in value.items if type(value) is ListValue else value.members:
            parts += (_U32.pack(len(item)), item)
    elif type(value) is ZSetValue:
        for member, score in value.scores.items():
            parts += (_U32.pack(len(member)), member, _F64.pack(score))
    return b"".join(parts)


def decode_value(blob: bytes) -> tuple[object, int | None]:
    """(value, expire_at) from a record; raises CodecError for anything else. A header
    (members stored apart) gives an empty collection, for ``load_items`` to fill."""
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
    if kind == STRING:
        if flags & _ITEMS_APART:
            raise CodecError("a string record cannot have its members apart")
        return body[offset:], expire_at
    if flags & _ITEMS_APART:
        if len(body) != offset:
            raise CodecError("a collection header with a payload")
        return _empty(kind), expire_at
    return _decode_payload(kind, body, offset), expire_at


def _empty(kind: int) -> Collection:
    if kind == HASH:
        return HashValue()
    if kind == LIST:
        return ListValue()
    if kind == SET:
        return SetValue()
    if kind == ZSET:
        return ZSetValue()
    raise CodecError(f"value record of unknown type {kind}")


class _Reader:
    __slots__ = ("body", "offset")

    def __init__(self, body: bytes, offset: int) -> None:
        self.body = body
        self.offset = offset

    def fixed(self, shape: struct.Struct) -> object:
        if self.offset + shape.size > len(self.body):
            raise CodecError("value record truncated")
        (value,) = shape.unpack_from(self.body, self.offset)
        self.offset += shape.size
        return value

    def string(self) -> bytes:
        size = self.fixed(_U32)
        end = self.offset + size  # type: ignore[operator]
        if end > len(self.body):
            raise CodecError("value record truncated")
        data = self.body[self.offset:end]
        self.offset = end
        return data


def _decode_payload(kind: int, body: bytes, offset: int) -> Collection:
    reader = _Reader(body, offset)
    count = reader.fixed(_U32)
    value: Collection
    if kind == HASH:
        fields = {}
        for _ in range(count):  # type: ignore[arg-type]
            field = reader.string()
            fields[field] = reader.string()
        value = HashValue(fields)
    elif kind == LIST:
        value = ListValue(reader.string() for _ in range(count))  # type: ignore[arg-type]
    elif kind == SET:
        value = SetValue(reader.string() for _ in range(count))  # type: ignore[arg-type]
    elif kind == ZSET:
        scores = {}
        for _ in range(count):  # type: ignore[arg-type]
            member = reader.string()
            scores[member] = _score(reader.fixed(_F64))  # type: ignore[arg-type]
        value = ZSetValue(scores)
    else:
        raise CodecError(f"value record of unknown type {kind}")
    if reader.offset != len(body) or len(value) != count:
        raise CodecError("value record with trailing or repeated members")
    if count == 0:
        raise CodecError("an empty collection")  # Redis deletes a key that empties
    return value


def _score(score: float) -> float:
    if score != score:
        raise CodecError("a sorted set score that is NaN")
    return score


# -- item records (a collection's members, stored apart) ---------------------------


def _item_blob(key: bytes, item: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(item, zlib.crc32(key, len(key))))
    return payload + _CRC.pack(crc)


def _item_payload(key: bytes, item: bytes, blob: bytes) -> bytes:
    if len(blob) < _CRC.size:
        raise CodecError("item record too short")
    payload = blob[:-_CRC.size]
    if _item_blob(key, item, payload) != blob:
        raise CodecError("item record checksum mismatch")
    return payload


def list_position(position: int) -> bytes:
    return _POSITION.pack(position + _POSITION_OFFSET)


def item_record(key: bytes, value: Collection, member: object) -> tuple[bytes, bytes | None]:
    """The (item, record) for one member of ``value`` as it is now; record None when the
    member (for a list: the position) is no longer there."""
    if type(value) is HashValue:
        item = member  # type: bytes
        payload = value.fields.get(item)  # type: ignore[arg-type]
    elif type(value) is SetValue:
        item = member  # type: ignore[assignment]
        position = value.index.get(item)  # type: ignore[arg-type]
        payload = None if position is None else _U64.pack(position)
    elif type(value) is ZSetValue:
        item = member  # type: ignore[assignment]
        score = value.scores.get(item)  # type: ignore[arg-type]
        payload = None if score is None else _F64.pack(score)
    else:
        assert type(value) is ListValue
        item = list_position(member)  # type: ignore[arg-type]
        at = member - value.head  # type: ignore[operator]
        payload = value.items[at] if 0 <= at < len(value.items) else None
    return item, None if payload is None else _item_blob(key, item, payload)  # type: ignore


def all_item_records(key: bytes, value: Collection) -> Iterator[tuple[bytes, bytes]]:
    """Every member's (item, record)."""
    if type(value) is HashValue:
        for field, item in value.fields.items():
            yield field, _item_blob(key, field, item)
    elif type(value) is SetValue:
        for position, member in enumerate(value.members):
            yield member, _item_blob(key, member, _U64.pack(position))
    elif type(value) is ZSetValue:
        for member, score in value.scores.items():
            yield member, _item_blob(key, member, _F64.pack(score))
    else:
        assert type(value) is ListValue
        for position, element in value.positions():
            item = list_position(position)
            yield item, _item_blob(key, item, element)


def load_items(key: bytes, value: Collection, items: Iterable[tuple[bytes, bytes]]) -> None:
    """Fill an empty collection (from ``decode_value`` of a header) with its item
    records, in any order; raises CodecError if they do not make a whole collection."""
    if type(value) is HashValue:
        for field, blob in items:
            value.fields[field] = _item_payload(key, field, blob)
    elif type(value) is ZSetValue:
        scores = {}
        for member, blob in items:
            scores[member] = _score(_fixed(_F64, _item_payload(key, member, blob)))
        value.scores = scores
        value.ordered.update((s, m) for m, s in scores.items())
    elif type(value) is SetValue:
        by_position = {}
        for member, blob in items:
            by_position[_fixed(_U64, _item_payload(key, member, blob))] = member
        if sorted(by_position) != list(range(len(by_position))):
            raise CodecError("set member positions are not 0..n-1")
        value.members = [by_position[i] for i in range(len(by_position))]
        value.index = {member: i for i, member in enumerate(value.members)}
        if len(value.index) != len(value.members):
            raise CodecError("a set member stored twice")
    else:
        assert type(value) is ListValue
        by_position = {}
        for item, blob in items:
            if len(item) != _POSITION.size:
                raise CodecError("a list position that is not 8 bytes")
            position = _POSITION.unpack(item)[0] - _POSITION_OFFSET
            by_position[position] = _item_payload(key, item, blob)
        if by_position:
            head = min(by_position)
            if max(by_position) - head + 1 != len(by_position):
                raise CodecError("list positions with a gap")
            value.head = head
            value.items.extend(by_position[head + i] for i in range(len(by_position)))
    if not len(value):
        raise CodecError("a collection header with no members")
    value.recount()  # filled past its methods
    value.mark_stored()


def _fixed(shape: struct.Struct, payload: bytes) -> int | float:
    if len(payload) != shape.size:
        raise CodecError("item record of the wrong size")
    return shape.unpack(payload)[0]
