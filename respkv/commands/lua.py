"""The Lua side of Redis 7.0 scripting: EVAL's engine, on lupa's Lua 5.1 (as Redis').

``LuaEngine.run(source, keys, argv, call)`` runs a script the way Redis 7.0.15 does:
the ``redis`` API, KEYS/ARGV, the conversions between replies and Lua values in RESP2
and RESP3, Redis' error texts, the sandbox (read-only globals and libraries, no
os/io/require/loadfile/dofile/print, no bytecode), the cjson, cmsgpack, bit and struct
libraries, Redis' math.random (rand48) and a stop hook for SCRIPT KILL. ``call`` is
the server's: it runs one command for the script and returns its Reply.

One Lua state serves every run. Scripts cannot change it: every table reachable from
the globals is read-only (a proxy whose writes fail as Redis' read-only tables do),
KEYS and ARGV are fresh per run, and what a run could leave behind (the cjson
settings, a stopped collector) is reset after it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import threading
from collections.abc import Callable
from typing import Any

from respkv import REDIS_VERSION
from respkv.commands.table import lookup
from respkv.protocol.reply import (
    NULL_ARRAY,
    Push,
    Reply,
    RespError,
    RSet,
    Simple,
    Verbatim,
    format_double,
)

try:  # Redis embeds Lua 5.1; lupa bundles it as lupa.lua51
    from lupa import lua51 as _lupa
except ImportError:  # pragma: no cover - a lupa build without 5.1
    import lupa as _lupa

logger = logging.getLogger(__name__)

LUA_RUNTIME = _lupa.__name__
SCRIPT_FLAGS = frozenset({"no-writes", "allow-oom", "allow-stale", "no-cluster",
                          "allow-cross-slot-keys"})
_LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.INFO, logging.WARNING)
_INT64_MIN = -(1 << 63)


KILLED = "ERR Script killed by user with SCRIPT KILL..."  # what a killed script answers


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


def _error_field(text: bytes) -> bytes:
    """Redis' luaPushErrorBuff: '-CODE msg' or 'msg' -> the table's 'CODE msg'."""
    if text[:1] == b"-":
        space = text.find(b" ")
        code, msg = (b"ERR", text[1:]) if space < 0 else (text[1:space], text[space + 1:])
    else:
        code, msg = b"ERR", text
    return code + b" " + msg.strip(b"\r\n")


def _long_long(value: float) -> int:
    """C's (long long) of a Lua number, as x86 does it (out of range: INT64_MIN)."""
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 63) else _INT64_MIN
    if value != value or value in (math.inf, -math.inf):
        return _INT64_MIN
    result = int(value)
    return result if -(1 << 63) <= result < (1 << 63) else _INT64_MIN


def _g17(value: float) -> bytes:
    """C's %.17g, as addReplyDouble prints a RESP2 double."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if math.isnan(value):
        return b"-nan" if math.copysign(1.0, value) < 0 else b"nan"
    return b"%.17g" % value


def _one_line(data: bytes) -> str:
    """A status or error text: C-string (cut at NUL), CR/LF as spaces."""
    data = data.split(b"\0", 1)[0].replace(b"\r", b" ").replace(b"\n", b" ")
    return data.decode("utf-8", "replace")


# -- Reply -> Lua ------------------------------------------------------------------
# A container reply goes to Lua as a flat list of (op, value) pairs that the prelude's
# build() turns into tables the way Redis' parser does (same insertion order).
_OP_VALUE, _OP_NIL, _OP_ARRAY, _OP_STATUS, _OP_ERROR = 1, 2, 3, 4, 5
_OP_MAP, _OP_SET, _OP_DOUBLE, _OP_VERBATIM = 6, 7, 8, 9


def _flatten(reply: Reply, resp3: bool, out: list[Any]) -> None:
    kind = type(reply)
    if kind is bytes or kind is int:
        out += (_OP_VALUE, reply)
    elif kind is list or kind is tuple or kind is Push:
        out += (_OP_ARRAY, len(reply))
        for item in reply:
            _flatten(item, resp3, out)
    elif kind is Simple:
        out += (_OP_STATUS, reply.encode())
    elif reply is None or reply is NULL_ARRAY:
        out += (_OP_NIL, 0) if resp3 else (_OP_VALUE, False)
    elif isinstance(reply, RespError):
        out += (_OP_ERROR, _error_field(b"-" + reply.text.encode()))
    elif kind is RSet:
        out += (_OP_SET if resp3 else _OP_ARRAY, len(reply))
        for item in reply:
            _flatten(item, resp3, out)
    elif kind is dict:
        if resp3:
            out += (_OP_MAP, len(reply))
        else:
            out += (_OP_ARRAY, 2 * len(reply))
        for key, value in reply.items():
            _flatten(key, resp3, out)
            _flatten(value, resp3, out)
    elif kind is bool:
        out += (_OP_VALUE, reply if resp3 else int(reply))
    elif kind is float:
        out += (_OP_DOUBLE, reply) if resp3 else (_OP_VALUE, format_double(reply))
    elif kind is Verbatim:
        out += (_OP_VERBATIM if resp3 else _OP_VALUE, reply.encode())
    elif isinstance(reply, str):
        out += (_OP_VALUE, reply.encode())
    elif isinstance(reply, bytearray | memoryview):
        out += (_OP_VALUE, bytes(reply))
    else:
        raise TypeError(f"cannot give a {kind.__name__} reply to Lua")


# -- Lua -> Reply ------------------------------------------------------------------
# The prelude's emit() flattens the script's result; these are its ops.
_R_NULL, _R_BULK, _R_INT, _R_BOOL, _R_ERROR, _R_STATUS, _R_DOUBLE = 0, 1, 2, 3, 4, 5, 6
_R_BIGNUM, _R_VERBATIM, _R_MAP, _R_SET, _R_ARRAY, _R_DEEP = 7, 8, 9, 10, 11, 12
_STACK_LIMIT = RespError("ERR reached lua stack limit")


def _hashable(key: Reply) -> Reply:
    if isinstance(key, list):
        return tuple(_hashable(item) for item in key)
    if isinstance(key, dict):
        return tuple((_hashable(k), _hashable(v)) for k, v in key.items())
    return key


def _make(kind: int, items: list[Reply], resp3: bool) -> Reply:
    if kind == _R_ARRAY:
        return items
    if kind == _R_SET:
        return RSet(items)
    if not resp3:  # a map is a flat array in RESP2: keep every pair, duplicates too
        return items
    return {_hashable(items[j]): items[j + 1] for j in range(0, len(items), 2)}


def _leaf(op: int, value: Any, extra: Any, resp3: bool, lua_resp: int) -> Reply:
    if op == _R_BULK:
        return value
    if op == _R_INT:
        return _long_long(value)
    if op == _R_NULL:
        return None
    if op == _R_BOOL:
        if lua_resp == 2:
            return 1 if value else None
        return bool(value)
    if op == _R_ERROR:
        return RespError(_one_line(value))
    if op == _R_STATUS:
        return Simple(_one_line(value))
    if op == _R_DOUBLE:
        return float(value) if resp3 else _g17(float(value))
    if op == _R_BIGNUM:
        return value.replace(b"\r", b" ").replace(b"\n", b" ")
    if op == _R_VERBATIM:
        if resp3 and value[:3] == b"txt":
            try:
                return Verbatim(extra.decode())
            except UnicodeDecodeError:
                return extra
        return extra
    return _STACK_LIMIT


def _decode(values: list[Any], resp3: bool, lua_resp: int) -> Reply:
    """The Reply of emit()'s flat ops (iteratively: replies nest ~8000 deep)."""
    stack: list[tuple[list[Reply], int, int]] = []
    i = 0
    while True:
        op = values[i]
        value = values[i + 1]
        i += 2
        if op in (_R_MAP, _R_SET, _R_ARRAY) and value:
            stack.append(([], value * 2 if op == _R_MAP else value, op))
            continue
        if op in (_R_MAP, _R_SET, _R_ARRAY):
            reply = _make(op, [], resp3)
        elif op == _R_VERBATIM:
            reply = _leaf(op, value, values[i], resp3, lua_resp)
            i += 1
        else:
            reply = _leaf(op, value, None, resp3, lua_resp)
        while True:
            if not stack:
                return reply
            items, left, kind = stack[-1]
            items.append(reply)
            if left > 1:
                stack[-1] = (items, left - 1, kind)
                break
            stack.pop()
            reply = _make(kind, items, resp3)


# -- Tail calls ----------------------------------------------------------------------
# Lua 5.1 drops the caller's frame on ``return f(...)``: then Redis' error positions
# ("script: ..., on @user_script:N.") would name nothing when f is one of this engine's
# Lua functions (Redis' are C functions, which keep the frame). Scripts are compiled,
# dumped and reloaded with each TAILCALL made a CALL (the RETURN after it stays).
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


# -- bit (LuaBitOp) ------------------------------------------------------------------
def _barg(number: float) -> int:
    """LuaBitOp's conversion: the low 32 bits of number + 2^52 + 2^51."""
    biased = float(number) + 6755399441055744.0
    return struct.unpack("<Q", struct.pack("<d", biased))[0] & 0xFFFFFFFF


