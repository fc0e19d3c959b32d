"""Differential test: random command sequences against a real redis-server.

Skipped unless ``redis-server`` (7.0, as the semantics we follow) is on PATH.
Both sides get the same commands; replies must be equal byte for byte (TTLs
within the few ms between the two calls; KEYS compared as sets).
"""

from __future__ import annotations

import itertools
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import hiredis
import pytest
from commands_support import BINARY, call

from respkv.protocol.reply import RespError, Simple
from respkv.state.keyspace import Keyspace
from testsupport.ports import free_ports

SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(SERVER is None, reason="redis-server is not installed")


class RawRedis:
    """A minimal RESP client: replies exactly as sent (errors as hiredis.ReplyError)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.reader = hiredis.Reader()

    def __call__(self, *args: bytes) -> object:
        self.sock.sendall(hiredis.pack_command(args))
        while (reply := self.reader.gets()) is False:
            self.reader.feed(self.sock.recv(1 << 20))
        return reply




@pytest.fixture(scope="module")
def redis() -> Iterator[RawRedis]:
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [SERVER, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                client = RawRedis(port)
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        version = client(b"INFO", b"server")
        if b"redis_version:7.0." not in version:
            pytest.skip("needs redis-server 7.0")
        yield client
    finally:
        proc.terminate()
        proc.wait(10)


def normalize(reply: object) -> object:
    if isinstance(reply, RespError | hiredis.ReplyError):
        return ("error", reply.text if isinstance(reply, RespError) else str(reply))
    if isinstance(reply, Simple):
        return reply.encode()
    if isinstance(reply, list):
        return [normalize(item) for item in reply]
    return reply


KEYS = [b"a", b"b", b"c", b"n", b"f", BINARY, b""]
INTS = [b"0", b"1", b"-1", b"10", b"9223372036854775807", b"-9223372036854775808", b"x", b"01"]
FLOATS = [b"1.5", b"0.1", b"-3.0e3", b"1e400", b"inf", b"5.", b"abc", b"0x10", b"1e-20",
          b"0x1p1024"]
VALUES = [b"v", b"", b"12", b"3.5", b"\x00\r\n", b"-7", b"99999999999999999999", b"1e5"]


def _expiry(rng: random.Random, now_s: int) -> list[bytes]:
    unit = rng.choice([b"EX", b"PX", b"EXAT", b"PXAT"])
    if rng.random() < 0.15:
        return [unit, rng.choice([b"0", b"-1", b"x", b"", b"9223372036854775807"])]
    if unit == b"EX":
        return [unit, b"%d" % rng.randint(100, 1000)]
    if unit == b"PX":
        return [unit, b"%d" % rng.randint(100_000, 1_000_000)]
    at = rng.choice([rng.randint(1, now_s - 1000), now_s + rng.randint(100, 1000)])
    return [unit, b"%d" % (at if unit == b"EXAT" else at * 1000)]


def random_command(rng: random.Random) -> list[bytes]:
    now_s = int(time.time())
    key = rng.choice(KEYS)
    other = rng.choice(KEYS)
    pick = rng.randrange(30)
    if pick < 4:
        opts = rng.sample([[b"NX"], [b"XX"], [b"GET"], [b"KEEPTTL"], _expiry(rng, now_s)],
                          rng.randint(0, 2))
        return [b"SET", key, rng.choice(VALUES + INTS), *itertools.chain(*opts)]
    if pick == 4:
        return [rng.choice([b"SETEX", b"PSETEX"]), key,
                rng.choice([b"100", b"100000", b"0", b"-5", b"x"]), rng.choice(VALUES)]
    if pick == 5:
        return [rng.choice([b"SETNX", b"GETSET", b"APPEND"]), key, rng.choice(VALUES)]
    if pick == 6:
        return [rng.choice([b"GET", b"GETDEL", b"STRLEN", b"INCR", b"DECR", b"TYPE"]), key]
    if pick == 7:
        opts = rng.choice([[], [b"PERSIST"], _expiry(rng, now_s), [b"PERSIST", b"EX", b"5"]])
        return [b"GETEX", key, *opts]
    if pick == 8:
        return [b"MGET", *rng.sample(KEYS, 3)]
    if pick == 9:
        name = rng.choice([b"MSET", b"MSETNX"])
        return [name, key, rng.choice(VALUES), other, rng.choice(VALUES)]
    if pick in (10, 11):
        return [rng.choice([b"INCRBY", b"DECRBY"]), key, rng.choice(INTS)]
    if pick in (12, 13):
        return [b"INCRBYFLOAT", rng.choice([b"f", key]), rng.choice(FLOATS + INTS)]
    if pick == 14:
        return [rng.choice([b"GETRANGE", b"SUBSTR"]), key,
                b"%d" % rng.randint(-15, 15), b"%d" % rng.randint(-15, 15)]
    if pick == 15:
        return [b"SETRANGE", key, rng.choice([b"0", b"3", b"-1", b"x", b"20"]),
                rng.choice(VALUES)]
    if pick == 16:
        return [rng.choice([b"DEL", b"UNLINK", b"EXISTS", b"TOUCH"]), *rng.sample(KEYS, 2), key]
    if pick == 17:
        return [rng.choice([b"RENAME", b"RENAMENX"]), key, other]
    if pick == 18:
        opts = rng.choice([[], [b"REPLACE"], [b"DB", b"0"], [b"DB", b"99"], [b"FOO"]])
        return [b"COPY", key, other, *opts]
    if pick in (19, 20, 21):
        name = rng.choice([b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"])
        amount = rng.randint(100, 1000)
        if name == b"PEXPIRE":
            amount *= 1000
        elif name == b"EXPIREAT":
            amount = rng.choice([now_s + amount, rng.randint(1, now_s - 1000)])
        elif name == b"PEXPIREAT":
            amount = rng.choice([now_s + amount, rng.randint(1, now_s - 1000)]) * 1000
        if rng.random() < 0.1:
            amount = rng.choice([0, -1])
        opts = rng.sample([b"NX", b"XX", b"GT", b"LT"], rng.choice([0, 0, 1, 1, 2]))
        return [name, key, b"%d" % amount, *opts]
    if pick == 22:
        return [rng.choice([b"TTL", b"PTTL", b"EXPIRETIME", b"PEXPIRETIME", b"PERSIST"]), key]
    if pick == 23:
        return [b"KEYS", rng.choice([b"*", b"?", b"[a-c]", b"k*", b"*\\*", b"[^a]"])]
    if pick == 24:
        return [b"DBSIZE"]
    if pick == 25 and rng.random() < 0.1:
        return [rng.choice([b"FLUSHDB", b"FLUSHALL"]), *rng.choice([[], [b"ASYNC"], [b"x"]])]
    return [b"GET", key]


TIMING = {b"ttl", b"pttl", b"expiretime", b"pexpiretime"}


def assert_same(argv: list[bytes], ours: object, theirs: object) -> None:
    name = argv[0].lower()
    if name == b"keys" and isinstance(ours, list):
        ours, theirs = sorted(ours), sorted(theirs)  # type: ignore[arg-type]
    if name in TIMING and isinstance(ours, int) and ours >= 0:
        slack = 50 if name in (b"pttl", b"pexpiretime") else 1
        assert abs(ours - theirs) <= slack, (argv, ours, theirs)  # type: ignore[operator]
        return
    assert normalize(ours) == normalize(theirs), argv


@pytest.mark.parametrize("seed", range(4))
def test_random_sequences(redis: RawRedis, seed: int) -> None:
    rng = random.Random(seed)
    db = Keyspace()
    redis(b"FLUSHALL")
    for _ in range(1500):
        argv = random_command(rng)
        theirs = redis(*argv)
        if argv[0] == b"DBSIZE":  # Redis also counts expired keys not yet reclaimed; we do not
            theirs = len(redis(b"KEYS", b"*"))
        ours = call(db, *argv, now=int(time.time() * 1000))
        assert_same(argv, ours, theirs)
    now = int(time.time() * 1000)
    assert sorted(call(db, b"KEYS", b"*", now=now)) == sorted(redis(b"KEYS", b"*"))


def test_scan_sees_the_same_keys(redis: RawRedis) -> None:
    redis(b"FLUSHALL")
    db = Keyspace()
    now = int(time.time() * 1000)
    for i in range(300):
        call(db, b"SET", b"k%d" % i, b"v", now=now)
        redis(b"SET", b"k%d" % i, b"v")
    for options in ([], [b"MATCH", b"k1*"], [b"TYPE", b"string"], [b"MATCH", b"*[05]"]):
        found = {}
        for side, run in (("ours", lambda *a: call(db, *a, now=now)), ("redis", redis)):
            cursor, keys = b"0", set()
            while True:
                cursor, page = run(b"SCAN", cursor, b"COUNT", b"7", *options)
                keys.update(page)
                if cursor == b"0":
                    break
            found[side] = keys
        assert found["ours"] == found["redis"], options
