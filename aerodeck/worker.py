"""The aerodeck worker: every workflow and activity on the task queue, with graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import ALL_ACTIVITIES
from aerodeck.settings import Settings
from aerodeck.temporal.client import connect
from workflows import ALL_WORKFLOWS

SHUTDOWN_GRACE = timedelta(seconds=10)


def build_worker(client: Client, task_queue: str, **options: object) -> Worker:
    """A worker with every workflow and activity; aerodeck's own modules pass through the sandbox."""
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("aerodeck", "activities")
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=ALL_WORKFLOWS,
        activities=ALL_ACTIVITIES,
        workflow_runner=runner,
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        **options,  # type: ignore[arg-type]
    )


async def run_worker(settings: Settings, on_ready: Callable[[], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM, then let in-flight activities finish (up to the grace period)."""
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with build_worker(client, settings.task_queue):
        if on_ready:
            on_ready()
        await stop.wait()
