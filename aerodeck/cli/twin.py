"""`aerodeck twin ...`: serve the fleet twin, and inject faults into a running one."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from aerodeck.cli.output import emit_json, progress, table
from aerodeck.errors import BadInput, OperationFailed, Unreachable
from aerodeck.settings import load_settings
from aerodeck.twin.fleet import FleetFile, default_fleet, generated_fleet, load_fleet
from aerodeck.twin.server import TwinServer, TwinState, write_state

twin_app = typer.Typer(
    help="The fleet twin: an emulated AKO-managed fleet over the real protocols.", no_args_is_help=True
)
fault_app = typer.Typer(help="Faults of a running twin.", no_args_is_help=True)
twin_app.add_typer(fault_app, name="fault")

READY_LINE = "twin ready"


def twin_dir() -> Path:
    return load_settings().data_dir / "twin"


def _fleet(fleet_file: Path | None, clusters: int | None, time_scale: float | None) -> FleetFile:
    if fleet_file is not None and clusters is not None:
        raise BadInput("--fleet and --clusters exclude each other: one fleet at a time")
    fleet = load_fleet(fleet_file) if fleet_file else generated_fleet(clusters) if clusters else default_fleet()
    if time_scale is not None:
        if time_scale <= 0:
            raise BadInput(f"--time-scale must be positive, got {time_scale}")
        fleet = fleet.model_copy(update={"time_scale": time_scale})
    return fleet


@twin_app.command()
def serve(
    fleet_file: Annotated[
        Path | None, typer.Option("--fleet", help="Fleet file (YAML); default: the demo fleet.")
    ] = None,
    clusters: Annotated[int | None, typer.Option(help="Generate a fleet of N clusters instead.", min=1)] = None,
    kubeconfig: Annotated[Path | None, typer.Option(help="Write the kubeconfig here.")] = None,
    api_port: Annotated[int, typer.Option(help="Kubernetes API port (0: any free port).")] = 0,
    control_port: Annotated[int, typer.Option(help="Metrics and fault-control port (0: any free port).")] = 0,
    time_scale: Annotated[float | None, typer.Option(help="Twin seconds per real second.")] = None,
    state_file: Annotated[
        Path | None, typer.Option(help="Publish URLs here (default: DATA_DIR/twin/state.json).")
    ] = None,
) -> None:
    """Serve the twin until SIGINT/SIGTERM: Kubernetes API, AKO emulation, Aerospike nodes, exporter."""
    fleet = _fleet(fleet_file, clusters, time_scale)
    directory = twin_dir()
    kubeconfig = kubeconfig or directory / "kubeconfig"
    state_file = state_file or directory / "state.json"

    async def run() -> None:
        server = TwinServer(fleet, api_port=api_port, control_port=control_port)
        try:
            await server.start()
        except OSError as exc:
            await server.stop()
            raise OperationFailed(f"the twin cannot listen: {exc.strerror}; choose other ports") from exc
        # A one-second scrape gives Prometheus-based validation enough points in a short window.
        state = server.publish(kubeconfig, directory / "prometheus.yml", scrape_interval_s=1.0)
        write_state(state_file, state)
        print(f"Kubernetes API (twin)  {state.api_url}", flush=True)
        print(f"Twin metrics/control   {state.control_url}", flush=True)
        print(f"kubeconfig             {state.kubeconfig}", flush=True)
        print(f"{READY_LINE}: {state.clusters} clusters, {state.pods} pods", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()
            state_file.unlink(missing_ok=True)

    asyncio.run(run())


def _state(twin_url: str | None) -> str:
    if twin_url:
        return twin_url.rstrip("/")
    path = twin_dir() / "state.json"
    try:
        return TwinState.model_validate_json(path.read_text()).control_url
    except OSError as exc:
        raise Unreachable(
            f"no running twin ({path} is missing); start one with `aerodeck up` or pass --twin-url"
        ) from exc


def _call(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        raise BadInput(str(detail)) from exc
    except OSError as exc:
        raise Unreachable(f"the twin at {url} does not answer ({exc}); is `aerodeck up` running?") from exc


TwinUrl = Annotated[str | None, typer.Option(help="Twin control URL (default: from the running `aerodeck up`).")]


@fault_app.command("list")
def fault_list(twin_url: TwinUrl = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Active faults."""
    faults = _call(f"{_state(twin_url)}/twin/v1/faults")
    if as_json:
        emit_json(faults)
        return
    table(["KIND", "DETAIL"], [[f["kind"], json.dumps({k: v for k, v in f.items() if k != "kind"})] for f in faults])


@fault_app.command("add")
def fault_add(
    kind: Annotated[str, typer.Argument(help="version-regression | bad-image | stuck-migrations | node-down | api")],
    version: Annotated[str | None, typer.Option(help="Server version the fault applies to.")] = None,
    read_p99_pct: Annotated[float | None, typer.Option(help="version-regression: % added to read p99.")] = None,
    write_p99_pct: Annotated[float | None, typer.Option(help="version-regression: % added to write p99.")] = None,
    topology: Annotated[str | None, typer.Option(help="version-regression: only this topology.")] = None,
    reason: Annotated[str | None, typer.Option(help="bad-image: CrashLoopBackOff | ImagePullBackOff.")] = None,
    cluster: Annotated[str | None, typer.Option(help="stuck-migrations / node-down: the cluster.")] = None,
    pod: Annotated[str | None, typer.Option(help="node-down: the pod.")] = None,
    latency_ms: Annotated[float | None, typer.Option(help="api: added latency per request.")] = None,
    error_5xx_rate: Annotated[float | None, typer.Option(help="api: share of writes answered 5xx.")] = None,
    conflict_rate: Annotated[float | None, typer.Option(help="api: share of writes answered 409.")] = None,
    twin_url: TwinUrl = None,
) -> None:
    """Add a fault to a running twin (the twin validates it and names any wrong field)."""
    options = {
        "version": version, "read_p99_pct": read_p99_pct, "write_p99_pct": write_p99_pct, "topology": topology,
        "reason": reason, "cluster": cluster, "pod": pod, "latency_ms": latency_ms,
        "error_5xx_rate": error_5xx_rate, "conflict_rate": conflict_rate,
    }  # fmt: skip
    body = {"kind": kind, **{k: v for k, v in options.items() if v is not None}}
    faults = _call(f"{_state(twin_url)}/twin/v1/faults", "POST", body)
    progress(f"{len(faults)} fault(s) active")


@fault_app.command("clear")
def fault_clear(twin_url: TwinUrl = None) -> None:
    """Remove every fault."""
    _call(f"{_state(twin_url)}/twin/v1/faults", "DELETE")
    progress("no faults active")
