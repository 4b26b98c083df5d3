"""The judge: pure functions from evidence (and a baseline) to a verdict with reasons.

Per metric: an absolute check against its SLO line, and a baseline-versus-after comparison with a
one-sided Mann-Whitney U test plus an effect-size gate, the Hodges-Lehmann shift (a significant but tiny
shift passes). Probe tails fail only if they also grew relative to the median: a whole distribution that
moved is judged on the medians, and a median slowdown is inconclusive when the probe's own no-op round
trips slowed down as much (the client host or network, not the cluster). Overall,
Kayenta-style: a failing critical metric fails the run; missing data, too few samples or a disturbed
measurement make it inconclusive, never a pass; otherwise the weighted share of passing metrics decides."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import mannwhitneyu

from aerodeck.models import SLO
from aerodeck.validation.histogram import LatencyHistogram
from aerodeck.validation.metrics import CATALOGUE, MetricSpec
from aerodeck.validation.models import (
    Comparison,
    Distribution,
    Evidence,
    JudgeConfig,
    JudgeRequest,
    MetricName,
    MetricResult,
    Source,
    ValidationReport,
    Verdict,
)
from aerodeck.validation.observe import Observation, observe, window_tails

CONTROL = "control"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ratio":
        return f"{value:.3%}"
    if unit in ("flag", "partitions"):
        return f"{value:g}"
    if unit == "ops/s":
        return f"{value:.0f} {unit}"
    return f"{value:.3g} {unit}"


def rank_test(after: list[float], baseline: list[float], higher_is_worse: bool) -> tuple[float, float, float]:
    """(U of ``after``, one-sided p-value that ``after`` is worse, rank-biserial correlation towards worse)."""
    n1, n2 = len(after), len(baseline)
    if len(set(after) | set(baseline)) == 1:  # identical constant samples: no evidence of any shift
        return n1 * n2 / 2, 1.0, 0.0
    result = mannwhitneyu(after, baseline, alternative="greater" if higher_is_worse else "less")
    u = float(result.statistic)
    rank_biserial = 2 * u / (n1 * n2) - 1
    return u, float(result.pvalue), rank_biserial if higher_is_worse else -rank_biserial


def hodges_lehmann(after: list[float], baseline: list[float], higher_is_worse: bool) -> float | None:
    """Relative worsening as the median over all (after, baseline) pairs of a/b - 1 (1 - a/b when lower is
    worse): the effect size that goes with a Mann-Whitney test, robust to a few odd samples."""
    positive = np.array([b for b in baseline if b > 0])
    if positive.size == 0 or not after:
        return None
    median = float(np.median(np.divide.outer(np.array(after), positive)))
    return median - 1 if higher_is_worse else 1 - median


def _change(spec: MetricSpec, after: float, baseline: float) -> float:
    """Worsening of the metric's value: relative, or absolute (error rate); positive is worse."""
    change = after - baseline if spec.higher_is_worse else baseline - after
    if spec.absolute_shift:
        return change
    if baseline == 0:
        return 0.0 if change == 0 else math.copysign(math.inf, change)
    return change / baseline


def _min_shift(spec: MetricSpec, config: JudgeConfig) -> float:
    if spec.absolute_shift:
        return config.min_error_increase
    return config.min_bulk_shift if spec.quantile == 0.5 else config.min_shift


def compare(
    spec: MetricSpec, after: Observation, baseline: Observation, config: JudgeConfig, min_samples: int
) -> Comparison:
    min_shift = _min_shift(spec, config)
    result = Comparison(
        method=f"one-sided Mann-Whitney U on the {after.method}",
        baseline_samples=len(baseline.samples),
        after_samples=len(after.samples),
        alpha=config.alpha,
        min_shift=min_shift,
        verdict=Verdict.INCONCLUSIVE,
        reason="",
    )
    if baseline.value is None or after.value is None:
        why = baseline.missing if baseline.value is None else after.missing
        return result.model_copy(update={"reason": f"no comparison: {why}"})
    if min(len(after.samples), len(baseline.samples)) < min_samples:
        reason = (
            f"too few samples to compare (baseline {len(baseline.samples)}, after {len(after.samples)}; "
            f"need {min_samples} each): {after.more_samples}"
        )
        return result.model_copy(update={"reason": reason})
    u, p_value, rank_biserial = rank_test(after.samples, baseline.samples, spec.higher_is_worse)
    change = _change(spec, after.value, baseline.value)
    effect = None if spec.absolute_shift else hodges_lehmann(after.samples, baseline.samples, spec.higher_is_worse)
    shift = change if effect is None else effect
    stats = f"{_fmt(baseline.value, spec.unit)} -> {_fmt(after.value, spec.unit)} "
    if spec.absolute_shift:
        stats += f"({change:+.3%}, p={p_value:.2g})"
    else:
        stats += f"({change:+.1%}; shift {shift:+.1%} by Hodges-Lehmann, p={p_value:.2g})"
    shape = hodges_lehmann(after.shape, baseline.shape, True) if after.shape and baseline.shape else None
    if p_value < config.alpha and shift >= min_shift and shape is not None and shape < min_shift / 2:
        # The tail hardly grew beyond the median: the whole distribution moved, as a busier client host or
        # network moves it. Judged on the p50 metrics (and their control check) instead.
        verdict = Verdict.PASS
        reason = f"the tail moved with the median (shape {shape:+.1%}), judged as p50: {stats}"
    elif p_value < config.alpha and shift >= min_shift:
        verdict, reason = Verdict.FAIL, f"worse than baseline: {stats}"
    elif p_value < config.alpha:
        verdict, reason = Verdict.PASS, f"significant but below the {min_shift:g} minimum shift: {stats}"
    else:
        verdict, reason = Verdict.PASS, f"no significant worsening: {stats}"
    update = {
        "u_statistic": u,
        "p_value": p_value,
        "rank_biserial": rank_biserial,
        "shift": shift if math.isfinite(shift) else None,  # JSON has no infinity
        "value_change": change if math.isfinite(change) else None,
        "shape_shift": shape,
    }
    return result.model_copy(update={**update, "verdict": verdict, "reason": reason})


