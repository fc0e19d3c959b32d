"""The ``bit`` library (LuaBitOp 1.0, as Redis ships it): 32-bit operations on Lua
numbers. ``LUA`` checks the arguments and builds the table; ``CALLBACKS`` computes."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any


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



CALLBACKS: dict[bytes, Callable[..., Any]] = {b"bit": _bit}

LUA = r'''-- bit (see respkv.commands.lua.bitlib)
local lib, py = ...
local argerror, typename_at = lib.argerror, lib.typename_at
local select, tonumber, unpack = select, tonumber, unpack
local py_bit = py.bit

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

return R_bit
'''
