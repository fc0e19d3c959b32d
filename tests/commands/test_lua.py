"""Unit tests of the Lua engine (respkv.commands.lua.engine) with a fake ``call``: the reply
conversions both ways in RESP2 and RESP3, the stop hook, the script cache, state reuse.
What redis-server itself answers is in test_lua_vs_redis.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from respkv.commands.lua.engine import KILLED, LuaEngine
from respkv.commands.lua.runtime import LUA_RUNTIME
from respkv.commands.lua.sources import ScriptCache, script_flags, sha1hex
from respkv.commands.lua.tailcalls import without_tail_calls
from respkv.protocol.reply import (
    NULL_ARRAY,
    OK,
    Reply,
    RespError,
    RSet,
    Simple,
    Verbatim,
    encode,
)


@pytest.fixture(scope="module")
def engine() -> LuaEngine:
    return LuaEngine()


def replying(reply: Reply) -> Callable[[list[bytes]], Reply]:
    return lambda argv: reply


def run(engine: LuaEngine, script: str, call: Callable[[list[bytes]], Reply] | None = None,
        keys: tuple[bytes, ...] = (), argv: tuple[bytes, ...] = (), resp3: bool = False,
        should_stop: Callable[[], bool] | None = None) -> Reply:
    return engine.run(script.encode(), list(keys), list(argv), call or replying(None),
                      resp3=resp3, should_stop=should_stop)


def test_runs_on_lua_51(engine: LuaEngine) -> None:
    assert LUA_RUNTIME == "lupa.lua51"
    assert run(engine, "return _VERSION") == b"Lua 5.1"


# -- the script cache ------------------------------------------------------------------

def test_script_cache() -> None:
    cache = ScriptCache()
    sha = cache.load(b"return 1")
    assert sha == b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db" == sha1hex(b"return 1")
    assert cache.get(sha) == b"return 1"
    assert cache.get(sha.upper()) == b"return 1"
    assert cache.exists(sha.upper()) and not cache.exists(b"0" * 40)
    assert cache.get(b"0" * 40) is None
    cache.flush()
    assert not cache.exists(sha) and cache.get(sha) is None


def test_script_flags() -> None:
    assert script_flags(b"return 1") == (frozenset(), 0)
    assert script_flags(b"#!lua\nreturn 1") == (frozenset(), 5)
    assert script_flags(b"#!lua flags=no-writes,allow-oom\nreturn 1")[0] == \
        {"no-writes", "allow-oom"}
    assert script_flags(b"#!lua flags=\nreturn 1")[0] == frozenset()
    for source, text in ((b"#!lua", "ERR Invalid script shebang"),
                         (b"#!js\n", "ERR Unexpected engine in script shebang: #!js"),
                         (b"#!lua x=1\n", "ERR Unknown lua shebang option: x=1"),
                         (b"#!lua flags=nope\n", "ERR Unexpected flag in script shebang: nope")):
        with pytest.raises(RespError) as raised:
            script_flags(source)
        assert raised.value.text == text


def test_shebang_keeps_line_numbers(engine: LuaEngine) -> None:
    reply = run(engine, "#!lua flags=no-writes\n\nerror('x')")
    assert isinstance(reply, RespError)
    assert reply.text.startswith("ERR user_script:3: x script: ")


# -- Redis -> Lua ----------------------------------------------------------------------

@pytest.mark.parametrize(("reply", "script", "resp3", "expected"), [
    (b"v", "return type(redis.call('x'))", False, b"string"),
    (7, "return type(redis.call('x'))", False, b"number"),
    (None, "return type(redis.call('x'))", False, b"boolean"),
    (None, "redis.setresp(3) return type(redis.call('x'))", False, b"nil"),
    (NULL_ARRAY, "return type(redis.call('x'))", False, b"boolean"),
    (NULL_ARRAY, "redis.setresp(3) return type(redis.call('x'))", False, b"nil"),
    (OK, "return redis.call('x').ok", False, b"OK"),
    (True, "return redis.call('x')", False, 1),
    (False, "return redis.call('x')", False, 0),
    (True, "redis.setresp(3) return type(redis.call('x'))", False, b"boolean"),
    (1.5, "return redis.call('x')", False, b"1.5"),
    (1.5, "redis.setresp(3) return redis.call('x').double", False, 1),
    (1.5, "redis.setresp(3) return redis.call('x')", True, 1.5),
    (Verbatim("hi"), "return redis.call('x')", False, b"hi"),
    (Verbatim("hi"), "redis.setresp(3) local v = redis.call('x').verbatim_string"
     " return {v.format, v.string}", False, [b"txt", b"hi"]),
    ({b"f": b"v"}, "return redis.call('x')", False, [b"f", b"v"]),
    ({b"f": b"v"}, "redis.setresp(3) return redis.call('x').map.f", False, b"v"),
    ({b"f": b"v"}, "redis.setresp(3) return redis.call('x')", True, {b"f": b"v"}),
    (RSet([b"a", b"b"]), "return redis.call('x')", False, [b"a", b"b"]),
    (RSet([b"a"]), "redis.setresp(3) return tostring(redis.call('x').set.a)", False, b"true"),
    (RSet([b"a"]), "redis.setresp(3) return redis.call('x')", True, RSet([b"a"])),
    ([b"a", None, 3], "return redis.call('x')", False, [b"a", None, 3]),
    ([b"a", None, 3], "redis.setresp(3) return #redis.call('x')", False, 1),
    ([RespError("ERR inner"), Simple("OK")], "return redis.call('x')", False,
     [RespError("ERR inner"), Simple("OK")]),
    ("text", "return redis.call('x')", False, b"text"),
])
def test_command_replies_in_lua(engine: LuaEngine, reply: Reply, script: str, resp3: bool,
                                expected: Reply) -> None:
    got = run(engine, script, replying(reply), resp3=resp3)
    if isinstance(expected, RespError):
        assert isinstance(got, RespError) and got.text == expected.text
    elif isinstance(expected, list) and any(isinstance(x, RespError) for x in expected):
        assert [encode(x, False) for x in got] == [encode(x, False) for x in expected]
    else:
        assert got == expected
        assert type(got) is type(expected)


def test_error_replies_raise_or_return(engine: LuaEngine) -> None:
    call = replying(RespError("WRONGTYPE Operation against a key"))
    script = "return redis.call('x')"
    reply = run(engine, script, call)
    assert isinstance(reply, RespError)
    sha = sha1hex(script.encode()).decode()
    assert reply.text == f"WRONGTYPE Operation against a key script: {sha}, on @user_script:1."
    assert run(engine, "return redis.pcall('x').err", call) == b"WRONGTYPE Operation against a key"
    raised = RespError("ERR raised by the handler")

    def raising(argv: list[bytes]) -> Reply:
        raise raised

    assert run(engine, "return redis.pcall('x').err", raising) == b"ERR raised by the handler"


def test_arguments_reach_call(engine: LuaEngine) -> None:
    seen: list[list[bytes]] = []

    def call(argv: list[bytes]) -> Reply:
        seen.append(argv)
        return OK

    run(engine, "redis.call('set', KEYS[1], ARGV[1], 10, 0.1, 1/0, 2^53)", call,
        keys=(b"k\0",), argv=(b"v",))
    assert seen == [[b"set", b"k\0", b"v", b"10", b"0.10000000000000001", b"inf",
                     b"9007199254740992"]]


def test_a_failing_call_ends_the_script_and_raises(engine: LuaEngine) -> None:
    def broken(argv: list[bytes]) -> Reply:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run(engine, "pcall(redis.call, 'x') return redis.pcall('y')", broken)
    assert run(engine, "return 1") == 1  # the engine goes on


# -- Lua -> Redis ----------------------------------------------------------------------

@pytest.mark.parametrize(("script", "resp3", "expected"), [
    ("return {double = 3.14}", False, b"3.1400000000000001"),
    ("return {double = 3.14}", True, 3.14),
    ("return {double = 1/0}", False, b"inf"),
    ("return {map = {a = 1}}", False, [b"a", 1]),
    ("return {map = {a = 1}}", True, {b"a": 1}),
    ("return {map = {[1] = 'x', [1.5] = 'y'}}", False, [1, b"x", 1, b"y"]),
    ("return {set = {a = true}}", True, RSet([b"a"])),
    ("return {verbatim_string = {format = 'txt', string = 'v'}}", True, Verbatim("v")),
    ("return {verbatim_string = {format = 'txt', string = 'v'}}", False, b"v"),
    ("return {big_number = '12\\n3'}", False, b"12 3"),
    ("return true", True, 1),
    ("return false", True, None),
    ("redis.setresp(3) return false", True, False),
    ("redis.setresp(3) return false", False, False),
    ("return 2^63", False, -(1 << 63)),
    ("return -2^63", False, -(1 << 63)),
    ("return {ok = 'a\\0b'}", False, Simple("a")),
])
def test_lua_values_as_replies(engine: LuaEngine, script: str, resp3: bool,
                               expected: Reply) -> None:
    got = run(engine, script, resp3=resp3)
    assert got == expected
    assert type(got) is type(expected)


def test_self_referencing_table_stops_at_the_stack_limit(engine: LuaEngine) -> None:
    reply = run(engine, "local t = {} t[1] = t return t")
    depth = 0
    while isinstance(reply, list):
        assert len(reply) == 1
        reply = reply[0]
        depth += 1
    assert depth == 7995  # redis-server's depth
    assert isinstance(reply, RespError) and reply.text == "ERR reached lua stack limit"


def test_large_replies(engine: LuaEngine) -> None:
    assert run(engine, "local t = {} for i = 1, 20000 do t[i] = i end return t") == \
        list(range(1, 20001))
    big = [b"x%d" % i for i in range(10000)]
    assert run(engine, "return redis.call('x')", replying(big)) == big


# -- errors and positions --------------------------------------------------------------

def test_tail_calls_keep_the_script_line(engine: LuaEngine) -> None:
    for script in ("return cjson.encode(function() end)",
                   "local function f() return cjson.encode(function() end) end\nreturn f()",
                   "return redis.call()"):
        reply = run(engine, script)
        assert isinstance(reply, RespError)
        assert reply.text.endswith(", on @user_script:1.")


def test_without_tail_calls_changes_only_tail_calls(engine: LuaEngine) -> None:
    dump = engine._lua.eval("string.dump(loadstring('return select(2, ...)'))")
    patched = without_tail_calls(dump)
    assert len(patched) == len(dump) and patched != dump
    assert without_tail_calls(patched) == patched
    function = engine._lua.eval("loadstring")(patched)
    assert function(1, 2, 3) == (2, 3)


def test_a_script_cannot_reach_python(engine: LuaEngine) -> None:
    for name in ("python", "os", "io", "require", "debug", "getfenv", "setfenv", "newproxy"):
        reply = run(engine, f"return {name}")
        assert isinstance(reply, RespError)
        assert "nonexistent global variable" in reply.text


# -- the stop hook ---------------------------------------------------------------------

@pytest.mark.parametrize("script", [
    "while true do end",
    "while true do pcall(function() while true do end end) end",
    "local co = coroutine.wrap(function() while true do end end) co()",
    "local co = coroutine.create(function() while true do end end)"
    " while true do coroutine.resume(co) end",
    "while true do local ok, e = pcall(error, 'x') end",
    "local f = loadstring('while true do end') f()",
])
def test_should_stop_kills_the_script(engine: LuaEngine, script: str) -> None:
    asked: list[float] = []

    def should_stop() -> bool:
        asked.append(time.monotonic())
        return len(asked) >= 3

    reply = run(engine, script, should_stop=should_stop)
    assert isinstance(reply, RespError)
    assert reply.text.startswith(KILLED + " script: ")
    assert len(asked) == 3
    assert run(engine, "return 'alive'", should_stop=lambda: False) == b"alive"


def test_no_hook_without_should_stop(engine: LuaEngine) -> None:
    assert run(engine, "local s = 0 for i = 1, 300000 do s = s + i end return s") == \
        45000150000


# -- state reuse -----------------------------------------------------------------------

def test_runs_leave_nothing_behind(engine: LuaEngine) -> None:
    run(engine, "cjson.encode_max_depth(1) cjson.encode_sparse_array(true)"
        " collectgarbage('stop') redis.setresp(3)")
    assert run(engine, "return {cjson.encode_max_depth(), cjson.encode_sparse_array()}") == \
        [1000, None, 2, 10]
    assert run(engine, "return type(redis.call('x'))", replying(None)) == b"boolean"
    assert run(engine, "return KEYS[1]", keys=(b"a",)) == b"a"
    assert run(engine, "return KEYS[1]") is None
    assert run(engine, "local t = cjson.new() t.x = 1 return t.x") == 1


def test_compiled_scripts_are_cached(engine: LuaEngine) -> None:
    source = "return ARGV[1]"
    assert run(engine, source, argv=(b"1",)) == b"1"
    assert sha1hex(source.encode()) in engine._functions
    assert run(engine, source, argv=(b"2",)) == b"2"
    engine.flush()
    assert not engine._functions
    assert run(engine, source, argv=(b"3",)) == b"3"


def test_math_random_is_rand48(engine: LuaEngine) -> None:
    # redis-server 7.0: math.randomseed(42) then math.random(1000000) twice
    assert run(engine, "math.randomseed(42) return {math.random(1000000),"
               " math.random(1000000)}") == [744526, 342702]
    first = run(engine, "return math.random(1000000)")
    second = run(engine, "return math.random(1000000)")
    assert first != second  # one sequence for the engine's life, as in Redis


def test_one_script_at_a_time(engine: LuaEngine) -> None:
    def reentrant(argv: list[bytes]) -> Reply:
        return engine.run(b"return 1", [], [], replying(None))

    with pytest.raises(RuntimeError):
        run(engine, "return redis.call('x')", reentrant)
    assert run(engine, "return 2") == 2


def test_overhead_of_a_small_script(engine: LuaEngine) -> None:
    run(engine, "return 1")
    count = 2000
    start = time.perf_counter()
    for _ in range(count):
        engine.run(b"return 1", [], [], replying(None), should_stop=lambda: False)
    per_run = (time.perf_counter() - start) / count
    assert per_run < 0.0005  # measured ~7 us; generous for slow machines


def test_load_compiles_or_says_why(engine: LuaEngine) -> None:
    assert engine.load(b"return 41 + 1") == sha1hex(b"return 41 + 1")
    bad = engine.load(b"return +")
    assert isinstance(bad, RespError)
    assert bad.text == ("ERR Error compiling script (new function): "
                        "user_script:1: unexpected symbol near '+'")
    shebang = engine.load(b"#!lua flags=bogus\nreturn 1")
    assert isinstance(shebang, RespError)
    assert shebang.text == "ERR Unexpected flag in script shebang: bogus"


def test_load_and_flush_while_a_script_runs(engine: LuaEngine) -> None:
    seen: list[Reply] = []

    def call(argv: list[bytes]) -> Reply:
        seen.append(engine.load(b"return 'loaded meanwhile'"))
        seen.append(engine.load(b"return +"))
        engine.flush()
        return OK

    assert run(engine, "return redis.call('x')", call) == OK
    assert seen[0] == sha1hex(b"return 'loaded meanwhile'")
    assert isinstance(seen[1], RespError) and "unexpected symbol" in seen[1].text
    assert not engine._functions  # flushed once the script ended
    assert run(engine, "return 'loaded meanwhile'") == b"loaded meanwhile"


def test_math_random_starts_where_redis_does() -> None:
    # a fresh redis-server 7.0.15's first EVAL of this script returns these
    fresh = LuaEngine()
    assert run(fresh, "return {math.random(1000000), math.random(1000000)}") == \
        [396465, 840486]
