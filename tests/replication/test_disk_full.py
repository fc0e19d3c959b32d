"""A full disk on a real node: writes refused with a clear error and counted, reads
go on, and writes resume as soon as the log has room again, even while the state
store lacks the room for its rebuild (which waits, then happens once there is room).
A leader whose disk fills faster than it refuses writes stays the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from respkv.raft.messages import ConfState, SnapshotMeta
from respkv.replication.snapshots import Snapshots
from respkv.storage.store import StoreError
from testsupport.disks import fill, small_tmpfs
from testsupport.info import parse_info
from testsupport.ports import free_port
from testsupport.processes import Cluster, Node, command
from testsupport.waiting import wait_for

MIB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "24m") as mount:
        yield mount



def persistence(node: Node) -> dict[str, str]:
    return parse_info(command(node.port, "INFO", "persistence", timeout=3))


def set_many(node: Node, prefix: str, count: int, size: int) -> list[object]:
    """Pipelined SETs; each reply or the error it got."""
    client = node.client(socket_timeout=10)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            pipe.set(f"{prefix}{i}", b"v" * size)
        return pipe.execute(raise_on_error=False)
    finally:
        client.close()


def test_writes_resume_while_the_store_rebuild_waits_for_room(small_disk: Path,
                                                              tmp_path: Path) -> None:
    # the dir is on the small disk, its log (written beside the dir) is not
    (small_disk / "n1").mkdir()
    (tmp_path / "n1").symlink_to(small_disk / "n1")
    node = Node(free_port(), tmp_path / "n1", ["--node-id", "n1", "--shards", "1"])
    filler = small_disk / "filler"
    try:
        node.start()
        assert all(r is True for r in set_many(node, "base", 300, 10_000))  # ~3 MiB
        replies: list[object] = []
        for attempt in range(3):
            # applied and in the log, not yet in the store (written once a second) when
            # the disk fills: the store's write fails (unless it went out just before)
            before = node.log().count("database or disk is full")
            replies += set_many(node, f"burst{attempt}-", 100, 10_000)
            fill(filler)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda n=before: node.log().count("database or disk is full") > n,
                         3, "the store's write to fail")
                break
            filler.unlink()
        else:
            raise AssertionError("the store never failed to write")
        refused = []
        for i in range(200):
            try:
                command(node.port, "SET", f"full{i}", "x" * 1000, timeout=5)
            except redis.ResponseError as error:
                refused.append(str(error))
                break
        assert refused and "No space left on device" in refused[0], refused
        assert command(node.port, "GET", "base0", timeout=3) == b"v" * 10_000  # reads go on
        info = persistence(node)
        assert info["disk_full"] == "1" and int(info["disk_full_refused_writes"]) >= 1

        # room for the log, not for a copy of the store
        os.truncate(filler, filler.stat().st_size - 3 * MIB)
        wait_for(lambda: command(node.port, "SET", "resumed", "1", timeout=3) == b"OK", 5,
                 "writes to resume")
        # ... and they go on being taken while the store waits for its rebuild
        wait_for(lambda: "state store write failed" in node.log(), 10, "the store to fail")
        for i in range(20):
            assert command(node.port, "SET", f"later{i}", "y", timeout=3) == b"OK"
        wait_for(lambda: persistence(node)["store_rebuild_deferred"] == "1", 5,
                 "the rebuild to wait")
        assert persistence(node)["disk_full"] == "0"
        assert command(node.port, "SET", "still", "1", timeout=3) == b"OK"

        filler.unlink()  # room for everything: the store is rebuilt
        wait_for(lambda: persistence(node)["store_rebuild_deferred"] == "0", 10,
                 "the rebuild")
        wait_for(lambda: "state store rebuilt" in node.log(), 10, "the rebuild's log line")
        assert node.stop() == 0
        node.start()
        acked = [f"base{i}" for i in range(300)] + [
            f"burst{i // 100}-{i % 100}" for i, r in enumerate(replies) if r is True]
        client = node.client()
        try:
            assert all(v == b"v" * 10_000 for v in client.mget(acked))
            assert client.mget([f"later{i}" for i in range(20)]) == [b"y"] * 20
            assert client.get("resumed") == b"1"
        finally:
            client.close()
    finally:
        node.kill()


def terms(cluster: Cluster) -> set[tuple[str, str]]:
    return {(f["raft_term"], f["raft_leader"]) for f in cluster.infos().values()}


def test_a_leader_whose_disk_fills_refuses_writes_without_an_election(
        small_disk: Path, tmp_path: Path) -> None:
    base = tmp_path / "c"
    base.mkdir()
    (small_disk / "n1").mkdir()
    (base / "n1").symlink_to(small_disk / "n1")  # only n1's disk is small
    cluster = Cluster(base, 3)
    filler = small_disk / "filler"
    try:
        cluster.start()
        leader = cluster.leader()
        if leader is not cluster.node("n1"):
            command(leader.port, "RESPKV.TRANSFER", "n1")
            wait_for(lambda: cluster.leader() is cluster.node("n1"), 15, "n1 to lead")
        leader = cluster.node("n1")
        assert command(leader.port, "SET", "before", "b", timeout=5) == b"OK"
        before = terms(cluster)
        assert len(before) == 1
        fill(filler)  # faster than the free-space check: the next fsync finds it full
        refused = None
        for i in range(1000):  # each needs new blocks: the first finds the disk full
            try:
                command(leader.port, "SET", f"k{i}", "v" * 5000, timeout=5)
            except redis.ResponseError as error:
                refused = str(error)
                break
        assert refused is not None and "No space left on device" in refused
        assert "released the log's reserve" in leader.log(), (refused, i, os.listdir(
            small_disk / "n1" / "raft" / "wal"))
        # an election timeout and more: the same leader in the same term, reads go on
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert terms(cluster) == before
            assert command(leader.port, "GET", "before", timeout=3) == b"b"
        filler.unlink()
        wait_for(lambda: command(leader.port, "SET", "resumed", "1", timeout=3) == b"OK", 5,
                 "writes to resume")
        assert terms(cluster) == before
        wait_for(lambda: (small_disk / "n1" / "raft" / "wal" / "reserve").exists(), 5,
                 "the reserve to be taken back")
    finally:
        cluster.stop()


class FailedStoreMachine:
    """A state machine whose store write fails at the next persist (as on a full disk)."""

    def __init__(self, failed: bool) -> None:
        self.store_failed = failed
        self.copies = 0

    def persist(self) -> None:
        self.store_failed = True

    def snapshot(self, dest: Path) -> tuple[int, int]:
        self.copies += 1
        raise AssertionError("a failed store was copied")


def snapshots_of(machine: FailedStoreMachine, snap_dir: Path) -> Snapshots:
    config = SimpleNamespace(faults=None, snapshot_entries=1, snapshot_bytes=1)
    return Snapshots("g0", snap_dir, None, machine, None, None, None, config, 0,
                     lambda: None, lambda: None, lambda message: None)


def test_no_snapshot_of_a_failed_store(tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """Between the space coming back and the store's rebuild, a snapshot waits: it
    used to be tried every tick and log 'snapshot failed' with a traceback each time."""
    snapshots = snapshots_of(FailedStoreMachine(failed=True), tmp_path)

    async def looked_at() -> bool:
        snapshots.maybe_take(1000)  # far past snapshot_entries
        return snapshots.taking

    assert asyncio.run(looked_at()) is False
    failing = FailedStoreMachine(failed=False)  # the write before the copy fails
    with caplog.at_level(logging.ERROR):
        assert asyncio.run(snapshots_of(failing, tmp_path).take()) is None
    assert failing.copies == 0 and not caplog.records


class StoreFailedBeforeInstall:
    """A state machine whose store failed on a full disk and is not rebuilt yet."""

    def __init__(self) -> None:
        self.applied_index = 10
        self.paused = False
        self.store_failed = True
        self.restored: list[Path] = []

    def pause(self) -> None:
        self.paused = True

    def flush(self) -> None:
        raise StoreError("state store g0.sqlite failed earlier: database or disk is full")

    def restore(self, snapshot: Path) -> None:
        self.restored.append(snapshot)
        self.applied_index = 500
        self.paused = False


def test_a_snapshot_replaces_a_failed_store(tmp_path: Path) -> None:
    """A follower whose store failed on a full disk and which is sent a snapshot (the
    leader compacted past it) before the store's rebuild installs it: the flush of the
    failed store before the swap used to fail the group's Raft loop, and the group
    stayed down on that node until a restart."""
    machine = StoreFailedBeforeInstall()
    compacted: list[tuple[int, int]] = []
    snapshots = snapshots_of(machine, tmp_path)
    snapshots.faults = SimpleNamespace(crash_point=lambda point: None)
    snapshots.wal = SimpleNamespace(compact=lambda index, term: compacted.append((index, term)))
    received = tmp_path / "received-1"
    received.write_bytes(b"snapshot")
    snapshots.incoming[500] = received
    asyncio.run(snapshots.install(SnapshotMeta(500, 3, ConfState(("n1", "n2", "n3"), ()))))
    assert machine.restored == [received] and compacted == [(500, 3)]
    assert snapshots.path(500).read_bytes() == b"snapshot"  # kept to send on
