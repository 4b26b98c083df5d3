"""Boundary models of performance validation: the request, the evidence a source gathers, the judge's
settings and the report (kept with the workflow, returned and queryable)."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from aerodeck.models import SLO, ClusterRef, Model
from aerodeck.validation.histogram import LatencyHistogram

MAX_DURATION_S = 3600.0
MAX_PROBE_RATE = 20_000.0


class Source(StrEnum):
    """Where the evidence comes from (one module each under ``aerodeck.validation.sources``)."""

    PROBE = "probe"  # a bounded read/write workload through the official client
    PROMETHEUS = "prometheus"  # exporter metrics through the Prometheus HTTP API
    INFO = "info"  # the nodes' own ``latencies:`` and namespace statistics


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    # Not enough trustworthy evidence either way: a person decides (never promoted or rolled back by itself).
    INCONCLUSIVE = "inconclusive"


class MetricName(StrEnum):
    READ_P50 = "read_p50_ms"  # probe only: per-operation medians, for uniform slowdowns
    WRITE_P50 = "write_p50_ms"
    READ_P99 = "read_p99_ms"
    WRITE_P99 = "write_p99_ms"
    READ_P999 = "read_p999_ms"
    WRITE_P999 = "write_p999_ms"
    ERROR_RATE = "error_rate"
    THROUGHPUT = "throughput_tps"  # cluster-wide ops/s, against the SLO's min_tps
    PROBE_THROUGHPUT = "probe_tps"  # the probe's achieved ops/s, against its target rate
    STOP_WRITES = "stop_writes"
    DEAD_PARTITIONS = "dead_partitions"
    UNAVAILABLE_PARTITIONS = "unavailable_partitions"


class SLOOverrides(Model):
    """Per-request replacements for the registered SLO lines (unset fields keep the registered value)."""

    read_p99_ms: float | None = Field(default=None, gt=0)
    write_p99_ms: float | None = Field(default=None, gt=0)
    read_p999_ms: float | None = Field(default=None, gt=0)
    write_p999_ms: float | None = Field(default=None, gt=0)
    min_tps: float | None = Field(default=None, ge=0)
    max_error_rate: float | None = Field(default=None, ge=0, le=1)

    def apply(self, registered: SLO | None) -> SLO | None:
        """The effective SLO; None when neither the cluster nor the overrides give both p99 lines."""
        values = registered.model_dump() if registered else {}
        values.update(self.model_dump(exclude_none=True))
        if "read_p99_ms" not in values or "write_p99_ms" not in values:
            return None
        return SLO.model_validate(values)


class ProbeSettings(Model):
    """The probe's workload; bounded in keys, rate and time, on its own set only."""

    rate: float = Field(default=1000.0, gt=0, le=MAX_PROBE_RATE)  # target ops/s over all threads
    read_ratio: float = Field(default=0.5, ge=0, le=1)
    concurrency: int = Field(default=4, ge=1, le=16)  # threads; each paced to rate / concurrency
    keys: int = Field(default=500, ge=1, le=10_000)
    record_bytes: int = Field(default=100, ge=1, le=100_000)
    timeout_ms: int = Field(default=1000, ge=10, le=60_000)
    # One no-op info round trip per this many operations, a control for client-side slowdowns (0: none)
    control_every: int = Field(default=8, ge=0)


class JudgeConfig(Model):
    """How the judge decides. Defaults follow Kayenta (rank test, critical metrics, pass and marginal
    scores) with a minimum effect size so statistically significant but tiny shifts pass."""

    # One-sided Mann-Whitney significance level. The compared samples are a run's windows or steps, which
    # share the run's conditions (host load, network), so their p-values overstate the evidence: be strict.
    alpha: float = Field(default=0.001, gt=0, lt=0.5)
    # Minimum worsening that can fail a comparison: the Hodges-Lehmann shift of the compared samples (for a
    # probe, per-window tail latency, which moves less than the p99 itself: +20 % p99 is about +5..10 %; the
    # tail must also grow half this much relative to the window's median)
    min_shift: float = Field(default=0.05, ge=0)
    # The same for medians (p50): a busier client host or network moves a whole distribution by up to about
    # 15 % between runs, so only larger uniform slowdowns fail
    min_bulk_shift: float = Field(default=0.20, ge=0)
    # The probe's no-op round trips count as slower (making median failures inconclusive) at this level
    control_alpha: float = Field(default=0.01, gt=0, lt=0.5)
    min_error_increase: float = Field(default=0.001, ge=0)  # absolute error-rate worsening that can fail
    # Samples per side a comparison needs: series steps (Prometheus, info) and probe windows. Seven is the
    # fewest with which even a complete separation is significant at alpha 0.001 (p = 1/3432).
    min_series_points: int = Field(default=7, ge=3)
    min_windows: int = Field(default=7, ge=3)
    tail_samples: int = Field(default=10, ge=1)  # slow operations per window (and for an SLO quantile)
    probe_rate_tolerance: float = Field(default=0.9, gt=0, le=1)  # achieved/target probe rate that passes
    pass_score: float = Field(default=0.9, gt=0, le=1)
    marginal_score: float = Field(default=0.75, ge=0, le=1)
    weights: dict[MetricName, float] = Field(default_factory=dict)  # overrides of the default weights
    critical: dict[MetricName, bool] = Field(default_factory=dict)  # overrides of the default criticality

    @model_validator(mode="after")
    def _consistent(self) -> JudgeConfig:
        if self.marginal_score > self.pass_score:
            raise ValueError("marginal_score may not exceed pass_score")
        # Probe windows also feed the no-op control check, at control_alpha.
        for name, alpha in (("min_series_points", self.alpha), ("min_windows", min(self.alpha, self.control_alpha))):
            needed = samples_for_significance(alpha)
            if getattr(self, name) < needed:
                raise ValueError(
                    f"{name} {getattr(self, name)} can never reach alpha {alpha:g}: a rank test needs at least "
                    f"{needed} samples per side for that; raise {name} or the alpha"
                )
        return self


