"""Errors as values a user can act on: each message is one sentence naming the field and the fix."""

from __future__ import annotations

from flowsync_provider.errors import FlowsyncError

__all__ = ["FlowsyncError", "ParamError", "RowBudgetExceeded"]


class ParamError(FlowsyncError, ValueError):
    """A DAG/run parameter is invalid; raised before any API call, so nothing is wasted."""


class RowBudgetExceeded(FlowsyncError):
    """The planned CSV would exceed the row budget (runbook: fail fast with numbers and the knobs to turn)."""

    def __init__(self, planned_rows: int, budget: int, days: int | None = None, messages: int | None = None):
        self.planned_rows = planned_rows
        self.budget = budget
        self.days = days
        self.messages = messages
        shape = f" ({days} days × {messages} messages)" if days is not None and messages is not None else ""
        super().__init__(
            f"Range too large / row budget exceeded: {planned_rows} rows planned{shape} > "
            f"rowBudget {budget}; reduce days, limitFlows or limitMessages."
        )
