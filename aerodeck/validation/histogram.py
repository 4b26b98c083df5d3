"""Latency distributions: a compact log-bucket histogram for per-operation latencies, and quantiles of
cumulative bucket rates the way Prometheus' ``histogram_quantile`` computes them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pydantic import Field

from aerodeck.models import Model

# Buckets 2 % wide from 1 µs: quantiles are exact to ±1 % and a run of any length stores a few hundred
# counts, small enough to keep with the report and to compare against in a later run.
GROWTH = 1.02
FLOOR_MS = 0.001
_LOG_GROWTH = math.log(GROWTH)
# Chart buckets: the server's own histogram bounds (``latencies:`` columns), 1 ms .. 65536 ms.
CHART_BOUNDS_MS: tuple[float, ...] = tuple(float(2**k) for k in range(17))


def bucket_of(ms: float) -> int:
    return max(0, int(math.log(max(ms, FLOOR_MS) / FLOOR_MS) / _LOG_GROWTH))


def bucket_bounds(index: int) -> tuple[float, float]:
    return FLOOR_MS * GROWTH**index, FLOOR_MS * GROWTH ** (index + 1)


class LatencyHistogram(Model):
    """Operation counts per 2 %-wide latency bucket (index → count)."""

    counts: dict[int, int] = Field(default_factory=dict)

    @classmethod
    def of(cls, latencies_ms: Iterable[float]) -> LatencyHistogram:
        histogram = cls()
        for ms in latencies_ms:
            histogram.record(ms)
        return histogram

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        counts: dict[int, int] = {}
        for histogram in histograms:
            for index, count in histogram.counts.items():
                counts[index] = counts.get(index, 0) + count
        return cls(counts=counts)

    def record(self, ms: float) -> None:
        index = bucket_of(ms)
        self.counts[index] = self.counts.get(index, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _sorted(self) -> list[tuple[int, int]]:
        return sorted(self.counts.items())

    def quantile(self, q: float) -> float | None:
        """The q-quantile, interpolated linearly inside its bucket; None when empty."""
        total = self.total
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for index, count in self._sorted():
            if seen + count >= rank:
                low, high = bucket_bounds(index)
                return low + (high - low) * max(rank - seen, 0.0) / count
            seen += count
        return bucket_bounds(max(self.counts))[1]

    def tail_mean(self, fraction: float) -> float | None:
        """Mean latency of the slowest ``fraction`` of operations (bucket midpoints, the boundary bucket
        weighted by the share of it inside the tail); None when empty."""
        total = self.total
        if total == 0:
            return None
        wanted = max(fraction * total, 1.0)
        taken, weighted = 0.0, 0.0
        for index, count in reversed(self._sorted()):
            take = min(float(count), wanted - taken)
            low, high = bucket_bounds(index)
            weighted += take * (low + high) / 2
            taken += take
            if taken >= wanted:
                break
        return weighted / taken

    def chart_buckets(self) -> list[tuple[float, int]]:
        """Cumulative counts at or under each server bound (``le``) for a console chart; the +Inf bucket is
        ``total`` (JSON has no infinity)."""
        ordered = self._sorted()
        return [
            (bound, sum(count for index, count in ordered if bucket_bounds(index)[1] <= bound))
            for bound in CHART_BOUNDS_MS
        ]


def bucket_quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """``histogram_quantile``: ``cumulative`` holds (upper bound, rate at or under it) ascending, ending
    with +Inf. Linear inside the bucket holding the rank; the highest finite bound if the rank is in +Inf;
    None without observations."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
