"""`aerodeck up` as a user runs it: URLs, a working engine, a clean stop, history kept across restarts."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import urllib.request
from pathlib import Path

from temporalio.client import Client

from aerodeck.procs import free_port
from tests.cli_helpers import alive, child_pids, clean_env, run_cli, start_up


def _stack_env(data_dir: Path, port: int, ui_port: int) -> dict[str, str]:
    return clean_env(
        AERODECK_DATA_DIR=str(data_dir),
        AERODECK_DEV_SERVER_PORT=str(port),
        AERODECK_DEV_UI_PORT=str(ui_port),
        AERODECK_TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
    )


async def _self_check_ids(address: str) -> set[str]:
    client = await Client.connect(address)
    return {wf.id async for wf in client.list_workflows("WorkflowType = 'SelfCheckWorkflow'")}


def test_up_serves_the_engine_and_stops_cleanly_keeping_history(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    env = _stack_env(tmp_path / "data", port, ui_port)

    first = start_up(env)
    assert first.urls["Temporal frontend"] == f"127.0.0.1:{port}"
    assert first.urls["Temporal Web UI"] == f"http://127.0.0.1:{ui_port}"
    with urllib.request.urlopen(first.urls["Temporal Web UI"], timeout=10) as page:
        assert page.status == 200
    doctor = run_cli("doctor", "--json", env=env)
    assert doctor.returncode == 0, doctor.stderr
    assert json.loads(doctor.stdout)["worker"]["task_queue"] == "aerodeck"
    children = child_pids(first.proc.pid)
    assert len(children) >= 2  # the dev server and the worker
    assert first.stop(signal.SIGINT) == 0
    assert not [pid for pid in children if alive(pid)], "aerodeck up left processes behind"

    second = start_up(env)
    try:
        ids = asyncio.run(_self_check_ids(f"127.0.0.1:{port}"))
        # The first run's start-up and doctor checks plus this run's start-up check survive in SQLite.
        assert len(ids) >= 3, ids
    finally:
        assert second.stop(signal.SIGTERM) == 0


def test_up_refuses_a_taken_port_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("up", env=_stack_env(tmp_path, port, free_port()))
    assert result.returncode == 1
    assert f"port {port} for the Temporal frontend is taken" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr
