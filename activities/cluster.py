"""Kubernetes side of a change: read an AerospikeCluster, patch its image, pause it, follow AKO.

Activities are idempotent: a patch is a desired state with a precondition, so a retry after a worker
crash finds the change already made and does nothing twice."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any, Literal, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import Field
from temporalio import activity
from temporalio.exceptions import ApplicationError
from urllib3.exceptions import HTTPError

from aerodeck.errors import AerodeckError
from aerodeck.kube import names
from aerodeck.kube.clusters import ClusterView, cluster_view
from aerodeck.models import ClusterRef, Model
from aerodeck.versions import AerospikeVersion, VersionError

# Container waiting reasons AKO treats as a failed pod (pkg/utils/pod.go checkContainerFailures).
FAILED_WAITING_REASONS = ("ErrImagePull", "ImagePullBackOff", "ImageInspectError", "RegistryUnavailable")


class PodState(Model):
    name: str
    image: str
    ready: bool
    waiting_reason: str | None = None
    restarts: int = 0


class ClusterSnapshot(Model):
    view: ClusterView
    operator_version: str | None
    pods: list[PodState]
    warnings: list[str] = Field(default_factory=list)  # recent Warning events: "reason: message"


class ImagePatch(Model):
    cluster: ClusterRef
    expected_image: str  # the precondition: what spec.image must be now
    target_image: str
    config_change: dict[str, Any] | None = None


class PatchOutcome(Model):
    applied: bool  # False: the spec already had the target (a retried or repeated patch)
    image: str
    resource_version: str


class PauseRequest(Model):
    cluster: ClusterRef
    paused: bool


class ProgressQuery(Model):
    cluster: ClusterRef
    target_image: str
    known_on_target: int
    error_persist_s: float
    deadline_s: float
    poll_interval_s: float


class ProgressReport(Model):
    outcome: Literal["progress", "converged", "failed", "deadline"]
    on_target: int
    size: int
    phase: str | None
    pods_on_target: list[str]
    waiting_reasons: dict[str, str] = Field(default_factory=dict)
    message: str = ""


def _bad_input(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def _api_error(exc: ApiException, cluster: ClusterRef, doing: str) -> Exception:
    """Map an API answer to a typed error: bad input is final, conflicts and 5xx are retried."""
    if exc.status == 404:
        return _bad_input(
            f"AerospikeCluster {cluster} not found; check the namespace and name (`aerodeck fleet`)",
            "ClusterNotFound",
        )
    if exc.status in (400, 403, 422):
        return _bad_input(f"the Kubernetes API rejected {doing} on {cluster}: {_reason(exc)}", "Rejected")
    return ApplicationError(f"{doing} on {cluster} got {exc.status} {exc.reason}; retrying", type="Transient")


def _reason(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


class ClusterActivities:
    """Activities bound to one Kubernetes API client (sync: run in the worker's thread pool)."""

    def __init__(self, connect: Callable[[], client.ApiClient]) -> None:
        self._connect = connect  # lazily: a worker without Kubernetes settings still serves other work

    @cached_property
    def _api(self) -> client.ApiClient:
        try:
            return self._connect()
        except AerodeckError as exc:
            raise _bad_input(str(exc), "KubernetesNotConfigured") from exc

    @property
    def _custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self._api)

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._api)

    @property
    def _apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self._api)

    def _get_cr(self, cluster: ClusterRef) -> dict[str, Any]:
        try:
            obj = self._custom.get_namespaced_custom_object(
                names.ASDB_GROUP,
                names.ASDB_VERSION,
                cluster.namespace,
                names.AEROSPIKE_CLUSTERS,
                cluster.name,
            )
        except ApiException as exc:
            raise _api_error(exc, cluster, "reading the cluster") from exc
        except HTTPError as exc:
            raise ApplicationError(f"Kubernetes API unreachable: {exc}", type="Transient") from exc
        return cast(dict[str, Any], obj)

    def _pods(self, cluster: ClusterRef) -> list[PodState]:
        listed = self._core.list_namespaced_pod(
            cluster.namespace, label_selector=f"{names.POD_CR_LABEL}={cluster.name}"
        )
        pods = []
        for pod in listed.items:
            statuses = (pod.status.container_statuses or []) if pod.status else []
            server = next((c for c in statuses if c.name == names.SERVER_CONTAINER), None)
            waiting = server.state.waiting.reason if server and server.state and server.state.waiting else None
            pods.append(
                PodState(
                    name=pod.metadata.name if pod.metadata and pod.metadata.name else "?",
                    image=server.image if server else "",
                    ready=bool(server and server.ready),
                    waiting_reason=waiting,
                    restarts=server.restart_count if server else 0,
                )
            )
        return sorted(pods, key=lambda p: p.name)

    def _warnings(self, cluster: ClusterRef) -> list[str]:
        events = self._core.list_namespaced_event(
            cluster.namespace, field_selector=f"involvedObject.name={cluster.name}"
        ).items
        warnings = [e for e in events if e.type == "Warning"]
        return [f"{e.reason}: {e.message}" for e in warnings[-5:]]

    def _operator_version(self) -> str | None:
        for deployment in self._apps.list_deployment_for_all_namespaces().items:
            pod_spec = deployment.spec.template.spec if deployment.spec else None
            containers = pod_spec.containers if pod_spec else []
            for container in containers or []:
                repository, _, tag = (container.image or "").rpartition(":")
                if repository.endswith("aerospike-kubernetes-operator") and tag:
                    return tag
        return None

    @activity.defn
    def read_cluster(self, cluster: ClusterRef) -> ClusterSnapshot:
        """The cluster's spec and status, its pods, recent warnings and the installed operator version."""
        view = cluster_view(self._get_cr(cluster))
        try:
            return ClusterSnapshot(
                view=view,
                operator_version=self._operator_version(),
                pods=self._pods(cluster),
                warnings=self._warnings(cluster),
            )
        except ApiException as exc:
            raise _api_error(exc, cluster, "reading pods and events") from exc

    @activity.defn
    def patch_cluster_image(self, patch: ImagePatch) -> PatchOutcome:
        """Set spec.image (and config) if spec.image is still the expected one; idempotent on retry."""
        try:
            AerospikeVersion.from_image(patch.target_image)
        except VersionError as exc:
            raise _bad_input(str(exc), "BadVersion") from exc
        obj = self._get_cr(patch.cluster)
        spec, meta = obj.get("spec", {}), obj["metadata"]
        if spec.get("image") == patch.target_image:
            return PatchOutcome(applied=False, image=patch.target_image, resource_version=meta["resourceVersion"])
        if spec.get("image") != patch.expected_image:
            raise _bad_input(
                f"{patch.cluster} spec.image is {spec.get('image')!r}, expected {patch.expected_image!r}: "
                "someone else changed the cluster; aerodeck will not overwrite it",
                "ConcurrentChange",
            )
        body: dict[str, Any] = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "spec": {"image": patch.target_image},
        }
        if patch.config_change is not None:
            body["spec"]["aerospikeConfig"] = patch.config_change
        try:
            patched = self._custom.patch_namespaced_custom_object(
                names.ASDB_GROUP,
                names.ASDB_VERSION,
                patch.cluster.namespace,
                names.AEROSPIKE_CLUSTERS,
                patch.cluster.name,
                body,
            )
        except ApiException as exc:
            # 409: the object moved on since we read it (status updates do that); re-read on retry.
            raise _api_error(exc, patch.cluster, "patching spec.image") from exc
        patched_meta = cast(dict[str, Any], patched)["metadata"]
        return PatchOutcome(applied=True, image=patch.target_image, resource_version=patched_meta["resourceVersion"])

    @activity.defn
    def set_cluster_paused(self, request: PauseRequest) -> None:
        """spec.paused freezes AKO's reconcile of this cluster; idempotent."""
        try:
            self._custom.patch_namespaced_custom_object(
                names.ASDB_GROUP,
                names.ASDB_VERSION,
                request.cluster.namespace,
                names.AEROSPIKE_CLUSTERS,
                request.cluster.name,
                {"spec": {"paused": True if request.paused else None}},
            )
        except ApiException as exc:
            raise _api_error(exc, request.cluster, "setting spec.paused") from exc

    @activity.defn
    def await_rollout_progress(self, query: ProgressQuery) -> ProgressReport:
        """Follow AKO until a pod reaches the target, the cluster converges, Error persists or the deadline.

        Error flaps while AKO retries, so it fails the rollout only after persisting, without progress,
        for ``error_persist_s``."""
        started = time.monotonic()
        error_since: float | None = None
        while True:
            obj = self._get_cr(query.cluster)
            view = cluster_view(obj)
            try:
                pods = self._pods(query.cluster)
            except ApiException as exc:
                raise _api_error(exc, query.cluster, "listing pods") from exc
            on_target = sorted(
                pod
                for pod, image in view.pod_images.items()
                if image == query.target_image and any(p.name == pod and p.ready for p in pods)
            )
            waiting = {p.name: p.waiting_reason for p in pods if p.waiting_reason}
            report = ProgressReport(
                outcome="progress",
                on_target=len(on_target),
                size=view.size,
                phase=view.phase,
                pods_on_target=on_target,
                waiting_reasons=waiting,
            )
            activity.heartbeat(report.model_dump(mode="json"))
            if view.converged and view.spec_image == query.target_image:
                return report.model_copy(update={"outcome": "converged"})
            if len(on_target) > query.known_on_target:
                return report
            now = time.monotonic()
            if view.phase == "Error":
                error_since = error_since if error_since is not None else now
                if now - error_since >= query.error_persist_s:
                    reasons = ", ".join(f"{pod}: {reason}" for pod, reason in waiting.items()) or "no pod reason"
                    return report.model_copy(
                        update={
                            "outcome": "failed",
                            "message": f"phase Error persisted {now - error_since:.0f} s ({reasons})",
                        }
                    )
            if now - started >= query.deadline_s:
                return report.model_copy(
                    update={
                        "outcome": "deadline",
                        "message": f"no progress within {query.deadline_s:.0f} s (phase {view.phase}, "
                        f"{len(on_target)}/{view.size} pods on target)",
                    }
                )
            time.sleep(query.poll_interval_s)
