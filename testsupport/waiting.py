"""Waiting on conditions with deadlines, never with bare sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable


class GiveUp(Exception):
    """Raised by a wait_for condition that can never become true: stop waiting."""


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.02) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except GiveUp:
            raise
        except Exception as error:  # the condition may fail until it holds
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")
