"""The GC policy: survivors of a full collection are frozen, and cyclic garbage
among them is still collected once a full pass is due."""

from __future__ import annotations

import gc
import weakref

from respkv.gcpolicy import GcPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


def test_survivors_of_a_full_collection_are_frozen_and_skipped_after() -> None:
    policy = GcPolicy(full_every=3600)
    policy.install()
    was_enabled = gc.isenabled()
    gc.disable()  # only the collections the test asks for: counts are exact
    try:
        kept = [Node() for _ in range(10_000)]
        gc.collect()
        assert gc.get_freeze_count() >= len(kept)
        info = policy.info()
        assert info["gc_full_collections"] == 1
        assert info["gc_frozen_objects"] >= len(kept)
        assert info["gc_max_pause_ms"] >= info["gc_last_full_pause_ms"] > 0
        head, alive = cycle()
        gc.collect()  # frozen while still referenced
        del head
        gc.collect()
        assert alive() is not None  # a frozen cycle waits for the next full pass
    finally:
        policy.uninstall()
        if was_enabled:
            gc.enable()
    assert gc.get_freeze_count() == 0


def test_a_due_full_pass_collects_cycles_that_were_frozen() -> None:
    policy = GcPolicy(full_every=3600)
    policy.install()
    was_enabled = gc.isenabled()
    gc.disable()  # only the collections the test asks for: counts are exact
    try:
        head, alive = cycle()
        gc.collect()
        del head
        gc.collect()
        assert alive() is not None
        policy.unfrozen_at -= 3600  # the full pass is due
        gc.collect()  # unfreezes at its end
        gc.collect()  # walks everything
        assert alive() is None
    finally:
        policy.uninstall()
        if was_enabled:
            gc.enable()
