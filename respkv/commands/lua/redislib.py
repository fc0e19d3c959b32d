"""The ``redis`` table scripts call, as Redis 7.0 ships it: redis.call and redis.pcall
(the bridge to the server's ``call``), the reply helpers, log, setresp, sha1hex,
set_repl, acl_check_cmd and the constants. Lua only: its Python side is the engine's
callbacks."""

from __future__ import annotations

LUA = r'''-- The redis table (see respkv.commands.lua.redislib).
local lib, py, replies = ...
local toint = lib.toint
local from_call, error_table = replies.from_call, replies.error_table
local type, select, tostring, tonumber, error, unpack =
      type, select, tostring, tonumber, error, unpack
local sformat, sbyte, sgsub, concat = string.format, string.byte, string.gsub, table.concat
local py_call, py_sha1hex, py_log, py_command_exists =
      py.call, py.sha1hex, py.log, py.command_exists

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
    local value
    value, e = from_call(py_call(resp, unpack(args, 1, n)))
    if e == nil then return value end
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


-- the RESP version of the run's redis.call replies (redis.setresp), for the entry points
local function current_resp() return resp end
local function reset_resp() resp = 2 end
return R_redis, current_resp, reset_resp
'''
