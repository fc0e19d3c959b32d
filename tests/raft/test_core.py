"""Unit tests of the core's API and its Ready/advance contract."""

from __future__ import annotations

import pytest

from raftsim.cluster import Cluster
from respkv.raft.confchange import (
    ConfChange,
    ConfChangeError,
    ConfChangeType,
    encode_conf_change,
)
from respkv.raft.core import (
    MAX_REFUSALS_PER_READY,
    MAX_TERM,
    MAX_TERM_JUMP,
    ConfChangePending,
    Config,
    NotLeader,
    RaftCore,
    Role,
)
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.raft.refusal import RefusalReason
from respkv.raft.types import Entry, EntryKind, HardState


def drain(core: RaftCore):
    rds = []
    while core.has_ready():
        rd = core.ready()
        rds.append(rd)
        core.advance(rd)
    return rds


def led_by_n1(size: int = 3, **cfg) -> Cluster:
    """A cluster of n1..n<size> where n1 has won an election and everyone caught up."""
    cl = Cluster([f"n{i}" for i in range(1, size + 1)], **cfg)
    cl.campaign("n1")
    cl.stabilize()
    return cl


def test_single_node_commits_at_advance():
    c = RaftCore(Config(node_id="n1", voters=("n1",)))
    c.campaign()
    assert c.role == Role.LEADER
    i = c.propose(b"x")
    rd = c.ready()
    assert rd.must_sync and rd.entries[-1].index == i
    assert all(e.index < i for e in rd.committed_entries)  # not durable yet: not committed
    c.advance(rd)
    rd = c.ready()
    assert rd.committed_entries[-1].index == i and rd.committed_entries[-1].data == b"x"
    c.advance(rd)
    st = c.status()
    assert st["commit"] == st["applied"] == i and st["role"] == "LEADER"


def test_bootstrap_log_holds_the_membership():
    c = RaftCore(Config(node_id="n2", voters=("n3", "n1", "n2")))
    rd = c.ready()
    assert [e.kind for e in rd.entries] == [EntryKind.CONF_CHANGE] * 3
    assert rd.hard_state == HardState(1, None, 3)
    assert rd.entries == RaftCore.bootstrap_entries(("n1", "n2", "n3"))
    assert c.conf.voters == ("n1", "n2", "n3")


def test_follower_rejects_proposals_naming_the_leader():
    cl = Cluster(["n1", "n2", "n3"])
    with pytest.raises(NotLeader) as e:
        cl["n2"].propose(b"x")
    assert e.value.leader_id is None
    cl.campaign("n1")
    cl.stabilize()
    with pytest.raises(NotLeader) as e:
        cl["n2"].propose(b"x")
    assert e.value.leader_id == "n1"


def test_only_a_leaders_appends_and_heartbeats_are_eager():
    cl = Cluster(["n1", "n2", "n3"])
    cl.campaign("n1")
    rd = cl["n1"].ready()  # pre-vote requests: after persisting (they promise nothing, but
    assert rd.eager_messages == []  # only a leader with a durable term sends early)
    cl.queue.extend(rd.messages)
    cl["n1"].advance(rd)
    cl.stabilize()
    cl["n1"].propose(b"x")
    rd = cl["n1"].ready()
    assert {m.type for m in rd.eager_messages} == {MessageType.APP} and not rd.messages
    cl.queue.extend(rd.eager_messages)
    cl["n1"].advance(rd)
    cl.deliver()
    rd = cl["n2"].ready()  # the follower's ack must wait for its fsync
    assert [m.type for m in rd.messages] == [MessageType.APP_RESP] and not rd.eager_messages
    assert rd.must_sync


def test_conflicting_entries_are_handed_over_for_truncation():
    c = RaftCore(
        Config(node_id="n2", voters=("n1", "n2")),
        HardState(2, None, 0),
        entries=[Entry(1, 1), Entry(1, 2), Entry(2, 3), Entry(2, 4)],
    )
    c.step(
        Message(
            MessageType.APP,
            group="g0",
            to="n2",
            from_="n1",
            term=3,
            index=2,
            log_term=1,
            entries=[Entry(3, 3, EntryKind.NOOP)],
            commit=2,
        )
    )
    rd = c.ready()
    assert [(e.index, e.term) for e in rd.entries] == [(3, 3)]  # drop 3.. then append
    assert rd.hard_state.term == 3 and rd.must_sync


