"""Starting validations and reading finished ones from outside the worker (CLI, console), with Temporal
answers turned into clear errors."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from aerodeck.errors import BadInput, OperationFailed
from aerodeck.models import ClusterRef
from aerodeck.settings import Settings
from aerodeck.temporal import search_attributes
from aerodeck.validation.models import ValidationReport, ValidationRequest
from workflows.validation import BAD_INPUT, PerformanceValidationWorkflow


def validation_workflow_id(cluster: ClusterRef, now: datetime | None = None) -> str:
    """Unique per run, so any past validation can be named as a baseline; listable by cluster."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%f")
    return f"validate/{cluster.namespace}/{cluster.name}/{stamp}"


async def baseline_report(temporal: Client, workflow_id: str) -> ValidationReport:
    """The report of a finished validation, or BadInput saying why it cannot serve as a baseline."""
    handle = temporal.get_workflow_handle_for(PerformanceValidationWorkflow.run, workflow_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise BadInput(f"no validation with id {workflow_id!r} to use as the baseline") from exc
        raise OperationFailed(f"cannot read baseline {workflow_id}: {exc.message}") from exc
    if description.workflow_type != "PerformanceValidationWorkflow":
        raise BadInput(f"{workflow_id} is a {description.workflow_type}, not a validation; pass a validation's id")
    if description.status != WorkflowExecutionStatus.COMPLETED:
        state = description.status.name.lower() if description.status else "unknown"
        raise BadInput(f"baseline {workflow_id} is {state}; use a completed validation")
    return await handle.result()


async def run_validation(
    temporal: Client, settings: Settings, request: ValidationRequest
) -> tuple[str, ValidationReport]:
    """Start the workflow on the task queue and wait for its report."""
    workflow_id = validation_workflow_id(request.cluster)
    handle = await temporal.start_workflow(
        PerformanceValidationWorkflow.run,
        request,
        id=workflow_id,
        task_queue=settings.task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(search_attributes.CLUSTER, str(request.cluster))]),
        static_summary=f"validate {request.cluster} ({request.source.value}, {request.duration_s:g} s)",
    )
    try:
        return workflow_id, await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == BAD_INPUT:
            raise BadInput(cause.message) from exc
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise OperationFailed(f"validation {workflow_id} failed: {message}") from exc
