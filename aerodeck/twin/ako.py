"""The AKO reconcile emulation (docs/reference/aerospike-ako.md §2): it watches AerospikeCluster spec changes
in the twin's object store and rolls pods the way AKO does, plays kubelet and StatefulSet for the pods,
drives the Aerospike nodes through :class:`ClusterRuntime`, emits Events, and rolls the operator Deployment.

Timings are in twin seconds (see :class:`TwinClock`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from aerodeck.twin.fleet import BadImage, NodeDown, StuckMigrations
from aerodeck.twin.kube.objects import (
    AEROSPIKE_CLUSTER,
    DEPLOYMENT,
    EVENT,
    OPERATOR_CONTAINER,
    POD,
    PodSlot,
    PodState,
    aerospike_config_hash,
    cluster_status,
    deployment_status,
    event_object,
    operator_deployment_name,
    pod_object,
    pod_slots,
    pod_status_entry,
)
from aerodeck.twin.kube.store import ApiError, JsonObj, ObjectStore, Watch, WatchEvent, now_iso
from aerodeck.twin.runtime import ClusterRuntime, FleetRuntime
from aerodeck.versions import AerospikeVersion, VersionError

log = logging.getLogger(__name__)

# A pod restart takes about a minute of twin time: graceful shutdown, scheduling plus the init container,
# then asd start-up until the readiness probe passes.
TERMINATING_SECONDS = 15.0
PENDING_SECONDS = 20.0
STARTING_SECONDS = 25.0
# AKO's stability wait: a few tries 10 s apart, then requeue after 60 s (rack.go waitForClusterStability).
STABILITY_TRIES = 6
STABILITY_POLL_SECONDS = 10.0
STABILITY_REQUEUE_SECONDS = 60.0
BATCH_REQUEUE_SECONDS = 1.0
# controller-runtime retries failed reconciles with exponential backoff; these are twin seconds.
ERROR_BACKOFF_FIRST = 10.0
ERROR_BACKOFF_MAX = 300.0
# The time AKO spends inspecting a rack before it reports failed pods again (so Error flaps visibly).
FAILURE_CHECK_SECONDS = 3.0
CRASH_BACKOFF_FIRST = 10.0
CRASH_BACKOFF_MAX = 300.0
OPERATOR_ROLL_STEP_SECONDS = 15.0
FAULT_POLL_REAL_SECONDS = 0.05

FAILURE_REASONS = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"})


class ReconcileError(Exception):
    """A reconcile that failed: AKO sets phase Error and controller-runtime retries with backoff."""

    def __init__(self, message: str, rack_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rack_id = rack_id


@dataclass
class _Pod:
    slot: PodSlot
    port: int
    state: PodState
    config_hash: str  # of the aerospikeConfig the pod's asd was started with
    restart_pending: bool = False  # an operator upgrade asked for a rolling restart on the same image
    busy: bool = False
    down_by_fault: bool = False
    crash_loop: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def failed(self) -> bool:
        return self.state.waiting_reason in FAILURE_REASONS


class EventRecorder:
    """Writes core/v1 Events about an object, aggregating repeats into ``count`` as the API server's
    event correlator does."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._names: dict[tuple[str, str, str, str, str], str] = {}

    def emit(self, involved: JsonObj, reason: str, message: str, event_type: str = "Normal") -> None:
        meta = involved["metadata"]
        key = (meta.get("namespace", ""), meta["name"], reason, message, event_type)
        name = self._names.get(key)
        if name is not None and self._store.find(EVENT, meta.get("namespace"), name) is not None:

            def bump(event: JsonObj) -> None:
                event["count"] = int(event.get("count", 1)) + 1
                event["lastTimestamp"] = now_iso()

            self._store.update(EVENT, meta.get("namespace"), name, bump)
            return
        event = event_object(involved, reason, message, event_type)
        self._names[key] = event["metadata"]["name"]
        self._store.put(EVENT, event)


