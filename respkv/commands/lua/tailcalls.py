"""Scripts compiled without tail calls, so that Redis' error positions name their line.

Lua 5.1 drops the caller's frame on ``return f(...)``: then Redis' error positions
("script: ..., on @user_script:N.") would name nothing when f is one of this engine's
Lua functions (Redis' are C functions, which keep the frame). Scripts are compiled,
dumped and reloaded with each TAILCALL made a CALL (the RETURN after it stays).
"""

from __future__ import annotations

_OP_CALL, _OP_TAILCALL = 28, 29


class _Dump:
    def __init__(self, data: bytearray) -> None:
        self.data = data
        self.pos = 12  # the header
        self.size_t = data[8]

    def int(self) -> int:
        value = int.from_bytes(self.data[self.pos:self.pos + 4], "little", signed=True)
        self.pos += 4
        return value

    def string(self) -> None:
        size = int.from_bytes(self.data[self.pos:self.pos + self.size_t], "little")
        self.pos += self.size_t + size

    def function(self) -> None:
        self.string()
        self.pos += 8 + 4  # line defined, last line, nups, params, vararg, stack size
        for _ in range(self.int()):
            at = self.pos
            if self.data[at] & 0x3F == _OP_TAILCALL:
                self.data[at] = (self.data[at] & 0xC0) | _OP_CALL
            self.pos += 4
        for _ in range(self.int()):
            kind = self.data[self.pos]
            self.pos += 1
            if kind == 1:
                self.pos += 1
            elif kind == 3:
                self.pos += 8
            elif kind == 4:
                self.string()
        for _ in range(self.int()):
            self.function()
        self.pos += 4 * self.int()  # line info
        for _ in range(self.int()):  # locals
            self.string()
            self.pos += 8
        for _ in range(self.int()):  # upvalue names
            self.string()


def without_tail_calls(dump: bytes) -> bytes:
    """A Lua 5.1 binary chunk with its tail calls made plain calls."""
    data = bytearray(dump)
    _Dump(data).function()
    return bytes(data)

