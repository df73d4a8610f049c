"""Narrow unit tests of the client on httpx.MockTransport: edge cases a real server rarely shows."""

from __future__ import annotations

import json
import pickle
import time

import httpx
import pytest
from klaviyo_helpers import SECRET, Recorder, jsonapi

from flowsync_provider.core.limits import RateLimit, limits_for
from flowsync_provider.klaviyo import (
    DEFAULT_REVISION,
    SUPPORTED_REVISIONS,
    Diagnostics,
    KlaviyoAuthError,
    KlaviyoClient,
    KlaviyoConfigError,
    KlaviyoError,
    KlaviyoRateLimitExceeded,
    KlaviyoRequestError,
    KlaviyoServerError,
    normalize_base_url,
    resolve_revision,
)
from flowsync_provider.klaviyo.pacing import pacing_rates


def page(data, next_link=None, included=None):
    doc = {"data": data, "links": {"self": "x"}}
    if next_link:
        doc["links"]["next"] = next_link
    if included is not None:
        doc["included"] = included
    return lambda request: jsonapi(doc)


def error(status, detail, **source):
    body = {"errors": [{"id": "e1", "code": "invalid", "title": "Invalid", "detail": detail}]}
    if source:
        body["errors"][0]["source"] = source
    return lambda request: jsonapi(body, status)


# ---------------------------------------------------------------- configuration
def test_headers_revision_and_timeout(make_client):
    rec = Recorder(page([{"type": "account", "id": "A1"}]))
    client = make_client(rec, timeout=7.5)
    assert client.get_account()["id"] == "A1"
    req = rec.requests[0]
    assert req.headers["authorization"] == f"Klaviyo-API-Key {SECRET}"
    assert req.headers["revision"] == DEFAULT_REVISION == "2026-07-15"
    assert req.headers["accept"] == "application/vnd.api+json"
    assert "content-type" not in req.headers
    assert req.url.host == "a.klaviyo.com" and req.url.path == "/api/accounts"
    assert client.http.timeout.read == 7.5 and client.http.timeout.connect == 7.5


def test_post_sends_jsonapi_content_type_and_report_body(make_client):
    answer = {"data": {"type": "flow-series-report", "attributes": {"results": [], "date_times": ["d1"]}}}
    rec = Recorder(lambda r: jsonapi(answer))
    client = make_client(rec)
    out = client.query_flow_series(
        statistics=["delivered", "opens_unique"],
        start="2026-01-01T00:00:00-05:00",
        end="2026-01-08T00:00:00-05:00",
        conversion_metric_id="PLACED",
    )
    assert out == {"results": [], "date_times": ["d1"]}
    req = rec.requests[0]
    assert req.method == "POST" and req.url.path == "/api/flow-series-reports"
    assert req.headers["content-type"] == "application/vnd.api+json"
    body = json.loads(req.content)
    assert body == {
        "data": {
            "type": "flow-series-report",
            "attributes": {
                "statistics": ["delivered", "opens_unique"],
                "timeframe": {"start": "2026-01-01T00:00:00-05:00", "end": "2026-01-08T00:00:00-05:00"},
                "conversion_metric_id": "PLACED",
                "group_by": ["flow_id", "flow_message_id", "send_channel"],
                "filter": 'equals(send_channel,"email")',
                "interval": "daily",
            },
        }
    }
    assert client.diagnostics.to_dict()["reporting_calls"] == 1


def test_unsupported_revision_refused(monkeypatch):
    with pytest.raises(KlaviyoConfigError) as err:
        KlaviyoClient(SECRET, revision="2024-06-15", limiter_url="memory://")
    assert "2026-07-15" in str(err.value) and "2024-06-15" in str(err.value)
    monkeypatch.setenv("KLAVIYO_API_REVISION", "2025-01-15")
    with pytest.raises(KlaviyoConfigError, match="2026-07-15"):
        resolve_revision()
    monkeypatch.setenv("KLAVIYO_API_REVISION", SUPPORTED_REVISIONS[0])
    assert resolve_revision() == SUPPORTED_REVISIONS[0]


def test_missing_key_and_bad_settings_refused(monkeypatch):
    with pytest.raises(KlaviyoConfigError, match="KLAVIYO_API_KEY"):
        KlaviyoClient("  ")
    with pytest.raises(KlaviyoConfigError, match="time_scale"):
        KlaviyoClient(SECRET, time_scale=0, limiter_url="memory://")
    with pytest.raises(KlaviyoConfigError, match="FLOWSYNC_LIMITER_URL"):
        KlaviyoClient(SECRET, limiter_url="postgres://x")
    monkeypatch.setenv("KLAVIYO_LIMIT_GLOBAL_BURST", "many")
    with pytest.raises(KlaviyoConfigError, match="KLAVIYO_LIMIT_GLOBAL_BURST"):
        KlaviyoClient(SECRET, limiter_url="memory://")


