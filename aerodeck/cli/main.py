"""The `aerodeck` command tree. Exit codes: 0 ok, 1 operation failed, 2 bad input."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer

from aerodeck.cli import changes, validate
from aerodeck.cli.output import emit_json, progress, table
from aerodeck.cli.twin import twin_app
from aerodeck.errors import AerodeckError
from aerodeck.settings import Settings, load_settings
from aerodeck.versions import VersionError

app = typer.Typer(
    help="aerodeck: durable, approvable operations for fleets of Aerospike clusters on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
changes.register(app)
validate.register(app)
app.add_typer(twin_app, name="twin")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"aerodeck {version('aerodeck')}")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Commands are grouped by what they act on; every read command takes --json."""


@config_app.command("show")
def config_show(as_json: JsonFlag = False) -> None:
    """Print the effective settings (defaults < TOML file < AERODECK_* environment), secrets redacted."""
    data = load_settings().redacted()
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key:<28} {'' if value is None else value}")


@app.command()
def up(
    data_dir: Annotated[Path | None, typer.Option(help="Where state and logs live (AERODECK_DATA_DIR).")] = None,
    port: Annotated[int | None, typer.Option(help="Temporal frontend port (AERODECK_DEV_SERVER_PORT).")] = None,
    ui_port: Annotated[int | None, typer.Option(help="Temporal Web UI port (AERODECK_DEV_UI_PORT).")] = None,
    twin: Annotated[bool, typer.Option(help="Run the fleet twin (off: use AERODECK_KUBECONFIG only).")] = True,
    fleet: Annotated[Path | None, typer.Option(help="The twin's fleet file (default: the demo fleet).")] = None,
    clusters: Annotated[int | None, typer.Option(help="Generate a twin fleet of N clusters.", min=1)] = None,
    time_scale: Annotated[float | None, typer.Option(help="Twin seconds per real second.")] = None,
    kubeconfig: Annotated[Path | None, typer.Option(help="Where the twin writes its kubeconfig.")] = None,
    prometheus_port: Annotated[int, typer.Option(help="Prometheus port (0: any free port).")] = 0,
    demo: Annotated[bool, typer.Option(help="Start a demo change that waits for approval.")] = False,
) -> None:
    """Start the embedded stack (Temporal, fleet twin, Prometheus, worker), print its URLs, stop on Ctrl-C."""
    from aerodeck.stack import StackOptions, run_up

    overrides: dict[str, Any] = {"data_dir": data_dir, "dev_server_port": port, "dev_ui_port": ui_port}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    options = StackOptions(
        twin=twin,
        fleet=fleet,
        clusters=clusters,
        time_scale=time_scale,
        kubeconfig=kubeconfig,
        prometheus_port=prometheus_port,
        demo=demo,
    )
    run_up(settings, options)


@app.command()
def worker() -> None:
    """Run a worker for every aerodeck workflow and activity until SIGINT/SIGTERM."""
    from aerodeck.worker import run_worker

    settings = load_settings()
    asyncio.run(
        run_worker(
            settings,
            on_ready=lambda: progress(f"worker polling {settings.task_queue!r} on {settings.temporal_address}"),
        )
    )


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check the engine end to end: Temporal answers and a worker runs a workflow and an activity."""
    from aerodeck.doctor import self_check

    settings: Settings = load_settings()
    result = asyncio.run(self_check(settings))
    if as_json:
        emit_json(result)
        return
    w = result.worker
    typer.echo(f"Temporal {settings.temporal_address} ok; worker {w.host} pid {w.pid} on {w.task_queue!r}")
    typer.echo(f"aerodeck {w.aerodeck_version}, temporalio {w.temporalio_version}, Python {w.python}")


@app.command()
def fleet(
    as_json: JsonFlag = False,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="Label selector, e.g. aerodeck.io/team=ads.")
    ] = None,
) -> None:
    """List every AerospikeCluster: labels, version, phase, pods on each image, health."""
    from aerodeck.inventory import read_inventory
    from aerodeck.kube.client import api_client

    rows = read_inventory(api_client(load_settings()), selector)
    if as_json:
        emit_json([row.model_dump(mode="json") for row in rows])
        return
    table(
        ["NAMESPACE", "NAME", "TEAM", "TIER", "TOPOLOGY", "VERSION", "PHASE", "READY", "HEALTH"],
        [
            [r.namespace, r.name, r.team or "-", r.tier or "-", r.topology or "-", r.version or "?",
             r.phase or "-", f"{r.ready_pods}/{r.size}", r.health]
            for r in rows
        ],
    )  # fmt: skip


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def main() -> None:
    code = 0
    try:
        app()
    except AerodeckError as exc:
        code = _report(str(exc), exc.exit_code)
    except VersionError as exc:
        code = _report(str(exc), 2)
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exc:
        code = _exit_code(exc)
    # Skip interpreter teardown: Temporal's Rust threads can abort a finalizing interpreter
    # ("PyGILState_Release ... must be current", temporalio/sdk-python#300), which would turn a
    # finished command's exit code into 134. Every command has cleaned up by the time it returns.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _report(message: str, exit_code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return exit_code
