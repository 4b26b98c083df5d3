"""`aerodeck validate`: measure a cluster and judge it against its SLOs and, optionally, a baseline run.
Exit codes: 0 pass, 1 fail or inconclusive (the verdict says which), 2 bad input."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from pydantic import ValidationError

from aerodeck.changes import resolve_cluster
from aerodeck.cli.output import emit_json, progress, table
from aerodeck.errors import BadInput, OperationFailed
from aerodeck.settings import load_settings
from aerodeck.temporal.client import connect
from aerodeck.validation.models import ProbeSettings, SLOOverrides, Source, ValidationReport, ValidationRequest, Verdict


def register(app: typer.Typer) -> None:
    app.command()(validate)


def _overrides(pairs: list[str]) -> SLOOverrides:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in SLOOverrides.model_fields:
            keys = ", ".join(SLOOverrides.model_fields)
            raise BadInput(f"--slo takes KEY=VALUE with KEY one of {keys}; got {pair!r}")
        values[key] = value
    try:
        return SLOOverrides.model_validate(values)
    except ValidationError as exc:
        raise BadInput(f"invalid --slo: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc


def validate(
    cluster: Annotated[str, typer.Argument(help="AerospikeCluster name.")],
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Kubernetes namespace.")] = None,
    duration: Annotated[float, typer.Option("--duration", help="Seconds to measure.")] = 30.0,
    source: Annotated[Source, typer.Option("--source", help="probe | prometheus | info.")] = Source.PROBE,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Workflow id of an earlier validation to compare with.")
    ] = None,
    rate: Annotated[float | None, typer.Option("--rate", help="Probe: target operations per second.")] = None,
    aerospike_namespace: Annotated[
        str | None, typer.Option("--aerospike-namespace", help="Aerospike namespace (default: the first).")
    ] = None,
    slo: Annotated[list[str] | None, typer.Option("--slo", help="Override an SLO line, e.g. read_p99_ms=2.5.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Measure a cluster (probe workload, Prometheus or node latencies) and judge it; prints the verdict."""
    settings = load_settings()
    if source is Source.PROMETHEUS and not settings.prometheus_url:
        raise BadInput("--source prometheus needs AERODECK_PROMETHEUS_URL; or use --source probe or info")
    snapshot = resolve_cluster(settings, cluster, namespace)
    try:
        request = ValidationRequest(
            cluster=snapshot.view.ref,
            source=source,
            duration_s=duration,
            namespace=aerospike_namespace,
            probe=ProbeSettings(rate=rate) if rate is not None else ProbeSettings(),
            slo_overrides=_overrides(slo or []),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise BadInput(f"invalid request: {'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from exc

    async def run() -> tuple[str, ValidationReport]:
        from aerodeck.validation.runs import baseline_report, run_validation

        client = await connect(settings)
        full = request
        if baseline is not None:
            full = request.model_copy(update={"baseline": await baseline_report(client, baseline)})
        progress(f"validating {request.cluster} with {source.value} for {duration:g} s")
        return await run_validation(client, settings, full)

    workflow_id, report = asyncio.run(run())
    if as_json:
        emit_json(report)
    else:
        _print(workflow_id, report)
    if report.verdict is not Verdict.PASS:
        first = report.reasons[0] if report.reasons else "see the report"
        raise OperationFailed(f"validation {report.verdict.value} ({workflow_id}): {first}")


def _print(workflow_id: str, report: ValidationReport) -> None:
    typer.echo(f"{workflow_id}: {report.verdict.value}")
    table(
        ["METRIC", "BASELINE", "AFTER", "LINE", "VERDICT", "WHY"],
        [[m.name.value, _num(m.baseline), _num(m.after), _num(m.slo_line), m.verdict.value, m.reason]
         for m in report.metrics],
    )  # fmt: skip
    for reason in report.reasons:
        typer.echo(f"- {reason}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
