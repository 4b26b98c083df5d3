"""Commands that start and steer changes: upgrade, status, list, and the human actions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, cast

import typer
from temporalio.client import Client

from aerodeck.changes import act, change_status, list_changes, plan_upgrade, resolve_cluster, start_upgrade
from aerodeck.cli.output import emit_json, progress, table
from aerodeck.errors import BadInput, OperationFailed
from aerodeck.models import ActionResult, HumanAction, Role
from aerodeck.policy import ApprovalMode
from aerodeck.settings import load_settings
from aerodeck.temporal.client import connect
from aerodeck.upgrade import ChangeState, UpgradeStatus
from aerodeck.versions import AerospikeVersion

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
AsUser = Annotated[str, typer.Option("--as", help="Who you are (recorded in the audit trail).")]
WAIT_POLL_S = 1.0


def register(app: typer.Typer) -> None:
    app.command()(upgrade)
    app.command()(status)
    app.command("list")(list_command)
    for action in HumanAction:
        app.command(action.value, help=_ACTION_HELP[action])(_action_command(action))


def upgrade(
    cluster: Annotated[str, typer.Argument(help="AerospikeCluster name.")],
    to: Annotated[str, typer.Option("--to", help="Target server version, e.g. 8.1.2.0.")],
    user: AsUser,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Kubernetes namespace.")] = None,
    approval: Annotated[str | None, typer.Option(help="required | auto (default: the tier's policy).")] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "",
    allow_downgrade: Annotated[bool, typer.Option(help="Permit a target below the current version.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the change until it finishes.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Roll one cluster to a new server version; prints the change's workflow id."""
    target = AerospikeVersion.parse(to)
    if approval not in (None, "required", "auto"):
        raise BadInput(f"--approval must be required or auto, not {approval!r}")
    settings = load_settings()
    snapshot = resolve_cluster(settings, cluster, namespace)
    request = plan_upgrade(
        settings,
        snapshot,
        target,
        user,
        reason,
        approval=cast(ApprovalMode | None, approval),
        allow_downgrade=allow_downgrade,
    )

    async def run() -> tuple[str, UpgradeStatus | None]:
        client = await connect(settings)
        workflow_id = (await start_upgrade(client, settings, request, snapshot)).id
        if not wait:
            return workflow_id, None
        progress(f"started {workflow_id}")
        return workflow_id, await _follow(client, workflow_id)

    workflow_id, final = asyncio.run(run())
    if as_json:
        emit_json({"workflow_id": workflow_id, "cluster": str(request.cluster), "target": str(target),
                   "state": final.state.value if final else ChangeState.PREFLIGHT.value})  # fmt: skip
    else:
        typer.echo(workflow_id)
    if final is not None and final.state != ChangeState.COMPLETED:
        raise OperationFailed(f"{workflow_id} ended {final.state.value}: {final.outcome}")


async def _follow(client: Client, workflow_id: str) -> UpgradeStatus:
    """Print each stage transition until the change finishes."""
    seen: dict[str, str] = {}
    while True:
        current = await change_status(client, workflow_id)
        for stage in current.stages:
            if seen.get(stage.name) != stage.state.value:
                seen[stage.name] = stage.state.value
                progress(f"  {stage.name:<18} {stage.state.value:<11} {stage.message}")
        if current.state.finished:
            return current
        await asyncio.sleep(WAIT_POLL_S)


def status(
    workflow_id: Annotated[str, typer.Argument(help="The change's workflow id.")], as_json: JsonFlag = False
) -> None:
    """Show a change: state, stage timeline and audit trail."""

    async def run() -> UpgradeStatus:
        return await change_status(await connect(load_settings()), workflow_id)

    current = asyncio.run(run())
    if as_json:
        emit_json(current)
        return
    typer.echo(f"{current.workflow_id}: {current.cluster} {current.previous_version or '?'} -> "
               f"{current.target_version}, {current.state.value}{' (paused)' if current.paused else ''}")  # fmt: skip
    if current.outcome:
        typer.echo(f"outcome: {current.outcome}")
    table(
        ["STAGE", "STATE", "ACTOR", "ENDED", "MESSAGE"],
        [[s.name, s.state.value, s.actor or "", f"{s.ended_at:%H:%M:%S}" if s.ended_at else "", s.message]
         for s in current.stages],
    )  # fmt: skip
    typer.echo("")
    table(
        ["WHEN", "WHO", "ACTION", "STAGE", "DETAIL"],
        [[f"{a.at:%H:%M:%S}", a.actor, a.action, a.stage or "", a.detail] for a in current.audit],
    )


def list_command(
    as_json: JsonFlag = False,
    state: Annotated[str | None, typer.Option(help="Only changes in this state.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Only changes of NAMESPACE/NAME.")] = None,
) -> None:
    """List changes (newest first), filtered by state or cluster."""

    async def run() -> list[dict[str, object]]:
        return await list_changes(await connect(load_settings()), state, cluster)

    rows = asyncio.run(run())
    if as_json:
        emit_json(rows)
        return
    table(
        ["WORKFLOW ID", "CLUSTER", "TARGET", "TIER", "STATE", "STARTED"],
        [[str(r["workflow_id"]), str(r["cluster"]), str(r["target_version"]), str(r["tier"]), str(r["state"]),
          str(r["started"])[:19]] for r in rows],
    )  # fmt: skip


_ACTION_HELP = {
    HumanAction.APPROVE: "Approve the waiting gate (four-eyes: not the requester).",
    HumanAction.REJECT: "Reject the waiting gate; the change ends with nothing changed.",
    HumanAction.PAUSE: "Hold the rollout after the current batch (sets spec.paused).",
    HumanAction.RESUME: "Resume a paused rollout.",
    HumanAction.ROLLBACK: "Set the previous image back and follow AKO until it is healthy again.",
    HumanAction.ABORT: "Stop following the change without rolling back; the state is recorded.",
}


def _action_command(action: HumanAction) -> Callable[..., None]:
    def command(
        workflow_id: Annotated[str, typer.Argument(help="The change's workflow id.")],
        user: AsUser,
        role: Annotated[Role, typer.Option(help="Your role.")] = Role.APPROVER
        if action in (HumanAction.APPROVE, HumanAction.REJECT)
        else Role.OPERATOR,
        stage: Annotated[str | None, typer.Option(help="The stage this refers to (default: the waiting one).")] = None,
        comment: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "",
        request_id: Annotated[
            str | None, typer.Option(help="Idempotency key; a retry with it changes nothing.")
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        async def run() -> ActionResult:
            return await act(
                await connect(load_settings()), workflow_id, action, user, role, stage, comment, request_id
            )

        result = asyncio.run(run())
        if as_json:
            emit_json(result)
        else:
            typer.echo(result.message)

    command.__name__ = action.value
    return command
