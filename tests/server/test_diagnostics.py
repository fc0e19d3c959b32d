"""INFO commandstats / errorstats / latencystats, SLOWLOG and LATENCY on a real node,
their replies diffed against a real redis-server where Redis has them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis

from respkv.config import Config
from respkv.server.slowlog import SlowLog
from testsupport.ports import free_port
from testsupport.processes import Node, redis_server


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node for the module, DEBUG allowed (DEBUG SLEEP makes a slow command)."""
    started = Node(free_port(), tmp_path_factory.mktemp("node") / "n1",
                   ["--set", "enable-debug-command=yes"]).start()
    yield started
    assert started.stop() == 0, started.log()


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with redis_server("--enable-debug-command", "yes") as port:
        yield port


def _raw(port: int) -> redis.Redis:
    """A client that parses nothing (no HELLO or CLIENT SETINFO before our commands)."""
    return redis.Redis(port=port, socket_timeout=10, protocol=2)


def _stats(client: redis.Redis, section: str) -> dict[str, dict[str, float]]:
    """One INFO section, each ``a=1,b=2`` line as redis-py parses it."""
    return client.info(section)


def test_commandstats_time_and_count_rejected_and_failed_calls(node: Node) -> None:
    c = _raw(node.port)
    c.execute_command("CONFIG", "RESETSTAT")
    for i in range(5):
        c.execute_command("SET", f"k{i}", "v")
    c.execute_command("SET", "list", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.execute_command("LPUSH", "list", "x")
    with pytest.raises(redis.ResponseError, match="wrong number"):
        c.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        c.execute_command("NOSUCHCOMMAND")
    with pytest.raises(redis.ResponseError, match="unknown subcommand"):
        c.execute_command("CLIENT", "NOSUCHSUB")
    stats = _stats(c, "commandstats")
    set_ = stats["cmdstat_set"]
    assert set_["calls"] == 6 and set_["usec"] > 0  # a write waits on its fsync
    assert set_["usec_per_call"] == pytest.approx(set_["usec"] / 6, abs=0.01)
    assert stats["cmdstat_lpush"]["failed_calls"] == 1
    get = stats["cmdstat_get"]
    assert (get["calls"], get["rejected_calls"]) == (0, 1)
    assert "cmdstat_client" not in stats  # as in Redis: an unknown subcommand is no call
    errors = _stats(c, "errorstats")
    assert errors == {"errorstat_ERR": {"count": 3}, "errorstat_WRONGTYPE": {"count": 1}}
    assert int(_stats(c, "stats")["total_error_replies"]) == 4
    latency = _stats(c, "latencystats")
    percentiles = latency["latency_percentiles_usec_set"]
    assert list(percentiles) == ["p50", "p99", "p99.9"]
    assert 0 < percentiles["p50"] <= percentiles["p99"] <= percentiles["p99.9"]
    c.execute_command("CONFIG", "RESETSTAT")
    assert "cmdstat_set" not in _stats(c, "commandstats")
    assert _stats(c, "errorstats") == {}


def test_commandstats_lines_have_redis_fields(node: Node, redis_port: int) -> None:
    def keys(port: int) -> list[str]:
        c = _raw(port)
        c.execute_command("SET", "a", "b")
        return [*_stats(c, "commandstats")["cmdstat_set"],
                *_stats(c, "latencystats")["latency_percentiles_usec_set"]]
    assert keys(node.port) == keys(redis_port)


def _slowlog_run(port: int) -> list:
    c = _raw(port)
    c.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "0")
    c.execute_command("SLOWLOG", "RESET")
    c.execute_command("CLIENT", "SETNAME", "slowpoke")
    c.execute_command("RPUSH", "slowlist", *range(40))
    c.execute_command("SET", "slowkey", "x" * 140)
    c.execute_command("ECHO", "hi")
    entries = c.execute_command("SLOWLOG", "GET", "4")
    length = c.execute_command("SLOWLOG", "LEN")
    c.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "10000")
    errors = []
    for args in (("GET", "-2"), ("GET", "x"), ("GET", "1", "2"), ("NOPE",)):
        try:
            c.execute_command("SLOWLOG", *args)
        except redis.ResponseError as error:
            errors.append(str(error))
    help_ = c.execute_command("SLOWLOG", "HELP")
    return [entries, length, errors, help_]


def test_slowlog_entries_as_redis(node: Node, redis_port: int) -> None:
    ours, theirs = _slowlog_run(node.port), _slowlog_run(redis_port)
    entries, length, errors, help_ = ours
    assert (length, errors, help_) == tuple(theirs[1:])
    assert len(entries) == len(theirs[0]) == 4
    for mine, redis_entry in zip(entries, theirs[0], strict=True):
        assert [type(v) for v in mine] == [type(v) for v in redis_entry]
        assert mine[3] == redis_entry[3]  # the arguments, truncated and redacted alike
        assert mine[4].startswith(b"127.0.0.1:") and mine[5] == redis_entry[5]
    assert [e[0] for e in entries] == sorted((e[0] for e in entries), reverse=True)


