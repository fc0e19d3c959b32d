"""What the command tests share: constants and ``call`` (conftest.py wraps it in fixtures).

``call(db, "SET", "k", "v")`` runs a command the way the dispatcher and the
state machine will: looks it up in the table, checks its arity, calls
``handler(db, args, now)`` and returns the reply or the RespError. On the way
it checks the handler contract: a READ leaves the keyspace untouched, and a
WRITE that fails leaves the live data as it was.
"""

from __future__ import annotations

import copy

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands import errors
from respkv.commands.table import COMMANDS, Kind
from respkv.protocol.reply import Reply, RespError
from respkv.state.keyspace import Keyspace

NOW = 1_700_000_000_000  # ms: the "leader's clock" of every call unless told otherwise
BINARY = b"k\x00\r\n\xff"  # a key or value with NUL, CR, LF and a non-UTF-8 byte


def to_bytes(arg: object) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()


def live_view(db: Keyspace, now: int) -> dict[bytes, tuple[object, int | None]]:
    return {key: (db.data[key], db.expires.get(key)) for key in db.live_keys(now)}


def call(db: Keyspace, *args: object, now: int = NOW) -> Reply:
    argv = [to_bytes(a) for a in args]
    cmd = COMMANDS[argv[0].decode().lower()]
    if not cmd.arity_ok(len(argv)):
        return errors.wrong_arity(cmd.name)
    before = (copy.deepcopy(db.data), dict(db.expires), set(db.dirty))
    live_before = live_view(db, now)
    try:
        reply = cmd.handler(db, argv, now)
    except RespError as error:
        reply = error
    if cmd.kind is Kind.READ:
        assert (db.data, db.expires, db.dirty) == before, f"{cmd.name} (READ) mutated"
    elif isinstance(reply, RespError):
        assert live_view(db, now) == live_before, f"{cmd.name} failed after mutating"
    return reply


def error_text(reply: Reply) -> str:
    """The error text of a reply that must be an error."""
    assert isinstance(reply, RespError), f"expected an error, got {reply!r}"
    return reply.text
