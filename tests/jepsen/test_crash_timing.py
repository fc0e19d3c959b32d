"""Crashes in the middle of a snapshot install and of a log compaction, aimed by time.

Beside the named crash points (tests/replication/test_crash_points.py), which stop a
node at exact places, these tests hit whatever lies in between: they watch a node's
log for the line that starts the step ("installing snapshot", "snapshot taken" which
is followed by the compaction) and kill -9 the node at once or after a short,
varying delay, many times; after each crash the node must restart and end with
exactly the data every other node holds, nothing acknowledged missing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from testsupport.processes import Cluster, Node
from testsupport.waiting import wait_for

SNAPSHOT_ARGS = ("--set", "snapshot_entries=150", "--set", "snapshot_chunk_bytes=4096")
DELAYS = (0.0, 0.003, 0.01, 0.03)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path / "c", 3, SNAPSHOT_ARGS)
    try:
        made.start()
        yield made
    finally:
        made.stop()


def write_batch(cluster: Cluster, prefix: str, count: int, acked: dict[str, str]) -> None:
    """``count`` SETs, pipelined (one log entry each), all acknowledged."""
    client = cluster.leader().client(socket_timeout=10)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            pipe.set(f"{prefix}:{i}", f"{prefix}-{i}-{'x' * 40}")
        for i, ok in enumerate(pipe.execute()):
            assert ok is True
            acked[f"{prefix}:{i}"] = f"{prefix}-{i}-{'x' * 40}"
    finally:
        client.close()


def background_batch(cluster: Cluster, prefix: str) -> None:
    """Load while a node is crashed: its outcome is not checked (its leader may die)."""
    with contextlib.suppress(redis.RedisError, OSError, AssertionError, TimeoutError):
        write_batch(cluster, prefix, 400, {})


def kill_when_logged(node: Node, line: str, delay: float, timeout: float = 20.0) -> bool:
    """kill -9 ``node`` ``delay`` s after ``line`` first appears in its log (from now on)."""
    start = len(node.log())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in node.log()[start:]:
            if delay:
                time.sleep(delay)
            node.kill()
            return True
        if node.proc.poll() is not None:
            return False
        time.sleep(0.001)
    return False


def same_data(cluster: Cluster, acked: dict[str, str]) -> None:
    cluster.wait_caught_up(timeout=60)
    keys = sorted(acked)
    views = []
    for node in cluster.nodes:
        conn = redis.Connection(host="127.0.0.1", port=node.port, socket_timeout=10)
        try:
            conn.send_command("RESPKV.CONSISTENCY", "stale")
            conn.read_response()
            conn.send_command("DBSIZE")
            size = conn.read_response()
            values = []
            for i in range(0, len(keys), 1000):
                conn.send_command("MGET", *keys[i:i + 1000])
                values += [v.decode() if v else None for v in conn.read_response()]
        finally:
            conn.disconnect()
        missing = [k for k, v in zip(keys, values, strict=True) if v != acked[k]]
        assert not missing, f"{cluster.id_of(node)} lacks {len(missing)}: {missing[:5]}"
        views.append(size)
    assert len(set(views)) == 1, views


def test_crash_during_snapshot_install(cluster: Cluster):
    acked: dict[str, str] = {}
    follower = cluster.followers()[0]
    crashed = 0
    for round_, delay in enumerate(DELAYS):
        follower.kill()
        # more than the leader keeps in its log behind a snapshot (1000): the follower
        # can only catch up from a snapshot
        write_batch(cluster, f"r{round_}", 1400, acked)
        follower.start(wait=False)
        if kill_when_logged(follower, "installing snapshot", delay):
            crashed += 1
        follower.start(wait=False)
        follower.wait_ready(30)
        same_data(cluster, acked)
    assert crashed >= len(DELAYS) // 2, "the snapshot install was rarely hit"
    assert "installing snapshot" in follower.log()


def test_crash_during_snapshot_and_compaction(cluster: Cluster):
    acked: dict[str, str] = {}
    crashed = 0
    for round_, delay in enumerate(DELAYS):
        target = cluster.followers()[round_ % 2] if round_ % 3 else cluster.leader()
        # write in the background of the watch: a snapshot is taken every 150 entries
        writer = threading.Thread(target=background_batch, args=(cluster, f"c{round_}"))
        writer.start()
        if kill_when_logged(target, "snapshot taken", delay):
            crashed += 1
        writer.join(60)
        target.start(wait=False)
        target.wait_ready(30)
        wait_for(lambda: cluster.wait_leader(), 30, "a leader")
        # the background batch may have lost its leader: write what is checked afterwards
        write_batch(cluster, f"d{round_}", 50, acked)
        same_data(cluster, acked)
    assert crashed >= len(DELAYS) // 2
