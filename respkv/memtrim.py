"""Hand the C heap's free pages back to the system (glibc's ``malloc_trim``).

Memory freed by Python goes back to the allocators' free lists, not to the system:
the resident size stays at its peak. After a log compaction frees a snapshot's worth
of entries (up to ``snapshot-bytes``, many megabytes in blocks too small to have been
mapped on their own) the free pages are given back at once, so the memory a node
reports is its data's, not its log's high-water mark. Elsewhere than glibc this does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

_trim: Callable[[int], int] | None
try:
    _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
except (OSError, AttributeError):
    _trim = None


def give_back_free_memory() -> None:
    if _trim is not None:
        _trim(0)
