"""core.uploads: derived upload ids, object paths, the empty-upload guard (streamed), live gating."""

from __future__ import annotations

import re
import subprocess
import sys
import tracemalloc

import pytest

from flowsync_provider.core.csvio import write_csv
from flowsync_provider.core.ids import check_upload_id as upload_id_rule
from flowsync_provider.core.params import KlaviyoDisabled
from flowsync_provider.core.schemas import (
    ADDITIVE_COLUMNS,
    CAMPAIGNS_COLUMNS,
    FLOWS_COLUMNS,
    SUBSCRIBERS_COLUMNS,
)
from flowsync_provider.core.uploads import (
    CsvStats,
    LiveNotReady,
    UploadRefused,
    active_messages,
    check_uploadable,
    csv_stats,
    derive_upload_id,
    kind_of_file,
    object_paths,
    require_live_ready,
)

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def flow_row(day: str = "2025-09-10", delivered: int = 0, revenue: float = 0.0, **extra) -> dict:
    return {"Day": day, "Flow ID": "F1", "Flow Name": "Welcome", "Flow Message ID": "M1",
            "Flow Message Name": "Email 1", "Flow Message Channel": "email", "Status": "live",
            "Delivered": delivered, "Revenue": revenue, **extra}


# ---------------------------------------------------------------- upload ids

def test_derived_id_is_stable_safe_and_carries_the_run_instant_in_utc() -> None:
    run_id = "scheduled__2025-09-17T01:00:00+00:00"
    first = derive_upload_id("acc_canary_1", "klaviyo_snapshot_nightly", run_id)
    assert first == derive_upload_id("acc_canary_1", "klaviyo_snapshot_nightly", run_id)  # retries agree
    assert first.startswith("acc_canary_1-20250917T010000Z-")
    assert upload_id_rule(first) == first and SAFE.match(first) and len(first) <= 128
    offset = derive_upload_id("acc_canary_1", "d", "manual__2025-09-17T03:30:15.123456+02:00")
    assert "-20250917T013015Z-" in offset


def test_derived_ids_differ_across_accounts_dags_and_runs() -> None:
    run = "manual__2025-09-17T01:00:00+00:00"
    ids = {
        derive_upload_id("acc_a", "dag", run),
        derive_upload_id("acc_b", "dag", run),
        derive_upload_id("acc_a", "other_dag", run),
        derive_upload_id("acc_a", "dag", "manual__2025-09-17T01:00:00.000001+00:00"),  # same second
        derive_upload_id("acc_a", "dag", "scheduled__2025-09-17T01:00:00+00:00"),
    }
    assert len(ids) == 5


def test_run_ids_without_a_timestamp_use_a_hash_and_unknown_accounts_a_placeholder() -> None:
    one = derive_upload_id(None, "dag", "my custom run")
    assert re.fullmatch(r"account-r[0-9a-f]{10}-[0-9a-f]{6}", one)
    assert one != derive_upload_id(None, "dag", "my other run")
    with pytest.raises(ValueError):
        derive_upload_id("acc", "dag", "  ")


def test_sanitised_accounts_stay_distinct_from_literal_ones() -> None:
    run = "scheduled__2025-09-17T01:00:00+00:00"
    assert derive_upload_id("acc_canary_1", "d", run).startswith("acc_canary_1-20250917T010000Z-")
    ids = {derive_upload_id(a, "d", run) for a in ("acme/eu", "acme_eu", "acme:eu", "../../etc", "  ", "account")}
    assert len(ids) == 6
    for upload_id in ids:
        assert SAFE.match(upload_id) and ".." not in upload_id and len(upload_id) <= 128
    long_a, long_b = "x" * 80 + "a", "x" * 80 + "b"
    assert derive_upload_id(long_a, "d", run) != derive_upload_id(long_b, "d", run)


def test_object_paths_and_file_names() -> None:
    assert object_paths("u-1", {"flows.csv": "/tmp/x", "campaigns.csv": "/tmp/y"}) == {
        "flows.csv": "u-1/flows.csv", "campaigns.csv": "u-1/campaigns.csv"}
    assert object_paths("2025-09-17T01-00-00Z", ["subscribers.csv"]) == {
        "subscribers.csv": "2025-09-17T01-00-00Z/subscribers.csv"}
    for bad_id in ("../x", "", "/abs", "a/b", "a..b", "abc\n", " abc"):
        with pytest.raises(UploadRefused, match="uploadId"):
            object_paths(bad_id, ["flows.csv"])
    for bad_name in ("../flows.csv", "a/flows.csv", "", "flows.csv\n"):
        with pytest.raises(UploadRefused, match="plain file name"):
            object_paths("u1", [bad_name])
    assert kind_of_file("campaigns.csv") == "campaigns"
    with pytest.raises(UploadRefused, match="only flows.csv, campaigns.csv, subscribers.csv"):
        kind_of_file("summary.json")


