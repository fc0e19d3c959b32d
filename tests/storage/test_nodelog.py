"""The node's shared WAL: one fsync per loop turn, and what runs right before it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from respkv.raft.types import Entry, EntryKind
from respkv.storage.nodelog import NodeLog


def test_groups_of_one_loop_turn_share_one_fsync_after_the_before_sync_hook(
        tmp_path: Path) -> None:
    node_log = NodeLog(tmp_path / "wal")
    events: list[str] = []
    real_sync = node_log.wal.sync

    def sync() -> bool:
        events.append("fsync")
        return real_sync()

    node_log.wal.sync = sync  # type: ignore[method-assign]
    node_log.before_sync = lambda: events.append("send queued frames")

    async def run() -> None:
        waits = []
        for group in (0, 1, 2):
            node_log.view(group).append([Entry(1, 1, EntryKind.NORMAL, b"g%d" % group)])
            waits.append(node_log.sync_soon())
        await asyncio.wait_for(asyncio.gather(*waits), 5)

    asyncio.run(run())
    assert events == ["send queued frames", "fsync"]
    assert node_log.fsyncs == 1
    node_log.close()
    reopened = NodeLog(tmp_path / "wal")
    assert [reopened.wal.load(g).entries[0].data for g in (0, 1, 2)] == [b"g0", b"g1", b"g2"]
    reopened.close()


def test_a_failing_before_sync_hook_does_not_stop_the_fsync(tmp_path: Path) -> None:
    node_log = NodeLog(tmp_path / "wal")

    def broken() -> None:
        raise ConnectionError("peer went away")

    node_log.before_sync = broken

    async def run() -> None:
        node_log.view(0).append([Entry(1, 1, EntryKind.NORMAL, b"x")])
        await asyncio.wait_for(node_log.sync_soon(), 5)

    asyncio.run(run())
    assert node_log.fsyncs == 1
    node_log.close()
