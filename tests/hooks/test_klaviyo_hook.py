"""KlaviyoHook: connection/env resolution and the UI's connection test, over loopback to the sandbox."""

from __future__ import annotations

import json

import pytest

from flowsync_provider.hooks.klaviyo import UI_FIELD_BEHAVIOUR, KlaviyoHook, base_url_from
from flowsync_provider.klaviyo import KlaviyoConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ("KLAVIYO_API_KEY", "KLAVIYO_API_KEY_PRIVATE", "KLAVIYO_API_REVISION", "KLAVIYO_BASE_URL",
                 "AIRFLOW_CONN_KLAVIYO_DEFAULT", "AIRFLOW_CONN_KLAVIYO_OTHER", "FLOWSYNC_LIMITER_URL",
                 "KLAVIYO_LIMIT_GLOBAL_BURST", "KLAVIYO_LIMIT_GLOBAL_PER_MINUTE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOWSYNC_HOME", str(tmp_path))


def set_conn(monkeypatch, conn_id: str = "klaviyo_default", **fields) -> None:
    """A klaviyo connection in env JSON form; the session sandbox's time scale (20) in its extra by default."""
    fields["extra"] = {"time_scale": 20, **fields.get("extra", {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "klaviyo", **fields}))


def test_init_does_no_lookups(monkeypatch):
    import airflow.sdk.definitions.connection as sdk_conn

    def forbidden(cls, *args, **kwargs):
        raise AssertionError("connection lookup in __init__")

    monkeypatch.setattr(sdk_conn.Connection, "get", classmethod(forbidden))
    hook = KlaviyoHook()
    assert hook.klaviyo_conn_id == "klaviyo_default"
    assert KlaviyoHook(klaviyo_conn_id="other").klaviyo_conn_id == "other"


def test_connection_from_env_json(monkeypatch, klaviyo_sandbox):
    klaviyo_sandbox.reset()
    set_conn(monkeypatch, host=klaviyo_sandbox.url, password=klaviyo_sandbox.api_key,
             extra={"revision": "2026-07-15", "timeout": 12, "account_key": "acct-hook"})
    hook = KlaviyoHook()
    settings = hook.get_settings()
    assert settings.base_url == klaviyo_sandbox.url and settings.timeout == 12.0
    assert settings.key_source == "connection 'klaviyo_default'"
    assert klaviyo_sandbox.api_key not in repr(settings)
    client = hook.get_conn()
    assert client is hook.client and client.account_key == "acct-hook"
    assert client.get_account()["id"] == klaviyo_sandbox.account.account_id
    assert client.http.timeout.read == 12.0
    assert [e["status"] for e in klaviyo_sandbox.requests()] == [200]
    hook.close()


def test_overrides_and_client_kwargs(monkeypatch, klaviyo_sandbox):
    set_conn(monkeypatch, host=klaviyo_sandbox.url + "/api/", password=klaviyo_sandbox.api_key)
    hook = KlaviyoHook(client_kwargs={"max_wait_seconds": 5.0, "max_attempts": 2})
    client = hook.get_client(max_attempts=7)
    assert client.base_url == klaviyo_sandbox.url
    assert client.max_wait_seconds == 5.0 and client.max_attempts == 7
    client.close()


def test_time_scale_comes_from_the_connection_extra_not_the_env(monkeypatch, klaviyo_sandbox):
    """The sandbox's time scale reaches the client through the connection; FLOWSYNC_TIME_SCALE is ignored."""
    monkeypatch.setenv("FLOWSYNC_TIME_SCALE", "20")
    set_conn(monkeypatch, host=klaviyo_sandbox.url, password=klaviyo_sandbox.api_key, extra={"time_scale": 10})
    assert KlaviyoHook().get_settings().time_scale == 10.0
    with KlaviyoHook().get_client() as client:
        assert client.time_scale == 10.0
    monkeypatch.setenv("AIRFLOW_CONN_KLAVIYO_DEFAULT", json.dumps(
        {"conn_type": "klaviyo", "host": klaviyo_sandbox.url, "password": klaviyo_sandbox.api_key}))
    with KlaviyoHook().get_client() as client:
        assert client.time_scale == 1.0, "production (no extra) runs at the real windows whatever the env says"
    monkeypatch.delenv("AIRFLOW_CONN_KLAVIYO_DEFAULT")
    monkeypatch.setenv("KLAVIYO_API_KEY", klaviyo_sandbox.api_key)
    with KlaviyoHook().get_client() as client:  # env-only set-up: no connection, so no time scale either
        assert client.time_scale == 1.0


@pytest.mark.parametrize("bad", [0, -2, "fast"])
def test_bad_time_scale_extra_refused_before_any_call(monkeypatch, klaviyo_sandbox, bad):
    klaviyo_sandbox.reset()
    set_conn(monkeypatch, host=klaviyo_sandbox.url, password=klaviyo_sandbox.api_key, extra={"time_scale": bad})
    with pytest.raises(KlaviyoConfigError, match=r"time_scale must be a number > 0.*connection's 'time_scale' extra"):
        KlaviyoHook().get_settings()
    ok, message = KlaviyoHook().test_connection()  # the UI's Test button names the field too
    assert not ok and "'time_scale' extra" in message
    assert klaviyo_sandbox.requests() == []


def test_key_falls_back_to_env_when_connection_has_none(monkeypatch, klaviyo_sandbox):
    set_conn(monkeypatch, host=klaviyo_sandbox.url)
    monkeypatch.setenv("KLAVIYO_API_KEY_PRIVATE", klaviyo_sandbox.api_key)
    settings = KlaviyoHook().get_settings()
    assert settings.api_key == klaviyo_sandbox.api_key and settings.key_source == "env KLAVIYO_API_KEY_PRIVATE"
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_first_choice_1234567")
    assert KlaviyoHook().get_settings().key_source == "env KLAVIYO_API_KEY"


