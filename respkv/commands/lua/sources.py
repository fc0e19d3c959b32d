"""A script's source as Redis 7.0 reads it: its sha1, its ``#!lua`` shebang and the
cache of sources SCRIPT LOAD fills and EVALSHA runs."""

from __future__ import annotations

import hashlib

from respkv.protocol.reply import RespError

SCRIPT_FLAGS = frozenset({"no-writes", "allow-oom", "allow-stale", "no-cluster",
                          "allow-cross-slot-keys"})


def sha1hex(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


class ScriptCache:
    """SCRIPT LOAD / EXISTS / FLUSH and the sources EVALSHA runs."""

    def __init__(self) -> None:
        self._scripts: dict[bytes, bytes] = {}

    def load(self, source: bytes) -> bytes:
        sha = sha1hex(source)
        self._scripts[sha] = source
        return sha

    def get(self, sha: bytes) -> bytes | None:
        return self._scripts.get(sha.lower())

    def exists(self, sha: bytes) -> bool:
        return sha.lower() in self._scripts

    def flush(self) -> None:
        self._scripts.clear()


def script_flags(source: bytes) -> tuple[frozenset[str], int]:
    """The flags of a ``#!lua flags=...`` first line and its length (0 without one);
    raises Redis' error for a bad shebang. ``no-writes`` makes the script read-only."""
    if not source.startswith(b"#!"):
        return frozenset(), 0
    end = source.find(b"\n")
    if end < 0:
        raise RespError("ERR Invalid script shebang")
    parts = source[:end].split()
    if not parts:
        raise RespError("ERR Invalid engine in script shebang")
    if parts[0] != b"#!lua":
        raise RespError("ERR Unexpected engine in script shebang: " + _text(parts[0]))
    flags: set[str] = set()
    for part in parts[1:]:
        if not part.startswith(b"flags="):
            raise RespError("ERR Unknown lua shebang option: " + _text(part))
        for flag in part[6:].split(b",") if part[6:] else ():
            if _text(flag) not in SCRIPT_FLAGS:
                raise RespError("ERR Unexpected flag in script shebang: " + _text(flag))
            flags.add(_text(flag))
    return frozenset(flags), end


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