def samples_for_significance(alpha: float) -> int:
    """The fewest samples per side with which a one-sided rank test can give p < alpha at all (complete
    separation of two equal-sized samples has p = 1 / C(2n, n))."""
    n = 1
    while 1 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


class ProbeWindow(Model):
    """What the probe saw in one time slice: latencies of successful operations per kind ("read", "write",
    and "control", a no-op info round trip), failed operations, and the slice's length."""

    seconds: float = Field(ge=0)
    latencies: dict[str, LatencyHistogram] = Field(default_factory=dict)
    errors: int = 0
    timeouts: int = 0

    @property
    def ops(self) -> int:
        return sum(h.total for kind, h in self.latencies.items() if kind != "control") + self.errors + self.timeouts


class Evidence(Model):
    """Everything one source measured over one window of time. Metrics it could not measure are listed in
    ``missing`` with the reason; ``disturbances`` say why the measurement itself cannot be trusted."""

    source: Source
    cluster: ClusterRef
    namespace: str
    started_at: datetime
    ended_at: datetime
    expected_nodes: int = Field(ge=0)
    min_nodes: int | None = None  # fewest nodes seen answering during the window
    target_tps: float | None = None  # the probe's target rate
    windows: list[ProbeWindow] = Field(default_factory=list)
    series: dict[MetricName, list[float]] = Field(default_factory=dict)
    missing: dict[MetricName, str] = Field(default_factory=dict)
    disturbances: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


class ValidationRequest(Model):
    """Input of PerformanceValidationWorkflow."""

    cluster: ClusterRef
    source: Source = Source.PROBE
    duration_s: float = Field(default=30.0, gt=0, le=MAX_DURATION_S)
    namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,31}$")  # Aerospike namespace
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    prometheus_step_s: float | None = Field(default=None, gt=0)  # default: duration / 30, at least 1 s
    baseline: ValidationReport | None = None  # the report of a run before the change
    slo_overrides: SLOOverrides = Field(default_factory=SLOOverrides)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)


class CollectRequest(Model):
    """Input of the evidence activity: where to measure and for how long."""

    source: Source
    cluster: ClusterRef
    cluster_name: str  # the Aerospike cluster-name (AKO sets the CR name)
    endpoints: list[str]
    expected_nodes: int
    namespace: str
    duration_s: float = Field(gt=0, le=MAX_DURATION_S)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    prometheus_step_s: float | None = None
    run_id: str = Field(min_length=1, max_length=200)  # names the probe's keys: a retry reuses (and deletes) them


class Comparison(Model):
    """Baseline versus after for one metric: a one-sided Mann-Whitney U test and the effect size."""

    method: str
    baseline_samples: int
    after_samples: int
    u_statistic: float | None = None
    p_value: float | None = None
    rank_biserial: float | None = None  # -1..1; positive: after worse than baseline
    # The effect size gated by min_shift, positive is worse: the Hodges-Lehmann relative shift of the
    # samples (for error rates: the absolute change of the rate)
    shift: float | None = None
    value_change: float | None = None  # relative (error rate: absolute) change of the metric's value
    shape_shift: float | None = None  # probe tails: Hodges-Lehmann shift of per-window tail / median
    alpha: float
    min_shift: float
    verdict: Verdict
    reason: str


class MetricResult(Model):
    name: MetricName
    unit: str
    description: str
    higher_is_worse: bool
    weight: float
    critical: bool
    after: float | None
    baseline: float | None = None
    slo_line: float | None = None
    slo_verdict: Verdict | None = None  # None: no line for this metric
    slo_reason: str = ""
    comparison: Comparison | None = None  # None: no baseline
    verdict: Verdict
    reason: str


class Distribution(Model):
    """A latency distribution for charts: quantiles and cumulative counts at the server's bucket bounds."""

    op: str
    operations: int
    quantiles: dict[str, float]  # "p50", "p90", "p99", "p999", "max" -> ms
    buckets: list[tuple[float, int]]  # (le in ms, operations at or under it); +Inf is ``operations``
    series: list[float] = Field(default_factory=list)  # per-step p99 for series sources


class ValidationReport(Model):
    """The judge's answer with everything behind it."""

    cluster: ClusterRef
    source: Source
    verdict: Verdict
    reasons: list[str]
    score: float | None  # weighted share of passing metrics among those judged
    started_at: datetime
    ended_at: datetime
    slo: SLO | None
    slo_lines: dict[MetricName, float]
    metrics: list[MetricResult]
    distributions: list[Distribution]
    baseline_distributions: list[Distribution] = Field(default_factory=list)
    measurement_check: Comparison | None = None  # the probe's no-op round trips, baseline versus after
    config: JudgeConfig
    evidence: Evidence  # kept so this report can be the baseline of a later run
    workflow_id: str | None = None

    @property
    def needs_human(self) -> bool:
        return self.verdict == Verdict.INCONCLUSIVE


class JudgeRequest(Model):
    """Input of the judge activity."""

    evidence: Evidence
    slo: SLO | None
    baseline: Evidence | None = None
    config: JudgeConfig = Field(default_factory=JudgeConfig)
    workflow_id: str | None = None


class ValidationStatus(Model):
    """The ``status`` query: where the run is, and the report once judged."""

    phase: Literal["reading cluster", "collecting", "judging", "done"]
    message: str = ""
    report: ValidationReport | None = None


ValidationRequest.model_rebuild()