def test_time_scale_is_an_argument_never_the_environment(monkeypatch):
    """Production reads no FLOWSYNC_TIME_SCALE: only the constructor (fed by the connection extra) scales time."""
    monkeypatch.setenv("FLOWSYNC_TIME_SCALE", "20")
    with KlaviyoClient(SECRET, limiter_url="memory://") as client:
        assert client.time_scale == 1.0
    with KlaviyoClient(SECRET, limiter_url="memory://", time_scale="20") as client:
        assert client.time_scale == 20.0
    for bad in (-1, "fast", float("inf"), float("nan")):
        with pytest.raises(KlaviyoConfigError, match=r"time_scale must be a number > 0.*'time_scale' extra"):
            KlaviyoClient(SECRET, limiter_url="memory://", time_scale=bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "https://a.klaviyo.com"),
        ("a.klaviyo.com", "https://a.klaviyo.com"),
        ("https://a.klaviyo.com/api/", "https://a.klaviyo.com"),
        ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ],
)
def test_base_url_normalized(given, expected):
    assert normalize_base_url(given) == expected


def test_default_limiter_is_sqlite_under_flowsync_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWSYNC_HOME", str(tmp_path / "home"))
    client = KlaviyoClient(SECRET)
    assert client.limiter_url == f"sqlite:///{tmp_path / 'home' / 'limiter.db'}"
    monkeypatch.delenv("FLOWSYNC_HOME")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "af"))
    assert KlaviyoClient(SECRET).limiter_url == f"sqlite:///{tmp_path / 'af' / 'flowsync' / 'limiter.db'}"
    assert len(client.account_key) == 16 and client.account_key not in SECRET


# ---------------------------------------------------------------- pagination
def test_pagination_follows_next_rebased_on_configured_host(make_client):
    rec = Recorder(
        page([{"type": "list", "id": "L1"}], "https://evil.example/api/lists?page%5Bcursor%5D=c2&page%5Bsize%5D=10"),
        page([{"type": "list", "id": "L2"}], "https://a.klaviyo.com/api/lists?page%5Bcursor%5D=c3&page%5Bsize%5D=10"),
        page([{"type": "list", "id": "L3"}]),
    )
    client = make_client(rec)
    assert [item["id"] for item in client.get_lists()] == ["L1", "L2", "L3"]
    assert [r.url.host for r in rec.requests] == ["a.klaviyo.com"] * 3
    assert rec.requests[0].url.params["page[size]"] == "10"
    assert rec.requests[1].url.params["page[cursor]"] == "c2"
    assert rec.requests[2].url.params["page[cursor]"] == "c3"
    diag = client.diagnostics.to_dict()
    assert diag["pages"] == {"GET /api/lists": 3} and diag["calls"] == {"GET /api/lists": 3}


def test_repeated_cursor_raises_instead_of_looping(make_client):
    loop = "https://a.klaviyo.com/api/flows?page%5Bcursor%5D=same"
    rec = Recorder(page([{"type": "flow", "id": "F1"}], loop))
    client = make_client(rec)
    with pytest.raises(KlaviyoError, match="same page cursor twice"):
        client.get_flows()
    assert len(rec.requests) == 2


def test_collection_merges_and_dedups_included(make_client):
    tag = {"type": "tag", "id": "T1", "attributes": {"name": "welcome"}}
    rec = Recorder(
        page([{"type": "flow", "id": "F1"}], "https://a.klaviyo.com/api/flows?page%5Bcursor%5D=2", [tag]),
        page([{"type": "flow", "id": "F2"}], None, [tag, {"type": "flow-action", "id": "A1"}]),
    )
    client = make_client(rec)
    out = client.get_flows()
    assert [f["id"] for f in out["data"]] == ["F1", "F2"]
    assert [(i["type"], i["id"]) for i in out["included"]] == [("tag", "T1"), ("flow-action", "A1")]
    params = rec.requests[0].url.params
    assert params["include"] == "flow-actions,tags"
    assert params["page[size]"] == "50"
    assert params["filter"] == "equals(archived,false)"
    client.get_flows(include_archived=True)
    assert "filter" not in rec.requests[-1].url.params


