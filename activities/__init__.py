"""All I/O of aerodeck: every activity the worker registers."""

from collections.abc import Callable
from typing import Any

from activities.self_check import describe_worker

ALL_ACTIVITIES: list[Callable[..., Any]] = [describe_worker]
