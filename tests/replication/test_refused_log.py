"""The refused-message log lines: one per reason per interval, naming the peer."""

from __future__ import annotations

import logging

import pytest

from respkv.raft.refusal import Refusal, RefusalReason
from respkv.replication.refused import RefusedMessages


def test_one_line_per_reason_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = RefusedMessages("g0", every=10.0, clock=lambda: now[0])
    term = Refusal(RefusalReason.TERM_TOO_HIGH, "n2", "HEARTBEAT t18446744073709551615")
    stranger = Refusal(RefusalReason.STRANGER, "n9", "VOTE t3: not a member")
    with caplog.at_level(logging.WARNING, logger="respkv.replication.refused"):
        log.note([term] * 50 + [stranger] * 3)
        now[0] += 9.9
        log.note([term])
        now[0] += 0.2
        log.note([term])
    lines = [(r.reason, r.peer, r.not_logged_since) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [("term_too_high", "n2", 0), ("stranger", "n9", 0),
                     ("term_too_high", "n2", 50)]
    assert all(r.group == "g0" for r in caplog.records)  # type: ignore[attr-defined]
