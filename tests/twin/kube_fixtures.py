"""Shared helpers for tests of the twin's Kubernetes side: a :class:`KubeTwin` running on an asyncio loop in a
background thread (the official client and kubectl are blocking), a kubeconfig pointing at it, and polling
with deadlines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, config

from aerodeck.twin.fleet import FleetFile, parse_fleet
from aerodeck.twin.kube.api import KubeTwin
from aerodeck.twin.runtime import FleetRuntime, TwinClock
from tests.loop_thread import LoopThread

GROUP = "asdb.aerospike.com"
VERSION = "v1"
PLURAL = "aerospikeclusters"
IMAGE_REPO = "aerospike/aerospike-server-enterprise"


def cluster_entry(
    name: str,
    namespace: str = "aero-test",
    size: int = 3,
    version: str = "8.0.0.9",
    racks: int = 1,
    batch: int | None = None,
    team: str = "qa",
    tier: str = "staging",
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"team": team, "tier": tier, "topology": "in-memory", "use_case": "cache"},
        "size": size,
        "racks": racks,
        "image": f"{IMAGE_REPO}:{version}",
        "namespaces": [{"name": "test", "replication_factor": 2}],
        "slo": {"read_p99_ms": 2, "write_p99_ms": 4, "min_tps": 1000},
    }
    if batch is not None:
        entry["rolling_update_batch_size"] = batch
    return entry


def make_fleet(
    clusters: list[dict[str, Any]], faults: list[dict[str, Any]] | None = None, time_scale: float = 1200.0
) -> FleetFile:
    return parse_fleet({"time_scale": time_scale, "clusters": clusters, "faults": faults or []})


class TwinThread(LoopThread):
    """A KubeTwin served from a daemon thread's event loop; twin state is only touched on that loop."""

    timeout = 20.0

    def __init__(self, fleet: FleetFile, workdir: Path) -> None:
        super().__init__()
        self.runtime = FleetRuntime(fleet=fleet, clock=TwinClock(fleet.time_scale), faults=list(fleet.faults))
        self.twin: KubeTwin = self.call(lambda: KubeTwin(self.runtime))
        self.url = self.run(self.twin.start())
        self.kubeconfig = self.twin.write_kubeconfig(workdir / "kubeconfig")

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def close(self) -> None:
        self.run(self.twin.stop())
        self.stop()


@contextmanager
def running_twin(fleet: FleetFile, workdir: Path) -> Iterator[TwinThread]:
    """Start the twin, hand it over, always stop it."""
    twin = TwinThread(fleet, workdir)
    try:
        yield twin
    finally:
        twin.close()
