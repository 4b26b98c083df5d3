"""What a worker reports about itself: proof that a worker polls the task queue, and which one."""

from __future__ import annotations

import os
import platform
import socket
from importlib.metadata import version

from temporalio import activity

from aerodeck.models import Model


class WorkerReport(Model):
    host: str
    pid: int
    python: str
    aerodeck_version: str
    temporalio_version: str
    task_queue: str
    workflow_id: str | None


@activity.defn
async def describe_worker() -> WorkerReport:
    info = activity.info()
    return WorkerReport(
        host=socket.gethostname(),
        pid=os.getpid(),
        python=platform.python_version(),
        aerodeck_version=version("aerodeck"),
        temporalio_version=version("temporalio"),
        task_queue=info.task_queue,
        workflow_id=info.workflow_id,
    )
