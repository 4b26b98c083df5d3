"""The fleet file: what the twin emulates (operator, clusters, SLOs, faults), validated by pydantic."""

from __future__ import annotations

import random
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aerodeck.models import SLO
from aerodeck.versions import AerospikeVersion, VersionError

K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DEFAULT_IMAGE_REPOSITORY = "aerospike/aerospike-server-enterprise"


class FleetFileError(ValueError):
    """A fleet file that cannot be loaded; the message names the file and the offending field."""


class Tier(StrEnum):
    PROD = "prod"
    STAGING = "staging"


class Topology(StrEnum):
    IN_MEMORY = "in-memory"
    HYBRID = "hybrid"


MAX_TICKER_INTERVAL_S = 60


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterLabels(_Strict):
    team: str = Field(pattern=K8S_NAME)
    tier: Tier
    topology: Topology
    use_case: str = Field(pattern=K8S_NAME)


class AerospikeNamespace(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,31}$")
    replication_factor: int = Field(default=2, ge=1, le=4)
    storage_engine: Literal["memory", "device"] = "memory"


class ClusterSpec(_Strict):
    name: str = Field(pattern=K8S_NAME, max_length=40)
    namespace: str = Field(default="aerospike", pattern=K8S_NAME)
    labels: ClusterLabels
    size: int = Field(ge=1, le=256)
    racks: int = Field(default=1, ge=1, le=16)
    rolling_update_batch_size: int | None = Field(default=None, ge=1)
    image: str
    namespaces: list[AerospikeNamespace] = Field(min_length=1)
    slo: SLO
    # Aerospike's ticker-interval (service context): each node's ``latencies:`` shows the last interval.
    ticker_interval_s: int = Field(default=10, ge=1, le=MAX_TICKER_INTERVAL_S)
    # The tenants' own cluster-wide ops/s; default 1.25 x the SLO's min_tps (at least 125).
    tenant_tps: float | None = Field(default=None, gt=0)
    # "sampled": like a real server's, each ticker interval's histogram counts that interval's operations,
    # drawn from the latency model, so server-side quantiles carry sampling noise. "exact": the model's
    # distribution itself (for tests of the exporter and PromQL pipeline, which must recover it exactly).
    latency_histograms: Literal["sampled", "exact"] = "sampled"

    @field_validator("image")
    @classmethod
    def _image_has_version(cls, image: str) -> str:
        AerospikeVersion.from_image(image)
        return image

    @property
    def version(self) -> AerospikeVersion:
        return AerospikeVersion.from_image(self.image)

    @model_validator(mode="after")
    def _racks_fit(self) -> ClusterSpec:
        if self.racks > self.size:
            raise ValueError(f"racks ({self.racks}) cannot exceed size ({self.size})")
        if self.rolling_update_batch_size is not None and self.racks < 2:
            raise ValueError("rolling_update_batch_size needs at least 2 racks (as AKO's webhook requires)")
        return self


class OperatorSpec(_Strict):
    version: str = Field(default="4.5.0", pattern=r"^\d+\.\d+\.\d+$")
    install: Literal["helm", "olm"] = "helm"
    namespace: str = Field(default="aerospike-operator", pattern=K8S_NAME)
    # Operator versions whose upgrade changes the generated pod spec and so restarts every Aerospike pod.
    restarts_pods_on_upgrade_to: list[str] = Field(default_factory=lambda: ["4.0.0"])


class VersionRegression(_Strict):
    """A server version that adds latency to p99 (optionally for one topology only)."""

    kind: Literal["version-regression"] = "version-regression"
    version: AerospikeVersion
    read_p99_pct: float = Field(default=0, ge=0)
    write_p99_pct: float = Field(default=0, ge=0)
    topology: Topology | None = None


class BadImage(_Strict):
    """An image whose pods never become ready: crash-looping or impossible to pull."""

    kind: Literal["bad-image"] = "bad-image"
    version: AerospikeVersion
    reason: Literal["CrashLoopBackOff", "ImagePullBackOff"] = "CrashLoopBackOff"


class StuckMigrations(_Strict):
    """Migrations that never finish on one cluster after a restart."""

    kind: Literal["stuck-migrations"] = "stuck-migrations"
    cluster: str


class NodeDown(_Strict):
    """One pod's Aerospike node is down (refuses connections, pod not ready)."""

    kind: Literal["node-down"] = "node-down"
    cluster: str
    pod: str


