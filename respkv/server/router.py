"""From a command to the Raft group(s) that serve it on this node, or what to reply.

A key's group is the one owning its hash slot. Writes go to the group's leader:
elsewhere they get -MOVED <slot> <leader>, as from a Redis Cluster replica.
Reads are served by every node from its own copy of the group.

Commands whose keys live in several groups:
- reads (MGET, EXISTS...) read the groups' keyspaces as one (``Span``), after
  a read barrier on each;
- writes (MSET, DEL, RENAME, MSETNX...) run on a node that leads every group
  involved (``CrossWrite``): the node stops taking commands, lets the groups'
  pending writes apply, runs the command against a draft of the keyspaces and
  proposes the resulting values to each group. No other command of this node
  runs in between, but the groups commit separately: other nodes may see one
  group's share before the other's, and a crash may keep only one. Elsewhere
  such writes get -CROSSSLOT, as in Redis Cluster.
Keyless commands cover the groups this node leads (a Redis Cluster master's
slots), or for reads every group on a node that leads none; a keyless write
on a node that leads nothing is sent to the first group's leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from respkv.commands.errors import CROSSSLOT, DISK_FULL
from respkv.commands.table import COMMANDS, Command
from respkv.protocol.reply import Reply, RespError
from respkv.replication.slots import key_slot
from respkv.state.keyspace import KeyspaceDraft, KeyspaceUnion

if TYPE_CHECKING:
    from respkv.replication.group import RaftGroup
    from respkv.replication.node import ClusterNode

log = logging.getLogger(__name__)

SETTLE_TIMEOUT = 10.0  # seconds a cross-group write waits for the groups' pending writes
MOVED_AWAY = RespError("TRYAGAIN leadership moved during a write over several groups; retry")


class Blocked:
    """A cross-group write is running: run the command again once it is done."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