class ClusterController:
    """Reconciles one AerospikeCluster; one reconcile at a time, like controller-runtime per object."""

    def __init__(self, ako: AkoEmulator, cluster: ClusterRuntime) -> None:
        self.ako = ako
        self.store = ako.store
        self.cluster = cluster
        self.clock = cluster.clock
        self.namespace = cluster.k8s_namespace
        self.name = cluster.name
        self.pods: dict[str, _Pod] = {}
        self.wake = asyncio.Event()
        self.generation = 0
        self._backoff = ERROR_BACKOFF_FIRST
        self._touched_racks: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    async def adopt(self) -> None:
        """Take over a settled cluster at twin start: pods Running and ready on the spec image, nodes up,
        status Completed."""
        cr = self.store.get(AEROSPIKE_CLUSTER, self.namespace, self.name)
        self.generation = int(cr["metadata"].get("generation", 1))
        image = cr["spec"]["image"]
        version = _image_version(image)
        entries = {}
        for slot in pod_slots(self.cluster.spec):
            node = self.cluster.nodes[slot.name]
            pod = _Pod(slot, node.port, PodState(image=image), aerospike_config_hash(cr["spec"]))
            pod.down_by_fault = self.ako.node_down_by_fault(self.name, slot.name)
            if pod.down_by_fault:
                pod.state = replace(pod.state, ready=False)
            self.pods[slot.name] = pod
            self._write_pod(pod)
            if not pod.down_by_fault and version is not None:
                await self.cluster.start_node(slot.name, version)
            entries[slot.name] = pod_status_entry(cr, slot, image, node.port)
        # A fleet at twin start has finished rebalancing long ago.
        self.cluster.migrations_total = 0
        status = cluster_status(cr, "Completed", entries)
        self.store.set_status(AEROSPIKE_CLUSTER, self.namespace, self.name, status)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ako-{self.namespace}-{self.name}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        tasks += [p.crash_loop for p in self.pods.values() if p.crash_loop is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def on_cr_event(self, event: WatchEvent) -> None:
        generation = int(event.object["metadata"].get("generation", 0))
        if generation != self.generation:
            self.generation = generation
            self.wake.set()

    def on_pod_deleted(self, name: str) -> None:
        """A pod deleted by someone else: its StatefulSet recreates it on the same image."""
        pod = self.pods.get(name)
        if pod is None or pod.busy:  # busy: the emulation itself is deleting and recreating it
            return
        self._spawn(self._recreate_deleted(pod))

    def request_rolling_restart(self) -> None:
        for pod in self.pods.values():
            pod.restart_pending = True
        self.wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------------------------------ reconcile

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            try:
                delay = await self._reconcile()
            except ApiError as exc:
                if exc.code == 404:
                    return  # the CR is gone
                log.warning("reconcile of %s/%s hit %s", self.namespace, self.name, exc.message)
                delay = BATCH_REQUEUE_SECONDS
            except Exception:  # a bug must not kill the controller: log it and retry like controller-runtime
                log.exception("reconcile of %s/%s failed", self.namespace, self.name)
                delay = ERROR_BACKOFF_MAX
            if self.wake.is_set():
                continue
            if delay is None:
                await self.wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay / self.clock.scale)

    async def _reconcile(self) -> float | None:
        """One reconcile pass; returns the requeue delay in twin seconds, or None when nothing is left."""
        cr = self.store.get(AEROSPIKE_CLUSTER, self.namespace, self.name)
        if cr["spec"].get("paused"):
            return None
        self._set_phase("InProgress")
        try:
            delay = await self._reconcile_racks(cr)
        except ReconcileError as exc:
            self._set_phase("Error")
            latest = self.store.find(AEROSPIKE_CLUSTER, self.namespace, self.name) or cr
            if exc.rack_id is not None:
                self.ako.events.emit(
                    latest,
                    "RackImageUpdateFailed",
                    f"[rack-{exc.rack_id}] Failed to update aerospike image: {exc.message}",
                    "Warning",
                )
            self.ako.events.emit(latest, "UpdateFailed", f"Failed to update AerospikeCluster: {exc.message}", "Warning")
            delay = self._backoff
            self._backoff = min(self._backoff * 2, ERROR_BACKOFF_MAX)
            return delay
        self._backoff = ERROR_BACKOFF_FIRST
        return delay

    async def _reconcile_racks(self, cr: JsonObj) -> float | None:
        spec = cr["spec"]
        desired = spec["image"]
        config_hash = aerospike_config_hash(spec)
        version = _image_version(desired)
        if version is None:
            raise ReconcileError(f"image {desired} carries no Aerospike version")
        rack_ids = [int(r["id"]) for r in (spec.get("rackConfig") or {}).get("racks") or [{"id": 0}]]
        pod_racks = sorted({p.slot.rack_id for p in self.pods.values()})
        if spec.get("size") != len(self.pods) or sorted(rack_ids) != pod_racks:
            raise ReconcileError(
                "the fleet twin emulates image rollouts and restarts, not scaling or rack changes "
                f"(spec.size {spec.get('size')}, racks {rack_ids}; "
                f"running {len(self.pods)} pods in racks {pod_racks})"
            )

        # Failed pods first, in every rack: AKO deletes them without safety checks, so a fixed image recovers.
        for rack_id in rack_ids:
            failed = [p for p in self._rack_pods(rack_id) if p.failed and p.state.image != desired and not p.busy]
            if failed:
                await self._restart_batch(cr, rack_id, failed, desired, version)
                return BATCH_REQUEUE_SECONDS

        for rack_id in rack_ids:
            rack_pods = self._rack_pods(rack_id)
            broken = [p for p in rack_pods if p.failed]
            if broken:
                await self.clock.sleep(FAILURE_CHECK_SECONDS)
                raise ReconcileError(_failure_message(broken), rack_id)
            todo = [p for p in rack_pods if _needs_restart(p, desired, config_hash) and not p.busy]
            if not todo:
                if any(p.busy for p in rack_pods):
                    return STABILITY_POLL_SECONDS  # a pod its StatefulSet is recreating
                if rack_id in self._touched_racks:
                    self._touched_racks.discard(rack_id)
                    self.ako.events.emit(cr, "RackImageUpdated", f"[rack-{rack_id}] Image Updated")
                continue
            if not await self._wait_for_stability(cr, rack_id):
                return STABILITY_REQUEUE_SECONDS
            batch = todo[: _batch_size(spec, len(rack_pods))]
            await self._restart_batch(cr, rack_id, batch, desired, version)
            return BATCH_REQUEUE_SECONDS

        entries = {
            name: pod_status_entry(cr, pod.slot, pod.state.image, pod.port) for name, pod in sorted(self.pods.items())
        }
        status = cluster_status(cr, "Completed", entries)
        self.store.set_status(AEROSPIKE_CLUSTER, self.namespace, self.name, status)
        return None

    def _rack_pods(self, rack_id: int) -> list[_Pod]:
        # AKO walks a rack from the highest ordinal down (getOrderedRackPodList).
        pods = [p for p in self.pods.values() if p.slot.rack_id == rack_id]
        return sorted(pods, key=lambda p: p.slot.ordinal, reverse=True)

    async def _wait_for_stability(self, cr: JsonObj, rack_id: int) -> bool:
        """All pods ready, one cluster, no migrations; else AKO requeues and the phase stays InProgress."""
        for attempt in range(STABILITY_TRIES):
            if all(p.state.ready for p in self.pods.values()) and self.cluster.cluster_stable():
                return True
            if attempt == 0:
                self.ako.events.emit(
                    cr,
                    "WaitMigration",
                    f"[rack-{rack_id}] Waiting for migrations to complete and pods to be ready",
                )
            await self.clock.sleep(STABILITY_POLL_SECONDS)
        return False

    async def _restart_batch(
        self, cr: JsonObj, rack_id: int, batch: list[_Pod], image: str, version: AerospikeVersion
    ) -> None:
        self._touched_racks.add(rack_id)
        for pod in batch:
            if pod.state.image != image:
                self.ako.events.emit(
                    cr, "PodImageUpdate", f"[rack-{rack_id}] Updating Containers on Pod {pod.slot.name}"
                )
            else:
                self.ako.events.emit(cr, "PodRestart", f"[rack-{rack_id}] Restarting Pod {pod.slot.name}")
        same_image = [pod.state.image == image for pod in batch]
        results = await asyncio.gather(*(self._restart_pod(cr, pod, image, version) for pod in batch))
        failed = [pod for pod, ok in zip(batch, results, strict=True) if not ok]
        for pod, ok, restart_only in zip(batch, results, same_image, strict=True):
            if ok:
                reason = "PodRestarted" if restart_only else "PodImageUpdated"
                self.ako.events.emit(cr, reason, f"[rack-{rack_id}] Restarted Pod {pod.slot.name} on {image}")
        if failed:
            raise ReconcileError(_failure_message(failed), rack_id)

    # ------------------------------------------------------------------------------- kubelet / StatefulSet

    async def _restart_pod(
        self, cr: JsonObj, pod: _Pod, image: str, version: AerospikeVersion, already_deleted: bool = False
    ) -> bool:
        """Delete the pod and let its StatefulSet recreate it on ``image``; True once Running and ready."""
        name = pod.slot.name
        pod.busy = True
        try:
            if pod.crash_loop is not None:
                pod.crash_loop.cancel()
                pod.crash_loop = None
            if not already_deleted:
                pod.state = replace(pod.state, ready=False, terminating=True)
                self._write_pod(pod)
            await self.cluster.stop_node(name)
            if not already_deleted:
                await self.clock.sleep(TERMINATING_SECONDS)
                with contextlib.suppress(ApiError):
                    self.store.delete(POD, self.namespace, name)
            pod.restart_pending = False
            pod.config_hash = aerospike_config_hash(cr["spec"])
            pod.state = PodState(image=image, phase="Pending", ready=False, waiting_reason="PodInitializing")
            self._write_pod(pod)
            await self.clock.sleep(PENDING_SECONDS)
            # The init container records the pod in status.pods before asd starts.
            entry = pod_status_entry(cr, pod.slot, image, pod.port)
            self.store.update(
                AEROSPIKE_CLUSTER,
                self.namespace,
                self.name,
                lambda o: o.setdefault("status", {}).setdefault("pods", {}).update({name: entry}),
                "status",
            )
            bad = self.ako.bad_image(version)
            if bad is not None:
                self._fail_pod(pod, bad.reason)
                return False
            pod.state = PodState(image=image, phase="Running", ready=False)
            self._write_pod(pod)
            pod.down_by_fault = self.ako.node_down_by_fault(self.name, name)
            if pod.down_by_fault:
                return True  # the node stays down and the pod unready until the fault clears
            await self.cluster.start_node(name, version)
            await self.clock.sleep(STARTING_SECONDS)
            pod.state = replace(pod.state, ready=True)
            self._write_pod(pod)
            return True
        finally:
            pod.busy = False

    def _fail_pod(self, pod: _Pod, reason: str) -> None:
        if reason == "ImagePullBackOff":
            pod.state = PodState(image=pod.state.image, phase="Pending", ready=False, waiting_reason=reason)
        else:
            pod.state = PodState(pod.state.image, "Running", ready=False, restart_count=1, waiting_reason=reason)
            pod.crash_loop = asyncio.create_task(self._crash_loop(pod))
        self._write_pod(pod)

    async def _crash_loop(self, pod: _Pod) -> None:
        """kubelet restarting a crashing container with exponential back-off: restartCount keeps growing."""
        delay = CRASH_BACKOFF_FIRST
        while True:
            await self.clock.sleep(delay)
            pod.state = replace(pod.state, restart_count=pod.state.restart_count + 1)
            self._write_pod(pod)
            delay = min(delay * 2, CRASH_BACKOFF_MAX)

    async def _recreate_deleted(self, pod: _Pod) -> None:
        cr = self.store.find(AEROSPIKE_CLUSTER, self.namespace, self.name)
        version = _image_version(pod.state.image)
        if cr is None or version is None:
            return
        await self._restart_pod(cr, pod, pod.state.image, version, already_deleted=True)
        self.wake.set()

    def set_node_down(self, pod_name: str, down: bool) -> None:
        pod = self.pods.get(pod_name)
        if pod is None or pod.down_by_fault == down or pod.busy:
            return
        pod.down_by_fault = down
        self._spawn(self._apply_node_down(pod, down))

    async def _apply_node_down(self, pod: _Pod, down: bool) -> None:
        if down:
            pod.state = replace(pod.state, ready=False)
            self._write_pod(pod)
            await self.cluster.stop_node(pod.slot.name)
        elif not pod.failed:
            version = _image_version(pod.state.image)
            if version is not None:
                await self.cluster.start_node(pod.slot.name, version)
                pod.state = replace(pod.state, ready=True)
                self._write_pod(pod)
        self.wake.set()

    def _write_pod(self, pod: _Pod) -> None:
        self.store.put(POD, pod_object(pod.slot, self.namespace, pod.state, pod.port))

    def _set_phase(self, phase: str) -> None:
        def mutate(obj: JsonObj) -> None:
            obj.setdefault("status", {})["phase"] = phase

        self.store.update(AEROSPIKE_CLUSTER, self.namespace, self.name, mutate, "status")

    async def remove(self) -> None:
        """The CR was deleted: AKO's finalizer tears the cluster down."""
        await self.stop()
        for name in list(self.pods):
            await self.cluster.stop_node(name)
            with contextlib.suppress(ApiError):
                self.store.delete(POD, self.namespace, name)


