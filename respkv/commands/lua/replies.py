"""Replies between Redis and Lua, both ways, as Redis 7.0 converts them in RESP2 and RESP3.

A command's reply goes to a script through ``to_lua`` (Python) and ``build`` (Lua); a
script's result comes back through ``emit`` (Lua) and ``from_lua`` (Python). Each pair
speaks a flat list of (op, value) pairs, so one crossing between Python and Lua carries
a whole nested reply. ``LUA`` is the Lua half, a chunk the sandbox loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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

_INT64_MIN = -(1 << 63)


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


def one_line(data: bytes) -> str:
    """A status or error text: C-string (cut at NUL), CR/LF as spaces."""
    data = data.split(b"\0", 1)[0].replace(b"\r", b" ").replace(b"\n", b" ")
    return data.decode("utf-8", "replace")


# -- Reply -> Lua ------------------------------------------------------------------
# A container reply goes to Lua as a flat list of (op, value) pairs that LUA's
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


def to_lua(reply: Reply, resp3: bool, table_from: Callable[[list[Any]], Any]
           ) -> tuple[int, Any]:
    """A command's reply for redis.call/pcall, as the Lua side's ``from_call`` reads it:
    (0, value) | (1, status) | (2, error text) | (3, a table of flat ops for build)."""
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
    return 3, table_from(flat)


# -- Lua -> Reply ------------------------------------------------------------------
# LUA's emit() flattens the script's result; these are its ops.
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
        return RespError(one_line(value))
    if op == _R_STATUS:
        return Simple(one_line(value))
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


def from_lua(values: list[Any], resp3: bool, lua_resp: int) -> Reply:
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



LUA = r'''-- Replies between Redis and Lua: the Lua half (see respkv.commands.lua.replies).
local lib = ...
local real_of = lib.real_of
local type, next, rawget = type, next, rawget
local sbyte, ssub, sfind, sgsub = string.byte, string.sub, string.find, string.gsub

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

-- redis.call's reply from Python's to_lua: the value, or nil and the error table.
local function from_call(tag, v)
  if tag == 0 then return v end
  if tag == 1 then return {ok = v} end
  if tag == 3 then return (build(v, 1)) end
  local e = {}
  e.err = v
  e.ignore_error_stats_update = true
  return nil, e
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


return {from_call = from_call, emit = emit, error_table = error_table}
'''
