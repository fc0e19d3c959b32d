"""The command table: the one source of truth for every command's name, arity,
flags and key positions. COMMAND, routing, arity checks and the write path all
read it; nothing about a command is written twice.

Three kinds of handler:

- READ:   ``handler(db: Keyspace, args: list[bytes], now_ms: int) -> Reply``
          runs on the local state machine (after a ReadIndex barrier).
- WRITE:  same signature, but runs inside ``StateMachine.apply`` on every node,
          in log order. It must be a pure function of (db, args, now_ms):
          ``now_ms`` is the leader's clock, stored in the log entry.
- SERVER: ``handler(client: Client, args: list[bytes]) -> Reply`` (or an
          awaitable of it) for commands about the connection, the server or
          the cluster; they never touch the log.

``args[0]`` is the command name as the client sent it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Kind(Enum):
    READ = "read"
    WRITE = "write"
    SERVER = "server"


@dataclass(slots=True)
class Command:
    name: str  # lowercase
    arity: int  # Redis' convention: N exact, -N at least N (name included)
    kind: Kind
    handler: Callable[..., Any]
    flags: tuple[str, ...] = ()
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    group: str = "generic"  # COMMAND DOCS group: string, generic, server, connection, cluster
    summary: str = ""
    since: str = "1.0.0"
    subcommands: dict[str, Command] = field(default_factory=dict)
    internal: bool = False  # proposed by the server itself; clients never reach it
    is_write: bool = False  # kind is WRITE (kept as a field: read on every write)

    def __post_init__(self) -> None:
        self.internal = "internal" in self.flags
        self.is_write = self.kind is Kind.WRITE

    def arity_ok(self, argc: int) -> bool:
        return argc == self.arity if self.arity >= 0 else argc >= -self.arity

    def key_indexes(self, argc: int) -> range:
        """Positions of the keys in a call with argc arguments."""
        if self.first_key <= 0:
            return range(0)
        last = self.last_key if self.last_key >= 0 else argc + self.last_key
        return range(self.first_key, min(last, argc - 1) + 1, self.step or 1)

    def keys(self, args: list[bytes]) -> Iterator[bytes]:
        for i in self.key_indexes(len(args)):
            yield args[i]



COMMANDS: dict[str, Command] = {}

_FLAGS_BY_KIND = {Kind.READ: ("readonly",), Kind.WRITE: ("write",), Kind.SERVER: ()}


def command(
    name: str,
    arity: int,
    kind: Kind,
    *,
    flags: tuple[str, ...] = (),
    keys: tuple[int, int, int] = (0, 0, 0),
    group: str = "generic",
    summary: str = "",
    since: str = "1.0.0",
    parent: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler in the table (or as a subcommand of ``parent``)."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        entry = Command(
            name=name,
            arity=arity,
            kind=kind,
            handler=handler,
            flags=_FLAGS_BY_KIND[kind] + flags,
            first_key=keys[0],
            last_key=keys[1],
            step=keys[2],
            group=group,
            summary=summary,
            since=since,
        )
        table = COMMANDS[parent].subcommands if parent else COMMANDS
        if name in table:
            raise ValueError(f"command {name!r} registered twice")
        table[name] = entry
        return handler

    return register


def lookup(name: bytes) -> Command | None:
    try:
        return COMMANDS[name.decode("ascii").lower()]
    except (UnicodeDecodeError, KeyError):
        return None
