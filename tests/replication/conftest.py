"""Fixtures for the cluster tests: real respkv processes on 127.0.0.1.

``make_cluster(size, args)`` starts a fresh cluster for one test; every
process it started is stopped by its PID when the test ends, whatever happened.
``shared_cluster`` is one three-node cluster for the tests that only talk to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testsupport.processes import Cluster

# Small, frequent snapshots: several chunks for a few MiB of data.


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Cluster]:
    def make(size: int = 3, args: tuple[str, ...] | list[str] = (), start: bool = True) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made)}", size, args)
        made.append(cluster)
        return cluster.start() if start else cluster

    made: list[Cluster] = []

    def stop_all() -> None:
        for cluster in made:
            cluster.stop()

    request.addfinalizer(stop_all)
    return make


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("shared"), 3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
