"""Diagnostics bookkeeping and the run folder layout (pure: no Airflow, no HTTP)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flowsync_provider.core.ids import safe_segment
from flowsync_provider.core.plan import REPORTING_DAILY_QUOTA


def merge_diagnostics(parts: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Sum numeric leaves (recursively) of several tasks' client diagnostics; lists are concatenated."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in (part or {}).items():
            if isinstance(value, Mapping):
                out[key] = merge_diagnostics([out.get(key) or {}, value])
            elif isinstance(value, bool):
                out[key] = bool(out.get(key)) or value
            elif isinstance(value, (int, float)):
                total = out.get(key, 0) + value
                out[key] = round(total, 3) if isinstance(total, float) else total
            elif isinstance(value, list):
                out[key] = [*(out.get(key) or []), *value]
            else:
                out[key] = value
    return out


def quota_line(reporting_calls: int, quota: int = REPORTING_DAILY_QUOTA) -> str:
    return f"reporting calls used: {reporting_calls} of Klaviyo's {quota}/day budget ({reporting_calls / quota:.1%})"


def flowsync_home() -> Path:
    """``settings.flowsync_home()``, for callers not yet passing the home (the one home rule lives there).

    TODO issue 10: remove when the operator/snapshot rewrite lands (operators/upload.py imports it here).
    """
    from flowsync_provider.core.params import legacy_settings

    return legacy_settings().flowsync_home()


def run_folder(dag_id: str, run_id: str, account: str | None = None, home: Path | None = None) -> Path:
    """``<home>/runs/<dag>/[<account>/]<run>``, each part through the one injective id rule.

    ``home`` is ``settings.flowsync_home()`` (looked up when omitted: TODO issue 10, operators pass it after
    the rewrite).

    Two different account ids never share a folder (``acme/eu`` and ``acme_eu`` used to), so one
    account's files can never be uploaded (or cleaned up) by another.
    """
    parts = [flowsync_home() if home is None else Path(home), "runs", safe_segment(dag_id, fallback="dag")]
    if account not in (None, ""):
        parts.append(safe_segment(account, fallback="account"))
    parts.append(safe_segment(run_id, fallback="run"))
    return Path(*parts)