def _sbits(bits: int) -> int:
    bits &= 0xFFFFFFFF
    return bits - (1 << 32) if bits & 0x80000000 else bits


def _bit(name: bytes, *args: float) -> Any:
    b = _barg(args[0])
    if name == b"tobit":
        return _sbits(b)
    if name == b"bnot":
        return _sbits(~b)
    if name in (b"band", b"bor", b"bxor"):
        for other in args[1:]:
            o = _barg(other)
            b = b & o if name == b"band" else b | o if name == b"bor" else b ^ o
        return _sbits(b)
    if name == b"bswap":
        return _sbits(int.from_bytes(b.to_bytes(4, "little"), "big"))
    if name == b"tohex":
        n = 8 if len(args) < 2 else _sbits(_barg(args[1]))
        digits = "0123456789abcdef"
        if n < 0:
            n, digits = -n, "0123456789ABCDEF"
        n = min(n, 8)
        return "".join(digits[(b >> (4 * k)) & 15] for k in range(n - 1, -1, -1)).encode()
    n = _barg(args[1]) & 31
    if name == b"lshift":
        return _sbits(b << n)
    if name == b"rshift":
        return _sbits(b >> n)
    if name == b"arshift":
        return _sbits(_sbits(b) >> n)
    if name == b"rol":
        return _sbits((b << n) | (b >> (32 - n))) if n else _sbits(b)
    return _sbits((b >> n) | (b << (32 - n))) if n else _sbits(b)  # ror


# -- struct (Roberto Ierusalimschy's, as Redis ships it) ----------------------------
_MAXINTSIZE = 32
_MAXALIGN = 8
_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "l": 8, "L": 8, "T": 8, "f": 4, "d": 8, "x": 1}


class _StructError(Exception):
    pass


class _Format:
    def __init__(self, fmt: bytes) -> None:
        self.fmt = fmt
        self.i = 0
        self.little = True
        self.align = 1

    def number(self, default: int) -> int:
        start = self.i
        while self.i < len(self.fmt) and chr(self.fmt[self.i]).isdigit():
            self.i += 1
        if start == self.i:
            return default
        value = int(self.fmt[start:self.i])
        if value > 0x7FFFFFFF:
            raise _StructError("integral size overflow")
        return value

    def size(self, opt: str) -> int:
        if opt in _SIZES:
            return _SIZES[opt]
        if opt == "c":
            return self.number(1)
        if opt in "iI":
            size = self.number(4)
            if size > _MAXINTSIZE:
                raise _StructError(f"integral size {size} is larger than limit of {_MAXINTSIZE}")
            return size
        return 0

    def to_align(self, length: int, opt: str, size: int) -> int:
        if size == 0 or opt == "c":
            return 0
        align = min(size, self.align)
        if align <= 1:
            return 0
        return (align - (length & (align - 1))) & (align - 1)

    def control(self, opt: str, name: str) -> None:
        if opt == " ":
            return
        if opt in "><":
            self.little = opt == "<"
            return
        if opt == "!":
            align = self.number(_MAXALIGN)
            if align <= 0 or align & (align - 1):
                raise _StructError(f"alignment {align} is not a power of 2")
            self.align = align
            return
        raise _StructError(f"bad argument #1 to '{name}' (invalid format option '{opt}')")

    def options(self) -> Any:
        while self.i < len(self.fmt):
            opt = chr(self.fmt[self.i])
            self.i += 1
            yield opt, self.size(opt)


def _lua_args(n: int, flat: tuple[Any, ...]) -> list[tuple[bytes, Any, Any]]:
    return [(flat[3 * j], flat[3 * j + 1], flat[3 * j + 2]) for j in range(n)]


def _arg_type(args: list[tuple[bytes, Any, Any]], j: int, nil_mark: bool) -> str:
    if j < len(args):
        return args[j][0].decode()
    return "nil" if nil_mark and j == len(args) else "no value"


def _check_number(args: list[tuple[bytes, Any, Any]], j: int, name: str,
                  nil_mark: bool = False) -> float:
    if j < len(args) and args[j][1] is not False:
        return args[j][1]
    raise _StructError(f"bad argument #{j + 1} to '{name}' "
                       f"(number expected, got {_arg_type(args, j, nil_mark)})")


def _check_string(args: list[tuple[bytes, Any, Any]], j: int, name: str,
                  nil_mark: bool = False) -> bytes:
    if j < len(args) and args[j][2] is not False:
        return args[j][2]
    raise _StructError(f"bad argument #{j + 1} to '{name}' "
                       f"(string expected, got {_arg_type(args, j, nil_mark)})")


def _int_bytes(number: float, size: int, little: bool) -> bytes:
    value = int(number) & 0xFFFFFFFFFFFFFFFF  # (Uinttype)(Inttype)n, or (Uinttype)n
    out = bytearray(size)
    for k in range(size):
        out[k if little else size - 1 - k] = value & 0xFF
        value >>= 8
    return bytes(out)


def _float_bytes(number: float, little: bool) -> bytes:
    try:
        data = struct.pack("<f", number)
    except OverflowError:
        data = struct.pack("<f", math.copysign(math.inf, number))
    return data if little else data[::-1]


def _struct_pack(n: int, *flat: Any) -> tuple[Any, ...]:
    args = _lua_args(n, flat)
    try:
        form = _Format(_check_string(args, 0, "pack"))
        out = bytearray()
        arg = 1
        for opt, size in form.options():
            pad = form.to_align(len(out), opt, size)
            out += b"\0" * pad
            if opt in "bBhHlLTiI":
                out += _int_bytes(_check_number(args, arg, "pack", True), size, form.little)
                arg += 1
            elif opt == "x":
                out += b"\0"
            elif opt == "f":
                out += _float_bytes(_check_number(args, arg, "pack", True), form.little)
                arg += 1
            elif opt == "d":
                data = struct.pack("<d", _check_number(args, arg, "pack", True))
                out += data if form.little else data[::-1]
                arg += 1
            elif opt in "cs":
                data = _check_string(args, arg, "pack", True)
                arg += 1
                size = size or len(data)
                if len(data) < size:
                    raise _StructError(f"bad argument #{arg + 1} to 'pack' (string too short)")
                out += data[:size]
                if opt == "s":
                    out += b"\0"
            else:
                form.control(opt, "pack")
        return True, bytes(out)
    except _StructError as error:
        return False, str(error).encode()


def _get_integer(data: bytes, little: bool, signed: bool, size: int) -> int:
    value = 0
    for byte in (reversed(data) if little else data):
        value = ((value << 8) | byte) & 0xFFFFFFFFFFFFFFFF
    if signed:
        mask = (0xFFFFFFFFFFFFFFFF << ((size * 8 - 1) & 63)) & 0xFFFFFFFFFFFFFFFF
        if value & mask:
            value |= mask
        if value & (1 << 63):
            value -= 1 << 64
    return value


def _struct_unpack(n: int, *flat: Any) -> tuple[Any, ...]:
    args = _lua_args(n, flat)
    try:
        form = _Format(_check_string(args, 0, "unpack"))
        data = _check_string(args, 1, "unpack")
        start = 1 if len(args) < 3 or args[2][0] == b"nil" else _check_number(args, 2, "unpack")
        pos = int(start) & 0xFFFFFFFFFFFFFFFF  # size_t, as Redis' struct reads it
        if pos == 0:
            raise _StructError("bad argument #3 to 'unpack' (offset must be 1 or greater)")
        pos -= 1
        results: list[Any] = []
        for opt, size in form.options():
            pos += form.to_align(pos, opt, size)
            if size > len(data) or pos > len(data) - size:
                raise _StructError("bad argument #2 to 'unpack' (data string too short)")
            if opt in "bBhHlLTiI":
                results.append(_get_integer(data[pos:pos + size], form.little, opt.islower(),
                                            size))
            elif opt == "f":
                chunk = data[pos:pos + 4]
                results.append(struct.unpack("<f", chunk if form.little else chunk[::-1])[0])
            elif opt == "d":
                chunk = data[pos:pos + 8]
                results.append(struct.unpack("<d", chunk if form.little else chunk[::-1])[0])
            elif opt == "c":
                if size == 0:
                    if not results or not isinstance(results[-1], int | float):
                        raise _StructError("format 'c0' needs a previous size")
                    size = int(results.pop())
                    if size > len(data) or pos > len(data) - size:
                        raise _StructError("bad argument #2 to 'unpack' (data string too short)")
                results.append(data[pos:pos + size])
            elif opt == "s":
                end = data.find(b"\0", pos)
                if end < 0:
                    raise _StructError("unfinished string in data")
                size = end - pos + 1
                results.append(data[pos:end])
            elif opt != "x":
                form.control(opt, "unpack")
            pos += size
        return (True, *results, pos + 1)
    except _StructError as error:
        return False, str(error).encode()


