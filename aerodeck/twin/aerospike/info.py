"""Info commands (proto type 1) of one twin node, answered in the server's documented formats.

The node-level views here (statistics, namespace statistics, latency histograms, partition ownership) are
also what the exporter renders, so info and ``/metrics`` cannot disagree.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass

from aerodeck.twin.fleet import AerospikeNamespace
from aerodeck.twin.latency import LatencyModel, OpKind, tenant_load
from aerodeck.twin.runtime import PARTITIONS, ClusterRuntime, FleetRuntime, NamespaceTraffic, NodeRuntime
from aerodeck.versions import AerospikeVersion

EDITION = "Aerospike Enterprise Edition"
_NEW_ERRORS = AerospikeVersion(7, 2, 0, 0)  # info errors gained numeric codes and prose in 7.2
_RELEASE_COMMAND = AerospikeVersion(8, 1, 1, 0)
_FEATURES = (
    "batch-any;batch-index;blob-bits;cdt-list;cdt-map;cluster-stable;float;geo;peers;pipelining;"
    "pquery;pscans;query-show;relaxed-sc;replicas;replicas-all;replicas-master;truncate-namespace;udf"
)


@dataclass(frozen=True)
class NodeView:
    """One node as its info port and its exporter lines see the twin."""

    cluster: ClusterRuntime
    node: NodeRuntime
    fleet: FleetRuntime
    model: LatencyModel

    @property
    def new_errors(self) -> bool:
        return self.node.version >= _NEW_ERRORS

    def service(self) -> str:
        return f"127.0.0.1:{self.node.port}"

    def namespace(self, name: str) -> AerospikeNamespace | None:
        return next((ns for ns in self.cluster.spec.namespaces if ns.name == name), None)

    def up_nodes(self) -> list[NodeRuntime]:
        """Members of the cluster in succession order (the order partitions are dealt in)."""
        return sorted(self.cluster.up_nodes(), key=lambda n: int(n.node_id, 16))

    def traffic(self, ns: str) -> NamespaceTraffic:
        return self.node.traffic.namespaces.setdefault(ns, NamespaceTraffic())


def partition_id(digest: bytes) -> int:
    """The partition a record lives in: the low 12 bits of the digest's first two bytes, little-endian."""
    return int.from_bytes(digest[:2], "little") & (PARTITIONS - 1)


def effective_rf(view: NodeView, ns: AerospikeNamespace) -> int:
    return min(ns.replication_factor, len(view.cluster.up_nodes()))


def _position(view: NodeView) -> tuple[int, int] | None:
    """(this node's index among the members, member count), or None while it is not a member."""
    members = view.up_nodes()
    for index, member in enumerate(members):
        if member is view.node:
            return index, len(members)
    return None


# Partition p's replicas are the members at positions p, p+1 ... p+rf-1 (mod member count), so a node at
# position ``own`` holds replica r of p exactly when (own - p) % count == r.


