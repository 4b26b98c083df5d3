"""Aerospike side of a health gate: ask every node, through the official client, whether the cluster is
one stable cluster with all its nodes, no migrations, no dead or unavailable partitions, no stop-writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aerospike
from aerospike import exception as aerospike_errors
from pydantic import Field
from temporalio import activity

from aerodeck.kube.clusters import ClusterView
from aerodeck.models import Model

CONNECT_TIMEOUT_MS = 3000


class HealthReport(Model):
    healthy: bool
    problems: list[str] = Field(default_factory=list)
    nodes: int = 0
    expected_nodes: int = 0
    cluster_keys: list[str] = Field(default_factory=list)
    builds: dict[str, str] = Field(default_factory=dict)  # node name -> build
    migrations_remaining: int = 0
    dead_partitions: int = 0
    unavailable_partitions: int = 0
    stop_writes: bool = False


def parse_kv(text: str) -> dict[str, str]:
    """``key=value;key=value`` as info commands print it."""
    return dict(part.split("=", 1) for part in text.strip().split(";") if "=" in part)


def _value(response: str) -> str:
    """The value of an info response: ``<command>\\t<value>\\n``."""
    return response.split("\t", 1)[1].strip() if "\t" in response else response.strip()


@contextmanager
def connected(endpoints: list[str]) -> Iterator[Any]:
    hosts = []
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        hosts.append((host.strip("[]"), int(port)))
    client = aerospike.client(
        {"hosts": hosts, "policies": {"timeout": CONNECT_TIMEOUT_MS}, "timeout": CONNECT_TIMEOUT_MS}
    ).connect()
    try:
        yield client
    finally:
        client.close()


def _info_all(client: Any, command: str) -> dict[str, str]:
    answers: dict[str, str] = {}
    for node, (error, response) in client.info_all(command).items():
        answers[node] = f"ERROR:{error}" if error else _value(response or "")
    return answers


def assess(view: ClusterView) -> HealthReport:
    """The health of one cluster as its nodes report it; problems are evidence, never exceptions."""
    report = HealthReport(healthy=False, expected_nodes=view.size)
    if not view.access_endpoints:
        report.problems.append("no access endpoints in status.pods: AKO has not reported the pods yet")
        return report
    try:
        with connected(view.access_endpoints) as client:
            builds = _info_all(client, "build")
            try:
                stable = _info_all(client, f"cluster-stable:size={view.size};ignore-migrations=false")
            except aerospike_errors.AerospikeError as exc:  # the client raises on a node's ERROR answer
                stable = {"cluster": f"ERROR:{exc.msg or type(exc).__name__}"}
            stats = {node: parse_kv(text) for node, text in _info_all(client, "statistics").items()}
            ns_stats = [
                parse_kv(text)
                for ns in view.aerospike_namespaces
                for text in _info_all(client, f"namespace/{ns}").values()
            ]
    except aerospike_errors.AerospikeError as exc:
        report.problems.append(f"cannot query the nodes ({exc.msg or type(exc).__name__})")
        return report
    report.nodes = len(builds)
    report.builds = builds
    if report.nodes < view.size:
        report.problems.append(f"{report.nodes} of {view.size} nodes answer")
    keys = sorted(set(stable.values()))
    report.cluster_keys = keys
    if any(key.startswith("ERROR") for key in keys):
        report.problems.append("cluster-stable: " + "; ".join(k for k in keys if k.startswith("ERROR")))
    elif len(keys) != 1:
        report.problems.append(f"nodes disagree on the cluster key ({', '.join(keys)}): split cluster")
    report.migrations_remaining = sum(int(s.get("migrate_partitions_remaining", 0)) for s in stats.values())
    if report.migrations_remaining:
        report.problems.append(f"{report.migrations_remaining} partitions still migrating")
    report.dead_partitions = sum(int(s.get("dead_partitions", 0)) for s in ns_stats)
    report.unavailable_partitions = sum(int(s.get("unavailable_partitions", 0)) for s in ns_stats)
    report.stop_writes = any(s.get("stop_writes") == "true" for s in ns_stats)
    if report.dead_partitions or report.unavailable_partitions:
        report.problems.append(
            f"{report.dead_partitions} dead and {report.unavailable_partitions} unavailable partitions"
        )
    if report.stop_writes:
        report.problems.append("stop_writes is set on a namespace")
    report.healthy = not report.problems
    return report


@activity.defn
def check_cluster_health(view: ClusterView) -> HealthReport:
    return assess(view)
