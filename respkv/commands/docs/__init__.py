"""What COMMAND DOCS and COMMAND INFO say beyond the table: each command's arguments,
complexity, history, doc flags, tips, ACL categories and key specs.

Two data files, read once:

- ``redis-7.0.json``: redis-server 7.0.15's own COMMAND DOCS and COMMAND INFO for
  every command it has, as ``python -m respkv.commands.docs.capture`` recorded them
  (never edited by hand: capture again instead).
- ``respkv.json``: the same fields, written by hand, for respkv's own commands and
  subcommands (RESPKV.TRANSFER, CLUSTER JOIN...) and for the few it takes from later
  Redis versions (CLIENT SETINFO): the part of the data respkv owns.

The table (respkv.commands.table) decides which commands exist, their arity, flags
and key positions; these files only document them. JSON has no sets or simple
strings, so the builders below put the RESP types back by field name: the capture
checks that they give redis-server's exact bytes, in RESP2 and RESP3.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from respkv.protocol.reply import RSet, Simple

REDIS_FILE = "redis-7.0.json"
RESPKV_FILE = "respkv.json"

Json = Any  # what json.loads gives: dict, list, str, int


@dataclass(frozen=True, slots=True)
class Reference:
    """One command (``"set"``) or subcommand (``"config|get"``) as a data file has it."""

    name: str
    source: str  # the file it comes from
    docs: Mapping[str, Json]  # COMMAND DOCS fields, in Redis' order, subcommands left out
    arity: int | None = None  # the rest: COMMAND INFO's, when the file has them
    flags: tuple[str, ...] = ()
    keys: tuple[int, int, int] | None = None  # first key, last key, step
    acl_categories: tuple[str, ...] = ()
    tips: tuple[str, ...] = ()
    key_specs: tuple[Mapping[str, Json], ...] = ()

    @property
    def has_info(self) -> bool:
        return self.arity is not None


def _references(filename: str) -> dict[str, Reference]:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    found = {}
    for name, entry in json.loads(text)["commands"].items():
        info = entry.get("info")
        found[name] = Reference(
            name=name,
            source=filename,
            docs=entry["docs"],
            **({} if info is None else {
                "arity": info["arity"],
                "flags": tuple(info["flags"]),
                "keys": tuple(info["keys"]),
                "acl_categories": tuple(info["acl_categories"]),
                "tips": tuple(info["tips"]),
                "key_specs": tuple(info["key_specs"]),
            }),
        )
    return found


@cache
def redis_references() -> dict[str, Reference]:
    """Redis 7.0's entries by full name ("set", "config|get")."""
    return _references(REDIS_FILE)


@cache
def respkv_references() -> dict[str, Reference]:
    """The hand-written entries by full name."""
    return _references(RESPKV_FILE)


def reference(full_name: str) -> Reference | None:
    """The entry for a command: Redis' own if Redis has the command, else respkv's."""
    return redis_references().get(full_name) or respkv_references().get(full_name)


# -- JSON -> replies, RESP types put back by field name -----------------------------


def _statuses(names: Sequence[str]) -> RSet:
    return RSet(Simple(name) for name in names)


def _argument(argument: Mapping[str, Json]) -> dict:
    reply: dict = {}
    for field, value in argument.items():
        if field == "flags":  # optional, multiple, multiple_token
            reply[field] = _statuses(value)
        elif field == "arguments":  # the members of a block or a oneof
            reply[field] = [_argument(a) for a in value]
        else:
            reply[field] = value
    return reply


def docs_reply(fields: Mapping[str, Json]) -> dict:
    """COMMAND DOCS' map for one command from its JSON fields (subcommands not included)."""
    reply: dict = {}
    for field, value in fields.items():
        if field == "doc_flags":  # deprecated, syscmd
            reply[field] = _statuses(value)
        elif field == "history":  # (version, what changed) pairs: a set, as Redis sends it
            reply[field] = RSet(list(pair) for pair in value)
        elif field == "arguments":
            reply[field] = [_argument(a) for a in value]
        else:
            reply[field] = value
    return reply


def key_spec_reply(spec: Mapping[str, Json]) -> dict:
    """One key spec of COMMAND INFO: notes, flags, begin_search, find_keys (maps of
    strings and integers, as JSON has them)."""
    return {field: _statuses(value) if field == "flags" else value
            for field, value in spec.items()}


def key_specs_reply(specs: Sequence[Mapping[str, Json]]) -> RSet:
    return RSet(key_spec_reply(spec) for spec in specs)


def tips_reply(tips: Sequence[str]) -> RSet:
    return RSet(tips)  # bulk strings, unlike the flags


def statuses_reply(names: Sequence[str]) -> RSet:
    """Flags or ACL categories: a set of simple strings."""
    return _statuses(names)


def info_reply(name: str, arity: int, flags: Sequence[str], keys: Sequence[int],
               acl_categories: Sequence[str], tips: Sequence[str],
               key_specs: Sequence[Mapping[str, Json]], subcommands: list | None) -> list:
    """One COMMAND INFO entry, in Redis 7.0's order. ``subcommands``: the entries of a
    container's subcommands, or None for a command that has none (Redis then sends an
    empty set where a container has its array)."""
    first, last, step = keys
    return [
        name,
        arity,
        statuses_reply(flags),
        first,
        last,
        step,
        statuses_reply(acl_categories),
        tips_reply(tips),
        key_specs_reply(key_specs),
        RSet() if subcommands is None else subcommands,
    ]
