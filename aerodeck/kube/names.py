"""Names shared with AKO and with the platform team's manifests: API coordinates, labels, annotations."""

from __future__ import annotations

ASDB_GROUP = "asdb.aerospike.com"
ASDB_VERSION = "v1"
AEROSPIKE_CLUSTERS = "aerospikeclusters"

# Labels AKO puts on every Aerospike pod.
POD_CR_LABEL = "aerospike.com/cr"
POD_RACK_LABEL = "aerospike.com/rack-id"
SERVER_CONTAINER = "aerospike-server"

# aerodeck's own metadata on each AerospikeCluster: tenant labels, and the registered SLOs as annotations.
PREFIX = "aerodeck.io/"
TEAM_LABEL = f"{PREFIX}team"
TIER_LABEL = f"{PREFIX}tier"
TOPOLOGY_LABEL = f"{PREFIX}topology"
USE_CASE_LABEL = f"{PREFIX}use-case"
SLO_ANNOTATIONS = {
    "read_p99_ms": f"{PREFIX}slo-read-p99-ms",
    "write_p99_ms": f"{PREFIX}slo-write-p99-ms",
    "read_p999_ms": f"{PREFIX}slo-read-p999-ms",
    "write_p999_ms": f"{PREFIX}slo-write-p999-ms",
    "min_tps": f"{PREFIX}slo-min-tps",
    "max_error_rate": f"{PREFIX}slo-max-error-rate",
}

OPERATOR_VERSION_ANNOTATION = "aerospike-kubernetes-operator/version"