def test_restart_from_storage():
    cl = led_by_n1(pre_vote=False)
    for k in range(5):
        cl["n1"].propose(b"%d" % k)
    cl.stabilize()
    before = cl.log_text("n2")
    cl.crash("n2")
    cl.restart("n2")
    assert cl.log_text("n2") == before.replace("follower", "follower")
    assert cl["n2"].log.applied == len(cl.applied["n2"])
    assert not any(
        e.index <= cl["n2"].log.applied for rd in drain(cl["n2"]) for e in rd.committed_entries
    )


def test_conf_change_rules():
    cl = Cluster(["n1", "n2", "n3"], pre_vote=False)
    cl.campaign("n1")
    for n in ("n1", "n2", "n3"):
        cl.process(n)
        cl.deliver()
    ld = cl["n1"]
    assert ld.role == Role.LEADER
    with pytest.raises(ConfChangePending):  # no entry of its term committed yet
        ld.propose_conf_change(ConfChangeType.ADD_LEARNER, "n4")
    cl.stabilize()
    with pytest.raises(ConfChangeError):
        ld.propose_conf_change(ConfChangeType.ADD_VOTER, "n2")
    with pytest.raises(ConfChangeError):
        ld.propose_conf_change(ConfChangeType.REMOVE, "n9")
    ld.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "n4", b"ctx"))
    with pytest.raises(ConfChangePending):
        ld.propose_conf_change(ConfChangeType.ADD_VOTER, "n4")
    with pytest.raises(NotLeader):
        cl["n2"].propose_conf_change(ConfChangeType.ADD_VOTER, "n4")


def test_repeated_conf_entries_are_not_applied_twice():
    c = RaftCore(Config(node_id="n2", voters=("n1", "n2")))
    drain(c)
    add = Entry(
        2,
        3,
        EntryKind.CONF_CHANGE,
        encode_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "n4")),
    )
    rem = Entry(
        2, 4, EntryKind.CONF_CHANGE, encode_conf_change(ConfChange(ConfChangeType.REMOVE, "n4"))
    )

    def app(prev, ents):
        c.step(
            Message(
                MessageType.APP,
                group="g0",
                to="n2",
                from_="n1",
                term=2,
                index=prev,
                log_term=c.log.term(prev),
                entries=ents,
                commit=2,
            )
        )

    app(2, [add])
    assert c.conf.learners == ("n4",)
    app(3, [rem])
    assert c.conf.learners == ()
    app(2, [add])  # a late duplicate
    assert c.conf.learners == ()


def test_pending_reads_are_dropped_when_the_leader_steps_down():
    cl = led_by_n1()
    cl.isolate("n1")
    cl["n1"].read_index(b"r")
    cl.run(25)  # CheckQuorum: n1 steps down
    assert cl["n1"].role == Role.FOLLOWER
    assert cl.reads["n1"] == []
    assert cl.dropped_reads["n1"] == [b"r"]


def test_snapshot_taken_compacts_keeping_a_tail():
    cl = led_by_n1(compaction_tail=5)
    for k in range(20):
        cl["n1"].propose(b"%d" % k)
    cl.stabilize()
    ld = cl["n1"]
    meta = ld.snapshot_meta(ld.log.applied)
    assert meta.conf_state.voters == ("n1", "n2", "n3")
    ld.snapshot_taken(meta)
    assert ld.log.offset == meta.index - 5
    with pytest.raises(ValueError):
        ld.snapshot_taken(type(meta)(ld.log.applied + 1, 9, meta.conf_state))


def test_the_tail_kept_is_bounded_in_bytes_too():
    # 20 entries of 1 KB, a tail of at most 10 entries and 3 KB (each entry counts its
    # data and ENTRY_OVERHEAD): the 2 newest fit, a third would not.
    cl = led_by_n1(compaction_tail=10, compaction_tail_bytes=3 * 1024)
    for k in range(20):
        cl["n1"].propose(b"%04d" % k * 256)
    cl.stabilize()
    ld = cl["n1"]
    ld.snapshot_taken(ld.snapshot_meta(ld.log.applied))
    assert ld.log.offset == ld.log.applied - 2
    assert ld.log.entry(ld.log.applied).data == b"0019" * 256


