"""Membership of one group: proposing a change, and what applying one does.

Applying a change teaches the address book the member's addresses and opens or
closes the Raft connection. A removed member cannot learn of its removal from
the log (the leader stops replicating to it as soon as the change is appended),
so every member that applies a removal tells it directly, and tells it again
whenever it still talks to the group. The leader promotes a learner to voter
once it has caught up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from respkv.raft.confchange import (
    ConfChange,
    ConfChangeError,
    ConfChangeType,
    decode_conf_change,
)
from respkv.raft.core import ConfChangePending, RaftCore, RaftError, Role
from respkv.raft.core import NotLeader as CoreNotLeader
from respkv.raft.types import Entry
from respkv.replication.addresses import AddressBook, Addresses
from respkv.replication.outcomes import MembershipRefused, NotLeader, Unavailable
from respkv.replication.proposals import Proposals

if TYPE_CHECKING:
    from respkv.replication.transport import Transport

logger = logging.getLogger(__name__)

PROMOTE_LAG = 64  # a learner this close to the leader's commit index becomes a voter
NOTIFY_EVERY = 1.0  # seconds between two notices to the same removed member


class Membership:
    def __init__(self, name: str, node_id: str, joined_at: int, core: RaftCore,
                 book: AddressBook, transport: Transport, proposals: Proposals,
                 on_removed: Callable[[], None], wake: Callable[[], None]) -> None:
        self.name = name
        self.node_id = node_id
        self.joined_at = joined_at  # log index of the change that added this node
        self.core = core
        self.book = book
        self.transport = transport
        self.proposals = proposals
        self.on_removed = on_removed  # this node is out of the group
        self.wake = wake
        # members whose removal this node applied (since it started), and when
        # each was last told so; and the log index of each of those removals
        self.removed_members: dict[str, float] = {}
        self.removed_at: dict[str, int] = {}

    def connect_peers(self) -> None:
        conf = self.core.conf
        for node in (*conf.voters, *conf.learners):
            addresses = self.book.get(node)
            if addresses is not None:
                self.transport.set_peer(node, addresses.raft)

    # -- proposing -------------------------------------------------------------

    async def change(self, op: ConfChangeType, node_id: str,
                     addresses: Addresses | None) -> int:
        """Propose one change and wait until it is applied; its log index."""
        context = addresses.to_bytes() if addresses else b""
        try:
            index = self.core.propose_conf_change(ConfChange(op, node_id, context))
        except CoreNotLeader:
            raise NotLeader(None) from None
        except ConfChangePending as error:
            raise Unavailable(f"membership change in progress: {error}") from None
        except ConfChangeError as error:
            raise MembershipRefused(str(error)) from None
        except RaftError as error:
            raise Unavailable(str(error)) from None
        future = asyncio.get_running_loop().create_future()
        self.proposals.track(index, future)
        self.wake()
        await future
        return index

    def promote_learners(self) -> None:
        """On the leader: propose the first caught-up learner as a voter."""
        core = self.core
        if core.role is not Role.LEADER or not core.conf.learners:
            return
        committed = core.log.committed
        for learner in core.conf.learners:
            progress = core.prs.get(learner)
            if (progress is None or progress.match == 0 or not progress.recent_active
                    or committed - progress.match > PROMOTE_LAG):
                continue  # not caught up yet: a voter that lags would hurt the quorum
            addresses = self.book.get(learner)
            try:
                core.propose_conf_change(ConfChange(
                    ConfChangeType.ADD_VOTER, learner,
                    addresses.to_bytes() if addresses else b""))
            except (RaftError, ConfChangeError):
                return
            logger.info("promoting learner", extra={"member": learner, "group": self.name})
            return

    # -- applying ----------------------------------------------------------------

    def applied(self, entry: Entry) -> None:
        """A membership change entry is being applied."""
        change = decode_conf_change(entry.data)
        addresses = Addresses.from_bytes(change.context) if change.context else None
        if addresses is not None:
            self.book.learn(change.node_id, addresses)
        if change.op is ConfChangeType.REMOVE:
            self._removed(change.node_id, entry.index)
            return
        logger.info("member added", extra={"member": change.node_id, "op": change.op.name,
                                           "index": entry.index, "group": self.name})
        self.removed_members.pop(change.node_id, None)
        self.removed_at.pop(change.node_id, None)
        if addresses is not None:
            self.transport.set_peer(change.node_id, addresses.raft)

    def _removed(self, node_id: str, index: int) -> None:
        logger.info("member removed", extra={"member": node_id, "index": index,
                                             "group": self.name})
        if node_id == self.node_id:
            if index <= self.joined_at:
                # an earlier membership of this node id, before it left and joined
                # again: history, not news
                logger.info("ignoring an earlier removal of this node id",
                            extra={"index": index, "joined_at": self.joined_at})
            else:
                asyncio.get_running_loop().call_soon(self.on_removed)
            return
        self.transport.drop_peer(node_id)
        self.removed_members.setdefault(node_id, 0.0)
        self.removed_at[node_id] = index
        if node_id not in self.core.conf:  # the latest: not re-added since?
            self._notify_removed(node_id, index)

    # -- removed members -----------------------------------------------------------

    def is_removed_sender(self, sender: str) -> bool:
        """A removed node that missed the news (it was down, say) still talks to us:
        tell it again (at most once a second); its message is to be dropped."""
        if sender in self.removed_members and sender not in self.core.conf:
            self._notify_removed(sender, self.removed_at.get(sender, 0))
            return True
        return False

    def removal_notice(self, sender: str, index: int) -> None:
        """A member applied our removal (committed at ``index``): stop serving."""
        if index <= self.joined_at:
            return  # a removal from before this node joined (again)
        logger.warning("removed from the cluster", extra={"told_by": sender, "index": index,
                                                          "group": self.name})
        asyncio.get_running_loop().call_soon(self.on_removed)

    def _notify_removed(self, node_id: str, index: int) -> None:
        now = time.monotonic()
        if now - self.removed_members.get(node_id, 0.0) < NOTIFY_EVERY:
            return
        self.removed_members[node_id] = now
        addresses = self.book.get(node_id)
        if addresses is not None:
            self.transport.notify_removed(node_id, addresses.raft, self.name, index)
