"""Damaged files on real nodes: what the operator is told, and that following it works.

A WAL damaged in the middle refuses the start with one line naming the file, the
offset and ``--repair-wal``; a cluster member started with ``--repair-wal`` catches up
from the leader with every acknowledged write. A damaged state store refuses the
start with one line naming the file and how to rebuild it; doing what it says brings
the node back with its data.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from testsupport.ports import free_port
from testsupport.processes import SNAPSHOT_ARGS, Cluster, Node, command, local_values
from testsupport.waiting import wait_for


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path / "c", 3)
    yield made
    made.stop()


def write_keys(node: Node, count: int, prefix: str) -> dict[str, str]:
    client = node.client(socket_timeout=5)
    try:
        return {f"{prefix}{i}": f"v{i}" for i in range(count)
                if client.set(f"{prefix}{i}", f"v{i}")}
    finally:
        client.close()


def refused_start(node: Node) -> str:
    """Start the node, expect it to exit non-zero; the log lines it wrote."""
    start = len(node.log())
    node.start(wait=False)
    assert node.proc is not None and node.proc.wait(30) != 0
    text = node.log()[start:]
    assert "Traceback" not in text, text
    return text


def test_a_damaged_wal_is_refused_then_repaired_and_caught_up(cluster: Cluster) -> None:
    cluster.start()
    acked = write_keys(cluster.leader(), 300, "k")
    follower = cluster.followers()[0]
    follower.kill()
    segment = sorted((follower.dir / "raft" / "wal").glob("*.wal"))[0]
    data = bytearray(segment.read_bytes())
    spot = len(data) // 3
    data[spot] ^= 0xFF
    segment.write_bytes(bytes(data))
    acked.update(write_keys(cluster.leader(), 100, "after"))

    text = refused_start(follower)
    line = next(line for line in text.splitlines() if "corrupt WAL record" in line)
    found = re.search(r"(\S+\.wal): corrupt WAL record at byte offset (\d+)", line)
    assert found and Path(found.group(1)) == segment and int(found.group(2)) <= spot, line
    assert "--repair-wal" in line and "quorum" in line and "CLUSTER LEAVE" in line

    follower.args.append("--repair-wal")
    try:
        follower.start()
    finally:
        follower.args.remove("--repair-wal")
    assert list(segment.parent.glob(f"{segment.name}.corrupt-*"))  # moved aside, not deleted
    assert "repaired: cut at" in follower.log()
    cluster.wait_caught_up()
    keys = sorted(acked)
    assert local_values(follower, keys) == {k: acked[k].encode() for k in keys}
    # the repaired node is a whole member again: it takes the lead and serves writes
    target = cluster.id_of(follower)
    wait_for(lambda: command(cluster.leader().port, "RESPKV.TRANSFER", target) and
             cluster.leader() is follower, 20, "the repaired node to lead")
    assert command(follower.port, "SET", "on-the-repaired", "1") == b"OK"


def single_node(base: Path, *args: str) -> Node:
    return Node(free_port(), base / "n1", ["--node-id", "n1", "--shards", "1", *args])


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.kill()


def damage_store(node: Node) -> Path:
    store = node.dir / "data" / "g0.sqlite"
    with open(store, "r+b") as f:
        f.write(b"\0" * 100)  # the SQLite header
    return store


@pytest.mark.parametrize("with_snapshot", [True, False], ids=["snapshot", "log-only"])
def test_a_damaged_store_is_refused_and_rebuilt_as_told(
        nodes: list[Node], tmp_path: Path, with_snapshot: bool) -> None:
    node = single_node(tmp_path, *(SNAPSHOT_ARGS if with_snapshot else ()))
    nodes.append(node)
    node.start()
    acked = write_keys(node, 500, "k")
    snap_dir = node.dir / "raft" / "g0" / "snap"
    if with_snapshot:
        wait_for(lambda: list(snap_dir.glob("snap-*.sqlite")), 20, "a snapshot")
    acked.update(write_keys(node, 50, "after"))
    assert node.stop() == 0
    store = damage_store(node)

    line = next(line for line in refused_start(node).splitlines() if "damaged" in line)
    assert str(store) in line and "CLUSTER LEAVE" in line, line
    snapshots = sorted(snap_dir.glob("snap-*.sqlite"))
    if with_snapshot:  # told to copy the latest snapshot in its place
        assert str(snapshots[-1]) in line, line
    else:
        assert "never compacted" in line, line
    # do what the line says
    aside = tmp_path / "damaged.sqlite"
    shutil.move(store, aside)
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    if with_snapshot:
        shutil.copy(snapshots[-1], store)
    node.start()
    keys = sorted(acked)
    client = node.client()  # linearizable: after the log's replay
    try:
        assert [v.decode() for v in client.mget(keys)] == [acked[k] for k in keys]
    finally:
        client.close()
