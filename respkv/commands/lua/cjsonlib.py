"""The ``cjson`` library (lua-cjson 2.1.0, as Redis ships it): JSON encoding and
decoding of Lua values, with lua-cjson's settings and errors. Lua only."""

from __future__ import annotations

LUA = r'''-- cjson (see respkv.commands.lua.cjsonlib). Returns the library and the function that
-- resets its settings after a run.
local lib = ...
local raise, argerror, toint, NULL, real_of =
      lib.raise, lib.argerror, lib.toint, lib.NULL, lib.real_of
local type, next, rawget, rawset, select, tostring, tonumber =
      type, next, rawget, rawset, select, tostring, tonumber
local sformat, sbyte, schar, ssub, sfind, sgsub, slower =
      string.format, string.byte, string.char, string.sub, string.find, string.gsub,
      string.lower
local concat = table.concat
local floor, huge = math.floor, math.huge

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
return make_cjson()
'''
