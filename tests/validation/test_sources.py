"""Evidence sources against real components: the official client on the twin's wire-protocol nodes, and
Debian's Prometheus scraping the twin's exporter."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from statistics import median

import pytest
from aerospike import exception as aerospike_errors

from aerodeck.models import SLO
from aerodeck.procs import free_port
from aerodeck.twin.fleet import Topology
from aerodeck.twin.latency import OpKind, effective_profile
from aerodeck.validation.judge import judge
from aerodeck.validation.models import Evidence, JudgeRequest, MetricName, MetricResult, Source, Verdict
from aerodeck.validation.sources import SourceUnavailable, source_for
from aerodeck.validation.sources.probe import PROBE_SET, probe_keys
from aerodeck.versions import AerospikeVersion
from tests.prometheus_server import Prometheus
from tests.validation.conftest import ValidationTwin
from tests.waiting import wait_until

VERSION = AerospikeVersion.parse("8.1.2.0")
SLO_LINES = SLO(read_p99_ms=5.0, write_p99_ms=8.0, min_tps=100)


def quiet(_: str) -> None:
    """A heartbeat that only swallows progress lines."""


def metric(metrics: list[MetricResult], name: MetricName) -> MetricResult:
    return next(m for m in metrics if m.name == name)


def test_probe_measures_judges_and_deletes_only_its_own_records(validation_twin: ValidationTwin) -> None:
    client = validation_twin.client("v-pass")
    tenant = ("test", "tenant-set", "order-42")
    client.put(tenant, {"total": 99})
    request = validation_twin.collect_request("v-pass", Source.PROBE, duration_s=2.0)
    heartbeats: list[str] = []

    evidence = source_for(Source.PROBE, None).collect(request, heartbeats.append)

    reads = sum(w.latencies["read"].total for w in evidence.windows)
    writes = sum(w.latencies["write"].total for w in evidence.windows)
    controls = sum(w.latencies["control"].total for w in evidence.windows)
    assert reads > 1000 and writes > 1000, (reads, writes)
    assert controls > 0 and sum(w.errors + w.timeouts for w in evidence.windows) == 0
    assert evidence.min_nodes == 3 and not evidence.disturbances
    assert heartbeats and any("operations" in h for h in heartbeats)
    assert f"all {request.probe.keys} probe records deleted" in evidence.notes
    for key in probe_keys("test", request.run_id, request.probe.keys):
        with pytest.raises(aerospike_errors.RecordNotFound):
            client.get(key)
    assert key[1] == PROBE_SET
    assert client.get(tenant)[2] == {"total": 99}, "tenant data is never touched"
    client.close()

    report = judge(JudgeRequest(evidence=evidence, slo=SLO_LINES))
    assert report.verdict == Verdict.PASS, report.reasons
    read = metric(report.metrics, MetricName.READ_P99)
    assert read.after is not None and 0.2 < read.after < SLO_LINES.read_p99_ms and read.slo_line == 5.0
    assert metric(report.metrics, MetricName.PROBE_THROUGHPUT).after == pytest.approx(1500, rel=0.1)
    assert {d.op for d in report.distributions} == {"read", "write", "control"}


def test_info_source_takes_one_sample_per_ticker_interval_around_the_modelled_p99(
    validation_twin: ValidationTwin,
) -> None:
    request = validation_twin.collect_request("v-pass", Source.INFO, duration_s=8.0)
    evidence = source_for(Source.INFO, None).collect(request, quiet)

    modelled = effective_profile(VERSION, Topology.IN_MEMORY, OpKind.READ, []).p99_ms
    p99s = evidence.series[MetricName.READ_P99]
    # about 30 polls, but the nodes' 1 s ticker intervals are new only about 8 times: one sample each
    assert 6 <= len(p99s) <= 9 and len(set(p99s)) == len(p99s), p99s
    assert median(p99s) == pytest.approx(modelled, rel=0.05)
    assert median(evidence.series[MetricName.THROUGHPUT]) == pytest.approx(30_000, rel=0.05)  # the tenants' load
    assert evidence.min_nodes == 3
    assert judge(JudgeRequest(evidence=evidence, slo=SLO_LINES)).verdict == Verdict.PASS


def test_a_comparison_over_too_few_ticker_intervals_is_inconclusive_and_says_why(
    validation_twin: ValidationTwin,
) -> None:
    def run() -> Evidence:
        request = validation_twin.collect_request("v-pass", Source.INFO, duration_s=2.0)
        return source_for(Source.INFO, None).collect(request, quiet)

    baseline, after = run(), run()
    report = judge(JudgeRequest(evidence=after, slo=SLO_LINES, baseline=baseline))

    assert len(after.series[MetricName.READ_P99]) <= 3 and "ticker intervals new on every node" in after.notes[0]
    assert report.verdict == Verdict.INCONCLUSIVE, report.reasons
    read = metric(report.metrics, MetricName.READ_P99)
    assert read.slo_verdict == Verdict.PASS and read.comparison is not None
    assert "too few samples" in read.comparison.reason and "one sample per ticker interval" in read.comparison.reason


def collect_both(twin: ValidationTwin, clusters: list[str], source: Source, url: str | None) -> dict[str, Evidence]:
    """Measure several clusters over the same window, one thread each."""
    results: dict[str, Evidence] = {}

    def run(cluster: str) -> None:
        results[cluster] = source_for(source, url).collect(twin.collect_request(cluster, source, 10.0), quiet)

    threads = [threading.Thread(target=run, args=(c,)) for c in clusters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_regression_confined_to_hybrid_is_caught_only_on_hybrid(faults: ValidationTwin, prometheus: Prometheus) -> None:
    clusters = ["v-hybrid", "v-inmem"]
    baseline = collect_both(faults, clusters, Source.PROMETHEUS, prometheus.url)
    faults.add_fault({"kind": "version-regression", "version": str(VERSION), "read_p99_pct": 50,
                      "write_p99_pct": 50, "topology": "hybrid"})  # fmt: skip
    regressed = effective_profile(VERSION, Topology.HYBRID, OpKind.READ, []).p99_ms * 1.5
    expr = 'histogram_quantile(0.99, sum by (le) (aerospike_latencies_read_ms_bucket{cluster_name="v-hybrid"}))'
    wait_until(lambda: float(prometheus.query(expr)[0].value[1]) > regressed / 1.25,  # past midway: noise is ~3 %
             what="the regression scraped")  # fmt: skip
    after = collect_both(faults, clusters, Source.PROMETHEUS, prometheus.url)

    hybrid = judge(JudgeRequest(evidence=after["v-hybrid"], slo=None, baseline=baseline["v-hybrid"]))
    inmem = judge(JudgeRequest(evidence=after["v-inmem"], slo=None, baseline=baseline["v-inmem"]))

    assert hybrid.verdict == Verdict.FAIL, hybrid.reasons
    for name in (MetricName.READ_P99, MetricName.WRITE_P99):
        result = metric(hybrid.metrics, name)
        assert result.verdict == Verdict.FAIL and result.comparison is not None
        assert result.comparison.shift == pytest.approx(0.5, abs=0.1)
        assert result.comparison.p_value is not None and result.comparison.p_value < 0.01
    assert inmem.verdict == Verdict.PASS, inmem.reasons
    assert all(m.comparison is None or m.comparison.verdict == Verdict.PASS for m in inmem.metrics)


def test_unreachable_prometheus_is_a_clear_error(validation_twin: ValidationTwin) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceUnavailable, match="unreachable"):
        source_for(Source.PROMETHEUS, url).collect(validation_twin.collect_request("v-pass", Source.PROMETHEUS), quiet)
    with pytest.raises(SourceUnavailable, match="AERODECK_PROMETHEUS_URL") as raised:
        source_for(Source.PROMETHEUS, None).collect(validation_twin.collect_request("v-pass", Source.PROMETHEUS), quiet)
    assert not raised.value.retryable


def test_unscraped_cluster_is_no_data_and_inconclusive(validation_twin: ValidationTwin, prometheus: Prometheus) -> None:
    request = validation_twin.collect_request("v-pass", Source.PROMETHEUS, 1.0).model_copy(
        update={"cluster_name": "not-scraped"}
    )
    evidence = source_for(Source.PROMETHEUS, prometheus.url).collect(request, quiet)
    assert not evidence.series and "no series" in evidence.missing[MetricName.READ_P99]
    report = judge(JudgeRequest(evidence=evidence, slo=SLO_LINES))
    assert report.verdict == Verdict.INCONCLUSIVE
    assert any("no series" in reason for reason in report.reasons)


MALFORMED = [
    b'{"status": "success", "data": {"resultType": "vector", "result": []}}',
    b'{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "NaN"]]}]}}',
    b'{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "x"]]}]}}',
    b'{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {"a": "1"}, "values": '
    b'[[1, "1"]]}, {"metric": {"a": "2"}, "values": [[1, "2"]]}]}}',
    b"<html>not json</html>",
]


@pytest.fixture(params=MALFORMED, ids=["vector", "nan", "bad-number", "two-series", "not-json"])
def malformed_prometheus(request: pytest.FixtureRequest) -> Iterator[str]:
    """An HTTP endpoint answering every query with one malformed body (a Prometheus-compatible API gone wrong)."""
    body: bytes = request.param

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_malformed_answers_are_missing_data_never_a_pass(
    validation_twin: ValidationTwin, malformed_prometheus: str
) -> None:
    request = validation_twin.collect_request("v-pass", Source.PROMETHEUS, 0.2)
    evidence = source_for(Source.PROMETHEUS, malformed_prometheus).collect(request, quiet)
    assert not evidence.series and set(evidence.missing) >= {MetricName.READ_P99, MetricName.ERROR_RATE}
    assert evidence.disturbances, "without aerospike_node_up the node count is unknown"
    report = judge(JudgeRequest(evidence=evidence, slo=SLO_LINES))
    assert report.verdict == Verdict.INCONCLUSIVE
    assert all(m.verdict != Verdict.PASS for m in report.metrics if m.name == MetricName.READ_P99)


def test_node_down_during_the_probe_is_inconclusive(faults: ValidationTwin) -> None:
    request = faults.collect_request("v-down", Source.PROBE, duration_s=3.0)
    running = threading.Event()

    def heartbeat(progress: str) -> None:
        if "operations" in progress and not progress.startswith("probe: 0 "):
            running.set()

    result: list[Evidence] = []
    thread = threading.Thread(target=lambda: result.append(source_for(Source.PROBE, None).collect(request, heartbeat)))
    thread.start()
    assert running.wait(timeout=30), "the probe never started its workload"
    faults.add_fault({"kind": "node-down", "cluster": "v-down", "pod": "v-down-0-1"})
    thread.join(timeout=120)
    assert result, "the probe did not finish"
    evidence = result[0]

    assert evidence.min_nodes == 2 and "only 2 of 3 nodes answered" in evidence.disturbances[0]
    report = judge(JudgeRequest(evidence=evidence, slo=SLO_LINES))
    assert report.verdict == Verdict.INCONCLUSIVE
    assert report.reasons[0].startswith("measurement disturbed: only 2 of 3 nodes answered")
