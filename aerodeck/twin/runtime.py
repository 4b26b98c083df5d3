"""Live state of the twin's Aerospike clusters, shared by the AKO emulation, the wire-protocol nodes and
the exporter. Everything runs on one asyncio loop, so plain attributes need no locks."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aerodeck.twin.fleet import MAX_TICKER_INTERVAL_S, ClusterSpec, Fault, FleetFile
from aerodeck.versions import AerospikeVersion

PARTITIONS = 4096


class TwinClock:
    """Twin time runs ``scale`` times faster than real time (60: a minute of twin time per second)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._start = time.monotonic()

    def now(self) -> float:
        """Twin seconds since the twin started."""
        return (time.monotonic() - self._start) * self.scale

    async def sleep(self, twin_seconds: float) -> None:
        await asyncio.sleep(max(twin_seconds, 0.0) / self.scale)


@dataclass
class NamespaceTraffic:
    """Client operations one node served for one namespace since it last started: the exporter's
    ``client_*`` counters, and per-second counts behind the tps that ``latencies:`` reports."""

    read_success: int = 0
    read_not_found: int = 0
    read_error: int = 0
    read_timeout: int = 0
    write_success: int = 0
    write_error: int = 0
    write_timeout: int = 0
    delete_success: int = 0
    delete_not_found: int = 0
    # [whole real second (monotonic), reads, writes] for the most recent seconds (two of the longest ticker
    # intervals), newest last.
    per_second: deque[list[int]] = field(default_factory=lambda: deque(maxlen=2 * MAX_TICKER_INTERVAL_S + 2))


@dataclass
class NodeTraffic:
    """What a node served since it last started (reset by its wire endpoint on start): real client
    operations per namespace, plus the modelled tenant load integrated over real time."""

    client_connections: int = 0
    namespaces: dict[str, NamespaceTraffic] = field(default_factory=dict)
    tenant_reads: float = 0.0  # per namespace
    tenant_writes: float = 0.0
    tenant_integrated_at: float = field(default_factory=time.monotonic)


@dataclass
class NodeRuntime:
    """One Aerospike node (one pod's ``aerospike-server`` container)."""

    pod_name: str
    node_id: str  # AKO form, '<rackID>a<ordinal>' such as '0a0'
    rack_id: int
    port: int  # loopback port; stable across restarts, like a pod's access endpoint
    version: AerospikeVersion
    up: bool = False
    started_at: float = 0.0  # twin time of the last start
    traffic: NodeTraffic = field(default_factory=NodeTraffic)

    @property
    def node_name(self) -> str:
        """What the ``node`` info command prints: the node-id as upper-case hex without leading zeros."""
        return f"{int(self.node_id, 16):X}"


# Called with (cluster, node) when a node goes up or down so its TCP endpoint can listen or refuse.
NodeHook = Callable[["ClusterRuntime", NodeRuntime], Awaitable[None]]


@dataclass
class Record:
    bins: dict[str, object]
    generation: int
    void_time: int  # seconds since the Aerospike epoch (2010-01-01) or 0 for never


@dataclass
class ClusterRuntime:
    """One AerospikeCluster as the Aerospike nodes see it."""

    spec: ClusterSpec
    clock: TwinClock
    nodes: dict[str, NodeRuntime] = field(default_factory=dict)
    cluster_key: int = field(default_factory=lambda: random.getrandbits(48))
    cluster_generation: int = 1
    partition_generation: int = 1
    peers_generation: int = 1
    # Migrations after a membership change drain linearly over ``migration_seconds`` of twin time.
    migration_seconds: float = 60.0
    migrations_total: int = 0
    migrations_started_at: float = 0.0
    migrations_stuck: bool = False
    # One record store per cluster: replication is emulated by every node seeing the same data.
    records: dict[tuple[str, bytes], Record] = field(default_factory=dict)
    on_node_up: list[NodeHook] = field(default_factory=list)
    on_node_down: list[NodeHook] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def k8s_namespace(self) -> str:
        return self.spec.namespace

    def up_nodes(self) -> list[NodeRuntime]:
        return [n for n in self.nodes.values() if n.up]

    def _membership_changed(self) -> None:
        self.cluster_key = random.getrandbits(48)
        self.cluster_generation += 1
        self.partition_generation += 1
        self.peers_generation += 1
        if len(self.up_nodes()) > 1:
            # Rebalancing after a join or leave: a share of partitions must migrate.
            self.migrations_total = PARTITIONS // 2
            self.migrations_started_at = self.clock.now()

    @property
    def migrations_remaining(self) -> int:
        """Partitions still to migrate cluster-wide (never reaches 0 while migrations are stuck)."""
        if self.migrations_total == 0:
            return 0
        if self.migrations_stuck:
            return self.migrations_total
        done = (self.clock.now() - self.migrations_started_at) / self.migration_seconds
        remaining = int(self.migrations_total * (1.0 - done))
        if remaining <= 0:
            self.migrations_total = 0
            return 0
        return remaining

    async def stop_node(self, pod_name: str) -> None:
        node = self.nodes[pod_name]
        if not node.up:
            return
        node.up = False
        self._membership_changed()
        for hook in self.on_node_down:
            await hook(self, node)

    async def start_node(self, pod_name: str, version: AerospikeVersion) -> None:
        node = self.nodes[pod_name]
        if node.up:
            return
        node.version = version
        node.up = True
        node.started_at = self.clock.now()
        self._membership_changed()
        for hook in self.on_node_up:
            await hook(self, node)

    def cluster_stable(self) -> bool:
        """True when every node is up, in one cluster, with no migrations remaining."""
        return bool(self.nodes) and all(n.up for n in self.nodes.values()) and self.migrations_remaining == 0


@dataclass
class FleetRuntime:
    """Every cluster of the fleet, keyed by (k8s namespace, name)."""

    fleet: FleetFile
    clock: TwinClock
    clusters: dict[tuple[str, str], ClusterRuntime] = field(default_factory=dict)
    # Active fault profiles: those of the fleet file plus any set at run time (``aerodeck twin fault``).
    faults: list[Fault] = field(default_factory=list)

    def cluster(self, namespace: str, name: str) -> ClusterRuntime:
        return self.clusters[(namespace, name)]
