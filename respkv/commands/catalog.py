"""What the command table implies about each command, for COMMAND INFO and for ACL:
the flags Redis reports and the ACL categories a command is in (Redis' own where
Redis has the command, else what its flags and family imply)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from respkv.commands import docs
from respkv.commands.table import Command

# The order Redis 7.0 lists flags in (addReplyCommandFlags in server.c), and its
# spelling where the table keeps Redis 6's.
_FLAG_ORDER = {flag: rank for rank, flag in enumerate((
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking",
    "loading", "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth",
    "may_replicate", "no_mandatory_keys", "no_async_loading", "no_multi", "movablekeys",
    "allow_busy"))}
_FLAG_SPELLING = {"noauth": "no_auth"}


def reported_flags(cmd: Command) -> list[str]:
    """The table's flags as COMMAND INFO reports them (any Redis does not know last). A
    container that needs a subcommand (CONFIG, OBJECT...) reports none, as in Redis:
    its subcommands have them."""
    if cmd.subcommands and cmd.arity != -1:
        return []
    names = dict.fromkeys(_FLAG_SPELLING.get(f, f) for f in cmd.flags if f != "internal")
    return sorted(names, key=lambda name: _FLAG_ORDER.get(name, len(_FLAG_ORDER)))


# ACL categories in Redis' order (ACLCommandCategories in acl.c).
_CATEGORY_ORDER = {category: rank for rank, category in enumerate((
    "@keyspace", "@read", "@write", "@set", "@sortedset", "@list", "@hash", "@string",
    "@bitmap", "@hyperloglog", "@geo", "@stream", "@pubsub", "@admin", "@fast", "@slow",
    "@blocking", "@dangerous", "@connection", "@transaction", "@scripting"))}
# For commands Redis does not have: the category their family suggests.
_FAMILY_CATEGORY = {"generic": "@keyspace", "string": "@string", "list": "@list",
                    "hash": "@hash", "set": "@set", "sorted-set": "@sortedset",
                    "connection": "@connection", "transactions": "@transaction",
                    "scripting": "@scripting"}


def _implied_categories(flags: Sequence[str], explicit: set[str]) -> set[str]:
    """The categories Redis derives from a command's flags (setImplicitACLCategories)."""
    implied = set()
    if "write" in flags:
        implied.add("@write")
    if "readonly" in flags and "@scripting" not in explicit:
        implied.add("@read")
    if "admin" in flags:
        implied |= {"@admin", "@dangerous"}
    if "pubsub" in flags:
        implied.add("@pubsub")
    if "fast" in flags:
        implied.add("@fast")
    if "blocking" in flags:
        implied.add("@blocking")
    if "@fast" not in implied | explicit:
        implied.add("@slow")
    return implied


def acl_categories(cmd: Command, full_name: str | None = None) -> list[str]:
    """Redis' ACL categories: those the table's flags imply, and those Redis' data gives
    the command beyond what its own flags imply (@keyspace, @string, @dangerous...)."""
    ref = docs.reference(full_name or cmd.name)
    if ref is not None and ref.has_info:
        redis_explicit = set(ref.acl_categories)
        explicit = redis_explicit - _implied_categories(ref.flags, redis_explicit)
    else:
        explicit = {_FAMILY_CATEGORY[cmd.family]} if cmd.family in _FAMILY_CATEGORY else set()
    flags = reported_flags(cmd)
    categories = _implied_categories(flags, explicit) | explicit
    return sorted(categories, key=lambda c: _CATEGORY_ORDER.get(c, len(_CATEGORY_ORDER)))


def _table_key_specs(cmd: Command) -> list[dict]:
    """Key specs for the table's fixed key range, where the data has none that fit."""
    if cmd.first_key <= 0:
        return []
    return [{
        "flags": ["RW" if cmd.is_write else "RO"],
        "begin_search": {"type": "index", "spec": {"index": cmd.first_key}},
        "find_keys": {
            "type": "range",
            "spec": {
                "lastkey": cmd.last_key - cmd.first_key if cmd.last_key >= 0 else cmd.last_key,
                "keystep": cmd.step,
                "limit": 0,
            },
        },
    }]


def key_specs(cmd: Command, full_name: str | None = None) -> Sequence[Mapping]:
    """Redis' key specs (keynum ones for LMPOP, ZUNIONSTORE...) where the table places
    keys as Redis does: the same first/last/step and movable or not alike; else what
    the table's key range says."""
    ref = docs.reference(full_name or cmd.name)
    if (ref is not None and ref.has_info
            and ref.keys == (cmd.first_key, cmd.last_key, cmd.step)
            and ("movablekeys" in cmd.flags) == ("movablekeys" in ref.flags)):
        return ref.key_specs
    return _table_key_specs(cmd)