def test_the_byte_bound_keeps_what_a_live_follower_lacks_and_not_a_dead_ones():
    cl = led_by_n1(compaction_tail=10, compaction_tail_bytes=3 * 1024)
    cl.isolate("n3")
    behind = cl["n1"].prs["n3"].match
    for k in range(8):
        cl["n1"].propose(b"%04d" % k * 256)
    cl.stabilize()
    ld = cl["n1"]
    assert ld.prs["n3"].recent_active and ld.prs["n3"].match == behind
    ld.snapshot_taken(ld.snapshot_meta(ld.log.applied))
    assert ld.log.offset == behind  # n3 can still be sent the log, not a snapshot

    cl.run(25)  # an election timeout without a word from n3
    assert not ld.prs["n3"].recent_active and ld.role == Role.LEADER
    for k in range(8):
        ld.propose(b"%04d" % k * 256)
    cl.stabilize()
    ld.snapshot_taken(ld.snapshot_meta(ld.log.applied))
    assert ld.log.offset == ld.log.applied - 2


def test_wrong_group_is_refused():
    c = RaftCore(Config(node_id="n1", voters=("n1", "n2"), group="g1"))
    with pytest.raises(ValueError):
        c.step(Message(MessageType.HEARTBEAT, group="g0", to="n1", from_="n2", term=5))


def test_config_validation():
    with pytest.raises(ValueError):
        Config(node_id="n1", lease_read=True, check_quorum=False)
    with pytest.raises(ValueError):
        Config(node_id="n1", election_tick=2, heartbeat_tick=2)


def _read_heartbeats(cl: Cluster, leader: str) -> list[str]:
    """Process the leader's Ready; the followers its read-round heartbeats go to."""
    cl.process(leader)
    return sorted(m.to for m in cl.queue if m.type == MessageType.HEARTBEAT)


def test_a_read_round_asks_only_the_quorum_that_answered_the_last_one_first():
    cl = led_by_n1()
    cl["n1"].read_index(b"a")
    assert _read_heartbeats(cl, "n1") == ["n2", "n3"]  # nobody known fast yet: ask all
    cl.deliver(lambda m: m.to == "n3")  # n3 answers first
    cl.process("n3")
    cl.deliver()
    cl.stabilize()
    assert [r.ctx for r in cl.reads["n1"]] == [b"a"]

    cl["n1"].read_index(b"b")
    assert _read_heartbeats(cl, "n1") == ["n3"]  # one follower makes the quorum
    cl.stabilize()
    assert [r.ctx for r in cl.reads["n1"]] == [b"a", b"b"]


def test_a_read_round_whose_target_went_quiet_ends_with_the_next_heartbeat():
    cl = led_by_n1()
    cl["n1"].read_index(b"a")
    cl.process("n1")
    cl.deliver(lambda m: m.to == "n2")
    cl.stabilize()  # n2 answered first, then n3
    cl.crash("n2")
    cl["n1"].read_index(b"b")
    assert _read_heartbeats(cl, "n1") == ["n2"]
    cl.stabilize()
    assert [r.ctx for r in cl.reads["n1"]] == [b"a"]  # the round waits on n2
    cl.tick("n1")  # the tick's heartbeat carries the round to every follower
    cl.stabilize()
    assert [r.ctx for r in cl.reads["n1"]] == [b"a", b"b"]


def test_ready_needs_sync_tells_which_readies_can_skip_the_fsync():
    cl = Cluster(["n1", "n2", "n3"])
    cl.campaign("n1")
    assert cl["n1"].ready_needs_sync()  # a new term and vote
    cl.stabilize()
    leader = cl["n1"]
    assert not leader.has_ready() and not leader.ready_needs_sync()
    leader.propose(b"x")
    assert leader.ready_needs_sync()  # an entry to persist
    cl.process("n1")
    cl.deliver()
    for follower in ("n2", "n3"):
        assert cl[follower].ready_needs_sync()
        cl.process(follower)
    cl.deliver()  # the acks: the leader commits
    assert leader.has_ready() and not leader.ready_needs_sync()
    assert not leader.ready().must_sync