def test_campaigns_profiles_and_list_member_params(make_client):
    rec = Recorder(page([{"type": "x", "id": "1"}]))
    client = make_client(rec)
    client.get_campaigns()
    params = rec.requests[-1].url.params
    assert params["filter"] == "and(equals(messages.channel,'email'),equals(archived,false))"
    assert params["include"] == "campaign-messages,tags" and params["page[size]"] == "100"
    assert list(client.iter_profiles(updated_after="2026-01-01T00:00:00+00:00")) == [[{"type": "x", "id": "1"}]]
    params = rec.requests[-1].url.params
    assert params["additional-fields[profile]"] == "subscriptions" and params["page[size]"] == "100"
    assert params["filter"] == "greater-than(updated,2026-01-01T00:00:00+00:00)"
    assert list(client.iter_list_profile_ids("Lx1")) == [["1"]]
    assert rec.requests[-1].url.path == "/api/lists/Lx1/profiles"
    assert rec.requests[-1].url.params["fields[profile]"] == "id"
    assert client.diagnostics.to_dict()["calls"]["GET /api/lists/{id}/profiles"] == 1


def test_report_pages_merged_by_page_cursor(make_client):
    def report(results, cursor=None, dates=("d1", "d2")):
        doc = {"data": {"type": "flow-series-report", "attributes": {"results": results, "date_times": list(dates)}},
               "links": {"self": "s"}}
        if cursor:
            doc["links"]["next"] = f"https://a.klaviyo.com/api/flow-series-reports?page_cursor={cursor}"
        return lambda request: jsonapi(doc)

    rec = Recorder(report([{"groupings": {"flow_id": "F1"}}], "p2"), report([{"groupings": {"flow_id": "F2"}}]))
    client = make_client(rec)
    kwargs = dict(statistics=["delivered"], start="s", end="e", conversion_metric_id="M")
    out = client.query_flow_series(**kwargs)
    assert [r["groupings"]["flow_id"] for r in out["results"]] == ["F1", "F2"]
    assert out["date_times"] == ["d1", "d2"]
    assert "page_cursor" not in rec.requests[0].url.params
    assert rec.requests[1].url.params["page_cursor"] == "p2"
    assert json.loads(rec.requests[0].content) == json.loads(rec.requests[1].content)

    rec2 = Recorder(report([], "again"))
    with pytest.raises(KlaviyoError, match="same page cursor twice"):
        make_client(rec2).query_flow_values(**kwargs)
    rec3 = Recorder(report([], "p2"), report([], None, dates=("other",)))
    with pytest.raises(KlaviyoError, match="date_times"):
        make_client(rec3).query_flow_series(**kwargs)


# ---------------------------------------------------------------- failures
def test_5xx_and_connection_errors_are_retried_then_succeed(make_client):
    def boom(request):
        raise httpx.ConnectError("refused", request=request)

    rec = Recorder(error(503, "down"), boom, error(500, "oops"), page([{"type": "metric", "id": "M1"}]))
    client = make_client(rec, max_attempts=5)
    assert [m["id"] for m in client.get_metrics()] == ["M1"]
    diag = client.diagnostics.to_dict()
    assert len(rec.requests) == 4 and diag["retries"] == 3 and diag["calls"] == {"GET /api/metrics": 4}


def test_5xx_exhausted_raises_server_error(make_client):
    rec = Recorder(error(502, "bad gateway"))
    client = make_client(rec, max_attempts=3)
    with pytest.raises(KlaviyoServerError) as err:
        client.get_metrics()
    assert len(rec.requests) == 3 and err.value.status == 502 and err.value.attempts == 3
    assert "after 3 attempts" in str(err.value)


def test_timeout_is_retried(make_client):
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    rec = Recorder(slow, slow)
    client = make_client(rec, max_attempts=2)
    with pytest.raises(KlaviyoServerError, match="ReadTimeout"):
        client.get_account()
    assert len(rec.requests) == 2


def test_401_is_not_retried_and_hides_the_key(make_client):
    rec = Recorder(error(401, f"Incorrect authentication credentials {SECRET}"))
    client = make_client(rec)
    with pytest.raises(KlaviyoAuthError) as err:
        client.get_account()
    assert len(rec.requests) == 1 and err.value.status == 401
    assert "401" in str(err.value) and "KLAVIYO_API_KEY" in str(err.value)
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)
    assert client.diagnostics.to_dict()["retries"] == 0


