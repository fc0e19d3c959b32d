"""Named crash points in snapshot taking, snapshot install and log compaction.

A node started with ``unsafe-test-faults crash-at=<point>`` exits at once (like kill -9) when it
reaches that point; restarted without it, it must come back consistent: every
acknowledged write present, caught up with the leader, and serving.
"""

from __future__ import annotations

from collections.abc import Callable

from respkv.faults import CRASH_EXIT_CODE, CrashPoint
from testsupport.processes import SNAPSHOT_ARGS, Cluster, Node, local_values

TAKING = [p for p in CrashPoint if not p.startswith("install")]
INSTALLING = [p for p in CrashPoint if p.startswith("install")]


def write(cluster: Cluster, prefix: str, count: int, acked: dict[str, bytes]) -> None:
    client = cluster.leader().client()
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            pipe.set(f"{prefix}:{i}", f"{prefix}-{i}")
        for i, ok in enumerate(pipe.execute()):
            if ok is True:
                acked[f"{prefix}:{i}"] = f"{prefix}-{i}".encode()
    finally:
        client.close()
    assert len(acked) >= count


def crash_then_recover(cluster: Cluster, node: Node, point: str,
                       acked: dict[str, bytes], cause: Callable[[], None]) -> None:
    plain_args = list(node.args)
    node.args += ["--set", f"unsafe-test-faults=crash-at={point}"]
    node.start(wait=False)
    cause()
    assert node.proc.wait(60) == CRASH_EXIT_CODE, f"{point} was never reached:\n{node.log()}"
    assert f"point={point}" in node.log()
    node.args = plain_args
    node.start()
    cluster.wait_caught_up(timeout=60)
    keys = sorted(acked)
    values = local_values(node, keys)
    missing = [k for k in keys if values[k] != acked[k]]
    assert not missing, f"after {point}: {len(missing)} acknowledged writes missing"


def test_crash_while_taking_a_snapshot_or_compacting(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(args=SNAPSHOT_ARGS)
    acked: dict[str, bytes] = {}
    node = cluster.followers()[0]
    for n, point in enumerate(TAKING):
        node.kill()
        crash_then_recover(cluster, node, point, acked,
                           lambda n=n: write(cluster, f"take{n}", 400, acked))


def test_crash_while_installing_a_snapshot(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(args=SNAPSHOT_ARGS)
    acked: dict[str, bytes] = {}
    node = cluster.followers()[0]
    for n, point in enumerate(INSTALLING):
        node.kill()
        # far enough behind that the leader's log no longer reaches it: a snapshot
        write(cluster, f"install{n}", 1500, acked)
        crash_then_recover(cluster, node, point, acked, lambda: None)
    # and it can still lead
    assert cluster.leader().client().set("after", "all") is True