def test_a_commit_only_append_to_a_caught_up_follower_gets_no_reply():
    cl = led_by_n1()
    cl["n1"].propose(b"x")
    cl.process("n1")
    cl.deliver()  # the entry reaches both followers
    for follower in ("n2", "n3"):
        cl.process(follower)
    cl.deliver()  # their acks: the leader commits and tells them
    cl.process("n1")
    commits = [m for m in cl.queue if m.type == MessageType.APP]
    assert sorted(m.to for m in commits) == ["n2", "n3"]
    assert all(not m.entries for m in commits)
    cl.deliver()
    for follower in ("n2", "n3"):
        cl.process(follower)
        assert cl[follower].log.committed == cl["n1"].log.committed
    assert not [m for m in cl.queue if m.type == MessageType.APP_RESP]
    assert [e.data for e in cl.applied["n2"] if e.kind == EntryKind.NORMAL] == [b"x"]


def test_a_commit_only_append_that_does_not_match_is_still_refused():
    cl = led_by_n1(2)
    last = cl["n1"].log.last_index()
    stale = Message(MessageType.APP, group=cl["n1"].group, to="n2", from_="n1",
                    term=cl["n1"].term, index=last + 5, log_term=cl["n1"].term,
                    commit=last, context=b"\x01")
    cl["n2"].step(stale)
    cl.process("n2")
    replies = [m for m in cl.queue if m.type == MessageType.APP_RESP]
    assert len(replies) == 1 and replies[0].reject


def _read_index_requests_answered_without_a_round(size: int) -> bool:
    """A follower's read: does the leader answer its MsgReadIndex without a heartbeat?"""
    cl = led_by_n1(size)
    cl["n2"].read_index(b"r")
    cl.process("n2")
    cl.deliver()  # the MsgReadIndex reaches the leader
    cl.process("n1")
    sent = {m.type for m in cl.queue}
    cl.stabilize()
    assert [r.ctx for r in cl.reads["n2"]] == [b"r"]
    assert cl.reads["n2"][0].index == cl["n1"].log.committed
    return MessageType.HEARTBEAT not in sent and MessageType.READ_INDEX_RESP in sent


def test_a_followers_read_request_completes_the_quorum_of_a_three_node_group():
    assert _read_index_requests_answered_without_a_round(3)


def test_a_followers_read_request_still_needs_a_round_in_a_five_node_group():
    assert not _read_index_requests_answered_without_a_round(5)


# -- pauses: the driver's loop or the whole machine stood still ------------------------


def _pause_everyone(cl: Cluster, ticks: int) -> None:
    for nid in cl.ids:
        cl[nid].tick_after_pause(ticks)
    cl.stabilize()


def test_a_cluster_paused_as_a_whole_keeps_its_leader_and_term():
    cl = led_by_n1()
    term = cl["n1"].term
    _pause_everyone(cl, 30)  # 3 election timeouts: a paused VM, say
    cl.run(25)
    assert [cl[n].role for n in cl.ids] == [Role.LEADER, Role.FOLLOWER, Role.FOLLOWER]
    assert {cl[n].term for n in cl.ids} == {term}


def test_ticking_through_the_same_pause_one_tick_at_a_time_deposes_the_leader():
    """Why tick_after_pause exists: every timer fires before anyone hears a word."""
    cl = led_by_n1()
    term = cl["n1"].term
    cl.tick(n=30)
    cl.run(25)
    assert max(cl[n].term for n in cl.ids) > term


def test_after_a_pause_the_leader_no_longer_trusts_its_lease():
    cl = led_by_n1(lease_read=True)
    cl.run(2)  # heartbeat acks: the lease is fresh
    cl["n1"].read_index(b"before")
    cl.process("n1")
    assert [r.ctx for r in cl.reads["n1"]] == [b"before"]  # served from the lease
    cl["n1"].tick_after_pause(20)
    cl["n1"].read_index(b"after")
    cl.process("n1")
    assert [r.ctx for r in cl.reads["n1"]] == [b"before"]  # the lease ran out: a round
    cl.stabilize()
    assert [r.ctx for r in cl.reads["n1"]] == [b"before", b"after"]


def test_a_paused_leader_that_hears_from_no_one_still_steps_down():
    cl = led_by_n1()
    cl.isolate("n1")
    cl["n1"].tick_after_pause(30)
    assert cl["n1"].role == Role.LEADER
    cl.run(cl["n1"].cfg.election_tick)  # CheckQuorum, on what it heard since the pause
    assert cl["n1"].role != Role.LEADER


