"""Lua scripts (EVAL and friends) on the client port, replicated by their effects.

A script runs on the leader of its keys' group against a draft of the group's
keyspace: nothing changes before the log says so. The write commands it called
are then proposed as one ``respkv.exec`` entry carrying the draft's time, so every
node (this one included) applies exactly what the script did, and apply stays a
pure function of (state, entry) whatever the script computed. The node's gate is
closed from the start of the script until its effects are proposed, after the
group's earlier writes are applied: the draft and the entry see the same state.

The script runs in a worker thread (the Lua interpreter releases the GIL), and each
``redis.call`` is carried out on the event loop, so the node keeps answering its
peers (no election for a slow script), other connections get ``-BUSY`` once the
script has run for busy-reply-threshold, and SCRIPT KILL can stop it. Killing is
always safe here: a script's writes are in its draft until it ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from respkv.clock import now_ms
from respkv.commands import errors
from respkv.commands.context import ServerContext, Session
from respkv.commands.lua.engine import KILLED, LuaEngine
from respkv.commands.lua.sources import ScriptCache, script_flags
from respkv.commands.scripting import SCRIPT_CALLS, split_eval
from respkv.commands.table import Command, Kind, lookup
from respkv.commands.transactions import exec_entry
from respkv.config import Config
from respkv.protocol.reply import NULL_ARRAY, OK, Reply, RespError
from respkv.replication.group import RaftGroup
from respkv.replication.slots import key_slot
from respkv.server.futures import settle
from respkv.server.refusals import moved
from respkv.server.router import Router
from respkv.state.views import KeyspaceDraft

logger = logging.getLogger(__name__)
T = TypeVar("T")

SETTLE_TIMEOUT = 10.0
NOSCRIPT = RespError("NOSCRIPT No matching script. Please use EVAL.")
NOTBUSY = RespError("NOTBUSY No scripts in execution right now.")
BUSY = RespError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or "
                 "SHUTDOWN NOSAVE.")
MOVED_AWAY_TEXT = "TRYAGAIN leadership moved before the script could run; retry"
NOT_ALLOWED = RespError("ERR This Redis command is not allowed from script")
UNKNOWN = RespError("ERR Unknown Redis command called from script")
WRONG_ARITY = RespError("ERR Wrong number of args calling Redis command from script")
NON_LOCAL = RespError("ERR Script attempted to access a non local key in a cluster node")
WRITE_IN_RO = RespError("ERR Write commands are not allowed from read-only scripts.")


@dataclass
class Run:
    """One script being run."""

    group: RaftGroup
    draft: KeyspaceDraft
    now: int
    read_only: bool
    session: Session
    started: float = field(default_factory=time.monotonic)
    effects: list[list[bytes]] = field(default_factory=list)
    kill: bool = False
    # over maxmemory when it started (and not allow-oom): its first denyoom call is
    # refused, as Redis refuses it, while one that has written goes on
    oom: bool = False


class ScriptRunner:
    def __init__(self, router: Router, config: Config) -> None:
        self.router = router
        self.config = config
        # For the server commands a script may call (TIME, PING...); the server sets it
        # once the context, which holds this runner, exists.
        self.context: ServerContext | None = None
        self.cache = ScriptCache()
        self._engine: LuaEngine | None = None  # made on first use: a Lua state costs
        self.running: Run | None = None

    @property
    def engine(self) -> LuaEngine:
        if self._engine is None:
            self._engine = LuaEngine()
        return self._engine

    # -- SCRIPT ------------------------------------------------------------------

    def load(self, source: bytes) -> Reply:
        """Compile and cache (SCRIPT LOAD): the sha1, or the compile error."""
        compiled = self.engine.load(source)
        if isinstance(compiled, RespError):
            return compiled
        return self.cache.load(source)

    def exists(self, shas: list[bytes]) -> list[int]:
        return [int(self.cache.exists(sha)) for sha in shas]

    def flush(self) -> Reply:
        self.cache.flush()
        self.engine.flush()
        return OK

    def kill(self) -> Reply:
        """SCRIPT KILL. Unlike Redis, a script that has written can be killed too: its
        writes are still in its draft, so killing it leaves nothing half done."""
        if self.running is None:
            return NOTBUSY
        self.running.kill = True
        return OK

    def stop(self) -> None:
        """At shutdown: end a running script as SCRIPT KILL would."""
        if self.running is not None:
            self.running.kill = True

    def busy(self) -> bool:
        """A script has run past busy-reply-threshold: others get -BUSY."""
        run = self.running
        return run is not None and (
            time.monotonic() - run.started) * 1000 >= self.config.busy_reply_threshold

    # -- EVAL ---------------------------------------------------------------------

    async def eval(self, source: bytes | None, sha: bytes | None, keys: list[bytes],
                   argv: list[bytes], session: Session, read_only: bool) -> Reply:
        group, slot = self._place(keys)
        if isinstance(group, RespError):
            return group
        if not group.is_leader():
            return moved(slot, group.leader_client_address())
        found = self._source(source, sha)
        if isinstance(found, RespError):
            return found
        oom = self._oom(found)
        if isinstance(oom, RespError):
            return oom
        async with self._holding(group) as now:
            run = Run(group, KeyspaceDraft(lambda key: group.keyspace, now, [group.keyspace]),
                      now, self._read_only(found, read_only), session, oom=oom)
            result = await self._running(run, self._run_script(run, found, keys, argv))
            future = self._propose(run, slot)
        if future is not None:
            await future  # the script's writes are committed before its reply goes out
        return result

    async def run_transaction(self, group: RaftGroup, slot: int,
                              steps: list[tuple[Command, list[bytes]]], session: Session,
                              aborted: Callable[[int], bool]) -> list[Reply] | Reply:
        """EXEC of a transaction that holds a script: its data commands and scripts run in
        order on one draft, and every write among them is proposed as one entry, so the
        transaction stays atomic. The data replies, or EXEC's whole reply (a null array
        when ``aborted(now)`` says a watched key changed, an error)."""
        async with self._holding(group) as now:
            if aborted(now):
                return NULL_ARRAY
            run = Run(group, KeyspaceDraft(lambda key: group.keyspace, now, [group.keyspace]),
                      now, False, session)
            replies = await self._running(run, self._steps(run, steps))
            if run.kill:
                return replies[-1]  # the killed script's error; the draft is dropped
            future = self._propose(run, slot)
        if future is not None:
            await future
        return replies

    async def _steps(self, run: Run, steps: list[tuple[Command, list[bytes]]]) -> list[Reply]:
        replies: list[Reply] = []
        for command, args in steps:
            if command.name not in SCRIPT_CALLS:
                replies.append(self._data_command(run, command, args))
                continue
            try:
                keys, argv = split_eval(args)
            except RespError as error:
                replies.append(error)
                continue
            by_sha = command.name.startswith("evalsha")
            found = self._source(None if by_sha else args[1], args[1] if by_sha else None)
            if isinstance(found, RespError):
                replies.append(found)
                continue
            run.read_only = self._read_only(found, command.name.endswith("_ro"))
            replies.append(await self._run_script(run, found, keys, argv))
            if run.kill:
                break
        return replies

    def _source(self, source: bytes | None, sha: bytes | None) -> bytes | RespError:
        """The script to run: EVAL's (compiled and cached), or EVALSHA's from the cache."""
        if source is None:
            return self.cache.get(sha or b"") or NOSCRIPT
        compiled = self.load(source)  # EVAL caches what compiles, as Redis does
        return compiled if isinstance(compiled, RespError) else source

    def _oom(self, source: bytes) -> bool | RespError:
        """Over maxmemory with nothing to evict: a script with a shebang that may write
        is refused at once (Redis counts it as a denyoom command); one without a
        shebang runs, with its first denyoom call refused (True)."""
        if not self.config.maxmemory or self.router.evictor.admit():
            return False
        flags, shebang = script_flags(source)
        if "allow-oom" in flags or "no-writes" in flags:
            return False
        return errors.OOM if shebang else True

    @staticmethod
    def _read_only(source: bytes, asked: bool) -> bool:
        flags, _ = script_flags(source)  # it compiled: the shebang is good
        return asked or "no-writes" in flags

    @contextlib.asynccontextmanager
    async def _holding(self, group: RaftGroup) -> AsyncIterator[int]:
        """Hold the node's gate, once every write proposed to the group is applied: the
        draft and the entry proposed from it then see the same state. Yields the time
        the commands run at."""
        router = self.router
        while router.gate is not None:
            await asyncio.shield(router.gate)
        router.gate = gate = asyncio.get_running_loop().create_future()
        try:
            if not await settle([group], SETTLE_TIMEOUT):
                raise RespError(MOVED_AWAY_TEXT)  # the connection answers it
            yield now_ms()
        finally:
            router.gate = None
            gate.set_result(None)

    async def _running(self, run: Run, work: Awaitable[T]) -> T:
        self.running = run
        try:
            return await work
        finally:
            self.running = None

    @staticmethod
    def _propose(run: Run, slot: int) -> asyncio.Future[Reply] | None:
        """The run's writes as one entry, at the run's time; none when killed (its draft
        is dropped) or when it wrote nothing."""
        if run.kill or not run.effects:
            return None
        return run.group.propose(exec_entry(run.effects), slot, at=run.now)

    def _place(self, keys: list[bytes]) -> tuple[RaftGroup | RespError, int]:
        router = self.router
        if not keys:
            led = [g for g in router.groups if g.is_leader()]
            return (led or router.groups)[0], 0
        slot = key_slot(keys[0])
        group = router.group_of(keys[0])
        if any(router.group_of(key) is not group for key in keys[1:]):
            return errors.CROSSSLOT, slot
        return group, slot

    async def _run_script(self, run: Run, source: bytes, keys: list[bytes],
                          argv: list[bytes]) -> Reply:
        loop = asyncio.get_running_loop()
        engine = self.engine

        def call(command_argv: list[bytes]) -> Reply:  # in the script's thread
            done: concurrent.futures.Future[Reply] = concurrent.futures.Future()

            def on_loop() -> None:
                try:
                    done.set_result(self._call(run, command_argv))
                except BaseException as error:  # handed back to the script's thread
                    done.set_exception(error)

            loop.call_soon_threadsafe(on_loop)
            return done.result()

        result = await asyncio.to_thread(
            engine.run, source, keys, argv, call, resp3=run.session.resp3,
            read_only=run.read_only, should_stop=lambda: run.kill)
        if run.kill and not (isinstance(result, RespError) and result.text.startswith(KILLED)):
            run.kill = False  # SCRIPT KILL came after the script ended: too late to stop it
        return result

    def _call(self, run: Run, argv: list[bytes]) -> Reply:
        """One redis.call / redis.pcall, on the loop, against the draft."""
        command = lookup(argv[0]) if argv else None
        if command is None or command.internal:
            return UNKNOWN
        if command.flagged(argv, "noscript") or command.kind not in _CALLABLE:
            return NOT_ALLOWED
        if not command.arity_ok(len(argv)):
            return WRONG_ARITY
        if command.is_write and run.read_only:
            return WRITE_IN_RO
        denied = self._denied(run, command, argv)
        if denied is not None:
            return denied
        if run.oom and not run.effects and "denyoom" in command.flags:
            return errors.OOM
        if command.kind is Kind.SERVER:
            return self._server_command(command, run, argv)
        keys = command.key_positions(argv)
        if command.is_write and not keys and len(self.router.groups) > 1:
            return NOT_ALLOWED  # a keyless write would reach beyond the script's group
        group_of = self.router.group_of
        if any(group_of(argv[i]) is not run.group for i in keys):
            return NON_LOCAL
        return self._data_command(run, command, argv)

    def _denied(self, run: Run, command: Command, argv: list[bytes]) -> RespError | None:
        """The script caller's ACL refuses this call: Redis' script wording for why."""
        refusal = self.context.acl.check(run.session, command, argv, "lua")
        if refusal is None:
            return None
        if "keys" in refusal.text:
            return SCRIPT_KEY_DENIED
        if "channels" in refusal.text:
            return SCRIPT_CHANNEL_DENIED
        return SCRIPT_COMMAND_DENIED

    @staticmethod
    def _data_command(run: Run, command: Command, argv: list[bytes]) -> Reply:
        try:
            reply = command.handler(run.draft, argv, run.now)
        except RespError as error:
            return error
        if command.is_write:
            run.effects.append(argv)
        return reply

    def _server_command(self, command: Command, run: Run, argv: list[bytes]) -> Reply:
        """TIME, PING, ECHO, INFO...: answered here, with nothing to log."""
        try:
            reply = command.handler(self.context, run.session, argv)
        except RespError as error:
            return error
        if inspect.isawaitable(reply):
            reply.close()  # type: ignore[union-attr]
            return NOT_ALLOWED
        return reply


_CALLABLE = (Kind.READ, Kind.WRITE, Kind.SERVER)
SCRIPT_COMMAND_DENIED = RespError(
    "ERR The user executing the script can't run this command or subcommand")
SCRIPT_KEY_DENIED = RespError("ERR The user executing the script can't access at least one "
                              "of the keys mentioned in the command arguments")
SCRIPT_CHANNEL_DENIED = RespError(
    "ERR The user executing the script can't publish to the channel mentioned in the command")
