"""The eviction entry: keys a group's leader chose to evict (respkv.state.eviction),
deleted on every node in log order."""

from __future__ import annotations

from respkv.commands.table import Kind, command
from respkv.protocol.reply import Reply
from respkv.state.keyspace import Keyspace


@command(
    "respkv.evict", -2, Kind.WRITE, flags=("internal",), keys=(1, -1, 1), since="0.1.0",
    summary="Delete the given keys to bring memory under maxmemory (proposed by the leader)",
)
def evict(db: Keyspace, args: list[bytes], now: int) -> Reply:
    """The entry names its keys, so every node deletes the same ones and counts them
    in ``evicted`` (INFO evicted_keys); a key already gone is not counted."""
    evicted = 0
    for key in args[1:]:
        if db.delete(key):
            evicted += 1
    db.evicted += evicted
    return evicted
