"""The Klaviyo REST client: auth, revision, JSON:API pagination, pacing, retries, typed helpers.

No Airflow import, so the bench and tests use it bare. Failure policy lives in one place
(``_send``): 5xx/timeouts/connection errors are retried with tenacity (exponential backoff with
jitter, bounded attempts); 429s wait ``Retry-After`` and are not counted as attempts; 401/403 and
other 4xx are raised at once. Pacing (``pacing.Pacer``) keeps a normal run free of 429s.

Reporting calls cost one of Klaviyo's 225 daily calls even when the answer never arrives (a read
timeout, a dropped answer, a 5xx). So the same policy retries such an unanswered reporting call at
most once per try, and stops for good once a chunk has spent ``REPORT_UNANSWERED_PER_CHUNK`` of
them over all task tries (counted in the attempt ledger the operator supplies, see ``charging``).
A refused connection sent nothing and a 429 was refused: neither is counted.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)

from flowsync_provider import __version__, settings
from flowsync_provider.core.limits import REPORTING_BUCKET, RateLimit, limits_for, operation_for
from flowsync_provider.core.plan import REPORTING_DAILY_QUOTA
from flowsync_provider.klaviyo.diagnostics import Diagnostics
from flowsync_provider.klaviyo.errors import (
    KlaviyoAuthError,
    KlaviyoConfigError,
    KlaviyoError,
    KlaviyoRateLimitExceeded,
    KlaviyoReportQuotaGuard,
    KlaviyoRequestError,
    KlaviyoServerError,
)
from flowsync_provider.klaviyo.pacing import AttemptLedger, Pacer, TaskLedger
from flowsync_provider.klaviyo.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT_SECONDS,
    account_key_for,
    resolve_limiter_url,
    resolve_revision,
    resolve_time_scale,
    resolve_timeout,
)

log = logging.getLogger(__name__)

JSONAPI = "application/vnd.api+json"
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
MAX_CONSECUTIVE_429 = 50
DEFAULT_429_WAIT_SECONDS = 1.0
# Klaviyo's reporting endpoints aggregate up to a year of events server-side and can take tens of
# seconds to answer. A shorter read timeout abandons a call Klaviyo still serves and counts against
# the 225/day quota, so reporting calls always wait at least this long (Klaviyo seconds: divided by the
# time scale like every other wait, which keeps sandbox tests fast). It only raises the timeout; a
# fast answer is as fast as before, and other endpoints keep the configured timeout.
REPORT_READ_TIMEOUT_FLOOR_SECONDS = 60.0
# Unanswered reporting calls (may have cost quota): at most one retry per try, at most 3 per chunk.
REPORT_UNANSWERED_PER_TRY = 2
REPORT_UNANSWERED_PER_CHUNK = 3
# Failures where the request never left this machine: they cannot have cost quota.
_NOT_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_EXPECTED_IN = re.compile(r"available in (\d+(?:\.\d+)?) second", re.IGNORECASE)
_SCOPE = re.compile(r"\b([a-z][a-z-]*:(?:read|write|full))\b")

# One cheap GET per scope the sync needs; 403 on the probe means the scope is missing.
SCOPE_PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "accounts:read": ("/api/accounts", {}),
    "flows:read": ("/api/flows", {"page[size]": 1, "fields[flow]": "name"}),
    "campaigns:read": (
        "/api/campaigns",
        {"filter": "equals(messages.channel,'email')", "page[size]": 1, "fields[campaign]": "name"},
    ),
    "metrics:read": ("/api/metrics", {"fields[metric]": "name"}),
    "lists:read": ("/api/lists", {"page[size]": 1, "fields[list]": "name"}),
    "segments:read": ("/api/segments", {"page[size]": 1, "fields[segment]": "name"}),
    "profiles:read": ("/api/profiles", {"page[size]": 1, "fields[profile]": "id"}),
}
REQUIRED_SCOPES: tuple[str, ...] = tuple(SCOPE_PROBES)

DEFAULT_FLOW_GROUP_BY = ("flow_id", "flow_message_id", "send_channel")
DEFAULT_CAMPAIGN_GROUP_BY = ("campaign_id", "campaign_message_id", "send_channel")
EMAIL_FILTER = 'equals(send_channel,"email")'


class _Secret:
    """Holds the API key so that printing the client or its attributes never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


