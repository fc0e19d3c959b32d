"""No group freezes unseen: an exception in a group's code fences that group on that
node (one traceback in the log, counted in INFO, -CLUSTERDOWN with the reason) while
the other members go on; a group that does not advance while requests wait on it is
reported by the watchdog."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import pytest
import redis

from testsupport.processes import Cluster, raft_info
from testsupport.waiting import wait_for

BUG = ["--set", "unsafe-test-faults=apply-bug=poison"]


def three_nodes_with_a_sick_follower(make_cluster: Callable[..., Cluster]) -> Cluster:
    """n1 leads; n2 raises when it applies an entry naming the key ``poison``."""
    cluster = make_cluster(3, start=False)
    first = cluster.new_node("n1").start()
    cluster.wait_leader()
    for node_id, args in (("n2", BUG), ("n3", [])):
        cluster.new_node(node_id, join=first, args=args).start()
    cluster.wait_voters(set(cluster.node_ids))
    return cluster


def test_a_bug_fences_the_group_on_its_node_and_the_others_go_on(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = three_nodes_with_a_sick_follower(make_cluster)
    leader, sick = cluster.node("n1"), cluster.node("n2")
    client = leader.client()
    assert client.set("before", "1") is True
    assert client.set("poison", "x") is True  # n1 and n3 make the quorum
    wait_for(lambda: raft_info(sick).get("raft_groups_down") == "g0", timeout=10,
             what="n2 to fence g0")
    info = raft_info(sick)
    assert info["raft_failures"] == "1"
    reason = "group g0 is down on this node: .* failed: RuntimeError: apply-bug test fault"
    for call in (lambda c: c.get("before"), lambda c: c.set("k", "v")):
        with pytest.raises(redis.exceptions.ClusterDownError, match=reason):
            call(sick.client())
    log = sick.log()
    assert log.count("group stopped on this node") == 1 and log.count("Traceback") == 1, log
    # the others commit without it (it votes no more: they are the quorum now)
    assert client.set("later", "3") is True
    # a restart without the bug brings the group back, with everything
    sick.stop()
    sick.args = [a for a in sick.args if a not in BUG]
    sick.start()
    wait_for(lambda: sick.client().get("later") == b"3", timeout=20, what="n2 caught up")
    assert sick.client().get("poison") == b"x" and sick.client().get("before") == b"1"
    assert raft_info(sick)["raft_groups_down"] == ""


def test_the_watchdog_reports_a_group_that_does_not_advance(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    followers = cluster.followers()
    for node in followers:
        os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        outcome: list[object] = []
        writer = threading.Thread(target=lambda: outcome.append(
            _try(lambda: leader.client(socket_timeout=20).set("stuck", "1"))))
        writer.start()
        wait_for(lambda: raft_info(leader)["raft_stalls"] == "1", timeout=15,
                 what="the watchdog to see the stall")
        assert "group stalled: 1 requests waiting" in leader.log()
    finally:
        for node in followers:
            os.kill(node.proc.pid, signal.SIGCONT)
    writer.join(30)
    wait_for(lambda: "group advances again" in leader.log(), timeout=20,
             what="the group to advance again")
    assert raft_info(leader)["raft_stalls"] == "1"
    assert outcome, "the write never returned"


def _try(call: Callable[[], object]) -> object:
    try:
        return call()
    except redis.RedisError as error:
        return error
