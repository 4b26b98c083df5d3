"""The Kubernetes API emulator: an aiohttp application on loopback serving discovery, CRUD, patches, the
status subresource, watches and server-side Tables from an :class:`ObjectStore`, so the official client and
kubectl work unchanged. Every failure is answered as a ``kind: Status`` object; no request crashes the server.
:class:`KubeTwin` composes the store, this server and the AKO emulation for a fleet runtime."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from aerodeck.twin.ako import AkoEmulator
from aerodeck.twin.fleet import ApiFaults
from aerodeck.twin.kube.admission import admit_aerospike_cluster
from aerodeck.twin.kube.kubeconfig import write_kubeconfig
from aerodeck.twin.kube.objects import (
    AEROSPIKE_CLUSTER,
    ALL_KINDS,
    CRD,
    DEPLOYMENT,
    NAMESPACE,
    cluster_cr,
    crd_objects,
    namespace_object,
    namespaces_of,
    operator_deployment,
    pod_slots,
    printer_columns,
)
from aerodeck.twin.kube.store import (
    PATCH_TYPES,
    Admission,
    ApiError,
    JsonObj,
    ObjectStore,
    ResourceKind,
    WatchEvent,
    bad_request,
    conflict,
    matches,
    not_found,
    parse_field_selector,
    parse_label_selector,
)
from aerodeck.twin.runtime import ClusterRuntime, FleetRuntime, NodeRuntime

log = logging.getLogger(__name__)

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-aerodeck-twin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

ADMISSION: dict[ResourceKind, Admission] = {AEROSPIKE_CLUSTER: admit_aerospike_cluster}
# Deletes that would destroy the fleet: refused outright.
PROTECTED_DELETES = {
    CRD: "CustomResourceDefinitions must never be deleted: deleting one deletes every custom resource of its "
    "kind (every Aerospike cluster). Upgrade CRDs with kubectl replace instead.",
    NAMESPACE: "the fleet twin does not delete namespaces: they hold Aerospike clusters",
}
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_response(error: ApiError) -> web.Response:
    return web.json_response(error.status(), status=error.code)


class KubeApi:
    """The request handlers; ``faults`` comes from the fleet runtime and is read on every request."""

    def __init__(self, store: ObjectStore, runtime: FleetRuntime | None = None, seed: int = 0) -> None:
        self.store = store
        self.runtime = runtime
        self._rng = random.Random(seed)
        self._stopping = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._error_middleware, self._latency_middleware], client_max_size=8 << 20)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._stopping.set()  # ends open watch streams

    # ------------------------------------------------------------------------------------------ middleware

    @web.middleware
    async def _error_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return status_response(exc)
        except web.HTTPException as exc:
            return status_response(ApiError(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason))
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # the twin must answer every request, even one that exposes a bug
            log.exception("twin API failed on %s %s", request.method, request.path_qs)
            return status_response(ApiError(500, "InternalError", f"Internal error occurred: {exc!r}"))

    def _api_faults(self) -> ApiFaults | None:
        if self.runtime is None:
            return None
        found = [f for f in self.runtime.faults if isinstance(f, ApiFaults)]
        return found[-1] if found else None

    @web.middleware
    async def _latency_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        faults = self._api_faults()
        if faults is not None and faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        return await handler(request)

    def _inject_write_fault(self, kind: ResourceKind, name: str) -> None:
        """Seeded 5xx and 409 answers to writes, as an overloaded API server or a racing writer would give."""
        faults = self._api_faults()
        if faults is None:
            return
        if self._rng.random() < faults.error_5xx_rate:
            raise ApiError(500, "InternalError", "Internal error occurred: etcdserver: request timed out")
        if self._rng.random() < faults.conflict_rate:
            raise conflict(kind, name)

    # ------------------------------------------------------------------------------------------- routing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET":
            discovery = self._discovery(parts)
            if discovery is not None:
                return web.json_response(discovery)
            if parts in (["healthz"], ["readyz"], ["livez"]):
                return web.Response(text="ok")
            if parts == ["openapi", "v2"]:
                # kubectl's client-side validation (replace, apply, create -f) insists on downloading the
                # protobuf OpenAPI v2 document; an empty document is valid protobuf and makes kubectl skip
                # schema checks for kinds it has no schema for, which is all of them.
                return web.Response(body=b"", content_type=OPENAPI_V2_PROTOBUF)
        if parts[:1] == ["api"] and len(parts) >= 3:
            return await self._resource(request, "", parts[1], parts[2:])
        if parts[:1] == ["apis"] and len(parts) >= 4:
            return await self._resource(request, parts[1], parts[2], parts[3:])
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _resolve(
        self, group: str, version: str, rest: list[str]
    ) -> tuple[ResourceKind, str | None, str | None, str | None]:
        """Map path segments to (kind, namespace, name, subresource)."""
        if len(rest) >= 3 and rest[0] == "namespaces":
            kind = self.store.kind(group, version, rest[2])
            if kind is not None and kind.namespaced and len(rest) <= 5:
                name = rest[3] if len(rest) > 3 else None
                return kind, rest[1], name, rest[4] if len(rest) > 4 else None
        kind = self.store.kind(group, version, rest[0])
        if kind is None or len(rest) > 3 or (kind.namespaced and len(rest) > 1):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return kind, None, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None

    async def _resource(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.StreamResponse:
        kind, namespace, name, sub = self._resolve(group, version, rest)
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({rest[-1]})")
        method = request.method
        if method in WRITE_METHODS:
            self._inject_write_fault(kind, name or "")
        dry_run = "dryRun" in request.query
        table = "as=Table" in request.headers.get("Accept", "")
        if name is None:
            if method == "GET":
                if request.query.get("watch") in ("true", "1"):
                    return await self._watch(request, kind, namespace, table)
                return self._list(request, kind, namespace, table)
            if method == "POST":
                if namespace is not None and self.store.find(NAMESPACE, None, namespace) is None:
                    raise not_found(NAMESPACE, namespace)
                body = await _json_body(request)
                created = self.store.create(kind, body, namespace, ADMISSION.get(kind), dry_run=dry_run)
                return web.json_response(created, status=201)
            raise _method_not_allowed(method, kind)
        if method == "GET":
            obj = self.store.get(kind, namespace, name)
            if table:
                return web.json_response(self._table(kind, [obj], request))
            return web.json_response(obj)
        if method == "PUT":
            body = await _json_body(request)
            admission = ADMISSION.get(kind) if sub is None else None
            return web.json_response(self.store.replace(kind, namespace, name, body, sub, admission, dry_run=dry_run))
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type not in PATCH_TYPES:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{', '.join(PATCH_TYPES)}",
                )
            body = await _json_body(request)
            admission = ADMISSION.get(kind) if sub is None else None
            return web.json_response(
                self.store.patch(kind, namespace, name, content_type, body, sub, admission, dry_run=dry_run)
            )
        if method == "DELETE" and sub is None:
            if kind in PROTECTED_DELETES:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{kind.resource_name} "{name}" is forbidden: {PROTECTED_DELETES[kind]}',
                    {"name": name, "group": kind.group, "kind": kind.plural},
                )
            if dry_run:
                return web.json_response(self.store.get(kind, namespace, name))
            return web.json_response(self.store.delete(kind, namespace, name))
        raise _method_not_allowed(method, kind)

    # --------------------------------------------------------------------------------------- collections

    def _list(self, request: web.Request, kind: ResourceKind, namespace: str | None, table: bool) -> web.Response:
        items = self.store.list(kind, namespace, request.query.get("labelSelector"), request.query.get("fieldSelector"))
        if table:
            return web.json_response(self._table(kind, items, request))
        return web.json_response(
            {
                "kind": kind.list_kind,
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": items,
            }
        )

    async def _watch(
        self, request: web.Request, kind: ResourceKind, namespace: str | None, table: bool
    ) -> web.StreamResponse:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"))
        raw_rv = request.query.get("resourceVersion", "")
        try:
            since = int(raw_rv) if raw_rv not in ("", "0") else None
        except ValueError as exc:
            raise bad_request(f"invalid resourceVersion {raw_rv!r}") from exc
        try:
            timeout = float(request.query.get("timeoutSeconds", "0")) or None
        except ValueError as exc:
            raise bad_request("timeoutSeconds must be a number") from exc
        # Without a resourceVersion a watch starts with the current state as ADDED events, as upstream.
        initial = [] if since is not None else self.store.list(kind, namespace)
        subscription = self.store.watch(kind, namespace, since)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None

        async def send(event_type: str, obj: JsonObj) -> None:
            if not matches(obj, labels, fields):
                return
            payload = self._table(kind, [obj], request) if table else obj
            await response.write(json.dumps({"type": event_type, "object": payload}).encode() + b"\n")

        try:
            for obj in initial:
                await send("ADDED", obj)
            while not self._stopping.is_set():
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    event: WatchEvent = await asyncio.wait_for(subscription.next(), min(remaining or 1.0, 1.0))
                except TimeoutError:
                    continue
                await send(event.type, event.object)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            subscription.close()
        return response

    # -------------------------------------------------------------------------------------------- tables

    def _table(self, kind: ResourceKind, items: list[JsonObj], request: web.Request) -> JsonObj:
        include = request.query.get("includeObject", "Metadata")
        columns, cells = _table_columns(kind)
        rows = []
        for obj in items:
            row: JsonObj = {"cells": cells(obj)}
            if include == "Object":
                row["object"] = obj
            elif include != "None":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {}),
                }
            rows.append(row)
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(self.store.resource_version)},
            "columnDefinitions": columns,
            "rows": rows,
        }

    # ----------------------------------------------------------------------------------------- discovery

    def _discovery(self, parts: list[str]) -> JsonObj | None:
        kinds = self.store.kinds()
        if parts == ["version"]:
            return dict(KUBE_VERSION)
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
            }
        if parts == ["apis"]:
            groups = sorted({k.group for k in kinds if k.group})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group(g) for g in groups]}
        if len(parts) == 2 and parts[0] == "apis" and any(k.group == parts[1] for k in kinds):
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1])}
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if len(parts) == 3 and parts[0] == "apis" and any(k.group == parts[1] and k.version == parts[2] for k in kinds):
            return self._resource_list(parts[1], parts[2])
        return None

    def _group(self, group: str) -> JsonObj:
        versions = sorted({k.version for k in self.store.kinds() if k.group == group}, key=_version_priority)
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _resource_list(self, group: str, version: str) -> JsonObj:
        resources: list[JsonObj] = []
        for kind in sorted(self.store.kinds(), key=lambda k: k.plural):
            if kind.group != group or kind.version != version:
                continue
            entry: JsonObj = {
                "name": kind.plural,
                "singularName": kind.singular,
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": list(kind.verbs),
            }
            if kind.short_names:
                entry["shortNames"] = list(kind.short_names)
            resources.append(entry)
            if kind.status_subresource:
                resources.append(
                    {
                        "name": f"{kind.plural}/status",
                        "singularName": "",
                        "namespaced": kind.namespaced,
                        "kind": kind.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        group_version = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }


def _version_priority(version: str) -> tuple[int, str]:
    """Kubernetes prefers GA over beta over alpha versions."""
    if "alpha" in version:
        return (2, version)
    if "beta" in version:
        return (1, version)
    return (0, version)


def _method_not_allowed(method: str, kind: ResourceKind) -> ApiError:
    message = f"the server does not allow this method on the requested resource ({method} {kind.resource_name})"
    return ApiError(405, "MethodNotAllowed", message)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc


# ------------------------------------------------------------------------------------------- table columns


def _age(timestamp: str | None) -> str:
    """Human-readable age as kubectl shows it (``45s``, ``12m``, ``3h``, ``5d``)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(int((datetime.now(UTC) - then).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= 120):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _path(obj: JsonObj, json_path: str) -> Any:
    current: Any = obj
    for part in json_path.strip(".").split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _column(name: str, col_type: str = "string", priority: int = 0, fmt: str = "") -> JsonObj:
    return {"name": name, "type": col_type, "format": fmt, "description": name, "priority": priority}


def _name(obj: JsonObj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _created(obj: JsonObj) -> str:
    return _age(obj.get("metadata", {}).get("creationTimestamp"))


def _pod_cells(pod: JsonObj) -> list[Any]:
    status = pod.get("status", {})
    containers = status.get("containerStatuses") or []
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in containers)
    reason = status.get("phase", "Unknown")
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    total = len((pod.get("spec") or {}).get("containers") or []) or len(containers)
    node = (pod.get("spec") or {}).get("nodeName", "<none>")
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts,
        _created(pod),
        status.get("podIP", "<none>"),
        node,
    ]


