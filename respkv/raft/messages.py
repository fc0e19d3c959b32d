"""Raft wire messages (pure data) and membership state.

Every message names its Raft group so that one process can host many groups.
The bytes form is in :mod:`respkv.raft.codec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from respkv.raft.types import Entry


class MessageType(IntEnum):
    APP = 1  # AppendEntries: index/log_term = previous entry, entries, commit
    APP_RESP = 2  # index = last matching index; reject + reject_hint/log_term on conflict
    VOTE = 3  # index/log_term = candidate's last entry; context=b"transfer" when forced
    VOTE_RESP = 4
    PRE_VOTE = 5  # term = the term the sender would campaign in (its term + 1)
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7  # commit = min(follower match, leader commit); context echoed back
    HEARTBEAT_RESP = 8
    SNAP = 9  # snapshot = SnapshotMeta; the driver streams the bytes beside it
    TIMEOUT_NOW = 10  # leadership transfer: campaign now, bypassing PreVote and leases
    READ_INDEX = 11  # follower -> leader: context = the read's ctx
    READ_INDEX_RESP = 12  # leader -> follower: index = read index; reject if it cannot serve


@dataclass(slots=True, frozen=True)
class ConfState:
    """The membership in force: voters and learners (disjoint), sorted tuples."""

    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()

    def __contains__(self, node: object) -> bool:
        """A member: a voter or a learner."""
        return node in self.voters or node in self.learners


@dataclass(slots=True, frozen=True)
class SnapshotMeta:
    """What the core knows of a snapshot: never the bytes."""

    index: int
    term: int
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(slots=True)
class Message:
    type: MessageType
    group: str = ""
    to: str = ""
    from_: str = ""
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: Sequence[Entry] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot: SnapshotMeta | None = None

    def __repr__(self) -> str:  # short, for traces
        s = f"{self.type.name} {self.from_}->{self.to} t{self.term}"
        if self.type in (MessageType.APP, MessageType.VOTE, MessageType.PRE_VOTE):
            s += f" i{self.index}/lt{self.log_term}"
        else:
            s += f" i{self.index}"
        if self.entries:
            s += f" +{len(self.entries)}[{self.entries[0].index}..{self.entries[-1].index}]"
        if self.commit:
            s += f" c{self.commit}"
        if self.reject:
            s += f" REJ(hint {self.reject_hint}/{self.log_term})"
        if self.snapshot is not None:
            s += f" snap@{self.snapshot.index}/{self.snapshot.term}"
        return s
