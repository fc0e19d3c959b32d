"""Plain data shared by the Raft core, the WAL and the driver.

Kept free of logic so storage and the core can be built and tested apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class EntryKind(IntEnum):
    NORMAL = 0  # a client command (RESP-encoded, see respkv/state/entry.py)
    NOOP = 1  # the empty entry a new leader commits at the start of its term
    CONF_CHANGE = 2  # a membership change; data encoded by the Raft core


@dataclass(slots=True, frozen=True)
class Entry:
    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""


@dataclass(slots=True, frozen=True)
class HardState:
    """What must be on disk before any message that depends on it is sent."""

    term: int = 0
    vote: str | None = None  # node id voted for in `term`
    commit: int = 0