class _Transient(Exception):
    """Internal: a failure worth retrying (5xx, timeout, connection error).

    ``connect`` is set (to a short reason) when the connection itself failed and nothing was sent.
    """

    def __init__(self, endpoint: str, reason: str, status: int | None = None, *, connect: str | None = None) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason
        self.status = status
        self.connect = connect


@dataclass
class _Tally:
    """One logical request: attempts made, unanswered reporting attempts now and for the chunk overall."""

    ledger: AttemptLedger | None
    attempts: int = 0
    unanswered: int = 0
    chunk_total: int = 0

    def charge(self) -> int:
        self.unanswered += 1
        self.chunk_total = self.ledger.spend() if self.ledger is not None else self.unanswered
        return self.chunk_total

    def stop(self, _state: RetryCallState) -> bool:
        """tenacity stop condition added to the attempt bound: the quota caps."""
        return self.unanswered >= REPORT_UNANSWERED_PER_TRY or self.chunk_total >= REPORT_UNANSWERED_PER_CHUNK


def _connect_reason(exc: httpx.TransportError) -> str:
    """A short human reason for a failed connection (no addresses, no key: the caller adds the host)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if any(word in text for word in ("name or service", "nodename", "name resolution", "getaddrinfo")):
        return "host name not found"
    if "unreachable" in text:
        return "network unreachable"
    return "connection failed"


class KlaviyoClient:
    """Synchronous Klaviyo client; a context manager. See docs/INTERFACES.md for the contract."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        revision: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        account_key: str | None = None,
        limiter_url: str | None = None,
        time_scale: float | None = None,
        max_wait_seconds: float = 120.0,
        max_attempts: int = 5,
        *,
        transport: httpx.BaseTransport | None = None,
        conn_id: str = "klaviyo_default",
    ) -> None:
        if not api_key or not str(api_key).strip():
            raise KlaviyoConfigError(
                "no Klaviyo API key: set the klaviyo_default connection's password or KLAVIYO_API_KEY"
            )
        if max_attempts < 1:
            raise KlaviyoConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        self._api_key = _Secret(str(api_key).strip())
        self.base_url = normalize_base_url(base_url)
        self.revision = resolve_revision(revision)
        self.timeout = resolve_timeout(timeout)
        self.conn_id = conn_id  # only named in messages ("check the klaviyo_default connection's host")
        self.account_key = account_key or account_key_for(self._api_key.reveal())
        self.limiter_url = resolve_limiter_url(limiter_url)
        self.time_scale = resolve_time_scale(time_scale)
        self.max_wait_seconds = float(max_wait_seconds)
        self.max_attempts = int(max_attempts)
        self.global_burst = settings.klaviyo_limit_global_burst()
        self.global_per_minute = settings.klaviyo_limit_global_per_minute()
        self.diagnostics = Diagnostics()
        self._transport = transport
        self._pacer = Pacer(self.limiter_url, self.account_key, self.time_scale)
        self.ledger: AttemptLedger | None = None  # see charging()

    def __repr__(self) -> str:
        return (
            f"KlaviyoClient(base_url={self.base_url!r}, revision={self.revision!r}, "
            f"account_key={self.account_key!r}, time_scale={self.time_scale})"
        )

    # ------------------------------------------------------------------ plumbing
    @cached_property
    def http(self) -> httpx.Client:
        """The httpx client, built on first use so constructing a client never opens sockets."""
        return httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Klaviyo-API-Key {self._api_key.reveal()}",
                "revision": self.revision,
                "accept": JSONAPI,
                "user-agent": f"flowsync/{__version__}",
            },
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            transport=self._transport,
            follow_redirects=False,
        )

    @property
    def report_timeout(self) -> float:
        """Real seconds a reporting call may wait for its answer: the timeout, never below the floor."""
        return max(self.timeout, REPORT_READ_TIMEOUT_FLOOR_SECONDS / self.time_scale)

    def task_ledger(self, key: str) -> TaskLedger:
        """The attempt ledger of one task instance (``key`` stable across its tries), in the limiter store."""
        return self._pacer.ledger(key)

    @contextmanager
    def charging(self, ledger: AttemptLedger | None) -> Iterator[None]:
        """Count unanswered reporting calls made inside the block against ``ledger`` (one chunk).

        Without a ledger only the per-try bound applies (one retry of an unanswered reporting call).
        """
        previous, self.ledger = self.ledger, ledger
        try:
            yield
        finally:
            self.ledger = previous

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***`` (for anything stored or logged by callers)."""
        return self._scrub(text)

    def close(self) -> None:
        if "http" in self.__dict__:
            self.http.close()
            del self.__dict__["http"]
        self._pacer.close()

    def __enter__(self) -> KlaviyoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def limit_for(self, method: str, path: str) -> tuple[str, RateLimit]:
        """Bucket and effective limits of a request: the spec's, lowered by the global envs."""
        bucket, limit = limits_for(method, path)
        return bucket, limit.lowered(self.global_burst, self.global_per_minute)

    @staticmethod
    def endpoint_name(method: str, path: str) -> str:
        """``"METHOD /path-template"``: the diagnostics/log key (never ids, emails or query values)."""
        found = operation_for(method, path)
        template = found[1] if found else path.split("?", 1)[0]
        return f"{method.upper()} {template}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key.reveal(), "***") if text else text

    def _server_wait_seconds(self, response: httpx.Response) -> float:
        """Real seconds a 429 asks for: Retry-After, else the detail's "available in N", else Reset."""
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            try:
                return max(0.0, float(retry_after)) / self.time_scale
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(retry_after)
                    return max(0.0, when.timestamp() - time.time())
                except (TypeError, ValueError):
                    pass
        detail = _first_error(response).get("detail") or ""
        match = _EXPECTED_IN.search(detail)
        if match:
            return float(match.group(1)) / self.time_scale
        reset = response.headers.get("RateLimit-Reset")
        if reset:
            try:
                return max(0.0, float(reset)) / self.time_scale
            except ValueError:
                pass
        return DEFAULT_429_WAIT_SECONDS / self.time_scale

    def _adapt_to_headers(self, response: httpx.Response, bucket: str) -> None:
        """Remaining 0 means the server will refuse the next call: pause the bucket until Reset."""
        if response.headers.get("RateLimit-Remaining", "").strip() != "0":
            return
        try:
            reset = float(response.headers.get("RateLimit-Reset", ""))
        except ValueError:
            return
        self._pacer.pause(bucket, reset / self.time_scale)

    def _raise_for_client_error(self, response: httpx.Response, method: str, endpoint: str) -> None:
        status = response.status_code
        err = _first_error(response)
        detail = self._scrub(str(err.get("detail") or err.get("title") or "")).strip()
        source = err.get("source") or {}
        pointer = source.get("pointer") if isinstance(source, dict) else None
        parameter = source.get("parameter") if isinstance(source, dict) else None
        if status == 401:
            raise KlaviyoAuthError(
                "Klaviyo refused the API key (401): check the klaviyo_default connection's password "
                "/ KLAVIYO_API_KEY",
                status=401,
            )
        if status == 403:
            match = _SCOPE.search(detail)
            scope = match.group(1) if match else _probe_scope(endpoint)
            need = f" — the key lacks scope {scope!r}" if scope else ""
            said = f" Klaviyo said: {detail}" if detail else ""
            raise KlaviyoAuthError(
                f"Klaviyo denied {endpoint} (403){need}; create a private key with the read scopes "
                f"{', '.join(REQUIRED_SCOPES)}.{said}",
                status=403,
                missing_scope=scope,
            )
        where = ""
        if pointer:
            where = f" (at {pointer})"
        elif parameter:
            where = f" (parameter {parameter})"
        raise KlaviyoRequestError(
            f"Klaviyo rejected {endpoint} ({status}): {detail or 'no detail given'}{where}",
            status=status,
            detail=detail or None,
            pointer=pointer,
            parameter=parameter,
        )

    def _send_paced(
        self,
        method: str,
        path: str,
        params: Any,
        json_body: Any,
        bucket: str,
        limit: RateLimit,
        endpoint: str,
        tally: _Tally,
    ) -> httpx.Response:
        """One logical request: pace, send, and wait out 429s (which are not failed attempts)."""
        throttled_wait = 0.0
        http = self.http  # built before taking a slot: the slot's timestamp must be close to the send
        headers = {"content-type": JSONAPI} if json_body is not None else None
        reporting = bucket == REPORTING_BUCKET
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if reporting:
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0), read=self.report_timeout)
        tally.attempts += 1
        for _ in range(MAX_CONSECUTIVE_429 + 1):
            self.diagnostics.record_wait(self._pacer.acquire(bucket, limit, self.max_wait_seconds))
            started = time.monotonic()
            try:
                response = http.request(
                    method, path, params=params, json=json_body, headers=headers, timeout=timeout
                )
            except httpx.TransportError as exc:
                elapsed = time.monotonic() - started
                not_sent = isinstance(exc, _NOT_SENT)
                self.diagnostics.record_call(endpoint, reporting=reporting and not not_sent)
                log.info("Klaviyo %s -> %s after %.2fs", endpoint, type(exc).__name__, elapsed)
                if reporting and not not_sent:
                    self._charge_unanswered(tally, endpoint, type(exc).__name__)
                connect = _connect_reason(exc) if not_sent else None
                raise _Transient(endpoint, type(exc).__name__, connect=connect) from None
            elapsed = time.monotonic() - started
            self.diagnostics.record_call(endpoint, reporting=reporting)
            log.info("Klaviyo %s -> %s in %.2fs", endpoint, response.status_code, elapsed)
            status = response.status_code
            if status == 429:
                self.diagnostics.record_429()
                wait = self._server_wait_seconds(response)
                throttled_wait += wait
                self._pacer.pause(bucket, wait)  # shared: other tasks of this account wait too
                if wait > self.max_wait_seconds or throttled_wait > self.max_wait_seconds:
                    raise KlaviyoRateLimitExceeded(time.time() + wait, bucket, wait_seconds=wait)
                log.info("Klaviyo %s throttled (429): waiting %.2fs as the server asks", endpoint, wait)
                continue
            self._adapt_to_headers(response, bucket)
            if status >= 500:
                if reporting:
                    self._charge_unanswered(tally, endpoint, f"HTTP {status}")
                raise _Transient(endpoint, f"HTTP {status}", status)
            if status >= 400:
                self._raise_for_client_error(response, method, endpoint)
            if status >= 300:
                raise KlaviyoRequestError(
                    f"Klaviyo answered {endpoint} with a redirect ({status}); check the base URL",
                    status=status,
                )
            return response
        raise KlaviyoRateLimitExceeded(
            time.time() + self._server_wait_seconds(response), bucket, wait_seconds=throttled_wait
        )

    def _charge_unanswered(self, tally: _Tally, endpoint: str, reason: str) -> None:
        """A reporting call that may have reached Klaviyo got no usable answer: it may have cost quota."""
        self.diagnostics.record_unanswered()
        total = tally.charge()
        log.warning(
            "Klaviyo %s gave no usable answer (%s) but may have counted against the %d/day reporting quota "
            "(%d unanswered for this chunk; at most %d)",
            endpoint, reason, REPORTING_DAILY_QUOTA, total, REPORT_UNANSWERED_PER_CHUNK,
        )

    def _quota_advice(self, reason: str | None, then: str = ", then clear the task") -> str:
        if reason is None or "Timeout" in reason:
            return (
                f"raise the {self.conn_id} connection's extra.timeout (reporting calls now wait "
                f"{self.report_timeout:g} s) or retry when Klaviyo answers faster{then}"
            )
        return f"Klaviyo may be degraded: retry later{then}"

    def _quota_guard(self, endpoint: str, spent: int, reason: str | None) -> KlaviyoReportQuotaGuard:
        why = f"went unanswered ({reason})" if reason else "went unanswered in earlier tries"
        return KlaviyoReportQuotaGuard(
            f"Klaviyo {endpoint} {why} and flowsync stops retrying it: it has spent {spent} reporting quota "
            f"calls on this chunk over all task tries (of Klaviyo's {REPORTING_DAILY_QUOTA}/day); "
            f"{self._quota_advice(reason)}.",
            spent=spent,
            endpoint=endpoint,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        self.diagnostics.record_retry()
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "Klaviyo %s failed (%s); retry %d/%d in %.2fs",
            getattr(exc, "endpoint", "?"),
            getattr(exc, "reason", type(exc).__name__),
            state.attempt_number,
            self.max_attempts - 1,
            delay,
        )

    def _send(self, method: str, path: str, *, params: Any = None, json_body: Any = None) -> httpx.Response:
        """The single retry policy: tenacity around one paced request."""
        method = method.upper()
        bucket, limit = self.limit_for(method, path)
        endpoint = self.endpoint_name(method, path)
        reporting = bucket == REPORTING_BUCKET
        tally = _Tally(self.ledger if reporting else None)
        if reporting and tally.ledger is not None:
            spent = tally.ledger.spent()
            if spent >= REPORT_UNANSWERED_PER_CHUNK:  # earlier tries used the chunk's allowance: send nothing
                raise self._quota_guard(endpoint, spent, None)
        retrying = Retrying(
            stop=stop_any(stop_after_attempt(self.max_attempts), tally.stop),
            wait=wait_exponential_jitter(
                multiplier=BACKOFF_BASE_SECONDS / self.time_scale,
                max=BACKOFF_MAX_SECONDS / self.time_scale,
                jitter=BACKOFF_BASE_SECONDS / self.time_scale,
            ),
            retry=retry_if_exception_type(_Transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._send_paced, method, path, params, json_body, bucket, limit, endpoint, tally)
        except _Transient as exc:
            raise self._give_up(exc, tally, endpoint) from None

    def _give_up(self, exc: _Transient, tally: _Tally, endpoint: str) -> KlaviyoError:
        """The error for a request the retry policy stopped retrying, by what stopped it."""
        if tally.ledger is not None and tally.chunk_total >= REPORT_UNANSWERED_PER_CHUNK:
            return self._quota_guard(endpoint, tally.chunk_total, exc.reason)
        if tally.unanswered >= REPORT_UNANSWERED_PER_TRY:
            return KlaviyoServerError(
                f"Klaviyo {endpoint} went unanswered ({exc.reason}) {tally.unanswered} times in this try; each "
                f"may have counted against the {REPORTING_DAILY_QUOTA}/day reporting quota, so this try stops "
                f"({tally.chunk_total} of at most {REPORT_UNANSWERED_PER_CHUNK} for this chunk over all task "
                f"tries); {self._quota_advice(exc.reason, then='')}",
                status=exc.status,
                attempts=tally.attempts,
            )
        if exc.connect:
            url = httpx.URL(self.base_url)
            port = url.port or (443 if url.scheme == "https" else 80)
            return KlaviyoServerError(
                self._scrub(
                    f"Could not connect to {url.host}:{port} ({exc.connect}) after {tally.attempts} attempts: "
                    f"check the {self.conn_id} connection's host"
                ),
                attempts=tally.attempts,
            )
        return KlaviyoServerError(
            f"Klaviyo {endpoint} kept failing ({exc.reason}) after {tally.attempts} attempts; "
            "Klaviyo may be degraded, retry later",
            status=exc.status,
            attempts=tally.attempts,
        )

    def request_json(self, method: str, path: str, *, params: Any = None, json_body: Any = None) -> dict:
        """Send one request through pacing/retries and return the decoded JSON:API document."""
        response = self._send(method, path, params=params, json_body=json_body)
        try:
            doc = response.json()
        except ValueError:
            raise KlaviyoError(
                f"Klaviyo answered {self.endpoint_name(method, path)} with a body that is not JSON"
            ) from None
        if not isinstance(doc, dict):
            endpoint = self.endpoint_name(method, path)
            raise KlaviyoError(f"Klaviyo answered {endpoint} with an unexpected shape")
        return doc

    # ------------------------------------------------------------------ pagination
    def iter_pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """One JSON:API document per page, following ``links.next`` until it is absent.

        The next link is re-based on the configured host (the key never goes elsewhere), and a
        cursor seen twice raises instead of looping forever.
        """
        endpoint = self.endpoint_name("GET", path)
        seen: set[str] = set()
        url: str = path
        page_params: dict[str, Any] | None = params
        while True:
            doc = self.request_json("GET", url, params=page_params)
            self.diagnostics.record_page(endpoint)
            yield doc
            next_link = (doc.get("links") or {}).get("next")
            if not next_link:
                return
            target = httpx.URL(next_link)
            query = parse_qs(target.query.decode(), keep_blank_values=True)
            cursor = (query.get("page[cursor]") or [next_link])[0]
            if cursor in seen:
                raise KlaviyoError(_loop_message(endpoint))
            seen.add(cursor)
            url = target.raw_path.decode("ascii")
            page_params = None

    def get_collection(self, path: str, params: dict[str, Any] | None = None) -> dict[str, list[dict]]:
        """All pages merged: ``{"data": [...], "included": [...]}`` with included de-duplicated."""
        data: list[dict] = []
        included: list[dict] = []
        seen: set[tuple[Any, Any]] = set()
        for doc in self.iter_pages(path, params):
            data.extend(doc.get("data") or [])
            for resource in doc.get("included") or []:
                key = (resource.get("type"), resource.get("id"))
                if key not in seen:
                    seen.add(key)
                    included.append(resource)
        return {"data": data, "included": included}

    # ------------------------------------------------------------------ typed helpers
    def get_account(self) -> dict:
        """The account resource (timezone, currency…): JSON:API ``data[0]``."""
        doc = self.request_json("GET", "/api/accounts")
        data = doc.get("data") or []
        if not data:
            raise KlaviyoError("Klaviyo returned no account for this API key")
        return data[0]

    def get_flows(self, include_archived: bool = False) -> dict[str, list[dict]]:
        params: dict[str, Any] = {"include": "flow-actions,tags", "page[size]": 50}
        if not include_archived:
            params["filter"] = "equals(archived,false)"
        return self.get_collection("/api/flows", params)

    def get_metrics(self) -> list[dict]:
        return self.get_collection("/api/metrics")["data"]

    def get_campaigns(
        self, channel: str = "email", *, include_archived: bool = False
    ) -> dict[str, list[dict]]:
        """Campaigns of one channel (Klaviyo requires the ``messages.channel`` filter)."""
        filters = [f"equals(messages.channel,'{channel}')"]
        if not include_archived:
            filters.append("equals(archived,false)")
        flt = filters[0] if len(filters) == 1 else f"and({','.join(filters)})"
        params = {"filter": flt, "include": "campaign-messages,tags", "page[size]": 100}
        return self.get_collection("/api/campaigns", params)

    def get_lists(self) -> list[dict]:
        return self.get_collection("/api/lists", {"page[size]": 10})["data"]

    def get_segments(self) -> list[dict]:
        return self.get_collection("/api/segments", {"page[size]": 10})["data"]

    def iter_profiles(self, updated_after: Any = None) -> Iterator[list[dict]]:
        """Pages of profiles with their subscriptions (streamed: audiences can be large)."""
        params: dict[str, Any] = {"additional-fields[profile]": "subscriptions", "page[size]": 100}
        if updated_after is not None:
            params["filter"] = f"greater-than(updated,{_iso(updated_after)})"
        for doc in self.iter_pages("/api/profiles", params):
            yield list(doc.get("data") or [])

    def iter_list_profile_ids(self, list_id: str) -> Iterator[list[str]]:
        """Pages of profile ids of a list (sparse fieldset: ids only, no PII fetched)."""
        if not list_id or "/" in list_id:
            raise KlaviyoConfigError(f"invalid Klaviyo list id {list_id!r}")
        params = {"fields[profile]": "id", "page[size]": 100}
        for doc in self.iter_pages(f"/api/lists/{list_id}/profiles", params):
            yield [str(p["id"]) for p in doc.get("data") or [] if p.get("id")]

    # ------------------------------------------------------------------ reporting
    def _report(self, path: str, report_type: str, attributes: dict[str, Any]) -> dict[str, list]:
        """POST a report, follow its ``page_cursor`` pagination, merge the results."""
        body = {"data": {"type": report_type, "attributes": attributes}}
        endpoint = self.endpoint_name("POST", path)
        results: list = []
        date_times: list | None = None
        seen: set[str] = set()
        params: dict[str, str] | None = None
        while True:
            doc = self.request_json("POST", path, params=params, json_body=body)
            self.diagnostics.record_page(endpoint)
            data = doc.get("data") or {}
            attrs = data.get("attributes") or {}
            results.extend(attrs.get("results") or [])
            if "date_times" in attrs:
                if date_times is None:
                    date_times = list(attrs["date_times"] or [])
                elif list(attrs["date_times"] or []) != date_times:
                    raise KlaviyoError(f"Klaviyo {endpoint} pages disagree on date_times; cannot merge them")
            next_link = (doc.get("links") or {}).get("next") or (data.get("links") or {}).get("next")
            if not next_link:
                break
            query = parse_qs(httpx.URL(next_link).query.decode(), keep_blank_values=True)
            cursor = (query.get("page_cursor") or query.get("page[cursor]") or [""])[0]
            if not cursor:
                raise KlaviyoError(f"Klaviyo {endpoint} gave a next link without a page_cursor")
            if cursor in seen:
                raise KlaviyoError(_loop_message(endpoint))
            seen.add(cursor)
            params = {"page_cursor": cursor}
        out: dict[str, list] = {"results": results}
        if date_times is not None:
            out["date_times"] = date_times
        return out

    @staticmethod
    def _report_attributes(
        statistics: Sequence[str],
        start: Any,
        end: Any,
        conversion_metric_id: str,
        group_by: Sequence[str] | None,
        filter: str | None,
    ) -> dict[str, Any]:
        if not statistics:
            raise KlaviyoConfigError("a Klaviyo report needs at least one statistic")
        if not conversion_metric_id:
            raise KlaviyoConfigError(
                "a Klaviyo report needs conversion_metric_id (the Placed Order metric id)"
            )
        attrs: dict[str, Any] = {
            "statistics": list(statistics),
            "timeframe": {"start": _iso(start), "end": _iso(end)},
            "conversion_metric_id": conversion_metric_id,
        }
        if group_by:
            attrs["group_by"] = list(group_by)
        if filter:
            attrs["filter"] = filter
        return attrs

    def query_flow_series(
        self,
        *,
        statistics: Sequence[str],
        start: Any,
        end: Any,
        conversion_metric_id: str,
        interval: str = "daily",
        group_by: Sequence[str] | None = DEFAULT_FLOW_GROUP_BY,
        filter: str | None = EMAIL_FILTER,
    ) -> dict[str, list]:
        """Flow series report (``FlowSeriesRequestDTO``): ``{"results", "date_times"}``, pages merged."""
        attrs = self._report_attributes(statistics, start, end, conversion_metric_id, group_by, filter)
        attrs["interval"] = interval
        return self._report("/api/flow-series-reports", "flow-series-report", attrs)

    def query_flow_values(
        self,
        *,
        statistics: Sequence[str],
        start: Any,
        end: Any,
        conversion_metric_id: str,
        group_by: Sequence[str] | None = DEFAULT_FLOW_GROUP_BY,
        filter: str | None = EMAIL_FILTER,
    ) -> dict[str, list]:
        """Flow values report (``FlowValuesRequestDTO``): ``{"results"}``, pages merged."""
        attrs = self._report_attributes(statistics, start, end, conversion_metric_id, group_by, filter)
        return self._report("/api/flow-values-reports", "flow-values-report", attrs)

    def query_campaign_values(
        self,
        *,
        statistics: Sequence[str],
        start: Any,
        end: Any,
        conversion_metric_id: str,
        group_by: Sequence[str] | None = DEFAULT_CAMPAIGN_GROUP_BY,
        filter: str | None = EMAIL_FILTER,
    ) -> dict[str, list]:
        """Campaign values report (``CampaignValuesRequestDTO``): ``{"results"}``, pages merged."""
        attrs = self._report_attributes(statistics, start, end, conversion_metric_id, group_by, filter)
        return self._report("/api/campaign-values-reports", "campaign-values-report", attrs)

    # ------------------------------------------------------------------ scopes
    def check_scopes(self, scopes: Sequence[str] = REQUIRED_SCOPES) -> list[str]:
        """Missing scopes among ``scopes``, by probing one cheap GET each (403 = missing).

        A 401 still raises ``KlaviyoAuthError``: the key itself is wrong.
        """
        missing: list[str] = []
        for scope in scopes:
            path, params = SCOPE_PROBES[scope]
            try:
                self.request_json("GET", path, params=params)
            except KlaviyoAuthError as exc:
                if exc.status != 403:
                    raise
                missing.append(scope)
        return missing


def normalize_base_url(value: str | None) -> str:
    """``https://a.klaviyo.com`` style base: scheme added if missing, trailing ``/`` and ``/api`` removed."""
    url = (value or DEFAULT_BASE_URL).strip()
    if "://" not in url:
        url = "https://" + url
    url = url.rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    return url


def _first_error(response: httpx.Response) -> dict[str, Any]:
    """The first JSON:API error object of an error response (empty when absent or not JSON)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0]
    return {}


def _loop_message(endpoint: str) -> str:
    return f"Klaviyo returned the same page cursor twice for {endpoint}; stopping to avoid an endless loop"


def _probe_scope(endpoint: str) -> str | None:
    for scope, (path, _params) in SCOPE_PROBES.items():
        if endpoint == f"GET {path}":
            return scope
    return None


def _iso(value: Any) -> str:
    """ISO-8601 text of a datetime/date/str argument."""
    if isinstance(value, str):
        return value
    isoformat = getattr(value, "isoformat", None)
    if isoformat is None:
        raise KlaviyoConfigError(f"expected an ISO-8601 datetime, got {type(value).__name__}")
    return isoformat()
