"""The aerodeck worker: every workflow and activity on the task queue, with graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import all_activities
from aerodeck.settings import Settings
from aerodeck.temporal.client import connect
from workflows import ALL_WORKFLOWS

SHUTDOWN_GRACE = timedelta(seconds=10)
# Kubernetes and Aerospike clients are blocking: their activities run on this many threads.
ACTIVITY_THREADS = 32


def build_worker(client: Client, settings: Settings, **options: Any) -> Worker:
    """A worker with every workflow and activity; aerodeck's own modules pass through the sandbox."""
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("aerodeck", "activities")
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=ALL_WORKFLOWS,
        activities=all_activities(settings),
        activity_executor=ThreadPoolExecutor(max_workers=ACTIVITY_THREADS),
        max_concurrent_activities=ACTIVITY_THREADS,
        workflow_runner=runner,
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        **options,
    )


async def run_worker(settings: Settings, on_ready: Callable[[], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM, then let in-flight activities finish (up to the grace period)."""
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with build_worker(client, settings):
        if on_ready:
            on_ready()
        await stop.wait()
