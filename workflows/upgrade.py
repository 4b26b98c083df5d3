"""ClusterUpgradeWorkflow: move one AerospikeCluster to a target server version, safely.

Stages: preflight, baseline, approval:start, rolling-upgrade, post-validation, approval:finalize; a
rollback stage when a gate fails or a person asks. Updates (approve, reject, pause, resume, rollback,
abort) carry who, role, stage and a request id; validators refuse what may not happen and write
nothing to history. The ``status`` query returns the timeline and the audit trail."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.cluster import (
        ClusterActivities,
        ClusterSnapshot,
        ImagePatch,
        PauseRequest,
        ProgressQuery,
        ProgressReport,
    )
    from activities.health import HealthReport, check_cluster_health
    from aerodeck.compat import move_problems
    from aerodeck.models import ActionRequest, ActionResult, AuditEntry, HumanAction, Stage, StageState
    from aerodeck.temporal import search_attributes
    from aerodeck.upgrade import APPROVABLE, ChangeState, StageName, UpgradeRequest, UpgradeStatus
    from aerodeck.validation.models import Source, ValidationReport, ValidationRequest, Verdict
    from aerodeck.versions import AerospikeVersion, image_with_version
    from workflows.validation import PerformanceValidationWorkflow

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[
        "ClusterNotFound",
        "Rejected",
        "ConcurrentChange",
        "BadVersion",
        "KubernetesNotConfigured",
    ],
)
# Every short call has a deadline: transient faults are retried for up to five minutes, then it fails.
_SHORT_CALL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RETRY,
}


VALIDATION_MARGIN_S = 600.0  # reading the cluster, connecting, judging


class _RollbackRequested(Exception):
    """Raised inside run() to switch to the rollback path."""


class _Aborted(Exception):
    pass


@workflow.defn
class ClusterUpgradeWorkflow:
    @workflow.init
    def __init__(self, request: UpgradeRequest) -> None:
        self._request = request
        self._state = ChangeState.PREFLIGHT
        self._stages: dict[StageName, Stage] = {
            name: Stage(name=name) for name in StageName if name != StageName.ROLLBACK
        }
        if not request.policy.finalize_approval:
            self._stages[StageName.APPROVAL_FINALIZE].state = StageState.SKIPPED
        self._audit: list[AuditEntry] = []
        self._handled: dict[str, ActionResult] = {}
        self._decisions: dict[StageName, tuple[HumanAction, ActionRequest]] = {}
        self._pause_requested = False
        self._rollback_request: ActionRequest | None = None
        self._abort_request: ActionRequest | None = None
        self._previous_image: str | None = None
        self._previous_version: AerospikeVersion | None = None
        self._image_patched = False
        self._cr_paused = False
        self._outcome = ""
        self._baseline_report: ValidationReport | None = None
        self._reports: dict[str, ValidationReport] = {}

    # ------------------------------------------------------------------------------------------ run

    @workflow.run
    async def run(self, request: UpgradeRequest) -> UpgradeStatus:
        self._log(
            "system",
            "requested",
            None,
            f"{request.requested_by} asked for {request.target}: {request.reason}",
        )
        try:
            if await self._preflight() is None:
                return self._finish(ChangeState.FAILED)
            await self._baseline()
            if not await self._gate(StageName.APPROVAL_START):
                return self._finish(ChangeState.REJECTED)
            await self._rolling_upgrade()
            await self._post_validation()
            if request.policy.finalize_approval and not await self._gate(StageName.APPROVAL_FINALIZE):
                raise _RollbackRequested()
            self._outcome = self._outcome or f"{request.cluster} runs {request.target}"
            return self._finish(ChangeState.COMPLETED)
        except _RollbackRequested:
            return await self._rollback()
        except _Aborted:
            return self._finish(ChangeState.ABORTED)
        except ActivityError as exc:
            # A call that exhausted its deadline: roll back what was changed, or stop with the reason.
            self._outcome = f"{_cause(exc)}"
            if self._image_patched and self._request.policy.rollback == "auto":
                return await self._rollback()
            return self._finish(ChangeState.FAILED)

    # ----------------------------------------------------------------------------------- stages

    async def _preflight(self) -> ClusterSnapshot | None:
        stage = self._begin(StageName.PREFLIGHT)
        try:
            snapshot: ClusterSnapshot = await workflow.execute_activity_method(
                ClusterActivities.read_cluster,
                self._request.cluster,
                **_SHORT_CALL,
            )
        except ActivityError as exc:
            self._end(stage, StageState.FAILED, _cause(exc))
            return None
        view = snapshot.view
        self._previous_image = view.spec_image
        self._previous_version = view.version
        self._upsert_search_attributes(snapshot)
        problems = self._preflight_problems(snapshot)
        if not problems:
            health = await self._health()
            problems = [f"health: {p}" for p in health.problems]
            stage.evidence.update(_health_evidence(health))
        stage.evidence.update({"current_image": view.spec_image, "operator": snapshot.operator_version or "?"})
        if problems:
            self._end(stage, StageState.FAILED, "; ".join(problems))
            return None
        self._end(stage, StageState.PASSED, f"{view.version} -> {self._request.target} is a valid move")
        return snapshot

    def _preflight_problems(self, snapshot: ClusterSnapshot) -> list[str]:
        view = snapshot.view
        problems: list[str] = []
        if view.version is None:
            problems.append(f"current image {view.spec_image!r} carries no version")
        elif snapshot.operator_version is None:
            problems.append("no Aerospike Kubernetes Operator Deployment found")
        else:
            problems += move_problems(
                view.version,
                self._request.target,
                snapshot.operator_version,
                allow_downgrade=self._request.policy.allow_downgrade,
                config_change_included=self._request.config_change is not None,
            )
        if view.paused:
            problems.append("spec.paused is set: someone froze AKO on this cluster")
        if not view.converged:
            problems.append(f"the cluster is not settled (phase {view.phase}); wait for AKO to finish")
        return problems

    async def _baseline(self) -> None:
        stage = self._begin(StageName.BASELINE)
        health = await self._health()
        stage.evidence.update(_health_evidence(health))
        report, problem = await self._validate(StageName.BASELINE, baseline=None)
        if report is None:
            self._end(stage, StageState.PASSED, f"health snapshot recorded; {problem}")
            return
        stage.evidence.update(_validation_evidence(report))
        self._baseline_report = report if report.verdict != Verdict.INCONCLUSIVE else None
        note = {
            Verdict.PASS: "the current version meets its SLOs",
            Verdict.FAIL: "the current version already misses its SLOs: " + "; ".join(report.reasons),
            Verdict.INCONCLUSIVE: "no usable baseline (" + "; ".join(report.reasons) + "): after is judged on SLOs",
        }[report.verdict]
        self._end(stage, StageState.PASSED, note)

    async def _validate(
        self, stage: StageName, baseline: ValidationReport | None
    ) -> tuple[ValidationReport | None, str]:
        """Performance validation as a child workflow; (None, why) when disabled or impossible."""
        policy = self._request.policy
        if policy.validation_source == "none":
            return None, "performance validation is off for this change"
        request = ValidationRequest(
            cluster=self._request.cluster,
            source=Source(policy.validation_source),
            duration_s=policy.validation_duration_s,
            baseline=baseline,
        )
        try:
            report: ValidationReport = await workflow.execute_child_workflow(
                PerformanceValidationWorkflow.run,
                request,
                id=f"{workflow.info().workflow_id}/{stage.value}",
                task_queue=workflow.info().task_queue,
                execution_timeout=timedelta(seconds=policy.validation_duration_s + VALIDATION_MARGIN_S),
            )
        except ChildWorkflowError as exc:
            return None, f"performance validation could not run: {_cause(exc)}"
        self._reports[stage.value] = report
        return report, ""

    async def _gate(self, name: StageName) -> bool:
        stage = self._begin(name)
        if name == StageName.APPROVAL_START and self._request.policy.approval == "auto":
            self._end(stage, StageState.PASSED, "approval is automatic for this tier", actor="policy")
            return True
        return await self._decide(stage)

    async def _decide(self, stage: Stage) -> bool:
        """Wait for a person's approve or reject on ``stage``; the gate timeout decides by policy."""
        policy = self._request.policy
        name = StageName(stage.name)
        stage.state = StageState.WAITING
        self._set_state(ChangeState.WAITING_APPROVAL)
        try:
            await workflow.wait_condition(
                lambda: (
                    name in self._decisions or self._rollback_request is not None or self._abort_request is not None
                ),
                timeout=timedelta(seconds=policy.gate_timeout_s),
                timeout_summary=f"{name} gate timeout",
            )
        except TimeoutError:
            approved = policy.gate_timeout_outcome == "approve"
            verdict = "approved" if approved else "rejected"
            message = f"no decision within {policy.gate_timeout_s:.0f} s: {verdict} by policy"
            self._log("policy", "gate-timeout", name, message)
            self._end(stage, StageState.PASSED if approved else StageState.FAILED, message, actor="policy")
            if not approved:
                self._outcome = message
            return approved
        self._check_abort()
        self._check_rollback()
        action, decision = self._decisions[name]
        approved = action == HumanAction.APPROVE
        verb = "approved" if approved else "rejected"
        text = f"{verb} by {decision.user}" + (f": {decision.comment}" if decision.comment else "")
        self._end(stage, StageState.PASSED if approved else StageState.FAILED, text, actor=decision.user)
        if not approved:
            self._outcome = text
        return approved

    async def _rolling_upgrade(self) -> None:
        stage = self._begin(StageName.ROLLING_UPGRADE)
        self._set_state(ChangeState.ROLLING)
        assert self._previous_image is not None
        target_image = image_with_version(self._previous_image, self._request.target)
        await self._between_batches()
        try:
            outcome = await workflow.execute_activity_method(
                ClusterActivities.patch_cluster_image,
                ImagePatch(
                    cluster=self._request.cluster,
                    expected_image=self._previous_image,
                    target_image=target_image,
                    config_change=self._request.config_change,
                ),
                **_SHORT_CALL,
            )
        except ActivityError as exc:
            self._end(stage, StageState.FAILED, _cause(exc))
            self._outcome = f"could not patch spec.image: {_cause(exc)}"
            raise _Aborted() from exc
        self._image_patched = True
        stage.evidence["target_image"] = target_image
        stage.evidence["patch_applied"] = outcome.applied
        self._log("aerodeck", "patched", StageName.ROLLING_UPGRADE, f"spec.image -> {target_image}")
        report = await self._follow(target_image, stage)
        if report.outcome != "converged":
            self._end(stage, StageState.FAILED, report.message)
            self._outcome = f"rolling upgrade failed: {report.message}"
            await self._after_failure()
        self._end(stage, StageState.PASSED, f"all {report.size} pods on {self._request.target}")

    async def _follow(self, target_image: str, stage: Stage | None) -> ProgressReport:
        """Follow AKO batch by batch. While rolling forward (``stage`` given) a pause, rollback or abort
        request interrupts the wait at once; pauses then hold until resumed."""
        policy = self._request.policy
        known = 0
        deadline = workflow.now() + timedelta(seconds=policy.overall_deadline_s)
        record = stage or self._stages[StageName.ROLLBACK]
        while True:
            if stage is not None:
                await self._between_batches()
            remaining = (deadline - workflow.now()).total_seconds()
            handle = workflow.start_activity_method(
                ClusterActivities.await_rollout_progress,
                ProgressQuery(
                    cluster=self._request.cluster,
                    target_image=target_image,
                    known_on_target=known,
                    error_persist_s=policy.error_persist_s,
                    deadline_s=max(1.0, min(policy.batch_deadline_s, remaining)),
                    poll_interval_s=policy.poll_interval_s,
                ),
                start_to_close_timeout=timedelta(seconds=policy.batch_deadline_s + 120),
                heartbeat_timeout=timedelta(seconds=max(5.0, 3 * policy.poll_interval_s)),
                retry_policy=RETRY,
            )
            if stage is not None:
                await workflow.wait_condition(lambda h=handle: h.done() or self._interrupted())  # type: ignore[misc]
                if not handle.done():
                    handle.cancel()
                    with contextlib.suppress(ActivityError, asyncio.CancelledError):
                        await handle
                    continue
            report: ProgressReport = await handle
            if report.on_target > known:
                pods = ", ".join(report.pods_on_target)
                self._log("ako", "progress", record.name, f"{report.on_target}/{report.size} on target ({pods})")
                known = report.on_target
            record.evidence["pods_on_target"] = f"{report.on_target}/{report.size}"
            if report.outcome in ("converged", "failed", "deadline"):
                return report

    def _interrupted(self) -> bool:
        return self._pause_requested or self._rollback_request is not None or self._abort_request is not None

    async def _between_batches(self) -> None:
        self._check_abort()
        self._check_rollback()
        await self._hold_while_paused()

    async def _post_validation(self) -> None:
        stage = self._begin(StageName.POST_VALIDATION)
        self._set_state(ChangeState.VALIDATING)
        health = await self._settled_health()
        stage.evidence.update(_health_evidence(health))
        wrong_builds = sorted(n for n, b in health.builds.items() if b != str(self._request.target))
        problems = list(health.problems)
        if wrong_builds:
            problems.append(f"nodes not on {self._request.target}: {', '.join(wrong_builds)}")
        if problems:
            await self._post_validation_failed(stage, "; ".join(problems))
        report, problem = await self._validate(StageName.POST_VALIDATION, self._baseline_report)
        if report is not None:
            stage.evidence.update(_validation_evidence(report))
        verdict = report.verdict if report is not None else Verdict.INCONCLUSIVE
        reasons = "; ".join(report.reasons) if report is not None else problem
        if report is None and self._request.policy.validation_source == "none":
            verdict = Verdict.PASS
        if verdict == Verdict.FAIL:
            await self._post_validation_failed(stage, f"performance validation failed: {reasons}")
        if verdict == Verdict.INCONCLUSIVE:
            # Inconclusive evidence never promotes or rolls back by itself: a person decides.
            stage.message = f"inconclusive ({reasons}): approve to accept the new version, or roll back"
            self._log("policy", "ask", StageName.POST_VALIDATION, stage.message)
            self._set_state(ChangeState.WAITING_APPROVAL)
            if not await self._decide(stage):
                self._outcome = self._outcome or f"post-validation inconclusive: {reasons}"
                raise _RollbackRequested()
            return
        self._end(stage, StageState.PASSED, f"all nodes healthy on {self._request.target}; performance {verdict.value}")

    async def _post_validation_failed(self, stage: Stage, message: str) -> None:
        self._end(stage, StageState.FAILED, message)
        self._outcome = f"post-validation failed: {message}"
        await self._after_failure()

    async def _after_failure(self) -> None:
        """Automatic rollback, or (policy ask) wait for a person to choose rollback or abort."""
        if self._request.policy.rollback == "auto":
            self._log("policy", "auto-rollback", None, self._outcome)
            raise _RollbackRequested()
        self._log("policy", "ask", None, f"{self._outcome}; waiting for rollback or abort")
        self._set_state(ChangeState.WAITING_APPROVAL)
        await workflow.wait_condition(
            lambda: self._rollback_request is not None or self._abort_request is not None,
            timeout=timedelta(seconds=self._request.policy.gate_timeout_s),
        )
        self._check_abort()
        raise _RollbackRequested()

    async def _rollback(self) -> UpgradeStatus:
        stage = self._stages.setdefault(StageName.ROLLBACK, Stage(name=StageName.ROLLBACK))
        self._begin(StageName.ROLLBACK)
        self._set_state(ChangeState.ROLLING_BACK)
        why = self._outcome or "rollback requested"
        if self._rollback_request is not None:
            why = f"rollback requested by {self._rollback_request.user}: {self._rollback_request.comment or why}"
        if not self._image_patched or self._previous_image is None:
            self._end(stage, StageState.PASSED, f"{why}; nothing was changed, nothing to roll back")
            self._outcome = why
            return self._finish(ChangeState.ROLLED_BACK)
        target_image = image_with_version(self._previous_image, self._request.target)
        self._pause_requested = False
        await self._set_paused(False)
        try:
            await workflow.execute_activity_method(
                ClusterActivities.patch_cluster_image,
                ImagePatch(cluster=self._request.cluster, expected_image=target_image,
                           target_image=self._previous_image),
                **_SHORT_CALL,
            )  # fmt: skip
        except ActivityError as exc:
            self._end(stage, StageState.FAILED, f"could not restore {self._previous_image}: {_cause(exc)}")
            self._outcome = f"{why}; rollback failed: {_cause(exc)}"
            return self._finish(ChangeState.FAILED)
        self._log("aerodeck", "patched", StageName.ROLLBACK, f"spec.image -> {self._previous_image} ({why})")
        report = await self._follow(self._previous_image, None)
        if report.outcome != "converged":
            self._end(stage, StageState.FAILED, f"rollback did not converge: {report.message}")
            self._outcome = f"{why}; rollback did not converge: {report.message}"
            return self._finish(ChangeState.FAILED)
        health = await self._settled_health()
        stage.evidence.update(_health_evidence(health))
        verdict = "healthy" if health.healthy else "unhealthy: " + "; ".join(health.problems)
        self._end(stage, StageState.PASSED if health.healthy else StageState.FAILED,
                  f"back on {self._previous_version}, {verdict}")  # fmt: skip
        self._outcome = f"{why}; back on {self._previous_version} ({verdict})"
        return self._finish(ChangeState.ROLLED_BACK if health.healthy else ChangeState.FAILED)

    # ------------------------------------------------------------------------------ helpers

    async def _settled_health(self) -> HealthReport:
        """Health once the cluster settles (migrations drain after AKO says Completed), or at the deadline."""
        policy = self._request.policy
        deadline = workflow.now() + timedelta(seconds=policy.settle_deadline_s)
        while True:
            health = await self._health()
            if health.healthy or workflow.now() >= deadline:
                return health
            await workflow.sleep(timedelta(seconds=policy.poll_interval_s))

    async def _health(self) -> HealthReport:
        fresh: ClusterSnapshot = await workflow.execute_activity_method(
            ClusterActivities.read_cluster, self._request.cluster, **_SHORT_CALL
        )
        return await workflow.execute_activity(check_cluster_health, fresh.view, **_SHORT_CALL)

    async def _set_paused(self, paused: bool) -> None:
        self._cr_paused = paused
        await workflow.execute_activity_method(
            ClusterActivities.set_cluster_paused,
            PauseRequest(cluster=self._request.cluster, paused=paused),
            **_SHORT_CALL,
        )

    async def _hold_while_paused(self) -> None:
        if not self._pause_requested:
            return
        await self._set_paused(True)
        self._set_state(ChangeState.PAUSED)
        await workflow.wait_condition(
            lambda: not self._pause_requested or self._rollback_request is not None or self._abort_request is not None
        )
        self._check_abort()
        await self._set_paused(False)
        self._check_rollback()
        self._set_state(ChangeState.ROLLING)

    def _check_rollback(self) -> None:
        if self._rollback_request is not None:
            raise _RollbackRequested()

    def _check_abort(self) -> None:
        if self._abort_request is not None:
            request = self._abort_request
            self._outcome = f"aborted by {request.user}" + (f": {request.comment}" if request.comment else "")
            if self._cr_paused:
                self._outcome += "; AKO stays paused (spec.paused: true): unset it to let AKO finish the rollout"
            raise _Aborted()

    def _begin(self, name: StageName) -> Stage:
        stage = self._stages[name]
        stage.state = StageState.RUNNING
        stage.started_at = workflow.now()
        return stage

    def _end(self, stage: Stage, state: StageState, message: str, actor: str = "aerodeck") -> None:
        if stage.state.finished:
            return
        stage.state = state
        stage.ended_at = workflow.now()
        stage.message = message
        stage.actor = actor

    def _set_state(self, state: ChangeState) -> None:
        self._state = state
        workflow.upsert_search_attributes([search_attributes.STATE.value_set(state.value)])

    def _finish(self, state: ChangeState) -> UpgradeStatus:
        for stage in self._stages.values():
            if stage.state in (StageState.PENDING, StageState.WAITING):
                stage.state = StageState.SKIPPED
            elif stage.state == StageState.RUNNING:
                self._end(stage, StageState.FAILED, self._outcome or state.value)
        if self._image_patched and state == ChangeState.ROLLED_BACK:
            self._stages[StageName.ROLLING_UPGRADE].state = StageState.ROLLED_BACK
        self._set_state(state)
        self._log("aerodeck", state.value, None, self._outcome)
        return self.status()

    def _log(
        self, actor: str, action: str, stage: str | None, detail: str, request: ActionRequest | None = None
    ) -> None:
        self._audit.append(
            AuditEntry(
                at=workflow.now(),
                actor=request.user if request else actor,
                role=request.role if request else None,
                action=action,
                stage=stage,
                detail=detail,
                request_id=request.request_id if request else None,
            )
        )

    def _upsert_search_attributes(self, snapshot: ClusterSnapshot) -> None:
        view = snapshot.view
        workflow.upsert_search_attributes(
            [
                search_attributes.CLUSTER.value_set(str(self._request.cluster)),
                search_attributes.TARGET_VERSION.value_set(str(self._request.target)),
                search_attributes.TEAM.value_set(view.team or "unlabelled"),
                search_attributes.TIER.value_set(view.tier or "unlabelled"),
            ]
        )

    # --------------------------------------------------------------------------- human actions

    @workflow.query
    def status(self) -> UpgradeStatus:
        return UpgradeStatus(
            workflow_id=workflow.info().workflow_id,
            cluster=self._request.cluster,
            requested_by=self._request.requested_by,
            target_version=self._request.target,
            previous_version=self._previous_version,
            previous_image=self._previous_image,
            state=self._state,
            paused=self._pause_requested,
            outcome=self._outcome,
            stages=list(self._stages.values()),
            audit=list(self._audit),
            policy=self._request.policy,
        )

    @workflow.query
    def reports(self) -> dict[str, ValidationReport]:
        """The performance validation reports by stage (baseline, post-validation), for charts."""
        return dict(self._reports)

    def _validate_action(self, action: HumanAction, request: ActionRequest, check: Callable[[], None]) -> None:
        """Shared checks: idempotent request ids, roles, finished changes; then the action's own check."""
        seen = self._handled.get(request.request_id)
        if seen is not None:
            if seen.action != action:
                raise ValueError(
                    f"request id {request.request_id!r} was already used for {seen.action.value}; use a new id"
                )
            return  # a retry of an accepted request: the handler answers it again, changing nothing
        policy = self._request.policy
        allowed = (
            policy.approver_roles if action in (HumanAction.APPROVE, HumanAction.REJECT) else policy.operator_roles
        )
        if request.role not in allowed:
            roles = ", ".join(r.value for r in allowed)
            raise ValueError(f"role {request.role.value!r} may not {action.value}; it needs one of: {roles}")
        if self._state.finished:
            raise ValueError(f"the change has finished ({self._state.value}); nothing to {action.value}")
        check()

    def _waiting_gate(self, request: ActionRequest, action: HumanAction) -> StageName:
        names = [s.value for s in StageName]
        if request.stage is not None and request.stage not in names:
            raise ValueError(f"unknown stage {request.stage!r}; stages are: {', '.join(names)}")
        waiting = [n for n in APPROVABLE if n in self._stages and self._stages[n].state == StageState.WAITING]
        if request.stage is None:
            if not waiting:
                raise ValueError(f"no approval gate is waiting (state {self._state.value}); nothing to {action.value}")
            return waiting[0]
        stage = StageName(request.stage)
        if stage not in APPROVABLE:
            raise ValueError(f"stage {stage.value!r} never waits for a decision; those are: {', '.join(APPROVABLE)}")
        if stage not in waiting:
            current = self._stages[stage].state.value if stage in self._stages else "pending"
            raise ValueError(f"stage {stage.value!r} is not waiting for a decision (it is {current})")
        return stage

    def _check_decision(self, request: ActionRequest, action: HumanAction) -> None:
        self._waiting_gate(request, action)
        if (
            action == HumanAction.APPROVE
            and self._request.policy.four_eyes
            and request.user.casefold() == self._request.requested_by.casefold()
        ):
            raise ValueError(
                f"{request.user} requested this change and may not approve it (four-eyes); ask another approver"
            )

    def _accept(
        self, action: HumanAction, request: ActionRequest, message: str, stage: str | None = None
    ) -> ActionResult:
        seen = self._handled.get(request.request_id)
        if seen is not None:
            return seen
        result = ActionResult(action=action, accepted=True, message=message, request_id=request.request_id)
        self._handled[request.request_id] = result
        self._log(request.user, action.value, stage or request.stage, request.comment or message, request)
        return result

    @workflow.update
    def approve(self, request: ActionRequest) -> ActionResult:
        if request.request_id in self._handled:
            return self._handled[request.request_id]
        gate = self._waiting_gate(request, HumanAction.APPROVE)
        self._decisions[gate] = (HumanAction.APPROVE, request)
        return self._accept(HumanAction.APPROVE, request, f"{gate.value} approved", gate)

    @approve.validator
    def _validate_approve(self, request: ActionRequest) -> None:
        self._validate_action(HumanAction.APPROVE, request, lambda: self._check_decision(request, HumanAction.APPROVE))

    @workflow.update
    def reject(self, request: ActionRequest) -> ActionResult:
        if request.request_id in self._handled:
            return self._handled[request.request_id]
        gate = self._waiting_gate(request, HumanAction.REJECT)
        self._decisions[gate] = (HumanAction.REJECT, request)
        return self._accept(HumanAction.REJECT, request, f"{gate.value} rejected", gate)

    @reject.validator
    def _validate_reject(self, request: ActionRequest) -> None:
        self._validate_action(HumanAction.REJECT, request, lambda: self._check_decision(request, HumanAction.REJECT))

    @workflow.update
    def pause(self, request: ActionRequest) -> ActionResult:
        self._pause_requested = True
        return self._accept(HumanAction.PAUSE, request, "pausing after the current batch")

    @pause.validator
    def _validate_pause(self, request: ActionRequest) -> None:
        def check() -> None:
            if self._pause_requested:
                raise ValueError("the change is already paused; resume it first")
            if self._state not in (ChangeState.ROLLING, ChangeState.PREFLIGHT, ChangeState.WAITING_APPROVAL):
                raise ValueError(f"only a change in progress can pause (state {self._state.value})")

        self._validate_action(HumanAction.PAUSE, request, check)

    @workflow.update
    def resume(self, request: ActionRequest) -> ActionResult:
        self._pause_requested = False
        return self._accept(HumanAction.RESUME, request, "resuming")

    @resume.validator
    def _validate_resume(self, request: ActionRequest) -> None:
        def check() -> None:
            if not self._pause_requested:
                raise ValueError("the change is not paused; nothing to resume")

        self._validate_action(HumanAction.RESUME, request, check)

    @workflow.update
    def rollback(self, request: ActionRequest) -> ActionResult:
        self._rollback_request = self._rollback_request or request
        return self._accept(HumanAction.ROLLBACK, request, "rolling back to the previous image")

    @rollback.validator
    def _validate_rollback(self, request: ActionRequest) -> None:
        def check() -> None:
            if self._rollback_request is not None or self._state == ChangeState.ROLLING_BACK:
                raise ValueError("a rollback is already under way")

        self._validate_action(HumanAction.ROLLBACK, request, check)

    @workflow.update
    def abort(self, request: ActionRequest) -> ActionResult:
        self._abort_request = self._abort_request or request
        self._pause_requested = False
        return self._accept(HumanAction.ABORT, request, "stopping without rollback")

    @abort.validator
    def _validate_abort(self, request: ActionRequest) -> None:
        def check() -> None:
            if self._abort_request is not None:
                raise ValueError("an abort is already under way")

        self._validate_action(HumanAction.ABORT, request, check)


def _cause(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError | ChildWorkflowError) else exc
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or exc)


def _validation_evidence(report: ValidationReport) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "verdict": report.verdict.value,
        "score": round(report.score, 3) if report.score is not None else "n/a",
        "source": report.source.value,
    }
    for metric in report.metrics:
        if metric.after is not None:
            evidence[f"{metric.name.value}"] = round(metric.after, 3)
    return evidence


def _health_evidence(health: HealthReport) -> dict[str, Any]:
    return {
        "healthy": health.healthy,
        "nodes": f"{health.nodes}/{health.expected_nodes}",
        "migrations_remaining": health.migrations_remaining,
        "builds": ", ".join(sorted(set(health.builds.values()))),
        "problems": "; ".join(health.problems) or "none",
    }
