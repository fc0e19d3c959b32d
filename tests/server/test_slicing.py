"""Sliced replies let the loop run between slices; the loop watch sees pauses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from itertools import pairwise

from respkv.protocol.reply import Encoded, Sliced, encode
from respkv.server.loopwatch import watch_loop
from respkv.server.slicing import run_sliced
from respkv.server.stats import Stats


class Counting(Sliced):
    """Notes, at each step, how often another task has run meanwhile."""

    def __init__(self, ticks: list[int], steps: int) -> None:
        self.ticks = ticks
        self.seen: list[int] = []
        self.count = steps

    def steps(self, resp3: bool) -> Generator[None, None, bytes]:
        for _ in range(self.count):
            self.seen.append(self.ticks[0])
            yield
        return b"+done %s\r\n" % (b"3" if resp3 else b"2")


def test_other_tasks_run_between_slices() -> None:
    async def main() -> tuple[Encoded, list[int]]:
        ticks = [0]

        async def other() -> None:
            while True:
                ticks[0] += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        reply = Counting(ticks, 20)
        encoded = await run_sliced(reply, True, slice_seconds=0)  # yield after every step
        task.cancel()
        return encoded, reply.seen

    encoded, seen = asyncio.run(main())
    assert encode(encoded, False) == b"+done 3\r\n"
    assert all(later > earlier for earlier, later in pairwise(seen))


def test_a_long_slice_budget_runs_everything_in_one_turn() -> None:
    async def main() -> list[int]:
        ticks = [0]
        reply = Counting(ticks, 50)
        await run_sliced(reply, False, slice_seconds=60)
        return reply.seen

    assert asyncio.run(main()) == [0] * 50


def test_the_loop_watch_measures_a_stall_and_reset_clears_it() -> None:
    stats = Stats()

    async def main() -> None:
        watch = asyncio.create_task(watch_loop(stats, interval=0.005))
        deadline = time.monotonic() + 5
        await asyncio.sleep(0)  # the watch's first step runs: it now waits on its timer
        stall_until = time.perf_counter() + 0.08
        while time.perf_counter() < stall_until:  # the stall under test: 80 ms of busy loop
            pass
        while stats.max_loop_pause_ms < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        watch.cancel()

    asyncio.run(main())
    assert 60 <= stats.max_loop_pause_ms < 2000
    stats.reset()
    assert stats.max_loop_pause_ms == 0
