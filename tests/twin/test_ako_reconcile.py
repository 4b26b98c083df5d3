"""The AKO reconcile emulation: rollouts batch by batch per rack, failures, rollback, pause, stuck migrations,
node-down faults and operator upgrades, observed through the API and the twin's runtime."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from aerodeck.twin.fleet import NodeDown
from aerodeck.twin.kube.objects import POD
from aerodeck.twin.kube.store import Watch
from tests.twin.kube_fixtures import (
    GROUP,
    IMAGE_REPO,
    PLURAL,
    VERSION,
    TwinThread,
    cluster_entry,
    make_fleet,
    running_twin,
)
from tests.waiting import wait_until

OLD = "8.0.0.9"
NEW = "8.1.2.0"
CRASHING = "8.1.0.3"
NS = "aero-test"
OPERATOR_460 = "aerospike/aerospike-kubernetes-operator:4.6.0"

FLEET = make_fleet(
    [
        cluster_entry("rolling"),
        cluster_entry("racked", size=4, racks=2, batch=2),
        cluster_entry("crashing"),
        cluster_entry("paused"),
        cluster_entry("control"),
        cluster_entry("stuck"),
        cluster_entry("flaky"),
        cluster_entry("configured"),
    ],
    faults=[
        {"kind": "bad-image", "version": CRASHING, "reason": "CrashLoopBackOff"},
        {"kind": "stuck-migrations", "cluster": "stuck"},
    ],
)


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinThread]:
    with running_twin(FLEET, tmp_path_factory.mktemp("ako")) as twin:
        yield twin


@pytest.fixture(scope="module")
def custom(twin: TwinThread) -> Iterator[client.CustomObjectsApi]:
    with twin.api_client() as api:
        yield client.CustomObjectsApi(api)


@dataclass(frozen=True)
class PodChange:
    type: str
    name: str
    healthy: bool  # Ready, not terminating, not deleted
    image: str


class PodRecorder:
    """Records every pod change of one cluster from the store's watch, on the twin's loop."""

    def __init__(self, twin: TwinThread, cluster: str) -> None:
        self.twin = twin
        self.changes: list[PodChange] = []
        self._watch: Watch = twin.call(lambda: twin.twin.store.watch(POD, NS))
        self._task: asyncio.Task[None] = twin.call(lambda: asyncio.create_task(self._record(cluster)))

    async def _record(self, cluster: str) -> None:
        async for event in self._watch:
            pod = event.object
            if pod["metadata"]["labels"].get("aerospike.com/cr") != cluster:
                continue
            container = pod["status"]["containerStatuses"][0]
            healthy = event.type != "DELETED" and container["ready"] and "deletionTimestamp" not in pod["metadata"]
            self.changes.append(PodChange(event.type, pod["metadata"]["name"], healthy, container["image"]))

    def stop(self) -> list[PodChange]:
        async def cancel() -> None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._watch.close()

        self.twin.run(cancel())
        return self.changes


def batches(changes: list[PodChange]) -> list[set[str]]:
    """Group pod disruptions: a batch is the set of pods down together until all of them are back."""
    groups: list[set[str]] = []
    down: set[str] = set()
    for change in changes:
        if change.healthy:
            down.discard(change.name)
            continue
        if not down:
            groups.append(set())
        down.add(change.name)
        groups[-1].add(change.name)
    return groups


def image(version: str) -> str:
    return f"{IMAGE_REPO}:{version}"


def set_image(custom: client.CustomObjectsApi, name: str, version: str, **spec: Any) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, {"spec": {"image": image(version), **spec}})


def cr(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)


def completed_on(custom: client.CustomObjectsApi, name: str, version: str) -> bool:
    status = cr(custom, name).get("status", {})
    pods = status.get("pods", {})
    return (
        status.get("phase") == "Completed"
        and status.get("image") == image(version)
        and bool(pods)
        and all(p["image"] == image(version) for p in pods.values())
    )


def events(twin: TwinThread, cluster: str) -> list[dict[str, Any]]:
    with twin.api_client() as api:
        listing = client.CoreV1Api(api).list_namespaced_event(
            NS, field_selector=f"involvedObject.name={cluster}", _preload_content=False
        )
    items: list[dict[str, Any]] = json.loads(listing.data)["items"]
    return sorted(items, key=lambda e: int(e["metadata"]["resourceVersion"]))


def node_versions(twin: TwinThread, cluster: str) -> dict[str, str]:
    return twin.call(lambda: {n.pod_name: str(n.version) for n in twin.runtime.cluster(NS, cluster).nodes.values()})


def pods_of(twin: TwinThread, cluster: str) -> list[Any]:
    with twin.api_client() as api:
        return list(client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"aerospike.com/cr={cluster}").items)


def test_image_change_rolls_one_pod_at_a_time(twin: TwinThread, custom: client.CustomObjectsApi) -> None:
    recorder = PodRecorder(twin, "rolling")
    set_image(custom, "rolling", NEW)
    assert cr(custom, "rolling")["metadata"]["generation"] == 2
    wait_until(lambda: completed_on(custom, "rolling", NEW), what="rolling to complete on the new image")
    changes = recorder.stop()

    # AKO walks the rack from the highest ordinal down, one pod per batch without rollingUpdateBatchSize.
    assert batches(changes) == [{"rolling-0-2"}, {"rolling-0-1"}, {"rolling-0-0"}]
    assert all(c.image == image(NEW) for c in changes if c.healthy)
    assert {p.spec.containers[0].image for p in pods_of(twin, "rolling")} == {image(NEW)}
    assert all(p.status.container_statuses[0].ready for p in pods_of(twin, "rolling"))
    assert set(node_versions(twin, "rolling").values()) == {NEW}

    reasons = [(e["reason"], e["message"]) for e in events(twin, "rolling")]
    updates = [m for r, m in reasons if r == "PodImageUpdate"]
    assert [m.rsplit(" ", 1)[-1] for m in updates] == ["rolling-0-2", "rolling-0-1", "rolling-0-0"]
    assert reasons[-1][0] == "RackImageUpdated"
    status = cr(custom, "rolling")["status"]
    assert status["size"] == 3 and status["rackConfig"] == cr(custom, "rolling")["spec"]["rackConfig"]


def test_two_racks_with_batch_size_two(twin: TwinThread, custom: client.CustomObjectsApi) -> None:
    recorder = PodRecorder(twin, "racked")
    set_image(custom, "racked", NEW)
    wait_until(lambda: completed_on(custom, "racked", NEW), what="racked to complete")
    groups = batches(recorder.stop())
    # Racks one after the other, two pods of a rack restarting together.
    assert groups == [{"racked-1-0", "racked-1-1"}, {"racked-2-0", "racked-2-1"}]
    assert set(node_versions(twin, "racked").values()) == {NEW}
    rack_events = [e["message"] for e in events(twin, "racked") if e["reason"] == "RackImageUpdated"]
    assert rack_events == ["[rack-1] Image Updated", "[rack-2] Image Updated"]


def test_crash_looping_image_errors_until_rolled_back(twin: TwinThread, custom: client.CustomObjectsApi) -> None:
    set_image(custom, "crashing", CRASHING)
    wait_until(lambda: cr(custom, "crashing")["status"]["phase"] == "Error", what="phase Error")

    phases: list[str] = []

    def restarts_grow() -> bool:
        phases.append(cr(custom, "crashing")["status"]["phase"])
        pod = next(p for p in pods_of(twin, "crashing") if p.metadata.name == "crashing-0-2")
        container = pod.status.container_statuses[0]
        assert container.state.waiting.reason == "CrashLoopBackOff"
        return container.restart_count >= 6

    wait_until(restarts_grow, what="crashing-0-2 restartCount to grow")
    # Error persists: controller-runtime retries flip it to InProgress briefly, never to Completed.
    # (How many samples the poll takes depends on the machine's load, so only a floor.)
    assert len(phases) >= 2
    assert "Completed" not in phases
    assert phases.count("Error") >= len(phases) // 2
    # The rollout stopped at the first batch: the other pods still run the old image.
    images = {p.metadata.name: p.spec.containers[0].image for p in pods_of(twin, "crashing")}
    assert images == {"crashing-0-2": image(CRASHING), "crashing-0-1": image(OLD), "crashing-0-0": image(OLD)}
    assert twin.call(lambda: not twin.runtime.cluster(NS, "crashing").nodes["crashing-0-2"].up)
    warnings = {e["reason"] for e in events(twin, "crashing") if e["type"] == "Warning"}
    assert {"UpdateFailed", "RackImageUpdateFailed"} <= warnings

    set_image(custom, "crashing", OLD)  # rollback: the previous image back
    wait_until(lambda: completed_on(custom, "crashing", OLD), what="rollback to complete")
    pods = pods_of(twin, "crashing")
    assert all(p.status.container_statuses[0].ready for p in pods)
    assert {p.status.container_statuses[0].restart_count for p in pods} == {0}
    assert set(node_versions(twin, "crashing").values()) == {OLD}
    assert twin.call(lambda: all(n.up for n in twin.runtime.cluster(NS, "crashing").nodes.values()))


def test_paused_freezes_reconciliation(twin: TwinThread, custom: client.CustomObjectsApi) -> None:
    set_image(custom, "paused", NEW, paused=True)
    set_image(custom, "control", NEW)
    # The control cluster's whole rollout is the time the paused one had to start moving.
    wait_until(lambda: completed_on(custom, "control", NEW), what="control to complete")
    frozen = cr(custom, "paused")
    assert frozen["status"]["phase"] == "Completed" and frozen["status"]["image"] == image(OLD)
    assert {p.spec.containers[0].image for p in pods_of(twin, "paused")} == {image(OLD)}
    assert not [e for e in events(twin, "paused") if e["reason"] == "PodImageUpdate"]

    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "paused", {"spec": {"paused": None}})
    wait_until(lambda: completed_on(custom, "paused", NEW), what="paused cluster to resume and complete")
    assert "paused" not in cr(custom, "paused")["status"]


def test_stuck_migrations_keep_in_progress(twin: TwinThread, custom: client.CustomObjectsApi) -> None:
    set_image(custom, "stuck", NEW)

    def requeued_repeatedly() -> bool:
        waits = [e for e in events(twin, "stuck") if e["reason"] == "WaitMigration"]
        return bool(waits) and waits[-1]["count"] >= 3

    phases: list[str] = []

    def watch_phase() -> bool:
        phases.append(cr(custom, "stuck")["status"]["phase"])
        return requeued_repeatedly()

    wait_until(watch_phase, what="AKO to requeue on unfinished migrations")
    assert set(phases) == {"InProgress"}
    pods = cr(custom, "stuck")["status"]["pods"]
    assert sorted(name for name, p in pods.items() if p["image"] == image(NEW)) == ["stuck-0-2"]
    assert twin.call(lambda: twin.runtime.cluster(NS, "stuck").migrations_remaining) > 0


def test_node_down_fault_makes_pod_unready(twin: TwinThread, custom: client.CustomObjectsApi) -> None:
    fault = NodeDown(cluster="flaky", pod="flaky-0-1")
    twin.call(lambda: twin.runtime.faults.append(fault))

    def pod_ready() -> bool:
        pod = next(p for p in pods_of(twin, "flaky") if p.metadata.name == "flaky-0-1")
        return bool(pod.status.container_statuses[0].ready)

    wait_until(lambda: not pod_ready(), what="flaky-0-1 to become unready")
    assert twin.call(lambda: not twin.runtime.cluster(NS, "flaky").nodes["flaky-0-1"].up)
    twin.call(lambda: twin.runtime.faults.remove(fault))
    wait_until(pod_ready, what="flaky-0-1 to recover")
    assert twin.call(lambda: twin.runtime.cluster(NS, "flaky").nodes["flaky-0-1"].up)


def test_config_change_rolling_restarts_on_the_same_image(twin: TwinThread, custom: client.CustomObjectsApi) -> None:
    recorder = PodRecorder(twin, "configured")
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "configured", {"spec": {"aerospikeConfig": {"service": {"proto-fd-max": 20000}}}}
    )

    def reconciled() -> bool:
        status = cr(custom, "configured")["status"]
        return status["phase"] == "Completed" and status["aerospikeConfig"]["service"].get("proto-fd-max") == 20000

    wait_until(reconciled, what="the config change to be reconciled")
    assert batches(recorder.stop()) == [{"configured-0-2"}, {"configured-0-1"}, {"configured-0-0"}]
    assert set(node_versions(twin, "configured").values()) == {OLD}
    assert [e["reason"] for e in events(twin, "configured")].count("PodRestarted") == 3


def test_operator_upgrade_rolls_deployment_and_restarts_pods(tmp_path_factory: pytest.TempPathFactory) -> None:
    fleet = make_fleet([cluster_entry("one", size=2)])
    fleet = fleet.model_copy(
        update={"operator": fleet.operator.model_copy(update={"restarts_pods_on_upgrade_to": ["4.6.0"]})}
    )
    with running_twin(fleet, tmp_path_factory.mktemp("operator")) as twin, twin.api_client() as api:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        uids = {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(NS).items}
        ready_seen: list[int] = []
        apps.patch_namespaced_deployment(
            "aerospike-kubernetes-operator",
            "aerospike-operator",
            {"spec": {"template": {"spec": {"containers": [{"name": "manager", "image": OPERATOR_460}]}}}},
        )

        def rolled() -> bool:
            status = apps.read_namespaced_deployment("aerospike-kubernetes-operator", "aerospike-operator").status
            ready_seen.append(status.ready_replicas or 0)
            return status.updated_replicas == 2 and status.ready_replicas == 2 and min(ready_seen) < 2

        wait_until(rolled, what="the operator Deployment to roll")

        def restarted() -> bool:
            pods = core.list_namespaced_pod(NS).items
            return len(pods) == 2 and all(
                p.metadata.uid != uids[p.metadata.name] and p.status.container_statuses[0].ready for p in pods
            )

        wait_until(restarted, what="every Aerospike pod to restart after the operator upgrade")
        wait_until(
            lambda: cr(client.CustomObjectsApi(api), "one")["status"]["phase"] == "Completed",
            what="Completed after the rolling restart",
        )
        assert set(node_versions(twin, "one").values()) == {OLD}  # same image, restarted
        restarted_events = [e for e in events(twin, "one") if e["reason"] == "PodRestarted"]
        assert len(restarted_events) == 2
