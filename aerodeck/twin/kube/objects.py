"""The Kubernetes objects of an AKO-managed fleet, built from the fleet file: the resource kinds the twin
serves, AerospikeCluster CRs (spec and status), pods, namespaces, the operator Deployment, the CRDs, events.
Shapes follow AKO 4.x (see docs/reference/aerospike-ako.md §1)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aerodeck.twin.fleet import ClusterSpec, OperatorSpec
from aerodeck.twin.kube.store import JsonObj, ResourceKind, now_iso

ASDB_GROUP = "asdb.aerospike.com"

AEROSPIKE_CLUSTER = ResourceKind(
    ASDB_GROUP, "v1", "aerospikeclusters", "AerospikeCluster", namespaced=True, status_subresource=True
)
AEROSPIKE_BACKUP_SERVICE = ResourceKind(
    ASDB_GROUP, "v1beta1", "aerospikebackupservices", "AerospikeBackupService", True, status_subresource=True
)
AEROSPIKE_BACKUP = ResourceKind(
    ASDB_GROUP, "v1beta1", "aerospikebackups", "AerospikeBackup", namespaced=True, status_subresource=True
)
AEROSPIKE_RESTORE = ResourceKind(
    ASDB_GROUP, "v1beta1", "aerospikerestores", "AerospikeRestore", namespaced=True, status_subresource=True
)
POD = ResourceKind("", "v1", "pods", "Pod", True, short_names=("po",), status_subresource=True)
NAMESPACE = ResourceKind("", "v1", "namespaces", "Namespace", False, short_names=("ns",), status_subresource=True)
EVENT = ResourceKind("", "v1", "events", "Event", True, short_names=("ev",))
DEPLOYMENT = ResourceKind("apps", "v1", "deployments", "Deployment", True, ("deploy",), status_subresource=True)
CRD = ResourceKind(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
    short_names=("crd", "crds"),
    status_subresource=True,
)

ASDB_KINDS = (AEROSPIKE_CLUSTER, AEROSPIKE_BACKUP_SERVICE, AEROSPIKE_BACKUP, AEROSPIKE_RESTORE)
ALL_KINDS = (*ASDB_KINDS, POD, NAMESPACE, EVENT, DEPLOYMENT, CRD)

# Labels AKO puts on every Aerospike pod, and the one its mutating webhook adds to the CR.
APP_LABEL = "app"
APP_VALUE = "aerospike-cluster"
CR_LABEL = "aerospike.com/cr"
RACK_LABEL = "aerospike.com/rack-id"
API_VERSION_LABEL = "aerospike.com/api-version"
SERVER_CONTAINER = "aerospike-server"
INIT_CONTAINER = "aerospike-init"
INIT_IMAGE = "docker.io/aerospike/aerospike-kubernetes-init:2.5.3"
OPERATOR_VERSION_ANNOTATION = "aerospike-kubernetes-operator/version"
OPERATOR_IMAGE_REPOSITORY = "aerospike/aerospike-kubernetes-operator"
OPERATOR_CONTAINER = "manager"
SERVICE_PORT = 3000
# aerodeck's own metadata: tenant labels and SLOs, readable through the API by inventory and validation.
AERODECK_PREFIX = "aerodeck.io/"


def operator_deployment_name(operator: OperatorSpec) -> str:
    return "aerospike-kubernetes-operator" if operator.install == "helm" else "aerospike-operator-controller-manager"


def operator_image(version: str) -> str:
    return f"{OPERATOR_IMAGE_REPOSITORY}:{version}"


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:40]


# ---------------------------------------------------------------------------------------------------- pods


@dataclass(frozen=True)
class PodSlot:
    """Where one Aerospike pod sits: AKO names it ``<cr>-<rackID>-<ordinal>`` and gives it node ID
    ``<rackID>a<ordinal>``."""

    cluster: str
    rack_id: int
    ordinal: int

    @property
    def name(self) -> str:
        return f"{self.cluster}-{self.rack_id}-{self.ordinal}"

    @property
    def node_id(self) -> str:
        return f"{self.rack_id}a{self.ordinal}"


def rack_ids(spec: ClusterSpec) -> list[int]:
    """AKO's default rack is 0 when no racks are configured; configured racks here are numbered from 1."""
    return [0] if spec.racks == 1 else list(range(1, spec.racks + 1))


