"""Config directives of the client limits: Redis' forms, ranges and texts."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from respkv.config import RESERVED_FDS, BufferLimit, Config, ConfigError, client_capacity


def test_output_limits_set_class_by_class() -> None:
    config = Config()
    config.set("client-output-buffer-limit", "normal 1mb 512kb 10")
    config.set("client-output-buffer-limit", "replica 1k 2k 3 pubsub 0 0 0")
    limits = config.client_output_buffer_limit
    assert limits.normal == BufferLimit(1 << 20, 512 << 10, 10)
    assert limits.slave == BufferLimit(1000, 2000, 3)
    assert limits.pubsub.off
    assert config.get("client-output-buffer-limit") == (
        "normal 1048576 524288 10 slave 1000 2000 3 pubsub 0 0 0")


@pytest.mark.parametrize(("value", "error"), [
    ("normal 1 2", "Wrong number of arguments in buffer limit configuration."),
    ("master 1 2 3", "Invalid client class specified in buffer limit configuration."),
    ("normal 1 2 x", "Error in hard, soft or soft_seconds setting in buffer limit "
                     "configuration."),
    ("normal 1 -2 3", "Error in hard, soft or soft_seconds setting in buffer limit "
                      "configuration."),
])
def test_output_limits_refused_as_redis(value: str, error: str) -> None:
    config = Config()
    with pytest.raises(ConfigError) as caught:
        config.set("client-output-buffer-limit", value)
    assert str(caught.value) == error
    assert config.get("client-output-buffer-limit") == (
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60")


def test_runtime_minimums_only_at_runtime() -> None:
    config = Config()
    config.set("proto-max-bulk-len", "1000")  # a file or flag: a test's small limit
    config.set("client-query-buffer-limit", "1000")
    assert (config.proto_max_bulk_len, config.client_query_buffer_limit) == (1000, 1000)
    for name in ("proto-max-bulk-len", "client-query-buffer-limit"):
        with pytest.raises(ConfigError, match=r"^argument must be between 1048576 and "
                                              r"9223372036854775807 inclusive$"):
            config.set(name, "1048575", runtime=True)
        config.set(name, "1mb", runtime=True)


@pytest.mark.parametrize(("name", "value", "text"), [
    ("maxclients", 0, "argument must be between 1 and 4294967295 inclusive"),
    ("timeout", -1, "argument must be between 0 and 2147483647 inclusive"),
])
def test_ranges_everywhere(name: str, value: int, text: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: {text}$"):
        Config(**{name: value})  # at start: the directive named
    config = Config()
    with pytest.raises(ConfigError, match=f"^{text}$"):
        config.set(name, str(value), runtime=True)  # CONFIG SET: Redis' text


def test_client_capacity_follows_the_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert client_capacity(10) == 10
    if hard != resource.RLIM_INFINITY:
        assert client_capacity(hard * 2) == hard - RESERVED_FDS
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))  # as it was


def test_maxmemory_directives_in_a_file(tmp_path: Path) -> None:
    conf = tmp_path / "respkv.conf"
    conf.write_text("port 7001\nmaxmemory 100mb\nmaxmemory-policy ALLKEYS-LRU\n"
                    "maxmemory-samples 10\n")
    config = Config.load(str(conf), {})
    assert (config.maxmemory, config.maxmemory_policy, config.maxmemory_samples) == (
        100 << 20, "allkeys-lru", 10)
    assert Config().maxmemory == 0 and Config().maxmemory_policy == "noeviction"
    for bad in ("maxmemory-policy lru\n", "maxmemory 1.5gb\n", "maxmemory-samples 0\n"):
        conf.write_text(bad)
        with pytest.raises(ConfigError):
            Config.load(str(conf), {})


def test_read_consistency_and_the_lease_margin() -> None:
    config = Config.load(None, {}, [("read-consistency", "LEASE")])
    assert config.read_consistency == "linearizable"  # the older name
    assert Config.load(None, {}, [("read-consistency", "strict")]).read_consistency == "strict"
    with pytest.raises(ConfigError, match="linearizable, strict or stale"):
        Config.load(None, {}, [("read-consistency", "eventual")])
    assert config.lease_margin_ticks() == 1  # 50 ms of 50 ms ticks
    assert Config.load(None, {}, [("lease-margin-ms", "120")]).lease_margin_ticks() == 3
    for margin in ("0", "500"):  # the lease would be longer than it is safe, or nothing
        with pytest.raises(ConfigError, match="lease-margin-ms"):
            Config.load(None, {}, [("lease-margin-ms", margin)])
