"""ClusterUpgradeWorkflow end to end: the real Temporal dev server, the real worker, the fleet twin served
by `aerodeck twin serve`, the official kubernetes and aerospike clients. Each test owns one cluster."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from aerodeck.changes import act, plan_upgrade, resolve_cluster, start_upgrade
from aerodeck.errors import BadInput
from aerodeck.models import ActionRequest, HumanAction, Role, StageState
from aerodeck.policy import ApprovalMode, FreezeWindow
from aerodeck.settings import Settings, load_settings
from aerodeck.upgrade import ChangeState, UpgradeStatus
from aerodeck.versions import AerospikeVersion, VersionError
from aerodeck.worker import build_worker
from tests.twin_process import TwinProcess
from workflows.upgrade import ClusterUpgradeWorkflow

OLD = "aerospike/aerospike-server-enterprise:8.0.0.9"
NEW = "aerospike/aerospike-server-enterprise:8.1.2.0"
CRASHING = "8.1.1.0"  # the test fleet declares a crash-looping image for this version
REGRESSING = "8.1.0.3"  # ... and a +150 % p99 regression for this one
# Real seconds: the twin runs 600x, so a pod restart takes about 0.1 s.
FAST = {
    "poll_interval_s": 0.2,
    "error_persist_s": 1.5,
    "batch_deadline_s": 30.0,
    "overall_deadline_s": 120.0,
    "settle_deadline_s": 30.0,
    "validation_duration_s": 3.0,
}


@dataclass
class Engine:
    client: Client
    settings: Settings
    twin: TwinProcess

    async def start(
        self, cluster: str, target: str = "8.1.2.0", user: str = "bob", approval: ApprovalMode | None = None
    ) -> WorkflowHandle[Any, Any]:
        snapshot = resolve_cluster(self.settings, cluster, "aero-test")
        target_version = AerospikeVersion.parse(target)
        request = plan_upgrade(self.settings, snapshot, target_version, user, "test", approval=approval)
        return await start_upgrade(self.client, self.settings, request, snapshot)


@pytest_asyncio.fixture(scope="module")
async def engine(temporal_env: WorkflowEnvironment, twin: TwinProcess) -> AsyncIterator[Engine]:
    settings = load_settings(kubeconfig=twin.kubeconfig, task_queue=f"upgrade-{uuid.uuid4()}", **FAST)
    async with build_worker(temporal_env.client, settings):
        yield Engine(temporal_env.client, settings, twin)


async def status_of(handle: WorkflowHandle[Any, Any]) -> UpgradeStatus:
    result: UpgradeStatus = await handle.query(ClusterUpgradeWorkflow.status)
    return result


async def wait_until(
    handle: WorkflowHandle[Any, Any], predicate: Callable[[UpgradeStatus], bool], deadline_s: float = 60
) -> UpgradeStatus:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        current = await status_of(handle)
        if predicate(current):
            return current
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached; last status: {current.state} {current.outcome}")


def waiting_at_gate(s: UpgradeStatus) -> bool:
    return s.state == ChangeState.WAITING_APPROVAL


def pods_moved(s: UpgradeStatus) -> bool:
    return any(a.action == "progress" for a in s.audit)


def request(user: str, role: Role = Role.APPROVER, request_id: str | None = None, **kw: Any) -> ActionRequest:
    return ActionRequest(user=user, role=role, request_id=request_id or str(uuid.uuid4()), **kw)


def pod_images(twin: TwinProcess, cluster: str) -> set[str]:
    from kubernetes import client

    pods = client.CoreV1Api(twin.api()).list_namespaced_pod("aero-test", label_selector=f"aerospike.com/cr={cluster}")
    return {c.image for pod in pods.items for c in pod.spec.containers if c.name == "aerospike-server"}


async def test_happy_path_waits_for_approval_then_completes(engine: Engine) -> None:
    generation = engine.twin.cr("t-happy")["metadata"]["generation"]
    handle = await engine.start("t-happy")
    waiting = await wait_until(handle, waiting_at_gate)
    assert engine.twin.cr("t-happy")["spec"]["image"] == OLD, "nothing may change before approval"
    assert [s.state for s in waiting.stages[:3]] == [StageState.PASSED, StageState.PASSED, StageState.WAITING]

    await handle.execute_update(ClusterUpgradeWorkflow.approve, request("alice"))
    final: UpgradeStatus = await handle.result()

    assert final.state == ChangeState.COMPLETED, final.outcome
    cr = engine.twin.cr("t-happy")
    assert cr["spec"]["image"] == NEW and cr["status"]["phase"] == "Completed"
    assert {p["image"] for p in cr["status"]["pods"].values()} == {NEW}
    assert pod_images(engine.twin, "t-happy") == {NEW}
    assert cr["metadata"]["generation"] == generation + 1, "exactly one spec change"
    stages = {s.name: s for s in final.stages}
    assert stages["approval:start"].actor == "alice"
    assert stages["post-validation"].evidence["builds"] == "8.1.2.0"
    assert [a.actor for a in final.audit if a.action == "approve"] == ["alice"]


async def test_reject_ends_cleanly_with_nothing_changed(engine: Engine) -> None:
    before = engine.twin.cr("t-reject")
    handle = await engine.start("t-reject")
    await wait_until(handle, waiting_at_gate)
    await handle.execute_update(ClusterUpgradeWorkflow.reject, request("carol", comment="not during the sale"))
    final: UpgradeStatus = await handle.result()
    assert final.state == ChangeState.REJECTED
    assert "rejected by carol: not during the sale" in final.outcome
    after = engine.twin.cr("t-reject")
    assert after["spec"] == before["spec"] and after["metadata"]["generation"] == before["metadata"]["generation"]


async def test_validators_refuse_four_eyes_roles_and_stages_and_dedupe_request_ids(engine: Engine) -> None:
    handle = await engine.start("t-foureyes", user="bob")
    await wait_until(handle, waiting_at_gate)
    refusals = [
        (ClusterUpgradeWorkflow.approve, request("bob"), "four-eyes"),
        (ClusterUpgradeWorkflow.approve, request("BOB"), "four-eyes"),
        (ClusterUpgradeWorkflow.approve, request("dave", Role.VIEWER), "may not approve"),
        (ClusterUpgradeWorkflow.approve, request("dave", stage="approval:nope"), "unknown stage"),
        (ClusterUpgradeWorkflow.approve, request("dave", stage="approval:finalize"), "not waiting"),
        (ClusterUpgradeWorkflow.resume, request("dave", Role.OPERATOR), "not paused"),
    ]
    for update, action, message in refusals:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(update, action)
        assert message in str(refused.value.cause), (action, refused.value.cause)
    assert not [a for a in (await status_of(handle)).audit if a.action == "approve"], "refusals leave no trace"

    operator = Role.OPERATOR
    first = await handle.execute_update(ClusterUpgradeWorkflow.pause, request("erin", operator, request_id="ticket-7"))
    again = await handle.execute_update(ClusterUpgradeWorkflow.pause, request("erin", operator, request_id="ticket-7"))
    assert again == first
    with pytest.raises(WorkflowUpdateFailedError) as reused:
        await handle.execute_update(ClusterUpgradeWorkflow.resume, request("erin", operator, request_id="ticket-7"))
    assert "already used for pause" in str(reused.value.cause)
    await handle.execute_update(ClusterUpgradeWorkflow.reject, request("erin"))
    final: UpgradeStatus = await handle.result()
    assert final.state == ChangeState.REJECTED
    assert len([a for a in final.audit if a.action == "pause"]) == 1


async def test_crash_looping_image_errors_and_rolls_back(engine: Engine) -> None:
    handle = await engine.start("t-crash", target=CRASHING, approval="auto")
    final: UpgradeStatus = await handle.result()
    assert final.state == ChangeState.ROLLED_BACK, final.outcome
    assert "phase Error persisted" in final.outcome and "CrashLoopBackOff" in final.outcome
    stages = {s.name: s for s in final.stages}
    assert stages["rolling-upgrade"].state == StageState.ROLLED_BACK
    assert stages["rollback"].state == StageState.PASSED
    cr = engine.twin.cr("t-crash")
    assert cr["spec"]["image"] == OLD and cr["status"]["phase"] == "Completed"
    assert pod_images(engine.twin, "t-crash") == {OLD}
    assert any(a.action == "auto-rollback" and a.actor == "policy" for a in final.audit)


async def test_a_version_that_regresses_p99_is_rolled_back_with_the_reason(engine: Engine) -> None:
    handle = await engine.start("t-regress", target=REGRESSING, approval="auto")
    final: UpgradeStatus = await handle.result()
    assert final.state == ChangeState.ROLLED_BACK, final.outcome
    assert "performance validation failed" in final.outcome
    stages = {s.name: s for s in final.stages}
    assert stages["baseline"].evidence["verdict"] == "pass"
    assert stages["post-validation"].state == StageState.FAILED
    assert stages["post-validation"].evidence["verdict"] == "fail"
    reports = await handle.query(ClusterUpgradeWorkflow.reports)
    assert reports["post-validation"].verdict.value == "fail"
    assert engine.twin.cr("t-regress")["spec"]["image"] == OLD
    assert pod_images(engine.twin, "t-regress") == {OLD}


async def test_manual_rollback_in_the_middle_of_a_rollout(engine: Engine) -> None:
    handle = await engine.start("t-manual-rollback", approval="auto")
    await wait_until(handle, pods_moved)
    await handle.execute_update(
        ClusterUpgradeWorkflow.rollback, request("bob", Role.OPERATOR, comment="latency alarms on the canary")
    )
    final: UpgradeStatus = await handle.result()
    assert final.state == ChangeState.ROLLED_BACK, final.outcome
    assert "rollback requested by bob: latency alarms on the canary" in final.outcome
    assert engine.twin.cr("t-manual-rollback")["spec"]["image"] == OLD
    assert pod_images(engine.twin, "t-manual-rollback") == {OLD}


async def test_pause_holds_the_rollout_and_resume_finishes_it(engine: Engine) -> None:
    handle = await engine.start("t-pause", approval="auto")
    await wait_until(handle, pods_moved)
    await handle.execute_update(ClusterUpgradeWorkflow.pause, request("bob", Role.OPERATOR))
    await wait_until(handle, lambda s: s.state == ChangeState.PAUSED)
    assert engine.twin.cr("t-pause")["spec"].get("paused") is True
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(ClusterUpgradeWorkflow.pause, request("bob", Role.OPERATOR))
    await handle.execute_update(ClusterUpgradeWorkflow.resume, request("bob", Role.OPERATOR))
    final: UpgradeStatus = await handle.result()
    assert final.state == ChangeState.COMPLETED, final.outcome
    cr = engine.twin.cr("t-pause")
    assert not cr["spec"].get("paused") and pod_images(engine.twin, "t-pause") == {NEW}
    assert [a.action for a in final.audit if a.action in ("pause", "resume")] == ["pause", "resume"]


async def test_abort_stops_without_rollback_and_records_it(engine: Engine) -> None:
    handle = await engine.start("t-abort")
    await wait_until(handle, waiting_at_gate)
    await handle.execute_update(ClusterUpgradeWorkflow.abort, request("bob", Role.OPERATOR, comment="wrong ticket"))
    final: UpgradeStatus = await handle.result()
    assert final.state == ChangeState.ABORTED
    assert final.outcome == "aborted by bob: wrong ticket"
    assert engine.twin.cr("t-abort")["spec"]["image"] == OLD


async def test_a_second_change_on_the_same_cluster_is_refused(engine: Engine) -> None:
    handle = await engine.start("t-exclusive")
    await wait_until(handle, waiting_at_gate)
    with pytest.raises(BadInput, match="a change is already active on aero-test/t-exclusive"):
        await engine.start("t-exclusive")
    await handle.execute_update(ClusterUpgradeWorkflow.reject, request("alice"))
    assert (await handle.result()).state == ChangeState.REJECTED


async def test_bad_input_is_refused_before_anything_changes(engine: Engine) -> None:
    before = engine.twin.cr("t-badinput")
    settings = engine.settings
    with pytest.raises(BadInput, match="no AerospikeCluster named 't-nope'"):
        resolve_cluster(settings, "t-nope", None)
    with pytest.raises(BadInput, match="not found"):
        resolve_cluster(settings, "t-badinput", "aero-elsewhere")
    with pytest.raises(VersionError, match="expected four dot-separated numbers"):
        AerospikeVersion.parse("8.1.2")
    snapshot = resolve_cluster(settings, "t-badinput", "aero-test")
    refusals = {
        "7.2.0.6": "downgrade",
        "9.0.0.0": "upgrade the operator first",
        "8.0.0.9": "nothing to upgrade",
    }
    for target, message in refusals.items():
        with pytest.raises(BadInput, match=message):
            plan_upgrade(settings, snapshot, AerospikeVersion.parse(target), "bob")
    now = datetime.now(UTC)
    window = FreezeWindow(
        start=now - timedelta(hours=1), end=now + timedelta(hours=1), tiers=["prod"], reason="sale day"
    )
    frozen = settings.model_copy(update={"freeze_windows": [window]})
    with pytest.raises(BadInput, match=r"freeze window .* \(sale day\)"):
        plan_upgrade(frozen, snapshot, AerospikeVersion.parse("8.1.2.0"), "bob")
    with pytest.raises(BadInput, match="no running change"):
        await act(engine.client, "change/aero-test/t-badinput", HumanAction.APPROVE, "alice", Role.APPROVER)
    after = engine.twin.cr("t-badinput")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_gate_times_out_to_reject_under_time_skipping(
    time_skipping_env: WorkflowEnvironment, twin: TwinProcess
) -> None:
    settings = load_settings(kubeconfig=twin.kubeconfig, task_queue=f"skip-{uuid.uuid4()}", **FAST)
    snapshot = resolve_cluster(settings, "t-timeout", "aero-test")
    plan = plan_upgrade(settings.model_copy(update={"gate_timeout_s": 7 * 24 * 3600.0}), snapshot,
                        AerospikeVersion.parse("8.1.2.0"), "bob")  # fmt: skip
    async with build_worker(time_skipping_env.client, settings):
        # The handle from the start lets result() skip time on the test server.
        handle = await start_upgrade(time_skipping_env.client, settings, plan, snapshot)
        final = await handle.result()
    assert final.state == ChangeState.REJECTED
    assert final.outcome == "no decision within 604800 s: rejected by policy"
    assert {s.name: s.actor for s in final.stages}["approval:start"] == "policy"
    assert twin.cr("t-timeout")["spec"]["image"] == OLD


async def test_killed_worker_mid_batch_is_replaced_and_each_patch_applies_once(
    temporal_env: WorkflowEnvironment, twin: TwinProcess
) -> None:
    settings = load_settings(kubeconfig=twin.kubeconfig, task_queue=f"kill-{uuid.uuid4()}", **FAST)
    env = {**os.environ, "AERODECK_KUBECONFIG": str(twin.kubeconfig), "AERODECK_TASK_QUEUE": settings.task_queue,
           "AERODECK_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host}  # fmt: skip
    victim = subprocess.Popen([sys.executable, "-m", "aerodeck", "worker"], env=env, stderr=subprocess.PIPE)
    generation = twin.cr("t-killed")["metadata"]["generation"]
    try:
        engine = Engine(temporal_env.client, settings, twin)
        # A slow time scale is not needed: the kill lands while AKO is between pods.
        handle = await engine.start("t-killed", approval="auto")
        await wait_until(handle, pods_moved)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    async with build_worker(temporal_env.client, settings):
        final: UpgradeStatus = await asyncio.wait_for(handle.result(), timeout=90)
    assert final.state == ChangeState.COMPLETED, final.outcome
    assert len([a for a in final.audit if a.action == "patched"]) == 1
    assert twin.cr("t-killed")["metadata"]["generation"] == generation + 1
    assert pod_images(twin, "t-killed") == {NEW}
