"""The paper's figures and the classic corner cases, as readable scripts.

Each test drives a hand-made cluster (raftsim.cluster.Cluster): who
campaigns, which messages get through, who crashes; then compares the logs,
printed one node per line as ``node role term: index/term ... | commit c``.
"""

from __future__ import annotations

import pytest

from raftsim.cluster import Cluster
from respkv.faults import RaftRule
from respkv.raft.confchange import ConfChangeType
from respkv.raft.core import ConfChangePending, NotLeader, ProposalDropped, Role
from respkv.raft.messages import MessageType as MT
from respkv.raft.types import EntryKind


def lines(text: str) -> str:
    return "\n".join(x.strip() for x in text.strip().splitlines())


def elect(c: Cluster, nid: str) -> None:
    c.campaign(nid)
    c.stabilize()
    assert c[nid].role == Role.LEADER


# ---------------------------------------------------------------- Figure 7
FIG7 = {
    "ld": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6],
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


def test_figure7_leader_brings_every_follower_log_in_line():
    c = Cluster.from_logs(FIG7, terms={"ld": 7}, pre_vote=False)
    c.campaign("ld")
    c.stabilize()
    # ld won with a, b, e, f (c and d have longer or newer logs and refuse it);
    # it appended its no-op 11/8 and overwrote c's and d's uncommitted tails.
    want = "1/1 2/1 3/1 4/4 5/4 6/5 7/5 8/6 9/6 10/6 11/8 | commit 11"
    assert c.show() == lines(
        f"""
        ld leader t8: {want}
        a follower t8: {want}
        b follower t8: {want}
        c follower t8: {want}
        d follower t8: {want}
        e follower t8: {want}
        f follower t8: {want}
        """
    )


def test_figure7_fast_backtracking_uses_the_conflict_hint():
    c = Cluster.from_logs(FIG7, terms={"ld": 7}, pre_vote=False)
    rejects: dict[str, int] = {}
    c.campaign("ld")
    for _ in range(50):
        for n in c.ids:
            c.process(n)
        for m in c.queue:
            if m.type == MT.APP_RESP and m.reject:
                rejects[m.from_] = rejects.get(m.from_, 0) + 1
        if not c.deliver():
            break
    # one index per round trip would take f 7 rejections (11 -> 4); the hint takes 1-2
    assert rejects.get("f", 0) <= 2
    assert rejects.get("e", 0) <= 2
    assert all(c.log_text(n).endswith("| commit 11") for n in c.ids)


# ---------------------------------------------------------------- Figure 8
def figure8(bug: bool) -> Cluster:
    """Paper Figure 8 with a no-op-committing leader.

    (a) s1 led term 2 and wrote 2/2 on s1, s2. (b) s5 led term 3 and wrote 2/3
    on itself only; it is down now. (c) s1 is elected in term 4 by s2, s3 and
    brings 2/2 to s3 and s4 (one entry per message) before its no-op 3/4 gets
    anywhere; then it crashes. 2/2 is on a majority (s1 s3 s4) but is not of
    s1's term. (d) s5 comes back and is elected in term 5 by s2, s3, s4
    (its last term 3 beats their 2), and overwrites index 2 with 2/3.
    """
    broken = frozenset({RaftRule.COMMIT_OLD_TERM}) if bug else frozenset()
    c = Cluster.from_logs(
        {"s1": [1, 2], "s2": [1, 2], "s3": [1], "s4": [1], "s5": [1, 3]},
        terms={"s1": 3, "s2": 3, "s3": 3, "s4": 3, "s5": 3},
        pre_vote=False,
        check_quorum=False,
        max_size_per_msg=1,
        broken_rules=broken,
    )
    c.crash("s5")
    # (c) s1 campaigns in term 4; votes from s2 and s3
    c.campaign("s1")
    c.process("s1")
    c.deliver(lambda m: m.to in ("s2", "s3"))
    c.process("s2")
    c.process("s3")
    c.deliver()
    assert c["s1"].role == Role.LEADER and c["s1"].term == 4

    # s1 appends its no-op 3/4; nothing that carries it gets through
    def no_noop(m):
        if m.to == "s1":
            return True
        if m.to not in ("s3", "s4"):
            return False
        would_land = m.entries and m.entries[-1].index >= 3 and c[m.to].log.last_index() >= 2
        return not would_land

    c.tick("s1")  # heartbeats: s3 and s4 answer, s1 probes them again
    for _ in range(6):  # s3, s4 reject the probe (no 2/2), get 2/2 alone, ack it
        for n in ("s1", "s3", "s4"):
            c.process(n)
        c.deliver(no_noop)
    committed_by_s1 = c["s1"].log.committed
    applied_by_s1 = [(e.index, e.term) for e in c.applied["s1"]]
    c.crash("s1")
    c.queue = [m for m in c.queue if m.from_ != "s1"]  # the no-op 3/4 never arrives
    # (d) s5 restarts and wins term 5 with s2, s3, s4
    c.restart("s5")
    c.campaign("s5")  # term 4: s2, s3, s4 already voted in term 4
    c.stabilize()
    c.campaign("s5")  # term 5
    c.stabilize()
    assert c["s5"].role == Role.LEADER
    return c, committed_by_s1, applied_by_s1


