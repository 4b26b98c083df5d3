"""AKO's admission webhooks for AerospikeCluster: the defaults its mutating webhook sets and the checks its
validating webhook (``vaerospikecluster.kb.io``) enforces, with AKO's messages
(internal/webhook/v1/aerospikecluster_validating_webhook.go; docs/reference/aerospike-ako.md §1.2, §2.1)."""

from __future__ import annotations

from typing import Any

from aerodeck.twin.kube.objects import AEROSPIKE_CLUSTER, API_VERSION_LABEL
from aerodeck.twin.kube.store import ApiError, JsonObj
from aerodeck.versions import AerospikeVersion, VersionError

WEBHOOK = "vaerospikecluster.kb.io"
BASE_VERSION = AerospikeVersion(6, 0, 0, 0)
MAX_CLUSTER_SIZE = 256


class Denied(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def denied(name: str, exc: Denied) -> ApiError:
    """A webhook denial as 422 Invalid; the webhook's phrasing is in the message and in the cause, which is
    what kubectl prints for Invalid errors."""
    message = f'admission webhook "{WEBHOOK}" denied the request: {exc.message}'
    return ApiError(
        422,
        "Invalid",
        message,
        {
            "name": name,
            "group": AEROSPIKE_CLUSTER.group,
            "kind": AEROSPIKE_CLUSTER.plural,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": exc.field}],
        },
    )


def admit_aerospike_cluster(old: JsonObj | None, new: JsonObj) -> None:
    """Mutate then validate a create (``old`` None) or an update; raise a 422 ApiError to refuse it."""
    name = str(new.get("metadata", {}).get("name", ""))
    try:
        _mutate(new)
        _validate(new)
        if old is not None:
            _validate_update(old, new)
    except Denied as exc:
        raise denied(name, exc) from exc


def _mutate(cr: JsonObj) -> None:
    """The defaults AKO's mutating webhook sets that the twin relies on."""
    cr["metadata"].setdefault("labels", {})[API_VERSION_LABEL] = "v1"
    spec = cr.get("spec")
    if not isinstance(spec, dict):
        return
    rack_config = spec.setdefault("rackConfig", {})
    if isinstance(rack_config, dict) and not rack_config.get("racks"):
        rack_config["racks"] = [{"id": 0}]
    config = spec.get("aerospikeConfig")
    if isinstance(config, dict) and isinstance(config.setdefault("service", {}), dict):
        config["service"].setdefault("cluster-name", cr["metadata"].get("name"))


def _edition(image: str) -> str | None:
    lowered = image.lower()
    if "federal" in lowered:
        return "federal"
    if "enterprise" in lowered:
        return "enterprise"
    return None


def _version(image: str) -> AerospikeVersion:
    try:
        return AerospikeVersion.from_image(image)
    except VersionError as exc:
        raise Denied("spec.image", f"image version is mandatory for image: {image} ({exc})") from exc


def _validate(cr: JsonObj) -> None:
    spec = cr.get("spec")
    if not isinstance(spec, dict):
        raise Denied("spec", "spec is required and must be an object")
    image = spec.get("image")
    if not isinstance(image, str) or not image:
        raise Denied("spec.image", "spec.image is required")
    if _edition(image) is None:
        raise Denied("spec.image", "CommunityEdition Cluster not supported")
    size = spec.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise Denied("spec.size", f"invalid cluster size {size}")
    if size > MAX_CLUSTER_SIZE:
        raise Denied("spec.size", f"cluster size cannot be more than {MAX_CLUSTER_SIZE}")
    version = _version(image)
    if version < BASE_VERSION:
        raise Denied("spec.image", f"image version {version} not supported. Base version {BASE_VERSION}")
    operations = spec.get("operations") or []
    if not isinstance(operations, list) or len(operations) > 1:
        raise Denied("spec.operations", "spec.operations: Too many: must have at most 1 items")
    if operations and not (cr.get("status") or {}).get("aerospikeConfig"):
        raise Denied("spec.operations", "operation cannot be added during aerospike cluster creation")
    config = spec.get("aerospikeConfig")
    if not isinstance(config, dict) or not config:
        raise Denied("spec.aerospikeConfig", "aerospikeConfig cannot be empty")
    if not isinstance(config.get("namespaces"), list):
        raise Denied(
            "spec.aerospikeConfig.namespaces",
            f"aerospikeConfig.namespace not a present. aerospikeConfig {config}",
        )
    _validate_rack_config(spec)


def _validate_rack_config(spec: JsonObj) -> None:
    rack_config = spec.get("rackConfig") or {}
    if not isinstance(rack_config, dict):
        raise Denied("spec.rackConfig", "spec.rackConfig must be an object")
    racks = rack_config.get("racks") or []
    ids = [r.get("id") for r in racks if isinstance(r, dict)]
    if len(ids) != len(racks) or not all(isinstance(i, int) and 0 <= i <= 1000000 for i in ids):
        raise Denied("spec.rackConfig.racks", "invalid rackID. RackID range (1, 1000000)")
    if len(set(ids)) != len(ids):
        raise Denied("spec.rackConfig.racks", f"duplicate rackID not allowed, racks {racks}")
    namespaces = [ns.get("name") for ns in spec["aerospikeConfig"]["namespaces"] if isinstance(ns, dict)]
    for field in ("rollingUpdateBatchSize", "scaleDownBatchSize"):
        batch: Any = rack_config.get(field)
        if batch is None:
            continue
        path = f"spec.rackConfig.{field}"
        if isinstance(batch, int) and batch < 0:
            raise Denied(path, f"can not use negative {path} {batch}")
        if len(racks) < 2:
            raise Denied(path, f"can not use {path} when number of racks is less than two")
        for ns in namespaces:
            if ns not in (rack_config.get("namespaces") or []):
                raise Denied(path, f"can not use {path} when there is any non-rack enabled namespace {ns}")


def _validate_update(old: JsonObj, new: JsonObj) -> None:
    old_spec, new_spec = old.get("spec") or {}, new["spec"]
    old_image, new_image = str(old_spec.get("image", "")), new_spec["image"]
    old_edition, new_edition = _edition(old_image), _edition(new_image)
    if old_edition and old_edition != new_edition:
        raise Denied(
            "spec.image",
            f"cannot switch {old_edition} image {old_image} to {new_edition} image {new_image}: "
            "enterprise and federal editions cannot be changed on a running cluster",
        )
    old_multi = bool((old_spec.get("podSpec") or {}).get("multiPodPerHost"))
    new_multi = bool((new_spec.get("podSpec") or {}).get("multiPodPerHost"))
    if old_multi != new_multi:
        raise Denied("spec.podSpec.multiPodPerHost", "cannot update MultiPodPerHost setting")
    operations = new_spec.get("operations") or []
    if operations and operations != (old_spec.get("operations") or []):
        status_image = (old.get("status") or {}).get("image", old_image)
        if new_image != old_image or new_image != status_image:
            raise Denied("spec.operations", "cannot change Spec.Operations along with image update")
