"""SupabaseStorage specifics, through the real supabase-py client over loopback: error mapping
(the 400-wrapped 403/404/409 of Supabase Storage), secrets never shown, retries, pagination."""

from __future__ import annotations

import logging
import socket
import traceback

import httpx
import pytest

from flowsync_dev.storage_server import StorageTestServer
from flowsync_provider.storage import (
    BucketNotFound,
    StorageAuthError,
    StorageConfigError,
    StorageUnavailable,
    SupabaseStorage,
)

WRONG_KEY = "sb_wrong_key_d00d_f00d_4444"


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def test_upload_sends_csv_content_type_upsert_and_both_auth_headers(server, supabase_storage) -> None:
    supabase_storage.upload("ingest", "u1/flows.csv", b"h\n1\n")
    supabase_storage.upload("ingest", "u1/flows.csv", b"h\n2\n")
    log = server.upload_log()
    assert [(r["method"], r["upsert"], r["status"], r["content_type"]) for r in log] == [
        ("POST", True, 200, "text/csv"),
        ("POST", True, 200, "text/csv"),
    ]
    assert server.objects() == {"ingest/u1/flows.csv": b"h\n2\n"}
    requests = server.request_log()
    assert requests and all(r["apikey"] and r["bearer"] for r in requests)
    assert requests[0]["path"] == "/storage/v1/object/ingest/u1/flows.csv"


def test_custom_content_type_is_stored(server, supabase_storage) -> None:
    supabase_storage.upload("ingest", "u1/summary.json", b"{}", "application/json")
    assert server.content_types() == {"ingest/u1/summary.json": "application/json"}


def test_unknown_bucket_message_is_the_runbook_hint(server, supabase_storage) -> None:
    with pytest.raises(BucketNotFound) as info:
        supabase_storage.upload("missing-bucket", "u1/flows.csv", b"x")
    assert str(info.value) == (
        "Upload failed: verify Supabase envs and staging bucket permissions (bucket 'missing-bucket' not found)."
    )
    # the wire really carried the 404 inside an HTTP 400, as Supabase Storage does
    failed = server.request_log()[-1]
    assert failed["status"] == 400 and failed["error"]["statusCode"] == "404"


def test_wrong_key_is_an_auth_error_without_any_key(server, caplog, service_key) -> None:
    caplog.set_level(logging.DEBUG)
    storage = SupabaseStorage(server.url, WRONG_KEY, timeout=10, backoff_seconds=0.01)
    try:
        with pytest.raises(StorageAuthError) as info:
            storage.upload("ingest", "u1/flows.csv", b"x")
    finally:
        storage.close()
    message = str(info.value)
    assert message.startswith("Upload failed: verify Supabase envs and staging bucket permissions")
    assert "rejected the service-role key" in message
    for secret in (WRONG_KEY, service_key):
        assert secret not in _all_text(info.value)
        assert secret not in caplog.text
    assert server.objects() == {}
    assert server.request_log()[-1]["error"]["statusCode"] == "403"
    assert len(server.request_log()) == 1  # auth failures are not retried


def test_server_message_echoing_the_key_is_redacted(server, service_key) -> None:
    storage = SupabaseStorage(server.url, service_key)
    from storage3.exceptions import StorageApiError

    error = storage._translate(StorageApiError(f"bad token {service_key}", "Unauthorized", "403"),
                               "upload", "ingest", "a.csv")
    assert service_key not in str(error) and "***" in str(error)


def test_transient_5xx_is_retried_then_succeeds(server, supabase_storage, caplog, service_key) -> None:
    caplog.set_level(logging.WARNING)
    server.fail_next(2, status=503)
    assert supabase_storage.upload("ingest", "u2/flows.csv", b"ok") == "ingest/u2/flows.csv"
    statuses = [r["status"] for r in server.request_log()]
    assert statuses == [503, 503, 200]
    assert server.objects() == {"ingest/u2/flows.csv": b"ok"}
    assert "attempt 1/3" in caplog.text and service_key not in caplog.text


def test_persistent_5xx_gives_up_after_max_attempts(server, supabase_storage) -> None:
    server.fail_next(5, status=500)
    with pytest.raises(StorageUnavailable, match=r"answered 500.*after 3 attempts"):
        supabase_storage.download("ingest", "u2/flows.csv")
    assert len(server.request_log()) == 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_unavailable_without_the_key(service_key) -> None:
    storage = SupabaseStorage(f"http://127.0.0.1:{_closed_port()}", service_key, timeout=5,
                              max_attempts=2, backoff_seconds=0.01)
    with pytest.raises(StorageUnavailable) as info:
        storage.upload("ingest", "u/flows.csv", b"x")
    storage.close()
    assert "cannot reach Supabase Storage" in str(info.value)
    assert "verify Supabase envs" in str(info.value)
    assert service_key not in _all_text(info.value)


