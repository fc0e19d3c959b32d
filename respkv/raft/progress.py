"""The leader's view of one follower (etcd's Progress), with flow control."""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0  # one append in flight at a time until the follower's match is found
    REPLICATE = 1  # optimistic pipelining, bounded by the inflight window
    SNAPSHOT = 2  # a snapshot is being sent: no appends until it is reported


class Progress:
    __slots__ = (
        "inflight_bytes",
        "inflights",
        "lease_tick",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "state",
    )

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.inflights: deque[tuple[int, int]] = deque()  # (last index, bytes)
        self.inflight_bytes = 0
        self.lease_tick = -1  # leader tick of the latest heartbeat this peer acknowledged

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.clear()
        self.inflight_bytes = 0

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            ps = self.pending_snapshot
            self._reset(ProgressState.PROBE)
            self.next = max(self.match + 1, ps + 1)
        else:
            self._reset(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = index

    def maybe_update(self, n: int) -> bool:
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # stale
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self, max_msgs: int, max_bytes: int) -> bool:
        st = self.state
        if st == ProgressState.REPLICATE:
            return len(self.inflights) >= max_msgs or (
                max_bytes > 0 and self.inflight_bytes >= max_bytes
            )
        if st == ProgressState.PROBE:
            return self.probe_sent
        return True

    def free_le(self, index: int) -> None:
        inf = self.inflights
        while inf and inf[0][0] <= index:
            self.inflight_bytes -= inf.popleft()[1]

    def __repr__(self) -> str:
        return (
            f"Progress({self.state.name} match={self.match} next={self.next}"
            f" inflight={len(self.inflights)} active={self.recent_active})"
        )
