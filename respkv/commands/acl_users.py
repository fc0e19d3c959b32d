"""ACL users as Redis 7.0 has them: rules, their description, and permission checks.

A user has flags (on/off, nopass), password hashes (SHA-256, hex) and selectors: a
root selector and any number of extra ones (``(+get ~app:*)``); a command may run when
one selector allows the command, its keys and its channels together. A selector keeps
the set of commands it allows (by full name: ``get``, ``config|set``), the first
arguments allowed for a command it otherwise refuses (``+select|0``), key patterns
with read/write permissions (``~k*``, ``%R~k*``) and channel patterns (``&ch*``).

Rules are applied in order, exactly as ``ACL SETUSER`` takes them; a description
(``ACL LIST``, the users' replicated and saved form) lists the rules that rebuild
the same user on a fresh one, in Redis' own words and order: applying a user's
description to a new user gives the same user back. Text is handled as latin-1, so
any byte of a pattern or password survives the round trip.

Nothing here does I/O: the server layer keeps the live users and asks these.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from respkv.commands.catalog import acl_categories, key_specs
from respkv.commands.glob import stringmatch
from respkv.commands.table import COMMANDS, Command

# Redis' categories, in its order (ACLCommandCategories).
CATEGORIES = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
              "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
              "blocking", "dangerous", "connection", "transaction", "scripting")

READ, WRITE = 1, 2  # key permissions
ALL_ACCESS = READ | WRITE

# Why a command was refused, ordered as Redis picks the one to report over selectors.
DENIED_COMMAND, DENIED_KEY, DENIED_CHANNEL = 1, 2, 4
REASONS = {DENIED_COMMAND: "command", DENIED_KEY: "key", DENIED_CHANNEL: "channel"}

DEFAULT_USER = "default"


class AclError(ValueError):
    """A rule that cannot be applied; the text is Redis' reason."""


UNKNOWN = "Unknown command or category name in ACL"
SYNTAX = "Syntax error"
KEYS_AFTER_ALL = ("Adding a pattern after the * pattern (or the 'allkeys' flag) is not "
                  "valid and does not have any effect. Try 'resetkeys' to start with an "
                  "empty list of patterns")
CHANNELS_AFTER_ALL = ("Adding a pattern after the * pattern (or the 'allchannels' flag) is "
                      "not valid and does not have any effect. Try 'resetchannels' to "
                      "start with an empty list of channels")
NO_SUCH_PASSWORD = "The password you are trying to remove from the user does not exist"
BAD_HASH = ("The password hash must be exactly 64 characters and contain only lowercase "
            "hexadecimal characters")
FIRSTARG_OF_SUB = "Allowing first-arg of a subcommand is not supported"


# -- the commands ACL rules name ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One command or subcommand as ACL sees it."""

    full_name: str  # "get", "config|set"
    command: Command
    categories: frozenset[str]  # without the "@"
    subcommands: tuple[str, ...]  # a container's subcommands, by full name
    is_sub: bool


@cache
def entries() -> dict[str, Entry]:
    """Every command and subcommand clients may run, in table order, a container before
    its subcommands."""
    found: dict[str, Entry] = {}
    for command in COMMANDS.values():
        if command.internal:
            continue
        subs = [sub for sub in command.subcommands.values() if not sub.internal]
        found[command.name] = Entry(
            command.name, command, _categories(command, command.name),
            tuple(f"{command.name}|{sub.name}" for sub in subs), False)
        for sub in subs:
            name = f"{command.name}|{sub.name}"
            found[name] = Entry(name, sub, _categories(sub, name), (), True)
    return found


def _categories(command: Command, full_name: str) -> frozenset[str]:
    return frozenset(c.lstrip("@") for c in acl_categories(command, full_name))


@cache
def category_members(category: str) -> tuple[str, ...]:
    """The full names in a category (ACL CAT <category>), in table order."""
    return tuple(name for name, entry in entries().items() if category in entry.categories)


def entry_for(command: Command, args: Sequence[bytes]) -> Entry | None:
    """The command or subcommand a call runs."""
    table = entries()
    if command.subcommands and len(args) > 1:
        sub = args[1].decode("latin-1").lower()
        found = table.get(f"{command.name}|{sub}")
        if found is not None:
            return found
    return table.get(command.name)


# -- selectors and users --------------------------------------------------------------


@dataclass(slots=True)
class KeyPattern:
    pattern: str
    access: int  # READ, WRITE or both

    def describe(self) -> str:
        prefix = {ALL_ACCESS: "~", READ: "%R~", WRITE: "%W~"}[self.access]
        return prefix + self.pattern


