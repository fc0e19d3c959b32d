"""Blocked pops (BLPOP and friends) on the client port.

The command is proposed to its keys' group as it is (apply pops, or answers a null
reply when there is nothing). While the answer is null, the connection waits for
a change applied to one of its keys (a keyspace watch wakes it), then proposes
the command again, until the timeout: so the pop that finally happens goes through
the log like any write, and a push that races the wait is never missed (the watch
is in place before each proposal). A node that stops leading the group answers
-MOVED to the new leader, which the client can retry; never a silent hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from respkv.commands import errors
from respkv.commands.table import Command
from respkv.protocol.reply import NULL_ARRAY, Reply, RespError
from respkv.replication.slots import key_slot
from respkv.server.refusals import moved
from respkv.server.router import Router
from respkv.server.stats import Stats

_LEADERSHIP_CHECK = 0.2  # seconds between checks that this node still leads the group
UNBLOCKED = RespError("UNBLOCKED client unblocked via CLIENT UNBLOCK")


class Waiter:
    """One blocked connection: woken by a change to its keys, or by CLIENT UNBLOCK."""

    __slots__ = ("unblocked", "woken")

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.unblocked: Reply | None = None  # what CLIENT UNBLOCK makes it answer


class BlockedPops:
    def __init__(self, router: Router, stats: Stats) -> None:
        self.router = router
        self.stats = stats  # blocked_clients: connections waiting now
        self.waiters: dict[int, Waiter] = {}  # by connection id

    def unblock(self, client_id: int, with_error: bool) -> bool:
        """CLIENT UNBLOCK: end a connection's wait, as a timeout or with an error."""
        waiter = self.waiters.get(client_id)
        if waiter is None or waiter.unblocked is not None:
            return False
        waiter.unblocked = UNBLOCKED if with_error else NULL_ARRAY
        waiter.woken.set()
        return True

    async def run(self, client_id: int, command: Command, args: list[bytes],
                  timeout_ms: int) -> Reply:
        router = self.router
        keys = [args[i] for i in command.key_positions(args)]
        groups = {id(router.group_of(key)): router.group_of(key) for key in keys}
        if len(groups) > 1:
            return errors.CROSSSLOT
        group = next(iter(groups.values()))
        slot = key_slot(keys[0])
        deadline = None if timeout_ms == 0 else time.monotonic() + timeout_ms / 1000
        waiter = self.waiters[client_id] = Waiter()
        self.stats.blocked_clients += 1
        try:
            while True:
                while router.gate is not None:  # a watched EXEC or a script holds the node
                    await asyncio.shield(router.gate)
                if not group.is_leader():
                    return moved(slot, group.leader_client_address())
                waiter.woken.clear()
                keyspace = group.keyspace
                watches = [keyspace.watch(key, waiter.woken.set) for key in keys]
                try:
                    reply = await group.propose(args, slot)
                    if reply is not None and reply is not NULL_ARRAY:
                        return reply
                    if waiter.unblocked is None and not await self._wait(
                            waiter.woken, deadline, group.is_leader):
                        return reply  # timed out: the null reply
                    if waiter.unblocked is not None:
                        return UNBLOCKED if waiter.unblocked is UNBLOCKED else reply
                finally:
                    for watch in watches:
                        keyspace.unwatch(watch)
        finally:
            self.stats.blocked_clients -= 1
            del self.waiters[client_id]

    @staticmethod
    async def _wait(woken: asyncio.Event, deadline: float | None, leading) -> bool:
        """Until a watched key changes (True), the deadline passes (False), or this node
        stops leading (True: the loop then answers MOVED)."""
        while not woken.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if not leading():
                return True
            step = _LEADERSHIP_CHECK if left is None else min(left, _LEADERSHIP_CHECK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), step)
        return True
