"""aerospike-prometheus-exporter output for a twin cluster, built from the same node views that answer info
commands (so ``/metrics`` and info always agree), plus the aiohttp endpoint and a Prometheus scrape config.

Latency families follow the exporter: typed gauge, ``_bucket{le}`` = tps x (1 - pct_over/100) parsed from
the node's ``latencies:`` text, ``_count`` = tps, so ``histogram_quantile`` applies without ``rate()``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from aerodeck.twin.aerospike.info import NodeView, histograms, namespace_statistics, statistics
from aerodeck.twin.latency import BUCKET_BOUNDS_MS, LatencyModel
from aerodeck.twin.runtime import ClusterRuntime, FleetRuntime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Info values that are identifiers, not measurements.
_NOT_METRICS = {"cluster_key", "cluster_principal", "storage-engine"}
_COUNTERS = {"cluster_generation"}


def _metric_name(context: str, stat: str) -> str:
    return f"aerospike_{context}_" + stat.replace("-", "_").replace(".", "_").replace(" ", "_")


def _value(text: str) -> float | None:
    if text in ("true", "false"):
        return 1.0 if text == "true" else 0.0
    try:
        return float(text)
    except ValueError:
        return None


def _labels(labels: dict[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:.10g}"


class _Families:
    """Samples grouped per metric family: the text format wants each family in one block."""

    def __init__(self) -> None:
        self.samples: dict[str, list[str]] = defaultdict(list)
        self.types: dict[str, str] = {}

    def add(self, family: str, kind: str, labels: dict[str, str], value: float, suffix: str = "") -> None:
        self.types.setdefault(family, kind)
        self.samples[family].append(f"{family}{suffix}{_labels(labels)} {_number(value)}")

    def add_stats(self, context: str, stats: dict[str, str], labels: dict[str, str]) -> None:
        for stat, text in stats.items():
            value = _value(text)
            if stat in _NOT_METRICS or value is None:
                continue
            counter = stat in _COUNTERS or (stat.startswith("client_") and stat != "client_connections")
            self.add(_metric_name(context, stat), "counter" if counter else "gauge", labels, value)

    def render(self) -> str:
        lines = []
        for family, samples in self.samples.items():
            lines.append(f"# TYPE {family} {self.types[family]}")
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def _add_latencies(families: _Families, view: NodeView, base: dict[str, str]) -> None:
    for histogram in histograms(view):
        # Parse the rendered entry, as the exporter parses `latencies:`: same rounding, same numbers.
        name, _, data = histogram.render().partition(":")
        unit, tps_text, *pct_texts = data.split(",")
        ns, _, hist = name.removeprefix("{").partition("}-")
        family = f"aerospike_latencies_{hist.replace('-', '_')}_{'ms' if unit == 'msec' else 'us'}"
        tps = float(tps_text)
        labels = {**base, "ns": ns}
        for bound, pct_text in zip(BUCKET_BOUNDS_MS, pct_texts, strict=True):
            families.add(family, "gauge", {**labels, "le": str(bound)}, tps * (1 - float(pct_text) / 100), "_bucket")
        families.add(family, "gauge", {**labels, "le": "+Inf"}, tps, "_bucket")
        families.add(family, "gauge", labels, tps, "_count")


def render_cluster_metrics(cluster: ClusterRuntime, fleet: FleetRuntime, model: LatencyModel | None = None) -> str:
    """The exporter text for every node of ``cluster``; a down node shows only ``aerospike_node_up 0``.
    The latency distributions do not depend on the model's seed, so the default model will do."""
    model = model or LatencyModel()
    families = _Families()
    for node in sorted(cluster.nodes.values(), key=lambda n: int(n.node_id, 16)):
        view = NodeView(cluster, node, fleet, model)
        base = {"cluster_name": cluster.name, "service": view.service()}
        up_labels = {"build": str(node.version), "cluster_name": cluster.name, "node_id": node.node_name}
        families.add("aerospike_node_up", "gauge", {**up_labels, "service": view.service()}, float(node.up))
        if not node.up:
            continue
        families.add_stats("node_stats", statistics(view), base)
        for ns in cluster.spec.namespaces:
            ns_labels = {**base, "ns": ns.name, "storage_engine": ns.storage_engine}
            families.add_stats("namespace", namespace_statistics(view, ns), ns_labels)
        _add_latencies(families, view, base)
    return families.render()


def metrics_app(fleet: FleetRuntime, model: LatencyModel | None = None) -> web.Application:
    """An aiohttp app serving ``/metrics/{k8s namespace}/{cluster}`` for every cluster of the fleet."""

    async def handler(request: web.Request) -> web.Response:
        key = (request.match_info["namespace"], request.match_info["name"])
        cluster = fleet.clusters.get(key)
        if cluster is None:
            raise web.HTTPNotFound(text=f"no cluster {key[0]}/{key[1]} in the twin")
        body = render_cluster_metrics(cluster, fleet, model)
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics/{namespace}/{name}", handler)
    return app


class ScrapeTarget(BaseModel):
    """One cluster's exporter endpoint as Prometheus should scrape it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    address: str = Field(pattern=r"^[^/\s]+:\d+$")  # host:port
    metrics_path: str = Field(pattern=r"^/\S*$")
    labels: dict[str, str] = Field(default_factory=dict)


def scrape_targets(clusters: Iterable[ClusterRuntime], address: str) -> list[ScrapeTarget]:
    """Targets for :func:`metrics_app` served at ``address``, one job per cluster."""
    return [
        ScrapeTarget(
            job_name=f"aerospike-{cluster.k8s_namespace}-{cluster.name}",
            address=address,
            metrics_path=f"/metrics/{cluster.k8s_namespace}/{cluster.name}",
            labels={"k8s_namespace": cluster.k8s_namespace, "aerospike_cluster": cluster.name},
        )
        for cluster in clusters
    ]


def prometheus_scrape_config(targets: Iterable[ScrapeTarget], scrape_interval_s: float = 15.0) -> str:
    """A prometheus.yml scraping ``targets`` (Prometheus durations are whole units, so milliseconds)."""
    interval_ms = max(int(scrape_interval_s * 1000), 1)
    config = {
        "global": {
            "scrape_interval": f"{interval_ms}ms",
            "scrape_timeout": f"{min(interval_ms, 10_000)}ms",  # may not exceed the interval
            "evaluation_interval": f"{interval_ms}ms",
        },
        "scrape_configs": [
            {
                "job_name": target.job_name,
                "metrics_path": target.metrics_path,
                "static_configs": [{"targets": [target.address], "labels": target.labels}],
            }
            for target in targets
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)
