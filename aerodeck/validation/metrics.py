"""The metric catalogue: what each metric means, which way is worse, its SLO line and default weight."""

from __future__ import annotations

from dataclasses import dataclass

from aerodeck.models import SLO
from aerodeck.validation.models import JudgeConfig, MetricName


@dataclass(frozen=True)
class MetricSpec:
    name: MetricName
    unit: str
    description: str
    higher_is_worse: bool
    weight: float
    critical: bool
    op: str | None = None  # latency metrics: "read" or "write"
    quantile: float | None = None  # latency metrics: which quantile
    slo_field: str | None = None  # the SLO attribute that gives the line
    fixed_line: float | None = None  # health metrics: the line regardless of the SLO
    absolute_shift: bool = False  # compare by absolute (not relative) worsening
    # False where the value follows the tenants' traffic, which differs between baseline and after
    compare_baseline: bool = True

    def weight_in(self, config: JudgeConfig) -> float:
        return config.weights.get(self.name, self.weight)

    def critical_in(self, config: JudgeConfig, slo: SLO | None) -> bool:
        if self.name in config.critical:
            return config.critical[self.name]
        # p99.9 matters only when the tenant registered a line for it
        if self.quantile == 0.999:
            return self.slo_line(slo) is not None
        return self.critical

    def slo_line(self, slo: SLO | None) -> float | None:
        if self.fixed_line is not None:
            return self.fixed_line
        if slo is None or self.slo_field is None:
            return None
        line = getattr(slo, self.slo_field)
        # min_tps 0 means "no throughput goal registered"
        return None if line is None or (self.slo_field == "min_tps" and line == 0) else float(line)


def _latency(name: MetricName, op: str, quantile: float, weight: float) -> MetricSpec:
    label = "p99" if quantile == 0.99 else "p99.9"
    return MetricSpec(
        name=name,
        unit="ms",
        description=f"{op} latency {label}",
        higher_is_worse=True,
        weight=weight,
        critical=True,
        op=op,
        quantile=quantile,
        slo_field=name.value,
    )


CATALOGUE: dict[MetricName, MetricSpec] = {
    spec.name: spec
    for spec in (
        _latency(MetricName.READ_P99, "read", 0.99, 3),
        _latency(MetricName.WRITE_P99, "write", 0.99, 3),
        _latency(MetricName.READ_P999, "read", 0.999, 1),
        _latency(MetricName.WRITE_P999, "write", 0.999, 1),
        MetricSpec(
            MetricName.ERROR_RATE, "ratio", "failed or timed-out operations per operation", True, 3, True,
            slo_field="max_error_rate", absolute_shift=True,
        ),
        MetricSpec(
            MetricName.THROUGHPUT, "ops/s", "cluster-wide reads and writes per second", False, 2, True,
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

LATENCY_METRICS = [spec for spec in CATALOGUE.values() if spec.quantile is not None]