def pod_slots(spec: ClusterSpec) -> list[PodSlot]:
    """Pods per rack as AKO spreads ``size`` over racks: equal shares, the first racks take the remainder."""
    racks = rack_ids(spec)
    share, extra = divmod(spec.size, len(racks))
    slots = []
    for index, rack_id in enumerate(racks):
        for ordinal in range(share + (1 if index < extra else 0)):
            slots.append(PodSlot(spec.name, rack_id, ordinal))
    return slots


@dataclass(frozen=True)
class PodState:
    """What the emulated kubelet shows for one pod at one moment."""

    image: str
    phase: str = "Running"  # Pending | Running
    ready: bool = True
    restart_count: int = 0
    waiting_reason: str | None = None  # PodInitializing, CrashLoopBackOff, ImagePullBackOff, ...
    terminating: bool = False


def pod_object(slot: PodSlot, namespace: str, state: PodState, port: int) -> JsonObj:
    now = now_iso()
    container_state: JsonObj
    if state.waiting_reason:
        container_state = {"waiting": {"reason": state.waiting_reason}}
        if state.waiting_reason in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"):
            container_state["waiting"]["message"] = _waiting_message(state)
    elif state.phase == "Running":
        container_state = {"running": {"startedAt": now}}
    else:
        container_state = {"waiting": {"reason": "ContainerCreating"}}
    ready = "True" if state.ready else "False"
    initialized = "False" if state.waiting_reason == "PodInitializing" else "True"
    metadata: JsonObj = {
        "name": slot.name,
        "namespace": namespace,
        "labels": {
            APP_LABEL: APP_VALUE,
            CR_LABEL: slot.cluster,
            RACK_LABEL: str(slot.rack_id),
            "statefulset.kubernetes.io/pod-name": slot.name,
        },
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": f"{slot.cluster}-{slot.rack_id}",
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{slot.cluster}-{slot.rack_id}")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if state.terminating:
        metadata["deletionTimestamp"] = now
        metadata["deletionGracePeriodSeconds"] = 30
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "hostname": slot.name,
            "subdomain": slot.cluster,
            "serviceAccountName": "aerospike-operator-controller-manager",
            "nodeName": "twin-node",
            "initContainers": [{"name": INIT_CONTAINER, "image": INIT_IMAGE}],
            "containers": [
                {
                    "name": SERVER_CONTAINER,
                    "image": state.image,
                    "ports": [{"name": "service", "containerPort": SERVICE_PORT, "hostPort": port}],
                    "readinessProbe": {
                        "tcpSocket": {"port": SERVICE_PORT},
                        "initialDelaySeconds": 2,
                        "periodSeconds": 5,
                    },
                }
            ],
        },
        "status": {
            "phase": state.phase,
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": initialized, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": SERVER_CONTAINER,
                    "image": state.image,
                    "imageID": "",
                    "ready": state.ready,
                    "started": state.phase == "Running" and state.waiting_reason is None,
                    "restartCount": state.restart_count,
                    "state": container_state,
                }
            ],
        },
    }


def _waiting_message(state: PodState) -> str:
    if state.waiting_reason == "CrashLoopBackOff":
        return f"back-off restarting failed container {SERVER_CONTAINER}"
    return f'Back-off pulling image "{state.image}"'


# ------------------------------------------------------------------------------------- AerospikeCluster CR


def _namespace_config(spec: ClusterSpec) -> list[JsonObj]:
    namespaces = []
    for ns in spec.namespaces:
        engine: JsonObj
        if ns.storage_engine == "memory":
            engine = {"type": "memory", "data-size": 1073741824}
        else:
            engine = {"type": "device", "devices": ["/dev/nvme0n1"], "filesize": 4294967296}
        namespaces.append({"name": ns.name, "replication-factor": ns.replication_factor, "storage-engine": engine})
    return namespaces


