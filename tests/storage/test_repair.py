"""Tests of the WAL repair (cut at the first damaged record, the rest moved aside) and
of the vote floor it leaves for the Raft core."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftsim.cluster import Cluster
from respkv.raft.core import Config, RaftCore
from respkv.raft.messages import Message, MessageType
from respkv.raft.types import Entry, EntryKind, HardState
from respkv.storage.repair import RepairRefused, repair_wal
from respkv.storage.wal import VOTE_FLOOR_FILE, WAL, CorruptLogError


def write_log(d: Path, last: int = 300, groups: int = 2) -> None:
    with WAL.open(d, segment_bytes=4000) as wal:
        for i in range(1, last + 1):
            for group in range(groups):
                wal.append([Entry(2, i, EntryKind.NORMAL, b"%d-%d" % (group, i) * 8)], group)
            if i % 10 == 0:
                wal.set_hard_state(HardState(2, "n1", i), 0)
                wal.sync()
        wal.set_hard_state(HardState(3, "n3", last), 0)  # a vote in a later term, last


def flip(path: Path, spot: int) -> None:
    data = bytearray(path.read_bytes())
    data[spot] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_healthy_log_is_left_alone(tmp_path: Path) -> None:
    write_log(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = repair_wal(tmp_path, "T")
    assert result.damage is None
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_damaged_middle_record_is_cut_and_the_rest_moved_aside(tmp_path: Path) -> None:
    write_log(tmp_path)
    segments = sorted(tmp_path.glob("*.wal"))
    assert len(segments) > 5
    damaged = segments[2]
    flip(damaged, damaged.stat().st_size // 2)
    original = damaged.read_bytes()
    with pytest.raises(CorruptLogError) as info:
        WAL.open(tmp_path)
    offset = info.value.offset
    assert info.value.after is not None  # the last good entry is named

    result = repair_wal(tmp_path, "T")
    assert result.damage is not None and result.damage.offset == offset
    # the prefix is kept byte for byte; nothing is deleted
    assert damaged.read_bytes().startswith(original[:offset])  # + the hard state kept
    aside = damaged.with_name(damaged.name + ".corrupt-T")
    assert aside.read_bytes() == original[offset:]
    for later in segments[3:]:
        assert not later.exists()
        assert later.with_name(later.name + ".corrupt-T").exists()
    with WAL.open(tmp_path) as wal:
        kept = {g: wal.last_index(g) for g in (0, 1)}
        assert 0 < min(kept.values()) < 300
        assert [e.index for e in wal.load(0).entries] == list(range(1, kept[0] + 1))
        # the latest term and vote survive the cut, the commit is within the kept log
        hs = wal.hard_state(0)
        assert (hs.term, hs.vote) == (3, "n3") and hs.commit <= kept[0]
        floors = {g: wal.vote_floor(g) for g in (0, 1)}
    assert all(floor is not None and floor >= (2, 300) for floor in floors.values())
    assert json.loads((tmp_path / VOTE_FLOOR_FILE).read_text())["floors"]
    # a second repair finds nothing to do
    assert repair_wal(tmp_path, "U").damage is None


def test_the_floor_goes_once_the_log_is_past_it(tmp_path: Path) -> None:
    write_log(tmp_path, last=100, groups=1)
    segment = sorted(tmp_path.glob("*.wal"))[1]
    flip(segment, 40)
    result = repair_wal(tmp_path, "T")
    floor = result.floors[0]
    with WAL.open(tmp_path) as wal:
        last = wal.last_index()
        assert wal.vote_floor() == floor
        wal.append([Entry(4, i, EntryKind.NORMAL, b"new") for i in range(last + 1, 102)])
        wal.sync()
    with WAL.open(tmp_path) as wal:
        assert wal.vote_floor() is None
    assert not (tmp_path / VOTE_FLOOR_FILE).exists()


def test_a_missing_middle_segment_is_cut_there(tmp_path: Path) -> None:
    write_log(tmp_path)
    segments = sorted(tmp_path.glob("*.wal"))
    segments[3].unlink()
    result = repair_wal(tmp_path, "T")
    assert result.damage is not None
    assert [p.name for p in sorted(tmp_path.glob("*.wal"))] == [p.name for p in segments[:3]]
    WAL.open(tmp_path).close()


def test_a_damaged_floor_file_refuses_the_start(tmp_path: Path) -> None:
    write_log(tmp_path, last=20, groups=1)
    (tmp_path / VOTE_FLOOR_FILE).write_text("{not json")
    with pytest.raises(CorruptLogError) as info:
        WAL.open(tmp_path)
    assert not info.value.repairable
    with pytest.raises(RepairRefused):
        repair_wal(tmp_path, "T")


def vote(core: RaftCore, term: int, log_term: int, index: int) -> bool:
    core.step(Message(MessageType.VOTE, group=core.group, to=core.id, from_="n2",
                      term=term, log_term=log_term, index=index))
    replies = [m for m in core.ready().messages if m.type is MessageType.VOTE_RESP]
    return not replies[-1].reject


def repaired_core(floor: tuple[int, int] | None, voters: tuple[str, ...]) -> RaftCore:
    entries = RaftCore.bootstrap_entries(voters)
    entries += [Entry(2, i, EntryKind.NORMAL, b"x") for i in range(len(entries) + 1, 11)]
    return RaftCore(Config(node_id="n1", check_quorum=False, pre_vote=False,
                           vote_floor=floor), HardState(2, None, 3), None, entries)


def test_the_core_votes_only_for_logs_at_its_floor() -> None:
    voters = ("n1", "n2", "n3")
    assert vote(repaired_core(None, voters), 5, 2, 10)  # no floor: the log is enough
    assert not vote(repaired_core((2, 20), voters), 5, 2, 10)  # below the floor
    assert not vote(repaired_core((2, 20), voters), 5, 2, 19)
    assert vote(repaired_core((2, 20), voters), 5, 2, 20)
    assert vote(repaired_core((2, 20), voters), 5, 3, 12)  # a later term is past it


def test_the_core_does_not_campaign_below_its_floor() -> None:
    voters = ("n1", "n2", "n3")
    core = repaired_core((2, 20), voters)
    core.campaign()
    assert core.role.name == "FOLLOWER"
    core = repaired_core((2, 10), voters)  # at the floor
    core.campaign()
    assert core.role.name == "CANDIDATE"
    core = repaired_core((2, 20), ("n1",))  # alone, no one else has what was cut
    core.campaign()
    assert core.role.name == "LEADER"


def cut_follower(floor: tuple[int, int] | None) -> Cluster:
    """n1 leads n1..n3, all hold 1..14 (term 2 from 4 on); n2 comes back with its log
    cut to 1..6."""
    cl = Cluster(["n1", "n2", "n3"])
    cl.campaign("n1")
    cl.stabilize()
    for k in range(10):
        cl["n1"].propose(b"%d" % k)
    cl.stabilize()
    cl.crash("n2")
    storage = cl.storage["n2"]
    storage.entries = storage.entries[:6]
    storage.hs = HardState(storage.hs.term, storage.hs.vote, 6)
    cl.restart("n2")
    old = cl["n2"].cfg
    cl.cores["n2"] = RaftCore(
        Config(node_id="n2", voters=old.voters, seed=7, election_tick=old.election_tick,
               heartbeat_tick=old.heartbeat_tick, vote_floor=floor),
        storage.hs, storage.snap, list(storage.entries))
    return cl


def test_the_leader_resends_what_a_cut_follower_lost() -> None:
    cl = cut_follower((2, 14))
    cl["n1"].propose(b"new")
    cl.stabilize()
    assert cl["n2"].log.entries == cl["n1"].log.entries
    assert cl["n1"].prs["n2"].match == cl["n1"].log.last_index()


def test_without_the_floor_the_leader_never_resends_it() -> None:
    """The teeth of the test above: a leader never lowers a follower's match by itself."""
    cl = cut_follower(None)
    cl["n1"].propose(b"new")
    with pytest.raises(RuntimeError, match="does not stabilize"):
        cl.stabilize(limit=200)  # the same append refused, again and again
    assert cl["n2"].log.last_index() == 6
