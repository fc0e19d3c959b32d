"""The ``cmsgpack`` library (lua-cmsgpack 0.4.0, as Redis ships it): MessagePack
encoding of Lua values and back. ``LUA`` checks the arguments, builds the table and
turns decoded values into Lua tables; ``callbacks`` encodes and decodes."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from respkv.commands.lua.runtime import lupa

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
    elif lupa.lua_type(value) == "table" and level < _MP_MAX_NESTING:
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



def callbacks(table_from: Callable[[list[Any]], Any]) -> dict[bytes, Callable[..., Any]]:
    """The Python side for a Lua state whose tables ``table_from`` makes."""
    def unpack(data: bytes, limit: int, offset: int) -> tuple[Any, ...]:
        result = _mp_unpack(data, limit, offset)
        if not result[0]:
            return result
        _, flat, count, next_offset = result
        return True, table_from(flat), count, next_offset

    return {b"mp_pack": _mp_pack, b"mp_unpack": unpack}


LUA = r'''-- cmsgpack (see respkv.commands.lua.msgpacklib)
local lib, py = ...
local raise, argerror, typename_at, toint = lib.raise, lib.argerror, lib.typename_at, lib.toint
local select, type, tonumber, tostring, unpack = select, type, tonumber, tostring, unpack
local py_mp_pack, py_mp_unpack = py.mp_pack, py.mp_unpack

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

return R_cmsgpack
'''
