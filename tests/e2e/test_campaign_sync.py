"""The campaign sync DAG end to end: dag.test() on SQLite, Klaviyo sandbox over loopback.

Expectations come from the sandbox's seeded ground truth (flowsync_dev.sandbox.data) with their
own selection rules, ordering and number formatting — not from core.catalog/core.rows.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flowsync_dev.sandbox import data as truth

HEADER = ("Campaign ID,Campaign Name,Campaign Message ID,Channel,Send Time,Send Day,Status,Subject,Audiences,"
          "Recipients,Delivered,Unique Opens,Open Rate,Unique Clicks,Click Rate,Placed Order,Placed Order Rate,"
          "Revenue,Revenue per Recipient,Unsubscribes,Unsub Rate,Complaint Rate,Bounce Rate,Tags")
STATS = [  # statistic, kind — in column order from Recipients to Bounce Rate
    ("recipients", "count"), ("delivered", "count"), ("opens_unique", "count"), ("open_rate", "rate"),
    ("clicks_unique", "count"), ("click_rate", "rate"), ("conversion_uniques", "count"),
    ("conversion_rate", "rate"), ("conversion_value", "money"), ("revenue_per_recipient", "money"),
    ("unsubscribe_uniques", "count"), ("unsubscribe_rate", "rate"), ("spam_complaint_rate", "rate"),
    ("bounce_rate", "rate"),
]


def fmt(value: float | int, kind: str) -> str:
    if kind == "count":
        return str(int(value))
    places = Decimal("0.000001") if kind == "rate" else Decimal("0.01")
    return str(Decimal(repr(float(value))).quantize(places, rounding=ROUND_HALF_UP))


def in_window(acct: truth.SandboxAccount, start: date, end: date) -> list[truth.Campaign]:
    """Every campaign (any status/channel/archived) whose send day is inside [start, end]."""
    return [c for c in acct.campaigns if c.send_day is not None and start <= c.send_day <= end]


def expected_csv(acct: truth.SandboxAccount, start: date, end: date) -> str:
    tz = ZoneInfo(truth.TIMEZONE)
    metric = acct.placed_order_metric.id
    audience_names = {x.id: x.name for x in acct.lists} | {s.id: s.name for s in acct.segments}
    tag_names = {t.id: t.name for t in acct.tags}
    keyed = []
    for campaign in in_window(acct, start, end):
        if campaign.archived or campaign.status != "Sent" or campaign.channel != "email":
            continue
        local = campaign.send_time.astimezone(tz)
        for message_id in campaign.message_ids:
            message = acct.campaign_message_by_id[message_id]
            additive = acct.campaign_stats(message_id, metric)
            stats = {**additive, **truth.rates(additive)}
            cells = [campaign.id, campaign.name, message_id, "email", local.isoformat(), local.date().isoformat(),
                     "Sent", message.subject or "", ";".join(sorted(audience_names[a] for a in campaign.included))]
            cells += [fmt(stats[stat], kind) for stat, kind in STATS]
            cells.append(";".join(sorted(tag_names[t] for t in campaign.tag_ids)))
            keyed.append(((campaign.send_time, campaign.id, message_id), cells))
    out = io.StringIO()
    out.write(HEADER + "\n")
    writer = csv.writer(out, lineterminator="\n")
    for _, cells in sorted(keyed, key=lambda item: item[0]):
        writer.writerow(cells)
    return out.getvalue()


def summary_of(home: Path) -> dict:
    found = sorted(home.rglob("summary.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def campaign_report_calls(srv) -> list[dict]:
    return [r for r in srv.requests()
            if r.get("operation") == "query_campaign_values" and not r.get("fault") and r.get("status") == 200]


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory(seed=7, time_scale=20)


def first_year(acct: truth.SandboxAccount) -> tuple[date, date]:
    """The first 365 days of the sandbox history: archived, draft, SMS and sent email campaigns mix."""
    return acct.history_start, acct.history_start + timedelta(days=364)


def test_csv_equals_seeded_truth_with_one_report_call(sandbox, flowsync_env, run_dag):
    acct = sandbox.account
    start, end = first_year(acct)
    window = in_window(acct, start, end)
    # the window really holds what must be excluded, and campaigns exist after it
    assert any(c.archived and c.status == "Sent" for c in window)
    assert any(c.status != "Sent" for c in acct.campaigns if c.created_at.date() <= end)
    assert any(c.channel == "sms" and c.status == "Sent" and not c.archived for c in window)
    assert any(c.send_day and c.send_day > end and c.status == "Sent" for c in acct.campaigns)

    home = flowsync_env(sandbox)
    result = run_dag("klaviyo_campaign_sync", {"format": "csv", "start": start.isoformat(), "end": end.isoformat()})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    text = Path(summary["files"]["data"]).read_text()
    assert text.splitlines()[0] == HEADER
    assert text == expected_csv(acct, start, end)

    rows = list(csv.DictReader(io.StringIO(text)))
    ids = {r["Campaign ID"] for r in rows}
    assert ids and not ids & {c.id for c in window if c.archived or c.channel != "email" or c.status != "Sent"}
    assert all(start.isoformat() <= r["Send Day"] <= end.isoformat() for r in rows)
    # a 365-day window costs exactly one campaign-values call, and the run saw no 429
    assert len(campaign_report_calls(sandbox)) == 1
    assert not [r for r in sandbox.requests() if r["status"] == 429]
    # lists and segments are resolved with a few calls, not one per campaign
    names_calls = [r for r in sandbox.requests() if r["path"] in ("/api/lists", "/api/segments")]
    assert 1 <= len(names_calls) <= 4
    assert summary["rows"] == len(rows) and summary["campaigns"] == len(ids)
    assert summary["days"] == 365
    assert summary["diagnostics"]["reporting_calls"] == 1
    assert summary["diagnostics"]["timezone"] == truth.TIMEZONE
    assert set(summary) >= {"mode", "rows", "days", "campaigns", "sample", "csvPreview", "diagnostics", "window",
                            "files"}
    assert summary["csvPreview"].splitlines()[0] == HEADER
    assert summary["sample"][0]["Campaign ID"] == rows[0]["Campaign ID"]


def test_window_over_a_year_takes_two_calls_and_json_format(sandbox, flowsync_env, run_dag, monkeypatch):
    acct = sandbox.account
    start = acct.history_start + timedelta(days=10)
    end = start + timedelta(days=365)  # 366 days: the hard maximum, one day over a report's year
    home = flowsync_env(sandbox)
    result = run_dag("klaviyo_campaign_sync", {"format": "json", "start": start.isoformat(),
                                               "end": end.isoformat()})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    assert len(campaign_report_calls(sandbox)) == 2
    chunks = summary["diagnostics"]["chunks"]
    assert [(c["start"], c["end"]) for c in chunks] == [
        (start.isoformat(), (start + timedelta(days=364)).isoformat()), (end.isoformat(), end.isoformat())]
    data = json.loads(Path(summary["files"]["data"]).read_text())
    expected = list(csv.DictReader(io.StringIO(expected_csv(acct, start, end))))
    assert data == expected


def test_quiet_window_makes_no_report_call(sandbox, flowsync_env, run_dag):
    acct = sandbox.account
    sent_days = sorted(c.send_day for c in acct.campaigns if c.send_day and c.send_day <= acct.yesterday)
    gap_start = next(a + timedelta(days=1) for a, b in zip(sent_days, sent_days[1:], strict=False)
                     if (b - a).days > 6)
    home = flowsync_env(sandbox)
    result = run_dag("klaviyo_campaign_sync", {"format": "csv", "start": gap_start.isoformat(),
                                               "end": (gap_start + timedelta(days=4)).isoformat()})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    assert Path(summary["files"]["data"]).read_text() == HEADER + "\n"
    assert campaign_report_calls(sandbox) == []
    assert summary["diagnostics"]["chunks"][0]["skipped"] is True


def test_row_budget_fails_before_any_report_call(sandbox, flowsync_env, run_dag):
    flowsync_env(sandbox)
    start, end = first_year(sandbox.account)
    result = run_dag("klaviyo_campaign_sync", {"start": start.isoformat(), "end": end.isoformat(), "rowBudget": 2})
    assert not result.ok
    assert result.tasks["catalog"] == "failed"
    assert "row budget exceeded" in result.output and "rowBudget 2" in result.output
    assert campaign_report_calls(sandbox) == []


@pytest.mark.parametrize(
    ("conf", "env", "message"),
    [
        ({}, {"KLAVIYO_ENABLE": "false"}, "Klaviyo disabled: set KLAVIYO_ENABLE=true"),
        ({"apiToken": "pk_secret_in_conf"}, {}, "apiToken must not be passed in the run's conf"),
        ({"mode": "live"}, {"FLOWSYNC_STORAGE_BACKEND": "auto"}, "Live mode needs storage"),
        ({"limitFlows": 3}, {}, "limitFlows is not a parameter of this sync"),
    ],
)
def test_refusals_call_nothing(sandbox, flowsync_env, run_dag, conf, env, message):
    flowsync_env(sandbox, **env)
    result = run_dag("klaviyo_campaign_sync", conf)
    assert not result.ok
    assert result.tasks["plan"] == "failed"
    assert message in result.output
    assert not [r for r in sandbox.requests() if r["path"].startswith("/api/campaign")]


def test_faults_give_identical_bytes(sandbox_factory, flowsync_env, run_dag):
    clean = sandbox_factory(seed=7, time_scale=20)
    faulty = sandbox_factory(seed=7, time_scale=20, fault_rate=0.1)
    start, end = first_year(clean.account)
    conf = {"format": "csv", "start": start.isoformat(), "end": end.isoformat()}
    outputs = []
    for srv in (clean, faulty):
        home = flowsync_env(srv)
        result = run_dag("klaviyo_campaign_sync", conf)
        assert result.ok, result.output[-3000:]
        outputs.append(Path(summary_of(home)["files"]["data"]).read_bytes())
        assert srv.api_key not in result.output
        home.rename(home.with_name(f"flowsync-{srv.url.rsplit(':', 1)[1]}"))
    assert outputs[0] == outputs[1]
    assert outputs[0].decode() == expected_csv(clean.account, start, end)
    assert [r for r in faulty.requests() if r.get("fault")], "the faulty sandbox injected no fault"


@pytest.mark.parametrize("conf", [{"days": 0}, {"timeframeKey": "last_5_days"}, {"start": "yesterday"}])
def test_param_schema_refuses_bad_triggers(dagbag, conf):
    params = copy.deepcopy(dagbag.get_dag("klaviyo_campaign_sync").params)
    with pytest.raises(Exception) as info:
        params.update(conf)
        params.validate()
    assert any(key in str(info.value) for key in conf)
