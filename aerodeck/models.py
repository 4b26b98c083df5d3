"""Domain models shared by workflows, activities, the CLI and the console."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from aerodeck.versions import AerospikeVersion

K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Model(BaseModel):
    """Base for boundary models: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ClusterRef(Model):
    """One AerospikeCluster custom resource."""

    namespace: str = Field(pattern=K8S_NAME, max_length=63)
    name: str = Field(pattern=K8S_NAME, max_length=63)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class SLO(Model):
    """A tenant's registered latency and throughput goals for one cluster."""

    read_p99_ms: float = Field(gt=0)
    write_p99_ms: float = Field(gt=0)
    read_p999_ms: float | None = Field(default=None, gt=0)
    write_p999_ms: float | None = Field(default=None, gt=0)
    min_tps: float = Field(default=0, ge=0)
    max_error_rate: float = Field(default=0.001, ge=0, le=1)


class StageState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ROLLED_BACK = "rolled back"

    @property
    def finished(self) -> bool:
        return self in {StageState.PASSED, StageState.FAILED, StageState.SKIPPED, StageState.ROLLED_BACK}


class Stage(Model):
    """One step of a change, as shown in the timeline: what ran, when, who acted and on what evidence."""

    name: str
    state: StageState = StageState.PENDING
    started_at: datetime | None = None
    ended_at: datetime | None = None
    actor: str | None = None
    message: str = ""
    evidence: dict[str, str | float | int | bool] = Field(default_factory=dict)


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


class HumanAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    PAUSE = "pause"
    RESUME = "resume"
    ROLLBACK = "rollback"
    ABORT = "abort"


class ActionRequest(Model):
    """A person's action on a change (the Update's name says which); the request id makes retries
    idempotent: the same id returns the first answer and changes nothing."""

    user: str = Field(min_length=1, max_length=200)
    role: Role
    stage: str | None = None
    comment: str = Field(default="", max_length=2000)
    request_id: str = Field(min_length=1, max_length=200)


class ActionResult(Model):
    """What the workflow did with an action."""

    action: HumanAction
    accepted: bool
    message: str
    request_id: str


class AuditEntry(Model):
    """Who decided what, when and why: one line of a change's audit trail."""

    at: datetime
    actor: str
    role: Role | None = None
    action: str
    stage: str | None = None
    detail: str = ""
    request_id: str | None = None


class VersionMove(Model):
    """A server version change of one cluster."""

    cluster: ClusterRef
    current: AerospikeVersion
    target: AerospikeVersion

    @property
    def is_downgrade(self) -> bool:
        return self.target < self.current
