"""The Prometheus collector: read at scrape time, one sample per group (and reason);
and the /metrics endpoint of a real node, scraped."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from respkv.histogram import Histogram
from respkv.raft.refusal import RefusalReason
from respkv.server.metrics import ServerCollector
from respkv.server.stats import Stats
from testsupport.ports import free_port
from testsupport.processes import Node


class _Keyspace(dict):
    used = 0


def _group(name: str, refused: dict[RefusalReason, int]) -> SimpleNamespace:
    proposals = SimpleNamespace(queue=[], waiters={}, dropped=0, failed=0,
                                commit_seconds=Histogram())
    return SimpleNamespace(name=name, term=3, commit_index=9, applied_index=9, last_index=9,
                           snapshot_index=0, is_leader=lambda: True, keyspace=_Keyspace(),
                           leader_changes=1, refusal_counts=refused, down="", stalled=False,
                           failures=0, leader_id=lambda: "n1", is_learner=False,
                           proposals=proposals, loop=SimpleNamespace(apply_seconds=Histogram()),
                           core=SimpleNamespace(elections=1), read_rounds=lambda: (0, 0),
                           log_in_memory=lambda: (0, 0), store_bytes=lambda: 0,
                           follower_matches=lambda: {"n2": 7})


def test_refused_raft_messages_by_group_and_reason() -> None:
    node = SimpleNamespace(groups=[_group("g0", {RefusalReason.STRANGER: 4}),
                                   _group("g1", {})], wal=None, transport=None)
    collector = ServerCollector(cast(Any, SimpleNamespace(node_id="n1")),
                                Stats(), {}, cast(Any, node))
    family = next(f for f in collector.collect() if f.name == "respkv_raft_refused")
    samples = {(s.labels["group"], s.labels["reason"]): s.value for s in family.samples
               if s.name == "respkv_raft_refused_total"}
    assert len(samples) == 2 * len(RefusalReason)
    assert samples[("g0", "stranger")] == 4
    assert samples[("g0", "term_too_high")] == samples[("g1", "stranger")] == 0
    lag = next(f for f in collector.collect() if f.name == "respkv_raft_follower_lag_entries")
    assert [(s.labels["group"], s.labels["peer"], s.value) for s in lag.samples] == [
        ("g0", "n2", 2), ("g1", "n2", 2)]  # commit 9, the follower holds 7


def test_a_fenced_or_stalled_group_shows() -> None:
    fenced = _group("g0", {})
    fenced.down, fenced.failures = "the Raft loop failed: RuntimeError: x", 1
    stalled = _group("g1", {})
    stalled.stalled = True
    node = SimpleNamespace(groups=[fenced, stalled], wal=None, transport=None)
    collector = ServerCollector(cast(Any, SimpleNamespace(node_id="n1")),
                                Stats(), {}, cast(Any, node))
    values = {(s.name, s.labels["group"]): s.value for f in collector.collect()
              for s in f.samples if "group" in s.labels}
    assert values[("respkv_raft_group_down", "g0")] == 1
    assert values[("respkv_raft_group_down", "g1")] == 0
    assert values[("respkv_raft_group_stalled", "g1")] == 1
    assert values[("respkv_raft_group_failures_total", "g0")] == 1


# -- a real node's endpoint -------------------------------------------------------


@pytest.fixture(scope="module")
def scraped_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node for the module's scrapes, its metrics on their own port."""
    metrics_port = free_port()
    started = Node(free_port(), tmp_path_factory.mktemp("node") / "n1",
                   ["--metrics-port", str(metrics_port)]).start()
    started.metrics_port = metrics_port  # type: ignore[attr-defined]
    yield started
    assert started.stop() == 0, started.log()


