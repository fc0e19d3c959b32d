"""The Redis reply for each thing the replication layer may answer instead of a
result (respkv.replication.outcomes): -MOVED to the leader it names, -CLUSTERDOWN
when none is known, -TRYAGAIN for what may work when retried."""

from __future__ import annotations

from respkv.commands.errors import CLUSTERDOWN, SHUTTING_DOWN
from respkv.protocol.reply import RespError
from respkv.replication.outcomes import (
    EntryTooBig,
    GroupDown,
    MembershipRefused,
    NotDurable,
    NotLeader,
    PeerRefused,
    ReadTimedOut,
    ReplicationError,
    ShuttingDown,
    Unavailable,
    WriteLost,
    WriteTimedOut,
)

LOST = RespError("ERR write lost: leadership changed before it was committed, retry")
WRITE_TIMED_OUT = RespError(
    "TRYAGAIN write not committed in time; it may or may not have been applied")
READ_TIMED_OUT = RespError("TRYAGAIN read not confirmed by a quorum in time")
NOT_DURABLE = RespError("TRYAGAIN No space left on device: the write is not on disk yet and "
                        "may or may not be applied once space is freed")

_FIXED: dict[type[ReplicationError], RespError] = {
    ShuttingDown: SHUTTING_DOWN,
    WriteLost: LOST,
    WriteTimedOut: WRITE_TIMED_OUT,
    ReadTimedOut: READ_TIMED_OUT,
    NotDurable: NOT_DURABLE,
}


def moved(slot: int, leader: str | None) -> RespError:
    """Where a request this node cannot take goes, as a Redis Cluster replica says it."""
    return RespError(f"MOVED {slot} {leader}") if leader is not None else CLUSTERDOWN


def reply_for(error: ReplicationError) -> RespError:
    if isinstance(error, NotLeader):
        return moved(error.slot, error.leader)
    fixed = _FIXED.get(type(error))
    if fixed is not None:
        return fixed
    if isinstance(error, GroupDown):
        return RespError(f"CLUSTERDOWN {error}")
    if isinstance(error, Unavailable):
        return RespError(f"TRYAGAIN {error}")
    if isinstance(error, MembershipRefused | EntryTooBig):
        return RespError(f"ERR {error}")
    if isinstance(error, PeerRefused):
        return RespError(error.reply)
    return RespError(f"ERR {error.__class__.__name__}: {error}")
