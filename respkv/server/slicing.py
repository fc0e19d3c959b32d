"""Running a sliced reply (respkv.protocol.reply.Sliced) a few ms at a time.

The event loop carries every client and the Raft heartbeats: a KEYS over
millions of keys built in one go would stall it for seconds and let the
followers call an election. Between slices the loop runs everything else.
"""

from __future__ import annotations

import asyncio
import time

from respkv.protocol.reply import Encoded, Sliced

SLICE_SECONDS = 0.005  # work done before the loop gets a turn


async def run_sliced(reply: Sliced, resp3: bool, slice_seconds: float = SLICE_SECONDS) -> Encoded:
    """The reply, encoded, having let the loop run every ``slice_seconds``."""
    steps = reply.steps(resp3)
    clock = time.perf_counter
    deadline = clock() + slice_seconds
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return Encoded(done.value)
        if clock() >= deadline:
            await asyncio.sleep(0)
            deadline = clock() + slice_seconds
