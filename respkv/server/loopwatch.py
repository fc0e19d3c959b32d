"""The event loop's longest pause, for INFO's ``max_loop_pause_ms``, and each pause
for LATENCY's ``event-loop`` event.

A timer that asks to wake every ``INTERVAL`` seconds and notes how late it woke:
lateness is time the loop spent on something else without a turn (a long
command, a GC pass, a stopped process). It costs one wake-up per interval and
nothing per command.
"""

from __future__ import annotations

import asyncio

from respkv.server.stats import Stats

INTERVAL = 0.01  # seconds between wake-ups: the finest pause it tells apart


async def watch_loop(stats: Stats, interval: float = INTERVAL) -> None:
    """Run until cancelled, keeping ``stats.max_loop_pause_ms`` up to date."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        late_ms = (loop.time() - due) * 1000
        stats.latency.add("event-loop", late_ms)
        if late_ms > stats.max_loop_pause_ms:
            stats.max_loop_pause_ms = late_ms
