"""The command table: the one source of truth for every command's name, arity,
flags, key positions and family. COMMAND, routing, arity checks, ACL categories
and the write path all read it; nothing about a command is written twice.

Three kinds of handler:

- READ:   ``handler(db: KeyspaceView, args, now_ms) -> Reply``: runs on this
          node's copy of the data (after a read barrier when the mode asks).
- WRITE:  ``handler(db: WritableKeyspace, args, now_ms) -> Reply``: runs inside
          the state machine's apply on every node, in log order. It must be a
          pure function of (db, args, now_ms): ``now_ms`` is the leader's clock,
          stored in the log entry.
- SERVER: ``handler(server: ServerContext, session: Session, args) -> Reply``
          (or an awaitable of one), for commands about the connection, the
          server or the cluster (respkv.commands.context); they never touch the log.
- TRANSACTION: ``handler(transactions: Transactions, session, args) -> Reply`` (or
          an awaitable): MULTI, EXEC, DISCARD, WATCH, UNWATCH, which the server's
          transaction layer carries out (respkv.commands.context.Transactions).

``args[0]`` is the command name as the client sent it.

A READ may also have a ``sliced`` form (``@sliced("keys")``), which dispatch runs
for a client's own call: same arguments, but for a big keyspace it may return a
``Sliced`` reply, built between turns of the event loop. MULTI, scripts and
drafts run the plain handler, which answers in one go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from respkv.protocol.reply import Reply, RespError
from respkv.state.keyspace import Keyspace

logger = logging.getLogger(__name__)


class Kind(Enum):
    READ = "read"
    WRITE = "write"
    SERVER = "server"
    TRANSACTION = "transaction"


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
    family: str = "generic"  # COMMAND DOCS "group": string, generic, server, connection...
    summary: str = ""  # empty: not given; COMMAND DOCS then takes the documentation's
    since: str = "1.0.0"
    # False when the registration left since out: "1.0.0" is then only a default, and
    # COMMAND DOCS says what the documentation data says (respkv.commands.docs).
    since_given: bool = True
    subcommands: dict[str, Command] = field(default_factory=dict)
    # Commands whose keys are counted by an argument (LMPOP, ZUNIONSTORE...): the key
    # positions in a given call; first/last/step then only say what COMMAND reports.
    find_keys: Callable[[list[bytes]], Sequence[int]] | None = None
    internal: bool = False  # proposed by the server itself; clients never reach it
    is_write: bool = False  # kind is WRITE (kept as a field: read on every write)
    sliced: Callable[..., Any] | None = None  # a READ's form that may answer in slices

    def __post_init__(self) -> None:
        self.internal = "internal" in self.flags
        self.is_write = self.kind is Kind.WRITE

    def arity_ok(self, argc: int) -> bool:
        arity = self.arity
        return argc == arity if arity >= 0 else argc >= -arity

    def flagged(self, args: list[bytes], flag: str) -> bool:
        """The call has ``flag`` (noauth, allow_busy, noscript): this command's, or for a
        container the subcommand's it names, as Redis checks them."""
        command = self
        if self.subcommands and len(args) > 1:
            command = lookup(args[1], self.subcommands) or self
        return flag in command.flags

    def call_name(self, args: list[bytes]) -> str:
        """The name CLIENT INFO and the ACL log show for a call: ``config|get`` for a
        container's subcommand, as Redis writes it."""
        if self.subcommands and len(args) > 1:
            sub = lookup(args[1], self.subcommands)
            if sub is not None:
                return f"{self.name}|{sub.name}"
        return self.name

    def key_indexes(self, argc: int) -> range:
        """Positions of the keys in a call with argc arguments."""
        if self.first_key <= 0:
            return range(0)
        last = self.last_key if self.last_key >= 0 else argc + self.last_key
        return range(self.first_key, min(last, argc - 1) + 1, self.step or 1)

    def key_positions(self, args: list[bytes]) -> Sequence[int]:
        """Positions of the keys in this call, movable keys included."""
        if self.find_keys is not None:
            return self.find_keys(args)
        return self.key_indexes(len(args))

    def keys(self, args: list[bytes]) -> Iterator[bytes]:
        for i in self.key_positions(args):
            yield args[i]


def numkeys_at(position: int,
               also: tuple[int, ...] = ()) -> Callable[[list[bytes]], Sequence[int]]:
    """A key finder: ``args[position]`` counts the keys that follow it (LMPOP 1, BLMPOP 2,
    EVAL 2...). ``also``: fixed key positions before it (a STORE destination). A count
    that is not a fitting number finds no keys: the handler then answers the error."""

    def find(args: list[bytes]) -> Sequence[int]:
        try:
            count = int(args[position])
        except (IndexError, ValueError):
            count = 0
        first = position + 1
        if count <= 0 or first + count > len(args):
            return also
        return (*also, *range(first, first + count)) if also else range(first, first + count)

    return find


COMMANDS: dict[str, Command] = {}

_FLAGS_BY_KIND = {Kind.READ: ("readonly",), Kind.WRITE: ("write",), Kind.SERVER: (),
                  Kind.TRANSACTION: ()}


def command(
    name: str,
    arity: int,
    kind: Kind,
    *,
    flags: tuple[str, ...] = (),
    keys: tuple[int, int, int] = (0, 0, 0),
    family: str = "generic",
    summary: str = "",
    since: str | None = None,
    parent: str | None = None,
    find_keys: Callable[[list[bytes]], Sequence[int]] | None = None,
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
            family=family,
            summary=summary,
            since="1.0.0" if since is None else since,
            since_given=since is not None,
            find_keys=find_keys,
        )
        table = COMMANDS[parent].subcommands if parent else COMMANDS
        if name in table:
            raise ValueError(f"command {name!r} registered twice")
        table[name] = entry
        return handler

    return register


def sliced(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the sliced form of the READ command ``name`` (registered already)."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        entry = COMMANDS[name]
        if entry.kind is not Kind.READ or entry.sliced is not None:
            raise ValueError(f"command {name!r} cannot take a sliced form")
        entry.sliced = handler
        return handler

    return register


# Names as clients send them (b"SET", b"set", b"Set"...) -> their command, for the
# names seen so far; bounded, since a client may send any spelling of anything.
_BY_SPELLING: dict[bytes, Command] = {}
_SPELLINGS_KEPT = 4096


def lookup(name: bytes, table: dict[str, Command] = COMMANDS) -> Command | None:
    """The command (or, given a parent's table, the subcommand) a name means."""
    if table is COMMANDS:
        found = _BY_SPELLING.get(name)
        if found is not None:
            return found
    found = table.get(name.decode("latin-1").lower())
    if found is not None and table is COMMANDS and len(_BY_SPELLING) < _SPELLINGS_KEPT:
        _BY_SPELLING[name] = found
    return found


def apply_write(db: Keyspace, args: list[bytes], now_ms: int) -> Reply:
    """Run one logged write command; errors are replies, never exceptions. What the
    state machine is given to apply entries with."""
    command = lookup(args[0])
    if command is None or not command.is_write:
        return RespError(f"ERR cannot apply {args[0][:64]!r}")
    try:
        return command.handler(db, args, now_ms)
    except RespError as error:
        return error
    except Exception:  # a bug in a handler: the same on every node, so log and go on
        logger.exception("apply failed", extra={"command": args[0][:64]})
        return RespError("ERR internal error while applying the command")
