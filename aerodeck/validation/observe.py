"""Turn evidence into, per metric, the value to judge and the samples a rank test compares.

Probe latencies: the value is the quantile of every operation pooled. The samples are per time window
(windows merged until each holds enough operations): for p99 and p99.9 the mean latency of the window's
slowest operations, for p50 the window's median. A p99 regression moves the tail, where a rank test on all
operations has no power (the median does not move); per-window statistics keep one burst of interference
from outvoting the whole run. ``shape`` (tail over median per window) tells a tail that grew from a whole
distribution that shifted, which is what a busier client host or network does.
Series sources (Prometheus, ``latencies:``): each sample is the metric itself at one step."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from aerodeck.validation.histogram import LatencyHistogram
from aerodeck.validation.metrics import MetricSpec
from aerodeck.validation.models import Evidence, JudgeConfig, MetricName, ProbeWindow, Source


@dataclass
class Observation:
    value: float | None
    samples: list[float] = field(default_factory=list)
    method: str = ""
    missing: str | None = None  # why there is no value
    too_few: str | None = None  # why the value is too uncertain for an SLO check
    shape: list[float] = field(default_factory=list)  # probe tails: per-window tail / median
    more_samples: str = "measure longer or at a higher rate"  # how to get enough samples to compare


def tail_fraction(quantile: float) -> float:
    """The slowest share of operations whose mean stands for a quantile: 10 % for p99, 1 % for p99.9."""
    return 10 * (1 - quantile)


def window_groups(windows: list[ProbeWindow], min_ops: int, kind: str | None = None) -> list[list[ProbeWindow]]:
    """Consecutive windows merged until each group holds ``min_ops`` operations (of ``kind``, or all);
    a short remainder joins the last group."""
    groups: list[list[ProbeWindow]] = []
    current: list[ProbeWindow] = []
    count = 0
    for window in windows:
        current.append(window)
        if kind is None:
            count += window.ops
        elif kind in window.latencies:
            count += window.latencies[kind].total
        if count >= min_ops:
            groups.append(current)
            current, count = [], 0
    if current and groups:
        groups[-1].extend(current)
    return groups


def window_stats(
    windows: list[ProbeWindow], kind: str, quantile: float, config: JudgeConfig
) -> list[tuple[float, float]]:
    """Per window group: (mean of the slowest ``tail_fraction(quantile)`` of operations, median)."""
    fraction = tail_fraction(quantile)
    stats = []
    for group in window_groups(windows, math.ceil(config.tail_samples / fraction), kind):
        merged = LatencyHistogram.merged(w.latencies[kind] for w in group if kind in w.latencies)
        tail, median = merged.tail_mean(fraction), merged.quantile(0.5)
        if tail is not None and median:
            stats.append((tail, median))
    return stats


def window_tails(windows: list[ProbeWindow], kind: str, quantile: float, config: JudgeConfig) -> list[float]:
    return [tail for tail, _ in window_stats(windows, kind, quantile, config)]


def _probe_latency(spec: MetricSpec, evidence: Evidence, config: JudgeConfig) -> Observation:
    assert spec.op is not None and spec.quantile is not None
    pooled = LatencyHistogram.merged(w.latencies[spec.op] for w in evidence.windows if spec.op in w.latencies)
    stats = window_stats(evidence.windows, spec.op, max(spec.quantile, 0.99), config)
    if spec.quantile == 0.5:
        observation = Observation(pooled.quantile(0.5), [m for _, m in stats], f"median {spec.op} latency per window")
    else:
        observation = Observation(
            value=pooled.quantile(spec.quantile),
            samples=[t for t, _ in stats],
            method=f"mean of the slowest {tail_fraction(spec.quantile):.0%} of {spec.op}s per window",
            shape=[t / m for t, m in stats],
        )
    needed = math.ceil(config.tail_samples / (1 - spec.quantile))
    if pooled.total == 0:
        observation.missing = f"the probe completed no {spec.op}s"
    elif pooled.total < needed:
        observation.too_few = f"{pooled.total} {spec.op}s measured; {spec.description} needs at least {needed}"
    return observation


def _probe_counts(spec: MetricSpec, evidence: Evidence, config: JudgeConfig) -> Observation:
    windows = evidence.windows
    ops = sum(w.ops for w in windows)
    seconds = sum(w.seconds for w in windows)
    if ops == 0 or seconds == 0:
        return Observation(value=None, missing="the probe completed no operations")
    groups = window_groups(windows, math.ceil(config.tail_samples / tail_fraction(0.99)))  # as for p99
    if spec.name == MetricName.ERROR_RATE:
        failed = sum(w.errors + w.timeouts for w in windows)
        samples = [sum(w.errors + w.timeouts for w in g) / max(sum(w.ops for w in g), 1) for g in groups]
        return Observation(failed / ops, samples, "failed share of probe operations per window")
    samples = [sum(w.ops for w in g) / max(sum(w.seconds for w in g), 1e-9) for g in groups]
    return Observation(ops / seconds, samples, "probe operations per second per window")


def _series(spec: MetricSpec, evidence: Evidence) -> Observation:
    values = [v for v in evidence.series.get(spec.name, []) if math.isfinite(v)]
    if not values:
        return Observation(value=None, missing=f"{evidence.source.value} returned no data")
    if spec.fixed_line is not None:
        value = max(values)  # a health flag counts if it was ever raised
    elif spec.quantile is not None:
        value = statistics.median(values)
    else:
        value = statistics.fmean(values)
    return Observation(
        value,
        values,
        f"{spec.description} per {evidence.source.value} sample",
        more_samples="measure longer: the nodes' histograms give one sample per ticker interval (10 s by default)"
        if spec.quantile is not None
        else "measure longer",
    )


def observe(spec: MetricSpec, evidence: Evidence, config: JudgeConfig) -> Observation | None:
    """The metric as ``evidence`` shows it; None when the source does not measure it at all."""
    if spec.name in evidence.missing:
        return Observation(value=None, missing=evidence.missing[spec.name])
    if evidence.source is Source.PROBE and spec.quantile is not None:
        return _probe_latency(spec, evidence, config)
    if evidence.source is Source.PROBE and spec.name in (MetricName.ERROR_RATE, MetricName.PROBE_THROUGHPUT):
        return _probe_counts(spec, evidence, config)
    if spec.name == MetricName.PROBE_THROUGHPUT or spec.quantile == 0.5:
        return None  # only the probe measures its own rate and per-operation medians
    return _series(spec, evidence)
