"""The validation tests' fixtures: their own fleet twin (`aerodeck twin serve` on tests/validation/fleet.yaml),
a real Prometheus scraping its exporter, and helpers to reach both."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aerospike
import pytest

from aerodeck.models import ClusterRef
from aerodeck.twin.exporter import ScrapeTarget, prometheus_scrape_config
from aerodeck.validation.models import CollectRequest, ProbeSettings, Source
from aerodeck.validation.sources.info_latency import info_each
from tests.prometheus_server import Prometheus, running_prometheus
from tests.twin_process import TwinProcess, start_twin
from tests.waiting import wait_until

FLEET = Path(__file__).parent / "fleet.yaml"
K8S_NAMESPACE = "aero-val"
CLUSTERS = ("v-pass", "v-inmem", "v-hybrid", "v-down", "v-flow", "v-cli")
SCRAPE_INTERVAL_S = 0.5


@dataclass
class ValidationTwin:
    process: TwinProcess

    @property
    def kubeconfig(self) -> Path:
        return self.process.kubeconfig

    def endpoints(self, cluster: str) -> list[str]:
        pods = self.process.cr(cluster, K8S_NAMESPACE)["status"]["pods"]
        return [endpoint for pod in pods.values() for endpoint in pod["aerospike"]["accessEndpoints"]]

    def collect_request(self, cluster: str, source: Source, duration_s: float = 2.0, **probe: Any) -> CollectRequest:
        return CollectRequest(
            source=source,
            cluster=ClusterRef(namespace=K8S_NAMESPACE, name=cluster),
            cluster_name=cluster,
            endpoints=self.endpoints(cluster),
            expected_nodes=3,
            namespace="test",
            duration_s=duration_s,
            probe=ProbeSettings(**{"rate": 1500.0, "concurrency": 2, **probe}),
            prometheus_step_s=SCRAPE_INTERVAL_S,
            run_id=f"test-{cluster}-{time.monotonic_ns()}",
        )

    def client(self, cluster: str) -> Any:
        hosts = [(e.rpartition(":")[0], int(e.rpartition(":")[2])) for e in self.endpoints(cluster)]
        return aerospike.client({"hosts": hosts, "policies": {"read": {"total_timeout": 2000}}}).connect()

    def _faults(self, method: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.process.state.control_url}/twin/v1/faults",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def add_fault(self, fault: dict[str, Any]) -> None:
        self._faults("POST", fault)

    def clear_faults(self) -> None:
        self._faults("DELETE")

    def nodes_answering(self, cluster: str) -> int:
        client = self.client(cluster)
        try:
            return len(info_each(client, "status"))
        finally:
            client.close()

    def whole(self, cluster: str) -> bool:
        return self.nodes_answering(cluster) == 3

    def reconciled(self, cluster: str) -> bool:
        return bool(self.process.cr(cluster, K8S_NAMESPACE).get("status", {}).get("phase") == "Completed")


@pytest.fixture(scope="session")
def validation_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValidationTwin]:
    running = start_twin(tmp_path_factory.mktemp("validation-twin"), fleet=FLEET)
    twin = ValidationTwin(running)
    try:
        for cluster in CLUSTERS:
            wait_until(partial(twin.reconciled, cluster), what=f"{cluster} reconciled")
        yield twin
    finally:
        running.stop()


@pytest.fixture
def faults(validation_twin: ValidationTwin) -> Iterator[ValidationTwin]:
    """The twin, with every fault a test adds cleared (and every node back) when it ends."""
    yield validation_twin
    validation_twin.clear_faults()
    for cluster in CLUSTERS:
        wait_until(partial(validation_twin.whole, cluster), what=f"{cluster} whole again")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, validation_twin: ValidationTwin) -> Iterator[Prometheus]:
    """Debian's Prometheus on a free port, scraping every test cluster's exporter twice a second."""
    directory = tmp_path_factory.mktemp("prometheus")
    address = validation_twin.process.state.control_url.removeprefix("http://")
    targets = [
        ScrapeTarget(job_name=f"aerospike-{name}", address=address, metrics_path=f"/metrics/{K8S_NAMESPACE}/{name}")
        for name in CLUSTERS
    ]
    with running_prometheus(directory, prometheus_scrape_config(targets, SCRAPE_INTERVAL_S)) as server:
        for name in CLUSTERS:
            wait_until(partial(server.query, f'aerospike_node_up{{cluster_name="{name}"}}'), what=f"{name} scraped")
        yield server