def _deployment_cells(deployment: JsonObj) -> list[Any]:
    status = deployment.get("status", {})
    spec = deployment.get("spec", {})
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        _name(deployment),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _created(deployment),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    ]


def _event_cells(event: JsonObj) -> list[Any]:
    involved = event.get("involvedObject", {})
    return [
        _age(event.get("lastTimestamp")),
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]


def _table_columns(kind: ResourceKind) -> tuple[list[JsonObj], Callable[[JsonObj], list[Any]]]:
    """Server-side printing, as the API server does for ``kubectl get``."""
    if kind.plural == "pods":
        columns = [
            _column("Name", fmt="name"),
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "integer"),
            _column("Age"),
            _column("IP", priority=1),
            _column("Node", priority=1),
        ]
        return columns, _pod_cells
    if kind.plural == "deployments":
        columns = [
            _column("Name", fmt="name"),
            _column("Ready"),
            _column("Up-to-date", "integer"),
            _column("Available", "integer"),
            _column("Age"),
            _column("Containers", priority=1),
            _column("Images", priority=1),
        ]
        return columns, _deployment_cells
    if kind.plural == "events":
        columns = [
            _column("Last Seen"),
            _column("Type"),
            _column("Reason"),
            _column("Object"),
            _column("Message"),
        ]
        return columns, _event_cells
    if kind.plural == "namespaces":
        columns = [_column("Name", fmt="name"), _column("Status"), _column("Age")]
        return columns, lambda ns: [_name(ns), ns.get("status", {}).get("phase", ""), _created(ns)]
    if kind.plural == "customresourcedefinitions":
        columns = [_column("Name", fmt="name"), _column("Created At", "date")]
        return columns, lambda crd: [_name(crd), crd.get("metadata", {}).get("creationTimestamp", "")]
    printer = printer_columns(kind)
    columns = [_column("Name", fmt="name")] + [
        _column(c["name"], c["type"] if c["type"] != "date" else "string") for c in printer
    ]

    def cells(obj: JsonObj) -> list[Any]:
        values: list[Any] = [_name(obj)]
        for column in printer:
            value = _path(obj, column["jsonPath"])
            values.append(_age(value) if column["type"] == "date" else value)
        return values

    return columns, cells


