"""The whole fleet twin in one asyncio loop: the Kubernetes API with the AKO emulation, one Aerospike
wire-protocol endpoint per pod, and a control server for exporter metrics and run-time faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from aerodeck.twin.aerospike.node_server import ClusterEndpoints, attach_fleet
from aerodeck.twin.exporter import metrics_app, prometheus_scrape_config, scrape_targets
from aerodeck.twin.fleet import Fault, FleetFile
from aerodeck.twin.kube.api import KubeTwin
from aerodeck.twin.latency import LatencyModel
from aerodeck.twin.ports import PortAllocator
from aerodeck.twin.runtime import FleetRuntime, TwinClock

FAULT = TypeAdapter(Fault)


class TwinState(BaseModel):
    """What a running twin publishes for clients (`aerodeck up`, `aerodeck twin fault`, tests)."""

    model_config = ConfigDict(extra="forbid")

    api_url: str
    control_url: str
    kubeconfig: str
    prometheus_config: str | None = None
    clusters: int
    pods: int
    time_scale: float


class TwinServer:
    def __init__(
        self,
        fleet: FleetFile,
        api_port: int = 0,
        control_port: int = 0,
        seed: int = 0,
        delay_scale: float = 1.0,
    ) -> None:
        self.runtime = FleetRuntime(fleet=fleet, clock=TwinClock(fleet.time_scale), faults=list(fleet.faults))
        self.model = LatencyModel(seed=seed, delay_scale=delay_scale)
        self.kube = KubeTwin(self.runtime, allocate_port=PortAllocator(), port=api_port, seed=seed)
        self._control_port = control_port
        self._endpoints: list[ClusterEndpoints] = []
        self._control: web.AppRunner | None = None
        self.control_url = ""

    @property
    def api_url(self) -> str:
        return self.kube.url

    async def start(self) -> None:
        # Node servers hook into the runtime before the AKO emulation starts the nodes.
        self.kube.prepare_runtime()
        self._endpoints = await attach_fleet(self.runtime, self.model)
        await self.kube.start()
        app = metrics_app(self.runtime, self.model)
        app.router.add_get("/twin/v1/faults", self._list_faults)
        app.router.add_post("/twin/v1/faults", self._add_fault)
        app.router.add_delete("/twin/v1/faults", self._clear_faults)
        app.router.add_get("/healthz", self._healthz)
        self._control = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._control.setup()
        await web.TCPSite(self._control, "127.0.0.1", self._control_port).start()
        host, port = self._control.addresses[0][:2]
        self.control_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._control is not None:
            await self._control.cleanup()
            self._control = None
        await self.kube.stop()
        for endpoints in self._endpoints:
            await endpoints.detach()
        self._endpoints = []

    def publish(
        self, kubeconfig: Path, prometheus_config: Path | None = None, scrape_interval_s: float = 5.0
    ) -> TwinState:
        """Write the kubeconfig (and a Prometheus scrape config) for clients; return the state to publish."""
        self.kube.write_kubeconfig(kubeconfig)
        if prometheus_config is not None:
            address = self.control_url.removeprefix("http://")
            targets = scrape_targets(self.runtime.clusters.values(), address)
            prometheus_config.parent.mkdir(parents=True, exist_ok=True)
            prometheus_config.write_text(prometheus_scrape_config(targets, scrape_interval_s))
        return TwinState(
            api_url=self.api_url,
            control_url=self.control_url,
            kubeconfig=str(kubeconfig),
            prometheus_config=str(prometheus_config) if prometheus_config else None,
            clusters=len(self.runtime.clusters),
            pods=sum(len(c.nodes) for c in self.runtime.clusters.values()),
            time_scale=self.runtime.clock.scale,
        )

    # ------------------------------------------------------------------------- control API

    def _faults_json(self) -> list[Any]:
        return [FAULT.dump_python(fault, mode="json") for fault in self.runtime.faults]

    async def _list_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults_json())

    async def _add_fault(self, request: web.Request) -> web.Response:
        try:
            fault = FAULT.validate_python(await request.json())
        except (ValueError, ValidationError) as exc:
            problems = (
                "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
                if isinstance(exc, ValidationError)
                else "body is not JSON"
            )
            return web.json_response({"error": f"invalid fault: {problems}"}, status=422)
        names = {c.name for c in self.runtime.clusters.values()}
        cluster = getattr(fault, "cluster", None)
        if cluster is not None and cluster not in names:
            return web.json_response({"error": f"invalid fault: unknown cluster {cluster!r}"}, status=422)
        self.runtime.faults.append(fault)
        return web.json_response(self._faults_json(), status=201)

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.runtime.faults.clear()
        return web.json_response([])

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"clusters": len(self.runtime.clusters), "faults": len(self.runtime.faults)})


def write_state(path: Path, state: TwinState) -> None:
    """Atomically, so a reader polling for the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.model_dump(), indent=2))
    tmp.replace(path)
