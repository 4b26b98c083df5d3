"""What every evidence source provides (like Argo Rollouts' metric providers): measure one cluster for a
window of time and return :class:`Evidence`; problems the caller should retry or report are
:class:`SourceUnavailable`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import aerospike
from aerospike import exception as aerospike_errors

from aerodeck.validation.models import CollectRequest, Evidence

# Called about once a second with a progress line; the activity turns it into a Temporal heartbeat.
Heartbeat = Callable[[str], None]


class SourceUnavailable(Exception):
    """The source cannot measure at all (unreachable, not configured); the message says what to do."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class EvidenceSource(Protocol):
    def collect(self, request: CollectRequest, heartbeat: Heartbeat) -> Evidence: ...


CONNECT_TIMEOUT_MS = 3000


def connect(endpoints: list[str], timeout_ms: int) -> Any:
    """The official client on the cluster's access endpoints. No retries inside the client: every
    operation the probe measures is one attempt, so latencies and errors are what the cluster gave."""
    if not endpoints:
        raise SourceUnavailable("the cluster reports no access endpoints: AKO has not published its pods yet")
    hosts = []
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        hosts.append((host.strip("[]"), int(port)))
    single = {"total_timeout": timeout_ms, "socket_timeout": timeout_ms, "max_retries": 0}
    config = {
        "hosts": hosts,
        "policies": {"read": single, "write": single, "remove": single, "info": {"timeout": CONNECT_TIMEOUT_MS}},
        "connect_timeout": CONNECT_TIMEOUT_MS,
    }
    try:
        return aerospike.client(config).connect()
    except aerospike_errors.AerospikeError as exc:
        raise SourceUnavailable(f"cannot connect to the cluster at {', '.join(endpoints)}: {exc.msg}") from exc
