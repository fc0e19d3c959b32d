"""The ``struct`` library (Roberto Ierusalimschy's, as Redis ships it): pack, unpack
and size of binary strings. ``LUA`` builds the table; ``CALLBACKS`` does the work."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

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



CALLBACKS: dict[bytes, Callable[..., Any]] = {
    b"struct_pack": _struct_pack, b"struct_unpack": _struct_unpack, b"struct_size": _struct_size,
}

LUA = r'''-- struct (see respkv.commands.lua.structlib)
local lib, py = ...
local raise = lib.raise
local select, type, tonumber, tostring, unpack = select, type, tonumber, tostring, unpack
local py_struct_pack, py_struct_unpack, py_struct_size = py.struct_pack, py.struct_unpack,
      py.struct_size

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

return R_struct
'''
