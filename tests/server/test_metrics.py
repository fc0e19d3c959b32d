"""The Prometheus collector: read at scrape time, one sample per group (and reason)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from respkv.raft.refusal import RefusalReason
from respkv.server.metrics import ServerCollector
from respkv.server.stats import Stats


def _group(name: str, refused: dict[RefusalReason, int]) -> SimpleNamespace:
    return SimpleNamespace(name=name, term=3, commit_index=9, applied_index=9, last_index=9,
                           snapshot_index=0, is_leader=lambda: True, keyspace={},
                           leader_changes=1, refusal_counts=refused, down="", stalled=False,
                           failures=0)


def test_refused_raft_messages_by_group_and_reason() -> None:
    node = SimpleNamespace(groups=[_group("g0", {RefusalReason.STRANGER: 4}),
                                   _group("g1", {})])
    collector = ServerCollector(cast(Any, SimpleNamespace(node_id="n1")),
                                Stats(), {}, cast(Any, node))
    family = next(f for f in collector.collect() if f.name == "respkv_raft_refused")
    samples = {(s.labels["group"], s.labels["reason"]): s.value for s in family.samples
               if s.name == "respkv_raft_refused_total"}
    assert len(samples) == 2 * len(RefusalReason)
    assert samples[("g0", "stranger")] == 4
    assert samples[("g0", "term_too_high")] == samples[("g1", "stranger")] == 0


def test_a_fenced_or_stalled_group_shows() -> None:
    fenced = _group("g0", {})
    fenced.down, fenced.failures = "the Raft loop failed: RuntimeError: x", 1
    stalled = _group("g1", {})
    stalled.stalled = True
    node = SimpleNamespace(groups=[fenced, stalled])
    collector = ServerCollector(cast(Any, SimpleNamespace(node_id="n1")),
                                Stats(), {}, cast(Any, node))
    values = {(s.name, s.labels["group"]): s.value for f in collector.collect()
              for s in f.samples if "group" in s.labels}
    assert values[("respkv_raft_group_down", "g0")] == 1
    assert values[("respkv_raft_group_down", "g1")] == 0
    assert values[("respkv_raft_group_stalled", "g1")] == 1
    assert values[("respkv_raft_group_failures_total", "g0")] == 1