def _slo_check(spec: MetricSpec, observation: Observation, line: float | None) -> tuple[Verdict | None, str]:
    if line is None:
        return None, ""
    if observation.value is None:
        return Verdict.INCONCLUSIVE, f"no data: {observation.missing}"
    if observation.too_few:
        return Verdict.INCONCLUSIVE, f"too few samples: {observation.too_few}"
    worse = observation.value > line if spec.higher_is_worse else observation.value < line
    sign = (">" if spec.higher_is_worse else "<") if worse else ("<=" if spec.higher_is_worse else ">=")
    text = f"{_fmt(observation.value, spec.unit)} {sign} line {_fmt(line, spec.unit)}"
    return (Verdict.FAIL, text) if worse else (Verdict.PASS, text)


def _line(spec: MetricSpec, slo: SLO | None, evidence: Evidence, config: JudgeConfig) -> float | None:
    if spec.name == MetricName.PROBE_THROUGHPUT:
        return evidence.target_tps * config.probe_rate_tolerance if evidence.target_tps else None
    return spec.slo_line(slo)


def _combine(slo_verdict: Verdict | None, comparison: Comparison | None) -> Verdict:
    verdicts = [v for v in (slo_verdict, comparison.verdict if comparison else None) if v is not None]
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if not verdicts or Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


def _unless_explained(latency: Comparison, control: Comparison) -> Comparison:
    """A median failure becomes inconclusive when the probe's no-op round trips slowed down at least as
    much: the client host or the network may be to blame. (A slower cluster slows them a little too, but
    far less than its data path.) Tails need no such check: they fail only on growing beyond the median,
    which a uniform slowdown does not do, while the no-ops' own tail is too noisy to overrule them."""
    if control.shift is None or latency.shift is None or control.shift < latency.shift:
        return latency
    reason = (
        f"{latency.reason}; but the probe's own no-op round trips slowed down as much ({control.reason}): "
        "the client side or the network may be to blame"
    )
    return latency.model_copy(update={"verdict": Verdict.INCONCLUSIVE, "reason": reason})


def judge_metric(spec: MetricSpec, request: JudgeRequest, control_moved: Comparison | None) -> MetricResult | None:
    config, evidence = request.config, request.evidence
    after = observe(spec, evidence, config)
    if after is None:
        return None
    line = _line(spec, request.slo, evidence, config)
    slo_verdict, slo_reason = _slo_check(spec, after, line)
    comparison = None
    baseline_obs = observe(spec, request.baseline, config) if request.baseline else None
    if baseline_obs is not None and spec.compare_baseline and spec.fixed_line is None:
        min_samples = config.min_windows if evidence.source is Source.PROBE else config.min_series_points
        comparison = compare(spec, after, baseline_obs, config, min_samples)
        if comparison.verdict == Verdict.FAIL and spec.quantile == 0.5 and control_moved is not None:
            comparison = _unless_explained(comparison, control_moved)
    verdict = _combine(slo_verdict, comparison)
    parts = [f"SLO: {slo_reason}" if slo_reason else "", f"baseline: {comparison.reason}" if comparison else ""]
    reason = "; ".join(p for p in parts if p) or "no SLO line and no baseline: nothing to judge against"
    return MetricResult(
        name=spec.name,
        unit=spec.unit,
        description=spec.description,
        higher_is_worse=spec.higher_is_worse,
        weight=spec.weight_in(config),
        critical=spec.critical_in(config, request.slo, request.baseline is not None),
        after=after.value,
        baseline=baseline_obs.value if baseline_obs else None,
        slo_line=line,
        slo_verdict=slo_verdict,
        slo_reason=slo_reason,
        comparison=comparison,
        verdict=verdict,
        reason=reason,
    )


_CONTROL_SPEC = MetricSpec(MetricName.READ_P99, "ms", "no-op round trip", True, 0, False)


