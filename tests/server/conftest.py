from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from testsupport.ports import free_port
from testsupport.processes import Node


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: seconds-long tests (benchmarks, crash loops); deselect with -m 'not slow'"
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One respkv server for the whole module."""
    started = Node(free_port(), tmp_path_factory.mktemp("node") / "n1").start()
    yield started
    code = started.stop()
    assert code == 0, started.log()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def any_protocol(node: Node, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """redis-py in RESP2 and in RESP3, on an empty keyspace."""
    client = node.client(protocol=request.param)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def r(node: Node) -> Iterator[redis.Redis]:
    """A redis-py client on an empty keyspace."""
    client = node.client()
    client.flushall()
    yield client
    client.close()
