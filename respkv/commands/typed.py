"""A key's value of the type a command expects, or WRONGTYPE: the one check every
data family makes before it reads or changes a key."""

from __future__ import annotations

from typing import TypeVar

from respkv.commands import errors
from respkv.state.keyspace import KeyspaceView, WritableKeyspace

T = TypeVar("T")


def read_typed(db: KeyspaceView, key: bytes, now: int, kind: type[T]) -> T | None:
    """The value for a reader (an expired key is absent), or WRONGTYPE."""
    value = db.get_for_read(key, now)
    if value is not None and type(value) is not kind:
        raise errors.WRONGTYPE
    return value  # type: ignore[return-value]


def write_typed(db: WritableKeyspace, key: bytes, now: int, kind: type[T]) -> T | None:
    """The value for a writer (an expired key is deleted), or WRONGTYPE."""
    value = db.get_for_write(key, now)
    if value is not None and type(value) is not kind:
        raise errors.WRONGTYPE
    return value  # type: ignore[return-value]
