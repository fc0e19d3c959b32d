"""The runner's options for the workloads, and the nemesis' cycle schedule (no
cluster: the faults that only set proxy rules are applied to a Network alone)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from jepsen import runner
from jepsen.faults import Nemesis
from jepsen.history import History
from jepsen.proxy import Network
from testsupport.waiting import wait_for


def test_workload_option():
    assert runner.parse([]).workload == ["registers"]
    assert runner.parse(["--workload", "bank,list-append"]).workload == ["bank", "list-append"]
    assert runner.parse(["--workload", "bank,bank"]).workload == ["bank"]
    with pytest.raises(SystemExit):
        runner.parse(["--workload", "bank,ledgers"])


def test_help_documents_the_workloads(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        runner.parse(["--help"])
    text = capsys.readouterr().out
    for name in ("registers", "bank", "list-append", "--accounts", "--max-txn-length",
                 "--schedule"):
        assert name in text


def test_cycle_schedule_takes_the_faults_in_order_and_applies_proxy_rules():
    network = Network(0)
    rules: list[tuple[str, str, object]] = []
    set_rule = network.set_rule
    network.set_rule = lambda a, b, rule: (rules.append((a, b, rule)), set_rule(a, b, rule))
    cluster = SimpleNamespace(nodes=[SimpleNamespace(node_id=f"n{i}") for i in (1, 2, 3)],
                              network=network)
    stop = threading.Event()
    nemesis = Nemesis(cluster, History(), ["delay", "drop"], seed=1, stop=stop,
                      quiet=(0.0, 0.0), length=(0.0, 0.0), schedule="cycle")
    try:
        nemesis.start()
        wait_for(lambda: len(nemesis.events) >= 4, 10, "four faults")
    finally:
        stop.set()
        nemesis.join(10)
        network.stop()
    assert not nemesis.errors
    assert [e.kind for e in nemesis.events[:4]] == ["delay", "drop", "delay", "drop"]
    assert any(rule.delay > 0 for _, _, rule in rules)
    assert any(rule.drop > 0 for _, _, rule in rules)
    assert not network.rules  # each fault healed at its end


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        Nemesis(SimpleNamespace(nodes=[], network=None), History(), ["kill"], seed=1,
                stop=threading.Event(), schedule="sometimes")