def test_missing_connection_uses_env_only(monkeypatch, klaviyo_sandbox):
    monkeypatch.setenv("KLAVIYO_API_KEY", klaviyo_sandbox.api_key)
    monkeypatch.setenv("KLAVIYO_BASE_URL", klaviyo_sandbox.url)
    with KlaviyoHook().get_client() as client:
        assert client.get_account()["id"] == klaviyo_sandbox.account.account_id
    monkeypatch.delenv("KLAVIYO_BASE_URL")
    assert KlaviyoHook().get_settings().base_url == "https://a.klaviyo.com"


def test_no_key_anywhere_is_a_clear_error(monkeypatch):
    with pytest.raises(KlaviyoConfigError, match="AIRFLOW_CONN_KLAVIYO_DEFAULT.*KLAVIYO_API_KEY"):
        KlaviyoHook().get_settings()
    set_conn(monkeypatch, host="a.klaviyo.com")
    with pytest.raises(KlaviyoConfigError, match="no password"):
        KlaviyoHook().get_settings()


def test_unsupported_revision_extra_refused(monkeypatch):
    set_conn(monkeypatch, password="pk_some_key_123456789", extra={"revision": "2024-06-15"})
    with pytest.raises(KlaviyoConfigError, match="2026-07-15"):
        KlaviyoHook().get_client()


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, "https://a.klaviyo.com"),
        ("a.klaviyo.com", None, None, "https://a.klaviyo.com"),
        ("a.klaviyo.com/api", None, None, "https://a.klaviyo.com"),
        ("https://a.klaviyo.com/api/", None, None, "https://a.klaviyo.com"),
        ("127.0.0.1", None, 8081, "http://127.0.0.1:8081"),
        ("sandbox.internal", "http", 9000, "http://sandbox.internal:9000"),
    ],
)
def test_base_url_from_connection_parts(host, schema, port, expected):
    assert base_url_from(host, schema, port) == expected


def test_test_connection_reports_missing_scopes(monkeypatch, klaviyo_sandbox):
    set_conn(monkeypatch, host=klaviyo_sandbox.url, password=klaviyo_sandbox.api_key)
    ok, message = KlaviyoHook().test_connection()
    assert ok, message
    set_conn(monkeypatch, host=klaviyo_sandbox.url, password=klaviyo_sandbox.readonly_key)
    ok, message = KlaviyoHook().test_connection()
    assert not ok and "lists:read" in message and "profiles:read" in message
    assert klaviyo_sandbox.readonly_key not in message
    wrong = "pk_definitely_wrong_key_55555"
    set_conn(monkeypatch, host=klaviyo_sandbox.url, password=wrong)
    ok, message = KlaviyoHook().test_connection()
    assert not ok and "401" in message and wrong not in message


def test_ui_field_behaviour():
    behaviour = KlaviyoHook.get_ui_field_behaviour()
    assert set(behaviour["hidden_fields"]) == {"schema", "port", "login"}
    assert behaviour["relabeling"] == {"password": "Private API key", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://a.klaviyo.com"
    assert behaviour["hidden_fields"] == UI_FIELD_BEHAVIOUR["hidden-fields"]
    assert (KlaviyoHook.conn_type, KlaviyoHook.default_conn_name, KlaviyoHook.conn_name_attr) == (
        "klaviyo", "klaviyo_default", "klaviyo_conn_id")


@pytest.mark.parametrize("value", [0, -1, "abc", "0", True])
def test_timeout_at_or_below_zero_is_refused_before_any_call(monkeypatch, klaviyo_sandbox, value):
    """0 used to become 30 s silently and -1 crashed in httpx with "Timeout value out of range"."""
    klaviyo_sandbox.reset()
    set_conn(monkeypatch, host=klaviyo_sandbox.url, password=klaviyo_sandbox.api_key, extra={"timeout": value})
    with pytest.raises(KlaviyoConfigError) as err:
        KlaviyoHook().get_client()
    assert str(err.value) == (
        f"Connection klaviyo_default extra.timeout must be a number of seconds above 0, got {value!r}: "
        "set it to e.g. 60, or remove it to use the default 30 s"
    )
    assert klaviyo_sandbox.api_key not in str(err.value)
    assert klaviyo_sandbox.requests() == []


@pytest.mark.parametrize(("extra", "expected"), [({}, 30.0), ({"timeout": None}, 30.0), ({"timeout": ""}, 30.0),
                                                 ({"timeout": "45"}, 45.0), ({"timeout": 0.5}, 0.5)])
def test_timeout_unset_means_default_and_numbers_are_kept(monkeypatch, klaviyo_sandbox, extra, expected):
    set_conn(monkeypatch, host=klaviyo_sandbox.url, password=klaviyo_sandbox.api_key, extra=extra)
    assert KlaviyoHook().get_settings().timeout == expected


def test_closed_port_error_names_the_connection_host(monkeypatch):
    """Over the real wire: nothing listens on the port; the error says where, never the key."""
    import socket

    from flowsync_provider.klaviyo import KlaviyoServerError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = "pk_closed_port_test_0123456789"
    set_conn(monkeypatch, conn_id="klaviyo_other", host=f"127.0.0.1:{port}", password=key)
    with KlaviyoHook("klaviyo_other").get_client(max_attempts=2) as client, pytest.raises(KlaviyoServerError) as err:
        client.get_account()
    assert str(err.value) == (f"Could not connect to 127.0.0.1:{port} (connection refused) after 2 attempts: "
                              "check the klaviyo_other connection's host")
    assert key not in str(err.value)