def _struct_size(n: int, *flat: Any) -> tuple[Any, ...]:
    args = _lua_args(n, flat)
    try:
        form = _Format(_check_string(args, 0, "size"))
        pos = 0
        for opt, size in form.options():
            pos += form.to_align(pos, opt, size)
            if opt == "s":
                raise _StructError("bad argument #1 to 'size' (option 's' has no fixed size)")
            if opt == "c" and size == 0:
                raise _StructError("bad argument #1 to 'size' (option 'c0' has no fixed size)")
            if not opt.isalnum():
                form.control(opt, "size")
            pos += size
        return True, pos
    except _StructError as error:
        return False, str(error).encode()


# -- cmsgpack (lua-cmsgpack 0.4.0) ---------------------------------------------------
_MP_MAX_NESTING = 16


def _mp_number(value: float, out: bytearray) -> None:
    if isinstance(value, int) or (value.is_integer() and -(1 << 63) <= value < (1 << 63)):
        _mp_int(int(value), out)
        return
    try:
        as_float = struct.unpack(">f", struct.pack(">f", value))[0]
    except OverflowError:
        as_float = None
    if as_float == value:  # NaN never equals: a double, as in C
        out += b"\xca" + struct.pack(">f", value)
    else:
        out += b"\xcb" + struct.pack(">d", value)


def _mp_int(n: int, out: bytearray) -> None:
    if n >= 0:
        if n <= 127:
            out.append(n)
        elif n <= 0xFF:
            out += b"\xcc" + n.to_bytes(1, "big")
        elif n <= 0xFFFF:
            out += b"\xcd" + n.to_bytes(2, "big")
        elif n <= 0xFFFFFFFF:
            out += b"\xce" + n.to_bytes(4, "big")
        else:
            out += b"\xcf" + n.to_bytes(8, "big")
    elif n >= -32:
        out += n.to_bytes(1, "big", signed=True)
    elif n >= -128:
        out += b"\xd0" + n.to_bytes(1, "big", signed=True)
    elif n >= -32768:
        out += b"\xd1" + n.to_bytes(2, "big", signed=True)
    elif n >= -(1 << 31):
        out += b"\xd2" + n.to_bytes(4, "big", signed=True)
    else:
        out += b"\xd3" + n.to_bytes(8, "big", signed=True)


def _mp_length(n: int, small: int, small_max: int, codes: bytes, out: bytearray) -> None:
    if n <= small_max:
        out.append(small | n)
    elif n <= 0xFFFF:
        out += codes[:1] + n.to_bytes(2, "big")
    else:
        out += codes[1:] + n.to_bytes(4, "big")


def _mp_is_array(table: Any) -> bool:
    count = top = 0
    for key in table:
        if isinstance(key, bool) or not isinstance(key, int | float) or key <= 0:
            return False
        if not float(key).is_integer() or key >= (1 << 31):
            return False
        top = max(top, int(key))
        count += 1
    return top == count


def _mp_pack_value(value: Any, level: int, out: bytearray) -> None:
    if value is None:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int | float):
        _mp_number(value, out)
    elif isinstance(value, bytes):
        n = len(value)
        if n < 32:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += b"\xd9" + n.to_bytes(1, "big")
        elif n <= 0xFFFF:
            out += b"\xda" + n.to_bytes(2, "big")
        else:
            out += b"\xdb" + n.to_bytes(4, "big")
        out += value
    elif _lupa.lua_type(value) == "table" and level < _MP_MAX_NESTING:
        if _mp_is_array(value):
            n = len(value)
            _mp_length(n, 0x90, 15, b"\xdc\xdd", out)
            for j in range(1, n + 1):
                _mp_pack_value(value[j], level + 1, out)
        else:
            items = list(value.items())
            _mp_length(len(items), 0x80, 15, b"\xde\xdf", out)
            for key, item in items:
                _mp_pack_value(key, level + 1, out)
                _mp_pack_value(item, level + 1, out)
    else:
        out.append(0xC0)


def _mp_pack(*values: Any) -> bytes:
    out = bytearray()
    for value in values:
        _mp_pack_value(value, 0, out)
    return bytes(out)


class _MpEOF(Exception):
    pass


class _MpBad(Exception):
    pass


_MP_FIXED = {0xCC: (1, False), 0xCD: (2, False), 0xCE: (4, False), 0xCF: (8, False),
             0xD0: (1, True), 0xD1: (2, True), 0xD2: (4, True), 0xD3: (8, True)}


def _mp_decode(data: bytes, pos: int, out: list[Any]) -> int:
    """One value at pos into flat (op, value) pairs for the prelude's builder."""
    if pos >= len(data):
        raise _MpEOF
    code = data[pos]
    pos += 1

    def take(n: int) -> bytes:
        if pos + n > len(data):
            raise _MpEOF
        return data[pos:pos + n]

    if code <= 0x7F:
        out += (1, code)
    elif code >= 0xE0:
        out += (1, code - 0x100)
    elif code in _MP_FIXED:
        size, signed = _MP_FIXED[code]
        out += (1, int.from_bytes(take(size), "big", signed=signed))
        pos += size
    elif code == 0xC0:
        out += (2, 0)
    elif code in (0xC2, 0xC3):
        out += (1, code == 0xC3)
    elif code == 0xCA:
        out += (1, struct.unpack(">f", take(4))[0])
        pos += 4
    elif code == 0xCB:
        out += (1, struct.unpack(">d", take(8))[0])
        pos += 8
    elif 0xA0 <= code <= 0xBF or code in (0xD9, 0xDA, 0xDB):
        if code <= 0xBF:
            n = code & 0x1F
        else:
            width = {0xD9: 1, 0xDA: 2, 0xDB: 4}[code]
            n = int.from_bytes(take(width), "big")
            pos += width
        out += (1, take(n))
        pos += n
    elif 0x80 <= code <= 0x9F or code in (0xDC, 0xDD, 0xDE, 0xDF):
        if code <= 0x9F:
            n, is_map = code & 0x0F, code <= 0x8F
        else:
            width = 2 if code in (0xDC, 0xDE) else 4
            n, is_map = int.from_bytes(take(width), "big"), code in (0xDE, 0xDF)
            pos += width
        out += (4 if is_map else 3, n)
        for _ in range(2 * n if is_map else n):
            pos = _mp_decode(data, pos, out)
    else:
        raise _MpBad
    return pos


def _mp_unpack(data: bytes, limit: int, offset: int) -> tuple[Any, ...]:
    decode_all = not limit and not offset
    if offset < 0 or limit < 0:
        return False, (f"Invalid request to unpack with offset of {offset} "
                       f"and limit of {len(data)}.").encode()
    if offset > len(data):
        return False, f"Start offset {offset} greater than input length {len(data)}.".encode()
    if decode_all:
        limit = 1 << 31
    out: list[Any] = []
    pos = offset
    count = 0
    try:
        while pos < len(data) and count < limit:
            pos = _mp_decode(data, pos, out)
            count += 1
    except _MpEOF:
        return False, b"Missing bytes in input."
    except _MpBad:
        return False, b"Bad data format in input."
    next_offset = None if decode_all else (-1 if pos >= len(data) else pos)
    return True, out, count, next_offset


