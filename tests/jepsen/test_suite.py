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
from testsupport.disks import small_tmpfs


def run(tmp_path: Path, *args: str) -> tuple[int, dict]:
    code = runner.main(["--nodes", "3", "--out", str(tmp_path), "--check-budget", "30",
                        "--recovery-timeout", "20",
                        *args])
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["node_logs"] = str(tmp_path / "cluster")  # for explain()
    for name in ("history.jsonl", "timeline.html", "verdict.txt"):
        assert (tmp_path / name).stat().st_size > 0
    return code, summary


def explain(summary: dict, log_lines: int = 40) -> str:
    """What a failed run's assertion shows: the summary's main parts, then the end of
    every node's log, since a run that fails only now and then must say why the
    first time."""
    text = json.dumps({k: summary.get(k) for k in (
        "verdict_line", "faults", "nemesis_errors", "client_crashes", "recovery_error",
        "counter", "bad_replies")}, indent=1)
    for log in sorted(Path(summary.get("node_logs", ".")).glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-log_lines:]
        text += f"\n--- {log.name}, last {len(tail)} lines\n" + "\n".join(tail)
    return text


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


def test_a_wiped_node_is_replaced_and_big_values_replicate(tmp_path: Path):
    """A follower that loses its disk is refused under its own id, then replaced (leave,
    join on the empty dir); values near max-entry-bytes replicate and bigger ones are
    refused, all under the workload's checks."""
    code, summary = run(tmp_path, "--duration", "12", "--seed", "15", "--schedule", "cycle",
                        "--quiet", "0.5", "1", "--faults", "wipe,big-value")
    assert code == 0, explain(summary)
    kinds = [fault["kind"] for fault in summary["faults"]]
    assert {"wipe", "big-value"} <= set(kinds), explain(summary)
    assert not summary["nemesis_errors"] and not summary["client_crashes"], explain(summary)
    wiped = [f for f in summary["faults"] if f["kind"] == "wipe"]
    assert all("refused, removed, rejoined" in f["detail"] for f in wiped), explain(summary)
    assert any("bytes written" in f["detail"] for f in summary["faults"]
               if f["kind"] == "big-value"), explain(summary)


def test_short_run_with_mtls_between_nodes_and_passwords_passes(tmp_path: Path):
    """tls-cluster yes and a requirepass on every node: Raft, snapshots and the faults
    all go through mutual TLS (the proxies end and reopen it), every client and every
    fault command authenticates, and the checks still pass."""
    code, summary = run(tmp_path, "--duration", "10", "--seed", "14", "--tls",
                        "--password", "jepsen-pw", "--faults", "kill,partition,transfer")
    assert code == 0, explain(summary)
    assert summary["verdict"] == "pass" and summary["tls_cluster"] is True
    assert summary["requirepass"] is True
    assert summary["faults"], "the nemesis did nothing"
    # the nodes refuse anything but TLS on their Raft ports: frames went through TLS
    assert summary["proxy_frames"]["relayed"] > 0
    assert summary["ops"]["total"].get("ok", 0) > 200, summary["ops"]
    for log in (tmp_path / "cluster").glob("*.log"):
        text = log.read_text()
        assert "TLS handshake with peer failed" not in text and "Traceback" not in text
        assert "refused AUTH" not in text  # every client had the password


def test_slow_disk_under_transfers(tmp_path: Path):
    """fsync slowed down by 20-400 ms (DEBUG FSYNC-DELAY) on the leader or a follower,
    mixed with leadership transfers: still linearizable."""
    code, summary = run(tmp_path, "--duration", "15", "--seed", "13",
                        "--faults", "slow-disk,transfer")
    assert code == 0, explain(summary)
    kinds = [fault["kind"] for fault in summary["faults"]]
    assert "slow-disk" in kinds, kinds
    assert all(r["valid"] is True for r in summary["registers"].values())


def test_a_follower_whose_disk_fills_catches_up(tmp_path: Path):
    """A follower's disk (a tmpfs of its own) filled to the last block while the load
    goes on, then freed: linearizable, nothing acknowledged lost, the node reported its
    full disk while it lasted and applied what the leaders had committed once freed."""
    with small_tmpfs(tmp_path / "probe", "1m"):  # skips, saying why, where mounts fail
        pass
    out = tmp_path / "run"
    code, summary = run(out, "--duration", "8", "--seed", "16", "--schedule", "cycle",
                        "--quiet", "0.5", "1", "--fault-length", "1.5", "2.5",
                        "--faults", "disk-full")
    assert code == 0, explain(summary)
    assert summary["verdict"] == "pass" and summary["recovered"] is True, explain(summary)
    assert all(r["valid"] is True for r in summary["registers"].values())
    assert summary["counter"]["valid"] and summary["ledger"]["valid"], explain(summary)
    assert summary["ledger"]["acknowledged"] > 0
    assert not summary["nemesis_errors"] and not summary["client_crashes"], explain(summary)
    faults = [f for f in summary["faults"] if f["kind"] == "disk-full"]
    assert faults, explain(summary)
    for fault in faults:
        facts = fault["facts"]
        assert facts["disk_full_seen"] > 0, fault  # INFO persistence said so
        assert max(facts["behind"].values()) > 0, fault  # it stood still meanwhile
        assert set(facts["caught_up_with"]) == {"g0", "g1", "g2"}, fault
        log = (out / "cluster" / f"{fault['targets'][0]}.log").read_text()
        assert "disk almost full" in log or "disk full: refusing writes" in log
    mounts = Path("/proc/mounts").read_text()
    assert str(out / "cluster") not in mounts  # every node's tmpfs unmounted


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


