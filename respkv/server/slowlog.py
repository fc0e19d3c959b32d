"""SLOWLOG: the newest commands that took at least slowlog-log-slower-than µs.

Entries are copied as Redis copies them: at most 32 arguments (the last one then
says how many more there were), each at most 128 bytes (then how many more bytes);
AUTH's and HELLO's passwords are never kept.
"""

from __future__ import annotations

import time
from collections import deque

from respkv.config import Config

MAX_ARGS = 32
MAX_STRING = 128
_REDACTED = b"(redacted)"


class SlowLog:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.entries: deque[list[object]] = deque()
        self.next_id = 0

    def add(self, args: list[bytes], duration_us: int, addr: str, name: bytes) -> None:
        limit = self.config.slowlog_max_len
        kept = _redacted(args)
        if len(kept) > MAX_ARGS:
            kept = [*kept[:MAX_ARGS - 1],
                    f"... ({len(kept) - MAX_ARGS + 1} more arguments)".encode()]
        kept = [arg if len(arg) <= MAX_STRING
                else arg[:MAX_STRING] + f"... ({len(arg) - MAX_STRING} more bytes)".encode()
                for arg in kept]
        self.entries.appendleft([self.next_id, int(time.time()), duration_us, kept,
                                 addr.encode(), name])
        self.next_id += 1
        while len(self.entries) > limit:
            self.entries.pop()

    def newest(self, count: int) -> list[list[object]]:
        """The newest ``count`` entries, newest first; all of them for -1."""
        self.trim()
        entries = list(self.entries)
        return entries if count < 0 else entries[:count]

    def trim(self) -> None:
        """Keep at most slowlog-max-len entries (it may have been lowered)."""
        while len(self.entries) > self.config.slowlog_max_len:
            self.entries.pop()

    def __len__(self) -> int:
        self.trim()
        return len(self.entries)

    def reset(self) -> None:
        self.entries.clear()


def _redacted(args: list[bytes]) -> list[bytes]:
    """The arguments with passwords replaced, as Redis redacts them."""
    name = args[0].lower()
    if name == b"auth":
        return [args[0], *([_REDACTED] * (len(args) - 1))]
    if name == b"hello":
        kept = list(args)
        for index in range(2, len(args)):
            if args[index].lower() == b"auth":  # AUTH <username> <password>
                for at in range(index + 1, min(index + 3, len(kept))):
                    kept[at] = _REDACTED
        return kept
    return args