def test_figure8_old_term_entry_is_not_committed_by_counting():
    c, committed_by_s1, applied_by_s1 = figure8(bug=False)
    assert committed_by_s1 == 0  # 2/2 was on 3 of 5, but is not of term 4
    assert applied_by_s1 == []
    assert c.log_text("s3") == "s3 follower t5: 1/1 2/3 3/5 | commit 3"


def test_figure8_broken_rule_loses_a_committed_entry():
    c, committed_by_s1, applied_by_s1 = figure8(bug=True)
    assert committed_by_s1 == 2 and applied_by_s1 == [(1, 1), (2, 2)]  # s1 applied 2/2 ...
    assert c["s3"].log.term(2) == 3  # ... and the cluster chose 2/3: state machines diverge


# --------------------------------------------------------- elections, leases
def test_prevote_keeps_a_returning_partitioned_node_from_disrupting():
    c = Cluster(["n1", "n2", "n3"])
    elect(c, "n1")
    c.isolate("n3")
    c.tick("n3", 40)  # n3 times out again and again, but only pre-votes
    c.stabilize()
    assert c["n3"].term == c["n1"].term == 2
    c.heal()
    c.tick(n=3)
    c.stabilize()
    assert c.leader() == "n1" and c["n1"].term == 2


def test_check_quorum_leader_steps_down_when_cut_off():
    c = Cluster(["n1", "n2", "n3"])
    elect(c, "n1")
    c.isolate("n1")
    for _ in range(25):
        c.tick("n1")
        c.stabilize()
    assert c["n1"].role == Role.FOLLOWER


def test_vote_survives_restart():
    c = Cluster(["n1", "n2", "n3"], pre_vote=False)
    c.campaign("n1")
    c.process("n1")
    c.deliver(lambda m: m.to == "n2")
    c.process("n2")  # n2 voted for n1 in term 2, durably
    c.crash("n2")
    c.restart("n2")
    assert c["n2"].term == 2 and c["n2"].vote == "n1"


# --------------------------------------------------- partitioned old leader
def test_leader_partitioned_away_while_clients_keep_writing():
    c = Cluster(["n1", "n2", "n3", "n4", "n5"])
    elect(c, "n1")
    c["n1"].propose(b"ok")
    c.stabilize()
    c.isolate("n1")
    for k in range(3):
        c["n1"].propose(b"lost-%d" % k)  # accepted locally, never committed
    c.stabilize()
    c.run(25)  # the majority side times out and elects a new leader
    new = c.leader()
    assert new not in (None, "n1")
    assert c["n1"].role == Role.FOLLOWER  # CheckQuorum: n1 heard nobody, stepped down
    c[new].propose(b"new")
    c.stabilize()
    c.heal()
    c.tick(new, 2)
    c.stabilize()
    assert c["n1"].lead == new
    datas = [e.data for e in c.applied["n1"] if e.kind == EntryKind.NORMAL]
    assert datas == [b"ok", b"new"]
    assert len({c.log_text(n).split(": ", 1)[1] for n in c.ids}) == 1