def _slo_annotations(spec: ClusterSpec) -> dict[str, str]:
    slo = spec.slo
    values: dict[str, float | None] = {
        "slo-read-p99-ms": slo.read_p99_ms,
        "slo-write-p99-ms": slo.write_p99_ms,
        "slo-read-p999-ms": slo.read_p999_ms,
        "slo-write-p999-ms": slo.write_p999_ms,
        "slo-min-tps": slo.min_tps,
        "slo-max-error-rate": slo.max_error_rate,
    }
    return {f"{AERODECK_PREFIX}{key}": f"{value:g}" for key, value in values.items() if value is not None}


def cluster_cr(spec: ClusterSpec) -> JsonObj:
    """The AerospikeCluster as the platform team applied it, after AKO's mutating webhook defaults."""
    racks = rack_ids(spec)
    rack_config: JsonObj = {"racks": [{"id": rack_id} for rack_id in racks]}
    if len(racks) > 1:
        rack_config["namespaces"] = [ns.name for ns in spec.namespaces]
    if spec.rolling_update_batch_size is not None:
        rack_config["rollingUpdateBatchSize"] = spec.rolling_update_batch_size
    labels = spec.labels
    return {
        "apiVersion": AEROSPIKE_CLUSTER.api_version,
        "kind": AEROSPIKE_CLUSTER.kind,
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": {
                API_VERSION_LABEL: "v1",
                f"{AERODECK_PREFIX}team": labels.team,
                f"{AERODECK_PREFIX}tier": str(labels.tier),
                f"{AERODECK_PREFIX}topology": str(labels.topology),
                f"{AERODECK_PREFIX}use-case": labels.use_case,
            },
            "annotations": _slo_annotations(spec),
            "finalizers": ["asdb.aerospike.com/storage-finalizer"],
        },
        "spec": {
            "size": spec.size,
            "image": spec.image,
            "maxUnavailable": 1,
            "podSpec": {"multiPodPerHost": True},
            "validationPolicy": {"skipWorkDirValidate": True},
            "rackConfig": rack_config,
            "aerospikeConfig": {
                "service": {
                    "feature-key-file": "/etc/aerospike/secret/features.conf",
                    "cluster-name": spec.name,
                },
                "network": {
                    "service": {"port": SERVICE_PORT},
                    "fabric": {"port": 3001},
                    "heartbeat": {"port": 3002},
                },
                "namespaces": _namespace_config(spec),
            },
        },
    }


def reconciled_status_spec(spec: JsonObj) -> JsonObj:
    """The copy of the spec that AKO writes into status after a full reconcile (``paused`` is not copied)."""
    copied: JsonObj = json.loads(json.dumps(spec))
    copied.pop("paused", None)
    return copied


def aerospike_config_hash(spec: JsonObj) -> str:
    """What AKO compares per pod to decide that an aerospikeConfig change needs a restart."""
    return _hash(spec.get("aerospikeConfig"))


def pod_status_entry(cr: JsonObj, slot: PodSlot, image: str, port: int) -> JsonObj:
    """One ``status.pods`` entry: the pod's access endpoint is its node's loopback port."""
    spec = cr["spec"]
    endpoint = f"127.0.0.1:{port}"
    return {
        "image": image,
        "initImage": INIT_IMAGE,
        "podIP": "127.0.0.1",
        "hostInternalIP": "127.0.0.1",
        "hostExternalIP": "127.0.0.1",
        "podPort": port,
        "servicePort": port,
        "aerospike": {
            "clusterName": cr["metadata"]["name"],
            "nodeID": slot.node_id,
            "rackID": slot.rack_id,
            "accessEndpoints": [endpoint],
            "alternateAccessEndpoints": [endpoint],
        },
        "initializedVolumes": [],
        "aerospikeConfigHash": aerospike_config_hash(spec),
        "networkPolicyHash": _hash(spec.get("aerospikeNetworkPolicy")),
        "podSpecHash": _hash(spec.get("podSpec")),
    }


