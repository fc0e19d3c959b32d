"""A job queue library from PyPI (huey) on a real 3-node cluster: tasks queued, run by
huey's own consumer threads, their results, a failing task, a scheduled one (huey
moves due tasks from its schedule with a Lua script) and a task lock; every node then
holds the same queue.

huey talks to one server with a plain client, as to a Redis primary: the cluster runs
one shard, and huey is given its leader."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from huey import RedisHuey
from huey.exceptions import TaskException

from testsupport.processes import Cluster, raft_info
from testsupport.waiting import wait_for


def test_huey_runs_jobs_on_the_cluster(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(args=["--shards", "1"])
    leader = cluster.leader()
    huey = RedisHuey("jobs", host="127.0.0.1", port=leader.port, results=True)

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    @huey.task()
    def fail() -> None:
        raise ValueError("as planned")

    results = [add(i, 100) for i in range(30)]
    failed = fail()
    later = add.schedule((1, 2), eta=datetime.datetime.now() + datetime.timedelta(seconds=1))
    consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False,
                                    check_worker_health=False, scheduler_interval=1)
    consumer.start()
    try:
        assert [r.get(blocking=True, timeout=20) for r in results] == \
            [i + 100 for i in range(30)]
        assert later.get(blocking=True, timeout=20) == 3
        with pytest.raises(TaskException, match="as planned"):
            failed.get(blocking=True, timeout=20)
    finally:
        consumer.stop(graceful=True)
    assert huey.pending_count() == 0 and huey.scheduled_count() == 0
    lock = huey.lock_task("nightly")
    with lock:
        assert lock.is_locked()
    assert not lock.is_locked()
    cluster.wait_applied(int(raft_info(leader)["raft_commit_index"]))
    for node in cluster.nodes:  # the queue's state is the same everywhere
        reader = node.client()
        reader.execute_command("RESPKV.CONSISTENCY", "stale")
        wait_for(lambda r=reader: r.llen("huey.redis.jobs") == 0, 5, "the queue drained")
        reader.close()
