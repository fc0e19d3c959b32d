"""The wall clock, in the unit the log and expiry use."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch: a leader stamps each log entry with it, and
    readers judge expiry by it."""
    return int(time.time() * 1000)
