"""Rollout policy: approvals, four-eyes, gate timeouts, rollback, deadlines and freeze windows per tier.

One validator for every source of a change (CLI, console, schedule, LLM draft): ``change_problems``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from aerodeck.compat import move_problems
from aerodeck.models import Model, Role
from aerodeck.versions import AerospikeVersion

ApprovalMode = Literal["required", "auto"]


class FreezeWindow(Model):
    """No changes start in [start, end) for the listed tiers ("*" for all), e.g. a sale-day freeze."""

    start: datetime
    end: datetime
    tiers: list[str] = Field(default_factory=lambda: ["*"])
    reason: str = "change freeze"

    @model_validator(mode="after")
    def _ordered(self) -> FreezeWindow:
        if self.end <= self.start:
            raise ValueError(f"freeze window ends ({self.end}) before it starts ({self.start})")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("freeze window times need a timezone, e.g. 2026-11-27T00:00:00Z")
        return self

    def covers(self, when: datetime, tier: str | None) -> bool:
        return self.start <= when < self.end and ("*" in self.tiers or (tier is not None and tier in self.tiers))


class RolloutPolicy(Model):
    """The rules one change runs under, resolved when it starts and kept with it."""

    approval: ApprovalMode = "required"
    finalize_approval: bool = False
    four_eyes: bool = True
    approver_roles: list[Role] = Field(default_factory=lambda: [Role.APPROVER, Role.ADMIN])
    operator_roles: list[Role] = Field(default_factory=lambda: [Role.OPERATOR, Role.APPROVER, Role.ADMIN])
    gate_timeout_s: float = Field(default=24 * 3600, gt=0)
    gate_timeout_outcome: Literal["reject", "approve"] = "reject"
    rollback: Literal["auto", "ask"] = "auto"
    # Error flaps while controller-runtime retries; it counts only once it has lasted this long.
    error_persist_s: float = Field(default=120, gt=0)
    batch_deadline_s: float = Field(default=15 * 60, gt=0)
    overall_deadline_s: float = Field(default=4 * 3600, gt=0)
    poll_interval_s: float = Field(default=5, gt=0)
    # After AKO reports Completed, migrations may still drain: health gates wait this long to settle.
    settle_deadline_s: float = Field(default=10 * 60, gt=0)
    allow_downgrade: bool = False
    # Performance validation in the baseline and post-validation stages ("none": health gates only).
    validation_source: Literal["probe", "prometheus", "info", "none"] = "probe"
    validation_duration_s: float = Field(default=60, gt=0, le=3600)


def freeze_covering(windows: list[FreezeWindow], when: datetime, tier: str | None) -> FreezeWindow | None:
    return next((w for w in windows if w.covers(when, tier)), None)


def change_problems(
    current: AerospikeVersion,
    target: AerospikeVersion,
    operator_version: str,
    tier: str | None,
    when: datetime,
    policy: RolloutPolicy,
    freeze_windows: list[FreezeWindow],
    config_change_included: bool = False,
) -> list[str]:
    """Every reason this change may not start; empty when it may."""
    problems = move_problems(
        current,
        target,
        operator_version,
        allow_downgrade=policy.allow_downgrade,
        config_change_included=config_change_included,
    )
    freeze = freeze_covering(freeze_windows, when, tier)
    if freeze is not None:
        problems.append(
            f"{when:%Y-%m-%d %H:%M} UTC is inside the freeze window {freeze.start:%Y-%m-%d %H:%M} to "
            f"{freeze.end:%Y-%m-%d %H:%M} ({freeze.reason}); schedule the change after it ends"
        )
    return problems