# ------------------------------------------------------------------------------------------------ composition


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KubeTwin:
    """The Kubernetes side of the fleet twin: object store seeded from the fleet, the API server on loopback
    and the AKO emulation. Compose it with the Aerospike node servers by registering ClusterRuntime hooks
    (``on_node_up``/``on_node_down``) after :meth:`prepare_runtime` and before :meth:`start`."""

    def __init__(
        self,
        runtime: FleetRuntime,
        allocate_port: Callable[[], int] = free_loopback_port,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.runtime = runtime
        self.store = ObjectStore()
        for kind in ALL_KINDS:
            self.store.register(kind)
        self.api = KubeApi(self.store, runtime, seed)
        self.ako = AkoEmulator(self.store, runtime)
        self._allocate_port = allocate_port
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url = ""

    def prepare_runtime(self) -> None:
        """Create the ClusterRuntime of every cluster in the fleet and a NodeRuntime per pod (with a loopback
        port from ``allocate_port``), keeping any that already exist."""
        for spec in self.runtime.fleet.clusters:
            key = (spec.namespace, spec.name)
            cluster = self.runtime.clusters.get(key)
            if cluster is None:
                cluster = ClusterRuntime(spec=spec, clock=self.runtime.clock)
                self.runtime.clusters[key] = cluster
            for slot in pod_slots(spec):
                if slot.name not in cluster.nodes:
                    cluster.nodes[slot.name] = NodeRuntime(
                        pod_name=slot.name,
                        node_id=slot.node_id,
                        rack_id=slot.rack_id,
                        port=self._allocate_port(),
                        version=spec.version,
                    )

    def seed(self) -> None:
        """Objects as a settled AKO-managed fleet has them (pods and CR status are the emulation's)."""
        fleet = self.runtime.fleet
        for namespace in namespaces_of(fleet.clusters, fleet.operator):
            self.store.put(NAMESPACE, namespace_object(namespace))
        for crd in crd_objects(fleet.operator.version):
            self.store.put(CRD, crd)
        self.store.put(DEPLOYMENT, operator_deployment(fleet.operator, fleet.operator.version))
        for spec in fleet.clusters:
            self.store.put(AEROSPIKE_CLUSTER, cluster_cr(spec))

    async def start(self) -> str:
        """Seed, serve the API and start reconciling; returns the API URL."""
        self.prepare_runtime()
        self.seed()
        await self.ako.start()
        self._runner = web.AppRunner(self.api.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def write_kubeconfig(self, path: Path | str, context: str = "aerodeck-twin") -> Path:
        return write_kubeconfig(path, self.url, context)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.ako.stop()
