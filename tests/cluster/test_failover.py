"""Losing nodes: kill -9, SIGSTOP, SIGTERM, a lost majority. Nothing
acknowledged may be lost, and no node may serve a stale read or accept a
write it cannot commit."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import hiredis
import redis
from cluster_support import (
    Writers,
    assert_all_present,
    local_values,
    raw_socket_command,
    read_reply,
)
from conftest import SNAPSHOT_ARGS
from procs import Cluster, raft_info, wait_for

REDIRECTS = ("MOVED", "CLUSTERDOWN", "TRYAGAIN")


def test_kill_leader_during_writes_loses_nothing_acknowledged(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    old_leader = cluster.leader()
    old_term = int(raft_info(old_leader)["raft_term"])
    with Writers(cluster, count=4) as writers:
        writers.wait_more(200, what="writes before the kill")
        old_leader.kill()  # SIGKILL, by PID
        killed_at = time.monotonic()
        at_kill = writers.count()
        new_leader = cluster.wait_leader(timeout=10)
        assert new_leader is not old_leader
        elected_after = time.monotonic() - killed_at
        print(f"new leader {elected_after:.3f}s after kill -9")
        # the new leader serves writes: well more than were in flight at the kill
        writers.wait_more(at_kill + 200, timeout=20, what="writes through the new leader")
    assert int(raft_info(new_leader)["raft_term"]) > old_term
    acked = writers.acked()
    survivors = cluster.alive()
    cluster.wait_caught_up()
    assert_all_present(survivors, acked)

    # the old leader comes back as a follower and holds every acknowledged write too
    old_leader.start()
    cluster.wait_caught_up()
    assert cluster.wait_leader() is new_leader
    assert_all_present(cluster.nodes, acked)
    assert elected_after < 5, f"new leader after {elected_after:.2f}s"


def test_killed_follower_restarts_and_catches_up(make_cluster: Callable[..., Cluster]) -> None:
    """The follower misses enough writes that the leader snapshots and compacts
    its log past them meanwhile: it catches up from a snapshot and the log."""
    cluster = make_cluster(args=SNAPSHOT_ARGS)
    leader = cluster.leader()
    follower = cluster.followers()[0]
    with Writers(cluster, count=2) as writers:
        writers.wait_more(100, what="writes before the kill")
        follower.kill()
        down_at = writers.count()
        snapshot_before = int(raft_info(leader)["raft_snapshot_index"])
        # enough writes while it is down for a snapshot past what it has
        writers.wait_more(down_at + 600, timeout=30, what="writes while the follower is down")
        wait_for(lambda: int(raft_info(leader)["raft_snapshot_index"]) > snapshot_before,
                 10, "a snapshot on the leader while the follower is down")
        follower.start()
        writers.wait_more(writers.count() + 100, what="writes after the restart")
    acked = writers.acked()
    commit = int(raft_info(leader)["raft_commit_index"])
    cluster.wait_applied(commit, nodes=[follower], timeout=30)
    info = raft_info(follower)
    assert int(info["raft_applied_index"]) >= commit
    assert info["raft_role"] == "follower" and info["raft_leader"] == cluster.id_of(leader)
    assert_all_present([follower], acked)


def test_sigstopped_leader_neither_serves_stale_reads_nor_accepts_writes(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    old = cluster.leader()
    others = [n for n in cluster.nodes if n is not old]
    assert old.client().set("fence", "old") is True
    cluster.wait_caught_up()

    old.proc.send_signal(signal.SIGSTOP)
    try:
        new = cluster.wait_leader(timeout=15, among=others)
        assert new.client().set("fence", "new") is True
        # Sent while it is still stopped, so these are the first things it does
        # when it wakes up, before it hears of the new term.
        read = raw_socket_command(old.port, "GET", "fence", timeout=15)
        write = raw_socket_command(old.port, "SET", "fence", "stale-leader-write", timeout=15)
        read_plain = raw_socket_command(old.port, "GET", "fence", timeout=15)
    finally:
        old.proc.send_signal(signal.SIGCONT)
    for sock in (read, read_plain):
        reply = read_reply(sock)
        if isinstance(reply, hiredis.ReplyError):
            assert str(reply).startswith(REDIRECTS), reply
        else:
            assert reply == b"new", f"the old leader answered a read with {reply!r}"
    reply = read_reply(write)
    assert isinstance(reply, (hiredis.ReplyError, OSError)), \
        f"the old leader acknowledged a write: {reply!r}"
    if isinstance(reply, hiredis.ReplyError):
        assert str(reply).startswith((*REDIRECTS, "ERR write lost")), reply

    # it rejoins as a follower, and the write it got never shows up anywhere
    assert cluster.wait_leader(timeout=15) is new
    cluster.wait_caught_up()
    for node in cluster.nodes:
        assert local_values(node, ["fence"]) == {"fence": b"new"}
        assert node.client().get("fence") == b"new"
    with_follower = old.client()
    try:
        with_follower.set("fence", "x")
        raise AssertionError("the old leader accepted a write as a follower")
    except redis.exceptions.MovedError as moved:
        assert moved.port == new.port


def test_minority_cannot_commit_nor_serve_linearizable_reads(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    leader = cluster.leader()
    lagging, other = [n for n in cluster.nodes if n is not leader]
    assert leader.client().set("k", "v1") is True
    cluster.wait_caught_up()

    # A follower goes down, the majority moves on without it, then the majority
    # dies too: the follower comes back alone, with an old value on disk.
    lagging.kill()
    assert leader.client().set("k", "v2") is True
    leader.kill()
    other.kill()
    lagging.start()
    client = lagging.client(socket_timeout=5)
    try:
        outcome = _outcome(lambda: client.get("k"))
        print(f"read on a lone follower: {outcome!r}")
        assert outcome != b"v1", "a lone follower served a stale value as a linearizable read"
        assert outcome != b"v2"  # it never had it
        assert isinstance(outcome, Exception), outcome
        outcome = _outcome(lambda: client.set("k", "v3"))
        print(f"write on a lone follower: {outcome!r}")
        assert outcome is not True, "a lone follower acknowledged a write"
    finally:
        client.close()
    info = raft_info(lagging)
    assert info["raft_role"] != "leader"
    # the stale value is there, so the refused reads above were not vacuous
    assert local_values(lagging, ["k"]) == {"k": b"v1"}


def test_lone_leader_cannot_commit(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    leader = cluster.leader()
    assert leader.client().set("k", "v1") is True
    commit_before = int(raft_info(leader)["raft_commit_index"])
    for follower in cluster.followers():
        follower.kill()
    client = leader.client(socket_timeout=4)
    try:
        outcome = _outcome(lambda: client.set("k", "v2"))
        print(f"write on a lone leader: {outcome!r}")
        assert outcome is not True, "a leader without a quorum acknowledged a write"
        outcome = _outcome(lambda: client.get("k"))
        print(f"read on a lone leader: {outcome!r}")
        assert isinstance(outcome, Exception), \
            f"a node without a quorum answered a linearizable read: {outcome!r}"
    finally:
        client.close()
    info = raft_info(leader)
    assert int(info["raft_commit_index"]) == commit_before
    assert local_values(leader, ["k"]) == {"k": b"v1"}


def test_sigterm_on_leader_hands_over_without_an_election_timeout(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    leader = cluster.leader()
    others = [n for n in cluster.nodes if n is not leader]
    term = int(raft_info(leader)["raft_term"])
    with Writers(cluster, count=1) as writers:
        writers.wait_more(50)
        started = time.monotonic()
        leader.proc.send_signal(signal.SIGTERM)
        new = cluster.wait_leader(timeout=10, among=others)
        handed_over = time.monotonic() - started
        count = writers.count()
        writers.wait_more(count + 50, what="writes through the new leader")
        assert leader.proc.wait(15) == 0, leader.log()
    new_term = int(raft_info(new)["raft_term"])
    print(f"new leader {handed_over:.3f}s after SIGTERM")
    log = leader.log()
    assert f"transferring leadership before shutdown to={cluster.id_of(new)}" in log, log
    # One election, started at once by the transfer: no timeout, no failed round.
    assert new_term == term + 1, (term, new_term)
    # an election timeout is at least 0.5 s and a dead leader is noticed after one
    assert handed_over < 0.5, f"new leader after {handed_over:.2f}s"
    assert_all_present(others, writers.acked())


def _outcome(action: Callable[[], object]) -> object:
    """The result of ``action``, or the exception it raised."""
    try:
        return action()
    except (redis.RedisError, OSError) as error:
        return error
