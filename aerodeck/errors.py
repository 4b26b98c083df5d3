"""Expected failures, each with the exit code scripts can trust: 2 for bad input, 1 for failed operations."""

from __future__ import annotations


class AerodeckError(Exception):
    """An expected failure with a message that says what was wrong and what to do."""

    exit_code = 1


class BadInput(AerodeckError):
    """The request itself is wrong (malformed version, unknown cluster, bad settings). Nothing changed."""

    exit_code = 2


class OperationFailed(AerodeckError):
    """The request was fine but could not be carried out (unreachable service, port taken, timeout)."""

    exit_code = 1


class Unreachable(OperationFailed):
    """A service aerodeck needs (Temporal, Kubernetes, Prometheus) does not answer."""
