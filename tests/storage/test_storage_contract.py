"""The StorageBackend contract, run against LocalStorage and SupabaseStorage (real supabase-py
client over loopback to the Supabase-Storage-compatible test server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowsync_provider.storage import (
    BucketNotFound,
    ObjectExists,
    ObjectNotFound,
    StorageBackend,
    StorageConfigError,
    ingest_bucket,
    object_path,
    staging_bucket,
    upload_key,
)

CSV = b"Day,Flow ID,Delivered\r\n2025-09-01,F1,10\n2025-09-02,F1,0\n"
BINARY = bytes(range(256)) * 3  # every byte value survives the round trip


def test_upload_returns_object_path_and_round_trips(backend: StorageBackend) -> None:
    assert backend.upload("ingest", "/u-1/flows.csv", CSV) == "ingest/u-1/flows.csv"
    assert backend.download("ingest", "u-1/flows.csv") == CSV
    assert backend.upload("ingest", "u-1/blob.bin", BINARY, "application/octet-stream") == "ingest/u-1/blob.bin"
    assert backend.download("ingest", "/u-1/blob.bin") == BINARY
    odd = "u-1/acc canary+1/2025-09-17T01:00:00Z flows%.csv"  # spaces, '+', ':' and '%' survive URL quoting
    assert backend.upload("ingest", odd, CSV) == f"ingest/{odd}"
    assert backend.download("ingest", odd) == CSV and backend.exists("ingest", odd)
    assert odd in backend.list("ingest", "u-1")


def test_upsert_twice_is_idempotent_and_last_write_wins(backend: StorageBackend) -> None:
    first = backend.upload("ingest", "u-2/flows.csv", b"a\n1\n")
    second = backend.upload("ingest", "u-2/flows.csv", b"a\n2\n")
    third = backend.upload("ingest", "u-2/flows.csv", b"a\n2\n")
    assert first == second == third == "ingest/u-2/flows.csv"
    assert backend.download("ingest", "u-2/flows.csv") == b"a\n2\n"
    assert backend.list("ingest", "u-2") == ["u-2/flows.csv"]


def test_upload_from_a_file_path(backend: StorageBackend, tmp_path: Path) -> None:
    source = tmp_path / "campaigns.csv"
    source.write_bytes(CSV)
    assert backend.upload("ingest", "u-3/campaigns.csv", source) == "ingest/u-3/campaigns.csv"
    assert backend.download("ingest", "u-3/campaigns.csv") == CSV


def test_upload_of_a_missing_local_file_names_the_file(backend: StorageBackend, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="Cannot read local file") as info:
        backend.upload("ingest", "u/x.csv", tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)


def test_without_upsert_an_existing_object_is_refused_and_kept(backend: StorageBackend) -> None:
    backend.upload("ingest", "u-4/flows.csv", b"original")
    with pytest.raises(ObjectExists, match="already exists"):
        backend.upload("ingest", "u-4/flows.csv", b"other", upsert=False)
    assert backend.download("ingest", "u-4/flows.csv") == b"original"
    assert backend.upload("ingest", "u-4/new.csv", b"fresh", upsert=False) == "ingest/u-4/new.csv"


def test_list_is_recursive_sorted_and_scoped_to_the_prefix(backend: StorageBackend) -> None:
    for key in ("u-5/subscribers.csv", "u-5/flows.csv", "u-5/raw/page-2.json", "u-5/raw/page-1.json",
                "u-50/flows.csv", "other/flows.csv"):
        backend.upload("ingest", key, b"x")
    expected = ["u-5/flows.csv", "u-5/raw/page-1.json", "u-5/raw/page-2.json", "u-5/subscribers.csv"]
    assert backend.list("ingest", "u-5") == expected
    assert backend.list("ingest", "/u-5/") == expected
    assert backend.list("ingest", "u-5/raw") == ["u-5/raw/page-1.json", "u-5/raw/page-2.json"]
    assert backend.list("ingest", "missing-folder") == []
    assert len(backend.list("ingest")) == 6
    assert backend.list("flow-staging") == []


def test_exists_matches_whole_names_only(backend: StorageBackend) -> None:
    backend.upload("ingest", "u-6/flows.csv.bak", b"x")
    backend.upload("ingest", "u-6/FLOWS.CSV", b"x")
    assert backend.exists("ingest", "u-6/flows.csv") is False
    backend.upload("ingest", "u-6/flows.csv", b"x")
    assert backend.exists("ingest", "/u-6/flows.csv") is True
    assert backend.exists("ingest", "u-6/flows") is False
    assert backend.exists("ingest", "u-6") is False  # a folder is not an object


def test_download_of_a_missing_object(backend: StorageBackend) -> None:
    with pytest.raises(ObjectNotFound, match=r"Download failed: object 'ingest/u-7/none.csv' not found"):
        backend.download("ingest", "u-7/none.csv")


@pytest.mark.parametrize("call", ["upload", "download", "list", "exists"])
def test_unknown_bucket_is_bucket_not_found(backend: StorageBackend, call: str) -> None:
    ops = {
        "upload": lambda: backend.upload("no-such-bucket", "u/flows.csv", b"x"),
        "download": lambda: backend.download("no-such-bucket", "u/flows.csv"),
        "list": lambda: backend.list("no-such-bucket", "u"),
        "exists": lambda: backend.exists("no-such-bucket", "u/flows.csv"),
    }
    with pytest.raises(BucketNotFound, match="'no-such-bucket' not found"):
        ops[call]()


@pytest.mark.parametrize("bad", ["", "/", "../etc/passwd", "u/../../x.csv", "u//x.csv", "u/./x.csv"])
def test_invalid_keys_are_refused_before_any_io(backend: StorageBackend, bad: str) -> None:
    with pytest.raises(StorageConfigError, match="Invalid object path"):
        backend.upload("ingest", bad, b"x")


@pytest.mark.parametrize("bad", ["", "a/b", ".."])
def test_invalid_bucket_names_are_refused(backend: StorageBackend, bad: str) -> None:
    with pytest.raises(StorageConfigError, match="Invalid bucket name"):
        backend.upload(bad, "u/x.csv", b"x")


def test_list_buckets(backend: StorageBackend) -> None:
    assert backend.list_buckets() == ["flow-staging", "ingest"]


def test_bucket_env_resolution() -> None:
    assert ingest_bucket({"DATA_INGEST_BUCKET": "data", "PREAUTH_BUCKET": "pre"}) == "data"
    assert ingest_bucket({"DATA_INGEST_BUCKET": "  ", "PREAUTH_BUCKET": "pre"}) == "pre"
    assert staging_bucket({"FLOW_STAGING_BUCKET": "stage"}) == "stage"
    with pytest.raises(StorageConfigError, match="DATA_INGEST_BUCKET.*PREAUTH_BUCKET"):
        ingest_bucket({})
    with pytest.raises(StorageConfigError, match="FLOW_STAGING_BUCKET"):
        staging_bucket({"DATA_INGEST_BUCKET": "data"})


def test_bucket_env_defaults_to_the_process_environment(monkeypatch) -> None:
    monkeypatch.delenv("DATA_INGEST_BUCKET", raising=False)
    monkeypatch.setenv("PREAUTH_BUCKET", "preauth")
    assert ingest_bucket() == "preauth"


def test_key_helpers() -> None:
    assert upload_key("/2025-09-17T01-00-00Z/", "flows.csv") == "2025-09-17T01-00-00Z/flows.csv"
    assert object_path("ingest", "/a/b.csv") == "ingest/a/b.csv"