@dataclass(slots=True)
class Selector:
    allowed: set[str] = field(default_factory=set)  # full names
    firstargs: dict[str, list[str]] = field(default_factory=dict)
    all_commands: bool = False  # +@all and nothing taken away since
    future: bool = False  # based on +@all: commands added later are allowed too
    all_keys: bool = False
    keys: list[KeyPattern] = field(default_factory=list)
    all_channels: bool = False
    channels: list[str] = field(default_factory=list)

    def copy(self) -> Selector:
        return Selector(set(self.allowed), {k: list(v) for k, v in self.firstargs.items()},
                        self.all_commands, self.future, self.all_keys,
                        [KeyPattern(k.pattern, k.access) for k in self.keys],
                        self.all_channels, list(self.channels))

    # -- rules -------------------------------------------------------------------

    def apply(self, op: str) -> None:
        lower = op.lower()
        if lower in ("allkeys", "~*"):
            self.all_keys = True
            self.keys.clear()
        elif lower == "resetkeys":
            self.all_keys = False
            self.keys.clear()
        elif lower in ("allchannels", "&*"):
            self.all_channels = True
            self.channels.clear()
        elif lower == "resetchannels":
            self.all_channels = False
            self.channels.clear()
        elif lower in ("allcommands", "+@all"):
            self.allowed = set(entries())
            self.all_commands = self.future = True
            self.firstargs.clear()
        elif lower in ("nocommands", "-@all"):
            self.allowed = set()
            self.all_commands = self.future = False
            self.firstargs.clear()
        elif op[:1] in ("~", "%"):
            self._add_key_pattern(op)
        elif op[:1] == "&":
            self._add_channel(op[1:])
        elif op[:2] in ("+@", "-@"):
            members = category_members(op[2:].lower()) if op[2:].lower() in CATEGORIES \
                else None
            if members is None:
                raise AclError(UNKNOWN)
            for name in members:
                self._set(name, op[0] == "+", cascade=True)
        elif op[:1] == "+":
            self._allow(op[1:])
        elif op[:1] == "-":
            name = op[1:].lower()
            if name not in entries():
                raise AclError(UNKNOWN)
            self._set(name, False, cascade=True)
        else:
            raise AclError(SYNTAX)

    def _add_key_pattern(self, op: str) -> None:
        if self.all_keys:
            raise AclError(KEYS_AFTER_ALL)
        access, offset = ALL_ACCESS, 1
        if op[0] == "%":
            access = 0
            while offset < len(op):
                char = op[offset].upper()
                offset += 1
                if char == "R" and not access & READ:
                    access |= READ
                elif char == "W" and not access & WRITE:
                    access |= WRITE
                elif char == "~":
                    break
                else:
                    raise AclError(SYNTAX)
        pattern = op[offset:]
        if not access or _has_spaces(pattern):
            raise AclError(SYNTAX)
        for existing in self.keys:
            if existing.pattern == pattern:
                existing.access |= access
                break
        else:
            self.keys.append(KeyPattern(pattern, access))
        self.all_keys = False

    def _add_channel(self, pattern: str) -> None:
        if self.all_channels:
            raise AclError(CHANNELS_AFTER_ALL)
        if _has_spaces(pattern):
            raise AclError(SYNTAX)
        if pattern not in self.channels:
            self.channels.append(pattern)

    def _allow(self, spec: str) -> None:
        table = entries()
        if "|" not in spec:
            name = spec.lower()
            if name not in table:
                raise AclError(UNKNOWN)
            self._set(name, True, cascade=True)
            return
        base, _, first = spec.rpartition("|")
        entry = table.get(base.lower())
        if entry is None:
            raise AclError(UNKNOWN)
        if entry.is_sub:
            raise AclError(FIRSTARG_OF_SUB)
        if not first:
            raise AclError(SYNTAX)
        if entry.subcommands:
            name = spec.lower()
            if name not in table:
                raise AclError(UNKNOWN)
            self._set(name, True, cascade=True)
            return
        allowed = self.firstargs.setdefault(entry.full_name, [])
        if all(first.lower() != known.lower() for known in allowed):
            allowed.append(first)

    def _set(self, name: str, allow: bool, cascade: bool) -> None:
        """Allow or refuse one command; a container takes its subcommands along."""
        names = [name, *entries()[name].subcommands] if cascade else [name]
        self.firstargs.pop(name, None)
        if allow:
            self.allowed.update(names)
        else:
            self.allowed.difference_update(names)
            self.all_commands = False

    # -- checks ------------------------------------------------------------------

    def check(self, entry: Entry, args: Sequence[bytes]) -> tuple[int, int]:
        """(0, 0) if this selector lets the call run, else (reason, argument index)."""
        if not self.all_commands and "noauth" not in entry.command.flags \
                and entry.full_name not in self.allowed and not self._first_arg_ok(entry, args):
            return DENIED_COMMAND, 0
        if not self.all_keys:
            for index, access in key_accesses(entry, args):
                if not self._key_ok(args[index], access):
                    return DENIED_KEY, index
        if not self.all_channels:
            for index, literal in channel_arguments(entry, args):
                if not self.channel_ok(args[index], literal):
                    return DENIED_CHANNEL, index
        return 0, 0

    def _first_arg_ok(self, entry: Entry, args: Sequence[bytes]) -> bool:
        allowed = self.firstargs.get(entry.full_name)
        position = 2 if entry.is_sub else 1
        if not allowed or len(args) <= position:
            return False
        first = args[position].decode("latin-1").lower()
        return any(first == known.lower() for known in allowed)

    def _key_ok(self, key: bytes, access: int) -> bool:
        return any(pattern.access & access == access
                   and stringmatch(pattern.pattern.encode("latin-1"), key)
                   for pattern in self.keys)

    def channel_ok(self, channel: bytes, literal: bool) -> bool:
        if self.all_channels:
            return True
        name = channel.decode("latin-1")
        if literal:
            return name in self.channels
        return any(stringmatch(pattern.encode("latin-1"), channel)
                   for pattern in self.channels)

    # -- description ---------------------------------------------------------------

    def describe(self) -> str:
        parts = [self.describe_keys()] if self.all_keys or self.keys else []
        parts.append("&*" if self.all_channels else
                     " ".join(["resetchannels", *("&" + c for c in self.channels)]))
        parts.append(self.describe_commands())
        return " ".join(parts)

    def describe_keys(self) -> str:
        return "~*" if self.all_keys else " ".join(k.describe() for k in self.keys)

    def describe_channels(self) -> str:
        return "&*" if self.all_channels else " ".join("&" + c for c in self.channels)

    def describe_commands(self) -> str:
        """Redis' description: +@all or -@all, the categories that fit best, then the
        single commands still different, then the allowed first arguments."""
        additive = not self.future
        rules = ["-@all" if additive else "+@all"]
        fake: set[str] = set() if additive else set(entries())
        temp = set(self.allowed)
        applied: set[str] = set()
        while True:
            best, min_diff, max_same = "", 1 << 62, 0
            for category in CATEGORIES:
                if category in applied:
                    continue
                members = category_members(category)
                on = sum(1 for name in members if name in temp)
                off = len(members) - on
                diff, same = (off, on) if additive else (on, off)
                if same > diff and (diff < min_diff or (diff == min_diff and same > max_same)):
                    best, min_diff, max_same = category, diff, same
            if not best:
                break
            members = category_members(best)
            if additive:
                fake.update(members)
                temp.difference_update(members)
            else:
                fake.difference_update(members)
                temp.update(members)
            rules.append(("+@" if additive else "-@") + best)
            applied.add(best)
        table = entries()
        for name, entry in table.items():
            allowed = name in self.allowed
            if allowed != (name in fake):
                rules.append(("+" if allowed else "-") + name)
                for changed in (name, *entry.subcommands):
                    if allowed:
                        fake.add(changed)
                    else:
                        fake.discard(changed)
            if not allowed:
                rules.extend(f"+{name}|{first}" for first in self.firstargs.get(name, ()))
        return " ".join(rules)


