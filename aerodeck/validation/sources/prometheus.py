"""Evidence from Prometheus over aerospike-prometheus-exporter metrics, through the HTTP API
(``/api/v1/query_range``). The exporter's latency families are gauges of ops/s at or under each bound,
so ``histogram_quantile`` applies directly after summing by ``le``. An empty, malformed or ambiguous
answer is missing data (inconclusive), never a pass.

The latency gauges show each node's last ticker interval until the next one (10 s by default), so a step
finer than that repeats values; runs of one value are kept once, or a rank test would count one interval
as many samples."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from itertools import groupby
from typing import Literal

from pydantic import BaseModel, ValidationError

from aerodeck.validation.models import CollectRequest, Evidence, MetricName, Source
from aerodeck.validation.sources.base import Heartbeat, SourceUnavailable

HTTP_TIMEOUT_S = 10.0
ATTEMPTS = 3
POINTS = 30  # default step: the window over this many points, at least one second
# Gauges of the nodes' last ticker interval: one sample per interval, not per step.
_PER_INTERVAL = {
    MetricName.READ_P99,
    MetricName.READ_P999,
    MetricName.WRITE_P99,
    MetricName.WRITE_P999,
    MetricName.THROUGHPUT,
}


class _Series(BaseModel):
    metric: dict[str, str]
    values: list[tuple[float, str]]


class _Matrix(BaseModel):
    resultType: Literal["matrix"]
    result: list[_Series]


class _Answer(BaseModel):
    status: Literal["success"]
    data: _Matrix


class QueryProblem(Exception):
    """This query gave no usable data; the message is the reason shown in the report."""


def _selector(request: CollectRequest, with_namespace: bool = True) -> str:
    labels = {"cluster_name": request.cluster_name}
    if with_namespace:
        labels["ns"] = request.namespace
    return ",".join(f'{key}="{value}"' for key, value in labels.items())


def queries(request: CollectRequest) -> dict[MetricName, str]:
    """PromQL per metric for one cluster and Aerospike namespace."""
    sel = _selector(request)

    def rate_sum(*counters: str) -> str:
        return " + ".join(f"sum(irate(aerospike_namespace_client_{c}{{{sel}}}[1m]))" for c in counters)

    failed = ("read_error", "read_timeout", "write_error", "write_timeout")
    result = {
        name: f"histogram_quantile({q}, sum by (le) (aerospike_latencies_{op}_ms_bucket{{{sel}}}))"
        for name, op, q in (
            (MetricName.READ_P99, "read", 0.99),
            (MetricName.READ_P999, "read", 0.999),
            (MetricName.WRITE_P99, "write", 0.99),
            (MetricName.WRITE_P999, "write", 0.999),
        )
    }
    result[MetricName.THROUGHPUT] = (
        f"sum(aerospike_latencies_read_ms_count{{{sel}}}) + sum(aerospike_latencies_write_ms_count{{{sel}}})"
    )
    result[MetricName.ERROR_RATE] = (
        f"({rate_sum(*failed)}) / ({rate_sum(*failed, 'read_success', 'read_not_found', 'write_success')})"
    )
    result[MetricName.STOP_WRITES] = f"max(aerospike_namespace_stop_writes{{{sel}}})"
    result[MetricName.DEAD_PARTITIONS] = f"max(aerospike_namespace_dead_partitions{{{sel}}})"
    result[MetricName.UNAVAILABLE_PARTITIONS] = f"max(aerospike_namespace_unavailable_partitions{{{sel}}})"
    return result


class PrometheusClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _get(self, path: str, params: dict[str, str]) -> bytes:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            # Prometheus answers bad queries with 400/422 and a JSON error body
            try:
                error = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                error = exc.reason
            raise QueryProblem(f"Prometheus rejected the query ({exc.code}): {error}") from exc

    def check(self) -> None:
        """Raise SourceUnavailable unless Prometheus answers a trivial query."""
        try:
            self._get("/api/v1/query", {"query": "1"})
        except (urllib.error.URLError, OSError, QueryProblem) as exc:
            raise SourceUnavailable(
                f"Prometheus at {self.base_url} is unreachable ({getattr(exc, 'reason', exc)}); "
                "check AERODECK_PROMETHEUS_URL or use --source info"
            ) from exc

    def range_values(self, expr: str, start: float, end: float, step: float) -> list[float]:
        """The one series ``expr`` returns over [start, end], finite values only."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        for attempt in range(ATTEMPTS):
            try:
                body = self._get("/api/v1/query_range", params)
                break
            except (urllib.error.URLError, OSError) as exc:
                if attempt == ATTEMPTS - 1:
                    raise QueryProblem(f"Prometheus unreachable: {getattr(exc, 'reason', exc)}") from exc
                time.sleep(1.0)
        try:
            answer = _Answer.model_validate_json(body)
        except ValidationError as exc:
            raise QueryProblem(f"malformed answer from Prometheus: {exc.errors()[0]['msg']}") from exc
        if not answer.data.result:
            raise QueryProblem("no series: is the exporter scraped, and are cluster_name and ns right?")
        if len(answer.data.result) > 1:
            raise QueryProblem(f"expected one series, got {len(answer.data.result)}")
        values = []
        for _, text in answer.data.result[0].values:
            try:
                value = float(text)
            except ValueError as exc:
                raise QueryProblem(f"malformed sample value {text!r}") from exc
            if math.isfinite(value):
                values.append(value)
        if not values:
            raise QueryProblem("only NaN or infinite values (no traffic, or empty buckets)")
        return values


