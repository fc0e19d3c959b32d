"""The scripting environment, in Lua, as Redis 7.0 gives it to scripts: the read-only
globals and libraries (an empty proxy per table, reading through and refusing writes),
the builtins wrapped or left out (no os/io/require/loadfile/dofile/print, no bytecode),
Redis' math.random (rand48), error positions that name the script's line, the error
handler, the count hook behind SCRIPT KILL and the entry points the engine calls. It
loads the libraries (replies, redis, bit, struct, cmsgpack, cjson) from the chunks the
engine hands it. ``@KILLED@`` is the engine's to fill in."""

from __future__ import annotations

LUA = r'''-- The scripting environment, built once per Lua state. Everything here is local:
-- scripts reach only what the read-only globals below expose. py: the engine's
-- callbacks; chunks: the sources of the libraries, loaded below.
local py, chunks = ...
local type, next, pairs, rawget, rawset, select, tostring, tonumber =
      type, next, pairs, rawget, rawset, select, tostring, tonumber
local error, pcall, xpcall, unpack, setmetatable, getmetatable =
      error, pcall, xpcall, unpack, setmetatable, getmetatable
local loadstring, load, setfenv, newproxy, collectgarbage, assert =
      loadstring, load, setfenv, newproxy, collectgarbage, assert
local sbyte, ssub, sgsub, sdump = string.byte, string.sub, string.gsub, string.dump
local concat, insert = table.concat, table.insert
local floor = math.floor
local getinfo, sethook = debug.getinfo, debug.sethook
local create, resume = coroutine.create, coroutine.resume

local INTERNAL = "=respkv"
local HOOK_COUNT = 100000
local RO = "Attempt to modify a readonly table"
local NULL = newproxy(false)  -- cjson.null (Redis: a NULL light userdata)

local py_should_stop, py_patch = py.should_stop, py.patch

-- Read-only tables: an empty proxy reads through to the real table and refuses writes.
local real_of, shown_meta = {}, {}
local function ro_newindex() error(RO, 2) end
local function protect(real, shown)
  local proxy = setmetatable({}, {__index = real, __newindex = ro_newindex})
  real_of[proxy] = real
  shown_meta[proxy] = shown or false
  return proxy
end

-- Positions: errors name the script's line, skipping the frames of this chunk and of the
-- libraries' (all loaded as INTERNAL).
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
  -- a native function called from our chunks names our line; Redis names the script's
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

-- The libraries: chunks of their own, given what they share -------------------------
local lib = {real_of = real_of, NULL = NULL, raise = raise, argerror = argerror,
             typename_at = typename_at, toint = toint}
local function library(name, ...)
  return assert(loadstring(chunks[name], INTERNAL))(lib, py, ...)
end
local replies = library("replies")
local emit = replies.emit
local R_redis, current_resp, reset_resp = library("redis", replies)

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


local R_bit = library("bit")
local R_struct = library("struct")
local R_cmsgpack = library("cmsgpack")
local R_cjson, reset_cjson = library("cjson")

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
-- Redis' luaRedisPcall: an error table gives its err field (read as lua_getfield does,
-- through __index) when that is a string or a number; any other err field stays on its
-- stack after the table, so it is a third result, even when nil.
local function pcall_result(ok, ...)
  if ok then return true, ... end
  local e = ...
  if type(e) == "table" then
    local m = e.err
    if type(m) == "string" or type(m) == "number" then return false, m end
    return false, e, m
  end
  return false, (unprefix(e, (user_frame(1))))
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
  if n <= INLINE then return 1, current_resp(), unpack(out, 1, n) end
  return 2, current_resp(), out, n
end

function entry.run(f, keys, argv, stop)
  rawset(G, "KEYS", keys)
  rawset(G, "ARGV", argv)
  reset_resp()
  killed, stop_enabled = false, stop
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
