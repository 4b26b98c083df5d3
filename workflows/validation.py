"""PerformanceValidationWorkflow: measure one cluster and judge it against its SLOs and a baseline.

Standalone (``aerodeck validate``) or as a child of a rollout (its baseline and post-validation stages).
Bad input (unknown cluster or namespace, a baseline from another source) fails the workflow with a
non-retryable ApplicationError; a measurement that cannot be made (Prometheus unreachable, no nodes)
still returns a report, whose verdict is ``inconclusive`` with the reason. The ``status`` query shows the
phase and, once judged, the report."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.cluster import ClusterActivities, ClusterSnapshot
    from activities.validation import ValidationActivities, judge_validation
    from aerodeck.validation.models import (
        CollectRequest,
        Evidence,
        JudgeRequest,
        ValidationReport,
        ValidationRequest,
        ValidationStatus,
    )

BAD_INPUT = "BadValidationRequest"
CLUSTER_UNAVAILABLE = "ClusterUnavailable"
_BAD_CLUSTER_INPUT = ["ClusterNotFound", "Rejected", "KubernetesNotConfigured"]
_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=_BAD_CLUSTER_INPUT,
)
# A measurement is retried a few times (a worker crash, a node restarting), not for ever.
_COLLECT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5),
                             maximum_attempts=3)  # fmt: skip
COLLECT_MARGIN_S = 120.0  # connecting, writing and deleting the probe's records, querying Prometheus
HEARTBEAT_TIMEOUT = timedelta(seconds=30)


def _cause(exc: ActivityError) -> str:
    cause = exc.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or exc)


@workflow.defn
class PerformanceValidationWorkflow:
    """One pydantic model in (:class:`ValidationRequest`), one out (:class:`ValidationReport`). Verdicts:
    ``pass``; ``fail`` (a critical metric is worse than its SLO line or than the baseline); ``inconclusive``
    (missing data, too few samples, a node down or the measurement otherwise disturbed): send it to a person,
    never promote or roll back on it. Query ``status`` for the phase and the report."""

    @workflow.init
    def __init__(self, request: ValidationRequest) -> None:
        self._status = ValidationStatus(phase="reading cluster")

    @workflow.run
    async def run(self, request: ValidationRequest) -> ValidationReport:
        if request.baseline is not None and request.baseline.source != request.source:
            raise ApplicationError(
                f"the baseline was measured with {request.baseline.source.value}; validate with the same source",
                type=BAD_INPUT,
                non_retryable=True,
            )
        snapshot = await self._read_cluster(request)
        collect = self._collect_request(request, snapshot)
        slo = request.slo_overrides.apply(snapshot.view.slo)
        self._status = ValidationStatus(
            phase="collecting", message=f"{request.source.value} for {request.duration_s:g} s"
        )
        evidence = await self._collect(collect)
        self._status = ValidationStatus(phase="judging")
        report: ValidationReport = await workflow.execute_activity(
            judge_validation,
            JudgeRequest(
                evidence=evidence,
                slo=slo,
                baseline=request.baseline.evidence if request.baseline else None,
                config=request.judge,
                workflow_id=workflow.info().workflow_id,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_RETRY,
        )
        self._status = ValidationStatus(phase="done", message=report.verdict.value, report=report)
        return report

    async def _read_cluster(self, request: ValidationRequest) -> ClusterSnapshot:
        try:
            snapshot: ClusterSnapshot = await workflow.execute_activity_method(
                ClusterActivities.read_cluster,
                request.cluster,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            bad = isinstance(cause, ApplicationError) and cause.type in _BAD_CLUSTER_INPUT
            kind = BAD_INPUT if bad else CLUSTER_UNAVAILABLE
            raise ApplicationError(f"cannot read {request.cluster}: {_cause(exc)}", type=kind,
                                   non_retryable=True) from exc  # fmt: skip
        return snapshot

    @staticmethod
    def _collect_request(request: ValidationRequest, snapshot: ClusterSnapshot) -> CollectRequest:
        view = snapshot.view
        namespaces = view.aerospike_namespaces
        namespace = request.namespace or (namespaces[0] if namespaces else None)
        if namespace is None or namespace not in namespaces:
            known = ", ".join(namespaces) or "none"
            raise ApplicationError(
                f"{view.ref} has no Aerospike namespace {namespace!r} (namespaces: {known})",
                type=BAD_INPUT,
                non_retryable=True,
            )
        return CollectRequest(
            source=request.source,
            cluster=view.ref,
            cluster_name=view.ref.name,
            endpoints=view.access_endpoints,
            expected_nodes=view.size,
            namespace=namespace,
            duration_s=request.duration_s,
            probe=request.probe,
            prometheus_step_s=request.prometheus_step_s,
            run_id=workflow.info().run_id,
        )

    async def _collect(self, collect: CollectRequest) -> Evidence:
        """The evidence, or (when the source cannot measure at all) empty evidence saying why."""
        try:
            evidence: Evidence = await workflow.execute_activity_method(
                ValidationActivities.collect_evidence,
                collect,
                start_to_close_timeout=timedelta(seconds=collect.duration_s + COLLECT_MARGIN_S),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=_COLLECT_RETRY,
            )
        except ActivityError as exc:
            now = workflow.now()
            return Evidence(
                source=collect.source,
                cluster=collect.cluster,
                namespace=collect.namespace,
                started_at=now,
                ended_at=now,
                expected_nodes=collect.expected_nodes,
                disturbances=[f"no {collect.source.value} evidence: {_cause(exc)}"],
            )
        return evidence

    @workflow.query
    def status(self) -> ValidationStatus:
        return self._status