def test_403_names_the_missing_scope(make_client):
    rec = Recorder(error(403, "You do not have permission to perform this action. Missing scope: lists:read"))
    client = make_client(rec)
    with pytest.raises(KlaviyoAuthError) as err:
        client.get_lists()
    assert err.value.status == 403 and err.value.missing_scope == "lists:read"
    assert "lists:read" in str(err.value) and len(rec.requests) == 1
    rec2 = Recorder(error(403, "Forbidden"))
    with pytest.raises(KlaviyoAuthError) as err2:
        make_client(rec2).get_segments()
    assert err2.value.missing_scope == "segments:read"  # from the probe table when Klaviyo is silent


def test_400_surfaces_detail_and_pointer(make_client):
    rec = Recorder(error(400, "Daily interval timeframe cannot exceed 60 days.", pointer="/data/attributes/timeframe"))
    client = make_client(rec)
    with pytest.raises(KlaviyoRequestError) as err:
        client.query_flow_series(statistics=["delivered"], start="a", end="b", conversion_metric_id="M")
    exc = err.value
    assert exc.status == 400 and exc.pointer == "/data/attributes/timeframe"
    assert "cannot exceed 60 days" in str(exc) and "/data/attributes/timeframe" in str(exc)
    assert len(rec.requests) == 1
    rec2 = Recorder(error(404, "Not found", parameter="id"))
    with pytest.raises(KlaviyoRequestError, match="parameter id") as err2:
        make_client(rec2).get_flows()
    assert err2.value.status == 404


# ---------------------------------------------------------------- 429 and pacing
def throttled(headers=None, detail="Request was throttled. Expected available in 2 seconds."):
    body = {"errors": [{"id": "t", "code": "throttled", "title": "Throttled", "detail": detail}]}
    return lambda request: jsonapi(body, 429, headers)


def test_429_waits_retry_after_and_is_not_an_attempt(make_client):
    rec = Recorder(
        throttled({"Retry-After": "2"}),
        throttled({"Retry-After": "1"}),
        page([{"type": "account", "id": "A1"}]),
    )
    client = make_client(rec, max_attempts=1, time_scale=20)
    assert client.get_account()["id"] == "A1"
    diag = client.diagnostics.to_dict()
    assert len(rec.requests) == 3 and diag["http_429"] == 2 and diag["retries"] == 0
    assert diag["seconds_waited"] >= (2 + 1) / 20 * 0.9


@pytest.mark.parametrize(
    ("headers", "detail", "expected"),
    [
        ({"Retry-After": "40"}, "Request was throttled. Expected available in 9 seconds.", 40),
        ({}, "Request was throttled. Expected available in 9 seconds.", 9),
        ({"RateLimit-Reset": "7"}, "throttled", 7),
        ({}, "throttled", 1),
    ],
)
def test_429_wait_fallbacks(make_client, headers, detail, expected):
    client = make_client(Recorder(throttled(headers, detail)), time_scale=10)
    response = client.http.get("/api/accounts")
    assert client._server_wait_seconds(response) == pytest.approx(expected / 10)


def test_429_longer_than_max_wait_raises_for_deferral(make_client):
    rec = Recorder(throttled({"Retry-After": "3600"}))
    client = make_client(rec, time_scale=1, max_wait_seconds=60)
    before = time.time()
    with pytest.raises(KlaviyoRateLimitExceeded) as err:
        client.get_account()
    assert err.value.bucket == "get_accounts"
    assert before + 3500 < err.value.retry_at < time.time() + 3700
    assert len(rec.requests) == 1
    clone = pickle.loads(pickle.dumps(err.value))
    assert (clone.retry_at, clone.bucket) == (err.value.retry_at, err.value.bucket)


def test_remaining_zero_pauses_the_bucket(make_client):
    ok = page([{"type": "account", "id": "A1"}])
    rec = Recorder(lambda r: jsonapi({"data": [{"id": "A1"}]}, headers={"RateLimit-Remaining": "0",
                                                                       "RateLimit-Reset": "40"}), ok)
    client = make_client(rec, time_scale=20, max_wait_seconds=1.0)
    client.get_account()
    with pytest.raises(KlaviyoRateLimitExceeded) as err:
        client.get_account()  # must wait ~40/20 = 2 s > max_wait: raised before sending
    assert err.value.bucket == "get_accounts" and 1.5 < err.value.wait_seconds <= 2.0
    assert len(rec.requests) == 1


def test_pacing_wait_beyond_max_wait_raises_before_sending(make_client):
    rec = Recorder(lambda r: jsonapi({"data": {"attributes": {"results": []}}}))
    client = make_client(rec, time_scale=1, max_wait_seconds=0.2)
    kwargs = dict(statistics=["delivered"], start="a", end="b", conversion_metric_id="M")
    client.query_flow_values(**kwargs)
    with pytest.raises(KlaviyoRateLimitExceeded) as err:
        client.query_campaign_values(**kwargs)  # same shared "reporting" bucket: 1/s burst
    assert err.value.bucket == "reporting" and 0.2 < err.value.wait_seconds <= 1.2
    assert len(rec.requests) == 1


