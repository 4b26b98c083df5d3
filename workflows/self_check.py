"""SelfCheckWorkflow: a round trip through the server, a worker and an activity (`aerodeck doctor`)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.self_check import WorkerReport, describe_worker
    from aerodeck.models import Model


class SelfCheckInput(Model):
    requested_by: str = "aerodeck doctor"


class SelfCheckResult(Model):
    requested_by: str
    worker: WorkerReport


@workflow.defn
class SelfCheckWorkflow:
    @workflow.run
    async def run(self, request: SelfCheckInput) -> SelfCheckResult:
        report = await workflow.execute_activity(describe_worker, start_to_close_timeout=timedelta(seconds=30))
        return SelfCheckResult(requested_by=request.requested_by, worker=report)