# ---------------------------------------------------------------- csv stats

def test_stats_count_rows_and_nonzero_additive_values(tmp_path) -> None:
    path = tmp_path / "flows.csv"
    write_csv(path, FLOWS_COLUMNS, [flow_row(), flow_row(day="2025-09-11", revenue=0.01), flow_row()])
    stats = csv_stats(path)
    assert (stats.rows, stats.nonzero_rows, stats.has_data) == (3, 1, True)
    assert stats.header == FLOWS_COLUMNS
    assert set(stats.additive_columns) == {c for c in FLOWS_COLUMNS if c in ADDITIVE_COLUMNS}
    assert stats.to_dict()["has_data"] is True


def test_all_zero_and_header_only_files_have_no_data(tmp_path) -> None:
    zeros = tmp_path / "zeros.csv"
    write_csv(zeros, FLOWS_COLUMNS, [flow_row(day=f"2025-09-{d:02d}") for d in range(1, 11)])
    stats = csv_stats(zeros)
    assert (stats.rows, stats.nonzero_rows, stats.has_data) == (10, 0, False)
    header_only = tmp_path / "empty.csv"
    write_csv(header_only, CAMPAIGNS_COLUMNS, [])
    assert (csv_stats(header_only).rows, csv_stats(header_only).has_data) == (0, False)
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b"")
    assert csv_stats(blank) == CsvStats(header=(), rows=0, nonzero_rows=0, additive_columns=())


def test_rate_columns_do_not_count_as_data(tmp_path) -> None:
    """A non-zero rate with zero counts is not data (rates are not additive)."""
    path = tmp_path / "flows.csv"
    write_csv(path, FLOWS_COLUMNS, [flow_row(**{"Open Rate": 0.5, "Bounce Rate": 0.1})])
    assert csv_stats(path).has_data is False


def test_subscribers_have_data_when_they_have_rows(tmp_path) -> None:
    path = tmp_path / "subscribers.csv"
    write_csv(path, SUBSCRIBERS_COLUMNS, [{"Profile ID": "P1", "Email": "a@example.com"}])
    stats = csv_stats(path)
    assert stats.additive_columns == () and stats.has_data


def test_bytes_input_bom_blank_lines_and_stop_at_data() -> None:
    text = ",".join(FLOWS_COLUMNS) + "\n"
    row_zero = "2025-09-10,F1,W,M1,E,email,live" + ",0" * 12 + ",\n"
    row_data = "2025-09-11,F1,W,M1,E,email,live,5" + ",0" * 11 + ",\n"
    blob = ("\ufeff" + text + row_zero + "\n" + row_data + row_zero).encode()
    full = csv_stats(blob)
    assert (full.rows, full.nonzero_rows, full.header[0]) == (3, 1, "Day")
    early = csv_stats(blob, stop_at_data=True)
    assert early.has_data and early.rows == 2  # stopped at the first row with data


def test_stats_stream_in_bounded_memory(tmp_path) -> None:
    path = tmp_path / "big.csv"
    rows = (flow_row(day="2025-09-10", **{"Flow Message ID": f"M{i}"}) for i in range(60_000))
    write_csv(path, FLOWS_COLUMNS, rows)
    assert path.stat().st_size > 5_000_000
    tracemalloc.start()
    try:
        stats = csv_stats(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.rows == 60_000 and not stats.has_data
    assert peak < 1_000_000  # far below the file size: nothing is held but one row


# ---------------------------------------------------------------- the decision

def _stats(rows: int, nonzero: int, header=FLOWS_COLUMNS) -> CsvStats:
    return CsvStats(header=tuple(header), rows=rows, nonzero_rows=nonzero,
                    additive_columns=tuple(c for c in header if c in ADDITIVE_COLUMNS))


def test_empty_file_with_active_messages_is_refused_with_one_clear_sentence() -> None:
    with pytest.raises(UploadRefused) as err:
        check_uploadable(_stats(0, 0), kind="flows", catalog_active_messages=12, previous_had_data=False,
                         allow_empty=False)
    message = str(err.value)
    assert message.startswith("Refusing to upload flows.csv: it has no data rows while the catalog has 12 "
                              "active flow email messages")
    assert "delete the window's series" in message and "allowEmpty=true" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_all_zero_file_where_previous_upload_had_data_is_refused() -> None:
    with pytest.raises(UploadRefused, match="30 data rows that are all zero while the previous upload for the "
                                            "same window had data"):
        check_uploadable(_stats(30, 0), kind="flows", catalog_active_messages=0, previous_had_data=True,
                         allow_empty=False)


def test_allow_empty_data_and_genuinely_empty_windows_pass() -> None:
    for kwargs in (
        dict(catalog_active_messages=12, previous_had_data=True, allow_empty=True),
        dict(catalog_active_messages=0, previous_had_data=False, allow_empty=False),
    ):
        assert check_uploadable(_stats(0, 0), kind="flows", **kwargs) is None
    assert check_uploadable(_stats(5, 1), kind="flows", catalog_active_messages=3, previous_had_data=True,
                            allow_empty=False) is None
    campaigns = _stats(0, 0, CAMPAIGNS_COLUMNS)
    with pytest.raises(UploadRefused, match="campaign messages sent in the window"):
        check_uploadable(campaigns, kind="campaigns", catalog_active_messages=2, previous_had_data=False,
                         allow_empty=False)


def test_range_output_is_never_uploaded_even_with_allow_empty() -> None:
    with pytest.raises(UploadRefused, match="aggregation=range output .* never a day"):
        check_uploadable(_stats(5, 5), kind="flows", catalog_active_messages=0, previous_had_data=False,
                         allow_empty=True, aggregation="range")


def test_wrong_header_is_refused_even_with_allow_empty(tmp_path) -> None:
    path = tmp_path / "flows.csv"
    write_csv(path, CAMPAIGNS_COLUMNS, [{"Campaign ID": "C1", "Delivered": 3}])
    with pytest.raises(UploadRefused, match="header .* is not the processor's 20-column flows header"):
        check_uploadable(path, kind="flows", catalog_active_messages=0, previous_had_data=False,
                         allow_empty=True)
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(UploadRefused, match="found: none"):
        check_uploadable(blank, kind="flows", catalog_active_messages=0, previous_had_data=False,
                         allow_empty=True)


# ---------------------------------------------------------------- live gating

def test_live_gating_names_each_missing_piece_in_order() -> None:
    """The facts come in as values (settings.klaviyo_enabled(), connection/secret checks): core reads nothing."""
    with pytest.raises(KlaviyoDisabled, match="Klaviyo disabled: set KLAVIYO_ENABLE=true"):
        require_live_ready(klaviyo_enabled=False, storage_configured=True, needs_admin_secret=False)
    with pytest.raises(LiveNotReady, match="verify Supabase envs and staging bucket permissions"):
        require_live_ready(klaviyo_enabled=True, storage_configured=False, needs_admin_secret=True)
    with pytest.raises(LiveNotReady, match="Unauthorized: admin secret missing/invalid"):
        require_live_ready(klaviyo_enabled=True, storage_configured=True, needs_admin_secret=True,
                           admin_secret_configured=False)
    with pytest.raises(LiveNotReady, match="ADMIN_JOB_SECRET"):
        require_live_ready(klaviyo_enabled=True, storage_configured=True, needs_admin_secret=True,
                           admin_secret_configured=False)


def test_live_gating_passes_when_everything_is_there() -> None:
    assert require_live_ready(klaviyo_enabled=True, storage_configured=True, needs_admin_secret=True,
                              admin_secret_configured=True) is None
    assert require_live_ready(klaviyo_enabled=True, storage_configured=True, needs_admin_secret=False) is None


def test_live_gating_looks_up_omitted_facts_in_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transitional (TODO issue 10): omitted facts come from settings.klaviyo_enabled() / admin_job_secret()."""
    monkeypatch.setenv("KLAVIYO_ENABLE", "TRUE")
    monkeypatch.delenv("AIRFLOW__FLOWSYNC__KLAVIYO_ENABLE", raising=False)
    monkeypatch.delenv("AIRFLOW__FLOWSYNC__ADMIN_JOB_SECRET", raising=False)
    monkeypatch.setenv("ADMIN_JOB_SECRET", "admin-secret-123")
    assert require_live_ready(storage_configured=True, needs_admin_secret=True) is None
    monkeypatch.setenv("ADMIN_JOB_SECRET", " ")
    with pytest.raises(LiveNotReady, match="Unauthorized"):
        require_live_ready(storage_configured=True, needs_admin_secret=True)
    monkeypatch.setenv("KLAVIYO_ENABLE", "false")
    with pytest.raises(KlaviyoDisabled):
        require_live_ready(storage_configured=True, needs_admin_secret=False)


def test_uploads_and_history_stay_pure() -> None:
    code = (
        "import sys\nimport flowsync_provider.core.uploads, flowsync_provider.core.history\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""


def test_active_messages_of_flow_and_campaign_catalogs() -> None:
    flows = {"flows": [
        {"id": "F1", "status": "live", "messages": [{"id": "M1"}, {"id": "M2"}]},
        {"id": "F2", "status": "manual", "messages": [{"id": "M3"}]},
        {"id": "F3", "status": "draft", "messages": [{"id": "M4"}]},  # includeDrafts: zero rows by design
    ]}
    assert active_messages(flows) == 3
    campaigns = {"campaigns": [{"id": "C1", "messages": [{"id": "CM1"}]}, {"id": "C2", "messages": []}]}
    assert active_messages(campaigns) == 1
    assert active_messages({"flows": []}) == 0
    with pytest.raises(ValueError, match="flow catalog"):
        active_messages({"rows": 3})