class ApiFaults(_Strict):
    """Kubernetes API misbehaviour: added latency, and rates of 5xx and 409 answers to writes."""

    kind: Literal["api"] = "api"
    latency_ms: float = Field(default=0, ge=0)
    error_5xx_rate: float = Field(default=0, ge=0, le=1)
    conflict_rate: float = Field(default=0, ge=0, le=1)


Fault = Annotated[VersionRegression | BadImage | StuckMigrations | NodeDown | ApiFaults, Field(discriminator="kind")]


class FleetFile(_Strict):
    operator: OperatorSpec = Field(default_factory=OperatorSpec)
    # Twin seconds per real second: 60 makes a one-minute pod restart take one second.
    time_scale: float = Field(default=60.0, gt=0)
    available_versions: list[AerospikeVersion] = Field(default_factory=list)
    clusters: list[ClusterSpec] = Field(min_length=1)
    faults: list[Fault] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_clusters(self) -> FleetFile:
        seen: set[tuple[str, str]] = set()
        for cluster in self.clusters:
            key = (cluster.namespace, cluster.name)
            if key in seen:
                raise ValueError(f"cluster {cluster.namespace}/{cluster.name} is declared twice")
            seen.add(key)
        names = {c.name for c in self.clusters}
        for fault in self.faults:
            if isinstance(fault, StuckMigrations | NodeDown) and fault.cluster not in names:
                raise ValueError(f"fault {fault.kind} names unknown cluster {fault.cluster!r}")
        return self

    def cluster(self, name: str, namespace: str | None = None) -> ClusterSpec:
        for cluster in self.clusters:
            if cluster.name == name and (namespace is None or cluster.namespace == namespace):
                return cluster
        raise KeyError(name)


def load_fleet(path: Path) -> FleetFile:
    """Load and validate a fleet file; errors name the file and the field that is wrong."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise FleetFileError(f"cannot read fleet file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise FleetFileError(f"fleet file {path} is not valid YAML: {exc}") from exc
    return parse_fleet(raw, source=str(path))


def parse_fleet(raw: object, source: str = "fleet") -> FleetFile:
    if not isinstance(raw, dict):
        raise FleetFileError(f"{source}: expected a mapping with 'clusters', got {type(raw).__name__}")
    try:
        return FleetFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise FleetFileError(f"{source}: {problems}") from exc
    except VersionError as exc:
        raise FleetFileError(f"{source}: {exc}") from exc


def default_fleet() -> FleetFile:
    """The demo fleet shipped with the package (about a dozen clusters across five teams)."""
    text = resources.files("aerodeck.twin").joinpath("demo-fleet.yaml").read_text()
    return parse_fleet(yaml.safe_load(text), source="demo-fleet.yaml")


_TEAMS = ["search", "ads", "recommendations", "pricing", "inventory"]
_VERSIONS = ["7.2.0.6", "8.0.0.8", "8.0.0.9", "8.1.0.3", "8.1.2.0"]


def generated_fleet(clusters: int, seed: int = 7, size: int = 3, time_scale: float = 60.0) -> FleetFile:
    """A synthetic fleet of ``clusters`` clusters for scale work, deterministic for a seed."""
    rng = random.Random(seed)
    specs = []
    for index in range(clusters):
        team = _TEAMS[index % len(_TEAMS)]
        topology = Topology.HYBRID if rng.random() < 0.4 else Topology.IN_MEMORY
        version = rng.choices(_VERSIONS, weights=[1, 3, 4, 2, 1])[0]
        specs.append(
            ClusterSpec(
                name=f"{team}-{index:04d}",
                namespace=f"aero-{team}",
                labels=ClusterLabels(
                    team=team,
                    tier=Tier.PROD if rng.random() < 0.6 else Tier.STAGING,
                    topology=topology,
                    use_case=rng.choice(["cache", "profile", "session", "catalog", "counters"]),
                ),
                size=size,
                image=f"{DEFAULT_IMAGE_REPOSITORY}:{version}",
                namespaces=[
                    AerospikeNamespace(
                        name="data", storage_engine="device" if topology is Topology.HYBRID else "memory"
                    )
                ],
                slo=SLO(read_p99_ms=2.0 if topology is Topology.IN_MEMORY else 4.0, write_p99_ms=4.0),
            )
        )
    return FleetFile(
        time_scale=time_scale,
        available_versions=[AerospikeVersion.parse(v) for v in _VERSIONS],
        clusters=specs,
    )
