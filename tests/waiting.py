"""Waiting in tests: poll a condition to a deadline, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.02, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail with ``what`` and the last
    value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}: last {last!r}")
        time.sleep(interval)
        last = predicate()
    return last
