"""Airflow hook for the dashboard's snapshot API (``POST /api/snapshots/process``).

Built on the HTTP provider's :class:`HttpHook`. The connection (default ``flowsync_dashboard``,
conn_type ``http``) holds the dashboard base URL as host and the admin secret as password;
``ADMIN_JOB_SECRET`` fills in a missing secret and ``FLOWSYNC_DASHBOARD_URL`` a missing connection.
The ``x-admin-job-secret`` header is added here, at call time: never put it in templated
operator headers, which Airflow renders and stores in the metadata database.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import quote

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowNotFoundException

from flowsync_provider import settings
from flowsync_provider.core.errors import FlowsyncError

__all__ = [
    "DashboardAuthError",
    "DashboardConfigError",
    "DashboardError",
    "DashboardHook",
    "DashboardRequestError",
    "DashboardServerError",
    "SECRET_ENV",
    "URL_ENV",
]

SECRET_ENV = "ADMIN_JOB_SECRET"
URL_ENV = "FLOWSYNC_DASHBOARD_URL"
SECRET_HEADER = "x-admin-job-secret"
PROCESS_ENDPOINT = "/api/snapshots/process"

UNAUTHORIZED = (
    "Unauthorized: admin secret missing/invalid (set the flowsync_dashboard connection password / "
    "ADMIN_JOB_SECRET)."
)


class DashboardError(FlowsyncError):
    """A dashboard call failed; the message says what to fix (never contains the secret)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class DashboardConfigError(DashboardError, ValueError):
    """Neither the connection nor the env vars say where the dashboard is."""


class DashboardAuthError(DashboardError):
    """HTTP 401/403: the admin secret is missing or wrong."""


class DashboardRequestError(DashboardError):
    """HTTP 4xx other than auth, e.g. 422 when the snapshot's CSVs are missing."""


class DashboardServerError(DashboardError):
    """5xx or no connection, after the retries."""

    retryable = True


def _window_dict(window: Any) -> dict[str, str]:
    """Accept ``{"start","end"}``, an object with ``to_dict()``/``start``+``end``, or a 2-tuple."""
    if hasattr(window, "to_dict"):
        window = window.to_dict()
    if isinstance(window, Mapping):
        start, end = window.get("start"), window.get("end")
    elif isinstance(window, tuple | list) and len(window) == 2:
        start, end = window
    else:
        start, end = getattr(window, "start", None), getattr(window, "end", None)
    if start is None or end is None:
        raise DashboardConfigError("window must have a start and an end date (YYYY-MM-DD).")
    return {
        "start": start.isoformat() if isinstance(start, date) else str(start),
        "end": end.isoformat() if isinstance(end, date) else str(end),
    }


