"""The script engine: one Lua 5.1 state that runs EVAL scripts the way Redis 7.0.15 does.

``LuaEngine.run(source, keys, argv, call)`` runs a script with KEYS and ARGV, the
``redis`` API (respkv.commands.lua.redislib), the libraries Redis ships (bit, struct,
cmsgpack, cjson), in the sandbox (respkv.commands.lua.sandbox), with the replies
converted both ways in RESP2 and RESP3 (respkv.commands.lua.replies) and a stop hook
for SCRIPT KILL. ``call`` is the server's: it runs one command for the script and
returns its Reply.

One Lua state serves every run. Scripts cannot change it: every table reachable from
the globals is read-only (a proxy whose writes fail as Redis' read-only tables do),
KEYS and ARGV are fresh per run, and what a run could leave behind (the cjson
settings, a stopped collector) is reset after it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from respkv import REDIS_VERSION
from respkv.commands.lua import (
    bitlib,
    cjsonlib,
    msgpacklib,
    redislib,
    replies,
    sandbox,
    structlib,
)
from respkv.commands.lua.replies import from_lua, one_line, to_lua
from respkv.commands.lua.runtime import lupa
from respkv.commands.lua.sources import script_flags, sha1hex
from respkv.commands.lua.tailcalls import without_tail_calls
from respkv.commands.table import lookup
from respkv.protocol.reply import Reply, RespError

logger = logging.getLogger(__name__)

_LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.INFO, logging.WARNING)

KILLED = "ERR Script killed by user with SCRIPT KILL..."  # what a killed script answers
# what redis.call answers once the server's call has failed or the run is over
_COMMAND_FAILED = RespError("ERR the script's command failed")


class LuaEngine:
    """One Lua 5.1 state running EVAL scripts, one at a time."""

    def __init__(self, command_exists: Callable[[list[bytes]], bool] | None = None) -> None:
        self._command_exists = command_exists or _known_command
        self._lua = lupa.LuaRuntime(encoding=None, register_eval=False,
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
            b"patch": without_tail_calls, **bitlib.CALLBACKS, **structlib.CALLBACKS,
            **msgpacklib.callbacks(self._lua.table_from),
            b"version": REDIS_VERSION.encode(),
            b"version_num": (major << 16) | (minor << 8) | patch,
        }
        chunks = {b"replies": replies.LUA, b"redis": redislib.LUA, b"bit": bitlib.LUA,
                  b"struct": structlib.LUA, b"cmsgpack": msgpacklib.LUA, b"cjson": cjsonlib.LUA}
        boot = self._lua.eval('function(src, py, chunks) '
                              'return assert(loadstring(src, "=respkv"))(py, chunks) end')
        entry = boot(sandbox.LUA.replace("@KILLED@", KILLED).encode(),
                     self._lua.table_from(callbacks),
                     self._lua.table_from({name: chunk.encode() for name, chunk in chunks.items()}))
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
            checker = lupa.LuaRuntime(encoding=None, register_eval=False,
                                      register_builtins=False)
            self._checker = checker.eval(
                "function(src) local f, e = loadstring(src, '@user_script') return e end")
        error = self._checker(source[shebang:])
        if error is not None:
            return RespError("ERR Error compiling script (new function): " + one_line(error))
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
            return RespError("ERR Error compiling script (new function): " + one_line(error))
        self._functions[sha] = function
        return function

    def _reply(self, sha: bytes, result: tuple[Any, ...], resp3: bool) -> Reply:
        status = result[0]
        if status == 0:  # an error: (0, message, source, line)
            message = result[1]
            text = one_line(message) if message is not None else \
                "ERR Script raised an error object without an 'err' field"
            source, line = result[2], result[3]
            if source is not None and line is not None:
                text += f" script: {sha.decode()}, on {one_line(source)}:{line}."
            return RespError(text)
        lua_resp = result[1]
        if status == 1:
            values = list(result[2:])
        else:  # too many values for one return: (2, resp, table, n)
            table, n = result[2], result[3]
            values = []
            for start in range(1, n + 1, 4000):
                values += self._slice(table, start, min(n, start + 3999))
        return from_lua(values, resp3, lua_resp)

    # -- callbacks from Lua ------------------------------------------------------------

    def _py_call(self, lua_resp: int, *argv: bytes) -> tuple[Any, ...]:
        """redis.call/pcall: (0, value) | (1, status) | (2, error text) | (3, flat)."""
        if self._failure is not None or self._call is None:
            return to_lua(_COMMAND_FAILED, False, self._lua.table_from)
        try:
            reply = self._call(list(argv))
        except RespError as error:
            reply = error
        except BaseException as failure:  # the server's problem: end the script, raise it
            self._failure = failure
            return to_lua(_COMMAND_FAILED, False, self._lua.table_from)
        return to_lua(reply, lua_resp == 3, self._lua.table_from)

    def _py_should_stop(self) -> bool:
        should_stop = self._should_stop
        return bool(should_stop and should_stop())

    def _py_command_exists(self, *argv: bytes) -> bool:
        return self._command_exists(list(argv))


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

