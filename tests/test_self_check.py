"""The first workflow and activity, run through the real worker on both Temporal test servers."""

from __future__ import annotations

import os
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from aerodeck.doctor import self_check
from aerodeck.errors import OperationFailed
from aerodeck.settings import load_settings
from aerodeck.worker import build_worker
from workflows.self_check import SelfCheckInput, SelfCheckWorkflow


async def test_self_check_runs_through_the_real_worker(temporal_env: WorkflowEnvironment) -> None:
    queue = f"test-{uuid.uuid4()}"
    settings = load_settings(task_queue=queue)
    async with build_worker(temporal_env.client, settings):
        result = await self_check(settings, requested_by="pytest", client=temporal_env.client)
    assert result.requested_by == "pytest"
    assert result.worker.pid == os.getpid()
    assert result.worker.task_queue == queue
    assert result.worker.workflow_id.startswith("self-check-")


async def test_self_check_on_the_time_skipping_server(time_skipping_env: WorkflowEnvironment) -> None:
    queue = f"test-{uuid.uuid4()}"
    async with build_worker(time_skipping_env.client, load_settings(task_queue=queue)):
        result = await time_skipping_env.client.execute_workflow(
            SelfCheckWorkflow.run, SelfCheckInput(), id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
    assert result.worker.task_queue == queue


async def test_self_check_without_a_worker_says_how_to_start_one(temporal_env: WorkflowEnvironment) -> None:
    queue = f"nobody-{uuid.uuid4()}"
    settings = load_settings(task_queue=queue)
    with pytest.raises(OperationFailed, match="start one with `aerodeck worker`"):
        await self_check(settings, client=temporal_env.client, deadline_s=2)