def test_a_paused_follower_campaigns_only_if_its_leader_stays_silent():
    cl = led_by_n1()
    cl.crash("n1")
    n2 = cl["n2"]
    n2.tick_after_pause(50)
    drain(n2)
    assert n2.role == Role.FOLLOWER  # no campaign on the pause alone
    for _ in range(n2.cfg.election_tick // 2):
        n2.tick()
    assert n2.role == Role.PRE_CANDIDATE  # half an election timeout, then it goes


def test_an_ack_past_the_leaders_log_is_dropped():
    """With both followers silent, an acknowledgement of an index the leader never
    wrote must not commit anything (nor wedge the follower's progress)."""
    cl = led_by_n1()
    leader = cl["n1"]
    committed = leader.log.committed
    leader.propose(b"x")
    cl.process("n1")
    cl.queue.clear()  # the followers never see the entry
    last = leader.log.last_index()
    for forger in ("n2", "n3"):
        leader.step(Message(MessageType.APP_RESP, group=leader.group, to="n1", from_=forger,
                            term=leader.term, index=last + 1000))
    cl.process("n1")
    assert leader.log.committed == committed
    assert leader.prs["n2"].match <= last
    assert leader.refusal_counts == {RefusalReason.ACK_PAST_END: 2}
    cl.run(5)  # heartbeats: the real followers then get the entry and it commits
    cl.stabilize()
    assert leader.log.committed == leader.log.last_index()


# ------------------------------------------------------------------ refusals
MT = MessageType


def msg(core: RaftCore, typ: MessageType, frm: str, **kw) -> Message:
    kw.setdefault("term", core.term)
    return Message(typ, group=core.group, to=core.id, from_=frm, **kw)


def refused(core: RaftCore) -> list:
    """Every refusal the core reports in its Readies from now on, drained."""
    out = []
    for rd in drain(core):
        out.extend(rd.refused)
    return out


def test_a_term_far_ahead_is_refused_and_the_group_keeps_its_leader():
    cl = led_by_n1()
    n2, term = cl["n2"], cl["n2"].term
    for forged in (2**64 - 1, term + MAX_TERM_JUMP + 1, MAX_TERM + 1):
        for typ in (MT.HEARTBEAT, MT.APP, MT.VOTE, MT.PRE_VOTE, MT.APP_RESP):
            n2.step(msg(n2, typ, "n1", term=forged))
            cl["n1"].step(msg(cl["n1"], typ, "n3", term=forged))
    assert n2.term == term and cl["n1"].term == term and n2.lead == "n1"
    assert n2.refusal_counts == {RefusalReason.TERM_TOO_HIGH: 15}
    (first, *_) = refused(n2)
    assert (first.reason, first.sender) == (RefusalReason.TERM_TOO_HIGH, "n1")
    assert str(2**64 - 1) in first.detail
    cl.stabilize()
    cl["n1"].propose(b"after")
    cl.stabilize()
    assert cl["n3"].log.committed == cl["n1"].log.last_index()
    assert cl.leader() == "n1" and cl["n1"].term == term


def test_a_term_just_within_the_bound_is_still_adopted():
    cl = led_by_n1()
    n2 = cl["n2"]
    n2.step(msg(n2, MT.HEARTBEAT, "n1", term=n2.term + MAX_TERM_JUMP))
    assert n2.term == 1 + MAX_TERM_JUMP + 1 and not n2.refusal_counts


def test_past_max_term_nothing_is_adopted_however_close():
    c = RaftCore(Config(node_id="n2", voters=("n1", "n2")), HardState(MAX_TERM - 1, None, 0))
    c.step(Message(MT.HEARTBEAT, group="g0", to="n2", from_="n1", term=MAX_TERM))
    assert c.term == MAX_TERM
    c.step(Message(MT.HEARTBEAT, group="g0", to="n2", from_="n1", term=MAX_TERM + 1))
    assert c.term == MAX_TERM and c.refusal_counts == {RefusalReason.TERM_TOO_HIGH: 1}


def test_a_rejection_past_the_leaders_log_is_refused_too():
    cl = led_by_n1()
    leader = cl["n1"]
    last = leader.log.last_index()
    leader.step(msg(leader, MT.APP_RESP, "n2", index=last + 5, reject=True, reject_hint=last))
    assert leader.refusal_counts == {RefusalReason.ACK_PAST_END: 1}
    assert leader.prs["n2"].match == last


@pytest.mark.parametrize(("typ", "fields", "reason"), [
    (MT.APP, {"index": -1}, RefusalReason.BAD_INDEX),
    (MT.HEARTBEAT, {"commit": -3}, RefusalReason.BAD_INDEX),
    (MT.APP, {"log_term": 99}, RefusalReason.BAD_INDEX),  # past the message's term
    (MT.VOTE, {"log_term": -1}, RefusalReason.BAD_INDEX),
    (MT.APP_RESP, {"reject": True, "index": 2, "reject_hint": 3}, RefusalReason.BAD_INDEX),
    (MT.READ_INDEX_RESP, {"index": -1}, RefusalReason.BAD_INDEX),
])
def test_impossible_indexes_are_refused(typ, fields, reason):
    cl = led_by_n1()
    n2 = cl["n2"]
    before = (n2.term, n2.log.committed, n2.log.last_index(), n2.lead)
    n2.step(msg(n2, typ, "n1", **fields))
    assert n2.refusal_counts == {reason: 1}
    assert (n2.term, n2.log.committed, n2.log.last_index(), n2.lead) == before


def test_entries_that_do_not_follow_or_go_back_in_term_are_refused():
    cl = led_by_n1()
    n2 = cl["n2"]
    i, t = n2.log.last_index(), n2.term
    bad = [
        [Entry(t, i + 3)],  # a gap after the previous index
        [Entry(t, i + 1), Entry(t, i + 3)],  # the last one does not follow
        [Entry(t, i + 1), Entry(t - 1, i + 2)],  # a term that goes back
        [Entry(t + 1, i + 1)],  # a term past the leader's own
        [Entry(t, i + 1, EntryKind.CONF_CHANGE, b"\x07")],  # does not decode
    ]
    for ents in bad:
        n2.step(msg(n2, MT.APP, "n1", index=i, log_term=t, entries=ents, commit=i + 1))
    assert n2.refusal_counts == {RefusalReason.BAD_ENTRIES: len(bad)}
    assert n2.log.last_index() == i
    n2.step(msg(n2, MT.APP, "n1", index=i, log_term=t, entries=[Entry(t, i + 1)]))
    assert n2.log.last_index() == i + 1  # a sound one still goes in


def test_a_nonsense_snapshot_is_refused():
    cl = led_by_n1()
    n2 = cl["n2"]
    t = n2.term
    members = ConfState(("n1", "n2", "n3"))
    for meta in (
        SnapshotMeta(0, t, members),
        SnapshotMeta(100, 0, members),
        SnapshotMeta(100, t + 1, members),  # from a term the sender has not reached
        SnapshotMeta(100, t, ConfState()),  # no voters
        SnapshotMeta(100, t, ConfState(("n1", "n2"), ("n2",))),  # voter and learner
        None,
    ):
        n2.step(msg(n2, MT.SNAP, "n1", snapshot=meta))
    assert n2.refusal_counts == {RefusalReason.BAD_SNAPSHOT: 6}
    rd = n2.ready()
    assert n2.log.offset == 0 and rd.snapshot is None and not rd.messages
    assert len(rd.refused) == 6


def test_a_heartbeat_answer_from_the_future_neither_stretches_the_lease_nor_ends_a_round():
    cl = led_by_n1(lease_read=True)
    leader = cl["n1"]
    future = (1 << 40).to_bytes(8, "little") * 2
    leader.step(msg(leader, MT.HEARTBEAT_RESP, "n2", context=future))
    assert leader.refusal_counts == {RefusalReason.BAD_INDEX: 1}
    assert leader.prs["n2"].lease_tick < 1 << 40


def test_a_leader_refuses_a_stranger_even_with_a_newer_term():
    cl = led_by_n1()
    leader, term = cl["n1"], cl["n1"].term
    for typ in (MT.HEARTBEAT, MT.APP, MT.VOTE, MT.APP_RESP, MT.READ_INDEX):
        leader.step(msg(leader, typ, "x9", term=term + 1, commit=leader.log.last_index()))
    assert leader.role == Role.LEADER and leader.term == term
    assert leader.refusal_counts == {RefusalReason.STRANGER: 5}
    assert {r.sender for r in refused(leader)} == {"x9"}


def test_a_follower_that_hears_its_leader_refuses_a_stranger():
    cl = led_by_n1()
    n2 = cl["n2"]
    leader = cl["n1"]
    leader.propose(b"uncommitted")
    cl.process("n1")
    cl.deliver(lambda m: m.to == "n2" and m.type == MT.APP)
    n2.step(msg(n2, MT.HEARTBEAT, "x9", commit=n2.log.last_index()))
    n2.step(msg(n2, MT.VOTE, "x9", term=n2.term + 1, index=100, log_term=n2.term))
    assert n2.lead == "n1" and n2.log.committed < n2.log.last_index() and n2.vote != "x9"
    assert n2.refusal_counts == {RefusalReason.STRANGER: 2}


def test_a_node_cut_off_for_an_election_timeout_hears_strangers():
    cl = led_by_n1()
    n2 = cl["n2"]
    cl.isolate("n2")
    n2.step(msg(n2, MT.HEARTBEAT, "n7", term=n2.term + 1))
    assert n2.refusal_counts == {RefusalReason.STRANGER: 1}
    for _ in range(n2.cfg.election_tick):
        n2.tick()
    drain(n2)
    n2.step(msg(n2, MT.HEARTBEAT, "n7", term=n2.term + 1))
    assert n2.lead == "n7" and n2.refusal_counts == {RefusalReason.STRANGER: 1}
    # following n7 now, n2 hears it for the rest of its term, and only it
    n2.step(msg(n2, MT.HEARTBEAT, "n7"))
    n2.step(msg(n2, MT.HEARTBEAT, "n8"))
    assert n2.refusal_counts == {RefusalReason.STRANGER: 2}


def test_a_joining_node_hears_the_leader_that_adds_it():
    cl = led_by_n1()
    cl.add_node("n4")
    cl["n1"].propose_conf_change(ConfChangeType.ADD_LEARNER, "n4")
    cl.stabilize()
    n4 = cl["n4"]
    assert n4.conf.learners == ("n4",) and n4.log.committed == cl["n1"].log.committed
    assert not n4.refusal_counts


def test_followers_hear_a_removed_leader_until_the_removal_commits_then_it_is_a_stranger():
    cl = led_by_n1()
    cl["n1"].propose_conf_change(ConfChangeType.REMOVE, "n1")
    cl.stabilize()
    assert cl["n1"].role == Role.FOLLOWER and cl["n2"].conf.voters == ("n2", "n3")
    assert not cl["n2"].refusal_counts
    cl.run(30)
    new = cl.leader()
    assert new in ("n2", "n3")
    core = cl[new]
    core.step(msg(core, MT.APP_RESP, "n1", index=1))
    assert core.refusal_counts.get(RefusalReason.STRANGER, 0) >= 1


def test_a_removed_node_that_stepped_down_refuses_a_strangers_commit():
    cl = led_by_n1()
    n1 = cl["n1"]
    n1.propose_conf_change(ConfChangeType.REMOVE, "n1")
    cl.stabilize()
    # n1 no longer leads; n2 (its old follower) hands it one more entry, uncommitted
    n1.step(msg(n1, MT.APP, "n2", index=n1.log.last_index(), log_term=n1.log.last_term(),
                entries=[Entry(n1.term, n1.log.last_index() + 1)]))
    drain(n1)
    n1.step(msg(n1, MT.HEARTBEAT, "x9", term=n1.term + 1, commit=n1.log.last_index()))
    assert n1.log.committed < n1.log.last_index()
    assert n1.refusal_counts.get(RefusalReason.STRANGER) == 1


def test_a_flood_of_refusals_is_counted_in_full_and_reported_in_part():
    cl = led_by_n1()
    n2 = cl["n2"]
    for _ in range(MAX_REFUSALS_PER_READY + 50):
        n2.step(msg(n2, MT.HEARTBEAT, "n1", term=2**64 - 1))
    assert n2.refusal_counts == {RefusalReason.TERM_TOO_HIGH: MAX_REFUSALS_PER_READY + 50}
    assert len(refused(n2)) == MAX_REFUSALS_PER_READY


def test_step_down_leaves_the_group_unclaimed():
    """The driver fences a failed group: its leader claims the lead no more and knows
    no leader, at the same term (nothing is persisted differently)."""
    cl = led_by_n1()
    leader = cl.cores["n1"]
    term = leader.term
    leader.step_down()
    assert leader.role is Role.FOLLOWER and leader.lead is None and leader.term == term
    follower = cl.cores["n2"]
    follower.step_down()
    assert follower.role is Role.FOLLOWER and follower.lead is None