def cluster_status(cr: JsonObj, phase: str, pods: dict[str, JsonObj]) -> JsonObj:
    name = cr["metadata"]["name"]
    status = reconciled_status_spec(cr["spec"])
    status.update(
        {
            "phase": phase,
            "selector": f"{APP_LABEL}={APP_VALUE},{CR_LABEL}={name}",
            "isReadinessProbeEnabled": True,
            "pods": pods,
        }
    )
    return status


# -------------------------------------------------------------------------------------- cluster-wide objects


def namespace_object(name: str) -> JsonObj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def operator_deployment(operator: OperatorSpec, version: str, replicas: int = 2) -> JsonObj:
    name = operator_deployment_name(operator)
    if operator.install == "helm":
        labels = {"app": name, "chart": "aerospike-kubernetes-operator", "release": name}
    else:
        labels = {"control-plane": "controller-manager"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": operator.namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": "aerospike-operator-controller-manager",
                    "containers": [
                        {
                            "name": OPERATOR_CONTAINER,
                            "image": operator_image(version),
                            "args": ["--leader-elect"],
                            "env": [
                                {"name": "WATCH_NAMESPACE", "value": "default,aerospike"},
                                {"name": "FAILED_POD_GRACE_PERIOD_SECONDS", "value": "60"},
                            ],
                            "ports": [{"containerPort": 9443, "name": "webhook-server"}],
                        }
                    ],
                },
            },
        },
        "status": deployment_status(replicas, replicas, replicas, observed_generation=1),
    }


def deployment_status(replicas: int, ready: int, updated: int, observed_generation: int) -> JsonObj:
    available = "True" if ready > 0 else "False"
    return {
        "observedGeneration": observed_generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "availableReplicas": ready,
        "unavailableReplicas": max(replicas - ready, 0),
        "conditions": [
            {"type": "Available", "status": available, "reason": "MinimumReplicasAvailable"},
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if updated == replicas == ready else "ReplicaSetUpdated",
            },
        ],
    }


_PRINTER_COLUMNS = [
    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
    {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
    {"name": "MultiPodPerHost", "type": "boolean", "jsonPath": ".spec.podSpec.multiPodPerHost"},
    {"name": "HostNetwork", "type": "boolean", "jsonPath": ".spec.podSpec.hostNetwork"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
]


def printer_columns(kind: ResourceKind) -> list[JsonObj]:
    """The CRD's additionalPrinterColumns (what ``kubectl get`` shows for the kind)."""
    if kind == AEROSPIKE_CLUSTER:
        return [dict(c) for c in _PRINTER_COLUMNS]
    return [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]


def crd_object(kind: ResourceKind, operator_version: str) -> JsonObj:
    subresources: JsonObj = {"status": {}}
    if kind == AEROSPIKE_CLUSTER:
        subresources["scale"] = {
            "specReplicasPath": ".spec.size",
            "statusReplicasPath": ".status.size",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.resource_name,
            "annotations": {
                OPERATOR_VERSION_ANNOTATION: operator_version,
                "controller-gen.kubebuilder.io/version": "v0.16.1",
            },
        },
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": kind.list_kind,
                "plural": kind.plural,
                "singular": kind.singular,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    "subresources": subresources,
                    "additionalPrinterColumns": printer_columns(kind),
                }
            ],
        },
        "status": {
            "acceptedNames": {"kind": kind.kind, "listKind": kind.list_kind, "plural": kind.plural},
            "storedVersions": [kind.version],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"},
            ],
        },
    }


def crd_objects(operator_version: str) -> list[JsonObj]:
    return [crd_object(kind, operator_version) for kind in ASDB_KINDS]


def event_object(
    involved: JsonObj,
    reason: str,
    message: str,
    event_type: str = "Normal",
    component: str = "aerospikeCluster-controller",
) -> JsonObj:
    """A core/v1 Event about ``involved`` (its namespace, kind, name and uid)."""
    meta = involved["metadata"]
    now = now_iso()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
    }


def namespaces_of(specs: Iterable[ClusterSpec], operator: OperatorSpec) -> list[str]:
    return sorted({operator.namespace, "default", *(spec.namespace for spec in specs)})
