"""The twin's latency model: how long a read or write takes on a node, by server version and topology.

Each (series, topology, op) has a p50 and a p99. The distribution is lognormal-shaped, but its CDF is made
*linear inside each power-of-two millisecond bucket above 1 ms* (lognormal below). Those are exactly the
buckets of ``latencies:`` and of the exporter, and histogram_quantile interpolates linearly inside a bucket,
so from a cluster with exact histograms Prometheus recovers the modelled p99 (or any quantile above 1 ms)
exactly, short of the two-decimal rounding of ``latencies:`` percentages (a few microseconds). The
lognormal parameters are fitted so that the distribution's own p50 and p99 equal the profile's.

``VersionRegression`` faults scale a version's p99 (p50 unchanged); nodes really delay replies by sampled
latencies, so a client-side probe sees the same distribution (plus its own overhead). What nodes report per
ticker interval is, by default, a sample of that interval's operations
(:meth:`LatencyDistribution.sampled_pct_over`), as noisy as a real server's at the same traffic.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import math
import random
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aerodeck.twin.fleet import ClusterSpec, Fault, Topology, VersionRegression
from aerodeck.versions import AerospikeVersion

# Upper bounds of the 17 latency columns: >1, >2, >4 ... >65536 ms.
BUCKET_BOUNDS_MS: tuple[int, ...] = tuple(2**k for k in range(17))
MAX_P99_MS = 30_000.0  # half the last bucket bound, so the tail above p99 still fits below 65536 ms


class OpKind(StrEnum):
    READ = "read"
    WRITE = "write"


class LatencyProfile(BaseModel):
    """Median and p99 of one op kind in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50_ms: float = Field(gt=0)
    # Below 1 ms the exporter's first bucket (0, 1] cannot resolve a p99, on a real cluster as here.
    p99_ms: float = Field(ge=1.0, le=MAX_P99_MS)

    @model_validator(mode="after")
    def _ordered(self) -> LatencyProfile:
        if self.p99_ms <= self.p50_ms:
            raise ValueError(f"p99 ({self.p99_ms} ms) must exceed p50 ({self.p50_ms} ms)")
        return self


def _profiles(read: tuple[float, float], write: tuple[float, float]) -> dict[OpKind, LatencyProfile]:
    return {
        OpKind.READ: LatencyProfile(p50_ms=read[0], p99_ms=read[1]),
        OpKind.WRITE: LatencyProfile(p50_ms=write[0], p99_ms=write[1]),
    }


# Per feature line: in-memory namespaces are served from RAM, hybrid ones read records from SSD.
# Newer lines are a little faster; every default fits the demo fleet's SLOs with some headroom, and a
# +50 % p99 regression breaks the tighter ones.
SERIES_PROFILES: dict[tuple[int, int], dict[Topology, dict[OpKind, LatencyProfile]]] = {
    (7, 2): {
        Topology.IN_MEMORY: _profiles(read=(0.30, 1.20), write=(0.55, 2.20)),
        Topology.HYBRID: _profiles(read=(0.65, 3.00), write=(0.95, 4.60)),
    },
    (8, 0): {
        Topology.IN_MEMORY: _profiles(read=(0.28, 1.10), write=(0.50, 2.00)),
        Topology.HYBRID: _profiles(read=(0.60, 2.80), write=(0.90, 4.40)),
    },
    (8, 1): {
        Topology.IN_MEMORY: _profiles(read=(0.26, 1.05), write=(0.48, 1.90)),
        Topology.HYBRID: _profiles(read=(0.58, 2.70), write=(0.85, 4.20)),
    },
}


@lru_cache(maxsize=1024)
def base_profile(version: AerospikeVersion, topology: Topology, op: OpKind) -> LatencyProfile:
    """The profile of the newest known series not newer than ``version`` (the oldest known one below it)."""
    known = sorted(SERIES_PROFILES)
    older = [series for series in known if series <= version.series]
    return SERIES_PROFILES[older[-1] if older else known[0]][topology][op]