class Router:
    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.groups: list[RaftGroup] = []
        self.owner: list[int] = []
        self.gate: asyncio.Future[None] | None = None  # set while a CrossWrite runs

    def start(self) -> None:
        """Once the node has opened its groups."""
        self.groups = self.node.groups
        self.owner = self.node.slot_owner

    def group_of(self, key: bytes) -> RaftGroup:
        return self.node.group_of_slot(key_slot(key))

    def route(self, command: Command, args: list[bytes]) -> Any:
        """What runs ``command``: a RaftGroup, a Span or a CrossWrite; else Blocked
        or the RespError to reply."""
        if self.gate is not None:
            return Blocked(self.gate)
        first = command.first_key
        if first <= 0 or len(args) <= first:
            return self._keyless(command, args)
        groups = self.groups
        if len(groups) == 1:
            group = groups[0]
        else:
            owner = self.owner
            group = groups[owner[key_slot(args[first])]]
            if command.last_key != first:
                keys = command.key_indexes(len(args))
                involved = {groups[owner[key_slot(args[i])]] for i in keys}
                if len(involved) > 1:
                    return self._multi_group(command, [g for g in groups if g in involved])
        if not command.is_write:
            return group
        if group.is_leader():
            return DISK_FULL if group.disk_full else group
        return group.redirect(command, args)

    def _multi_group(self, command: Command, involved: list[RaftGroup]) -> Any:
        if not command.is_write:
            return Span(involved, self.group_of)
        if not all(g.is_leader() for g in involved):
            return CROSSSLOT
        if any(g.disk_full for g in involved):
            return DISK_FULL
        self.gate = asyncio.get_running_loop().create_future()
        return CrossWrite(self, involved)

    def _keyless(self, command: Command, args: list[bytes]) -> Any:
        led = [g for g in self.groups if g.is_leader()]
        if command.is_write:
            if not led:
                return self.groups[0].redirect(command, args)
            if any(g.disk_full for g in led):
                return DISK_FULL
        elif not led:
            led = self.groups
        return led[0] if len(led) == 1 else Span(led, self.group_of)

    def open_gate(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None and not gate.done():
            gate.set_result(None)


class Span:
    """Reads over several groups of this node; keyless writes (FLUSHALL) sent to each."""

    def __init__(self, groups: list[RaftGroup], group_of: Any) -> None:
        self.groups = groups
        self.names = tuple(g.name for g in groups)
        self.keyspace = KeyspaceUnion([g.keyspace for g in groups],
                                      lambda key: group_of(key).keyspace)

    @property
    def reads_local(self) -> bool:
        return all(g.reads_local for g in self.groups)

    def read_barrier(self, mode: str) -> asyncio.Future[None] | None:
        barriers = [b for g in self.groups if (b := g.read_barrier(mode)) is not None]
        if len(barriers) <= 1:
            return barriers[0] if barriers else None
        return _all_of(barriers)

    def propose(self, args: list[bytes]) -> asyncio.Future[Reply]:
        return _combine([group.propose(args) for group in self.groups])


class CrossWrite:
    """A write over keys of several groups, all led here (see the module's docstring).
    The router's gate is closed when this is made; ``propose`` opens it when done."""

    def __init__(self, router: Router, groups: list[RaftGroup]) -> None:
        self.router = router
        self.groups = groups

    def propose(self, args: list[bytes]) -> asyncio.Future[Reply]:
        return asyncio.ensure_future(self._run(args))

    async def _run(self, args: list[bytes]) -> Reply:
        try:
            return await self._write(args)
        except Exception as error:  # a bug: answer, log, keep serving
            log.exception("write over several groups failed")
            return RespError(f"ERR internal error: {error.__class__.__name__}")
        finally:
            self.router.open_gate()

    async def _write(self, args: list[bytes]) -> Reply:
        if not await self._settle():
            return MOVED_AWAY
        command = COMMANDS[args[0].decode("latin-1").lower()]
        group_of = self.router.group_of
        now = int(time.time() * 1000)
        draft = KeyspaceDraft(lambda key: group_of(key).keyspace, now)
        try:
            reply = command.handler(draft, args, now)
        except RespError as error:
            return error
        shares: dict[RaftGroup, list[bytes]] = {}
        for key, (value, expire_at) in draft.changes.items():
            share = shares.setdefault(group_of(key), [b"respkv.put"])
            if value is None:
                share += [key, b"0", b"", b""]
            else:
                share += [key, b"1", value, b"" if expire_at is None else b"%d" % expire_at]
        if shares:
            outcome = await _combine([g.propose(share) for g, share in shares.items()])
            if isinstance(outcome, RespError):
                return outcome
        return reply

    async def _settle(self) -> bool:
        """Wait until every write proposed to the groups is applied; False if this
        node stopped leading one of them."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            if not all(g.is_leader() for g in self.groups):
                return False
            busy = [g for g in self.groups if not g.settled()]
            if not busy:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(g.when_settled() for g in busy)), left)


def _combine(futures: list[asyncio.Future[Reply]]) -> asyncio.Future[Reply]:
    """One reply for writes sent to several groups: the first error, else the
    first reply."""
    combined: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

    def done(_: Any) -> None:
        if combined.done() or not all(f.done() for f in futures):
            return
        replies = [f.result() for f in futures]
        errors = [r for r in replies if isinstance(r, RespError)]
        combined.set_result(errors[0] if errors else replies[0])

    for future in futures:
        future.add_done_callback(done)
    return combined


def _all_of(futures: list[asyncio.Future[None]]) -> asyncio.Future[None]:
    """Resolves when every future has; fails with the first failure."""
    combined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def done(future: asyncio.Future[None]) -> None:
        if combined.done():
            if not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning
            return
        if future.cancelled():
            combined.cancel()
        elif future.exception() is not None:
            combined.set_exception(future.exception())
        elif all(f.done() for f in futures):
            combined.set_result(None)

    for future in futures:
        future.add_done_callback(done)
    return combined