def scrape(node: Node) -> dict[str, Any]:
    """Family name -> family, as prometheus-client parses the endpoint's text."""
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(family: Any, sample: str, **labels: str) -> float:
    return sum(s.value for s in family.samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


EXPECTED = {
    "respkv_command_duration_seconds": "histogram",
    "respkv_raft_commit_duration_seconds": "histogram",
    "respkv_raft_apply_duration_seconds": "histogram",
    "respkv_wal_fsync_duration_seconds": "histogram",
    "respkv_commands": "counter", "respkv_error_replies": "counter",
    "respkv_wal_written_bytes": "counter", "respkv_snapshot_sent_bytes": "counter",
    "respkv_snapshot_received_bytes": "counter", "respkv_raft_elections": "counter",
    "respkv_raft_leader_changes": "counter", "respkv_raft_proposals_dropped": "counter",
    "respkv_raft_proposals_failed": "counter", "respkv_raft_read_rounds": "counter",
    "respkv_raft_has_leader": "gauge", "respkv_raft_is_learner": "gauge",
    "respkv_raft_follower_lag_entries": "gauge", "respkv_raft_pending_proposals": "gauge",
    "respkv_raft_log_entries": "gauge", "respkv_raft_log_bytes": "gauge",
    "respkv_store_size_bytes": "gauge", "respkv_wal_size_bytes": "gauge",
    "respkv_used_memory_bytes": "gauge",
}


def test_a_node_exports_the_instruments_and_they_move(scraped_node: Node) -> None:
    client = scraped_node.client()
    before = scrape(scraped_node)
    assert {name: before[name].type for name in EXPECTED} == EXPECTED
    for i in range(20):
        client.set(f"metric-key-{i}", "x" * 100)
    with pytest.raises(redis.ResponseError):
        client.execute_command("LPUSH", "metric-key-0", "x")
    after = scrape(scraped_node)
    set_ = {"command": "set"}
    assert _value(after["respkv_command_duration_seconds"],
                  "respkv_command_duration_seconds_count", **set_) >= 20
    assert _value(after["respkv_command_duration_seconds"],
                  "respkv_command_duration_seconds_sum", **set_) > 0
    inf = _value(after["respkv_command_duration_seconds"],
                 "respkv_command_duration_seconds_bucket", le="+Inf", **set_)
    assert inf == _value(after["respkv_command_duration_seconds"],
                         "respkv_command_duration_seconds_count", **set_)
    for name in ("respkv_wal_fsync_duration_seconds", "respkv_raft_commit_duration_seconds",
                 "respkv_raft_apply_duration_seconds"):
        assert _value(after[name], f"{name}_count") > _value(before[name], f"{name}_count")
    assert _value(after["respkv_wal_written_bytes"], "respkv_wal_written_bytes_total") \
        >= _value(before["respkv_wal_written_bytes"], "respkv_wal_written_bytes_total") + 2000
    assert _value(after["respkv_error_replies"], "respkv_error_replies_total",
                  prefix="WRONGTYPE") >= 1
    assert _value(after["respkv_raft_has_leader"], "respkv_raft_has_leader") == \
        len(after["respkv_raft_has_leader"].samples)  # a lone node leads every group
    assert _value(after["respkv_raft_is_learner"], "respkv_raft_is_learner") == 0
    assert _value(after["respkv_raft_elections"], "respkv_raft_elections_total") >= 1
    assert _value(after["respkv_raft_log_entries"], "respkv_raft_log_entries") >= 20
    assert _value(after["respkv_raft_log_bytes"], "respkv_raft_log_bytes") >= 2000
    assert _value(after["respkv_used_memory_bytes"], "respkv_used_memory_bytes") > 0


DASHBOARD = Path(__file__).resolve().parents[2] / "conf" / "grafana-respkv.json"


def test_the_grafana_dashboard_names_only_metrics_a_node_exports(scraped_node: Node) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {re.sub(r"_(bucket|count|sum|total)$", "", name)
            for expr in exprs for name in re.findall(r"\b(?:respkv|process)_[a-z_]+", expr)}
    exported = set(scrape(scraped_node))
    assert used and used <= exported, used - exported
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for shown in ("command", "latency", "commit", "fsync", "leader", "lag", "memory", "log"):
        assert shown in titles