def test_slowlog_threshold_and_max_len(node: Node) -> None:
    c = _raw(node.port)
    c.execute_command("SLOWLOG", "RESET")
    c.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "-1")
    c.execute_command("DEBUG", "SLEEP", "0.02")
    assert c.execute_command("SLOWLOG", "LEN") == 0
    c.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "15000")
    c.execute_command("DEBUG", "SLEEP", "0.02")
    entry = c.execute_command("SLOWLOG", "GET")[0]
    assert entry[3] == [b"DEBUG", b"SLEEP", b"0.02"] and entry[2] >= 15_000  # the threshold
    c.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "0", "slowlog-max-len", "3")
    for _ in range(5):
        c.execute_command("PING")
    assert c.execute_command("SLOWLOG", "LEN") == 3
    c.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "10000",
                      "slowlog-max-len", "128")
    for name, value, error in (
            ("slowlog-log-slower-than", "abc", "argument couldn't be parsed into an integer"),
            ("slowlog-max-len", "-1", "argument must be between 0 and 9223372036854775807 "
             "inclusive"),
            ("latency-monitor-threshold", "-1", "argument must be between 0 and "
             "9223372036854775807 inclusive")):
        with pytest.raises(redis.ResponseError) as refused:
            c.execute_command("CONFIG", "SET", name, value)
        assert str(refused.value) == f"CONFIG SET failed (possibly related to argument " \
            f"'{name}') - {error}"
    assert c.execute_command("SLOWLOG", "RESET") == b"OK"
    assert c.execute_command("SLOWLOG", "LEN") == 0


def test_latency_command_fsync_and_event_loop_events(node: Node) -> None:
    c = _raw(node.port)
    c.execute_command("LATENCY", "RESET")
    c.execute_command("DEBUG", "SLEEP", "0.03")
    assert c.execute_command("LATENCY", "LATEST") == []  # off by default, as Redis
    c.execute_command("CONFIG", "SET", "latency-monitor-threshold", "20")
    try:
        c.execute_command("DEBUG", "SLEEP", "0.03")
        c.execute_command("DEBUG", "FSYNC-DELAY", "40")  # on the loop: it stalls
        c.execute_command("SET", "slow-disk", "v")
    finally:
        c.execute_command("DEBUG", "FSYNC-DELAY", "0")
        c.execute_command("CONFIG", "SET", "latency-monitor-threshold", "0")
    latest = {e[0]: e[1:] for e in c.execute_command("LATENCY", "LATEST")}
    assert {b"command", b"fsync", b"event-loop"} <= set(latest)
    when, last, worst = latest[b"command"]
    assert 20 <= last <= worst and when > 1_600_000_000
    assert latest[b"fsync"][1] >= 40
    assert latest[b"event-loop"][1] >= 20  # the loop's timer woke at most 10 ms early
    [[at, ms]] = c.execute_command("LATENCY", "HISTORY", "command")[-1:]
    assert (at, ms) == (when, last)
    assert c.execute_command("LATENCY", "HISTORY", "nosuchevent") == []
    assert c.execute_command("LATENCY", "RESET", "command", "nosuchevent") == 1
    assert b"command" not in {e[0] for e in c.execute_command("LATENCY", "LATEST")}
    unknown = re.escape("unknown subcommand 'NOPE'. Try LATENCY HELP.")
    with pytest.raises(redis.ResponseError, match=unknown):
        c.execute_command("LATENCY", "NOPE")
    with pytest.raises(redis.ResponseError, match=re.escape("'latency|history' command")):
        c.execute_command("LATENCY", "HISTORY")


def test_latency_help_lists_only_what_is_there(node: Node, redis_port: int) -> None:
    ours = _raw(node.port).execute_command("LATENCY", "HELP")
    theirs = _raw(redis_port).execute_command("LATENCY", "HELP")
    assert ours[0] == theirs[0] and set(ours) <= set(theirs)


def test_slowlog_never_keeps_a_password() -> None:
    log = SlowLog(Config())
    log.add([b"AUTH", b"user", b"secret"], 5, "127.0.0.1:1", b"")
    log.add([b"HELLO", b"3", b"AUTH", b"user", b"secret", b"SETNAME", b"x"], 5, "a:1", b"")
    hello, auth = log.newest(-1)
    assert auth[3] == [b"AUTH", b"(redacted)", b"(redacted)"]
    assert hello[3] == [b"HELLO", b"3", b"AUTH", b"(redacted)", b"(redacted)", b"SETNAME", b"x"]
