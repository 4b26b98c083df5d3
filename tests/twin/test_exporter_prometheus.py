"""The twin's exporter output: consistent with info, and read by a real Prometheus server, whose
histogram_quantile(0.99) recovers the latency model's p99 (also under a VersionRegression fault).

Tolerance: 1 % relative, on clusters with exact histograms. The model's CDF is linear inside each exporter
bucket, so the only error left is ``latencies:`` printing percentages with two decimals (< 0.5 % of p99 for
every default profile). Sampled histograms (the default) scatter around the model like a real server's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from statistics import median, stdev

import pytest
from aiohttp import web

from aerodeck.procs import free_port
from aerodeck.twin.aerospike.info import NodeView, namespace_statistics, statistics
from aerodeck.twin.exporter import metrics_app, prometheus_scrape_config, render_cluster_metrics, scrape_targets
from aerodeck.twin.fleet import Topology, VersionRegression
from aerodeck.twin.latency import SERIES_PROFILES, LatencyDistribution, LatencyModel, OpKind, effective_profile
from aerodeck.twin.runtime import Record
from aerodeck.validation.histogram import bucket_quantile
from aerodeck.versions import AerospikeVersion
from tests.loop_thread import LoopThread
from tests.prometheus_server import Prometheus, running_prometheus
from tests.twin.aerospike_fixtures import TwinCluster, fleet_with, start_twin_cluster
from tests.waiting import wait_until

TOLERANCE = 0.01
VERSION = AerospikeVersion.parse("8.1.2.0")
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


STEADY_NODE_STATS = {"cluster_size", "cluster_generation", "cluster_integrity", "cluster_is_member", "objects"}
STEADY_NAMESPACE_STATS = {"objects", "master_objects", "ns_cluster_size", "effective_replication_factor"}


def number(text: str) -> float:
    if text in ("true", "false"):
        return float(text == "true")
    return float(text)


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not an exposition-format sample: {line!r}"
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        samples.append((match["name"], labels, float(match["value"])))
    return samples


def histogram_quantile(q: float, buckets: dict[str, float]) -> float:
    """Prometheus' histogram_quantile for one series: linear interpolation inside the bucket holding rank."""
    bounds = sorted((float(le), count) for le, count in buckets.items())
    rank = q * bounds[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    raise AssertionError("rank beyond the +Inf bucket")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.fixture
def twin(loop: LoopThread) -> Iterator[TwinCluster]:
    fleet_file = fleet_with(size=3, version=str(VERSION), latency_histograms="exact")
    cluster = start_twin_cluster(loop, fleet_file, LatencyModel(seed=5))
    yield cluster
    cluster.close()


def test_metrics_agree_with_info_and_down_nodes_report_only_up_zero(twin: TwinCluster) -> None:
    def seed_records() -> None:
        for i in range(200):
            twin.cluster.records[("test", bytes([i, i // 7]) + bytes(18))] = Record({"v": i}, 1, 0)

    twin.loop.call(seed_records)
    twin.stop_node(2)
    down = f"127.0.0.1:{twin.node(2).port}"

    def snapshot() -> tuple[str, dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        text = render_cluster_metrics(twin.cluster, twin.fleet)
        stats, ns_stats = {}, {}
        for node in twin.cluster.up_nodes():
            view = NodeView(twin.cluster, node, twin.fleet, LatencyModel())
            stats[view.service()] = statistics(view)
            ns_stats[view.service()] = namespace_statistics(view, twin.cluster.spec.namespaces[0])
        return text, stats, ns_stats

    text, stats, ns_stats = twin.loop.call(snapshot)
    samples = parse_samples(text)
    up = {labels["service"]: value for name, labels, value in samples if name == "aerospike_node_up"}
    assert up == {f"127.0.0.1:{twin.node(i).port}": float(i != 2) for i in range(3)}
    assert [name for name, labels, _ in samples if labels.get("service") == down] == ["aerospike_node_up"]

    # Stats that do not move between the two snapshots (uptime and draining migrations do).
    for name, labels, value in samples:
        service = labels.get("service", "")
        if name.removeprefix("aerospike_node_stats_") in STEADY_NODE_STATS and service in stats:
            assert value == number(stats[service][name.removeprefix("aerospike_node_stats_")]), name
        if name.removeprefix("aerospike_namespace_") in STEADY_NAMESPACE_STATS and service in ns_stats:
            assert value == number(ns_stats[service][name.removeprefix("aerospike_namespace_")]), name
    cluster_sizes = {value for name, _, value in samples if name == "aerospike_node_stats_cluster_size"}
    assert cluster_sizes == {2.0}
    masters = sum(value for name, _, value in samples if name == "aerospike_namespace_master_objects")
    objects = sum(value for name, _, value in samples if name == "aerospike_namespace_objects")
    assert (masters, objects) == (200, 400)  # replication factor 2 over the two nodes left


@pytest.mark.parametrize("series", sorted(SERIES_PROFILES))
@pytest.mark.parametrize("topology", list(Topology))
@pytest.mark.parametrize("op", list(OpKind))
def test_bucket_interpolation_recovers_every_profile_p99(
    series: tuple[int, int], topology: Topology, op: OpKind
) -> None:
    fleet_file = fleet_with(
        size=1, version=f"{series[0]}.{series[1]}.0.0", topology=topology.value, latency_histograms="exact"
    )
    loop = LoopThread()
    try:
        twin = start_twin_cluster(loop, fleet_file, LatencyModel())
        text = loop.call(lambda: render_cluster_metrics(twin.cluster, twin.fleet))
        twin.close()
    finally:
        loop.stop()
    buckets = {
        labels["le"]: value
        for name, labels, value in parse_samples(text)
        if name == f"aerospike_latencies_{op.value}_ms_bucket"
    }
    modelled = effective_profile(twin.node(0).version, topology, op, []).p99_ms
    assert histogram_quantile(0.99, buckets) == pytest.approx(modelled, rel=TOLERANCE / 2)


def sampled_p99(distribution: LatencyDistribution, ops: int, model: LatencyModel, interval: int) -> float:
    pct_over = distribution.sampled_pct_over(ops, model.interval_rng("aero-test/twin-test/pod-0/{test}-read", interval))
    cumulative = [(float(2**k), ops * (1 - pct / 100)) for k, pct in enumerate(pct_over)]
    p99 = bucket_quantile(0.99, [*cumulative, (float("inf"), float(ops))])
    assert p99 is not None
    return p99


def test_sampled_intervals_scatter_around_the_model_and_repeat_within_an_interval() -> None:
    profile = effective_profile(VERSION, Topology.HYBRID, OpKind.READ, [])
    distribution, model = LatencyDistribution.of(profile), LatencyModel(seed=11)

    busy = [sampled_p99(distribution, 20_000, model, interval) for interval in range(200)]
    quiet = [sampled_p99(distribution, 500, model, interval) for interval in range(200)]

    assert median(busy) == pytest.approx(profile.p99_ms, rel=0.02)
    assert 0.005 < stdev(busy) / profile.p99_ms < 0.05  # noisy, as 200 of 20000 ops are above p99
    assert stdev(quiet) > 3 * stdev(busy)  # fewer operations, noisier quantile
    assert sampled_p99(distribution, 20_000, model, 7) == busy[7]  # info and the exporter agree
    assert distribution.sampled_pct_over(0, model.interval_rng("idle", 0)) == (0.0,) * 17


@pytest.fixture
def metrics_address(twin: TwinCluster) -> Iterator[str]:
    port = free_port()

    async def serve() -> web.AppRunner:
        runner = web.AppRunner(metrics_app(twin.fleet))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = twin.loop.run(serve())
    yield f"127.0.0.1:{port}"
    twin.loop.run(runner.cleanup())


@pytest.fixture
def prometheus(tmp_path: Path, twin: TwinCluster, metrics_address: str) -> Iterator[Prometheus]:
    with running_prometheus(
        tmp_path, prometheus_scrape_config(scrape_targets([twin.cluster], metrics_address), 1.0)
    ) as server:
        yield server


def p99_of(prometheus: Prometheus, op: OpKind) -> float | None:
    expr = (
        f'histogram_quantile(0.99, sum by (le) (aerospike_latencies_{op.value}_ms_bucket{{cluster_name="twin-test"}}))'
    )
    result = prometheus.query(expr)
    return float(result[0].value[1]) if result else None


def close_to(expected: float) -> object:
    return pytest.approx(expected, rel=TOLERANCE)


def test_prometheus_recovers_modelled_p99_and_a_regression(twin: TwinCluster, prometheus: Prometheus) -> None:
    topology = twin.cluster.spec.labels.topology
    base_read = effective_profile(VERSION, topology, OpKind.READ, []).p99_ms
    base_write = effective_profile(VERSION, topology, OpKind.WRITE, []).p99_ms
    assert wait_until(lambda: p99_of(prometheus, OpKind.READ), timeout=20, interval=0.2, what="scraped data") == (
        close_to(base_read)
    )
    per_node = prometheus.query(
        'histogram_quantile(0.99, aerospike_latencies_read_ms_bucket{cluster_name="twin-test"})'
    )
    assert len(per_node) == 3
    assert all(float(sample.value[1]) == close_to(base_read) for sample in per_node)
    assert prometheus.query("sum(aerospike_node_up)")[0].value[1] == "3"

    regression = VersionRegression(version=VERSION, read_p99_pct=50)
    twin.loop.call(lambda: twin.fleet.faults.append(regression))
    regressed = effective_profile(VERSION, topology, OpKind.READ, [regression]).p99_ms
    assert regressed == pytest.approx(base_read * 1.5)
    wait_until(
        lambda: p99_of(prometheus, OpKind.READ) == close_to(regressed),
        timeout=20,
        interval=0.2,
        what=f"the regressed read p99 {regressed} ms",
    )
    assert p99_of(prometheus, OpKind.WRITE) == close_to(base_write)
