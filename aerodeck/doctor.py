"""Round trip through Temporal and a worker: the proof that the engine is alive."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from aerodeck.errors import OperationFailed
from aerodeck.settings import Settings
from aerodeck.temporal.client import connect
from workflows.self_check import SelfCheckInput, SelfCheckResult, SelfCheckWorkflow


async def self_check(
    settings: Settings,
    requested_by: str = "aerodeck doctor",
    deadline_s: float = 30.0,
    client: Client | None = None,
) -> SelfCheckResult:
    """Run SelfCheckWorkflow; fails with what to do if no worker picks it up before the deadline."""
    client = client or await connect(settings)
    try:
        return await asyncio.wait_for(
            client.execute_workflow(
                SelfCheckWorkflow.run,
                SelfCheckInput(requested_by=requested_by),
                id=f"self-check-{uuid.uuid4()}",
                task_queue=settings.task_queue,
                execution_timeout=timedelta(seconds=deadline_s),
            ),
            timeout=deadline_s,
        )
    except TimeoutError as exc:
        raise OperationFailed(
            f"no worker answered on task queue {settings.task_queue!r} within {deadline_s:.0f} s; "
            "start one with `aerodeck worker` (or `aerodeck up`)"
        ) from exc
    except RPCError as exc:
        raise OperationFailed(f"Temporal refused the self-check: {exc.message}") from exc
