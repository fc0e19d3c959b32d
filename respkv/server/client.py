"""One client connection: parse, run in order, reply in order, with back-pressure.

Commands of one connection run strictly in order, as Redis runs them, while
writes are pipelined into the log: consecutive writes are all proposed at
once (their replies come back in log order), and any other command waits
until the writes before it are applied, so a pipelined ``SET k v; GET k``
reads its own write. Linearizable reads share one read barrier per batch.

Replies are queued in order as encoded bytes or as futures still waiting for
their log entry; the ready prefix of the queue is written in one call.

Limits, as Redis has them: a client whose pending output (the transport's unsent
bytes plus pub/sub messages queued behind a reply not ready yet) passes its class's
client-output-buffer-limit is dropped, its output discarded; one whose incomplete
request passes client-query-buffer-limit is closed. Below those, back-pressure
bounds what a connection holds: while its output backs up (the transport's high
water mark) or too much input waits to run, it is not read from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any, Protocol

from respkv.commands.errors import SHUTTING_DOWN
from respkv.commands.table import Command
from respkv.config import BufferLimit, Config
from respkv.protocol.parser import ProtocolError, RequestParser
from respkv.protocol.reply import Reply, RespError, encode
from respkv.replication.outcomes import ReplicationError
from respkv.server.access import AccessControl
from respkv.server.dispatch import (
    AfterWrites,
    Barrier,
    Dispatcher,
    Gated,
    Pending,
    Proposed,
)
from respkv.server.pubsub import PubSubHub
from respkv.server.refusals import reply_for
from respkv.server.router import ReadTarget
from respkv.server.stats import Stats
from respkv.server.transactions import Transaction, Watching

logger = logging.getLogger(__name__)


class ClientHost(Protocol):
    """What a connection needs from the server that accepted it."""

    config: Config
    stats: Stats
    dispatcher: Dispatcher
    pubsub: PubSubHub
    access: AccessControl

    def register(self, client: Client) -> bool:
        """Count the connection in; False when maxclients is reached."""

    def unregister(self, client: Client) -> None: ...

    def limit_reached(self, client: Client, limit: str, detail: str) -> None:
        """A client is being dropped for a limit ("output" or "query"): count, log."""

_CLOSE = object()  # queued after the last reply of a connection that must close
_MAX_QUEUED = 10_000  # parsed commands waiting to run before we stop reading
_FLUSH_AT = 256 * 1024  # reply bytes run() may hold before it writes them out
# Commands run in one go before the other connections get a turn of the loop: a client
# that pipelines without pause (the event loop reads up to 32 times from one socket
# in a row) would otherwise hold the loop for seconds.
_TURN_COMMANDS = 1000
_MAX_INFLIGHT_BYTES = 16 << 20  # bytes of proposed, unapplied writes before we stop reading
_MAX_BACKLOG_BYTES = 16 << 20  # bytes received while commands wait to run, before we stop reading
# The transport's high water mark: past it, replies stop being produced and the client
# is not read from, until it drains to a quarter of it.
_OUTPUT_HIGH_WATER = 1 << 20


class Client(asyncio.Protocol):
    tls = False  # on the TLS port: respkv.server.tlsclient.TlsClient

    def __init__(self, host: ClientHost, client_id: int) -> None:
        self.host = host
        self.id = client_id
        self.parser = RequestParser(host.config.proto_max_bulk_len)
        self.transport: asyncio.Transport | None = None
        self.resp3 = False
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.readonly = False  # READONLY: accepted; followers serve reads anyway
        # As in Redis: a connection starts as the default user, authenticated if that
        # user needs no password, and stays so if one is set later.
        self.user = host.access.default()
        self.authenticated = self.user.nopass and self.user.enabled
        self.read_consistency: str | None = None  # per-connection override
        self.addr = ""
        self.laddr = ""
        self.created = time.time()
        self.last_active = time.monotonic()
        self.last_command = "NULL"
        self.commands: deque[list[bytes]] = deque()  # parsed, not yet run
        self.replies: deque[Any] = deque()  # bytes | (future, resp3) | _CLOSE
        self.inflight = 0  # writes proposed and not yet applied
        self.inflight_bytes = 0  # their arguments' size: a client that writes faster
        # than the log commits is stopped reading, as one that does not read replies is
        self.backlog_bytes = 0  # received since the command queue was last empty
        self.queued_bytes = 0  # pub/sub messages in ``replies`` behind a reply not ready
        self.soft_since: float | None = None  # when output went past the soft limit
        self.waiting: asyncio.Future[Any] | None = None  # what the queue is blocked on
        # per group: commands received before the last read barrier on it passed
        self.barrier_covers: dict[str, int] = {}
        self.barrier_error: RespError | None = None  # a failed barrier, for the read waiting on it
        self.barrier_wait: tuple[tuple[str, ...], int] = ((), 0)  # (groups, commands it covers)
        # a read waiting on its barrier: (args, command, target), kept by dispatch
        self.after_barrier: tuple[list[bytes], Command, ReadTarget] | None = None
        self.received = 0
        self.executed = 0
        self.reading_paused = False
        self.writing_paused = False
        self.yielded = False  # gave the loop to others: the rest runs on the next turn
        self.closing = False
        self.close_pending = False  # QUIT, CLIENT KILL of itself: close after this reply
        self.draining = False  # the server shuts down: read no more
        self.transaction: Transaction | None = None  # between MULTI and EXEC
        self.watching: list[Watching] = []  # WATCHed keys
        self.subscriptions: dict[str, set[bytes]] = {"channel": set(), "pattern": set(),
                                                     "shard": set()}

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.addr = f"{peer[0]}:{peer[1]}"
        self.laddr = f"{sock[0]}:{sock[1]}"
        if not self.host.register(self):
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            self.closing = True
            return
        refusal = self.host.access.protected_refusal(str(peer[0]))
        if refusal is not None:
            transport.write(refusal)
            transport.close()  # type: ignore[attr-defined]
            self.closing = True
            return
        self.transport.set_write_buffer_limits(high=_OUTPUT_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.commands.clear()
        self.forget_state()
        # a blocking pop of a client gone ends, as in Redis (else BLPOP 0 waits forever)
        self.host.dispatcher.blocked.unblock(self.id, False)
        self.host.unregister(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = time.monotonic()
        parser = self.parser
        config = self.host.config
        parser.max_bulk = config.proto_max_bulk_len  # CONFIG SET applies to every client
        self.backlog_bytes += len(data)
        try:
            frames = parser.feed(data)
        except ProtocolError as error:
            frames = error.frames  # type: ignore[attr-defined]
            self.commands.extend(frames)
            self.commands.append([_CLOSE, error.reply_text])  # type: ignore[list-item]
            self.received += len(frames) + 1
            self.host.stats.protocol_errors += 1
            self.transport.pause_reading()
            self.reading_paused = True
            self.run()
            return
        if parser.held > config.client_query_buffer_limit:
            # as Redis: closed at once, without a reply; what came before it is not run
            self.host.limit_reached(self, "query", f"qbuf={parser.held}")
            self.abort()
            return
        self.received += len(frames)
        self.commands.extend(frames)
        self.run()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.last_active = time.monotonic()  # it reads: not idle
        if self.commands and self.waiting is None:
            self.run()  # the commands left queued when the client stopped reading
        else:
            self._update_reading()

    # -- running commands ----------------------------------------------------

    def run(self) -> None:
        """Run queued commands in order until one has to wait."""
        commands = self.commands
        dispatch = self.host.dispatcher.dispatch
        held = 0  # bytes of replies produced and not yet written
        budget = _TURN_COMMANDS
        while commands and self.waiting is None and not self.closing:
            budget -= 1
            if budget < 0:
                self._yield_turn()
                break
            if held > _FLUSH_AT:
                # write what we have: if the client is not reading, the transport
                # pauses us, and we stop producing replies until it drains
                self.flush()
                held = 0
                if self.writing_paused:
                    break
            args = commands[0]
            if args[0] is _CLOSE:
                commands.popleft()
                self.replies.append(encode(RespError(args[1]), self.resp3))
                self.replies.append(_CLOSE)
                break
            outcome = dispatch(self, args)
            kind = outcome.__class__
            if kind is bytes:
                commands.popleft()
                self.executed += 1
                self.replies.append(outcome)
                held += len(outcome)  # type: ignore[arg-type]
                if outcome[0] == 45:  # type: ignore[index]  # b"-": INFO errorstats
                    self.host.stats.commands.error_reply(outcome)  # type: ignore[arg-type]
                if self.close_pending:
                    self.replies.append(_CLOSE)
                    break
                continue
            if kind is Proposed:  # a future for the applied reply
                commands.popleft()
                self.executed += 1
                self._add_write(outcome, sum(map(len, args)))  # type: ignore[arg-type]
            elif kind is AfterWrites:  # _write_done runs the queue again
                break
            elif kind is Barrier:  # wait for a read barrier, then run it again
                self._wait_barrier(outcome.future, outcome.groups)  # type: ignore[union-attr]
            elif kind is Gated:  # wait for the write over several groups, then again
                self._wait_for(outcome.future)  # type: ignore[union-attr]
            else:  # Pending: a server command that awaits something
                assert isinstance(outcome, Pending)
                commands.popleft()
                self.executed += 1
                future = asyncio.ensure_future(outcome.awaitable)
                self.replies.append((future, self.resp3))
                self._wait_for(future)
        if not commands:
            self.backlog_bytes = 0
        self.flush()
        self._update_reading()

    def _yield_turn(self) -> None:
        if not self.yielded:
            self.yielded = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self.yielded = False
        if not self.closing:
            self.run()

    def needs_barrier(self, groups: tuple[str, ...]) -> bool:
        """True when the next read, on these groups, is not covered by a barrier
        already passed on each."""
        covers, executed = self.barrier_covers, self.executed
        if len(groups) == 1:
            return executed >= covers.get(groups[0], 0)
        return any(executed >= covers.get(name, 0) for name in groups)

    def barrier_passed_now(self, groups: tuple[str, ...]) -> None:
        for name in groups:
            self.barrier_covers[name] = self.received

    def _add_write(self, proposed: Proposed, size: int) -> None:
        future = proposed.future
        self.inflight += 1
        self.inflight_bytes += size
        self.replies.append((future, self.resp3))
        future.add_done_callback(lambda done: self._write_done(done, size, proposed))

    def _write_done(self, future: asyncio.Future[Reply], size: int, proposed: Proposed) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: a closed connection never encodes it
        self.host.dispatcher.wrote(self, proposed)  # its reply is ready: timed
        self.inflight -= 1
        self.inflight_bytes -= size
        self.flush()
        if self.inflight == 0 and self.waiting is None and self.commands:
            self.run()
        elif self.reading_paused:
            self._update_reading()

    def _wait_for(self, awaitable: Awaitable[Any]) -> None:
        future = asyncio.ensure_future(awaitable)
        self.waiting = future
        future.add_done_callback(self._resume)

    def _wait_barrier(self, barrier: asyncio.Future[None], groups: tuple[str, ...]) -> None:
        self.waiting = barrier
        self.barrier_wait = (groups, self.received)
        barrier.add_done_callback(self._barrier_passed)

    def _barrier_passed(self, barrier: asyncio.Future[None]) -> None:
        """The barrier covers every command received before it was asked for."""
        groups, covers = self.barrier_wait
        if barrier.cancelled():
            self.barrier_error = RespError("ERR read cancelled")
        elif (error := barrier.exception()) is not None:
            self.barrier_error = _error_reply(error)
        else:
            for name in groups:
                self.barrier_covers[name] = covers
        self._resume(barrier)

    def _resume(self, _: asyncio.Future[Any]) -> None:
        self.waiting = None
        if not self.closing:
            self.run()

    def flush(self) -> None:
        """Write every reply that is ready, in order, in one call."""
        replies = self.replies
        if not replies or self.transport is None:
            return
        out: list[bytes] = []
        while replies:
            item = replies[0]
            if item.__class__ is bytes:
                out.append(item)
            elif item is _CLOSE:
                replies.clear()
                self._write(out)
                self.close()
                return
            else:
                future, resp3 = item
                if not future.done():
                    break
                out.append(self._encode_result(future, resp3))
            replies.popleft()
        if self.queued_bytes:
            self.queued_bytes = sum(len(item) for item in replies if item.__class__ is bytes)
        self._write(out)

    def _encode_result(self, future: asyncio.Future[Any], resp3: bool) -> bytes:
        if future.cancelled():
            data = encode(RespError("ERR command cancelled"), resp3)
        elif (error := future.exception()) is not None:
            data = encode(_error_reply(error), resp3)
        else:
            data = encode(future.result(), resp3)
        if data[0] == 45:  # b"-": INFO errorstats
            self.host.stats.commands.error_reply(data)
        return data

    def _write(self, out: list[bytes]) -> None:
        if out and not self.closing:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])
            self.check_output()

    def output_limit(self) -> BufferLimit:
        """The client-output-buffer-limit of this client's class (Redis' getClientType:
        a subscribed connection is pubsub; replicas never use the client port here)."""
        limits = self.host.config.client_output_buffer_limit
        return limits.pubsub if self.subscribed else limits.normal

    def check_output(self) -> bool:
        """Drop the client if its pending output is past its class's hard limit, or has
        been past the soft one for longer than soft-seconds (Redis' rule); True if so."""
        limit = self.output_limit()
        if limit.off or self.closing or self.transport is None:
            self.soft_since = None
            return False
        used = self.transport.get_write_buffer_size() + self.queued_bytes
        if not (limit.hard and used >= limit.hard):
            if not (limit.soft and used >= limit.soft):
                self.soft_since = None
                return False
            now = time.monotonic()
            if self.soft_since is None:
                self.soft_since = now  # the server's sweep looks again later
                return False
            if now - self.soft_since <= limit.soft_seconds:
                return False
        self.host.limit_reached(self, "output", f"omem={used}")
        self.abort()
        return True

    def _update_reading(self) -> None:
        """Stop reading while replies back up or too many commands wait."""
        if self.closing or self.transport is None or self.draining:
            return
        backlog = (self.writing_paused or self.yielded or len(self.commands) > _MAX_QUEUED
                   or self.inflight_bytes > _MAX_INFLIGHT_BYTES
                   or (self.backlog_bytes > _MAX_BACKLOG_BYTES and bool(self.commands)))
        if backlog and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        elif not backlog and self.reading_paused:
            self.transport.resume_reading()
            self.reading_paused = False

    def drain(self) -> None:
        """Shutdown: stop reading; what was proposed finishes, what was not is failed."""
        self.draining = True
        if self.closing or self.transport is None:
            return
        if not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        failed = encode(SHUTTING_DOWN, self.resp3)
        self.replies.extend([failed] * len(self.commands))
        self.commands.clear()
        self.flush()

    @property
    def subscribed(self) -> bool:
        subs = self.subscriptions
        return bool(subs["channel"] or subs["pattern"] or subs["shard"])

    def forget_state(self) -> None:
        self.transaction = None
        self.host.dispatcher.transactions.forget(self)
        self.host.pubsub.forget(self)

    def push(self, data: bytes) -> None:
        """A pub/sub message: after the replies queued so far. It is written whatever
        the back-pressure (a publisher is not held up by a slow subscriber); the output
        limit of the subscriber's class is what bounds it."""
        if self.closing or self.transport is None:
            return
        if self.replies:  # behind a reply not ready yet: flush writes it after that one
            self.replies.append(data)
            self.queued_bytes += len(data)
            self.check_output()
            return
        self._write([data])

    def close_after_replies(self) -> None:
        self.close_pending = True

    def close(self) -> None:
        """Close after what is already written (transport.close flushes)."""
        if not self.closing:
            self.closing = True
            self.commands.clear()
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Close now, discarding pending output: a client that does not read would
        otherwise keep it (transport.close waits for it to be sent)."""
        if not self.closing:
            self.closing = True
            self.commands.clear()
            self.replies.clear()
            self.queued_bytes = 0
            if self.transport is not None:
                self.transport.abort()

    @property
    def idle_exempt(self) -> bool:
        """Spared by the idle timeout, as Redis spares them: a blocked command (BLPOP,
        WAIT...) or a write in flight, and subscribed clients."""
        return self.waiting is not None or bool(self.inflight) or self.subscribed

    # -- for CLIENT LIST / INFO ----------------------------------------------

    def info_line(self) -> str:
        now = time.time()
        subs = self.subscriptions
        pending_out = self.queued_bytes
        if self.transport is not None and not self.closing:
            pending_out += self.transport.get_write_buffer_size()
        flags = ("P" if self.subscribed else "") + ("b" if self.waiting is not None else "") \
            + ("r" if self.readonly else "")
        fields = {
            "id": self.id,
            "addr": self.addr,
            "laddr": self.laddr,
            "fd": -1,
            "name": self.name.decode("utf-8", "replace"),
            "age": int(now - self.created),
            "idle": int(time.monotonic() - self.last_active),
            "flags": flags or "N",
            "db": 0,
            "sub": len(subs["channel"]),
            "psub": len(subs["pattern"]),
            "ssub": len(subs["shard"]),
            "multi": -1,
            "qbuf": self.parser.pending,
            "qbuf-free": 0,
            "argv-mem": 0,
            "multi-mem": 0,
            "rbs": 0,
            "rbp": 0,
            "obl": 0,
            "oll": len(self.replies),
            "omem": pending_out,
            "tot-mem": pending_out + self.parser.pending,
            "events": "r",
            "cmd": self.last_command,
            "user": self.user.name,
            "redir": -1,
            "resp": 3 if self.resp3 else 2,
            "lib-name": self.lib_name.decode("utf-8", "replace"),
            "lib-ver": self.lib_ver.decode("utf-8", "replace"),
        }
        return " ".join(f"{k}={v}" for k, v in fields.items())


def _error_reply(error: BaseException) -> RespError:
    """The reply for a request that failed instead of answering."""
    if isinstance(error, RespError):
        return error
    if isinstance(error, ReplicationError):
        return reply_for(error)
    logger.error("command failed", exc_info=error)
    return RespError(f"ERR {error.__class__.__name__}: {error}")