# -------------------------------------------------------------- replication
def test_batching_and_pipelining_respect_the_inflight_window():
    c = Cluster(["n1", "n2", "n3"], max_inflight_msgs=2, max_size_per_msg=100)
    elect(c, "n1")
    for k in range(50):
        c["n1"].propose(b"x" * 40 + b"%d" % k)
    c.process("n1")
    apps = [m for m in c.queue if m.type == MT.APP and m.to == "n2"]
    assert len(apps) == 2  # window of 2 messages ...
    assert all(1 <= len(m.entries) <= 2 for m in apps)  # ... of at most 100 bytes each
    c.stabilize()
    assert c["n2"].log.committed == c["n1"].log.last_index()


def test_leader_counts_itself_only_once_durable():
    c = Cluster(["n1", "n2", "n3", "n4", "n5"])
    elect(c, "n1")
    i = c["n1"].propose(b"x")
    rd = c["n1"].ready()
    assert [m.to for m in rd.eager_messages] == ["n2", "n3", "n4", "n5"]
    c.queue.extend(rd.eager_messages)
    c.deliver(lambda m: m.to == "n2")
    c.process("n2")
    c.deliver(lambda m: m.to == "n1")  # n2's ack: n1 + n2 would be 2 of 5 anyway
    assert c["n1"].log.committed < i
    c.deliver(lambda m: m.to in ("n3",))
    c.process("n3")
    c.deliver(lambda m: m.to == "n1")
    # n2 and n3 have it durably; n1 has not persisted yet: 2 of 5, not committed
    assert c["n1"].log.committed < i
    c.storage["n1"].persist(rd)
    c["n1"].advance(rd)
    assert c["n1"].log.committed == i


# -------------------------------------------------------------------- reads
def test_read_index_batches_many_reads_into_one_heartbeat_round():
    c = Cluster(["n1", "n2", "n3"])
    elect(c, "n1")
    for k in range(100):
        c["n1"].read_index(b"r%d" % k)
    c.process("n1")
    hbs = [m for m in c.queue if m.type == MT.HEARTBEAT]
    assert len(hbs) == 2
    c.stabilize()
    assert [r.ctx for r in c.reads["n1"]] == [b"r%d" % k for k in range(100)]
    assert {r.index for r in c.reads["n1"]} == {c["n1"].log.committed}


def test_follower_read_is_forwarded_and_fails_fast_without_leader():
    c = Cluster(["n1", "n2", "n3"])
    with pytest.raises(NotLeader):
        c["n2"].read_index(b"too-early")
    elect(c, "n1")
    c["n1"].propose(b"w")
    c.stabilize()
    c["n2"].read_index(b"r")
    c.stabilize()
    assert c.reads["n2"][0].ctx == b"r"
    assert c.reads["n2"][0].index == c["n1"].log.committed


def test_lease_read_needs_no_round_trip():
    c = Cluster(["n1", "n2", "n3"], lease_read=True)
    elect(c, "n1")
    c.tick("n1")
    c.stabilize()  # a heartbeat round gives n1 its lease
    c["n1"].read_index(b"r")
    assert c["n1"].ready().read_states[0].ctx == b"r"