class PrometheusSource:
    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url

    def collect(self, request: CollectRequest, heartbeat: Heartbeat) -> Evidence:
        if not self.base_url:
            raise SourceUnavailable(
                "no Prometheus is configured on the worker: set AERODECK_PROMETHEUS_URL, or use --source info",
                retryable=False,
            )
        prometheus = PrometheusClient(self.base_url)
        prometheus.check()
        started_at = datetime.now(UTC)
        start = time.time()
        end = start + request.duration_s
        while (remaining := end - time.time()) > 0:
            heartbeat(f"prometheus: observing, {remaining:.0f} s left")
            time.sleep(min(1.0, remaining))
        step = request.prometheus_step_s or max(1.0, request.duration_s / POINTS)
        series: dict[MetricName, list[float]] = {}
        missing: dict[MetricName, str] = {}
        for name, expr in queries(request).items():
            try:
                values = prometheus.range_values(expr, start, end, step)
            except QueryProblem as exc:
                missing[name] = f"{exc} (query: {expr})"
                continue
            series[name] = [value for value, _ in groupby(values)] if name in _PER_INTERVAL else values
        min_nodes, disturbances = self._nodes(prometheus, request, start, end, step)
        heartbeat("prometheus: queried")
        return Evidence(
            source=Source.PROMETHEUS,
            cluster=request.cluster,
            namespace=request.namespace,
            started_at=started_at,
            ended_at=datetime.now(UTC),
            expected_nodes=request.expected_nodes,
            series=series,
            missing=missing,
            min_nodes=min_nodes,
            disturbances=disturbances,
            notes=[
                f"Prometheus {self.base_url}, step {step:g} s; "
                f"{len(series.get(MetricName.READ_P99, []))} distinct read p99 values (ticker intervals)"
            ],
        )

    @staticmethod
    def _nodes(
        prometheus: PrometheusClient, request: CollectRequest, start: float, end: float, step: float
    ) -> tuple[int | None, list[str]]:
        """The fewest nodes up during the window, and the disturbance that makes (or none)."""
        expr = f"sum(aerospike_node_up{{{_selector(request, with_namespace=False)}}})"
        try:
            fewest = int(min(prometheus.range_values(expr, start, end, step)))
        except QueryProblem as exc:
            return None, [f"cannot tell how many nodes were up: {exc}"]
        if fewest < request.expected_nodes:
            return fewest, [f"only {fewest} of {request.expected_nodes} nodes were up (aerospike_node_up)"]
        return fewest, []
