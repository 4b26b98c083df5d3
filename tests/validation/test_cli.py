"""`aerodeck validate` as a user runs it: the real command in a subprocess, a real worker, the twin."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from aerodeck.settings import load_settings
from aerodeck.worker import build_worker
from tests.cli_helpers import AERODECK, clean_env
from tests.prometheus_server import Prometheus
from tests.validation.conftest import ValidationTwin


@pytest_asyncio.fixture(scope="module")
async def cli_env(
    temporal_env: WorkflowEnvironment, validation_twin: ValidationTwin, prometheus: Prometheus
) -> AsyncIterator[dict[str, str]]:
    queue = f"validation-cli-{uuid.uuid4()}"
    settings = load_settings(kubeconfig=validation_twin.kubeconfig, prometheus_url=prometheus.url, task_queue=queue)
    env = clean_env(
        AERODECK_TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        AERODECK_KUBECONFIG=str(validation_twin.kubeconfig),
        AERODECK_TASK_QUEUE=queue,
        AERODECK_PROMETHEUS_URL=prometheus.url,
    )
    async with build_worker(temporal_env.client, settings):
        yield env


async def aerodeck(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run the command without blocking the loop the in-process worker polls on."""
    proc = await asyncio.create_subprocess_exec(
        *AERODECK, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


def error_lines(stderr: str) -> list[str]:
    """The one-line errors (progress lines also go to stderr)."""
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


async def test_validate_json_prints_the_report_and_exits_zero_on_pass(cli_env: dict[str, str]) -> None:
    code, out, err = await aerodeck(cli_env, "validate", "v-cli", "--duration", "2", "--rate", "1500", "--json")
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    assert report["verdict"] == "pass"
    names = {m["name"] for m in report["metrics"]}
    assert {"read_p99_ms", "write_p99_ms", "error_rate", "probe_tps", "throughput_tps", "stop_writes"} <= names
    assert all(m["after"] is not None for m in report["metrics"] if m["name"] in ("read_p99_ms", "write_p99_ms"))
    assert report["workflow_id"].startswith("validate/aero-val/v-cli/")


async def test_baseline_by_workflow_id_adds_comparisons(cli_env: dict[str, str]) -> None:
    code, out, err = await aerodeck(cli_env, "validate", "v-cli", "--source", "info", "--duration", "10", "--json")
    assert code == 0, err
    baseline_id = json.loads(out)["workflow_id"]

    code, out, err = await aerodeck(cli_env, "validate", "v-cli", "-n", "aero-val", "--source", "info",
                                    "--duration", "10", "--baseline", baseline_id)  # fmt: skip
    assert code == 0, err
    assert ": pass" in out.splitlines()[0] and "no significant worsening" in out


async def test_failing_and_bad_input_exit_codes(cli_env: dict[str, str]) -> None:
    code, out, err = await aerodeck(cli_env, "validate", "v-cli", "--source", "prometheus", "--duration", "2",
                                    "--slo", "write_p99_ms=0.1", "--json")  # fmt: skip
    assert code == 1 and json.loads(out)["verdict"] == "fail"
    assert error_lines(err) == [error_lines(err)[0]] and "validation fail" in error_lines(err)[0]

    for args, text in (
        (["no-such-cluster"], "no AerospikeCluster named 'no-such-cluster'"),
        (["v-cli", "--baseline", "validate/none/none/1"], "no validation with id"),
        (["v-cli", "--slo", "read_p99=3"], "--slo takes KEY=VALUE"),
        (["v-cli", "--duration", "-1"], "duration_s"),
        (["v-cli", "--aerospike-namespace", "nope", "--duration", "1"], "no Aerospike namespace 'nope'"),
    ):
        code, _, err = await aerodeck(cli_env, "validate", *args)
        assert code == 2, (args, err)
        assert len(error_lines(err)) == 1 and text in error_lines(err)[0], err
