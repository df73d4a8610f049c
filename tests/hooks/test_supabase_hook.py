"""SupabaseHook: connection JSON, env fallbacks, secrets never in messages or logs; every storage
call goes over loopback to the Supabase-Storage-compatible test server through supabase-py."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from flowsync_dev.storage_server import StorageTestServer
from flowsync_provider.hooks.supabase import KEY_ENV, URL_ENV, SupabaseHook
from flowsync_provider.storage import StorageConfigError, SupabaseStorage

KEY = "sb_hook_service_key_1c9e77aa"
ENV_KEY = "sb_env_service_key_42b0d1ff"


@pytest.fixture(scope="module")
def storage_server() -> Iterator[StorageTestServer]:
    server = StorageTestServer(KEY, ["ingest"]).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, storage_server) -> None:
    storage_server.reset()
    for name in (URL_ENV, KEY_ENV, "AIRFLOW_CONN_SUPABASE_DEFAULT", "AIRFLOW_CONN_SUPABASE_OTHER"):
        monkeypatch.delenv(name, raising=False)


def _logged(caplog, capsys) -> str:
    """Everything logged: stdlib records (caplog) and Airflow's structlog output (stdout/stderr)."""
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def _conn(monkeypatch, conn_id: str = "supabase_default", **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "supabase", **fields}))


def test_storage_from_connection_json(monkeypatch, storage_server) -> None:
    _conn(monkeypatch, host=storage_server.url, password=KEY)
    hook = SupabaseHook()
    try:
        storage = hook.get_storage()
        assert isinstance(storage, SupabaseStorage)
        assert storage is hook.get_conn()  # built once per hook
        assert storage.upload("ingest", "u1/flows.csv", b"h\n") == "ingest/u1/flows.csv"
    finally:
        hook.close()
    assert storage_server.objects() == {"ingest/u1/flows.csv": b"h\n"}
    creds = hook.get_credentials()
    assert (creds.url_source, creds.key_source) == ("connection supabase_default",) * 2
    assert KEY not in repr(creds)


def test_host_without_scheme_uses_schema_and_port(monkeypatch, storage_server) -> None:
    port = int(storage_server.url.rsplit(":", 1)[1])
    _conn(monkeypatch, conn_id="supabase_other", host="127.0.0.1", port=port, schema="http", password=KEY)
    hook = SupabaseHook(supabase_conn_id="supabase_other")
    assert hook.get_credentials().url == storage_server.url
    ok, message = hook.test_connection()
    assert ok is True and "1 bucket(s)" in message and "ingest" in message


def test_env_fallback_when_connection_absent(monkeypatch, storage_server) -> None:
    monkeypatch.setenv(URL_ENV, storage_server.url + "/")
    monkeypatch.setenv(KEY_ENV, KEY)
    hook = SupabaseHook()
    creds = hook.get_credentials()
    assert creds.url == storage_server.url
    assert (creds.url_source, creds.key_source) == (URL_ENV, KEY_ENV)
    try:
        hook.get_storage().upload("ingest", "u2/flows.csv", b"x")
    finally:
        hook.close()
    assert "ingest/u2/flows.csv" in storage_server.objects()


def test_env_fills_only_what_the_connection_leaves_empty(monkeypatch, storage_server) -> None:
    _conn(monkeypatch, host=storage_server.url)  # no password in the connection
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9")  # must NOT override the connection's host
    monkeypatch.setenv(KEY_ENV, KEY)
    creds = SupabaseHook().get_credentials()
    assert creds.url == storage_server.url
    assert (creds.url_source, creds.key_source) == ("connection supabase_default", KEY_ENV)


def test_nothing_configured_names_the_fix(monkeypatch) -> None:
    hook = SupabaseHook()  # no lookup happens in __init__
    with pytest.raises(StorageConfigError) as info:
        hook.get_storage()
    message = str(info.value)
    assert "Supabase URL and service-role key missing" in message
    assert "supabase_default" in message and URL_ENV in message and KEY_ENV in message


def test_missing_key_only(monkeypatch, storage_server) -> None:
    _conn(monkeypatch, host=storage_server.url)
    with pytest.raises(StorageConfigError, match=r"\(service-role key missing\)"):
        SupabaseHook().get_storage()


def test_wrong_key_fails_test_connection_without_leaking(monkeypatch, storage_server, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(URL_ENV, storage_server.url)
    monkeypatch.setenv(KEY_ENV, ENV_KEY)  # not the server's key
    ok, message = SupabaseHook().test_connection()
    assert ok is False
    assert "verify Supabase envs" in message and "rejected the service-role key" in message
    assert ENV_KEY not in message and KEY not in message
    logged = _logged(caplog, capsys)
    assert ENV_KEY not in logged and KEY not in logged
    assert "Supabase Storage at" in logged  # the hook did log (so the check above means something)


def test_upload_logs_never_carry_the_key(monkeypatch, storage_server, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    _conn(monkeypatch, host=storage_server.url, password=KEY)
    hook = SupabaseHook()
    try:
        hook.get_storage().upload("ingest", "u3/flows.csv", b"x")
        with pytest.raises(StorageConfigError):
            hook.get_storage().upload("ingest", "../escape.csv", b"x")
    finally:
        hook.close()
    logged = _logged(caplog, capsys)
    assert "Uploaded 1 bytes to ingest/u3/flows.csv" in logged
    assert "Supabase Storage at" in logged
    assert KEY not in logged


def test_ui_field_behaviour_and_identity() -> None:
    behaviour = SupabaseHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "Supabase URL", "password": "Service role key"}
    assert "login" in behaviour["hidden_fields"]
    assert (SupabaseHook.conn_type, SupabaseHook.conn_name_attr, SupabaseHook.default_conn_name) == (
        "supabase", "supabase_conn_id", "supabase_default")
    assert SupabaseHook.hook_name == "Supabase"
