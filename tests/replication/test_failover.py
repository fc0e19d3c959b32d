"""Losing nodes: kill -9, SIGSTOP, SIGTERM, a lost majority. Nothing
acknowledged may be lost, and no node may serve a stale read or accept a
write it cannot commit."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

import hiredis
import pytest
import redis
from cluster_support import (
    RawConnection,
    Writers,
    assert_all_present,
    local_values,
    raw_socket_command,
    read_reply,
)

from testsupport.info import group_lines
from testsupport.processes import SNAPSHOT_ARGS, Cluster, Node, raft_info
from testsupport.waiting import wait_for

REDIRECTS = ("MOVED", "CLUSTERDOWN", "TRYAGAIN")
BULK_WHILE_DOWN = 1500


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
        # A survivor restarts with its command line, whose --join names n1, the
        # seed (normally the killed leader): it comes back as itself, without
        # joining again and without needing the node it names.
        survivor = next(n for n in cluster.alive() if n is not new_leader)
        assert survivor.args[-2:] == ["--join", cluster.nodes[0].address]
        assert survivor.stop() == 0, survivor.log()
        survivor.start()
        count = writers.count()
        writers.wait_more(count + 100, timeout=20, what="writes after a survivor's restart")
    assert int(raft_info(new_leader)["raft_term"]) > old_term
    acked = writers.acked()
    survivors = cluster.alive()
    cluster.wait_caught_up()
    assert_all_present(survivors, acked)

    # the old leader comes back as a follower and holds every acknowledged write too
    old_leader.start()
    cluster.wait_caught_up()
    assert_all_present(cluster.nodes, acked)
    assert elected_after < 5, f"new leader after {elected_after:.2f}s"


def test_killed_follower_restarts_and_catches_up(make_cluster: Callable[..., Cluster]) -> None:
    """The follower misses enough writes that the leader snapshots and compacts
    its log past them meanwhile: it catches up from a snapshot and the log."""
    cluster = make_cluster(args=SNAPSHOT_ARGS)
    leader = cluster.leader()
    follower = cluster.followers()[0]
    bulk = {f"bulk:{i}": f"b{i}" for i in range(BULK_WHILE_DOWN)}
    with Writers(cluster, count=2) as writers:
        writers.wait_more(100, what="writes before the kill")
        follower.kill()
        applied_at_kill = int(raft_info(leader)["raft_applied_index"])
        # More entries while it is down than the leader keeps behind a snapshot
        # (Raft core's compaction_tail, 1000): it cannot catch up from the log alone.
        _pipelined_sets(leader, bulk)
        wait_for(lambda: int(raft_info(leader)["raft_snapshot_index"]) > applied_at_kill + 1000,
                 15, "a snapshot far past the follower on the leader")
        follower.start()
        writers.wait_more(writers.count() + 100, what="writes after the restart")
    acked = writers.acked() | bulk
    commit = int(raft_info(leader)["raft_commit_index"])
    cluster.wait_applied(commit, nodes=[follower], timeout=30)
    info = raft_info(follower)
    assert int(info["raft_applied_index"]) >= commit
    assert info["raft_role"] == "follower" and info["raft_leader"] == cluster.id_of(leader)
    assert "installing snapshot" in follower.log()
    assert_all_present([follower], acked)


def _pipelined_sets(node: Node, items: dict[str, str], batch: int = 100) -> None:
    client = node.client()
    try:
        pairs = list(items.items())
        for start in range(0, len(pairs), batch):
            pipe = client.pipeline(transaction=False)
            for key, value in pairs[start : start + batch]:
                pipe.set(key, value)
            assert all(reply is True for reply in pipe.execute())
    finally:
        client.close()


def test_linearizable_reads_are_served_from_the_lease_strict_ones_by_a_round(
        make_cluster: Callable[..., Cluster]) -> None:
    leader = make_cluster().leader()
    client = leader.client()
    assert client.set("lease", "held") is True

    def counts() -> tuple[int, int]:
        (group,) = group_lines(raft_info(leader)).values()  # one shard
        return int(group["lease_reads"]), int(group["quorum_read_rounds"])

    lease_before, rounds_before = counts()
    for _ in range(40):  # one at a time: each read is its own ReadIndex request
        assert client.get("lease") == b"held"
    lease_after, rounds_after = counts()
    # a lease lapses only if the node's loop stood still; a busy machine may do that
    assert lease_after - lease_before >= 20, (lease_after, rounds_after)
    assert rounds_after - rounds_before <= 40 - (lease_after - lease_before)

    assert client.execute_command("RESPKV.CONSISTENCY", "strict") == b"OK"
    for _ in range(20):
        assert client.get("lease") == b"held"
    lease_strict, rounds_strict = counts()
    assert lease_strict == lease_after
    assert rounds_strict - rounds_after >= 20
    assert client.execute_command("RESPKV.CONSISTENCY") == b"strict"
    assert client.execute_command("RESPKV.CONSISTENCY", "lease") == b"OK"  # older name
    assert client.execute_command("RESPKV.CONSISTENCY") == b"linearizable"
    with pytest.raises(redis.ResponseError, match="linearizable, strict, stale or default"):
        client.execute_command("RESPKV.CONSISTENCY", "eventual")


@pytest.mark.parametrize("consistency", ["linearizable", "strict"])
def test_sigstopped_leader_neither_serves_stale_reads_nor_accepts_writes(
        make_cluster: Callable[..., Cluster], consistency: str) -> None:
    """A paused leader wakes up deposed. Its first commands (sent while it was
    stopped) must not see its old state as current: neither from its leader lease
    (linearizable), which must count the time it spent stopped, nor with a ReadIndex
    round (strict)."""
    cluster = make_cluster()
    old = cluster.leader()
    others = [n for n in cluster.nodes if n is not old]
    assert old.client().set("fence", "old") is True
    cluster.wait_caught_up()
    # connections already open and just served: the leader's lease is fresh
    reader = RawConnection(old.port, timeout=15)
    writer = RawConnection(old.port, timeout=15)
    assert reader.call("RESPKV.CONSISTENCY", consistency) == b"OK"
    assert reader.call("GET", "fence") == b"old"
    assert writer.call("PING") == b"PONG"

    old.proc.send_signal(signal.SIGSTOP)
    try:
        new = cluster.wait_leader(timeout=15, among=others)
        assert new.client().set("fence", "new") is True
        # Sent while it is still stopped, so these are the first things it
        # reads when it wakes up, before or beside the news of the new term.
        reader.send("GET", "fence")
        writer.send("SET", "fence", "stale-leader-write")
    finally:
        old.proc.send_signal(signal.SIGCONT)
    reply = reader.reply()
    print(f"{consistency} read on the old leader after SIGCONT: {reply!r}")
    if isinstance(reply, hiredis.ReplyError):
        assert str(reply).startswith(REDIRECTS), reply
    else:
        assert reply == b"new", f"the old leader answered a read with {reply!r}"
    reply = writer.reply()
    print(f"write on the old leader after SIGCONT: {reply!r}")
    assert isinstance(reply, (hiredis.ReplyError, OSError)), \
        f"the old leader acknowledged a write: {reply!r}"
    if isinstance(reply, hiredis.ReplyError):
        assert str(reply).startswith((*REDIRECTS, "ERR write lost")), reply
    reader.close()
    writer.close()

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


def test_a_cluster_paused_as_a_whole_keeps_its_leader(
        make_cluster: Callable[..., Cluster]) -> None:
    """A paused VM, or a host too busy to run anyone, stops every node at once.
    Each wakes up three election timeouts later without a word from the others,
    and must hear from them before it campaigns or steps down: no election, no
    new term, and the same leader takes writes at once."""
    cluster = make_cluster()
    leader = cluster.leader()
    assert leader.client().set("before", "pause") is True
    cluster.wait_caught_up()
    term = raft_info(leader)["raft_term"]
    for node in cluster.nodes:
        node.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.5)  # the fault itself: 3 election timeouts (10 ticks of 50 ms)
    finally:
        for node in cluster.nodes:
            node.proc.send_signal(signal.SIGCONT)
    assert leader.client(socket_timeout=5).set("after", "pause") is True
    for node in cluster.nodes:
        info = raft_info(node)
        assert (info["raft_term"], info["raft_leader"]) == (term, cluster.id_of(leader))
        assert "event loop paused" in node.log()


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
    # raw sockets: no client-side retries, each reply is the server's own
    read = raw_socket_command(lagging.port, "GET", "k", timeout=5)
    write = raw_socket_command(lagging.port, "SET", "k", "v3", timeout=5)
    outcome = read_reply(read)
    print(f"read on a lone follower: {outcome!r}")
    assert outcome != b"v1", "a lone follower served a stale value as a linearizable read"
    assert isinstance(outcome, (hiredis.ReplyError, OSError)), outcome
    outcome = read_reply(write)
    print(f"write on a lone follower: {outcome!r}")
    assert isinstance(outcome, (hiredis.ReplyError, OSError)), \
        f"a lone follower acknowledged a write: {outcome!r}"
    info = raft_info(lagging)
    assert info["raft_role"] != "leader"
    # What it holds is stale (v1, or nothing yet: the applied state is written
    # behind, and alone it cannot learn which of its entries are committed), so
    # the refused reads above were not vacuous.
    assert local_values(lagging, ["k"])["k"] in (b"v1", None)


@pytest.mark.parametrize("consistency", ["linearizable", "strict"])
def test_lone_leader_cannot_commit(make_cluster: Callable[..., Cluster],
                                   consistency: str) -> None:
    """Its followers killed, a leader acknowledges no write. A read may still be
    answered from its lease (linearizable: no other leader can exist before the lease
    ends, and the write did not commit) but never with the write's value; strict,
    it needs a quorum round, which cannot succeed."""
    cluster = make_cluster(args=["--read-consistency", consistency])
    leader = cluster.leader()
    assert leader.client().set("k", "v1") is True
    commit_before = int(raft_info(leader)["raft_commit_index"])
    for follower in cluster.followers():
        follower.kill()
    # At once, while it may still believe it leads: neither may succeed. Raw
    # sockets: no client-side retries, each reply is the server's own.
    write = raw_socket_command(leader.port, "SET", "k", "v2", timeout=3)
    read = raw_socket_command(leader.port, "GET", "k", timeout=3)
    outcome = read_reply(write)
    print(f"write on a lone leader: {outcome!r}")
    assert isinstance(outcome, (hiredis.ReplyError, OSError)), \
        f"a leader without a quorum acknowledged a write: {outcome!r}"
    outcome = read_reply(read)
    print(f"{consistency} read on a lone leader: {outcome!r}")
    if consistency == "linearizable" and outcome == b"v1":
        pass  # from the lease, which has not run out yet: the latest committed value
    else:
        assert isinstance(outcome, (hiredis.ReplyError, OSError)), \
            f"a node without a quorum answered a {consistency} read: {outcome!r}"
    # once it has stepped down, it says so at once
    wait_for(lambda: raft_info(leader)["raft_role"] != "leader", 5, "the lone leader to step down")
    outcome = read_reply(raw_socket_command(leader.port, "GET", "k", timeout=3))
    assert isinstance(outcome, hiredis.ReplyError), outcome
    assert str(outcome).startswith("CLUSTERDOWN"), outcome
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
    new_id = cluster.id_of(new)
    # One election, started at once by the transfer: no timeout, no failed round.
    assert new_term == term + 1, (term, new_term)
    transfer_at = _log_time(leader.log(), f"transferring leadership before shutdown to={new_id}")
    elected_at = _log_time(new.log(), f"leader changed leader={new_id} term={new_term}")
    signalled_at = _log_time(leader.log(), "signal received")
    print(f"SIGTERM -> transfer {transfer_at - signalled_at:.3f}s, transfer -> new leader "
          f"{elected_at - transfer_at:.3f}s; seen by the test after {handed_over:.3f}s")
    # An election after a timeout starts at least 0.5 s (the shortest election
    # timeout) after the last heartbeat; a transfer starts it at once.
    assert elected_at - transfer_at < 0.4, (transfer_at, elected_at)
    assert handed_over < 5, f"new leader {handed_over:.2f}s after SIGTERM"
    assert_all_present(others, writers.acked())


def _log_time(log: str, text: str) -> float:
    """The time (seconds since the epoch) of the first log line containing ``text``."""
    for line in log.splitlines():
        if text in line:
            stamp = line.split(" ", 1)[0]  # 2026-11-26T18:53:53.862Z
            moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            return moment.timestamp()
    raise AssertionError(f"no log line with {text!r}:\n{log}")
