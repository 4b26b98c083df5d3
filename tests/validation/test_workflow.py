"""PerformanceValidationWorkflow through the real worker on the real Temporal dev server, against the
validation twin (Kubernetes API, wire-protocol nodes) and Debian's Prometheus."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import pytest_asyncio
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from aerodeck.models import ClusterRef
from aerodeck.procs import free_port
from aerodeck.settings import Settings, load_settings
from aerodeck.validation.models import (
    MetricName,
    ProbeSettings,
    Source,
    ValidationReport,
    ValidationRequest,
    ValidationStatus,
    Verdict,
)
from aerodeck.worker import build_worker
from tests.prometheus_server import Prometheus
from tests.validation.conftest import K8S_NAMESPACE, SCRAPE_INTERVAL_S, ValidationTwin
from workflows.validation import BAD_INPUT, PerformanceValidationWorkflow


@dataclass
class Engine:
    client: Client
    settings: Settings

    async def validate(self, request: ValidationRequest, task_queue: str | None = None) -> ValidationReport:
        return await self.client.execute_workflow(
            PerformanceValidationWorkflow.run,
            request,
            id=f"validate-test-{uuid.uuid4()}",
            task_queue=task_queue or self.settings.task_queue,
            execution_timeout=timedelta(minutes=3),
        )


@pytest_asyncio.fixture(scope="module")
async def engine(
    temporal_env: WorkflowEnvironment, validation_twin: ValidationTwin, prometheus: Prometheus
) -> AsyncIterator[Engine]:
    settings = load_settings(
        kubeconfig=validation_twin.kubeconfig, prometheus_url=prometheus.url, task_queue=f"validation-{uuid.uuid4()}"
    )
    async with build_worker(temporal_env.client, settings):
        yield Engine(temporal_env.client, settings)


def request(cluster: str = "v-flow", **fields: object) -> ValidationRequest:
    values: dict[str, object] = {
        "cluster": ClusterRef(namespace=K8S_NAMESPACE, name=cluster),
        "duration_s": 2.0,
        "probe": ProbeSettings(rate=1500, concurrency=2),
        "prometheus_step_s": SCRAPE_INTERVAL_S,
        **fields,
    }
    return ValidationRequest.model_validate(values)


async def test_probe_validation_passes_and_the_report_is_queryable(engine: Engine) -> None:
    handle = await engine.client.start_workflow(
        PerformanceValidationWorkflow.run,
        request(),
        id=f"validate-test-{uuid.uuid4()}",
        task_queue=engine.settings.task_queue,
    )
    report = await handle.result()

    assert report.verdict == Verdict.PASS, report.reasons
    assert report.workflow_id == handle.id and report.source == Source.PROBE
    assert report.slo is not None and report.slo.read_p99_ms == 5.0  # from the CR's annotations
    names = {m.name for m in report.metrics}
    assert {MetricName.READ_P99, MetricName.WRITE_P99, MetricName.ERROR_RATE, MetricName.PROBE_THROUGHPUT} <= names
    assert report.slo_lines[MetricName.READ_P99] == 5.0
    status: ValidationStatus = await handle.query(PerformanceValidationWorkflow.status)
    assert status.phase == "done" and status.report == report


async def test_baseline_then_regression_fails_with_the_statistics(engine: Engine, validation_twin: ValidationTwin,
                                                                  faults: ValidationTwin) -> None:  # fmt: skip
    baseline = await engine.validate(request("v-hybrid", source=Source.INFO, duration_s=10.0))
    assert baseline.verdict == Verdict.PASS, baseline.reasons
    faults.add_fault({"kind": "version-regression", "version": "8.1.2.0", "read_p99_pct": 100,
                      "topology": "hybrid"})  # fmt: skip

    after = await engine.validate(request("v-hybrid", source=Source.INFO, duration_s=10.0, baseline=baseline))

    assert after.verdict == Verdict.FAIL
    read = next(m for m in after.metrics if m.name == MetricName.READ_P99)
    assert read.verdict == Verdict.FAIL and read.comparison is not None
    assert read.comparison.shift == pytest.approx(1.0, abs=0.15) and read.comparison.u_statistic is not None
    assert read.baseline == pytest.approx(baseline.metrics[0].after)
    assert any(r.startswith("read_p99_ms") for r in after.reasons)


async def test_overridden_slo_line_fails_the_run(engine: Engine) -> None:
    report = await engine.validate(request(source=Source.PROMETHEUS, duration_s=3.0,
                                           slo_overrides={"read_p99_ms": 0.5}))  # fmt: skip
    read = next(m for m in report.metrics if m.name == MetricName.READ_P99)
    assert report.verdict == Verdict.FAIL and read.slo_line == 0.5 and read.slo_verdict == Verdict.FAIL


async def test_unknown_cluster_and_namespace_are_bad_input(engine: Engine) -> None:
    for bad, text in ((request("no-such-cluster"), "not found"), (request(namespace="nope"), "no Aerospike namespace")):
        with pytest.raises(WorkflowFailureError) as raised:
            await engine.validate(bad)
        cause = raised.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == BAD_INPUT and text in cause.message


async def test_unreachable_prometheus_is_inconclusive_with_the_reason(
    temporal_env: WorkflowEnvironment, validation_twin: ValidationTwin, engine: Engine
) -> None:
    queue = f"validation-noprom-{uuid.uuid4()}"
    settings = load_settings(kubeconfig=validation_twin.kubeconfig, task_queue=queue,
                             prometheus_url=f"http://127.0.0.1:{free_port()}")  # fmt: skip
    async with build_worker(temporal_env.client, settings):
        report = await engine.validate(request(source=Source.PROMETHEUS), task_queue=queue)
    assert report.verdict == Verdict.INCONCLUSIVE
    assert "unreachable" in report.reasons[0] and report.needs_human
    assert all(m.verdict != Verdict.PASS for m in report.metrics if m.critical)


class StageInput(BaseModel):
    validation: ValidationRequest
    task_queue: str


@workflow.defn(sandboxed=False)
class StageParent:
    """A rollout stage in miniature: validation as a child workflow, inconclusive routed to a person."""

    @workflow.run
    async def run(self, stage: StageInput) -> str:
        report: ValidationReport = await workflow.execute_child_workflow(
            PerformanceValidationWorkflow.run,
            stage.validation,
            id=f"{workflow.info().workflow_id}/validation",
            task_queue=stage.task_queue,
        )
        return {Verdict.PASS: "promote", Verdict.FAIL: "rollback", Verdict.INCONCLUSIVE: "ask a human"}[report.verdict]


async def test_runs_as_a_child_workflow(engine: Engine) -> None:
    queue = f"validation-parent-{uuid.uuid4()}"
    async with Worker(engine.client, task_queue=queue, workflows=[StageParent]):
        decision = await engine.client.execute_workflow(
            StageParent.run,
            StageInput(validation=request(source=Source.INFO), task_queue=engine.settings.task_queue),
            id=f"stage-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(minutes=2),
        )
    assert decision == "promote"
