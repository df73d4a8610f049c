"""The flow sync DAG end to end: dag.test() on SQLite, Klaviyo sandbox over loopback.

Expectations are computed from the sandbox's seeded ground truth (flowsync_dev.sandbox.data),
not from the code under test: own formatting, own catalog rules, own zero-fill.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flowsync_dev.sandbox import data as truth

HEADER = ("Day,Flow ID,Flow Name,Flow Message ID,Flow Message Name,Flow Message Channel,Status,Delivered,"
          "Unique Opens,Open Rate,Unique Clicks,Click Rate,Placed Order,Placed Order Rate,Revenue,"
          "Revenue per Recipient,Unsub Rate,Complaint Rate,Bounce Rate,Tags")
COLUMNS = [  # column, statistic, kind
    ("Delivered", "delivered", "count"), ("Unique Opens", "opens_unique", "count"),
    ("Open Rate", "open_rate", "rate"), ("Unique Clicks", "clicks_unique", "count"),
    ("Click Rate", "click_rate", "rate"), ("Placed Order", "conversion_uniques", "count"),
    ("Placed Order Rate", "conversion_rate", "rate"), ("Revenue", "conversion_value", "money"),
    ("Revenue per Recipient", "revenue_per_recipient", "money"), ("Unsub Rate", "unsubscribe_rate", "rate"),
    ("Complaint Rate", "spam_complaint_rate", "rate"), ("Bounce Rate", "bounce_rate", "rate"),
]
ADDITIVE = ("Delivered", "Unique Opens", "Unique Clicks", "Placed Order", "Revenue")


def fmt(value: float | int, kind: str) -> str:
    if kind == "count":
        return str(int(value))
    places = Decimal("0.000001") if kind == "rate" else Decimal("0.01")
    return str(Decimal(repr(float(value))).quantize(places, rounding=ROUND_HALF_UP))


def dst_window(acct: truth.SandboxAccount) -> tuple[date, date]:
    """Seven days around the most recent DST change before yesterday in the account timezone."""
    tz = ZoneInfo(truth.TIMEZONE)
    day = acct.yesterday - timedelta(days=4)
    while True:
        a = datetime.combine(day, time(12), tzinfo=tz).utcoffset()
        b = datetime.combine(day + timedelta(days=1), time(12), tzinfo=tz).utcoffset()
        if a != b:
            return day - timedelta(days=3), day + timedelta(days=3)
        day -= timedelta(days=1)


def expected_csv(acct: truth.SandboxAccount, start: date, end: date, *, metric_id: str | None = None,
                 limit_flows: int = 25, limit_messages: int = 50, include_drafts: bool = False) -> str:
    metric_id = metric_id or acct.placed_order_metric.id
    tags = {t.id: t.name for t in acct.tags}
    flows = sorted((f for f in acct.flows if not f.archived and (include_drafts or f.status != "draft")),
                   key=lambda f: f.id)[:limit_flows]
    by_id = {f.id: f for f in flows}
    live = sorted((m.flow_id, m.id) for m in acct.flow_messages
                  if m.flow_id in by_id and m.channel == "email" and not m.deleted)[:limit_messages]
    # Messages deleted since, still in the reports (activity inside the window), are kept, unnamed.
    deleted = sorted((m.flow_id, m.id) for m in acct.flow_messages
                     if m.flow_id in by_id and m.channel == "email" and m.deleted
                     and acct.has_activity(m.id, start, end))
    messages = sorted(live + deleted)
    names = {m.id: ("" if m.deleted else m.name) for m in acct.flow_messages}
    out = io.StringIO()
    out.write(HEADER + "\n")
    for day in acct.days(start, end):
        for flow_id, message_id in messages:
            flow = by_id[flow_id]
            additive = acct.daily_stats(message_id, day, metric_id)
            stats = {**additive, **truth.rates(additive)}
            cells = [day.isoformat(), flow.id, flow.name, message_id, names[message_id], "email", flow.status]
            cells += [fmt(stats[stat], kind) for _, stat, kind in COLUMNS]
            cells.append(";".join(sorted(tags[t] for t in flow.tag_ids)))
            csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


def summary_of(home: Path) -> dict:
    found = sorted(home.rglob("summary.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def reporting_calls(srv) -> list[dict]:
    return [r for r in srv.requests() if r.get("bucket") == "reporting" and not r.get("fault")]


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory(seed=7, time_scale=20)


def test_csv_equals_seeded_truth_across_dst(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox)
    start, end = dst_window(sandbox.account)
    result = run_dag("klaviyo_flow_sync", {"format": "csv", "start": start.isoformat(), "end": end.isoformat()})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    text = Path(summary["files"]["data"]).read_text()
    assert text.splitlines()[0] == HEADER
    assert text == expected_csv(sandbox.account, start, end)
    # one series call for a 7-day window (the runbook's route made 7), and no 429s
    calls = reporting_calls(sandbox)
    assert [c["operation"] for c in calls] == ["query_flow_series"]
    assert not [r for r in sandbox.requests() if r["status"] == 429]
    assert summary["rows"] == len(text.splitlines()) - 1
    assert summary["days"] == 7
    assert summary["diagnostics"]["reporting_calls"] == 1
    assert summary["diagnostics"]["timezone"] == truth.TIMEZONE


def test_series_values_per_day_and_range_agree(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox)
    end = sandbox.account.yesterday - timedelta(days=2)
    start = end - timedelta(days=3)
    window = {"format": "csv", "start": start.isoformat(), "end": end.isoformat()}
    texts = {}
    for name, extra in [("series", {}), ("per-day-values", {"reportStrategy": "values-per-day"}),
                        ("range", {"aggregation": "range"})]:
        before = len(reporting_calls(sandbox))
        result = run_dag("klaviyo_flow_sync", {**window, **extra})
        assert result.ok, result.output[-3000:]
        files = sorted(home.rglob("flows.csv"), key=lambda p: p.stat().st_mtime)
        texts[name] = (files[-1].read_text(), len(reporting_calls(sandbox)) - before)
    assert texts["series"][0] == texts["per-day-values"][0]
    assert texts["series"][1] == 1 and texts["per-day-values"][1] == 4 and texts["range"][1] == 1
    per_day = list(csv.DictReader(io.StringIO(texts["series"][0])))
    ranged = list(csv.DictReader(io.StringIO(texts["range"][0])))
    assert {r["Day"] for r in ranged} == {start.isoformat()}
    for row in ranged:
        mine = [r for r in per_day if r["Flow Message ID"] == row["Flow Message ID"]]
        for column in ADDITIVE:
            assert sum(Decimal(r[column]) for r in mine) == Decimal(row[column]), (column, row["Flow Message ID"])


def test_caps_drafts_and_exclusions(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox)
    acct = sandbox.account
    end = acct.yesterday
    start = end - timedelta(days=1)
    conf = {"format": "csv", "start": start.isoformat(), "end": end.isoformat(), "limitFlows": 6,
            "limitMessages": 7, "includeDrafts": True}
    result = run_dag("klaviyo_flow_sync", conf)
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    text = Path(summary["files"]["data"]).read_text()
    assert text == expected_csv(acct, start, end, limit_flows=6, limit_messages=7, include_drafts=True)
    kept = sorted(f.id for f in acct.flows if not f.archived)
    diag = summary["diagnostics"]
    assert diag["truncated"]["flows"] == kept[6:]
    assert len(diag["truncated"]["messages"]) > 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert not {f.id for f in acct.flows if f.archived} & {r["Flow ID"] for r in rows}
    assert {r["Flow Message Channel"] for r in rows} == {"email"}
    sms = {m.id for m in acct.flow_messages if m.channel == "sms"}
    assert not sms & {r["Flow Message ID"] for r in rows}
    drafts = {f.id for f in acct.flows if f.status == "draft" and not f.archived}
    draft_rows = [r for r in rows if r["Flow ID"] in drafts]
    assert draft_rows, "a draft flow sorts inside limitFlows=6: its zero rows must be there"
    assert all(r["Delivered"] == "0" and r["Revenue"] == "0.00" for r in draft_rows)
    # both caps cut something, and each cut is said in the summary's warnings
    assert f"limitFlows=6 cut {len(kept) - 6} flows" in diag["warnings"]
    assert f"limitMessages=7 cut {len(diag['truncated']['messages'])} messages" in diag["warnings"]


def test_conversion_override_and_missing_metric(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox)
    acct = sandbox.account
    other = next(m for m in acct.metrics if m.name == "Placed Order" and m.integration_name != "Shopify")
    end = acct.yesterday
    result = run_dag("klaviyo_flow_sync", {"format": "csv", "start": end.isoformat(), "end": end.isoformat(),
                                          "conversionMetricId": other.id})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    assert Path(summary["files"]["data"]).read_text() == expected_csv(acct, end, end, metric_id=other.id)
    assert summary["diagnostics"]["conversion_metric"]["source"] == "param"
    # no Placed Order metric at all → a clear error before any report call
    acct.metrics = [m for m in acct.metrics if m.name != "Placed Order"]
    before = len(reporting_calls(sandbox))
    result = run_dag("klaviyo_flow_sync", {"days": 2})
    assert not result.ok
    assert "No 'Placed Order' metric found" in result.output
    assert len(reporting_calls(sandbox)) == before


def test_row_budget_fails_before_any_report_call(sandbox, flowsync_env, run_dag):
    flowsync_env(sandbox)
    result = run_dag("klaviyo_flow_sync", {"days": 30, "rowBudget": 10})
    assert not result.ok
    assert result.tasks["catalog"] == "failed"
    assert "row budget exceeded" in result.output
    assert reporting_calls(sandbox) == []


@pytest.mark.parametrize(
    ("conf", "env", "message"),
    [
        ({}, {"KLAVIYO_ENABLE": "false"}, "Klaviyo disabled: set KLAVIYO_ENABLE=true"),
        ({"privateApiKey": "pk_secret_in_conf"}, {}, "privateApiKey must not be passed in the run's conf"),
        ({}, {"KLAVIYO_API_REVISION": "2024-06-15"}, "2026-07-15"),
        ({"start": "2025-09-05", "end": "2025-09-01"}, {}, "start (2025-09-05) is after end (2025-09-01)"),
        ({"start": "2025-02-30"}, {}, "start must be a real calendar date"),
        ({"mode": "live", "aggregation": "range"}, {}, "aggregation=range is dry-run only"),
        ({"end": "2099-01-01", "start": "2098-12-30"}, {}, "end"),
    ],
)
def test_refusals_name_the_field_and_call_nothing(sandbox, flowsync_env, run_dag, conf, env, message):
    flowsync_env(sandbox, **env)
    result = run_dag("klaviyo_flow_sync", conf)
    assert not result.ok
    assert result.tasks["plan"] == "failed"
    assert message in result.output
    assert "pk_secret_in_conf" not in result.output.replace('"privateApiKey": "pk_secret_in_conf"', "")
    assert not [r for r in sandbox.requests() if r["bucket"] == "reporting"]


PRE_2012 = "start 2009-01-01 is before 2012-01-01, when Klaviyo began: nothing older exists; use a later start."


@pytest.mark.parametrize(
    ("dag_id", "conf", "env", "message"),
    [
        ("klaviyo_flow_sync", {"start": "2009-01-01", "end": "2009-01-31"}, {}, PRE_2012),
        ("klaviyo_campaign_sync", {"start": "2009-01-01"}, {}, PRE_2012),
        # days within a raised hard max can reach back before 2012 too
        ("klaviyo_flow_sync", {"days": 6000}, {"FLOWSYNC_MAX_DAYS": "20000"}, "before 2012-01-01, when Klaviyo began"),
    ],
)
def test_window_before_klaviyo_existed_costs_no_call(sandbox, flowsync_env, run_dag, dag_id, conf, env, message):
    """Refused while planning, before any Klaviyo call at all (not even the account's timezone)."""
    flowsync_env(sandbox, **env)
    result = run_dag(dag_id, conf)
    assert not result.ok
    assert result.tasks["plan"] == "failed"
    assert message in result.output
    assert sandbox.requests() == []


def test_end_today_is_a_partial_day_warning_in_the_summary(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox)
    today = sandbox.account.today
    result = run_dag("klaviyo_flow_sync", {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()})
    assert result.ok, result.output[-3000:]
    warnings = summary_of(home)["diagnostics"]["warnings"]
    assert f"end {today} is today in the account timezone ({truth.TIMEZONE}): its numbers are partial and will " \
           "still grow; rerun after midnight (or end yesterday) for complete days." in warnings


@pytest.mark.parametrize("conf", [{"days": 0}, {"aggregation": "weekly"}, {"start": "yesterday"}])
def test_param_schema_refuses_bad_triggers(sandbox, flowsync_env, run_dag, conf):
    """A bad trigger is refused by the Params' JSON schema before any task runs."""
    flowsync_env(sandbox)
    with pytest.raises(Exception) as info:
        run_dag("klaviyo_flow_sync", conf)
    assert any(key in str(info.value) for key in conf), str(info.value)[:500]
    assert sandbox.requests() == []


def test_faults_give_identical_bytes_and_no_secret_leaks(sandbox_factory, flowsync_env, run_dag):
    clean = sandbox_factory(seed=7, time_scale=20)
    faulty = sandbox_factory(seed=7, time_scale=20, fault_rate=0.1)
    end = clean.account.yesterday - timedelta(days=1)
    conf = {"format": "csv", "start": (end - timedelta(days=4)).isoformat(), "end": end.isoformat()}
    outputs = []
    for srv in (clean, faulty):
        home = flowsync_env(srv)
        result = run_dag("klaviyo_flow_sync", conf)
        assert result.ok, result.output[-3000:]
        summary = summary_of(home)
        outputs.append(Path(summary["files"]["data"]).read_bytes())
        # the key appears nowhere: task logs, XCom, output files
        assert srv.api_key not in result.output
        assert srv.api_key not in json.dumps([x[3] for x in result.xcoms], default=str)
        for path in home.rglob("*"):
            if path.is_file():
                assert srv.api_key not in path.read_text(errors="ignore"), path
        home.rename(home.with_name(f"flowsync-{srv.url.rsplit(':', 1)[1]}"))
    assert outputs[0] == outputs[1]
    assert [r for r in faulty.requests() if r.get("fault")], "the faulty sandbox injected no fault"


def test_live_mode_uploads_the_csv_to_the_staging_bucket(sandbox, flowsync_env, run_dag, monkeypatch):
    """The runbook's "live write to staging bucket", through the real supabase client over loopback."""
    from flowsync_dev.storage_server import StorageTestServer

    key = "service-role-key-live-test-000000000000"
    storage = StorageTestServer(key, buckets=["flow-staging"]).start()
    try:
        flowsync_env(sandbox, FLOW_STAGING_BUCKET="flow-staging")
        monkeypatch.setenv("AIRFLOW_CONN_SUPABASE_DEFAULT",
                           json.dumps({"conn_type": "supabase", "host": storage.url, "password": key}))
        conf = {"mode": "live", "format": "json", "days": 3, "accountId": "acc_canary_1",
                "uploadId": "2025-09-17T01-00-00Z", "enrichMessageNames": True}
        result = run_dag("klaviyo_flow_sync", conf)
        assert result.ok, result.output[-3000:]
        objects = storage.objects()
        assert list(objects) == ["flow-staging/2025-09-17T01-00-00Z/flows.csv"]
        acct = sandbox.account
        expected = expected_csv(acct, acct.yesterday - timedelta(days=2), acct.yesterday)
        assert objects["flow-staging/2025-09-17T01-00-00Z/flows.csv"].decode() == expected
        upload = next(v for task, _, key_, v in result.xcoms if task == "upload" and key_ == "return_value")
        assert upload["objects"] == {"flows.csv": "flow-staging/2025-09-17T01-00-00Z/flows.csv"}
        assert key not in result.output and key not in json.dumps([x[3] for x in result.xcoms], default=str)
    finally:
        storage.stop()
