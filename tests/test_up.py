"""`aerodeck up` as a user runs it: URLs, a working engine, a clean stop, history kept across restarts."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
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


def _status(env: dict[str, str], workflow_id: str) -> dict[str, object]:
    result = run_cli("status", workflow_id, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _wait_state(env: dict[str, str], workflow_id: str, state: str, deadline_s: float = 90) -> dict[str, object]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        current = _status(env, workflow_id)
        if current["state"] == state:
            return current
        time.sleep(0.5)
    raise AssertionError(f"{workflow_id} never reached {state}: {current}")


def test_demo_stack_runs_a_change_from_cli_request_to_every_pod_on_the_new_image(tmp_path: Path) -> None:
    env = _stack_env(tmp_path / "data", free_port(), free_port())
    env.update(
        AERODECK_POLL_INTERVAL_S="0.5",
        AERODECK_ERROR_PERSIST_S="5",
        AERODECK_VALIDATION_DURATION_S="12",  # a p99 comparison needs 7 ticker intervals
        AERODECK_VALIDATION_SOURCE="prometheus",
        HOME=str(tmp_path),
    )
    stack = start_up(env, "--demo")
    try:
        demo = stack.urls["Demo change"]
        assert demo == "change/aero-ads/ads-cache-1"
        _wait_state(env, demo, "waiting-approval")
        own = run_cli("approve", demo, "--as", "demo-requester", "--role", "approver", env=env)
        assert own.returncode == 2 and "four-eyes" in own.stderr

        started = run_cli("upgrade", "ads-cache-2", "--to", "8.1.2.0", "--as", "bob", "--json", env=env)
        assert started.returncode == 0, started.stderr
        workflow_id = json.loads(started.stdout)["workflow_id"]
        waiting = _wait_state(env, workflow_id, "waiting-approval")
        assert [s["state"] for s in waiting["stages"]][:3] == ["passed", "passed", "waiting"]
        approved = run_cli("approve", workflow_id, "--as", "alice", "--role", "approver", env=env)
        assert approved.returncode == 0, approved.stderr
        done = _wait_state(env, workflow_id, "completed")
        assert {s["name"]: s["state"] for s in done["stages"]}["post-validation"] == "passed"

        kubectl = subprocess.run(
            ["kubectl", "get", "pods", "-n", "aero-ads", "-l", "aerospike.com/cr=ads-cache-2",
             "-o", "jsonpath={.items[*].spec.containers[0].image}"],
            capture_output=True, text=True, env={**env, "KUBECONFIG": stack.urls["kubeconfig"]}, timeout=30,
        )  # fmt: skip
        assert kubectl.returncode == 0, kubectl.stderr
        assert kubectl.stdout.split() == ["aerospike/aerospike-server-enterprise:8.1.2.0"] * 4

        fleet = json.loads(run_cli("fleet", "--json", env=env).stdout)
        row = next(r for r in fleet if r["name"] == "ads-cache-2")
        assert row["version"] == "8.1.2.0" and row["health"] == "healthy"
        listed = json.loads(run_cli("list", "--json", env=env).stdout)
        assert {workflow_id, demo} <= {r["workflow_id"] for r in listed}
    finally:
        assert stack.stop(signal.SIGINT) == 0