def effective_profile(
    version: AerospikeVersion, topology: Topology, op: OpKind, faults: Sequence[Fault]
) -> LatencyProfile:
    """The base profile with every matching ``VersionRegression`` added to its p99 (percentages add up)."""
    base = base_profile(version, topology, op)
    extra_pct = sum(
        fault.read_p99_pct if op is OpKind.READ else fault.write_p99_pct
        for fault in faults
        if isinstance(fault, VersionRegression)
        and fault.version == version
        and (fault.topology is None or fault.topology == topology)
    )
    if not extra_pct:
        return base
    return LatencyProfile(p50_ms=base.p50_ms, p99_ms=min(base.p99_ms * (1 + extra_pct / 100), MAX_P99_MS))


class LatencyDistribution:
    """Lognormal CDF below 1 ms; above, the lognormal's CDF at 1, 2, 4 ... 65536 ms joined linearly
    (everything beyond 65536 ms is folded into the last bucket)."""

    def __init__(self, mu: float, sigma: float) -> None:
        self._log_normal = NormalDist(mu, sigma)
        knots = [self._log_normal.cdf(math.log(bound)) for bound in BUCKET_BOUNDS_MS]
        knots[-1] = 1.0
        self._knots = knots

    @classmethod
    def of(cls, profile: LatencyProfile) -> LatencyDistribution:
        return _fitted(profile.p50_ms, profile.p99_ms)

    def quantile(self, q: float) -> float:
        knots = self._knots
        if q <= knots[0]:
            return math.exp(self._log_normal.inv_cdf(min(max(q, 1e-12), 1 - 1e-12)))
        k = bisect.bisect_left(knots, q)  # knots[k - 1] < q <= knots[k]
        low = 2 ** (k - 1)
        return low + low * (q - knots[k - 1]) / (knots[k] - knots[k - 1])

    def pct_over(self) -> tuple[float, ...]:
        """Percent of operations slower than each bucket bound, the 17 columns of ``latencies:``."""
        return tuple(100.0 * (1.0 - knot) for knot in self._knots)

    def sample(self, rng: random.Random) -> float:
        return self.quantile(rng.random())

    def sampled_pct_over(self, ops: int, rng: np.random.Generator) -> tuple[float, ...]:
        """The 17 columns for ``ops`` operations drawn from the distribution (one ticker interval's)."""
        if ops <= 0:
            return (0.0,) * len(BUCKET_BOUNDS_MS)
        bucket_shares = np.diff(np.array([0.0, *self._knots]))
        counts = rng.multinomial(ops, bucket_shares / bucket_shares.sum())
        return tuple(float(pct) for pct in 100.0 * (ops - np.cumsum(counts)) / ops)


def _bisect(f: Callable[[float], float], low: float, high: float, target: float) -> float:
    """x in [low, high] with f(x) == target for an increasing f."""
    for _ in range(60):
        mid = (low + high) / 2
        if f(mid) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@lru_cache(maxsize=256)
def _fitted(p50_ms: float, p99_ms: float) -> LatencyDistribution:
    # The joined-up CDF moves quantiles above 1 ms a little, so fit (mu, sigma) to the distribution's own
    # quantiles: for a sigma, the mu giving the median; then the sigma giving the p99 (both monotone).
    def mu_for(sigma: float) -> float:
        return _bisect(
            lambda mu: LatencyDistribution(mu, sigma).quantile(0.5),
            math.log(p50_ms) - 10,
            math.log(p50_ms) + 10,
            p50_ms,
        )

    sigma = _bisect(lambda s: LatencyDistribution(mu_for(s), s).quantile(0.99), 1e-3, 6.0, p99_ms)
    return LatencyDistribution(mu_for(sigma), sigma)


class LatencyModel:
    """Latency of every node in the twin. ``seed`` makes each node's sampled sequence reproducible;
    ``delay_scale`` scales the real reply delay only (0 for throughput benchmarks) — what nodes report
    in ``latencies:`` and to the exporter always follows the model (sampled or exact)."""

    def __init__(self, seed: int = 0, delay_scale: float = 1.0) -> None:
        self.seed = seed
        self.delay_scale = delay_scale

    def distribution(
        self, version: AerospikeVersion, topology: Topology, op: OpKind, faults: Sequence[Fault]
    ) -> LatencyDistribution:
        return LatencyDistribution.of(effective_profile(version, topology, op, faults))

    def rng(self, stream: str) -> random.Random:
        """A reproducible random stream, one per node (``stream`` names it)."""
        return random.Random(f"{self.seed}:{stream}")

    def interval_rng(self, stream: str, interval: int) -> np.random.Generator:
        """The random draws behind one ticker interval of one histogram: the same for every reader
        (info and the exporter agree), different for every interval."""
        return np.random.default_rng([self.seed, zlib.crc32(stream.encode()), interval])


# The tenant's own traffic: every cluster serves its application around the clock, which is what the
# latency histograms and client counters show even when no probe runs. Cluster-wide ops/s are the cluster's
# ``tenant_tps``, by default 1.25 x the SLO's min_tps (at least 125), three quarters reads, spread evenly
# over up nodes and namespaces.
TENANT_LOAD_FACTOR = 1.25
TENANT_MIN_TPS = 100.0
TENANT_READ_SHARE = 0.75


@dataclass(frozen=True)
class TenantLoad:
    """Modelled tenant ops/s on one node for one namespace."""

    read_tps: float
    write_tps: float


def tenant_load(spec: ClusterSpec, up_nodes: int) -> TenantLoad:
    if up_nodes == 0:
        return TenantLoad(0.0, 0.0)
    cluster_tps = spec.tenant_tps or TENANT_LOAD_FACTOR * max(spec.slo.min_tps, TENANT_MIN_TPS)
    per_ns = cluster_tps / up_nodes / len(spec.namespaces)
    return TenantLoad(per_ns * TENANT_READ_SHARE, per_ns * (1 - TENANT_READ_SHARE))


class _PreciseTimer:
    """Wakes asyncio futures at their deadlines from one helper thread. asyncio's own timers wait in epoll,
    which rounds up to whole milliseconds and would add up to 1 ms to sub-millisecond latencies. The thread
    wakes each future early by the recent average hand-over lag (thread wake-up, loop wake-up), so futures
    resolve close to their deadlines."""

    _MAX_LEAD = 0.0005

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, asyncio.Future[None], asyncio.AbstractEventLoop]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._lag = 0.0  # moving average of (resolved - scheduled wake-up), seconds

    def sleep(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        wake_at = time.monotonic() + max(seconds - self._lag, 0.0)
        with self._wakeup:
            heapq.heappush(self._heap, (wake_at, next(self._order), future, loop))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="twin-latency-timer", daemon=True)
                self._thread.start()
            self._wakeup.notify()
        return future

    def _run(self) -> None:
        with self._wakeup:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    wake_at, _, future, loop = heapq.heappop(self._heap)
                    with contextlib.suppress(RuntimeError):  # that loop has closed since
                        loop.call_soon_threadsafe(self._resolve, future, wake_at)
                self._wakeup.wait(self._heap[0][0] - now if self._heap else None)

    def _resolve(self, future: asyncio.Future[None], wake_at: float) -> None:
        lag = time.monotonic() - wake_at
        self._lag = min(0.9 * self._lag + 0.1 * lag, self._MAX_LEAD)
        if not future.done():  # cancelled when the connection went away
            future.set_result(None)


_TIMER = _PreciseTimer()


async def precise_sleep(seconds: float) -> None:
    """asyncio sleep with sub-millisecond precision (see :class:`_PreciseTimer`)."""
    if seconds > 0:
        await _TIMER.sleep(seconds)
