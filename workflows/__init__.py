"""Deterministic orchestration: every workflow the worker registers."""

from workflows.self_check import SelfCheckWorkflow
from workflows.upgrade import ClusterUpgradeWorkflow
from workflows.validation import PerformanceValidationWorkflow

ALL_WORKFLOWS: list[type] = [SelfCheckWorkflow, ClusterUpgradeWorkflow, PerformanceValidationWorkflow]
