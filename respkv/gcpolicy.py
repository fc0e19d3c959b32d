"""Short pauses from CPython's cyclic garbage collector.

A node keeps its Raft logs in memory: one Entry object per entry, up to a
snapshot's worth per group (300,000 objects on a busy node of three groups).
A full collection walks every tracked object, and CPython runs one whenever the
long-lived objects have grown by a quarter: under a steady write load, a pause
of 100-140 ms every few seconds (the p99 of a pipelined SET benchmark).

So after each full collection the survivors are frozen (``gc.freeze``): later
collections skip them. Refcounting still frees a frozen object the moment it is
dropped (a compacted log's entries, a closed client), so only garbage held in
reference cycles among frozen objects waits: every ``FULL_EVERY`` seconds the
objects are unfrozen, and the next full collection walks them all once.
"""

from __future__ import annotations

import gc
import time

FULL_EVERY = 600.0  # seconds between full collections that walk every object


class GcPolicy:
    def __init__(self, full_every: float = FULL_EVERY) -> None:
        self.full_every = full_every
        self.unfrozen_at = time.monotonic()
        self.started = 0.0
        self.full_collections = 0
        self.last_full_ms = 0.0
        self.max_pause_ms = 0.0  # the longest collection of any generation

    def info(self) -> dict[str, object]:
        """For INFO memory: what the collector costs this process."""
        return {"gc_full_collections": self.full_collections,
                "gc_last_full_pause_ms": round(self.last_full_ms, 2),
                "gc_max_pause_ms": round(self.max_pause_ms, 2),
                "gc_frozen_objects": gc.get_freeze_count()}

    def install(self) -> None:
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def uninstall(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        gc.unfreeze()

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self.started) * 1000
        self.max_pause_ms = max(self.max_pause_ms, pause_ms)
        if info["generation"] != 2:
            return
        self.full_collections += 1
        self.last_full_ms = pause_ms
        now = time.monotonic()
        if now - self.unfrozen_at >= self.full_every:
            gc.unfreeze()  # the next full collection walks everything once
            self.unfrozen_at = now
        else:
            gc.freeze()


POLICY = GcPolicy()  # the process's: installed by ``respkv server``, read by INFO