@pytest.mark.parametrize("url", ["", "127.0.0.1:8000", "ftp://example.org"])
def test_bad_url_is_a_config_error(url: str, service_key) -> None:
    with pytest.raises(StorageConfigError, match="NEXT_PUBLIC_SUPABASE_URL"):
        SupabaseStorage(url, service_key)


def test_empty_key_is_a_config_error() -> None:
    with pytest.raises(StorageConfigError, match="SUPABASE_SERVICE_ROLE_KEY"):
        SupabaseStorage("http://127.0.0.1:1", "")


def test_construction_does_no_io_and_repr_hides_the_key(service_key) -> None:
    storage = SupabaseStorage(f"http://127.0.0.1:{_closed_port()}/", service_key)
    assert storage.url.endswith(str(storage.url.rsplit(":", 1)[1]))  # trailing slash dropped
    assert service_key not in repr(storage) and service_key not in storage.describe()


def test_list_follows_pages_and_folders(server, supabase_storage) -> None:
    for i in range(230):
        server.put_object("ingest", f"big/part-{i:03d}.csv", b"x")
    for i in range(3):
        server.put_object("ingest", f"big/nested/deeper/n-{i}.csv", b"x")
    keys = supabase_storage.list("ingest", "big")
    assert len(keys) == 233
    assert keys[0] == "big/nested/deeper/n-0.csv" and keys[-1] == "big/part-229.csv"
    list_calls = [r for r in server.request_log() if r["path"].startswith("/storage/v1/object/list/")]
    assert len(list_calls) == 5  # 3 pages for 'big' (100+100+31 entries), 'big/nested', 'big/nested/deeper'


def test_create_bucket_is_idempotent(server, supabase_storage) -> None:
    supabase_storage.create_bucket("scratch-bucket")
    supabase_storage.create_bucket("scratch-bucket")
    assert "scratch-bucket" in supabase_storage.list_buckets()
    assert supabase_storage.upload("scratch-bucket", "a.csv", b"1") == "scratch-bucket/a.csv"


def test_storage3_own_calls_work_against_the_test_server(server, supabase_storage) -> None:
    """The server is compatible beyond what SupabaseStorage uses: info/exists/remove."""
    supabase_storage.upload("ingest", "u9/flows.csv", b"abc")
    bucket = supabase_storage.client.storage.from_("ingest")
    assert bucket.exists("u9/flows.csv") is True
    assert bucket.exists("u9/none.csv") is False
    assert bucket.info("u9/flows.csv")["size"] == 3
    bucket.remove(["u9/flows.csv"])
    assert server.objects() == {}


def test_raw_error_shapes_on_the_wire(server, service_key) -> None:
    """What a client sees without supabase-py: HTTP 400 and the real code inside the body."""
    base = f"{server.url}/storage/v1"
    good = {"Authorization": f"Bearer {service_key}", "apikey": service_key}
    with httpx.Client() as client:
        missing_bucket = client.get(f"{base}/object/nope/a.csv", headers=good)
        assert missing_bucket.status_code == 400
        assert missing_bucket.json() == {"statusCode": "404", "code": "NoSuchBucket",
                                         "error": "Bucket not found", "message": "Bucket not found"}
        missing_object = client.get(f"{base}/object/ingest/none.csv", headers=good)
        assert missing_object.status_code == 400
        assert missing_object.json()["statusCode"] == "404"
        assert missing_object.json()["error"] == "not_found"
        no_auth = client.get(f"{base}/bucket")
        assert no_auth.status_code == 400 and no_auth.json()["statusCode"] == "403"
        bad_apikey = client.get(f"{base}/bucket", headers={**good, "apikey": "other-key"})
        assert bad_apikey.json()["error"] == "Unauthorized"
        raw = client.post(f"{base}/object/ingest/raw.csv", content=b"a,b\n",
                          headers={**good, "content-type": "text/csv"})
        assert raw.status_code == 200 and raw.json()["Key"] == "ingest/raw.csv"
        duplicate = client.post(f"{base}/object/ingest/raw.csv", content=b"a,b\n",
                                headers={**good, "content-type": "text/csv"})
        assert duplicate.status_code == 400
        assert duplicate.json()["statusCode"] == "409" and duplicate.json()["error"] == "Duplicate"
        listing = client.post(f"{base}/object/list/ingest", headers=good,
                              json={"prefix": "", "limit": 10, "offset": 0,
                                    "sortBy": {"column": "name", "order": "desc"}})
        assert [e["name"] for e in listing.json()] == ["raw.csv"]
        assert client.get(f"{server.url}/elsewhere").status_code == 404


def test_server_can_run_in_a_second_instance_with_its_own_state() -> None:
    with StorageTestServer("other-key-123", ["b1"]) as other:
        storage = SupabaseStorage(other.url, "other-key-123")
        storage.upload("b1", "x.csv", b"1")
        storage.close()
        assert other.objects() == {"b1/x.csv": b"1"}
        assert other.buckets() == ["b1"]
