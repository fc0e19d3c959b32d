"""The simulator as a test: many seeded clusters, all faults, safety checked every step."""

from __future__ import annotations

import time

import pytest

from raftsim.simulate import ALL_FAULTS, Sim, Violation, main, run_seed
from respkv.faults import RaftRule
from respkv.raft.refusal import RefusalReason

SEEDS_5 = 1000
STEPS = 200


def test_1000_seeds_5_nodes_all_faults():
    t0 = time.perf_counter()
    bad = []
    stats: dict = {}
    for seed in range(SEEDS_5):
        err = run_seed(seed, 5, STEPS, ALL_FAULTS, stats=stats)
        if err:
            bad.append(err)
    dt = time.perf_counter() - t0
    assert not bad, "\n".join(bad[:5])
    # the schedule really exercised the interesting paths
    assert stats["acked"] > 20 * SEEDS_5
    assert stats["reads"] > 5 * SEEDS_5
    assert stats["crashes"] > 3 * SEEDS_5
    assert stats["snaps_sent"] > SEEDS_5 // 2
    assert stats["conf"] > SEEDS_5
    assert stats["transfers"] > SEEDS_5
    print(f"{SEEDS_5} seeds in {dt:.1f}s: {stats}")


def test_300_seeds_3_nodes_all_faults():
    bad = [e for s in range(300) if (e := run_seed(10_000 + s, 3, STEPS, ALL_FAULTS))]
    assert not bad, "\n".join(bad[:5])


def test_no_faults_no_membership_every_proposal_commits():
    for seed in range(50):
        sim = Sim(seed, nodes=3, steps=150, faults=(), membership=False)
        sim.run()
        assert sim.stats["acked"] > 30


def test_200_seeds_of_heavy_forging_find_nothing_and_every_lie_is_refused():
    stats: dict = {}
    bad = [e for s in range(200)
           if (e := run_seed(20_000 + s, 5, STEPS, ALL_FAULTS, stats=stats,
                                 knobs={"forge": 0.3}))]
    assert not bad, "\n".join(bad[:5])
    assert stats["forged"] > 1000
    for reason in RefusalReason:
        assert stats.get(f"refused_{reason}", 0) > 10, (reason, stats)


def test_forging_is_a_fault_of_its_own():
    quiet = Sim(3, nodes=3, steps=100, faults=("drop",))
    quiet.run()
    assert quiet.stats["forged"] == 0
    loud = Sim(3, nodes=3, steps=100, faults=("drop", "forge"), knobs={"forge": 0.5})
    loud.run()
    assert loud.stats["forged"] > 20


def test_same_seed_same_run():
    a = Sim(7, nodes=5, steps=120)
    b = Sim(7, nodes=5, steps=120)
    a.run()
    b.run()
    assert a.history == b.history and a.stats == b.stats


def test_cli_prints_summary_last(capsys):
    assert main(["--seeds", "5", "--nodes", "3", "--steps", "50"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "5 seeds, 0 violations"


# ------------------------------------------------------------------- teeth
# Each deliberately broken rule must be caught within a bounded number of seeds.
# The knob profiles make the relevant interleavings likelier (no PreVote /
# CheckQuorum so elections are contested, targeted crashes, one entry per message).
TEETH = [
    ("vote_no_uptodate", 5, {}, 50),
    (
        "forget_vote",
        3,
        {"check_quorum": 0, "pre_vote": 0, "crash_after_vote": 0.5, "delay": 0.5},
        1500,
    ),
    (
        "commit_old_term",
        3,
        {
            "check_quorum": 0,
            "pre_vote": 0,
            "crash_new_leader": 0.3,
            "leader_crash": 0.1,
            "max_size": 1,
            "partition": 0.05,
            "drop": 0.15,
            "delay": 0.4,
        },
        3000,
    ),
    ("lease_forever", 5, {"check_quorum": 1, "lease_read": 1, "isolate_leader": 0.05}, 1000),
    # a leader back from a pause that forgets the time it stood still serves lease reads
    ("pause_keeps_lease", 3, {"check_quorum": 1, "lease_read": 1, "pause": 0.1}, 1000),
    # the forge fault's lies, believed: a term the wire cannot carry past, a commit by
    # forged acknowledgements, a stranger's newer term deposing a leader that then
    # commits its whole log
    ("adopt_any_term", 5, {}, 100),
    ("ack_past_end", 5, {}, 100),
    ("hear_strangers", 5, {}, 100),
]


@pytest.mark.parametrize(("bug", "nodes", "knobs", "bound"), TEETH, ids=[t[0] for t in TEETH])
def test_simulator_has_teeth(bug, nodes, knobs, bound):
    broken = frozenset({RaftRule(bug)})
    for seed in range(bound):
        try:
            Sim(seed, nodes=nodes, steps=STEPS, knobs=knobs, broken_rules=broken).run()
        except Violation as v:
            print(f"{bug}: caught at seed {seed}: {v}")
            return
        except Exception as exc:  # the broken rule crashed the core: caught too
            print(f"{bug}: caught at seed {seed}: {exc!r}")
            return
    pytest.fail(f"{bug} not caught in {bound} seeds")
