"""What the replication layer answers when it cannot do what was asked.

These are plain facts ("the leader of this group is over there", "the write was
lost in an election"), raised as exceptions or set on a request's future. The
server turns each into the Redis reply a client expects (-MOVED, -CLUSTERDOWN,
-TRYAGAIN...); nothing here knows those replies.
"""

from __future__ import annotations


class ReplicationError(Exception):
    """A request the replication layer could not carry out."""


class NotLeader(ReplicationError):
    """This node does not lead the group. ``leader`` is the client address of the
    leader it knows and can reach, or None; ``slot`` the request's hash slot."""

    def __init__(self, leader: str | None, slot: int = 0) -> None:
        super().__init__(f"not the leader (leader: {leader})")
        self.leader = leader
        self.slot = slot


class ShuttingDown(ReplicationError):
    """The node is stopping: the request was not taken."""


class WriteLost(ReplicationError):
    """Leadership changed before the write was committed: it was not applied."""


class WriteTimedOut(ReplicationError):
    """The write was not committed in time: it may or may not be applied later."""


class NotDurable(ReplicationError):
    """The disk is full: the write is not on disk and may or may not be applied once
    space is freed."""


class EntryTooBig(ReplicationError):
    """The write's log entry would be larger than the log carries: it was not
    proposed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"write too big to replicate: its log entry would be {size} bytes, "
                         f"over max-entry-bytes ({limit})")


class GroupDown(ReplicationError):
    """The group failed on this node and was stopped here (the message says why, the
    log has the traceback); the other members carry on without this node."""


class ReadTimedOut(ReplicationError):
    """No quorum confirmed the read index in time."""


class Unavailable(ReplicationError):
    """The group cannot take the request now (a leadership transfer, a membership
    change in progress...): retrying later may work. The message says why."""


class MembershipRefused(ReplicationError):
    """A membership change that the rules refuse (the message says which)."""


class PeerRefused(ReplicationError):
    """Another node refused a request forwarded to it; ``reply`` is its error reply,
    as it sent it."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply
