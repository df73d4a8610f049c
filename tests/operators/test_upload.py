"""UploadOperator / upload_sync_output over the wire: the Supabase-compatible test server through the
real supabase client, and the local folder backend; upserts, the empty-upload guard, gating."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from flowsync_dev.storage_server import StorageTestServer
from flowsync_provider.core.csvio import write_csv
from flowsync_provider.core.errors import ParamError
from flowsync_provider.core.params import KlaviyoDisabled
from flowsync_provider.core.schemas import CAMPAIGNS_COLUMNS, FLOWS_COLUMNS, SUBSCRIBERS_COLUMNS
from flowsync_provider.core.uploads import LiveNotReady, UploadRefused, derive_upload_id
from flowsync_provider.operators.upload import (
    UploadOperator,
    check_live_ready,
    resolve_bucket,
    storage_configured,
    upload_sync_output,
)
from flowsync_provider.storage import LocalStorage, StorageAuthError, StorageConfigError, SupabaseStorage

SERVICE_KEY = "sb_upload_service_key_5f3a9d21"
RUN_ID = "scheduled__2025-09-17T01:00:00+00:00"
DAG_ID = "klaviyo_snapshot_nightly"
ENVS = ("NEXT_PUBLIC_SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "AIRFLOW_CONN_SUPABASE_DEFAULT",
        "AIRFLOW_CONN_FLOWSYNC_DASHBOARD", "DATA_INGEST_BUCKET", "PREAUTH_BUCKET", "FLOW_STAGING_BUCKET",
        "FLOWSYNC_STORAGE_BACKEND", "ADMIN_JOB_SECRET", "KLAVIYO_ENABLE")


@pytest.fixture(scope="module")
def server() -> Iterator[StorageTestServer]:
    srv = StorageTestServer(SERVICE_KEY, ["ingest", "flow-staging"]).start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path, server) -> None:
    server.reset()
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOWSYNC_HOME", str(tmp_path / "home"))


@pytest.fixture
def supabase(monkeypatch, server) -> StorageTestServer:
    """The supabase_default connection points at the test server; the ingest bucket is 'ingest'."""
    monkeypatch.setenv("AIRFLOW_CONN_SUPABASE_DEFAULT",
                       json.dumps({"conn_type": "supabase", "host": server.url, "password": SERVICE_KEY}))
    monkeypatch.setenv("DATA_INGEST_BUCKET", "ingest")
    return server


def context(run_id: str = RUN_ID, dag_id: str = DAG_ID) -> dict:
    return {"dag": SimpleNamespace(dag_id=dag_id), "run_id": run_id,
            "ti": SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id="upload", try_number=1)}


def flows_csv(path: Path, delivered: int = 7, days: int = 3) -> Path:
    rows = [{"Day": f"2025-09-{10 + i:02d}", "Flow ID": "F1", "Flow Name": "Welcome", "Flow Message ID": "M1",
             "Flow Message Name": "Email 1", "Flow Message Channel": "email", "Status": "live",
             "Delivered": delivered, "Revenue": delivered * 1.5} for i in range(days)]
    write_csv(path, FLOWS_COLUMNS, rows)
    return path


def snapshot_files(folder: Path, delivered: int = 7) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    flows = flows_csv(folder / "flows.csv", delivered)
    campaigns = folder / "campaigns.csv"
    write_csv(campaigns, CAMPAIGNS_COLUMNS, [{"Campaign ID": "C1", "Campaign Name": "Launch", "Recipients": 10,
                                              "Delivered": delivered}])
    subscribers = folder / "subscribers.csv"
    write_csv(subscribers, SUBSCRIBERS_COLUMNS, [{"Profile ID": "P1", "Email": "ann@example.com"}])
    return {"flows.csv": str(flows), "campaigns.csv": str(campaigns), "subscribers.csv": str(subscribers)}


def logged(caplog, capsys) -> str:
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


# ---------------------------------------------------------------- Supabase backend

def test_upload_to_supabase_returns_the_object_paths(supabase, tmp_path, caplog, capsys) -> None:
    files = snapshot_files(tmp_path / "run")
    op = UploadOperator(task_id="upload", files=files, upload_id="2025-09-17T01-00-00Z", account_id="acc_1")
    result = op.execute(context())
    assert result["backend"] == "supabase" and result["bucket"] == "ingest"
    assert result["upload_id"] == "2025-09-17T01-00-00Z"
    assert result["objects"] == {name: f"ingest/2025-09-17T01-00-00Z/{name}" for name in files}
    stored = supabase.objects()
    assert stored == {f"ingest/2025-09-17T01-00-00Z/{n}": Path(p).read_bytes() for n, p in files.items()}
    assert set(supabase.content_types().values()) == {"text/csv"}
    assert all(u["upsert"] for u in supabase.upload_log())
    assert result["checks"]["flows.csv"]["rows"] == 3 and result["checks"]["flows.csv"]["has_data"]
    text = logged(caplog, capsys)
    assert "Storage backend: Supabase Storage at" in text
    assert SERVICE_KEY not in text and SERVICE_KEY not in json.dumps(result)


def test_rerunning_overwrites_the_same_objects(supabase, tmp_path) -> None:
    files = snapshot_files(tmp_path / "run")
    op = UploadOperator(task_id="upload", files=files, upload_id="u-rerun", account_id="acc_1")
    op.execute(context())
    flows_csv(Path(files["flows.csv"]), delivered=99, days=5)  # the re-run produced new numbers
    second = op.execute(context())
    storage = SupabaseStorage(supabase.url, SERVICE_KEY, timeout=10)
    try:
        keys = storage.list("ingest", "u-rerun")
        latest = storage.download("ingest", "u-rerun/flows.csv")
    finally:
        storage.close()
    assert keys == ["u-rerun/campaigns.csv", "u-rerun/flows.csv", "u-rerun/subscribers.csv"]
    assert latest == Path(files["flows.csv"]).read_bytes() and b",99," in latest
    assert second["checks"]["flows.csv"]["rows"] == 5
    assert len(supabase.upload_log()) == 6 and all(u["status"] == 200 for u in supabase.upload_log())


def test_derived_upload_id_is_stable_across_retries(supabase, tmp_path, caplog, capsys) -> None:
    files = snapshot_files(tmp_path / "run")
    op = UploadOperator(task_id="upload", files=files, account_id="acc_canary_1")
    first = op.execute(context())
    retry = op.execute(context())
    expected = derive_upload_id("acc_canary_1", DAG_ID, RUN_ID)
    assert first["upload_id"] == retry["upload_id"] == expected
    assert expected.startswith("acc_canary_1-20250917T010000Z-")
    assert len(supabase.objects()) == 3
    other = op.execute(context(run_id="scheduled__2025-09-18T01:00:00+00:00"))
    assert other["upload_id"] != expected and len(supabase.objects()) == 6
    assert "No uploadId given: derived" in logged(caplog, capsys)


def test_empty_file_is_refused_before_anything_is_uploaded(supabase, tmp_path) -> None:
    files = snapshot_files(tmp_path / "run")
    flows_csv(Path(files["flows.csv"]), delivered=0)  # all-zero
    op = UploadOperator(task_id="upload", files=files, upload_id="u-empty",
                        catalog_active_messages={"flows.csv": 4})
    with pytest.raises(AirflowFailException) as err:
        op.execute(context())
    assert str(err.value).startswith("Refusing to upload flows.csv: it has 3 data rows that are all zero while "
                                     "the catalog has 4 active flow email messages")
    assert isinstance(err.value.__cause__, UploadRefused)
    assert supabase.objects() == {}  # campaigns.csv and subscribers.csv were fine, but nothing went up
    catalog = {"flows": [{"id": "F1", "status": "live", "messages": [{"id": "M1"}, {"id": "M2"}]}]}
    from_catalog = UploadOperator(task_id="upload", files=files, upload_id="u-empty",
                                  catalog_active_messages={"flows.csv": catalog})  # the catalog task's XCom
    with pytest.raises(AirflowFailException, match="the catalog has 2 active flow email messages"):
        from_catalog.execute(context())
    allowed = UploadOperator(task_id="upload", files=files, upload_id="u-empty",
                             catalog_active_messages={"flows.csv": 4}, allow_empty="True")  # templated string
    assert len(allowed.execute(context())["objects"]) == 3


def test_empty_rerun_over_an_upload_with_data_is_refused_and_keeps_the_data(supabase, tmp_path) -> None:
    files = {"flows.csv": str(flows_csv(tmp_path / "flows.csv", delivered=7))}
    UploadOperator(task_id="upload", files=files, upload_id="u-prev").execute(context())
    good = supabase.objects()["ingest/u-prev/flows.csv"]
    flows_csv(tmp_path / "flows.csv", delivered=0)
    with pytest.raises(AirflowFailException, match="the previous upload for the same window had data"):
        UploadOperator(task_id="upload", files=files, upload_id="u-prev").execute(context())
    assert supabase.objects()["ingest/u-prev/flows.csv"] == good


def test_previous_upload_id_is_compared_too(supabase, tmp_path) -> None:
    files = {"flows.csv": str(flows_csv(tmp_path / "flows.csv", delivered=7))}
    UploadOperator(task_id="upload", files=files, upload_id="night-1").execute(context())
    flows_csv(tmp_path / "flows.csv", delivered=0)
    op = UploadOperator(task_id="upload", files=files, upload_id="night-2", previous_upload_id="night-1")
    with pytest.raises(AirflowFailException, match="previous upload for the same window had data"):
        op.execute(context())
    # no previous upload and nothing expected: a genuinely empty window goes up
    fresh = UploadOperator(task_id="upload", files=files, upload_id="night-3").execute(context())
    assert fresh["checks"]["flows.csv"] == {"rows": 3, "nonzero_rows": 0, "has_data": False,
                                            "previous_had_data": False,
                                            "bytes": Path(files["flows.csv"]).stat().st_size}
    assert "ingest/night-3/flows.csv" in supabase.objects()


def test_range_output_is_never_uploaded(supabase, tmp_path) -> None:
    files = {"flows.csv": str(flows_csv(tmp_path / "flows.csv"))}
    op = UploadOperator(task_id="upload", files=files, upload_id="u-range", aggregation="range", allow_empty=True)
    with pytest.raises(AirflowFailException, match="aggregation=range output"):
        op.execute(context())
    assert supabase.objects() == {}


def test_staging_bucket_comes_from_its_env_var(supabase, tmp_path, monkeypatch) -> None:
    files = {"flows.csv": str(flows_csv(tmp_path / "flows.csv"))}
    op = UploadOperator(task_id="upload", files=files, upload_id="u-stage", bucket_env="staging")
    # a configuration error: no task retry can fix it, so it fails fast (issue 10's one error policy)
    with pytest.raises(AirflowFailException, match="set FLOW_STAGING_BUCKET") as err:
        op.execute(context())
    assert isinstance(err.value.__cause__, StorageConfigError)
    monkeypatch.setenv("FLOW_STAGING_BUCKET", "flow-staging")
    assert op.execute(context())["objects"] == {"flows.csv": "flow-staging/u-stage/flows.csv"}
    monkeypatch.delenv("DATA_INGEST_BUCKET")
    monkeypatch.setenv("PREAUTH_BUCKET", "flow-staging")  # the runbook's fallback
    assert resolve_bucket(None, "ingest", "supabase") == "flow-staging"
    assert resolve_bucket("explicit", "ingest", "supabase") == "explicit"


def test_rejected_service_key_fails_with_the_runbook_hint(monkeypatch, server, tmp_path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SUPABASE_DEFAULT",
                       json.dumps({"conn_type": "supabase", "host": server.url, "password": "sb_wrong_key_000"}))
    files = {"flows.csv": str(flows_csv(tmp_path / "flows.csv"))}
    op = UploadOperator(task_id="upload", files=files, upload_id="u-auth", bucket="ingest")
    with pytest.raises(AirflowFailException, match="verify Supabase envs and staging bucket permissions") as err:
        op.execute(context())
    assert isinstance(err.value.__cause__, StorageAuthError)
    assert "sb_wrong_key_000" not in str(err.value)


# ---------------------------------------------------------------- local backend

def test_local_backend_is_the_default_without_supabase(tmp_path, caplog, capsys) -> None:
    files = snapshot_files(tmp_path / "run")
    op = UploadOperator(task_id="upload", files=files, upload_id="u-local")
    result = op.execute(context())
    root = tmp_path / "home" / "storage"
    assert result["backend"] == "local" and result["bucket"] == "data-ingest"
    assert result["objects"]["flows.csv"] == "data-ingest/u-local/flows.csv"
    assert "embedded local store" in logged(caplog, capsys)
    flows_csv(Path(files["flows.csv"]), delivered=42, days=2)
    op.execute(context())
    storage = LocalStorage(root, create_buckets=False)
    assert storage.list("data-ingest") == ["u-local/campaigns.csv", "u-local/flows.csv", "u-local/subscribers.csv"]
    assert storage.download("data-ingest", "u-local/flows.csv") == Path(files["flows.csv"]).read_bytes()
    assert [p.name for p in (root / "data-ingest" / "u-local").iterdir() if p.name.startswith(".")] == []


def test_local_backend_guard_and_env_bucket(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DATA_INGEST_BUCKET", "my-ingest")
    files = {"flows.csv": str(flows_csv(tmp_path / "flows.csv", delivered=5))}
    UploadOperator(task_id="upload", files=files, upload_id="u1").execute(context())
    flows_csv(tmp_path / "flows.csv", delivered=0)
    with pytest.raises(AirflowFailException, match="previous upload for the same window had data"):
        UploadOperator(task_id="upload", files=files, upload_id="u1").execute(context())
    stored = LocalStorage(tmp_path / "home" / "storage").download("my-ingest", "u1/flows.csv")
    assert b",5," in stored


def test_backend_env_forces_local_even_with_supabase(supabase, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLOWSYNC_STORAGE_BACKEND", "local")
    files = {"flows.csv": str(flows_csv(tmp_path / "flows.csv"))}
    result = UploadOperator(task_id="upload", files=files, upload_id="u-forced").execute(context())
    assert result["backend"] == "local" and result["bucket"] == "ingest" and supabase.objects() == {}
    monkeypatch.setenv("FLOWSYNC_STORAGE_BACKEND", "s3")
    with pytest.raises(ParamError, match="FLOWSYNC_STORAGE_BACKEND/backend must be one of"):
        UploadOperator(task_id="upload", files=files, upload_id="u-forced").execute(context())


def test_bad_inputs_fail_clearly(tmp_path) -> None:
    with pytest.raises(AirflowFailException, match="uploadId '../x' is not a valid object folder"):
        UploadOperator(task_id="u", files={"flows.csv": str(flows_csv(tmp_path / "f.csv"))},
                       upload_id="../x").execute(context())
    with pytest.raises(AirflowFailException, match="does not exist; did the build task write it"):
        UploadOperator(task_id="u", files={"flows.csv": str(tmp_path / "nope.csv")},
                       upload_id="u1").execute(context())
    with pytest.raises(AirflowFailException, match="only flows.csv, campaigns.csv, subscribers.csv"):
        UploadOperator(task_id="u", files={"summary.json": str(tmp_path / "f.csv")},
                       upload_id="u1").execute(context())
    with pytest.raises(ValueError, match="bucket_env"):
        UploadOperator(task_id="u", files={}, bucket_env="prod")


# ---------------------------------------------------------------- single-sync live mode

def test_upload_sync_output_uploads_the_build_csv_to_staging(supabase, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLOW_STAGING_BUCKET", "flow-staging")
    data = flows_csv(tmp_path / "run" / "flows.csv")
    output = {"mode": "live", "aggregation": "per-day", "files": {"data": str(data)}}
    result = upload_sync_output(output, context(dag_id="klaviyo_flow_sync"), account_id="acc_canary_1")
    upload_id = derive_upload_id("acc_canary_1", "klaviyo_flow_sync", RUN_ID)
    assert result["objects"] == {"flows.csv": f"flow-staging/{upload_id}/flows.csv"}
    assert supabase.objects() == {f"flow-staging/{upload_id}/flows.csv": data.read_bytes()}
    given = upload_sync_output(output, context(), account_id="acc_canary_1", upload_id="2025-09-17T01-00-00Z")
    assert given["objects"]["flows.csv"] == "flow-staging/2025-09-17T01-00-00Z/flows.csv"


def test_upload_sync_output_refuses_json_and_range_builds(supabase, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLOW_STAGING_BUCKET", "flow-staging")
    with pytest.raises(ParamError, match="build wrote no .csv file"):
        upload_sync_output({"files": {"data": str(tmp_path / "flows.json")}}, context(), account_id="a")
    data = flows_csv(tmp_path / "flows.csv")
    with pytest.raises(UploadRefused, match="aggregation=range"):
        upload_sync_output({"aggregation": "range", "files": {"data": str(data)}}, context(), account_id="a")
    assert supabase.objects() == {}


# ---------------------------------------------------------------- live gating from connections

def test_live_gating_reads_connections(supabase, monkeypatch) -> None:
    with pytest.raises(KlaviyoDisabled):
        check_live_ready()
    monkeypatch.setenv("KLAVIYO_ENABLE", "true")
    check_live_ready()  # storage configured, no secret needed
    with pytest.raises(LiveNotReady, match="Unauthorized: admin secret missing/invalid"):
        check_live_ready(needs_admin_secret=True)
    monkeypatch.setenv("AIRFLOW_CONN_FLOWSYNC_DASHBOARD",
                       json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9", "password": "adm-123"}))
    check_live_ready(needs_admin_secret=True)
    monkeypatch.delenv("AIRFLOW_CONN_SUPABASE_DEFAULT")
    assert storage_configured() is False
    with pytest.raises(LiveNotReady, match="verify Supabase envs"):
        check_live_ready(needs_admin_secret=True)
    monkeypatch.setenv("FLOWSYNC_STORAGE_BACKEND", "local")
    assert storage_configured() is True
    monkeypatch.delenv("FLOWSYNC_STORAGE_BACKEND")
    monkeypatch.setenv("NEXT_PUBLIC_SUPABASE_URL", "https://example.supabase.co")
    assert storage_configured() is True