class LuaEngine:
    """One Lua 5.1 state running EVAL scripts, one at a time."""

    def __init__(self, command_exists: Callable[[list[bytes]], bool] | None = None) -> None:
        self._command_exists = command_exists or _known_command
        self._lua = _lupa.LuaRuntime(encoding=None, register_eval=False,
                                     register_builtins=False, unpack_returned_tuples=True,
                                     attribute_filter=_no_attributes)
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._flush_pending = False
        self._checker: Any = None
        self._functions: dict[bytes, Any] = {}
        self._call: Callable[[list[bytes]], Reply] | None = None
        self._resp3 = False
        self._should_stop: Callable[[], bool] | None = None
        self._failure: BaseException | None = None
        major, minor, patch = (int(part) for part in REDIS_VERSION.split("."))
        callbacks = {
            b"call": self._py_call, b"should_stop": self._py_should_stop,
            b"sha1hex": sha1hex, b"log": _py_log, b"command_exists": self._py_command_exists,
            b"patch": without_tail_calls, b"bit": _bit, b"struct_pack": _struct_pack,
            b"struct_unpack": _struct_unpack, b"struct_size": _struct_size,
            b"mp_pack": _mp_pack, b"mp_unpack": self._py_mp_unpack,
            b"version": REDIS_VERSION.encode(),
            b"version_num": (major << 16) | (minor << 8) | patch,
        }
        boot = self._lua.eval('function(src, py) return assert(loadstring(src, "=respkv"))(py) end')
        entry = boot(PRELUDE.replace("@KILLED@", KILLED).encode(),
                     self._lua.table_from(callbacks))
        self._compile = entry[b"compile"]
        self._run = entry[b"run"]
        self._slice = entry[b"slice"]
        self._lua.globals()[b"python"] = None

    # -- running ---------------------------------------------------------------------

    def run(self, source: bytes, keys: list[bytes], argv: list[bytes],
            call: Callable[[list[bytes]], Reply], *, resp3: bool = False,
            read_only: bool = False, should_stop: Callable[[], bool] | None = None) -> Reply:
        """Run a script; its reply, or its error as a RespError (returned).

        ``read_only`` is the caller's to enforce in ``call``; a ``#!lua flags=no-writes``
        script asks for it too (see ``script_flags``)."""
        if self._owner == threading.get_ident():
            raise RuntimeError("a script cannot run a script")
        with self._lock:
            self._owner = threading.get_ident()
            try:
                return self._run_locked(source, keys, argv, call, resp3, should_stop)
            finally:
                self._owner = None
                if self._flush_pending:
                    self._flush_pending = False
                    self._functions.clear()

    def load(self, source: bytes) -> bytes | RespError:
        """Compile a script (SCRIPT LOAD, and EVAL before it caches): its sha1, or
        Redis' error for a bad shebang or a script that does not compile."""
        sha = sha1hex(source)
        if not self._lock.acquire(blocking=False):
            # a script is running (its redis.call may wait for this very thread): check
            # the syntax in a state of its own; the run after compiles it
            return self._check(sha, source)
        try:
            function = self._functions.get(sha) or self._load(sha, source)
        finally:
            self._lock.release()
        return function if isinstance(function, RespError) else sha

    def _check(self, sha: bytes, source: bytes) -> bytes | RespError:
        try:
            _, shebang = script_flags(source)
        except RespError as error:
            return error
        if self._checker is None:
            checker = _lupa.LuaRuntime(encoding=None, register_eval=False,
                                       register_builtins=False)
            self._checker = checker.eval(
                "function(src) local f, e = loadstring(src, '@user_script') return e end")
        error = self._checker(source[shebang:])
        if error is not None:
            return RespError("ERR Error compiling script (new function): " + _one_line(error))
        return sha

    def _run_locked(self, source: bytes, keys: list[bytes], argv: list[bytes],
                    call: Callable[[list[bytes]], Reply], resp3: bool,
                    should_stop: Callable[[], bool] | None) -> Reply:
        sha = sha1hex(source)
        function = self._functions.get(sha)
        if function is None:
            function = self._load(sha, source)
            if isinstance(function, RespError):
                return function
        self._call, self._resp3, self._should_stop = call, resp3, should_stop
        self._failure = None
        lua = self._lua
        try:
            result = self._run(function, lua.table_from(keys), lua.table_from(argv),
                               should_stop is not None)
        finally:
            self._call = self._should_stop = None
        if self._failure is not None:
            raise self._failure
        return self._reply(sha, result, resp3)

    def flush(self) -> None:
        """Forget compiled scripts (SCRIPT FLUSH); during a run, once it ends."""
        if not self._lock.acquire(blocking=False):
            self._flush_pending = True
            return
        try:
            self._functions.clear()
        finally:
            self._lock.release()

    def _load(self, sha: bytes, source: bytes) -> Any:
        try:
            _, shebang = script_flags(source)
        except RespError as error:
            return error
        function, error = self._compile(source[shebang:])
        if function is None:
            return RespError("ERR Error compiling script (new function): " + _one_line(error))
        self._functions[sha] = function
        return function

    def _reply(self, sha: bytes, result: tuple[Any, ...], resp3: bool) -> Reply:
        status = result[0]
        if status == 0:  # an error: (0, message, source, line)
            message = result[1]
            text = _one_line(message) if message is not None else \
                "ERR Script raised an error object without an 'err' field"
            source, line = result[2], result[3]
            if source is not None and line is not None:
                text += f" script: {sha.decode()}, on {_one_line(source)}:{line}."
            return RespError(text)
        lua_resp = result[1]
        if status == 1:
            values = list(result[2:])
        else:  # too many values for one return: (2, resp, table, n)
            table, n = result[2], result[3]
            values = []
            for start in range(1, n + 1, 4000):
                values += self._slice(table, start, min(n, start + 3999))
        return _decode(values, resp3, lua_resp)

    # -- callbacks from Lua ------------------------------------------------------------

    def _py_call(self, lua_resp: int, *argv: bytes) -> tuple[Any, ...]:
        """redis.call/pcall: (0, value) | (1, status) | (2, error text) | (3, flat)."""
        if self._failure is not None or self._call is None:
            return 2, b"ERR the script's command failed"
        try:
            reply = self._call(list(argv))
        except RespError as error:
            reply = error
        except BaseException as failure:  # the server's problem: end the script, raise it
            self._failure = failure
            return 2, b"ERR the script's command failed"
        resp3 = lua_resp == 3
        kind = type(reply)
        if kind is bytes or kind is int:
            return 0, reply
        if kind is Simple:
            return 1, reply.encode()
        if isinstance(reply, RespError):
            return 2, _error_field(b"-" + reply.text.encode())
        if reply is None or reply is NULL_ARRAY:
            return 0, None if resp3 else False
        flat: list[Any] = []
        _flatten(reply, resp3, flat)
        if flat[0] == _OP_VALUE:
            return 0, flat[1]
        return 3, self._lua.table_from(flat)

    def _py_should_stop(self) -> bool:
        should_stop = self._should_stop
        return bool(should_stop and should_stop())

    def _py_command_exists(self, *argv: bytes) -> bool:
        return self._command_exists(list(argv))

    def _py_mp_unpack(self, data: bytes, limit: int, offset: int) -> tuple[Any, ...]:
        result = _mp_unpack(data, limit, offset)
        if not result[0]:
            return result
        _, flat, count, next_offset = result
        return True, self._lua.table_from(flat), count, next_offset


def _known_command(argv: list[bytes]) -> bool:
    """Redis' lookupCommand: the command, or its subcommand when it has some."""
    command = lookup(argv[0])
    if command is None:
        return False
    if not command.subcommands or len(argv) == 1:
        return True
    return lookup(argv[1], command.subcommands) is not None


