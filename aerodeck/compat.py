"""Version rules: which server versions an AKO release supports, which moves are safe, and which need
config changes shipped with the image (reference/aerospike-ako.md §2.5 and §3.1)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from aerodeck.versions import AerospikeVersion


class OperatorSupport(BaseModel):
    model_config = ConfigDict(frozen=True)

    operator: str
    min_server: AerospikeVersion
    max_series: tuple[int, int, int]  # highest supported (major, minor, patch) line, any build


def _v(text: str) -> AerospikeVersion:
    return AerospikeVersion.parse(text)


# AKO compatibility matrix (aerospike.com/docs/kubernetes/reference/compatibility).
AKO_SUPPORT: dict[str, OperatorSupport] = {
    s.operator: s
    for s in [
        OperatorSupport(operator="4.5.0", min_server=_v("6.0.0.0"), max_series=(8, 1, 2)),
        OperatorSupport(operator="4.4.0", min_server=_v("6.0.0.0"), max_series=(8, 1, 2)),
        OperatorSupport(operator="4.3.0", min_server=_v("6.0.0.0"), max_series=(8, 1, 1)),
        OperatorSupport(operator="4.2.0", min_server=_v("6.0.0.0"), max_series=(8, 1, 0)),
        OperatorSupport(operator="4.1.0", min_server=_v("6.0.0.0"), max_series=(8, 1, 0)),
        OperatorSupport(operator="4.0.0", min_server=_v("6.0.0.0"), max_series=(8, 0, 0)),
        OperatorSupport(operator="3.4.0", min_server=_v("4.9.0.3"), max_series=(7, 2, 99)),
        OperatorSupport(operator="3.3.0", min_server=_v("4.9.0.3"), max_series=(7, 1, 99)),
    ]
}

# Crossing into 7.0 rewrites the storage format and renames config; the node refuses old config.
CONFIG_BREAKING = _v("7.0.0.0")


def supported_by_operator(operator_version: str, server: AerospikeVersion) -> str | None:
    """None if the operator supports ``server``, else the reason and what to do."""
    support = AKO_SUPPORT.get(operator_version)
    if support is None:
        known = ", ".join(sorted(AKO_SUPPORT))
        return f"operator version {operator_version} is not in aerodeck's compatibility matrix ({known})"
    if server < support.min_server:
        return (
            f"AKO {operator_version} supports Aerospike {support.min_server} and later, not {server}; "
            "upgrade the cluster with an older operator line first"
        )
    if server.parts[:3] > support.max_series:
        line = ".".join(str(p) for p in support.max_series)
        return f"AKO {operator_version} supports Aerospike up to {line}.x, not {server}; upgrade the operator first"
    return None


def move_problems(
    current: AerospikeVersion,
    target: AerospikeVersion,
    operator_version: str,
    *,
    allow_downgrade: bool = False,
    config_change_included: bool = False,
) -> list[str]:
    """Everything wrong with moving a cluster from ``current`` to ``target``; empty when the move is valid."""
    problems: list[str] = []
    if target == current:
        problems.append(f"the cluster already runs {current}; nothing to upgrade")
        return problems
    unsupported = supported_by_operator(operator_version, target)
    if unsupported:
        problems.append(unsupported)
    if target < current and not allow_downgrade:
        problems.append(
            f"{target} is a downgrade from {current}; downgrades run only as rollbacks or with --allow-downgrade"
        )
    crosses_storage_rewrite = min(current, target) < CONFIG_BREAKING <= max(current, target)
    if crosses_storage_rewrite and not config_change_included:
        problems.append(
            f"moving between {current} and {target} crosses 7.0, whose storage and config format changed; "
            "the aerospikeConfig change must ship with the image change"
        )
    if target.major - current.major > 1:
        problems.append(f"{current} to {target} skips a major version; upgrade one major version at a time")
    return problems
