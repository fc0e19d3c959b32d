"""A write over keys of several groups, all led by this node (MSET, DEL, RENAME...).

The router closes its gate when one starts: the node takes no other command
until it is done. It waits until the groups' pending writes are applied, runs
the command against a draft of their keyspaces, and proposes the resulting
values to each group (``respkv.put``, in the value codec), so apply stays a pure function of the
entry. No other command of this node runs in between, but the groups commit
separately: other nodes may see one group's share before the other's, and a
crash may keep only one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from respkv.clock import now_ms
from respkv.commands.table import Command
from respkv.protocol.reply import Reply, RespError
from respkv.replication.group import RaftGroup
from respkv.replication.outcomes import ReplicationError
from respkv.server.futures import first_failure_or_reply, settle
from respkv.state.codec import encode_value
from respkv.state.views import KeyspaceDraft

logger = logging.getLogger(__name__)

SETTLE_TIMEOUT = 10.0  # seconds a cross-group write waits for the groups' pending writes
MOVED_AWAY = RespError("TRYAGAIN leadership moved during a write over several groups; retry")


class CrossWrite:
    def __init__(self, groups: list[RaftGroup], group_of: Callable[[bytes], RaftGroup],
                 done: Callable[[], None]) -> None:
        self.groups = groups
        self.group_of = group_of
        self.done = done  # opens the router's gate

    def start(self, command: Command, args: list[bytes]) -> asyncio.Future[Reply]:
        return asyncio.ensure_future(self._run(command, args))

    async def _run(self, command: Command, args: list[bytes]) -> Reply:
        try:
            return await self._write(command, args)
        except ReplicationError:
            raise  # the client is told what the groups answered
        except Exception as error:  # a bug: answer, log, keep serving
            logger.exception("write over several groups failed")
            return RespError(f"ERR internal error: {error.__class__.__name__}")
        finally:
            self.done()

    async def _write(self, command: Command, args: list[bytes]) -> Reply:
        if not await settle(self.groups, SETTLE_TIMEOUT):
            return MOVED_AWAY
        group_of = self.group_of
        now = now_ms()
        draft = KeyspaceDraft(lambda key: group_of(key).keyspace, now)
        try:
            reply = command.handler(draft, args, now)
        except RespError as error:
            return error
        shares: dict[RaftGroup, list[bytes]] = {}
        for key, (value, expire_at) in draft.changes.items():
            share = shares.setdefault(group_of(key), [b"respkv.put"])
            share += [key, b"" if value is None else encode_value(value, expire_at)]
        if shares:
            outcome = await first_failure_or_reply(
                [g.propose(share) for g, share in shares.items()])
            if isinstance(outcome, RespError):
                return outcome
        return reply
