"""Local durable storage: the node's Raft log (WAL), the state store (SQLite), and
durable files (snapshots streamed in chunks, small JSON files)."""

from respkv.storage.files import ChunkWriter, iter_chunks
from respkv.storage.store import StateStore, StoreError
from respkv.storage.wal import WAL, CorruptLogError, WalState

__all__ = [
    "WAL",
    "ChunkWriter",
    "CorruptLogError",
    "StateStore",
    "StoreError",
    "WalState",
    "iter_chunks",
]
