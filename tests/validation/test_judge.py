"""The judge and the distributions on synthetic evidence: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import mannwhitneyu

from aerodeck.models import SLO, ClusterRef
from aerodeck.validation.histogram import LatencyHistogram, bucket_quantile
from aerodeck.validation.judge import judge
from aerodeck.validation.models import (
    Evidence,
    JudgeConfig,
    JudgeRequest,
    MetricName,
    MetricResult,
    ProbeWindow,
    Source,
    ValidationReport,
    Verdict,
    samples_for_significance,
)
from aerodeck.validation.sources.info_latency import merge_nodes, parse_latencies

CLUSTER = ClusterRef(namespace="aero", name="c1")
SLO_LINES = SLO(read_p99_ms=2.0, write_p99_ms=4.0, min_tps=100)
START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOWS, OPS = 30, 400  # per window and kind: 12,000 reads and writes a run
HEALTHY = {
    MetricName.THROUGHPUT: [500.0] * 8,
    MetricName.STOP_WRITES: [0.0] * 8,
    MetricName.DEAD_PARTITIONS: [0.0] * 8,
    MetricName.UNAVAILABLE_PARTITIONS: [0.0] * 8,
}


def lognormal(rng: np.random.Generator, sigma: float, n: int, median: float = 0.3) -> np.ndarray:
    return median * np.exp(rng.normal(0, sigma, n))


def probe(
    seed: int,
    read_sigma: float = 0.6,
    write_sigma: float = 0.6,
    scale: float = 1.0,
    control_scale: float = 1.0,
    ops: int = OPS,
    errors: int = 0,
    disturbances: tuple[str, ...] = (),
) -> Evidence:
    """Probe evidence with lognormal latencies per window; ``sigma`` widens the tail around a fixed median."""
    rng = np.random.default_rng(seed)
    windows = [
        ProbeWindow(
            seconds=0.1 * ops / OPS,
            latencies={
                "read": LatencyHistogram.of(scale * lognormal(rng, read_sigma, ops)),
                "write": LatencyHistogram.of(scale * lognormal(rng, write_sigma, ops)),
                "control": LatencyHistogram.of(control_scale * lognormal(rng, 0.3, ops // 4, 0.1)),
            },
            errors=errors,
        )
        for _ in range(WINDOWS)
    ]
    return Evidence(
        source=Source.PROBE,
        cluster=CLUSTER,
        namespace="test",
        started_at=START,
        ended_at=START + timedelta(seconds=3),
        expected_nodes=3,
        min_nodes=3,
        target_tps=2 * OPS / 0.1,
        windows=windows,
        series=HEALTHY,
        disturbances=list(disturbances),
    )


def series(values: dict[MetricName, list[float]], **fields: object) -> Evidence:
    return Evidence.model_validate(
        {"source": Source.PROMETHEUS, "cluster": CLUSTER, "namespace": "test", "started_at": START,
         "ended_at": START + timedelta(seconds=10), "expected_nodes": 3, "min_nodes": 3,
         "series": {**HEALTHY, **values}, **fields}
    )  # fmt: skip


def metric(report: ValidationReport, name: MetricName) -> MetricResult:
    return next(m for m in report.metrics if m.name == name)


def test_histogram_quantiles_and_tail_means_are_within_one_percent() -> None:
    values = lognormal(np.random.default_rng(1), 0.8, 50_000)
    histogram = LatencyHistogram.of(values)
    for q in (0.5, 0.9, 0.99, 0.999):
        assert histogram.quantile(q) == pytest.approx(np.quantile(values, q), rel=0.01)
    top = np.sort(values)[-5000:]
    assert histogram.tail_mean(0.1) == pytest.approx(top.mean(), rel=0.01)
    buckets = histogram.chart_buckets()
    assert [b for b, _ in buckets][:3] == [1.0, 2.0, 4.0] and buckets[-1][1] <= histogram.total
    assert [c for _, c in buckets] == sorted(c for _, c in buckets)
    assert LatencyHistogram.model_validate_json(histogram.model_dump_json()) == histogram
    assert LatencyHistogram().quantile(0.99) is None and LatencyHistogram().tail_mean(0.1) is None


def test_bucket_quantile_follows_histogram_quantile() -> None:
    cumulative = [(1.0, 50.0), (2.0, 90.0), (4.0, 99.0), (float("inf"), 100.0)]
    assert bucket_quantile(0.5, cumulative) == pytest.approx(1.0)
    assert bucket_quantile(0.95, cumulative) == pytest.approx(2 + 2 * 5 / 9)
    assert bucket_quantile(0.995, cumulative) == 4.0  # rank in +Inf: the highest finite bound
    assert bucket_quantile(0.99, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_latencies_output_parses_into_summed_buckets() -> None:
    text = ("batch-index:;{test}-read:msec,100.0,10.00,1.00,0.00,0.00;{test}-write:usec,50.0,50.00,0.00;"
            "{test}-udf:")  # fmt: skip
    parsed = parse_latencies(text)
    assert set(parsed) == {"{test}-read", "{test}-write"}
    read = parsed["{test}-read"]
    assert read.cumulative[:2] == [(1.0, 90.0), (2.0, 99.0)] and read.cumulative[-1][1] == 100.0
    assert parsed["{test}-write"].cumulative[0] == (0.001, 25.0)  # usec columns are 1, 2, 4 ... µs
    merged = merge_nodes([read, read])
    assert merged[0] == (1.0, 180.0) and merged[-1][1] == 200.0
    assert bucket_quantile(0.99, merged) == pytest.approx(2.0)


def test_within_slo_passes_without_a_baseline() -> None:
    report = judge(JudgeRequest(evidence=probe(1), slo=SLO_LINES))
    assert report.verdict == Verdict.PASS, report.reasons
    read = metric(report, MetricName.READ_P99)
    assert read.slo_verdict == Verdict.PASS and read.comparison is None and read.after is not None
    assert metric(report, MetricName.READ_P999).verdict == Verdict.INCONCLUSIVE  # no line, not critical
    median = metric(report, MetricName.READ_P50)
    assert median.verdict == Verdict.INCONCLUSIVE and not median.critical  # no line, and no baseline yet
    assert ValidationReport.model_validate_json(report.model_dump_json()) == report


def test_tail_regression_fails_where_a_rank_test_on_all_operations_sees_nothing() -> None:
    baseline, after = probe(1), probe(2, write_sigma=0.7)  # median unchanged, p99 about +26 %
    report = judge(JudgeRequest(evidence=after, slo=SLO_LINES, baseline=baseline))

    write = metric(report, MetricName.WRITE_P99)
    assert report.verdict == Verdict.FAIL and write.verdict == Verdict.FAIL
    assert write.comparison is not None and write.comparison.shift is not None and write.comparison.shift > 0.15
    assert write.comparison.p_value is not None and write.comparison.p_value < 0.001
    assert metric(report, MetricName.READ_P99).verdict == Verdict.PASS

    def raw(evidence: Evidence) -> np.ndarray:
        merged = LatencyHistogram.merged(w.latencies["write"] for w in evidence.windows)
        return np.repeat([float(i) for i in merged.counts], list(merged.counts.values()))

    assert mannwhitneyu(raw(after), raw(baseline), alternative="greater").pvalue > 0.01


def test_significant_but_tiny_shift_passes() -> None:
    config = JudgeConfig(alpha=0.05)
    report = judge(JudgeRequest(evidence=probe(2, scale=1.03), slo=SLO_LINES, baseline=probe(2), config=config))
    read = metric(report, MetricName.READ_P99)
    assert read.comparison is not None and read.comparison.p_value is not None
    assert read.comparison.p_value < 0.05 and read.verdict == Verdict.PASS
    assert "below the 0.05 minimum shift" in read.reason and report.verdict == Verdict.PASS


def test_slo_breach_fails_and_error_rates_compare_absolutely() -> None:
    report = judge(JudgeRequest(evidence=probe(3, scale=8.0), slo=SLO_LINES))
    assert report.verdict == Verdict.FAIL and "> line 2 ms" in metric(report, MetricName.READ_P99).reason

    failing = judge(JudgeRequest(evidence=probe(4, errors=20), slo=SLO_LINES, baseline=probe(5)))
    errors = metric(failing, MetricName.ERROR_RATE)
    assert errors.verdict == Verdict.FAIL and errors.after == pytest.approx(20 / (2 * OPS + 20))
    assert errors.comparison is not None and errors.comparison.shift == pytest.approx(errors.after)


def test_missing_data_and_too_few_samples_are_inconclusive_never_pass() -> None:
    empty = series({}, missing={MetricName.READ_P99: "no series"})
    report = judge(JudgeRequest(evidence=empty, slo=SLO_LINES))
    assert report.verdict == Verdict.INCONCLUSIVE
    assert metric(report, MetricName.READ_P99).reason == "SLO: no data: no series"

    small = probe(6, ops=10)  # 300 reads: too few for a p99 (needs 1000) and for six windows of 100
    report = judge(JudgeRequest(evidence=small, slo=SLO_LINES, baseline=probe(7)))
    read = metric(report, MetricName.READ_P99)
    assert report.verdict == Verdict.INCONCLUSIVE and read.slo_verdict == Verdict.INCONCLUSIVE
    assert read.comparison is not None and "too few samples" in read.comparison.reason


def test_disturbed_measurement_is_inconclusive_even_when_metrics_fail() -> None:
    disturbed = probe(8, scale=8.0, disturbances=("only 2 of 3 nodes answered",))
    report = judge(JudgeRequest(evidence=disturbed, slo=SLO_LINES))
    assert report.verdict == Verdict.INCONCLUSIVE and report.needs_human
    assert report.reasons[0] == "measurement disturbed: only 2 of 3 nodes answered"
    assert any("read_p99_ms" in reason for reason in report.reasons)


def test_nothing_to_judge_against_is_inconclusive() -> None:
    report = judge(JudgeRequest(evidence=probe(9), slo=None))
    assert report.verdict == Verdict.INCONCLUSIVE
    assert "nothing to judge against" in metric(report, MetricName.READ_P99).reason
    assert "no SLO registered" in report.reasons[-1]


def test_series_comparisons_including_constant_series() -> None:
    steady = {MetricName.READ_P99: [1.05] * 8, MetricName.WRITE_P99: [1.9] * 8, MetricName.ERROR_RATE: [0.0] * 8}
    same = judge(JudgeRequest(evidence=series(steady), slo=SLO_LINES, baseline=series(steady)))
    unchanged = metric(same, MetricName.READ_P99).comparison
    assert same.verdict == Verdict.PASS and unchanged is not None and unchanged.p_value == 1.0

    worse = {**steady, MetricName.READ_P99: [1.26] * 8}
    report = judge(JudgeRequest(evidence=series(worse), slo=SLO_LINES, baseline=series(steady)))
    read = metric(report, MetricName.READ_P99)
    assert report.verdict == Verdict.FAIL and read.comparison is not None
    assert read.comparison.shift == pytest.approx(0.2) and read.comparison.rank_biserial == 1.0

    short = judge(JudgeRequest(evidence=series({MetricName.READ_P99: [1.3] * 3}), slo=None,
                               baseline=series(steady)))  # fmt: skip
    assert metric(short, MetricName.READ_P99).verdict == Verdict.INCONCLUSIVE


def test_uniform_slowdown_fails_on_medians_unless_the_probe_itself_slowed_down() -> None:
    baseline = probe(11)
    uniform = judge(JudgeRequest(evidence=probe(10, scale=1.5), slo=SLO_LINES, baseline=baseline))
    read_p99, read_p50 = metric(uniform, MetricName.READ_P99), metric(uniform, MetricName.READ_P50)
    assert read_p99.verdict == Verdict.PASS and "tail moved with the median" in read_p99.reason
    assert read_p50.verdict == Verdict.FAIL and read_p50.critical and uniform.verdict == Verdict.FAIL

    # everything, the probe's no-op round trips too, 50 % slower: the client host or network, maybe
    client_side = judge(JudgeRequest(evidence=probe(10, scale=1.5, control_scale=1.5), slo=SLO_LINES,
                                     baseline=baseline))  # fmt: skip
    assert client_side.measurement_check is not None and client_side.measurement_check.verdict == Verdict.FAIL
    read_p50 = metric(client_side, MetricName.READ_P50)
    assert read_p50.verdict == Verdict.INCONCLUSIVE and "client side or the network" in read_p50.reason
    assert client_side.verdict == Verdict.INCONCLUSIVE


def test_a_slower_probe_control_does_not_overrule_a_tail_that_grew_beyond_the_median() -> None:
    # median unchanged, write p99 about +26 %, and the no-op round trips 50 % slower as well
    after = probe(14, write_sigma=0.7, control_scale=1.5)
    report = judge(JudgeRequest(evidence=after, slo=SLO_LINES, baseline=probe(15)))
    assert report.measurement_check is not None and report.measurement_check.verdict == Verdict.FAIL
    write = metric(report, MetricName.WRITE_P99)
    assert write.verdict == Verdict.FAIL and "client side" not in write.reason
    assert report.verdict == Verdict.FAIL


def test_weights_and_criticality_decide_non_critical_failures() -> None:
    baseline, after = probe(12), probe(13, write_sigma=0.7)
    lenient = JudgeConfig(critical={MetricName.WRITE_P99: False}, weights={MetricName.WRITE_P99: 0.5})
    report = judge(JudgeRequest(evidence=after, slo=SLO_LINES, baseline=baseline, config=lenient))
    assert metric(report, MetricName.WRITE_P99).verdict == Verdict.FAIL
    assert report.verdict == Verdict.PASS and report.score is not None and 0.9 <= report.score < 1

    strict = lenient.model_copy(update={"weights": {MetricName.WRITE_P99: 10.0}})
    report = judge(JudgeRequest(evidence=after, slo=SLO_LINES, baseline=baseline, config=strict))
    assert report.verdict == Verdict.FAIL and report.score is not None and report.score < 0.75


def test_a_config_whose_sample_minimum_can_never_reach_alpha_is_refused() -> None:
    assert samples_for_significance(0.001) == 7 and samples_for_significance(0.05) == 4
    with pytest.raises(ValidationError, match=r"min_windows 6 can never reach alpha 0\.001: .* at least 7"):
        JudgeConfig(min_windows=6)
    assert JudgeConfig(alpha=0.01, min_windows=5).min_windows == 5
