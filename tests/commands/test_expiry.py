"""Expiry commands against Redis 7.0's behaviour."""

from __future__ import annotations

import pytest
from commands_support import BINARY, NOW

NOT_INT = "ERR value is not an integer or out of range"
NX_CONFLICT = "ERR NX and XX, GT or LT options at the same time are not compatible"
GT_LT_CONFLICT = "ERR GT and LT options at the same time are not compatible"


@pytest.fixture
def key(db):
    db.set(b"k", b"v")
    return b"k"


@pytest.mark.parametrize(
    ("name", "amount", "expire_at"),
    [
        ("EXPIRE", 10, NOW + 10_000),
        ("PEXPIRE", 10, NOW + 10),
        ("EXPIREAT", NOW // 1000 + 10, NOW + 10_000),
        ("PEXPIREAT", NOW + 10, NOW + 10),
    ],
)
def test_expire_sets_absolute_time(run, db, key, name, amount, expire_at):
    assert run(name, key, amount) == 1
    assert db.expires[key] == expire_at
    assert run("GET", key, now=expire_at - 1) == b"v"
    assert run("GET", key, now=expire_at) is None
    assert run("EXISTS", key, now=expire_at) == 0


@pytest.mark.parametrize(
    ("name", "amount"),
    [("EXPIRE", 0), ("EXPIRE", -10), ("PEXPIRE", 0), ("EXPIREAT", 1), ("PEXPIREAT", NOW)],
)
def test_time_in_the_past_deletes(run, db, key, name, amount):
    assert run(name, key, amount) == 1
    assert key not in db.data
    assert key in db.dirty


def test_expire_missing_or_expired_key(run, db):
    assert run("EXPIRE", "nope", 10) == 0
    db.set(b"gone", b"v", NOW)
    assert run("EXPIRE", "gone", 10) == 0
    assert b"gone" not in db.data  # the writer reclaims it


def test_expire_binary_key(run, db):
    db.set(BINARY, b"v")
    assert run("PEXPIRE", BINARY, 5) == 1
    assert run("PTTL", BINARY) == 5


def test_nx_xx(run, db, key):
    assert run("EXPIRE", key, 100, "XX") == 0
    assert run("EXPIRE", key, 100, "nx") == 1
    assert run("EXPIRE", key, 200, "NX") == 0
    assert run("EXPIRE", key, 300, "XX") == 1
    assert db.expires[key] == NOW + 300_000


def test_gt_lt(run, db, key):
    assert run("EXPIRE", key, 100, "GT") == 0  # no TTL counts as infinite
    assert run("EXPIRE", key, 100, "LT") == 1
    assert run("EXPIRE", key, 100, "GT") == 0  # equal is not greater
    assert run("EXPIRE", key, 200, "GT") == 1
    assert run("EXPIRE", key, 200, "LT") == 0
    assert run("EXPIRE", key, 150, "LT", "XX") == 1
    assert run("EXPIRE", key, 300, "GT", "XX", "gt") == 1
    assert db.expires[key] == NOW + 300_000


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["NX", "XX"], NX_CONFLICT),
        (["NX", "GT"], NX_CONFLICT),
        (["LT", "NX"], NX_CONFLICT),
        (["NX", "GT", "LT"], NX_CONFLICT),
        (["GT", "LT"], GT_LT_CONFLICT),
        (["FOO"], "ERR Unsupported option FOO"),
        (["nx", "bar"], "ERR Unsupported option bar"),
    ],
)
def test_option_errors(run, err, db, key, options, error):
    assert err(run("EXPIRE", key, 10, *options)) == error
    assert err(run("PEXPIREAT", key, "x", *options)) == error  # options are checked first
    assert key not in db.expires


@pytest.mark.parametrize(
    ("name", "amount", "error"),
    [
        ("EXPIRE", "abc", NOT_INT),
        ("EXPIRE", "9223372036854775807", "ERR invalid expire time in 'expire' command"),
        ("EXPIRE", "-9223372036854775807", "ERR invalid expire time in 'expire' command"),
        ("EXPIRE", "9223372036854776", "ERR invalid expire time in 'expire' command"),
        ("PEXPIRE", "9223372036854775807", "ERR invalid expire time in 'pexpire' command"),
        ("EXPIREAT", "9223372036854776", "ERR invalid expire time in 'expireat' command"),
        ("PEXPIREAT", "1.5", NOT_INT),
    ],
)
def test_time_errors(run, err, key, name, amount, error):
    assert err(run(name, key, amount)) == error


def test_large_but_valid(run, db, key):
    assert run("PEXPIREAT", key, "9223372036854775807") == 1
    assert run("EXPIREAT", key, "9223372036854775", "LT") == 1
    assert run("PEXPIRETIME", key) == 9223372036854775000
    assert run("EXPIRE", key, "9223372036854775") != 1  # + now overflows: an error


def test_ttl_family(run, db, key):
    assert run("TTL", "nope") == -2
    assert run("PTTL", "nope") == -2
    assert run("EXPIRETIME", "nope") == -2
    assert run("PEXPIRETIME", "nope") == -2
    assert run("TTL", key) == -1
    assert run("PTTL", key) == -1
    assert run("EXPIRETIME", key) == -1
    assert run("PEXPIRETIME", key) == -1
    db.set_expire(key, NOW + 10_499)
    assert run("PTTL", key) == 10_499
    assert run("TTL", key) == 10  # rounded to the nearest second
    db.set_expire(key, NOW + 10_500)
    assert run("TTL", key) == 11
    assert run("PEXPIRETIME", key) == NOW + 10_500
    assert run("EXPIRETIME", key) == (NOW + 10_500 + 500) // 1000
    assert run("TTL", key, now=NOW + 10_500) == -2
    assert run("PTTL", key, now=NOW + 10_499) == 1


def test_persist(run, db, key):
    assert run("PERSIST", "nope") == 0
    assert run("PERSIST", key) == 0
    run("EXPIRE", key, 10)
    assert run("PERSIST", key) == 1
    assert key not in db.expires
    assert run("TTL", key) == -1
    db.set(b"gone", b"v", NOW)
    assert run("PERSIST", "gone") == 0
    assert run("GET", "gone") is None