class AkoEmulator:
    """The operator: one controller per AerospikeCluster, plus the operator Deployment's own rollouts."""

    def __init__(self, store: ObjectStore, runtime: FleetRuntime) -> None:
        self.store = store
        self.runtime = runtime
        self.events = EventRecorder(store)
        self.operator_version = runtime.fleet.operator.version
        self.controllers: dict[tuple[str, str], ClusterController] = {}
        self._stuck_by_fault: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._deployment_generation = 0

    async def start(self) -> None:
        self._sync_faults()
        for key, cluster in sorted(self.runtime.clusters.items()):
            if self.store.find(AEROSPIKE_CLUSTER, *key) is None:
                continue
            controller = ClusterController(self, cluster)
            await controller.adopt()
            self.controllers[key] = controller
        deployment = self._deployment()
        if deployment is not None:
            self._deployment_generation = int(deployment["metadata"].get("generation", 1))
        # Subscribe before starting controllers so that no spec change is missed.
        watch = self.store.watch()
        for controller in self.controllers.values():
            controller.start()
        self._tasks = [
            asyncio.create_task(self._watch_loop(watch), name="ako-watch"),
            asyncio.create_task(self._fault_loop(), name="ako-faults"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for controller in self.controllers.values():
            await controller.stop()

    # -------------------------------------------------------------------------------------------- faults

    def bad_image(self, version: AerospikeVersion) -> BadImage | None:
        for fault in self.runtime.faults:
            if isinstance(fault, BadImage) and fault.version == version:
                return fault
        return None

    def node_down_by_fault(self, cluster: str, pod: str) -> bool:
        return any(isinstance(f, NodeDown) and f.cluster == cluster and f.pod == pod for f in self.runtime.faults)

    def _sync_faults(self) -> None:
        stuck_names = {f.cluster for f in self.runtime.faults if isinstance(f, StuckMigrations)}
        for key, cluster in self.runtime.clusters.items():
            stuck = cluster.name in stuck_names
            if stuck and key not in self._stuck_by_fault:
                cluster.migrations_stuck = True
                self._stuck_by_fault.add(key)
            elif not stuck and key in self._stuck_by_fault:
                cluster.migrations_stuck = False
                self._stuck_by_fault.discard(key)
        for controller in self.controllers.values():
            for pod_name in controller.pods:
                controller.set_node_down(pod_name, self.node_down_by_fault(controller.name, pod_name))

    async def _fault_loop(self) -> None:
        # Faults can be set and cleared at run time (``aerodeck twin fault``); a cheap poll keeps up.
        while True:
            await asyncio.sleep(FAULT_POLL_REAL_SECONDS)
            self._sync_faults()

    # ------------------------------------------------------------------------------------------- watching

    async def _watch_loop(self, watch: Watch) -> None:
        try:
            async for event in watch:
                self._dispatch(event)
        finally:
            watch.close()

    def _dispatch(self, event: WatchEvent) -> None:
        meta = event.object["metadata"]
        if event.kind == AEROSPIKE_CLUSTER:
            controller = self.controllers.get((meta.get("namespace"), meta["name"]))
            if controller is None:
                if event.type == "ADDED":
                    self._refuse_new_cluster(event.object)
                return
            if event.type == "DELETED":
                del self.controllers[(meta["namespace"], meta["name"])]
                task = asyncio.create_task(controller.remove())
                self._tasks.append(task)
            else:
                controller.on_cr_event(event)
        elif event.kind == POD and event.type == "DELETED":
            cr_name = (meta.get("labels") or {}).get("aerospike.com/cr")
            controller = self.controllers.get((meta.get("namespace"), cr_name or ""))
            if controller is not None:
                controller.on_pod_deleted(meta["name"])
        elif event.kind == DEPLOYMENT and event.type == "MODIFIED":
            self._on_deployment(event.object)

    def _refuse_new_cluster(self, cr: JsonObj) -> None:
        """Clusters need Aerospike nodes, which the twin creates from its fleet file only: say so on the CR."""
        message = (
            "the fleet twin only runs the clusters declared in its fleet file; add "
            f"{cr['metadata'].get('namespace')}/{cr['metadata']['name']} there and restart the twin"
        )
        meta = cr["metadata"]
        self.store.set_status(AEROSPIKE_CLUSTER, meta.get("namespace"), meta["name"], {"phase": "Error"})
        self.events.emit(cr, "UpdateFailed", message, "Warning")

    def _deployment(self) -> JsonObj | None:
        operator = self.runtime.fleet.operator
        return self.store.find(DEPLOYMENT, operator.namespace, operator_deployment_name(operator))

    def _on_deployment(self, deployment: JsonObj) -> None:
        operator = self.runtime.fleet.operator
        meta = deployment["metadata"]
        if meta["name"] != operator_deployment_name(operator) or meta.get("namespace") != operator.namespace:
            return
        generation = int(meta.get("generation", 1))
        if generation == self._deployment_generation:
            return
        self._deployment_generation = generation
        self._tasks.append(asyncio.create_task(self._roll_operator(deployment)))

    async def _roll_operator(self, deployment: JsonObj) -> None:
        """A Deployment rollout: new pods come up one by one, readyReplicas dips then recovers; a new operator
        version that changes the generated pod spec then rolling-restarts every Aerospike pod."""
        operator = self.runtime.fleet.operator
        name, namespace = operator_deployment_name(operator), operator.namespace
        spec = deployment["spec"]
        replicas = int(spec.get("replicas", 1))
        generation = int(deployment["metadata"].get("generation", 1))
        clock = self.runtime.clock
        for updated in range(1, replicas + 1):
            ready = max(replicas - 1, 0)
            status = deployment_status(replicas, ready, updated, generation)
            self.store.set_status(DEPLOYMENT, namespace, name, status)
            await clock.sleep(OPERATOR_ROLL_STEP_SECONDS)
        final = deployment_status(replicas, replicas, replicas, generation)
        self.store.set_status(DEPLOYMENT, namespace, name, final)
        version = _operator_version(spec)
        if version is None or version == self.operator_version:
            return
        self.operator_version = version
        if version in operator.restarts_pods_on_upgrade_to:
            for controller in self.controllers.values():
                controller.request_rolling_restart()


def _operator_version(deployment_spec: JsonObj) -> str | None:
    containers = ((deployment_spec.get("template") or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        if container.get("name") == OPERATOR_CONTAINER:
            _, sep, tag = str(container.get("image", "")).rpartition(":")
            return tag.lstrip("v") if sep and "/" not in tag else None
    return None


def _needs_restart(pod: _Pod, image: str, config_hash: str) -> bool:
    """A new image, a changed aerospikeConfig, or an operator upgrade that changed the generated pod spec."""
    return pod.state.image != image or pod.config_hash != config_hash or pod.restart_pending


def _image_version(image: str) -> AerospikeVersion | None:
    try:
        return AerospikeVersion.from_image(image)
    except VersionError:
        return None


def _batch_size(spec: JsonObj, rack_size: int) -> int:
    """rackConfig.rollingUpdateBatchSize as an int or a percentage of the rack; 1 when unset or zero."""
    raw = (spec.get("rackConfig") or {}).get("rollingUpdateBatchSize")
    if isinstance(raw, str) and raw.endswith("%"):
        try:
            return max(int(rack_size * int(raw[:-1]) / 100), 1)
        except ValueError:
            return 1
    if isinstance(raw, int) and raw > 0:
        return raw
    return 1


def _failure_message(pods: list[_Pod]) -> str:
    details = ", ".join(f"{p.slot.name} ({p.state.waiting_reason} on {p.state.image})" for p in pods)
    return f"pods failed to start: {details}"