def _no_attributes(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("Python attributes are not reachable from scripts")


def _py_log(level: int, message: bytes) -> None:
    logger.log(_LOG_LEVELS[level], "%s", message.decode("utf-8", "replace"))


# -- The Lua side -------------------------------------------------------------------
PRELUDE = r'''-- The scripting environment, built once per Lua state. Everything here is local:
-- scripts reach only what the read-only globals below expose.
local py = ...
local type, next, pairs, rawget, rawset, select, tostring, tonumber =
      type, next, pairs, rawget, rawset, select, tostring, tonumber
local error, pcall, xpcall, unpack, setmetatable, getmetatable =
      error, pcall, xpcall, unpack, setmetatable, getmetatable
local loadstring, load, setfenv, newproxy, collectgarbage, assert =
      loadstring, load, setfenv, newproxy, collectgarbage, assert
local sformat, sbyte, schar, ssub, sfind, sgsub, slower, sdump =
      string.format, string.byte, string.char, string.sub, string.find, string.gsub,
      string.lower, string.dump
local concat, insert = table.concat, table.insert
local floor, huge = math.floor, math.huge
local getinfo, sethook = debug.getinfo, debug.sethook
local create, resume = coroutine.create, coroutine.resume

local INTERNAL = "=respkv"
local HOOK_COUNT = 100000
local RO = "Attempt to modify a readonly table"
local NULL = newproxy(false)  -- cjson.null (Redis: a NULL light userdata)

local py_call, py_should_stop, py_sha1hex, py_log = py.call, py.should_stop, py.sha1hex, py.log
local py_command_exists, py_patch, py_bit = py.command_exists, py.patch, py.bit
local py_struct_pack, py_struct_unpack, py_struct_size = py.struct_pack, py.struct_unpack,
      py.struct_size
local py_mp_pack, py_mp_unpack = py.mp_pack, py.mp_unpack

-- Read-only tables: an empty proxy reads through to the real table and refuses writes.
local real_of, shown_meta = {}, {}
local function ro_newindex() error(RO, 2) end
local function protect(real, shown)
  local proxy = setmetatable({}, {__index = real, __newindex = ro_newindex})
  real_of[proxy] = real
  shown_meta[proxy] = shown or false
  return proxy
end

-- Positions: errors name the script's line, skipping this chunk's frames.
local function user_frame(level)
  level = level + 1
  while true do
    local info = getinfo(level, "Sl")
    -- a "(tail call)" frame is ours too: scripts are compiled without tail calls
    if info == nil or (info.source ~= INTERNAL and info.what ~= "tail") then
      return info, level - 1
    end
    level = level + 1
  end
end
local function where_of(info)
  if info and info.currentline > 0 then return info.short_src .. ":" .. info.currentline .. ": " end
  return ""
end
local function where() return where_of((user_frame(1))) end
local function raise(msg) error(where() .. msg, 0) end
local function argerror(n, name, msg)
  raise("bad argument #" .. n .. " to '" .. name .. "' (" .. msg .. ")")
end
local function typename_at(n, ...)
  if n > select("#", ...) then return "no value" end
  return type((select(n, ...)))
end
local function unprefix(msg, info)
  -- a native function called from this chunk names our line; Redis names the script's
  if type(msg) == "string" and ssub(msg, 1, 7) == "respkv:" then
    return where_of(info) .. (sgsub(msg, "^respkv:%d+: ", "", 1))
  end
  return msg
end
-- (int) of a lua_Number, as C casts it on x86-64
local function toint(v)
  if v ~= v or v >= 9223372036854775808 or v < -9223372036854775808 then return 0 end
  if v >= 0 then v = floor(v) else v = -floor(-v) end
  v = v % 4294967296
  if v >= 2147483648 then v = v - 4294967296 end
  return v
end

-- SCRIPT KILL: a count hook asks Python; once killed, every line of the script fails.
local killed, stop_enabled = false, false
local hook
hook = function()
  local info = getinfo(2, "S")
  if info == nil or info.source == INTERNAL then return end
  if not killed then
    if not (stop_enabled and py_should_stop()) then return end
    killed = true
  end
  sethook(hook, "l")
  error({err = "@KILLED@"})
end
local function hook_thread(co)
  if killed then sethook(co, hook, "l") else sethook(co, hook, "", HOOK_COUNT) end
  return co
end

local function g_tostring(...)
  if select("#", ...) > 0 and (...) == NULL then return "userdata: (nil)" end
  return tostring(...)
end

-- The error handler (Redis' __redis__err__handler): {message, source, line}.
local function handler(err)
  local info, level = user_frame(2)
  if info and info.what == "C" then info = user_frame(level + 1) end
  local msg
  if type(err) == "table" then
    msg = rawget(err, "err")
    if type(msg) == "number" then msg = tostring(msg)
    elseif type(msg) ~= "string" then msg = nil end
  else
    msg = "ERR " .. g_tostring(unprefix(err, info))
  end
  if info then return {msg, info.source, info.currentline} end
  return {msg}
end

-- Redis' reply -> Lua value, from Python's flat (op, value) list.
local build
build = function(flat, i)
  local op, v = flat[i], flat[i + 1]
  i = i + 2
  if op == 1 then return v, i end
  if op == 2 then return nil, i end
  if op == 3 then
    local t = {}
    for j = 1, v do
      local x
      x, i = build(flat, i)
      t[j] = x
    end
    return t, i
  end
  if op == 4 then return {ok = v}, i end
  if op == 5 then
    local e = {}
    e.err = v
    e.ignore_error_stats_update = true
    return e, i
  end
  if op == 6 or op == 7 then
    local outer, inner = {}, {}
    for _ = 1, v do
      local k, x
      k, i = build(flat, i)
      if op == 6 then x, i = build(flat, i) else x = true end
      inner[k] = x
    end
    outer[op == 6 and "map" or "set"] = inner
    return outer, i
  end
  if op == 8 then return {double = v}, i end
  local outer, inner = {}, {}
  inner.string = v
  inner.format = "txt"
  outer.verbatim_string = inner
  return outer, i
end

-- Lua value -> Redis' reply, as flat (op, value) pairs for Python. h models the C stack
-- height Redis' converter checks ("reached lua stack limit").
local STACK_LIMIT = 7999
local emit
emit = function(v, out, n, h)
  if h + 4 > STACK_LIMIT then
    out[n + 1] = 12; out[n + 2] = 0
    return n + 2
  end
  local t = type(v)
  if t == "string" then out[n + 1] = 1; out[n + 2] = v; return n + 2 end
  if t == "number" then out[n + 1] = 2; out[n + 2] = v; return n + 2 end
  if t == "boolean" then out[n + 1] = 3; out[n + 2] = v; return n + 2 end
  if t ~= "table" then out[n + 1] = 0; out[n + 2] = 0; return n + 2 end
  local real = real_of[v] or v
  local f = rawget(real, "err")
  if type(f) == "string" then out[n + 1] = 4; out[n + 2] = f; return n + 2 end
  f = rawget(real, "ok")
  if type(f) == "string" then out[n + 1] = 5; out[n + 2] = f; return n + 2 end
  f = rawget(real, "double")
  if type(f) == "number" then out[n + 1] = 6; out[n + 2] = f; return n + 2 end
  f = rawget(real, "big_number")
  if type(f) == "string" then out[n + 1] = 7; out[n + 2] = f; return n + 2 end
  f = rawget(real, "verbatim_string")
  if type(f) == "table" then
    local fmt, s = rawget(f, "format"), rawget(f, "string")
    if type(fmt) == "string" and type(s) == "string" then
      out[n + 1] = 8; out[n + 2] = fmt; out[n + 3] = s
      return n + 3
    end
  end
  local count = 0
  f = rawget(real, "map")
  if type(f) == "table" then
    out[n + 1] = 9
    local at = n + 2
    n = at
    for k, x in next, real_of[f] or f do
      n = emit(k, out, n, h + 4)
      n = emit(x, out, n, h + 3)
      count = count + 1
    end
    out[at] = count
    return n
  end
  f = rawget(real, "set")
  if type(f) == "table" then
    out[n + 1] = 10
    local at = n + 2
    n = at
    for k in next, real_of[f] or f do
      n = emit(k, out, n, h + 4)
      count = count + 1
    end
    out[at] = count
    return n
  end
  out[n + 1] = 11
  local at = n + 2
  n = at
  while true do
    local x = rawget(real, count + 1)
    if x == nil then break end
    n = emit(x, out, n, h + 1)
    count = count + 1
  end
  out[at] = count
  return n
end

-- Redis' luaPushErrorBuff: "-CODE msg" or "msg" -> {err = "CODE msg"}.
local function error_table(buf)
  local code, msg = "ERR", buf
  if sbyte(buf, 1) == 45 then
    local space = sfind(buf, " ", 1, true)
    if space then code, msg = ssub(buf, 2, space - 1), ssub(buf, space + 1)
    else msg = ssub(buf, 2) end
  end
  msg = sgsub(sgsub(msg, "^[\r\n]+", ""), "[\r\n]+$", "")
  return {err = code .. " " .. msg}
end

-- The redis table -------------------------------------------------------------------
local resp = 2

local function command_args(...)
  local n = select("#", ...)
  if n == 0 then return nil, "ERR Please specify at least one argument for this redis lib call" end
  local args = {...}
  for j = 1, n do
    local a = args[j]
    local t = type(a)
    if t == "number" then args[j] = sformat("%.17g", a)
    elseif t ~= "string" then
      return nil, "ERR Lua redis lib command arguments must be strings or integers"
    end
  end
  return args, n
end

local function generic(raise_error, ...)
  local args, n = command_args(...)
  local e
  if args == nil then
    e = {err = n}
  else
    local tag, v = py_call(resp, unpack(args, 1, n))
    if tag == 0 then return v end
    if tag == 1 then return {ok = v} end
    if tag == 3 then return (build(v, 1)) end
    e = {}
    e.err = v
    e.ignore_error_stats_update = true
  end
  if raise_error then error(e) end
  return e
end

local function r_sha1hex(...)
  if select("#", ...) ~= 1 then error({err = "ERR wrong number of arguments"}) end
  local s = ...
  if type(s) == "number" then s = tostring(s) elseif type(s) ~= "string" then s = "" end
  return py_sha1hex(s)
end

local function r_error_reply(...)
  if select("#", ...) ~= 1 or type((...)) ~= "string" then
    return {err = "ERR wrong number or type of arguments"}
  end
  local s = sgsub((...), "%z.*", "")
  if sbyte(s, 1) ~= 45 then s = "-" .. s end
  return error_table(s)
end

local function r_status_reply(...)
  if select("#", ...) ~= 1 or type((...)) ~= "string" then
    return {err = "ERR wrong number or type of arguments"}
  end
  return {ok = (...)}
end

local function r_log(...)
  local argc = select("#", ...)
  if argc < 2 then error({err = "ERR redis.log() requires two arguments or more."}) end
  local level = tonumber((...))
  if level == nil then error({err = "ERR First argument must be a number (log level)."}) end
  level = toint(level)
  if level < 0 or level > 3 then error({err = "ERR Invalid debug level."}) end
  local parts = {}
  for j = 1, argc - 1 do
    local s = select(j + 1, ...)
    local t = type(s)
    if t == "string" or t == "number" then
      if j ~= 1 then parts[#parts + 1] = " " end
      parts[#parts + 1] = tostring(s)
    end
  end
  py_log(level, concat(parts))
end

local function r_setresp(...)
  if select("#", ...) ~= 1 then error({err = "ERR redis.setresp() requires one argument."}) end
  local v = toint(tonumber((...)) or 0)
  if v ~= 2 and v ~= 3 then error({err = "ERR RESP version must be 2 or 3."}) end
  resp = v
end

local function r_set_repl(...)
  if select("#", ...) ~= 1 then error({err = "ERR redis.set_repl() requires two arguments."}) end
  local flags = toint(tonumber((...)) or 0)
  if flags < 0 or flags > 3 then
    error({err = "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL"
                 .. " or REPL_NONE."})
  end
end

local function r_acl_check_cmd(...)
  local args, n = command_args(...)
  if args == nil then error({err = n}) end
  if not py_command_exists(unpack(args, 1, n)) then
    error({err = "ERR Invalid command passed to redis.acl_check_cmd()"})
  end
  return true
end

local R_redis = {}
R_redis.call = function(...) return generic(true, ...) end
R_redis.pcall = function(...) return generic(false, ...) end
R_redis.log = r_log
R_redis.LOG_DEBUG = 0
R_redis.LOG_VERBOSE = 1
R_redis.LOG_NOTICE = 2
R_redis.LOG_WARNING = 3
R_redis.REDIS_VERSION_NUM = py.version_num
R_redis.REDIS_VERSION = py.version
R_redis.setresp = r_setresp
R_redis.sha1hex = r_sha1hex
R_redis.error_reply = r_error_reply
R_redis.status_reply = r_status_reply
R_redis.set_repl = r_set_repl
R_redis.REPL_NONE = 0
R_redis.REPL_AOF = 1
R_redis.REPL_SLAVE = 2
R_redis.REPL_REPLICA = 2
R_redis.REPL_ALL = 3
R_redis.acl_check_cmd = r_acl_check_cmd
R_redis.breakpoint = function() return false end
R_redis.debug = function() end
R_redis.replicate_commands = function() return true end

-- math.random: Redis' rand48, one sequence from its initial state for the engine's life --
local x0, x1, x2 = 0x330E, 0xABCD, 0x1234
local function srand48(seed)
  seed = seed % 4294967296
  x0, x1, x2 = 0x330E, seed % 65536, floor(seed / 65536)
end
local function lrand48()
  local p0 = 0xE66D * x0 + 0xB
  local y0 = p0 % 65536
  local p1 = 0xE66D * x1 + 0xDEEC * x0 + (p0 - y0) / 65536
  local y1 = p1 % 65536
  local p2 = 0xE66D * x2 + 0xDEEC * x1 + 0x5 * x0 + (p1 - y1) / 65536
  x0, x1, x2 = y0, y1, p2 % 65536
  return x2 * 32768 + floor(x1 / 2)
end
local function checkint(n, name, ...)
  local v = tonumber((select(n, ...)))
  if v == nil then argerror(n, name, "number expected, got " .. typename_at(n, ...)) end
  return toint(v)
end
local function m_random(...)
  local r = (lrand48() % 2147483647) / 2147483647
  local argc = select("#", ...)
  if argc == 0 then return r end
  if argc == 1 then
    local u = checkint(1, "random", ...)
    if not (1 <= u) then argerror(1, "random", "interval is empty") end
    return floor(r * u) + 1
  end
  if argc == 2 then
    local l = checkint(1, "random", ...)
    local u = checkint(2, "random", ...)
    if not (l <= u) then argerror(2, "random", "interval is empty") end
    return floor(r * (u - l + 1)) + l
  end
  raise("wrong number of arguments")
end
local function m_randomseed(...)
  srand48(checkint(1, "randomseed", ...))
end

-- bit (LuaBitOp) --------------------------------------------------------------------
local function bitop(name, nargs, maxargs)
  return function(...)
    local count = select("#", ...)
    if maxargs and count > maxargs then count = maxargs end
    if count < nargs then count = nargs end
    local args = {...}
    for j = 1, count do
      local v = tonumber(args[j])
      if v == nil then argerror(j, name, "number expected, got " .. typename_at(j, ...)) end
      args[j] = v
    end
    return py_bit(name, unpack(args, 1, count))
  end
end
local R_bit = {
  tobit = bitop("tobit", 1, 1), bnot = bitop("bnot", 1, 1), band = bitop("band", 1),
  bor = bitop("bor", 1), bxor = bitop("bxor", 1), lshift = bitop("lshift", 2, 2),
  rshift = bitop("rshift", 2, 2), arshift = bitop("arshift", 2, 2), rol = bitop("rol", 2, 2),
  ror = bitop("ror", 2, 2), bswap = bitop("bswap", 1, 1), tohex = bitop("tohex", 1, 2),
}

-- struct ----------------------------------------------------------------------------
local function finish(ok, ...)
  if ok then return ... end
  raise((...))
end
local function struct_args(fn, ...)
  local n = select("#", ...)
  local flat = {}
  for j = 1, n do
    local a = select(j, ...)
    local t = type(a)
    flat[3 * j - 2] = t
    flat[3 * j - 1] = tonumber(a) or false
    flat[3 * j] = (t == "string" and a) or (t == "number" and tostring(a)) or false
  end
  return finish(fn(n, unpack(flat, 1, 3 * n)))
end
local R_struct = {
  pack = function(...) return struct_args(py_struct_pack, ...) end,
  unpack = function(...) return struct_args(py_struct_unpack, ...) end,
  size = function(...) return struct_args(py_struct_size, ...) end,
}

-- cmsgpack --------------------------------------------------------------------------
local mp_build
mp_build = function(flat, i)
  local op, v = flat[i], flat[i + 1]
  i = i + 2
  if op == 1 then return v, i end
  if op == 2 then return nil, i end
  local t = {}
  if op == 3 then
    for j = 1, v do
      local x
      x, i = mp_build(flat, i)
      t[j] = x
    end
  else
    for _ = 1, v do
      local k, x
      k, i = mp_build(flat, i)
      x, i = mp_build(flat, i)
      t[k] = x
    end
  end
  return t, i
end
local function mp_string(name, ...)
  local s = ...
  if type(s) == "number" then return tostring(s) end
  if type(s) ~= "string" then argerror(1, name, "string expected, got " .. typename_at(1, ...)) end
  return s
end
local function mp_optint(n, name, default, ...)
  local v = select(n, ...)
  if v == nil then return default end
  local x = tonumber(v)
  if x == nil then argerror(n, name, "number expected, got " .. type(v)) end
  return toint(x)
end
local function mp_unpack_full(name, s, limit, offset)
  local ok, flat, count, next_offset = py_mp_unpack(s, limit, offset)
  if not ok then raise(flat) end
  local values, i = {}, 1
  for j = 1, count do
    local x
    x, i = mp_build(flat, i)
    values[j] = x
  end
  if next_offset ~= nil then return next_offset, unpack(values, 1, count) end
  return unpack(values, 1, count)
end
local R_cmsgpack = {}
R_cmsgpack.pack = function(...)
  if select("#", ...) == 0 then argerror(0, "pack", "MessagePack pack needs input.") end
  return py_mp_pack(...)
end
R_cmsgpack.unpack = function(...)
  return mp_unpack_full("unpack", mp_string("unpack", ...), 0, 0)
end
R_cmsgpack.unpack_one = function(...)
  local offset = mp_optint(2, "unpack_one", 0, ...)
  return mp_unpack_full("unpack_one", mp_string("unpack_one", ...), 1, offset)
end
R_cmsgpack.unpack_limit = function(...)
  local v = select(2, ...)
  local limit = tonumber(v)
  if limit == nil then
    argerror(2, "unpack_limit", "number expected, got " .. typename_at(2, ...))
  end
  local offset = mp_optint(3, "unpack_limit", 0, ...)
  return mp_unpack_full("unpack_limit", mp_string("unpack_limit", ...), toint(limit), offset)
end
R_cmsgpack._NAME = "cmsgpack"
R_cmsgpack._VERSION = "lua-cmsgpack 0.4.0"
R_cmsgpack._COPYRIGHT = "Copyright (C) 2012, Salvatore Sanfilippo"
R_cmsgpack._DESCRIPTION = "MessagePack C implementation for Lua"

-- cjson (lua-cjson 2.1.0) -------------------------------------------------------------
local ESC = {}
for c = 0, 31 do ESC[schar(c)] = sformat("\\u%04x", c) end
ESC["\b"] = "\\b"; ESC["\t"] = "\\t"; ESC["\n"] = "\\n"; ESC["\f"] = "\\f"; ESC["\r"] = "\\r"
ESC['"'] = '\\"'; ESC["\\"] = "\\\\"; ESC["/"] = "\\/"; ESC["\127"] = "\\u007f"
local UNESC = {[34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [116] = "\t", [110] = "\n",
               [102] = "\f", [114] = "\r"}
local SINGLE = {[123] = "T_OBJ_BEGIN", [125] = "T_OBJ_END", [91] = "T_ARR_BEGIN",
                [93] = "T_ARR_END", [44] = "T_COMMA", [58] = "T_COLON"}

local function utf8(cp)
  if cp <= 0x7F then return schar(cp) end
  if cp <= 0x7FF then return schar(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp <= 0xFFFF then
    return schar(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return schar(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
               0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local function make_cjson()
  local cfg = {}
  local function reset()
    cfg.sparse_convert, cfg.sparse_ratio, cfg.sparse_safe = 0, 2, 10
    cfg.encode_max_depth, cfg.decode_max_depth, cfg.precision = 1000, 1000, 14
    cfg.keep_buffer, cfg.encode_invalid, cfg.decode_invalid = 1, 0, 1
  end
  reset()

  local function enc_string(s) return '"' .. sgsub(s, '[%z\1-\31"\\/\127]', ESC) .. '"' end
  local function enc_number(num)
    if num ~= num or num == huge or num == -huge then
      if cfg.encode_invalid == 0 then raise("Cannot serialise number: must not be NaN or Inf") end
      if cfg.encode_invalid == 1 then
        if num ~= num then return "nan" end  -- inf and -inf as %g prints them
      else
        return "null"
      end
    end
    return sformat("%." .. cfg.precision .. "g", num)
  end
  local function array_length(t)
    local max, items = 0, 0
    for k in next, t do
      if type(k) == "number" and k ~= 0 and floor(k) == k and k >= 1 then
        if k > max then max = k end
        items = items + 1
      else
        return -1
      end
    end
    if cfg.sparse_ratio > 0 and max > items * cfg.sparse_ratio and max > cfg.sparse_safe then
      if cfg.sparse_convert == 0 then raise("Cannot serialise table: excessively sparse array") end
      return -1
    end
    return max
  end
  local append
  append = function(v, depth, parts)
    local t = type(v)
    if t == "string" then parts[#parts + 1] = enc_string(v)
    elseif t == "number" then parts[#parts + 1] = enc_number(v)
    elseif t == "boolean" then parts[#parts + 1] = v and "true" or "false"
    elseif t == "table" then
      depth = depth + 1
      if depth > cfg.encode_max_depth then
        raise("Cannot serialise, excessive nesting (" .. depth .. ")")
      end
      v = real_of[v] or v
      local len = array_length(v)
      if len > 0 then
        parts[#parts + 1] = "["
        for i = 1, len do
          if i > 1 then parts[#parts + 1] = "," end
          append(rawget(v, i), depth, parts)
        end
        parts[#parts + 1] = "]"
      else
        parts[#parts + 1] = "{"
        local comma = false
        for k, x in next, v do
          if comma then parts[#parts + 1] = "," else comma = true end
          local kt = type(k)
          if kt == "number" then parts[#parts + 1] = '"' .. enc_number(k) .. '":'
          elseif kt == "string" then parts[#parts + 1] = enc_string(k) .. ":"
          else raise("Cannot serialise " .. kt .. ": table key must be a number or string") end
          append(x, depth, parts)
        end
        parts[#parts + 1] = "}"
      end
    elseif v == nil or v == NULL then parts[#parts + 1] = "null"
    else raise("Cannot serialise " .. t .. ": type not supported") end
  end

  local function encode(...)
    if select("#", ...) ~= 1 then argerror(1, "encode", "expected 1 argument") end
    local parts = {}
    append((...), 0, parts)
    return concat(parts)
  end

  local function decode(...)
    if select("#", ...) ~= 1 then argerror(1, "decode", "expected 1 argument") end
    local s = ...
    if type(s) == "number" then s = tostring(s)
    elseif type(s) ~= "string" then argerror(1, "decode", "string expected, got " .. type(s)) end
    local len = #s
    if len >= 2 and (sbyte(s, 1) == 0 or sbyte(s, 2) == 0) then
      raise("JSON parser does not support UTF-16 or UTF-32")
    end
    local pos, depth = 1, 0
    local tok_t, tok_v, tok_i

    local function invalid_number()
      local p = pos
      local c = sbyte(s, p)
      if c == 43 then return true end
      if c == 45 then p = p + 1; c = sbyte(s, p) end
      if c == 48 then
        local c2 = sbyte(s, p + 1) or 0
        return c2 == 120 or c2 == 88 or (c2 >= 48 and c2 <= 57)
      end
      if c == nil or c <= 57 then return false end
      local three = slower(ssub(s, p, p + 2))
      return three == "inf" or three == "nan"
    end
    local function strtod_end(p)
      -- where C's strtod would stop reading a number at p (nil: no number)
      local c = sbyte(s, p)
      if c == 43 or c == 45 then p = p + 1 end
      if sfind(s, "^0[xX]", p) then
        local e = select(2, sfind(s, "^%x*", p + 2))
        local digits = e >= p + 2
        if sbyte(s, e + 1) == 46 then
          local e2 = select(2, sfind(s, "^%x*", e + 2))
          if e2 >= e + 2 or digits then digits = true; e = e2 end
        end
        if digits then
          local pe = select(2, sfind(s, "^[pP][+-]?%d+", e + 1))
          return (pe or e) + 1
        end
        return p + 1
      end
      local word = slower(ssub(s, p, p + 7))
      if word == "infinity" then return p + 8 end
      if ssub(word, 1, 3) == "inf" then return p + 3 end
      if ssub(word, 1, 3) == "nan" then
        local pe = select(2, sfind(s, "^%([%w_]*%)", p + 3))
        return (pe or (p + 2)) + 1
      end
      local e = select(2, sfind(s, "^%d*", p))
      local digits = e >= p
      if sbyte(s, e + 1) == 46 then
        local e2 = select(2, sfind(s, "^%d*", e + 2))
        if e2 >= e + 2 or digits then digits = true; e = e2 end
      end
      if not digits then return nil end
      local xe = select(2, sfind(s, "^[eE][+-]?%d+", e + 1))
      return (xe or e) + 1
    end
    local function number_token()
      local e = strtod_end(pos)
      local v = e and tonumber(ssub(s, pos, e - 1))
      if v == nil then tok_t, tok_v = "T_ERROR", "invalid number"; return end
      tok_t, tok_v, pos = "T_NUMBER", v, e
    end
    local function hex4(p)
      local h = ssub(s, p, p + 3)
      if not sfind(h, "^%x%x%x%x$") then return nil end
      return tonumber(h, 16)
    end
    local function unicode_escape(a)
      local cp = hex4(a + 2)
      if cp == nil then return nil end
      local advance = 6
      if cp >= 0xD800 and cp <= 0xDFFF then
        if cp >= 0xDC00 then return nil end
        if ssub(s, a + 6, a + 7) ~= "\\u" then return nil end
        local low = hex4(a + 8)
        if low == nil or low < 0xDC00 or low > 0xDFFF then return nil end
        cp = (cp - 0xD800) * 1024 + (low - 0xDC00) + 0x10000
        advance = 12
      end
      return utf8(cp), advance
    end
    local function string_token()
      local buf = {}
      local p = pos + 1
      while true do
        local a = sfind(s, '[%z"\\]', p)
        if a == nil then
          tok_t, tok_v, tok_i = "T_ERROR", "unexpected end of string", len
          return
        end
        if a > p then buf[#buf + 1] = ssub(s, p, a - 1) end
        local c = sbyte(s, a)
        if c == 34 then
          tok_t, tok_v, pos = "T_STRING", concat(buf), a + 1
          return
        end
        if c == 0 then
          tok_t, tok_v, tok_i = "T_ERROR", "unexpected end of string", a - 1
          return
        end
        local e = sbyte(s, a + 1)
        if e == 117 then
          local chars, advance = unicode_escape(a)
          if chars == nil then
            tok_t, tok_v, tok_i = "T_ERROR", "invalid unicode escape code", a - 1
            return
          end
          buf[#buf + 1] = chars
          p = a + advance
        else
          local r = e and UNESC[e]
          if r == nil then
            tok_t, tok_v, tok_i = "T_ERROR", "invalid escape code", a - 1
            return
          end
          buf[#buf + 1] = r
          p = a + 2
        end
      end
    end
    local function next_token()
      local c = sbyte(s, pos)
      while c == 32 or c == 9 or c == 10 or c == 13 do
        pos = pos + 1
        c = sbyte(s, pos)
      end
      tok_i = pos - 1
      if c == nil or c == 0 then tok_t = "T_END"; return end
      local single = SINGLE[c]
      if single then tok_t = single; pos = pos + 1; return end
      if c == 34 then return string_token() end
      if c == 45 or (c >= 48 and c <= 57) then
        if cfg.decode_invalid == 0 and invalid_number() then
          tok_t, tok_v = "T_ERROR", "invalid number"
          return
        end
        return number_token()
      end
      if ssub(s, pos, pos + 3) == "true" then
        tok_t, tok_v, pos = "T_BOOLEAN", true, pos + 4
        return
      end
      if ssub(s, pos, pos + 4) == "false" then
        tok_t, tok_v, pos = "T_BOOLEAN", false, pos + 5
        return
      end
      if ssub(s, pos, pos + 3) == "null" then tok_t, pos = "T_NULL", pos + 4; return end
      if cfg.decode_invalid ~= 0 and invalid_number() then return number_token() end
      tok_t, tok_v = "T_ERROR", "invalid token"
    end
    local function parse_error(expected)
      local found = tok_t == "T_ERROR" and tok_v or tok_t
      raise("Expected " .. expected .. " but found " .. found .. " at character " .. (tok_i + 1))
    end
    local function descend()
      depth = depth + 1
      if depth > cfg.decode_max_depth then
        raise("Found too many nested data structures (" .. depth .. ") at character " .. (pos - 1))
      end
    end
    local value
    local function object()
      descend()
      local t = {}
      next_token()
      if tok_t == "T_OBJ_END" then depth = depth - 1; return t end
      while true do
        if tok_t ~= "T_STRING" then parse_error("object key string") end
        local k = tok_v
        next_token()
        if tok_t ~= "T_COLON" then parse_error("colon") end
        next_token()
        rawset(t, k, value())
        next_token()
        if tok_t == "T_OBJ_END" then depth = depth - 1; return t end
        if tok_t ~= "T_COMMA" then parse_error("comma or object end") end
        next_token()
      end
    end
    local function array()
      descend()
      local t = {}
      next_token()
      if tok_t == "T_ARR_END" then depth = depth - 1; return t end
      local i = 1
      while true do
        rawset(t, i, value())
        i = i + 1
        next_token()
        if tok_t == "T_ARR_END" then depth = depth - 1; return t end
        if tok_t ~= "T_COMMA" then parse_error("comma or array end") end
        next_token()
      end
    end
    value = function()
      if tok_t == "T_STRING" or tok_t == "T_NUMBER" or tok_t == "T_BOOLEAN" then return tok_v end
      if tok_t == "T_NULL" then return NULL end
      if tok_t == "T_OBJ_BEGIN" then return object() end
      if tok_t == "T_ARR_BEGIN" then return array() end
      parse_error("value")
    end
    next_token()
    local result = value()
    next_token()
    if tok_t ~= "T_END" then parse_error("the end") end
    return result
  end

  -- the configuration functions
  local function arg_init(name, nargs, ...)
    if select("#", ...) > nargs then argerror(nargs + 1, name, "found too many arguments") end
  end
  local function integer_option(name, index, key, min, max, ...)
    local v = select(index, ...)
    if v ~= nil then
      local n = tonumber(v)
      if n == nil then argerror(index, name, "number expected, got " .. type(v)) end
      n = toint(n)
      if n < min or n > max then
        argerror(1, name, "expected integer between " .. min .. " and " .. max)
      end
      cfg[key] = n
    end
    return cfg[key]
  end
  local BOOL_OPTIONS = {"off", "on"}
  local function enum_option(name, index, key, options, ...)
    local v = select(index, ...)
    options = options or BOOL_OPTIONS
    if v ~= nil then
      if type(v) == "boolean" then
        cfg[key] = v and 1 or 0
      else
        local s = v
        if type(s) == "number" then s = tostring(s) end
        if type(s) ~= "string" then argerror(index, name, "string expected, got " .. type(v)) end
        local found
        for j = 1, #options do if options[j] == s then found = j - 1 end end
        if found == nil then argerror(index, name, "invalid option '" .. s .. "'") end
        cfg[key] = found
      end
    end
    local setting = cfg[key]
    if setting == 0 or setting == 1 then return setting == 1 end
    return options[setting + 1]
  end

  local m = {}
  m.encode = encode
  m.decode = decode
  m.encode_sparse_array = function(...)
    arg_init("encode_sparse_array", 3, ...)
    return enum_option("encode_sparse_array", 1, "sparse_convert", nil, ...),
           integer_option("encode_sparse_array", 2, "sparse_ratio", 0, 2147483647, ...),
           integer_option("encode_sparse_array", 3, "sparse_safe", 0, 2147483647, ...)
  end
  m.encode_max_depth = function(...)
    arg_init("encode_max_depth", 1, ...)
    return integer_option("encode_max_depth", 1, "encode_max_depth", 1, 2147483647, ...)
  end
  m.decode_max_depth = function(...)
    arg_init("decode_max_depth", 1, ...)
    return integer_option("decode_max_depth", 1, "decode_max_depth", 1, 2147483647, ...)
  end
  m.encode_number_precision = function(...)
    arg_init("encode_number_precision", 1, ...)
    return integer_option("encode_number_precision", 1, "precision", 1, 14, ...)
  end
  m.encode_keep_buffer = function(...)
    arg_init("encode_keep_buffer", 1, ...)
    return enum_option("encode_keep_buffer", 1, "keep_buffer", nil, ...)
  end
  m.encode_invalid_numbers = function(...)
    arg_init("encode_invalid_numbers", 1, ...)
    return enum_option("encode_invalid_numbers", 1, "encode_invalid", {"off", "on", "null"}, ...)
  end
  m.decode_invalid_numbers = function(...)
    arg_init("decode_invalid_numbers", 1, ...)
    return enum_option("decode_invalid_numbers", 1, "decode_invalid", nil, ...)
  end
  m.new = function() return (make_cjson()) end
  m.null = NULL
  m._NAME = "cjson"
  m._VERSION = "2.1.0"
  return m, reset
end
local R_cjson, reset_cjson = make_cjson()

-- The sandbox: globals and wrapped builtins ------------------------------------------
local G = {}
local P_G

local function g_loadstring(...)
  local s, name = ...
  if type(s) == "string" and sbyte(s, 1) == 27 then
    -- no binary chunks (they can break the VM): Redis' Lua reads them as text and fails
    local cname = sgsub(name or s, "%z.*", "")
    local _, e = loadstring("?", cname)
    return nil, (sgsub(e, "'%?'$", "'char(27)'"))
  end
  local f, e = loadstring(...)
  if f == nil then return nil, e end
  f = assert(loadstring(py_patch(sdump(f))))
  setfenv(f, P_G)
  return f, false
end
local function g_load(...)
  local reader, name = ...
  if type(reader) ~= "function" then return load(...) end
  local parts = {}
  while true do
    local piece = reader()
    if piece == nil or piece == "" then break end
    if type(piece) == "number" then piece = tostring(piece) end
    if type(piece) ~= "string" then return nil, "reader function must return a string" end
    parts[#parts + 1] = piece
  end
  return g_loadstring(concat(parts), name or "=(load)")
end
local function pcall_result(ok, ...)
  if ok then return true, ... end
  local e = ...
  if type(e) == "table" then
    local m = rawget(e, "err")
    if type(m) == "string" or type(m) == "number" then e = m end
  else
    e = unprefix(e, (user_frame(1)))
  end
  return false, e
end
local function g_pcall(...) return pcall_result(pcall(...)) end
local function g_next(...)
  local r = real_of[(...)]
  if r ~= nil then return next(r, (select(2, ...))) end
  return next(...)
end
local function g_pairs(...)
  local r = real_of[(...)]
  if r ~= nil then return next, r, nil end
  return pairs(...)
end
local function g_rawget(...)
  local r = real_of[(...)]
  if r ~= nil then return rawget(r, (select(2, ...))) end
  return rawget(...)
end
local function g_rawset(...)
  if real_of[(...)] ~= nil then error(RO, 0) end
  return rawset(...)
end
local function g_setmetatable(...)
  if real_of[(...)] ~= nil then error(RO, 0) end
  return setmetatable(...)
end
local string_meta = getmetatable("")
local P_string_meta
local function g_getmetatable(...)
  if select("#", ...) > 0 then
    local o = ...
    local shown = shown_meta[o]
    if shown ~= nil then return shown or nil end
    if type(o) == "string" then return P_string_meta end
  end
  return getmetatable(...)
end
local function g_insert(...)
  if real_of[(...)] ~= nil then error(RO, 0) end
  return insert(...)
end
local function co_create(...)
  return hook_thread(create(...))
end
local function co_wrap(...)
  local co = co_create(...)
  local function results(ok, ...)
    if ok then return ... end
    local e = ...
    if type(e) == "string" or type(e) == "number" then e = where() .. e end
    error(e, 0)
  end
  return function(...) return results(resume(co, ...)) end
end

-- the libraries are Lua's own tables (their key order is Redis'), values replaced in place
math.random, math.randomseed = m_random, m_randomseed
table.insert = g_insert
coroutine.create, coroutine.wrap = co_create, co_wrap

local P_string = protect(string)
string_meta.__index = P_string
P_string_meta = protect(string_meta)

local function global_missing(_, name)
  error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end
P_G = protect(G, protect({__index = global_missing}))

G._G = P_G
G._VERSION = _VERSION
G.assert = assert
G.collectgarbage = collectgarbage
G.error = error
G.gcinfo = gcinfo
G.getmetatable = g_getmetatable
G.ipairs = ipairs
G.load = g_load
G.loadstring = g_loadstring
G.next = g_next
G.pairs = g_pairs
G.pcall = g_pcall
G.rawequal = rawequal
G.rawget = g_rawget
G.rawset = g_rawset
G.select = select
G.setmetatable = g_setmetatable
G.tonumber = tonumber
G.tostring = g_tostring
G.type = type
G.unpack = unpack
G.xpcall = xpcall
G.coroutine = protect(coroutine)
G.math = protect(math)
G.string = P_string
G.table = protect(table)
G.redis = protect(R_redis)
G.bit = protect(R_bit)
G.cjson = protect(R_cjson)
G.cmsgpack = protect(R_cmsgpack)
G.struct = protect(R_struct)
G.__redis__err__handler = handler
setmetatable(G, {__index = global_missing, __newindex = ro_newindex})

-- Entry points for Python ------------------------------------------------------------
local entry = {}

function entry.compile(body)
  local chunk, err = loadstring(body, "@user_script")
  if chunk == nil then return nil, err end
  chunk = assert(loadstring(py_patch(sdump(chunk))))
  setfenv(chunk, P_G)
  return chunk, false
end

local INLINE = 4000
local function result(ok, res)
  if not ok then return 0, res[1], res[2], res[3] end
  local out = {}
  local n = emit(res, out, 0, 1)
  if n <= INLINE then return 1, resp, unpack(out, 1, n) end
  return 2, resp, out, n
end

function entry.run(f, keys, argv, stop)
  rawset(G, "KEYS", keys)
  rawset(G, "ARGV", argv)
  resp, killed, stop_enabled = 2, false, stop
  sethook(hook, "", HOOK_COUNT)
  local ok, res = xpcall(f, handler) sethook(hook, "", HOOK_COUNT) stop_enabled = false
  rawset(G, "KEYS", nil)
  rawset(G, "ARGV", nil)
  reset_cjson()
  collectgarbage("restart")
  return result(ok, res)
end

function entry.slice(t, i, j) return unpack(t, i, j) end

return entry
'''
