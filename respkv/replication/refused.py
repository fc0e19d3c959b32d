"""The log lines of the Raft messages a group's core refused.

A buggy or hostile peer can send many such messages: one warning per reason per
interval, naming the peer and the reason, with how many went unlogged since. The
counts that do not miss any are the core's (``RaftCore.refusal_counts``), shown in
INFO and the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from respkv.raft.refusal import Refusal, RefusalReason

logger = logging.getLogger(__name__)

REFUSALS_EVERY = 10.0  # seconds between two log lines of the same reason


class RefusedMessages:
    def __init__(self, group: str, every: float = REFUSALS_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.group = group
        self.every = every
        self.clock = clock
        self.last: dict[RefusalReason, float] = {}
        self.quiet: dict[RefusalReason, int] = {}

    def note(self, refusals: Iterable[Refusal]) -> None:
        now = self.clock()
        for refusal in refusals:
            reason = refusal.reason
            last = self.last.get(reason)
            if last is not None and now - last < self.every:
                self.quiet[reason] = self.quiet.get(reason, 0) + 1
                continue
            self.last[reason] = now
            logger.warning("raft message refused", extra={
                "group": self.group, "peer": refusal.sender, "reason": str(reason),
                "detail": refusal.detail, "not_logged_since": self.quiet.pop(reason, 0)})
