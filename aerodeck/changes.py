"""Starting and steering changes from outside the worker (CLI, console): one place for the checks a
request must pass before anything starts, and for turning Temporal answers into clear errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.cluster import ClusterActivities, ClusterSnapshot
from aerodeck.errors import BadInput, OperationFailed
from aerodeck.kube import names
from aerodeck.kube.client import api_client
from aerodeck.models import ActionRequest, ActionResult, ClusterRef, HumanAction, Role
from aerodeck.policy import ApprovalMode, change_problems
from aerodeck.settings import Settings
from aerodeck.temporal import search_attributes
from aerodeck.upgrade import ChangeState, UpgradeRequest, UpgradeStatus, change_workflow_id
from aerodeck.versions import AerospikeVersion
from workflows.upgrade import ClusterUpgradeWorkflow


def resolve_cluster(settings: Settings, name: str, namespace: str | None) -> ClusterSnapshot:
    """The named cluster, found across namespaces when none is given; unknown or ambiguous is bad input."""
    activities = ClusterActivities(lambda: api_client(settings))
    if namespace is None:
        try:
            listed: Any = client.CustomObjectsApi(api_client(settings)).list_cluster_custom_object(
                names.ASDB_GROUP, names.ASDB_VERSION, names.AEROSPIKE_CLUSTERS
            )
        except ApiException as exc:
            raise OperationFailed(f"cannot list AerospikeClusters: {exc.status} {exc.reason}") from exc
        items = listed.get("items", [])
        found = sorted(i["metadata"]["namespace"] for i in items if i["metadata"]["name"] == name)
        if not found:
            raise BadInput(f"no AerospikeCluster named {name!r} in any namespace; see `aerodeck fleet`")
        if len(found) > 1:
            raise BadInput(f"{name!r} exists in namespaces {', '.join(found)}; pass --namespace")
        namespace = found[0]
    try:
        ref = ClusterRef(namespace=namespace, name=name)
    except ValueError as exc:
        raise BadInput(f"{namespace}/{name} is not a valid Kubernetes name") from exc
    try:
        return activities.read_cluster(ref)
    except ApplicationError as exc:
        raise (BadInput if exc.non_retryable else OperationFailed)(exc.message) from exc


def plan_upgrade(
    settings: Settings,
    snapshot: ClusterSnapshot,
    target: AerospikeVersion,
    requested_by: str,
    reason: str = "",
    approval: ApprovalMode | None = None,
    allow_downgrade: bool = False,
    now: datetime | None = None,
) -> UpgradeRequest:
    """The request the workflow will run, or BadInput listing every reason it may not start."""
    view = snapshot.view
    policy = settings.policy_for(view.tier, approval=approval, allow_downgrade=allow_downgrade or None)
    if view.version is None:
        raise BadInput(f"{view.ref} runs image {view.spec_image!r}, which carries no version")
    problems = change_problems(
        view.version,
        target,
        snapshot.operator_version or "unknown",
        view.tier,
        now or datetime.now(UTC),
        policy,
        settings.freeze_windows,
    )
    if problems:
        raise BadInput(f"cannot upgrade {view.ref} to {target}: " + "; ".join(problems))
    return UpgradeRequest(cluster=view.ref, target=target, requested_by=requested_by, reason=reason, policy=policy)


async def start_upgrade(
    temporal: Client, settings: Settings, request: UpgradeRequest, snapshot: ClusterSnapshot
) -> WorkflowHandle[ClusterUpgradeWorkflow, UpgradeStatus]:
    workflow_id = change_workflow_id(request.cluster)
    view = snapshot.view
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(search_attributes.CLUSTER, str(request.cluster)),
            SearchAttributePair(search_attributes.TARGET_VERSION, str(request.target)),
            SearchAttributePair(search_attributes.TEAM, view.team or "unlabelled"),
            SearchAttributePair(search_attributes.TIER, view.tier or "unlabelled"),
            SearchAttributePair(search_attributes.STATE, ChangeState.PREFLIGHT.value),
        ]
    )
    try:
        return await temporal.start_workflow(
            ClusterUpgradeWorkflow.run,
            request,
            id=workflow_id,
            task_queue=settings.task_queue,
            search_attributes=attributes,
            static_summary=f"{request.cluster} -> {request.target} (by {request.requested_by})",
        )
    except WorkflowAlreadyStartedError as exc:
        raise BadInput(
            f"a change is already active on {request.cluster} ({workflow_id}); "
            f"follow it with `aerodeck status {workflow_id}` or wait for it to finish"
        ) from exc


def _handle(temporal: Client, workflow_id: str) -> WorkflowHandle[Any, Any]:
    return temporal.get_workflow_handle(workflow_id)


async def change_status(temporal: Client, workflow_id: str) -> UpgradeStatus:
    try:
        result: UpgradeStatus = await _handle(temporal, workflow_id).query(ClusterUpgradeWorkflow.status)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise BadInput(f"no change with id {workflow_id!r}; list them with `aerodeck list`") from exc
        raise OperationFailed(f"cannot read {workflow_id}: {exc.message}") from exc
    return result


async def act(
    temporal: Client,
    workflow_id: str,
    action: HumanAction,
    user: str,
    role: Role,
    stage: str | None = None,
    comment: str = "",
    request_id: str | None = None,
) -> ActionResult:
    """Send one human action as a Temporal Update; refusals are BadInput with the validator's reason."""
    try:
        request = ActionRequest(
            user=user, role=role, stage=stage, comment=comment, request_id=request_id or str(uuid.uuid4())
        )
    except ValueError as exc:
        raise BadInput(f"invalid {action.value}: {exc}") from exc
    handle = _handle(temporal, workflow_id)
    try:
        result: ActionResult = await handle.execute_update(
            # Temporal dedupes updates by id; keying it by action too lets the workflow's validator
            # refuse a request id reused for a different action instead of replaying the first answer.
            action.value,
            request,
            id=f"{action.value}:{request.request_id}",
            result_type=ActionResult,
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise BadInput(f"{action.value} refused: {message}") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise BadInput(
                f"no running change with id {workflow_id!r} (finished, or never started); see `aerodeck list`"
            ) from exc
        raise OperationFailed(f"{action.value} failed: {exc.message}") from exc
    return result


async def list_changes(temporal: Client, state: str | None = None, cluster: str | None = None) -> list[dict[str, Any]]:
    query = "WorkflowType = 'ClusterUpgradeWorkflow'"
    if state:
        if state not in {s.value for s in ChangeState}:
            raise BadInput(f"unknown state {state!r}; states are: {', '.join(s.value for s in ChangeState)}")
        query += f" AND {search_attributes.STATE.name} = '{state}'"
    if cluster:
        query += f" AND {search_attributes.CLUSTER.name} = '{cluster}'"
    rows = []
    async for wf in temporal.list_workflows(query):
        attrs = wf.typed_search_attributes
        rows.append(
            {
                "workflow_id": wf.id,
                "run_id": wf.run_id,
                "cluster": attrs.get(search_attributes.CLUSTER),
                "target_version": attrs.get(search_attributes.TARGET_VERSION),
                "team": attrs.get(search_attributes.TEAM),
                "tier": attrs.get(search_attributes.TIER),
                "state": attrs.get(search_attributes.STATE),
                "running": wf.status == WorkflowExecutionStatus.RUNNING,
                "started": wf.start_time.isoformat() if wf.start_time else None,
            }
        )
    return rows
