"""The users a cluster defines, as they are replicated: text in one system record of
the first group's state, changed only by ``respkv.acl`` log entries.

The record holds one line per user a command defined, in ACL file form (``user
alice on #<sha256> ~app:* resetchannels -@all +get``). The default user is in it
only once an ACL command defined it; until then each node's default user is the
one its ``requirepass`` makes. Applying an entry is a pure function of the record
and the entry, as every apply is: whatever depends on the proposing node (its
default user, a file it read) travels inside the entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from respkv.commands.acl_users import (
    DEFAULT_USER,
    AclError,
    User,
    merge_selectors,
    new_user,
)
from respkv.protocol.reply import RespError

RECORD = "acl"  # the system record's name


class AclFileError(ValueError):
    """Text that is not a valid users file; the message says which lines and why."""


def parse_users(text: str, source: str = "acl") -> dict[str, User]:
    """Users from ACL file text; raises AclFileError naming every bad line, as Redis'
    ACL LOAD reports them."""
    users: dict[str, User] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(" \t\r\n")
        if not line:
            continue
        words = [w for w in line.split(" ") if w]
        if words[0] != "user" or len(words) < 2:
            problems.append(f"{source}:{number} should start with user keyword followed "
                            "by the username. ")
            continue
        name = words[1]
        if name in users:
            problems.append(f"WARNING: Duplicate user '{name}' found on line {number}. ")
            continue
        merged = merge_selectors(words[2:])
        if isinstance(merged, int):
            problems.append(f"{source}:{number}: Unmatched parenthesis in selector "
                            "definition.")
            continue
        user = new_user(name)
        for op in merged:
            try:
                user.apply(op.strip("\t\r\n"))
            except AclError as error:
                problems.append(f"{source}:{number}: {error}. ")
        users[name] = user
    if problems:
        raise AclFileError("".join(problems) + "WARNING: ACL errors detected, no change to "
                           "the previously active ACL rules was performed")
    return users


def with_pubsub_default(text: str, rule: str) -> str:
    """ACL file text whose users start from ``rule`` (acl-pubsub-default) before their
    own rules, as Redis creates each user of a file: so every node that applies the
    text gets the same users whatever its own setting."""
    if rule == "resetchannels":  # what a new user already has
        return text
    lines = []
    for raw in text.split("\n"):
        words = [w for w in raw.strip(" \t\r\n").split(" ") if w]
        if len(words) >= 2 and words[0] == "user":
            raw = " ".join([words[0], words[1], rule, *words[2:]])
        lines.append(raw)
    return "\n".join(lines)


def users_text(users: dict[str, User]) -> str:
    """The users as ACL file text, by name as Redis lists them."""
    return "".join(f"user {name} {users[name].describe()}\n" for name in sorted(users))


def stored_users(record: bytes | None) -> dict[str, User]:
    """The users a replicated record defines (a damaged record defines none: every node
    reads the same bytes, so every node agrees)."""
    if not record:
        return {}
    try:
        return parse_users(record.decode("latin-1"))
    except AclFileError:
        return {}


def apply_change(record: bytes | None, args: Sequence[bytes]) -> tuple[bytes, object]:
    """One ``respkv.acl`` entry's effect: (the new record, the reply).

    - ``setuser <name> <base> <rule>...``: the rules applied to the user, all or none;
      a user not yet defined starts from ``base`` (a description; empty: a new user).
    - ``deluser <name>...``: the number of defined users removed.
    - ``load <text>``: every user replaced by the text's.
    """
    users = stored_users(record)
    action = args[0].lower()
    if action == b"setuser" and len(args) >= 3:
        name = args[1].decode("latin-1")
        current = users.get(name)
        if current is None:
            current = new_user(name)
            base = args[2].decode("latin-1").split(" ") if args[2] else []
            merged = merge_selectors(base)
            for op in merged if isinstance(merged, list) else ():
                current.apply(op)
        staged = current.copy()
        ops = merge_selectors([a.decode("latin-1") for a in args[3:]])
        if isinstance(ops, int):
            return record or b"", RespError("ERR Unmatched parenthesis in acl selector")
        for op in ops:
            try:
                staged.apply(op)
            except AclError as error:
                return record or b"", RespError(
                    f"ERR Error in ACL SETUSER modifier '{op}': {error}")
        users[name] = staged
    elif action == b"deluser":
        names = {a.decode("latin-1") for a in args[1:]} - {DEFAULT_USER}
        removed = [name for name in names if users.pop(name, None) is not None]
        return users_text(users).encode("latin-1"), len(removed)
    elif action == b"load" and len(args) == 2:
        try:
            users = parse_users(args[1].decode("latin-1"))
        except AclFileError as error:
            return record or b"", RespError(f"ERR {error}")
    else:
        return record or b"", RespError("ERR bad ACL change")
    return users_text(users).encode("latin-1"), None
