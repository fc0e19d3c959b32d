"""The fault suite against real clusters (short CI version), and its proof of teeth:
with the server's unsafe test switches on, it must report a violation.

Each run starts its own 3-node cluster on 127.0.0.1 behind the raft proxies and
stops every process it started, by PID, whatever happens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jepsen import runner


def run(tmp_path: Path, *args: str) -> tuple[int, dict]:
    code = runner.main(["--nodes", "3", "--out", str(tmp_path), "--check-budget", "30",
                        "--recovery-timeout", "20",
                        *args])
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("history.jsonl", "timeline.html", "verdict.txt"):
        assert (tmp_path / name).stat().st_size > 0
    return code, summary


def explain(summary: dict) -> str:
    return json.dumps({k: summary.get(k) for k in (
        "verdict_line", "faults", "nemesis_errors", "client_crashes", "recovery_error",
        "counter", "bad_replies")}, indent=1)


@pytest.mark.parametrize("seed", [11, 12])
def test_short_run_passes(tmp_path: Path, seed: int):
    code, summary = run(tmp_path, "--duration", "15", "--seed", str(seed),
                        "--faults", "kill,pause,partition")
    assert code == 0, explain(summary)
    assert summary["verdict"] == "pass"
    assert summary["faults"], "the nemesis did nothing"
    assert not summary["nemesis_errors"] and not summary["client_crashes"], explain(summary)
    ops = summary["ops"]["total"]
    assert ops.get("ok", 0) > 500, ops
    assert all(r["valid"] is True for r in summary["registers"].values())
    assert summary["counter"]["acknowledged"] > 0 and summary["ledger"]["acknowledged"] > 0


def test_slow_disk_under_transfers(tmp_path: Path):
    """fsync slowed down by 20-400 ms (DEBUG FSYNC-DELAY) on the leader or a follower,
    mixed with leadership transfers: still linearizable."""
    code, summary = run(tmp_path, "--duration", "15", "--seed", "13",
                        "--faults", "slow-disk,transfer")
    assert code == 0, explain(summary)
    kinds = [fault["kind"] for fault in summary["faults"]]
    assert "slow-disk" in kinds, kinds
    assert all(r["valid"] is True for r in summary["registers"].values())


def test_teeth_stale_reads_are_caught(tmp_path: Path):
    """Followers and a cut-off or paused leader answer reads from local state."""
    code, summary = run(tmp_path, "--duration", "10", "--seed", "21",
                        "--faults", "pause-leader,partition-leader", "--unsafe", "stale-reads")
    assert code == 1, explain(summary)
    assert summary["verdict"] == "FAIL"
    bad = [r for r in summary["registers"].values() if r["valid"] is False]
    assert bad, explain(summary)
    assert all(r["witness"] for r in bad)


def test_teeth_early_ack_loses_writes_when_all_nodes_die(tmp_path: Path):
    """The leader acknowledges before the fsync: kill -9 of every node loses writes."""
    code, summary = run(tmp_path, "--duration", "10", "--seed", "22", "--faults", "kill-all",
                        "--unsafe", "early-ack")
    assert code == 1, explain(summary)
    assert summary["verdict"] == "FAIL"
    assert not summary["ledger"]["valid"] or not summary["counter"]["valid"] or any(
        r["valid"] is False for r in summary["registers"].values()), explain(summary)
