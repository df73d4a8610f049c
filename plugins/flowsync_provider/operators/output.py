"""What every sync's last task shares: run folder, merged diagnostics, data file, summary.json.

The flow, campaign and audience builds produce the same output document
``{mode, rows, days, sample, csvPreview, diagnostics, window, files, ...}`` so the dashboard team,
the demo and the storage step read one shape. Pure file/dict work: no Klaviyo calls here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from flowsync_provider.core.csvio import csv_preview, sample, write_csv, write_json
from flowsync_provider.core.errors import FlowsyncError, RowBudgetExceeded
from flowsync_provider.core.summary import merge_diagnostics, quota_line, run_folder

SAMPLE_ROWS = 5


class SyncRowBudgetExceeded(RowBudgetExceeded):
    """A row budget breach whose advice names the knobs of the sync at hand (not the flow sync's)."""

    def __init__(self, planned_rows: int, budget: int, *, what: str, advice: str) -> None:
        self.planned_rows = planned_rows
        self.budget = budget
        self.days = None
        self.messages = None
        FlowsyncError.__init__(
            self,
            f"Range too large / row budget exceeded: {planned_rows} {what} > rowBudget {budget}; {advice}.",
        )


def check_budget(count: int, budget: int | None, *, what: str, advice: str) -> None:
    """Fail fast when ``count`` rows would exceed ``budget`` (``None``: no budget)."""
    if budget is not None and count > budget:
        raise SyncRowBudgetExceeded(count, budget, what=what, advice=advice)


def fail_without_retry(exc: FlowsyncError) -> AirflowFailException:
    """Deterministic errors (bad params, budgets) fail the task at once: a retry would fail the same way."""
    return AirflowFailException(str(exc))


def context_ids(context: Mapping[str, Any], default_dag_id: str) -> tuple[str, str]:
    """(dag id, run id) of the running task, with stable fallbacks outside Airflow (bench, scripts)."""
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or default_dag_id
    run_id = context.get("run_id") or "manual"
    return str(dag_id), str(run_id)


def output_folder(context: Mapping[str, Any], default_dag_id: str, account_id: str | None) -> Path:
    """The run's local folder (created): ``$FLOWSYNC_HOME/runs/<dag>/<account>/<run>``."""
    dag_id, run_id = context_ids(context, default_dag_id)
    folder = run_folder(dag_id, run_id, account_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def client_diagnostics(parts: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Merge the ``diagnostics.client`` blocks of several task results (mapped reports included)."""
    return merge_diagnostics(((part or {}).get("diagnostics") or {}).get("client") for part in parts)


def base_diagnostics(client: Mapping[str, Any], warnings: Sequence[str]) -> dict[str, Any]:
    """The part of ``summary.diagnostics`` every sync has: client counters, reporting quota, warnings."""
    calls = int(client.get("reporting_calls", 0) or 0)
    return {
        "client": dict(client),
        "reporting_calls": calls,
        "reporting_budget": quota_line(calls),
        "warnings": list(warnings),
    }


def write_rows(folder: Path, stem: str, columns: Sequence[str], rows: list[dict], fmt: str) -> Path:
    """``<stem>.csv`` or ``<stem>.json`` (formatted cells, as in the sample) in ``folder``."""
    if fmt == "csv":
        path = folder / f"{stem}.csv"
        write_csv(path, columns, rows)
    else:
        path = folder / f"{stem}.json"
        write_json(path, sample(columns, rows, n=len(rows)))
    return path


def previews(columns: Sequence[str], rows: Iterable[dict], n: int = SAMPLE_ROWS) -> dict[str, Any]:
    """The dry-run ``sample`` (formatted objects) and ``csvPreview`` (header + n rows)."""
    head = []
    for index, row in enumerate(rows):
        if index >= n:
            break
        head.append(row)
    return {"sample": sample(columns, head, n=n), "csvPreview": csv_preview(columns, head, n=n)}


def finish_output(folder: Path, data_path: Path, output: dict[str, Any]) -> dict[str, Any]:
    """Attach ``files`` and write ``summary.json`` (the same document the task returns)."""
    output["files"] = {"data": str(data_path), "summary": str(folder / "summary.json")}
    write_json(folder / "summary.json", output)
    return output
