"""What every sync's last step shares: merged diagnostics, row budget errors, data file, summary.json.

The campaign and audience builds (and the flow build, if it switches to these helpers) produce the
same output document ``{mode, rows, days, sample, csvPreview, diagnostics, window, files, ...}`` so the
dashboard team, the demo and the storage step read one shape. Pure file/dict work: no Airflow import,
no Klaviyo calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flowsync_provider.core.csvio import csv_preview, sample, write_csv, write_json
from flowsync_provider.core.errors import FlowsyncError, RowBudgetExceeded
from flowsync_provider.core.summary import merge_diagnostics, quota_line

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


def write_rows(folder: Path, stem: str, columns: Sequence[str], rows: list[dict], fmt: str, *,
               escape_formulas: bool = False) -> Path:
    """``<stem>.csv`` or ``<stem>.json`` (formatted cells, as in the sample) in ``folder``.

    ``escape_formulas`` applies to CSV only: JSON is not opened as a spreadsheet and stays verbatim.
    """
    if fmt == "csv":
        path = folder / f"{stem}.csv"
        write_csv(path, columns, rows, escape_formulas=escape_formulas)
    else:
        path = folder / f"{stem}.json"
        write_json(path, sample(columns, rows, n=len(rows)))
    return path


def previews(columns: Sequence[str], rows: Iterable[dict], n: int = SAMPLE_ROWS, *,
             escape_formulas: bool = False) -> dict[str, Any]:
    """The dry-run ``sample`` (formatted objects) and ``csvPreview`` (header + n rows, escaped like the CSV)."""
    head = []
    for index, row in enumerate(rows):
        if index >= n:
            break
        head.append(row)
    return {"sample": sample(columns, head, n=n),
            "csvPreview": csv_preview(columns, head, n=n, escape_formulas=escape_formulas)}


def finish_output(folder: Path, data_path: Path, output: dict[str, Any]) -> dict[str, Any]:
    """Attach ``files`` and write ``summary.json`` (the same document the task returns)."""
    output["files"] = {"data": str(data_path), "summary": str(folder / "summary.json")}
    write_json(folder / "summary.json", output)
    return output