def test_global_env_limits_lower_but_never_raise(monkeypatch):
    monkeypatch.setenv("KLAVIYO_LIMIT_GLOBAL_BURST", "2")
    monkeypatch.setenv("KLAVIYO_LIMIT_GLOBAL_PER_MINUTE", "1000")
    client = KlaviyoClient(SECRET, limiter_url="memory://")
    assert client.limit_for("GET", "/api/profiles") == ("get_profiles", RateLimit(2, 750, None))
    assert client.limit_for("POST", "/api/flow-series-reports") == ("reporting", RateLimit(1, 2, 225))
    monkeypatch.setenv("KLAVIYO_LIMIT_GLOBAL_PER_MINUTE", "30")
    client = KlaviyoClient(SECRET, limiter_url="memory://")
    assert client.limit_for("GET", "/api/flows") == ("get_flows", RateLimit(2, 30, None))
    assert client.limit_for("GET", "/api/accounts") == ("get_accounts", RateLimit(1, 15, None))


def test_pacing_rates_are_scaled_with_margin_and_valid():
    _bucket, reporting = limits_for("POST", "/api/flow-values-reports")
    rates = pacing_rates(reporting, 20)
    assert [r.limit for r in rates] == [1, 2, 225]
    assert rates[0].interval >= 1000 / 20 and rates[1].interval >= 60000 / 20 and rates[2].interval >= 86400000 / 20
    assert rates[1].interval < 60000 / 20 * 1.1
    # lowering steady below burst makes the burst window redundant; pyrate-limiter would reject it
    assert [(r.limit) for r in pacing_rates(RateLimit(3, 60).lowered(None, 2), 1)] == [2]


# ---------------------------------------------------------------- diagnostics
def test_diagnostics_json_and_merge():
    a = Diagnostics()
    a.record_call("GET /api/flows", reporting=False)
    a.record_call("POST /api/flow-series-reports", reporting=True)
    a.record_page("GET /api/flows")
    a.record_retry()
    a.record_429()
    a.record_wait(1.25)
    b = {"calls": {"GET /api/flows": 2}, "reporting_calls": 2, "retries": 0, "http_429": 1,
         "seconds_waited": 0.5, "pages": {"GET /api/flows": 2}}
    merged = Diagnostics.merge(a, b, None)
    assert json.loads(json.dumps(merged)) == merged
    assert merged == {
        "calls": {"GET /api/flows": 3, "POST /api/flow-series-reports": 1},
        "reporting_calls": 3,
        "reporting_unanswered": 0,
        "retries": 1,
        "http_429": 2,
        "seconds_waited": 1.75,
        "pages": {"GET /api/flows": 3},
    }


def test_repr_hides_key(make_client):
    client = make_client(Recorder(page([])))
    assert SECRET not in repr(client) and SECRET not in str(vars(client))
    assert "a.klaviyo.com" in repr(client)


def test_report_bodies_match_the_spec_request_schemas(make_client, openapi_spec):
    import jsonschema

    rec = Recorder(lambda r: jsonapi({"data": {"attributes": {"results": [], "date_times": []}}}))
    client = make_client(rec)
    common = dict(statistics=["delivered", "open_rate", "conversion_value"], start="2026-03-01T00:00:00-05:00",
                  end="2026-03-08T00:00:00-05:00", conversion_metric_id="RESQ6t")
    client.query_flow_series(**common)
    client.query_flow_values(**common)
    client.query_campaign_values(**common, group_by=("campaign_id", "campaign_message_id", "send_channel"))
    names = ["FlowSeriesRequestDTO", "FlowValuesRequestDTO", "CampaignValuesRequestDTO"]
    paths = ["/api/flow-series-reports", "/api/flow-values-reports", "/api/campaign-values-reports"]
    for request, name, path in zip(rec.requests, names, paths, strict=True):
        assert request.url.path == path
        body = json.loads(request.content)
        jsonschema.Draft202012Validator(openapi_spec.schema("reporting", name)).validate(body)
    bad = json.loads(rec.requests[0].content)
    bad["data"]["attributes"]["interval"] = "fortnightly"
    with pytest.raises(jsonschema.ValidationError):  # the schema really constrains the body
        jsonschema.Draft202012Validator(openapi_spec.schema("reporting", names[0])).validate(bad)