# -- the transactional workloads --------------------------------------------------------

# A few seconds of load, faults one after the other in the order given (so a short run
# surely has each kind), short quiet gaps and faults.
SHORT_TXN_RUN = ("--duration", "8", "--schedule", "cycle", "--quiet", "0.5", "1",
                 "--fault-length", "1", "2", "--clients", "6")


# kill-all with the unsafe early-ack switch: longer quiet gaps, so that after each
# restart a leader is elected and load is acknowledged again before the next kill-all
# (kills a second apart keep the cluster down: only the first one would meet load)
TEETH_TXN_RUN = ("--duration", "10", "--schedule", "cycle", "--quiet", "2.5", "3.5",
                 "--fault-length", "1", "2", "--clients", "6", "--faults", "kill-all",
                 "--unsafe", "early-ack")


def fault_families(summary: dict) -> set[str]:
    return {fault["kind"].split("-")[0] for fault in summary["faults"]}


def assert_clean(summary: dict) -> None:
    assert not summary["nemesis_errors"] and not summary["client_crashes"], explain(summary)
    assert {"kill", "pause"} <= fault_families(summary), summary["faults"]
    assert sum(summary["server_restarts"].values()) > 0  # kill -9, then a restart
    assert not summary["bad_replies"]


def test_bank_short_run_passes(tmp_path: Path):
    """Transfers in WATCH/MULTI/EXEC and balance reads while nodes are killed, paused
    and cut off: every read sees the total, the end is what the transfers made."""
    code, summary = run(tmp_path, "--workload", "bank", "--seed", "31",
                        "--faults", "kill,pause,partition", *SHORT_TXN_RUN)
    assert code == 0, explain(summary) + json.dumps(summary.get("bank"), indent=1)
    assert_clean(summary)
    bank = summary["bank"]
    assert bank["valid"] is True and not bank["problems"]
    assert bank["transfers_ok"] > 100 and bank["reads_ok"] > 100, bank
    assert bank["transfers_watch_aborted"] > 0  # the clients did contend
    assert sorted(bank["final"]) == ["n1", "n2", "n3"]
    assert all(sum(values) == bank["total"] for values in bank["final"].values())
    assert summary["ops"]["balances"]["ok"] > 0 and summary["ops"]["balances-mget"]["ok"] > 0


def test_list_append_short_run_passes(tmp_path: Path):
    """Append/read transactions while nodes are killed, paused and cut off: strictly
    serializable (no cycle, no anomaly), and every node ends with every list."""
    code, summary = run(tmp_path, "--workload", "list-append", "--seed", "32",
                        "--faults", "kill,pause,partition", *SHORT_TXN_RUN)
    assert code == 0, explain(summary) + json.dumps(summary.get("list_append"), indent=1)
    assert_clean(summary)
    checked = summary["list_append"]
    assert checked["valid"] is True and not checked["cycles"] and not checked["anomalies"]
    assert checked["ok"] > 300, checked
    assert checked["keys"] > 3  # keys were retired for fresh ones
    history = (tmp_path / "history.jsonl").read_text().splitlines()
    finals = [json.loads(line) for line in history if '"client":-1' in line]
    assert {op["node"] for op in finals} == {"n1", "n2", "n3"}
    assert all(op["status"] == "ok" for op in finals)


def test_teeth_bank_transfers_lost_with_early_ack_when_all_nodes_die(tmp_path: Path):
    """Acknowledged before the fsync, then kill -9 of every node: acknowledged
    transfers are lost, so the final balances are not what the transfers made."""
    code, summary = run(tmp_path, "--workload", "bank", "--seed", "22", *TEETH_TXN_RUN)
    assert code == 1, explain(summary)
    assert summary["verdict"] == "FAIL" and "bank:" in summary["verdict_line"]
    assert summary["bank"]["valid"] is False, summary["bank"]


def test_teeth_list_appends_lost_with_early_ack_when_all_nodes_die(tmp_path: Path):
    """The same with list-append: acknowledged appends missing from the final reads
    (named lost-append when no read ever saw them, a cycle with the final read when
    one did)."""
    code, summary = run(tmp_path, "--workload", "list-append", "--seed", "22", *TEETH_TXN_RUN)
    assert code == 1, explain(summary)
    assert summary["verdict"] == "FAIL" and "list-append:" in summary["verdict_line"]
    checked = summary["list_append"]
    assert checked["valid"] is False
    losses = {"lost-append", "G-single-realtime", "G2-item-realtime", "incompatible-order"}
    assert losses & set(checked["anomaly_types"]), checked["anomaly_types"]
