"""The real Redis tools against respkv: redis-cli and redis-benchmark."""

from __future__ import annotations

import re
import shutil
import subprocess

import hiredis
import pytest
import redis

from testsupport.processes import Node

pytestmark = pytest.mark.skipif(
    not shutil.which("redis-cli") or not shutil.which("redis-benchmark"),
    reason="redis-tools not installed",
)


def cli(node: Node, *args: str, stdin: bytes | None = None, code: int = 0) -> str:
    done = subprocess.run(["redis-cli", "-p", str(node.port), *args], input=stdin,
                          capture_output=True, timeout=30, check=False)
    assert done.returncode == code, done
    if code == 0:
        assert not done.stderr, done.stderr
    return done.stdout.decode()


def test_cli_set_get(node: Node, r: redis.Redis) -> None:
    assert cli(node, "set", "a", "b") == "OK\n"
    assert cli(node, "get", "a") == "b\n"
    assert cli(node, "--no-raw", "get", "a") == '"b"\n'
    assert cli(node, "--no-raw", "get", "missing") == "(nil)\n"
    assert cli(node, "--no-raw", "incr", "n") == "(integer) 1\n"
    assert cli(node, "--no-raw", "mget", "a", "missing") == '1) "b"\n2) (nil)\n'
    assert cli(node, "--no-raw", "get", "a", "extra") == (
        "(error) ERR wrong number of arguments for 'get' command\n")
    assert cli(node, "ping") == "PONG\n"
    assert r.get("a") == b"b"


def test_cli_binary_and_info(node: Node, r: redis.Redis) -> None:
    r.set("bin", b"x\x00y\nz")
    assert cli(node, "--no-raw", "get", "bin") == '"x\\x00y\\nz"\n'
    info = cli(node, "info", "server")
    assert "redis_version:7." in info
    assert "raft_role:leader" in cli(node, "info", "raft")


def test_cli_pipe(node: Node, r: redis.Redis) -> None:
    commands = [("SET", f"pipe:{i}", f"value-{i}") for i in range(1000)]
    commands += [("INCR", "pipe:count")] * 500 + [("MSET", "m1", "1", "m2", "2")]
    data = b"".join(hiredis.pack_command(c) for c in commands)
    out = cli(node, "--pipe", stdin=data)
    assert "errors: 0, replies: 1501" in out, out
    assert r.get("pipe:999") == b"value-999"
    assert r.get("pipe:count") == b"500"
    assert r.dbsize() == 1003


def test_cli_pipe_inline(node: Node, r: redis.Redis) -> None:
    data = b"".join(b"SET inline:%d %d\r\n" % (i, i) for i in range(200)) + b"BOGUS\r\n"
    out = cli(node, "--pipe", stdin=data, code=1)  # redis-cli exits 1 when a reply is an error
    assert "errors: 1, replies: 201" in out, out
    assert r.get("inline:199") == b"199"


_RPS = re.compile(r"^\s*([A-Z_]+(?: \(\d+ keys\))?): ([\d.]+) requests per second")


def benchmark(node: Node, *args: str) -> dict[str, float]:
    done = subprocess.run(["redis-benchmark", "-p", str(node.port), "-q", *args],
                          capture_output=True, timeout=120, check=False)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, out
    lines = [line for line in re.split(r"[\r\n]", out) if line.strip()]
    bad = [line for line in lines if re.search(r"err", line, re.IGNORECASE)]
    assert not bad, out
    rates = {}
    for line in lines:
        if match := _RPS.match(line):
            rates[match.group(1).split(" (")[0]] = float(match.group(2))
    return rates


def test_benchmark_set_get_incr_mset(node: Node, r: redis.Redis) -> None:
    rates = benchmark(node, "-t", "set,get,incr,mset", "-n", "2000")
    assert set(rates) == {"SET", "GET", "INCR", "MSET"}, rates
    assert all(rate > 0 for rate in rates.values()), rates
    assert r.get("counter:__rand_int__") == b"2000"  # every INCR was applied


def test_benchmark_pipelined(node: Node, r: redis.Redis) -> None:
    rates = benchmark(node, "-t", "set,get,incr,mset", "-n", "2000", "-P", "16")
    assert set(rates) == {"SET", "GET", "INCR", "MSET"}, rates
    assert r.get("counter:__rand_int__") == b"2000"


def test_benchmark_ping_inline(node: Node) -> None:
    rates = benchmark(node, "-t", "ping_inline,ping_mbulk", "-n", "2000")
    assert set(rates) == {"PING_INLINE", "PING_MBULK"}, rates
    rates = benchmark(node, "-t", "ping_inline", "-n", "2000", "-P", "16")
    assert set(rates) == {"PING_INLINE"}, rates


def test_benchmark_random_keys_and_data_size(node: Node, r: redis.Redis) -> None:
    benchmark(node, "-t", "set", "-n", "500", "-r", "100", "-d", "1000", "-c", "10")
    keys = r.keys("key:*")
    assert 1 <= len(keys) <= 100
    assert all(len(r.get(k)) == 1000 for k in keys[:10])
