"""LATENCY: spikes of at least latency-monitor-threshold ms, per event, as Redis'
latency monitor keeps them (0 turns it off).

Events: ``command`` and ``fast-command`` (a slow command), ``event-loop`` (the loop
went that long without a turn), ``fsync`` (one WAL fsync). Each keeps its newest
160 samples, one per second (the worst of that second), and its worst since reset.
"""

from __future__ import annotations

import time
from collections import deque

from respkv.config import Config

SAMPLES = 160


class Event:
    __slots__ = ("max", "samples")

    def __init__(self) -> None:
        self.samples: deque[list[int]] = deque(maxlen=SAMPLES)  # [unix time, ms]
        self.max = 0


class LatencyMonitor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.events: dict[str, Event] = {}

    def add(self, event: str, ms: int | float) -> None:
        """A sample, kept if the monitor is on and it is at or above its threshold."""
        threshold = self.config.latency_monitor_threshold
        if not threshold or ms < threshold:
            return
        ms = int(ms)
        now = int(time.time())
        found = self.events.get(event)
        if found is None:
            found = self.events[event] = Event()
        samples = found.samples
        if samples and samples[-1][0] == now:
            samples[-1][1] = max(samples[-1][1], ms)
        else:
            samples.append([now, ms])
        found.max = max(found.max, ms)

    def latest(self) -> list[list[object]]:
        """Per event: its name, the latest sample's time and ms, and its worst."""
        return [[name, event.samples[-1][0], event.samples[-1][1], event.max]
                for name, event in self.events.items()]

    def history(self, event: str) -> list[list[int]]:
        found = self.events.get(event)
        return [list(sample) for sample in found.samples] if found else []

    def reset(self, events: list[str]) -> int:
        """Forget the events named (all when none are): how many there were."""
        if not events:
            count = len(self.events)
            self.events.clear()
            return count
        count = 0
        for name in dict.fromkeys(events):
            if self.events.pop(name, None) is not None:
                count += 1
        return count