@dataclass(slots=True)
class User:
    name: str
    enabled: bool = False
    nopass: bool = False
    sanitize: str = ""  # "", "sanitize-payload" or "skip-sanitize-payload"
    passwords: list[str] = field(default_factory=list)  # SHA-256 hex
    root: Selector = field(default_factory=Selector)
    selectors: list[Selector] = field(default_factory=list)
    # Runs anything on any key and channel, so no call needs a check: kept up to date
    # by apply (the only way rules change), read before every command.
    unrestricted: bool = False

    def copy(self, name: str | None = None) -> User:
        return User(name or self.name, self.enabled, self.nopass, self.sanitize,
                    list(self.passwords), self.root.copy(), [s.copy() for s in self.selectors],
                    self.unrestricted)

    def all_selectors(self) -> Iterator[Selector]:
        yield self.root
        yield from self.selectors

    # -- rules -------------------------------------------------------------------

    def apply(self, op: str) -> None:
        """One ACL SETUSER rule; raises AclError with Redis' reason."""
        try:
            self._apply(op)
        finally:
            root = self.root
            self.unrestricted = root.all_commands and root.all_keys and root.all_channels

    def _apply(self, op: str) -> None:
        if not op:
            return
        lower = op.lower()
        if lower == "on":
            self.enabled = True
        elif lower == "off":
            self.enabled = False
        elif lower in ("sanitize-payload", "skip-sanitize-payload"):
            self.sanitize = lower
        elif lower == "nopass":
            self.nopass = True
            self.passwords.clear()
        elif lower == "resetpass":
            self.nopass = False
            self.passwords.clear()
        elif op[0] in (">", "#"):
            hashed = hash_password(op[1:].encode("latin-1")) if op[0] == ">" \
                else _checked_hash(op[1:])
            if hashed not in self.passwords:
                self.passwords.append(hashed)
            self.nopass = False
        elif op[0] in ("<", "!"):
            hashed = hash_password(op[1:].encode("latin-1")) if op[0] == "<" \
                else _checked_hash(op[1:])
            if hashed not in self.passwords:
                raise AclError(NO_SUCH_PASSWORD)
            self.passwords.remove(hashed)
        elif op[0] == "(" and op[-1] == ")":
            selector = Selector()
            for inner in op[1:-1].split():
                selector.apply(inner)
            self.selectors.append(selector)
        elif lower == "clearselectors":
            self.selectors.clear()
        elif lower == "reset":
            self.nopass = False
            self.passwords.clear()
            self.root = Selector()
            self.enabled = False
            self.sanitize = "sanitize-payload"
            self.selectors.clear()
        else:
            self.root.apply(op)

    # -- checks ------------------------------------------------------------------

    def password_ok(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        if self.nopass:
            return True
        hashed = hash_password(password)
        return any(hmac.compare_digest(hashed, known) for known in self.passwords)

    def check(self, entry: Entry, args: Sequence[bytes]) -> tuple[int, int]:
        """(0, 0) if the call may run, else the reason and argument index Redis reports:
        no selector allows the command, or the last key or channel none allows."""
        relevant, last = DENIED_COMMAND, 0
        for selector in self.all_selectors():
            reason, index = selector.check(entry, args)
            if not reason:
                return 0, 0
            if reason > relevant or (reason == relevant and index > last):
                relevant, last = reason, index
        return relevant, last

    def channel_ok(self, channel: bytes, literal: bool) -> bool:
        return any(s.channel_ok(channel, literal) for s in self.all_selectors())

    # -- description ---------------------------------------------------------------

    def flags(self) -> list[str]:
        """In Redis' order: on/off, nopass, the payload flag."""
        flags = ["on" if self.enabled else "off"]
        if self.nopass:
            flags.append("nopass")
        if self.sanitize:
            flags.append(self.sanitize)
        return flags

    def describe(self) -> str:
        """The rules that rebuild this user (ACL LIST without "user <name>")."""
        parts = [*self.flags(), *("#" + p for p in self.passwords), self.root.describe()]
        parts.extend(f"({s.describe()})" for s in self.selectors)
        return " ".join(p for p in parts if p)


def new_user(name: str) -> User:
    """A user as ACL SETUSER creates it: off, no passwords, no commands, no keys, no
    channels (Redis 7's acl-pubsub-default resetchannels)."""
    return User(name)


def default_user(password: str = "") -> User:
    """The default user: every command, key and channel; nopass, or ``password``
    (requirepass)."""
    user = User(DEFAULT_USER, enabled=True)
    for op in ("+@all", "~*", "&*"):
        user.apply(op)
    if password:
        user.apply(">" + password)
    else:
        user.nopass = True
    return user


def hash_password(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


def _checked_hash(text: str) -> str:
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise AclError(BAD_HASH)
    return text


def _has_spaces(text: str) -> bool:
    return any(c.isspace() or c == "\0" for c in text)


def merge_selectors(ops: Sequence[str]) -> list[str] | int:
    """Rules with a selector spread over several arguments joined into one; or the index
    of the argument whose "(" is never closed."""
    merged: list[str] = []
    opened = -1
    for index, op in enumerate(ops):
        if opened < 0 and op[:1] == "(" and op[-1:] != ")":
            opened = index
            merged.append(op)
        elif opened >= 0:
            merged[-1] += " " + op
            if op[-1:] == ")":
                opened = -1
        else:
            merged.append(op)
    return opened if opened >= 0 else merged


def applied(user: User, ops: Iterable[str]) -> User:
    """A copy of ``user`` with the rules applied, all or none (AclError names the rule)."""
    staged = user.copy()
    for op in ops:
        try:
            staged.apply(op)
        except AclError as error:
            raise AclError(f"Error in ACL SETUSER modifier '{op}': {error}") from None
    return staged


# -- which arguments a call's keys and channels are -------------------------------------


def key_accesses(entry: Entry, args: Sequence[bytes]) -> list[tuple[int, int]]:
    """(argument index, permission needed) of each key of the call, from Redis' key
    specs as getKeysFromCommandWithSpecs finds them (a spec that does not fit the call
    means no keys at all: the command then answers its own error); a spec without
    ACCESS, INSERT, DELETE or UPDATE needs nothing of a pattern but that it matches."""
    specs = key_specs(entry.command, entry.full_name)
    if not specs:
        return [(i, 0) for i in entry.command.key_positions(list(args)) if i < len(args)]
    found: list[tuple[int, int]] = []
    for spec in specs:
        flags = [f.upper() for f in spec.get("flags", ())]
        if "NOT_KEY" in flags:
            continue  # a shard channel, checked as a channel
        access = _access(flags)
        if "VARIABLE_FLAGS" in flags:
            access = _variable_access(entry.full_name, args, access)
        positions = _spec_positions(spec, args)
        if positions is None:
            return []
        found.extend((index, access) for index in positions)
    return found


def _variable_access(name: str, args: Sequence[bytes], declared: int) -> int:
    """What SET and BITFIELD need of a key depends on their options, as Redis' own
    key finders for them say."""
    words = [a.upper() for a in args[2:]]
    if name == "set":
        return WRITE | (READ if b"GET" in words[1:] else 0)
    if name == "bitfield":
        access = READ if b"GET" in words else 0
        if b"SET" in words or b"INCRBY" in words:
            access |= READ | WRITE
        return access
    return declared


def _access(flags: Iterable[str]) -> int:
    access = 0
    for flag in flags:
        if flag == "ACCESS":
            access |= READ
        elif flag in ("INSERT", "DELETE", "UPDATE"):
            access |= WRITE
    return access


def _spec_positions(spec: Mapping, args: Sequence[bytes]) -> list[int] | None:
    """The key positions one spec finds; [] when its keyword is absent, None when the
    call does not fit it (Redis' invalid_spec)."""
    argc = len(args)
    begin = spec.get("begin_search", {})
    if begin.get("type") == "index":
        first = begin["spec"]["index"]
    elif begin.get("type") == "keyword":
        keyword = str(begin["spec"]["keyword"]).encode().upper()
        start_from = begin["spec"]["startfrom"]
        start = start_from if start_from > 0 else argc + start_from
        stop = argc - 1 if start_from > 0 else 0
        step = 1 if start <= stop else -1
        first = 0
        for i in range(start, stop, step):
            if i >= argc or i < 1:
                break
            if args[i].upper() == keyword:
                first = i + 1
                break
        if not first:
            return []
    else:
        return None
    find = spec.get("find_keys", {})
    inner = find.get("spec", {})
    if find.get("type") == "range":
        step = inner["keystep"] or 1
        if inner["lastkey"] >= 0:
            last = first + inner["lastkey"]
        elif not inner["limit"]:
            last = argc + inner["lastkey"]
        else:
            last = first + (argc - first) // inner["limit"] + inner["lastkey"]
    elif find.get("type") == "keynum":
        step = inner["keystep"] or 1
        at = first + inner["keynumidx"]
        if inner["keynumidx"] >= argc or at >= argc:
            return None
        try:
            count = int(args[at])
        except ValueError:
            return None
        if count < 0:
            return None
        first += inner["firstkey"]
        last = first + count - 1
    else:
        return None
    if last >= argc or last < first or first >= argc:
        return None
    return list(range(first, last + 1, step))


_CHANNEL_COMMANDS = {"publish": "one", "spublish": "one", "subscribe": "all",
                     "ssubscribe": "all", "psubscribe": "patterns"}


def channel_arguments(entry: Entry, args: Sequence[bytes]) -> list[tuple[int, bool]]:
    """(argument index, compared literally) of each channel the call names."""
    kind = _CHANNEL_COMMANDS.get(entry.full_name)
    if kind is None:
        return []
    if kind == "one":
        return [(1, False)] if len(args) > 1 else []
    return [(i, kind == "patterns") for i in range(1, len(args))]