def replica_bitmaps(view: NodeView, ns: AerospikeNamespace) -> list[str]:
    """Base64 of 4096-bit MSB-first bitmaps, one per replica index, of the partitions this node holds."""
    position = _position(view)
    if position is None:
        return []
    own, count = position
    bitmaps = []
    for replica in range(effective_rf(view, ns)):
        bitmap = bytearray(PARTITIONS // 8)
        for partition in range((own - replica) % count, PARTITIONS, count):
            bitmap[partition >> 3] |= 0x80 >> (partition & 7)
        bitmaps.append(base64.b64encode(bytes(bitmap)).decode())
    return bitmaps


def object_counts(view: NodeView, ns: AerospikeNamespace) -> tuple[int, int]:
    """(objects, master_objects) on this node: the records of partitions it holds a replica of."""
    position = _position(view)
    if position is None:
        return 0, 0
    own, count = position
    rf = effective_rf(view, ns)
    objects = master = 0
    for namespace, digest in view.cluster.records:
        if namespace == ns.name:
            replica = (own - partition_id(digest)) % count
            objects += replica < rf
            master += replica == 0
    return objects, master


def migrations_per_node(view: NodeView) -> int:
    """This node's share of the partitions the cluster still has to send (and as many to receive)."""
    members = len(view.cluster.up_nodes())
    return -(-view.cluster.migrations_remaining // members) if members else 0


def integrate_tenant_load(view: NodeView) -> None:
    """Advance the modelled tenant operations to now (per namespace, at the current share of the load)."""
    traffic, now = view.node.traffic, time.monotonic()
    load = tenant_load(view.cluster.spec, len(view.cluster.up_nodes()))
    elapsed = now - traffic.tenant_integrated_at
    traffic.tenant_reads += load.read_tps * elapsed
    traffic.tenant_writes += load.write_tps * elapsed
    traffic.tenant_integrated_at = now


def statistics(view: NodeView) -> dict[str, str]:
    cluster, node = view.cluster, view.node
    members = view.up_nodes()
    remaining = migrations_per_node(view)
    objects = sum(object_counts(view, ns)[0] for ns in cluster.spec.namespaces)
    return {
        "cluster_size": str(len(members)),
        "cluster_key": f"{cluster.cluster_key:X}",
        "cluster_generation": str(cluster.cluster_generation),
        "cluster_principal": members[-1].node_name if members else "0",
        "cluster_integrity": "true",
        "cluster_is_member": "true",
        "cluster_clock_skew_stop_writes_sec": "0",
        "cluster_clock_skew_ms": "0",
        "uptime": str(int(cluster.clock.now() - node.started_at)),
        "system_free_mem_pct": "82",
        "system_swapping": "false",
        "failed_best_practices": "false",
        "objects": str(objects),
        "tombstones": "0",
        "client_connections": str(node.traffic.client_connections),
        "migrate_allowed": "true",
        "migrate_partitions_remaining": str(2 * remaining),
    }


def namespace_statistics(view: NodeView, ns: AerospikeNamespace) -> dict[str, str]:
    integrate_tenant_load(view)
    objects, master = object_counts(view, ns)
    remaining = migrations_per_node(view)
    traffic, node_traffic = view.traffic(ns.name), view.node.traffic
    return {
        "ns_cluster_size": str(len(view.cluster.up_nodes())),
        "effective_replication_factor": str(effective_rf(view, ns)),
        "replication-factor": str(ns.replication_factor),
        "storage-engine": ns.storage_engine,
        "objects": str(objects),
        "master_objects": str(master),
        "prole_objects": str(objects - master),
        "tombstones": "0",
        "dead_partitions": "0",
        "unavailable_partitions": "0",
        "stop_writes": "false",
        "hwm_breached": "false",
        "clock_skew_stop_writes": "false",
        "data_used_pct": "0",
        "data_avail_pct": "100",
        "pending_quiesce": "false",
        "effective_is_quiesced": "false",
        "nodes_quiesced": "0",
        "migrate_tx_partitions_remaining": str(remaining),
        "migrate_rx_partitions_remaining": str(remaining),
        "client_read_success": str(traffic.read_success + int(node_traffic.tenant_reads)),
        "client_read_not_found": str(traffic.read_not_found),
        "client_read_error": str(traffic.read_error),
        "client_read_timeout": str(traffic.read_timeout),
        "client_write_success": str(traffic.write_success + int(node_traffic.tenant_writes)),
        "client_write_error": str(traffic.write_error),
        "client_write_timeout": str(traffic.write_timeout),
        "client_delete_success": str(traffic.delete_success),
        "client_delete_not_found": str(traffic.delete_not_found),
    }


@dataclass(frozen=True)
class Histogram:
    """One ``latencies:`` entry: ops/s over the last window and % of ops slower than 1, 2 ... 65536 ms."""

    name: str
    tps: float
    pct_over: tuple[float, ...]

    def render(self) -> str:
        return f"{self.name}:msec,{self.tps:.1f}," + ",".join(f"{pct:.2f}" for pct in self.pct_over)


def client_ops(traffic: NamespaceTraffic, op: OpKind, start: int, end: int) -> int:
    """Real client operations served in the whole monotonic seconds [start, end)."""
    column = 1 if op is OpKind.READ else 2
    return sum(row[column] for row in traffic.per_second if start <= row[0] < end)


def histograms(view: NodeView) -> list[Histogram]:
    """This node's histograms of its last complete ticker interval: the tenants' modelled operations plus
    the real client operations of that interval, as a sample drawn from the latency model (or, for a cluster
    with exact histograms, the model's distribution itself)."""
    spec = view.cluster.spec
    load = tenant_load(spec, len(view.cluster.up_nodes()))
    ticker = spec.ticker_interval_s
    interval = int(time.monotonic()) // ticker - 1  # intervals are aligned to whole seconds on every node
    start = interval * ticker
    result = []
    for ns in spec.namespaces:
        for op, modelled_tps in ((OpKind.READ, load.read_tps), (OpKind.WRITE, load.write_tps)):
            name = f"{{{ns.name}}}-{op.value}"
            real_ops = client_ops(view.traffic(ns.name), op, start, start + ticker)
            distribution = view.model.distribution(view.node.version, spec.labels.topology, op, view.fleet.faults)
            if spec.latency_histograms == "exact":
                result.append(Histogram(name, modelled_tps + real_ops / ticker, distribution.pct_over()))
                continue
            rng = view.model.interval_rng(f"{spec.namespace}/{spec.name}/{view.node.pod_name}/{name}", interval)
            ops = int(rng.poisson(modelled_tps * ticker)) + real_ops
            result.append(Histogram(name, ops / ticker, distribution.sampled_pct_over(ops, rng)))
    return result


def _latencies(view: NodeView, params: dict[str, str]) -> str:
    rendered = {h.name: h.render() for h in histograms(view)}
    wanted = params.get("hist")
    if wanted is not None:
        return rendered.get(wanted, f"{wanted}:")
    entries = ["batch-index:"]
    for ns in view.cluster.spec.namespaces:
        entries += [rendered[f"{{{ns.name}}}-read"], rendered[f"{{{ns.name}}}-write"], f"{{{ns.name}}}-udf:"]
    return ";".join(entries)


def _error(view: NodeView, code: int, message: str, legacy: str) -> str:
    return f"ERROR:{code}:{message}" if view.new_errors else f"ERROR::{legacy}"


def _cluster_stable(view: NodeView, params: dict[str, str]) -> str:
    cluster = view.cluster
    size_text = params.get("size")
    if size_text is not None and not (size_text.isdigit() and int(size_text) > 0):
        return _error(view, 4, "bad size", "bad-size")
    ignore_text = params.get("ignore-migrations", "false")
    if ignore_text not in ("true", "false"):
        return _error(view, 4, "bad ignore migrations", "bad-ignore-migrations")
    ns_name = params.get("namespace")
    if ns_name is not None and view.namespace(ns_name) is None:
        return _error(view, 20, "namespace not found on node", "unknown-namespace")
    if size_text is not None and int(size_text) != len(cluster.up_nodes()):
        return _error(view, 7, "cluster not specified size", "cluster-not-specified-size")
    if ignore_text == "false" and cluster.migrations_remaining > 0:
        return _error(view, 7, "unstable cluster", "unstable-cluster")
    return f"{cluster.cluster_key:X}"


def _peers(view: NodeView) -> str:
    peers = ",".join(
        f"[{peer.node_name},,[127.0.0.1:{peer.port}]]" for peer in view.up_nodes() if peer is not view.node
    )
    return f"{view.cluster.peers_generation},,[{peers}]"


def _replicas(view: NodeView, with_regime: bool) -> str:
    entries = []
    for ns in view.cluster.spec.namespaces:
        regime = "0," if with_regime else ""
        bitmaps = replica_bitmaps(view, ns)
        entries.append(f"{ns.name}:{regime}{len(bitmaps)}," + ",".join(bitmaps))
    return ";".join(entries)


def _namespace(view: NodeView, name: str) -> str:
    ns = view.namespace(name)
    if ns is None:
        return "ERROR:20:namespace not found" if view.new_errors else "type=unknown"
    return _kv(namespace_statistics(view, ns))


def _kv(stats: dict[str, str]) -> str:
    return ";".join(f"{key}={value}" for key, value in stats.items())


def _release(view: NodeView) -> str:
    if view.node.version < _RELEASE_COMMAND:
        return "ERROR:4:unrecognized command"
    return f"edition={EDITION};version={view.node.version};os=linux;arch=x86_64;sha=twin"


Handler = Callable[[NodeView, str, dict[str, str]], str]

# name -> handler(view, path argument after '/', parameters after ':')
_COMMANDS: dict[str, Handler] = {
    "build": lambda v, a, p: str(v.node.version),
    "version": lambda v, a, p: f"{EDITION} build {v.node.version}",
    "edition": lambda v, a, p: EDITION,
    "release": lambda v, a, p: _release(v),
    "node": lambda v, a, p: v.node.node_name,
    "status": lambda v, a, p: "ok",
    "cluster-name": lambda v, a, p: v.cluster.name,
    "namespaces": lambda v, a, p: ";".join(ns.name for ns in v.cluster.spec.namespaces),
    "namespace": lambda v, a, p: _namespace(v, a),
    "statistics": lambda v, a, p: _kv(statistics(v)),
    "cluster-stable": lambda v, a, p: _cluster_stable(v, p),
    "latencies": lambda v, a, p: _latencies(v, p),
    "features": lambda v, a, p: _FEATURES,
    "partition-generation": lambda v, a, p: str(v.cluster.partition_generation),
    "peers-generation": lambda v, a, p: str(v.cluster.peers_generation),
    "rebalance-generation": lambda v, a, p: str(v.cluster.cluster_generation),
    "peers-clear-std": lambda v, a, p: _peers(v),
    "replicas": lambda v, a, p: _replicas(v, with_regime=True),
    "replicas-all": lambda v, a, p: _replicas(v, with_regime=False),
    "service-clear-std": lambda v, a, p: v.service(),
    "user-agent-set": lambda v, a, p: "ok",
}
# What an empty request returns (the deprecated "info summary").
_SUMMARY = ("node", "build", "edition", "version", "statistics", "cluster-name")


def answer(view: NodeView, line: str) -> str:
    """The value for one request line ``name[/arg][:k=v;k=v]``."""
    head, _, raw_params = line.partition(":")
    name, _, argument = head.partition("/")
    handler = _COMMANDS.get(name)
    if handler is None:
        return "ERROR:4:unrecognized command"
    params = dict(item.partition("=")[::2] for item in raw_params.split(";") if item)
    return handler(view, argument, params)


def handle_info(view: NodeView, body: bytes) -> bytes:
    """Response body for an info request body: one ``<request line>\\t<value>\\n`` per line."""
    lines = [line for line in body.decode("utf-8", "replace").split("\n") if line] or list(_SUMMARY)
    return "".join(f"{line}\t{answer(view, line)}\n" for line in lines).encode()