def measurement_check(request: JudgeRequest) -> Comparison | None:
    """Did the probe's no-op round trips slow down between baseline and after? Then latency shifts may come
    from the client side (CPU, network), not from the cluster."""
    if request.baseline is None or request.evidence.source is not Source.PROBE:
        return None
    config = request.config

    def tails(evidence: Evidence) -> Observation:
        samples = window_tails(evidence.windows, CONTROL, 0.99, config)
        middle = sorted(samples)[len(samples) // 2] if samples else None
        return Observation(middle, samples, "slowest 10 % of no-op round trips per window")

    after, baseline = tails(request.evidence), tails(request.baseline)
    if min(len(after.samples), len(baseline.samples)) < config.min_windows:
        return None
    control = config.model_copy(update={"alpha": config.control_alpha})
    return compare(_CONTROL_SPEC, after, baseline, control, config.min_windows)


def _overall(
    metrics: list[MetricResult], disturbances: list[str], config: JudgeConfig
) -> tuple[Verdict, list[str], float | None]:
    failed = [m for m in metrics if m.verdict == Verdict.FAIL]
    unsure = [m for m in metrics if m.verdict == Verdict.INCONCLUSIVE]
    judged = [m for m in metrics if m.verdict != Verdict.INCONCLUSIVE and m.weight > 0]
    total = sum(m.weight for m in judged)
    score = sum(m.weight for m in judged if m.verdict == Verdict.PASS) / total if total else None
    explain = [f"{m.name.value}: {m.reason}" for m in failed] + [f"{m.name.value}: {m.reason}" for m in unsure]
    if disturbances:
        return Verdict.INCONCLUSIVE, [f"measurement disturbed: {d}" for d in disturbances] + explain, score
    if any(m.critical for m in failed):
        return Verdict.FAIL, explain, score
    if any(m.critical for m in unsure):
        return Verdict.INCONCLUSIVE, explain, score
    if score is None:
        return Verdict.INCONCLUSIVE, ["no metric could be judged", *explain], score
    if score >= config.pass_score:
        ok = f"all critical metrics pass; weighted score {score:.2f} >= {config.pass_score:g}"
        return Verdict.PASS, [ok, *explain], score
    verdict = Verdict.INCONCLUSIVE if score >= config.marginal_score else Verdict.FAIL
    return verdict, [f"weighted score {score:.2f} below {config.pass_score:g}", *explain], score


def distributions(evidence: Evidence) -> list[Distribution]:
    """Latency distributions for charts: the probe's histograms, or the series of p99 per step."""
    result = []
    if evidence.source is Source.PROBE:
        for op in ("read", "write", CONTROL):
            pooled = LatencyHistogram.merged(w.latencies[op] for w in evidence.windows if op in w.latencies)
            if pooled.total == 0:
                continue
            quantiles: dict[str, float] = {}
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999), ("max", 1.0)):
                value = pooled.quantile(q)
                if value is not None:
                    quantiles[name] = value
            result.append(
                Distribution(op=op, operations=pooled.total, quantiles=quantiles, buckets=pooled.chart_buckets())
            )
        return result
    for op, p99, p999 in (("read", MetricName.READ_P99, MetricName.READ_P999),
                          ("write", MetricName.WRITE_P99, MetricName.WRITE_P999)):  # fmt: skip
        series = evidence.series.get(p99, [])
        if not series:
            continue
        quantiles = {"p99": sorted(series)[len(series) // 2]}
        if evidence.series.get(p999):
            quantiles["p999"] = sorted(evidence.series[p999])[len(evidence.series[p999]) // 2]
        result.append(Distribution(op=op, operations=0, quantiles=quantiles, buckets=[], series=series))
    return result


def judge(request: JudgeRequest) -> ValidationReport:
    """The verdict on ``request.evidence`` against the SLO and (if given) the baseline's evidence."""
    evidence, config = request.evidence, request.config
    check = measurement_check(request)
    control_moved = check if check is not None and check.verdict == Verdict.FAIL else None
    metrics = [m for spec in CATALOGUE.values() if (m := judge_metric(spec, request, control_moved)) is not None]
    disturbances = list(evidence.disturbances)
    if request.baseline is not None:
        disturbances += [f"baseline: {d}" for d in request.baseline.disturbances]
    verdict, reasons, score = _overall(metrics, disturbances, config)
    if request.slo is None:
        reasons.append("no SLO registered for the cluster (and no overrides): only the baseline can judge latency")
    return ValidationReport(
        cluster=evidence.cluster,
        source=evidence.source,
        verdict=verdict,
        reasons=reasons,
        score=score,
        started_at=evidence.started_at,
        ended_at=evidence.ended_at,
        slo=request.slo,
        slo_lines={m.name: m.slo_line for m in metrics if m.slo_line is not None},
        metrics=metrics,
        distributions=distributions(evidence),
        baseline_distributions=distributions(request.baseline) if request.baseline else [],
        measurement_check=check,
        config=config,
        evidence=evidence,
        workflow_id=request.workflow_id,
    )
