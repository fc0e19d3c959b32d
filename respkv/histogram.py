"""Fixed-bucket histograms of durations: a sample costs one bisect and two additions,
with no allocation, so the hot paths can afford one. INFO latencystats reads
percentiles from them, the metrics endpoint exports them as Prometheus histograms.

The bounds are the R10 series (steps of about 25%) from 1 µs to 100 s, so a
percentile is known to within a quarter of its value.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

_STEPS = (1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.3, 8.0)
BOUNDS_US: tuple[float, ...] = tuple(
    [round(step * 10 ** decade, 3) for decade in range(8) for step in _STEPS] + [1e8])
BOUNDS_NS: list[int] = [int(bound * 1000) for bound in BOUNDS_US]
BOUNDS_SECONDS: list[float] = [bound / 1e6 for bound in BOUNDS_US]
BUCKETS = len(BOUNDS_US) + 1  # the last one: above every bound
# The bounds a Prometheus histogram shows (1, 2.5, 5 per decade): a cumulative count
# at any bound is exact, so fewer series lose nothing but resolution.
EXPORTED = tuple(i for i, bound in enumerate(BOUNDS_US)
                 if f"{bound:e}"[:4] in ("1.00", "2.50", "5.00"))


class Histogram:
    """Durations in seconds."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * BUCKETS
        self.count = 0
        self.total = 0.0  # seconds, summed

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(BOUNDS_SECONDS, seconds)] += 1
        self.count += 1
        self.total += seconds


def percentile(buckets: Sequence[int], count: int, wanted: float) -> float:
    """The bucket bound (µs) under which ``wanted`` percent of ``count`` samples fell."""
    rank = max(1, -int(-count * wanted // 100))  # rounded up, at least the first
    seen = 0
    for index, found in enumerate(buckets):
        seen += found
        if seen >= rank:
            return BOUNDS_US[min(index, len(BOUNDS_US) - 1)]
    return 0.0


def cumulative(buckets: Sequence[int]) -> list[tuple[str, int]]:
    """Prometheus' ``le`` buckets (in seconds, then +Inf) with their cumulative counts."""
    out = []
    seen = 0
    exported = set(EXPORTED)
    for index, found in enumerate(buckets[:-1]):
        seen += found
        if index in exported:
            out.append((repr(BOUNDS_SECONDS[index]), seen))
    out.append(("+Inf", seen + buckets[-1]))
    return out
