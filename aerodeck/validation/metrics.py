"""The metric catalogue: what each metric means, which way is worse, its SLO line and default weight."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aerodeck.models import SLO
from aerodeck.validation.models import JudgeConfig, MetricName

# Critical always, or only when there is something to judge it against (its SLO line, a baseline).
Criticality = bool | Literal["with line", "with baseline"]


@dataclass(frozen=True)
class MetricSpec:
    name: MetricName
    unit: str
    description: str
    higher_is_worse: bool
    weight: float
    critical: Criticality
    op: str | None = None  # latency metrics: "read" or "write"
    quantile: float | None = None  # latency metrics: which quantile
    slo_field: str | None = None  # the SLO attribute that gives the line
    fixed_line: float | None = None  # health metrics: the line regardless of the SLO
    absolute_shift: bool = False  # compare by absolute (not relative) worsening
    # False where the value follows the tenants' traffic, which differs between baseline and after
    compare_baseline: bool = True

    def weight_in(self, config: JudgeConfig) -> float:
        return config.weights.get(self.name, self.weight)

    def critical_in(self, config: JudgeConfig, slo: SLO | None, with_baseline: bool) -> bool:
        if self.name in config.critical:
            return config.critical[self.name]
        if self.critical == "with line":
            return self.slo_line(slo) is not None
        if self.critical == "with baseline":
            return with_baseline and self.compare_baseline
        return self.critical

    def slo_line(self, slo: SLO | None) -> float | None:
        if self.fixed_line is not None:
            return self.fixed_line
        if slo is None or self.slo_field is None:
            return None
        line = getattr(slo, self.slo_field)
        # min_tps 0 means "no throughput goal registered"
        return None if line is None or (self.slo_field == "min_tps" and line == 0) else float(line)


# p99 is always critical (with neither line nor baseline: inconclusive); p99.9 only if the tenant registered
# a line for it; medians have no line and matter against a baseline.
_LATENCY_CRITICAL: dict[float, Criticality] = {0.5: "with baseline", 0.99: True, 0.999: "with line"}


def _latency(name: MetricName, op: str, quantile: float, weight: float) -> MetricSpec:
    label = {0.5: "p50", 0.99: "p99", 0.999: "p99.9"}[quantile]
    return MetricSpec(
        name=name,
        unit="ms",
        description=f"{op} latency {label}",
        higher_is_worse=True,
        weight=weight,
        critical=_LATENCY_CRITICAL[quantile],
        op=op,
        quantile=quantile,
        slo_field=None if quantile == 0.5 else name.value,  # tenants register p99 and p99.9 lines
    )


CATALOGUE: dict[MetricName, MetricSpec] = {
    spec.name: spec
    for spec in (
        _latency(MetricName.READ_P50, "read", 0.5, 2),
        _latency(MetricName.WRITE_P50, "write", 0.5, 2),
        _latency(MetricName.READ_P99, "read", 0.99, 3),
        _latency(MetricName.WRITE_P99, "write", 0.99, 3),
        _latency(MetricName.READ_P999, "read", 0.999, 1),
        _latency(MetricName.WRITE_P999, "write", 0.999, 1),
        MetricSpec(
            MetricName.ERROR_RATE, "ratio", "failed or timed-out operations per operation", True, 3, True,
            slo_field="max_error_rate", absolute_shift=True,
        ),
        MetricSpec(
            MetricName.THROUGHPUT, "ops/s", "cluster-wide reads and writes per second", False, 2, "with line",
            slo_field="min_tps", compare_baseline=False,
        ),
        MetricSpec(
            MetricName.PROBE_THROUGHPUT, "ops/s", "operations per second the probe achieved", False, 2, True,
        ),
        MetricSpec(
            MetricName.STOP_WRITES, "flag", "namespace refuses writes (stop_writes)", True, 1, True, fixed_line=0,
        ),
        MetricSpec(
            MetricName.DEAD_PARTITIONS, "partitions", "dead partitions", True, 1, True, fixed_line=0,
        ),
        MetricSpec(
            MetricName.UNAVAILABLE_PARTITIONS, "partitions", "unavailable partitions", True, 1, True, fixed_line=0,
        ),
    )
}  # fmt: skip