# -------------------------------------------------------------- membership
def test_learner_promoted_mid_stream():
    c = Cluster(["n1", "n2", "n3"])
    elect(c, "n1")
    for k in range(20):
        c["n1"].propose(b"a%d" % k)
    c.stabilize()
    c.add_node("n4")
    c["n1"].propose_conf_change(ConfChangeType.ADD_LEARNER, "n4", b"addr")
    with pytest.raises(ConfChangePending):
        c["n1"].propose_conf_change(ConfChangeType.ADD_VOTER, "n4")
    for k in range(5):
        c["n1"].propose(b"b%d" % k)
    c.stabilize()
    assert c["n4"].conf.learners == ("n4",)
    c.tick("n4", 50)
    assert c["n4"].role == Role.FOLLOWER  # learners never campaign
    c["n1"].propose(b"c")
    c["n1"].propose_conf_change(ConfChangeType.ADD_VOTER, "n4")
    c["n1"].propose(b"d")  # entries keep flowing around the change
    c.process("n1")
    assert c["n1"].conf.voters == ("n1", "n2", "n3", "n4")  # in force once in the log
    c.stabilize()
    assert c["n4"].conf.voters == ("n1", "n2", "n3", "n4")
    assert c["n4"].log.committed == c["n1"].log.last_index()
    # with 4 voters a quorum is 3: n1 + n4 + one more
    c.isolate("n2")
    c.isolate("n3")
    c["n1"].propose(b"e")
    c.stabilize()
    assert c["n1"].log.committed < c["n1"].log.last_index()


def test_removed_leader_steps_down_once_removal_commits():
    c = Cluster(["n1", "n2", "n3"])
    elect(c, "n1")
    c["n1"].propose_conf_change(ConfChangeType.REMOVE, "n1")
    c.stabilize()
    assert c["n1"].role == Role.FOLLOWER
    assert c["n2"].conf.voters == ("n2", "n3")
    c.run(30)
    assert c.leader() in ("n2", "n3")


def test_uncommitted_conf_change_rolls_back_with_the_log():
    c = Cluster(["n1", "n2", "n3"])
    elect(c, "n1")
    c.isolate("n1")
    c["n1"].propose_conf_change(ConfChangeType.ADD_LEARNER, "n9")
    assert c["n1"].conf.learners == ("n9",)
    c.run(25)
    c.heal()
    c.run(3)
    assert c.leader() != "n1"
    assert c["n1"].conf.learners == ()  # the entry was overwritten


# ---------------------------------------------------------------- transfer
def test_leadership_transfer_catches_the_target_up_first():
    c = Cluster(["n1", "n2", "n3"])
    elect(c, "n1")
    c.isolate("n3")
    for k in range(5):
        c["n1"].propose(b"x%d" % k)
    c.stabilize()
    c.heal()
    c["n1"].transfer_leadership("n3")
    with pytest.raises(ProposalDropped):
        c["n1"].propose(b"during")
    c.stabilize()
    assert c.leader() == "n3"
    assert c["n3"].log.committed == c["n3"].log.last_index()


# --------------------------------------------------------------- snapshots
def test_snapshot_reaches_a_follower_while_entries_are_in_flight():
    c = Cluster(["n1", "n2", "n3"], compaction_tail=0)
    elect(c, "n1")
    c.crash("n3")
    for k in range(30):
        c["n1"].propose(b"x%d" % k)
    c.stabilize()
    ld = c["n1"]
    meta = ld.snapshot_meta(ld.log.applied)
    c.storage["n1"].snap = meta
    ld.snapshot_taken(meta)
    assert ld.log.first_index() == meta.index + 1
    c.restart("n3")
    c["n1"].propose(b"y")
    c.tick("n1")
    c.process("n1")
    c.deliver()  # the heartbeat reaches n3
    c.process("n3")
    c.deliver()  # its answer reaches n1, which finds n3's next entry compacted
    c.process("n1")
    assert any(m.type == MT.SNAP and m.to == "n3" for m in c.queue)
    c["n1"].propose(b"z")  # more entries while the snapshot is on its way
    c.stabilize()
    c.tick("n1")
    c.stabilize()
    assert c["n3"].log.offset == meta.index
    assert c["n3"].log.committed == c["n1"].log.last_index()
    assert c.log_text("n3").split(": ", 1)[1] == c.log_text("n1").split(": ", 1)[1]
