"""Where the groups' leaders are: spread over the nodes, and moved away before a
leader stops or leaves.

Group i prefers the i-th voter by node id. A leader hands its group to the
preferred node once that node is up to date, so writes use every machine and
the leaders come back after a restart (``balance-leaders``, on by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from respkv.config import Config
from respkv.replication.group import RaftGroup

logger = logging.getLogger(__name__)

BALANCE_INTERVAL = 0.25  # seconds between looks at where the leaders are
BALANCE_SETTLE = 1.0  # a leader keeps its lead this long before handing it on
HAND_OVER_TIMEOUT = 3.0


def preferred_leader(index: int, group: RaftGroup, groups: int, config: Config) -> str | None:
    """The voter group ``index`` prefers; None when leaders are not balanced."""
    voters = sorted(group.members().voters)
    if not config.balance_leaders or groups < 2 or not voters:
        return None
    return voters[index % len(voters)]


async def hand_over_leadership(group: RaftGroup, why: str,
                               timeout: float = HAND_OVER_TIMEOUT) -> None:
    """A leader that stops or leaves first makes an up-to-date follower the leader."""
    if not group.is_leader():
        return
    target = group.best_transfer_target()
    if target is None:
        return
    logger.info(f"transferring leadership {why}", extra={"to": target, "group": group.name})
    try:
        group.transfer_leadership(target)
    except Exception as error:  # best effort: stopping anyway
        logger.warning("leadership transfer failed: %s", error)
        return
    deadline = asyncio.get_running_loop().time() + timeout
    while group.is_leader() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


class LeaderBalancer:
    def __init__(self, node_id: str, groups: Sequence[RaftGroup], config: Config) -> None:
        self.node_id = node_id
        self.groups = groups
        self.config = config
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if len(self.groups) > 1:
            self.task = asyncio.create_task(self._run(), name="balancer")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(BALANCE_INTERVAL)
            for index, group in enumerate(self.groups):
                if not group.is_leader() or group.leader_for() < BALANCE_SETTLE:
                    continue
                preferred = preferred_leader(index, group, len(self.groups), self.config)
                if preferred not in (None, self.node_id) and group.is_caught_up(preferred):
                    logger.info("handing leadership to the preferred node",
                                extra={"group": group.name, "to": preferred})
                    with contextlib.suppress(Exception):
                        group.transfer_leadership(preferred)
