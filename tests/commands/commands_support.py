"""What the command tests share: constants and ``call`` (conftest.py wraps it in fixtures).

``call(db, "SET", "k", "v")`` runs a command the way the dispatcher and the
state machine will: looks it up in the table, checks its arity, calls
``handler(db, args, now)`` and returns the reply or the RespError. On the way
it checks the handler contract: a READ leaves the keyspace untouched, a WRITE
that fails leaves the live data as it was, and after a WRITE the rows the state
store would be sent (a collection's changed members) rebuild exactly the keyspace
(so a command that changed a collection without recording it fails here).
"""

from __future__ import annotations

import copy

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands import errors
from respkv.commands.table import COMMANDS, Kind
from respkv.protocol.reply import Reply, RespError
from respkv.state.keyspace import Keyspace
from respkv.state.machine import decode_records, take_changes

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
    if cmd.kind is Kind.WRITE:
        _check_store_rows(db, cmd.name)
    return reply


# The rows a store would hold for each keyspace the tests write to: id(db) -> (db, rows).
_STORES: dict[int, tuple[Keyspace, dict[tuple[bytes, bytes | None], bytes]]] = {}
_CHECKED_ROWS = 5_000  # bigger stores are kept up to date but not reloaded every call


def _check_store_rows(db: Keyspace, name: str) -> None:
    """Send the keyspace's changes to a store of rows, as persist does; then a reload of
    those rows must equal the keyspace."""
    rows = _STORES.setdefault(id(db), (db, {}))[1]
    dirty = set(db.dirty)
    changes = take_changes(db)
    db.dirty.update(dirty)  # left for the tests that look at it; writing it again is harmless
    for key in changes.cleared:
        for row in [row for row in rows if row[0] == key and row[1] is not None]:
            del rows[row]
    for key, record in changes.upserts.items():
        rows[key, None] = record
    for key in changes.deletes:
        rows.pop((key, None), None)
    for (key, item), record in changes.items.items():
        if record is None:
            rows.pop((key, item), None)
        else:
            rows[key, item] = record
    if len(rows) > _CHECKED_ROWS:
        return
    reloaded = dict(decode_records((key, item, blob) for (key, item), blob in rows.items()))
    assert reloaded == {key: (value, db.expires.get(key)) for key, value in db.data.items()}, \
        f"{name}: the store rows do not rebuild the keyspace"
    for key, (value, _) in reloaded.items():  # a set's order is state too (SPOP picks by it)
        if type(value).__name__ == "SetValue":
            assert value.members == db.data[key].members, f"{name}: set order lost"


def error_text(reply: Reply) -> str:
    """The error text of a reply that must be an error."""
    assert isinstance(reply, RespError), f"expected an error, got {reply!r}"
    return reply.text
