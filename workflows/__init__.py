"""Deterministic orchestration: every workflow the worker registers."""

from workflows.self_check import SelfCheckWorkflow

ALL_WORKFLOWS: list[type] = [SelfCheckWorkflow]
