"""The fleet as the Kubernetes API shows it: every AerospikeCluster with version, phase, pods and health."""

from __future__ import annotations

from collections import defaultdict
from enum import StrEnum
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from aerodeck.errors import BadInput, OperationFailed, Unreachable
from aerodeck.kube import names
from aerodeck.kube.clusters import cluster_view
from aerodeck.models import SLO, Model


class Health(StrEnum):
    HEALTHY = "healthy"
    ROLLING = "rolling"
    ERROR = "error"
    PAUSED = "paused"
    DEGRADED = "degraded"  # AKO is done but pods are not all ready


class InventoryRow(Model):
    namespace: str
    name: str
    team: str | None
    tier: str | None
    topology: str | None
    use_case: str | None
    version: str | None
    image: str
    phase: str | None
    size: int
    ready_pods: int
    pods_by_image: dict[str, int]
    slo: SLO | None
    health: Health


def _health(phase: str | None, paused: bool, converged: bool, ready: int, size: int) -> Health:
    if paused:
        return Health.PAUSED
    if phase == "Error":
        return Health.ERROR
    if not converged:
        return Health.ROLLING
    return Health.HEALTHY if ready >= size else Health.DEGRADED


def _ready_pods_by_cluster(core: client.CoreV1Api) -> dict[tuple[str, str], int]:
    ready: dict[tuple[str, str], int] = defaultdict(int)
    for pod in core.list_pod_for_all_namespaces(label_selector=names.POD_CR_LABEL).items:
        meta = pod.metadata
        if meta is None or meta.namespace is None or not meta.labels:
            continue
        conditions = (pod.status.conditions or []) if pod.status else []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            ready[(meta.namespace, meta.labels[names.POD_CR_LABEL])] += 1
    return ready


def read_inventory(api: client.ApiClient, label_selector: str | None = None) -> list[InventoryRow]:
    """Every AerospikeCluster (optionally filtered by a label selector), sorted by namespace and name."""
    try:
        listed = client.CustomObjectsApi(api).list_cluster_custom_object(
            names.ASDB_GROUP,
            names.ASDB_VERSION,
            names.AEROSPIKE_CLUSTERS,
            label_selector=label_selector or "",
        )
        ready = _ready_pods_by_cluster(client.CoreV1Api(api))
    except ApiException as exc:
        if exc.status == 400:
            raise BadInput(f"invalid label selector {label_selector!r}: {exc.reason}") from exc
        raise OperationFailed(
            f"the Kubernetes API refused to list AerospikeClusters ({exc.status} {exc.reason}); "
            "check that AKO's CRDs are installed and the identity may list them"
        ) from exc
    except HTTPError as exc:
        raise Unreachable(
            f"cannot reach the Kubernetes API at {api.configuration.host} ({type(exc).__name__}); "
            "start the twin with `aerodeck up` or fix AERODECK_KUBECONFIG"
        ) from exc
    rows = []
    for item in cast(dict[str, Any], listed).get("items", []):
        view = cluster_view(item)
        ready_pods = ready.get((view.ref.namespace, view.ref.name), 0)
        rows.append(
            InventoryRow(
                namespace=view.ref.namespace,
                name=view.ref.name,
                team=view.team,
                tier=view.tier,
                topology=view.topology,
                use_case=view.use_case,
                version=str(view.version) if view.version else None,
                image=view.spec_image,
                phase=view.phase,
                size=view.size,
                ready_pods=ready_pods,
                pods_by_image=view.pods_by_image(),
                slo=view.slo,
                health=_health(view.phase, view.paused, view.converged, ready_pods, view.size),
            )
        )
    return sorted(rows, key=lambda row: (row.namespace, row.name))