class DashboardHook(HttpHook):
    """Call the dashboard's snapshot endpoints with the admin secret.

    :param dashboard_conn_id: HTTP connection: host = dashboard base URL, password = admin secret.
    :param timeout: per-request timeout in seconds.
    :param max_attempts: attempts for 5xx answers and connection errors (4xx never retried).
    :param retry_wait: first backoff in seconds (doubles per attempt, capped at 30 s).
    """

    conn_name_attr = "dashboard_conn_id"
    default_conn_name = "flowsync_dashboard"
    conn_type = "http"
    hook_name = "Flowsync dashboard"

    def __init__(
        self,
        dashboard_conn_id: str = default_conn_name,
        *,
        timeout: float = 60.0,
        max_attempts: int = 3,
        retry_wait: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="POST", http_conn_id=dashboard_conn_id, **kwargs)
        self.dashboard_conn_id = dashboard_conn_id
        self.timeout = timeout
        self.max_attempts = max(1, int(max_attempts))
        self.retry_wait = max(0.0, float(retry_wait))

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login", "extra"],
            "relabeling": {"host": "Dashboard URL", "password": "Admin job secret"},
            "placeholders": {"host": "https://dashboard.example.com"},
        }

    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        """The Airflow connection, or one made from ``FLOWSYNC_DASHBOARD_URL`` when it is absent."""
        try:
            return super().get_connection(conn_id)
        except AirflowNotFoundException:
            url = (settings.dashboard_url() or "").strip()
            if not url:
                raise DashboardConfigError(
                    f"Dashboard not configured: define the {conn_id!r} connection (conn_type http, host = "
                    f"dashboard URL, password = admin secret) or set {URL_ENV}."
                ) from None
            return Connection(conn_id=conn_id, conn_type="http", host=url)

    def _extract_auth(self, connection: Any) -> Any | None:
        """The password is the admin secret, sent as a header: never as HTTP basic auth."""
        return None

    def _admin_secret(self) -> str:
        conn = self.get_connection(self.http_conn_id)
        secret = (conn.password or "").strip() or (settings.admin_job_secret() or "").strip()
        if not secret:
            raise DashboardAuthError(UNAUTHORIZED)
        try:
            from airflow.sdk.log import mask_secret

            mask_secret(secret)
        except ImportError:  # pragma: no cover - older task SDKs
            pass
        return secret

    # -- transport ----------------------------------------------------------------------------
    def _request(self, method: str, endpoint: str, payload: dict[str, Any] | None = None) -> Any:
        """One call with the retry policy; returns the decoded JSON body of a 2xx answer."""
        secret = self._admin_secret()
        headers = {SECRET_HEADER: secret, "Accept": "application/json"}
        kwargs: dict[str, Any] = {}
        if payload is not None:
            kwargs["json"] = payload
        attempt = 0
        while True:
            attempt += 1
            error: DashboardError
            self.method = method
            try:
                response = self.run(
                    endpoint=endpoint,
                    headers=headers,
                    extra_options={"check_response": False, "timeout": self.timeout},
                    **kwargs,
                )
            except requests.exceptions.RequestException as exc:
                error = DashboardServerError(
                    f"Dashboard unreachable at {self.base_url or '(unset)'} ({type(exc).__name__})."
                )
            else:
                if response.status_code < 400:
                    return self._json(response)
                error = self._error(response)
            if not isinstance(error, DashboardServerError) or attempt >= self.max_attempts:
                if attempt > 1:
                    error.args = (f"{error.args[0]} (after {attempt} attempts)",)
                raise error
            delay = min(30.0, self.retry_wait * 2 ** (attempt - 1))
            self.log.warning("%s Attempt %d/%d; retrying in %.2fs.", error, attempt, self.max_attempts, delay)
            time.sleep(delay)

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise DashboardServerError(
                f"Dashboard answered {response.status_code} without a JSON body.", response.status_code
            ) from None

    def _error(self, response: requests.Response) -> DashboardError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("error") or body.get("message") or "")
            if body.get("missing"):
                detail = f"{detail} (missing: {', '.join(map(str, body['missing']))})".strip()
        detail = detail[:300]
        if status in (401, 403):
            return DashboardAuthError(UNAUTHORIZED, status, body)
        reason = detail or response.reason
        if status >= 500:
            return DashboardServerError(f"Dashboard error {status}: {reason}.", status, body)
        return DashboardRequestError(f"Dashboard rejected the request ({status}): {reason}.", status, body)

    # -- API ----------------------------------------------------------------------------------
    def process_snapshot(
        self, snapshot_id: str | int, upload_id: str, account_id: str, window: Any
    ) -> dict[str, Any]:
        """Trigger processing of one snapshot whose three CSVs are in the ingest bucket."""
        payload = {
            "snapshotId": snapshot_id if isinstance(snapshot_id, int) else str(snapshot_id),
            "uploadId": upload_id,
            "accountId": account_id,
            "window": _window_dict(window),
        }
        self.log.info("Triggering snapshot processing: snapshot %s, upload %s", payload["snapshotId"],
                      upload_id)
        return self._request("POST", PROCESS_ENDPOINT, payload)

    def snapshot_status(self, snapshot_id: str | int) -> dict[str, Any]:
        """The dashboard's view of a snapshot (``status``, ``last_email_date``...)."""
        return self._request("GET", f"/api/snapshots/{quote(str(snapshot_id), safe='')}")

    def test_connection(self) -> tuple[bool, str]:
        """Reach the dashboard with the secret: a status query for a snapshot that cannot exist."""
        try:
            self.snapshot_status("connection-test")
        except DashboardRequestError as exc:
            if exc.status == 404:
                return True, "Dashboard reachable and the admin secret was accepted."
            return False, str(exc)
        except DashboardError as exc:
            return False, str(exc)
        return True, "Dashboard reachable and the admin secret was accepted."
