"""The server version rollout of one cluster: request, live status and result models, and its stages."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from aerodeck.models import AuditEntry, ClusterRef, Model, Stage
from aerodeck.policy import RolloutPolicy
from aerodeck.versions import AerospikeVersion


class StageName(StrEnum):
    PREFLIGHT = "preflight"
    BASELINE = "baseline"
    APPROVAL_START = "approval:start"
    ROLLING_UPGRADE = "rolling-upgrade"
    POST_VALIDATION = "post-validation"
    APPROVAL_FINALIZE = "approval:finalize"
    ROLLBACK = "rollback"


# Stages that may wait for a person: the approval gates, and post-validation when its evidence is inconclusive.
APPROVABLE = (StageName.APPROVAL_START, StageName.POST_VALIDATION, StageName.APPROVAL_FINALIZE)


class ChangeState(StrEnum):
    PREFLIGHT = "preflight"
    WAITING_APPROVAL = "waiting-approval"
    ROLLING = "rolling"
    PAUSED = "paused"
    VALIDATING = "validating"
    ROLLING_BACK = "rolling-back"
    COMPLETED = "completed"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = {
    ChangeState.COMPLETED,
    ChangeState.REJECTED,
    ChangeState.ROLLED_BACK,
    ChangeState.FAILED,
    ChangeState.ABORTED,
}


def change_workflow_id(cluster: ClusterRef) -> str:
    """One active change per cluster: Temporal allows one open workflow per ID."""
    return f"change/{cluster.namespace}/{cluster.name}"


class UpgradeRequest(Model):
    cluster: ClusterRef
    target: AerospikeVersion
    requested_by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)
    policy: RolloutPolicy = Field(default_factory=RolloutPolicy)
    # aerospikeConfig to apply with the image, for moves whose config format changes (e.g. into 7.0).
    config_change: dict[str, Any] | None = None


class UpgradeStatus(Model):
    """What `aerodeck status` and the console show; returned by the ``status`` query."""

    workflow_id: str
    cluster: ClusterRef
    requested_by: str
    target_version: AerospikeVersion
    previous_version: AerospikeVersion | None = None
    previous_image: str | None = None
    state: ChangeState
    paused: bool = False
    outcome: str = ""
    stages: list[Stage]
    audit: list[AuditEntry]
    policy: RolloutPolicy
