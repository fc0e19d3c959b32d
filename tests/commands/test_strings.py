"""String commands against Redis 7.0's behaviour (checked on a real redis-server 7.0.15)."""

from __future__ import annotations

import pytest
from commands_support import BINARY, NOW

from respkv.state.values import ListValue

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INT = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"
TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"


@pytest.fixture
def with_list(db):
    """A key of another type, as the other type modules will store it."""
    db.set(b"l", ListValue([b"a"]))
    return db


# -- GET / SET ---------------------------------------------------------------


def test_get_set_binary(run):
    assert run("GET", "k") is None
    assert run("SET", BINARY, BINARY + b"v") == "OK"
    assert run("GET", BINARY) == BINARY + b"v"
    assert run("GET", b"k\x00") is None


def test_set_arity(run, err):
    assert err(run("SET", "k")) == "ERR wrong number of arguments for 'set' command"
    assert err(run("GET")) == "ERR wrong number of arguments for 'get' command"


def test_set_nx_xx(run):
    assert run("SET", "k", "1", "XX") is None
    assert run("GET", "k") is None
    assert run("SET", "k", "1", "nx") == "OK"
    assert run("SET", "k", "2", "NX") is None
    assert run("SET", "k", "3", "XX") == "OK"
    assert run("GET", "k") == b"3"


def test_set_get_option(run, err, with_list):
    assert run("SET", "k", "1", "GET") is None
    assert run("SET", "k", "2", "GET") == b"1"
    assert run("SET", "k", "3", "NX", "GET") == b"2"  # NX + GET: allowed since 7.0
    assert run("GET", "k") == b"2"
    assert run("SET", "new", "x", "XX", "GET") is None
    assert run("GET", "new") is None
    assert err(run("SET", "l", "x", "GET")) == WRONGTYPE
    assert run("SET", "l", "x") == "OK"  # without GET any type is overwritten


@pytest.mark.parametrize(
    "options",
    [
        ["NX", "XX"],
        ["XX", "NX"],
        ["EX", "10", "PX", "100"],
        ["KEEPTTL", "EX", "5"],
        ["EX", "5", "KEEPTTL"],
        ["EX"],
        ["PERSIST"],
        ["FOO"],
        ["EX", "abc", "NX", "XX"],  # the syntax error wins over the bad number
    ],
)
def test_set_syntax_errors(run, err, options):
    assert err(run("SET", "k", "v", *options)) == SYNTAX
    assert run("GET", "k") is None


def test_set_repeated_options_last_wins(run):
    assert run("SET", "k", "v", "EX", "10", "EX", "20") == "OK"
    assert run("PTTL", "k") == 20_000
    assert run("SET", "k", "v", "NX", "NX") is None


