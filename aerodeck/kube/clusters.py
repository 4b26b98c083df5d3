"""AerospikeCluster custom resources as typed views, and the domain's definition of "done"."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import Field, ValidationError

from aerodeck.kube import names
from aerodeck.models import SLO, ClusterRef, Model
from aerodeck.versions import AerospikeVersion, VersionError


class ClusterView(Model):
    """What aerodeck needs of one AerospikeCluster: identity, tenant labels, SLOs, spec and status."""

    ref: ClusterRef
    team: str | None = None
    tier: str | None = None
    topology: str | None = None
    use_case: str | None = None
    slo: SLO | None = None
    size: int
    spec_image: str
    paused: bool = False
    phase: str | None = None
    status_image: str | None = None
    status_size: int | None = None
    pod_images: dict[str, str] = Field(default_factory=dict)
    access_endpoints: list[str] = Field(default_factory=list)
    aerospike_namespaces: list[str] = Field(default_factory=list)
    resource_version: str
    generation: int = 0

    @property
    def version(self) -> AerospikeVersion | None:
        try:
            return AerospikeVersion.from_image(self.spec_image)
        except VersionError:
            return None

    def pods_by_image(self) -> dict[str, int]:
        return dict(Counter(self.pod_images.values()))

    @property
    def converged(self) -> bool:
        """AKO has finished: Completed, status copy equals spec, every pod on the spec image."""
        return (
            self.phase == "Completed"
            and self.status_image == self.spec_image
            and self.status_size == self.size
            and len(self.pod_images) == self.size
            and all(image == self.spec_image for image in self.pod_images.values())
        )


def _slo(annotations: dict[str, str]) -> SLO | None:
    values: dict[str, Any] = {
        field: annotations[key] for field, key in names.SLO_ANNOTATIONS.items() if key in annotations
    }
    if "read_p99_ms" not in values or "write_p99_ms" not in values:
        return None
    try:
        return SLO.model_validate(values)
    except ValidationError:
        return None  # a malformed annotation means no registered SLO, reported as such


def cluster_view(obj: dict[str, Any]) -> ClusterView:
    """Parse a CR as returned by the API (CustomObjectsApi returns plain dicts)."""
    metadata = obj.get("metadata", {})
    labels = metadata.get("labels") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return ClusterView(
        ref=ClusterRef(namespace=metadata["namespace"], name=metadata["name"]),
        team=labels.get(names.TEAM_LABEL),
        tier=labels.get(names.TIER_LABEL),
        topology=labels.get(names.TOPOLOGY_LABEL),
        use_case=labels.get(names.USE_CASE_LABEL),
        slo=_slo(metadata.get("annotations") or {}),
        size=int(spec.get("size", 0)),
        spec_image=str(spec.get("image", "")),
        paused=bool(spec.get("paused", False)),
        phase=status.get("phase"),
        status_image=status.get("image"),
        status_size=status.get("size"),
        pod_images={pod: str(info.get("image", "")) for pod, info in (status.get("pods") or {}).items()},
        access_endpoints=[
            endpoint
            for info in (status.get("pods") or {}).values()
            for endpoint in ((info.get("aerospike") or {}).get("accessEndpoints") or [])
        ],
        aerospike_namespaces=[
            str(ns.get("name"))
            for ns in ((spec.get("aerospikeConfig") or {}).get("namespaces") or [])
            if isinstance(ns, dict) and ns.get("name")
        ],
        resource_version=str(metadata.get("resourceVersion", "")),
        generation=int(metadata.get("generation", 0)),
    )
