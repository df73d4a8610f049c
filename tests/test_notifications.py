"""Failure alerts: the notifier posts a short JSON to a webhook connection (a tiny HTTP server on
loopback), is a logged no-op without the connection, and never sends or logs secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import BaseNotifier

from flowsync_provider.notifications import ALERT_CONN_ID, FlowsyncFailureNotifier, alert_payload, failure_alert

TOKEN = "whk_alert_token_7e6d5c4b"
CONN_ENV = "AIRFLOW_CONN_FLOWSYNC_ALERTS"


class Webhook:
    """Records every POST (path, headers, JSON body); answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 204
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                length = int(self.headers.get("content-length") or 0)
                outer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": json.loads(self.rfile.read(length) or b"null")})
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.thread.start()
    yield hook
    hook.httpd.shutdown()
    hook.httpd.server_close()


@pytest.fixture(autouse=True)
def _clean(monkeypatch, webhook) -> None:
    webhook.requests.clear()
    webhook.status = 204
    monkeypatch.delenv(CONN_ENV, raising=False)


def configure(monkeypatch, **fields: Any) -> None:
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "http", **fields}))


def task_context(error: BaseException | str | None = None) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="klaviyo_snapshot_nightly", task_id="upload",
                         run_id="scheduled__2025-09-17T01:00:00+00:00", try_number=3, map_index=-1)
    return {"ti": ti, "run_id": ti.run_id, "dag_run": SimpleNamespace(dag_id=ti.dag_id, run_id=ti.run_id),
            "logical_date": datetime(2025, 9, 17, 1, tzinfo=UTC), "exception": error,
            "params": {"apiKey": "pk_should_never_travel"}}


def logged(caplog, capsys) -> str:
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def test_posts_a_short_json_to_the_webhook(webhook, monkeypatch, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "urllib3", "flowsync_provider"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    configure(monkeypatch, host=webhook.url, password=TOKEN, extra={"endpoint": "/hooks/flowsync"})
    notifier = failure_alert()
    assert isinstance(notifier, BaseNotifier) and notifier.conn_id == ALERT_CONN_ID
    notifier(task_context(ValueError("Refusing to upload flows.csv: it has no data rows\nTraceback line 2")))
    (request,) = webhook.requests
    assert request["path"] == "/hooks/flowsync"
    assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["content-type"] == "application/json"
    assert request["body"] == {
        "source": "flowsync", "event": "task_failed", "dag_id": "klaviyo_snapshot_nightly",
        "run_id": "scheduled__2025-09-17T01:00:00+00:00", "task_id": "upload", "map_index": None, "try_number": 3,
        "logical_date": "2025-09-17T01:00:00+00:00",
        "error": "ValueError: Refusing to upload flows.csv: it has no data rows",
    }
    text = logged(caplog, capsys)
    assert "Failure alert sent to" in text
    assert TOKEN not in text and "/hooks/flowsync" not in text  # webhook paths are often the credential


def test_no_connection_is_a_logged_no_op(webhook, caplog, capsys) -> None:
    assert FlowsyncFailureNotifier().send(task_context(RuntimeError("boom"))) is False
    assert webhook.requests == []
    assert "No alert webhook connection 'flowsync_alerts' configured" in logged(caplog, capsys)


def test_host_port_and_schema_fields_build_the_url(webhook, monkeypatch) -> None:
    configure(monkeypatch, host="127.0.0.1", port=webhook.httpd.server_address[1], schema="http")
    assert FlowsyncFailureNotifier().send(task_context("reason text")) is True
    (request,) = webhook.requests
    assert request["path"] == "/" and "authorization" not in request["headers"]
    assert request["body"]["error"] == "reason text"


def test_dag_level_context_and_long_errors(webhook, monkeypatch) -> None:
    configure(monkeypatch, host=webhook.url)
    context = {"dag_run": SimpleNamespace(dag_id="klaviyo_snapshot_history", run_id="manual__x",
                                          logical_date=None), "reason": "task_failure " + "x" * 500}
    FlowsyncFailureNotifier().send(context)
    body = webhook.requests[0]["body"]
    assert (body["event"], body["dag_id"], body["run_id"], body["task_id"]) == (
        "dag_failed", "klaviyo_snapshot_history", "manual__x", None)
    assert len(body["error"]) == 303 and body["error"].endswith("...")


def test_webhook_errors_are_logged_not_raised(webhook, monkeypatch, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    configure(monkeypatch, host=webhook.url, password=TOKEN)
    webhook.status = 500
    assert FlowsyncFailureNotifier().send(task_context(ValueError("x"))) is False
    configure(monkeypatch, host="http://127.0.0.1:9/secret-path", password=TOKEN)
    notifier = FlowsyncFailureNotifier(timeout=2)
    notifier(task_context(ValueError("x")))  # Airflow's call path: must not raise
    text = logged(caplog, capsys)
    assert "rejected with HTTP 500" in text and "not delivered (ConnectionRefusedError)" in text
    assert TOKEN not in text and "secret-path" not in text


def test_payload_carries_only_ids_and_one_line(monkeypatch) -> None:
    payload = alert_payload(task_context(KeyError("k")))
    assert set(payload) == {"source", "event", "dag_id", "run_id", "task_id", "map_index", "try_number",
                            "logical_date", "error"}
    assert "pk_should_never_travel" not in json.dumps(payload)
    mapped = task_context(None)
    mapped["ti"].map_index = 4
    assert alert_payload(mapped)["map_index"] == 4 and alert_payload(mapped)["error"] is None


def test_masked_secrets_are_redacted_from_the_error_line(webhook, monkeypatch) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret("sk_live_masked_value_123456")
    configure(monkeypatch, host=webhook.url)
    FlowsyncFailureNotifier().send(task_context(RuntimeError("auth failed for sk_live_masked_value_123456")))
    error = webhook.requests[0]["body"]["error"]
    assert "sk_live_masked_value_123456" not in error and error.startswith("RuntimeError: auth failed for ")


def test_async_notify_posts_the_same_payload(webhook, monkeypatch) -> None:
    configure(monkeypatch, host=webhook.url, password=TOKEN)
    asyncio.run(FlowsyncFailureNotifier().async_notify(task_context(ValueError("deadline missed"))))
    (request,) = webhook.requests
    assert request["body"]["error"] == "ValueError: deadline missed"
    assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
