"""CSV formula injection: names a spreadsheet would run stay verbatim by default, escaped with escapeFormulas.

The sandbox's ``formula_names`` option renames one flow, one campaign and one profile like formulas
(seed-7 data otherwise unchanged). The oracle below is OWASP's rule written out independently.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from flowsync_dev.sandbox import data as truth

NUMERIC = {"Day", "Send Day", "Delivered", "Unique Opens", "Unique Clicks", "Placed Order", "Recipients",
           "Unsubscribes", "Open Rate", "Click Rate", "Placed Order Rate", "Unsub Rate", "Complaint Rate",
           "Bounce Rate", "Revenue", "Revenue per Recipient", "Can Receive Email Marketing"}


def owasp(cell: str) -> str:
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def run_both(sandbox, flowsync_env, run_dag, dag_id: str, conf: dict, tmp_path: Path) -> list[list[dict]]:
    """The same run without and with escapeFormulas: the two CSVs' rows."""
    tables = []
    for flag in (False, True):
        home = tmp_path / f"home-{flag}"
        flowsync_env(sandbox, FLOWSYNC_HOME=str(home))
        result = run_dag(dag_id, {**conf, "format": "csv", **({"escapeFormulas": True} if flag else {})})
        assert result.ok, result.output[-3000:]
        (summary_path,) = home.rglob("summary.json")
        summary = json.loads(summary_path.read_text())
        text = Path(summary["files"]["data"]).read_text()
        preview = list(csv.DictReader(io.StringIO(summary["csvPreview"])))
        if dag_id != "klaviyo_audience_sync":
            assert summary["csvPreview"] == "".join(text.splitlines(keepends=True)[:6])  # escaped alike
        else:  # masked initials ("=." for a formula name): escaped like the file
            initials = {r["First Name"] for r in preview}
            assert ("'=." if flag else "=.") in initials and ("=." if flag else "'=.") not in initials
        tables.append(list(csv.DictReader(io.StringIO(text))))
    return tables


def check(plain: list[dict], escaped: list[dict], column: str, name: str) -> None:
    assert name in {r[column] for r in plain}, f"{name!r} should appear verbatim by default"
    assert "'" + name in {r[column] for r in escaped}
    assert len(plain) == len(escaped)
    for a, b in zip(plain, escaped, strict=True):
        for key in a:
            assert b[key] == (a[key] if key in NUMERIC else owasp(a[key])), key


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory(seed=7, time_scale=20, profiles=300, formula_names=True)


def test_flow_names(sandbox, flowsync_env, run_dag, tmp_path):
    day = sandbox.account.yesterday.isoformat()
    plain, escaped = run_both(sandbox, flowsync_env, run_dag, "klaviyo_flow_sync", {"start": day, "end": day},
                              tmp_path)
    check(plain, escaped, "Flow Name", truth.FORMULA_FLOW_NAME)


def test_campaign_names(sandbox, flowsync_env, run_dag, tmp_path):
    campaign = next(c for c in sandbox.account.campaigns if c.name == truth.FORMULA_CAMPAIGN_NAME)
    day = campaign.send_day.isoformat()
    plain, escaped = run_both(sandbox, flowsync_env, run_dag, "klaviyo_campaign_sync", {"start": day, "end": day},
                              tmp_path)
    check(plain, escaped, "Campaign Name", truth.FORMULA_CAMPAIGN_NAME)


def test_profile_names(sandbox, flowsync_env, run_dag, tmp_path):
    plain, escaped = run_both(sandbox, flowsync_env, run_dag, "klaviyo_audience_sync", {}, tmp_path)
    check(plain, escaped, "First Name", truth.FORMULA_FIRST_NAME)
    check(plain, escaped, "Last Name", truth.FORMULA_LAST_NAME)