@pytest.mark.parametrize(
    ("unit", "amount", "expire_at"),
    [
        ("EX", "10", NOW + 10_000),
        ("PX", "1500", NOW + 1500),
        ("EXAT", str(NOW // 1000 + 100), (NOW // 1000 + 100) * 1000),
        ("PXAT", str(NOW + 7), NOW + 7),
        ("ex", "1", NOW + 1000),
    ],
)
def test_set_expiry(run, db, unit, amount, expire_at):
    assert run("SET", "k", "v", unit, amount) == "OK"
    assert db.expires[b"k"] == expire_at
    assert run("GET", "k", now=expire_at - 1) == b"v"
    assert run("GET", "k", now=expire_at) is None


@pytest.mark.parametrize(
    ("unit", "amount"),
    [("EX", "0"), ("PX", "-1"), ("EXAT", "0"), ("PXAT", "-5"), ("EX", "9223372036854776"),
     ("PX", "9223372036854775807")],
)
def test_set_invalid_expire(run, err, unit, amount):
    assert err(run("SET", "k", "v", unit, amount)) == "ERR invalid expire time in 'set' command"


def test_set_expire_checked_before_wrongtype(run, err, with_list):
    assert err(run("SET", "l", "v", "GET", "EX", "0")) == "ERR invalid expire time in 'set' command"
    assert err(run("SET", "k", "v", "EX", "x")) == NOT_INT
    assert err(run("SET", "k", "v", "EX", "")) == NOT_INT


def test_set_past_time_leaves_key_absent(run, db):
    run("SET", "k", "old")
    assert run("SET", "k", "v", "PXAT", "1", "GET") == b"old"
    assert run("GET", "k") is None
    assert b"k" not in db.data


def test_set_drops_or_keeps_ttl(run, db):
    run("SET", "k", "v", "EX", "100")
    assert run("SET", "k", "w", "KEEPTTL") == "OK"
    assert db.expires[b"k"] == NOW + 100_000
    run("SET", "k", "x")
    assert b"k" not in db.expires


def test_set_over_expired_key(run):
    run("SET", "k", "v", "PX", "10")
    later = NOW + 10
    assert run("SET", "k", "w", "NX", "GET", now=later) is None
    assert run("GET", "k", now=later) == b"w"
    assert run("TTL", "k", now=later) == -1


def test_setnx(run, with_list):
    assert run("SETNX", "k", "1") == 1
    assert run("SETNX", "k", "2") == 0
    assert run("SETNX", "l", "2") == 0
    assert run("GET", "k") == b"1"


def test_setex_psetex(run, err, db):
    assert run("SETEX", "k", "10", "v") == "OK"
    assert db.expires[b"k"] == NOW + 10_000
    assert run("PSETEX", "p", "10", "v") == "OK"
    assert db.expires[b"p"] == NOW + 10
    assert err(run("SETEX", "k", "0", "v")) == "ERR invalid expire time in 'setex' command"
    assert err(run("PSETEX", "k", "-1", "v")) == "ERR invalid expire time in 'psetex' command"
    assert err(run("SETEX", "k", "abc", "v")) == NOT_INT
    assert err(run("SETEX", "k", "1")) == "ERR wrong number of arguments for 'setex' command"


def test_getset(run, err, db, with_list):
    run("SET", "k", "1", "EX", "10")
    assert run("GETSET", "k", "2") == b"1"
    assert b"k" not in db.expires  # GETSET drops the TTL
    assert run("GETSET", "new", "x") is None
    assert run("GET", "new") == b"x"
    assert err(run("GETSET", "l", "x")) == WRONGTYPE


def test_getdel(run, err, with_list):
    run("SET", "k", b"a\r\nb")
    assert run("GETDEL", "k") == b"a\r\nb"
    assert run("GETDEL", "k") is None
    assert run("EXISTS", "k") == 0
    assert err(run("GETDEL", "l")) == WRONGTYPE


# -- GETEX -------------------------------------------------------------------


def test_getex_plain_and_expiry(run, db):
    assert run("GETEX", "k") is None
    run("SET", "k", "v")
    assert run("GETEX", "k") == b"v"
    assert run("GETEX", "k", "EX", "10") == b"v"
    assert db.expires[b"k"] == NOW + 10_000
    assert run("GETEX", "k", "PX", "10") == b"v"
    assert db.expires[b"k"] == NOW + 10
    assert run("GETEX", "k", "PXAT", str(NOW + 99)) == b"v"
    assert db.expires[b"k"] == NOW + 99
    assert run("GETEX", "k", "EXAT", str(NOW // 1000 + 5)) == b"v"
    assert db.expires[b"k"] == (NOW // 1000 + 5) * 1000
    assert run("GETEX", "k", "PERSIST") == b"v"
    assert b"k" not in db.expires
    assert run("GETEX", "k", "PERSIST", "PERSIST") == b"v"


def test_getex_past_time_deletes(run, db):
    run("SET", "k", "v")
    assert run("GETEX", "k", "PXAT", str(NOW)) == b"v"
    assert b"k" not in db.data


@pytest.mark.parametrize(
    "options",
    [["PERSIST", "EX", "5"], ["EX", "5", "PERSIST"], ["EX"], ["FOO"], ["NX"], ["GET"],
     ["KEEPTTL"], ["EX", "1", "PX", "1"]],
)
def test_getex_syntax(run, err, options):
    run("SET", "k", "v")
    assert err(run("GETEX", "k", *options)) == SYNTAX


def test_getex_error_order(run, err, with_list):
    assert run("GETEX", "missing", "EX", "-5") is None  # the key is looked up first
    assert err(run("GETEX", "l", "EX", "-5")) == WRONGTYPE
    run("SET", "k", "v")
    assert err(run("GETEX", "k", "EX", "-5")) == "ERR invalid expire time in 'getex' command"
    assert err(run("GETEX", "k", "EX", "x")) == NOT_INT
    assert err(run("GETEX", "k", "PX", "")) == NOT_INT


# -- MGET / MSET -------------------------------------------------------------


def test_mget(run, with_list):
    run("SET", "a", "1")
    run("SET", "x", "2", "PXAT", str(NOW + 1))
    assert run("MGET", "a", "l", "nope", "a", "x", now=NOW + 1) == [b"1", None, None, b"1", None]


def test_mset(run, err, db):
    run("SET", "a", "old", "EX", "10")
    assert run("MSET", "a", "1", BINARY, "2") == "OK"
    assert run("MGET", "a", BINARY) == [b"1", b"2"]
    assert b"a" not in db.expires
    assert run("MSET", "a", "x", "a", "y") == "OK"
    assert run("GET", "a") == b"y"
    assert err(run("MSET", "a")) == "ERR wrong number of arguments for 'mset' command"
    assert err(run("MSET", "a", "1", "b")) == "ERR wrong number of arguments for 'mset' command"


def test_msetnx(run, err):
    assert run("MSETNX", "a", "1", "b", "2") == 1
    assert run("MSETNX", "b", "x", "c", "3") == 0
    assert run("MGET", "a", "b", "c") == [b"1", b"2", None]
    assert err(run("MSETNX", "a", "1", "b")) == "ERR wrong number of arguments for 'msetnx' command"
    run("SET", "e", "v", "PXAT", str(NOW + 5))
    assert run("MSETNX", "e", "new", now=NOW + 5) == 1


# -- counters ----------------------------------------------------------------


def test_incr_decr(run, db):
    assert run("INCR", "n") == 1
    assert run("INCRBY", "n", "41") == 42
    assert run("DECR", "n") == 41
    assert run("DECRBY", "n", "-9") == 50
    assert run("INCRBY", "n", "-100") == -50
    assert run("GET", "n") == b"-50"
    run("SET", "t", "5", "EX", "100")
    assert run("INCR", "t") == 6
    assert db.expires[b"t"] == NOW + 100_000  # a counter keeps its TTL


@pytest.mark.parametrize(
    "value", [b"abc", b"", b" 1", b"1 ", b"+1", b"01", b"-0", b"1.0", b"99999999999999999999"]
)
def test_incr_not_integer(run, err, value):
    run("SET", "n", value)
    assert err(run("INCR", "n")) == NOT_INT
    assert run("GET", "n") == value


def test_incr_errors(run, err, with_list):
    assert err(run("INCRBY", "n", "x")) == NOT_INT
    assert err(run("INCRBY", "n", "9223372036854775808")) == NOT_INT
    assert err(run("INCR", "l")) == WRONGTYPE
    run("SET", "max", "9223372036854775807")
    overflow = "ERR increment or decrement would overflow"
    assert err(run("INCR", "max")) == overflow
    run("SET", "min", "-9223372036854775808")
    assert err(run("DECR", "min")) == overflow
    assert err(run("INCRBY", "min", "-1")) == overflow
    assert err(run("DECRBY", "n", "-9223372036854775808")) == "ERR decrement would overflow"
    assert run("DECRBY", "max", "9223372036854775807") == 0
    assert run("GET", "min") == b"-9223372036854775808"


@pytest.mark.parametrize(
    ("start", "incr", "result"),
    [
        (None, b"10.5", b"10.5"),
        (b"10.5", b"0.1", b"10.6"),
        (None, b"3.0e3", b"3000"),
        (b"5.0e3", b"2.0e2", b"5200"),
        (b"5.0e3", b"0.3", b"5000.29999999999999982"),  # long double, as Redis on x86-64
        (b"1", b"2.5e-17", b"1.00000000000000003"),
        (b"0", b"1e-20", b"0"),
        (b"0", b"-1e-20", b"0"),
        (b"-1.5", b"1.5", b"0"),
        (b"10", b"-0.5", b"9.5"),
        (b"0", b"0x1.8p3", b"12"),
        (b"0", b".5", b"0.5"),
        (b"0", b"5.", b"5"),
        (b"0", b"+5", b"5"),
        (b"0", b"1.7976931348623157e308", (  # what redis-server 7.0.15 answers
            b"17976931348623156999592104677410443404838644694432917848531442076517662852312439"
            b"63547018686083870855644287934194255206893087083634511360553578972780264776170734"
            b"98977686288394835618163294045594434929537447290627480669417384648879122776218333"
            b"598953852832103282504751611691208117720159985926376802466863339536384"
        )),
        (b"3", b"1e400", b"1" + b"0" * 19 + b"2818806839475865145864534336290520386259"),
    ],
)
def test_incrbyfloat(run, start, incr, result):
    if start is not None:
        run("SET", "f", start)
    reply = run("INCRBYFLOAT", "f", incr)
    if incr == b"1e400":  # beyond a double, fine in a long double: 401 digits
        assert reply.startswith(result)
        assert len(reply) == 401
    else:
        assert reply == result
    assert run("GET", "f") == reply


def test_incrbyfloat_keeps_ttl(run, db):
    run("SET", "f", "1", "EX", "10")
    assert run("INCRBYFLOAT", "f", "1") == b"2"
    assert db.expires[b"f"] == NOW + 10_000


@pytest.mark.parametrize(
    ("start", "incr", "error"),
    [
        (b"1", b"inf", "ERR increment would produce NaN or Infinity"),
        (b"1", b"-INFINITY", "ERR increment would produce NaN or Infinity"),
        (b"inf", b"1", "ERR increment would produce NaN or Infinity"),
        (b"1", b"1e5000", NOT_FLOAT),  # strtold's ERANGE
        (b"1", b"1e-5000", NOT_FLOAT),
        (b"1", b"nan", NOT_FLOAT),
        (b"1", b"1_0", NOT_FLOAT),
        (b"1", b" 1", NOT_FLOAT),
        (b"1", b"1 ", NOT_FLOAT),
        (b"1", b"", NOT_FLOAT),
        (b"1", b"1e", NOT_FLOAT),
        (b"1", b"0x", NOT_FLOAT),
        (b"abc", b"1", NOT_FLOAT),
        (b"abc", b"x", NOT_FLOAT),
        (b"1.18973149535723176502e+4932", b"1.18973149535723176502e+4932",
         "ERR increment would produce NaN or Infinity"),
    ],
)
def test_incrbyfloat_errors(run, err, start, incr, error):
    run("SET", "f", start)
    assert err(run("INCRBYFLOAT", "f", incr)) == error
    assert run("GET", "f") == start


def test_incrbyfloat_wrongtype(run, err, with_list):
    assert err(run("INCRBYFLOAT", "l", "1")) == WRONGTYPE


# -- APPEND / STRLEN / ranges ------------------------------------------------


def test_append_strlen(run, err, db, with_list):
    assert run("STRLEN", "k") == 0
    assert run("APPEND", "k", b"\x00\r\n") == 3
    assert run("APPEND", "k", "xy") == 5
    assert run("GET", "k") == b"\x00\r\nxy"
    assert run("STRLEN", "k") == 5
    run("SET", "t", "a", "EX", "9")
    run("APPEND", "t", "b")
    assert db.expires[b"t"] == NOW + 9000
    assert err(run("APPEND", "l", "x")) == WRONGTYPE
    assert err(run("STRLEN", "l")) == WRONGTYPE


def test_append_too_long(run, err, db):
    db.set(b"big", bytes(512 * 1024 * 1024))
    assert err(run("APPEND", "big", "x")) == TOO_LONG
    assert run("APPEND", "big", "") == 512 * 1024 * 1024


@pytest.mark.parametrize("name", ["GETRANGE", "SUBSTR"])
@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, -1, b"Hello World"),
        (0, 4, b"Hello"),
        (-5, -1, b"World"),
        (-1, -5, b""),
        (5, 3, b""),
        (0, -100, b"H"),
        (-100, 2, b"Hel"),
        (6, 100, b"World"),
        (11, 20, b""),
        (-1, -1, b"d"),
    ],
)
def test_getrange(run, name, start, end, expected):
    run("SET", "k", "Hello World")
    assert run(name, "k", start, end) == expected


def test_getrange_errors(run, err, with_list):
    assert run("GETRANGE", "missing", 0, -1) == b""
    run("SET", "e", "")
    assert run("GETRANGE", "e", 0, -1) == b""
    assert err(run("GETRANGE", "l", 0, 1)) == WRONGTYPE
    assert err(run("GETRANGE", "k", "a", 1)) == NOT_INT
    assert err(run("SUBSTR", "k", 0)) == "ERR wrong number of arguments for 'substr' command"


def test_setrange(run, err, db, with_list):
    assert run("SETRANGE", "k", 5, b"\x00ab") == 8
    assert run("GET", "k") == b"\x00" * 5 + b"\x00ab"
    run("SET", "s", "Hello World", "EX", "3")
    assert run("SETRANGE", "s", 6, "Redis") == 11
    assert run("GET", "s") == b"Hello Redis"
    assert db.expires[b"s"] == NOW + 3000
    assert run("SETRANGE", "s", 10, "!!") == 12
    assert run("SETRANGE", "s", 100, "") == 12
    assert run("SETRANGE", "missing", 100, "") == 0
    assert run("EXISTS", "missing") == 0
    assert err(run("SETRANGE", "s", -1, "x")) == "ERR offset is out of range"
    assert err(run("SETRANGE", "s", "x", "x")) == NOT_INT
    assert err(run("SETRANGE", "l", 0, "x")) == WRONGTYPE
    assert err(run("SETRANGE", "s", 536870911, "xx")) == TOO_LONG
    assert err(run("SETRANGE", "missing", 536870912, "a")) == TOO_LONG
