"""Helpers to run twin Aerospike clusters for tests and benchmarks driven by the official (blocking) client:
the twin's event loop runs in a background thread, and tests hand it coroutines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aerodeck.procs import free_port
from aerodeck.twin.aerospike import ClusterEndpoints
from aerodeck.twin.fleet import ClusterSpec, FleetFile, parse_fleet
from aerodeck.twin.latency import LatencyModel
from aerodeck.twin.runtime import ClusterRuntime, FleetRuntime, NodeRuntime, TwinClock
from aerodeck.versions import AerospikeVersion
from tests.loop_thread import LoopThread


def fleet_with(
    size: int = 3,
    version: str = "8.1.2.0",
    topology: str = "in-memory",
    time_scale: float = 3600.0,
    faults: list[dict[str, Any]] | None = None,
    latency_histograms: str = "sampled",
) -> FleetFile:
    """A one-cluster fleet ('twin-test' in k8s namespace 'aero-test', Aerospike namespace 'test')."""
    return parse_fleet(
        {
            "time_scale": time_scale,
            "clusters": [
                {
                    "name": "twin-test",
                    "namespace": "aero-test",
                    "labels": {"team": "qa", "tier": "staging", "topology": topology, "use_case": "cache"},
                    "size": size,
                    "image": f"aerospike/aerospike-server-enterprise:{version}",
                    "namespaces": [{"name": "test", "replication_factor": 2}],
                    "slo": {"read_p99_ms": 2, "write_p99_ms": 4, "min_tps": 1000},
                    "latency_histograms": latency_histograms,
                }
            ],
            "faults": faults or [],
        }
    )


def cluster_runtime(spec: ClusterSpec, clock: TwinClock) -> ClusterRuntime:
    """A cluster whose nodes are all down, each on its own free loopback port."""
    cluster = ClusterRuntime(spec=spec, clock=clock)
    for ordinal in range(spec.size):
        pod = f"{spec.name}-0-{ordinal}"
        cluster.nodes[pod] = NodeRuntime(
            pod_name=pod, node_id=f"0a{ordinal}", rack_id=0, port=free_port(), version=spec.version
        )
    return cluster


@dataclass
class TwinCluster:
    """One running twin cluster: its state lives on ``loop``; touch it only through ``loop.call``/``run``."""

    loop: LoopThread
    fleet: FleetRuntime
    cluster: ClusterRuntime
    endpoints: ClusterEndpoints

    @property
    def seed(self) -> tuple[str, int]:
        return "127.0.0.1", next(iter(self.cluster.nodes.values())).port

    def node(self, ordinal: int) -> NodeRuntime:
        return list(self.cluster.nodes.values())[ordinal]

    def stop_node(self, ordinal: int) -> None:
        self.loop.run(self.cluster.stop_node(self.node(ordinal).pod_name))

    def start_node(self, ordinal: int, version: str) -> None:
        self.loop.run(self.cluster.start_node(self.node(ordinal).pod_name, AerospikeVersion.parse(version)))

    def close(self) -> None:
        self.loop.run(self.endpoints.detach())


def start_twin_cluster(loop: LoopThread, fleet_file: FleetFile, model: LatencyModel) -> TwinCluster:
    """Build the fleet's first cluster, attach its endpoints and start every node."""

    async def build() -> TwinCluster:
        clock = TwinClock(fleet_file.time_scale)
        spec = fleet_file.clusters[0]
        fleet = FleetRuntime(fleet=fleet_file, clock=clock, faults=list(fleet_file.faults))
        cluster = cluster_runtime(spec, clock)
        fleet.clusters[(spec.namespace, spec.name)] = cluster
        endpoints = await ClusterEndpoints.attach(cluster, fleet, model)
        for pod, node in cluster.nodes.items():
            await cluster.start_node(pod, node.version)
        return TwinCluster(loop, fleet, cluster, endpoints)

    return loop.run(build())
