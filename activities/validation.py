"""Performance validation I/O: collect evidence from a source (probe, Prometheus, ``latencies:``) with
heartbeats, and run the judge (pure, but an activity so its verdict is recorded once in history)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from aerodeck.settings import Settings
from aerodeck.validation.judge import judge
from aerodeck.validation.models import CollectRequest, Evidence, JudgeRequest, ValidationReport
from aerodeck.validation.sources import SourceUnavailable, source_for

EVIDENCE_UNAVAILABLE = "EvidenceUnavailable"


class ValidationActivities:
    """Activities bound to the worker's settings (the Prometheus URL). Sync: they block on the official
    client, on sleeps and on HTTP, so they run in the worker's thread pool."""

    def __init__(self, settings: Settings) -> None:
        self._prometheus_url = settings.prometheus_url

    @activity.defn(name="collect_validation_evidence")
    def collect_evidence(self, request: CollectRequest) -> Evidence:
        """Measure the cluster for ``request.duration_s``; heartbeats about once a second."""
        source = source_for(request.source, self._prometheus_url)
        try:
            return source.collect(request, lambda progress: activity.heartbeat(progress))
        except SourceUnavailable as exc:
            raise ApplicationError(str(exc), type=EVIDENCE_UNAVAILABLE, non_retryable=not exc.retryable) from exc


@activity.defn(name="judge_validation")
def judge_validation(request: JudgeRequest) -> ValidationReport:
    return judge(request)
