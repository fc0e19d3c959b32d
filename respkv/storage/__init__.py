"""Local durable storage of a Raft group: its log (WAL) and its state machine (StateStore)."""

from respkv.storage.store import ChunkWriter, StateStore, StoreError, iter_chunks
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
