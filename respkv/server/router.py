"""From a command to the Raft group(s) that serve it on this node, or the refusal.

A key's group is the one owning its hash slot. Writes go to the group's leader:
elsewhere they get -MOVED <slot> <leader>, as from a Redis Cluster replica.
Reads are served by every node from its own copy of the group.

Commands whose keys live in several groups:
- reads (MGET, EXISTS...) read the groups' keyspaces as one (``Span``), after
  a read barrier on each;
- writes (MSET, DEL, RENAME, MSETNX...) run on a node that leads every group
  involved (respkv.server.crosswrite); elsewhere they get -CROSSSLOT, as in
  Redis Cluster.
Keyless commands cover the groups this node leads (a Redis Cluster master's
slots), or for reads every group on a node that leads none; a keyless write
on a node that leads nothing is sent to the first group's leader.

Refusals are raised as the RespError to reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from respkv.commands.errors import CROSSSLOT, DISK_FULL, OOM
from respkv.commands.table import Command
from respkv.protocol.reply import Reply, RespError
from respkv.replication.eviction import Evictor
from respkv.replication.group import RaftGroup
from respkv.replication.node import ClusterNode
from respkv.replication.slots import key_slot
from respkv.server.crosswrite import CrossWrite
from respkv.server.futures import all_of, first_failure_or_reply
from respkv.server.refusals import moved, reply_for
from respkv.state.keyspace import KeyspaceView
from respkv.state.views import KeyspaceUnion


class ReadTarget(Protocol):
    """What a read runs against: one group (RaftGroup) or several (Span)."""

    names: tuple[str, ...]  # the groups it reads
    keyspace: KeyspaceView

    @property
    def reads_local(self) -> bool:
        """No barrier needed: this node's state is the linearizable state."""

    def read_barrier(self, mode: str) -> asyncio.Future[None] | None: ...


class Router:
    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.groups: list[RaftGroup] = []
        self.owner: list[int] = []
        self.gate: asyncio.Future[None] | None = None  # set while a cross-group write runs
        self.config = node.config
        self.evictor = Evictor(lambda: self.node.groups, node.config)  # maxmemory

    def start(self) -> None:
        """Once the node has opened its groups."""
        self.groups = self.node.groups
        self.owner = self.node.slot_owner

    def group_of(self, key: bytes) -> RaftGroup:
        return self.groups[self.owner[key_slot(key)]]

    # -- writes ----------------------------------------------------------------

    def write(self, command: Command, args: list[bytes]) -> asyncio.Future[Reply]:
        """Propose a write where it belongs: its reply once applied."""
        if command.find_keys is not None:
            return self._write_movable(command, args)
        first = command.first_key
        if first <= 0 or len(args) <= first:
            return self._keyless_write(args, command)
        groups = self.groups
        slot = key_slot(args[first])
        group = groups[self.owner[slot]] if len(groups) > 1 else groups[0]
        if command.last_key != first and len(groups) > 1:
            involved = self._involved(command, args)
            if len(involved) > 1:
                return self._cross_write(command, args, involved)
        if not group.is_leader():
            raise elsewhere(group, slot)
        if group.disk_full:
            raise refuse_for_disk([group])
        if self.config.maxmemory:
            self.check_room(command)
        return group.propose(args, slot)

    def _write_movable(self, command: Command, args: list[bytes]) -> asyncio.Future[Reply]:
        """A write whose keys an argument counts (LMPOP, ZUNIONSTORE...)."""
        positions = command.key_positions(args)
        if not positions:  # a bad key count: any group answers the error
            return self._keyless_write(args)
        involved = self._involved(command, args)
        if len(involved) > 1:
            return self._cross_write(command, args, involved)
        slot = key_slot(args[positions[0]])
        group = involved[0]
        if not group.is_leader():
            raise elsewhere(group, slot)
        if group.disk_full:
            raise refuse_for_disk([group])
        if self.config.maxmemory:
            self.check_room(command)
        return group.propose(args, slot)

    def _keyless_write(self, args: list[bytes],
                       command: Command | None = None) -> asyncio.Future[Reply]:
        led = [g for g in self.groups if g.is_leader()]
        if not led:
            raise elsewhere(self.groups[0], 0)
        if any(g.disk_full for g in led):
            raise refuse_for_disk(led)
        if command is not None and self.config.maxmemory:
            self.check_room(command)
        return first_failure_or_reply([group.propose(args) for group in led])

    def _cross_write(self, command: Command, args: list[bytes],
                     involved: list[RaftGroup]) -> asyncio.Future[Reply]:
        if not all(g.is_leader() for g in involved):
            raise CROSSSLOT
        if any(g.disk_full for g in involved):
            raise refuse_for_disk(involved)
        if self.config.maxmemory:
            self.check_room(command)
        self.gate = gate = asyncio.get_running_loop().create_future()
        return CrossWrite(involved, self.group_of, lambda: self._open(gate)).start(command, args)

    def check_room(self, command: Command) -> None:
        """A write that may add data, over maxmemory with nothing to evict: -OOM. Checked
        where the write is served (a node it is not for answers -MOVED first)."""
        if "denyoom" in command.flags and not self.evictor.admit():
            raise OOM

    def _open(self, gate: asyncio.Future[None]) -> None:
        if self.gate is gate:
            self.gate = None
        if not gate.done():
            gate.set_result(None)

    # -- reads -------------------------------------------------------------------

    def read_target(self, command: Command, args: list[bytes]) -> ReadTarget:
        if command.find_keys is not None and len(self.groups) > 1:
            involved = self._involved(command, args)
            if len(involved) == 1:
                return involved[0]
            if len(involved) > 1:
                return Span(involved, self.group_of)
        first = command.first_key
        groups = self.groups
        if first <= 0 or len(args) <= first:
            led = [g for g in groups if g.is_leader()] or groups
            return led[0] if len(led) == 1 else Span(led, self.group_of)
        if len(groups) == 1:
            return groups[0]
        if command.last_key != first:
            involved = self._involved(command, args)
            if len(involved) > 1:
                return Span(involved, self.group_of)
        return groups[self.owner[key_slot(args[first])]]

    def _involved(self, command: Command, args: list[bytes]) -> list[RaftGroup]:
        """The groups a multi-key command's keys belong to, in group order."""
        groups, owner = self.groups, self.owner
        indexes = {owner[key_slot(args[i])] for i in command.key_positions(args)}
        return [groups[i] for i in sorted(indexes)]


def elsewhere(group: RaftGroup, slot: int) -> RespError:
    """A write this node does not lead: -MOVED to the leader, or -CLUSTERDOWN (with
    the reason, when the group failed here)."""
    if group.down:
        return reply_for(group.down_outcome())
    return moved(slot, group.leader_client_address())


class Span:
    """Reads over several groups of this node, as one keyspace."""

    def __init__(self, groups: list[RaftGroup], group_of: Callable[[bytes], RaftGroup]) -> None:
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
        return all_of(barriers)


def refuse_for_disk(groups: list[RaftGroup]) -> RespError:
    """The refusal of a write for disk space, counted (INFO) on the full groups."""
    for group in groups:
        if group.disk_full:
            group.disk.refused += 1
    return DISK_FULL
