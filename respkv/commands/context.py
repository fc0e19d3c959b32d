"""What connection, server and cluster commands are handed: the calling session and
a narrow view of the server (its config, counters, clients, cluster admin, INFO
and shutdown), never the server itself. The server layer provides both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from respkv.commands.acl_users import User
from respkv.config import Config
from respkv.protocol.reply import OK, Reply
from respkv.replication.admin import ClusterAdmin


class Session(Protocol):
    """The connection a command runs on, as commands may see and change it."""

    id: int
    name: bytes
    lib_name: bytes
    lib_ver: bytes
    resp3: bool
    readonly: bool
    read_consistency: str | None  # None: the server's
    authenticated: bool  # may run commands other than AUTH, HELLO, QUIT, RESET
    user: User  # whose permissions apply (the default user until AUTH)
    addr: str
    laddr: str
    tls: bool  # connected to the TLS port: cluster replies name TLS ports

    def close_after_replies(self) -> None:
        """Close once the replies queued so far are written (QUIT)."""

    def close(self) -> None: ...

    def info_line(self) -> str:
        """This connection as one CLIENT LIST line."""

    # pub/sub: kind ("channel", "pattern", "shard") -> the names subscribed to
    subscriptions: dict[str, set[bytes]]

    def forget_state(self) -> None:
        """Leave MULTI, drop every WATCH, leave every channel (RESET)."""


class Transactions(Protocol):
    """MULTI/EXEC and WATCH for a session, as the server carries them out."""

    def multi(self, session: Session) -> Reply: ...

    def exec(self, session: Session) -> Reply | Awaitable[Reply]: ...

    def discard(self, session: Session) -> Reply: ...

    def watch(self, session: Session, keys: list[bytes]) -> Reply: ...

    def unwatch(self, session: Session) -> Reply: ...


class PubSub(Protocol):
    """Subscriptions and delivery (respkv.server.pubsub.PubSubHub)."""

    def subscribe(self, session: Session, kind: str, names: list[bytes]) -> Reply: ...

    def unsubscribe(self, session: Session, kind: str, names: list[bytes]) -> Reply: ...

    def publish(self, channel: bytes, message: bytes, shard: bool = False) -> int: ...

    def names(self, kind: str, pattern: bytes | None) -> list[bytes]: ...

    def numsub(self, kind: str, names: list[bytes]) -> dict[bytes, int]: ...

    def numpat(self) -> int: ...


class Scripts(Protocol):
    """The script cache and runner (respkv.server.scripts.ScriptRunner)."""

    def eval(self, source: bytes | None, sha: bytes | None, keys: list[bytes],
             argv: list[bytes], session: Session, read_only: bool) -> Awaitable[Reply]: ...

    def load(self, source: bytes) -> Reply: ...

    def exists(self, shas: list[bytes]) -> list[int]: ...

    def flush(self) -> Reply: ...

    def kill(self) -> Reply: ...


class Access(Protocol):
    """The cluster's ACL users as this node has applied them, and the security log
    (respkv.server.access.AccessControl)."""

    def users(self) -> dict[str, User]:
        """Every user by name, the default user included."""

    def defines(self, name: str) -> bool:
        """The cluster's users define ``name`` (else it is this node's default user)."""

    def change(self, change: list[bytes]) -> Awaitable[Reply]:
        """Propose a change of the users (respkv.commands.acl_store.apply_change)."""

    def authenticate(self, session: Session, name: bytes, password: bytes,
                     command: bytes) -> bool:
        """Make ``session`` that user, or log and count the failure."""

    def failure_delay(self, address: str) -> float:
        """Seconds to hold a refused AUTH from this address (against guessing)."""

    def log_entries(self, count: int) -> Reply: ...

    def reset_log(self) -> None: ...


class SlowLogView(Protocol):
    """SLOWLOG's entries (respkv.server.slowlog.SlowLog)."""

    def newest(self, count: int) -> list[list[object]]: ...

    def __len__(self) -> int: ...

    def reset(self) -> None: ...


class LatencyView(Protocol):
    """LATENCY's events (respkv.server.latency.LatencyMonitor)."""

    def latest(self) -> list[list[object]]: ...

    def history(self, event: str) -> list[list[int]]: ...

    def reset(self, events: list[str]) -> int: ...


class Counters(Protocol):
    started: float  # the server's start, seconds since the epoch
    slowlog: SlowLogView
    latency: LatencyView

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ServerContext:
    config: Config
    stats: Counters
    sessions: Callable[[], Iterable[Session]]  # the open client connections
    cluster: ClusterAdmin
    info: Callable[[list[str]], str]  # INFO's text for the sections asked
    request_shutdown: Callable[[], None]
    pubsub: PubSub
    unblock: Callable[[int, bool], bool]  # CLIENT UNBLOCK: (client id, as an error?)
    scripts: Scripts
    acl: Access


async def ok_when_done(work: Awaitable[object]) -> Reply:
    """+OK once an admin command's work (a leave, a save) has finished."""
    await work
    return OK
