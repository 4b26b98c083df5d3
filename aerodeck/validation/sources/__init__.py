"""Evidence sources, one module each; :func:`source_for` picks one for a request."""

from __future__ import annotations

from aerodeck.validation.models import Source
from aerodeck.validation.sources.base import EvidenceSource, Heartbeat, SourceUnavailable
from aerodeck.validation.sources.info_latency import InfoLatencySource
from aerodeck.validation.sources.probe import ProbeSource
from aerodeck.validation.sources.prometheus import PrometheusSource

__all__ = ["EvidenceSource", "Heartbeat", "SourceUnavailable", "source_for"]


def source_for(source: Source, prometheus_url: str | None) -> EvidenceSource:
    if source is Source.PROMETHEUS:
        return PrometheusSource(prometheus_url)
    if source is Source.INFO:
        return InfoLatencySource()
    return ProbeSource()
