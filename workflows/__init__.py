"""Deterministic orchestration: every workflow the worker registers."""

from workflows.self_check import SelfCheckWorkflow
from workflows.upgrade import ClusterUpgradeWorkflow

ALL_WORKFLOWS: list[type] = [SelfCheckWorkflow, ClusterUpgradeWorkflow]
