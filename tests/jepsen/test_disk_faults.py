"""Disk faults on real nodes: a torn write at the end of the log, a corrupted record in
the middle of a segment, a missing snapshot file, a full disk.

Each test damages one node's files while it is down (kill -9), restarts it and checks
what an operator expects: a torn tail is cut and the node catches up with nothing
acknowledged missing; a corrupt record in the middle is refused with a message naming
the file and the offset; a lost snapshot file does not leave a hole in the data; a
full disk refuses writes with a clear error, keeps serving reads and resumes once space
is freed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from testsupport.disks import fill, small_tmpfs
from testsupport.ports import free_port
from testsupport.processes import Cluster, Node, command, local_values
from testsupport.waiting import wait_for

SNAPSHOT_ARGS = ("--set", "snapshot_entries=200", "--set", "snapshot_chunk_bytes=65536")


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for cluster in made:
        cluster.stop()


def start(clusters: list[Cluster], base: Path, args: tuple[str, ...] = ()) -> Cluster:
    cluster = Cluster(base, 3, args)
    clusters.append(cluster)
    return cluster.start()


def write_keys(cluster: Cluster, count: int, prefix: str = "k") -> dict[str, str]:
    client = cluster.leader().client(socket_timeout=5)
    try:
        acked = {}
        for i in range(count):
            key, value = f"{prefix}{i}", f"v{i}"
            if client.set(key, value):
                acked[key] = value
        return acked
    finally:
        client.close()


def wal_segments(node: Node) -> list[Path]:
    return sorted((node.dir / "raft" / "wal").glob("*.wal"))


def test_torn_tail_is_cut_and_the_node_catches_up(clusters, tmp_path):
    cluster = start(clusters, tmp_path / "c")
    acked = write_keys(cluster, 300)
    follower = cluster.followers()[0]
    follower.kill()
    segment = wal_segments(follower)[-1]
    size = segment.stat().st_size
    with open(segment, "ab") as out:  # half a record: a header promising more bytes
        out.write(b"\x12\x34\x56\x78" + (5000).to_bytes(4, "little") + b"\x01partial")
    acked.update(write_keys(cluster, 100, prefix="after"))
    follower.start()
    cluster.wait_caught_up()
    assert "cutting torn tail" in follower.log()
    assert f"at byte offset {size}" in follower.log()
    keys = sorted(acked)
    assert local_values(follower, keys) == {k: acked[k].encode() for k in keys}


def test_corrupt_record_in_the_middle_is_refused_with_file_and_offset(clusters, tmp_path):
    cluster = start(clusters, tmp_path / "c")
    acked = write_keys(cluster, 300)
    follower = cluster.followers()[0]
    follower.kill()
    segment = wal_segments(follower)[0]
    data = bytearray(segment.read_bytes())
    spot = len(data) // 3
    data[spot] ^= 0xFF
    segment.write_bytes(bytes(data))
    follower.start(wait=False)
    assert follower.proc.wait(30) != 0
    text = follower.log()
    found = re.search(r"(\S+\.wal): corrupt WAL record at byte offset (\d+)", text)
    assert found, text[-2000:]
    assert Path(found.group(1)) == segment
    assert int(found.group(2)) <= spot
    # the others go on, with everything acknowledged
    others = [n for n in cluster.nodes if n is not follower]
    leader = cluster.wait_leader(among=others)
    client = leader.client(socket_timeout=5)
    try:
        assert client.set("still", "writable")
        assert [v.decode() for v in client.mget(sorted(acked))] == [
            acked[k] for k in sorted(acked)]
    finally:
        client.close()


def test_missing_snapshot_file(clusters, tmp_path):
    """A follower whose snapshot file was lost while it was down: it must not come
    back with a hole in its data; refusing to start with a clear message is fine."""
    cluster = start(clusters, tmp_path / "c", SNAPSHOT_ARGS)
    acked = write_keys(cluster, 600)
    follower = cluster.followers()[0]
    snap_dir = follower.dir / "raft" / "g0" / "snap"
    wait_for(lambda: list(snap_dir.glob("snap-*.sqlite")), 30, "a snapshot on the follower")
    cluster.wait_caught_up()
    follower.kill()
    for path in snap_dir.glob("snap-*.sqlite"):
        path.unlink()
    acked.update(write_keys(cluster, 100, prefix="after"))
    follower.start(wait=False)
    try:
        follower.wait_ready(20)
    except AssertionError:
        assert follower.proc.poll() not in (None, 0)
        assert "snap" in follower.log().lower()
        return
    cluster.wait_caught_up()
    keys = sorted(acked)
    assert local_values(follower, keys) == {k: acked[k].encode() for k in keys}
    # now let it lead while another node falls behind and comes back (from the log or,
    # if the log was compacted past it, from a snapshot the leader must take anew)
    command(cluster.leader().port, "RESPKV.TRANSFER", cluster.id_of(follower))
    wait_for(lambda: cluster.leader() is follower, 15, "the follower to lead")
    lagging = next(n for n in cluster.nodes if n is not follower and n.proc.poll() is None
                   and n is not cluster.leader())
    lagging.kill()
    acked.update(write_keys(cluster, 600, prefix="late"))
    lagging.start()
    cluster.wait_caught_up()
    keys = sorted(acked)
    assert local_values(lagging, keys) == {k: acked[k].encode() for k in keys}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount



def test_full_disk_refuses_writes_clearly_and_recovers(small_disk):
    node = Node(free_port(), small_disk / "n1", ["--node-id", "n1"])
    try:
        node.start()
        acked = {}
        for i in range(50):
            assert command(node.port, "SET", f"k{i}", "x" * 100) == b"OK"
            acked[f"k{i}"] = "x" * 100
        fill(small_disk / "filler")
        errors = []
        for i in range(50, 400):
            try:
                if command(node.port, "SET", f"k{i}", "y" * 2000, timeout=3) == b"OK":
                    acked[f"k{i}"] = "y" * 2000
            except redis.ResponseError as error:
                errors.append(str(error))
                if len(errors) >= 3:
                    break
        assert errors, "writes on a full disk were all acknowledged"
        assert any("space" in e.lower() or "disk" in e.lower() for e in errors), errors
        assert command(node.port, "GET", "k0", timeout=3) is not None  # reads go on
        (small_disk / "filler").unlink()
        wait_for(lambda: command(node.port, "SET", "resumed", "1", timeout=3), 20,
                 "writes to resume")
        assert node.stop(timeout=15) == 0
        node.start()
        assert all(command(node.port, "GET", k) is not None for k in acked)
        assert command(node.port, "GET", "resumed") == b"1"
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.kill()
