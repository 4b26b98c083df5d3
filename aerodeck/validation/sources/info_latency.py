"""Evidence from the nodes themselves: ``latencies:`` (per-node histograms of the last ticker interval)
and ``namespace/<ns>`` statistics, polled through the official client. Used when no Prometheus is
configured, and by the probe to watch the cluster while it runs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aerospike import exception as aerospike_errors

from aerodeck.validation.histogram import bucket_quantile
from aerodeck.validation.models import CollectRequest, Evidence, MetricName, Source
from aerodeck.validation.sources.base import Heartbeat, connect

POLLS = 30  # per run: enough points for a rank test, few enough info calls
_OPS = ("read", "write")
_UNIT_MS = {"msec": 1.0, "usec": 0.001}
_FAILED = ("client_read_error", "client_read_timeout", "client_write_error", "client_write_timeout")
_SERVED = (*_FAILED, "client_read_success", "client_read_not_found", "client_write_success")
_LATENCY = {
    ("read", 0.99): MetricName.READ_P99,
    ("read", 0.999): MetricName.READ_P999,
    ("write", 0.99): MetricName.WRITE_P99,
    ("write", 0.999): MetricName.WRITE_P999,
}


@dataclass(frozen=True)
class NodeHistogram:
    """One ``latencies:`` entry: ops/s, and the cumulative (upper bound ms, ops/s at or under it) buckets."""

    tps: float
    cumulative: list[tuple[float, float]]


def parse_latencies(text: str) -> dict[str, NodeHistogram]:
    """``{ns}-read:msec,tps,p>1,p>2,...;...`` → histogram name → buckets (entries without data skipped).
    Column k is the percentage of operations slower than 2^k units."""
    histograms = {}
    for entry in text.strip().split(";"):
        name, _, data = entry.partition(":")
        columns = data.split(",")
        if len(columns) < 3 or columns[0] not in _UNIT_MS:
            continue
        try:
            tps = float(columns[1])
            over = [float(c) for c in columns[2:]]
        except ValueError:
            continue
        unit = _UNIT_MS[columns[0]]
        cumulative = [(unit * 2**k, tps * (1 - pct / 100)) for k, pct in enumerate(over)]
        histograms[name] = NodeHistogram(tps, [*cumulative, (math.inf, tps)])
    return histograms


def merge_nodes(histograms: list[NodeHistogram]) -> list[tuple[float, float]]:
    """``sum by (le)`` over nodes: cumulative rates at the bounds every node reports."""
    if not histograms:
        return []
    width = min(len(h.cumulative) for h in histograms) - 1  # the finite bounds every node reports
    finite = [(histograms[0].cumulative[i][0], sum(h.cumulative[i][1] for h in histograms)) for i in range(width)]
    return [*finite, (math.inf, sum(h.tps for h in histograms))]


def parse_kv(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.strip().split(";") if "=" in part)


def info_each(client: Any, command: str) -> dict[str, str]:
    """Node name -> value (``<command>\\t<value>`` or the bare value) from every node the client knows.
    Node by node, since ``info_all`` raises as a whole when one node does not answer."""
    try:
        nodes = [node["node_name"] for node in client.get_node_names()]
    except aerospike_errors.AerospikeError:
        return {}
    values = {}
    for node in nodes:
        try:
            response = client.info_single_node(command, node)
        except aerospike_errors.AerospikeError:
            continue
        values[node] = response.split("\t", 1)[1].strip() if "\t" in response else response.strip()
    return values


@dataclass
class InfoPoller:
    """Polls every node once per call and keeps the series; node restarts reset counters, so a decrease
    skips that node's interval.

    A node's ``latencies:`` shows its last ticker interval (10 s by default) however often it is asked, so
    polls faster than that repeat the same interval, and repeated values would make a rank test see far more
    evidence than there is. A latency sample is therefore taken only once every node that served the
    namespace shows an interval not used before (its entries changed): each sample is new data from every
    node. (Nodes without traffic, and histograms that never change, give one sample and no more.)"""

    client: Any
    namespace: str
    expected_nodes: int
    started: float = field(default_factory=time.monotonic)
    series: dict[MetricName, list[float]] = field(default_factory=dict)
    answering: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, nodes)
    intervals: int = 0  # latency samples taken: ticker intervals new on every node
    _counters: dict[str, dict[str, int]] = field(default_factory=dict)
    # node -> its interval (op -> histogram) last sampled, and one not sampled yet
    _used: dict[str, dict[str, NodeHistogram]] = field(default_factory=dict)
    _fresh: dict[str, dict[str, NodeHistogram]] = field(default_factory=dict)

    def _append(self, name: MetricName, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            self.series.setdefault(name, []).append(value)

    def poll(self) -> None:
        latencies = info_each(self.client, "latencies:")
        stats = {node: parse_kv(v) for node, v in info_each(self.client, f"namespace/{self.namespace}").items()}
        self.answering.append((time.monotonic() - self.started, min(len(latencies), len(stats))))
        self._latencies(latencies)
        self._health(stats)
        self._errors(stats)

    def _latencies(self, answers: dict[str, str]) -> None:
        serving: dict[str, dict[str, NodeHistogram]] = {}  # nodes that served this namespace in their interval
        for node, text in answers.items():
            parsed = parse_latencies(text)
            interval = {op: h for op in _OPS if (h := parsed.get(f"{{{self.namespace}}}-{op}")) and h.tps > 0}
            if interval:
                serving[node] = interval
                if interval != self._used.get(node):
                    self._fresh[node] = interval
        if answers and not serving:
            self._append(MetricName.THROUGHPUT, 0.0)  # the nodes answer but serve nothing: that is evidence
        if not serving or not set(serving) <= set(self._fresh):
            return  # some node still shows an interval already sampled
        total = 0.0
        for op in _OPS:
            merged = merge_nodes([self._fresh[node][op] for node in serving if op in self._fresh[node]])
            total += merged[-1][1] if merged else 0.0
            for quantile in (0.99, 0.999):
                self._append(_LATENCY[(op, quantile)], bucket_quantile(quantile, merged))
        self._append(MetricName.THROUGHPUT, total)
        self._used.update({node: self._fresh[node] for node in serving})
        self._fresh.clear()
        self.intervals += 1

    def _health(self, stats: dict[str, dict[str, str]]) -> None:
        if not stats:
            return
        self._append(MetricName.STOP_WRITES, float(any(s.get("stop_writes") == "true" for s in stats.values())))
        for name, key in ((MetricName.DEAD_PARTITIONS, "dead_partitions"),
                          (MetricName.UNAVAILABLE_PARTITIONS, "unavailable_partitions")):  # fmt: skip
            values = [float(s[key]) for s in stats.values() if s.get(key, "").isdigit()]
            if values:
                self._append(name, max(values))

    def _errors(self, stats: dict[str, dict[str, str]]) -> None:
        failed = served = 0
        for node, values in stats.items():
            counters = {key: int(values[key]) for key in _SERVED if values.get(key, "").isdigit()}
            previous, self._counters[node] = self._counters.get(node), counters
            if previous is None or any(counters.get(k, 0) < previous.get(k, 0) for k in counters):
                continue
            failed += sum(counters.get(k, 0) - previous.get(k, 0) for k in _FAILED)
            served += sum(counters.get(k, 0) - previous.get(k, 0) for k in _SERVED)
        if served:
            self._append(MetricName.ERROR_RATE, failed / served)

    @property
    def min_nodes(self) -> int | None:
        return min((n for _, n in self.answering), default=None)

    def disturbances(self) -> list[str]:
        short = [(t, n) for t, n in self.answering if n < self.expected_nodes]
        if not short:
            return []
        t, n = min(short, key=lambda pair: pair[1])
        return [f"only {n} of {self.expected_nodes} nodes answered (at +{t:.1f} s): a node was down or restarting"]


def poll_interval(duration_s: float) -> float:
    return min(max(duration_s / POLLS, 0.25), 10.0)


class InfoLatencySource:
    """Polls ``latencies:`` and namespace statistics for the whole window."""

    def collect(self, request: CollectRequest, heartbeat: Heartbeat) -> Evidence:
        client = connect(request.endpoints, request.probe.timeout_ms)
        started_at = datetime.now(UTC)
        try:
            poller = InfoPoller(client, request.namespace, request.expected_nodes)
            interval = poll_interval(request.duration_s)
            end = poller.started + request.duration_s
            while True:
                poller.poll()
                heartbeat(f"info: {len(poller.answering)} polls")
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(interval, remaining))
        finally:
            client.close()
        missing = {name: "no node reported it" for name in _LATENCY.values() if name not in poller.series}
        return Evidence(
            source=Source.INFO,
            cluster=request.cluster,
            namespace=request.namespace,
            started_at=started_at,
            ended_at=datetime.now(UTC),
            expected_nodes=request.expected_nodes,
            min_nodes=poller.min_nodes,
            series=poller.series,
            missing=missing,
            disturbances=poller.disturbances(),
            notes=[
                f"{len(poller.answering)} polls of latencies: and namespace/{request.namespace}, "
                f"{poller.intervals} ticker intervals new on every node (one latency sample each)"
            ],
        )
